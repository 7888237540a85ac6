//! Which namespace the controller runs in: the downward-API variable if the pod sets it, else
//! the service-account namespace file every pod gets.

use std::path::Path;

use super::ConfigError;

/// The downward-API variable the registrar's manifests set (`fieldRef: metadata.namespace`).
pub const POD_NAMESPACE_ENV: &str = "MY_POD_NAMESPACE";

/// The namespace file mounted into every pod with a service-account token.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Our own namespace: `MY_POD_NAMESPACE` when it is set (even to the empty string, as upstream
/// does), else the contents of `namespace_file` (normally [`SERVICE_ACCOUNT_NAMESPACE_FILE`])
/// with surrounding whitespace removed.
pub fn own_namespace(
    env: impl Fn(&str) -> Option<String>,
    namespace_file: &Path,
) -> Result<String, ConfigError> {
    if let Some(namespace) = env(POD_NAMESPACE_ENV) {
        return Ok(namespace);
    }
    std::fs::read_to_string(namespace_file)
        .map(|content| content.trim().to_owned())
        .map_err(|source| ConfigError::OwnNamespace { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_variable_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        std::fs::write(&file, "from-file").unwrap();
        let env = |k: &str| (k == POD_NAMESPACE_ENV).then(|| "spire".to_owned());
        assert_eq!(own_namespace(env, &file).unwrap(), "spire");
        assert_eq!(own_namespace(|_| None, &file).unwrap(), "from-file");
    }

    #[test]
    fn the_file_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        std::fs::write(&file, "spire-system\n").unwrap();
        assert_eq!(own_namespace(|_| None, &file).unwrap(), "spire-system");
    }

    #[test]
    fn neither_source_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let err = own_namespace(|_| None, &dir.path().join("absent")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "unable to get MY_POD_NAMESPACE; ensure downward API is configured for this pod: "
            ),
            "{text}"
        );
    }
}
