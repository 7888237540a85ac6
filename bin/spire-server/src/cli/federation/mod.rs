//! `spire-server federation create|update|list|show|delete|refresh`: dynamic federation
//! relationships through the TrustDomain API, printed as SPIRE prints them.

mod config;

use std::io::{self, Write};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use spire_proto::spire::api::server::trustdomain::v1::trust_domain_client::TrustDomainClient;
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, BatchDeleteFederationRelationshipRequest,
    BatchUpdateFederationRelationshipRequest, GetFederationRelationshipRequest,
    ListFederationRelationshipsRequest, RefreshBundleRequest,
};
use spire_proto::spire::api::types::{
    FederationRelationship, Status, federation_relationship::BundleEndpointProfile as Profile,
};
use tonic::Code;
use tonic::transport::Channel;

use self::config::RelationshipFlags;
use crate::cli::common::{
    Client, Io, OutputArgs, OutputFormat, SocketArgs, code_name, go_quote, pluralize, rpc_err,
};
use spire_cli::protojson;

const API: &str = "spire.api.server.trustdomain.v1.";

/// The `federation` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum FederationCommand {
    /// Start federating with another trust domain
    Create(WriteArgs),
    /// Change an existing federation relationship
    Update(WriteArgs),
    /// Print every federation relationship made through the API
    List(ListArgs),
    /// Print one federation relationship
    Show(ShowArgs),
    /// Stop refreshing a trust domain's bundle (the bundle itself stays)
    Delete(IdArgs),
    /// Fetch a federated trust domain's bundle now
    Refresh(IdArgs),
}

/// Flags of `federation create` / `federation update`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct WriteArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) relationship: RelationshipFlags,
}

/// Flags of `federation list`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Flags of `federation show`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Trust domain whose relationship to print
    #[arg(long = "trustDomain", value_name = "string", default_value = "")]
    pub(crate) trust_domain: String,
}

/// Flags of `federation delete` / `federation refresh`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Trust domain of the relationship
    #[arg(long = "id", value_name = "string", default_value = "")]
    pub(crate) id: String,
}

/// Runs one `federation` verb.
pub(crate) async fn run(command: FederationCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        FederationCommand::Create(args) => run_write(args, Verb::Create, io).await,
        FederationCommand::Update(args) => run_write(args, Verb::Update, io).await,
        FederationCommand::List(args) => run_list(args, io).await,
        FederationCommand::Show(args) => run_show(args, io).await,
        FederationCommand::Delete(args) => run_delete(args, io).await,
        FederationCommand::Refresh(args) => run_refresh(args, io).await,
    }
}

/// The TrustDomain client; a dial failure is reported as the first RPC's error would be.
fn trust_domain_client(
    client: &Client,
    prefix: &str,
) -> anyhow::Result<TrustDomainClient<Channel>> {
    Ok(TrustDomainClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Create,
    Update,
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
        }
    }
}

/// Creates or updates the relationships and prints them: accepted ones on stdout, refused
/// ones (as requested) on stderr, exit 1 if any was refused.
async fn run_write(args: WriteArgs, verb: Verb, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let requested = args.relationship.relationships(io)?;
    let mut td = trust_domain_client(&client, "request failed: ")?;
    let failed = |s: tonic::Status| rpc_err("request failed: ", &s);
    let (results, json): (Vec<(Option<Status>, Option<FederationRelationship>)>, _) = match verb {
        Verb::Create => {
            let resp = td
                .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
                    federation_relationships: requested.clone(),
                    output_mask: None,
                })
                .await
                .map_err(failed)?
                .into_inner();
            let json = protojson::to_json(
                &resp,
                &format!("{API}BatchCreateFederationRelationshipResponse"),
            )?;
            let results = resp.results.into_iter();
            (
                results
                    .map(|r| (r.status, r.federation_relationship))
                    .collect(),
                json,
            )
        }
        Verb::Update => {
            let resp = td
                .batch_update_federation_relationship(BatchUpdateFederationRelationshipRequest {
                    federation_relationships: requested.clone(),
                    input_mask: None,
                    output_mask: None,
                })
                .await
                .map_err(failed)?
                .into_inner();
            let json = protojson::to_json(
                &resp,
                &format!("{API}BatchUpdateFederationRelationshipResponse"),
            )?;
            let results = resp.results.into_iter();
            (
                results
                    .map(|r| (r.status, r.federation_relationship))
                    .collect(),
                json,
            )
        }
    };
    if args.output.output == OutputFormat::Json {
        writeln!(io.out, "{}", protojson::encode(&json))?;
        return Ok(());
    }
    let is_ok = |status: &Option<Status>| status.as_ref().is_none_or(|s| s.code == 0);
    let default = FederationRelationship::default();
    for (_, relationship) in results.iter().filter(|(s, _)| is_ok(s)) {
        writeln!(io.out)?;
        write_relationship(io.out, relationship.as_ref().unwrap_or(&default))?;
    }
    let mut any_failed = false;
    for (index, (status, _)) in results.iter().enumerate() {
        let Some(status) = status.as_ref().filter(|s| s.code != 0) else {
            continue;
        };
        any_failed = true;
        // The API leaves refused relationships out of the results; show the request's.
        writeln!(io.out)?;
        writeln!(
            io.err,
            "Failed to {} the following federation relationship (code: {}, msg: {}):",
            verb.word(),
            code_name(status.code),
            go_quote(&status.message)
        )?;
        write_relationship(io.err, requested.get(index).unwrap_or(&default))?;
    }
    if any_failed {
        bail!(
            "failed to {} one or more federation relationships",
            verb.word()
        );
    }
    Ok(())
}

async fn run_list(args: ListArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let prefix = "error listing federation relationship: ";
    let resp = trust_domain_client(&client, prefix)?
        .list_federation_relationships(ListFederationRelationshipsRequest::default())
        .await
        .map_err(|s| rpc_err(prefix, &s))?
        .into_inner();
    if args.output.output == OutputFormat::Json {
        let name = format!("{API}ListFederationRelationshipsResponse");
        return protojson::print(io.out, &resp, &name);
    }
    let count = i64::try_from(resp.federation_relationships.len()).unwrap_or(i64::MAX);
    writeln!(
        io.out,
        "Found {}",
        pluralize(count, "federation relationship", "federation relationships")
    )?;
    for relationship in &resp.federation_relationships {
        writeln!(io.out)?;
        write_relationship(io.out, relationship)?;
    }
    Ok(())
}

async fn run_show(args: ShowArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.trust_domain.is_empty() {
        bail!("a trust domain name is required");
    }
    let prefix = "error showing federation relationship: ";
    let relationship = trust_domain_client(&client, prefix)?
        .get_federation_relationship(GetFederationRelationshipRequest {
            trust_domain: args.trust_domain.clone(),
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err(prefix, &s))?
        .into_inner();
    if args.output.output == OutputFormat::Json {
        let name = "spire.api.types.FederationRelationship";
        return protojson::print(io.out, &relationship, name);
    }
    writeln!(
        io.out,
        "Found a federation relationship with trust domain {}:\n",
        args.trust_domain
    )?;
    write_relationship(io.out, &relationship)?;
    Ok(())
}

async fn run_delete(args: IdArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.id.is_empty() {
        bail!("id is required");
    }
    let prefix = "failed to delete federation relationship: ";
    let resp = trust_domain_client(&client, prefix)?
        .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest {
            trust_domains: vec![args.id.clone()],
        })
        .await
        .map_err(|s| rpc_err(prefix, &s))?
        .into_inner();
    if args.output.output == OutputFormat::Json {
        let name = format!("{API}BatchDeleteFederationRelationshipResponse");
        return protojson::print(io.out, &resp, &name);
    }
    let Some(result) = resp.results.first() else {
        bail!("internal error: unexpected response from the server");
    };
    match result.status.as_ref().filter(|s| s.code != 0) {
        None => {
            writeln!(io.out, "federation relationship deleted.")?;
            Ok(())
        }
        Some(status) => Err(anyhow!(
            "failed to delete federation relationship {}: {}",
            go_quote(&result.trust_domain),
            status.message
        )),
    }
}

async fn run_refresh(args: IdArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.id.is_empty() {
        bail!("id is required");
    }
    let prefix = "failed to refresh bundle: ";
    let outcome = trust_domain_client(&client, prefix)?
        .refresh_bundle(RefreshBundleRequest {
            trust_domain: args.id.clone(),
        })
        .await;
    match outcome {
        Ok(_) if args.output.output == OutputFormat::Json => {
            let ok = Status {
                code: 0,
                message: "OK".to_owned(),
            };
            protojson::print(io.out, &ok, "spire.api.types.Status")
        }
        Ok(_) => {
            writeln!(io.out, "Bundle refreshed")?;
            Ok(())
        }
        Err(status) if status.code() == Code::NotFound => Err(anyhow!(
            "there is no federation relationship with trust domain {}",
            go_quote(&args.id)
        )),
        Err(status) => Err(rpc_err(prefix, &status)),
    }
}

/// One relationship block, as SPIRE prints it (26-character label column).
fn write_relationship(w: &mut dyn Write, f: &FederationRelationship) -> io::Result<()> {
    writeln!(w, "Trust domain              : {}", f.trust_domain)?;
    writeln!(w, "Bundle endpoint URL       : {}", f.bundle_endpoint_url)?;
    match &f.bundle_endpoint_profile {
        Some(Profile::HttpsWeb(_)) => {
            writeln!(w, "Bundle endpoint profile   : https_web")?;
        }
        Some(Profile::HttpsSpiffe(p)) => {
            writeln!(w, "Bundle endpoint profile   : https_spiffe")?;
            writeln!(w, "Endpoint SPIFFE ID        : {}", p.endpoint_spiffe_id)?;
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use spire_proto::spire::api::types::{HttpsWebProfile, HttpsspiffeProfile};

    use super::*;

    #[test]
    fn relationship_blocks() {
        let mut out = Vec::new();
        let web = FederationRelationship {
            trust_domain: "a.org".into(),
            bundle_endpoint_url: "https://a.org".into(),
            bundle_endpoint_profile: Some(Profile::HttpsWeb(HttpsWebProfile {})),
            trust_domain_bundle: None,
        };
        write_relationship(&mut out, &web).unwrap();
        let spiffe = FederationRelationship {
            bundle_endpoint_profile: Some(Profile::HttpsSpiffe(HttpsspiffeProfile {
                endpoint_spiffe_id: "spiffe://a.org/spire/server".into(),
            })),
            ..web
        };
        write_relationship(&mut out, &spiffe).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Trust domain              : a.org\n\
             Bundle endpoint URL       : https://a.org\n\
             Bundle endpoint profile   : https_web\n\
             Trust domain              : a.org\n\
             Bundle endpoint URL       : https://a.org\n\
             Bundle endpoint profile   : https_spiffe\n\
             Endpoint SPIFFE ID        : spiffe://a.org/spire/server\n"
        );
    }
}
