//! `spiffe-csi-driver`: parses the flags, starts logging and runs the driver (`spiffe-csi`)
//! until SIGTERM or SIGINT.

use std::process::ExitCode;

use spiffe_csi::Args;
use spire_task::Shutdown;

fn main() -> ExitCode {
    let args = match Args::try_parse_go(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            // Help and --version exit 0, bad flags 2 (as Go's flag package does).
            let code = u8::from(e.use_stderr()) * 2;
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(e) = spire_cli::init_logging("info", "text", None) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let config = match args.into_config(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "Failed to create driver");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "Failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = Shutdown::new();
        let trigger = stop.clone();
        // Not supervised: it only triggers the signal the driver stops on.
        tokio::spawn(async move {
            tokio::select! {
                // SIGTERM (the kubelet stopping the pod) or SIGINT.
                () = spire_cli::wait_for_signal() => tracing::info!("Stopping"),
                // The driver stopped by itself (it failed): nothing left to do.
                () = trigger.stopped() => return,
            }
            trigger.trigger();
        });
        spiffe_csi::run(config, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Failed to serve");
            ExitCode::FAILURE
        }
    }
}
