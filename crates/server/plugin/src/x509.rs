//! Certificate-building helpers shared by the CA and the upstream authorities: serials,
//! validity windows, the CA profile, and reading a certificate's names back.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType, SerialNumber,
};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::{Error, Result};

/// SPIRE backdates `notBefore` by this much so that peers with a slightly slow clock accept a
/// fresh certificate.
pub const NOT_BEFORE_CUSHION: Duration = Duration::from_secs(10);

/// A random serial in [1, 2¹²⁸−1], as SPIRE issues.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    loop {
        // aws-lc's RNG does not fail on Linux; if it ever did, all-zero bytes loop again.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        if bytes.iter().any(|&b| b != 0) {
            return SerialNumber::from_slice(&bytes);
        }
    }
}

/// The subject key identifier SPIRE gives its CAs (RFC 5280 §4.2.1.2 method 1): SHA-1 over
/// the bits of the `subjectPublicKey` BIT STRING of `spki_der` (tag, length and unused-bits
/// count excluded).
pub fn subject_key_id(spki_der: &[u8]) -> Result<Vec<u8>> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| Error::InvalidRequest(format!("malformed public key: {e}")))?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &spki.subject_public_key.data,
    );
    Ok(digest.as_ref().to_vec())
}

/// The authority ID of a CA certificate as SPIRE shows it: the lowercase hex of its subject
/// key identifier extension, or of [`subject_key_id`] of its key when it has none.
pub fn authority_id(certificate: &X509Certificate<'_>) -> Result<String> {
    use x509_parser::extensions::ParsedExtension;
    for ext in certificate.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(ski) = ext.parsed_extension() {
            return Ok(hex_lower(ski.0));
        }
    }
    Ok(hex_lower(&subject_key_id(certificate.public_key().raw)?))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A string attribute the way Go's x509 encodes it: PrintableString when the characters allow,
/// UTF8String otherwise.
pub fn dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_owned()),
    }
}

/// Certificate parameters for a signing CA valid over `[now − 10 s, not_after]`: CA:true
/// without a path length, keyCertSign|cRLSign, one URI SAN (the trust domain's ID), a random
/// serial and SPIRE's subject key identifier of `subject_public_key` (DER SPKI; see
/// [`subject_key_id`]).
pub fn ca_params(
    subject: DistinguishedName,
    trust_domain_uri: &str,
    subject_public_key: &[u8],
    now: SystemTime,
    not_after: SystemTime,
    serial: SerialNumber,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = vec![SanType::URI(ia5(trust_domain_uri)?)];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial);
    params.key_identifier_method = KeyIdMethod::PreSpecified(subject_key_id(subject_public_key)?);
    params.not_before = (now - NOT_BEFORE_CUSHION).into();
    params.not_after = not_after.into();
    Ok(params)
}

/// An IA5 string for a SAN, refusing non-ASCII.
pub fn ia5(s: &str) -> Result<rcgen::string::Ia5String> {
    rcgen::string::Ia5String::try_from(s)
        .map_err(|_| Error::InvalidRequest(format!("{s:?} is not an IA5 string")))
}

/// The names and public key a CSR carries, after its signature checked out.
#[derive(Debug)]
pub struct CsrContents {
    /// DER `SubjectPublicKeyInfo`.
    pub public_key: Vec<u8>,
    /// The requested subject.
    pub subject: DistinguishedName,
    /// The requested URI SANs.
    pub uris: Vec<String>,
}

/// Reads a CSR (signature verified) for an upstream authority, which, unlike workload minting,
/// honours the requested subject and URI SAN of the downstream CA.
pub fn read_ca_csr(der: &[u8]) -> Result<CsrContents> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::ParsedExtension;

    let public_key =
        spire_svid::verify_csr(der).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|_| Error::InvalidRequest("malformed CSR".into()))?;
    let info = &csr.certification_request_info;
    let subject = distinguished_name(&info.subject)?;
    let mut uris = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name {
                    uris.push((*uri).to_owned());
                }
            }
        }
    }
    Ok(CsrContents {
        public_key,
        subject,
        uris,
    })
}

/// Converts a parsed X.509 name into rcgen's form, attribute by attribute.
pub fn distinguished_name(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let arcs: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| Error::InvalidRequest("subject attribute OID too large".into()))?
            .collect();
        let value = attr
            .as_str()
            .map_err(|_| Error::InvalidRequest("subject attribute is not a string".into()))?;
        dn.push(DnType::from_oid(&arcs), dn_value(value));
    }
    Ok(dn)
}

/// Parses one DER certificate, refusing trailing bytes.
pub fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(Error::InvalidRequest("malformed certificate".into())),
    }
}

/// A certificate's `notAfter` as wall time.
pub fn not_after(cert: &X509Certificate<'_>) -> SystemTime {
    spire_time::from_unix_seconds(cert.validity().not_after.timestamp())
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let text =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let blocks =
        pem::parse_many(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{}: no certificates found",
            path.display()
        )));
    }
    Ok(certs)
}
