use super::*;
use crate::crd::ClusterStaticEntry;
use crate::manager::declare::{DeclareConfig, DeclareInputs, declare};
use crate::manager::testutil::{self, ctx, static_entry};

const PARENT: &str = "spiffe://example.org/spire/server";

/// Declares one static entry per `(name, spiffe id)`, selector `unix:uid:0`.
fn declared(objects: &[ClusterStaticEntry]) -> Declared {
    let mut config = DeclareConfig::new(ctx());
    config.watch_classless = true;
    let inputs = DeclareInputs {
        cluster_static_entries: objects.iter().collect(),
        ..DeclareInputs::default()
    };
    declare(&config, &inputs)
}

fn db_object() -> ClusterStaticEntry {
    let mut object = static_entry("db", "spiffe://example.org/db", PARENT, &["unix:uid:0"], 1);
    object.spec.dns_names = vec!["db.local".into(), "db".into()];
    object.spec.federates_with = vec!["a.org".into(), "b.org".into()];
    object.spec.x509_svid_ttl = Some("1h".into());
    object.spec.jwt_svid_ttl = Some("5m".into());
    object.spec.hint = "db".into();
    object.spec.store_svid = true;
    object
}

/// What the server would hold for the declared db entry.
fn db_current(id: &str) -> Entry {
    let mut entry = testutil::entry("spiffe://example.org/db", PARENT, &["unix:uid:0"]);
    entry.id = id.into();
    entry.dns_names = vec!["db.local".into(), "db".into()];
    entry.federates_with = vec!["a.org".into(), "b.org".into()];
    entry.x509_svid_ttl = 3600;
    entry.jwt_svid_ttl = 300;
    entry.hint = "db".into();
    entry.store_svid = true;
    entry.revision_number = 7;
    entry.created_at = 1_700_000_000;
    entry
}

fn ids(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn equal_state_plans_nothing() {
    let declared = declared(&[db_object()]);
    let plan = plan(&declared, &[db_current("e1")], &PlanOptions::default());
    assert_eq!(plan, Plan::default());
}

#[test]
fn missing_entries_are_created_without_an_id() {
    let declared = declared(&[db_object()]);
    let plan = plan(&declared, &[], &PlanOptions::default());
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].id, "");
    assert_eq!(plan.create[0].dns_names, ["db.local", "db"]);
    assert!(plan.update.is_empty() && plan.delete.is_empty());
}

#[test]
fn each_compared_field_triggers_an_update() {
    let declared = declared(&[db_object()]);
    type Mutation = (&'static str, fn(&mut Entry));
    let mutations: Vec<Mutation> = vec![
        ("x509_svid_ttl", |e| e.x509_svid_ttl = 60),
        ("jwt_svid_ttl", |e| e.jwt_svid_ttl = 60),
        ("federates_with", |e| {
            e.federates_with = vec!["a.org".into()]
        }),
        ("federates_with replaced", |e| {
            e.federates_with = vec!["a.org".into(), "c.org".into()];
        }),
        ("admin", |e| e.admin = true),
        ("downstream", |e| e.downstream = true),
        ("dns_names", |e| e.dns_names.push("extra".into())),
        ("hint", |e| e.hint = "other".into()),
        ("store_svid", |e| e.store_svid = false),
    ];
    for (field, mutate) in mutations {
        let mut current = db_current("e1");
        mutate(&mut current);
        let plan = plan(&declared, &[current], &PlanOptions::default());
        assert_eq!(ids(&plan.update), ["e1"], "{field}");
        assert_eq!(
            plan.update[0].x509_svid_ttl, 3600,
            "{field}: the declared values are sent"
        );
        assert!(plan.create.is_empty() && plan.delete.is_empty(), "{field}");
    }
}

#[test]
fn order_and_uncompared_fields_do_not_trigger_an_update() {
    let declared = declared(&[db_object()]);
    let mut current = db_current("e1");
    current.dns_names.reverse();
    current.federates_with.reverse();
    current.revision_number = 99;
    current.expires_at = 5;
    current.created_at = 6;
    let plan = plan(&declared, &[current], &PlanOptions::default());
    assert_eq!(plan, Plan::default());
}

#[test]
fn unsupported_fields_are_neither_compared_nor_sent() {
    let declared = declared(&[db_object()]);
    let options = PlanOptions::default().with_supported_fields(SupportedFields {
        jwt_svid_ttl: false,
        hint: false,
        store_svid: false,
    });
    let mut current = db_current("e1");
    current.jwt_svid_ttl = 0;
    current.hint.clear();
    current.store_svid = false;
    assert_eq!(plan(&declared, &[current], &options), Plan::default());

    let plan = plan(&declared, &[], &options);
    let created = &plan.create[0];
    assert_eq!(
        (
            created.jwt_svid_ttl,
            created.hint.as_str(),
            created.store_svid
        ),
        (0, "", false)
    );
    assert_eq!(created.x509_svid_ttl, 3600);
}

#[test]
fn undeclared_entries_are_deleted_except_join_token_nodes() {
    let declared = declared(&[db_object()]);
    let mut join_token = testutil::entry(
        "spiffe://example.org/node-alias",
        "spiffe://example.org/spire/agent/join_token/abc",
        &["spiffe_id:spiffe://example.org/spire/agent/join_token/abc"],
    );
    join_token.id = "jt".into();
    let mut join_parent_only = testutil::entry(
        "spiffe://example.org/w",
        "spiffe://example.org/spire/agent/join_token/abc",
        &["unix:uid:0"],
    );
    join_parent_only.id = "jp".into();
    let mut spiffe_selector_only = testutil::entry(
        "spiffe://example.org/w",
        PARENT,
        &["spiffe_id:spiffe://example.org/x"],
    );
    spiffe_selector_only.id = "ss".into();
    let mut stray = testutil::entry("spiffe://example.org/stray", PARENT, &["unix:uid:1"]);
    stray.id = "a-stray".into();
    assert!(is_join_token_entry(&join_token));
    assert!(!is_join_token_entry(&join_parent_only));
    assert!(!is_join_token_entry(&spiffe_selector_only));

    let current = [
        db_current("e1"),
        join_token,
        join_parent_only,
        spiffe_selector_only,
        stray,
    ];
    let plan = plan(&declared, &current, &PlanOptions::default());
    assert_eq!(plan.delete, ["a-stray", "jp", "ss"]);
    assert!(plan.create.is_empty() && plan.update.is_empty());
}

#[test]
fn duplicates_keep_the_first_and_delete_the_rest() {
    let declared = declared(&[db_object()]);
    let mut outdated_first = db_current("z-first");
    outdated_first.admin = true;
    let current = [
        outdated_first,
        db_current("b-second"),
        db_current("a-third"),
    ];
    let plan = plan(&declared, &current, &PlanOptions::default());
    assert_eq!(ids(&plan.update), ["z-first"]);
    assert!(!plan.update[0].admin);
    assert_eq!(plan.delete, ["a-third", "b-second"]);
}

#[test]
fn prefix_scopes_the_entries_managed() {
    let declared = declared(&[db_object()]);
    let options = PlanOptions::new("scm", None).expect("valid");
    assert_eq!(options.entry_id_prefix(), Some("scm."));
    let mut other = db_current("other.1");
    other.spiffe_id = Some(testutil::api_id("spiffe://example.org/other"));
    let current = [db_current("scmx.db"), other, db_current("dotless")];
    // Nothing is ours: the db entry is created (with a prefixed ID), nothing is deleted.
    let plan = plan(&declared, &current, &options);
    assert!(plan.delete.is_empty() && plan.update.is_empty());
    assert_eq!(plan.create.len(), 1);
    let id = &plan.create[0].id;
    let uuid = id.strip_prefix("scm.").expect("a prefixed ID");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");

    // Ours is reused; a stray of ours is deleted.
    let mut stray = db_current("scm.stray");
    stray.spiffe_id = Some(testutil::api_id("spiffe://example.org/stray"));
    let plan = self::plan(&declared, &[db_current("scm.db"), stray], &options);
    assert_eq!(
        plan,
        Plan {
            delete: vec!["scm.stray".into()],
            ..Plan::default()
        }
    );
}

#[test]
fn cleanup_prefix_deletes_the_old_generation() {
    let declared = declared(&[db_object()]);
    let current = [
        db_current("scm.db"),
        db_current("old.1"),
        db_current("dotless"),
        db_current("other.2"),
    ];
    let options = PlanOptions::new("scm.", Some("old")).expect("valid");
    let plan = plan(&declared, &current, &options);
    assert_eq!(plan.delete, ["old.1"]);

    let options = PlanOptions::new("scm", Some("")).expect("valid");
    let plan = self::plan(&declared, &current, &options);
    assert_eq!(plan.delete, ["dotless"]);
    assert!(plan.create.is_empty() && plan.update.is_empty());

    let err = PlanOptions::new("scm", Some("scm")).expect_err("same prefix");
    assert_eq!(
        err.to_string(),
        "if entryIDPrefixCleanup is specified, it can not be the same value as entryIDPrefix"
    );
}

#[test]
fn without_a_prefix_every_entry_is_managed() {
    let declared = declared(&[]);
    let current = [db_current("b"), db_current("a.x")];
    let options = PlanOptions::new("", Some("a")).expect("cleanup alone is inert");
    let plan = plan(&declared, &current, &options);
    assert_eq!(plan.delete, ["a.x", "b"]);
}

#[test]
fn outputs_are_in_key_order() {
    let objects: Vec<ClusterStaticEntry> = ["c", "a", "b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            static_entry(
                name,
                &format!("spiffe://example.org/{name}"),
                PARENT,
                &["unix:uid:0"],
                i64::try_from(i).expect("small"),
            )
        })
        .collect();
    let declared = declared(&objects);
    let plan = plan(&declared, &[], &PlanOptions::default());
    let created: Vec<String> = plan
        .create
        .iter()
        .map(|e| {
            e.spiffe_id
                .as_ref()
                .map(|i| i.path.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(created, ["/a", "/b", "/c"]);
}

#[test]
fn probe_entry_and_echo() {
    let probe = unsupported_fields_probe_entry(&testutil::td());
    let id = probe.spiffe_id.as_ref().expect("an ID");
    assert_eq!(
        (id.trust_domain.as_str(), id.path.as_str()),
        (
            "example.org",
            "/spire-controller-manager/unsupported-fields-test"
        )
    );
    assert_eq!(probe.parent_id, probe.spiffe_id);
    assert_eq!((probe.x509_svid_ttl, probe.jwt_svid_ttl), (60, 60));
    assert!(probe.store_svid);
    assert_eq!(probe.hint, "hint");
    assert_eq!(
        SupportedFields::from_probe_echo(&probe),
        SupportedFields::default()
    );
    let old_server = Entry {
        jwt_svid_ttl: 0,
        hint: String::new(),
        store_svid: false,
        ..probe
    };
    assert_eq!(
        SupportedFields::from_probe_echo(&old_server),
        SupportedFields {
            jwt_svid_ttl: false,
            hint: false,
            store_svid: false
        }
    );
}
