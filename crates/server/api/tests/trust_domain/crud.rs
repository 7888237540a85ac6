//! Create, get, list, delete and the change feed.

use super::*;

#[tokio::test]
async fn create_get_list_and_masks() {
    let h = Harness::start().await;
    let b = bundle("b.org");
    let resp = client(&h)
        .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![
                web("a.org", "https://a.org/bundle"),
                spiffe(
                    "b.org",
                    "https://b.org:8443",
                    "spiffe://b.org/spire/server",
                    Some(b.clone()),
                ),
                spiffe("c.org", "https://c.org", "spiffe://a.org/endpoint", None),
            ],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        statuses(resp.results.iter().map(|r| r.status.clone())),
        vec![ok(), ok(), ok()]
    );
    // Echoed as created: the bundle only where one was sent.
    let echoed: Vec<FederationRelationship> = resp
        .results
        .into_iter()
        .map(|r| r.federation_relationship.unwrap())
        .collect();
    assert_eq!(echoed[0], web("a.org", "https://a.org/bundle"));
    assert_eq!(echoed[1].trust_domain_bundle.as_ref().unwrap(), &b);
    assert_eq!(echoed[2].trust_domain_bundle, None);

    // The https_spiffe bundle was stored as b.org's federated bundle.
    let stored = BundleClient::new(h.channel.clone())
        .get_federated_bundle(GetFederatedBundleRequest {
            trust_domain: "b.org".into(),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, b);

    // Get joins the stored bundle in.
    let got = get(&h, "b.org").await.unwrap();
    assert_eq!(
        got,
        spiffe(
            "b.org",
            "https://b.org:8443",
            "spiffe://b.org/spire/server",
            Some(b.clone())
        )
    );
    let masked = client(&h)
        .get_federation_relationship(GetFederationRelationshipRequest {
            trust_domain: "b.org".into(),
            output_mask: Some(FederationRelationshipMask {
                bundle_endpoint_url: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        masked,
        FederationRelationship {
            trust_domain: "b.org".into(),
            bundle_endpoint_url: "https://b.org:8443".into(),
            ..Default::default()
        }
    );

    // List: everything at once, or paged in trust-domain order.
    assert_eq!(
        list(&h, 0, "").await,
        (
            vec!["a.org".into(), "b.org".into(), "c.org".into()],
            String::new()
        )
    );
    let (first, token) = list(&h, 2, "").await;
    assert_eq!(first, ["a.org", "b.org"]);
    let (second, token) = list(&h, 2, &token).await;
    assert_eq!(second, ["c.org"]);
    assert!(token.is_empty() || list(&h, 2, &token).await.0.is_empty());
    let listed = client(&h)
        .list_federation_relationships(ListFederationRelationshipsRequest {
            output_mask: Some(FederationRelationshipMask::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.federation_relationships.iter().all(|f| {
        f.bundle_endpoint_url.is_empty()
            && f.bundle_endpoint_profile.is_none()
            && f.trust_domain_bundle.is_none()
    }));

    // Create with an all-false output mask answers the trust domain only.
    let resp = client(&h)
        .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![web("d.org", "https://d.org")],
            output_mask: Some(FederationRelationshipMask::default()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.results[0].federation_relationship,
        Some(FederationRelationship {
            trust_domain: "d.org".into(),
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn create_refuses_bad_items_and_keeps_the_good_ones() {
    let h = Harness::start().await;
    let mut no_profile = web("n.org", "https://n.org");
    no_profile.bundle_endpoint_profile = None;
    let results = create(
        &h,
        vec![
            web("", "https://x.org"),
            web("no a td", "https://x.org"),
            web("good1.org", "https://good1.org/bundle"),
            web("example.org", "https://example.org"),
            web("x.org", "http://x.org"),
            web("x.org", "https:///path"),
            web("x.org", "https://user:pw@x.org"),
            web("x.org", "https://x.org:port"),
            spiffe("x.org", "https://x.org", "x.org/server", None),
            spiffe(
                "x.org",
                "https://x.org",
                "spiffe://x.org/server",
                Some(bundle("y.org")),
            ),
            no_profile,
            web("good2.org", "https://good2.org"),
            web("good1.org", "https://elsewhere.org"),
        ],
    )
    .await;
    let convert = |m: &str| invalid(&format!("failed to convert federation relationship: {m}"));
    assert_eq!(
        results,
        vec![
            convert("failed to parse trust domain: trust domain is missing"),
            convert(
                "failed to parse trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
            ),
            ok(),
            invalid("unable to create federation relationship for server trust domain"),
            convert("bundle endpoint URL must use the https scheme"),
            convert("bundle endpoint URL must specify the host"),
            convert("bundle endpoint URL must not contain user info"),
            convert(
                "failed to parse bundle endpoint URL: parse \"https://x.org:port\": invalid port \":port\" after host"
            ),
            convert("failed to parse endpoint SPIFFE ID: scheme is missing or invalid"),
            convert(
                "trust domain bundle (\"y.org\") must match the trust domain of the federation relationship (\"x.org\")"
            ),
            convert("unsupported bundle endpoint profile type: <nil>"),
            ok(),
            (
                Code::Internal,
                "failed to create federation relationship: federation relationship already exists"
                    .into()
            ),
        ]
    );
    assert_eq!(
        list(&h, 0, "").await.0,
        ["good1.org", "good2.org"],
        "a refused item never drops the others"
    );
    assert_eq!(
        get(&h, "good1.org").await.unwrap().bundle_endpoint_url,
        "https://good1.org/bundle",
        "the duplicate did not overwrite"
    );
}

#[tokio::test]
async fn get_errors() {
    let h = Harness::start().await;
    let err = get(&h, "missing.org").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "federation relationship does not exist")
    );
    let err = get(&h, "").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "failed to parse trust domain: trust domain is missing"
        )
    );
    let err = get(&h, "https://foo.test").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "failed to parse trust domain: scheme is missing or invalid"
        )
    );
}

#[tokio::test]
async fn delete_per_item_and_the_bundle_stays() {
    let h = Harness::start().await;
    let b = bundle("bar.org");
    create(
        &h,
        vec![
            web("foo.org", "https://foo.org"),
            spiffe(
                "bar.org",
                "https://bar.org",
                "spiffe://bar.org/e",
                Some(b.clone()),
            ),
            web("baz.org", "https://baz.org"),
        ],
    )
    .await;
    let resp = client(&h)
        .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest {
            trust_domains: vec![
                "bar.org".into(),
                "not.found".into(),
                String::new(),
                "https://foo.test".into(),
                "spiffe://baz.org".into(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let result = |code: Code, message: &str, td: &str| delete::Result {
        status: Some(types::Status {
            code: code as i32,
            message: message.into(),
        }),
        trust_domain: td.into(),
    };
    assert_eq!(
        resp.results,
        vec![
            result(Code::Ok, "OK", "bar.org"),
            result(
                Code::NotFound,
                "federation relationship not found",
                "not.found"
            ),
            result(Code::InvalidArgument, "missing trust domain", ""),
            result(
                Code::InvalidArgument,
                "failed to parse trust domain: scheme is missing or invalid",
                "https://foo.test"
            ),
            result(Code::Ok, "OK", "baz.org"),
        ]
    );
    assert_eq!(list(&h, 0, "").await.0, ["foo.org"]);
    let kept = BundleClient::new(h.channel.clone())
        .get_federated_bundle(GetFederatedBundleRequest {
            trust_domain: "bar.org".into(),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, b, "deleting a relationship keeps its bundle");
}

#[tokio::test]
async fn writes_go_through_the_change_feed() {
    let h = Harness::start().await;
    h.refresh_entries().await;
    let mut feed = h.ctx.entries.subscribe();
    let before = *feed.borrow();
    create(
        &h,
        vec![spiffe(
            "bar.org",
            "https://bar.org",
            "spiffe://bar.org/e",
            Some(bundle("bar.org")),
        )],
    )
    .await;
    let after = *feed
        .wait_for(|s| s.bundles_revision > before.bundles_revision)
        .await
        .unwrap();
    assert!(after.revision > before.revision);
    assert!(h.ctx.entries.bundle_revision("bar.org") > 0);
}
