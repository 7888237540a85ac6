//! `spire-server bundle show|list|set|delete|count`.

mod delete;
mod set;
mod show;

use std::io::Write;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use spire_proto::spire::api::server::bundle::v1::CountBundlesRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types::{Bundle as ProtoBundle, Status};
use spire_svid::{Bundle, JwtAuthority, X509Authority};
use tonic::transport::Channel;

use crate::cli::common::{Client, Io, OutputArgs, OutputFormat, SocketArgs, print_count, rpc_err};
use spire_cli::protojson;

pub(crate) use set::parse_bundle;

/// The `bundle` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Print this server's own trust bundle
    Show(show::ShowArgs),
    /// Print the federated bundles (all, or one with -id)
    List(show::ListArgs),
    /// Add or replace a federated bundle
    Set(set::SetArgs),
    /// Remove a federated bundle
    Delete(delete::DeleteArgs),
    /// Print how many trust bundles the server holds
    Count(CountArgs),
}

/// Runs one `bundle` verb.
pub(crate) async fn run(command: BundleCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        BundleCommand::Show(args) => show::run_show(args, io).await,
        BundleCommand::List(args) => show::run_list(args, io).await,
        BundleCommand::Set(args) => set::run(args, io).await,
        BundleCommand::Delete(args) => delete::run(args, io).await,
        BundleCommand::Count(args) => run_count(args, io).await,
    }
}

/// The Bundle client; a dial failure is reported as the first RPC's error would be.
fn bundle_client(client: &Client, prefix: &str) -> anyhow::Result<BundleClient<Channel>> {
    Ok(BundleClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}

/// Reports a batch call on one federated bundle: `-output json` prints the whole response
/// (`type_name`); pretty output prints `done`, or fails with `failure(message)` when the
/// bundle's result is not OK (a missing status counts as OK).
fn report_single(
    io: &mut Io<'_>,
    output: OutputFormat,
    response: &impl prost::Message,
    type_name: &str,
    status: Option<&Status>,
    done: &str,
    failure: impl FnOnce(&str) -> anyhow::Error,
) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        return protojson::print(io.out, response, type_name);
    }
    match status {
        Some(status) if status.code != 0 => Err(failure(&status.message)),
        _ => {
            writeln!(io.out, "{done}")?;
            Ok(())
        }
    }
}

/// `-format pem|spiffe` (case-insensitive, default pem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BundleFormat {
    /// Concatenated PEM certificates.
    Pem,
    /// The SPIFFE bundle document (JWKS).
    Spiffe,
}

impl BundleFormat {
    /// Parses the flag value with SPIRE's error message.
    pub(crate) fn parse(value: &str) -> anyhow::Result<Self> {
        match value.to_lowercase().as_str() {
            "" | "pem" => Ok(Self::Pem),
            "spiffe" => Ok(Self::Spiffe),
            other => bail!("invalid format: \"{other}\""),
        }
    }
}

/// The API bundle as our domain bundle (for the SPIFFE document).
pub(crate) fn from_proto(b: &ProtoBundle) -> anyhow::Result<Bundle> {
    let trust_domain = spire_id::TrustDomain::parse(&b.trust_domain)?;
    let mut bundle = Bundle::new(trust_domain);
    bundle.x509_authorities = b
        .x509_authorities
        .iter()
        .map(|a| X509Authority {
            asn1: a.asn1.clone(),
            tainted: a.tainted,
        })
        .collect();
    bundle.jwt_authorities = b
        .jwt_authorities
        .iter()
        .map(|k| JwtAuthority {
            key_id: k.key_id.clone(),
            public_key: k.public_key.clone(),
            expires_at: k.expires_at,
            tainted: k.tainted,
        })
        .collect();
    bundle.refresh_hint = b.refresh_hint;
    bundle.sequence_number = b.sequence_number;
    Ok(bundle)
}

/// Writes a bundle in `format`; `header` adds SPIRE's `****` banner naming the trust domain
/// (used by `bundle list`).
pub(crate) fn write_bundle(
    w: &mut dyn Write,
    b: &ProtoBundle,
    format: BundleFormat,
    header: bool,
) -> anyhow::Result<()> {
    if header {
        let stars = "*".repeat(40);
        write!(w, "{stars}\n* {}\n{stars}\n", b.trust_domain)?;
    }
    match format {
        BundleFormat::Pem => {
            for a in &b.x509_authorities {
                x509_parser::parse_x509_certificate(&a.asn1)
                    .map_err(|e| anyhow!("unable to parse certificates ASN.1 DER data: {e}"))?;
                w.write_all(spire_svid::encode_certificates_pem([a.asn1.as_slice()]).as_bytes())?;
            }
        }
        BundleFormat::Spiffe => {
            let doc = from_proto(b)?.to_spiffe_json();
            writeln!(w, "{}", doc.trim_end_matches('\n'))?;
        }
    }
    Ok(())
}

/// Flags of `bundle count`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct CountArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

async fn run_count(args: CountArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let resp = bundle_client(&client, "")?
        .count_bundles(CountBundlesRequest {})
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    print_count(
        io,
        args.output.output,
        &resp,
        "spire.api.server.bundle.v1.CountBundlesResponse",
        resp.count,
        ("bundle", "bundles"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn format_flag() {
        assert_eq!(BundleFormat::parse("PEM").unwrap(), BundleFormat::Pem);
        assert_eq!(BundleFormat::parse("spiffe").unwrap(), BundleFormat::Spiffe);
        assert_eq!(
            BundleFormat::parse("der").unwrap_err().to_string(),
            "invalid format: \"der\""
        );
    }

    #[test]
    fn list_header() {
        let b = ProtoBundle {
            trust_domain: "other.org".into(),
            ..ProtoBundle::default()
        };
        let mut out = Vec::new();
        write_bundle(&mut out, &b, BundleFormat::Pem, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "****************************************\n* other.org\n****************************************\n"
        );
    }
}
