//! `spire-server bundle set`: creates or replaces a federated bundle.

use anyhow::{anyhow, bail};
use clap::Args;
use spire_proto::spire::api::server::bundle::v1::BatchSetFederatedBundleRequest;
use spire_proto::spire::api::types::{Bundle as ProtoBundle, JwtKey, X509Certificate};

use super::{BundleFormat, bundle_client, report_single};
use crate::cli::common::{Io, OutputArgs, SocketArgs, read_input, rpc_err};

/// Flags of `bundle set`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Trust domain the bundle belongs to
    #[arg(long = "id", value_name = "string", default_value = "")]
    pub(crate) id: String,
    /// Bundle file to read (default: stdin)
    #[arg(long = "path", value_name = "string", default_value = "")]
    pub(crate) path: String,
    /// Input encoding: pem or spiffe
    #[arg(long = "format", value_name = "string", default_value = "pem")]
    pub(crate) format: String,
}

/// The API bundle for trust domain `id` from PEM or SPIFFE-document bytes.
pub(crate) fn parse_bundle(
    data: &[u8],
    format: BundleFormat,
    id: &str,
) -> anyhow::Result<ProtoBundle> {
    match format {
        BundleFormat::Pem => {
            let authorities = spire_svid::parse_x509_authorities_pem(data)
                .map_err(|e| anyhow!("unable to parse bundle data: {e}"))?;
            Ok(ProtoBundle {
                trust_domain: id.to_owned(),
                x509_authorities: authorities
                    .into_iter()
                    .map(|a| X509Certificate {
                        asn1: a.asn1,
                        tainted: false,
                    })
                    .collect(),
                ..ProtoBundle::default()
            })
        }
        BundleFormat::Spiffe => {
            let td = spire_id::TrustDomain::parse(id)?;
            let bundle = spire_svid::Bundle::from_spiffe_json(td, data)
                .map_err(|e| anyhow!("unable to parse to spiffe bundle: {e}"))?;
            Ok(ProtoBundle {
                trust_domain: id.to_owned(),
                x509_authorities: bundle
                    .x509_authorities
                    .into_iter()
                    .map(|a| X509Certificate {
                        asn1: a.asn1,
                        tainted: false,
                    })
                    .collect(),
                jwt_authorities: bundle
                    .jwt_authorities
                    .into_iter()
                    .map(|k| JwtKey {
                        public_key: k.public_key,
                        key_id: k.key_id,
                        expires_at: k.expires_at,
                        tainted: false,
                    })
                    .collect(),
                refresh_hint: bundle.refresh_hint,
                sequence_number: bundle.sequence_number,
            })
        }
    }
}

/// Reads the bundle (`-path` or stdin) and sets it.
pub(crate) async fn run(args: SetArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.id.is_empty() {
        bail!("id flag is required");
    }
    let format = BundleFormat::parse(&args.format)?;
    let data =
        read_input(&args.path, io.stdin).map_err(|e| anyhow!("unable to load bundle data: {e}"))?;
    let bundle = parse_bundle(&data, format, &args.id)?;
    let resp = bundle_client(&client, "failed to set federated bundle: ")?
        .batch_set_federated_bundle(BatchSetFederatedBundleRequest {
            bundle: vec![bundle],
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err("failed to set federated bundle: ", &s))?
        .into_inner();
    report_single(
        io,
        args.output.output,
        &resp,
        "spire.api.server.bundle.v1.BatchSetFederatedBundleResponse",
        resp.results.first().and_then(|r| r.status.as_ref()),
        "bundle set.",
        |message| anyhow!("failed to set federated bundle: {message}"),
    )
}
