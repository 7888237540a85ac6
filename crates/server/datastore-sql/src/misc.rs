//! Join tokens and CA journals: small tables without change events.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use spire_server_datastore::{CaJournal, Error as DsError, JoinToken, Result as DsResult};

use crate::SqlStore;
use crate::db::{
    Backend, Sql, delete_returning, get_bytes, get_i64, get_string, insert_unless_exists,
    last_insert_id,
};

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn create_join_token_impl(&self, token: JoinToken) -> DsResult<()> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("INSERT INTO spire_rs_join_tokens (token, expires_at) VALUES (");
        sql.bind(token.token).push(", ").bind(token.expires_at);
        sql.push(")");
        let outcome = match insert_unless_exists(tx.conn(), sql).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DsError::AlreadyExists {
                message: "join token already exists".to_owned(),
                existing: None,
            }),
            Err(e) => Err(e),
        };
        tx.finish(outcome).await
    }

    pub(crate) async fn fetch_join_token_impl(&self, token: &str) -> DsResult<Option<JoinToken>> {
        let mut sql = Sql::new("SELECT token, expires_at FROM spire_rs_join_tokens WHERE token = ");
        sql.bind(token.to_owned());
        let mut conn = self.reader().await?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    /// One `DELETE … RETURNING` (a locked read and delete on MySQL): the database hands the
    /// row to exactly one caller.
    pub(crate) async fn take_join_token_impl(&self, token: &str) -> DsResult<Option<JoinToken>> {
        let mut tx = self.begin_write().await?;
        let filter = |sql: &mut Sql| {
            sql.push("token = ").bind(token.to_owned());
        };
        let outcome = match delete_returning(
            tx.conn(),
            "spire_rs_join_tokens",
            "token",
            "token, expires_at",
            &filter,
        )
        .await
        {
            Ok(rows) => rows.first().map(token_from_row).transpose(),
            Err(e) => Err(e),
        };
        tx.finish(outcome).await
    }

    pub(crate) async fn prune_join_tokens_impl(&self, expires_before: i64) -> DsResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("DELETE FROM spire_rs_join_tokens WHERE expires_at < ");
        sql.bind(expires_before);
        let outcome = sql.execute(tx.conn()).await;
        tx.finish(outcome).await
    }

    pub(crate) async fn set_ca_journal_impl(&self, mut journal: CaJournal) -> DsResult<CaJournal> {
        let mut tx = self.begin_write().await?;
        let mut sql;
        if journal.id == 0 {
            sql = Sql::new(
                "INSERT INTO spire_rs_ca_journals (active_x509_authority_id, data, updated_at) VALUES (",
            );
            sql.bind(journal.active_x509_authority_id.clone())
                .push(", ");
            sql.bind(journal.data.clone()).push(", ");
            sql.bind(journal.updated_at).push(")");
        } else {
            sql = Sql::new("UPDATE spire_rs_ca_journals SET active_x509_authority_id = ");
            sql.bind(journal.active_x509_authority_id.clone())
                .push(", data = ");
            sql.bind(journal.data.clone()).push(", updated_at = ");
            sql.bind(journal.updated_at).push(" WHERE id = ");
            sql.bind(journal.id);
        }
        let outcome = match write_journal(tx.conn(), sql, journal.id).await {
            Ok(Some(id)) => {
                journal.id = id;
                Ok(journal)
            }
            Ok(None) => Err(DsError::NotFound("ca journal not found".to_owned())),
            Err(e) => Err(e),
        };
        tx.finish(outcome).await
    }

    /// The newest journal written for this authority.
    pub(crate) async fn fetch_ca_journal_impl(
        &self,
        active_x509_authority_id: &str,
    ) -> DsResult<Option<CaJournal>> {
        let mut sql = Sql::new(
            "SELECT id, active_x509_authority_id, data, updated_at FROM spire_rs_ca_journals WHERE active_x509_authority_id = ",
        );
        sql.bind(active_x509_authority_id.to_owned())
            .push(" ORDER BY id DESC LIMIT 1");
        let mut conn = self.reader().await?;
        match sql.fetch_optional(&mut conn).await? {
            Some(row) => Ok(Some(CaJournal {
                id: get_i64(&row, "id")?,
                active_x509_authority_id: get_string(&row, "active_x509_authority_id")?,
                data: get_bytes(&row, "data")?,
                updated_at: get_i64(&row, "updated_at")?,
            })),
            None => Ok(None),
        }
    }

    pub(crate) async fn prune_ca_journals_impl(&self, before: i64) -> DsResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut sql = Sql::new("DELETE FROM spire_rs_ca_journals WHERE updated_at < ");
        sql.bind(before);
        let outcome = sql.execute(tx.conn()).await;
        tx.finish(outcome).await
    }
}

/// Runs the journal's INSERT (`id` 0) or UPDATE; its id, or `None` when no row was updated.
async fn write_journal(conn: &mut AnyConnection, mut sql: Sql, id: i64) -> DsResult<Option<i64>> {
    if Backend::of(conn) == Backend::Mysql {
        let written = sql.execute(conn).await?;
        return match (id, written) {
            (0, _) => last_insert_id(conn).await.map(Some),
            (_, 1) => Ok(Some(id)),
            _ => Ok(None),
        };
    }
    sql.push(" RETURNING id");
    sql.fetch_optional(conn)
        .await?
        .map(|row| get_i64(&row, "id"))
        .transpose()
}

fn token_from_row(row: &AnyRow) -> DsResult<JoinToken> {
    Ok(JoinToken {
        token: get_string(row, "token")?,
        expires_at: get_i64(row, "expires_at")?,
    })
}
