//! Go's `strconv` quoting and unquoting, as templates and their messages use them.

use std::fmt::Write as _;

/// Go's `strconv.IsPrint`, approximated outside ASCII (Rust has no general category):
/// control, space and format characters, private use and non-characters are not printable.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xFFFE..=0xFFFF | 0xE000..=0xF8FF | 0x110BD | 0x110CD | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F | 0xF0000..=0x10FFFF)
}

/// Go's `strconv.Quote` (`ascii`: `QuoteToASCII`).
pub(crate) fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_rune(&mut out, c, '"', ascii);
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune` (`ascii`: `QuoteRuneToASCII`).
pub(crate) fn quote_rune(c: char, ascii: bool) -> String {
    let mut out = String::with_capacity(3);
    out.push('\'');
    escape_rune(&mut out, c, '\'', ascii);
    out.push('\'');
    out
}

/// Go's `%.Nq`: the first `n` runes of `s`, quoted.
pub(crate) fn quote_prefix(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((end, _)) => quote(&s[..end], false),
        None => quote(s, false),
    }
}

/// Go's `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '\u{FEFF}' && c != '`' && c != '\u{7F}' && (c >= ' ' || c == '\t'))
}

fn escape_rune(out: &mut String, c: char, quote: char, ascii: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) && (!ascii || c.is_ascii()) {
        out.push(c);
        return;
    }
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{C}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{B}' => out.push_str("\\v"),
        c if c < ' ' || c == '\u{7F}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `%#U` of a rune: `U+0023 '#'`.
pub(crate) fn unicode_name(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Why a Go literal failed to unquote: `strconv.ErrSyntax`.
pub(crate) const INVALID_SYNTAX: &str = "invalid syntax";

/// Go's `strconv.Unquote` for a lexed string literal (`"…"` or `` `…` ``).
///
/// Escapes that produce bytes which are not UTF-8 (`"\xff"`) become U+FFFD, since the
/// output is a Rust string.
pub(crate) fn unquote(lit: &str) -> Result<String, &'static str> {
    let inner = lit
        .get(1..lit.len().saturating_sub(1))
        .filter(|_| lit.len() >= 2)
        .ok_or(INVALID_SYNTAX)?;
    if lit.starts_with('`') {
        return Ok(inner.replace('\r', ""));
    }
    if inner.contains('\n') {
        return Err(INVALID_SYNTAX);
    }
    if !inner.contains('\\') && !inner.contains('"') {
        return Ok(inner.to_owned());
    }
    let mut bytes = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while !rest.is_empty() {
        let (unit, tail) = unquote_char(rest, '"')?;
        match unit {
            Unit::Byte(b) => bytes.push(b),
            Unit::Char(c) => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        rest = tail;
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// One unquoted character: a rune, or a raw byte from a `\x` or octal escape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Byte(u8),
    Char(char),
}

impl Unit {
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::Byte(b) => u32::from(b),
            Self::Char(c) => c as u32,
        }
    }
}

/// Go's `strconv.UnquoteChar`: the first (possibly escaped) character of `s` and the rest.
pub(crate) fn unquote_char(s: &str, quote: char) -> Result<(Unit, &str), &'static str> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(INVALID_SYNTAX)?;
    if c == quote {
        return Err(INVALID_SYNTAX);
    }
    if c != '\\' {
        let unit = if c.is_ascii() {
            Unit::Byte(c as u8)
        } else {
            Unit::Char(c)
        };
        return Ok((unit, chars.as_str()));
    }
    let e = chars.next().ok_or(INVALID_SYNTAX)?;
    let rest = chars.as_str();
    let simple = |b: u8, rest| Ok((Unit::Byte(b), rest));
    match e {
        'a' => simple(7, rest),
        'b' => simple(8, rest),
        'f' => simple(12, rest),
        'n' => simple(b'\n', rest),
        'r' => simple(b'\r', rest),
        't' => simple(b'\t', rest),
        'v' => simple(11, rest),
        '\\' => simple(b'\\', rest),
        '\'' | '"' if e == quote => simple(e as u8, rest),
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n).ok_or(INVALID_SYNTAX)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(INVALID_SYNTAX);
            }
            let v = u32::from_str_radix(digits, 16).map_err(|_| INVALID_SYNTAX)?;
            let rest = &rest[n..];
            if e == 'x' {
                let b = u8::try_from(v).map_err(|_| INVALID_SYNTAX)?;
                return Ok((Unit::Byte(b), rest));
            }
            let c = char::from_u32(v).ok_or(INVALID_SYNTAX)?;
            Ok((Unit::Char(c), rest))
        }
        '0'..='7' => {
            let digits = rest.get(..2).ok_or(INVALID_SYNTAX)?;
            let mut v = e as u32 - '0' as u32;
            for d in digits.bytes() {
                if !(b'0'..=b'7').contains(&d) {
                    return Err(INVALID_SYNTAX);
                }
                v = v << 3 | u32::from(d - b'0');
            }
            let b = u8::try_from(v).map_err(|_| INVALID_SYNTAX)?;
            Ok((Unit::Byte(b), &rest[2..]))
        }
        _ => Err(INVALID_SYNTAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(
            quote("a\"b\\c\n\u{1}é\u{200B}", false),
            r#""a\"b\\c\n\x01é\u200b""#
        );
        assert_eq!(quote("é", true), r#""\u00e9""#);
        assert_eq!(quote_rune('\'', false), r"'\''");
        assert_eq!(quote_prefix("abcdefghijkl", 10), r#""abcdefghij""#);
    }

    #[test]
    fn unquote_matches_go() {
        assert_eq!(unquote(r#""a\tb\x41\u00e9\101""#).as_deref(), Ok("a\tbAéA"));
        assert_eq!(unquote("`a\r\\n`").as_deref(), Ok("a\\n"));
        assert_eq!(unquote(r#""\'""#), Err(INVALID_SYNTAX));
        assert_eq!(unquote(r#""\q""#), Err(INVALID_SYNTAX));
        assert_eq!(unquote(r#""\xff""#).as_deref(), Ok("\u{FFFD}"));
    }
}
