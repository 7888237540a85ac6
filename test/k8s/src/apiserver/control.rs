//! [`TestApiServer`]'s test knobs: awaiting a stored state, expiring the watch history and
//! continue tokens, bookmarks, and the open watches.

use std::time::Duration;

use serde_json::Value;

use super::{TestApiServer, store, target};
use crate::lock;

// === impl TestApiServer ===

impl TestApiServer {
    /// Returns the object at an item path once `predicate` holds for it (checked now and
    /// after every change to the store; no polling). Waits as long as it takes: bound it
    /// with the test's own timeout.
    pub async fn wait_for(&self, path: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(path, |object| object.is_some_and(&predicate))
            .await
            .expect("the predicate held for an object")
    }

    /// Returns once no object is at an item path.
    pub async fn wait_for_absent(&self, path: &str) {
        self.wait_until(path, |object| object.is_none()).await;
    }

    /// Returns the object at an item path (or `None`) once `predicate` holds for it.
    pub async fn wait_until(
        &self,
        path: &str,
        predicate: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let target = target(path);
        self.await_store(|store| {
            let object = store.object(&target);
            predicate(object.as_ref()).then_some(object)
        })
        .await
    }

    /// Returns the objects under a collection path once `predicate` holds for them.
    pub async fn wait_for_list(
        &self,
        path: &str,
        predicate: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let target = target(path);
        self.await_store(|store| {
            let objects = store.objects(&target);
            predicate(&objects).then_some(objects)
        })
        .await
    }

    /// Evaluates `check` now and after every change until it returns something.
    async fn await_store<T>(&self, check: impl Fn(&store::Store) -> Option<T>) -> T {
        // Subscribed before the first check: a change after it is not missed.
        let mut changes = lock(&self.state.store).subscribe_changes();
        loop {
            if let Some(found) = check(&lock(&self.state.store)) {
                return found;
            }
            changes
                .changed()
                .await
                .expect("the store outlives the server handle");
        }
    }

    /// Forgets the change history: a watch from an older resourceVersion than the current
    /// one gets a `410 Expired` ERROR event (`too old resource version: <rv> (<current>)`),
    /// as after an etcd compaction.
    pub fn expire_watch_history(&self) {
        let mut store = lock(&self.state.store);
        let revision = store.revision();
        store.history_mut().expire(revision);
    }

    /// Keeps only the last `events` changes for watches and paged lists (default 10000).
    pub fn set_watch_history_limit(&self, events: usize) {
        lock(&self.state.store).history_mut().set_limit(events);
    }

    /// Expires the continue token of every list page answered so far: continuing one gets
    /// `410 Expired` (with an inconsistent-continuation token in `metadata.continue`).
    pub fn expire_continue_tokens(&self) {
        lock(&self.state.store).expire_continue_tokens();
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1s; a
    /// watch started before keeps its interval).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        lock(&self.state.store).set_bookmark_interval(interval);
    }

    /// Ends every open watch: each stream delivers the changes already due to it, then
    /// ends cleanly (as when the apiserver closes a watch).
    pub fn close_watches(&self) {
        lock(&self.state.store).watchers_mut().close_all();
    }

    /// Watches registered and not yet ended. A watch counts from the moment the server
    /// registered it, before its response reaches the client: every later change is
    /// delivered to it.
    pub fn open_watch_count(&self) -> usize {
        lock(&self.state.store).watchers_mut().open_count()
    }

    /// Returns once at least `count` watches are open.
    pub async fn wait_for_watches(&self, count: usize) {
        self.wait_for_watch_count(|open| open >= count).await;
    }

    /// Returns the number of open watches once `predicate` holds for it (e.g. `|n| n == 0`
    /// after a client went away: a stream's end is noticed when a write to it fails, so
    /// pair it with bookmarks or changes).
    pub async fn wait_for_watch_count(&self, predicate: impl Fn(usize) -> bool) -> usize {
        let mut open = lock(&self.state.store).watchers_mut().subscribe_open();
        *open
            .wait_for(|n| predicate(*n))
            .await
            .expect("the store outlives the server handle")
    }
}
