//! The `sql` datastore configuration as SPIRE spells it, and the translation of SPIRE's
//! connection strings into the URLs sqlx understands.
//!
//! SPIRE takes a file path or `file:` URI for SQLite, a libpq key=value DSN (or a URL) for
//! PostgreSQL and a Go MySQL driver DSN (`user:pass@tcp(host:port)/db?parseTime=true`) for
//! MySQL; sqlx only parses URLs. The small translators here close that gap.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// How to reach the database: SPIRE's `DataStore "sql"` plugin data.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SqlConfig {
    /// `sqlite3`, `postgres` or `mysql`.
    pub database_type: String,
    /// A file path or `file:` URI (sqlite3); a libpq DSN or `postgres://` URL (postgres); a Go
    /// MySQL DSN or `mysql://` URL (mysql).
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
    /// A MySQL URL sqlx can parse.
    Mysql(String),
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

    /// A MySQL (or MariaDB) configuration from a Go MySQL DSN or a `mysql://` URL.
    pub fn mysql(connection_string: impl Into<String>) -> Self {
        Self {
            database_type: "mysql".to_owned(),
            connection_string: connection_string.into(),
        }
    }

    pub(crate) fn target(&self) -> Result<Target, Error> {
        match self.database_type.as_str() {
            "sqlite3" | "sqlite" => sqlite_path(&self.connection_string).map(Target::Sqlite),
            "postgres" | "postgresql" => {
                postgres_url(&self.connection_string).map(Target::Postgres)
            }
            "mysql" => mysql_url(&self.connection_string).map(Target::Mysql),
            other => Err(Error::Config(format!(
                "unsupported database_type \"{other}\" (expected \"sqlite3\", \"postgres\" or \"mysql\")"
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

/// Go MySQL driver parameters that are valid but change nothing here (the store keeps times as
/// integers and sets its own session options): accepted and ignored.
const MYSQL_IGNORED: &[&str] = &[
    "parseTime",
    "loc",
    "timeout",
    "readTimeout",
    "writeTimeout",
    "allowNativePasswords",
    "allowCleartextPasswords",
    "allowOldPasswords",
    "checkConnLiveness",
    "clientFoundRows",
    "columnsWithAlias",
    "interpolateParams",
    "maxAllowedPacket",
    "multiStatements",
    "rejectReadOnly",
    "serverPubKey",
    "time_zone",
    "autocommit",
    "sql_mode",
    "transaction_isolation",
    "tx_isolation",
];

/// A sqlx MySQL URL from a `mysql://` URL (kept as is) or a Go MySQL driver DSN,
/// `[user[:password]@][net[(addr)]]/dbname[?param=value&…]`: `net` is `tcp` (`addr`
/// `host[:port]`, default `127.0.0.1:3306`) or `unix` (`addr` a socket path); `charset`,
/// `collation` and `tls` (`false`, `preferred`) become sqlx's `charset`, `collation` and `ssl-mode`.
pub(crate) fn mysql_url(connection_string: &str) -> Result<String, Error> {
    let s = connection_string.trim();
    if s.starts_with("mysql://") || s.starts_with("mariadb://") {
        return Ok(s.to_owned());
    }
    let bad = |why: &str| Error::Config(format!("invalid MySQL DSN: {why}"));
    // The database name follows the last '/' (a password or socket path may hold others, but
    // the name may not).
    let slash = s
        .rfind('/')
        .ok_or_else(|| bad("missing the slash before the database name"))?;
    let (head, tail) = (&s[..slash], &s[slash + 1..]);
    let (dbname, params) = match tail.split_once('?') {
        Some((db, params)) => (db, Some(params)),
        None => (tail, None),
    };
    let (userinfo, address) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (info, None),
        },
        None => ("", None),
    };
    let (net, addr) = match address.split_once('(') {
        Some((net, rest)) => (
            net,
            rest.strip_suffix(')')
                .ok_or_else(|| bad("the address must be closed by ')'"))?,
        ),
        None => (address, ""),
    };
    let mut query = Vec::new();
    let authority = match net {
        "" | "tcp" | "tcp4" | "tcp6" => {
            if addr.is_empty() {
                "127.0.0.1:3306".to_owned()
            } else if addr.starts_with('[') || addr.matches(':').count() <= 1 {
                addr.to_owned()
            } else {
                // A bare IPv6 address without a port.
                format!("[{addr}]")
            }
        }
        "unix" => {
            let socket = if addr.is_empty() {
                "/tmp/mysql.sock"
            } else {
                addr
            };
            query.push(format!("socket={}", percent_encode(socket, b"/")));
            "localhost".to_owned()
        }
        other => return Err(bad(&format!("unknown network type \"{other}\""))),
    };
    for pair in params
        .into_iter()
        .flat_map(|p| p.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(&format!("invalid parameter \"{pair}\"")))?;
        let value = percent_decode(&value.replace('+', " "))?;
        match key {
            "charset" => {
                // A list means "the first the server supports"; sqlx takes one.
                let first = value.split(',').next().unwrap_or_default();
                query.push(format!("charset={}", percent_encode(first, b"")));
            }
            "collation" => query.push(format!("collation={}", percent_encode(&value, b""))),
            "tls" => {
                // sqlx is built without TLS: a connection that must be encrypted cannot be made.
                let mode = match value.as_str() {
                    "false" => "DISABLED",
                    "preferred" => "PREFERRED",
                    other => {
                        return Err(bad(&format!(
                            "tls=\"{other}\": connections to MySQL are unencrypted in spire-rs (tls=false or tls=preferred)"
                        )));
                    }
                };
                query.push(format!("ssl-mode={mode}"));
            }
            key if MYSQL_IGNORED.contains(&key) => {
                tracing::debug!(key, "ignoring MySQL connection parameter");
            }
            other => return Err(bad(&format!("unknown parameter \"{other}\""))),
        }
    }
    let mut url = String::from("mysql://");
    if !user.is_empty() || password.is_some() {
        url.push_str(&percent_encode(user, b""));
        if let Some(password) = password {
            url.push(':');
            url.push_str(&percent_encode(password, b""));
        }
        url.push('@');
    }
    url.push_str(&authority);
    url.push('/');
    // The Go driver reads the name as a URL path segment.
    url.push_str(&percent_encode(&percent_decode(dbname)?, b""));
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(url)
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

    fn my(dsn: &str) -> sqlx::mysql::MySqlConnectOptions {
        sqlx::mysql::MySqlConnectOptions::from_str(&mysql_url(dsn).unwrap()).unwrap()
    }

    #[test]
    fn mysql_go_dsn_becomes_url() {
        let o =
            my("spire:p@ss:w/rd@tcp(db.example:3307)/spire?parseTime=true&charset=utf8mb4,utf8");
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 3307);
        assert_eq!(o.get_username(), "spire");
        assert_eq!(o.get_database(), Some("spire"));
        assert_eq!(o.get_charset(), "utf8mb4");
        assert!(
            mysql_url("u:p%2F@tcp(h)/d")
                .unwrap()
                .contains("u:p%252F@h/d")
        );
        let o = my("root@tcp(127.0.0.1)/test");
        assert_eq!((o.get_host(), o.get_port()), ("127.0.0.1", 3306));
        let o = my("/test");
        assert_eq!((o.get_host(), o.get_port()), ("127.0.0.1", 3306));
        assert_eq!(o.get_database(), Some("test"));
        let o = my("u@unix(/run/mysqld/mysqld.sock)/d?loc=Local");
        assert_eq!(
            o.get_socket().map(|p| p.as_path()),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        let o = my("u@tcp([::1]:3306)/d?tls=false");
        assert_eq!(o.get_host(), "[::1]");
        assert!(
            mysql_url("u@tcp(h)/d?tls=preferred")
                .unwrap()
                .contains("ssl-mode=PREFERRED")
        );
        assert!(
            mysql_url("u@tcp(h)/d?tls=true").is_err(),
            "no TLS is built in"
        );
    }

    #[test]
    fn mysql_dsn_errors_and_urls() {
        assert!(mysql_url("no-slash").is_err());
        assert!(mysql_url("u@tcp(h/d").is_err());
        assert!(mysql_url("u@udp(h)/d").is_err());
        assert!(mysql_url("u@tcp(h)/d?bogus=1").is_err());
        assert!(mysql_url("u@tcp(h)/d?tls=custom").is_err());
        let url = "mysql://root@127.0.0.1:3306/test";
        assert_eq!(mysql_url(url).unwrap(), url);
        assert!(matches!(
            SqlConfig::mysql("root@tcp(127.0.0.1:3306)/test?parseTime=true").target(),
            Ok(Target::Mysql(_))
        ));
    }

    #[test]
    fn database_type_is_checked() {
        let config = SqlConfig {
            database_type: "oracle".to_owned(),
            connection_string: "x".to_owned(),
        };
        assert!(matches!(config.target(), Err(Error::Config(m)) if m.contains("oracle")));
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
