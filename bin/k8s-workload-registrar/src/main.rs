//! `k8s-workload-registrar`: parses `-config` (HCL, as SPIRE's registrar reads it) and runs the
//! registrar in CRD mode (spire-controller's `runtime`).

use std::path::Path;
use std::process::ExitCode;

use spire_controller::config::{
    LogFormat, RegistrarArgs, RegistrarConfig, SERVICE_ACCOUNT_NAMESPACE_FILE, own_namespace,
};

fn main() -> ExitCode {
    let args = match RegistrarArgs::try_parse_go(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            let code = u8::from(e.use_stderr()) * 2;
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let config = match RegistrarConfig::load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let format = match config.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    if let Err(e) = spire_cli::init_logging(
        config.log_level.as_str(),
        format,
        config.log_path.as_deref(),
    ) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    for key in &config.ignored_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = spire_cli::prepare_daemon("registrar");
        let kube = spire_controller::runtime::kube_client(args.kubeconfig.as_deref()).await?;
        let env = |name: &str| std::env::var(name).ok();
        let namespace = own_namespace(env, Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))?;
        spire_controller::runtime::run_registrar(config, kube, namespace, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "registrar stopped");
            ExitCode::FAILURE
        }
    }
}
