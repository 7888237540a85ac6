use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{IdError, SCHEME_PREFIX, SpiffeId, is_trust_domain_char};

/// A SPIFFE trust domain name such as `example.org`: lowercase `[a-z0-9._-]`, never empty.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain {
    name: String,
}

// === impl TrustDomain ===

impl TrustDomain {
    /// SPIFFE-ID.md §2.1: "The trust domain name … MUST NOT exceed 255 bytes".
    pub const MAX_LEN: usize = 255;

    /// Parses a trust domain we are about to *own* (configuration, new IDs): the name rules
    /// plus the 255-byte limit.
    pub fn new(name: &str) -> Result<Self, IdError> {
        let td = Self::parse(name)?;
        if td.name.len() > Self::MAX_LEN {
            return Err(IdError::TrustDomainTooLong);
        }
        Ok(td)
    }

    /// Parses a bare name (`example.org`) or takes the trust domain of a full SPIFFE ID
    /// (`spiffe://example.org/path`), as go-spiffe's `TrustDomainFromString` does. No length
    /// limit: this is for names that others send.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.contains(":/") {
            return Ok(SpiffeId::parse(s)?.trust_domain().clone());
        }
        Self::parse_name(s)
    }

    /// Parses exactly a bare name; used by [`SpiffeId`] after splitting off the path.
    pub(crate) fn parse_name(name: &str) -> Result<Self, IdError> {
        if name.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        if !name.bytes().all(is_trust_domain_char) {
            return Err(IdError::BadTrustDomainChar);
        }
        Ok(Self {
            name: name.to_owned(),
        })
    }

    /// The bare name, e.g. `example.org`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>` (the URI SAN of its CA).
    pub fn id(&self) -> SpiffeId {
        SpiffeId::from_parts_unchecked(self.clone(), String::new())
    }

    /// `spiffe://<name>` as a string: the key of bundles and SDS validation contexts.
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.name)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.name)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
