//! Go's `%q` formatting, which SPIRE's messages use for names, URLs and audiences, and
//! gRPC-Go's names of the status codes: one place for every crate that reproduces SPIRE's
//! messages, log fields and metric labels.

/// `strconv.Quote(s)`: double quotes, with `"`, `\` and non-printable characters escaped
/// (printable Unicode kept as is).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let _ = write_quoted(&mut out, s);
    out
}

/// [`quote`], written to `out` (no allocation: log lines are quoted this way).
pub fn write_quoted(out: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{7}' => out.write_str("\\a")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            '\u{b}' => out.write_str("\\v")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// `%q` of a `[]string`: `["a" "b"]`, or `[]` when empty.
pub fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(" "))
}

/// gRPC-Go's names of the status codes (`codes.Code.String()`), indexed by code number:
/// `Canceled` is spelt the American way.
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// gRPC-Go's name of status code `code`; `None` for a number outside the 17 codes.
pub fn grpc_code_name(code: i32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_CODE_NAMES.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
        assert_eq!(quote_list::<&str>(&[]), "[]");
        assert_eq!(quote_list(&["FOO", "BAR"]), r#"["FOO" "BAR"]"#);
    }

    #[test]
    fn grpc_code_names_are_grpc_go_s() {
        assert_eq!(grpc_code_name(0), Some("OK"));
        assert_eq!(grpc_code_name(1), Some("Canceled"));
        assert_eq!(grpc_code_name(16), Some("Unauthenticated"));
        assert_eq!(grpc_code_name(17), None);
        assert_eq!(grpc_code_name(-1), None);
    }
}
