//! The kubeconfig file (YAML): only the current context, and only the keys we support.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::{ClientConfig, TokenConfig, read_file, read_token_file};
use crate::Error;
use crate::transport::Verify;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kubeconfig {
    #[serde(rename = "current-context", deserialize_with = "nullable")]
    current_context: String,
    #[serde(deserialize_with = "nullable")]
    clusters: Vec<NamedCluster>,
    #[serde(deserialize_with = "nullable")]
    contexts: Vec<NamedContext>,
    #[serde(deserialize_with = "nullable")]
    users: Vec<NamedUser>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedCluster {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    cluster: Cluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    #[serde(deserialize_with = "nullable")]
    server: String,
    #[serde(deserialize_with = "nullable")]
    certificate_authority: String,
    #[serde(deserialize_with = "nullable")]
    certificate_authority_data: String,
    #[serde(deserialize_with = "nullable")]
    insecure_skip_tls_verify: bool,
    #[serde(deserialize_with = "nullable")]
    tls_server_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedContext {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    context: Context,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    #[serde(deserialize_with = "nullable")]
    cluster: String,
    #[serde(deserialize_with = "nullable")]
    user: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamedUser {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    user: User,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    #[serde(deserialize_with = "nullable")]
    token: String,
    #[serde(rename = "tokenFile", deserialize_with = "nullable")]
    token_file: String,
    #[serde(rename = "client-certificate", deserialize_with = "nullable")]
    client_certificate: String,
    #[serde(rename = "client-certificate-data", deserialize_with = "nullable")]
    client_certificate_data: String,
    #[serde(rename = "client-key", deserialize_with = "nullable")]
    client_key: String,
    #[serde(rename = "client-key-data", deserialize_with = "nullable")]
    client_key_data: String,
    #[serde(deserialize_with = "nullable")]
    username: String,
    exec: Option<Exec>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<AuthProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Exec {
    #[serde(deserialize_with = "nullable")]
    command: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthProvider {
    #[serde(deserialize_with = "nullable")]
    name: String,
}

/// Reads the kubeconfig at `path` into a configuration for its current context.
pub(super) fn load(path: &Path) -> Result<ClientConfig, Error> {
    let text = read_file(path, "kubeconfig")?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::config(format!("kubeconfig {}: not UTF-8", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("")).to_owned();
    parse(&text, &base).map_err(|error| match error {
        Error::Config(message) => {
            Error::Config(format!("kubeconfig {}: {message}", path.display()))
        }
        other => other,
    })
}

/// The configuration for the current context of kubeconfig `text`, resolving relative paths
/// against `base`.
pub(super) fn parse(text: &str, base: &Path) -> Result<ClientConfig, Error> {
    let kubeconfig: Kubeconfig = if text.trim().is_empty() {
        Kubeconfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| Error::config(format!("invalid YAML: {e}")))?
    };
    if kubeconfig.current_context.is_empty() {
        return Err(Error::config("no current-context is set"));
    }
    let context_name = &kubeconfig.current_context;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| &c.name == context_name)
        .ok_or_else(|| Error::config(format!("context {context_name:?} not found")))?;
    let cluster_name = &context.context.cluster;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| &c.name == cluster_name)
        .ok_or_else(|| {
            Error::config(format!(
                "cluster {cluster_name:?} of context {context_name:?} not found"
            ))
        })?;
    let user = match context.context.user.as_str() {
        "" => None,
        user_name => Some(
            kubeconfig
                .users
                .iter()
                .find(|u| u.name == user_name)
                .ok_or_else(|| {
                    Error::config(format!(
                        "user {user_name:?} of context {context_name:?} not found"
                    ))
                })?,
        ),
    };

    let mut config = cluster_config(&cluster.name, &cluster.cluster, base)?;
    if let Some(user) = user {
        user_config(&mut config, &user.name, &user.user, base)?;
    }
    Ok(config)
}

fn cluster_config(name: &str, cluster: &Cluster, base: &Path) -> Result<ClientConfig, Error> {
    let server = cluster.server.trim();
    if server.is_empty() {
        return Err(Error::config(format!("cluster {name:?} has no server")));
    }
    let server = if server.contains("://") {
        server.to_owned()
    } else {
        format!("https://{server}")
    };
    let ca = if !cluster.certificate_authority_data.is_empty() {
        Some(decode_data(
            &cluster.certificate_authority_data,
            "certificate-authority-data",
        )?)
    } else if !cluster.certificate_authority.is_empty() {
        Some(read_file(
            &resolve(base, &cluster.certificate_authority),
            "CA certificate",
        )?)
    } else {
        None
    };
    let verify = match (ca, cluster.insecure_skip_tls_verify) {
        (Some(_), true) => {
            return Err(Error::config(format!(
                "cluster {name:?}: a certificate authority and insecure-skip-tls-verify \
                 cannot both be set"
            )));
        }
        (Some(pem), false) => Verify::Roots(pem),
        (None, true) => Verify::Skip,
        (None, false) => Verify::System,
    };
    Ok(ClientConfig {
        server,
        tls_server_name: Some(cluster.tls_server_name.clone()).filter(|n| !n.is_empty()),
        verify,
        client_cert: None,
        token: None,
    })
}

fn user_config(
    config: &mut ClientConfig,
    name: &str,
    user: &User,
    base: &Path,
) -> Result<(), Error> {
    if let Some(exec) = &user.exec {
        return Err(Error::config(format!(
            "user {name:?} uses an exec credential plugin ({:?}), which is not supported: \
             use token, tokenFile or a client certificate",
            exec.command
        )));
    }
    if let Some(provider) = &user.auth_provider {
        return Err(Error::config(format!(
            "user {name:?} uses the auth-provider {:?}, which is not supported: use token, \
             tokenFile or a client certificate",
            provider.name
        )));
    }
    if !user.username.is_empty() {
        return Err(Error::config(format!(
            "user {name:?} uses basic authentication (username/password), which is not \
             supported: use token, tokenFile or a client certificate"
        )));
    }
    // As client-go: an inline token wins over a token file.
    if !user.token.is_empty() {
        config.token = Some(TokenConfig::Static(user.token.trim().to_owned()));
    } else if !user.token_file.is_empty() {
        let path = resolve(base, &user.token_file);
        let initial = read_token_file(&path)?;
        config.token = Some(TokenConfig::File { path, initial });
    }
    let cert = pem_source(
        &user.client_certificate_data,
        "client-certificate-data",
        &user.client_certificate,
        "client certificate",
        base,
    )?;
    let key = pem_source(
        &user.client_key_data,
        "client-key-data",
        &user.client_key,
        "client key",
        base,
    )?;
    config.client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::config(format!(
                "user {name:?} has a client certificate but no client key"
            )));
        }
        (None, Some(_)) => {
            return Err(Error::config(format!(
                "user {name:?} has a client key but no client certificate"
            )));
        }
    };
    Ok(())
}

/// Inline base64 data (which wins, as in client-go) or the content of a file.
fn pem_source(
    data: &str,
    data_key: &str,
    file: &str,
    what: &'static str,
    base: &Path,
) -> Result<Option<Vec<u8>>, Error> {
    if !data.is_empty() {
        decode_data(data, data_key).map(Some)
    } else if !file.is_empty() {
        read_file(&resolve(base, file), what).map(Some)
    } else {
        Ok(None)
    }
}

fn decode_data(data: &str, key: &str) -> Result<Vec<u8>, Error> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| Error::config(format!("{key} is not valid base64: {e}")))
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
