//! Templates that must render exactly as Go's `text/template` renders them.

mod support;

use spire_gotmpl::{Template, Value};
use support::{legacy_data, pod_data, render};

fn check(cases: &[(&str, &str)], data: &Value) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        match render(text, data) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{text:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn controller_manager_templates() {
    check(
        &[
            (
                "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
                "spiffe://example.org/ns/prod/sa/web-sa",
            ),
            (
                "spiffe://{{ .TrustDomain }}/spire/agent/k8s_psat/{{ .ClusterName }}/{{ .NodeMeta.UID }}",
                "spiffe://example.org/spire/agent/k8s_psat/demo/9f1c-node",
            ),
            (r#"{{ index .PodMeta.Labels "app" }}"#, "web"),
            ("{{ .PodMeta.Labels.app }}", "web"),
            (
                r#"k8s:pod-label:app:{{ index .PodMeta.Labels "app.kubernetes.io/name" }}"#,
                "k8s:pod-label:app:frontend",
            ),
            (
                "{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc.{{ .ClusterDomain }}",
                "web-0.prod.svc.cluster.local",
            ),
            ("k8s:pod-uid:{{ .PodMeta.UID }}", "k8s:pod-uid:0b3a-pod"),
        ],
        &pod_data(),
    );
}

#[test]
fn legacy_registrar_templates() {
    check(
        &[
            (
                "ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}",
                "ns/prod/sa/web-sa",
            ),
            ("{{.Pod.Name}}", "web-0"),
            ("{{.Context.Region}}", "eu-west-1"),
            (
                "region/{{.Context.Region}}/{{.Pod.NodeName}}/{{.Pod.Hostname}}",
                "region/eu-west-1/node-1/web-0",
            ),
        ],
        &legacy_data(),
    );
}

#[test]
fn missing_map_keys_print_no_value_by_field_but_zero_by_index() {
    check(
        &[
            // Go's text/template: an invalid value from a missing key prints <no value>,
            // also for map[string]string; index returns the element type's zero value.
            ("[{{ .PodMeta.Labels.missing }}]", "[<no value>]"),
            (r#"[{{ index .PodMeta.Labels "missing" }}]"#, "[]"),
            (r#"[{{ index .PodMeta.Annotations "missing" }}]"#, "[]"),
            ("[{{ .PodMeta.Labels.missing.deeper }}]", "[<no value>]"),
            ("[{{ .Nothing }}]", "[<no value>]"),
            ("[{{ .Nothing.Field }}]", "[<no value>]"),
            (
                "{{ if .PodMeta.Labels.missing }}yes{{ else }}no{{ end }}",
                "no",
            ),
            ("{{ print .PodMeta.Labels.missing }}", "<nil>"),
        ],
        &pod_data(),
    );
    check(&[("[{{ .Context.Zone }}]", "[<no value>]")], &legacy_data());
}

#[test]
fn whitespace_trimming() {
    check(
        &[
            ("a  \n {{- .ClusterName -}} \n\t b", "ademob"),
            ("a {{- .ClusterName }} b", "ademo b"),
            ("a {{ .ClusterName -}} b", "a demob"),
            ("a\t{{-\n.ClusterName\n-}}\tb", "ademob"),
            ("{{- /* a comment */ -}}\n  x", "x"),
            ("x \n{{- /* a comment */}} y", "x y"),
            ("a{{/* a\nmultiline comment */}}b", "ab"),
            // Without a space after the dash, `-3` is a number and nothing is trimmed.
            ("a {{-3}} b", "a -3 b"),
            ("a {{ 3 }} b", "a 3 b"),
            ("{{ .ClusterName\n}}", "demo"),
        ],
        &pod_data(),
    );
}

#[test]
fn conditionals() {
    let cases = [
        ("{{ if .X }}a{{ else }}b{{ end }}", true, "a"),
        ("{{ if .X }}a{{ else }}b{{ end }}", false, "b"),
        ("{{ if not .X }}a{{ end }}", false, "a"),
        (
            "{{ if and .X .Y }}a{{ else if .X }}b{{ else }}c{{ end }}",
            true,
            "b",
        ),
        (
            "{{ if .X }}{{ if .Y }}a{{ else }}b{{ end }}{{ end }}",
            true,
            "b",
        ),
    ];
    for (text, x, want) in cases {
        let data = Value::structure([("X", Value::Bool(x)), ("Y", Value::Bool(false))]);
        assert_eq!(
            render(text, &data).as_deref(),
            Ok(want),
            "{text} with X={x}"
        );
    }
    check(
        &[
            ("{{ if .Zero }}a{{ else }}b{{ end }}", "b"),
            ("{{ if .List }}a{{ end }}", "a"),
            ("{{ if .PodMeta.Annotations }}a{{ else }}b{{ end }}", "b"),
            ("{{ if .PodMeta }}a{{ end }}", "a"),
            (
                "{{ if eq 1 3 }}1{{ else if eq 2 3 }}2{{ else if eq 3 3 }}3{{ end }}",
                "3",
            ),
            (
                "{{ with .PodMeta }}{{ .Name }}/{{ $.ClusterName }}{{ end }}",
                "web-0/demo",
            ),
            (
                "{{ with .PodMeta.Labels.nope }}x{{ else }}none{{ end }}",
                "none",
            ),
            (
                "{{ with .Zero }}x{{ else with .ClusterName }}{{ . }}{{ end }}",
                "demo",
            ),
            ("{{ with $n := .PodMeta.Name }}{{ $n }}{{ end }}", "web-0"),
        ],
        &pod_data(),
    );
}

#[test]
fn ranges() {
    check(
        &[
            ("{{ range .List }}<{{ . }}>{{ end }}", "<a><b>"),
            (
                "{{ range $i, $v := .List }}{{ $i }}={{ $v }};{{ end }}",
                "0=a;1=b;",
            ),
            ("{{ range $v := .List }}{{ $v }}{{ end }}", "ab"),
            (
                "{{ range $k, $v := .PodMeta.Labels }}{{ $k }}:{{ $v }},{{ end }}",
                "app:web,app.kubernetes.io/name:frontend,",
            ),
            ("{{ range .Nested }}{{ .b }} {{ end }}", "deep other "),
            (
                "{{ range .PodMeta.Annotations }}x{{ else }}none{{ end }}",
                "none",
            ),
            ("{{ range .Nothing }}x{{ else }}none{{ end }}", "none"),
            ("{{ range 3 }}{{ . }}{{ end }}", "012"),
            ("{{ range $v := 0 }}x{{ else }}empty{{ end }}", "empty"),
            ("{{ range .List }}{{ $.ClusterName }}{{ end }}", "demodemo"),
            ("{{ $i := 9 }}{{ range $i = .List }}{{ end }}{{ $i }}", "b"),
            ("{{ range .List }}{{ $x := . }}{{ $x }}{{ end }}", "ab"),
        ],
        &pod_data(),
    );
}

#[test]
fn printf_and_printing() {
    check(
        &[
            (
                r#"{{ printf "%s-%d-%v-%q" .ClusterName 42 true "x" }}"#,
                r#"demo-42-true-"x""#,
            ),
            (
                r#"{{ printf "%05d|%-4s|%x|%X|%o|%b|%c|%U" 42 "ab" 255 255 8 5 65 65 }}"#,
                "00042|ab  |ff|FF|10|101|A|U+0041",
            ),
            (
                r#"{{ printf "%+d|% d|%#x|%#o|%x" 5 5 255 8 "hi" }}"#,
                "+5| 5|0xff|010|6869",
            ),
            (
                r#"{{ printf "%6.2s|%.1q|%5t|%-5d|" "abc" "xyz" true 7 }}"#,
                r#"    ab|"x"| true|7    |"#,
            ),
            (r#"{{ printf "%d" "x" }}"#, "%!d(string=x)"),
            (r#"{{ printf "%d %d" 1 }}"#, "1 %!d(MISSING)"),
            (r#"{{ printf "%d" 1 2 "x" }}"#, "1%!(EXTRA int=2, string=x)"),
            (r#"{{ printf "%[2]d %[1]d" 1 2 }}"#, "2 1"),
            (r#"{{ printf "%*d|%-*d|" 4 7 3 8 }}"#, "   7|8  |"),
            (r#"{{ printf "%.0d|%%|%z" 0 1 }}"#, "|%|%!z(int=1)"),
            (
                r#"{{ printf "%v %s" .Nothing .Nothing }}"#,
                "<nil> %!s(<nil>)",
            ),
            (
                r#"{{ printf "%v" .PodMeta.Labels }}"#,
                "map[app:web app.kubernetes.io/name:frontend]",
            ),
            (r#"{{ printf "%q" .List }}"#, r#"["a" "b"]"#),
            (
                r#"{{ printf "%T %T %T %T" .List .PodMeta.Labels 1 "s" }}"#,
                "[]string map[string]string int string",
            ),
            (
                r#"{{ printf "%+v" .NodeMeta }}"#,
                "{Name:node-1 UID:9f1c-node}",
            ),
            (
                r#"{{ printf "%#v %#v" "a" .List }}"#,
                r#""a" []string{"a", "b"}"#,
            ),
            (r#"{{ printf "%q" "tab\there" }}"#, r#""tab\there""#),
            (r#"{{ printf "%x" }}"#, "%!x(MISSING)"),
            (r#"{{ printf "%" }}"#, "%!(NOVERB)"),
            (r#"{{ .ClusterName | printf "%s!" }}"#, "demo!"),
            (r#"{{ "x" | printf "%s%s" "y" }}"#, "yx"),
            (
                "{{ .List }} {{ .PodMeta.Labels }} {{ .NodeMeta }}",
                "[a b] map[app:web app.kubernetes.io/name:frontend] {node-1 9f1c-node}",
            ),
            (
                "{{ 42 }} {{ -7 }} {{ true }} {{ \"s\" }} {{ `r` }} {{ 'a' }} {{ 0x10 }} {{ 1_000 }} {{ 0o17 }}",
                "42 -7 true s r 97 16 1000 15",
            ),
            (r#"{{ print 1 2 "a" "b" 3 }}"#, "1 2ab3"),
            (r#"{{ print }}|{{ println 1 "a" }}|"#, "|1 a\n|"),
            (r#"{{ print nil }}"#, "<nil>"),
        ],
        &pod_data(),
    );
}

#[test]
fn builtin_functions() {
    check(
        &[
            (
                "{{ len .List }} {{ len .PodMeta.Labels }} {{ len \"héllo\" }}",
                "2 2 6",
            ),
            ("{{ index .List 1 }}", "b"),
            (r#"{{ index .Nested "a" "b" }}"#, "deep"),
            (r#"{{ index "hi" 0 }}"#, "104"),
            ("{{ index .List }}", "[a b]"),
            (r#"{{ (index .Nested "c").b }}"#, "other"),
            (
                r#"{{ eq .ClusterName "demo" }} {{ eq 1 2 1 }} {{ ne 1 2 }}"#,
                "true true true",
            ),
            (
                r#"{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }}"#,
                "true true true false",
            ),
            (
                "{{ eq .Nothing .Nothing }} {{ eq .Nothing 1 }}",
                "true false",
            ),
            (r#"{{ eq (index "hi" 0) 104 }}"#, "true"),
            (
                "{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" \"x\" }} {{ or 0 false }}",
                "0 2 x false",
            ),
            ("{{ not .List }} {{ not .Zero }}", "false true"),
            ("{{ and 1 .PodMeta.Labels.missing }}", "<no value>"),
            ("{{ 1 | and 1 }} {{ 0 | or 0 }}", "1 0"),
            ("{{ or .List \"empty\" }}", "[a b]"),
            (
                r#"{{ html "<a href='x'>&\"" }}"#,
                "&lt;a href=&#39;x&#39;&gt;&amp;&#34;",
            ),
            (r#"{{ html .Nothing }}"#, "&lt;no value&gt;"),
            (r#"{{ urlquery "a b/c?d=é" }}"#, "a+b%2Fc%3Fd%3D%C3%A9"),
            (
                "{{ $td := .TrustDomain }}{{ with .PodMeta }}{{ $td }}/{{ .Name }}{{ end }}",
                "example.org/web-0",
            ),
            (
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
                "2",
            ),
            (
                "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ end }}{{ $x }}",
                "1",
            ),
            ("{{ $ := .PodMeta }}{{ $.Name }}", "web-0"),
            ("{{ ($).ClusterName }} {{ (.PodMeta).Name }}", "demo web-0"),
            ("{{ .PodMeta.Name | len }}", "5"),
        ],
        &pod_data(),
    );
}

#[test]
fn text_without_actions_renders_verbatim() {
    check(
        &[
            ("", ""),
            ("plain } { text", "plain } { text"),
            ("a}}b", "a}}b"),
        ],
        &pod_data(),
    );
}

#[test]
fn templates_and_errors_are_shareable_across_threads() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shareable::<Template>();
    shareable::<Value>();
    shareable::<spire_gotmpl::Error>();
}

#[test]
fn a_template_renders_repeatedly_and_across_threads() {
    let template = Template::parse(
        "id",
        "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}",
    )
    .expect("valid template");
    assert_eq!(template.name(), "id");
    let data = pod_data();
    for _ in 0..3 {
        assert_eq!(
            template.execute(&data).as_deref(),
            Ok("spiffe://example.org/ns/prod")
        );
    }
    let shared = template.clone();
    let rendered = std::thread::spawn(move || shared.execute(&pod_data()))
        .join()
        .expect("render thread");
    assert_eq!(rendered.as_deref(), Ok("spiffe://example.org/ns/prod"));
}

#[test]
fn nesting_up_to_the_limit_renders() {
    let depth = spire_gotmpl::MAX_DEPTH;
    let text = format!(
        "{}x{}",
        "{{ if true }}".repeat(depth),
        "{{ end }}".repeat(depth)
    );
    assert_eq!(render(&text, &pod_data()).as_deref(), Ok("x"));
    let text = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(render(&text, &pod_data()).as_deref(), Ok("1"));
}
