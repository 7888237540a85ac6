//! `-output json`: the RPC response as SPIRE's CLI prints it.
//!
//! SPIRE marshals the response with protojson (`UseProtoNames`, `EmitUnpopulated`), parses
//! that into a Go map, drops `null`s and re-encodes it with `encoding/json`. So the output is
//! one compact line, object keys sorted bytewise at every level, unset message fields absent,
//! every scalar present with its default, 64-bit integers as strings, bytes as padded base64,
//! enums by name, and `<`, `>`, `&` escaped as `\u003c`…
//!
//! Decision: we re-encode the prost message, decode it as a `prost_reflect::DynamicMessage`
//! against `spire_proto::FILE_DESCRIPTOR_SET` and walk the descriptor ourselves (a small
//! hand-written emitter rather than prost-reflect's serde support, whose defaults for unset
//! messages and key order differ from the Go pipeline). Any response type works without
//! per-type code.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, ReflectMessage as _, Value};

/// A JSON value in the order it will be written (objects keep insertion order; proto
/// objects are built sorted).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `true`/`false`.
    Bool(bool),
    /// A number, already formatted.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, written in this order.
    Object(Vec<(String, Json)>),
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(spire_proto::FILE_DESCRIPTOR_SET)
            .expect("spire-proto embeds a valid descriptor set")
    })
}

/// Converts `message` (whose full proto name is `full_name`) to SPIRE's JSON shape.
pub fn to_json(message: &impl prost::Message, full_name: &str) -> anyhow::Result<Json> {
    let descriptor = pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| anyhow::anyhow!("unknown message type {full_name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    Ok(message_json(&dynamic))
}

/// Writes `message` as one line of SPIRE's `-output json`.
pub fn print(
    w: &mut dyn std::io::Write,
    message: &impl prost::Message,
    full_name: &str,
) -> anyhow::Result<()> {
    let json = to_json(message, full_name)?;
    writeln!(w, "{}", encode(&json))?;
    Ok(())
}

fn message_json(message: &DynamicMessage) -> Json {
    let descriptor = message.descriptor();
    if let Some(json) = well_known(message) {
        return json;
    }
    let mut fields = Vec::new();
    for field in descriptor.fields() {
        let value = message.get_field(&field);
        let json = if field.is_list() {
            let items = value.as_list().unwrap_or_default();
            Some(Json::Array(
                items.iter().map(|v| value_json(v, &field.kind())).collect(),
            ))
        } else if field.is_map() {
            let entries = value.as_map().cloned().unwrap_or_default();
            let value_kind = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            };
            let mut object: Vec<(String, Json)> = entries
                .iter()
                .map(|(k, v)| (map_key(k), value_json(v, &value_kind)))
                .collect();
            object.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Json::Object(object))
        } else if matches!(field.kind(), Kind::Message(_)) && !message.has_field(&field) {
            None // protojson's null, removed by SPIRE's printer
        } else {
            Some(value_json(&value, &field.kind()))
        };
        if let Some(json) = json {
            fields.push((field.name().to_owned(), json));
        }
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Json::Object(fields)
}

/// Wrapper types print as their bare value; other well-known types are not in SPIRE's
/// responses.
fn well_known(message: &DynamicMessage) -> Option<Json> {
    let name = message.descriptor().full_name().to_owned();
    let wrapper = matches!(
        name.as_str(),
        "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.BytesValue"
    );
    if !wrapper {
        return None;
    }
    let field = message.descriptor().get_field_by_name("value")?;
    Some(value_json(&message.get_field(&field), &field.kind()))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn value_json(value: &Value, kind: &Kind) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(v) => Json::Number(v.to_string()),
        Value::U32(v) => Json::Number(v.to_string()),
        Value::I64(v) => Json::String(v.to_string()),
        Value::U64(v) => Json::String(v.to_string()),
        Value::F32(v) => Json::Number(v.to_string()),
        Value::F64(v) => Json::Number(v.to_string()),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(STANDARD.encode(b)),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => e.get_value(*n).map_or_else(
                || Json::Number(n.to_string()),
                |v| Json::String(v.name().to_owned()),
            ),
            _ => Json::Number(n.to_string()),
        },
        Value::Message(m) => message_json(m),
        Value::List(items) => Json::Array(items.iter().map(|v| value_json(v, kind)).collect()),
        Value::Map(_) => Json::Object(Vec::new()),
    }
}

/// Encodes compactly with Go `encoding/json`'s string escaping.
pub fn encode(json: &Json) -> String {
    let mut out = String::new();
    write_json(&mut out, json);
    out
}

fn write_json(out: &mut String, json: &Json) {
    match json {
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Json::Object(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, value);
            }
            out.push('}');
        }
    }
}

/// Go's `encoding/json` string escaping (HTML-safe).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use spire_proto::spire::api::server::entry::v1::{
        BatchCreateEntryResponse, ListEntriesResponse, batch_create_entry_response,
    };
    use spire_proto::spire::api::types::{Entry, Selector, Spiffeid, Status};

    use super::*;

    fn entry() -> Entry {
        Entry {
            id: "e1".into(),
            spiffe_id: Some(Spiffeid {
                trust_domain: "example.org".into(),
                path: "/ns/default/sa/sleep".into(),
            }),
            parent_id: Some(Spiffeid {
                trust_domain: "example.org".into(),
                path: "/spire/server".into(),
            }),
            selectors: vec![Selector {
                r#type: "k8s".into(),
                value: "ns:default".into(),
            }],
            dns_names: vec!["a<b>&c".into()],
            revision_number: 7,
            created_at: 1_700_000_000,
            ..Entry::default()
        }
    }

    #[test]
    fn list_entries_response_has_spire_shape() {
        let resp = ListEntriesResponse {
            entries: vec![entry()],
            next_page_token: String::new(),
        };
        let json =
            encode(&to_json(&resp, "spire.api.server.entry.v1.ListEntriesResponse").unwrap());
        assert_eq!(
            json,
            concat!(
                r#"{"entries":[{"admin":false,"created_at":"1700000000","dns_names":["a\u003cb\u003e\u0026c"],"#,
                r#""downstream":false,"expires_at":"0","federates_with":[],"hint":"","id":"e1","#,
                r#""jwt_svid_ttl":0,"parent_id":{"path":"/spire/server","trust_domain":"example.org"},"#,
                r#""revision_number":"7","selectors":[{"type":"k8s","value":"ns:default"}],"#,
                r#""spiffe_id":{"path":"/ns/default/sa/sleep","trust_domain":"example.org"},"#,
                r#""store_svid":false,"x509_svid_ttl":0}],"next_page_token":""}"#
            )
        );
    }

    #[test]
    fn unset_messages_are_dropped_and_statuses_kept() {
        let resp = BatchCreateEntryResponse {
            results: vec![batch_create_entry_response::Result {
                status: Some(Status {
                    code: 0,
                    message: "OK".into(),
                }),
                entry: None,
            }],
        };
        let json =
            encode(&to_json(&resp, "spire.api.server.entry.v1.BatchCreateEntryResponse").unwrap());
        assert_eq!(
            json,
            r#"{"results":[{"status":{"code":0,"message":"OK"}}]}"#
        );
    }
}
