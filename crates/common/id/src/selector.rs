use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A workload or node selector, `<type>:<value>` (e.g. `k8s:ns:default`, `unix:uid:1000`).
/// The type never contains `:`; the value may.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSelector")]
pub struct Selector {
    #[serde(rename = "type")]
    selector_type: String,
    value: String,
}

/// The unchecked wire form; deserializing goes through [`Selector::new`].
#[derive(Deserialize)]
struct RawSelector {
    #[serde(rename = "type")]
    selector_type: String,
    value: String,
}

/// Why a selector was rejected; messages are SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The type part is empty.
    #[error("missing selector type")]
    MissingType,
    /// The type part contains `:`.
    #[error("selector type contains ':'")]
    TypeContainsColon,
    /// The value part is empty.
    #[error("missing selector value")]
    MissingValue,
    /// A string form with no `:` at all.
    #[error("selector \"{0}\" must be formatted as type:value")]
    NoColon(String),
    /// An empty list where at least one selector is required.
    #[error("selector list is empty")]
    EmptyList,
}

/// A set of selectors, sorted by (type, value) and free of duplicates: the canonical form that
/// entries, node attestation results and workload attestation results are compared in.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SelectorSet {
    selectors: BTreeSet<Selector>,
}

// === impl Selector ===

impl Selector {
    /// Builds a selector from its two parts, checked as SPIRE's entry API checks them.
    pub fn new(selector_type: &str, value: &str) -> Result<Self, SelectorError> {
        if selector_type.is_empty() {
            return Err(SelectorError::MissingType);
        }
        if selector_type.contains(':') {
            return Err(SelectorError::TypeContainsColon);
        }
        if value.is_empty() {
            return Err(SelectorError::MissingValue);
        }
        Ok(Self {
            selector_type: selector_type.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Parses `type:value`, splitting at the first colon (the CLI's `-selector` form).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let (selector_type, value) = s
            .split_once(':')
            .ok_or_else(|| SelectorError::NoColon(s.to_owned()))?;
        Self::new(selector_type, value)
    }

    /// The plugin type, e.g. `k8s`.
    pub fn selector_type(&self) -> &str {
        &self.selector_type
    }

    /// The value, e.g. `ns:default`.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl TryFrom<RawSelector> for Selector {
    type Error = SelectorError;

    fn try_from(raw: RawSelector) -> Result<Self, Self::Error> {
        Self::new(&raw.selector_type, &raw.value)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.selector_type, self.value)
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({self})")
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// === impl SelectorSet ===

impl SelectorSet {
    /// An empty set (valid for attestation results, not for entries).
    pub fn new() -> Self {
        Self::default()
    }

    /// A set for a registration entry: at least one selector.
    pub fn non_empty(selectors: impl IntoIterator<Item = Selector>) -> Result<Self, SelectorError> {
        let set: Self = selectors.into_iter().collect();
        if set.is_empty() {
            return Err(SelectorError::EmptyList);
        }
        Ok(set)
    }

    /// Adds one selector; duplicates collapse.
    pub fn insert(&mut self, selector: Selector) {
        self.selectors.insert(selector);
    }

    /// Number of distinct selectors.
    pub fn len(&self) -> usize {
        self.selectors.len()
    }

    /// True when the set holds no selector.
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// True when `selector` is in the set.
    pub fn contains(&self, selector: &Selector) -> bool {
        self.selectors.contains(selector)
    }

    /// True when every selector of `self` is in `other` (how an entry matches a workload).
    pub fn is_subset(&self, other: &SelectorSet) -> bool {
        self.selectors.is_subset(&other.selectors)
    }

    /// The selectors in canonical order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Selector> {
        self.selectors.iter()
    }
}

impl fmt::Debug for SelectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.selectors.iter()).finish()
    }
}

impl FromIterator<Selector> for SelectorSet {
    fn from_iter<I: IntoIterator<Item = Selector>>(iter: I) -> Self {
        Self {
            selectors: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a SelectorSet {
    type Item = &'a Selector;
    type IntoIter = std::collections::btree_set::Iter<'a, Selector>;

    fn into_iter(self) -> Self::IntoIter {
        self.selectors.iter()
    }
}
