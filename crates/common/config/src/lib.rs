//! SPIRE's configuration files: HCL v1 (quirks included) or its JSON form, `-expandEnv`, and
//! typed sections where every unknown key is an error that names it.
//!
//! Sourcing is split from parsing: [`Document::parse`] turns text into one normalized tree
//! (HCL v1 rewritten for the HCL 2 parser, JSON list-wrapped blocks unwrapped), and
//! [`Document::section`] deserializes one top-level section into a typed struct. Keys SPIRE
//! has and spire-rs does not implement are refused by name ([`Refusal`]) or, where stock
//! configurations set them and ignoring them is safe, reported as warnings (`refused`).
#![forbid(unsafe_code)]

pub mod agent;
pub mod de;
mod env;
mod hcl1;
pub mod plugins;
mod refused;
pub mod server;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use env::expand_env;
pub use plugins::{CatalogSpec, Constraint, PluginBlock, Plugins};
pub use refused::{Refusal, refuse};

/// A configuration error, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is neither valid HCL nor valid JSON.
    #[error("unable to parse configuration: {0}")]
    Syntax(String),
    /// Keys the section does not know; SPIRE refuses to start on these.
    #[error("unknown configuration detected in {section}: {}", keys.join(", "))]
    UnknownKeys {
        /// The section (`server`, `plugins`, …).
        section: String,
        /// The dotted paths of the unknown keys.
        keys: Vec<String>,
    },
    /// A value has the wrong type or is out of range.
    #[error("invalid configuration in {section}: {message}")]
    Invalid {
        /// The section.
        section: String,
        /// What is wrong.
        message: String,
    },
    /// A required section or key is missing.
    #[error("{0}")]
    Missing(String),
    /// The plugins do not fit the binary's catalog (SPIRE's catalog messages).
    #[error("{0}")]
    Catalog(String),
    /// Keys SPIRE has that spire-rs does not implement, each named with the reason.
    #[error("{}", join(.0))]
    Unsupported(Vec<Refusal>),
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A parsed configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    root: Map<String, Value>,
}

// === impl Document ===

impl Document {
    /// Parses HCL v1 or JSON text (JSON when it parses as a JSON object).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value = match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => value,
            _ => hcl::from_str::<Value>(&hcl1::to_hcl2(text))
                .map_err(|e| ConfigError::Syntax(e.to_string()))?,
        };
        match unwrap_blocks(value) {
            Value::Object(root) => Ok(Self { root }),
            _ => Err(ConfigError::Syntax("the top level must hold blocks".into())),
        }
    }

    /// Refuses top-level sections outside `allowed`.
    pub fn check_sections(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        let unknown: Vec<String> = self
            .root
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::UnknownKeys {
                section: "the top level".into(),
                keys: unknown,
            })
        }
    }

    /// The raw tree of a top-level section, if present.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.root.get(name)
    }

    /// Deserializes section `name` (absent = empty), failing on any key `T` does not know.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let value = self
            .root
            .get(name)
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        typed(name, value)
    }
}

/// Deserializes `value` as `T`, collecting every unknown key (not just the first).
pub fn typed<T: DeserializeOwned>(section: &str, value: Value) -> Result<T, ConfigError> {
    let mut unknown = Vec::new();
    let result =
        serde_ignored::deserialize(value, |path| unknown.push(format!("{section}.{path}")));
    let parsed = result.map_err(|e| ConfigError::Invalid {
        section: section.to_owned(),
        message: e.to_string(),
    })?;
    if unknown.is_empty() {
        Ok(parsed)
    } else {
        Err(ConfigError::UnknownKeys {
            section: section.to_owned(),
            keys: unknown,
        })
    }
}

/// The JSON form of HCL v1 wraps every block in a list (`"server": [{…}]`); a list holding a
/// single object is read as that object, recursively. Lists of several objects stay lists.
fn unwrap_blocks(value: Value) -> Value {
    match value {
        Value::Array(mut items) if items.len() == 1 && items[0].is_object() => {
            unwrap_blocks(items.remove(0))
        }
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_blocks).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, unwrap_blocks(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests;
