//! Reading and pruning change events. Writing them is [`WriteTx::commit`]'s job.
//!
//! [`WriteTx::commit`]: crate::db::WriteTx::commit

use spire_server_datastore::{Aggregate, ChangeEvent, ChangeOp, Result as DsResult};

use crate::SqlStore;
use crate::db::{Sql, corrupt, get_i64, get_string};

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn list_events_impl(
        &self,
        after_revision: i64,
        limit: u32,
    ) -> DsResult<Vec<ChangeEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT revision, aggregate, record_key, op, created_at FROM spire_rs_change_events WHERE revision > ",
        );
        sql.bind(after_revision)
            .push(" ORDER BY revision LIMIT ")
            .bind(i64::from(limit));
        let mut conn = self.reader().await?;
        sql.fetch_all(&mut conn)
            .await?
            .iter()
            .map(|row| {
                let aggregate = get_string(row, "aggregate")?;
                let op = get_string(row, "op")?;
                Ok(ChangeEvent {
                    revision: get_i64(row, "revision")?,
                    aggregate: Aggregate::parse(&aggregate)
                        .ok_or_else(|| corrupt(format_args!("event aggregate {aggregate:?}")))?,
                    key: get_string(row, "record_key")?,
                    op: ChangeOp::parse(&op)
                        .ok_or_else(|| corrupt(format_args!("event op {op:?}")))?,
                    created_at: get_i64(row, "created_at")?,
                })
            })
            .collect()
    }

    /// The counter, not `MAX(revision)`: it is committed with the events and survives pruning.
    pub(crate) async fn latest_revision_impl(&self) -> DsResult<i64> {
        let mut conn = self.reader().await?;
        let row = Sql::new("SELECT revision FROM spire_rs_revision_counter WHERE id = 1")
            .fetch_optional(&mut conn)
            .await?
            .ok_or_else(|| corrupt("revision counter row is missing"))?;
        get_i64(&row, "revision")
    }

    pub(crate) async fn prune_events_impl(&self, before: i64) -> DsResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("DELETE FROM spire_rs_change_events WHERE created_at < ");
        sql.bind(before);
        let outcome = sql.execute(tx.conn()).await;
        tx.finish(outcome).await
    }
}
