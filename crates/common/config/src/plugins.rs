//! The `plugins { Type "name" { plugin_data { … } } }` section, shape-checked but with
//! `plugin_data` left as a tree: each plugin parses its own data.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de::LenientBool;
use crate::{ConfigError, typed};

/// One configured plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginBlock {
    /// The plugin type, e.g. `KeyManager`.
    pub plugin_type: String,
    /// The plugin name, e.g. `disk`.
    pub name: String,
    /// `plugin_data`, an object (empty when absent).
    pub plugin_data: Value,
    /// `plugin_data_file`, read instead of `plugin_data`.
    pub plugin_data_file: Option<String>,
    /// `plugin_cmd`: an external plugin binary (not supported; built-ins only).
    pub plugin_cmd: Option<String>,
    /// `plugin_checksum` of the external binary.
    pub plugin_checksum: Option<String>,
    /// `enabled` (default true).
    pub enabled: bool,
}

/// Every plugin of the `plugins` section, in file order per type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plugins {
    blocks: Vec<PluginBlock>,
}

#[derive(Deserialize)]
struct RawBlock {
    plugin_data: Option<Value>,
    plugin_data_file: Option<String>,
    plugin_cmd: Option<String>,
    plugin_checksum: Option<String>,
    enabled: Option<LenientBool>,
}

// === impl Plugins ===

impl Plugins {
    /// Reads the section; `known_types` are the plugin types this binary has.
    pub fn parse(section: Option<&Value>, known_types: &[&str]) -> Result<Self, ConfigError> {
        let mut blocks = Vec::new();
        let Some(section) = section else {
            return Ok(Self { blocks });
        };
        for (plugin_type, by_name) in merged_objects("plugins", section)? {
            if !known_types.contains(&plugin_type.as_str()) {
                return Err(ConfigError::Invalid {
                    section: "plugins".into(),
                    message: format!("unknown plugin type {plugin_type:?}"),
                });
            }
            let context = format!("plugins.{plugin_type}");
            for (name, body) in merged_objects(&context, &by_name)? {
                if blocks
                    .iter()
                    .any(|b: &PluginBlock| b.plugin_type == plugin_type && b.name == name)
                    || body.is_array()
                {
                    return Err(ConfigError::Invalid {
                        section: "plugins".into(),
                        message: format!(
                            "plugin {plugin_type} {name:?} is configured more than once"
                        ),
                    });
                }
                let raw: RawBlock = typed(&format!("{context}.{name}"), body)?;
                if raw.plugin_data.is_some() && raw.plugin_data_file.is_some() {
                    return Err(ConfigError::Invalid {
                        section: format!("{context}.{name}"),
                        message: "plugin_data and plugin_data_file are mutually exclusive".into(),
                    });
                }
                let plugin_data = match raw.plugin_data {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(data @ Value::Object(_)) => data,
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            section: format!("{context}.{name}"),
                            message: "plugin_data must be a block or an object".into(),
                        });
                    }
                };
                blocks.push(PluginBlock {
                    plugin_type: plugin_type.clone(),
                    name,
                    plugin_data,
                    plugin_data_file: raw.plugin_data_file,
                    plugin_cmd: raw.plugin_cmd,
                    plugin_checksum: raw.plugin_checksum,
                    enabled: raw.enabled.is_none_or(|e| e.0),
                });
            }
        }
        Ok(Self { blocks })
    }

    /// The enabled plugins of one type.
    pub fn of_type(&self, plugin_type: &str) -> impl Iterator<Item = &PluginBlock> {
        let plugin_type = plugin_type.to_owned();
        self.blocks
            .iter()
            .filter(move |b| b.enabled && b.plugin_type == plugin_type)
    }

    /// Every configured plugin.
    pub fn all(&self) -> &[PluginBlock] {
        &self.blocks
    }
}

/// An object, or a list of objects (JSON form) merged into one.
fn merged_objects(context: &str, value: &Value) -> Result<Vec<(String, Value)>, ConfigError> {
    let not_object = || ConfigError::Invalid {
        section: context.to_owned(),
        message: "expected a block".into(),
    };
    match value {
        Value::Object(map) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Array(items) => {
            let mut merged = Vec::new();
            for item in items {
                let Value::Object(map) = item else {
                    return Err(not_object());
                };
                merged.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Ok(merged)
        }
        _ => Err(not_object()),
    }
}
