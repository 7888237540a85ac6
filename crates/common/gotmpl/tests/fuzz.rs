//! Property tests: no input makes parsing or execution panic, every error is Go-shaped,
//! and text without actions renders verbatim.

mod support;

use proptest::prelude::*;
use spire_gotmpl::{ErrorKind, Template};
use support::pod_data;

/// Pieces of template syntax, concatenated at random: mostly lexer and parser paths.
const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{/*",
    "*/}}",
    " ",
    "\n",
    "\t",
    ".",
    ",",
    "|",
    "(",
    ")",
    "=",
    ":=",
    "$",
    "$x",
    "$.",
    ".PodMeta",
    ".Labels",
    ".app",
    ".List",
    ".Nothing",
    "\"a\"",
    "`raw`",
    "'c'",
    "'\\n'",
    "1",
    "-2",
    "0x1f",
    "1_0",
    "1.5",
    "99999999999999999999",
    "nil",
    "true",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "break",
    "index",
    "printf",
    "len",
    "eq",
    "and",
    "not",
    "call",
    "foo",
    "text",
    "é",
    "}",
    "{",
    "#",
    "-",
    "\\",
];

/// Words of actions, joined by spaces inside `{{ }}`: mostly evaluator paths.
const WORDS: &[&str] = &[
    ".PodMeta.Name",
    ".PodMeta.Labels",
    ".PodMeta.Labels.app",
    ".PodMeta.Labels.nope",
    ".List",
    ".Nothing",
    ".Zero",
    ".Flag",
    ".Nested",
    ".Foo",
    ".TrustDomain.X",
    "$",
    "$.ClusterName",
    ".",
    "\"a\"",
    "\"app\"",
    "\"%d-%s-%v-%q-%x-%5.2T-%[2]d-%*d-%+v-%#v-%\"",
    "0",
    "1",
    "2",
    "-2",
    "0x1f",
    "'c'",
    "nil",
    "true",
    "index",
    "printf",
    "print",
    "println",
    "len",
    "eq",
    "ne",
    "lt",
    "ge",
    "and",
    "or",
    "not",
    "html",
    "urlquery",
    "|",
    "(",
    ")",
    "$x",
    "$x :=",
    "$x =",
    "$i, $v :=",
    "(index .Nested \"a\")",
    ".b",
    "3",
];

/// Control actions, so that blocks often balance.
const CONTROLS: &[&str] = &[
    "{{ if .Flag }}",
    "{{ if .Nothing }}",
    "{{ with .PodMeta }}",
    "{{ with $x := .List }}",
    "{{ range .List }}",
    "{{ range $i, $v := .PodMeta.Labels }}",
    "{{ range 3 }}",
    "{{ else }}",
    "{{ else if .Zero }}",
    "{{ end }}",
    "{{ end }}",
    "{{- /* c */ -}}",
    "text",
    "\n",
];

fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|pieces| pieces.concat())
}

fn action() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(WORDS), 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(words, trim_left, trim_right)| {
            let left = if trim_left { "{{- " } else { "{{ " };
            let right = if trim_right { " -}}" } else { " }}" };
            format!("{left}{}{right}", words.join(" "))
        })
}

fn structured_template() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        action(),
        prop::sample::select(CONTROLS).prop_map(str::to_owned)
    ];
    prop::collection::vec(segment, 0..12).prop_map(|segments| segments.concat())
}

fn check_no_panic(text: &str) -> Result<(), TestCaseError> {
    match Template::parse("t", text) {
        Ok(template) => match template.execute(&pod_data()) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::Exec);
                prop_assert!(e.message().starts_with("template: t:"), "{}", e);
            }
        },
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::Parse);
            prop_assert!(e.message().starts_with("template: t:"), "{}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_no_panic(&text)?;
    }

    #[test]
    fn template_like_text_never_panics(text in template_text()) {
        check_no_panic(&text)?;
    }

    #[test]
    fn structured_templates_never_panic(text in structured_template()) {
        check_no_panic(&text)?;
    }

    #[test]
    fn text_without_delimiters_renders_verbatim(text in any::<String>().prop_filter("no {{", |t| !t.contains("{{"))) {
        let template = Template::parse("t", &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(template.execute(&pod_data()).ok(), Some(text));
    }
}
