//! Table tests of compat §5.2 (resource names) and §5.3 (validation context shape) against
//! updates from a real agent cache.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use prost::Message as _;
use spire_agent_cache::WorkloadUpdate;
use spire_agent_sds::secrets::resources;
use spire_agent_sds::{Error, SdsConfig, ValidatorMode};
use spire_id::SelectorSet;
use support::*;

/// A caller with two identities (entry-a, entry-b; entry-b federates with other.org), the
/// own bundle and other.org's bundle; or, with `identities = false`, a caller without any.
async fn update(identities: bool) -> (Arc<WorkloadUpdate>, TestCa, TestCa) {
    let ca = TestCa::new();
    let other = TestCa::for_domain(FEDERATED);
    let cache = cache(&ca);
    add_federated(&cache, &ca, &other);
    set_entries(
        &cache,
        &ca,
        vec![
            entry("entry-a", "ns/default/sa/sleep", &[my_uid_selector()]),
            federated_entry("entry-b", "ns/default/sa/other", &[FEDERATED]),
        ],
    );
    let selectors: SelectorSet = if identities {
        [my_uid_selector()].into_iter().collect()
    } else {
        SelectorSet::new()
    };
    let mut subscription = cache.subscribe(selectors);
    let update = subscription.next().await.unwrap();
    (update, ca, other)
}

fn decode(result: Vec<Arc<envoy_types::pb::google::protobuf::Any>>) -> Vec<Secret> {
    result
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, SECRET_TYPE_URL);
            Secret::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

fn names(
    config: &SdsConfig,
    asked: &[&str],
    mode: ValidatorMode,
    update: &WorkloadUpdate,
) -> Result<Vec<String>, Error> {
    let asked: Vec<String> = asked.iter().map(|s| (*s).to_owned()).collect();
    resources(config, &asked, mode, update).map(|r| kinds(&decode(r)))
}

/// (what, config, caller state, names asked, expected kinds or error).
type Row<'a> = (
    &'a str,
    &'a SdsConfig,
    &'a WorkloadUpdate,
    Vec<&'a str>,
    Result<Vec<String>, Error>,
);

fn unauthorized(names: &[&str]) -> Result<Vec<String>, Error> {
    Err(Error::NotAuthorized(
        names.iter().map(|s| (*s).to_owned()).collect(),
    ))
}

fn ok(names: &[&str]) -> Result<Vec<String>, Error> {
    Ok(names.iter().map(|s| (*s).to_owned()).collect())
}

#[tokio::test]
async fn resource_name_table() {
    let (update, _, _) = update(true).await;
    let (nobody, _, _) = update_without_identity().await;
    let config = SdsConfig::default();
    let federation = SdsConfig {
        default_bundle_name: "null".into(),
        default_all_bundles_name: "ROOTCA".into(),
        ..SdsConfig::default()
    };
    let sleep = "spiffe://example.org/ns/default/sa/sleep";
    let other = "spiffe://example.org/ns/default/sa/other";
    let spiffe = ValidatorMode::Spiffe;
    #[rustfmt::skip]
    let rows: Vec<Row<'_>> = vec![
        ("entry SPIFFE ID", &config, &update, vec![sleep], ok(&[&format!("tls:{sleep}")])),
        ("second identity by ID", &config, &update, vec![other], ok(&[&format!("tls:{other}")])),
        ("default = first by entry ID", &config, &update, vec!["default"], ok(&["tls:default"])),
        ("own TD ID", &config, &update, vec!["spiffe://example.org"], ok(&["ctx:spiffe://example.org"])),
        ("federated TD ID", &config, &update, vec!["spiffe://other.org"], ok(&["ctx:spiffe://other.org"])),
        ("unknown TD ID", &config, &update, vec!["spiffe://third.org"], unauthorized(&["spiffe://third.org"])),
        ("ROOTCA", &config, &update, vec!["ROOTCA"], ok(&["ctx:ROOTCA"])),
        ("ALL", &config, &update, vec!["ALL"], ok(&["ctx:ALL"])),
        ("Istio pair", &config, &update, vec!["default", "ROOTCA"], ok(&["ctx:ROOTCA", "tls:default"])),
        ("empty = everything", &config, &update, vec![],
            ok(&["ctx:spiffe://example.org", "ctx:spiffe://other.org",
                 &format!("tls:{sleep}"), &format!("tls:{other}")])),
        ("unknown name", &config, &update, vec!["bogus", "ROOTCA"], unauthorized(&["bogus"])),
        ("names sorted in the error", &config, &update, vec!["zz", "aa"], unauthorized(&["aa", "zz"])),
        ("ROOTCA and ALL: one of a kind", &config, &update, vec!["ROOTCA", "ALL"], unauthorized(&["ALL"])),
        ("own TD beats ROOTCA", &config, &update, vec!["ROOTCA", "spiffe://example.org"], unauthorized(&["ROOTCA"])),
        ("own TD beats ALL", &config, &update, vec!["ALL", "spiffe://example.org"], unauthorized(&["ALL"])),
        ("first identity by ID hides default", &config, &update, vec!["default", sleep], unauthorized(&["default"])),
        ("no identity: default refused", &config, &nobody, vec!["default"], unauthorized(&["default"])),
        ("no identity: ROOTCA served", &config, &nobody, vec!["ROOTCA"], ok(&["ctx:ROOTCA"])),
        ("no identity: federated TD refused", &config, &nobody, vec!["spiffe://other.org"], unauthorized(&["spiffe://other.org"])),
        ("federation config: ROOTCA = all", &federation, &update, vec!["ROOTCA"], ok(&["ctx:ROOTCA"])),
        ("federation config: null is the own TD", &federation, &update, vec!["null"], ok(&["ctx:null"])),
        ("federation config: ALL unknown", &federation, &update, vec!["ALL"], unauthorized(&["ALL"])),
    ];
    for (what, config, update, asked, want) in rows {
        assert_eq!(names(config, &asked, spiffe, update), want, "{what}");
    }
}

async fn update_without_identity() -> (Arc<WorkloadUpdate>, TestCa, TestCa) {
    update(false).await
}

#[tokio::test]
async fn default_is_the_first_identity_by_entry_id_and_pem_encoded() {
    let (update, ca, _) = update(true).await;
    let got = decode(
        resources(
            &SdsConfig::default(),
            &["default".into()],
            ValidatorMode::Spiffe,
            &update,
        )
        .unwrap(),
    );
    let (chain, key) = tls(&got[0]);
    let first = &update.identities[0];
    assert_eq!(first.entry.id, "entry-a");
    assert_eq!(chain, pem_of(&[&first.svid.chain[0]]));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
    let parsed = pem::parse(&key).unwrap();
    assert_eq!(parsed.contents(), first.svid.private_key.as_slice());
    // The leaf verifies against the own roots.
    let leaf = x509_parser::parse_x509_certificate(&first.svid.chain[0])
        .unwrap()
        .1;
    let root = x509_parser::parse_x509_certificate(&ca.root_der).unwrap().1;
    leaf.verify_signature(Some(root.public_key())).unwrap();
}

#[tokio::test]
async fn validation_context_shapes() {
    let (update, ca, other) = update(true).await;
    let own_pem = pem_of(&[&ca.root_der]);
    let other_pem = pem_of(&[&other.root_der]);
    let config = SdsConfig::default();
    let one =
        |name: &str, mode| decode(resources(&config, &[name.to_owned()], mode, &update).unwrap());

    // SPIFFE validator: one trust domain, named without scheme.
    let rootca = one("ROOTCA", ValidatorMode::Spiffe);
    assert_eq!(
        context(&rootca[0]),
        ("spiffe", vec![("example.org".into(), own_pem.clone())])
    );
    let fed = one("spiffe://other.org", ValidatorMode::Spiffe);
    assert_eq!(
        context(&fed[0]),
        ("spiffe", vec![("other.org".into(), other_pem.clone())])
    );
    // ALL: every trust domain the caller may see, sorted by name.
    let all = one("ALL", ValidatorMode::Spiffe);
    assert_eq!(
        context(&all[0]),
        (
            "spiffe",
            vec![
                ("example.org".into(), own_pem.clone()),
                ("other.org".into(), other_pem.clone())
            ]
        )
    );

    // Plain trusted_ca.
    let rootca = one("ROOTCA", ValidatorMode::TrustedCa);
    assert_eq!(
        context(&rootca[0]),
        ("trusted_ca", vec![(String::new(), own_pem.clone())])
    );
    let fed = one("spiffe://other.org", ValidatorMode::TrustedCa);
    assert_eq!(
        context(&fed[0]),
        ("trusted_ca", vec![(String::new(), other_pem)])
    );
    let error = resources(&config, &["ALL".into()], ValidatorMode::TrustedCa, &update).unwrap_err();
    assert_eq!(error, Error::SpiffeValidatorUnsupported);
    let status = tonic::Status::from(error);
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        "unable to use \"SPIFFE validator\" on Envoy below 1.17"
    );
}

#[tokio::test]
async fn secrets_are_encoded_once_per_update() {
    let (update, _, _) = update(true).await;
    let config = SdsConfig::default();
    let names = vec!["default".to_owned(), "ROOTCA".to_owned()];
    let a = resources(&config, &names, ValidatorMode::Spiffe, &update).unwrap();
    let b = resources(&config, &names, ValidatorMode::Spiffe, &update).unwrap();
    assert!(a.iter().zip(&b).all(|(a, b)| Arc::ptr_eq(a, b)));
    // Another mode is another encoding.
    let c = resources(&config, &names, ValidatorMode::TrustedCa, &update).unwrap();
    assert!(!Arc::ptr_eq(&a[0], &c[0]));
    assert!(
        Arc::ptr_eq(&a[1], &c[1]),
        "the TLS certificate does not depend on the mode"
    );
}
