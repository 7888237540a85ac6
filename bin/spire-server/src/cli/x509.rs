//! `spire-server x509 mint`: a key, a CSR and `SVID.MintX509SVID`, printed or written as PEM.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::svid::v1::MintX509svidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_time::Clock as _;

use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, go_duration, rpc_err};
use spire_cli::protojson::{self, Json};
use spire_cli::{pem_blocks, write_file};

/// The `x509` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum X509Command {
    /// Have the server sign a new X509-SVID and print or save it
    Mint(MintArgs),
}

/// Flags of `x509 mint`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct MintArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// SPIFFE ID to put in the SVID (required)
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// Lifetime as a Go duration such as 1h30m (0s: server default)
    #[arg(long = "ttl", value_name = "duration", default_value = "0s", value_parser = go_duration, allow_negative_numbers = true)]
    pub(crate) ttl: i128,
    /// DNS SAN to add; repeatable, order kept
    #[arg(long = "dns", value_name = "value", action = ArgAction::Append)]
    pub(crate) dns_names: Vec<String>,
    /// Save svid.pem, key.pem and bundle.pem in this directory instead of printing them
    #[arg(long = "write", value_name = "string", default_value = "")]
    pub(crate) write: String,
}

/// The key and CSR for `id` and `dns_names` (P-256; empty subject; URI and DNS SANs).
pub(crate) fn key_and_csr(id: &str, dns_names: &[String]) -> anyhow::Result<(KeyPair, Vec<u8>)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| anyhow!("unable to generate key: {e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = std::iter::once(
        id.to_owned()
            .try_into()
            .map(SanType::URI)
            .map_err(|e| anyhow!("unable to generate CSR: {e}")),
    )
    .chain(dns_names.iter().map(|d| {
        d.clone()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|e| anyhow!("unable to generate CSR: {e}"))
    }))
    .collect::<anyhow::Result<Vec<_>>>()?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| anyhow!("unable to generate CSR: {e}"))?;
    Ok((key, csr.der().to_vec()))
}

/// `ttl` rounded up to whole seconds, as SPIRE's `ttlToSeconds`.
pub(crate) fn ttl_to_seconds(ttl_nanos: i128) -> i32 {
    let secs = (ttl_nanos + 999_999_999).div_euclid(1_000_000_000);
    i32::try_from(secs).unwrap_or(if secs < 0 { i32::MIN } else { i32::MAX })
}

/// SPIRE's warning when the server gave `what` a shorter life than `-ttl` asked for.
pub(crate) fn warn_if_capped(
    io: &mut Io<'_>,
    what: &str,
    expires_at: i64,
    ttl_nanos: i128,
) -> anyhow::Result<()> {
    let now = spire_time::to_unix_seconds(spire_time::SystemClock.now());
    if i128::from(expires_at - now) * 1_000_000_000 < ttl_nanos {
        let expires = time::OffsetDateTime::from_unix_timestamp(expires_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| expires_at.to_string());
        writeln!(
            io.err,
            "{what} lifetime was capped shorter than specified ttl; expires \"{expires}\""
        )?;
    }
    Ok(())
}

/// Runs one `x509` verb.
pub(crate) async fn run(command: X509Command, io: &mut Io<'_>) -> anyhow::Result<()> {
    let X509Command::Mint(args) = command;
    let client = args.socket.connect().await?;
    if args.spiffe_id.is_empty() {
        bail!("spiffeID must be specified");
    }
    spire_id::SpiffeId::parse(&args.spiffe_id)?;
    let (key, csr) = key_and_csr(&args.spiffe_id, &args.dns_names)?;
    let channel = client
        .channel()
        .map_err(|s| rpc_err("unable to mint SVID: ", &s))?;
    let svid = SvidClient::new(channel.clone())
        .mint_x509svid(MintX509svidRequest {
            csr,
            ttl: ttl_to_seconds(args.ttl),
        })
        .await
        .map_err(|s| rpc_err("unable to mint SVID: ", &s))?
        .into_inner()
        .svid
        .unwrap_or_default();
    if svid.cert_chain.is_empty() {
        bail!("server response missing SVID chain");
    }
    let bundle = BundleClient::new(channel)
        .get_bundle(GetBundleRequest { output_mask: None })
        .await
        .map_err(|s| rpc_err("unable to get bundle: ", &s))?
        .into_inner();
    if bundle.x509_authorities.is_empty() {
        bail!("server response missing X509 Authorities");
    }
    warn_if_capped(io, "X509-SVID", svid.expires_at, args.ttl)?;
    let key_der = key.serialize_der();
    let roots: Vec<&[u8]> = bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.as_slice())
        .collect();
    let svid_pem = pem_blocks("CERTIFICATE", svid.cert_chain.iter().map(Vec::as_slice));
    let key_pem = pem_blocks("PRIVATE KEY", [key_der.as_slice()]);
    let bundle_pem = pem_blocks("CERTIFICATE", roots.iter().copied());

    if args.write.is_empty() {
        return match args.output.output {
            OutputFormat::Json => {
                use base64::Engine as _;
                let b64 =
                    |d: &[u8]| Json::String(base64::engine::general_purpose::STANDARD.encode(d));
                let json = Json::Object(vec![
                    (
                        "x509_svid".into(),
                        Json::Array(svid.cert_chain.iter().map(|c| b64(c)).collect()),
                    ),
                    ("private_key".into(), b64(&key_der)),
                    (
                        "root_cas".into(),
                        Json::Array(roots.iter().map(|r| b64(r)).collect()),
                    ),
                ]);
                writeln!(io.out, "{}", protojson::encode(&json))?;
                Ok(())
            }
            OutputFormat::Pretty => {
                write!(io.out, "X509-SVID:\n{svid_pem}\n")?;
                write!(io.out, "Private key:\n{key_pem}\n")?;
                write!(io.out, "Root CAs:\n{bundle_pem}\n")?;
                Ok(())
            }
        };
    }
    let dir = Path::new(&args.write);
    let svid_path = dir.join("svid.pem");
    let key_path = dir.join("key.pem");
    let bundle_path = dir.join("bundle.pem");
    write_file(&svid_path, svid_pem.as_bytes(), 0o644).context("unable to write SVID")?;
    writeln!(io.out, "X509-SVID written to {}", svid_path.display())?;
    write_file(&key_path, key_pem.as_bytes(), 0o600).context("unable to write key")?;
    writeln!(io.out, "Private key written to {}", key_path.display())?;
    write_file(&bundle_path, bundle_pem.as_bytes(), 0o644).context("unable to write bundle")?;
    writeln!(io.out, "Root CAs written to {}", bundle_path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use x509_parser::prelude::FromDer as _;

    use super::*;

    #[test]
    fn ttl_rounds_up_like_spire() {
        assert_eq!(ttl_to_seconds(0), 0);
        assert_eq!(ttl_to_seconds(1), 1);
        assert_eq!(ttl_to_seconds(90_000_000_000), 90);
        assert_eq!(ttl_to_seconds(90_500_000_000), 91);
    }

    #[test]
    fn csr_carries_uri_and_dns_sans_in_order() {
        let (_, csr) = key_and_csr(
            "spiffe://example.org/w",
            &["b.example".into(), "a.example".into()],
        )
        .unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&csr).unwrap();
        assert_eq!(req.certification_request_info.subject.iter().count(), 0);
        let text = format!(
            "{:?}",
            req.requested_extensions().unwrap().collect::<Vec<_>>()
        );
        let uri = text.find("spiffe://example.org/w").unwrap();
        let b = text.find("b.example").unwrap();
        let a = text.find("a.example").unwrap();
        assert!(uri < b && b < a, "{text}");
    }
}
