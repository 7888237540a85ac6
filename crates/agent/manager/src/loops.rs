//! The manager's loops: entry/bundle sync (poll + push), the push watch stream, workload SVID
//! minting and agent SVID rotation.
//!
//! Numbers: sync every `sync_interval` (5 s default), doubling on consecutive errors up to
//! min(8 min, 48 × interval) (SPIRE's); the push stream reconnects after 1 s doubling up to
//! the same cap; minting looks for work at least every 500 ms and backs off from 500 ms to
//! 4 min on errors (SPIRE's SVID sync loop); the agent SVID is checked every 5 s and rotated
//! when its remaining lifetime falls to half ± 10 %.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_agent_cache::{Entry, IssuedSvid};
use spire_agent_plugin::keymanager::Key;
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, NewX509svidParams, svid_client::SvidClient,
};
use spire_proto::spirers::server::push::v1::{WatchRequest, push_client::PushClient};
use spire_task::Shutdown;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::manager::Shared;
use crate::{Error, Result, sync};

/// Most SVIDs asked for in one BatchNewX509SVID call.
pub(crate) const MINT_BATCH: usize = 500;
/// The longest the mint loop waits without looking for work.
const MINT_TICK: Duration = Duration::from_millis(500);
/// Mint error backoff cap.
const MINT_BACKOFF_MAX: Duration = Duration::from_secs(240);
/// Agent SVID rotation check period.
const ROTATION_CHECK: Duration = Duration::from_secs(5);
/// Sync error backoff ceiling (also bounded by 48 × interval).
const SYNC_BACKOFF_MAX: Duration = Duration::from_secs(8 * 60);

/// Exponential backoff: `base` after a success, doubling per failure up to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

// === impl Backoff ===

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            current: base,
        }
    }

    /// The delay after one more failure.
    pub(crate) fn fail(&mut self) -> Duration {
        self.current = (self.current * 2).min(self.max);
        self.current
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.base;
    }

    pub(crate) fn current(&self) -> Duration {
        self.current
    }
}

fn sync_backoff(interval: Duration) -> Backoff {
    Backoff::new(interval, SYNC_BACKOFF_MAX.min(interval * 48))
}

/// Sleeps `d`; true when stop came first.
async fn sleep_or_stop(stop: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        () = stop.stopped() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// When an SVID valid over `[not_before, not_after]` is rotated: once the remaining lifetime
/// is at most half of it, ± 10 % of that half (random, fixed per SVID).
pub(crate) fn jittered_half_life(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let half = not_after.duration_since(not_before).unwrap_or_default() / 2;
    let mut random = [0u8; 8];
    // A failing RNG only removes the jitter.
    let _ = aws_lc_rs::rand::fill(&mut random);
    let unit = (u64::from_le_bytes(random) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let remaining = half.mul_f64(0.9 + 0.2 * unit);
    not_after - remaining
}

/// One full synchronisation: entries, then the own and federated bundles.
async fn sync_once(shared: &Shared) -> Result<()> {
    let counter = &shared.metrics.fetch_entries_updates;
    counter
        .time(sync_once_inner(shared), crate::manager::error_code)
        .await
}

async fn sync_once_inner(shared: &Shared) -> Result<()> {
    let channel = shared.channel();
    let agent_id = shared.identity().agent_id;
    let local: BTreeMap<String, Arc<Entry>> = shared
        .cache
        .entries()
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let entries = sync::sync_entries(channel.clone(), &local, &agent_id).await?;
    let count = entries.len();
    shared.cache.update_entries(entries);
    let own = sync::fetch_bundle(channel.clone()).await?;
    let federated =
        sync::fetch_federated_bundles(channel, &shared.cache.federated_trust_domains()).await?;
    shared.bundle_changed(&own)?;
    shared.cache.update_bundles(own, federated);
    shared.last_sync_success.store(
        shared.config.clock.unix_seconds(),
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::debug!(entries = count, "synchronised with the server");
    Ok(())
}

/// The start-up sync: retried with backoff until it succeeds, the agent is refused for good,
/// or stop.
pub(crate) async fn first_sync(shared: &Shared) -> Result<()> {
    let stop = &shared.stop;
    let mut backoff = sync_backoff(shared.config.sync_interval);
    loop {
        match sync_once(shared).await {
            Ok(()) => return Ok(()),
            Err(e) => shared.handle_error(e).await?,
        }
        if sleep_or_stop(stop, backoff.fail()).await {
            return Err(Error::Stopped);
        }
    }
}

/// Syncs every interval (backing off on errors) and whenever the server pushes a change.
pub(crate) async fn sync_loop(shared: Arc<Shared>) -> Result<()> {
    let stop = &shared.stop;
    let mut backoff = sync_backoff(shared.config.sync_interval);
    loop {
        tokio::select! {
            () = stop.stopped() => return Ok(()),
            () = tokio::time::sleep(backoff.current()) => {}
            () = shared.sync_now.notified() => {}
        }
        match sync_once(&shared).await {
            Ok(()) => backoff.reset(),
            Err(e) => {
                shared.handle_error(e).await?;
                let next = backoff.fail();
                tracing::debug!(retry_in = ?next, "sync failed");
            }
        }
    }
}

/// Keeps one push `Watch` stream open and wakes the sync loop on each message. A server
/// without the push service (SPIRE) answers Unimplemented: the agent then only polls.
pub(crate) async fn watch_loop(shared: Arc<Shared>) -> Result<()> {
    let stop = &shared.stop;
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        SYNC_BACKOFF_MAX.min(shared.config.sync_interval * 48),
    );
    loop {
        let mut client = PushClient::new(shared.channel());
        let call = client.watch(WatchRequest {});
        let result = tokio::select! {
            () = stop.stopped() => return Ok(()),
            r = call => r,
        };
        match result {
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                tracing::info!("server does not push changes; relying on polling");
                // Done, but a supervised task runs until the stop.
                stop.stopped().await;
                return Ok(());
            }
            Err(s) => tracing::debug!(error = %s, "push stream failed"),
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let message = tokio::select! {
                        () = stop.stopped() => return Ok(()),
                        m = stream.message() => m,
                    };
                    match message {
                        Ok(Some(_)) => {
                            backoff.reset();
                            shared.metrics.push_messages.inc();
                            shared.sync_now.notify_one();
                        }
                        Ok(None) => break,
                        Err(s) if s.code() == tonic::Code::Unimplemented => {
                            tracing::info!("server does not push changes; relying on polling");
                            stop.stopped().await;
                            return Ok(());
                        }
                        Err(s) => {
                            tracing::debug!(error = %s, "push stream ended");
                            break;
                        }
                    }
                }
            }
        }
        if sleep_or_stop(stop, backoff.fail()).await {
            return Ok(());
        }
    }
}

/// Mints the SVIDs the cache asks for: on new work, at the next rotation deadline, or at
/// least every [`MINT_TICK`]. A failed call keeps every cached SVID and retries later.
pub(crate) async fn mint_loop(shared: Arc<Shared>) -> Result<()> {
    let stop = &shared.stop;
    let mut backoff = Backoff::new(MINT_TICK, MINT_BACKOFF_MAX);
    loop {
        let until_rotation = shared.cache.next_rotation().map_or(MINT_TICK, |t| {
            t.duration_since(shared.now()).unwrap_or_default()
        });
        tokio::select! {
            () = stop.stopped() => return Ok(()),
            () = shared.cache.work_available() => {}
            () = tokio::time::sleep(until_rotation.min(MINT_TICK)) => {}
        }
        let due = shared.cache.svids_to_mint(shared.now());
        if due.is_empty() {
            continue;
        }
        match mint(&shared, &due).await {
            Ok(0) => backoff.reset(),
            // Some items were refused (e.g. an entry deleted on the server before the next
            // sync): they are due again at once, so back off instead of asking in a loop.
            Ok(_) => {
                if sleep_or_stop(stop, backoff.fail()).await {
                    return Ok(());
                }
            }
            Err(e) => {
                shared.handle_error(e).await?;
                if sleep_or_stop(stop, backoff.fail()).await {
                    return Ok(());
                }
            }
        }
    }
}

/// One round of minting, in batches of at most [`MINT_BATCH`]; returns how many items the
/// server refused or answered unusably.
async fn mint(shared: &Shared, due: &[Arc<Entry>]) -> Result<usize> {
    let counter = &shared.metrics.fetch_svids_updates;
    counter
        .time(mint_inner(shared, due), crate::manager::error_code)
        .await
}

async fn mint_inner(shared: &Shared, due: &[Arc<Entry>]) -> Result<usize> {
    let key_type = shared.config.workload_key_type;
    let mut failed = 0;
    for chunk in due.chunks(MINT_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|e| e.id.clone()).collect();
        let generate_ids = ids.clone();
        // RSA key generation takes long enough to keep it off the runtime threads.
        let keys = tokio::task::spawn_blocking(move || {
            generate_ids
                .iter()
                .map(|id| {
                    let key = Key::generate(id, key_type)?;
                    let csr = key.csr_der()?;
                    Ok((key, csr))
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::Config(format!("key generation task: {e}")))??;
        let params = ids
            .iter()
            .zip(&keys)
            .map(|(id, (_, csr))| NewX509svidParams {
                entry_id: id.clone(),
                csr: csr.clone(),
            })
            .collect();
        let results = SvidClient::new(shared.channel())
            .batch_new_x509svid(BatchNewX509svidRequest { params })
            .await
            .map_err(Error::rpc("BatchNewX509SVID"))?
            .into_inner()
            .results;
        let mut minted = Vec::with_capacity(results.len());
        for ((id, (key, _)), result) in ids.into_iter().zip(keys).zip(results) {
            let status = result.status.unwrap_or_default();
            match result.svid {
                Some(svid) if status.code == 0 && !svid.cert_chain.is_empty() => {
                    match issued(svid.cert_chain, &key) {
                        Ok(s) => minted.push((id, s)),
                        Err(e) => tracing::warn!(entry_id = %id, error = %e, "unusable SVID"),
                    }
                }
                _ => tracing::warn!(
                    entry_id = %id,
                    code = status.code,
                    message = %status.message,
                    "failed to mint an X509-SVID; will retry"
                ),
            }
        }
        // Refused, unusable or unanswered items.
        failed += chunk.len() - minted.len();
        if !minted.is_empty() {
            shared.cache.store_svids(minted);
        }
    }
    Ok(failed)
}

fn issued(chain: Vec<Vec<u8>>, key: &Key) -> Result<IssuedSvid> {
    let (_, leaf) = X509Certificate::from_der(&chain[0])
        .map_err(|e| Error::InvalidResponse(format!("workload SVID: {e}")))?;
    if leaf.public_key().raw != key.public_key_der().as_slice() {
        return Err(Error::InvalidResponse(
            "workload SVID does not carry the requested key".into(),
        ));
    }
    let validity = leaf.validity();
    let not_before = spire_time::from_unix_seconds(validity.not_before.timestamp());
    let not_after = spire_time::from_unix_seconds(validity.not_after.timestamp());
    Ok(IssuedSvid {
        private_key: key.pkcs8_der().to_vec(),
        not_before,
        not_after,
        chain,
    })
}

/// Rotates the agent SVID once it is due; failures are retried at the next check (a refusal
/// is handled like any other: re-attest, or stop).
pub(crate) async fn rotation_loop(shared: Arc<Shared>) -> Result<()> {
    let stop = &shared.stop;
    let mut bundles = shared.cache.bundles();
    loop {
        tokio::select! {
            // The periodic check.
            stopped = sleep_or_stop(stop, ROTATION_CHECK) => if stopped {
                return Ok(());
            },
            // A new bundle may taint the authority that signed our SVID: check at once.
            Ok(()) = bundles.changed() => {}
        }
        let tainted =
            spire_agent_cache::taint::TaintedAuthorities::of(&shared.cache.bundles().borrow().own);
        if shared.now() < shared.identity().rotate_at && !tainted.signed(&shared.identity().chain) {
            continue;
        }
        if let Err(e) = shared.rotate().await {
            shared.handle_error(e).await?;
        }
    }
}
