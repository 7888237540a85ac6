//! `spire-agent api fetch jwt` and `api validate jwt`, printed the way SPIRE's CLI prints them.
//!
//! `fetch jwt` asks for the JWT bundles first and then the JWT-SVIDs (SPIRE's order, each call
//! with its own `-timeout`). Pretty output: `token(<id>):` and the token on a tab-indented
//! line per SVID (plus `hint(<id>):` when there is one), then `bundle(<td>):` and the JWKS per
//! trust domain (sorted; SPIRE prints them in map order). `-output json` prints both responses
//! as one JSON array. `validate jwt` prints `SVID is valid.`, `SPIFFE ID : <id>` and
//! `Claims    : <claims as compact JSON>`.

use std::time::Duration;

use anyhow::anyhow;
use clap::{ArgAction, Args};
use prost_types::value::Kind;
use spire_cli::protojson::{Json, encode, to_json};
use spire_cli::{Io, OutputArgs, OutputFormat, go_duration, rpc_error};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse,
};
use tonic::{Code, Status};

use super::{request, workload_client};
use crate::cli::socket::SocketArgs;

/// Flags of `api fetch jwt`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct FetchJwtArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Time to wait for a response
    #[arg(long = "timeout", value_name = "duration", default_value = "1s", value_parser = go_duration)]
    timeout: i128,
    /// comma separated list of audience values
    #[arg(long = "audience", value_name = "value", value_delimiter = ',', action = ArgAction::Set)]
    audience: Vec<String>,
    /// SPIFFE ID subject (optional)
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    spiffe_id: String,
    #[command(flatten)]
    output: OutputArgs,
    /// deprecated; use -output
    #[arg(long = "format", value_name = "value", value_enum, ignore_case = true)]
    format: Option<OutputFormat>,
}

/// Flags of `api validate jwt`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ValidateJwtArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Time to wait for a response
    #[arg(long = "timeout", value_name = "duration", default_value = "1s", value_parser = go_duration)]
    timeout: i128,
    /// expected audience value
    #[arg(long = "audience", value_name = "string", default_value = "")]
    audience: String,
    /// JWT SVID
    #[arg(long = "svid", value_name = "string", default_value = "")]
    svid: String,
    #[command(flatten)]
    output: OutputArgs,
}

/// `api fetch jwt`.
pub(crate) async fn fetch(args: FetchJwtArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let audience: Vec<String> = args
        .audience
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if audience.is_empty() {
        return Err(anyhow!("audience must be specified"));
    }
    let timeout = duration(args.timeout);
    // gRPC-Go dials lazily: SPIRE reports a dead socket as the first call's failure.
    let mut client = workload_client(&args.socket)
        .await
        .map_err(|e| anyhow!("failed to receive JWT bundles: {e}"))?;
    let bundles = within(timeout, async {
        let mut stream = client
            .fetch_jwt_bundles(request(JwtBundlesRequest {}))
            .await
            .map_err(|s| format!("failed to receive JWT bundles: {}", rpc_error(&s)))?
            .into_inner();
        match stream.message().await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err("EOF".to_owned()),
            Err(status) => Err(rpc_error(&status)),
        }
    })
    .await?;
    let svids = within(timeout, async {
        let message = JwtsvidRequest {
            audience,
            spiffe_id: args.spiffe_id.clone(),
        };
        client
            .fetch_jwtsvid(request(message))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| rpc_error(&s))
    })
    .await?;
    match args.format.unwrap_or(args.output.output) {
        OutputFormat::Json => print_fetch_json(io, &svids, &bundles),
        OutputFormat::Pretty => print_fetch_pretty(io, &svids, &bundles),
    }
}

/// `api validate jwt`.
pub(crate) async fn validate(args: ValidateJwtArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    if args.audience.is_empty() {
        return Err(anyhow!("audience must be specified"));
    }
    if args.svid.is_empty() {
        return Err(anyhow!("svid must be specified"));
    }
    let mut client = workload_client(&args.socket)
        .await
        .map_err(|e| anyhow!("unable to validate JWT SVID: {e}"))?;
    let message = ValidateJwtsvidRequest {
        audience: args.audience.clone(),
        svid: args.svid.clone(),
    };
    let call = client.validate_jwtsvid(request(message));
    let response = match tokio::time::timeout(duration(args.timeout), call).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) if status.code() == Code::InvalidArgument => {
            return Err(anyhow!("SVID is not valid: {}", status.message()));
        }
        Ok(Err(status)) => return Err(validation_failed(&status)),
        Err(_) => return Err(validation_failed(&deadline_exceeded())),
    };
    match args.output.output {
        OutputFormat::Json => print_validate_json(io, &response),
        OutputFormat::Pretty => print_validate_pretty(io, &response),
    }
}

fn validation_failed(status: &Status) -> anyhow::Error {
    anyhow!("unable to validate JWT SVID: {}", rpc_error(status))
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

fn duration(nanos: i128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

/// Runs one call under `-timeout` (gRPC-Go's deadline error when it runs out).
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, String>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| anyhow!("{e}")),
        Err(_) => Err(anyhow!("{}", rpc_error(&deadline_exceeded()))),
    }
}

/// `token(<id>):` / `hint(<id>):` per SVID, then `bundle(<td>):` per trust domain.
fn print_fetch_pretty(
    io: &mut Io<'_>,
    svids: &JwtsvidResponse,
    bundles: &JwtBundlesResponse,
) -> anyhow::Result<()> {
    for svid in &svids.svids {
        write!(io.out, "token({}):\n\t{}\n", svid.spiffe_id, svid.svid)?;
        if !svid.hint.is_empty() {
            write!(io.out, "hint({}):\n\t{}\n", svid.spiffe_id, svid.hint)?;
        }
    }
    let mut tds: Vec<&String> = bundles.bundles.keys().collect();
    tds.sort();
    for td in tds {
        let jwks = String::from_utf8_lossy(&bundles.bundles[td]);
        write!(io.out, "bundle({td}):\n\t{jwks}\n")?;
    }
    Ok(())
}

/// Both responses as one JSON array (SPIRE's printer for two messages).
fn print_fetch_json(
    io: &mut Io<'_>,
    svids: &JwtsvidResponse,
    bundles: &JwtBundlesResponse,
) -> anyhow::Result<()> {
    let json = Json::Array(vec![
        to_json(svids, "JWTSVIDResponse")?,
        to_json(bundles, "JWTBundlesResponse")?,
    ]);
    writeln!(io.out, "{}", encode(&json))?;
    Ok(())
}

fn print_validate_pretty(
    io: &mut Io<'_>,
    response: &ValidateJwtsvidResponse,
) -> anyhow::Result<()> {
    writeln!(io.out, "SVID is valid.")?;
    writeln!(io.out, "SPIFFE ID : {}", response.spiffe_id)?;
    let claims = response
        .claims
        .as_ref()
        .map_or(Json::Object(Vec::new()), struct_json);
    writeln!(io.out, "Claims    : {}", encode(&claims))?;
    Ok(())
}

/// The response as protojson prints it: `claims` as a plain JSON object.
fn print_validate_json(io: &mut Io<'_>, response: &ValidateJwtsvidResponse) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    if let Some(claims) = &response.claims {
        fields.push(("claims".to_owned(), struct_json(claims)));
    }
    fields.push((
        "spiffe_id".to_owned(),
        Json::String(response.spiffe_id.clone()),
    ));
    writeln!(io.out, "{}", encode(&Json::Object(fields)))?;
    Ok(())
}

/// A `google.protobuf.Struct` as JSON, keys sorted (as protojson writes map keys).
fn struct_json(s: &prost_types::Struct) -> Json {
    // `fields` is a BTreeMap: already in key order.
    Json::Object(
        s.fields
            .iter()
            .map(|(name, value)| (name.clone(), value_json(value)))
            .collect(),
    )
}

fn value_json(value: &prost_types::Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Number("null".to_owned()), // the JSON literal
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => Json::Number(go_number(*n)),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

/// A double as Go's JSON encoders write it: plain digits between 1e-6 and 1e21, exponent
/// form (`1e+21`, `1e-7`) outside.
fn go_number(n: f64) -> String {
    if !n.is_finite() {
        return format!("\"{n}\"");
    }
    let abs = n.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{n:e}");
        return match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        };
    }
    format!("{n}")
}

#[cfg(test)]
mod tests;
