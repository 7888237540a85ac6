//! `spire-server jwt mint`: `SVID.MintJWTSVID`, the token printed or written to a file.

use std::path::Path;

use anyhow::{anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use spire_proto::spire::api::server::svid::v1::MintJwtsvidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;

use crate::cli::common::{
    Io, OutputArgs, OutputFormat, SocketArgs, go_duration, go_errno_text, id_to_proto, rpc_err,
};
use crate::cli::x509::{ttl_to_seconds, warn_if_capped};
use spire_cli::{protojson, write_file};

/// The `jwt` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum JwtCommand {
    /// Mints a JWT-SVID
    Mint(MintArgs),
}

/// Flags of `jwt mint`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct MintArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// SPIFFE ID of the JWT-SVID
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// TTL of the JWT-SVID
    #[arg(long = "ttl", value_name = "duration", default_value = "0s", value_parser = go_duration, allow_negative_numbers = true)]
    pub(crate) ttl: i128,
    /// Audience claim that will be included in the SVID. Can be used more than once.
    #[arg(long = "audience", value_name = "value", action = ArgAction::Append)]
    pub(crate) audience: Vec<String>,
    /// File to write token to instead of stdout
    #[arg(long = "write", value_name = "string", default_value = "")]
    pub(crate) write: String,
}

/// Runs one `jwt` verb.
pub(crate) async fn run(command: JwtCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    let JwtCommand::Mint(args) = command;
    let client = args.socket.connect().await?;
    if args.spiffe_id.is_empty() {
        bail!("spiffeID must be specified");
    }
    if args.audience.is_empty() {
        bail!("at least one audience must be specified");
    }
    let id = id_to_proto(&args.spiffe_id)?;
    let channel = client
        .channel()
        .map_err(|s| rpc_err("unable to mint SVID: ", &s))?;
    let response = SvidClient::new(channel)
        .mint_jwtsvid(MintJwtsvidRequest {
            id: Some(id),
            audience: args.audience,
            ttl: ttl_to_seconds(args.ttl),
        })
        .await
        .map_err(|s| rpc_err("unable to mint SVID: ", &s))?
        .into_inner();
    let token = response
        .svid
        .as_ref()
        .map(|svid| svid.token.as_str())
        .unwrap_or_default();
    if token.is_empty() {
        bail!("server response missing token");
    }
    match spire_svid::jwt::parse_jwt_svid_unverified(token) {
        Ok(claims) => warn_if_capped(io, "JWT-SVID", claims.expires_at, args.ttl)?,
        Err(e) => writeln!(io.err, "Unable to determine JWT-SVID lifetime: {e}")?,
    }

    if args.write.is_empty() {
        return match args.output.output {
            OutputFormat::Json => protojson::print(
                io.out,
                &response,
                "spire.api.server.svid.v1.MintJWTSVIDResponse",
            ),
            OutputFormat::Pretty => {
                writeln!(io.out, "{token}")?;
                Ok(())
            }
        };
    }
    // A token is a bearer credential: private, as SPIRE writes it (and as `x509 mint` writes
    // its key).
    let path = Path::new(&args.write);
    write_file(path, token.as_bytes(), 0o600).map_err(|e| {
        anyhow!(
            "unable to write token: open {}: {}",
            path.display(),
            go_errno_text(&e)
        )
    })?;
    writeln!(io.out, "JWT-SVID written to {}", path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<MintArgs, clap::Error> {
        let argv = ["spire-server", "jwt", "mint"]
            .iter()
            .chain(args)
            .map(std::ffi::OsString::from);
        Cli::try_parse_from(spire_cli::normalize(argv)).map(|cli| match cli.command {
            Command::Jwt(JwtCommand::Mint(m)) => m,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn every_flag_in_go_syntax() {
        let m = parse(&[
            "-spiffeID",
            "spiffe://td/a",
            "-ttl",
            "1m30s",
            "-audience",
            "x",
            "-audience=y",
            "-write",
            "/tmp/token",
            "-output",
            "json",
            "-socketPath",
            "/s.sock",
            "-instance",
            "i1",
        ])
        .unwrap();
        assert_eq!(m.spiffe_id, "spiffe://td/a");
        assert_eq!(m.ttl, 90_000_000_000);
        assert_eq!(m.audience, ["x", "y"]);
        assert_eq!(m.write, "/tmp/token");
        assert_eq!(m.output.output, OutputFormat::Json);
        assert_eq!(
            (m.socket.socket_path.as_str(), m.socket.instance.as_str()),
            ("/s.sock", "i1")
        );

        let m = parse(&[]).unwrap();
        assert_eq!((m.ttl, m.audience.len(), m.write.as_str()), (0, 0, ""));
        assert_eq!(m.output.output, OutputFormat::Pretty);
        assert!(parse(&["-ttl", "5"]).is_err(), "Go durations need a unit");
    }
}
