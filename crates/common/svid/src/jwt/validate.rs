//! SPIRE's JWT-SVID validation: the checks, their order and their messages.

use std::borrow::Borrow;

use aws_lc_rs::signature::UnparsedPublicKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use spire_id::go_fmt::{quote, quote_list};
use spire_id::{SpiffeId, TrustDomain};
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{JWT_ALGORITHMS, JwtAlgorithm, JwtError};
use crate::Bundle;

/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default leeway, which SPIRE uses).
pub const JWT_LEEWAY_SECONDS: i64 = 60;

/// A token whose signature, audience and lifetime checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedJwtSvid {
    /// `sub`.
    pub spiffe_id: SpiffeId,
    /// Every claim of the payload, as sent.
    pub claims: Map<String, Value>,
}

/// The claims of a token read without checking its signature: for a holder (the agent's
/// cache, the CLI) of a token it received over an authenticated channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnverifiedJwtSvid {
    /// `sub`.
    pub spiffe_id: SpiffeId,
    /// `aud`, a single string read as a one-element list.
    pub audience: Vec<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `iat`, unix seconds; 0 when absent.
    pub issued_at: i64,
}

/// The registered claims SPIRE looks at, read with go-jose's typing.
#[derive(Default)]
struct Registered {
    subject: Option<String>,
    audience: Vec<String>,
    expiry: Option<i64>,
    not_before: Option<i64>,
    issued_at: Option<i64>,
}

/// A compact JWS split into its parts, its header read.
struct Parsed<'a> {
    algorithm: JwtAlgorithm,
    kid: String,
    signing_input: &'a str,
    payload: Map<String, Value>,
    signature: Vec<u8>,
}

/// Validates `token` as SPIRE does: one compact JWS with an allowed `alg`, a `kid`, a `typ` of
/// `JWT`/`JOSE` if any, `sub` and `exp`; the key found by `kid` in the bundle `bundle_for`
/// returns for the subject's trust domain; the signature; `aud` containing one of `audience`;
/// then `exp`, `nbf` and `iat` against `now` (unix seconds) with [`JWT_LEEWAY_SECONDS`].
pub fn validate_jwt_svid<B: Borrow<Bundle>>(
    token: &str,
    audience: &[String],
    now: i64,
    bundle_for: impl FnOnce(&TrustDomain) -> Option<B>,
) -> Result<ValidatedJwtSvid, JwtError> {
    let parsed = parse(token)?;
    let claims = registered(&parsed.payload)?;
    let subject = claims.subject.as_deref().ok_or(JwtError::MissingSubject)?;
    if subject.is_empty() {
        return Err(JwtError::MissingSubject);
    }
    if claims.expiry.is_none() {
        return Err(JwtError::MissingExpiry);
    }
    let spiffe_id =
        SpiffeId::parse(subject).map_err(|e| JwtError::InvalidSubject(e.to_string()))?;
    let trust_domain = spiffe_id.trust_domain();
    let no_keys = || JwtError::NoKeys(trust_domain.name().to_owned());
    let bundle = bundle_for(trust_domain).ok_or_else(no_keys)?;
    let keys = &bundle.borrow().jwt_authorities;
    if keys.is_empty() {
        return Err(no_keys());
    }
    let key = keys
        .iter()
        .find(|k| k.key_id == parsed.kid)
        .ok_or_else(|| JwtError::KeyNotFound {
            kid: parsed.kid.clone(),
            trust_domain: trust_domain.name().to_owned(),
        })?;
    verify_signature(&parsed, &key.public_key)?;
    check_registered(&claims, audience, now)?;
    Ok(ValidatedJwtSvid {
        spiffe_id,
        claims: parsed.payload,
    })
}

/// Reads a token's header and claims without checking the signature. The same framing,
/// algorithm and claim rules as [`validate_jwt_svid`] apply.
pub fn parse_jwt_svid_unverified(token: &str) -> Result<UnverifiedJwtSvid, JwtError> {
    let parsed = parse(token)?;
    let claims = registered(&parsed.payload)?;
    let subject = claims.subject.ok_or(JwtError::MissingSubject)?;
    let expires_at = claims.expiry.ok_or(JwtError::MissingExpiry)?;
    let spiffe_id =
        SpiffeId::parse(&subject).map_err(|e| JwtError::InvalidSubject(e.to_string()))?;
    Ok(UnverifiedJwtSvid {
        spiffe_id,
        audience: claims.audience,
        expires_at,
        issued_at: claims.issued_at.unwrap_or(0),
    })
}

/// Splits a compact JWS and reads its header: exactly three segments, an allowed `alg`, a
/// `kid`, an acceptable `typ`.
fn parse(token: &str) -> Result<Parsed<'_>, JwtError> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Parse(
            "go-jose/go-jose: compact JWS format must have three parts".to_owned(),
        ));
    };
    let header: Map<String, Value> = serde_json::from_slice(&decode_segment(header, "header")?)
        .map_err(|e| JwtError::Parse(format!("invalid header: {e}")))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let algorithm = JwtAlgorithm::from_name(alg).ok_or_else(|| {
        let allowed: Vec<String> = JWT_ALGORITHMS.iter().map(|a| a.to_string()).collect();
        JwtError::Parse(format!(
            "unexpected signature algorithm {}; expected {}",
            quote(alg),
            quote_list(&allowed)
        ))
    })?;
    if header.contains_key("crit") {
        return Err(JwtError::Parse(
            "go-jose/go-jose: unsupported crit header".to_owned(),
        ));
    }
    let payload = decode_segment(payload, "payload")?;
    let signature = decode_segment(signature, "signature")?;
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err(JwtError::MissingKeyId),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
        Some(_) => return Err(JwtError::BadType),
    }
    let payload: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|e| JwtError::Claims(e.to_string()))?;
    let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, |s| s.len() + 1);
    Ok(Parsed {
        algorithm,
        kid,
        signing_input: &token[..signing_input_len],
        payload,
        signature,
    })
}

fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| JwtError::Parse(format!("illegal base64 data in {what}: {e}")))
}

/// The registered claims, typed as go-jose types them: `aud` a string or a list of strings,
/// times numbers (fractions truncated).
fn registered(payload: &Map<String, Value>) -> Result<Registered, JwtError> {
    let wrong = |claim: &str, want: &str| JwtError::Claims(format!("{claim} must be {want}"));
    let time = |claim: &str| -> Result<Option<i64>, JwtError> {
        match payload.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| wrong(claim, "a number")),
            Some(_) => Err(wrong(claim, "a number")),
        }
    };
    let subject = match payload.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(wrong("sub", "a string")),
    };
    let audience = match payload.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong("aud", "a string or a list of strings"))?,
        Some(_) => return Err(wrong("aud", "a string or a list of strings")),
    };
    Ok(Registered {
        subject,
        audience,
        expiry: time("exp")?,
        not_before: time("nbf")?,
        issued_at: time("iat")?,
    })
}

/// Verifies the signature with a DER `SubjectPublicKeyInfo` whose key type suits the algorithm.
fn verify_signature(parsed: &Parsed<'_>, spki_der: &[u8]) -> Result<(), JwtError> {
    let Ok(([], spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
        return Err(JwtError::Signature);
    };
    let oid = &spki.algorithm.algorithm;
    let suits = if parsed.algorithm.is_ecdsa() {
        *oid == OID_KEY_TYPE_EC_PUBLIC_KEY
    } else {
        *oid == OID_PKCS1_RSAENCRYPTION
    };
    if !suits {
        return Err(JwtError::Signature);
    }
    UnparsedPublicKey::new(
        parsed.algorithm.verification(),
        &*spki.subject_public_key.data,
    )
    .verify(parsed.signing_input.as_bytes(), &parsed.signature)
    .map_err(|_| JwtError::Signature)
}

/// go-jose's `Claims.ValidateWithLeeway` for an expected audience list and a time.
fn check_registered(claims: &Registered, audience: &[String], now: i64) -> Result<(), JwtError> {
    if !audience.is_empty() && !claims.audience.iter().any(|a| audience.contains(a)) {
        return Err(JwtError::Audience {
            expected: audience.to_vec(),
            actual: claims.audience.clone(),
        });
    }
    if claims
        .not_before
        .is_some_and(|nbf| now + JWT_LEEWAY_SECONDS < nbf)
    {
        return Err(JwtError::NotValidYet);
    }
    if claims
        .expiry
        .is_some_and(|exp| now - JWT_LEEWAY_SECONDS > exp)
    {
        return Err(JwtError::Expired);
    }
    if claims
        .issued_at
        .is_some_and(|iat| now + JWT_LEEWAY_SECONDS < iat)
    {
        return Err(JwtError::IssuedInTheFuture);
    }
    Ok(())
}
