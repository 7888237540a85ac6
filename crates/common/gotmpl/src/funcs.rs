//! Go's built-in template functions (the supported ones).
//!
//! Errors are the function's own message; the evaluator wraps it as Go does
//! (`error calling index: …`).

use std::borrow::Cow;

use crate::Value;
use crate::print;
use crate::value::{Val, zero_elem};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Urlquery,
}

/// What a function name means to the parser.
pub(crate) enum Lookup {
    Supported(Func),
    /// A Go built-in outside the supported subset.
    Unsupported,
    Unknown,
}

/// How Go converts an argument for a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// `reflect.Value`: any value, nil passes as no value.
    Reflect,
    /// `any`: any value.
    Any,
    /// `string`: a string, or an error.
    String,
}

/// A function's Go signature: fixed parameters, then optionally a variadic one.
pub(crate) struct Signature {
    pub(crate) fixed: &'static [Param],
    pub(crate) variadic: Option<Param>,
}

// === impl Func ===

impl Func {
    pub(crate) fn lookup(name: &str) -> Lookup {
        Lookup::Supported(match name {
            "and" => Self::And,
            "or" => Self::Or,
            "not" => Self::Not,
            "len" => Self::Len,
            "index" => Self::Index,
            "print" => Self::Print,
            "printf" => Self::Printf,
            "println" => Self::Println,
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "html" => Self::Html,
            "urlquery" => Self::Urlquery,
            "call" | "js" | "slice" => return Lookup::Unsupported,
            _ => return Lookup::Unknown,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::And => "and",
            Self::Or => "or",
            Self::Not => "not",
            Self::Len => "len",
            Self::Index => "index",
            Self::Print => "print",
            Self::Printf => "printf",
            Self::Println => "println",
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Html => "html",
            Self::Urlquery => "urlquery",
        }
    }

    pub(crate) fn signature(self) -> Signature {
        use Param::*;
        let (fixed, variadic): (&'static [Param], _) = match self {
            Self::And | Self::Or | Self::Index | Self::Eq => (&[Reflect], Some(Reflect)),
            Self::Not | Self::Len => (&[Reflect], None),
            Self::Print | Self::Println | Self::Html | Self::Urlquery => (&[], Some(Any)),
            Self::Printf => (&[String], Some(Any)),
            Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge => (&[Reflect, Reflect], None),
        };
        Signature { fixed, variadic }
    }
}

/// Calls `func` (not `and`/`or`, which the evaluator short-circuits) on checked arguments.
pub(crate) fn call<'a>(func: Func, args: &[Val<'a>]) -> Result<Val<'a>, String> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Val::Invalid);
    let rest = args.get(1..).unwrap_or_default();
    let owned = |s: String| Val::Str(Cow::Owned(s));
    Ok(match func {
        Func::And | Func::Or => return Err("internal error: and/or are evaluated lazily".into()),
        Func::Not => Val::Bool(!arg(0).is_true()),
        Func::Len => Val::Int(len(&arg(0))?),
        Func::Index => index(args)?,
        Func::Print => owned(print::sprint(args)),
        Func::Println => owned(print::sprintln(args)),
        Func::Printf => match args.first() {
            Some(Val::Str(format)) => owned(print::sprintf(format, rest)),
            _ => return Err("internal error: printf format is not a string".into()),
        },
        Func::Eq => Val::Bool(eq(&arg(0), rest)?),
        Func::Ne => Val::Bool(!eq(&arg(0), rest)?),
        Func::Lt => Val::Bool(lt(&arg(0), &arg(1))?),
        Func::Le => Val::Bool(lt(&arg(0), &arg(1))? || eq(&arg(0), rest)?),
        Func::Gt => Val::Bool(!(lt(&arg(0), &arg(1))? || eq(&arg(0), rest)?)),
        Func::Ge => Val::Bool(!lt(&arg(0), &arg(1))?),
        Func::Html => owned(html_escape(&escaper_text(args))),
        Func::Urlquery => owned(query_escape(&escaper_text(args))),
    })
}

fn len(v: &Val<'_>) -> Result<i64, String> {
    let n = match v {
        Val::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        Val::Str(s) => s.len(),
        Val::Ref(Value::List(l)) => l.len(),
        Val::Ref(Value::Map(m)) => m.len(),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `index x 1 2` is `x[1][2]`: lists and strings by integer, maps by string key.
fn index<'a>(args: &[Val<'a>]) -> Result<Val<'a>, String> {
    let Some((first, indexes)) = args.split_first() else {
        return Err("index of untyped nil".into());
    };
    if matches!(first, Val::Invalid) {
        return Err("index of untyped nil".into());
    }
    let mut item = first.clone();
    for idx in indexes {
        item = match &item {
            Val::Invalid => return Err("index of nil pointer".into()),
            Val::Ref(Value::List(l)) => {
                let x = index_arg(idx, l.len())?;
                let elem = l.get(x).ok_or("reflect: slice index out of range")?;
                Val::of(elem)
            }
            Val::Str(s) => {
                let x = index_arg(idx, s.len())?;
                let byte = s
                    .as_bytes()
                    .get(x)
                    .ok_or("reflect: string index out of range")?;
                Val::Int(i64::from(*byte))
            }
            Val::Ref(Value::Map(m)) => {
                let key = match idx {
                    Val::Str(k) => k,
                    Val::Invalid => return Err("value is nil; should be of type string".into()),
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ));
                    }
                };
                m.get(key.as_ref()).map_or_else(|| zero_elem(m), Val::of)
            }
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn index_arg(idx: &Val<'_>, cap: usize) -> Result<usize, String> {
    match idx {
        Val::Int(x) => match usize::try_from(*x) {
            Ok(u) if u <= cap => Ok(u),
            _ => Err(format!("index out of range: {x}")),
        },
        Val::Invalid => Err("cannot index slice/array with nil".into()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BasicKind {
    Bool,
    Int,
    String,
    /// Not a basic kind (no value, list, map, struct).
    Other,
}

fn basic_kind(v: &Val<'_>) -> BasicKind {
    match v {
        Val::Bool(_) => BasicKind::Bool,
        Val::Int(_) => BasicKind::Int,
        Val::Str(_) => BasicKind::String,
        Val::Invalid | Val::Ref(_) => BasicKind::Other,
    }
}

/// `eq a b c…`: `a == b || a == c || …`, with Go's comparability rules.
fn eq(a: &Val<'_>, others: &[Val<'_>]) -> Result<bool, String> {
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in others {
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            if !matches!(a, Val::Invalid) && !matches!(b, Val::Invalid) {
                return Err(format!(
                    "incompatible types for comparison: {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
            false
        } else {
            match (a, b) {
                (Val::Bool(x), Val::Bool(y)) => x == y,
                (Val::Int(x), Val::Int(y)) => x == y,
                (Val::Str(x), Val::Str(y)) => x == y,
                (Val::Invalid, _) | (_, Val::Invalid) => {
                    matches!(a, Val::Invalid) == matches!(b, Val::Invalid)
                }
                (Val::Ref(x), Val::Ref(y)) => {
                    if std::mem::discriminant(*x) != std::mem::discriminant(*y) {
                        return Err(format!(
                            "non-comparable types {}: {}, {}: {}",
                            print::sprint_verb(a, 's'),
                            a.type_name(),
                            b.type_name(),
                            print::sprint_verb(b, 'v')
                        ));
                    }
                    if !comparable(y) {
                        return Err(format!(
                            "non-comparable type {}: {}",
                            print::sprint_verb(b, 's'),
                            b.type_name()
                        ));
                    }
                    x == y
                }
                _ => false,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `Type.Comparable`: slices and maps are not, structs are when their fields are.
fn comparable(v: &Value) -> bool {
    match v {
        Value::List(_) | Value::Map(_) => false,
        Value::Struct(fields) => fields.values().all(comparable),
        Value::Nil | Value::Bool(_) | Value::Int(_) | Value::String(_) => true,
    }
}

fn lt(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    let (k1, k2) = (basic_kind(a), basic_kind(b));
    if k1 == BasicKind::Other || k2 == BasicKind::Other {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return Err(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        ));
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x < y),
        (Val::Str(x), Val::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".into()),
    }
}

/// The text of the arguments of `html` and `urlquery` (Go's `evalArgs`).
fn escaper_text(args: &[Val<'_>]) -> String {
    if let [Val::Str(s)] = args {
        return s.to_string();
    }
    let args: Vec<Val<'_>> = args
        .iter()
        .map(|a| match a {
            Val::Invalid => Val::Str(Cow::Borrowed("<no value>")),
            a => a.clone(),
        })
        .collect();
    print::sprint(&args)
}

/// Go's `HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
    }
    out
}
