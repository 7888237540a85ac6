//! The driver's command line (Go `flag` syntax, spiffe-csi's flag names and defaults) and the
//! configuration it resolves to.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use clap::builder::{OsStringValueParser, TypedValueParser};

/// `-csi-socket-path` default: where the driver container mounts the kubelet's plugin
/// directory (`/var/lib/kubelet/plugins/<plugin name>`).
pub const DEFAULT_CSI_SOCKET_PATH: &str = "/spiffe-csi/csi.sock";
/// `-plugin-name` default: the CSIDriver object's name.
pub const DEFAULT_PLUGIN_NAME: &str = "csi.spiffe.io";
/// `-node-id-env` default: the variable a DaemonSet fills from `spec.nodeName`.
pub const DEFAULT_NODE_ID_ENV: &str = "MY_NODE_NAME";

/// Why the flags do not make a configuration. The messages are spiffe-csi's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither `-node-id` nor the `-node-id-env` variable gave a node ID.
    #[error("node ID is required")]
    NodeIdRequired,
    /// `-workload-api-socket-dir` is missing or empty.
    #[error("workload API socket directory is required")]
    WorkloadApiSocketDirRequired,
}

/// spiffe-csi-driver's command line.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "spiffe-csi-driver",
    version,
    about = "Provides the SPIRE agent's Workload API socket directory to pods as an ephemeral inline CSI volume"
)]
pub struct Args {
    /// Kubernetes node ID; when unset, it is read from the -node-id-env variable
    #[arg(
        long = "node-id",
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub node_id: String,
    /// Environment variable holding the node ID (overridden by -node-id)
    #[arg(long = "node-id-env", value_name = "string", default_value = DEFAULT_NODE_ID_ENV)]
    pub node_id_env: String,
    /// Path of the CSI socket the kubelet and the node-driver-registrar dial
    #[arg(
        long = "csi-socket-path",
        value_name = "string",
        default_value = DEFAULT_CSI_SOCKET_PATH,
        value_parser = path_value()
    )]
    pub csi_socket_path: PathBuf,
    /// Directory holding the Workload API socket, bind-mounted into every volume
    #[arg(
        long = "workload-api-socket-dir",
        value_name = "string",
        default_value = "",
        hide_default_value = true,
        value_parser = path_value()
    )]
    pub workload_api_socket_dir: PathBuf,
    /// CSI plugin name (the CSIDriver object's name)
    #[arg(long = "plugin-name", value_name = "string", default_value = DEFAULT_PLUGIN_NAME)]
    pub plugin_name: String,
}

/// A resolved, valid configuration: a node ID and a socket directory are always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    node_id: String,
    workload_api_socket_dir: PathBuf,
    csi_socket_path: PathBuf,
    plugin_name: String,
}

/// Paths as given, the empty one included (clap's own path parser refuses it; Go's flag
/// package takes it, and the checks below then answer in spiffe-csi's words).
fn path_value() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

// === impl Args ===

impl Args {
    /// Parses a full argv (program name first) written in Go `flag` syntax (`-node-id x`,
    /// `-node-id=x`, `--node-id x`).
    pub fn try_parse_go<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(spire_cli::normalize(args.into_iter().map(Into::into)))
    }

    /// Resolves the node ID (`-node-id`, else the `-node-id-env` variable read through
    /// `env`) and checks what spiffe-csi requires, in its order.
    pub fn into_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let node_id = if self.node_id.is_empty() {
            Some(self.node_id_env.as_str())
                .filter(|name| !name.is_empty())
                .and_then(env)
                .unwrap_or_default()
        } else {
            self.node_id
        };
        Config::new(
            node_id,
            self.workload_api_socket_dir,
            self.csi_socket_path,
            self.plugin_name,
        )
    }
}

// === impl Config ===

impl Config {
    /// A configuration; refuses an empty node ID first, then an empty socket directory.
    pub fn new(
        node_id: impl Into<String>,
        workload_api_socket_dir: impl Into<PathBuf>,
        csi_socket_path: impl Into<PathBuf>,
        plugin_name: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let node_id = node_id.into();
        let workload_api_socket_dir = workload_api_socket_dir.into();
        if node_id.is_empty() {
            return Err(ConfigError::NodeIdRequired);
        }
        if workload_api_socket_dir.as_os_str().is_empty() {
            return Err(ConfigError::WorkloadApiSocketDirRequired);
        }
        Ok(Self {
            node_id,
            workload_api_socket_dir,
            csi_socket_path: csi_socket_path.into(),
            plugin_name: plugin_name.into(),
        })
    }

    /// The node ID NodeGetInfo reports.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The directory every published volume shows (the agent's socket directory).
    pub fn workload_api_socket_dir(&self) -> &Path {
        &self.workload_api_socket_dir
    }

    /// Where the CSI socket is served.
    pub fn csi_socket_path(&self) -> &Path {
        &self.csi_socket_path
    }

    /// The plugin name GetPluginInfo reports.
    pub fn plugin_name(&self) -> &str {
        &self.plugin_name
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_go(std::iter::once("spiffe-csi-driver").chain(args.iter().copied()))
    }

    fn env_with(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |key| (key == name).then(|| value.to_owned())
    }

    #[test]
    fn defaults_are_spiffe_csis() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.csi_socket_path, Path::new("/spiffe-csi/csi.sock"));
        assert_eq!(args.plugin_name, "csi.spiffe.io");
        assert_eq!(args.node_id_env, "MY_NODE_NAME");
        assert_eq!(args.node_id, "");
        assert_eq!(args.workload_api_socket_dir, Path::new(""));
    }

    #[test]
    fn go_style_flags_resolve_to_a_config() {
        let args = parse(&[
            "-workload-api-socket-dir",
            "/spire-agent-socket",
            "-csi-socket-path=/csi/csi.sock",
            "--plugin-name",
            "csi.example.org",
            "-node-id",
            "node-a",
        ])
        .unwrap();
        let config = args.into_config(|_| None).unwrap();
        assert_eq!(config.node_id(), "node-a");
        assert_eq!(
            config.workload_api_socket_dir(),
            Path::new("/spire-agent-socket")
        );
        assert_eq!(config.csi_socket_path(), Path::new("/csi/csi.sock"));
        assert_eq!(config.plugin_name(), "csi.example.org");
    }

    #[test]
    fn node_id_comes_from_the_environment_unless_the_flag_overrides_it() {
        let args = parse(&["-workload-api-socket-dir", "/s"]).unwrap();
        let config = args
            .clone()
            .into_config(env_with("MY_NODE_NAME", "from-env"))
            .unwrap();
        assert_eq!(config.node_id(), "from-env");

        let custom = parse(&["-workload-api-socket-dir", "/s", "-node-id-env", "NODE"]).unwrap();
        let config = custom.into_config(env_with("NODE", "custom")).unwrap();
        assert_eq!(config.node_id(), "custom");

        let flagged = parse(&["-workload-api-socket-dir", "/s", "-node-id", "flag"]).unwrap();
        let config = flagged
            .into_config(env_with("MY_NODE_NAME", "from-env"))
            .unwrap();
        assert_eq!(config.node_id(), "flag");
    }

    #[test]
    fn missing_values_are_refused_node_id_first() {
        let none = parse(&[]).unwrap();
        assert_eq!(
            none.into_config(|_| None).unwrap_err().to_string(),
            "node ID is required"
        );
        let empty_env = parse(&["-workload-api-socket-dir", "/s"]).unwrap();
        assert_eq!(
            empty_env
                .into_config(env_with("MY_NODE_NAME", ""))
                .unwrap_err(),
            ConfigError::NodeIdRequired
        );
        let no_env_name = parse(&["-workload-api-socket-dir", "/s", "-node-id-env", ""]).unwrap();
        assert_eq!(
            no_env_name.into_config(|_| Some("x".into())).unwrap_err(),
            ConfigError::NodeIdRequired
        );
        let no_dir = parse(&["-node-id", "n"]).unwrap();
        assert_eq!(
            no_dir.into_config(|_| None).unwrap_err().to_string(),
            "workload API socket directory is required"
        );
    }
}
