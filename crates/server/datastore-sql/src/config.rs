//! The `sql` datastore configuration as SPIRE spells it, and the translation of SPIRE's
//! connection strings into the URLs sqlx understands.
//!
//! SPIRE takes a file path or `file:` URI for SQLite and a libpq key=value DSN (or a URL) for
//! PostgreSQL; sqlx only parses URLs. The two small translators here close that gap.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// How to reach the database: SPIRE's `DataStore "sql"` plugin data.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SqlConfig {
    /// `sqlite3` or `postgres`.
    pub database_type: String,
    /// A file path or `file:` URI (sqlite3); a libpq DSN or `postgres://` URL (postgres).
    pub connection_string: String,
}

impl fmt::Debug for SqlConfig {
    // The connection string may carry a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("database_type", &self.database_type)
            .field("connection_string", &"<redacted>")
            .finish()
    }
}

/// A configuration resolved to what the store connects to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite database file (not yet created, canonicalised or URL-encoded).
    Sqlite(PathBuf),
    /// A PostgreSQL URL sqlx can parse.
    Postgres(String),
}

/// libpq parameters that have a query-parameter twin in sqlx's PostgreSQL URL.
const PG_PASSED_THROUGH: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
];

/// libpq parameters that are valid but that sqlx has no setting for: accepted and ignored.
const PG_IGNORED: &[&str] = &[
    "connect_timeout",
    "client_encoding",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "target_session_attrs",
    "gssencmode",
    "sslcompression",
    "sslcrl",
    "sslsni",
    "passfile",
    "krbsrvname",
    "require_auth",
];

// === impl SqlConfig ===

impl SqlConfig {
    /// A SQLite configuration for the database file at `path`.
    pub fn sqlite(path: impl AsRef<Path>) -> Self {
        Self {
            database_type: "sqlite3".to_owned(),
            connection_string: path.as_ref().to_string_lossy().into_owned(),
        }
    }

    /// A PostgreSQL configuration from a libpq DSN or a `postgres://` URL.
    pub fn postgres(connection_string: impl Into<String>) -> Self {
        Self {
            database_type: "postgres".to_owned(),
            connection_string: connection_string.into(),
        }
    }

    pub(crate) fn target(&self) -> Result<Target, Error> {
        match self.database_type.as_str() {
            "sqlite3" | "sqlite" => sqlite_path(&self.connection_string).map(Target::Sqlite),
            "postgres" | "postgresql" => {
                postgres_url(&self.connection_string).map(Target::Postgres)
            }
            other => Err(Error::Config(format!(
                "unsupported database_type \"{other}\" (expected \"sqlite3\" or \"postgres\")"
            ))),
        }
    }
}

/// The database file named by a SPIRE sqlite3 connection string: a plain path, or a `file:`
/// URI whose query (go-sqlite3 options such as `_busy_timeout`) is ignored because the store
/// sets its own pragmas.
pub(crate) fn sqlite_path(connection_string: &str) -> Result<PathBuf, Error> {
    let s = connection_string.trim();
    let (uri, rest) = match s.strip_prefix("file:") {
        Some(rest) => (true, rest),
        None => (
            false,
            s.strip_prefix("sqlite://")
                .or_else(|| s.strip_prefix("sqlite:"))
                .unwrap_or(s),
        ),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = if uri {
        // file://localhost/abs, file:///abs and file:/abs all name /abs.
        let path = match path.strip_prefix("//") {
            Some(authority_and_path) => match authority_and_path.find('/') {
                Some(0) => authority_and_path,
                Some(i) if &authority_and_path[..i] == "localhost" => &authority_and_path[i..],
                _ => {
                    return Err(Error::Config(format!(
                        "sqlite URI \"{connection_string}\" names a remote host"
                    )));
                }
            },
            None => path,
        };
        percent_decode(path)?
    } else {
        path.to_owned()
    };
    for (key, value) in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
    {
        if key == "mode" && value == "memory" {
            return Err(Error::Config(
                "in-memory sqlite databases are not supported".to_owned(),
            ));
        }
        tracing::debug!(key, value, "ignoring sqlite connection string option");
    }
    if path.is_empty() {
        return Err(Error::Config(
            "sqlite connection string names no file".to_owned(),
        ));
    }
    if path == ":memory:" {
        return Err(Error::Config(
            "in-memory sqlite databases are not supported".to_owned(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// The sqlx URL of an existing, absolute database file.
pub(crate) fn sqlite_url(absolute: &Path) -> Result<String, Error> {
    let path = absolute
        .to_str()
        .ok_or_else(|| Error::Config(format!("sqlite path {} is not UTF-8", absolute.display())))?;
    Ok(format!("sqlite://{}?mode=rwc", percent_encode(path, b"/")))
}

/// A sqlx PostgreSQL URL from a `postgres://` URL (kept as is) or a libpq key=value DSN
/// (`dbname=spire user=postgres host=127.0.0.1 password='x y'`), whose parameters become URL
/// query parameters.
pub(crate) fn postgres_url(connection_string: &str) -> Result<String, Error> {
    let s = connection_string.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(s.to_owned());
    }
    let mut query = Vec::new();
    for (key, value) in parse_dsn(s)? {
        if PG_PASSED_THROUGH.contains(&key.as_str()) {
            query.push(format!("{key}={}", percent_encode(&value, b"")));
        } else if PG_IGNORED.contains(&key.as_str()) {
            tracing::warn!(
                key,
                "ignoring postgres connection parameter that sqlx does not support"
            );
        } else {
            return Err(Error::Config(format!(
                "invalid connection option \"{key}\""
            )));
        }
    }
    // No authority: sqlx then keeps its libpq-like defaults (PGHOST, the local socket, …) for
    // whatever the DSN leaves out.
    Ok(format!("postgres:?{}", query.join("&")))
}

/// Splits a libpq DSN into its `key=value` pairs. Values may be single-quoted; a backslash
/// escapes the next character, in quotes or not.
fn parse_dsn(dsn: &str) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::Config(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some(c) => value.push(c),
                    None => {
                        return Err(Error::Config(
                            "unterminated quoted string in connection info string".to_owned(),
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set and `keep`.
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Config(format!("bad percent-encoding in \"{s}\"")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Config(format!("\"{s}\" is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgSslMode};

    use super::*;

    fn path(s: &str) -> String {
        sqlite_path(s).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn sqlite_plain_paths_are_kept() {
        assert_eq!(
            path("/run/spire/data/datastore.sqlite3"),
            "/run/spire/data/datastore.sqlite3"
        );
        assert_eq!(path("./data/datastore.sqlite3"), "./data/datastore.sqlite3");
        assert_eq!(path("data.db?_busy_timeout=5000"), "data.db");
    }

    #[test]
    fn sqlite_file_uris_are_decoded() {
        assert_eq!(
            path("file:/tmp/a%20b.db?cache=shared&_journal_mode=WAL"),
            "/tmp/a b.db"
        );
        assert_eq!(path("file:///tmp/x.db"), "/tmp/x.db");
        assert_eq!(path("file://localhost/tmp/x.db"), "/tmp/x.db");
        assert_eq!(path("file:rel/x.db?mode=rwc"), "rel/x.db");
        assert!(sqlite_path("file://otherhost/tmp/x.db").is_err());
        assert!(sqlite_path("file:/tmp/%zz").is_err());
    }

    #[test]
    fn sqlite_rejects_memory_and_empty() {
        for bad in ["", "  ", ":memory:", "file::memory:", "file:x?mode=memory"] {
            assert!(sqlite_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_url_encodes_special_characters() {
        let url = sqlite_url(Path::new("/tmp/a b?#%.db")).unwrap();
        assert_eq!(url, "sqlite:///tmp/a%20b%3F%23%25.db?mode=rwc");
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap();
        assert_eq!(opts.get_filename(), Path::new("/tmp/a b?#%.db"));
    }

    fn pg(dsn: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(&postgres_url(dsn).unwrap()).unwrap()
    }

    #[test]
    fn postgres_dsn_becomes_url() {
        let o = pg(
            "dbname=spire user=postgres host=127.0.0.1 port=5433 sslmode=disable password='x y'",
        );
        assert_eq!(o.get_database(), Some("spire"));
        assert_eq!(o.get_username(), "postgres");
        assert_eq!(o.get_host(), "127.0.0.1");
        assert_eq!(o.get_port(), 5433);
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Disable));
        // The password is not readable back; check the URL carries it encoded instead.
        assert!(
            postgres_url("password='x y'")
                .unwrap()
                .contains("password=x%20y")
        );
    }

    #[test]
    fn postgres_dsn_quoting_and_spacing() {
        let pairs = parse_dsn(r"  a = 1   b='it\'s  here' c=back\\slash d='' e=p&q+r ").unwrap();
        let want = [
            ("a", "1"),
            ("b", "it's  here"),
            ("c", r"back\slash"),
            ("d", ""),
            ("e", "p&q+r"),
        ];
        assert_eq!(
            pairs,
            want.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        );
        let o = pg("application_name=spire user='a+b&c'");
        assert_eq!(o.get_username(), "a+b&c");
        assert_eq!(o.get_application_name(), Some("spire"));
    }

    #[test]
    fn postgres_dsn_errors() {
        assert!(postgres_url("dbname").is_err());
        assert!(postgres_url("password='open").is_err());
        assert!(postgres_url("bogus_option=1").is_err());
        assert!(postgres_url("connect_timeout=10 dbname=x").is_ok());
    }

    #[test]
    fn postgres_urls_pass_through() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(postgres_url(url).unwrap(), url);
        assert_eq!(
            postgres_url("postgresql://h/db").unwrap(),
            "postgresql://h/db"
        );
    }

    #[test]
    fn database_type_is_checked() {
        let config = SqlConfig {
            database_type: "mysql".to_owned(),
            connection_string: "x".to_owned(),
        };
        assert!(matches!(config.target(), Err(Error::Config(m)) if m.contains("mysql")));
        assert!(matches!(
            SqlConfig::sqlite("/x.db").target(),
            Ok(Target::Sqlite(_))
        ));
        assert!(matches!(
            SqlConfig::postgres("dbname=x").target(),
            Ok(Target::Postgres(_))
        ));
    }

    #[test]
    fn debug_redacts_the_connection_string() {
        let config = SqlConfig::postgres("password=secret");
        assert!(!format!("{config:?}").contains("secret"));
    }
}
