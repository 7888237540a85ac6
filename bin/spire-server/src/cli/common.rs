//! What every admin-API client command shares: the `-socketPath`/`-instance` flags and the
//! environment overrides, the gRPC channel over the Unix socket, Go-style flag values (bools,
//! durations), `-output`, SPIRE's wording for gRPC errors, and the injected standard streams.

use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};
use hyper_util::rt::TokioIo;
use spire_proto::spire::api::types::{SelectorMatch, selector_match};
use tonic::Status;
use tonic::transport::{Channel, Endpoint, Uri};

/// SPIRE's default admin socket.
pub(crate) const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";
/// Overrides the default socket path (not an explicit `-socketPath`).
pub(crate) const SOCKET_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET";
/// Socket path template with `%i`, filled from `-instance`.
pub(crate) const SOCKET_TEMPLATE_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE";

/// The standard streams a command writes to, injected so output is testable.
pub(crate) struct Io<'a> {
    /// Standard output.
    pub(crate) out: &'a mut dyn Write,
    /// Standard error.
    pub(crate) err: &'a mut dyn Write,
    /// Standard input (`-data -`, `bundle set` without `-path`).
    pub(crate) stdin: &'a mut dyn Read,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// A failure the command already reported on stderr in SPIRE's words; `main` exits 1 without
/// printing `Error: …` again (e.g. `Server is unhealthy: …`).
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub(crate) struct Reported;

/// `-socketPath` and `-instance`, accepted by every client command.
#[derive(Debug, Clone, Args)]
pub(crate) struct SocketArgs {
    /// Admin API socket to connect to
    #[arg(long = "socketPath", value_name = "string", default_value = DEFAULT_SOCKET_PATH)]
    pub(crate) socket_path: String,
    /// Name that replaces %i in $SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to locate the socket
    #[arg(long = "instance", value_name = "string", default_value = "")]
    pub(crate) instance: String,
}

impl SocketArgs {
    /// The socket to dial, as SPIRE picks it: an explicit `-socketPath` (anything but the
    /// default), then `-instance` through the template, then `SPIRE_SERVER_PRIVATE_SOCKET`,
    /// then the default.
    pub(crate) fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
        let template = env(SOCKET_TEMPLATE_ENV).unwrap_or_default();
        let socket = env(SOCKET_ENV).unwrap_or_default();
        if !self.instance.is_empty() {
            if template.is_empty() {
                bail!("you must define {SOCKET_TEMPLATE_ENV} to use the instance flag");
            }
            if !template.contains("%i") {
                bail!("failed to find %i in {SOCKET_TEMPLATE_ENV}");
            }
        }
        let path = if self.socket_path != DEFAULT_SOCKET_PATH {
            self.socket_path.clone()
        } else if !self.instance.is_empty() {
            template.replace("%i", &self.instance)
        } else if !socket.is_empty() {
            socket
        } else {
            DEFAULT_SOCKET_PATH.to_owned()
        };
        Ok(PathBuf::from(path))
    }

    /// Resolves the socket from the process environment and dials it.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let path = self.resolve(|name| std::env::var(name).ok())?;
        Ok(Client::connect(&path).await)
    }
}

/// A channel to the admin socket, or the dial failure that every RPC then reports (gRPC-Go
/// dials lazily, so SPIRE's errors name the RPC that could not reach the server).
#[derive(Debug)]
pub(crate) struct Client {
    channel: Result<Channel, Status>,
}

impl Client {
    /// Dials `path`; a failure is kept and returned by [`Client::channel`].
    pub(crate) async fn connect(path: &Path) -> Self {
        let channel = match tokio::net::UnixStream::connect(path).await {
            Err(e) => Err(dial_error(path, &e)),
            Ok(probe) => {
                drop(probe);
                let owned = path.to_owned();
                let connector = tower::service_fn(move |_: Uri| {
                    let path = owned.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, io::Error>(TokioIo::new(stream))
                    }
                });
                Endpoint::from_static("http://localhost")
                    .connect_with_connector(connector)
                    .await
                    .map_err(|e| {
                        Status::unavailable(format!("connection error: desc = \"transport: {e}\""))
                    })
            }
        };
        Self { channel }
    }

    /// The channel, or the dial failure as a gRPC status.
    pub(crate) fn channel(&self) -> Result<Channel, Status> {
        self.channel.clone()
    }
}

fn dial_error(path: &Path, e: &io::Error) -> Status {
    Status::unavailable(format!(
        "connection error: desc = \"transport: error while dialing: dial unix {}: connect: {}\"",
        path.display(),
        go_errno_text(e)
    ))
}

/// The lowercase errno text Go prints (`no such file or directory`), without Rust's
/// ` (os error N)` suffix.
fn go_errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// gRPC-Go's name for a status code (`codes.Code.String()`).
pub(crate) fn code_name(code: i32) -> String {
    let name = match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        other => return format!("Code({other})"),
    };
    name.to_owned()
}

/// A failed RPC as gRPC-Go formats it: `rpc error: code = NotFound desc = entry not found`.
pub(crate) fn rpc_error(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code() as i32),
        status.message()
    )
}

/// Turns a status into the command's error, optionally prefixed as SPIRE wraps it.
pub(crate) fn rpc_err(prefix: &str, status: &Status) -> anyhow::Error {
    anyhow::anyhow!("{prefix}{}", rpc_error(status))
}

/// `-output pretty|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable text (the default).
    #[default]
    Pretty,
    /// protojson of the RPC response.
    Json,
}

/// The `-output` flag.
#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    /// How to print the result: pretty (text) or json (the API response)
    #[arg(
        long = "output",
        value_name = "value",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub(crate) output: OutputFormat,
}

/// Parses a Go `strconv.ParseBool` value, as Go's `flag` does for `-flag=value`.
pub(crate) fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean value {s:?}")),
    }
}

/// Parses a Go integer flag value (decimal, `0x`/`0o`/`0b` prefixes, `_` separators), as
/// `flag.IntVar` does through `strconv.ParseInt(s, 0, …)`.
pub(crate) fn go_i64(s: &str) -> Result<i64, String> {
    let bad = || format!("parse error: invalid value {s:?}");
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        Some("0o" | "0O") => (8, &digits[2..]),
        Some("0b" | "0B") => (2, &digits[2..]),
        _ if digits.len() > 1 && digits.starts_with('0') => (8, &digits[1..]),
        _ => (10, digits),
    };
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(bad());
    }
    let magnitude = i128::from_str_radix(&cleaned, radix).map_err(|_| bad())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| bad())
}

/// [`go_i64`] narrowed to `i32` (Go's `int` flags feed `int32` proto fields).
pub(crate) fn go_i32(s: &str) -> Result<i32, String> {
    let v = go_i64(s)?;
    i32::try_from(v).map_err(|_| format!("parse error: value out of range {s:?}"))
}

/// Parses a Go `time.ParseDuration` string (`90s`, `1h30m`, `1.5h`, `-2m`, `0`) into
/// nanoseconds.
pub(crate) fn go_duration(s: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = tail;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation)] // bounded above
    let nanos = total.round() as i128;
    Ok(if negative { -nanos } else { nanos })
}

/// `msg` followed by the singular or plural noun, as SPIRE's `Pluralizer`.
pub(crate) fn pluralize(count: i64, singular: &str, plural: &str) -> String {
    format!("{count} {}", if count == 1 { singular } else { plural })
}

/// Prints a Count RPC's answer: the response (`type_name`) as JSON, or `N <noun>` with the
/// singular or plural noun.
pub(crate) fn print_count(
    io: &mut Io<'_>,
    output: OutputFormat,
    response: &impl prost::Message,
    type_name: &str,
    count: i32,
    (singular, plural): (&str, &str),
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => crate::cli::protojson::print(io.out, response, type_name),
        OutputFormat::Pretty => {
            writeln!(io.out, "{}", pluralize(i64::from(count), singular, plural))?;
            Ok(())
        }
    }
}

/// Reads a file, or standard input when `path` is `-` (or empty where SPIRE allows it).
pub(crate) fn read_input(path: &str, stdin: &mut dyn Read) -> anyhow::Result<Vec<u8>> {
    if path.is_empty() || path == "-" {
        let mut data = Vec::new();
        stdin.read_to_end(&mut data)?;
        return Ok(data);
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("open {path}: {}", go_errno_text(&e)))
}

/// Splits a `type:value` selector at its first `:`, as SPIRE's CLI does (the server
/// validates the parts).
pub(crate) fn parse_selector(s: &str) -> anyhow::Result<spire_proto::spire::api::types::Selector> {
    match s.split_once(':') {
        Some((ty, value)) => Ok(spire_proto::spire::api::types::Selector {
            r#type: ty.to_owned(),
            value: value.to_owned(),
        }),
        None => bail!("selector \"{s}\" must be formatted as type:value"),
    }
}

/// `-selector` values as the API's selector filter, matched with `behavior`.
pub(crate) fn selector_filter(
    selectors: &[String],
    behavior: selector_match::MatchBehavior,
) -> anyhow::Result<SelectorMatch> {
    let selectors = selectors
        .iter()
        .map(|s| parse_selector(s).map_err(|e| anyhow::anyhow!("error parsing selectors: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SelectorMatch {
        selectors,
        r#match: behavior as i32,
    })
}

/// Drives a paged List RPC to the end: `fetch` is given the page token to ask for and returns
/// that page's items with the next token; an empty next token means the last page.
pub(crate) async fn collect_pages<T, F, Fut>(mut fetch: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = anyhow::Result<(Vec<T>, String)>>,
{
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (page, next) = fetch(page_token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        page_token = next;
    }
}

/// A SPIFFE ID string as the API's `{trust_domain, path}`, with go-spiffe's parse errors.
pub(crate) fn id_to_proto(id: &str) -> anyhow::Result<spire_proto::spire::api::types::Spiffeid> {
    let parsed = spire_id::SpiffeId::parse(id)?;
    Ok(spire_proto::spire::api::types::Spiffeid {
        trust_domain: parsed.trust_domain().name().to_owned(),
        path: parsed.path().to_owned(),
    })
}

/// `spiffe://<td><path>`, or empty for a missing ID.
pub(crate) fn id_to_string(id: Option<&spire_proto::spire::api::types::Spiffeid>) -> String {
    id.map(|id| format!("spiffe://{}{}", id.trust_domain, id.path))
        .unwrap_or_default()
}

/// Go's `%q`: a double-quoted string with Go escapes (printable Unicode kept).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn socket(path: &str, instance: &str) -> SocketArgs {
        SocketArgs {
            socket_path: path.to_owned(),
            instance: instance.to_owned(),
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn socket_precedence_matches_spire() {
        let d = DEFAULT_SOCKET_PATH;
        assert_eq!(socket(d, "").resolve(env(&[])).unwrap(), Path::new(d));
        assert_eq!(
            socket(d, "")
                .resolve(env(&[(SOCKET_ENV, "/env.sock")]))
                .unwrap(),
            Path::new("/env.sock")
        );
        // An explicit -socketPath wins over the environment and -instance.
        let both = [
            (SOCKET_ENV, "/env.sock"),
            (SOCKET_TEMPLATE_ENV, "/run/%i/api.sock"),
        ];
        assert_eq!(
            socket("/flag.sock", "a").resolve(env(&both)).unwrap(),
            Path::new("/flag.sock")
        );
        // -instance fills the template and beats SPIRE_SERVER_PRIVATE_SOCKET.
        assert_eq!(
            socket(d, "blue").resolve(env(&both)).unwrap(),
            Path::new("/run/blue/api.sock")
        );
        assert_eq!(
            socket(d, "x").resolve(env(&[])).unwrap_err().to_string(),
            "you must define SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to use the instance flag"
        );
        assert_eq!(
            socket(d, "x")
                .resolve(env(&[(SOCKET_TEMPLATE_ENV, "/no/placeholder")]))
                .unwrap_err()
                .to_string(),
            "failed to find %i in SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE"
        );
    }

    #[test]
    fn go_values() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false));
        }
        assert!(go_bool("yes").is_err());
        assert_eq!(go_i64("600"), Ok(600));
        assert_eq!(go_i64("-5"), Ok(-5));
        assert_eq!(go_i64("0x10"), Ok(16));
        assert!(go_i64("1h").is_err());
        assert!(go_i32("3000000000").is_err());
        assert_eq!(go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("0"), Ok(0));
        assert_eq!(go_duration("-2m"), Ok(-120_000_000_000));
        assert_eq!(
            go_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert!(go_duration("5d").is_err());
    }

    #[test]
    fn grpc_error_wording() {
        let status = Status::already_exists("similar entry already exists");
        assert_eq!(
            rpc_error(&status),
            "rpc error: code = AlreadyExists desc = similar entry already exists"
        );
        assert_eq!(code_name(42), "Code(42)");
        let e = io::Error::from(io::ErrorKind::NotFound);
        let status = dial_error(Path::new("/x.sock"), &io::Error::from_raw_os_error(2));
        assert_eq!(
            status.message(),
            "connection error: desc = \"transport: error while dialing: dial unix /x.sock: connect: no such file or directory\""
        );
        assert!(!go_errno_text(&e).is_empty());
    }

    #[test]
    fn selectors_split_at_first_colon() {
        let s = parse_selector("k8s:pod-label:app:x").unwrap();
        assert_eq!(
            (s.r#type.as_str(), s.value.as_str()),
            ("k8s", "pod-label:app:x")
        );
        assert_eq!(
            parse_selector("nocolon").unwrap_err().to_string(),
            "selector \"nocolon\" must be formatted as type:value"
        );
        assert_eq!(pluralize(1, "entry", "entries"), "1 entry");
        assert_eq!(pluralize(0, "entry", "entries"), "0 entries");
    }
}
