//! `spire-controller-manager`: parses the command line and the ControllerManagerConfig file and
//! runs the controller (spire-controller's `runtime`).

use std::path::Path;
use std::process::ExitCode;

use spire_controller::config::{
    ManagerArgs, ManagerConfig, SERVICE_ACCOUNT_NAMESPACE_FILE, own_namespace,
};
use spire_controller::runtime::{Logging, daemon_main, kube_client, run_manager};

fn main() -> ExitCode {
    let args = match ManagerArgs::try_parse_go(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            let code = u8::from(e.use_stderr()) * 2;
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let config = match ManagerConfig::load(&args, env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: unable to load the configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (ignored_keys, warnings) = (config.ignored_keys.clone(), config.warnings.clone());
    let logging = Logging {
        level: config.log_level.as_str(),
        format: config.log_format.as_str(),
        file: None,
        ignored_keys: &ignored_keys,
        warnings: &warnings,
    };
    daemon_main("controller manager", logging, |shutdown| async move {
        let kube = kube_client(args.kubeconfig.as_deref()).await?;
        // Outside a pod (no service account), leases and the webhook default to spire-system.
        let namespace = own_namespace(env, Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE))
            .unwrap_or_else(|_| "spire-system".to_owned());
        run_manager(config, kube, namespace, shutdown).await
    })
}
