//! WorkloadAttestor: what the agent learns about a caller process, as selectors.
//!
//! Every configured attestor runs for each caller and their selectors are unioned; a failing
//! attestor is logged and left out, and attestation fails only when all of them fail (SPIRE's
//! rule). Built-ins: [`unix`] and [`k8s`].

pub mod k8s;
pub mod unix;

use std::sync::Arc;

use spire_id::{Selector, SelectorSet};
use tokio::task::JoinSet;

pub use k8s::{K8sAttestor, K8sConfig};
pub use unix::{UnixAttestor, UnixConfig};

use crate::{Error, Result};

/// A workload attestor plugin (`WorkloadAttestor "<name>"` in the agent configuration).
#[async_trait::async_trait]
pub trait WorkloadAttestor: Send + Sync + std::fmt::Debug + 'static {
    /// The plugin name; also the type of the selectors it produces (`unix`, `k8s`, …).
    fn name(&self) -> &str;

    /// The selectors of the process `pid`. An empty list is a valid answer (the process is
    /// not of this attestor's kind); an error ([`Error::Status`] with SPIRE's code and
    /// message) drops this attestor for this caller.
    async fn attest(&self, pid: i32) -> Result<Vec<Selector>>;
}

/// Runs every attestor against `pid` concurrently and unions their selectors; failing
/// attestors are logged and left out. Fails with [`Error::WorkloadAttestationFailed`] only
/// when there are attestors and all of them failed (no attestors at all yields an empty set).
pub async fn attest_all(pid: i32, attestors: &[Arc<dyn WorkloadAttestor>]) -> Result<SelectorSet> {
    let mut tasks = JoinSet::new();
    for attestor in attestors {
        let attestor = Arc::clone(attestor);
        tasks.spawn(async move {
            let result = attestor.attest(pid).await;
            (attestor.name().to_owned(), result)
        });
    }
    let mut selectors = SelectorSet::new();
    let mut failed = 0usize;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(found))) => found.into_iter().for_each(|s| selectors.insert(s)),
            Ok((name, Err(error))) => {
                failed += 1;
                tracing::warn!(pid, attestor = %name, code = ?error.code(), %error, "workload attestor failed");
            }
            Err(join_error) => {
                failed += 1;
                tracing::error!(pid, error = %join_error, "workload attestor task failed");
            }
        }
    }
    if !attestors.is_empty() && failed == attestors.len() {
        return Err(Error::WorkloadAttestationFailed);
    }
    Ok(selectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[derive(Debug)]
    struct Fixed(&'static str, Option<&'static str>);

    #[async_trait::async_trait]
    impl WorkloadAttestor for Fixed {
        fn name(&self) -> &str {
            self.0
        }

        async fn attest(&self, _pid: i32) -> Result<Vec<Selector>> {
            match self.1 {
                Some(value) => Ok(vec![Selector::new(self.0, value).unwrap()]),
                None => Err(Error::status(Code::Unavailable, "down")),
            }
        }
    }

    #[tokio::test]
    async fn selectors_are_unioned_and_failures_dropped_unless_all_fail() {
        let a: Arc<dyn WorkloadAttestor> = Arc::new(Fixed("a", Some("1")));
        let b: Arc<dyn WorkloadAttestor> = Arc::new(Fixed("b", Some("2")));
        let broken: Arc<dyn WorkloadAttestor> = Arc::new(Fixed("c", None));

        let set = attest_all(1, &[a, b, broken.clone()]).await.unwrap();
        let got: Vec<String> = set.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["a:1", "b:2"]);

        let error = attest_all(1, &[broken.clone(), broken]).await.unwrap_err();
        assert!(matches!(error, Error::WorkloadAttestationFailed), "{error}");
        assert_eq!(error.code(), Code::Unavailable);
        assert_eq!(error.to_string(), "workload attestation failed");

        assert!(attest_all(1, &[]).await.unwrap().is_empty());
    }
}
