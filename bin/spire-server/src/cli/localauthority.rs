//! `spire-server localauthority x509|jwt show|prepare|activate|taint|revoke` and
//! `spire-server upstreamauthority taint|revoke`: manual CA and JWT key rotation through the
//! LocalAuthority API, with SPIRE's outputs.

use std::io::Write;

use anyhow::bail;
use clap::{Args, Subcommand};
use spire_cli::{go_utc_time, protojson};
use spire_proto::spire::api::server::localauthority::v1::{
    self as pb, local_authority_client::LocalAuthorityClient,
};

use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, rpc_err};

/// `localauthority`: which kind of authority.
#[derive(Debug, Subcommand)]
pub(crate) enum LocalAuthorityCommand {
    /// Manage the local X.509 authorities
    #[command(subcommand)]
    X509(Verb),
    /// Manage the local JWT authorities
    #[command(subcommand)]
    Jwt(Verb),
}

/// The `localauthority x509|jwt` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    /// Shows the local authorities
    Show(PlainArgs),
    /// Prepares a new local authority for use by adding it to the bundle
    Prepare(PlainArgs),
    /// Activates a prepared local authority
    Activate(IdArgs),
    /// Marks the previously active local authority as being tainted
    Taint(IdArgs),
    /// Revokes the previously active local authority by removing it from the bundle and
    /// propagating this update throughout the cluster
    Revoke(IdArgs),
}

/// `upstreamauthority` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum UpstreamAuthorityCommand {
    /// Marks the provided X.509 upstream authority as being tainted
    Taint(SkidArgs),
    /// Revokes the previously active X.509 upstream authority by removing it from the bundle
    /// and propagating this update throughout the cluster
    Revoke(SkidArgs),
}

/// Flags of `show` and `prepare`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct PlainArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Flags of `activate`, `taint` and `revoke`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The authority ID of the local authority
    #[arg(long = "authorityID", value_name = "string", default_value = "")]
    pub(crate) authority_id: String,
}

/// Flags of `upstreamauthority taint|revoke`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct SkidArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The X.509 Subject Key Identifier (or SKID) of the authority's CA certificate of the
    /// upstream X.509 authority
    #[arg(long = "subjectKeyID", value_name = "string", default_value = "")]
    pub(crate) subject_key_id: String,
}

/// X.509 or JWT: the words SPIRE's outputs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    X509,
    Jwt,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::X509 => "X.509",
            Self::Jwt => "JWT",
        }
    }
}

const PACKAGE: &str = "spire.api.server.localauthority.v1";

type Client = LocalAuthorityClient<tonic::transport::Channel>;

async fn client(socket: &SocketArgs, prefix: &str) -> anyhow::Result<Client> {
    let client = socket.connect().await?;
    Ok(LocalAuthorityClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}

/// Runs one `localauthority` command.
pub(crate) async fn run(command: LocalAuthorityCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    let (kind, verb) = match command {
        LocalAuthorityCommand::X509(verb) => (Kind::X509, verb),
        LocalAuthorityCommand::Jwt(verb) => (Kind::Jwt, verb),
    };
    let name = kind.name();
    match verb {
        Verb::Show(args) => {
            let prefix = format!("could not get {name} authorities: ");
            let mut c = client(&args.socket, &prefix).await?;
            let (message, full, states) = match kind {
                Kind::X509 => {
                    let r = c
                        .get_x509_authority_state(pb::GetX509AuthorityStateRequest {})
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let states = [r.active.clone(), r.prepared.clone(), r.old.clone()];
                    (
                        Message::X509Show(r),
                        "GetX509AuthorityStateResponse",
                        states,
                    )
                }
                Kind::Jwt => {
                    let r = c
                        .get_jwt_authority_state(pb::GetJwtAuthorityStateRequest {})
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let states = [r.active.clone(), r.prepared.clone(), r.old.clone()];
                    (Message::JwtShow(r), "GetJWTAuthorityStateResponse", states)
                }
            };
            if args.output.output == OutputFormat::Json {
                return message.print_json(io.out, full);
            }
            let mut text = String::new();
            for (i, (label, state)) in ["Active", "Prepared", "Old"].iter().zip(states).enumerate()
            {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(&format!("{label} {name} authority:\n"));
                match state {
                    Some(state) => text.push_str(&pretty_state(kind, &state)),
                    None => text.push_str(&format!(
                        "  No {} {name} authority found\n",
                        label.to_lowercase()
                    )),
                }
            }
            io.out.write_all(text.as_bytes())?;
            Ok(())
        }
        Verb::Prepare(args) => {
            let prefix = format!("could not prepare {name} authority: ");
            let mut c = client(&args.socket, &prefix).await?;
            let (message, full, state) = match kind {
                Kind::X509 => {
                    let r = c
                        .prepare_x509_authority(pb::PrepareX509AuthorityRequest {})
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.prepared_authority.clone();
                    (
                        Message::X509Prepare(r),
                        "PrepareX509AuthorityResponse",
                        state,
                    )
                }
                Kind::Jwt => {
                    let r = c
                        .prepare_jwt_authority(pb::PrepareJwtAuthorityRequest {})
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.prepared_authority.clone();
                    (Message::JwtPrepare(r), "PrepareJWTAuthorityResponse", state)
                }
            };
            print_one(
                io,
                &args.output,
                kind,
                "Prepared",
                "prepared",
                message,
                full,
                state,
            )
        }
        Verb::Activate(args) => {
            require_id(&args)?;
            let prefix = format!("could not activate {name} authority: ");
            let mut c = client(&args.socket, &prefix).await?;
            let authority_id = args.authority_id.clone();
            let (message, full, state) = match kind {
                Kind::X509 => {
                    let r = c
                        .activate_x509_authority(pb::ActivateX509AuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.activated_authority.clone();
                    (
                        Message::X509Activate(r),
                        "ActivateX509AuthorityResponse",
                        state,
                    )
                }
                Kind::Jwt => {
                    let r = c
                        .activate_jwt_authority(pb::ActivateJwtAuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.activated_authority.clone();
                    (
                        Message::JwtActivate(r),
                        "ActivateJWTAuthorityResponse",
                        state,
                    )
                }
            };
            print_one(
                io,
                &args.output,
                kind,
                "Activated",
                "activated",
                message,
                full,
                state,
            )
        }
        Verb::Taint(args) => {
            require_id(&args)?;
            let prefix = format!("could not taint {name} authority: ");
            let mut c = client(&args.socket, &prefix).await?;
            let authority_id = args.authority_id.clone();
            let (message, full, state) = match kind {
                Kind::X509 => {
                    let r = c
                        .taint_x509_authority(pb::TaintX509AuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.tainted_authority.clone();
                    (Message::X509Taint(r), "TaintX509AuthorityResponse", state)
                }
                Kind::Jwt => {
                    let r = c
                        .taint_jwt_authority(pb::TaintJwtAuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.tainted_authority.clone();
                    (Message::JwtTaint(r), "TaintJWTAuthorityResponse", state)
                }
            };
            print_one(
                io,
                &args.output,
                kind,
                "Tainted",
                "tainted",
                message,
                full,
                state,
            )
        }
        Verb::Revoke(args) => {
            require_id(&args)?;
            let prefix = format!("could not revoke {name} authority: ");
            let mut c = client(&args.socket, &prefix).await?;
            let authority_id = args.authority_id.clone();
            let (message, full, state) = match kind {
                Kind::X509 => {
                    let r = c
                        .revoke_x509_authority(pb::RevokeX509AuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.revoked_authority.clone();
                    (Message::X509Revoke(r), "RevokeX509AuthorityResponse", state)
                }
                Kind::Jwt => {
                    let r = c
                        .revoke_jwt_authority(pb::RevokeJwtAuthorityRequest { authority_id })
                        .await
                        .map_err(|s| rpc_err(&prefix, &s))?
                        .into_inner();
                    let state = r.revoked_authority.clone();
                    (Message::JwtRevoke(r), "RevokeJWTAuthorityResponse", state)
                }
            };
            print_one(
                io,
                &args.output,
                kind,
                "Revoked",
                "revoked",
                message,
                full,
                state,
            )
        }
    }
}

/// Runs one `upstreamauthority` command.
pub(crate) async fn run_upstream(
    command: UpstreamAuthorityCommand,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let (args, verb) = match command {
        UpstreamAuthorityCommand::Taint(args) => (args, "taint"),
        UpstreamAuthorityCommand::Revoke(args) => (args, "revoke"),
    };
    if args.subject_key_id.is_empty() {
        bail!("the Subject Key ID of the X.509 upstream authority is required");
    }
    let prefix = format!("could not {verb} X.509 upstream authority: ");
    let mut c = client(&args.socket, &prefix).await?;
    let subject_key_id = args.subject_key_id.clone();
    let (message, full, skid, label) = if verb == "taint" {
        let r = c
            .taint_x509_upstream_authority(pb::TaintX509UpstreamAuthorityRequest { subject_key_id })
            .await
            .map_err(|s| rpc_err(&prefix, &s))?
            .into_inner();
        let skid = r.upstream_authority_subject_key_id.clone();
        (
            Message::UpstreamTaint(r),
            "TaintX509UpstreamAuthorityResponse",
            skid,
            "Tainted",
        )
    } else {
        let r = c
            .revoke_x509_upstream_authority(pb::RevokeX509UpstreamAuthorityRequest {
                subject_key_id,
            })
            .await
            .map_err(|s| rpc_err(&prefix, &s))?
            .into_inner();
        let skid = r.upstream_authority_subject_key_id.clone();
        (
            Message::UpstreamRevoke(r),
            "RevokeX509UpstreamAuthorityResponse",
            skid,
            "Revoked",
        )
    };
    match args.output.output {
        OutputFormat::Json => message.print_json(io.out, full),
        OutputFormat::Pretty => {
            write!(
                io.out,
                "{label} X.509 upstream authority:\n  Subject Key ID: {skid}\n"
            )?;
            Ok(())
        }
    }
}

fn require_id(args: &IdArgs) -> anyhow::Result<()> {
    if args.authority_id.is_empty() {
        bail!("an authority ID is required");
    }
    Ok(())
}

/// `  Authority ID: …`, `  Expires at: …`, and for X.509 the upstream authority line.
fn pretty_state(kind: Kind, state: &pb::AuthorityState) -> String {
    let mut text = format!(
        "  Authority ID: {}\n  Expires at: {}\n",
        state.authority_id,
        go_utc_time(state.expires_at)
    );
    if kind == Kind::X509 {
        if state.upstream_authority_subject_key_id.is_empty() {
            text.push_str("  Upstream authority ID: No upstream authority\n");
        } else {
            text.push_str(&format!(
                "  Upstream authority Subject Key ID: {}\n",
                state.upstream_authority_subject_key_id
            ));
        }
    }
    text
}

#[allow(clippy::too_many_arguments)]
fn print_one(
    io: &mut Io<'_>,
    output: &OutputArgs,
    kind: Kind,
    label: &str,
    lower: &str,
    message: Message,
    full: &str,
    state: Option<pb::AuthorityState>,
) -> anyhow::Result<()> {
    if output.output == OutputFormat::Json {
        return message.print_json(io.out, full);
    }
    let name = kind.name();
    writeln!(io.out, "{label} {name} authority:")?;
    let Some(state) = state else {
        bail!("internal error: expected to have {lower} {name} authority information");
    };
    io.out.write_all(pretty_state(kind, &state).as_bytes())?;
    Ok(())
}

/// Any response of the service, for `-output json`.
enum Message {
    X509Show(pb::GetX509AuthorityStateResponse),
    JwtShow(pb::GetJwtAuthorityStateResponse),
    X509Prepare(pb::PrepareX509AuthorityResponse),
    JwtPrepare(pb::PrepareJwtAuthorityResponse),
    X509Activate(pb::ActivateX509AuthorityResponse),
    JwtActivate(pb::ActivateJwtAuthorityResponse),
    X509Taint(pb::TaintX509AuthorityResponse),
    JwtTaint(pb::TaintJwtAuthorityResponse),
    X509Revoke(pb::RevokeX509AuthorityResponse),
    JwtRevoke(pb::RevokeJwtAuthorityResponse),
    UpstreamTaint(pb::TaintX509UpstreamAuthorityResponse),
    UpstreamRevoke(pb::RevokeX509UpstreamAuthorityResponse),
}

impl Message {
    fn print_json(&self, out: &mut dyn Write, name: &str) -> anyhow::Result<()> {
        let full = format!("{PACKAGE}.{name}");
        match self {
            Self::X509Show(m) => protojson::print(out, m, &full),
            Self::JwtShow(m) => protojson::print(out, m, &full),
            Self::X509Prepare(m) => protojson::print(out, m, &full),
            Self::JwtPrepare(m) => protojson::print(out, m, &full),
            Self::X509Activate(m) => protojson::print(out, m, &full),
            Self::JwtActivate(m) => protojson::print(out, m, &full),
            Self::X509Taint(m) => protojson::print(out, m, &full),
            Self::JwtTaint(m) => protojson::print(out, m, &full),
            Self::X509Revoke(m) => protojson::print(out, m, &full),
            Self::JwtRevoke(m) => protojson::print(out, m, &full),
            Self::UpstreamTaint(m) => protojson::print(out, m, &full),
            Self::UpstreamRevoke(m) => protojson::print(out, m, &full),
        }
    }
}
