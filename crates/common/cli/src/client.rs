//! Dialing a gRPC server on a Unix socket the way SPIRE's CLIs pick and report it.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::bail;
use hyper_util::rt::TokioIo;
use tonic::Status;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where a CLI looks for its socket: the flag's default and the environment variables that
/// override it (`SPIRE_SERVER_PRIVATE_SOCKET(_TEMPLATE)`, `SPIRE_AGENT_PUBLIC_SOCKET(_TEMPLATE)`).
#[derive(Clone, Copy, Debug)]
pub struct SocketSpec {
    /// The `-socketPath` default.
    pub default_path: &'static str,
    /// Overrides the default (not an explicit `-socketPath`).
    pub env: &'static str,
    /// A template with `%i`, filled from `-instance`.
    pub template_env: &'static str,
}

impl SocketSpec {
    /// The socket to dial, as SPIRE picks it: an explicit `socket_path` (anything but the
    /// default), then `instance` through the template, then the environment variable, then the
    /// default.
    pub fn resolve(
        &self,
        socket_path: &str,
        instance: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<PathBuf> {
        let template = env(self.template_env).unwrap_or_default();
        let socket = env(self.env).unwrap_or_default();
        if !instance.is_empty() {
            if template.is_empty() {
                bail!(
                    "you must define {} to use the instance flag",
                    self.template_env
                );
            }
            if !template.contains("%i") {
                bail!("failed to find %i in {}", self.template_env);
            }
        }
        let path = if socket_path != self.default_path {
            socket_path.to_owned()
        } else if !instance.is_empty() {
            template.replace("%i", instance)
        } else if !socket.is_empty() {
            socket
        } else {
            self.default_path.to_owned()
        };
        Ok(PathBuf::from(path))
    }
}

/// A channel to a Unix socket, or the dial failure that every RPC then reports (gRPC-Go
/// dials lazily, so SPIRE's errors name the RPC that could not reach the server).
#[derive(Debug)]
pub struct Client {
    channel: Result<Channel, Status>,
}

impl Client {
    /// Dials `path`; a failure is kept and returned by [`Client::channel`].
    pub async fn connect(path: &Path) -> Self {
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
    pub fn channel(&self) -> Result<Channel, Status> {
        self.channel.clone()
    }
}

pub(crate) fn dial_error(path: &Path, e: &io::Error) -> Status {
    Status::unavailable(format!(
        "connection error: desc = \"transport: error while dialing: dial unix {}: connect: {}\"",
        path.display(),
        go_errno_text(e)
    ))
}

/// The lowercase errno text Go prints (`no such file or directory`), without Rust's
/// ` (os error N)` suffix.
pub fn go_errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// gRPC-Go's name for a status code (`codes.Code.String()`), `Code(<n>)` for an unknown one.
pub fn code_name(code: i32) -> String {
    spire_id::go_fmt::grpc_code_name(code).map_or_else(|| format!("Code({code})"), str::to_owned)
}

/// A failed RPC as gRPC-Go formats it: `rpc error: code = NotFound desc = entry not found`.
pub fn rpc_error(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code() as i32),
        status.message()
    )
}

/// Turns a status into the command's error, optionally prefixed as SPIRE wraps it.
pub fn rpc_err(prefix: &str, status: &Status) -> anyhow::Error {
    anyhow::anyhow!("{prefix}{}", rpc_error(status))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
