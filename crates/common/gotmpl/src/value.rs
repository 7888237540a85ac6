//! Constructors for [`Value`], and the evaluator's borrowed view of values ([`Val`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::Value;

/// An empty list: the zero value of a list-typed map element.
pub(crate) static EMPTY_LIST: Value = Value::List(Vec::new());
/// An empty map: the zero value of a map-typed map element.
pub(crate) static EMPTY_MAP: Value = Value::Map(BTreeMap::new());

/// A value during execution: borrowed from the data or the template where possible.
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    /// Go's invalid `reflect.Value`: no value (a nil, a missing map key).
    Invalid,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    /// A list, map or struct (never a scalar or nil: see [`Val::of`]).
    Ref(&'a Value),
}

// === impl Value ===

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    /// A list value.
    pub fn list<I>(items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        Self::List(items.into_iter().map(Into::into).collect())
    }

    /// A `map[string]…` value (missing keys are *no value*, never an error).
    pub fn map<I, K, V>(entries: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Self::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A struct value from `(Go field name, value)` pairs (unknown fields are an error).
    pub fn structure<I, K, V>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Self::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The field `name` of a struct or the key `name` of a map.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Self::Struct(m) | Self::Map(m) => m.get(name),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Self::String(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Self::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Self::Int(i64::from(i))
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Self::list(items)
    }
}

/// A map such as Kubernetes labels or annotations (a `map[string]string`).
impl<V: Into<Value>> From<BTreeMap<String, V>> for Value {
    fn from(entries: BTreeMap<String, V>) -> Self {
        Self::map(entries)
    }
}

/// `None` is Go's nil.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Nil, Into::into)
    }
}

// === impl Val ===

impl<'a> Val<'a> {
    /// The evaluator's view of a data value.
    pub(crate) fn of(v: &'a Value) -> Self {
        match v {
            Value::Nil => Self::Invalid,
            Value::Bool(b) => Self::Bool(*b),
            Value::Int(i) => Self::Int(*i),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            Value::List(_) | Value::Map(_) | Value::Struct(_) => Self::Ref(v),
        }
    }

    /// Go's name of the value's type (`int`, `string`, `map[string]string`…).
    pub(crate) fn type_name(&self) -> Cow<'static, str> {
        match self {
            Self::Invalid => Cow::Borrowed("<nil>"),
            Self::Bool(_) => Cow::Borrowed("bool"),
            Self::Int(_) => Cow::Borrowed("int"),
            Self::Str(_) => Cow::Borrowed("string"),
            Self::Ref(v) => type_name(v),
        }
    }

    /// Go's truth: not the zero value of its type (structs are always true).
    pub(crate) fn is_true(&self) -> bool {
        match self {
            Self::Invalid => false,
            Self::Bool(b) => *b,
            Self::Int(i) => *i != 0,
            Self::Str(s) => !s.is_empty(),
            Self::Ref(Value::List(l)) => !l.is_empty(),
            Self::Ref(Value::Map(m)) => !m.is_empty(),
            Self::Ref(Value::Struct(_)) => true,
            Self::Ref(v) => Self::of(v).is_true(),
        }
    }
}

/// Go's name of a data value's type; element types come from the elements.
pub(crate) fn type_name(v: &Value) -> Cow<'static, str> {
    match v {
        Value::Nil => Cow::Borrowed("interface {}"),
        Value::Bool(_) => Cow::Borrowed("bool"),
        Value::Int(_) => Cow::Borrowed("int"),
        Value::String(_) => Cow::Borrowed("string"),
        Value::Struct(_) => Cow::Borrowed("struct"),
        Value::List(l) => Cow::Owned(format!("[]{}", elem_type_name(l.iter(), "interface {}"))),
        Value::Map(m) => Cow::Owned(format!(
            "map[string]{}",
            elem_type_name(m.values(), "string")
        )),
    }
}

/// The common type of the elements, `interface {}` when they differ, `empty` when none.
fn elem_type_name<'v>(
    mut elems: impl Iterator<Item = &'v Value>,
    empty: &'static str,
) -> Cow<'static, str> {
    let Some(first) = elems.next() else {
        return Cow::Borrowed(empty);
    };
    if matches!(first, Value::Nil) {
        return Cow::Borrowed("interface {}");
    }
    let name = type_name(first);
    if elems.all(|e| type_name(e) == name) {
        name
    } else {
        Cow::Borrowed("interface {}")
    }
}

/// The zero value of a map's element type: what `index` returns for a missing key.
pub(crate) fn zero_elem(m: &BTreeMap<String, Value>) -> Val<'static> {
    let mut values = m.values();
    let Some(first) = values.next() else {
        // An empty map: Kubernetes labels and annotations are map[string]string.
        return Val::Str(Cow::Borrowed(""));
    };
    let same = |a: &Value, b: &Value| std::mem::discriminant(a) == std::mem::discriminant(b);
    if !values.all(|v| same(v, first)) {
        return Val::Invalid;
    }
    match first {
        Value::String(_) => Val::Str(Cow::Borrowed("")),
        Value::Int(_) => Val::Int(0),
        Value::Bool(_) => Val::Bool(false),
        Value::List(_) => Val::Ref(&EMPTY_LIST),
        Value::Map(_) => Val::Ref(&EMPTY_MAP),
        Value::Nil | Value::Struct(_) => Val::Invalid,
    }
}
