//! The bad-input catalogue's agent-side files, as table tests against a real server and a
//! real agent: `workload_api.tsv` (the Workload API on the agent's public socket, this process
//! as the workload) and `sds.tsv` (Envoy SDS on the same socket). Every row's input becomes a
//! call; the answer must be the row's exact code and message, and the server's datastore
//! revision must not move.

#[path = "../../../../crates/server/api/tests/bad_input/table.rs"]
mod table;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, Node};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use serde_json::{Value, json};
use spire_integration_tests::{
    TestAgent, TestServer, entry, eventually, init_logging, uid_selector,
};
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_proto::workload::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, X509BundlesRequest, X509svidRequest,
};
use sqlx::Connection as _;
use table::{Input, Outcome, Row, Tally};
use tonic::transport::{Channel, Endpoint};

use crate::sds::EnvoyStream;

const WORKLOAD: &str = "spiffe://example.org/bad-input-workload";
/// A trust domain whose JWT key this test holds: its bundle is stored on the server and the
/// workload's entry federates with it, so the agent validates tokens the test signs.
const FEDERATED: &str = "other.org";
const FEDERATED_KID: &str = "bad-input-key";

/// The server, an agent that has an entry for this process and one that has none.
struct Setup {
    server: TestServer,
    entitled: TestAgent,
    unentitled: TestAgent,
    /// The server's SQLite file.
    database: std::path::PathBuf,
    /// A JWT-SVID of this process for the audience `svc-a`.
    token: String,
    /// The JWT signing key of [`FEDERATED`] (ES256).
    federated_key: rcgen::KeyPair,
}

async fn setup() -> Setup {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let entitled = server.join_token_agent().await.unwrap();
    let unentitled = server.join_token_agent().await.unwrap();
    let federated_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    server
        .set_federated_bundle(spire_integration_tests::types::Bundle {
            trust_domain: FEDERATED.into(),
            x509_authorities: vec![spire_integration_tests::types::X509Certificate {
                asn1: ca.der().to_vec(),
                tainted: false,
            }],
            jwt_authorities: vec![spire_integration_tests::types::JwtKey {
                public_key: rcgen::PublicKeyData::subject_public_key_info(&federated_key),
                key_id: FEDERATED_KID.into(),
                expires_at: 0,
                tainted: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut workload = entry(WORKLOAD, &entitled.agent_id().unwrap(), &[&uid_selector()]);
    workload.federates_with = vec![FEDERATED.into()];
    server.create_entry(workload).await.unwrap();
    let client = entitled.workload().await.unwrap();
    let svid = eventually("a JWT-SVID for this process", || async {
        client.fetch_jwt_svid(["svc-a"], None).await.ok()
    })
    .await
    .unwrap();
    // The federated key reaches the agent with the entry.
    let probe = sign(
        &federated_key,
        &json!({"alg": "ES256", "kid": FEDERATED_KID, "typ": "JWT"}),
        &json!({"sub": "spiffe://other.org/w", "aud": ["svc-a"], "exp": now() + 600}),
    );
    eventually("the federated JWT key at the agent", || async {
        client.validate_jwt_token("svc-a", &probe).await.ok()
    })
    .await
    .unwrap();
    let database = server.dir().path().join("datastore.sqlite3");
    Setup {
        server,
        entitled,
        unentitled,
        database,
        token: svid.token().to_owned(),
        federated_key,
    }
}

async fn channel(agent: &TestAgent) -> Channel {
    Endpoint::try_from(agent.workload_uri())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The request with the security header as the row asks: `"true"` (default), `"missing"`,
/// `"twice"` (two values `true`), or any other value sent as is.
fn with_header<T>(message: T, header: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    match header {
        "missing" => {}
        "twice" => {
            metadata.append("workload.spiffe.io", "true".parse().unwrap());
            metadata.append("workload.spiffe.io", "true".parse().unwrap());
        }
        value => {
            metadata.insert("workload.spiffe.io", value.parse().unwrap());
        }
    }
    request
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// `header.claims` of a compact JWS.
fn signing_input(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}", part(header), part(claims))
}

/// A compact JWS signed with `key` (ES256: the DER signature rcgen makes, as JWS's r ‖ s).
fn sign(key: &rcgen::KeyPair, header: &Value, claims: &Value) -> String {
    use rcgen::SigningKey as _;
    let input = signing_input(header, claims);
    let der = key.sign(input.as_bytes()).unwrap();
    // SEQUENCE { INTEGER r, INTEGER s }, each at most 33 bytes for P-256.
    let mut fixed = Vec::with_capacity(64);
    let mut at = 2;
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "INTEGER");
        let len = usize::from(der[at + 1]);
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        fixed.extend(std::iter::repeat_n(0, 32 - int.len()));
        fixed.extend_from_slice(int);
        at += 2 + len;
    }
    format!("{input}.{}", B64.encode(fixed))
}

/// Claims with `"exp": "now+N"` / `"now-N"` made absolute.
fn resolve_times(claims: &Value) -> Value {
    let mut claims = claims.clone();
    if let Some(map) = claims.as_object_mut() {
        for value in map.values_mut() {
            if let Some(offset) = value.as_str().and_then(|s| s.strip_prefix("now")) {
                *value = json!(now() + offset.parse::<i64>().unwrap());
            }
        }
    }
    claims
}

/// `{"header": …, "claims": …}`: signed with the federated key when `"sign": "federated"`,
/// else with a signature that is not one.
fn forged(setup: &Setup, spec: &Value) -> String {
    let claims = resolve_times(&spec["claims"]);
    match spec.get("sign").and_then(Value::as_str) {
        Some("federated") => sign(&setup.federated_key, &spec["header"], &claims),
        None => format!(
            "{}.{}",
            signing_input(&spec["header"], &claims),
            B64.encode(b"not a signature")
        ),
        Some(other) => panic!("sign {other:?}"),
    }
}

/// The token a row validates: `"valid"` (this process's JWT-SVID for `svc-a`), a literal
/// string, or `{"header": …, "claims": …, "sign": …}` (see [`forged`]).
fn token(setup: &Setup, v: Value) -> String {
    match v {
        Value::String(s) if s == "valid" => setup.token.clone(),
        Value::String(s) => s,
        spec @ Value::Object(_) => forged(setup, &spec),
        other => panic!("svid: {other}"),
    }
}

/// The status of a streaming call: its own, or the first message's.
async fn first<T>(
    result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    result?.into_inner().message().await.map(|_| ())
}

async fn run_workload(setup: &Setup, row: &Row) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let agent = match input.string("caller").as_deref() {
        None | Some("entitled") => &setup.entitled,
        Some("unentitled") => &setup.unentitled,
        Some(other) => panic!("caller {other:?}"),
    };
    let header = input.string("header").unwrap_or_else(|| "true".into());
    let mut client = SpiffeWorkloadApiClient::new(channel(agent).await);
    let result = match row.surface.as_str() {
        "FetchX509SVID" => {
            input.done()?;
            first(
                client
                    .fetch_x509svid(with_header(X509svidRequest {}, &header))
                    .await,
            )
            .await
        }
        "FetchX509Bundles" => {
            input.done()?;
            first(
                client
                    .fetch_x509_bundles(with_header(X509BundlesRequest {}, &header))
                    .await,
            )
            .await
        }
        "FetchJWTBundles" => {
            input.done()?;
            first(
                client
                    .fetch_jwt_bundles(with_header(JwtBundlesRequest {}, &header))
                    .await,
            )
            .await
        }
        "FetchJWTSVID" => {
            let request = JwtsvidRequest {
                audience: input
                    .strings("audience")
                    .unwrap_or_else(|| vec!["svc-a".into()]),
                spiffe_id: input.string("spiffe_id").unwrap_or_default(),
            };
            input.done()?;
            client
                .fetch_jwtsvid(with_header(request, &header))
                .await
                .map(|_| ())
        }
        "ValidateJWTSVID" => {
            let request = ValidateJwtsvidRequest {
                audience: input.string("audience").unwrap_or_else(|| "svc-a".into()),
                svid: input
                    .take("svid")
                    .map(|v| token(setup, v))
                    .unwrap_or_default(),
            };
            input.done()?;
            client
                .validate_jwtsvid(with_header(request, &header))
                .await
                .map(|_| ())
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    Ok(Outcome::of(&result))
}

async fn run_sds(setup: &Setup, row: &Row) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    match row.surface.as_str() {
        "StreamSecrets" => {
            let names = input.strings("resource_names").ok_or("no resource_names")?;
            let mut node = Node::default();
            if let Some(Value::Array(v)) = input.take("envoy_version") {
                let part = |i: usize| u32::try_from(v[i].as_u64().unwrap()).unwrap();
                node.user_agent_name = "envoy".into();
                node.user_agent_version_type =
                    Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
                        version: Some(SemanticVersion {
                            major_number: part(0),
                            minor_number: part(1),
                            patch: 0,
                        }),
                        metadata: None,
                    }));
            }
            input.done()?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut client = SecretDiscoveryServiceClient::new(channel(&setup.entitled).await);
            let result = match EnvoyStream::open(&mut client, node, &names).await {
                Ok(mut stream) => stream.next().await.map(|_| ()),
                Err(status) => Err(status),
            };
            Ok(Outcome::of(&result))
        }
        other => Err(format!("no request builder for surface {other:?}")),
    }
}

/// The datastore's revision counter, read from the server's SQLite file (the counter row is
/// committed with every change event), `spire_rs_revision_counter` or, in older schemas,
/// `revision_counter`.
async fn revision(setup: &Setup) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&setup.database)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let table: String = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name IN ('spire_rs_revision_counter', 'revision_counter') \
         ORDER BY length(name) DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let revision = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT revision FROM {table} WHERE id = 1"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_api_and_sds_catalogues() {
    let setup = setup().await;
    for file in ["workload_api.tsv", "sds.tsv"] {
        let mut tally = Tally::new(file);
        for row in table::load(file) {
            let before = revision(&setup).await;
            let mut outcome = if file == "sds.tsv" {
                run_sds(&setup, &row).await
            } else {
                run_workload(&setup, &row).await
            };
            let moved = revision(&setup).await - before;
            if let Ok(outcome) = &mut outcome {
                outcome.check(moved == 0, format!("datastore revision moved by {moved}"));
            }
            tally.record(&row, outcome);
        }
        tally.finish();
    }
    let Setup {
        server,
        entitled,
        unentitled,
        ..
    } = setup;
    entitled.stop().await.unwrap();
    unentitled.stop().await.unwrap();
    server.stop().await.unwrap();
}
