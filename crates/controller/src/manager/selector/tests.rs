use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator: op.to_owned(),
        values: if values.is_empty() {
            None
        } else {
            Some(values.iter().map(|v| (*v).to_owned()).collect())
        },
    }
}

fn selector(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    }
}

#[test]
fn absent_and_empty_selectors_match_everything() {
    let none = LabelMatcher::parse(None).expect("nil selector");
    let empty = LabelMatcher::parse(Some(&LabelSelector::default())).expect("empty selector");
    for m in [none, empty] {
        assert!(m.is_everything());
        assert!(m.matches(None));
        assert!(m.matches(Some(&labels(&[("a", "b")]))));
    }
}

#[test]
fn matching_table() {
    let app_web = labels(&[("app", "web"), ("tier", "front")]);
    let app_db = labels(&[("app", "db")]);
    let bare = labels(&[]);
    // (selector, [expected for app_web, app_db, bare, no labels at all])
    let cases: Vec<(LabelSelector, [bool; 4])> = vec![
        (
            selector(&[("app", "web")], vec![]),
            [true, false, false, false],
        ),
        (
            selector(&[("app", "web"), ("tier", "front")], vec![]),
            [true, false, false, false],
        ),
        (
            selector(&[("app", "")], vec![]),
            [false, false, false, false],
        ),
        (
            selector(&[], vec![expr("app", "In", &["web", "db"])]),
            [true, true, false, false],
        ),
        (
            selector(&[], vec![expr("app", "NotIn", &["web"])]),
            [false, true, true, true],
        ),
        (
            selector(&[], vec![expr("tier", "Exists", &[])]),
            [true, false, false, false],
        ),
        (
            selector(&[], vec![expr("tier", "DoesNotExist", &[])]),
            [false, true, true, true],
        ),
        (
            selector(&[("app", "web")], vec![expr("tier", "DoesNotExist", &[])]),
            [false, false, false, false],
        ),
        (
            selector(
                &[],
                vec![expr("app", "Exists", &[]), expr("app", "NotIn", &["db"])],
            ),
            [true, false, false, false],
        ),
    ];
    for (i, (sel, want)) in cases.iter().enumerate() {
        let m = LabelMatcher::parse(Some(sel)).expect("valid selector");
        let got = [
            m.matches(Some(&app_web)),
            m.matches(Some(&app_db)),
            m.matches(Some(&bare)),
            m.matches(None),
        ];
        assert_eq!(&got, want, "case {i}: {sel:?}");
    }
}

#[test]
fn invalid_selectors_are_errors() {
    let cases = vec![
        (
            selector(&[], vec![expr("app", "Equals", &["x"])]),
            "\"Equals\" is not a valid label selector operator",
        ),
        (
            selector(&[], vec![expr("app", "In", &[])]),
            "values set can't be empty",
        ),
        (
            selector(&[], vec![expr("app", "NotIn", &[])]),
            "values set can't be empty",
        ),
        (
            selector(&[], vec![expr("app", "Exists", &["x"])]),
            "values set must be empty for exists and does not exist",
        ),
        (
            selector(&[("-bad", "x")], vec![]),
            "key: Invalid value: \"-bad\"",
        ),
        (selector(&[("a/b/c", "x")], vec![]), "key: Invalid value"),
        (selector(&[("Upper.Case/app", "x")], vec![]), "prefix part"),
        (
            selector(&[("app", "bad value")], vec![]),
            "values: Invalid value",
        ),
        (
            selector(&[], vec![expr("app", "In", &["ok", "-no"])]),
            "values: Invalid value: \"-no\"",
        ),
    ];
    for (sel, want) in cases {
        let err = LabelMatcher::parse(Some(&sel)).expect_err("invalid selector");
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    }
}

#[test]
fn qualified_keys_are_accepted() {
    let sel = selector(&[("spiffe.io/spire-managed-identity", "true")], vec![]);
    let m = LabelMatcher::parse(Some(&sel)).expect("valid");
    assert!(m.matches(Some(&labels(&[(
        "spiffe.io/spire-managed-identity",
        "true"
    )]))));
    assert!(!m.matches(Some(&labels(&[("spire-managed-identity", "true")]))));
}
