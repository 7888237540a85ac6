//! What every admin-API client command shares: the `-socketPath`/`-instance` flags and the
//! environment overrides of the admin socket, plus helpers over the admin API's types. The
//! parts both CLIs share (dialing, Go flag values, gRPC-Go error wording, `-output`, streams)
//! come from `spire-cli`.

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use spire_proto::spire::api::types::{SelectorMatch, selector_match};

pub(crate) use spire_cli::{
    Client, Io, OutputArgs, OutputFormat, Reported, SocketSpec, code_name, go_bool, go_duration,
    go_errno_text, go_i32, go_i64, go_quote, pluralize, rpc_err,
};

/// SPIRE's default admin socket.
pub(crate) const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";
/// Overrides the default socket path (not an explicit `-socketPath`).
pub(crate) const SOCKET_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET";
/// Socket path template with `%i`, filled from `-instance`.
pub(crate) const SOCKET_TEMPLATE_ENV: &str = "SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE";

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
    /// Where the admin socket is looked for.
    pub(crate) const SPEC: SocketSpec = SocketSpec {
        default_path: DEFAULT_SOCKET_PATH,
        env: SOCKET_ENV,
        template_env: SOCKET_TEMPLATE_ENV,
    };

    /// The socket to dial, as SPIRE picks it (see [`SocketSpec::resolve`]).
    pub(crate) fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
        Self::SPEC.resolve(&self.socket_path, &self.instance, env)
    }

    /// Resolves the socket from the process environment and dials it.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let path = self.resolve(|name| std::env::var(name).ok())?;
        Ok(Client::connect(&path).await)
    }
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
        OutputFormat::Json => spire_cli::protojson::print(io.out, response, type_name),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

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
    }
}
