//! `spire-agent api fetch [x509]`, `api fetch jwt`, `api validate jwt` and `api watch`: the
//! Workload API as a workload sees it, printed (and optionally written to files) the way
//! SPIRE's CLI does. The JWT commands are in [`jwt`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::{ArgAction, Args, Subcommand};
use spire_cli::{
    Io, OutputArgs, OutputFormat, go_bool, go_duration, go_duration_string, go_utc_time,
    pem_blocks, rpc_error, write_file,
};
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::{X509svidRequest, X509svidResponse};
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::cli::socket::SocketArgs;

mod jwt;

/// `api …` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ApiCommand {
    /// Fetch an X509-SVID (the default) or JWT-SVIDs from the Workload API.
    Fetch(FetchArgs),
    /// Validate an SVID through the Workload API.
    #[command(subcommand)]
    Validate(ValidateKind),
    /// Watch the Workload API and print every X509-SVID update.
    Watch(WatchArgs),
}

/// `api fetch [x509] …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct FetchArgs {
    #[command(subcommand)]
    kind: Option<FetchKind>,
    #[command(flatten)]
    x509: X509Args,
}

#[derive(Debug, Subcommand)]
enum FetchKind {
    /// Fetch X509-SVIDs and bundles.
    X509(X509Args),
    /// Fetch JWT-SVIDs and JWT bundles.
    Jwt(jwt::FetchJwtArgs),
}

/// `api validate …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ValidateKind {
    /// Validate a JWT-SVID.
    Jwt(jwt::ValidateJwtArgs),
}

/// Flags of `api fetch x509`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct X509Args {
    #[command(flatten)]
    socket: SocketArgs,
    /// Time to wait for a response
    #[arg(long = "timeout", value_name = "duration", default_value = "1s", value_parser = go_duration)]
    timeout: i128,
    /// Suppress stdout
    #[arg(long = "silent", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    silent: bool,
    /// Write SVID data to the specified path (optional; only available for pretty output)
    #[arg(long = "write", value_name = "string")]
    write: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Flags of `api watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    socket: SocketArgs,
}

/// One X509-SVID of a response, parsed for printing.
struct Svid {
    spiffe_id: String,
    hint: String,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    bundle: Vec<Vec<u8>>,
    federated: Vec<(String, Vec<Vec<u8>>)>,
}

/// Runs one `api` verb.
pub(crate) async fn run(command: ApiCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        ApiCommand::Fetch(args) => match args.kind {
            Some(FetchKind::X509(x509)) => fetch_x509(x509, io).await,
            Some(FetchKind::Jwt(args)) => jwt::fetch(args, io).await,
            None => fetch_x509(args.x509, io).await,
        },
        ApiCommand::Validate(ValidateKind::Jwt(args)) => jwt::validate(args, io).await,
        ApiCommand::Watch(args) => watch(args, io).await,
    }
}

async fn workload_client(socket: &SocketArgs) -> anyhow::Result<SpiffeWorkloadApiClient<Channel>> {
    let channel = socket
        .connect()
        .await?
        .channel()
        .map_err(|status| anyhow!("{}", rpc_error(&status)))?;
    Ok(SpiffeWorkloadApiClient::new(channel))
}

/// A Workload API request with the security header every workload must send.
fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "workload.spiffe.io",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

async fn first_response(
    client: &mut SpiffeWorkloadApiClient<Channel>,
) -> Result<X509svidResponse, Status> {
    let mut stream = client
        .fetch_x509svid(request(X509svidRequest {}))
        .await?
        .into_inner();
    stream
        .message()
        .await?
        .ok_or_else(|| Status::unavailable("stream ended without a response"))
}

async fn fetch_x509(args: X509Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let timeout = Duration::from_nanos(u64::try_from(args.timeout.max(0)).unwrap_or(u64::MAX));
    let start = Instant::now();
    let mut client = workload_client(&args.socket).await?;
    let response = tokio::time::timeout(timeout, first_response(&mut client))
        .await
        .map_err(|_| {
            anyhow!("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
        })?
        .map_err(|status| anyhow!("{}", rpc_error(&status)))?;
    let elapsed = start.elapsed();
    if args.output.output == OutputFormat::Json {
        return spire_cli::protojson::print(io.out, &response, "X509SVIDResponse");
    }
    let svids = parse_response(&response)?;
    if !args.silent {
        print_svids(io, &svids, elapsed)?;
    }
    if let Some(dir) = &args.write {
        write_svids(io, dir, &svids)?;
    }
    Ok(())
}

async fn watch(args: WatchArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    loop {
        let start = Instant::now();
        let result = async {
            let mut client = workload_client(&args.socket)
                .await
                .map_err(|e| e.to_string())?;
            let mut stream = client
                .fetch_x509svid(request(X509svidRequest {}))
                .await
                .map_err(|s| rpc_error(&s))?
                .into_inner();
            let mut last = start;
            while let Some(response) = stream.message().await.map_err(|s| rpc_error(&s))? {
                let svids = parse_response(&response).map_err(|e| e.to_string())?;
                print_svids(io, &svids, last.elapsed()).map_err(|e| e.to_string())?;
                last = Instant::now();
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(error) = result {
            writeln!(io.err, "Failed to fetch X509-SVID: {error}")?;
        }
        // The agent may be restarting or the entry not yet created: try again shortly.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Splits a concatenated DER sequence into its certificates.
fn split_der(mut der: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut certs = Vec::new();
    while !der.is_empty() {
        let (rest, _) = X509Certificate::from_der(der)
            .map_err(|e| anyhow!("failed to parse certificates: {e}"))?;
        certs.push(der[..der.len() - rest.len()].to_vec());
        der = rest;
    }
    Ok(certs)
}

fn parse_response(response: &X509svidResponse) -> anyhow::Result<Vec<Svid>> {
    let mut federated = response
        .federated_bundles
        .iter()
        .map(|(td, der)| Ok((td.clone(), split_der(der)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    federated.sort();
    response
        .svids
        .iter()
        .map(|svid| {
            let chain = split_der(&svid.x509_svid)?;
            if chain.is_empty() {
                return Err(anyhow!("SVID for {} has no certificates", svid.spiffe_id));
            }
            Ok(Svid {
                spiffe_id: svid.spiffe_id.clone(),
                hint: svid.hint.clone(),
                chain,
                key: svid.x509_svid_key.clone(),
                bundle: split_der(&svid.bundle)?,
                federated: federated.clone(),
            })
        })
        .collect()
}

fn validity(der: &[u8]) -> (String, String) {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => (
            go_utc_time(cert.validity().not_before.timestamp()),
            go_utc_time(cert.validity().not_after.timestamp()),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

fn print_svids(io: &mut Io<'_>, svids: &[Svid], elapsed: Duration) -> anyhow::Result<()> {
    let plural = if svids.len() == 1 { "" } else { "s" };
    writeln!(
        io.out,
        "Received {} svid{plural} after {}",
        svids.len(),
        go_duration_string(elapsed)
    )?;
    for svid in svids {
        writeln!(io.out)?;
        writeln!(io.out, "SPIFFE ID:\t\t{}", svid.spiffe_id)?;
        if !svid.hint.is_empty() {
            writeln!(io.out, "Hint:\t\t\t{}", svid.hint)?;
        }
        let (after, until) = validity(&svid.chain[0]);
        writeln!(io.out, "SVID Valid After:\t{after}")?;
        writeln!(io.out, "SVID Valid Until:\t{until}")?;
        for (i, intermediate) in svid.chain[1..].iter().enumerate() {
            let (after, until) = validity(intermediate);
            writeln!(io.out, "Intermediate #{} Valid After:\t{after}", i + 1)?;
            writeln!(io.out, "Intermediate #{} Valid Until:\t{until}", i + 1)?;
        }
        for (i, ca) in svid.bundle.iter().enumerate() {
            let (after, until) = validity(ca);
            writeln!(io.out, "CA #{} Valid After:\t{after}", i + 1)?;
            writeln!(io.out, "CA #{} Valid Until:\t{until}", i + 1)?;
        }
        for (td, cas) in &svid.federated {
            for (i, ca) in cas.iter().enumerate() {
                let (after, until) = validity(ca);
                writeln!(io.out, "[{td}] CA #{} Valid After:\t{after}", i + 1)?;
                writeln!(io.out, "[{td}] CA #{} Valid Until:\t{until}", i + 1)?;
            }
        }
    }
    writeln!(io.out)?;
    Ok(())
}

fn write_svids(io: &mut Io<'_>, dir: &Path, svids: &[Svid]) -> anyhow::Result<()> {
    for (i, svid) in svids.iter().enumerate() {
        let svid_path = dir.join(format!("svid.{i}.pem"));
        let key_path = dir.join(format!("svid.{i}.key"));
        let bundle_path = dir.join(format!("bundle.{i}.pem"));
        writeln!(io.out, "Writing SVID #{i} to file {}.", svid_path.display())?;
        let chain = pem_blocks("CERTIFICATE", svid.chain.iter().map(Vec::as_slice));
        write_file(&svid_path, chain.as_bytes(), 0o644).context("error writing SVID")?;
        writeln!(io.out, "Writing key #{i} to file {}.", key_path.display())?;
        let key = pem_blocks("PRIVATE KEY", [svid.key.as_slice()]);
        write_file(&key_path, key.as_bytes(), 0o600).context("error writing key")?;
        writeln!(
            io.out,
            "Writing bundle #{i} to file {}.",
            bundle_path.display()
        )?;
        let bundle = pem_blocks("CERTIFICATE", svid.bundle.iter().map(Vec::as_slice));
        write_file(&bundle_path, bundle.as_bytes(), 0o644).context("error writing bundle")?;
        for (j, (td, cas)) in svid.federated.iter().enumerate() {
            let path = dir.join(format!("federated_bundle.{i}.{j}.pem"));
            writeln!(
                io.out,
                "Writing federated bundle #{j} for trust domain {td} to file {}.",
                path.display()
            )?;
            let pem = pem_blocks("CERTIFICATE", cas.iter().map(Vec::as_slice));
            write_file(&path, pem.as_bytes(), 0o644).context("error writing federated bundle")?;
        }
    }
    Ok(())
}
