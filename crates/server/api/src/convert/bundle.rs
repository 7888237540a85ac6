//! `spire.api.types.Bundle` ⇄ [`Bundle`].

use spire_id::TrustDomain;
use spire_proto::spire::api::types;
use spire_svid::{Bundle, JwtAuthority, X509Authority};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

use super::{Error, Result};

/// A stored bundle → proto (trust domain by name).
pub fn bundle_to_proto(b: &Bundle) -> types::Bundle {
    types::Bundle {
        trust_domain: b.trust_domain.name().to_owned(),
        x509_authorities: b
            .x509_authorities
            .iter()
            .map(|a| types::X509Certificate {
                asn1: a.asn1.clone(),
                tainted: a.tainted,
            })
            .collect(),
        jwt_authorities: b
            .jwt_authorities
            .iter()
            .map(|k| types::JwtKey {
                public_key: k.public_key.clone(),
                key_id: k.key_id.clone(),
                expires_at: k.expires_at,
                tainted: k.tainted,
            })
            .collect(),
        refresh_hint: b.refresh_hint,
        sequence_number: b.sequence_number,
    }
}

/// A client's bundle → domain: the trust domain must parse, every X.509 authority must be a
/// DER certificate and every JWT authority needs a key ID and a DER public key.
pub fn bundle_from_proto(b: &types::Bundle) -> Result<Bundle> {
    let trust_domain = TrustDomain::parse(&b.trust_domain).map_err(Error::BundleTrustDomain)?;
    Ok(Bundle {
        trust_domain,
        x509_authorities: x509_authorities_from_proto(&b.x509_authorities)?,
        jwt_authorities: jwt_authorities_from_proto(&b.jwt_authorities)?,
        refresh_hint: b.refresh_hint,
        sequence_number: b.sequence_number,
    })
}

/// Proto X.509 authorities → domain, each checked to be exactly one DER certificate.
pub fn x509_authorities_from_proto(
    authorities: &[types::X509Certificate],
) -> Result<Vec<X509Authority>> {
    authorities
        .iter()
        .map(|a| match X509Certificate::from_der(&a.asn1) {
            Ok(([], _)) => Ok(X509Authority {
                asn1: a.asn1.clone(),
                tainted: a.tainted,
            }),
            Ok(_) => Err(Error::X509Authority(
                "x509: trailing data after certificate".to_owned(),
            )),
            Err(e) => Err(Error::X509Authority(format!(
                "x509: malformed certificate: {e}"
            ))),
        })
        .collect()
}

/// Proto JWT authorities → domain, each with a key ID and a DER `SubjectPublicKeyInfo`.
pub fn jwt_authorities_from_proto(keys: &[types::JwtKey]) -> Result<Vec<JwtAuthority>> {
    keys.iter()
        .map(|k| {
            if k.key_id.is_empty() {
                return Err(Error::JwtAuthority("missing key ID".to_owned()));
            }
            match SubjectPublicKeyInfo::from_der(&k.public_key) {
                Ok(([], _)) => Ok(JwtAuthority {
                    key_id: k.key_id.clone(),
                    public_key: k.public_key.clone(),
                    expires_at: k.expires_at,
                    tainted: k.tainted,
                }),
                _ => Err(Error::JwtAuthority(format!(
                    "failed to parse public key for key ID {:?}",
                    k.key_id
                ))),
            }
        })
        .collect()
}

/// Clears the fields an output mask leaves out; `None` keeps everything. The trust domain is
/// always kept.
pub fn apply_bundle_mask(b: &mut types::Bundle, mask: Option<&types::BundleMask>) {
    let Some(m) = mask else {
        return;
    };
    if !m.refresh_hint {
        b.refresh_hint = 0;
    }
    if !m.sequence_number {
        b.sequence_number = 0;
    }
    if !m.x509_authorities {
        b.x509_authorities.clear();
    }
    if !m.jwt_authorities {
        b.jwt_authorities.clear();
    }
}
