//! The JWT key slots: the X.509 rotation policy applied to JWT signing keys, which live in
//! slots of their own (`JWT-Signer-A` / `JWT-Signer-B`) and in the same journal.

use std::sync::Arc;

use spire_svid::Bundle;
use spire_time::{from_unix_seconds, to_unix_seconds};

use super::{CaManager, JwtSlot, Lifetime, SlotId, State, Step, step};
use crate::Result;
use crate::journal::{JwtKeyEntry, Status};
use crate::jwtkey::{JwtKey, random_kid};

// === impl CaManager ===

impl CaManager {
    /// One rotation step for the JWT key, decided by the same policy as the X.509 CA's.
    pub(super) async fn tick_jwt(&self, state: &mut State) -> Result<()> {
        let current = state.jwt_current.as_ref().map(|s| Lifetime {
            start: s.key.issued_at(),
            end: s.key.not_after(),
        });
        let next_slot = state
            .jwt_current
            .as_ref()
            .map_or(SlotId::A, |c| c.id.other());
        match step(self.clock.now(), current, state.jwt_next.is_some()) {
            Step::Idle => Ok(()),
            Step::Bootstrap => {
                let now = self.clock.now();
                if state
                    .jwt_next
                    .as_ref()
                    .is_none_or(|n| now >= n.key.not_after())
                {
                    self.prepare_jwt(state, next_slot).await?;
                }
                self.activate_jwt(state).await
            }
            Step::Prepare => self.prepare_jwt(state, next_slot).await,
            Step::Activate => {
                if state.jwt_next.is_none() {
                    self.prepare_jwt(state, next_slot).await?;
                }
                self.activate_jwt(state).await
            }
        }
    }

    /// Makes a new JWT key in `slot` with a fresh `kid`, publishes it in the bundle and
    /// journals it as prepared. It signs nothing until it is activated.
    pub(super) async fn prepare_jwt(&self, state: &mut State, slot: SlotId) -> Result<()> {
        // Whole seconds, as the journal keeps them: a restarted server sees the same times.
        let issued_at = from_unix_seconds(self.clock.unix_seconds());
        let not_after = issued_at + self.config.ca_ttl;
        let key = self
            .plugins
            .key_manager
            .generate_key(slot.jwt_key_id(), self.config.jwt_key_type())
            .await?;
        let key = JwtKey::new(&key, random_kid()?, issued_at, not_after)?;

        // Publish before use: validators must hold the key before any token names it.
        let mut bundle = Bundle::new(self.config.trust_domain.clone());
        bundle.jwt_authorities = vec![key.authority()];
        self.datastore.append_bundle(bundle).await?;
        self.bundle_changed();

        state.journal.push_jwt(JwtKeyEntry {
            slot,
            status: Status::Prepared,
            kid: key.kid().to_owned(),
            issued_at: to_unix_seconds(issued_at),
            not_after: to_unix_seconds(not_after),
            public_key: key.public_key_der().to_vec(),
        });
        tracing::info!(slot = ?slot, authority_id = %key.kid(), not_after = to_unix_seconds(not_after), "JWT key prepared");
        state.jwt_old = None;
        state.jwt_next = Some(JwtSlot {
            id: slot,
            key: Arc::new(key),
        });
        self.write_journal(state).await
    }

    /// Makes the prepared JWT key current; the previous one becomes old (still in the bundle,
    /// so the tokens it signed keep validating until they expire).
    pub(super) async fn activate_jwt(&self, state: &mut State) -> Result<()> {
        let Some(next) = state.jwt_next.take() else {
            return Ok(());
        };
        if let Some(old) = state.jwt_current.take() {
            state.journal.set_jwt_status(old.key.kid(), Status::Old);
            state.jwt_old = Some(old);
        }
        state.journal.set_jwt_status(next.key.kid(), Status::Active);
        tracing::info!(slot = ?next.id, authority_id = %next.key.kid(), "JWT key activated");
        self.ca.set_active_jwt_key(next.key.clone());
        state.jwt_current = Some(next);
        self.write_journal(state).await
    }

    /// Restores the current and next JWT slots from the loaded journal, for the keys the key
    /// manager still holds unchanged.
    pub(super) async fn load_jwt(&self, state: &mut State) -> Result<()> {
        if self.config.disable_jwt_svids {
            return Ok(());
        }
        let km = &self.plugins.key_manager;
        let now = self.clock.now();
        let entries = state.journal.jwt_keys.clone();
        for entry in entries.iter().rev() {
            let wanted = match entry.status {
                Status::Active if state.jwt_current.is_none() => &mut state.jwt_current,
                Status::Prepared if state.jwt_next.is_none() => &mut state.jwt_next,
                Status::Old if state.jwt_old.is_none() => &mut state.jwt_old,
                _ => continue,
            };
            let Some(key) = km.key(entry.slot.jwt_key_id()).await? else {
                continue;
            };
            if key.public_key_der() != entry.public_key {
                continue; // the slot's key was replaced since this entry was written
            }
            let key = JwtKey::new(
                &key,
                entry.kid.clone(),
                from_unix_seconds(entry.issued_at),
                from_unix_seconds(entry.not_after),
            )?;
            if now < key.not_after() {
                tracing::info!(slot = ?entry.slot, authority_id = %entry.kid, status = ?entry.status, "JWT key loaded from journal");
                *wanted = Some(JwtSlot {
                    id: entry.slot,
                    key: Arc::new(key),
                });
            }
        }
        if let (Some(current), Some(next)) = (&state.jwt_current, &state.jwt_next)
            && current.id == next.id
        {
            state.jwt_next = None;
        }
        if let (Some(current), Some(old)) = (&state.jwt_current, &state.jwt_old)
            && (current.id == old.id || state.jwt_next.is_some())
        {
            state.jwt_old = None;
        }
        if let Some(current) = &state.jwt_current {
            self.ca.set_active_jwt_key(current.key.clone());
        }
        Ok(())
    }
}
