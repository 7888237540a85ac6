//! `spire-agent doctor` (no SPIRE equivalent): checks, as the calling user, what an Istio
//! proxy needs from the agent socket, one step at a time, and says how to fix each failure.
//!
//! Steps: the socket exists; a fresh HTTP/2 dial answers `grpc.health.v1` within 1 s (Istio's
//! detection); SDS `FetchSecrets` for `default` with an Envoy-like node (the caller attested
//! and holding an identity); `ROOTCA` resolves; the SVID chain verifies against those roots;
//! the SVID's trust domain equals `-trustDomain`; enough time left on the SVID; a federated
//! bundle for each `-federatesWith`. A step whose input comes from a failed one is skipped.
//!
//! Time-left rule: the agent re-mints at about half the lifetime, so less than 10 % of the
//! lifetime left (or an expired SVID) means rotation is stuck, and fails the check.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use spire_cli::protojson::{Json, encode};
use spire_cli::{Client, Io, OutputArgs, OutputFormat, Reported, go_duration, rpc_error};
use spire_proto::health::pb::HealthCheckRequest;
use spire_proto::health::pb::health_check_response::ServingStatus;
use spire_proto::health::pb::health_client::HealthClient;
use spire_time::{Clock as _, SystemClock};
use tonic::transport::Channel;
use tonic::{Code, Status};

use self::sds::{Roots, Svid, fetch, parse_roots, parse_svid, td_name};
use crate::cli::socket::SocketArgs;

mod sds;
#[cfg(test)]
mod tests;

/// Istio's health-check deadline for the socket.
const HEALTH_DEADLINE: Duration = Duration::from_secs(1);

/// Flags of `doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Trust domain the mesh expects (Istio's meshConfig.trustDomain); checked when given
    #[arg(long = "trustDomain", value_name = "string")]
    trust_domain: Option<String>,
    /// Trust domain whose bundle must be served (via ALL or its name); repeatable
    #[arg(long = "federatesWith", value_name = "string")]
    federates_with: Vec<String>,
    /// Time to wait for each SDS answer
    #[arg(long = "timeout", value_name = "duration", default_value = "5s", value_parser = go_duration)]
    timeout: i128,
    #[command(flatten)]
    output: OutputArgs,
}

/// How one check ended.
#[derive(Debug)]
enum Outcome {
    Pass(String),
    Fail { why: String, fix: String },
    Skipped(String),
}

/// One printed line (and JSON item).
#[derive(Debug)]
struct Check {
    name: String,
    outcome: Outcome,
}

// === impl Check ===

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Pass(detail.into()),
        }
    }

    fn fail(name: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Fail {
                why: why.into(),
                fix: fix.into(),
            },
        }
    }

    fn skipped(name: impl Into<String>, after: &str) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Skipped(format!("skipped: depends on \"{after}\", which failed")),
        }
    }

    fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Pass(_))
    }

    fn json(&self) -> Json {
        let (detail, fix) = match &self.outcome {
            Outcome::Pass(detail) | Outcome::Skipped(detail) => (detail.clone(), String::new()),
            Outcome::Fail { why, fix } => (why.clone(), fix.clone()),
        };
        Json::Object(vec![
            ("name".to_owned(), Json::String(self.name.clone())),
            ("ok".to_owned(), Json::Bool(self.ok())),
            ("detail".to_owned(), Json::String(detail)),
            ("fix".to_owned(), Json::String(fix)),
        ])
    }

    fn print(&self, io: &mut Io<'_>) -> std::io::Result<()> {
        match &self.outcome {
            Outcome::Pass(detail) => writeln!(io.out, "✓ {}: {detail}", self.name),
            Outcome::Fail { why, fix } => {
                writeln!(io.out, "✗ {}: {why}", self.name)?;
                writeln!(io.out, "    fix: {fix}")
            }
            Outcome::Skipped(detail) => writeln!(io.out, "- {}: {detail}", self.name),
        }
    }
}

/// Runs every check, prints them, and fails with [`Reported`] (exit 1) unless all passed.
pub(crate) async fn run(args: DoctorArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let checks = checks(&args).await?;
    let ok = checks.iter().all(Check::ok);
    if args.output.output == OutputFormat::Json {
        let json = Json::Object(vec![
            (
                "checks".to_owned(),
                Json::Array(checks.iter().map(Check::json).collect()),
            ),
            ("ok".to_owned(), Json::Bool(ok)),
        ]);
        writeln!(io.out, "{}", encode(&json))?;
    } else {
        for check in &checks {
            check.print(io)?;
        }
    }
    if ok { Ok(()) } else { Err(Reported.into()) }
}

async fn checks(args: &DoctorArgs) -> anyhow::Result<Vec<Check>> {
    const SOCKET: &str = "socket present";
    const HEALTH: &str = "agent answers gRPC health within 1 s";
    const DEFAULT: &str = "caller attested and served `default` over SDS";
    const ROOTCA: &str = "`ROOTCA` resolves";
    const CHAIN: &str = "SVID chain verifies against `ROOTCA`";
    const TD: &str = "SVID trust domain matches -trustDomain";
    const TTL: &str = "time left on the SVID";

    let path = args.socket.resolve()?;
    let uid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid());
    let timeout = Duration::from_nanos(u64::try_from(args.timeout.max(0)).unwrap_or(u64::MAX));
    let federated = |checks: &mut Vec<Check>, after: &str| {
        for td in &args.federates_with {
            checks.push(Check::skipped(federated_name(td), after));
        }
    };
    let mut checks = Vec::new();

    checks.push(socket_check(SOCKET, &path));
    if !checks[0].ok() {
        for name in [HEALTH, DEFAULT, ROOTCA, CHAIN, TD, TTL] {
            checks.push(Check::skipped(name, SOCKET));
        }
        federated(&mut checks, SOCKET);
        return Ok(checks);
    }

    let channel = match health(&path).await {
        Ok(channel) => {
            checks.push(Check::pass(HEALTH, "SERVING"));
            channel
        }
        Err(why) => {
            checks.push(Check::fail(
                HEALTH,
                why,
                format!(
                    "check spire-agent's log and that it serves socket_path = \"{}\"; Istio \
                     deletes a socket that does not answer within 1 s",
                    path.display()
                ),
            ));
            for name in [DEFAULT, ROOTCA, CHAIN, TD, TTL] {
                checks.push(Check::skipped(name, HEALTH));
            }
            federated(&mut checks, HEALTH);
            return Ok(checks);
        }
    };
    let mut sds = SecretDiscoveryServiceClient::new(channel);

    let svid = match fetch(&mut sds, "default", timeout).await {
        Ok(secret) => match parse_svid(&secret) {
            Ok(svid) => {
                checks.push(Check::pass(
                    DEFAULT,
                    format!("{} (uid {uid})", svid.spiffe_id),
                ));
                Some(svid)
            }
            Err(why) => {
                checks.push(Check::fail(
                    DEFAULT,
                    why,
                    "the agent served an unusable certificate: check its log",
                ));
                None
            }
        },
        Err(status) => {
            let (why, fix) = default_failure(&status, uid, timeout);
            checks.push(Check::fail(DEFAULT, why, fix));
            None
        }
    };

    let roots = match fetch(&mut sds, "ROOTCA", timeout).await {
        Ok(secret) => match parse_roots(&secret) {
            Ok(roots) => {
                checks.push(Check::pass(ROOTCA, roots.describe()));
                Some(roots)
            }
            Err(why) => {
                checks.push(Check::fail(
                    ROOTCA,
                    why,
                    "check the agent's bundle (`spire-server bundle show`) and its log",
                ));
                None
            }
        },
        Err(status) => {
            checks.push(Check::fail(
                ROOTCA,
                rpc_error(&status),
                "check the agent's `sds { default_bundle_name / default_all_bundles_name }`: \
                 one of them must be \"ROOTCA\" (Istio asks for that name)",
            ));
            None
        }
    };

    let Some(svid) = svid else {
        for name in [CHAIN, TD, TTL] {
            checks.push(Check::skipped(name, DEFAULT));
        }
        federated(&mut checks, DEFAULT);
        return Ok(checks);
    };

    checks.push(match &roots {
        Some(roots) => chain_check(CHAIN, &svid, roots),
        None => Check::skipped(CHAIN, ROOTCA),
    });
    checks.push(trust_domain_check(TD, &svid, args.trust_domain.as_deref()));
    checks.push(ttl_check(TTL, &svid));
    for td in &args.federates_with {
        checks.push(federated_check(&mut sds, td, roots.as_ref(), timeout).await);
    }
    Ok(checks)
}

fn federated_name(td: &str) -> String {
    format!("federated bundle for {}", td_name(td))
}

fn socket_check(name: &str, path: &Path) -> Check {
    let fix = format!(
        "is spire-agent running with socket_path = \"{}\"? Otherwise pass -socketPath or set \
         SPIRE_AGENT_PUBLIC_SOCKET",
        path.display()
    );
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Check::pass(name, path.display().to_string()),
        Ok(_) => Check::fail(
            name,
            format!("{} is not a Unix socket", path.display()),
            fix,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Check::fail(
            name,
            format!("{}: permission denied", path.display()),
            "run doctor as the proxy's user; every directory on the socket's path must be \
             searchable by that user",
        ),
        Err(e) => Check::fail(
            name,
            format!(
                "socket missing: {}: {}",
                path.display(),
                spire_cli::go_errno_text(&e)
            ),
            fix,
        ),
    }
}

/// A fresh HTTP/2 dial and `Health/Check`, all within Istio's 1 s.
async fn health(path: &Path) -> Result<Channel, String> {
    let attempt = async {
        let channel = Client::connect(path)
            .await
            .channel()
            .map_err(|s| rpc_error(&s))?;
        let response = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| rpc_error(&s))?;
        let status = response.get_ref().status;
        if status == ServingStatus::Serving as i32 {
            Ok(channel)
        } else {
            let name = ServingStatus::try_from(status)
                .map_or_else(|_| status.to_string(), |s| s.as_str_name().to_owned());
            Err(format!("agent returned status \"{name}\""))
        }
    };
    tokio::time::timeout(HEALTH_DEADLINE, attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 1 s".to_owned()))
}

fn default_failure(status: &Status, uid: u32, timeout: Duration) -> (String, String) {
    let why = rpc_error(status);
    match status.code() {
        Code::InvalidArgument if status.message().contains("not authorized") => (
            format!("no entry matches this process (uid {uid}): {why}"),
            format!(
                "run `spire-server entry create -parentID <this agent's SPIFFE ID> -spiffeID \
                 spiffe://<td>/ns/<ns>/sa/<sa> -selector unix:uid:{uid}` (or the pod's k8s \
                 selectors), then wait for the agent to sync"
            ),
        ),
        Code::Unavailable if status.message().contains("attestation") => (
            why,
            "the agent could not attest this process: check its workload attestor \
             configuration and log"
                .to_owned(),
        ),
        Code::Unimplemented => (
            why,
            "this agent does not serve Envoy SDS: upgrade it, or remove disable_sds_api".to_owned(),
        ),
        Code::DeadlineExceeded => (
            format!(
                "no answer within {}",
                spire_cli::go_duration_string(timeout)
            ),
            "the agent may still be minting the SVID: retry (with a longer -timeout), and \
             check that it reaches the server"
                .to_owned(),
        ),
        _ => (why, "check spire-agent's log".to_owned()),
    }
}

fn chain_check(name: &str, svid: &Svid, roots: &Roots) -> Check {
    let Some(roots) = roots.for_trust_domain(&svid.trust_domain) else {
        return Check::fail(
            name,
            format!("`ROOTCA` has no roots for {}", svid.trust_domain),
            "`ROOTCA` must carry the SVID's own trust domain: check the agent's `sds {}` names",
        );
    };
    let roots: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let anchors: Vec<TrustAnchor<'_>> = roots
        .iter()
        .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
        .collect();
    let leaf = CertificateDer::from(svid.chain[0].as_slice());
    let intermediates: Vec<CertificateDer<'_>> = svid.chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let now = SystemClock
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let verified = webpki::EndEntityCert::try_from(&leaf).and_then(|leaf| {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(now),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
    });
    match verified {
        Ok(()) => Check::pass(
            name,
            format!(
                "{} certificate(s) up to one of {} root(s)",
                svid.chain.len(),
                anchors.len()
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("verification failed: {e}"),
            "the served bundle does not match the CA that signed the SVID: check the server's \
             CA and UpstreamAuthority, and the agent's log for bundle updates",
        ),
    }
}

fn trust_domain_check(name: &str, svid: &Svid, expected: Option<&str>) -> Check {
    match expected.map(td_name) {
        None => Check::pass(
            name,
            format!("{} (no -trustDomain given)", svid.trust_domain),
        ),
        Some(expected) if expected == svid.trust_domain => Check::pass(name, expected),
        Some(expected) => Check::fail(
            name,
            format!(
                "trust domain mismatch: the SVID is in {}, -trustDomain is {expected}",
                svid.trust_domain
            ),
            format!(
                "meshConfig.trustDomain must equal the SPIRE trust domain ({})",
                svid.trust_domain
            ),
        ),
    }
}

fn ttl_check(name: &str, svid: &Svid) -> Check {
    let now = SystemClock.unix_seconds();
    let lifetime = (svid.not_after - svid.not_before).max(1);
    let left = svid.not_after - now;
    let fix = "the agent re-mints SVIDs at half their lifetime: check that it reaches the \
               server (`spire-agent healthcheck`, its log)";
    if left <= 0 {
        return Check::fail(name, format!("the SVID expired {}s ago", -left), fix);
    }
    let percent = left * 100 / lifetime;
    let detail = format!(
        "{} left ({percent} % of its lifetime)",
        spire_cli::go_duration_string(Duration::from_secs(left.unsigned_abs()))
    );
    if left * 10 < lifetime {
        Check::fail(name, format!("only {detail}"), fix)
    } else {
        Check::pass(name, detail)
    }
}

async fn federated_check(
    sds: &mut SecretDiscoveryServiceClient<Channel>,
    td: &str,
    rootca: Option<&Roots>,
    timeout: Duration,
) -> Check {
    let name = federated_name(td);
    let td = td_name(td);
    let has = |roots: &Roots| match roots {
        Roots::PerTrustDomain(map) => map.get(td).is_some_and(|certs| !certs.is_empty()),
        Roots::Plain(_) => false,
    };
    if rootca.is_some_and(has) {
        return Check::pass(name, "in `ROOTCA`");
    }
    if let Ok(secret) = fetch(sds, "ALL", timeout).await
        && parse_roots(&secret).is_ok_and(|roots| has(&roots))
    {
        return Check::pass(name, "in `ALL`");
    }
    match fetch(sds, &format!("spiffe://{td}"), timeout).await {
        Ok(secret) => match parse_roots(&secret) {
            Ok(_) => Check::pass(name, format!("as spiffe://{td}")),
            Err(why) => Check::fail(name, why, "check the agent's log"),
        },
        Err(status) => Check::fail(
            name,
            format!(
                "not served via `ALL` nor spiffe://{td}: {}",
                rpc_error(&status)
            ),
            format!(
                "load its bundle (`spire-server bundle set -id spiffe://{td}` or a federation \
                 relationship) and create this workload's entry with -federatesWith \
                 spiffe://{td}"
            ),
        ),
    }
}
