//! The validating admission webhook: HTTPS with a serving X509-SVID minted from spire-server
//! for the webhook Services' DNS names, re-minted at half its lifetime (and whenever those
//! names change), and the trust bundle kept in the `ValidatingWebhookConfiguration`'s
//! `caBundle`s so the apiserver trusts it.
//!
//! Requests are `admission.k8s.io/v1` `AdmissionReview`s; the answer is allowed, or denied with
//! the validator's message (code 403, as controller-runtime denies).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spire_task::Shutdown;
use spire_time::Clock;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::spire::SpireClient;

/// Decides one admission request for the webhook path it arrived on: `Err(message)` denies.
pub type Validator =
    Arc<dyn Fn(&str, &AdmissionRequest<DynamicObject>) -> Result<(), String> + Send + Sync>;

/// The largest AdmissionReview body accepted.
const MAX_BODY: usize = 3 << 20;
/// Lifetime asked for the serving SVID (upstream: 24 h).
pub const SERVING_SVID_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the identity loop checks the names, the SVID's age and the caBundles.
const CHECK_PERIOD: Duration = Duration::from_secs(10);

/// The serving certificate, swapped in place when re-minted.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    fn set(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(key);
        }
    }

    /// Whether a certificate has been minted.
    pub fn is_ready(&self) -> bool {
        self.current.read().map(|c| c.is_some()).unwrap_or(false)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.clone()
    }
}

/// Serves AdmissionReviews on `listener` until the process stops.
pub async fn serve(
    listener: TcpListener,
    resolver: Arc<CertResolver>,
    validator: Validator,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stopped => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let acceptor = acceptor.clone();
        let validator = validator.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = service_fn(move |request| {
                let validator = validator.clone();
                async move { Ok::<_, Infallible>(handle(request, &validator).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
    }
}

async fn handle(
    request: Request<hyper::body::Incoming>,
    validator: &Validator,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if request.method() != hyper::Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only POST is served");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("reading the body: {error}"),
            );
        }
    };
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("couldn't decode the AdmissionReview: {error}"),
            );
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            let response = AdmissionResponse::invalid(error.to_string()).into_review();
            return json(&response);
        }
    };
    let mut response = AdmissionResponse::from(&request);
    if let Err(message) = validator(&path, &request) {
        response = response.deny(message);
        response.result.code = 403;
        response.result.reason = "Forbidden".to_owned();
    }
    json(&response.into_review())
}

fn json(review: &AdmissionReview<DynamicObject>) -> Response<Full<Bytes>> {
    match serde_json::to_vec(review) {
        Ok(body) => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        Err(error) => plain(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
}

/// Keeps the webhook's identity current: the serving SVID and the caBundles.
pub struct WebhookIdentity {
    /// Where SVIDs and the bundle come from.
    pub spire: SpireClient,
    /// The serving SVID's SPIFFE ID.
    pub spiffe_id: String,
    /// The `ValidatingWebhookConfiguration` to read service names from and patch.
    pub configuration: String,
    /// The apiserver.
    pub kube: kube::Client,
    /// Where the serving certificate goes.
    pub resolver: Arc<CertResolver>,
    /// Wall time, for the SVID's half-life.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookIdentity")
            .field("spiffe_id", &self.spiffe_id)
            .field("configuration", &self.configuration)
            .finish_non_exhaustive()
    }
}

impl WebhookIdentity {
    /// Runs until the process stops; failures are logged and retried on the next check.
    pub async fn run(self, shutdown: Shutdown) {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.kube.clone());
        let mut minted: Option<(BTreeSet<String>, i64, i64)> = None; // names, issued, expires
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        loop {
            if let Err(error) = self.check(&api, &mut minted).await {
                tracing::warn!(configuration = %self.configuration, %error, "webhook identity check failed");
            }
            tokio::select! {
                () = &mut stopped => return,
                () = tokio::time::sleep(CHECK_PERIOD) => {}
            }
        }
    }

    async fn check(
        &self,
        api: &Api<ValidatingWebhookConfiguration>,
        minted: &mut Option<(BTreeSet<String>, i64, i64)>,
    ) -> anyhow::Result<()> {
        let Some(configuration) = api.get_opt(&self.configuration).await? else {
            anyhow::bail!(
                "validating webhook configuration {:?} not found",
                self.configuration
            );
        };
        let names: BTreeSet<String> = configuration
            .webhooks
            .iter()
            .flatten()
            .filter_map(|w| w.client_config.service.as_ref())
            .map(|s| format!("{}.{}.svc", s.name, s.namespace))
            .collect();
        let now = self.clock.unix_seconds();
        let due = match minted {
            None => true,
            Some((minted_names, issued, expires)) => {
                *minted_names != names || now >= *issued + (*expires - *issued) / 2
            }
        };
        if due {
            let (key, expires) = self.mint(&names).await?;
            self.resolver.set(key);
            tracing::info!(dns_names = ?names, expires_at = expires, "minted the webhook serving SVID");
            *minted = Some((names, now, expires));
        }
        let bundle = self.spire.get_bundle().await?;
        let pem_bundle: String = bundle
            .x509_authorities
            .iter()
            .map(|a| pem::encode(&pem::Pem::new("CERTIFICATE", a.asn1.clone())))
            .collect();
        let ca_bundle = k8s_openapi::ByteString(pem_bundle.into_bytes());
        let webhooks = configuration.webhooks.as_deref().unwrap_or_default();
        if webhooks
            .iter()
            .all(|w| w.client_config.ca_bundle.as_ref() == Some(&ca_bundle))
        {
            return Ok(());
        }
        // A strategic merge patch keyed by webhook name, as upstream sends it: it needs only
        // the `patch` verb (the RBAC Istio's quickstart grants), and touches nothing else.
        let encoded = serde_json::to_value(&ca_bundle)?;
        let patch = serde_json::json!({
            "webhooks": webhooks.iter().map(|w| serde_json::json!({
                "name": w.name,
                "admissionReviewVersions": w.admission_review_versions,
                "sideEffects": w.side_effects,
                "clientConfig": { "caBundle": encoded },
            })).collect::<Vec<_>>(),
        });
        api.patch(
            &self.configuration,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        tracing::info!(configuration = %self.configuration, "updated the webhook caBundles");
        Ok(())
    }

    async fn mint(&self, names: &BTreeSet<String>) -> anyhow::Result<(Arc<CertifiedKey>, i64)> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names.iter().cloned().collect::<Vec<_>>())?;
        params
            .subject_alt_names
            .insert(0, rcgen::SanType::URI(self.spiffe_id.as_str().try_into()?));
        let csr = params.serialize_request(&key)?;
        let ttl = i32::try_from(SERVING_SVID_TTL.as_secs()).unwrap_or(i32::MAX);
        let svid = self.spire.mint_x509_svid(csr.der().to_vec(), ttl).await?;
        let chain = svid
            .cert_chain
            .into_iter()
            .map(rustls::pki_types::CertificateDer::from)
            .collect();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)?;
        Ok((Arc::new(CertifiedKey::new(chain, signer)), svid.expires_at))
    }
}
