//! What a subsystem reports ([`State`]), how it is asked ([`Checker`]), and the aggregate the
//! probes read ([`Report`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

/// A subsystem's health, as SPIRE's `health.State`: liveness and readiness with their own
/// details (any JSON; SPIRE's checkers use an object of `*_err` strings, `{}` when fine).
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Live: working, or in a state it can recover from without a restart.
    pub live: bool,
    /// Ready: able to do its job now.
    pub ready: bool,
    /// Shown under the subsystem's name by the live path.
    pub live_details: Value,
    /// Shown under the subsystem's name by the ready path.
    pub ready_details: Value,
}

/// One subsystem's check. Checks run only on the health schedule (see [`crate::Health`]),
/// never because of a probe, so a check may do real work (an RPC, a query, a signature).
#[async_trait::async_trait]
pub trait Checker: Send + Sync + std::fmt::Debug + 'static {
    /// The subsystem name: the key of its details in the JSON body (`catalog.datastore`,
    /// `server.ca`, `agent`, …). Names are unique within one [`crate::Health`].
    fn name(&self) -> &str;

    /// Checks the subsystem once. Should bound its own waiting; the runner gives up on a
    /// check after [`crate::Health::with_check_timeout`] and reports it failed.
    async fn check(&self) -> State;
}

/// The state of every subsystem after the latest checks, with both response bodies rendered
/// once (a probe only clones them). Cheap to share: the runner publishes `Arc<Report>`.
#[derive(Clone, Debug)]
pub struct Report {
    subsystems: BTreeMap<String, Option<State>>,
    live: bool,
    ready: bool,
    live_body: Bytes,
    ready_body: Bytes,
}

// === impl State ===

impl State {
    /// Live and ready alike, with the same details for both.
    pub fn new(healthy: bool, details: Value) -> Self {
        Self {
            live: healthy,
            ready: healthy,
            live_details: details.clone(),
            ready_details: details,
        }
    }

    /// Live and ready, details `{}`.
    pub fn healthy() -> Self {
        Self::new(true, Value::Object(serde_json::Map::new()))
    }

    /// Both live and ready.
    pub fn passing(&self) -> bool {
        self.live && self.ready
    }

    /// SPIRE's wording of what is wrong, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        match (self.live, self.ready) {
            (true, true) => None,
            (false, true) => Some("subsystem is not live"),
            (true, false) => Some("subsystem is not ready"),
            (false, false) => Some("subsystem is not live or ready"),
        }
    }
}

// === impl Report ===

impl Report {
    /// The aggregate of `subsystems` (`None` = not checked yet). A subsystem not checked yet
    /// counts as live but not ready, with `null` details.
    pub fn new(subsystems: BTreeMap<String, Option<State>>) -> Self {
        let live = subsystems.values().flatten().all(|s| s.live);
        let ready = subsystems
            .values()
            .all(|s| s.as_ref().is_some_and(|s| s.ready));
        let live_body = render(&subsystems, |s| &s.live_details);
        let ready_body = render(&subsystems, |s| &s.ready_details);
        Self {
            subsystems,
            live,
            ready,
            live_body,
            ready_body,
        }
    }

    /// Every subsystem is live (or not checked yet).
    pub fn live(&self) -> bool {
        self.live
    }

    /// Every subsystem has been checked and is ready.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Every subsystem has been checked at least once.
    pub fn checked(&self) -> bool {
        self.subsystems.values().all(Option::is_some)
    }

    /// Every subsystem has been checked and is live and ready.
    pub fn passing(&self) -> bool {
        self.subsystems
            .values()
            .all(|s| s.as_ref().is_some_and(State::passing))
    }

    /// The latest state of subsystem `name` (`None` if unknown or not checked yet).
    pub fn state(&self, name: &str) -> Option<&State> {
        self.subsystems.get(name).and_then(Option::as_ref)
    }

    /// The subsystem names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.subsystems.keys().map(String::as_str)
    }

    /// The live path's body: `{"<subsystem>": <live details>, …}` and a newline.
    pub fn live_body(&self) -> Bytes {
        self.live_body.clone()
    }

    /// The ready path's body: `{"<subsystem>": <ready details>, …}` and a newline.
    pub fn ready_body(&self) -> Bytes {
        self.ready_body.clone()
    }
}

/// The body as Go's `json.Encoder` writes a `map[string]any`: keys sorted, `<`, `>`, `&`,
/// U+2028 and U+2029 escaped, a trailing newline.
fn render(
    subsystems: &BTreeMap<String, Option<State>>,
    details: impl Fn(&State) -> &Value,
) -> Bytes {
    let map: BTreeMap<&str, &Value> = subsystems
        .iter()
        .map(|(name, state)| (name.as_str(), state.as_ref().map_or(&Value::Null, &details)))
        .collect();
    let json = serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned());
    let mut out = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(states: &[(&str, Option<State>)]) -> Report {
        Report::new(
            states
                .iter()
                .map(|(n, s)| ((*n).to_owned(), s.clone()))
                .collect(),
        )
    }

    #[test]
    fn not_checked_yet_is_live_but_not_ready() {
        let r = report(&[("agent", None)]);
        assert!(r.live());
        assert!(!r.ready());
        assert!(!r.checked());
        assert_eq!(&r.live_body()[..], b"{\"agent\":null}\n");
        assert_eq!(&r.ready_body()[..], b"{\"agent\":null}\n");
    }

    #[test]
    fn one_failing_subsystem_fails_the_aggregate_and_details_are_separate() {
        let failing = State {
            live: true,
            ready: false,
            live_details: json!({}),
            ready_details: json!({"make_new_x509_err": "workload api is unavailable"}),
        };
        let r = report(&[("b", Some(State::healthy())), ("a", Some(failing))]);
        assert!(r.live());
        assert!(!r.ready());
        assert!(!r.passing());
        assert_eq!(&r.live_body()[..], b"{\"a\":{},\"b\":{}}\n");
        assert_eq!(
            &r.ready_body()[..],
            b"{\"a\":{\"make_new_x509_err\":\"workload api is unavailable\"},\"b\":{}}\n"
        );
    }

    #[test]
    fn html_characters_are_escaped_as_go_does() {
        let r = report(&[("x", Some(State::new(false, json!({"e": "<a&b>\u{2028}"}))))]);
        assert_eq!(
            std::str::from_utf8(&r.live_body()).expect("utf-8"),
            "{\"x\":{\"e\":\"\\u003ca\\u0026b\\u003e\\u2028\"}}\n"
        );
        assert!(!r.live());
    }

    #[test]
    fn spire_s_problem_wording() {
        let mut s = State::healthy();
        assert_eq!(s.problem(), None);
        s.ready = false;
        assert_eq!(s.problem(), Some("subsystem is not ready"));
        s.live = false;
        assert_eq!(s.problem(), Some("subsystem is not live or ready"));
        s.ready = true;
        assert_eq!(s.problem(), Some("subsystem is not live"));
    }

    #[test]
    fn no_subsystems_is_healthy_with_an_empty_object() {
        let r = report(&[]);
        assert!(r.live() && r.ready() && r.passing());
        assert_eq!(&r.ready_body()[..], b"{}\n");
    }
}
