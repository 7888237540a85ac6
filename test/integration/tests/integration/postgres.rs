//! Two servers on one PostgreSQL database: an entry written through one reaches, by push, a
//! workload whose agent is attached to the other.

use sqlx::{Connection as _, Executor as _, PgConnection};

use spire_integration_tests::{
    ServerBuilder, entry, eventually, init_logging, next_matching, uid_selector,
};

use crate::common::{assert_verifies, fetch_context_eventually, ids};

const URL_VAR: &str = "SPIRE_TEST_POSTGRES_URL";
const WORKLOAD: &str = "spiffe://example.org/workload";

/// A database with a random name, dropped (with its connections) by [`TempDatabase::drop`].
pub(crate) struct TempDatabase {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl TempDatabase {
    /// `None` (after a skip that fails under CI) when no server is configured.
    pub(crate) async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var(URL_VAR) else {
            spire_test::skip(&format!("{URL_VAR} is not set (no PostgreSQL server)"));
            return None;
        };
        let name = format!("spire_it_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.ok();
        Some(Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    pub(crate) async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap();
        admin.close().await.ok();
    }
}

/// `admin_url` with its database (the path) replaced by `name`, query kept.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

#[test]
fn database_names_replace_the_path_only() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_written_through_one_server_is_pushed_by_the_other() {
    init_logging();
    let Some(database) = TempDatabase::create().await else {
        return;
    };
    // Each server has its own CA keys; both roots end up in the shared bundle.
    let server_a = ServerBuilder::new()
        .postgres(&database.url)
        .start()
        .await
        .unwrap();
    let server_b = ServerBuilder::new()
        .postgres(&database.url)
        .start()
        .await
        .unwrap();
    let roots = server_b.bundle_roots().await.unwrap();
    assert_eq!(roots.len(), 2, "one root per server in the shared bundle");
    assert_eq!(server_a.bundle_roots().await.unwrap(), roots);

    // The agent polls only hourly: only a push from server B can deliver in time.
    let token = server_b.create_join_token().await.unwrap();
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    server_a
        .create_entry(entry(
            "spiffe://example.org/first",
            &agent_id,
            &[&uid_selector()],
        ))
        .await
        .unwrap();
    let agent = server_b
        .agent()
        .await
        .unwrap()
        .join_token(&token)
        .agent_extra("experimental { sync_interval = \"1h\" }")
        .start()
        .await
        .unwrap();
    let client = agent.workload().await.unwrap();
    fetch_context_eventually(&client).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = next_matching(&mut stream, "the first message", |_| true)
        .await
        .unwrap();
    assert_eq!(ids(&first), ["spiffe://example.org/first"]);

    // Written through A; B follows the shared change events and pushes to its agent.
    server_a
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let pushed = next_matching(&mut stream, "the entry written through A", |c| {
        ids(c).iter().any(|id| id == WORKLOAD)
    })
    .await
    .unwrap();
    assert_eq!(pushed.svids().len(), 2);
    assert_verifies(&pushed, "example.org");
    // The agent is B's: its node record is visible through A as well (one database).
    eventually("the agent through server A", || async {
        server_a.find_agent(&agent_id).await.unwrap()
    })
    .await
    .unwrap();

    drop(stream);
    agent.stop().await.unwrap();
    server_b.stop().await.unwrap();
    server_a.stop().await.unwrap();
    database.drop().await;
}
