//! Trust bundles, stored as the serde JSON of [`Bundle`], one row per trust domain.
//!
//! Read-modify-write operations (set, update, append, prune) lock the row first (`FOR
//! UPDATE` on PostgreSQL; SQLite has one writer), so concurrent appends from several servers
//! merge instead of overwriting each other. The sequence number goes up only when the
//! content changes.

use spire_id::TrustDomain;
use spire_server_datastore::{
    Aggregate, BundleDeleteMode, ChangeOp, Error as DsError, Page, Pagination, Result as DsResult,
};
use spire_svid::Bundle;

use crate::SqlStore;
use crate::db::{
    Backend, CHUNK, Sql, WriteTx, backend, columns, corrupt, get_i64, get_string,
    insert_unless_exists, parse_text_token, push_limit, split_page, text_token,
};
use crate::entries::delete_entries_by_seq;
use crate::entry_codec::{ENTRY_COLUMNS, encode_trust_domains, entry_from_row};

pub(crate) const BUNDLE_NOT_FOUND: &str = "bundle not found";

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn create_bundle_impl(&self, bundle: Bundle) -> DsResult<Bundle> {
        let mut tx = self.begin_write().await?;
        let outcome = async {
            if !insert(&mut tx, &bundle).await? {
                return Err(DsError::AlreadyExists {
                    message: "bundle already exists".to_owned(),
                    existing: None,
                });
            }
            Ok(bundle)
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn fetch_bundle_impl(
        &self,
        trust_domain: &TrustDomain,
    ) -> DsResult<Option<Bundle>> {
        let mut sql = Sql::new("SELECT data FROM spire_rs_bundles WHERE trust_domain = ");
        sql.bind(trust_domain.name().to_owned());
        let mut conn = self.reader().await?;
        match sql.fetch_optional(&mut conn).await? {
            Some(row) => Ok(Some(decode(&get_string(&row, "data")?)?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn list_bundles_impl(
        &self,
        page: Option<Pagination>,
    ) -> DsResult<Page<Bundle>> {
        let (after, page_size) = match &page {
            Some(p) => (parse_text_token(&p.token)?, p.page_size),
            None => (None, 0),
        };
        let mut sql = Sql::new("SELECT trust_domain, data FROM spire_rs_bundles");
        if let Some(after) = after {
            sql.push(" WHERE trust_domain > ").bind(after);
        }
        sql.push(" ORDER BY trust_domain");
        push_limit(&mut sql, page_size);
        let mut conn = self.reader().await?;
        let (rows, more) = split_page(sql.fetch_all(&mut conn).await?, page_size);
        let items = rows
            .iter()
            .map(|row| decode(&get_string(row, "data")?))
            .collect::<DsResult<Vec<_>>>()?;
        let next_token = match rows.last() {
            Some(row) if more => Some(text_token(&get_string(row, "trust_domain")?)),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    pub(crate) async fn count_bundles_impl(&self) -> DsResult<u64> {
        let mut conn = self.reader().await?;
        let row = Sql::new("SELECT COUNT(*) AS n FROM spire_rs_bundles")
            .fetch_optional(&mut conn)
            .await?;
        let n = row.map(|row| get_i64(&row, "n")).transpose()?.unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn update_bundle_impl(&self, bundle: Bundle) -> DsResult<Bundle> {
        let mut tx = self.begin_write().await?;
        let outcome = set_in(&mut tx, self.backend, bundle, true).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn set_bundle_impl(&self, bundle: Bundle) -> DsResult<Bundle> {
        let mut tx = self.begin_write().await?;
        let outcome = set_in(&mut tx, self.backend, bundle, false).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn append_bundle_impl(&self, bundle: Bundle) -> DsResult<Bundle> {
        let mut tx = self.begin_write().await?;
        let outcome = async {
            // Two rounds at most: an insert can lose only to a concurrent insert, whose row the
            // second lock then sees.
            for _ in 0..2 {
                match lock(&mut tx, self.backend, &bundle.trust_domain).await? {
                    Some(current) => {
                        let mut merged = current.clone();
                        if merged.merge(&bundle) {
                            merged.sequence_number = current.sequence_number + 1;
                            write(&mut tx, &merged).await?;
                        }
                        return Ok(merged);
                    }
                    None => {
                        if insert(&mut tx, &bundle).await? {
                            return Ok(bundle);
                        }
                    }
                }
            }
            Err(backend("bundle row vanished while appending"))
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn edit_bundle_impl(
        &self,
        trust_domain: &TrustDomain,
        edit: spire_server_datastore::BundleEdit,
    ) -> DsResult<Bundle> {
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let Some(current) = lock(&mut tx, self.backend, trust_domain).await? else {
                return Err(DsError::NotFound(BUNDLE_NOT_FOUND.to_owned()));
            };
            let mut edited = current.clone();
            edit(&mut edited)?;
            if same_content(&edited, &current) {
                return Ok(current);
            }
            edited.sequence_number = current.sequence_number + 1;
            write(&mut tx, &edited).await?;
            Ok(edited)
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn delete_bundle_impl(
        &self,
        trust_domain: &TrustDomain,
        mode: BundleDeleteMode,
    ) -> DsResult<()> {
        let mut tx = self.begin_write().await?;
        let outcome = self.delete_in(&mut tx, trust_domain, mode).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn prune_bundle_impl(
        &self,
        trust_domain: &TrustDomain,
        expires_before: i64,
    ) -> DsResult<bool> {
        // The rotator asks every tick and almost always nothing has expired: decide that from
        // a plain read, and take the write lock only when something would go.
        let Some(current) = self.fetch_bundle_impl(trust_domain).await? else {
            return Ok(false);
        };
        let mut pruned = current.clone();
        prune(&mut pruned, expires_before);
        if same_content(&pruned, &current) {
            return Ok(false);
        }
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let Some(current) = lock(&mut tx, self.backend, trust_domain).await? else {
                return Ok(false);
            };
            let mut pruned = current.clone();
            prune(&mut pruned, expires_before);
            if same_content(&pruned, &current) {
                return Ok(false);
            }
            pruned.sequence_number = current.sequence_number + 1;
            write(&mut tx, &pruned).await?;
            Ok(true)
        }
        .await;
        tx.finish(outcome).await
    }

    async fn delete_in(
        &self,
        tx: &mut WriteTx<'_>,
        trust_domain: &TrustDomain,
        mode: BundleDeleteMode,
    ) -> DsResult<()> {
        if lock(tx, self.backend, trust_domain).await?.is_none() {
            return Err(DsError::NotFound(BUNDLE_NOT_FOUND.to_owned()));
        }
        let name = trust_domain.name().to_owned();
        let mut sql =
            Sql::new("SELECT entry_seq FROM spire_rs_entry_federates_with WHERE trust_domain = ");
        sql.bind(name.clone()).push(" ORDER BY entry_seq");
        let seqs = sql
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|row| get_i64(row, "entry_seq"))
            .collect::<DsResult<Vec<_>>>()?;
        if !seqs.is_empty() {
            match mode {
                BundleDeleteMode::Restrict => {
                    return Err(DsError::FailedPrecondition(format!(
                        "cannot delete bundle; federated with {} registration entries",
                        seqs.len()
                    )));
                }
                BundleDeleteMode::Delete => delete_entries_by_seq(tx, &seqs).await?,
                BundleDeleteMode::Dissociate => self.dissociate(tx, trust_domain, &seqs).await?,
            }
        }
        let mut sql = Sql::new("DELETE FROM spire_rs_bundles WHERE trust_domain = ");
        sql.bind(name.clone());
        sql.execute(tx.conn()).await?;
        tx.record(Aggregate::Bundle, name, ChangeOp::Deleted);
        Ok(())
    }

    /// Removes `trust_domain` from the entries with these seqs, bumping their revisions.
    async fn dissociate(
        &self,
        tx: &mut WriteTx<'_>,
        trust_domain: &TrustDomain,
        seqs: &[i64],
    ) -> DsResult<()> {
        for chunk in seqs.chunks(CHUNK) {
            let mut sql = Sql::new(&format!(
                "SELECT {} FROM spire_rs_registered_entries e WHERE e.seq IN ",
                columns("e", ENTRY_COLUMNS)
            ));
            sql.bind_list(chunk.iter().copied())
                .push(self.backend.for_update());
            for row in sql.fetch_all(tx.conn()).await? {
                let (seq, mut entry) = entry_from_row(&row)?;
                entry.federates_with.retain(|td| td != trust_domain);
                let mut sql = Sql::new("UPDATE spire_rs_registered_entries SET federates_with = ");
                sql.bind(encode_trust_domains(&entry.federates_with));
                sql.push(", revision_number = revision_number + 1 WHERE seq = ")
                    .bind(seq);
                sql.execute(tx.conn()).await?;
                tx.record(Aggregate::RegistrationEntry, entry.id, ChangeOp::Updated);
            }
        }
        let mut sql = Sql::new("DELETE FROM spire_rs_entry_federates_with WHERE trust_domain = ");
        sql.bind(trust_domain.name().to_owned());
        sql.execute(tx.conn()).await?;
        Ok(())
    }
}

/// Creates or replaces the bundle inside `tx` (`must_exist`: `NotFound` instead of creating).
/// Also used by federation relationships that carry a bundle.
pub(crate) async fn set_in(
    tx: &mut WriteTx<'_>,
    backend_kind: Backend,
    bundle: Bundle,
    must_exist: bool,
) -> DsResult<Bundle> {
    for _ in 0..2 {
        match lock(tx, backend_kind, &bundle.trust_domain).await? {
            Some(current) if same_content(&current, &bundle) => return Ok(current),
            Some(current) => {
                let mut next = bundle;
                next.sequence_number = next.sequence_number.max(current.sequence_number + 1);
                write(tx, &next).await?;
                return Ok(next);
            }
            None if must_exist => return Err(DsError::NotFound(BUNDLE_NOT_FOUND.to_owned())),
            None => {
                if insert(tx, &bundle).await? {
                    return Ok(bundle);
                }
            }
        }
    }
    Err(backend("bundle row vanished while setting it"))
}

/// Reads the bundle and locks its row until the transaction ends.
async fn lock(
    tx: &mut WriteTx<'_>,
    backend_kind: Backend,
    trust_domain: &TrustDomain,
) -> DsResult<Option<Bundle>> {
    let mut sql = Sql::new("SELECT data FROM spire_rs_bundles WHERE trust_domain = ");
    sql.bind(trust_domain.name().to_owned())
        .push(backend_kind.for_update());
    match sql.fetch_optional(tx.conn()).await? {
        Some(row) => Ok(Some(decode(&get_string(&row, "data")?)?)),
        None => Ok(None),
    }
}

/// Inserts a new bundle; false when the trust domain already has one.
async fn insert(tx: &mut WriteTx<'_>, bundle: &Bundle) -> DsResult<bool> {
    let name = bundle.trust_domain.name().to_owned();
    let mut sql = Sql::new("INSERT INTO spire_rs_bundles (trust_domain, data) VALUES (");
    sql.bind(name.clone()).push(", ").bind(encode(bundle)?);
    sql.push(")");
    let inserted = insert_unless_exists(tx.conn(), sql).await?;
    if inserted {
        tx.record(Aggregate::Bundle, name, ChangeOp::Created);
    }
    Ok(inserted)
}

async fn write(tx: &mut WriteTx<'_>, bundle: &Bundle) -> DsResult<()> {
    let name = bundle.trust_domain.name().to_owned();
    let mut sql = Sql::new("UPDATE spire_rs_bundles SET data = ");
    sql.bind(encode(bundle)?)
        .push(" WHERE trust_domain = ")
        .bind(name.clone());
    sql.execute(tx.conn()).await?;
    tx.record(Aggregate::Bundle, name, ChangeOp::Updated);
    Ok(())
}

fn encode(bundle: &Bundle) -> DsResult<String> {
    serde_json::to_string(bundle).map_err(backend)
}

pub(crate) fn decode(text: &str) -> DsResult<Bundle> {
    serde_json::from_str(text).map_err(|e| corrupt(format_args!("bundle: {e}")))
}

/// Equal apart from the sequence number.
fn same_content(a: &Bundle, b: &Bundle) -> bool {
    a.trust_domain == b.trust_domain
        && a.x509_authorities == b.x509_authorities
        && a.jwt_authorities == b.jwt_authorities
        && a.refresh_hint == b.refresh_hint
}

/// Drops X.509 authorities whose certificate expired before `expires_before` (unless that
/// would drop them all) and JWT keys with a non-zero expiry before it. Certificates that do
/// not parse are kept.
fn prune(bundle: &mut Bundle, expires_before: i64) {
    let kept: Vec<_> = bundle
        .x509_authorities
        .iter()
        .filter(|a| not_after(&a.asn1).is_none_or(|t| t >= expires_before))
        .cloned()
        .collect();
    if kept.is_empty() && !bundle.x509_authorities.is_empty() {
        tracing::warn!(
            trust_domain = %bundle.trust_domain,
            "not pruning X.509 authorities: every one has expired and a bundle keeps at least one"
        );
    } else {
        bundle.x509_authorities = kept;
    }
    bundle
        .jwt_authorities
        .retain(|k| k.expires_at == 0 || k.expires_at >= expires_before);
}

fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}
