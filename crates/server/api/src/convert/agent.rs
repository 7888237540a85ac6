//! [`AttestedNode`] → `spire.api.types.Agent`.

use spire_proto::spire::api::types;
use spire_server_datastore::AttestedNode;

use super::{id_to_proto, selectors_to_proto};

/// A stored node → proto; a node is banned when its current serial number is empty.
pub fn agent_to_proto(node: &AttestedNode) -> types::Agent {
    types::Agent {
        id: Some(id_to_proto(&node.spiffe_id)),
        attestation_type: node.attestation_type.clone(),
        x509svid_serial_number: node.cert_serial_number.clone(),
        x509svid_expires_at: node.cert_not_after,
        selectors: selectors_to_proto(&node.selectors),
        banned: node.cert_serial_number.is_empty(),
        can_reattest: node.can_reattest,
    }
}

/// Clears the fields an output mask leaves out; `None` keeps everything, the ID always stays.
pub fn apply_agent_mask(a: &mut types::Agent, mask: Option<&types::AgentMask>) {
    let Some(m) = mask else {
        return;
    };
    if !m.attestation_type {
        a.attestation_type.clear();
    }
    if !m.x509svid_serial_number {
        a.x509svid_serial_number.clear();
    }
    if !m.x509svid_expires_at {
        a.x509svid_expires_at = 0;
    }
    if !m.selectors {
        a.selectors.clear();
    }
    if !m.banned {
        a.banned = false;
    }
    if !m.can_reattest {
        a.can_reattest = false;
    }
}
