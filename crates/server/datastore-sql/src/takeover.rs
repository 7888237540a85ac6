//! Taking over a database that SPIRE's own server wrote.
//!
//! A database is recognized before anything is written to it:
//!
//! - `_sqlx_migrations` present: it is ours; migrations bring it up to date.
//! - no tables at all: a new database; migrations create our schema.
//! - SPIRE's `migrations (version, code_version)` table at a schema version we know
//!   ([`SPIRE_SCHEMAS`]) and every SPIRE table we read with the columns we read: a SPIRE
//!   database. Our tables are created beside SPIRE's (ours all carry the `spire_rs_` prefix)
//!   and SPIRE's rows are copied into them, in one transaction with the migrations. SPIRE's
//!   tables are left as they were, so the SPIRE binary can be started on the database again.
//! - anything else (another application's tables, a SPIRE schema newer or older than we
//!   know): refused, naming what was found.
//!
//! Our first migration still creates the unprefixed names that SPIRE also uses
//! (`registered_entries`, `bundles`, `join_tokens`, `ca_journals`) and the second renames
//! them; within the takeover transaction SPIRE's four tables step aside under a temporary name
//! while the migrations run, and come back under their own before anything is copied.

use std::collections::HashMap;
use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor as _};

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_server_datastore::{Aggregate, ChangeOp, RegistrationEntry};
use spire_svid::{Bundle, JwtAuthority, X509Authority};

use crate::db::{Backend, Sql, WriteTx, get_i64, get_string};
use crate::{Error, migrate};

/// The SPIRE schema versions whose tables we know how to read (SPIRE 1.8 wrote 23; 24 added
/// the agent version to attested nodes).
pub const SPIRE_SCHEMAS: std::ops::RangeInclusive<i64> = 23..=24;

/// SPIRE's tables whose names our first migration also uses.
const SHARED_NAMES: &[&str] = &[
    "registered_entries",
    "bundles",
    "join_tokens",
    "ca_journals",
];
const ASIDE_PREFIX: &str = "spire_takeover_aside_";

/// What opening a database does to it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaPlan {
    /// An empty database: our schema is created.
    Create,
    /// Our schema, migrated forward if needed.
    Ours,
    /// A SPIRE database: our schema is created beside SPIRE's and SPIRE's rows are copied in.
    TakeOver(SpireDatabase),
}

/// A SPIRE database found where the server was pointed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpireDatabase {
    /// SPIRE's schema version (its `migrations.version`).
    pub schema_version: i64,
    /// The SPIRE release that last migrated it (its `migrations.code_version`).
    pub code_version: String,
    /// How many rows of each kind it holds.
    pub counts: TakeoverCounts,
}

/// Rows of each kind in a SPIRE database (what a takeover copies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TakeoverCounts {
    pub bundles: u64,
    pub entries: u64,
    pub attested_nodes: u64,
    pub node_selectors: u64,
    pub join_tokens: u64,
    pub federation_relationships: u64,
    pub ca_journals: u64,
}

impl fmt::Display for TakeoverCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bundles, {} registration entries, {} attested nodes ({} node selectors), {} join tokens, {} federation relationships, {} CA journals",
            self.bundles,
            self.entries,
            self.attested_nodes,
            self.node_selectors,
            self.join_tokens,
            self.federation_relationships,
            self.ca_journals
        )
    }
}

impl fmt::Display for SchemaPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create => f.write_str("create the spire-rs schema in an empty database"),
            Self::Ours => f.write_str("open the spire-rs schema (migrating it forward if needed)"),
            Self::TakeOver(db) => write!(
                f,
                "take over the SPIRE database (schema version {}, written by SPIRE {}): copy {} into the spire_rs_ tables, leaving SPIRE's tables untouched",
                db.schema_version, db.code_version, db.counts
            ),
        }
    }
}

/// Looks at the database without writing to it.
pub(crate) async fn inspect(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<SchemaPlan, Error> {
    let tables = table_names(conn, backend).await?;
    if tables.iter().any(|t| t == "_sqlx_migrations") {
        return Ok(SchemaPlan::Ours);
    }
    if tables.is_empty() {
        return Ok(SchemaPlan::Create);
    }
    if !tables.iter().any(|t| t == "migrations") {
        return Err(Error::NotSpire(format!(
            "it holds tables ({}) but neither the spire-rs schema nor SPIRE's `migrations` table",
            preview(&tables)
        )));
    }
    if backend == Backend::Mysql {
        return Err(Error::SpireSchema(
            "it holds a SPIRE datastore (its `migrations` table) on MySQL, and taking over a SPIRE \
             MySQL database is not supported (only SQLite and PostgreSQL ones); point the server at \
             an empty database"
                .to_owned(),
        ));
    }
    let row = conn
        .fetch_optional("SELECT version, code_version FROM migrations ORDER BY id DESC")
        .await
        .map_err(|e| Error::NotSpire(format!("its `migrations` table is not SPIRE's: {e}")))?
        .ok_or_else(|| Error::NotSpire("its `migrations` table is empty".to_owned()))?;
    let schema_version = get_i64(&row, "version")
        .map_err(|e| Error::NotSpire(format!("migrations.version: {e}")))?;
    let code_version = sqlx::Row::try_get::<Option<String>, _>(&row, "code_version")
        .ok()
        .flatten()
        .unwrap_or_default();
    if schema_version > *SPIRE_SCHEMAS.end() {
        return Err(Error::SpireSchema(format!(
            "schema version {schema_version} (SPIRE {code_version}) is newer than the versions this server can take over ({}–{})",
            SPIRE_SCHEMAS.start(),
            SPIRE_SCHEMAS.end()
        )));
    }
    if schema_version < *SPIRE_SCHEMAS.start() {
        return Err(Error::SpireSchema(format!(
            "schema version {schema_version} (SPIRE {code_version}) is older than the versions this server can take over ({}–{}); start a SPIRE release that migrates it to {} first",
            SPIRE_SCHEMAS.start(),
            SPIRE_SCHEMAS.end(),
            SPIRE_SCHEMAS.end()
        )));
    }
    let mut n = Vec::new();
    for query in [
        &ENTRIES,
        &SELECTORS,
        &DNS_NAMES,
        &FEDERATED_WITH,
        &BUNDLES,
        &NODES,
        &NODE_SELECTORS,
        &JOIN_TOKENS,
        &RELATIONSHIPS,
        &CA_JOURNALS,
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM ({}) t", query.render(backend));
        let row = conn
            .fetch_one(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(|e| Error::NotSpire(format!("SPIRE's table {}: {e}", query.table)))?;
        n.push(u64::try_from(get_i64(&row, "n").unwrap_or_default()).unwrap_or_default());
    }
    let counts = TakeoverCounts {
        entries: n[0],
        bundles: n[4],
        attested_nodes: n[5],
        node_selectors: n[6],
        join_tokens: n[7],
        federation_relationships: n[8],
        ca_journals: n[9],
    };
    Ok(SchemaPlan::TakeOver(SpireDatabase {
        schema_version,
        code_version,
        counts,
    }))
}

/// Migrates, or takes over a SPIRE database, as `inspect` found; returns what it did.
pub(crate) async fn migrate_or_take_over(
    pool: &sqlx::AnyPool,
    backend: Backend,
    now: i64,
) -> Result<SchemaPlan, Error> {
    let plan = {
        let mut conn = pool.acquire().await.map_err(Error::Connect)?;
        inspect(&mut conn, backend).await?
    };
    match &plan {
        SchemaPlan::Create | SchemaPlan::Ours => migrate::run(pool, backend).await?,
        SchemaPlan::TakeOver(_) => take_over(pool, backend, now).await?,
    }
    Ok(plan)
}

async fn take_over(pool: &sqlx::AnyPool, backend: Backend, now: i64) -> Result<(), Error> {
    let failed = |e: sqlx::Error| Error::TakeOver(e.to_string());
    let tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres | Backend::Mysql => pool.begin().await,
    }
    .map_err(Error::Connect)?;
    let mut tx = WriteTx::new(tx, now, None);
    if backend == Backend::Postgres {
        // Servers starting together on one database: the first takes it over, the others
        // find our schema once it commits.
        tx.conn()
            .execute("SELECT pg_advisory_xact_lock(7370697265)")
            .await
            .map_err(failed)?;
    }
    // Another server may have taken it over while this one waited for the lock.
    match inspect(tx.conn(), backend).await? {
        SchemaPlan::TakeOver(_) => {}
        _ => {
            drop(tx);
            return migrate::run(pool, backend).await;
        }
    }
    for name in SHARED_NAMES {
        let sql = format!("ALTER TABLE {name} RENAME TO {ASIDE_PREFIX}{name}");
        tx.conn()
            .execute(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(failed)?;
    }
    migrate::run_on(tx.conn(), backend).await?;
    for name in SHARED_NAMES {
        let sql = format!("ALTER TABLE {ASIDE_PREFIX}{name} RENAME TO {name}");
        tx.conn()
            .execute(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(failed)?;
    }
    copy(&mut tx, backend)
        .await
        .map_err(|e| Error::TakeOver(e.to_string()))?;
    tx.commit()
        .await
        .map_err(|e| Error::TakeOver(e.to_string()))
}

/// A read of one SPIRE table, with its time and boolean columns rendered per backend.
struct Query {
    table: &'static str,
    sql: &'static str,
}

impl Query {
    /// `{t:col}` → unix seconds of a timestamp column, `{b:col}` → 0/1 of a boolean column.
    fn render(&self, backend: Backend) -> String {
        let mut out = String::new();
        let mut rest = self.sql;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').unwrap_or(rest.len() - start);
            let (kind, col) = rest[start + 1..end].split_once(':').unwrap_or(("", ""));
            match (kind, backend) {
                ("t", Backend::Sqlite) => out.push_str(&format!(
                    "COALESCE(CAST(strftime('%s', {col}) AS INTEGER), 0)"
                )),
                ("t", Backend::Mysql) => out.push_str(&format!(
                    "COALESCE(CAST(UNIX_TIMESTAMP({col}) AS SIGNED), 0)"
                )),
                ("t", Backend::Postgres) => out.push_str(&format!(
                    "COALESCE(CAST(FLOOR(EXTRACT(EPOCH FROM {col})) AS BIGINT), 0)"
                )),
                _ => out.push_str(&format!("(CASE WHEN {col} THEN 1 ELSE 0 END)")),
            }
            rest = &rest[(end + 1).min(rest.len())..];
        }
        out.push_str(rest);
        out
    }

    async fn fetch(&self, tx: &mut WriteTx<'_>, backend: Backend) -> Result<Vec<AnyRow>, String> {
        tx.conn()
            .fetch_all(sqlx::AssertSqlSafe(self.render(backend)))
            .await
            .map_err(|e| format!("reading SPIRE's {}: {e}", self.table))
    }
}

const ENTRIES: Query = Query {
    table: "registered_entries",
    sql: "SELECT id, COALESCE(entry_id, '') AS entry_id, COALESCE(spiffe_id, '') AS spiffe_id, \
          COALESCE(parent_id, '') AS parent_id, COALESCE(ttl, 0) AS ttl, {b:admin} AS admin, \
          {b:downstream} AS downstream, COALESCE(expiry, 0) AS expiry, \
          COALESCE(revision_number, 0) AS revision_number, {b:store_svid} AS store_svid, \
          COALESCE(hint, '') AS hint, COALESCE(jwt_svid_ttl, 0) AS jwt_svid_ttl, \
          {t:created_at} AS created_at FROM registered_entries",
};
const SELECTORS: Query = Query {
    table: "selectors",
    sql: "SELECT registered_entry_id, COALESCE(type, '') AS type, COALESCE(value, '') AS value \
          FROM selectors",
};
const DNS_NAMES: Query = Query {
    table: "dns_names",
    sql: "SELECT registered_entry_id, COALESCE(value, '') AS value FROM dns_names",
};
const FEDERATED_WITH: Query = Query {
    table: "federated_registration_entries",
    sql: "SELECT f.registered_entry_id, b.trust_domain FROM federated_registration_entries f \
          JOIN bundles b ON b.id = f.bundle_id",
};
const BUNDLES: Query = Query {
    table: "bundles",
    sql: "SELECT trust_domain, data FROM bundles",
};
const NODES: Query = Query {
    table: "attested_node_entries",
    sql: "SELECT COALESCE(spiffe_id, '') AS spiffe_id, COALESCE(data_type, '') AS data_type, \
          COALESCE(serial_number, '') AS serial_number, {t:expires_at} AS expires_at, \
          COALESCE(new_serial_number, '') AS new_serial_number, \
          {t:new_expires_at} AS new_expires_at, {b:can_reattest} AS can_reattest \
          FROM attested_node_entries",
};
const NODE_SELECTORS: Query = Query {
    table: "node_resolver_map_entries",
    sql: "SELECT COALESCE(spiffe_id, '') AS spiffe_id, COALESCE(type, '') AS type, \
          COALESCE(value, '') AS value FROM node_resolver_map_entries",
};
const JOIN_TOKENS: Query = Query {
    table: "join_tokens",
    sql: "SELECT COALESCE(token, '') AS token, COALESCE(expiry, 0) AS expiry FROM join_tokens",
};
const RELATIONSHIPS: Query = Query {
    table: "federated_trust_domains",
    sql: "SELECT trust_domain, COALESCE(bundle_endpoint_url, '') AS bundle_endpoint_url, \
          COALESCE(bundle_endpoint_profile, '') AS bundle_endpoint_profile, \
          COALESCE(endpoint_spiffe_id, '') AS endpoint_spiffe_id FROM federated_trust_domains",
};
const CA_JOURNALS: Query = Query {
    table: "ca_journals",
    sql: "SELECT id, data, COALESCE(active_x509_authority_id, '') AS active_x509_authority_id, \
          {t:updated_at} AS updated_at FROM ca_journals ORDER BY id",
};

/// Copies every SPIRE row into our tables.
async fn copy(tx: &mut WriteTx<'_>, backend: Backend) -> Result<(), String> {
    // Bundles first: entries name their federated trust domains through bundle rows.
    for row in BUNDLES.fetch(tx, backend).await? {
        let name = str_col(&row, "trust_domain")?;
        let bundle = decode_bundle(&bytes_col(&row, "data")?)
            .map_err(|e| format!("bundle of {name:?}: {e}"))?;
        let key = bundle.trust_domain.name().to_owned();
        let data = serde_json::to_string(&bundle).map_err(|e| e.to_string())?;
        let mut sql = Sql::new("INSERT INTO spire_rs_bundles (trust_domain, data) VALUES (");
        sql.bind(key.clone()).push(", ").bind(data).push(")");
        execute(tx, sql).await?;
        tx.record(Aggregate::Bundle, key, ChangeOp::Created);
    }

    let mut selectors: HashMap<i64, SelectorSet> = HashMap::new();
    for row in SELECTORS.fetch(tx, backend).await? {
        let id = int_col(&row, "registered_entry_id")?;
        let selector = Selector::new(&str_col(&row, "type")?, &str_col(&row, "value")?)
            .map_err(|e| format!("selector of entry row {id}: {e}"))?;
        selectors.entry(id).or_default().insert(selector);
    }
    let mut dns_names: HashMap<i64, Vec<String>> = HashMap::new();
    for row in DNS_NAMES.fetch(tx, backend).await? {
        let id = int_col(&row, "registered_entry_id")?;
        dns_names
            .entry(id)
            .or_default()
            .push(str_col(&row, "value")?);
    }
    let mut federates_with: HashMap<i64, Vec<TrustDomain>> = HashMap::new();
    for row in FEDERATED_WITH.fetch(tx, backend).await? {
        let id = int_col(&row, "registered_entry_id")?;
        let name = str_col(&row, "trust_domain")?;
        let td = TrustDomain::parse(&name)
            .map_err(|e| format!("federated trust domain {name:?} of entry row {id}: {e}"))?;
        federates_with.entry(id).or_default().push(td);
    }
    let mut entries = Vec::new();
    for row in ENTRIES.fetch(tx, backend).await? {
        let id = int_col(&row, "id")?;
        let entry_id = str_col(&row, "entry_id")?;
        let what = |field: &str, e: &dyn fmt::Display| format!("entry {entry_id:?}: {field}: {e}");
        let entry = RegistrationEntry {
            spiffe_id: SpiffeId::parse(&str_col(&row, "spiffe_id")?)
                .map_err(|e| what("spiffe_id", &e))?,
            parent_id: SpiffeId::parse(&str_col(&row, "parent_id")?)
                .map_err(|e| what("parent_id", &e))?,
            selectors: selectors.remove(&id).unwrap_or_default(),
            x509_svid_ttl: i32::try_from(int_col(&row, "ttl")?).map_err(|e| what("ttl", &e))?,
            jwt_svid_ttl: i32::try_from(int_col(&row, "jwt_svid_ttl")?)
                .map_err(|e| what("jwt_svid_ttl", &e))?,
            federates_with: federates_with.remove(&id).unwrap_or_default(),
            admin: int_col(&row, "admin")? != 0,
            downstream: int_col(&row, "downstream")? != 0,
            expires_at: int_col(&row, "expiry")?,
            dns_names: dns_names.remove(&id).unwrap_or_default(),
            revision_number: int_col(&row, "revision_number")?,
            store_svid: int_col(&row, "store_svid")? != 0,
            hint: str_col(&row, "hint")?,
            created_at: int_col(&row, "created_at")?,
            id: entry_id.clone(),
        };
        entries.push(entry);
    }
    crate::entries::import_entries(tx, entries)
        .await
        .map_err(|e| e.to_string())?;

    let mut node_selectors: HashMap<String, SelectorSet> = HashMap::new();
    for row in NODE_SELECTORS.fetch(tx, backend).await? {
        let id = str_col(&row, "spiffe_id")?;
        let selector = Selector::new(&str_col(&row, "type")?, &str_col(&row, "value")?)
            .map_err(|e| format!("selector of node {id:?}: {e}"))?;
        node_selectors.entry(id).or_default().insert(selector);
    }
    for (id, set) in &node_selectors {
        crate::nodes::replace_selectors(tx.conn(), id, set)
            .await
            .map_err(|e| e.to_string())?;
    }
    for row in NODES.fetch(tx, backend).await? {
        let id = str_col(&row, "spiffe_id")?;
        let mut sql = Sql::new(
            "INSERT INTO spire_rs_attested_nodes (spiffe_id, attestation_type, cert_serial_number, \
             cert_not_after, new_cert_serial_number, new_cert_not_after, can_reattest) VALUES (",
        );
        sql.bind(id.clone()).push(", ");
        sql.bind(str_col(&row, "data_type")?).push(", ");
        sql.bind(str_col(&row, "serial_number")?).push(", ");
        sql.bind(int_col(&row, "expires_at")?).push(", ");
        sql.bind(str_col(&row, "new_serial_number")?).push(", ");
        sql.bind(int_col(&row, "new_expires_at")?).push(", ");
        sql.bind(int_col(&row, "can_reattest")? != 0).push(")");
        execute(tx, sql).await?;
        tx.record(Aggregate::AttestedNode, id, ChangeOp::Created);
    }

    for row in JOIN_TOKENS.fetch(tx, backend).await? {
        let mut sql = Sql::new("INSERT INTO spire_rs_join_tokens (token, expires_at) VALUES (");
        sql.bind(str_col(&row, "token")?).push(", ");
        sql.bind(int_col(&row, "expiry")?).push(")");
        execute(tx, sql).await?;
    }

    for row in RELATIONSHIPS.fetch(tx, backend).await? {
        let name = str_col(&row, "trust_domain")?;
        let td = TrustDomain::parse(&name)
            .map_err(|e| format!("federated trust domain {name:?}: {e}"))?;
        let profile = str_col(&row, "bundle_endpoint_profile")?;
        if profile != "https_web" && profile != "https_spiffe" {
            return Err(format!(
                "federated trust domain {name:?}: bundle endpoint profile {profile:?}"
            ));
        }
        let mut sql = Sql::new(
            "INSERT INTO spire_rs_federation_relationships (trust_domain, bundle_endpoint_url, \
             profile, endpoint_spiffe_id) VALUES (",
        );
        sql.bind(td.name().to_owned()).push(", ");
        sql.bind(str_col(&row, "bundle_endpoint_url")?).push(", ");
        sql.bind(profile).push(", ");
        sql.bind(str_col(&row, "endpoint_spiffe_id")?).push(")");
        execute(tx, sql).await?;
        tx.record(
            Aggregate::FederationRelationship,
            td.name().to_owned(),
            ChangeOp::Created,
        );
    }

    // Journals are copied as SPIRE wrote them (protobuf); the CA reads both its own JSON and
    // SPIRE's encoding, and finds them by SPIRE's authority ID.
    for row in CA_JOURNALS.fetch(tx, backend).await? {
        let mut sql = Sql::new(
            "INSERT INTO spire_rs_ca_journals (active_x509_authority_id, data, updated_at) VALUES (",
        );
        sql.bind(str_col(&row, "active_x509_authority_id")?)
            .push(", ");
        sql.bind(bytes_col(&row, "data")?).push(", ");
        sql.bind(int_col(&row, "updated_at")?).push(")");
        execute(tx, sql).await?;
    }
    Ok(())
}

async fn execute(tx: &mut WriteTx<'_>, sql: Sql) -> Result<(), String> {
    sql.execute(tx.conn())
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn int_col(row: &AnyRow, column: &str) -> Result<i64, String> {
    get_i64(row, column).map_err(|e| e.to_string())
}

fn str_col(row: &AnyRow, column: &str) -> Result<String, String> {
    get_string(row, column).map_err(|e| e.to_string())
}

fn bytes_col(row: &AnyRow, column: &str) -> Result<Vec<u8>, String> {
    crate::db::get_bytes(row, column).map_err(|e| e.to_string())
}

fn preview(tables: &[String]) -> String {
    let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    if tables.len() > 5 {
        shown.push("…");
    }
    shown.join(", ")
}

async fn table_names(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<String>, Error> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
        Backend::Mysql => {
            "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY 1"
        }
    };
    let rows = conn.fetch_all(sql).await.map_err(Error::Connect)?;
    rows.iter()
        .map(|row| get_string(row, "name").map_err(|e| Error::NotSpire(e.to_string())))
        .collect()
}

/// SPIRE's stored bundle (`spire.common.Bundle`).
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoBundle {
    #[prost(string, tag = "1")]
    trust_domain_id: String,
    #[prost(message, repeated, tag = "2")]
    root_cas: Vec<ProtoCertificate>,
    #[prost(message, repeated, tag = "3")]
    jwt_signing_keys: Vec<ProtoPublicKey>,
    #[prost(int64, tag = "4")]
    refresh_hint: i64,
    #[prost(uint64, tag = "5")]
    sequence_number: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoCertificate {
    #[prost(bytes = "vec", tag = "1")]
    der_bytes: Vec<u8>,
    #[prost(bool, tag = "2")]
    tainted_key: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoPublicKey {
    #[prost(bytes = "vec", tag = "1")]
    pkix_bytes: Vec<u8>,
    #[prost(string, tag = "2")]
    kid: String,
    #[prost(int64, tag = "3")]
    not_after: i64,
    #[prost(bool, tag = "4")]
    tainted_key: bool,
}

/// Decodes a bundle as SPIRE stores it.
pub(crate) fn decode_bundle(data: &[u8]) -> Result<Bundle, String> {
    let proto = <ProtoBundle as prost::Message>::decode(data).map_err(|e| e.to_string())?;
    let trust_domain = TrustDomain::parse(&proto.trust_domain_id)
        .map_err(|e| format!("trust domain {:?}: {e}", proto.trust_domain_id))?;
    let mut bundle = Bundle::new(trust_domain);
    bundle.x509_authorities = proto
        .root_cas
        .into_iter()
        .map(|c| X509Authority {
            asn1: c.der_bytes,
            tainted: c.tainted_key,
        })
        .collect();
    bundle.jwt_authorities = proto
        .jwt_signing_keys
        .into_iter()
        .map(|k| JwtAuthority {
            key_id: k.kid,
            public_key: k.pkix_bytes,
            expires_at: k.not_after,
            tainted: k.tainted_key,
        })
        .collect();
    bundle.refresh_hint = proto.refresh_hint;
    bundle.sequence_number = proto.sequence_number;
    Ok(bundle)
}
