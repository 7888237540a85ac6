//! Pruning attested nodes whose SVIDs expired long ago (SPIRE's
//! `prune_attested_nodes_expired_for`). Each batch is one transaction: select the candidates
//! (locked on PostgreSQL), then delete their selectors, their alias entries when they came
//! from a join token, and the nodes. Plain `SELECT` and `DELETE … IN` only, so every backend
//! runs the same statements.

use spire_id::SpiffeId;
use spire_server_datastore::{Aggregate, ChangeOp, Result as DsResult};

use crate::SqlStore;
use crate::db::{CHUNK, Sql, WriteTx, corrupt, get_string};

/// Nodes per transaction when the caller gives 0 (SPIRE's default batch size).
const DEFAULT_BATCH: u32 = 1_000;

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn prune_nodes_impl(
        &self,
        expired_before: i64,
        include_non_reattestable: bool,
        batch_size: u32,
    ) -> DsResult<Vec<SpiffeId>> {
        let batch = if batch_size == 0 {
            DEFAULT_BATCH
        } else {
            batch_size
        };
        let mut pruned = Vec::new();
        loop {
            let mut tx = self.begin_write().await?;
            let outcome = self
                .prune_node_batch(&mut tx, expired_before, include_non_reattestable, batch)
                .await;
            let ids = tx.finish(outcome).await?;
            let full = ids.len() >= batch as usize;
            pruned.extend(ids);
            if !full {
                return Ok(pruned);
            }
        }
    }

    async fn prune_node_batch(
        &self,
        tx: &mut WriteTx<'_>,
        expired_before: i64,
        include_non_reattestable: bool,
        batch: u32,
    ) -> DsResult<Vec<SpiffeId>> {
        // Banned nodes (no current serial) stay, and so does a node whose new SVID, issued
        // but not yet in use, is still valid.
        let mut sql = Sql::new(
            "SELECT spiffe_id, attestation_type FROM spire_rs_attested_nodes \
             WHERE cert_serial_number <> '' AND cert_not_after < ",
        );
        sql.bind(expired_before)
            .push(" AND new_cert_not_after < ")
            .bind(expired_before);
        if !include_non_reattestable {
            sql.push(" AND can_reattest = ").bind(true);
        }
        sql.push(" ORDER BY spiffe_id LIMIT ")
            .bind(i64::from(batch))
            .push(self.backend.for_update());
        let mut ids = Vec::new();
        let mut join_token_ids = Vec::new();
        for row in sql.fetch_all(tx.conn()).await? {
            let id = get_string(&row, "spiffe_id")?;
            if get_string(&row, "attestation_type")? == "join_token" {
                join_token_ids.push(id.clone());
            }
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        delete_alias_entries(tx, &join_token_ids).await?;
        for chunk in ids.chunks(CHUNK) {
            let mut sql = Sql::new("DELETE FROM spire_rs_node_selectors WHERE spiffe_id IN ");
            sql.bind_list(chunk.iter().cloned());
            sql.execute(tx.conn()).await?;
            let mut sql = Sql::new("DELETE FROM spire_rs_attested_nodes WHERE spiffe_id IN ");
            sql.bind_list(chunk.iter().cloned());
            sql.execute(tx.conn()).await?;
        }
        ids.into_iter()
            .map(|id| {
                let parsed = SpiffeId::parse(&id)
                    .map_err(|e| corrupt(format_args!("node ID {id:?}: {e}")))?;
                tx.record(Aggregate::AttestedNode, id, ChangeOp::Deleted);
                Ok(parsed)
            })
            .collect()
    }
}

/// Deletes the alias entries of join-token nodes: the entry a token issued for an agent ID
/// created, parented by the node and selecting it by `spiffe_id`. Its selector rows go by
/// the foreign key's cascade.
async fn delete_alias_entries(tx: &mut WriteTx<'_>, node_ids: &[String]) -> DsResult<()> {
    for chunk in node_ids.chunks(CHUNK) {
        let mut sql = Sql::new(
            "SELECT e.entry_id FROM spire_rs_registered_entries e \
             JOIN spire_rs_entry_selectors s ON s.entry_seq = e.seq \
             WHERE s.selector_type = 'spiffe_id' AND s.selector_value = e.parent_id \
             AND e.parent_id IN ",
        );
        sql.bind_list(chunk.iter().cloned());
        let entry_ids = sql
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|row| get_string(row, "entry_id"))
            .collect::<DsResult<Vec<_>>>()?;
        for ids in entry_ids.chunks(CHUNK) {
            let mut sql = Sql::new("DELETE FROM spire_rs_registered_entries WHERE entry_id IN ");
            sql.bind_list(ids.iter().cloned());
            sql.execute(tx.conn()).await?;
        }
        for id in entry_ids {
            tx.record(Aggregate::RegistrationEntry, id, ChangeOp::Deleted);
        }
    }
    Ok(())
}
