//! The two binaries' flags, in Go `flag` syntax: `-config x`, `-config=x`, `--config x` and
//! `--config=x` all work (single-dash long flags go through `spire_cli::normalize`), and a
//! boolean flag takes no separate value (`-expand-env`, `-expand-env=false`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser};
use spire_cli::go_bool;

use super::LogLevel;

/// spire-controller-manager's command line: its own three flags, controller-runtime's zap
/// flags and client-go's `-kubeconfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(
    name = "spire-controller-manager",
    about = "Registers Kubernetes workloads with SPIRE"
)]
pub struct ManagerArgs {
    /// Load the configuration from this ControllerManagerConfig YAML file (without it, only
    /// defaults apply, and the required trustDomain and clusterName are missing)
    #[arg(long = "config", value_name = "string")]
    pub config: Option<PathBuf>,
    /// Expand $VAR and ${VAR} in the configuration file before parsing it
    #[arg(
        long = "expand-env",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = go_bool
    )]
    pub expand_env: bool,
    /// Path of the SPIRE Server API socket (deprecated: set spireServerSocketPath in the file)
    #[arg(long = "spire-api-socket", value_name = "string")]
    pub spire_api_socket: Option<PathBuf>,
    /// Kubeconfig to use when running outside a cluster
    #[arg(long = "kubeconfig", value_name = "string")]
    pub kubeconfig: Option<PathBuf>,
    /// controller-runtime's logging flags.
    #[command(flatten)]
    pub zap: ZapArgs,
}

/// controller-runtime's `--zap-*` flags. The level and encoder map onto our logger; the
/// stacktrace level and time encoding are validated and otherwise have no effect (tracing
/// records no stack traces and formats its own timestamps).
#[derive(Clone, Debug, Default, PartialEq, Eq, Args)]
pub struct ZapArgs {
    /// Development defaults (console encoding, debug level) instead of production ones (JSON,
    /// info)
    #[arg(
        long = "zap-devel",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = go_bool
    )]
    pub devel: Option<bool>,
    /// Log encoding: 'json' or 'console'
    #[arg(long = "zap-encoder", value_name = "encoder", value_parser = parse_encoder)]
    pub encoder: Option<ZapEncoder>,
    /// Log level: 'debug', 'info', 'warn', 'error', 'dpanic', 'panic', 'fatal', or an integer
    /// above 0 for ever more verbose debug levels
    #[arg(
        long = "zap-log-level",
        value_name = "level",
        allow_negative_numbers = true,
        value_parser = parse_log_level
    )]
    pub log_level: Option<LogLevel>,
    /// Level from which stack traces are captured: 'info', 'error' or 'panic' (accepted, unused)
    #[arg(
        long = "zap-stacktrace-level",
        value_name = "level",
        value_parser = parse_stacktrace_level
    )]
    pub stacktrace_level: Option<String>,
    /// Time encoding: 'epoch', 'millis', 'nano', 'iso8601', 'rfc3339' or 'rfc3339nano'
    /// (accepted, unused)
    #[arg(
        long = "zap-time-encoding",
        value_name = "time-encoding",
        value_parser = parse_time_encoding
    )]
    pub time_encoding: Option<String>,
}

/// `--zap-encoder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZapEncoder {
    /// `json`.
    Json,
    /// `console`.
    Console,
}

/// The legacy k8s-workload-registrar's command line.
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(
    name = "k8s-workload-registrar",
    about = "Registers Kubernetes workloads with SPIRE (legacy)"
)]
pub struct RegistrarArgs {
    /// Configuration file
    #[arg(long = "config", value_name = "string", default_value = RegistrarArgs::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Kubeconfig to use when running outside a cluster
    #[arg(long = "kubeconfig", value_name = "string")]
    pub kubeconfig: Option<PathBuf>,
}

// === impl ManagerArgs ===

impl ManagerArgs {
    /// Parses a full argv (program name first) written in Go `flag` syntax.
    pub fn try_parse_go<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(spire_cli::normalize(args.into_iter().map(Into::into)))
    }
}

// === impl RegistrarArgs ===

impl RegistrarArgs {
    /// The `-config` default: a file in the working directory.
    pub const DEFAULT_CONFIG: &'static str = "k8s-workload-registrar.conf";

    /// Parses a full argv (program name first) written in Go `flag` syntax.
    pub fn try_parse_go<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::try_parse_from(spire_cli::normalize(args.into_iter().map(Into::into)))
    }
}

fn parse_encoder(s: &str) -> Result<ZapEncoder, String> {
    match s.to_ascii_lowercase().as_str() {
        "json" => Ok(ZapEncoder::Json),
        "console" => Ok(ZapEncoder::Console),
        _ => Err(format!("invalid encoder value {s:?}")),
    }
}

/// zap's level names, or a positive integer `n` meaning zap level `-n` (1 = debug, more =
/// more verbose, which only `trace` can express).
fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    if let Some(level) = zap_level_name(s) {
        return Ok(level);
    }
    match s.parse::<i64>() {
        Ok(1) => Ok(LogLevel::Debug),
        Ok(n) if n > 1 => Ok(LogLevel::Trace),
        _ => Err(format!("invalid log level {s:?}")),
    }
}

fn parse_stacktrace_level(s: &str) -> Result<String, String> {
    match s.to_ascii_lowercase().as_str() {
        "info" | "error" | "panic" => Ok(s.to_ascii_lowercase()),
        _ => Err(format!("invalid stacktrace level {s:?}")),
    }
}

fn parse_time_encoding(s: &str) -> Result<String, String> {
    match s.to_ascii_lowercase().as_str() {
        "epoch" | "millis" | "nano" | "iso8601" | "rfc3339" | "rfc3339nano" => {
            Ok(s.to_ascii_lowercase())
        }
        _ => Err(format!("invalid time-encoding value {s:?}")),
    }
}

/// zap's level names (`zapcore.ParseLevel`, either case); panic and fatal levels map to error.
pub(crate) fn zap_level_name(s: &str) -> Option<LogLevel> {
    Some(match s.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" | "dpanic" | "panic" | "fatal" => LogLevel::Error,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(args: &[&str]) -> Result<ManagerArgs, clap::Error> {
        ManagerArgs::try_parse_go(
            std::iter::once("spire-controller-manager").chain(args.iter().copied()),
        )
    }

    #[test]
    fn istio_and_helm_spellings_of_config_parse() {
        let expected = Some(PathBuf::from("spire-controller-manager-config.yaml"));
        for args in [
            &["--config=spire-controller-manager-config.yaml"][..],
            &["-config=spire-controller-manager-config.yaml"],
            &["-config", "spire-controller-manager-config.yaml"],
            &["--config", "spire-controller-manager-config.yaml"],
        ] {
            assert_eq!(manager(args).unwrap().config, expected, "{args:?}");
        }
    }

    #[test]
    fn defaults_without_flags() {
        let args = manager(&[]).unwrap();
        assert_eq!(args, ManagerArgs::default());
        assert!(!args.expand_env);
    }

    #[test]
    fn expand_env_is_a_go_boolean_flag() {
        assert!(manager(&["-expand-env"]).unwrap().expand_env);
        assert!(manager(&["--expand-env=true"]).unwrap().expand_env);
        assert!(manager(&["-expand-env=1"]).unwrap().expand_env);
        assert!(!manager(&["--expand-env=false"]).unwrap().expand_env);
        assert!(manager(&["--expand-env=maybe"]).is_err());
    }

    #[test]
    fn deprecated_socket_flag_and_kubeconfig_are_accepted() {
        let args = manager(&["-spire-api-socket", "/run/api.sock", "-kubeconfig=/k"]).unwrap();
        assert_eq!(args.spire_api_socket, Some(PathBuf::from("/run/api.sock")));
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/k")));
    }

    #[test]
    fn zap_flags_parse_and_map() {
        let args = manager(&[
            "--zap-devel=false",
            "-zap-encoder=json",
            "--zap-log-level",
            "error",
            "--zap-stacktrace-level=panic",
            "--zap-time-encoding=rfc3339",
        ])
        .unwrap();
        assert_eq!(
            args.zap,
            ZapArgs {
                devel: Some(false),
                encoder: Some(ZapEncoder::Json),
                log_level: Some(LogLevel::Error),
                stacktrace_level: Some("panic".into()),
                time_encoding: Some("rfc3339".into()),
            }
        );
        assert_eq!(manager(&["--zap-devel"]).unwrap().zap.devel, Some(true));
    }

    #[test]
    fn zap_numeric_levels_are_debug_verbosities() {
        let level = |v: &str| manager(&["--zap-log-level", v]).map(|a| a.zap.log_level);
        assert_eq!(level("1").unwrap(), Some(LogLevel::Debug));
        assert_eq!(level("5").unwrap(), Some(LogLevel::Trace));
        assert_eq!(level("DEBUG").unwrap(), Some(LogLevel::Debug));
        assert_eq!(level("warn").unwrap(), Some(LogLevel::Warn));
        assert_eq!(level("fatal").unwrap(), Some(LogLevel::Error));
        for bad in ["0", "-1", "loud"] {
            let err = level(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("invalid log level \"{bad}\"")),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_zap_values_use_controller_runtime_wording() {
        let err = manager(&["--zap-encoder=xml"]).unwrap_err().to_string();
        assert!(err.contains("invalid encoder value \"xml\""), "{err}");
        let err = manager(&["--zap-stacktrace-level=debug"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid stacktrace level \"debug\""), "{err}");
        let err = manager(&["--zap-time-encoding=unix"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid time-encoding value \"unix\""),
            "{err}"
        );
    }

    #[test]
    fn registrar_config_defaults_and_go_spellings() {
        let parse = |args: &[&str]| {
            RegistrarArgs::try_parse_go(
                std::iter::once("k8s-workload-registrar").chain(args.iter().copied()),
            )
            .unwrap()
        };
        assert_eq!(
            parse(&[]).config,
            PathBuf::from("k8s-workload-registrar.conf")
        );
        // The 2022 Istio StatefulSet passes `-config <path>` as two arguments.
        assert_eq!(
            parse(&["-config", "/run/spire/config/k8s-workload-registrar.conf"]).config,
            PathBuf::from("/run/spire/config/k8s-workload-registrar.conf")
        );
        assert_eq!(parse(&["--config=x.conf"]).config, PathBuf::from("x.conf"));
    }
}
