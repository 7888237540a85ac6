//! `-expandEnv`: `$VAR` and `${VAR}` replaced before parsing, as Go's `os.ExpandEnv` does;
//! unset variables become empty.

/// Expands `$NAME` and `${NAME}` using `lookup`; unknown names expand to nothing.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                out.push_str(&lookup(&braced[..end]).unwrap_or_default());
                rest = &braced[end + 1..];
                continue;
            }
            // No closing brace: Go drops the "${" and keeps going.
            rest = braced;
            continue;
        }
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len == 0 {
            // A lone `$` (or `$` before punctuation) is kept as is.
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(&lookup(&after[..name_len]).unwrap_or_default());
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_both_forms_and_drops_unset() {
        let lookup = |k: &str| match k {
            "TD" => Some("example.org".to_owned()),
            "PORT" => Some("8081".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand_env(
                "td = \"$TD\" port = \"${PORT}\" x = \"$UNSET\" y = \"a$\"",
                lookup
            ),
            "td = \"example.org\" port = \"8081\" x = \"\" y = \"a$\""
        );
    }
}
