//! The `plugins { Type "name" { plugin_data { … } } }` section, shape-checked but with
//! `plugin_data` left as a tree: each plugin parses its own data. A binary's [`CatalogSpec`]
//! says which types and built-ins it has and how many of each type it needs; checking a
//! configuration against it gives SPIRE's catalog errors.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de::LenientBool;
use crate::{ConfigError, Refusal, refuse, typed};

/// One configured plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginBlock {
    /// The plugin type, e.g. `KeyManager`.
    pub plugin_type: String,
    /// The plugin name, e.g. `disk`.
    pub name: String,
    /// `plugin_data`, an object (empty when absent).
    pub plugin_data: Value,
    /// `plugin_data_file`, which SPIRE reads instead of `plugin_data` (refused by
    /// [`CatalogSpec::load`]).
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
                return Err(ConfigError::Catalog(format!(
                    "unsupported plugin type {plugin_type:?}"
                )));
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

/// How many enabled plugins of one type a binary needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// Exactly one (e.g. `DataStore`, `KeyManager`).
    ExactlyOne,
    /// One or more (e.g. the server's `NodeAttestor`).
    AtLeastOne,
    /// None or one (e.g. `UpstreamAuthority`).
    AtMostOne,
    /// Any number.
    Any,
}

/// One binary's plugin catalog: its plugin types with their constraints, and the built-in
/// plugins it has, as (type, name).
#[derive(Clone, Copy, Debug)]
pub struct CatalogSpec {
    /// Every plugin type and how many of it must be configured.
    pub types: &'static [(&'static str, Constraint)],
    /// Every built-in plugin, as (type, name).
    pub built_ins: &'static [(&'static str, &'static str)],
}

// === impl CatalogSpec ===

impl CatalogSpec {
    /// The type names, for [`Plugins::parse`].
    pub fn type_names(&self) -> Vec<&'static str> {
        self.types.iter().map(|(t, _)| *t).collect()
    }

    /// Parses the `plugins` section and checks it against the catalog, with SPIRE's catalog
    /// errors: `unsupported plugin type "T"`, `no built-in plugin "N" for type "T"` and
    /// `plugin type "T" constraint not satisfied: expected exactly 1 but got N`. External
    /// plugins (`plugin_cmd`) are refused by name: spire-rs has built-ins only.
    pub fn load(&self, section: Option<&Value>) -> Result<Plugins, ConfigError> {
        let plugins = Plugins::parse(section, &self.type_names())?;
        for block in plugins.blocks.iter().filter(|b| b.enabled) {
            let built_in = self
                .built_ins
                .iter()
                .any(|(t, n)| *t == block.plugin_type && *n == block.name);
            if built_in && block.plugin_cmd.is_none() {
                continue;
            }
            return Err(ConfigError::Catalog(match &block.plugin_cmd {
                Some(cmd) => format!(
                    "plugin {:?} of type {:?}: external plugins are not supported by spire-rs \
                     (plugin_cmd {cmd:?}); remove plugin_cmd to use a built-in",
                    block.name, block.plugin_type
                ),
                None => format!(
                    "no built-in plugin {:?} for type {:?}",
                    block.name, block.plugin_type
                ),
            }));
        }
        let data_files: Vec<Refusal> = plugins
            .blocks
            .iter()
            .filter(|b| b.enabled && b.plugin_data_file.is_some())
            .map(|b| {
                Refusal::new(
                    format!("plugins.{}.{}.plugin_data_file", b.plugin_type, b.name),
                    "write the data in plugin_data instead (no plugin data file is read, nor reloaded on \
                     SIGUSR1)",
                )
            })
            .collect();
        refuse(data_files)?;
        for (plugin_type, constraint) in self.types {
            let got = plugins.of_type(plugin_type).count();
            let expected = match constraint {
                Constraint::ExactlyOne if got != 1 => "exactly 1",
                Constraint::AtLeastOne if got == 0 => "at least 1",
                Constraint::AtMostOne if got > 1 => "at most 1",
                _ => continue,
            };
            return Err(ConfigError::Catalog(format!(
                "plugin type {plugin_type:?} constraint not satisfied: expected {expected} but got {got}"
            )));
        }
        Ok(plugins)
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
