//! Workload attestors: what the agent learns about a caller process, as selectors.
//!
//! Every configured attestor runs for each caller and their selectors are unioned; a failing
//! attestor is logged and left out, and attestation fails only when all of them fail (SPIRE's
//! rule).

pub mod unix;

use std::sync::Arc;

use spire_id::{Selector, SelectorSet};
use tokio::task::JoinSet;

use crate::{Error, Result};

/// A workload attestor plugin (`WorkloadAttestor "<name>"` in the agent configuration).
#[async_trait::async_trait]
pub trait WorkloadAttestor: Send + Sync + std::fmt::Debug + 'static {
    /// The plugin name; also the type of the selectors it produces (`unix`, `k8s`, …).
    fn name(&self) -> &str;

    /// The selectors of the process `pid`. An empty list is a valid answer (the process is
    /// not of this attestor's kind); an error drops this attestor for this caller.
    async fn attest(&self, pid: i32) -> Result<Vec<Selector>>;
}

/// Runs every attestor against `pid` concurrently and unions their selectors; failing
/// attestors are logged and left out. Fails only when there are attestors and all of them
/// failed (no attestors at all yields an empty set).
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
                tracing::warn!(pid, attestor = %name, %error, "workload attestor failed");
            }
            Err(join_error) => {
                failed += 1;
                tracing::error!(pid, error = %join_error, "workload attestor task failed");
            }
        }
    }
    if !attestors.is_empty() && failed == attestors.len() {
        return Err(Error::AttestationFailed);
    }
    Ok(selectors)
}
