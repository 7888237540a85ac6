//! Go `flag` syntax on top of clap: SPIRE's CLI takes single-dash long flags (`-spiffeID x`,
//! `-ttl=60`), which clap would read as bundles of short flags. Rewriting them to `--` form
//! before parsing keeps clap's subcommands and derive while accepting SPIRE's spelling.

use std::ffi::OsString;

/// Rewrites `-name[=value]` (a single dash and a letter followed by at least one more flag
/// character) to `--name[=value]`. Negative numbers (`-1`), `-h`, `--` and everything after
/// `--` are left alone.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough {
            out.push(arg);
            continue;
        }
        let rewritten = match arg.to_str() {
            Some("--") => {
                passthrough = true;
                None
            }
            Some(s) if is_go_long_flag(s) => Some(OsString::from(format!("-{s}"))),
            _ => None,
        };
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

fn is_go_long_flag(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('-') else {
        return false;
    };
    let name = rest.split_once('=').map_or(rest, |(name, _)| name);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "spire-server",
                "demo",
                "-spiffeID",
                "spiffe://td/x",
                "-ttl=60",
                "--dataDir",
                "d"
            ]),
            [
                "spire-server",
                "demo",
                "--spiffeID",
                "spiffe://td/x",
                "--ttl=60",
                "--dataDir",
                "d"
            ]
        );
    }

    #[test]
    fn short_flags_numbers_and_passthrough_are_kept() {
        assert_eq!(
            norm(&["x", "-h", "-ttl", "-1", "--", "-spiffeID"]),
            ["x", "-h", "--ttl", "-1", "--", "-spiffeID"]
        );
    }
}
