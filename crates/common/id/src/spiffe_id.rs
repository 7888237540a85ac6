use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    IdError, SCHEME_PREFIX, TrustDomain, is_path_segment_char, is_trust_domain_char, validate_path,
};

/// A SPIFFE ID: `spiffe://<trust domain><path>`, where the path is empty or `/seg/…`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    path: String,
}

// === impl SpiffeId ===

impl SpiffeId {
    /// SPIFFE-ID.md §2.3: implementations MUST support 2048-byte IDs and SHOULD NOT make longer ones.
    pub const MAX_LEN: usize = 2048;

    /// Parses an ID exactly as go-spiffe's `FromString` does, with its error for the first
    /// offending byte. Lengths are not limited here (see [`Self::check_creatable`]).
    pub fn parse(id: &str) -> Result<Self, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        let rest = id.strip_prefix(SCHEME_PREFIX).ok_or(IdError::WrongScheme)?;
        let td_len = rest.bytes().position(|c| c == b'/').unwrap_or(rest.len());
        if !rest.as_bytes()[..td_len]
            .iter()
            .all(|&c| is_trust_domain_char(c))
        {
            return Err(IdError::BadTrustDomainChar);
        }
        let (td, path) = rest.split_at(td_len);
        let trust_domain = TrustDomain::parse_name(td)?;
        validate_path(path)?;
        Ok(Self {
            trust_domain,
            path: path.to_owned(),
        })
    }

    /// Builds an ID in `trust_domain` from a path such as `/ns/default/sa/web`, enforcing the
    /// path rules and the 2048-byte limit: the constructor for IDs spire-rs creates.
    pub fn from_path(trust_domain: TrustDomain, path: &str) -> Result<Self, IdError> {
        validate_path(path)?;
        let id = Self::from_parts_unchecked(trust_domain, path.to_owned());
        id.check_creatable()?;
        Ok(id)
    }

    /// Builds an ID from path segments (each without slashes), e.g. `["spire", "server"]`.
    pub fn from_segments(trust_domain: TrustDomain, segments: &[&str]) -> Result<Self, IdError> {
        let mut path = String::new();
        for segment in segments {
            match *segment {
                "" => return Err(IdError::EmptySegment),
                "." | ".." => return Err(IdError::DotSegment),
                s if !s.bytes().all(is_path_segment_char) => {
                    return Err(IdError::BadPathSegmentChar);
                }
                _ => {}
            }
            path.push('/');
            path.push_str(segment);
        }
        Self::from_path(trust_domain, &path)
    }

    pub(crate) fn from_parts_unchecked(trust_domain: TrustDomain, path: String) -> Self {
        Self { trust_domain, path }
    }

    /// Refuses IDs spire-rs must not create: a trust domain over 255 bytes or an ID over 2048.
    pub fn check_creatable(&self) -> Result<(), IdError> {
        if self.trust_domain.name().len() > TrustDomain::MAX_LEN {
            return Err(IdError::TrustDomainTooLong);
        }
        if SCHEME_PREFIX.len() + self.trust_domain.name().len() + self.path.len() > Self::MAX_LEN {
            return Err(IdError::IdTooLong);
        }
        Ok(())
    }

    /// The trust domain the ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, `""` or starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when this ID is a member of `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        &self.trust_domain == td
    }

    /// `spiffe://<td>/spire/server`, the ID of a trust domain's servers.
    pub fn server_id(td: &TrustDomain) -> Self {
        Self::from_parts_unchecked(td.clone(), "/spire/server".to_owned())
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME_PREFIX}{}{}",
            self.trust_domain.name(),
            self.path
        )
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({self})")
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
