//! `spire-server demo`: the server side of the story end to end on the embedded defaults
//! (SQLite datastore, disk key manager, self-signed CA), until `run` and the entry commands
//! exist. Running it twice reuses the CA and the entry: both persist in `-dataDir`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_server_ca::{CaConfig, CaManager, Plugins, X509SvidParams};
use spire_server_datastore::{DataStore, Error as StoreError, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::keymanager::DiskKeyManager;
use spire_time::{SharedClock, SystemClock};
use x509_parser::prelude::{FromDer as _, X509Certificate};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the datastore, the CA keys and the minted SVID.
    #[arg(long = "dataDir", default_value = "./.data")]
    data_dir: PathBuf,
    /// The trust domain the CA serves.
    #[arg(long = "trustDomain", default_value = "example.org")]
    trust_domain: String,
    /// The SPIFFE ID to register and mint.
    #[arg(
        long = "spiffeID",
        default_value = "spiffe://example.org/ns/default/sa/demo"
    )]
    spiffe_id: String,
    /// The parent of the entry (normally an agent ID).
    #[arg(
        long = "parentID",
        default_value = "spiffe://example.org/spire/agent/join_token/demo"
    )]
    parent_id: String,
    /// A selector `type:value`; repeatable.
    #[arg(long = "selector", action = clap::ArgAction::Append, default_values_t = ["unix:uid:1000".to_owned()])]
    selectors: Vec<String>,
    /// A DNS name; repeatable; the first becomes the CN.
    #[arg(long = "dns", action = clap::ArgAction::Append)]
    dns_names: Vec<String>,
    /// X509-SVID TTL in seconds (0 = the server default, 1h).
    #[arg(long = "x509SVIDTTL", default_value_t = 0)]
    x509_svid_ttl: i32,
}

#[allow(clippy::print_stdout)] // printing the result is this command's job
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let trust_domain = TrustDomain::new(&args.trust_domain).context("invalid trust domain")?;
    let spiffe_id = SpiffeId::parse(&args.spiffe_id).context("invalid SPIFFE ID")?;
    let parent_id = SpiffeId::parse(&args.parent_id).context("invalid parent ID")?;
    if !spiffe_id.is_member_of(&trust_domain) {
        bail!("{spiffe_id} is not a member of trust domain {trust_domain}");
    }
    let selectors = SelectorSet::non_empty(
        args.selectors
            .iter()
            .map(|s| Selector::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .context("invalid selector")?,
    )?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;

    let clock: SharedClock = Arc::new(SystemClock);
    let datastore: Arc<dyn DataStore> = Arc::new(
        SqlStore::open(&SqlConfig {
            database_type: "sqlite3".into(),
            connection_string: args
                .data_dir
                .join("datastore.sqlite3")
                .display()
                .to_string(),
        })
        .await
        .context("opening the datastore")?,
    );
    let key_manager = DiskKeyManager::open(args.data_dir.join("keys.json"))?;
    let manager = CaManager::new(
        CaConfig::new(trust_domain.clone()),
        clock.clone(),
        Plugins {
            key_manager: Arc::new(key_manager),
            upstream_authority: None,
        },
        datastore.clone(),
    )
    .await
    .context("starting the CA")?;
    let (slot, authority) = manager.current().await.context("no active CA")?;

    let wanted = RegistrationEntry {
        id: String::new(),
        spiffe_id,
        parent_id,
        selectors,
        x509_svid_ttl: args.x509_svid_ttl,
        jwt_svid_ttl: 0,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at: 0,
        dns_names: args.dns_names,
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: clock.unix_seconds(),
    };
    let mut results = datastore.create_registration_entries(vec![wanted]).await?;
    let (entry, reused) = match results.pop() {
        Some(Ok(entry)) => (entry, false),
        Some(Err(StoreError::AlreadyExists {
            existing: Some(existing),
            ..
        })) => (*existing, true),
        Some(Err(e)) => return Err(e).context("registering the entry"),
        None => bail!("the datastore returned no result for the entry"),
    };

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = rcgen::CertificateParams::default().serialize_request(&key)?;
    let ttl = Duration::from_secs(u64::try_from(entry.x509_svid_ttl).unwrap_or(0));
    let chain = manager.ca().sign_workload_x509_svid_from_csr(
        csr.der(),
        X509SvidParams {
            spiffe_id: &entry.spiffe_id,
            dns_names: &entry.dns_names,
            ttl,
        },
    )?;

    let bundle = datastore
        .fetch_bundle(&trust_domain)
        .await?
        .context("the trust bundle is missing")?;
    write_pem(
        &args.data_dir.join("svid.pem"),
        "CERTIFICATE",
        &chain,
        0o644,
    )?;
    write_pem(
        &args.data_dir.join("svid.key"),
        "PRIVATE KEY",
        &[key.serialize_der()],
        0o600,
    )?;
    let roots: Vec<Vec<u8>> = bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.clone())
        .collect();
    write_pem(
        &args.data_dir.join("bundle.pem"),
        "CERTIFICATE",
        &roots,
        0o644,
    )?;

    let (_, leaf) = X509Certificate::from_der(&chain[0]).context("parsing the minted SVID")?;
    println!("Trust domain     : {trust_domain}");
    println!(
        "CA               : slot {slot:?}, authority {}",
        authority.authority_id()
    );
    println!(
        "Entry ID         : {}{}",
        entry.id,
        if reused { " (already registered)" } else { "" }
    );
    println!("Parent ID        : {}", entry.parent_id);
    println!("SVID SPIFFE ID   : {}", entry.spiffe_id);
    println!("Subject          : {}", leaf.subject());
    println!("Serial           : {}", leaf.serial);
    println!("Expiry           : {}", leaf.validity().not_after);
    println!(
        "Files            : {}/{{svid.pem,svid.key,bundle.pem}}",
        args.data_dir.display()
    );
    Ok(())
}

fn write_pem(path: &Path, tag: &str, ders: &[Vec<u8>], mode: u32) -> anyhow::Result<()> {
    let text: String = ders
        .iter()
        .map(|der| pem::encode(&pem::Pem::new(tag, der.clone())))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
