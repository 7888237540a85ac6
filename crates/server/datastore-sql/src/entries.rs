//! Registration entry writes: set-based batch create, per-item update and delete, prune.
//!
//! A create batch is one transaction of a few multi-row statements: the entry rows go in
//! with `INSERT … ON CONFLICT DO NOTHING RETURNING`, so a duplicate ID or similarity key
//! skips that row instead of aborting the transaction (as a failed statement would on
//! PostgreSQL); the rows that did not come back are then explained by looking up what they
//! collided with.

use std::collections::HashMap;

use uuid::Uuid;

use spire_server_datastore::{
    Aggregate, ChangeOp, EntryMask, Error as DsError, RegistrationEntry, Result as DsResult,
};

use crate::SqlStore;
use crate::db::{
    Backend, CHUNK, Sql, WriteTx, backend, columns, delete_returning, get_i64, get_string,
    is_unique_violation,
};
use crate::entry_codec::{
    ENTRY_COLUMNS, INSERT_COLUMNS, StoredEntry, encode_selectors, encode_strings,
    encode_trust_domains, entry_from_row, insert_entry_selectors, insert_entry_trust_domains,
    prepare,
};

pub(crate) const SIMILAR_EXISTS: &str = "similar entry already exists";
pub(crate) const ENTRY_EXISTS: &str = "entry already exists";
pub(crate) const ENTRY_NOT_FOUND: &str = "entry not found";

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn create_entries_impl(
        &self,
        entries: Vec<RegistrationEntry>,
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        let mut results: Vec<Option<DsResult<RegistrationEntry>>> =
            Vec::with_capacity(entries.len());
        let mut pending = Vec::new();
        for (index, mut entry) in entries.into_iter().enumerate() {
            if entry.id.is_empty() {
                entry.id = Uuid::new_v4().to_string();
            }
            entry.revision_number = 0;
            match prepare(entry) {
                Ok(stored) => {
                    pending.push((index, stored));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !pending.is_empty() {
            let mut tx = self.begin_write().await?;
            let outcome = insert_entries(&mut tx, pending).await;
            // Test-only stops for the crash cases of the fault suite (docs/faults.md).
            spire_task::failpoint("batch_create_entry_before_commit");
            let outcome = tx.finish(outcome).await?;
            spire_task::failpoint("batch_create_entry_after_commit");
            for (index, result) in outcome {
                results[index] = Some(result);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(backend("entry create result missing"))))
            .collect())
    }

    pub(crate) async fn fetch_entries_impl(
        &self,
        ids: &[String],
    ) -> DsResult<Vec<RegistrationEntry>> {
        let mut conn = self.reader().await?;
        let mut found = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut sql = Sql::new(&format!(
                "SELECT {} FROM spire_rs_registered_entries e WHERE e.entry_id IN ",
                columns("e", ENTRY_COLUMNS)
            ));
            sql.bind_list(chunk.iter().cloned());
            for row in sql.fetch_all(&mut conn).await? {
                let (_, entry) = entry_from_row(&row)?;
                found.insert(entry.id.clone(), entry);
            }
        }
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    pub(crate) async fn update_entries_impl(
        &self,
        updates: Vec<(RegistrationEntry, Option<EntryMask>)>,
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        let mut tx = self.begin_write().await?;
        let outcome = self.update_all(&mut tx, updates).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn delete_entries_impl(
        &self,
        ids: &[String],
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        let mut tx = self.begin_write().await?;
        let outcome = delete_all(&mut tx, ids).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn prune_entries_impl(&self, expires_before: i64) -> DsResult<u64> {
        let mut tx = self.begin_write().await?;
        let filter = |sql: &mut Sql| {
            sql.push("expires_at <> 0 AND expires_at < ")
                .bind(expires_before);
        };
        let outcome = match delete_returning(
            tx.conn(),
            "spire_rs_registered_entries",
            "entry_id",
            "entry_id",
            &filter,
        )
        .await
        {
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    let id = get_string(row, "entry_id")?;
                    tx.record(Aggregate::RegistrationEntry, id, ChangeOp::Deleted);
                    Ok(())
                })
                .collect::<DsResult<Vec<()>>>()
                .map(|done| done.len() as u64),
            Err(e) => Err(e),
        };
        tx.finish(outcome).await
    }

    async fn update_all(
        &self,
        tx: &mut WriteTx<'_>,
        updates: Vec<(RegistrationEntry, Option<EntryMask>)>,
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        let mut out = Vec::with_capacity(updates.len());
        for (entry, mask) in updates {
            match self
                .update_one(tx, entry, mask.unwrap_or(EntryMask::ALL))
                .await
            {
                Ok(updated) => out.push(Ok(updated)),
                Err(
                    e @ (DsError::NotFound(_)
                    | DsError::AlreadyExists { .. }
                    | DsError::InvalidArgument(_)),
                ) => {
                    out.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn update_one(
        &self,
        tx: &mut WriteTx<'_>,
        update: RegistrationEntry,
        mask: EntryMask,
    ) -> DsResult<RegistrationEntry> {
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM spire_rs_registered_entries e WHERE e.entry_id = ",
            columns("e", ENTRY_COLUMNS)
        ));
        sql.bind(update.id.clone()).push(self.backend.for_update());
        let row = sql
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| DsError::NotFound(ENTRY_NOT_FOUND.to_owned()))?;
        let old_key = get_string(&row, "similarity_key")?;
        let (seq, current) = entry_from_row(&row)?;
        let next = apply_mask(current.clone(), update, mask);
        let stored = prepare(next)?;

        let mut sql = Sql::new("UPDATE spire_rs_registered_entries SET spiffe_id = ");
        let e = &stored.entry;
        sql.bind(e.spiffe_id.to_string()).push(", parent_id = ");
        sql.bind(e.parent_id.to_string())
            .push(", similarity_key = ");
        sql.bind(stored.similarity_key.clone())
            .push(", selectors = ");
        sql.bind(encode_selectors(&e.selectors))
            .push(", federates_with = ");
        sql.bind(encode_trust_domains(&e.federates_with))
            .push(", dns_names = ");
        sql.bind(encode_strings(&e.dns_names))
            .push(", x509_svid_ttl = ");
        sql.bind(e.x509_svid_ttl).push(", jwt_svid_ttl = ");
        sql.bind(e.jwt_svid_ttl).push(", admin = ");
        sql.bind(e.admin).push(", downstream = ");
        sql.bind(e.downstream).push(", store_svid = ");
        sql.bind(e.store_svid).push(", expires_at = ");
        sql.bind(e.expires_at).push(", revision_number = ");
        sql.bind(e.revision_number).push(", hint = ");
        sql.bind(e.hint.clone()).push(" WHERE seq = ");
        sql.bind(seq);
        if stored.similarity_key == old_key {
            sql.execute(tx.conn()).await?;
        } else {
            // Another server may insert the same key at any moment: a savepoint keeps the
            // transaction alive through the unique violation.
            let mut savepoint = tx.savepoint().await?;
            match sql.execute_raw(&mut savepoint).await {
                Ok(_) => savepoint.commit().await.map_err(backend)?,
                Err(e) if is_unique_violation(&e) => {
                    savepoint.rollback().await.map_err(backend)?;
                    let existing = find_similar(tx, &stored).await?;
                    return Err(DsError::AlreadyExists {
                        message: SIMILAR_EXISTS.to_owned(),
                        existing: existing.map(Box::new),
                    });
                }
                Err(e) => return Err(backend(e)),
            }
        }
        if e.selectors != current.selectors {
            let mut sql = Sql::new("DELETE FROM spire_rs_entry_selectors WHERE entry_seq = ");
            sql.bind(seq);
            sql.execute(tx.conn()).await?;
            insert_entry_selectors(tx.conn(), &[(seq, e)]).await?;
        }
        if e.federates_with != current.federates_with {
            let mut sql = Sql::new("DELETE FROM spire_rs_entry_federates_with WHERE entry_seq = ");
            sql.bind(seq);
            sql.execute(tx.conn()).await?;
            insert_entry_trust_domains(tx.conn(), &[(seq, e)]).await?;
        }
        tx.record(
            Aggregate::RegistrationEntry,
            e.id.clone(),
            ChangeOp::Updated,
        );
        Ok(stored.entry)
    }
}

/// The entry after `update`'s masked fields are written over `current`. ID, creation time
/// and revision are never taken from the update; the revision goes up by one.
fn apply_mask(
    mut current: RegistrationEntry,
    update: RegistrationEntry,
    mask: EntryMask,
) -> RegistrationEntry {
    if mask.spiffe_id {
        current.spiffe_id = update.spiffe_id;
    }
    if mask.parent_id {
        current.parent_id = update.parent_id;
    }
    if mask.selectors {
        current.selectors = update.selectors;
    }
    if mask.x509_svid_ttl {
        current.x509_svid_ttl = update.x509_svid_ttl;
    }
    if mask.jwt_svid_ttl {
        current.jwt_svid_ttl = update.jwt_svid_ttl;
    }
    if mask.federates_with {
        current.federates_with = update.federates_with;
    }
    if mask.admin {
        current.admin = update.admin;
    }
    if mask.downstream {
        current.downstream = update.downstream;
    }
    if mask.expires_at {
        current.expires_at = update.expires_at;
    }
    if mask.dns_names {
        current.dns_names = update.dns_names;
    }
    if mask.store_svid {
        current.store_svid = update.store_svid;
    }
    if mask.hint {
        current.hint = update.hint;
    }
    current.revision_number += 1;
    current
}

/// Inserts entries copied from another datastore, keeping their IDs; the first that cannot be
/// stored fails the whole import.
pub(crate) async fn import_entries(
    tx: &mut WriteTx<'_>,
    entries: Vec<RegistrationEntry>,
) -> DsResult<()> {
    let pending = entries
        .into_iter()
        .map(|e| {
            let id = e.id.clone();
            crate::entry_codec::prepare(e)
                .map_err(|err| DsError::InvalidArgument(format!("entry {id:?}: {err}")))
        })
        .collect::<DsResult<Vec<_>>>()?;
    for (_, result) in insert_entries(tx, pending.into_iter().enumerate().collect()).await? {
        result?;
    }
    Ok(())
}

/// Inserts prepared entries; each result is paired with the input index it belongs to.
async fn insert_entries(
    tx: &mut WriteTx<'_>,
    pending: Vec<(usize, StoredEntry)>,
) -> DsResult<Vec<(usize, DsResult<RegistrationEntry>)>> {
    // (entry_id, similarity_key) of every row that went in → its seq.
    let mut inserted: HashMap<(String, String), i64> = HashMap::new();
    for chunk in pending.chunks(CHUNK) {
        let mut sql = Sql::new(&format!(
            "INSERT INTO spire_rs_registered_entries ({INSERT_COLUMNS}) VALUES "
        ));
        for (i, (_, stored)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            crate::entry_codec::push_insert_values(&mut sql, stored);
        }
        if Backend::of(tx.conn()) == Backend::Mysql {
            insert_chunk_mysql(tx.conn(), sql, chunk, &mut inserted).await?;
            continue;
        }
        sql.push(" ON CONFLICT DO NOTHING RETURNING seq, entry_id, similarity_key");
        for row in sql.fetch_all(tx.conn()).await? {
            let key = (
                get_string(&row, "entry_id")?,
                get_string(&row, "similarity_key")?,
            );
            inserted.insert(key, get_i64(&row, "seq")?);
        }
    }

    let mut created = Vec::new();
    let mut conflicts = Vec::new();
    for (index, stored) in pending {
        // Rows go in in VALUES order, so of two identical items the first is the stored one.
        match inserted.remove(&(stored.entry.id.clone(), stored.similarity_key.clone())) {
            Some(seq) => created.push((index, seq, stored.entry)),
            None => conflicts.push((index, stored)),
        }
    }
    let sets: Vec<(i64, &RegistrationEntry)> =
        created.iter().map(|(_, seq, e)| (*seq, e)).collect();
    insert_entry_selectors(tx.conn(), &sets).await?;
    insert_entry_trust_domains(tx.conn(), &sets).await?;
    for (_, _, entry) in &created {
        tx.record(
            Aggregate::RegistrationEntry,
            entry.id.clone(),
            ChangeOp::Created,
        );
    }

    let mut results: Vec<(usize, DsResult<RegistrationEntry>)> = created
        .into_iter()
        .map(|(index, _, entry)| (index, Ok(entry)))
        .collect();
    results.extend(explain_conflicts(tx, conflicts).await?);
    Ok(results)
}

/// MySQL's way through one chunk of [`insert_entries`], which has neither `ON CONFLICT` nor
/// `RETURNING`: the multi-row INSERT, and when a row collides (the statement then undoes only
/// itself) one INSERT per row, skipping those that collide; the new rows' seqs are read back
/// by entry ID (unique, and only rows this transaction wrote can carry the IDs that went in).
async fn insert_chunk_mysql(
    conn: &mut sqlx::AnyConnection,
    batch: Sql,
    chunk: &[(usize, StoredEntry)],
    inserted: &mut HashMap<(String, String), i64>,
) -> DsResult<()> {
    let went_in: Vec<&StoredEntry> = match batch.execute_raw(conn).await {
        Ok(_) => chunk.iter().map(|(_, stored)| stored).collect(),
        Err(e) if is_unique_violation(&e) => {
            let mut went_in = Vec::new();
            for (_, stored) in chunk {
                let mut sql = Sql::new(&format!(
                    "INSERT INTO spire_rs_registered_entries ({INSERT_COLUMNS}) VALUES "
                ));
                crate::entry_codec::push_insert_values(&mut sql, stored);
                match sql.execute_raw(conn).await {
                    Ok(_) => went_in.push(stored),
                    Err(e) if is_unique_violation(&e) => {}
                    Err(e) => return Err(backend(e)),
                }
            }
            went_in
        }
        Err(e) => return Err(backend(e)),
    };
    for part in went_in.chunks(CHUNK) {
        let mut sql = Sql::new(
            "SELECT seq, entry_id, similarity_key FROM spire_rs_registered_entries WHERE entry_id IN ",
        );
        sql.bind_list(part.iter().map(|stored| stored.entry.id.clone()));
        for row in sql.fetch_all(conn).await? {
            let key = (
                get_string(&row, "entry_id")?,
                get_string(&row, "similarity_key")?,
            );
            inserted.insert(key, get_i64(&row, "seq")?);
        }
    }
    Ok(())
}

/// Says for each rejected row which stored entry it collided with: a similar entry first
/// (as SPIRE checks), otherwise the entry with its ID.
async fn explain_conflicts(
    tx: &mut WriteTx<'_>,
    conflicts: Vec<(usize, StoredEntry)>,
) -> DsResult<Vec<(usize, DsResult<RegistrationEntry>)>> {
    let mut by_key = HashMap::new();
    let mut by_id = HashMap::new();
    for chunk in conflicts.chunks(CHUNK / 4) {
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM spire_rs_registered_entries e WHERE ",
            columns("e", ENTRY_COLUMNS)
        ));
        for (_, stored) in chunk {
            push_similar(&mut sql, stored);
            sql.push(" OR ");
        }
        sql.push("e.entry_id IN ");
        sql.bind_list(chunk.iter().map(|(_, s)| s.entry.id.clone()));
        for row in sql.fetch_all(tx.conn()).await? {
            let key = get_string(&row, "similarity_key")?;
            let (_, entry) = entry_from_row(&row)?;
            by_id.insert(entry.id.clone(), entry.clone());
            by_key.insert(key, entry);
        }
    }
    Ok(conflicts
        .into_iter()
        .map(|(index, stored)| {
            let (message, existing) = match by_key.get(&stored.similarity_key) {
                Some(similar) => (SIMILAR_EXISTS, Some(similar.clone())),
                None => match by_id.get(&stored.entry.id) {
                    Some(same_id) => (ENTRY_EXISTS, Some(same_id.clone())),
                    // The conflicting row was deleted in between; still a conflict.
                    None => (SIMILAR_EXISTS, None),
                },
            };
            let error = DsError::AlreadyExists {
                message: message.to_owned(),
                existing: existing.map(Box::new),
            };
            (index, Err(error))
        })
        .collect())
}

async fn find_similar(
    tx: &mut WriteTx<'_>,
    stored: &StoredEntry,
) -> DsResult<Option<RegistrationEntry>> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM spire_rs_registered_entries e WHERE ",
        columns("e", ENTRY_COLUMNS)
    ));
    push_similar(&mut sql, stored);
    match sql.fetch_optional(tx.conn()).await? {
        Some(row) => Ok(Some(entry_from_row(&row)?.1)),
        None => Ok(None),
    }
}

/// The predicate for entries similar to `stored`, shaped for the unique index
/// `(parent_id, spiffe_id, similarity_key)`.
fn push_similar(sql: &mut Sql, stored: &StoredEntry) {
    sql.push("(e.parent_id = ")
        .bind(stored.entry.parent_id.to_string());
    sql.push(" AND e.spiffe_id = ")
        .bind(stored.entry.spiffe_id.to_string());
    sql.push(" AND e.similarity_key = ")
        .bind(stored.similarity_key.clone());
    sql.push(")");
}

async fn delete_all(
    tx: &mut WriteTx<'_>,
    ids: &[String],
) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
    let mut deleted = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let filter = |sql: &mut Sql| {
            sql.push("entry_id IN ").bind_list(chunk.iter().cloned());
        };
        let columns = ENTRY_COLUMNS.join(", ");
        let rows = delete_returning(
            tx.conn(),
            "spire_rs_registered_entries",
            "entry_id",
            &columns,
            &filter,
        )
        .await?;
        for row in rows {
            let (_, entry) = entry_from_row(&row)?;
            deleted.insert(entry.id.clone(), entry);
        }
    }
    Ok(ids
        .iter()
        .map(|id| match deleted.remove(id) {
            Some(entry) => {
                tx.record(Aggregate::RegistrationEntry, id.clone(), ChangeOp::Deleted);
                Ok(entry)
            }
            None => Err(DsError::NotFound(ENTRY_NOT_FOUND.to_owned())),
        })
        .collect())
}

/// Deletes the entries with these seqs (already known to exist), recording events.
pub(crate) async fn delete_entries_by_seq(tx: &mut WriteTx<'_>, seqs: &[i64]) -> DsResult<()> {
    for chunk in seqs.chunks(CHUNK) {
        let filter = |sql: &mut Sql| {
            sql.push("seq IN ").bind_list(chunk.iter().copied());
        };
        let rows = delete_returning(
            tx.conn(),
            "spire_rs_registered_entries",
            "entry_id",
            "seq, entry_id",
            &filter,
        )
        .await?;
        // Events in creation order, whatever order the backend deleted in.
        let mut deleted = rows
            .iter()
            .map(|row| Ok((get_i64(row, "seq")?, get_string(row, "entry_id")?)))
            .collect::<DsResult<Vec<_>>>()?;
        deleted.sort_unstable();
        for (_, entry_id) in deleted {
            tx.record(Aggregate::RegistrationEntry, entry_id, ChangeOp::Deleted);
        }
    }
    Ok(())
}
