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
        self.x509_cas.push(entry);
        if self.x509_cas.len() > MAX_ENTRIES {
            let excess = self.x509_cas.len() - MAX_ENTRIES;
            self.x509_cas.drain(..excess);
        }
    }

    /// Sets the status of the authority with this ID.
    pub(crate) fn set_status(&mut self, authority_id: &str, status: Status) {
        for entry in &mut self.x509_cas {
            if entry.authority_id == authority_id {
                entry.status = status;
            }
        }
    }
}
