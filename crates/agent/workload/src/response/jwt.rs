//! The JWT messages: `FetchJWTBundles` (a standard JWKS per trust domain) and the claims
//! `ValidateJWTSVID` returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct};
use serde_json::{Map, Value};
use spire_agent_cache::WorkloadUpdate;
use spire_id::TrustDomain;
use spire_proto::workload::JwtBundlesResponse;
use spire_svid::Bundle;

/// Claims returned for every validated token, whatever the subject's trust domain.
pub const ALWAYS_RETURNED_CLAIMS: [&str; 3] = ["sub", "aud", "exp"];

/// The `FetchJWTBundles` message of one update.
#[derive(Debug)]
pub(crate) struct JwtBundlesMessage(pub(crate) JwtBundlesResponse);

/// The `FetchJWTBundles` message of `update`, built once and shared.
pub(crate) fn jwt_bundles_message(update: &WorkloadUpdate) -> Arc<JwtBundlesMessage> {
    update.memo(|u| {
        JwtBundlesMessage(jwt_bundles_response(
            !u.identities.is_empty(),
            &u.bundle,
            &u.federated_bundles,
        ))
    })
}

/// The `FetchJWTBundles` message: the own trust domain's JWT authorities always, those of
/// federated trust domains only for a caller with an identity; each a standard JWKS (no `use`,
/// no `spiffe_*` members, no X.509 keys) keyed `spiffe://<td>`.
pub fn jwt_bundles_response(
    has_identity: bool,
    bundle: &Bundle,
    federated: &BTreeMap<TrustDomain, Arc<Bundle>>,
) -> JwtBundlesResponse {
    let jwks = |b: &Bundle| b.to_jwks_json().into_bytes();
    let mut bundles: HashMap<String, Vec<u8>> = if has_identity {
        federated
            .iter()
            .map(|(td, b)| (td.id_string(), jwks(b)))
            .collect()
    } else {
        HashMap::new()
    };
    bundles.insert(bundle.trust_domain.id_string(), jwks(bundle));
    JwtBundlesResponse { bundles }
}

/// The claims of a validated token as `ValidateJWTSVID` returns them. For a subject outside
/// the agent's trust domain (`foreign`) only [`ALWAYS_RETURNED_CLAIMS`] and the names in
/// `allowed_foreign` (`allowed_foreign_jwt_claims`) are kept. `aud` is always a list, also
/// when the token carries a single string.
pub fn returned_claims(
    mut claims: Map<String, Value>,
    foreign: bool,
    allowed_foreign: &BTreeSet<String>,
) -> Struct {
    if foreign {
        claims.retain(|name, _| {
            ALWAYS_RETURNED_CLAIMS.contains(&name.as_str()) || allowed_foreign.contains(name)
        });
    }
    if let Some(aud) = claims.get_mut("aud")
        && let Value::String(single) = aud
    {
        *aud = Value::Array(vec![Value::String(std::mem::take(single))]);
    }
    to_struct(claims)
}

/// A JSON object as a `google.protobuf.Struct` (numbers become doubles, as in protojson).
pub fn to_struct(object: Map<String, Value>) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(name, value)| (name, to_value(value)))
            .collect(),
    }
}

fn to_value(value: Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Value::Object(object) => Kind::StructValue(to_struct(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests;
