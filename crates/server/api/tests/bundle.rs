//! Bundle service over a real server: our bundle, federated bundles, per-item batch status,
//! delete modes and masks.
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::spire::api::server::bundle::v1::{
    AppendBundleRequest, BatchCreateFederatedBundleRequest, BatchDeleteFederatedBundleRequest,
    BatchSetFederatedBundleRequest, BatchUpdateFederatedBundleRequest, CountBundlesRequest,
    GetBundleRequest, GetFederatedBundleRequest, ListFederatedBundlesRequest,
    batch_delete_federated_bundle_request::Mode, bundle_client::BundleClient,
};
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, GetEntryRequest, entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use support::{Harness, ca_cert, proto_entry};
use tonic::Code;

fn client(h: &Harness) -> BundleClient<tonic::transport::Channel> {
    BundleClient::new(h.channel.clone())
}

fn federated(td: &str) -> types::Bundle {
    types::Bundle {
        trust_domain: td.into(),
        x509_authorities: vec![types::X509Certificate {
            asn1: ca_cert(td),
            tainted: false,
        }],
        refresh_hint: 300,
        ..Default::default()
    }
}

fn codes<T>(results: &[T], status: impl Fn(&T) -> &types::Status) -> Vec<(Code, String)> {
    results
        .iter()
        .map(|r| {
            let s = status(r);
            (Code::from(s.code), s.message.clone())
        })
        .collect()
}

#[tokio::test]
async fn own_bundle_get_append_and_masks() {
    let h = Harness::start().await;
    let bundle = client(&h)
        .get_bundle(GetBundleRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bundle.trust_domain, "example.org");
    assert_eq!(
        bundle.x509_authorities.len(),
        1,
        "the CA root was published at start"
    );

    let extra = ca_cert("extra root");
    let appended = client(&h)
        .append_bundle(AppendBundleRequest {
            x509_authorities: vec![types::X509Certificate {
                asn1: extra.clone(),
                tainted: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(appended.x509_authorities.len(), 2);
    assert!(appended.sequence_number > bundle.sequence_number);

    let err = client(&h)
        .append_bundle(AppendBundleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "no authorities to append")
    );
    let err = client(&h)
        .append_bundle(AppendBundleRequest {
            x509_authorities: vec![types::X509Certificate {
                asn1: b"junk".to_vec(),
                tainted: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("failed to convert X.509 authority: "),
        "{}",
        err.message()
    );
    let err = client(&h)
        .append_bundle(AppendBundleRequest {
            jwt_authorities: vec![types::JwtKey::default()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "failed to convert JWT authority: missing key ID"
    );

    let masked = client(&h)
        .get_bundle(GetBundleRequest {
            output_mask: Some(types::BundleMask {
                refresh_hint: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(masked.x509_authorities.is_empty() && masked.sequence_number == 0);
    assert_eq!(masked.trust_domain, "example.org");
}

#[tokio::test]
async fn federated_bundles_batch_ops_with_per_item_status() {
    let h = Harness::start().await;
    let created = client(&h)
        .batch_create_federated_bundle(BatchCreateFederatedBundleRequest {
            bundle: vec![
                federated("one.org"),
                federated("example.org"),
                federated("Bad"),
                federated("one.org"),
                federated("two.org"),
            ],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(
        codes(&created, |r| r.status.as_ref().unwrap()),
        vec![
            (Code::Ok, "OK".into()),
            (
                Code::InvalidArgument,
                "creating a federated bundle for the server's own trust domain is not allowed".into()
            ),
            (
                Code::InvalidArgument,
                "trust domain argument is not valid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores".into()
            ),
            (Code::AlreadyExists, "bundle already exists".into()),
            (Code::Ok, "OK".into()),
        ]
    );
    assert_eq!(created[0].bundle.as_ref().unwrap().trust_domain, "one.org");

    let count = client(&h)
        .count_bundles(CountBundlesRequest {})
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 3, "ours plus two federated");
    let listed = client(&h)
        .list_federated_bundles(ListFederatedBundlesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bundles;
    let names: Vec<_> = listed.iter().map(|b| b.trust_domain.as_str()).collect();
    assert_eq!(
        names,
        vec!["one.org", "two.org"],
        "our own bundle is not federated"
    );
    let page = client(&h)
        .list_federated_bundles(ListFederatedBundlesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.bundles.len() <= 1 && !page.next_page_token.is_empty());

    let got = client(&h)
        .get_federated_bundle(GetFederatedBundleRequest {
            trust_domain: "one.org".into(),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.refresh_hint, 300);
    let err = client(&h)
        .get_federated_bundle(GetFederatedBundleRequest {
            trust_domain: "example.org".into(),
            output_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "getting a federated bundle for the server's own trust domain is not allowed"
        )
    );
    let err = client(&h)
        .get_federated_bundle(GetFederatedBundleRequest {
            trust_domain: "nowhere.org".into(),
            output_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "bundle not found")
    );

    // Update: masked refresh hint only; unknown bundles are NotFound.
    let mut change = federated("one.org");
    change.refresh_hint = 60;
    change.x509_authorities.clear();
    let updated = client(&h)
        .batch_update_federated_bundle(BatchUpdateFederatedBundleRequest {
            bundle: vec![change, federated("nowhere.org")],
            input_mask: Some(types::BundleMask {
                refresh_hint: true,
                ..Default::default()
            }),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(
        codes(&updated, |r| r.status.as_ref().unwrap()),
        vec![
            (Code::Ok, "OK".into()),
            (Code::NotFound, "bundle not found".into())
        ]
    );
    let one = updated[0].bundle.as_ref().unwrap();
    assert_eq!((one.refresh_hint, one.x509_authorities.len()), (60, 1));

    // Set creates or replaces.
    let set = client(&h)
        .batch_set_federated_bundle(BatchSetFederatedBundleRequest {
            bundle: vec![federated("three.org"), federated("example.org")],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(
        codes(&set, |r| r.status.as_ref().unwrap()),
        vec![
            (Code::Ok, "OK".into()),
            (
                Code::InvalidArgument,
                "setting a federated bundle for the server's own trust domain is not allowed"
                    .into()
            ),
        ]
    );
}

#[tokio::test]
async fn delete_modes_restrict_delete_and_dissociate() {
    let h = Harness::start().await;
    client(&h)
        .batch_create_federated_bundle(BatchCreateFederatedBundleRequest {
            bundle: vec![federated("a.org"), federated("b.org"), federated("c.org")],
            output_mask: None,
        })
        .await
        .unwrap();
    let mut entries = EntryClient::new(h.channel.clone());
    let mut ids = Vec::new();
    for (path, td) in [("/fa", "a.org"), ("/fb", "b.org"), ("/fc", "c.org")] {
        let mut e = proto_entry(path);
        e.federates_with = vec![td.into()];
        let result = entries
            .batch_create_entry(BatchCreateEntryRequest {
                entries: vec![e],
                output_mask: None,
            })
            .await
            .unwrap()
            .into_inner()
            .results
            .remove(0);
        assert_eq!(result.status.unwrap().code, 0);
        ids.push(result.entry.unwrap().id);
    }
    let delete = |tds: Vec<&str>, mode: Mode| {
        let mut c = client(&h);
        let tds = tds.into_iter().map(String::from).collect();
        async move {
            c.batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
                trust_domains: tds,
                mode: mode as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .results
        }
    };
    let restricted = delete(vec!["a.org", "example.org", "zzz.org"], Mode::Restrict).await;
    let statuses = codes(&restricted, |r| r.status.as_ref().unwrap());
    assert_eq!(statuses[0].0, Code::FailedPrecondition, "{:?}", statuses[0]);
    assert!(
        statuses[0]
            .1
            .starts_with("failed to delete federated bundle: ")
    );
    assert_eq!(
        statuses[1],
        (
            Code::InvalidArgument,
            "removing the bundle for the server trust domain is not allowed".into()
        )
    );
    assert_eq!(statuses[2], (Code::NotFound, "bundle not found".into()));
    assert_eq!(restricted[1].trust_domain, "example.org");

    let deleted = delete(vec!["b.org"], Mode::Delete).await;
    assert_eq!(deleted[0].status.as_ref().unwrap().code, 0);
    let gone = entries
        .get_entry(GetEntryRequest {
            id: ids[1].clone(),
            output_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        gone.code(),
        Code::NotFound,
        "DELETE removes federating entries"
    );

    let dissociated = delete(vec!["c.org"], Mode::Dissociate).await;
    assert_eq!(dissociated[0].status.as_ref().unwrap().code, 0);
    let kept = entries
        .get_entry(GetEntryRequest {
            id: ids[2].clone(),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        kept.federates_with.is_empty(),
        "DISSOCIATE keeps the entry, drops the TD"
    );

    let err = client(&h)
        .batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
            trust_domains: vec!["a.org".into()],
            mode: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("failed to parse deletion mode"));
}
