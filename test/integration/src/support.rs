//! Small helpers for tests: entries, selectors, certificate checks and bounded waits.

use std::future::Future;
use std::time::Duration;

use spire_proto::spire::api::types;
use tokio_stream::{Stream, StreamExt as _};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::{Error, Result, WAIT};

/// How often the harness re-checks a condition that has no notification.
pub(crate) fn poll() -> Duration {
    Duration::from_millis(25)
}

/// `spiffe://td/path` as the API's `SPIFFEID` (no validation: the server validates).
pub fn spiffe_id(id: &str) -> types::Spiffeid {
    let rest = id.strip_prefix("spiffe://").unwrap_or(id);
    let (trust_domain, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    types::Spiffeid {
        trust_domain: trust_domain.to_owned(),
        path: path.to_owned(),
    }
}

/// An entry for `spiffe_id` under `parent_id` with `selectors` (`"type:value"` strings).
pub fn entry(id: &str, parent_id: &str, selectors: &[&str]) -> types::Entry {
    types::Entry {
        spiffe_id: Some(spiffe_id(id)),
        parent_id: Some(spiffe_id(parent_id)),
        selectors: selectors
            .iter()
            .map(|s| {
                let (t, v) = s.split_once(':').unwrap_or((s, ""));
                types::Selector {
                    r#type: t.to_owned(),
                    value: v.to_owned(),
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// `unix:uid:<uid of this process>`: the selector that makes this test process the workload.
pub fn uid_selector() -> String {
    format!("unix:uid:{}", rustix::process::getuid().as_raw())
}

/// The serial number of a DER certificate, as lowercase hex.
pub fn leaf_serial(der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Unexpected(format!("certificate: {e}")))?;
    Ok(cert.raw_serial_as_string().replace(':', ""))
}

/// The URI SAN (SPIFFE ID) of a DER certificate.
pub fn leaf_spiffe_id(der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Unexpected(format!("certificate: {e}")))?;
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
        })
        .ok_or_else(|| Error::Unexpected("certificate has no URI SAN".into()))
}

/// True when `chain` (leaf first) verifies up to one of `roots`: each certificate is signed
/// by the next, the last by a root, and every issuer name matches. Validity times are not
/// checked (tests may run on a manual clock).
pub fn chain_verifies(chain: &[Vec<u8>], roots: &[Vec<u8>]) -> bool {
    let Some(certs) = chain.iter().map(|d| parse(d)).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let Some(last) = certs.last() else {
        return false;
    };
    for pair in certs.windows(2) {
        if pair[0].issuer() != pair[1].subject()
            || pair[0]
                .verify_signature(Some(pair[1].public_key()))
                .is_err()
        {
            return false;
        }
    }
    roots.iter().filter_map(|r| parse(r)).any(|root| {
        last.issuer() == root.subject() && last.verify_signature(Some(root.public_key())).is_ok()
    })
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

/// Calls `check` until it returns `Some`, at most [`WAIT`]; for state that has no
/// notification (the datastore, a file). `what` names the condition in the timeout error.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Timeout(what.to_owned()));
        }
        tokio::time::sleep(poll()).await;
    }
}

/// The next item of `stream` for which `wanted` holds (earlier items are skipped), within
/// [`WAIT`]. A stream error or end fails.
pub async fn next_matching<S, T, E, F>(stream: &mut S, what: &str, mut wanted: F) -> Result<T>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
    F: FnMut(&T) -> bool,
{
    let search = async {
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| Error::Unexpected(format!("{what}: stream error: {e}")))?;
            if wanted(&item) {
                return Ok(item);
            }
        }
        Err(Error::Unexpected(format!("{what}: the stream ended")))
    };
    tokio::time::timeout(WAIT, search)
        .await
        .map_err(|_| Error::Timeout(what.to_owned()))?
}

/// Sends the harness's logs (and the server's and agent's) to the test output, filtered by
/// `RUST_LOG` (default `warn`); safe to call more than once.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
