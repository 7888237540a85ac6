//! Reading a PKCS#8 private key's type from its DER, without trusting the file to name it.
//!
//! SPIRE's key file stores only the PKCS#8 bytes; the key type follows from the algorithm
//! identifier (and, for RSA, the modulus length). Only the outer structure is read here; the
//! key itself is then checked by loading it as that type.

use spire_svid::KeyType;

/// `id-ecPublicKey` (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7).
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (1.3.132.0.34).
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// `rsaEncryption` (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;

/// Why a key's type could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TypeError {
    /// The bytes are not a PKCS#8 `PrivateKeyInfo` (e.g. a PKCS#1 or SEC1 key, or garbage).
    NotPkcs8(&'static str),
    /// A PKCS#8 key of a type SPIRE's key managers do not use.
    Unsupported(String),
}

/// The type of the PKCS#8 DER private key `der`.
pub(crate) fn key_type(der: &[u8]) -> Result<KeyType, TypeError> {
    use TypeError::NotPkcs8;
    let mut outer = Der(der);
    let info = outer
        .read(SEQUENCE)
        .ok_or(NotPkcs8("no PrivateKeyInfo sequence"))?;
    if !outer.0.is_empty() {
        return Err(NotPkcs8("trailing bytes after the PrivateKeyInfo"));
    }
    let mut info = Der(info);
    let version = info.read(INTEGER).ok_or(NotPkcs8("no version"))?;
    if version != [0] && version != [1] {
        return Err(NotPkcs8("unknown version"));
    }
    let mut algorithm = Der(info
        .read(SEQUENCE)
        .ok_or(NotPkcs8("no algorithm identifier"))?);
    let private_key = info.read(OCTET_STRING).ok_or(NotPkcs8("no private key"))?;
    let oid = algorithm.read(OID).ok_or(NotPkcs8("no algorithm OID"))?;
    if oid == EC_PUBLIC_KEY {
        return match algorithm.read(OID) {
            Some(P256) => Ok(KeyType::EcP256),
            Some(P384) => Ok(KeyType::EcP384),
            Some(curve) => Err(TypeError::Unsupported(format!(
                "EC key on curve {}",
                dotted(curve)
            ))),
            None => Err(TypeError::Unsupported(
                "EC key without a named curve".into(),
            )),
        };
    }
    if oid == RSA_ENCRYPTION {
        let mut rsa = Der(Der(private_key)
            .read(SEQUENCE)
            .ok_or(NotPkcs8("RSA key is not an RSAPrivateKey"))?);
        rsa.read(INTEGER)
            .ok_or(NotPkcs8("RSA key has no version"))?;
        let modulus = rsa
            .read(INTEGER)
            .ok_or(NotPkcs8("RSA key has no modulus"))?;
        return match bit_length(modulus) {
            2048 => Ok(KeyType::Rsa2048),
            4096 => Ok(KeyType::Rsa4096),
            bits => Err(TypeError::Unsupported(format!("RSA {bits}-bit key"))),
        };
    }
    Err(TypeError::Unsupported(format!(
        "key algorithm {}",
        dotted(oid)
    )))
}

/// The bit length of a non-negative DER INTEGER's content.
fn bit_length(integer: &[u8]) -> usize {
    let significant = match integer.iter().position(|&b| b != 0) {
        Some(i) => &integer[i..],
        None => return 0,
    };
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

/// An OID's content bytes in dotted form, e.g. `1.3.132.0.35`.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.saturating_mul(128) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let parts: Vec<String> = arcs.iter().map(u64::to_string).collect();
    parts.join(".")
}

/// A cursor over DER bytes that reads one element of an expected tag at a time.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The content of the next element if it has `tag`; `None` on any malformation.
    fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        self.0 = after;
        Some(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_oids() {
        assert_eq!(dotted(P384), "1.3.132.0.34");
        assert_eq!(dotted(RSA_ENCRYPTION), "1.2.840.113549.1.1.1");
        assert_eq!(dotted(&[0x2b, 0x65, 0x70]), "1.3.101.112");
    }

    #[test]
    fn bit_lengths_ignore_the_sign_byte() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0x00]), 0);
    }

    #[test]
    fn truncated_and_overlong_input_is_not_pkcs8() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[0x30, 0x00, 0x00],
        ] {
            assert!(
                matches!(key_type(bad), Err(TypeError::NotPkcs8(_))),
                "{bad:?}"
            );
        }
    }
}
