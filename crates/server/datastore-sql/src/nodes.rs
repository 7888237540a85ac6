//! Attested nodes and their selectors (a separate table: selectors may be set before the
//! node row exists, as SPIRE allows).

use std::collections::HashMap;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_datastore::{
    Aggregate, AttestedNode, ChangeOp, Error as DsError, ListAttestedNodes, NodeMask, Page,
    Result as DsResult,
};

use crate::SqlStore;
use crate::db::{
    CHUNK, Sql, columns, corrupt, delete_returning, get_bool, get_i64, get_string,
    insert_unless_exists, parse_text_token, push_limit, split_page, text_token,
};
use crate::filters::{NODE_SELECTORS, push_selector_filter};

const NODE_COLUMNS: &[&str] = &[
    "spiffe_id",
    "attestation_type",
    "cert_serial_number",
    "cert_not_after",
    "new_cert_serial_number",
    "new_cert_not_after",
    "can_reattest",
];

const NODE_NOT_FOUND: &str = "attested node not found";

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn create_node_impl(&self, mut node: AttestedNode) -> DsResult<AttestedNode> {
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let id = node.spiffe_id.to_string();
            let mut sql = Sql::new(&format!(
                "INSERT INTO spire_rs_attested_nodes ({}) VALUES (",
                NODE_COLUMNS.join(", ")
            ));
            sql.bind(id.clone()).push(", ");
            sql.bind(node.attestation_type.clone()).push(", ");
            sql.bind(node.cert_serial_number.clone()).push(", ");
            sql.bind(node.cert_not_after).push(", ");
            sql.bind(node.new_cert_serial_number.clone()).push(", ");
            sql.bind(node.new_cert_not_after).push(", ");
            sql.bind(node.can_reattest).push(")");
            if !insert_unless_exists(tx.conn(), sql).await? {
                return Err(DsError::AlreadyExists {
                    message: "attested node already exists".to_owned(),
                    existing: None,
                });
            }
            if node.selectors.is_empty() {
                node.selectors = selectors_of(tx.conn(), &id).await?;
            } else {
                replace_selectors(tx.conn(), &id, &node.selectors).await?;
            }
            tx.record(Aggregate::AttestedNode, id, ChangeOp::Created);
            Ok(node)
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn fetch_node_impl(
        &self,
        spiffe_id: &SpiffeId,
    ) -> DsResult<Option<AttestedNode>> {
        let mut conn = self.reader().await?;
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM spire_rs_attested_nodes n WHERE n.spiffe_id = ",
            columns("n", NODE_COLUMNS)
        ));
        let id = spiffe_id.to_string();
        sql.bind(id.clone());
        let Some(row) = sql.fetch_optional(&mut conn).await? else {
            return Ok(None);
        };
        let mut node = node_from_row(&row)?;
        node.selectors = selectors_of(&mut conn, &id).await?;
        Ok(Some(node))
    }

    pub(crate) async fn list_nodes_impl(
        &self,
        request: &ListAttestedNodes,
    ) -> DsResult<Page<AttestedNode>> {
        let (after, page_size) = match &request.pagination {
            Some(p) => (parse_text_token(&p.token)?, p.page_size),
            None => (None, 0),
        };
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM spire_rs_attested_nodes n",
            columns("n", NODE_COLUMNS)
        ));
        push_filters(&mut sql, request);
        if let Some(after) = after {
            sql.push(" AND n.spiffe_id > ").bind(after);
        }
        sql.push(" ORDER BY n.spiffe_id");
        push_limit(&mut sql, page_size);
        let mut conn = self.reader().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let (rows, more) = split_page(rows, page_size);
        let mut items = rows
            .iter()
            .map(node_from_row)
            .collect::<DsResult<Vec<_>>>()?;
        let ids: Vec<String> = items.iter().map(|n| n.spiffe_id.to_string()).collect();
        let mut selectors = selectors_of_many(&mut conn, &ids).await?;
        for (node, id) in items.iter_mut().zip(&ids) {
            node.selectors = selectors.remove(id).unwrap_or_default();
        }
        let next_token = if more {
            ids.last().map(|id| text_token(id))
        } else {
            None
        };
        Ok(Page { items, next_token })
    }

    pub(crate) async fn count_nodes_impl(&self, request: &ListAttestedNodes) -> DsResult<u64> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM spire_rs_attested_nodes n");
        push_filters(&mut sql, request);
        let mut conn = self.reader().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let n = rows
            .first()
            .map(|row| get_i64(row, "n"))
            .transpose()?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn update_node_impl(
        &self,
        node: AttestedNode,
        mask: Option<NodeMask>,
    ) -> DsResult<AttestedNode> {
        let mask = mask.unwrap_or(NodeMask::ALL);
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let id = node.spiffe_id.to_string();
            let mut sql = Sql::new(&format!(
                "SELECT {} FROM spire_rs_attested_nodes n WHERE n.spiffe_id = ",
                columns("n", NODE_COLUMNS)
            ));
            sql.bind(id.clone()).push(self.backend.for_update());
            let row = sql
                .fetch_optional(tx.conn())
                .await?
                .ok_or_else(|| DsError::NotFound(NODE_NOT_FOUND.to_owned()))?;
            let mut current = node_from_row(&row)?;
            if mask.attestation_type {
                current.attestation_type = node.attestation_type;
            }
            if mask.cert_serial_number {
                current.cert_serial_number = node.cert_serial_number;
            }
            if mask.cert_not_after {
                current.cert_not_after = node.cert_not_after;
            }
            if mask.new_cert_serial_number {
                current.new_cert_serial_number = node.new_cert_serial_number;
            }
            if mask.new_cert_not_after {
                current.new_cert_not_after = node.new_cert_not_after;
            }
            if mask.can_reattest {
                current.can_reattest = node.can_reattest;
            }
            let mut sql = Sql::new("UPDATE spire_rs_attested_nodes SET attestation_type = ");
            sql.bind(current.attestation_type.clone())
                .push(", cert_serial_number = ");
            sql.bind(current.cert_serial_number.clone())
                .push(", cert_not_after = ");
            sql.bind(current.cert_not_after)
                .push(", new_cert_serial_number = ");
            sql.bind(current.new_cert_serial_number.clone())
                .push(", new_cert_not_after = ");
            sql.bind(current.new_cert_not_after)
                .push(", can_reattest = ");
            sql.bind(current.can_reattest).push(" WHERE spiffe_id = ");
            sql.bind(id.clone());
            sql.execute(tx.conn()).await?;
            current.selectors = selectors_of(tx.conn(), &id).await?;
            tx.record(Aggregate::AttestedNode, id, ChangeOp::Updated);
            Ok(current)
        }
        .await;
        tx.finish(outcome).await
    }

    /// One `UPDATE … WHERE` that checks the expected serials, so it cannot race a ban.
    pub(crate) async fn promote_node_serial_impl(
        &self,
        spiffe_id: &SpiffeId,
        expected_current: &str,
        new_serial: &str,
    ) -> DsResult<bool> {
        if expected_current.is_empty() || new_serial.is_empty() {
            // An empty current serial is a ban; an empty new serial, nothing to promote.
            return Ok(false);
        }
        let id = spiffe_id.to_string();
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let mut sql = Sql::new(
                "UPDATE spire_rs_attested_nodes SET cert_serial_number = new_cert_serial_number, \
                 cert_not_after = new_cert_not_after, new_cert_serial_number = '', \
                 new_cert_not_after = 0 WHERE spiffe_id = ",
            );
            sql.bind(id.clone()).push(" AND cert_serial_number = ");
            sql.bind(expected_current.to_owned())
                .push(" AND new_cert_serial_number = ");
            sql.bind(new_serial.to_owned());
            Ok(sql.execute(tx.conn()).await? == 1)
        }
        .await;
        if matches!(outcome, Ok(true)) {
            tx.record(Aggregate::AttestedNode, id, ChangeOp::Updated);
        }
        tx.finish(outcome).await
    }

    pub(crate) async fn delete_node_impl(&self, spiffe_id: &SpiffeId) -> DsResult<AttestedNode> {
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let id = spiffe_id.to_string();
            let filter = |sql: &mut Sql| {
                sql.push("spiffe_id = ").bind(id.clone());
            };
            let rows = delete_returning(
                tx.conn(),
                "spire_rs_attested_nodes",
                "spiffe_id",
                &NODE_COLUMNS.join(", "),
                &filter,
            )
            .await?;
            let row = rows
                .first()
                .ok_or_else(|| DsError::NotFound(NODE_NOT_FOUND.to_owned()))?;
            let mut node = node_from_row(row)?;
            node.selectors = selectors_of(tx.conn(), &id).await?;
            let mut sql = Sql::new("DELETE FROM spire_rs_node_selectors WHERE spiffe_id = ");
            sql.bind(id.clone());
            sql.execute(tx.conn()).await?;
            tx.record(Aggregate::AttestedNode, id, ChangeOp::Deleted);
            Ok(node)
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn set_node_selectors_impl(
        &self,
        spiffe_id: &SpiffeId,
        selectors: &SelectorSet,
    ) -> DsResult<()> {
        let mut tx = self.begin_write().await?;
        let id = spiffe_id.to_string();
        let outcome = replace_selectors(tx.conn(), &id, selectors).await;
        tx.record(Aggregate::AttestedNode, id, ChangeOp::Updated);
        tx.finish(outcome).await
    }
}

fn push_filters(sql: &mut Sql, request: &ListAttestedNodes) {
    sql.push(" WHERE 1 = 1");
    if let Some(attestation_type) = &request.by_attestation_type {
        sql.push(" AND n.attestation_type = ")
            .bind(attestation_type.clone());
    }
    match request.by_banned {
        Some(true) => {
            sql.push(" AND n.cert_serial_number = ''");
        }
        Some(false) => {
            sql.push(" AND n.cert_serial_number <> ''");
        }
        None => {}
    }
    if let Some(can_reattest) = request.by_can_reattest {
        sql.push(" AND n.can_reattest = ").bind(can_reattest);
    }
    if let Some(before) = request.by_expires_before {
        sql.push(" AND n.cert_not_after < ").bind(before);
    }
    if let Some(m) = &request.by_selectors {
        push_selector_filter(sql, &NODE_SELECTORS, &m.selectors, m.behavior);
    }
}

fn node_from_row(row: &AnyRow) -> DsResult<AttestedNode> {
    let id = get_string(row, "spiffe_id")?;
    Ok(AttestedNode {
        spiffe_id: SpiffeId::parse(&id)
            .map_err(|e| corrupt(format_args!("node ID {id:?}: {e}")))?,
        attestation_type: get_string(row, "attestation_type")?,
        cert_serial_number: get_string(row, "cert_serial_number")?,
        cert_not_after: get_i64(row, "cert_not_after")?,
        new_cert_serial_number: get_string(row, "new_cert_serial_number")?,
        new_cert_not_after: get_i64(row, "new_cert_not_after")?,
        can_reattest: get_bool(row, "can_reattest")?,
        selectors: SelectorSet::new(),
    })
}

async fn selectors_of(conn: &mut AnyConnection, id: &str) -> DsResult<SelectorSet> {
    let mut found = selectors_of_many(conn, &[id.to_owned()]).await?;
    Ok(found.remove(id).unwrap_or_default())
}

async fn selectors_of_many(
    conn: &mut AnyConnection,
    ids: &[String],
) -> DsResult<HashMap<String, SelectorSet>> {
    let mut out: HashMap<String, SelectorSet> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new(
            "SELECT spiffe_id, selector_type, selector_value FROM spire_rs_node_selectors WHERE spiffe_id IN ",
        );
        sql.bind_list(chunk.iter().cloned());
        for row in sql.fetch_all(conn).await? {
            let (t, v) = (
                get_string(&row, "selector_type")?,
                get_string(&row, "selector_value")?,
            );
            let selector = Selector::new(&t, &v)
                .map_err(|e| corrupt(format_args!("node selector {t:?}: {e}")))?;
            out.entry(get_string(&row, "spiffe_id")?)
                .or_default()
                .insert(selector);
        }
    }
    Ok(out)
}

pub(crate) async fn replace_selectors(
    conn: &mut AnyConnection,
    id: &str,
    selectors: &SelectorSet,
) -> DsResult<()> {
    let mut sql = Sql::new("DELETE FROM spire_rs_node_selectors WHERE spiffe_id = ");
    sql.bind(id.to_owned());
    sql.execute(conn).await?;
    let list: Vec<&Selector> = selectors.iter().collect();
    for chunk in list.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO spire_rs_node_selectors (spiffe_id, selector_type, selector_value) VALUES ",
        );
        for (i, selector) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(id.to_owned()).push(", ");
            sql.bind(selector.selector_type().to_owned()).push(", ");
            sql.bind(selector.value().to_owned()).push(")");
        }
        sql.execute(conn).await?;
    }
    Ok(())
}
