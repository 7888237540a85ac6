//! `spire-server bundle show` (the server's own bundle) and `bundle list` (federated bundles).

use clap::Args;
use spire_proto::spire::api::server::bundle::v1::{
    GetBundleRequest, GetFederatedBundleRequest, ListFederatedBundlesRequest,
    ListFederatedBundlesResponse,
};

use super::{BundleFormat, bundle_client, write_bundle};
use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, collect_pages, rpc_err};
use spire_cli::protojson;

/// Flags of `bundle show`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Encoding for pretty output: pem or spiffe (ignored with -output json)
    #[arg(long = "format", value_name = "string", default_value = "pem")]
    pub(crate) format: String,
}

/// Flags of `bundle list`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Print only this trust domain's bundle
    #[arg(long = "id", value_name = "string", default_value = "")]
    pub(crate) id: String,
    /// Encoding for pretty output: pem or spiffe (ignored with -output json)
    #[arg(long = "format", value_name = "string", default_value = "pem")]
    pub(crate) format: String,
}

/// Prints the server's bundle.
pub(crate) async fn run_show(args: ShowArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let format = BundleFormat::parse(&args.format)?;
    let bundle = bundle_client(&client, "")?
        .get_bundle(GetBundleRequest { output_mask: None })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    match args.output.output {
        OutputFormat::Json => protojson::print(io.out, &bundle, "spire.api.types.Bundle"),
        OutputFormat::Pretty => write_bundle(io.out, &bundle, format, false),
    }
}

/// Prints one federated bundle (`-id`) or all of them, each under a banner.
pub(crate) async fn run_list(args: ListArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let format = BundleFormat::parse(&args.format)?;
    let mut bundles = bundle_client(&client, "")?;
    if !args.id.is_empty() {
        let td = spire_id::TrustDomain::parse(&args.id)?;
        let bundle = bundles
            .get_federated_bundle(GetFederatedBundleRequest {
                trust_domain: td.name().to_owned(),
                output_mask: None,
            })
            .await
            .map_err(|s| rpc_err("", &s))?
            .into_inner();
        return match args.output.output {
            OutputFormat::Json => protojson::print(io.out, &bundle, "spire.api.types.Bundle"),
            OutputFormat::Pretty => write_bundle(io.out, &bundle, format, false),
        };
    }
    let all = ListFederatedBundlesResponse {
        bundles: collect_pages(|page_token| {
            let mut bundles = bundles.clone();
            async move {
                let page = bundles
                    .list_federated_bundles(ListFederatedBundlesRequest {
                        output_mask: None,
                        page_size: 0,
                        page_token,
                    })
                    .await
                    .map_err(|s| rpc_err("", &s))?
                    .into_inner();
                Ok((page.bundles, page.next_page_token))
            }
        })
        .await?,
        ..ListFederatedBundlesResponse::default()
    };
    match args.output.output {
        OutputFormat::Json => protojson::print(
            io.out,
            &all,
            "spire.api.server.bundle.v1.ListFederatedBundlesResponse",
        ),
        OutputFormat::Pretty => {
            for (i, bundle) in all.bundles.iter().enumerate() {
                if i != 0 {
                    writeln!(io.out)?;
                }
                write_bundle(io.out, bundle, format, true)?;
            }
            Ok(())
        }
    }
}
