//! Templates that must fail, with Go's message: parse errors when the template is
//! parsed (also for constructs outside the supported subset), execution errors when it
//! is rendered.

mod support;

use spire_gotmpl::{ErrorKind, MAX_DEPTH, Template};
use support::{pod_data, render};

fn check_parse_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        match Template::parse("t", text) {
            Err(e) if e.message() == *want && e.kind() == ErrorKind::Parse => {}
            other => failures.push(format!("{text:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_exec_errors(cases: &[(&str, &str)]) {
    let data = pod_data();
    let mut failures = Vec::new();
    for (text, want) in cases {
        let template = match Template::parse("t", text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{text:?}: parse error {e}"));
                continue;
            }
        };
        match template.execute(&data) {
            Err(e) if e.to_string() == *want && e.kind() == ErrorKind::Exec => {}
            other => failures.push(format!("{text:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn syntax_errors_have_gos_messages() {
    check_parse_errors(&[
        ("{{ .A }", r#"template: t:1: unexpected "}" in operand"#),
        ("{{ .A", "template: t:1: unclosed action"),
        (
            "line1\n{{\n.X\n",
            "template: t:4: unclosed action started at t:2",
        ),
        ("{{}}", "template: t:1: missing value for command"),
        ("{{ if }}x{{ end }}", "template: t:1: missing value for if"),
        ("{{ end }}", "template: t:1: unexpected {{end}}"),
        ("{{ else }}", "template: t:1: unexpected {{else}}"),
        ("{{ if .X }}a", "template: t:1: unexpected EOF"),
        (
            "{{ if .X }}a{{ else }}b{{ else }}c{{ end }}",
            "template: t:1: expected end; found {{else}}",
        ),
        (
            "{{ range .X }}{{ else if .Y }}{{ end }}",
            "template: t:1: unexpected <if> in input",
        ),
        ("{{ $x }}", r#"template: t:1: undefined variable "$x""#),
        (
            "{{ with $x := 1 }}{{ end }}{{ $x }}",
            r#"template: t:1: undefined variable "$x""#,
        ),
        (
            "{{ 1 | 2 }}",
            "template: t:1: non executable command in pipeline stage 2",
        ),
        (
            "{{ .X | printf | . }}",
            "template: t:1: non executable command in pipeline stage 3",
        ),
        (
            "{{ true.X }}",
            r#"template: t:1: unexpected . after term "true""#,
        ),
        (
            r#"{{ "s".X }}"#,
            r#"template: t:1: unexpected . after term "\"s\"""#,
        ),
        (
            "{{ ( ) }}",
            "template: t:1: missing value for parenthesized pipeline",
        ),
        (
            "{{ .X ) }}",
            "template: t:1: unexpected right paren U+0029 ')'",
        ),
        ("{{ (.X }}", "template: t:1: unclosed left paren"),
        ("{{ .X# }}", "template: t:1: bad character U+0023 '#'"),
        ("{{ .X ~ }}", r#"template: t:1: unexpected "~" in operand"#),
        (
            "{{ .X \u{1} }}",
            "template: t:1: unrecognized character in action: U+0001",
        ),
        ("{{ 1 : 2 }}", "template: t:1: expected :="),
        ("{{ $x : 1 }}", r#"template: t:1: undefined variable "$x""#),
        (r#"{{ "abc }}"#, "template: t:1: unterminated quoted string"),
        (
            "{{ `abc }}",
            "template: t:1: unterminated raw quoted string",
        ),
        ("{{ 'a }}", "template: t:1: unterminated character constant"),
        (
            "{{ 'ab' }}",
            "template: t:1: malformed character constant: 'ab'",
        ),
        (r#"{{ "\q" }}"#, "template: t:1: invalid syntax"),
        ("{{/* x", "template: t:1: unclosed comment"),
        (
            "{{/* x */ }}",
            "template: t:1: comment ends before closing delimiter",
        ),
        ("{{ 0x }}", r#"template: t:1: illegal number syntax: "0x""#),
        ("{{ 3x }}", r#"template: t:1: bad number syntax: "3x""#),
        (
            "{{ 99999999999999999999 }}",
            r#"template: t:1: integer overflow: "99999999999999999999""#,
        ),
        (
            "{{ range $a, $b, $c := .L }}{{ end }}",
            "template: t:1: too many declarations in range",
        ),
        (
            "{{ with $a, $b := .L }}{{ end }}",
            "template: t:1: too many declarations in with",
        ),
        (
            "{{ range $k, . }}{{ end }}",
            "template: t:1: range can only initialize variables",
        ),
        (
            "{{ range $k, }}{{ end }}",
            "template: t:1: missing value for range",
        ),
        (
            "a\n\nb{{ .X | }}{{ nope }}",
            r#"template: t:3: function "nope" not defined"#,
        ),
        (
            "{{ if .X }}\n{{ else }}\n{{ .Y ) }}",
            "template: t:3: unexpected right paren U+0029 ')'",
        ),
    ]);
}

#[test]
fn unsupported_constructs_fail_at_parse_naming_the_template() {
    check_parse_errors(&[
        ("{{ foo }}", r#"template: t:1: function "foo" not defined"#),
        (
            "{{ lower .X }}",
            r#"template: t:1: function "lower" not defined"#,
        ),
        (
            "{{ upper .X }}",
            r#"template: t:1: function "upper" not defined"#,
        ),
        (
            "{{ .X | default \"y\" }}",
            r#"template: t:1: function "default" not defined"#,
        ),
        (
            "{{ call .F }}",
            r#"template: t:1: function "call" is not supported"#,
        ),
        (
            "{{ slice .L 1 }}",
            r#"template: t:1: function "slice" is not supported"#,
        ),
        (
            "{{ js .X }}",
            r#"template: t:1: function "js" is not supported"#,
        ),
        (
            r#"{{ define "x" }}y{{ end }}"#,
            "template: t:1: {{define}} is not supported",
        ),
        (
            r#"{{ template "x" }}"#,
            "template: t:1: {{template}} is not supported",
        ),
        (
            r#"{{ block "x" . }}y{{ end }}"#,
            "template: t:1: {{block}} is not supported",
        ),
        (
            "{{ range .L }}\n{{ break }}{{ end }}",
            "template: t:2: {{break}} is not supported",
        ),
        (
            "{{ range .L }}{{ continue }}{{ end }}",
            "template: t:1: {{continue}} is not supported",
        ),
        (
            "{{ 1.5 }}",
            "template: t:1: floating-point constant 1.5 is not supported",
        ),
        (
            "{{ 1e3 }}",
            "template: t:1: floating-point constant 1e3 is not supported",
        ),
        (
            "{{ 2i }}",
            "template: t:1: complex constant 2i is not supported",
        ),
        (
            "{{ 1+2i }}",
            "template: t:1: complex constant 1+2i is not supported",
        ),
    ]);
    let name = Template::parse("spiffeIDTemplate", "{{ foo }}").expect_err("undefined function");
    assert_eq!(
        name.message(),
        r#"template: spiffeIDTemplate:1: function "foo" not defined"#
    );
}

#[test]
fn nesting_beyond_the_limit_fails_at_parse() {
    let depth = MAX_DEPTH + 1;
    let text = format!(
        "{}x{}",
        "{{ if true }}".repeat(depth),
        "{{ end }}".repeat(depth)
    );
    let err = Template::parse("t", &text).expect_err("too deep");
    assert_eq!(err.message(), "template: t:1: max nesting depth exceeded");
    let text = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
    let err = Template::parse("t", &text).expect_err("too deep");
    assert_eq!(
        err.message(),
        "template: t:1: max expression depth exceeded"
    );
}

#[test]
fn execution_errors_have_gos_messages() {
    check_exec_errors(&[
        (
            "{{ .PodMeta.Foo }}",
            r#"template: t:1:11: executing "t" at <.PodMeta.Foo>: can't evaluate field Foo in type struct"#,
        ),
        (
            "{{ .Foo }}",
            r#"template: t:1:3: executing "t" at <.Foo>: can't evaluate field Foo in type struct"#,
        ),
        (
            "a\nb {{ .TrustDomain.X }}",
            r#"template: t:2:17: executing "t" at <.TrustDomain.X>: can't evaluate field X in type string"#,
        ),
        (
            "{{ .List.X }}",
            r#"template: t:1:8: executing "t" at <.List.X>: can't evaluate field X in type []string"#,
        ),
        (
            "{{ with .PodMeta }}{{ $.Nope }}{{ end }}",
            r#"template: t:1:23: executing "t" at <$.Nope>: can't evaluate field Nope in type struct"#,
        ),
        (
            "{{ index .List 5 }}",
            r#"template: t:1:3: executing "t" at <index .List 5>: error calling index: index out of range: 5"#,
        ),
        (
            "{{ index .List 2 }}",
            r#"template: t:1:3: executing "t" at <index .List 2>: error calling index: reflect: slice index out of range"#,
        ),
        (
            "{{ index .PodMeta.Labels 1 }}",
            r#"template: t:1:3: executing "t" at <index .PodMeta.Labels 1>: error calling index: value has type int; should be string"#,
        ),
        (
            "{{ index .PodMeta.Labels.x 1 }}",
            r#"template: t:1:3: executing "t" at <index .PodMeta.Labels.x 1>: error calling index: index of untyped nil"#,
        ),
        (
            r#"{{ index .List "a" }}"#,
            r#"template: t:1:3: executing "t" at <index .List "a">: error calling index: cannot index slice/array with type string"#,
        ),
        (
            "{{ index .Zero 1 }}",
            r#"template: t:1:3: executing "t" at <index .Zero 1>: error calling index: can't index item of type int"#,
        ),
        (
            "{{ len 3 }}",
            r#"template: t:1:3: executing "t" at <len 3>: error calling len: len of type int"#,
        ),
        (
            "{{ len }}",
            r#"template: t:1:3: executing "t" at <len>: wrong number of args for len: want 1 got 0"#,
        ),
        (
            "{{ not 1 2 }}",
            r#"template: t:1:3: executing "t" at <not>: wrong number of args for not: want 1 got 2"#,
        ),
        (
            "{{ and }}",
            r#"template: t:1:3: executing "t" at <and>: wrong number of args for and: want at least 1 got 0"#,
        ),
        (
            r#"{{ eq 1 "a" }}"#,
            r#"template: t:1:3: executing "t" at <eq 1 "a">: error calling eq: incompatible types for comparison: int and string"#,
        ),
        (
            "{{ eq 1 }}",
            r#"template: t:1:3: executing "t" at <eq 1>: error calling eq: missing argument for comparison"#,
        ),
        (
            "{{ lt .List 1 }}",
            r#"template: t:1:3: executing "t" at <lt .List 1>: error calling lt: invalid type for comparison"#,
        ),
        (
            "{{ eq .List .List }}",
            r#"template: t:1:3: executing "t" at <eq .List .List>: error calling eq: non-comparable type [a b]: []string"#,
        ),
        (
            "{{ printf 1 }}",
            r#"template: t:1:10: executing "t" at <1>: expected string; found 1"#,
        ),
        (
            "{{ 1 | printf }}",
            r#"template: t:1:7: executing "t" at <printf>: wrong type for value; expected string; got int"#,
        ),
        (
            "{{ printf .Nothing }}",
            r#"template: t:1:10: executing "t" at <.Nothing>: invalid value; expected string"#,
        ),
        (
            "{{ printf nil }}",
            r#"template: t:1:10: executing "t" at <nil>: cannot assign nil to string"#,
        ),
        (
            "{{ nil }}",
            r#"template: t:1:3: executing "t" at <nil>: nil is not a command"#,
        ),
        (
            "{{ 3 2 }}",
            r#"template: t:1:3: executing "t" at <3>: can't give argument to non-function 3"#,
        ),
        (
            "{{ $x := 1 }}{{ $x 2 }}",
            r#"template: t:1:16: executing "t" at <$x>: can't give argument to non-function $x"#,
        ),
        (
            "{{ .PodMeta.Name 1 }}",
            r#"template: t:1:11: executing "t" at <.PodMeta.Name>: Name has arguments but cannot be invoked as function"#,
        ),
        (
            "{{ .PodMeta.Labels.app 1 }}",
            r#"template: t:1:11: executing "t" at <.PodMeta.Labels.app>: app is not a method but has arguments"#,
        ),
        (
            "{{ range .ClusterName }}{{ end }}",
            r#"template: t:1:9: executing "t" at <.ClusterName>: range can't iterate over demo"#,
        ),
        (
            "{{ range $i, $v := 3 }}{{ end }}",
            r#"template: t:1:19: executing "t" at <3>: can't use 3 to iterate over more than one variable"#,
        ),
        (
            "{{ 18446744073709551615 }}",
            r#"template: t:1:3: executing "t" at <18446744073709551615>: 18446744073709551615 overflows int"#,
        ),
        // Go reports the assignment at the node evaluated last.
        (
            "{{ $x = 1 }}",
            r#"template: t:1:8: executing "t" at <1>: undefined variable: $x"#,
        ),
        // As in Go, a field error after a parenthesised pipeline names the node evaluated
        // last, the pipeline's last argument.
        (
            "{{ if .PodMeta }}\n  {{ (index .PodMeta.Labels \"app\").Foo }}\n{{ end }}",
            r#"template: t:2:28: executing "t" at <"app">: can't evaluate field Foo in type string"#,
        ),
        (
            "{{ (.PodMeta).Foo }}",
            r#"template: t:1:4: executing "t" at <.PodMeta>: can't evaluate field Foo in type struct"#,
        ),
    ]);
}

#[test]
fn runaway_templates_are_stopped() {
    let err = render("{{ range 2000000 }}{{ end }}", &pod_data()).expect_err("too many iterations");
    assert!(
        err.message()
            .ends_with("more than 1000000 range iterations"),
        "{err}"
    );
    let err = render(
        r#"{{ range 2000 }}{{ printf "%1000d" 1 }}{{ end }}"#,
        &pod_data(),
    )
    .expect_err("too much output");
    assert!(
        err.message().ends_with("output exceeds 1048576 bytes"),
        "{err}"
    );
}
