use std::path::Path;

use base64::Engine as _;

use super::kubeconfig::parse;
use super::*;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn token(config: &ClientConfig) -> Option<String> {
    match &config.token {
        None => None,
        Some(TokenConfig::Static(t)) => Some(format!("static:{t}")),
        Some(TokenConfig::File { path, initial }) => {
            Some(format!("file:{}:{initial}", path.display()))
        }
    }
}

fn ca(config: &ClientConfig) -> Option<&[u8]> {
    match &config.verify {
        Verify::Roots(pem) => Some(pem),
        _ => None,
    }
}

fn config_error(text: &str) -> String {
    match parse(text, Path::new("/nowhere")) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => {
            assert!(error.is_config(), "{error}");
            error.to_string()
        }
    }
}

const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: other
  cluster:
    server: https://other:6443
- name: kind
  cluster:
    server: https://127.0.0.1:39191
    certificate-authority-data: Q0EtUEVN
    tls-server-name: kubernetes.default
contexts:
- name: other
  context: {cluster: other, user: other}
- name: kind-kind
  context:
    cluster: kind
    user: admin
    namespace: spire
current-context: kind-kind
users:
- name: other
  user:
    token: other-token
- name: admin
  user:
    token: "  admin-token  "
"#;

#[test]
fn the_current_context_picks_cluster_and_user() {
    let config = parse(TWO_CONTEXTS, Path::new("/nowhere")).unwrap();
    assert_eq!(config.server(), "https://127.0.0.1:39191");
    assert_eq!(ca(&config), Some(&b"CA-PEM"[..]));
    assert_eq!(config.tls_server_name(), Some("kubernetes.default"));
    assert_eq!(token(&config).as_deref(), Some("static:admin-token"));
    assert!(config.client_cert().is_none());
}

#[test]
fn relative_paths_resolve_against_the_kubeconfig_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pki")).unwrap();
    std::fs::write(dir.path().join("pki/ca.crt"), "CA FILE").unwrap();
    std::fs::write(dir.path().join("pki/client.crt"), "CERT FILE").unwrap();
    std::fs::write(dir.path().join("pki/client.key"), "KEY FILE").unwrap();
    std::fs::write(dir.path().join("token"), "file-token\n").unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        r#"
clusters:
- name: c
  cluster:
    server: 10.0.0.1:6443
    certificate-authority: pki/ca.crt
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
users:
- name: u
  user:
    tokenFile: token
    client-certificate: pki/client.crt
    client-key: pki/client.key
"#,
    )
    .unwrap();
    let config = ClientConfig::from_kubeconfig(&path).unwrap();
    assert_eq!(
        config.server(),
        "https://10.0.0.1:6443",
        "https is the default"
    );
    assert_eq!(ca(&config), Some(&b"CA FILE"[..]));
    assert_eq!(
        config.client_cert(),
        Some((&b"CERT FILE"[..], &b"KEY FILE"[..]))
    );
    assert_eq!(
        token(&config).unwrap(),
        format!("file:{}:file-token", dir.path().join("token").display())
    );
    // `load` with a path is the kubeconfig.
    let loaded = ClientConfig::load(Some(&path)).unwrap();
    assert_eq!(loaded.server(), config.server());
}

#[test]
fn inline_data_wins_over_files_and_tokens_over_token_files() {
    let text = format!(
        r#"
clusters:
- name: c
  cluster:
    server: https://h
    certificate-authority: /does/not/exist
    certificate-authority-data: {ca}
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
users:
- name: u
  user:
    token: inline
    tokenFile: /does/not/exist
    client-certificate: /does/not/exist
    client-certificate-data: {cert}
    client-key: /does/not/exist
    client-key-data: {key}
"#,
        ca = b64(b"CA"),
        cert = b64(b"CERT"),
        key = b64(b"KEY"),
    );
    let config = parse(&text, Path::new("/nowhere")).unwrap();
    assert_eq!(ca(&config), Some(&b"CA"[..]));
    assert_eq!(config.client_cert(), Some((&b"CERT"[..], &b"KEY"[..])));
    assert_eq!(token(&config).as_deref(), Some("static:inline"));
}

#[test]
fn insecure_skip_tls_verify_and_a_user_less_context() {
    let config = parse(
        "clusters: [{name: c, cluster: {server: 'https://h', insecure-skip-tls-verify: true}}]\n\
         contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\nusers: null\n",
        Path::new("/"),
    )
    .unwrap();
    assert!(matches!(config.verify, Verify::Skip));
    assert!(token(&config).is_none());
    let error = config_error(&format!(
        "clusters: [{{name: c, cluster: {{server: 'https://h', insecure-skip-tls-verify: true, \
         certificate-authority-data: {}}}}}]\ncontexts: [{{name: x, context: {{cluster: c}}}}]\n\
         current-context: x\n",
        b64(b"CA")
    ));
    assert!(error.contains("cannot both be set"), "{error}");
}

#[test]
fn exec_and_auth_provider_users_are_refused_by_name() {
    let with_user = |user: &str| {
        format!(
            "clusters: [{{name: c, cluster: {{server: 'https://h'}}}}]\n\
             contexts: [{{name: x, context: {{cluster: c, user: eks}}}}]\ncurrent-context: x\n\
             users:\n- name: eks\n  user:\n{user}"
        )
    };
    let error = config_error(&with_user(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n",
    ));
    assert_eq!(
        error,
        r#"user "eks" uses an exec credential plugin ("aws"), which is not supported: use token, tokenFile or a client certificate"#
    );
    let error = config_error(&with_user(
        "    auth-provider:\n      name: gcp\n      config: {cmd-path: gcloud}\n",
    ));
    assert!(
        error.contains(r#"user "eks" uses the auth-provider "gcp""#),
        "{error}"
    );
    let error = config_error(&with_user("    username: admin\n    password: x\n"));
    assert!(error.contains("basic authentication"), "{error}");
}

#[test]
fn broken_kubeconfigs_say_what_is_missing() {
    let cases = [
        ("", "no current-context is set"),
        ("current-context: ''\n", "no current-context is set"),
        ("current-context: a\n", r#"context "a" not found"#),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n",
            r#"cluster "c" of context "a" not found"#,
        ),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n\
             clusters: [{name: c, cluster: {server: 'https://h'}}]\n",
            r#"user "u" of context "a" not found"#,
        ),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n\
             clusters: [{name: c, cluster: {}}]\n",
            r#"cluster "c" has no server"#,
        ),
        (
            "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n\
             clusters: [{name: c, cluster: {server: h, certificate-authority-data: '!!'}}]\n",
            "certificate-authority-data is not valid base64",
        ),
        ("current-context: [unclosed\n", "invalid YAML"),
    ];
    for (text, expected) in cases {
        let error = config_error(text);
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    let error = config_error(&format!(
        "current-context: a\ncontexts: [{{name: a, context: {{cluster: c, user: u}}}}]\n\
         clusters: [{{name: c, cluster: {{server: h}}}}]\n\
         users: [{{name: u, user: {{client-certificate-data: {}}}}}]\n",
        b64(b"C")
    ));
    assert_eq!(
        error,
        r#"user "u" has a client certificate but no client key"#
    );
}

#[test]
fn kubeconfig_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = ClientConfig::from_kubeconfig(&missing).unwrap_err();
    assert!(matches!(
        error,
        Error::File {
            what: "kubeconfig",
            ..
        }
    ));
    assert!(error.to_string().starts_with("unable to read kubeconfig "));
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, "current-context: a\n").unwrap();
    let error = ClientConfig::from_kubeconfig(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(r#"kubeconfig {}: context "a" not found"#, path.display())
    );
    // A token file that cannot be read fails the load.
    std::fs::write(
        &path,
        "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n\
         clusters: [{name: c, cluster: {server: h}}]\nusers: [{name: u, user: {tokenFile: nope}}]\n",
    )
    .unwrap();
    let error = ClientConfig::from_kubeconfig(&path).unwrap_err();
    assert!(
        matches!(
            error,
            Error::File {
                what: "token file",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn in_cluster_reads_the_environment_and_the_service_account_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "sa-token\n").unwrap();
    std::fs::write(dir.path().join("ca.crt"), "CLUSTER CA").unwrap();
    let env = |host: &'static str| {
        move |name: &str| match name {
            "KUBERNETES_SERVICE_HOST" => Some(host.to_owned()),
            "KUBERNETES_SERVICE_PORT" => Some("443".to_owned()),
            _ => None,
        }
    };
    let config = ClientConfig::in_cluster_from(env("10.96.0.1"), dir.path()).unwrap();
    assert_eq!(config.server(), "https://10.96.0.1:443");
    assert_eq!(ca(&config), Some(&b"CLUSTER CA"[..]));
    assert_eq!(
        token(&config).unwrap(),
        format!("file:{}:sa-token", dir.path().join("token").display())
    );
    let config = ClientConfig::in_cluster_from(env("fd00::1"), dir.path()).unwrap();
    assert_eq!(config.server(), "https://[fd00::1]:443");

    let error = ClientConfig::in_cluster_from(|_| None, dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("KUBERNETES_SERVICE_HOST"),
        "{error}"
    );
    std::fs::write(dir.path().join("token"), " \n").unwrap();
    let error = ClientConfig::in_cluster_from(env("10.96.0.1"), dir.path()).unwrap_err();
    assert!(error.to_string().ends_with("is empty"), "{error}");
    let error =
        ClientConfig::in_cluster_from(env("10.96.0.1"), Path::new("/nonexistent/sa")).unwrap_err();
    assert!(matches!(error, Error::File { .. }), "{error}");
}

#[test]
fn debug_output_redacts_tokens() {
    let config = ClientConfig::new("https://h").with_token("super-secret");
    let text = format!("{config:?}");
    assert!(!text.contains("super-secret"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn token_files_are_reread_after_the_refresh_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "one").unwrap();
    let bearer = ClientConfig::new("https://h")
        .with_token_file(&path)
        .unwrap()
        .bearer()
        .unwrap();
    let header = || async { bearer.header().await.unwrap().unwrap() };
    assert_eq!(header().await, "Bearer one");
    std::fs::write(&path, "two\n").unwrap();
    assert_eq!(header().await, "Bearer one", "cached within the interval");
    tokio::time::advance(TOKEN_FILE_REFRESH).await;
    assert_eq!(header().await, "Bearer two");
    // A file that vanished keeps the last good token.
    std::fs::remove_file(&path).unwrap();
    tokio::time::advance(TOKEN_FILE_REFRESH).await;
    assert_eq!(header().await, "Bearer two");
    std::fs::write(&path, "three").unwrap();
    tokio::time::advance(TOKEN_FILE_REFRESH).await;
    assert_eq!(header().await, "Bearer three");
}
