//! RefreshBundle with and without a refresher, and the change announcements.

use super::*;

/// Answers like SPIRE's test refresher: good.test refreshes, bad.test fails, others are
/// unknown. Counts the change announcements.
#[derive(Debug, Default)]
struct FakeRefresher {
    changes: AtomicUsize,
}

#[tonic::async_trait]
impl BundleRefresher for FakeRefresher {
    async fn refresh_bundle(&self, trust_domain: &TrustDomain) -> Result<bool, String> {
        match trust_domain.name() {
            "good.test" => Ok(true),
            "bad.test" => Err("oh no".into()),
            _ => Ok(false),
        }
    }

    fn relationships_changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

async fn refresh(h: &Harness, td: &str) -> (Code, String) {
    match client(h)
        .refresh_bundle(RefreshBundleRequest {
            trust_domain: td.into(),
        })
        .await
    {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::test]
async fn refresh_bundle_with_a_refresher() {
    let refresher = Arc::new(FakeRefresher::default());
    let plugged = refresher.clone();
    let h = Harness::start_with(move |ctx| ctx.bundle_refresher = Some(plugged)).await;
    assert_eq!(refresh(&h, "good.test").await, (Code::Ok, String::new()));
    assert_eq!(
        refresh(&h, "bad.test").await,
        (Code::Internal, "failed to refresh bundle: oh no".into())
    );
    assert_eq!(
        refresh(&h, "unknown.test").await,
        (
            Code::NotFound,
            "no relationship with trust domain \"unknown.test\"".into()
        )
    );
    assert_eq!(
        refresh(&h, "http://malformed.test").await,
        invalid("failed to parse trust domain: scheme is missing or invalid")
    );

    // Announced once per batch that changed something, never for a batch that did not.
    create(&h, vec![web("example.org", "https://example.org")]).await;
    assert_eq!(refresher.changes.load(Ordering::SeqCst), 0);
    create(
        &h,
        vec![web("a.org", "https://a.org"), web("b.org", "https://b.org")],
    )
    .await;
    assert_eq!(refresher.changes.load(Ordering::SeqCst), 1);
    update(&h, vec![web("a.org", "https://a.org/x")], None).await;
    assert_eq!(refresher.changes.load(Ordering::SeqCst), 2);
    client(&h)
        .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest {
            trust_domains: vec!["zzz.org".into()],
        })
        .await
        .unwrap();
    assert_eq!(refresher.changes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refresh_bundle_without_a_refresher() {
    let h = Harness::start().await;
    create(&h, vec![web("a.org", "https://a.org")]).await;
    assert_eq!(
        refresh(&h, "a.org").await,
        (
            Code::NotFound,
            "no relationship with trust domain \"a.org\"".into()
        )
    );
    assert_eq!(
        refresh(&h, "").await,
        invalid("failed to parse trust domain: trust domain is missing")
    );
}
