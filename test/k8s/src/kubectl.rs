//! [`Kubectl`]: the real `kubectl` binary pointed at a [`TestApiServer`], as a user runs it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::TestApiServer;

/// How long one kubectl command may take (a `delete` waits for the object to go).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// `kubectl` with a kubeconfig for one [`TestApiServer`] and a private cache directory
/// (discovery and OpenAPI), validation on as by default. Every command is printed with its
/// output, as a user would see it. Blocking: call it from a blocking thread when the
/// apiserver runs on the same runtime.
#[derive(Debug)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

/// What one kubectl command did.
#[derive(Debug)]
pub struct KubectlRun {
    /// Exit status 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

// === impl Kubectl ===

impl Kubectl {
    /// Why kubectl cannot be used here, if it cannot (`kubectl version --client` fails).
    pub fn unavailable() -> Option<String> {
        match Command::new("kubectl")
            .args(["version", "--client"])
            .output()
        {
            Ok(output) if output.status.success() => None,
            Ok(output) => Some(format!(
                "`kubectl version --client` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )),
            Err(e) => Some(format!("kubectl is not installed ({e})")),
        }
    }

    /// kubectl for `apiserver`, with its kubeconfig and cache in `dir`.
    pub fn new(apiserver: &TestApiServer, dir: &Path) -> Self {
        Self {
            kubeconfig: apiserver.kubeconfig(dir),
            cache: dir.join("kube-cache"),
        }
    }

    /// The kubeconfig it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl <args>` with `input` on stdin, printing `$ kubectl <args>` and the
    /// output; fails the test if it runs longer than two minutes.
    pub fn run(&self, args: &[&str], input: Option<&str>) -> KubectlRun {
        self.run_showing(args, input, true)
    }

    /// Runs `kubectl <args>`, which must succeed, printing the command but not its output
    /// (a rendering piped to the next command); its stdout.
    pub fn capture(&self, args: &[&str]) -> String {
        let run = self.run_showing(args, None, false);
        assert!(run.ok, "kubectl {args:?} failed: {}", run.stderr);
        run.stdout
    }

    fn run_showing(&self, args: &[&str], input: Option<&str>, show: bool) -> KubectlRun {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin
                .write_all(input.as_bytes())
                .expect("kubectl reads its input");
        }
        let (done, wait) = std::sync::mpsc::channel();
        let pid = child.id();
        let watchdog = std::thread::spawn(move || {
            if wait.recv_timeout(COMMAND_LIMIT).is_err() {
                // Still running: end it, so the test fails below rather than hangs.
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        });
        let output = child.wait_with_output().expect("kubectl runs");
        let _ = done.send(());
        let _ = watchdog.join();
        let run = KubectlRun {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if show {
            eprintln!("$ kubectl {}\n{}{}", args.join(" "), run.stdout, run.stderr);
        } else {
            eprintln!(
                "$ kubectl {}   # {} lines, piped on\n{}",
                args.join(" "),
                run.stdout.lines().count(),
                run.stderr
            );
        }
        assert!(
            output.status.code().is_some(),
            "kubectl {args:?} ran past {COMMAND_LIMIT:?} and was stopped"
        );
        run
    }

    /// [`run`](Self::run), which must succeed; its stdout.
    pub fn ok(&self, args: &[&str], input: Option<&str>) -> String {
        let run = self.run(args, input);
        assert!(run.ok, "kubectl {args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// [`run`](Self::run), which must fail; its stderr.
    pub fn fails(&self, args: &[&str], input: Option<&str>) -> String {
        let run = self.run(args, input);
        assert!(!run.ok, "kubectl {args:?} succeeded: {}", run.stdout);
        run.stderr
    }
}
