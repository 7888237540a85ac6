//! Go `text/template` semantics for the templates users write for SPIRE's Kubernetes
//! controllers (`spiffeIDTemplate`, `dnsNameTemplates`, `parentIDTemplate`,
//! `workloadSelectorTemplates`, the legacy registrar's `identity_template` and
//! `dns_name_templates`).
//!
//! Upstream renders these with Go's `text/template` over Go structs and
//! `map[string]string`s; users copy their templates between the two, so a template must
//! render byte for byte as Go renders it and fail where Go fails, with Go's message.
//!
//! # Why not a general-purpose crate
//!
//! `gtmpl`, the one Go-template crate on crates.io, had its last release in 2021 and
//! models Go data as a single object kind, so it cannot tell a struct (unknown field: an
//! execution error) from a map (missing key: no value), and its errors are not Go's.
//! This crate is a small lexer, parser and evaluator written against the Go language
//! facts (grammar, message formats), with no dependency beyond `thiserror`.
//!
//! # The supported subset
//!
//! * Text and actions `{{ }}`, trim markers `{{- ` / ` -}}` (the dash must be followed,
//!   respectively preceded, by a space, tab or newline), comments `{{/* */}}`.
//! * Field chains `.A.B.C` on [`Value::Struct`] (exact Go field names; an unknown field is
//!   Go's `can't evaluate field` execution error) and on [`Value::Map`] (exact keys; a
//!   missing key is *no value*), `$`, `.`, variables (`$x := …`, `$x = …`), parenthesised
//!   pipelines with field access (`(index .M "k").F`), `|` pipelines.
//! * Literals: strings (`"…"` and raw), integers (decimal, hex, octal, binary, `_`
//!   separators, character constants), `true`/`false`, `nil`.
//! * `if`/`else if`/`else`, `with`/`else with`/`else`, `range` over lists, maps (sorted
//!   keys) and integers, with `$v :=` / `$i, $v :=` variables and an `else` branch.
//! * Go's built-in functions `and`, `or` (short-circuit), `not`, `len`, `index` (maps,
//!   lists, strings; several keys), `print`, `printf`, `println`, `eq`, `ne`, `lt`, `le`,
//!   `gt`, `ge`, `html`, `urlquery`. No function outside Go's built-ins is defined.
//!
//! Rejected when the template is **parsed** (never at execution), with a message naming
//! the template: `define`, `template`, `block`, `break`, `continue`, the built-ins
//! `call`, `js` and `slice`, floating-point and complex constants, and nesting deeper than
//! [`MAX_DEPTH`]. Unknown functions fail as in Go: `template: NAME:1: function "foo" not
//! defined`.
//!
//! # Printing
//!
//! Strings print as is, integers in decimal, booleans as `true`/`false`, lists as
//! `[a b]`, maps as `map[k:v …]` (sorted keys), structs as `{v1 v2}` (fields in name
//! order: a [`Value::Struct`] does not know Go's declaration order). An action whose value
//! is *no value* — [`Value::Nil`], a missing map key reached by a field (`.Labels.x`) —
//! prints `<no value>`, exactly as Go's `text/template` does, also for
//! `map[string]string`. `index` on a missing key returns the map's zero element instead:
//! `""` for maps whose values are all strings (or that are empty, the Kubernetes
//! `map[string]string` case), so `{{ index .PodMeta.Labels "x" }}` renders `""` where
//! `{{ .PodMeta.Labels.x }}` renders `<no value>` — as in Go.
//!
//! `printf` implements Go's `fmt` for these kinds: verbs `%v %+v %#v %s %q %d %b %o %O %x
//! %X %c %U %t %T %%`, flags, width, precision, `*` and `[n]`, and the `%!d(string=x)`,
//! `%!d(MISSING)`, `%!(EXTRA …)` forms. `%#v` of lists, maps and structs uses the derived
//! type names below; `%q` judges printability outside ASCII by an approximation of Go's
//! Unicode tables. String escapes that would produce invalid UTF-8 (`"\xff"`) become
//! U+FFFD.
//!
//! Type names in messages (`int`, `string`, `bool`, `map[string]string`, `[]string`,
//! `struct`) are derived from the [`Value`], since it carries no Go type name.
//!
//! # Modelling Go data
//!
//! [`Value::Nil`] is Go's *untyped* nil (an empty interface, a missing key). A Go nil map
//! or slice is typed: model it as an empty [`Value::Map`] / [`Value::List`], so that
//! `index`, `len` and printing (`map[]`) behave as in Go. A nil struct pointer has no
//! exact model: as [`Value::Nil`], fields of it are *no value* (Go fails with
//! `nil pointer evaluating …`) and it prints `<no value>` (Go: `<nil>`).
//!
//! # Limits
//!
//! Beyond Go's rules, [`MAX_DEPTH`] bounds nesting at parse time, and [`MAX_OUTPUT`] and
//! [`MAX_RANGE_ITERATIONS`] bound one execution, so that a template from a custom
//! resource cannot exhaust the controller.
//!
//! # Performance
//!
//! [`Template::parse`] builds the tree once; [`Template::execute`] walks it borrowing
//! from the data, so rendering a field chain allocates nothing beyond the output string.
//! A [`Template`] is `Send + Sync` and cheap to clone (the tree is shared).
#![forbid(unsafe_code)]

mod ast;
mod exec;
mod funcs;
mod lex;
mod number;
mod parse;
mod print;
mod quote;
mod token;
mod value;

use std::collections::BTreeMap;
use std::sync::Arc;

/// The deepest nesting of control actions and parenthesised pipelines a template may use.
///
/// Go allows 10000 levels of parentheses and unbounded control nesting; this crate
/// bounds both so that parsing and execution cannot exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// The most output one execution may produce (SPIFFE IDs and DNS names are far shorter).
///
/// Go has no limit; this one keeps a hostile template from exhausting memory.
pub const MAX_OUTPUT: usize = 1 << 20;

/// The most `range` iterations one execution may run (`{{range 1000000000}}` would
/// otherwise spin: Go has no limit).
pub const MAX_RANGE_ITERATIONS: usize = 1_000_000;

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    tree: Arc<ast::Tree>,
}

/// Data a template is executed against, shaped like the Go values upstream renders.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Go's nil / a missing map key.
    Nil,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    String(String),
    /// A slice.
    List(Vec<Value>),
    /// A `map[string]…`: keys are matched exactly (`.Labels.app`, `index .Labels "app"`).
    Map(BTreeMap<String, Value>),
    /// A Go struct: fields are Go field names (`UID`, `ServiceAccountName`).
    Struct(BTreeMap<String, Value>),
}

/// A template that failed to parse or to execute; the message is Go's.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Error {
    message: String,
    kind: ErrorKind,
}

/// Whether an [`Error`] came from [`Template::parse`] or [`Template::execute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The template text is invalid or outside the supported subset.
    Parse,
    /// The template is valid but could not be rendered against the data.
    Exec,
}

// === impl Template ===

impl Template {
    /// Parses `text` as the template `name`.
    ///
    /// Errors have Go's form, `template: NAME:LINE: MESSAGE`.
    pub fn parse(name: &str, text: &str) -> Result<Self, Error> {
        let tree = parse::parse(name, text)?;
        Ok(Self {
            name: name.to_owned(),
            tree: Arc::new(tree),
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders the template against `data`.
    ///
    /// Errors have Go's form,
    /// `template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`.
    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        exec::execute(&self.name, &self.tree, data)
    }
}

// === impl Error ===

impl Error {
    pub(crate) fn parse(message: String) -> Self {
        Self {
            message,
            kind: ErrorKind::Parse,
        }
    }

    pub(crate) fn exec(message: String) -> Self {
        Self {
            message,
            kind: ErrorKind::Exec,
        }
    }

    /// The Go-formatted message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether parsing or execution failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}
