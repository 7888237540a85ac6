//! The apiserver without its transport: authentication, TokenReview, fault selection and
//! the object store, as functions of a request.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use spire_time::{Clock as _, SystemClock};
use tokio::sync::watch;

use super::path::Target;
use super::status::{Status, reason_for};
use super::store::{Answer, Reply, Store};
use super::{Fault, RecordedRequest, TokenReviewOutcome};
use super::{discovery, table};
use crate::lock;

/// `POST` here is a TokenReview, answered from the registered outcomes, never stored.
pub(crate) const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The audiences a TokenReview without `spec.audiences` is checked against (the
/// apiserver's own `--api-audiences`).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// One request as the server sees it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The media type, without parameters.
    pub(crate) content_type: String,
    /// The `Accept` header (`""` when absent).
    pub(crate) accept: String,
    pub(crate) authorization: Option<String>,
    /// The common name of a verified client certificate.
    pub(crate) client_cert_user: Option<String>,
    pub(crate) body: Bytes,
}

/// A TokenReview response, fields in the apiserver's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenReview {
    kind: &'static str,
    api_version: &'static str,
    metadata: Value,
    spec: Value,
    status: Value,
}

/// What to do about a request before handling it.
#[derive(Debug, PartialEq)]
pub(crate) struct FaultAction {
    pub(crate) delay: Option<Duration>,
    pub(crate) status: Option<(u16, String)>,
}

/// Everything the apiserver holds.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) tokens: Mutex<BTreeSet<String>>,
    pub(crate) store: Mutex<Store>,
    pub(crate) reviews: Mutex<HashMap<String, TokenReviewOutcome>>,
    pub(crate) log: Mutex<Vec<RecordedRequest>>,
    pub(crate) requests: watch::Sender<usize>,
    /// Requests answered by the store so far (a write is visible once counted here).
    pub(crate) answered: watch::Sender<usize>,
    pub(crate) faults: Mutex<Vec<Fault>>,
}

// === impl State ===

impl State {
    pub(crate) fn new(token: String) -> Self {
        Self {
            tokens: Mutex::new(BTreeSet::from([token])),
            store: Mutex::new(Store::new()),
            reviews: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            requests: watch::channel(0).0,
            answered: watch::channel(0).0,
            faults: Mutex::new(Vec::new()),
        }
    }

    /// Records the request in the log.
    pub(crate) fn record(&self, request: &ApiRequest) {
        let path = if request.query.is_empty() {
            request.path.clone()
        } else {
            format!("{}?{}", request.path, request.query)
        };
        lock(&self.log).push(RecordedRequest {
            method: request.method.to_string(),
            path,
            content_type: Some(request.content_type.clone()).filter(|c| !c.is_empty()),
            authorization: request.authorization.clone(),
            body: request.body.clone(),
        });
        self.requests.send_modify(|count| *count += 1);
    }

    /// The fault the request runs into, consuming one use of it.
    pub(crate) fn take_fault(&self, request: &ApiRequest) -> Option<FaultAction> {
        let mut faults = lock(&self.faults);
        let index = faults
            .iter()
            .position(|f| f.matches(&request.method, &request.path))?;
        let fault = &mut faults[index];
        fault.remaining -= 1;
        let action = FaultAction {
            delay: fault.delay,
            status: fault.status.map(|code| {
                let message = fault
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("injected fault ({code} {})", reason_for(code)));
                (code, message)
            }),
        };
        if fault.remaining == 0 {
            faults.remove(index);
        }
        Some(action)
    }

    /// Answers an (already recorded, fault-free) request; a watch is answered once it is
    /// registered.
    pub(crate) fn handle(&self, request: &ApiRequest) -> Answer {
        let answer = self
            .try_handle(request)
            .unwrap_or_else(|status| Reply::new(status.http_code(), &status).into());
        self.answered.send_modify(|count| *count += 1);
        answer
    }

    fn try_handle(&self, request: &ApiRequest) -> Result<Answer, Status> {
        self.authenticate(request)?;
        if request.path.trim_end_matches('/') == TOKEN_REVIEWS && request.method == Method::POST {
            return self.token_review(&request.body).map(Answer::Reply);
        }
        if request.path == "/version" && request.method == Method::GET {
            return Ok(Reply::new(200, &version()).into());
        }
        if request.method == Method::GET
            && let Some(reply) = discovery::answer(lock(&self.store).resources(), &request.path)
        {
            return reply.map(Answer::Reply);
        }
        let target = Target::parse(&request.path).ok_or_else(Status::no_such_resource)?;
        let answer = lock(&self.store).handle(
            &request.method,
            &target,
            &request.query,
            &request.content_type,
            &request.body,
            &now(),
        )?;
        Ok(match answer {
            Answer::Reply(reply)
                if request.method == Method::GET
                    && reply.code == 200
                    && table::wants_table(&request.accept) =>
            {
                match table::to_table(&reply.body) {
                    Some(body) => Answer::Reply(Reply { code: 200, body }),
                    None => Answer::Reply(reply),
                }
            }
            other => other,
        })
    }

    fn authenticate(&self, request: &ApiRequest) -> Result<(), Status> {
        if request.client_cert_user.is_some() {
            return Ok(());
        }
        let token = request
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(Status::unauthorized)?;
        if lock(&self.tokens).contains(token) {
            Ok(())
        } else {
            Err(Status::unauthorized())
        }
    }

    fn token_review(&self, body: &[u8]) -> Result<Reply, Status> {
        let review: Value = serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("unable to decode the TokenReview: {e}")))?;
        let token = review["spec"]["token"].as_str().unwrap_or("");
        if token.is_empty() {
            return Err(Status::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let requested: Vec<String> = review["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let status = match lock(&self.reviews).get(token) {
            Some(TokenReviewOutcome::Authenticated { user, audiences }) => {
                let audiences = audiences.clone().unwrap_or_else(|| {
                    if requested.is_empty() {
                        vec![DEFAULT_AUDIENCE.to_owned()]
                    } else {
                        requested.clone()
                    }
                });
                json!({"authenticated": true, "user": user, "audiences": audiences})
            }
            Some(TokenReviewOutcome::Unauthenticated) => {
                json!({"authenticated": false, "user": {}})
            }
            Some(TokenReviewOutcome::Error(error)) => json!({"user": {}, "error": error}),
            None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
        };
        let mut spec = json!({"token": token});
        if !requested.is_empty() {
            spec["audiences"] = json!(requested);
        }
        Ok(Reply::new(
            201,
            &TokenReview {
                kind: "TokenReview",
                api_version: "authentication.k8s.io/v1",
                metadata: json!({"creationTimestamp": null}),
                spec,
                status,
            },
        ))
    }
}

/// The Kubernetes version the fake models.
pub(crate) const KUBERNETES_VERSION: &str = "v1.33.0";

/// What `GET /version` answers.
fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// The wall time as RFC 3339 UTC with whole seconds, as the apiserver writes timestamps.
pub(crate) fn now() -> String {
    let seconds = SystemClock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(seconds)
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rem = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by 400-year eras.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
