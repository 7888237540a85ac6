//! Per-test stores for both backends, and builders for test records.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, MySqlConnection, PgConnection};
use tempfile::TempDir;

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_server_datastore::{Error, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::ManualClock;

pub(crate) const PG_URL_VAR: &str = "SPIRE_TEST_POSTGRES_URL";
pub(crate) const MYSQL_URL_VAR: &str = "SPIRE_TEST_MYSQL_URL";

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// A fresh, migrated store, and what is needed to open more handles on the same database.
pub(crate) struct Harness {
    pub(crate) kind: Kind,
    pub(crate) store: SqlStore,
    pub(crate) clock: ManualClock,
    pub(crate) config: SqlConfig,
    _dir: Option<TempDir>,
    _database: Option<PgDatabase>,
    _mysql: Option<MysqlDatabase>,
}

/// Runs each named `async fn(Harness)` of the calling module on both backends, as
/// `<module>::sqlite::<name>`, `<module>::postgres::<name>` and `<module>::mysql::<name>`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(h) = crate::harness::Harness::new(crate::harness::Kind::Sqlite).await {
                        super::$name(h).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(h) = crate::harness::Harness::new(crate::harness::Kind::Postgres).await {
                        super::$name(h).await;
                    }
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(h) = crate::harness::Harness::new(crate::harness::Kind::Mysql).await {
                        super::$name(h).await;
                    }
                }
            )*
        }
    };
}

impl Harness {
    /// `None` when PostgreSQL or MySQL is not configured (a skip), unless `CI=true`, where
    /// that fails.
    pub(crate) async fn new(kind: Kind) -> Option<Self> {
        let clock = ManualClock::at_fixed_instant();
        let mut mysql = None;
        let (config, dir, database) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = SqlConfig::sqlite(dir.path().join("data/datastore.sqlite3"));
                (config, Some(dir), None)
            }
            Kind::Postgres => {
                let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!(
                            "{PG_URL_VAR} must be set when CI=true: the PostgreSQL tests may not be skipped"
                        );
                    }
                    eprintln!(
                        "skipping PostgreSQL test: {PG_URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                    );
                    return None;
                };
                let database = PgDatabase::create(&admin_url).await;
                let config = SqlConfig::postgres(database.url.clone());
                (config, None, Some(database))
            }
            Kind::Mysql => {
                let Ok(admin_url) = std::env::var(MYSQL_URL_VAR) else {
                    spire_test::skip(&format!(
                        "MySQL test: {MYSQL_URL_VAR} is not set (e.g. mysql://root@127.0.0.1:3306/test)"
                    ));
                    return None;
                };
                let database = MysqlDatabase::create(&admin_url).await;
                let config = SqlConfig::mysql(database.url());
                mysql = Some(database);
                (config, None, None)
            }
        };
        let store = SqlStore::open_with_clock(&config, Arc::new(clock.clone()))
            .await
            .expect("open store");
        Some(Self {
            kind,
            store,
            clock,
            config,
            _dir: dir,
            _database: database,
            _mysql: mysql,
        })
    }

    /// Another handle (its own pool) on the same database.
    pub(crate) async fn open_another(&self) -> SqlStore {
        SqlStore::open_with_clock(&self.config, Arc::new(self.clock.clone()))
            .await
            .expect("open second store")
    }

    /// Closes the store and opens the database again, as after a restart.
    pub(crate) async fn reopen(&mut self) {
        self.store.close().await;
        self.store = self.open_another().await;
    }

    /// A libpq DSN for the test database (PostgreSQL only).
    pub(crate) fn postgres_dsn(&self) -> Option<String> {
        self._database.as_ref().map(PgDatabase::dsn)
    }

    /// A Go MySQL driver DSN for the test database (MySQL only), as SPIRE's configuration
    /// spells it.
    pub(crate) fn mysql_dsn(&self) -> Option<String> {
        self._mysql.as_ref().map(MysqlDatabase::dsn)
    }

    /// An empty, unmigrated database (MySQL tests only), dropped with the guard.
    pub(crate) async fn fresh_mysql_database() -> (SqlConfig, MysqlDatabase) {
        let admin_url = std::env::var(MYSQL_URL_VAR).expect("MySQL tests run with the URL set");
        let database = MysqlDatabase::create(&admin_url).await;
        (SqlConfig::mysql(database.url()), database)
    }

    /// The injected clock, in unix seconds.
    pub(crate) fn clock_now(&self) -> i64 {
        spire_time::Clock::unix_seconds(&self.clock)
    }

    /// An empty, unmigrated database (PostgreSQL tests only), dropped with the guard.
    pub(crate) async fn fresh_postgres_database() -> (SqlConfig, PgDatabase) {
        let admin_url = std::env::var(PG_URL_VAR).expect("PostgreSQL tests run with the URL set");
        let database = PgDatabase::create(&admin_url).await;
        (SqlConfig::postgres(database.url.clone()), database)
    }
}

/// A uniquely named database, dropped (with its connections) when the test ends.
pub(crate) struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// The database's URL.
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    async fn create(admin_url: &str) -> Self {
        let name = format!("spire_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("connect to SPIRE_TEST_POSTGRES_URL");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    fn dsn(&self) -> String {
        let options = PgConnectOptions::from_str(&self.admin_url).expect("parse admin URL");
        let mut dsn = format!(
            "host={} port={} user='{}' dbname={} sslmode=disable",
            options.get_host(),
            options.get_port(),
            options.get_username(),
            self.name
        );
        if let Some(password) = userinfo_password(&self.admin_url) {
            dsn.push_str(&format!(
                " password='{}'",
                password.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        dsn
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await: do it on a thread with its own runtime.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    if let Err(e) = admin.execute(sqlx::AssertSqlSafe(statement)).await {
                        eprintln!("could not drop test database: {e}");
                    }
                    admin.close().await.ok();
                }
            });
        });
        done.join().ok();
    }
}

/// A uniquely named MySQL database, dropped when the test ends.
pub(crate) struct MysqlDatabase {
    admin_url: String,
    name: String,
}

impl MysqlDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("spire_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = MySqlConnection::connect(admin_url)
            .await
            .expect("connect to SPIRE_TEST_MYSQL_URL");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The database's `mysql://` URL.
    pub(crate) fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// `user[:password]@tcp(host:port)/name?parseTime=true`.
    fn dsn(&self) -> String {
        let options = MySqlConnectOptions::from_str(&self.admin_url).expect("parse admin URL");
        let password = userinfo_password(&self.admin_url)
            .map(|p| format!(":{}", percent_decode(&p)))
            .unwrap_or_default();
        format!(
            "{}{password}@tcp({}:{})/{}?parseTime=true",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            self.name
        )
    }
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {}", self.name);
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = MySqlConnection::connect(&admin_url).await {
                    if let Err(e) = admin.execute(sqlx::AssertSqlSafe(statement)).await {
                        eprintln!("could not drop test database: {e}");
                    }
                    admin.close().await.ok();
                }
            });
        });
        done.join().ok();
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `admin_url` with its database (path) replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn userinfo_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p.to_owned())
}

// --- builders ---

pub(crate) fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

pub(crate) fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

pub(crate) fn sels(items: &[&str]) -> SelectorSet {
    items.iter().map(|s| Selector::parse(s).unwrap()).collect()
}

/// An entry under the default agent with one selector per item.
pub(crate) fn entry(path: &str, selectors: &[&str]) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: id(&format!("spiffe://example.org{path}")),
        parent_id: id("spiffe://example.org/spire/agent/x509pop/node1"),
        selectors: sels(selectors),
        x509_svid_ttl: 3600,
        jwt_svid_ttl: 300,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at: 0,
        dns_names: Vec::new(),
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 1_767_225_600,
    }
}

/// Creates entries that must all succeed.
pub(crate) async fn create_ok(
    store: &SqlStore,
    entries: Vec<RegistrationEntry>,
) -> Vec<RegistrationEntry> {
    use spire_server_datastore::DataStore as _;
    store
        .create_registration_entries(entries)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// The message and the existing entry of an `AlreadyExists`.
pub(crate) fn already_exists(
    result: &Result<RegistrationEntry, Error>,
) -> (&str, Option<&RegistrationEntry>) {
    match result {
        Err(Error::AlreadyExists { message, existing }) => (message.as_str(), existing.as_deref()),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

#[test]
fn url_helpers() {
    assert_eq!(
        with_database(
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
            "t1"
        ),
        "postgres://postgres@127.0.0.1:5432/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "t2"), "postgres://u@h/t2");
    assert_eq!(
        userinfo_password("postgres://u:p%20w@h/db").as_deref(),
        Some("p%20w")
    );
    assert_eq!(userinfo_password("postgres://u@h/db"), None);
}
