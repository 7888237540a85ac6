//! `k8s-workload-registrar`: parses `-config` (HCL, as SPIRE's registrar reads it) and runs the
//! registrar in CRD mode (spire-controller's `runtime`).

use std::path::Path;
use std::process::ExitCode;

use spire_controller::config::{
    RegistrarArgs, RegistrarConfig, SERVICE_ACCOUNT_NAMESPACE_FILE, own_namespace,
};
use spire_controller::runtime::{Logging, daemon_main, kube_client, run_registrar};

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
    let log_path = config.log_path.clone();
    let (ignored_keys, warnings) = (config.ignored_keys.clone(), config.warnings.clone());
    let logging = Logging {
        level: config.log_level.as_str(),
        format: config.log_format.as_str(),
        file: log_path.as_deref(),
        ignored_keys: &ignored_keys,
        warnings: &warnings,
    };
    daemon_main("registrar", logging, |shutdown| async move {
        let kube = kube_client(args.kubeconfig.as_deref()).await?;
        let env = |name: &str| std::env::var(name).ok();
        let namespace = own_namespace(env, Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))?;
        run_registrar(config, kube, namespace, shutdown).await
    })
}
