use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use serde::{Deserialize, Serialize};
use spire_server_datastore::{CaJournal, DataStore};
use spire_server_plugin::keymanager::KeyManager;
use spire_server_plugin::upstreamauthority::UpstreamAuthority;
use spire_server_plugin::x509::{self as x509util, dn_value, ia5};
use spire_svid::{Bundle, X509Authority};
use spire_time::{SharedClock, refresh_at, to_unix_seconds};
use tokio::sync::{Mutex, watch};

use crate::config::CaConfig;
use crate::journal::{Journal, Status, X509CaEntry};
use crate::jwtkey::JwtKey;
use crate::x509ca::{Ca, X509Ca};
use crate::{Error, Result, authority_id, legacy_authority_id};

pub(crate) mod authority;
mod jwt;

/// How often the rotator looks at the clock (SPIRE: 10 s).
pub const ROTATE_INTERVAL: Duration = Duration::from_secs(10);
/// Expired authorities stay in the bundle this long after they expire.
pub const BUNDLE_SAFETY_MARGIN: Duration = Duration::from_secs(24 * 3600);
/// Preparation happens no earlier than this before expiry, whatever the lifetime.
const MAX_PREPARE_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);
/// Activation happens no earlier than this before expiry.
const MAX_ACTIVATE_AHEAD: Duration = Duration::from_secs(7 * 24 * 3600);

/// One of the two key slots; their key-manager IDs are SPIRE's. X.509 CAs and JWT keys each
/// have their own pair of slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlotId {
    /// `x509-CA-A` / `JWT-Signer-A`.
    A,
    /// `x509-CA-B` / `JWT-Signer-B`.
    B,
}

/// The plugins the CA works through.
#[derive(Clone, Debug)]
pub struct Plugins {
    /// Where CA keys are generated and kept.
    pub key_manager: Arc<dyn KeyManager>,
    /// Signs our CA when configured; otherwise the CA is self-signed.
    pub upstream_authority: Option<Arc<dyn UpstreamAuthority>>,
}

/// Owns the authority slots: prepares the next CA at ½ of the current one's lifetime
/// (publishing its root first), activates it at ⅚, and records every step in the journal so a
/// restart with persistent keys continues where it stopped. JWT keys follow the same policy
/// in slots of their own (unless `disable_jwt_svids`).
pub struct CaManager {
    config: Arc<CaConfig>,
    clock: SharedClock,
    plugins: Plugins,
    datastore: Arc<dyn DataStore>,
    ca: Ca,
    state: Mutex<State>,
    /// Told after every bundle write the CA makes (see [`CaManager::on_bundle_change`]).
    bundle_listener: OnceLock<BundleListener>,
    /// Rotation ticks of [`CaManager::run`] that failed in a row (health checks).
    failed_rotations: AtomicU64,
    /// Counts X.509 activations (see [`CaManager::activations`]).
    activations: watch::Sender<u64>,
}

/// A callback run after the CA changed the trust bundle.
type BundleListener = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    current: Option<Slot>,
    /// The prepared authority (SPIRE's "next" slot while PREPARED).
    next: Option<Slot>,
    /// The authority the last activation replaced (SPIRE's "next" slot while OLD), until the
    /// next preparation reuses its slot.
    old: Option<Slot>,
    jwt_current: Option<JwtSlot>,
    jwt_next: Option<JwtSlot>,
    jwt_old: Option<JwtSlot>,
    journal: Journal,
    journal_id: i64,
}

#[derive(Clone)]
struct Slot {
    id: SlotId,
    ca: Arc<X509Ca>,
}

#[derive(Clone)]
struct JwtSlot {
    id: SlotId,
    key: Arc<JwtKey>,
}

/// The span the rotation policy measures an authority's lifetime on.
#[derive(Clone, Copy, Debug)]
struct Lifetime {
    start: SystemTime,
    end: SystemTime,
}

/// What one rotation tick should do, decided from the clock alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Nothing is due.
    Idle,
    /// No usable current authority: prepare one and activate it at once.
    Bootstrap,
    /// Prepare the next authority.
    Prepare,
    /// Make the next authority current (preparing it first if it is missing).
    Activate,
}

// === impl SlotId ===

impl SlotId {
    /// The key manager ID of the slot's X.509 CA key.
    pub fn key_id(self) -> &'static str {
        match self {
            Self::A => "x509-CA-A",
            Self::B => "x509-CA-B",
        }
    }

    /// The key manager ID of the slot's JWT signing key.
    pub fn jwt_key_id(self) -> &'static str {
        match self {
            Self::A => "JWT-Signer-A",
            Self::B => "JWT-Signer-B",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

// === impl CaManager ===

impl CaManager {
    /// Loads the journal for the keys the key manager still holds and resumes from it, or
    /// bootstraps a fresh authority; either way an authority is active on return.
    pub async fn new(
        config: CaConfig,
        clock: SharedClock,
        plugins: Plugins,
        datastore: Arc<dyn DataStore>,
    ) -> Result<Self> {
        let config = Arc::new(config);
        let manager = Self {
            ca: Ca::new(config.clone(), clock.clone()),
            config,
            clock,
            plugins,
            datastore,
            state: Mutex::new(State::default()),
            bundle_listener: OnceLock::new(),
            failed_rotations: AtomicU64::new(0),
            activations: watch::Sender::new(0),
        };
        {
            let mut state = manager.state.lock().await;
            manager.load(&mut state).await?;
            manager.tick(&mut state).await?;
        }
        Ok(manager)
    }

    /// The minting handle; it follows every activation.
    pub fn ca(&self) -> Ca {
        self.ca.clone()
    }

    /// The active authority and its slot.
    pub async fn current(&self) -> Option<(SlotId, Arc<X509Ca>)> {
        let state = self.state.lock().await;
        state.current.as_ref().map(|s| (s.id, s.ca.clone()))
    }

    /// The prepared authority, if one is waiting.
    pub async fn next(&self) -> Option<(SlotId, Arc<X509Ca>)> {
        let state = self.state.lock().await;
        state.next.as_ref().map(|s| (s.id, s.ca.clone()))
    }

    /// The active JWT key and its slot (none while JWT-SVIDs are disabled).
    pub async fn current_jwt_key(&self) -> Option<(SlotId, Arc<JwtKey>)> {
        let state = self.state.lock().await;
        state.jwt_current.as_ref().map(|s| (s.id, s.key.clone()))
    }

    /// The prepared JWT key, if one is waiting.
    pub async fn next_jwt_key(&self) -> Option<(SlotId, Arc<JwtKey>)> {
        let state = self.state.lock().await;
        state.jwt_next.as_ref().map(|s| (s.id, s.key.clone()))
    }

    /// One rotation tick: prepare or activate as the clock says (X.509 CA, then JWT key),
    /// then prune authorities that expired more than a day ago from the bundle.
    pub async fn rotate(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.tick(&mut state).await?;
        let horizon = self.clock.now() - BUNDLE_SAFETY_MARGIN;
        let pruned = self
            .datastore
            .prune_bundle(&self.config.trust_domain, to_unix_seconds(horizon))
            .await?;
        if pruned {
            self.bundle_changed();
        }
        Ok(())
    }

    /// Registers `listener`, run after every bundle write the CA makes (a prepared authority
    /// or JWT key published, expired ones pruned), e.g. to wake the server's change feed so
    /// agents and the bundle endpoint see the change at once. Only the first registration
    /// counts.
    pub fn on_bundle_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        if self.bundle_listener.set(Box::new(listener)).is_err() {
            tracing::warn!("a CA bundle listener was already registered; ignoring another");
        }
    }

    fn bundle_changed(&self) {
        if let Some(listener) = self.bundle_listener.get() {
            listener();
        }
    }

    /// Changes whenever another X.509 authority becomes active (scheduled or through the
    /// LocalAuthority API), so that holders of credentials it signs (the server's own SVID)
    /// re-mint them before the old authority is tainted or revoked.
    pub fn activations(&self) -> watch::Receiver<u64> {
        self.activations.subscribe()
    }

    /// How many rotation ticks of [`Self::run`] in a row have failed (0 after a success).
    pub fn consecutive_rotation_failures(&self) -> u64 {
        self.failed_rotations.load(Ordering::Relaxed)
    }

    /// Runs [`Self::rotate`] every [`ROTATE_INTERVAL`] until `stop` turns true. Failures are
    /// logged and retried at the next tick; the active authority keeps signing meanwhile.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(ROTATE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A tick: look at the clock.
                _ = ticks.tick() => match self.rotate().await {
                    Ok(()) => self.failed_rotations.store(0, Ordering::Relaxed),
                    Err(error) => {
                        self.failed_rotations.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "CA rotation failed; retrying at the next tick");
                    }
                },
                // Shutdown requested (or the sender is gone).
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn tick(&self, state: &mut State) -> Result<()> {
        self.tick_x509(state).await?;
        if self.config.disable_jwt_svids {
            return Ok(());
        }
        self.tick_jwt(state).await
    }

    async fn tick_x509(&self, state: &mut State) -> Result<()> {
        let current = state.current.as_ref().map(|s| Lifetime {
            start: s.ca.not_before(),
            end: s.ca.not_after(),
        });
        match step(self.clock.now(), current, state.next.is_some()) {
            Step::Idle => Ok(()),
            Step::Bootstrap => {
                let slot = match &state.current {
                    Some(current) => current.id.other(),
                    None => SlotId::A,
                };
                if state.next.as_ref().is_none_or(|n| !self.usable(&n.ca)) {
                    self.prepare(state, slot).await?;
                }
                self.activate(state).await
            }
            Step::Prepare => {
                let slot = state.current.as_ref().map_or(SlotId::A, |c| c.id.other());
                self.prepare(state, slot).await
            }
            Step::Activate => {
                if state.next.is_none() {
                    let slot = state.current.as_ref().map_or(SlotId::A, |c| c.id.other());
                    self.prepare(state, slot).await?;
                }
                self.activate(state).await
            }
        }
    }

    fn usable(&self, ca: &X509Ca) -> bool {
        self.clock.now() < ca.not_after()
    }

    /// Restores the current and next slots from the journal of whichever key we still hold.
    async fn load(&self, state: &mut State) -> Result<()> {
        let km = &self.plugins.key_manager;
        let mut stored = None;
        for slot in [SlotId::A, SlotId::B] {
            if let Some(key) = km.key(slot.key_id()).await? {
                let spki = key.public_key_der();
                for id in [authority_id(&spki), legacy_authority_id(&spki)] {
                    if let Some(journal) = self.datastore.fetch_ca_journal(&id).await? {
                        stored = Some(journal);
                        break;
                    }
                }
                if stored.is_some() {
                    break;
                }
            }
        }
        let Some(stored) = stored else {
            return Ok(());
        };
        state.journal = Journal::decode(&stored.data)?;
        state.journal_id = stored.id;
        for entry in state.journal.x509_cas.iter().rev() {
            let wanted = match entry.status {
                Status::Active if state.current.is_none() => &mut state.current,
                Status::Prepared if state.next.is_none() => &mut state.next,
                Status::Old if state.old.is_none() => &mut state.old,
                _ => continue,
            };
            let Some(key) = km.key(entry.slot.key_id()).await? else {
                continue;
            };
            if key.public_key_der() != self.public_key_of(&entry.certificate)? {
                continue; // the slot's key was replaced since this entry was written
            }
            let ca = X509Ca::new(key, entry.certificate.clone(), entry.upstream_chain.clone())?;
            if self.usable(&ca) {
                tracing::info!(slot = ?entry.slot, authority_id = %entry.authority_id, status = ?entry.status, "X509 CA loaded from journal");
                *wanted = Some(Slot {
                    id: entry.slot,
                    ca: Arc::new(ca),
                });
            }
        }
        if let (Some(current), Some(next)) = (&state.current, &state.next)
            && current.id == next.id
        {
            state.next = None;
        }
        // The old authority shares its slot with the prepared one: only one can be there.
        if let (Some(current), Some(old)) = (&state.current, &state.old)
            && (current.id == old.id || state.next.is_some())
        {
            state.old = None;
        }
        if let Some(current) = &state.current {
            self.ca.set_active(current.ca.clone());
        }
        self.load_jwt(state).await
    }

    fn public_key_of(&self, certificate: &[u8]) -> Result<Vec<u8>> {
        Ok(x509util::parse_certificate(certificate)?
            .public_key()
            .raw
            .to_vec())
    }

    /// Makes a new key in `slot`, gets it a CA certificate, publishes the root in the bundle
    /// and journals it as prepared.
    async fn prepare(&self, state: &mut State, slot: SlotId) -> Result<()> {
        let now = self.clock.now();
        let key = self
            .plugins
            .key_manager
            .generate_key(slot.key_id(), self.config.ca_key_type)
            .await?;
        let td_uri = self.config.trust_domain.id_string();
        let (certificate, upstream_chain, roots) = match &self.plugins.upstream_authority {
            Some(upstream) => {
                let mut params = CertificateParams::default();
                params.distinguished_name = self.subject(None);
                params.subject_alt_names = vec![SanType::URI(ia5(&td_uri)?)];
                let csr = params
                    .serialize_request(&key)
                    .map_err(|source| Error::Certificate {
                        context: "building CA CSR",
                        source,
                    })?;
                let minted = upstream.mint_x509_ca(csr.der(), self.config.ca_ttl).await?;
                let certificate = minted.x509_ca_chain.first().cloned().ok_or_else(|| {
                    Error::InvalidRequest("upstream authority returned an empty chain".into())
                })?;
                (
                    certificate,
                    minted.x509_ca_chain,
                    minted.upstream_x509_roots,
                )
            }
            None => {
                let serial = x509util::random_serial();
                let decimal = serial_decimal(&serial.to_bytes());
                let params = x509util::ca_params(
                    self.subject(Some(&decimal)),
                    &td_uri,
                    &key.public_key_der(),
                    now,
                    now + self.config.ca_ttl,
                    serial,
                )?;
                let cert = params
                    .self_signed(&key)
                    .map_err(|source| Error::Certificate {
                        context: "self-signing CA",
                        source,
                    })?;
                let der = cert.der().to_vec();
                (der.clone(), Vec::new(), vec![der])
            }
        };
        let ca = X509Ca::new(key, certificate.clone(), upstream_chain.clone())?;

        // Publish before use: agents must trust the new root before anything is signed by it.
        let mut bundle = Bundle::new(self.config.trust_domain.clone());
        bundle.x509_authorities = roots
            .into_iter()
            .map(|asn1| X509Authority {
                asn1,
                tainted: false,
            })
            .collect();
        self.datastore.append_bundle(bundle).await?;
        self.bundle_changed();

        state.journal.push(X509CaEntry {
            slot,
            status: Status::Prepared,
            authority_id: ca.authority_id().to_owned(),
            issued_at: to_unix_seconds(now),
            not_after: to_unix_seconds(ca.not_after()),
            certificate,
            upstream_chain,
        });
        tracing::info!(slot = ?slot, authority_id = %ca.authority_id(), not_after = to_unix_seconds(ca.not_after()), "X509 CA prepared");
        state.old = None;
        state.next = Some(Slot {
            id: slot,
            ca: Arc::new(ca),
        });
        self.write_journal(state).await
    }

    /// Makes the prepared authority current; the previous one becomes old (still trusted).
    async fn activate(&self, state: &mut State) -> Result<()> {
        let Some(next) = state.next.take() else {
            return Ok(());
        };
        if let Some(old) = state.current.take() {
            state.journal.set_status(old.ca.authority_id(), Status::Old);
            state.old = Some(old);
        }
        state
            .journal
            .set_status(next.ca.authority_id(), Status::Active);
        tracing::info!(slot = ?next.id, authority_id = %next.ca.authority_id(), "X509 CA activated");
        self.ca.set_active(next.ca.clone());
        state.current = Some(next);
        self.activations.send_modify(|n| *n += 1);
        self.write_journal(state).await
    }

    async fn write_journal(&self, state: &mut State) -> Result<()> {
        let active = state
            .current
            .as_ref()
            .or(state.next.as_ref())
            .map(|s| s.ca.authority_id().to_owned())
            .unwrap_or_default();
        let stored = self
            .datastore
            .set_ca_journal(CaJournal {
                id: state.journal_id,
                active_x509_authority_id: active,
                data: state.journal.encode(),
                updated_at: self.clock.unix_seconds(),
            })
            .await?;
        state.journal_id = stored.id;
        Ok(())
    }

    /// `ca_subject`, plus `serialNumber=<decimal serial>` for self-signed CAs as SPIRE adds.
    fn subject(&self, serial_decimal: Option<&str>) -> DistinguishedName {
        let s = &self.config.ca_subject;
        let mut dn = DistinguishedName::new();
        if let Some(c) = s.country.first() {
            dn.push(DnType::CountryName, dn_value(c));
        }
        if let Some(o) = s.organization.first() {
            dn.push(DnType::OrganizationName, dn_value(o));
        }
        if !s.common_name.is_empty() {
            dn.push(DnType::CommonName, dn_value(&s.common_name));
        }
        if let Some(serial) = serial_decimal {
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), dn_value(serial));
        }
        dn
    }
}

impl fmt::Debug for CaManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaManager")
            .field("trust_domain", &self.config.trust_domain)
            .field("key_manager", &self.plugins.key_manager.name())
            .finish_non_exhaustive()
    }
}

/// The rotation policy: pure, from the clock, the current authority's lifetime and whether a
/// next one is prepared. The same for X.509 CAs and JWT keys.
fn step(now: SystemTime, current: Option<Lifetime>, has_next: bool) -> Step {
    let Some(current) = current else {
        return Step::Bootstrap;
    };
    if now >= current.end {
        return Step::Bootstrap;
    }
    let activate_at = refresh_at(current.start, current.end, (5, 6), Some(MAX_ACTIVATE_AHEAD));
    if now >= activate_at {
        return Step::Activate;
    }
    let prepare_at = refresh_at(current.start, current.end, (1, 2), Some(MAX_PREPARE_AHEAD));
    if now >= prepare_at && !has_next {
        return Step::Prepare;
    }
    Step::Idle
}

/// The decimal form of a big-endian unsigned serial (at most 128 bits here).
fn serial_decimal(bytes: &[u8]) -> String {
    let mut buf = [0u8; 16];
    let tail = bytes.len().min(16);
    buf[16 - tail..].copy_from_slice(&bytes[bytes.len() - tail..]);
    u128::from_be_bytes(buf).to_string()
}
