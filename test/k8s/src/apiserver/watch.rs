//! Watches: `?watch=true` on a collection streams newline-delimited
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}` events, from the
//! history after a `resourceVersion` (or the current objects as synthetic ADDED events when
//! it is `""` or `"0"`), then live, with periodic BOOKMARKs, until `timeoutSeconds`.
//!
//! A watch registers with the store under its lock, in the same step that reads the history
//! or the current objects, so no change falls between the two.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::list::parse_revision;
use super::path::{Target, query_flag, query_param};
use super::selector::Filter;
use super::state::State;
use super::status::Status;
use super::store::{Event, EventType, Store};
use crate::lock;
use crate::serve::Body;

/// The open watches, which every change is handed to.
#[derive(Debug)]
pub(crate) struct Watchers {
    next_id: u64,
    subscribers: Vec<Subscriber>,
    open: watch::Sender<usize>,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    group: String,
    resource: String,
    events: mpsc::UnboundedSender<Arc<Event>>,
}

/// A registered watch's end of the change feed.
#[derive(Debug)]
pub(crate) struct Subscription {
    id: u64,
    events: mpsc::UnboundedReceiver<Arc<Event>>,
}

/// Everything a watch response needs, decided under the store lock.
#[derive(Debug)]
pub(crate) struct WatchStart {
    /// Lines to send first: synthetic ADDED events, replayed history, or an ERROR.
    initial: Vec<Bytes>,
    /// The live feed; none when the watch ends after `initial` (an ERROR).
    subscription: Option<Subscription>,
    view: View,
    bookmarks: bool,
    timeout: Option<Duration>,
    bookmark_interval: Duration,
}

/// How one watch sees changes: its resource, selection and the kind it reports.
#[derive(Debug)]
struct View {
    group: String,
    resource: String,
    filter: Filter,
    kind: String,
    api_version: String,
}

/// One event on the wire, fields in the apiserver's order.
#[derive(serde::Serialize)]
struct WireEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

// === impl Watchers ===

impl Default for Watchers {
    fn default() -> Self {
        Self {
            next_id: 0,
            subscribers: Vec::new(),
            open: watch::channel(0).0,
        }
    }
}

impl Watchers {
    /// Hands a change to the watches of its resource.
    pub(crate) fn dispatch(&mut self, event: &Arc<Event>) {
        for subscriber in &self.subscribers {
            if subscriber.group == event.key.0 && subscriber.resource == event.key.1 {
                // A watch whose stream is gone unregisters itself; until then sends fail.
                let _ = subscriber.events.send(event.clone());
            }
        }
    }

    fn register(&mut self, group: &str, resource: &str) -> Subscription {
        let (tx, events) = mpsc::unbounded_channel();
        self.next_id += 1;
        let id = self.next_id;
        self.subscribers.push(Subscriber {
            id,
            group: group.to_owned(),
            resource: resource.to_owned(),
            events: tx,
        });
        self.publish();
        Subscription { id, events }
    }

    fn unregister(&mut self, id: u64) {
        self.subscribers.retain(|s| s.id != id);
        self.publish();
    }

    /// Ends every open watch (their streams end after the changes already handed over).
    pub(crate) fn close_all(&mut self) {
        self.subscribers.clear();
        self.publish();
    }

    /// Watches registered and not yet ended.
    pub(crate) fn open_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Notified with [`Self::open_count`] on every change of it.
    pub(crate) fn subscribe_open(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }

    fn publish(&self) {
        self.open.send_replace(self.subscribers.len());
    }
}

// === impl View ===

impl View {
    fn line(&self, kind: &str, object: &Value) -> Bytes {
        let mut line = serde_json::to_vec(&WireEvent { kind, object }).expect("JSON serializes");
        line.push(b'\n');
        Bytes::from(line)
    }

    /// The event this watch sees for a change, if any: a change that moves an object into
    /// the selection is ADDED, out of it DELETED.
    fn render(&self, event: &Event) -> Option<Bytes> {
        let (group, resource, namespace, _) = &event.key;
        if group != &self.group || resource != &self.resource {
            return None;
        }
        let after =
            event.kind != EventType::Deleted && self.filter.matches(namespace, &event.object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|previous| self.filter.matches(namespace, previous));
        let kind = match (event.kind, before, after) {
            (EventType::Added, _, true) | (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, true, false) | (EventType::Deleted, true, _) => "DELETED",
            _ => return None,
        };
        Some(self.line(kind, &event.object))
    }

    /// A BOOKMARK at `revision`; `initial_events_end` marks the end of `sendInitialEvents`.
    fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object =
            json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata});
        self.line("BOOKMARK", &object)
    }
}

// === impl Store ===

impl Store {
    /// Registers a watch of `target` (a collection) with the request's query.
    pub(crate) fn watch(&mut self, target: &Target, query: &str) -> Result<WatchStart, Status> {
        let view = View {
            group: target.group.clone(),
            resource: target.resource.clone(),
            filter: Filter::from_request(target, query)?,
            kind: self.kind_for(target, &Value::Null),
            api_version: target.api_version(),
        };
        let bookmarks = query_flag(query, "allowWatchBookmarks") == Some(true);
        let timeout = match query_param(query, "timeoutSeconds").filter(|t| !t.is_empty()) {
            Some(seconds) => Some(Duration::from_secs(seconds.parse().map_err(|_| {
                Status::bad_request(format!("invalid timeoutSeconds {seconds:?}"))
            })?)),
            None => None,
        };
        let resource_version = query_param(query, "resourceVersion").unwrap_or_default();
        let send_initial_events = query_flag(query, "sendInitialEvents");
        let from_now = resource_version.is_empty() || resource_version == "0";
        let mut start = WatchStart {
            initial: Vec::new(),
            subscription: None,
            view,
            bookmarks,
            timeout,
            bookmark_interval: self.bookmark_interval,
        };
        if send_initial_events == Some(true) || (from_now && send_initial_events.is_none()) {
            for ((namespace, _), object) in self.snapshot(target, self.revision) {
                if start.view.filter.matches(namespace, object) {
                    start.initial.push(start.view.line("ADDED", object));
                }
            }
            if send_initial_events == Some(true) {
                start.initial.push(start.view.bookmark(self.revision, true));
            }
        } else if !from_now {
            let after = parse_revision(&resource_version)?;
            match self.history.since(after) {
                Ok(changes) => {
                    let replayed: Vec<Bytes> = changes
                        .filter_map(|event| start.view.render(event))
                        .collect();
                    start.initial.extend(replayed);
                }
                Err(floor) => {
                    let status =
                        Status::expired(format!("too old resource version: {after} ({floor})"));
                    let status = serde_json::to_value(&status).expect("a Status serializes");
                    start.initial.push(start.view.line("ERROR", &status));
                    return Ok(start);
                }
            }
        }
        start.subscription = Some(self.watchers.register(&target.group, &target.resource));
        Ok(start)
    }
}

/// The response streaming a registered watch.
pub(crate) fn respond(state: Arc<State>, start: WatchStart) -> Response<Body> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(stream(state, start, tx));
    Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "application/json")
        .body(ChannelBody { lines: rx }.boxed())
        .expect("a valid status code and header")
}

/// Unregisters a watch when its stream ends.
struct Registration {
    state: Arc<State>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.state.store).watchers_mut().unregister(self.id);
    }
}

async fn stream(state: Arc<State>, start: WatchStart, tx: mpsc::Sender<Bytes>) {
    let WatchStart {
        initial,
        subscription,
        view,
        bookmarks,
        timeout,
        bookmark_interval,
    } = start;
    let Some(mut subscription) = subscription else {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        return;
    };
    let _registration = Registration {
        state: state.clone(),
        id: subscription.id,
    };
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let interval = bookmark_interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (lines, end) = tokio::select! {
            event = subscription.events.recv() => match event {
                Some(event) => (view.render(&event).into_iter().collect(), false),
                // Closed by `close_watches`.
                None => (Vec::new(), true),
            },
            _ = ticker.tick(), if bookmarks => flush(&state, &mut subscription, &view),
            () = until(deadline) => {
                let lines = if bookmarks {
                    flush(&state, &mut subscription, &view).0
                } else {
                    Vec::new()
                };
                (lines, true)
            }
            () = tx.closed() => return,
        };
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if end {
            return;
        }
    }
}

/// The changes already handed to the watch, then a BOOKMARK at the current revision (which
/// the watch has then seen everything up to); no BOOKMARK when the watch was closed (`true`).
fn flush(state: &State, subscription: &mut Subscription, view: &View) -> (Vec<Bytes>, bool) {
    let store = lock(&state.store);
    let mut lines = Vec::new();
    loop {
        match subscription.events.try_recv() {
            Ok(event) => lines.extend(view.render(&event)),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => return (lines, true),
        }
    }
    lines.push(view.bookmark(store.revision(), false));
    (lines, false)
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A response body fed line by line from a channel; ends when the sender is dropped.
struct ChannelBody {
    lines: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.lines
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(Frame::data(line))))
    }
}
