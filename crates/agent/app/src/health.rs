//! The agent's `health_checks` subsystem, named and detailed as SPIRE's: `agent` calls its own
//! Workload API (`FetchX509Bundles` on the public socket, with the security header). Only
//! `Unavailable` — or no answer at all — is unhealthy; any other answer, `PermissionDenied`
//! included (the checking process has no identity), shows the API is up.
//!
//! Until the socket has accepted a connection once the agent is still starting (attesting):
//! live, not ready. Details: `{"make_new_x509_err": "workload api is unavailable"}` on
//! failure (not in the live details while starting), `{}` otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use spire_health::{Checker, State};
use spire_proto::workload::X509BundlesRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

/// How long the Workload API may take to connect and send its first answer.
const WORKLOAD_API_TIMEOUT: Duration = Duration::from_secs(5);
/// SPIRE's detail for an unavailable Workload API.
const UNAVAILABLE: &str = "workload api is unavailable";

/// The agent's checker, for [`spire_health::serve`]: its Workload API on `socket_path`.
pub fn agent_checker(socket_path: PathBuf) -> Arc<dyn Checker> {
    Arc::new(AgentCheck {
        socket: socket_path,
        timeout: WORKLOAD_API_TIMEOUT,
        started: AtomicBool::new(false),
    })
}

/// `agent`: the Workload API answers something other than `Unavailable`.
#[derive(Debug)]
struct AgentCheck {
    socket: PathBuf,
    timeout: Duration,
    /// The socket has accepted a connection once: the agent has finished starting.
    started: AtomicBool,
}

// === impl AgentCheck ===

impl AgentCheck {
    /// `Ok` when the API answered anything but `Unavailable`; else why not.
    async fn fetch_x509_bundles(&self) -> Result<(), String> {
        let channel = tokio::time::timeout(self.timeout, spire_health::unix_channel(&self.socket))
            .await
            .map_err(|_| UNAVAILABLE.to_owned())?
            .map_err(|error| {
                tracing::debug!(%error, "Health check: cannot reach the Workload API");
                UNAVAILABLE.to_owned()
            })?;
        self.started.store(true, Ordering::Relaxed);
        let mut request = tonic::Request::new(X509BundlesRequest {});
        request
            .metadata_mut()
            .insert("workload.spiffe.io", MetadataValue::from_static("true"));
        let call = async {
            let mut stream = SpiffeWorkloadApiClient::new(channel)
                .fetch_x509_bundles(request)
                .await?
                .into_inner();
            stream.message().await.map(drop)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(format!(
                "workload api did not answer within {:?}",
                self.timeout
            )),
            Ok(Err(status)) if status.code() == Code::Unavailable => {
                tracing::debug!(%status, "Health check: the Workload API is unavailable");
                Err(UNAVAILABLE.to_owned())
            }
            Ok(_) => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Checker for AgentCheck {
    fn name(&self) -> &str {
        "agent"
    }

    async fn check(&self) -> State {
        let result = self.fetch_x509_bundles().await;
        let started = self.started.load(Ordering::Relaxed);
        let details = |error: Option<&String>| match error {
            Some(error) => json!({ "make_new_x509_err": error }),
            None => Value::Object(serde_json::Map::new()),
        };
        let error = result.err();
        State {
            live: !started || error.is_none(),
            ready: error.is_none(),
            live_details: details(error.as_ref().filter(|_| started)),
            ready_details: details(error.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests;
