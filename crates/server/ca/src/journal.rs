//! The CA journal: which key slot holds which authority, and in what state. Stored in the
//! datastore as JSON (the datastore treats it as opaque bytes).

use serde::{Deserialize, Serialize};

use crate::manager::SlotId;
use crate::{Error, Result};

/// SPIRE keeps at most this many authorities per type in a journal.
const MAX_ENTRIES: usize = 10;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) x509_cas: Vec<X509CaEntry>,
    /// JWT signing keys; absent from journals written before JWT-SVIDs existed.
    #[serde(default)]
    pub(crate) jwt_keys: Vec<JwtKeyEntry>,
}

/// Life cycle of an authority (SPIRE's journal statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Status {
    /// Published in the bundle, not yet signing.
    Prepared,
    /// Signing.
    Active,
    /// Replaced; stays in the bundle until it expires.
    Old,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct X509CaEntry {
    pub(crate) slot: SlotId,
    pub(crate) status: Status,
    pub(crate) authority_id: String,
    pub(crate) issued_at: i64,
    pub(crate) not_after: i64,
    #[serde(with = "spire_svid::serde_der::bytes")]
    pub(crate) certificate: Vec<u8>,
    #[serde(with = "spire_svid::serde_der::list")]
    pub(crate) upstream_chain: Vec<Vec<u8>>,
}

/// A JWT signing key: its slot, `kid` and public key (the private key stays in the key
/// manager under the slot's JWT key ID).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JwtKeyEntry {
    pub(crate) slot: SlotId,
    pub(crate) status: Status,
    pub(crate) kid: String,
    pub(crate) issued_at: i64,
    pub(crate) not_after: i64,
    #[serde(with = "spire_svid::serde_der::bytes")]
    pub(crate) public_key: Vec<u8>,
}

// === impl Journal ===

impl Journal {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptJournal(e.to_string()))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Records a newly prepared authority, dropping the oldest entries beyond the limit.
    pub(crate) fn push(&mut self, entry: X509CaEntry) {
        push_capped(&mut self.x509_cas, entry);
    }

    /// Records a newly prepared JWT key, dropping the oldest entries beyond the limit.
    pub(crate) fn push_jwt(&mut self, entry: JwtKeyEntry) {
        push_capped(&mut self.jwt_keys, entry);
    }

    /// Sets the status of the authority with this ID.
    pub(crate) fn set_status(&mut self, authority_id: &str, status: Status) {
        for entry in &mut self.x509_cas {
            if entry.authority_id == authority_id {
                entry.status = status;
            }
        }
    }

    /// Sets the status of the JWT key with this `kid`.
    pub(crate) fn set_jwt_status(&mut self, kid: &str, status: Status) {
        for entry in &mut self.jwt_keys {
            if entry.kid == kid {
                entry.status = status;
            }
        }
    }
}

fn push_capped<T>(list: &mut Vec<T>, entry: T) {
    list.push(entry);
    if list.len() > MAX_ENTRIES {
        let excess = list.len() - MAX_ENTRIES;
        list.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_journal_from_before_jwt_keys_still_loads() {
        let journal = Journal::decode(br#"{"x509_cas":[]}"#).unwrap();
        assert!(journal.jwt_keys.is_empty());
    }

    #[test]
    fn jwt_keys_round_trip_and_are_capped() {
        let mut journal = Journal::default();
        for n in 0..12 {
            journal.push_jwt(JwtKeyEntry {
                slot: if n % 2 == 0 { SlotId::A } else { SlotId::B },
                status: Status::Prepared,
                kid: format!("kid{n}"),
                issued_at: n,
                not_after: n + 100,
                public_key: vec![1, 2, 3],
            });
        }
        journal.set_jwt_status("kid11", Status::Active);
        assert_eq!(journal.jwt_keys.len(), MAX_ENTRIES);
        assert_eq!(journal.jwt_keys[0].kid, "kid2");
        let decoded = Journal::decode(&journal.encode()).unwrap();
        assert_eq!(decoded, journal);
        assert_eq!(decoded.jwt_keys[9].status, Status::Active);
    }
}
