//! Fields whose names are known only at run time.
//!
//! tracing names every field at compile time, but some of SPIRE's fields are not: the audit
//! log writes `x509_authorities_asn1_sha256.0`, `.1`, … for a bundle's authorities, and its
//! `status_code` is the gRPC code's name in text lines but its number in JSON lines. A
//! [`RuntimeFields`] carries such fields in one tracing field named [`RUNTIME_FIELDS`]; the
//! logrus formatter spreads them into fields of their own. Other formatters see the encoded
//! string.
//!
//! The encoding is length-prefixed, so a value may hold any character: per field, a kind byte
//! (`s` string, `b` bare JSON value such as a number or boolean, `d` bare JSON value with a
//! different text form), then `<len>:<key>`, `<len>:<value>` and, for `d`, `<len>:<text>`.

use std::fmt::{self, Write as _};

/// The tracing field that carries a [`RuntimeFields`].
pub const RUNTIME_FIELDS: &str = "runtime_fields";

/// Fields named at run time, recorded as `runtime_fields = fields.as_str()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeFields(String);

/// One decoded field: its key, its JSON value (a string when `bare` is false) and, when it
/// differs, its text form.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RuntimeField<'a> {
    pub(super) key: &'a str,
    pub(super) bare: bool,
    pub(super) json: &'a str,
    pub(super) text: Option<&'a str>,
}

impl RuntimeFields {
    /// A string field.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.push(b's', key, value, None)
    }

    /// A field written bare in JSON (a number or a boolean) and as-is in text.
    pub fn bare(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        let value = value.to_string();
        self.push(b'b', key, &value, None)
    }

    /// A field written bare as `json` in JSON lines and as `text` in text lines (a gRPC code:
    /// its number in JSON, its name in text, as logrus prints a Go `codes.Code`).
    pub fn dual(&mut self, key: &str, json: impl fmt::Display, text: &str) -> &mut Self {
        let json = json.to_string();
        self.push(b'd', key, &json, Some(text))
    }

    /// Appends `other`'s fields.
    pub fn append(&mut self, other: &Self) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    /// The value of the last field named `key` (its JSON form).
    pub fn get(&self, key: &str) -> Option<&str> {
        decode(&self.0)
            .filter(|field| field.key == key)
            .last()
            .map(|field| field.json)
    }

    /// The fields of an encoded value as `(key, value)` pairs, each value in its text form:
    /// what a text line shows.
    pub fn pairs(encoded: &str) -> impl Iterator<Item = (&str, &str)> {
        decode(encoded).map(|field| (field.key, field.text.unwrap_or(field.json)))
    }

    /// Whether no field was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded fields, the value to record.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn push(&mut self, kind: u8, key: &str, value: &str, text: Option<&str>) -> &mut Self {
        self.0.push(char::from(kind));
        for part in [Some(key), Some(value), text].into_iter().flatten() {
            // Writing to a String cannot fail.
            let _ = write!(self.0, "{}:{part}", part.len());
        }
        self
    }
}

/// Decodes what [`RuntimeFields`] encoded; stops at the first malformed field.
pub(super) fn decode(mut encoded: &str) -> impl Iterator<Item = RuntimeField<'_>> {
    std::iter::from_fn(move || {
        let kind = *encoded.as_bytes().first()?;
        let mut rest = encoded.get(1..)?;
        let mut part = || {
            let (len, after) = rest.split_once(':')?;
            let len: usize = len.parse().ok()?;
            let value = after.get(..len)?;
            rest = &after[len..];
            Some(value)
        };
        let key = part()?;
        let json = part()?;
        let (bare, text) = match kind {
            b's' => (false, None),
            b'b' => (true, None),
            b'd' => (true, Some(part()?)),
            _ => return None,
        };
        encoded = rest;
        Some(RuntimeField {
            key,
            bare,
            json,
            text,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_whatever_their_values_hold() {
        let mut fields = RuntimeFields::default();
        fields
            .string("hint", "a:1:b\u{1e}")
            .bare("refresh_hint", 300)
            .dual("status_code", 3, "InvalidArgument")
            .string("empty", "");
        let decoded: Vec<_> = decode(fields.as_str()).collect();
        assert_eq!(
            decoded,
            [
                RuntimeField {
                    key: "hint",
                    bare: false,
                    json: "a:1:b\u{1e}",
                    text: None
                },
                RuntimeField {
                    key: "refresh_hint",
                    bare: true,
                    json: "300",
                    text: None
                },
                RuntimeField {
                    key: "status_code",
                    bare: true,
                    json: "3",
                    text: Some("InvalidArgument")
                },
                RuntimeField {
                    key: "empty",
                    bare: false,
                    json: "",
                    text: None
                },
            ]
        );
    }

    #[test]
    fn a_malformed_tail_is_dropped() {
        let mut fields = RuntimeFields::default();
        fields.string("a", "1");
        let encoded = format!("{}s9:short", fields.as_str());
        assert_eq!(decode(&encoded).count(), 1);
        assert_eq!(decode("x1:a1:b").count(), 0);
        assert_eq!(decode("").count(), 0);
    }
}
