//! BatchUpdate with and without input masks.

use super::*;

#[tokio::test]
async fn update_with_and_without_masks() {
    let h = Harness::start().await;
    let b1 = bundle("bar.org");
    let results = create(
        &h,
        vec![
            web("foo.org", "https://foo.org/path"),
            spiffe(
                "bar.org",
                "https://bar.org/path",
                "spiffe://bar.org/endpoint",
                Some(b1.clone()),
            ),
        ],
    )
    .await;
    assert_eq!(results, vec![ok(), ok()]);

    // Without a mask everything is replaced; an unknown relationship fails alone. The store
    // gives a changed bundle a sequence number above the stored one.
    let b2 = bundle("bar.org");
    let b2_stored = types::Bundle {
        sequence_number: b1.sequence_number + 1,
        ..b2.clone()
    };
    let results = update(
        &h,
        vec![
            web("foo.org", "https://foo.org/newpath"),
            web("not.found", "https://not.found/newpath"),
            spiffe(
                "bar.org",
                "https://bar.org/newpath",
                "spiffe://bar.org/updated",
                Some(b2.clone()),
            ),
        ],
        None,
    )
    .await;
    assert_eq!(
        results,
        vec![
            (Code::Ok, "OK".into(), Some(web("foo.org", "https://foo.org/newpath"))),
            (
                Code::Internal,
                "failed to update federation relationship: unable to fetch federation relationship: record not found".into(),
                None
            ),
            (
                Code::Ok,
                "OK".into(),
                Some(spiffe(
                    "bar.org",
                    "https://bar.org/newpath",
                    "spiffe://bar.org/updated",
                    Some(b2_stored.clone())
                ))
            ),
        ]
    );
    assert_eq!(list(&h, 0, "").await.0, ["bar.org", "foo.org"]);

    // https_spiffe → https_web keeps the stored bundle.
    let results = update(&h, vec![web("bar.org", "https://bar.org/web")], None).await;
    let mut expected = web("bar.org", "https://bar.org/web");
    expected.trust_domain_bundle = Some(b2_stored.clone());
    assert_eq!(
        results,
        vec![(Code::Ok, "OK".into(), Some(expected.clone()))]
    );

    // An all-false input mask changes nothing (the item is still fully validated).
    let results = update(
        &h,
        vec![spiffe(
            "bar.org",
            "https://bar.org/ignored",
            "spiffe://bar.org/ignored",
            Some(bundle("bar.org")),
        )],
        Some(FederationRelationshipMask::default()),
    )
    .await;
    assert_eq!(
        results,
        vec![(Code::Ok, "OK".into(), Some(expected.clone()))]
    );
    let results = update(
        &h,
        vec![web("bar.org", "ftp://bar.org")],
        Some(FederationRelationshipMask::default()),
    )
    .await;
    assert_eq!(
        results[0].1,
        "failed to convert federation relationship: bundle endpoint URL must use the https scheme"
    );

    // Only the URL.
    let results = update(
        &h,
        vec![spiffe(
            "bar.org",
            "https://bar.org/url-only",
            "spiffe://bar.org/x",
            None,
        )],
        Some(FederationRelationshipMask {
            bundle_endpoint_url: true,
            ..Default::default()
        }),
    )
    .await;
    expected.bundle_endpoint_url = "https://bar.org/url-only".into();
    assert_eq!(
        results,
        vec![(Code::Ok, "OK".into(), Some(expected.clone()))]
    );

    // Only the bundle: stored as the federated bundle.
    let b3 = bundle("bar.org");
    let mut bundle_only = web("bar.org", "https://ignored.org");
    bundle_only.trust_domain_bundle = Some(b3.clone());
    let results = update(
        &h,
        vec![bundle_only],
        Some(FederationRelationshipMask {
            trust_domain_bundle: true,
            ..Default::default()
        }),
    )
    .await;
    let stored = results[0].2.clone().unwrap().trust_domain_bundle.unwrap();
    assert_eq!(stored.x509_authorities, b3.x509_authorities);
    assert!(
        stored.sequence_number > b2_stored.sequence_number,
        "a changed bundle gets a newer sequence"
    );

    // Bad items are refused with SPIRE's conversion messages.
    let results = update(
        &h,
        vec![spiffe(
            "foo.org",
            "https://foo.org/newpath",
            "spiffe://foo.org/endpoint",
            Some(types::Bundle {
                trust_domain: "baz.org".into(),
                ..Default::default()
            }),
        )],
        None,
    )
    .await;
    assert_eq!(
        results,
        vec![(
            Code::InvalidArgument,
            "failed to convert federation relationship: trust domain bundle (\"baz.org\") must match the trust domain of the federation relationship (\"foo.org\")".into(),
            None
        )]
    );
}
