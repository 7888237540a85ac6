//! The thin layer over sqlx's `Any` driver that every aggregate module uses: a statement
//! builder that renders each backend's placeholders, write transactions that record change events, and row
//! getters that hide the backends' few type differences.

use std::fmt::Write as _;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyConnection, Arguments, AssertSqlSafe, Encode, Row, Transaction, Type};
use tokio::sync::MutexGuard;

use spire_server_datastore::{Aggregate, ChangeOp, Error as DsError, Result as DsResult};

/// Rows per multi-row INSERT and values per `IN (…)` list. The largest insert binds 17
/// values a row (8 500 in all), well under SQLite's 32 766 and PostgreSQL's 65 535 limits.
pub(crate) const CHUNK: usize = 500;

/// Which SQL dialect is behind the `Any` pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    /// MySQL 8.0 or MariaDB 10.11+: no `RETURNING` on `UPDATE` (nor on `INSERT`/`DELETE` in
    /// MySQL), no `ON CONFLICT`; the statements that use them take another path there.
    Mysql,
}

impl Backend {
    /// Row-lock suffix for a SELECT that precedes an update. SQLite has a single writer (and
    /// `BEGIN IMMEDIATE`), so it needs none.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres | Self::Mysql => " FOR UPDATE",
        }
    }

    /// The backend behind an `Any` connection.
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        match conn.backend_name() {
            "PostgreSQL" => Self::Postgres,
            "MySQL" => Self::Mysql,
            _ => Self::Sqlite,
        }
    }
}

/// A statement under construction. Each `bind` marks a placeholder, rendered when the
/// statement runs: `$1, $2, …` on PostgreSQL and `?` on SQLite and MySQL. (SQLite treats `$n` as a
/// *named* parameter and looks names up in a list, which made binding the ~8 000 values of a
/// 500-row insert quadratic: 75% of the time in an early benchmark. sqlx's own
/// `QueryBuilder` emits `?` for `Any`, which PostgreSQL rejects.) Placeholders are used once
/// each, in order, so both forms bind the same values.
pub(crate) struct Sql {
    text: String,
    /// Byte offsets in `text` where a placeholder goes.
    marks: Vec<usize>,
    args: AnyArguments,
    error: Option<BoxDynError>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            marks: Vec::new(),
            args: AnyArguments::default(),
            error: None,
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds a value and writes its placeholder.
    pub(crate) fn bind<'a, T: Encode<'a, Any> + Type<Any> + 'a>(&mut self, value: T) -> &mut Self {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self.marks.push(self.text.len());
        self
    }

    /// Writes `(p1, p2, …)` binding each item.
    pub(crate) fn bind_list<'a, T, I>(&mut self, items: I) -> &mut Self
    where
        T: Encode<'a, Any> + Type<Any> + 'a,
        I: IntoIterator<Item = T>,
    {
        self.text.push('(');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(item);
        }
        self.text.push(')');
        self
    }

    /// The text for `conn`'s backend, and the arguments.
    fn into_parts(self, conn: &AnyConnection) -> Result<(String, AnyArguments), BoxDynError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let numbered = Backend::of(conn) == Backend::Postgres;
        let mut text = String::with_capacity(self.text.len() + self.marks.len() * 6);
        let mut from = 0;
        for (i, &mark) in self.marks.iter().enumerate() {
            text.push_str(&self.text[from..mark]);
            if numbered {
                let _ = write!(text, "${}", i + 1);
            } else {
                text.push('?');
            }
            from = mark;
        }
        text.push_str(&self.text[from..]);
        Ok((text, self.args))
    }

    /// Runs it and returns every row.
    pub(crate) async fn fetch_all(self, conn: &mut AnyConnection) -> DsResult<Vec<AnyRow>> {
        let (text, args) = self.into_parts(conn).map_err(backend)?;
        sqlx::query_with::<Any, _>(AssertSqlSafe(text), args)
            .fetch_all(conn)
            .await
            .map_err(backend)
    }

    /// Runs it and returns the first row, if any.
    pub(crate) async fn fetch_optional(self, conn: &mut AnyConnection) -> DsResult<Option<AnyRow>> {
        let (text, args) = self.into_parts(conn).map_err(backend)?;
        sqlx::query_with::<Any, _>(AssertSqlSafe(text), args)
            .fetch_optional(conn)
            .await
            .map_err(backend)
    }

    /// Runs it and returns the number of rows it touched.
    pub(crate) async fn execute(self, conn: &mut AnyConnection) -> DsResult<u64> {
        self.execute_raw(conn).await.map_err(backend)
    }

    /// Like [`Self::execute`], keeping sqlx's error so callers can look for constraint names.
    pub(crate) async fn execute_raw(self, conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        let (text, args) = self.into_parts(conn).map_err(sqlx::Error::Encode)?;
        let done = sqlx::query_with::<Any, _>(AssertSqlSafe(text), args)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }
}

/// A write transaction. Change events are collected while it runs and written by
/// [`WriteTx::commit`], which takes the revision counter's row lock as its very last step.
pub(crate) struct WriteTx<'s> {
    // Dropped first: an abandoned transaction queues its rollback before the SQLite writer
    // lock below is released.
    tx: Transaction<'static, Any>,
    events: Vec<(Aggregate, String, ChangeOp)>,
    now: i64,
    _writer: Option<MutexGuard<'s, ()>>,
}

impl<'s> WriteTx<'s> {
    pub(crate) fn new(
        tx: Transaction<'static, Any>,
        now: i64,
        writer: Option<MutexGuard<'s, ()>>,
    ) -> Self {
        Self {
            tx,
            events: Vec::new(),
            now,
            _writer: writer,
        }
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Records a change event, written at commit.
    pub(crate) fn record(&mut self, aggregate: Aggregate, key: impl Into<String>, op: ChangeOp) {
        self.events.push((aggregate, key.into(), op));
    }

    /// Opens a savepoint: rolling it back after a failed statement keeps the transaction
    /// usable (PostgreSQL would otherwise refuse every later statement).
    pub(crate) async fn savepoint(&mut self) -> DsResult<Transaction<'_, Any>> {
        sqlx::Acquire::begin(&mut *self.tx).await.map_err(backend)
    }

    /// Commits `result`'s work, or rolls back when it is an error.
    pub(crate) async fn finish<T>(self, result: DsResult<T>) -> DsResult<T> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The rollback's own failure is secondary; report the first error.
                if let Err(rollback) = self.tx.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }

    /// Allocates gap-free revisions for the recorded events, inserts them, and commits.
    pub(crate) async fn commit(mut self) -> DsResult<()> {
        if !self.events.is_empty() {
            let count = i64::try_from(self.events.len()).map_err(backend)?;
            let mut sql = Sql::new("UPDATE spire_rs_revision_counter SET revision = revision + ");
            sql.bind(count).push(" WHERE id = 1");
            let row = if Backend::of(&self.tx) == Backend::Mysql {
                // No UPDATE … RETURNING: read the row back under the lock the UPDATE holds.
                sql.execute(&mut self.tx).await?;
                Sql::new("SELECT revision FROM spire_rs_revision_counter WHERE id = 1")
                    .fetch_optional(&mut self.tx)
                    .await?
            } else {
                sql.push(" RETURNING revision");
                sql.fetch_optional(&mut self.tx).await?
            }
            .ok_or_else(|| corrupt("revision counter row is missing"))?;
            let last = get_i64(&row, "revision")?;
            let mut revision = last - count;
            let events = std::mem::take(&mut self.events);
            for chunk in events.chunks(CHUNK) {
                let mut sql = Sql::new(
                    "INSERT INTO spire_rs_change_events (revision, aggregate, record_key, op, created_at) VALUES ",
                );
                for (i, (aggregate, key, op)) in chunk.iter().enumerate() {
                    revision += 1;
                    sql.push(if i == 0 { "(" } else { ", (" });
                    sql.bind(revision).push(", ");
                    sql.bind(aggregate.as_str()).push(", ");
                    sql.bind(key.as_str()).push(", ");
                    sql.bind(op.as_str()).push(", ");
                    sql.bind(self.now).push(")");
                }
                sql.execute(&mut self.tx).await?;
            }
        }
        self.tx.commit().await.map_err(backend)
    }
}

/// `DELETE FROM {table} WHERE {filter} RETURNING {returning}`. MySQL has no
/// `DELETE … RETURNING`: there the rows are read by a locking `SELECT` and deleted by `key` (a
/// unique text column among `returning`), so a matching row another server commits in between
/// is neither deleted nor reported (the store runs MySQL at READ COMMITTED, as PostgreSQL's
/// default, which takes no gap locks). `filter` writes the condition.
pub(crate) async fn delete_returning(
    conn: &mut AnyConnection,
    table: &str,
    key: &str,
    returning: &str,
    filter: &(dyn Fn(&mut Sql) + Sync),
) -> DsResult<Vec<AnyRow>> {
    if Backend::of(conn) != Backend::Mysql {
        let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE "));
        filter(&mut sql);
        sql.push(" RETURNING ").push(returning);
        return sql.fetch_all(conn).await;
    }
    let mut select = Sql::new(&format!("SELECT {returning} FROM {table} WHERE "));
    filter(&mut select);
    select.push(" FOR UPDATE");
    let rows = select.fetch_all(conn).await?;
    let keys = rows
        .iter()
        .map(|row| get_string(row, key))
        .collect::<DsResult<Vec<_>>>()?;
    for chunk in keys.chunks(CHUNK) {
        let mut delete = Sql::new(&format!("DELETE FROM {table} WHERE {key} IN "));
        delete.bind_list(chunk.iter().cloned());
        delete.execute(conn).await?;
    }
    Ok(rows)
}

/// Runs a one-row `INSERT … VALUES (…)`; false when a row with one of its unique keys exists.
/// PostgreSQL and SQLite skip the row with `ON CONFLICT DO NOTHING`; MySQL has no such clause
/// (and `INSERT IGNORE` would also turn a too-long value into a silent truncation), but a
/// failed statement there undoes only itself, so the duplicate-key error is the answer.
pub(crate) async fn insert_unless_exists(conn: &mut AnyConnection, mut sql: Sql) -> DsResult<bool> {
    if Backend::of(conn) != Backend::Mysql {
        sql.push(" ON CONFLICT DO NOTHING");
        return Ok(sql.execute(conn).await? == 1);
    }
    match sql.execute_raw(conn).await {
        Ok(n) => Ok(n == 1),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(backend(e)),
    }
}

/// The `AUTO_INCREMENT` value of the last row this MySQL connection inserted.
pub(crate) async fn last_insert_id(conn: &mut AnyConnection) -> DsResult<i64> {
    let row = Sql::new("SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id")
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| corrupt("LAST_INSERT_ID() returned no row"))?;
    get_i64(&row, "id")
}

/// Wraps a database failure.
pub(crate) fn backend(e: impl Into<BoxDynError>) -> DsError {
    DsError::Backend(e.into())
}

/// A stored value the store cannot read back.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> DsError {
    DsError::Backend(format!("corrupt datastore row: {what}").into())
}

/// True when the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn get_i64(row: &AnyRow, column: &str) -> DsResult<i64> {
    row.try_get::<i64, _>(column).map_err(backend)
}

pub(crate) fn get_i32(row: &AnyRow, column: &str) -> DsResult<i32> {
    row.try_get::<i32, _>(column).map_err(backend)
}

/// Text columns are binary strings on MySQL (exact byte comparison, as `COLLATE "C"` on
/// PostgreSQL), which sqlx hands over as bytes: those are read as UTF-8.
pub(crate) fn get_string(row: &AnyRow, column: &str) -> DsResult<String> {
    get_opt_string(row, column)?.ok_or_else(|| corrupt(format_args!("{column} is NULL")))
}

/// [`get_string`] for a column that may be NULL (an outer join's).
pub(crate) fn get_opt_string(row: &AnyRow, column: &str) -> DsResult<Option<String>> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(text) => Ok(text),
        Err(text_error) => match row.try_get::<Option<Vec<u8>>, _>(column) {
            Ok(bytes) => bytes
                .map(|b| String::from_utf8(b).map_err(|e| corrupt(format_args!("{column}: {e}"))))
                .transpose(),
            Err(_) => Err(backend(text_error)),
        },
    }
}

pub(crate) fn get_bytes(row: &AnyRow, column: &str) -> DsResult<Vec<u8>> {
    row.try_get::<Vec<u8>, _>(column).map_err(backend)
}

/// Booleans are BOOLEAN on PostgreSQL and INTEGER 0/1 on SQLite.
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> DsResult<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(get_i64(row, column)? != 0),
    }
}

/// Page tokens of lists ordered by a text key: the hex of the last key returned.
pub(crate) fn text_token(key: &str) -> String {
    hex::encode(key)
}

/// Parses a [`text_token`]; empty means the first page.
pub(crate) fn parse_text_token(token: &str) -> DsResult<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| bad_token(token))
}

pub(crate) fn bad_token(token: &str) -> DsError {
    DsError::InvalidArgument(format!("could not parse token '{token}'"))
}

/// `LIMIT` for a page: one more than asked, to learn whether another page follows.
pub(crate) fn push_limit(sql: &mut Sql, page_size: u32) {
    if page_size > 0 {
        sql.push(" LIMIT ").bind(i64::from(page_size) + 1);
    }
}

/// Cuts the look-ahead row off a page and tells whether there is more.
pub(crate) fn split_page<T>(mut items: Vec<T>, page_size: u32) -> (Vec<T>, bool) {
    let limit = usize::try_from(page_size).unwrap_or(usize::MAX);
    if page_size > 0 && items.len() > limit {
        items.truncate(limit);
        (items, true)
    } else {
        (items, false)
    }
}

/// Writes `a, b, c` column lists with a table alias prefix.
pub(crate) fn columns(alias: &str, names: &[&str]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{alias}.{name}");
    }
    out
}
