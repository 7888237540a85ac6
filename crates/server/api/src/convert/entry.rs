//! `spire.api.types.Entry` ⇄ [`RegistrationEntry`].

use spire_id::{SelectorError, SelectorSet, TrustDomain};
use spire_proto::spire::api::types;
use spire_server_datastore::{EntryMask, RegistrationEntry};

use super::{
    Error, Result, id_to_proto, member_id_from_proto, selectors_from_proto, selectors_to_proto,
    workload_id_from_proto,
};
use crate::dns;

/// SPIRE's limit on an entry hint, in bytes.
pub const HINT_MAX_LEN: usize = 1024;

/// Converts and validates a client's entry, as SPIRE does before create or update.
///
/// With `mask` (an update's input mask) only the masked fields are read and checked; the
/// others get placeholders and are left out of the returned datastore mask. `None` means every
/// field. `id`, `revision_number` and `created_at` are never taken from the client except the
/// ID, which the caller checks.
pub fn entry_from_proto(
    td: &TrustDomain,
    e: &types::Entry,
    mask: Option<&types::EntryMask>,
) -> Result<(RegistrationEntry, EntryMask)> {
    let ds_mask = entry_mask_from_proto(mask);
    let parent_id = if ds_mask.parent_id {
        member_id_from_proto(td, e.parent_id.as_ref()).map_err(|e| Error::ParentId(Box::new(e)))?
    } else {
        td.id()
    };
    let spiffe_id = if ds_mask.spiffe_id {
        workload_id_from_proto(td, e.spiffe_id.as_ref())
            .map_err(|e| Error::SpiffeId(Box::new(e)))?
    } else {
        td.id()
    };
    let mut dns_names = Vec::new();
    if ds_mask.dns_names {
        dns_names.reserve(e.dns_names.len());
        for name in &e.dns_names {
            dns::validate_label(name).map_err(Error::DnsName)?;
            dns_names.push(name.clone());
        }
    }
    let mut federates_with = Vec::new();
    if ds_mask.federates_with {
        federates_with.reserve(e.federates_with.len());
        for name in &e.federates_with {
            let td = TrustDomain::parse(name).map_err(Error::FederatedTrustDomain)?;
            federates_with.push(td);
        }
    }
    let selectors = if ds_mask.selectors {
        if e.selectors.is_empty() {
            return Err(SelectorError::EmptyList.into());
        }
        selectors_from_proto(&e.selectors)?
    } else {
        SelectorSet::new()
    };
    if ds_mask.hint && e.hint.len() > HINT_MAX_LEN {
        return Err(Error::HintTooLong);
    }
    let pick = |on: bool, v: i32| if on { v } else { 0 };
    let entry = RegistrationEntry {
        id: e.id.clone(),
        spiffe_id,
        parent_id,
        selectors,
        x509_svid_ttl: pick(ds_mask.x509_svid_ttl, e.x509_svid_ttl),
        jwt_svid_ttl: pick(ds_mask.jwt_svid_ttl, e.jwt_svid_ttl),
        federates_with,
        admin: ds_mask.admin && e.admin,
        downstream: ds_mask.downstream && e.downstream,
        expires_at: if ds_mask.expires_at { e.expires_at } else { 0 },
        dns_names,
        revision_number: 0,
        store_svid: ds_mask.store_svid && e.store_svid,
        hint: if ds_mask.hint {
            e.hint.clone()
        } else {
            String::new()
        },
        created_at: 0,
    };
    Ok((entry, ds_mask))
}

/// An update's input mask → the datastore's; `None` = every field.
pub fn entry_mask_from_proto(mask: Option<&types::EntryMask>) -> EntryMask {
    let Some(m) = mask else {
        return EntryMask::ALL;
    };
    EntryMask {
        spiffe_id: m.spiffe_id,
        parent_id: m.parent_id,
        selectors: m.selectors,
        x509_svid_ttl: m.x509_svid_ttl,
        jwt_svid_ttl: m.jwt_svid_ttl,
        federates_with: m.federates_with,
        admin: m.admin,
        downstream: m.downstream,
        expires_at: m.expires_at,
        dns_names: m.dns_names,
        store_svid: m.store_svid,
        hint: m.hint,
    }
}

/// A stored entry → proto (federated trust domains by name, as SPIRE returns them).
pub fn entry_to_proto(e: &RegistrationEntry) -> types::Entry {
    types::Entry {
        id: e.id.clone(),
        spiffe_id: Some(id_to_proto(&e.spiffe_id)),
        parent_id: Some(id_to_proto(&e.parent_id)),
        selectors: selectors_to_proto(&e.selectors),
        x509_svid_ttl: e.x509_svid_ttl,
        federates_with: e
            .federates_with
            .iter()
            .map(|td| td.name().to_owned())
            .collect(),
        admin: e.admin,
        downstream: e.downstream,
        expires_at: e.expires_at,
        dns_names: e.dns_names.clone(),
        revision_number: e.revision_number,
        store_svid: e.store_svid,
        jwt_svid_ttl: e.jwt_svid_ttl,
        hint: e.hint.clone(),
        created_at: e.created_at,
    }
}

/// Clears the fields an output mask leaves out; `None` keeps everything, and the ID is
/// always kept.
pub fn apply_entry_mask(e: &mut types::Entry, mask: Option<&types::EntryMask>) {
    let Some(m) = mask else {
        return;
    };
    if !m.spiffe_id {
        e.spiffe_id = None;
    }
    if !m.parent_id {
        e.parent_id = None;
    }
    if !m.selectors {
        e.selectors.clear();
    }
    if !m.x509_svid_ttl {
        e.x509_svid_ttl = 0;
    }
    if !m.federates_with {
        e.federates_with.clear();
    }
    if !m.admin {
        e.admin = false;
    }
    if !m.downstream {
        e.downstream = false;
    }
    if !m.expires_at {
        e.expires_at = 0;
    }
    if !m.dns_names {
        e.dns_names.clear();
    }
    if !m.revision_number {
        e.revision_number = 0;
    }
    if !m.store_svid {
        e.store_svid = false;
    }
    if !m.jwt_svid_ttl {
        e.jwt_svid_ttl = 0;
    }
    if !m.hint {
        e.hint.clear();
    }
    if !m.created_at {
        e.created_at = 0;
    }
}
