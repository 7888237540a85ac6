//! Declared vs current entries to a write plan, as spire-controller-manager reconciles:
//!
//! 1. with `entryIDPrefix`, only current entries whose ID starts with `<prefix>.` are this
//!    controller's; `entryIDPrefixCleanup` additionally marks entries of another prefix (or,
//!    when empty, entries whose ID has no dot) for deletion;
//! 2. per key (SPIFFE ID, parent ID, sorted selectors): nothing current ⇒ create (ID
//!    `<prefix>.<uuid>` with a prefix, else server-assigned); something current ⇒ keep the first
//!    one's ID and update it only when a compared field differs; further duplicates are deleted;
//! 3. every current entry no key declares is deleted, except join-token node entries.
//!
//! Fields the server does not support (the probe) are neither compared nor sent.

use std::collections::HashMap;

use spire_id::TrustDomain;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use super::Error;
use super::declare::{Declared, EntryKey};

/// Parent ID path prefix of the entries `spire-server token generate -spiffeID` creates.
pub const JOIN_TOKEN_PARENT_PREFIX: &str = "/spire/agent/join_token/";
/// Selector type of join-token node entries.
pub const JOIN_TOKEN_SELECTOR_TYPE: &str = "spiffe_id";
/// Path of the entry created (and deleted) to probe which fields the server supports.
pub const UNSUPPORTED_FIELDS_PROBE_PATH: &str = "/spire-controller-manager/unsupported-fields-test";

/// Which optional entry fields the server keeps (older servers drop them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupportedFields {
    /// `jwt_svid_ttl`.
    pub jwt_svid_ttl: bool,
    /// `hint`.
    pub hint: bool,
    /// `store_svid`.
    pub store_svid: bool,
}

/// How current entries are scoped and which fields are compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `<entryIDPrefix>.`, when set.
    entry_id_prefix: Option<String>,
    /// `<entryIDPrefixCleanup>.`, or `""` for "IDs without a dot", when set.
    entry_id_prefix_cleanup: Option<String>,
    /// The probe's result.
    pub supported_fields: SupportedFields,
}

/// The writes that make the server hold exactly the declared entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Entries to create (`BatchCreateEntry`), in key order.
    pub create: Vec<Entry>,
    /// Entries to update (`BatchUpdateEntry`), each with the current entry's ID, in key order.
    pub update: Vec<Entry>,
    /// IDs of entries to delete (`BatchDeleteEntry`), sorted.
    pub delete: Vec<String>,
}

// === impl SupportedFields ===

impl Default for SupportedFields {
    fn default() -> Self {
        Self {
            jwt_svid_ttl: true,
            hint: true,
            store_svid: true,
        }
    }
}

impl SupportedFields {
    /// Reads the entry the server echoed for [`unsupported_fields_probe_entry`]: a field that
    /// came back zero is not supported.
    pub fn from_probe_echo(echo: &Entry) -> Self {
        Self {
            jwt_svid_ttl: echo.jwt_svid_ttl != 0,
            hint: !echo.hint.is_empty(),
            store_svid: echo.store_svid,
        }
    }

    /// Zeroes the fields the server does not support, so they are not sent.
    fn strip(&self, entry: &mut Entry) {
        if !self.jwt_svid_ttl {
            entry.jwt_svid_ttl = 0;
        }
        if !self.hint {
            entry.hint.clear();
        }
        if !self.store_svid {
            entry.store_svid = false;
        }
    }
}

/// The entry created (then deleted) to learn which fields the server supports:
/// `spiffe://<td>/spire-controller-manager/unsupported-fields-test`, its own parent, selector
/// `a:1`, both TTLs 60 s, `store_svid`, hint `hint`.
pub fn unsupported_fields_probe_entry(trust_domain: &TrustDomain) -> Entry {
    let id = Spiffeid {
        trust_domain: trust_domain.name().to_owned(),
        path: UNSUPPORTED_FIELDS_PROBE_PATH.to_owned(),
    };
    Entry {
        spiffe_id: Some(id.clone()),
        parent_id: Some(id),
        selectors: vec![Selector {
            r#type: "a".into(),
            value: "1".into(),
        }],
        x509_svid_ttl: 60,
        jwt_svid_ttl: 60,
        store_svid: true,
        hint: "hint".into(),
        ..Entry::default()
    }
}

// === impl PlanOptions ===

impl PlanOptions {
    /// Options from the configuration's `entryIDPrefix` (empty = none) and
    /// `entryIDPrefixCleanup` (absent = none); a dot is appended to each when missing.
    pub fn new(
        entry_id_prefix: &str,
        entry_id_prefix_cleanup: Option<&str>,
    ) -> Result<Self, Error> {
        if !entry_id_prefix.is_empty() && entry_id_prefix_cleanup == Some(entry_id_prefix) {
            return Err(Error::InvalidConfig(
                "if entryIDPrefixCleanup is specified, it can not be the same value as entryIDPrefix"
                    .into(),
            ));
        }
        let dotted = |p: &str| {
            if p.is_empty() || p.ends_with('.') {
                p.to_owned()
            } else {
                format!("{p}.")
            }
        };
        Ok(Self {
            entry_id_prefix: (!entry_id_prefix.is_empty()).then(|| dotted(entry_id_prefix)),
            entry_id_prefix_cleanup: entry_id_prefix_cleanup.map(dotted),
            supported_fields: SupportedFields::default(),
        })
    }

    /// The same options with the probe's result.
    pub fn with_supported_fields(mut self, supported_fields: SupportedFields) -> Self {
        self.supported_fields = supported_fields;
        self
    }

    /// `<entryIDPrefix>.`, when set.
    pub fn entry_id_prefix(&self) -> Option<&str> {
        self.entry_id_prefix.as_deref()
    }

    /// Whether a current entry is this controller's to manage, and whether it is to be deleted
    /// regardless (cleanup of another prefix).
    fn scope(&self, id: &str) -> Scope {
        let Some(prefix) = &self.entry_id_prefix else {
            return Scope::Managed;
        };
        if id.starts_with(prefix.as_str()) {
            return Scope::Managed;
        }
        match self.entry_id_prefix_cleanup.as_deref() {
            Some("") if !id.contains('.') => Scope::CleanUp,
            Some(cleanup) if !cleanup.is_empty() && id.starts_with(cleanup) => Scope::CleanUp,
            _ => Scope::Foreign,
        }
    }
}

enum Scope {
    Managed,
    CleanUp,
    Foreign,
}

/// Plans the writes from `declared` and the server's `current` entries (as listed). Only the
/// entries to write are copied.
pub fn plan<'a>(
    declared: &Declared,
    current: impl IntoIterator<Item = &'a Entry>,
    options: &PlanOptions,
) -> Plan {
    let mut result = Plan::default();
    let mut by_key: HashMap<EntryKey, Vec<&Entry>> = HashMap::new();
    for entry in current {
        match options.scope(&entry.id) {
            Scope::Managed => by_key.entry(EntryKey::of(entry)).or_default().push(entry),
            Scope::CleanUp => result.delete.push(entry.id.clone()),
            Scope::Foreign => {}
        }
    }
    let supported = options.supported_fields;
    let to_send = |declared: &Entry, id: String| {
        let mut want = declared.clone();
        supported.strip(&mut want);
        want.id = id;
        want
    };
    for (key, declared) in declared.entries() {
        match by_key.remove(key) {
            None => {
                let id = options
                    .entry_id_prefix()
                    .map(|prefix| format!("{prefix}{}", uuid::Uuid::new_v4()))
                    .unwrap_or_default();
                result.create.push(to_send(&declared.entry, id));
            }
            Some(existing) => {
                let mut existing = existing.into_iter();
                if let Some(first) = existing.next()
                    && is_outdated(&declared.entry, first, &supported)
                {
                    result
                        .update
                        .push(to_send(&declared.entry, first.id.clone()));
                }
                result.delete.extend(
                    existing
                        .filter(|e| !is_join_token_entry(e))
                        .map(|e| e.id.clone()),
                );
            }
        }
    }
    for undeclared in by_key.into_values() {
        result.delete.extend(
            undeclared
                .into_iter()
                .filter(|e| !is_join_token_entry(e))
                .map(|e| e.id.clone()),
        );
    }
    result.delete.sort();
    result.delete.dedup();
    result
}

/// Whether `current` differs from `want` in a field the key does not cover: X509-SVID TTL,
/// JWT-SVID TTL, federated trust domains (as a set), admin, downstream, DNS names (as a set),
/// hint or `store_svid` (the last three only when supported).
fn is_outdated(want: &Entry, current: &Entry, supported: &SupportedFields) -> bool {
    want.x509_svid_ttl != current.x509_svid_ttl
        || (supported.jwt_svid_ttl && want.jwt_svid_ttl != current.jwt_svid_ttl)
        || !same_elements(&want.federates_with, &current.federates_with)
        || want.admin != current.admin
        || want.downstream != current.downstream
        || !same_elements(&want.dns_names, &current.dns_names)
        || (supported.hint && want.hint != current.hint)
        || (supported.store_svid && want.store_svid != current.store_svid)
}

/// Equal as sorted lists.
fn same_elements(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 1 {
        return a == b;
    }
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// A node entry made for a join token: its parent is under `/spire/agent/join_token/` and it
/// has a `spiffe_id` selector. The controller never deletes those.
pub fn is_join_token_entry(entry: &Entry) -> bool {
    entry
        .parent_id
        .as_ref()
        .is_some_and(|p| p.path.starts_with(JOIN_TOKEN_PARENT_PREFIX))
        && entry
            .selectors
            .iter()
            .any(|s| s.r#type == JOIN_TOKEN_SELECTOR_TYPE)
}

#[cfg(test)]
mod tests;
