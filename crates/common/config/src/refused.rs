//! Keys SPIRE has and spire-rs does not implement. A binary refuses them by name when it
//! starts (and in `validate`) instead of accepting and ignoring them; the few that stock
//! configurations set and that are safe to leave unenforced are accepted with a warning that
//! names them. `docs/config.md` lists both, per binary, with the reasons.

use std::fmt;

/// One key set to a value spire-rs cannot honour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The dotted path of the key (`server.profiling_enabled`).
    pub key: String,
    /// What spire-rs lacks (and what to use instead, when there is something).
    pub reason: String,
}

/// Collects the refusals (or the warnings) of one section, with keys prefixed by its name.
#[derive(Debug)]
pub(crate) struct Findings {
    section: &'static str,
    refusals: Vec<Refusal>,
}

// === impl Refusal ===

impl Refusal {
    /// A refusal of `key` for `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not supported by spire-rs: {}",
            self.key, self.reason
        )
    }
}

// === impl Findings ===

impl Findings {
    pub(crate) fn new(section: &'static str) -> Self {
        Self {
            section,
            refusals: Vec::new(),
        }
    }

    /// Records `key` when `set`.
    pub(crate) fn when(&mut self, set: bool, key: &str, reason: &str) {
        if set {
            self.refusals
                .push(Refusal::new(format!("{}.{key}", self.section), reason));
        }
    }

    /// Records `key` when it is present in the file, whatever its value.
    pub(crate) fn present<T>(&mut self, value: &Option<T>, key: &str, reason: &str) {
        self.when(value.is_some(), key, reason);
    }

    /// The refusals found.
    pub(crate) fn into_refusals(self) -> Vec<Refusal> {
        self.refusals
    }

    /// The findings as warnings: `<key> is ignored: <reason>`.
    pub(crate) fn into_warnings(self) -> Vec<String> {
        self.refusals
            .into_iter()
            .map(|r| format!("{} is ignored: {}", r.key, r.reason))
            .collect()
    }
}

/// `Err` naming every refused key, or `Ok` when there is none.
pub fn refuse(refusals: Vec<Refusal>) -> Result<(), crate::ConfigError> {
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(crate::ConfigError::Unsupported(refusals))
    }
}
