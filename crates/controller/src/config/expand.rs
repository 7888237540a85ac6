//! `--expand-env`: Go's `os.ExpandEnv`, byte for byte.
//!
//! `spire_config::expand_env` covers `$NAME` and `${NAME}` but not Go's special one-character
//! names (`$1`, `$$`, `$*`, `$#`, `$@`, `$!`, `$?`, `$-` and their braced forms), which Go
//! looks up (and, being unset, drops). A YAML file may well hold a `$` before a digit (a
//! password, a regex in `ignoreNamespaces`), so the controller follows Go exactly.

/// Replaces `$NAME`, `${NAME}` and Go's special `$<c>` forms with `lookup`'s value (empty when
/// unset), as Go's `os.ExpandEnv` does. A `$` at the very end, or before a character that
/// starts no name, is kept; `${}` and an unterminated `${` are dropped.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is where the not-yet-copied plain text starts.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            out.push_str(&text[copied..i]);
            let (name, width) = shell_name(&text[i + 1..]);
            match name {
                // Invalid syntax (`${}`, `${` unterminated): the consumed bytes vanish.
                None if width > 0 => {}
                // `$` followed by nothing that names a variable: keep the dollar.
                None => out.push('$'),
                Some(name) => out.push_str(&lookup(name).unwrap_or_default()),
            }
            i += 1 + width;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The variable named at the start of `s` (just after a `$`) and how many bytes it spans.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        return match s[1..].find('}') {
            // `${}`: bad syntax, eat all three bytes.
            Some(0) => (None, 2),
            Some(end) => (Some(&s[1..=end]), end + 2),
            // No closing brace: bad syntax, eat the `{`.
            None => (None, 1),
        };
    }
    if is_special(bytes[0]) {
        return (Some(&s[..1]), 1);
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

/// Go's `isShellSpecialVar`.
fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TD" => Some("example.org".into()),
            "1" => Some("one".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_plain_and_braced_names() {
        assert_eq!(
            expand_env("trustDomain: $TD\nx: ${TD}/y\nz: $UNSET.", env),
            "trustDomain: example.org\nx: example.org/y\nz: ."
        );
    }

    #[test]
    fn special_names_are_looked_up_like_go() {
        // `$1` and `${1}` name variable "1"; `$$` names "$" (unset, so dropped).
        assert_eq!(expand_env("a$1b ${1} c$$d", env), "aoneb one cd");
        assert_eq!(expand_env("p@$#x", env), "p@x");
    }

    #[test]
    fn lone_dollars_and_bad_syntax() {
        // Trailing `$` and `$` before punctuation stay; `${}` and an unterminated `${` vanish.
        assert_eq!(expand_env("cost $ 5 and $", env), "cost $ 5 and $");
        assert_eq!(expand_env("a${}b", env), "ab");
        assert_eq!(expand_env("a${TD", env), "aTD");
        assert_eq!(expand_env("é$TDé", env), "éexample.orgé");
    }
}
