//! The CA journal: which key slot holds which authority, and in what state. Stored in the
//! datastore as JSON (the datastore treats it as opaque bytes). A journal SPIRE wrote (its
//! protobuf `Journal`, carried over when a SPIRE datastore is taken over) is read too, and
//! written back as JSON at the next rotation step.

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
        // Ours is a JSON object; SPIRE's protobuf starts with a field tag, never `{`.
        if bytes.first().is_some_and(|b| *b != b'{') {
            return spire::decode(bytes);
        }
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

/// SPIRE's journal encoding (protobuf `Journal` of `X509CAEntry` / `JWTKeyEntry`).
mod spire {
    use super::{Journal, JwtKeyEntry, Status, X509CaEntry};
    use crate::manager::SlotId;
    use crate::{Error, Result};

    #[derive(Clone, PartialEq, prost::Message)]
    struct ProtoJournal {
        #[prost(message, repeated, tag = "1")]
        x509_cas: Vec<ProtoX509Ca>,
        #[prost(message, repeated, tag = "2")]
        jwt_keys: Vec<ProtoJwtKey>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ProtoX509Ca {
        #[prost(string, tag = "1")]
        slot_id: String,
        #[prost(int64, tag = "2")]
        issued_at: i64,
        #[prost(bytes = "vec", tag = "3")]
        certificate: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "4")]
        upstream_chain: Vec<Vec<u8>>,
        #[prost(int32, tag = "5")]
        status: i32,
        #[prost(string, tag = "6")]
        authority_id: String,
        #[prost(int64, tag = "7")]
        not_after: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ProtoJwtKey {
        #[prost(string, tag = "1")]
        slot_id: String,
        #[prost(int64, tag = "2")]
        issued_at: i64,
        #[prost(int64, tag = "3")]
        not_after: i64,
        #[prost(string, tag = "4")]
        kid: String,
        #[prost(bytes = "vec", tag = "5")]
        public_key: Vec<u8>,
        #[prost(int32, tag = "6")]
        status: i32,
    }

    fn slot(id: &str) -> Option<SlotId> {
        match id {
            "A" => Some(SlotId::A),
            "B" => Some(SlotId::B),
            _ => None,
        }
    }

    /// SPIRE's statuses: 2 prepared, 3 active, 4 old (0 unknown).
    fn status(value: i32) -> Option<Status> {
        match value {
            2 => Some(Status::Prepared),
            3 => Some(Status::Active),
            4 => Some(Status::Old),
            _ => None,
        }
    }

    /// Entries with an unknown slot or status are left out (SPIRE ignores them too).
    pub(super) fn decode(bytes: &[u8]) -> Result<Journal> {
        let proto = <ProtoJournal as prost::Message>::decode(bytes)
            .map_err(|e| Error::CorruptJournal(format!("neither JSON nor SPIRE's journal: {e}")))?;
        let x509_cas = proto
            .x509_cas
            .into_iter()
            .filter_map(|e| {
                Some(X509CaEntry {
                    slot: slot(&e.slot_id)?,
                    status: status(e.status)?,
                    authority_id: e.authority_id,
                    issued_at: e.issued_at,
                    not_after: e.not_after,
                    certificate: e.certificate,
                    upstream_chain: e.upstream_chain,
                })
            })
            .collect();
        let jwt_keys = proto
            .jwt_keys
            .into_iter()
            .filter_map(|e| {
                Some(JwtKeyEntry {
                    slot: slot(&e.slot_id)?,
                    status: status(e.status)?,
                    kid: e.kid,
                    issued_at: e.issued_at,
                    not_after: e.not_after,
                    public_key: e.public_key,
                })
            })
            .collect();
        Ok(Journal { x509_cas, jwt_keys })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The journal in SPIRE's schema-24 database dump: slot A's CA active, JWT key A active.
    #[test]
    fn a_journal_spire_wrote_is_read() {
        let Some(dir) = spire_test::shared_testdata("spire-sqlite-dumps") else {
            return;
        };
        let dump = std::fs::read_to_string(dir.join("v24.sql")).unwrap();
        let row = dump
            .lines()
            .find(|l| l.starts_with("INSERT INTO ca_journals"))
            .unwrap();
        let start = row.find("X'").unwrap() + 2;
        let end = start + row[start..].find('\'').unwrap();
        let bytes = hex::decode(&row[start..end]).unwrap();

        let journal = Journal::decode(&bytes).unwrap();
        assert_eq!(journal.x509_cas.len(), 1);
        let ca = &journal.x509_cas[0];
        assert_eq!((ca.slot, ca.status), (SlotId::A, Status::Active));
        assert_eq!(ca.authority_id, "d15f6be56f1b49cdbbeb148b14dd9663caab881d");
        assert!(ca.not_after > ca.issued_at);
        assert!(x509_parser::parse_x509_certificate(&ca.certificate).is_ok());
        assert_eq!(journal.jwt_keys.len(), 1);
        let jwt = &journal.jwt_keys[0];
        assert_eq!((jwt.slot, jwt.status), (SlotId::A, Status::Active));
        assert_eq!(jwt.kid, "iHL8Xzd3Ui6fKBWohbRENjbkbqYEUvew");
        // Written back in our own encoding.
        assert_eq!(Journal::decode(&journal.encode()).unwrap(), journal);
    }

    #[test]
    fn a_journal_that_is_neither_encoding_is_refused() {
        assert!(Journal::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(Journal::decode(b"{not json").is_err());
    }

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
