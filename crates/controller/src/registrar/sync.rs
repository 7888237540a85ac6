//! Keeping one `SpiffeID` and its spire-server entry in step, as upstream's SpiffeID controller
//! does, expressed as a state machine so the caller's loop only performs I/O:
//!
//! ```text
//! let mut seen = Observation::Start;
//! loop {
//!     match next_action(&object, &seen)? {
//!         SyncAction::AddFinalizer => { add_finalizer(&mut object); object = update(object)?; }
//!         SyncAction::DeleteEntry(id) => { batch_delete(id)? /* OK or NotFound */; seen = Observation::Deleted; }
//!         SyncAction::RemoveFinalizer => { remove_finalizer(&mut object); update(object)?; break; }
//!         SyncAction::GetEntry(id) => seen = match get_entry(id) { Ok(e) => Fetched(e), NotFound => NotFound },
//!         SyncAction::CreateEntry(e) => seen = match batch_create(e)? { OK(e) => Created(e), AlreadyExists(e) => AlreadyExists(e) },
//!         SyncAction::UpdateEntry(e) => { batch_update(e.clone())?; seen = Observation::Updated(e.id); }
//!         SyncAction::SetStatus(id) => { write_status(id) /* status subresource, retry on conflict */; break; }
//!         SyncAction::Done => break,
//!     }
//! }
//! ```
//!
//! Errors (an unparsable spec, a failed RPC) end the pass and are retried with backoff.

use spire_proto::spire::api::types::Entry;

use super::entry::{entry_needs_update, spiffe_id_to_entry};
use super::error::RegistrarError;
use crate::crd::{self, SpiffeIdStatus};

/// The finalizer that keeps a `SpiffeID` until its entry is deleted.
pub const FINALIZER: &str = "finalizers.spiffeid.spiffe.io";

/// What the caller has learned from spire-server during the current pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Nothing yet: the start of a pass (also after [`SyncAction::AddFinalizer`]).
    Start,
    /// `GetEntry(status.entryId)` returned this entry.
    Fetched(Entry),
    /// `GetEntry(status.entryId)` returned NotFound.
    NotFound,
    /// `BatchCreateEntry` created this entry (status OK).
    Created(Entry),
    /// `BatchCreateEntry` answered AlreadyExists with this (existing) entry.
    AlreadyExists(Entry),
    /// `BatchUpdateEntry` succeeded for the entry with this ID.
    Updated(String),
    /// `BatchDeleteEntry` answered OK or NotFound.
    Deleted,
}

/// The next step of a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncAction {
    /// Add [`FINALIZER`] ([`add_finalizer`]), update the object, then continue with the updated
    /// object and [`Observation::Start`].
    AddFinalizer,
    /// `BatchDeleteEntry([id])`; OK and NotFound both count as deleted.
    DeleteEntry(String),
    /// Remove [`FINALIZER`] ([`remove_finalizer`]) and update the object; the pass is over.
    RemoveFinalizer,
    /// `GetEntry(id)` for `status.entryId`.
    GetEntry(String),
    /// `BatchCreateEntry` with this entry.
    CreateEntry(Entry),
    /// `BatchUpdateEntry` with this entry (its `id` is set).
    UpdateEntry(Entry),
    /// Write `status.entryId` (`None` clears it, so the next pass creates the entry again)
    /// through the status subresource, retrying on conflict; the pass is over.
    SetStatus(Option<String>),
    /// Nothing (more) to do.
    Done,
}

/// The next step for `object` given what this pass has observed so far.
///
/// * Being deleted: with the finalizer, delete the entry named by `status.entryId` (if any),
///   then remove the finalizer; without it, nothing.
/// * Otherwise add the finalizer first; then with `status.entryId` fetch the entry (NotFound ⇒
///   clear the status), else create it (AlreadyExists ⇒ adopt the returned entry); update when
///   [`entry_needs_update`]; record a new entry ID in the status.
///
/// Fails when the spec does not convert to an entry ([`spiffe_id_to_entry`]).
pub fn next_action(
    object: &crd::SpiffeId,
    observation: &Observation,
) -> Result<SyncAction, RegistrarError> {
    let entry_id = status_entry_id(object);
    if is_deleting(object) {
        if !has_finalizer(object) {
            return Ok(SyncAction::Done);
        }
        return Ok(match (observation, entry_id) {
            (Observation::Start, Some(id)) => SyncAction::DeleteEntry(id.to_owned()),
            (Observation::Start | Observation::Deleted, _) => SyncAction::RemoveFinalizer,
            _ => SyncAction::Done,
        });
    }
    if !has_finalizer(object) {
        return Ok(SyncAction::AddFinalizer);
    }

    let desired = spiffe_id_to_entry(&object.spec)?;
    let with_id = |id: &str| Entry {
        id: id.to_owned(),
        ..desired.clone()
    };
    Ok(match observation {
        Observation::Start => match entry_id {
            Some(id) => SyncAction::GetEntry(id.to_owned()),
            None => SyncAction::CreateEntry(desired),
        },
        Observation::Fetched(existing) => match entry_id {
            Some(id) if entry_needs_update(existing, &desired) => {
                SyncAction::UpdateEntry(with_id(id))
            }
            _ => SyncAction::Done,
        },
        Observation::NotFound => SyncAction::SetStatus(None),
        Observation::Created(created) => SyncAction::SetStatus(Some(created.id.clone())),
        Observation::AlreadyExists(existing) => {
            if entry_needs_update(existing, &desired) {
                SyncAction::UpdateEntry(with_id(&existing.id))
            } else if entry_id == Some(existing.id.as_str()) {
                SyncAction::Done
            } else {
                SyncAction::SetStatus(Some(existing.id.clone()))
            }
        }
        Observation::Updated(id) => {
            if entry_id == Some(id.as_str()) {
                SyncAction::Done
            } else {
                SyncAction::SetStatus(Some(id.clone()))
            }
        }
        Observation::Deleted => SyncAction::Done,
    })
}

/// True when the object carries [`FINALIZER`].
pub fn has_finalizer(object: &crd::SpiffeId) -> bool {
    object
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// Appends [`FINALIZER`] unless present; true when the object changed.
pub fn add_finalizer(object: &mut crd::SpiffeId) -> bool {
    if has_finalizer(object) {
        return false;
    }
    object
        .metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(FINALIZER.to_owned());
    true
}

/// Removes every occurrence of [`FINALIZER`]; true when the object changed.
pub fn remove_finalizer(object: &mut crd::SpiffeId) -> bool {
    let Some(finalizers) = object.metadata.finalizers.as_mut() else {
        return false;
    };
    let before = finalizers.len();
    finalizers.retain(|f| f != FINALIZER);
    finalizers.len() != before
}

/// True once the apiserver has set `metadata.deletionTimestamp`.
pub fn is_deleting(object: &crd::SpiffeId) -> bool {
    object.metadata.deletion_timestamp.is_some()
}

/// `status.entryId`, when set and non-empty.
pub fn status_entry_id(object: &crd::SpiffeId) -> Option<&str> {
    object
        .status
        .as_ref()
        .map(|s| s.entry_id.as_str())
        .filter(|id| !id.is_empty())
}

/// Sets (or, with `None`, clears) `status.entryId`.
pub fn set_status_entry_id(object: &mut crd::SpiffeId, entry_id: Option<String>) {
    object.status = Some(SpiffeIdStatus {
        entry_id: entry_id.unwrap_or_default(),
    });
}

#[cfg(test)]
mod tests;
