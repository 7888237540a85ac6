//! logrus's line formats as SPIRE configures them.
//!
//! * text (`log_format` unset: `time` in RFC 3339 whole seconds; `text`: RFC 3339 with
//!   nanoseconds, trailing zeros dropped as Go drops them): `time="…" level=info msg="…"`, then
//!   the fields sorted by name, each value quoted (Go `%q`) only when it holds a character other
//!   than letters, digits and `-._/@^+`; an empty message is left out.
//! * json: one object per line with every key sorted (Go marshals a map), `level`, `msg` and
//!   `time` among them; strings escaped as Go's `encoding/json` escapes them (HTML characters
//!   too), numbers and booleans bare.
//!
//! Both: the level `warn` prints as `warning`; fields named `time`, `msg` or `level` become
//! `fields.time`, …; a field set more than once keeps its innermost value (event over span,
//! inner span over outer); `log_source_location` adds `file` (base name:line) and `func` (the
//! Rust module path, where Go has the function name). Times are UTC.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use spire_time::Clock as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// SPIRE's `log_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Unset: logrus's default text formatter (RFC 3339 times in whole seconds).
    Default,
    /// `text`: the text formatter with RFC 3339 nanosecond times.
    Text,
    /// `json`: the JSON formatter with RFC 3339 nanosecond times.
    Json,
}

/// The event format.
#[derive(Debug)]
pub(super) struct Logrus {
    format: LogFormat,
    source_location: bool,
}

/// The `fmt` layer's span-field formatter: nothing (span fields are kept by [`SpanFields`]).
#[derive(Debug)]
pub(super) struct NoFields;

/// The layer that keeps every span's fields, for the lines logged inside it.
#[derive(Debug)]
pub(super) struct SpanFields;

/// A span's fields, in its extensions.
#[derive(Debug, Default)]
struct KeptFields(Fields);

/// Fields as text: every value is rendered once into `text`; entries point into it.
#[derive(Debug, Default)]
struct Fields {
    text: String,
    entries: Vec<Entry>,
    message: Option<Range<usize>>,
}

#[derive(Clone, Debug)]
struct Entry {
    key: Key,
    /// Written bare in JSON (numbers, booleans), or as a string.
    bare: bool,
    value: Range<usize>,
    /// The value in text lines when it differs from the JSON one.
    text: Option<Range<usize>>,
}

/// A field's name: a tracing field's, or one named at run time (in `Fields::text`).
#[derive(Clone, Debug)]
enum Key {
    Static(&'static str),
    Text(Range<usize>),
}

/// Records fields into [`Fields`]; `message` is the line's `msg` for events.
struct Collector<'a> {
    fields: &'a mut Fields,
    event: bool,
}

thread_local! {
    /// The fields of the line being formatted, reused from line to line.
    static SCRATCH: RefCell<Fields> = RefCell::new(Fields::default());
}

// === impl LogFormat ===

impl LogFormat {
    /// SPIRE's `log_format` values: empty, `text` or `json` in any case; otherwise its error
    /// `unknown logger format: "<text>"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(Self::Default)
        } else if text.eq_ignore_ascii_case("text") {
            Ok(Self::Text)
        } else if text.eq_ignore_ascii_case("json") {
            Ok(Self::Json)
        } else {
            Err(format!(
                "unknown logger format: {}",
                spire_id::go_fmt::quote(text)
            ))
        }
    }
}

// === impl Logrus ===

impl Logrus {
    pub(super) fn new(format: LogFormat, source_location: bool) -> Self {
        Self {
            format,
            source_location,
        }
    }

    fn write_line<S, N>(
        &self,
        fields: &mut Fields,
        ctx: &FmtContext<'_, S, N>,
        out: &mut Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fields.clear();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(kept) = span.extensions().get::<KeptFields>() {
                    fields.extend_from(&kept.0);
                }
            }
        }
        event.record(&mut Collector {
            fields,
            event: true,
        });
        let meta = event.metadata();
        if self.source_location
            && let (Some(file), Some(line)) = (meta.file(), meta.line())
        {
            let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
            fields.push("file", false, |t| write!(t, "{base}:{line}"));
            if let Some(module) = meta.module_path() {
                fields.push("func", false, |t| t.write_str(module));
            }
        }
        fields.rename_clashes();
        let time = fields.push_text(|t| {
            write_time(
                t,
                spire_time::SystemClock.now(),
                self.format != LogFormat::Default,
            )
        });
        let message = fields.message.clone().unwrap_or(0..0);
        let level = level_name(*meta.level());
        if self.format == LogFormat::Json {
            fields.push_entry("time", false, time);
            fields.push_entry("msg", false, message);
            let level = fields.push_text(|t| t.write_str(level));
            fields.push_entry("level", false, level);
            fields.sort_and_dedup();
            write_json(out, fields)
        } else {
            fields.sort_and_dedup();
            out.write_str("time=")?;
            write_text_value(out, &fields.text[time])?;
            out.write_str(" level=")?;
            out.write_str(level)?;
            if !message.is_empty() {
                out.write_str(" msg=")?;
                write_text_value(out, &fields.text[message])?;
            }
            for entry in &fields.entries {
                out.write_char(' ')?;
                out.write_str(fields.key(entry))?;
                out.write_char('=')?;
                let value = entry.text.as_ref().unwrap_or(&entry.value);
                write_text_value(out, &fields.text[value.clone()])?;
            }
            out.write_char('\n')
        }
    }
}

impl<S, N> FormatEvent<S, N> for Logrus
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut fields) => {
                let result = self.write_line(&mut fields, ctx, &mut writer, event);
                // A huge line once should not pin its memory for the thread's lifetime.
                if fields.text.capacity() > 64 * 1024 {
                    *fields = Fields::default();
                }
                result
            }
            // A value's formatting logged a line itself: format that one on the side.
            Err(_) => self.write_line(&mut Fields::default(), ctx, &mut writer, event),
        })
    }
}

/// logrus's level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

// === impl NoFields ===

impl<'writer> FormatFields<'writer> for NoFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'writer>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

// === impl SpanFields ===

impl<S> tracing_subscriber::Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut kept = KeptFields::default();
        attrs.record(&mut Collector {
            fields: &mut kept.0,
            event: false,
        });
        span.extensions_mut().insert(kept);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(kept) = extensions.get_mut::<KeptFields>() {
            values.record(&mut Collector {
                fields: &mut kept.0,
                event: false,
            });
        }
    }
}

// === impl Fields ===

impl Fields {
    fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
        self.message = None;
    }

    /// Renders a value into `text` and returns where it is.
    fn push_text(&mut self, write: impl FnOnce(&mut String) -> fmt::Result) -> Range<usize> {
        let start = self.text.len();
        // Writing to a String cannot fail; a failing Display impl leaves what it wrote.
        let _ = write(&mut self.text);
        start..self.text.len()
    }

    fn push(
        &mut self,
        key: &'static str,
        bare: bool,
        write: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        let value = self.push_text(write);
        self.push_entry(key, bare, value);
    }

    fn push_entry(&mut self, key: &'static str, bare: bool, value: Range<usize>) {
        self.entries.push(Entry {
            key: Key::Static(key),
            bare,
            value,
            text: None,
        });
    }

    /// Spreads a [`super::RuntimeFields`] into fields of their own.
    fn push_runtime(&mut self, encoded: &str) {
        let range = self.push_text(|t| t.write_str(encoded));
        let base = self.text.as_ptr() as usize;
        // Each decoded part borrows `text`; its position there is its range.
        let at = |part: &str| {
            let from = part.as_ptr() as usize - base;
            from..from + part.len()
        };
        let decoded: Vec<Entry> = super::runtime::decode(&self.text[range])
            .map(|field| Entry {
                key: Key::Text(at(field.key)),
                bare: field.bare,
                value: at(field.json),
                text: field.text.map(at),
            })
            .collect();
        self.entries.extend(decoded);
    }

    fn key<'a>(&'a self, entry: &'a Entry) -> &'a str {
        match &entry.key {
            Key::Static(key) => key,
            Key::Text(range) => &self.text[range.clone()],
        }
    }

    /// Appends a span's fields.
    fn extend_from(&mut self, other: &Self) {
        let offset = self.text.len();
        let shift = |r: &Range<usize>| r.start + offset..r.end + offset;
        self.text.push_str(&other.text);
        self.entries.extend(other.entries.iter().map(|e| Entry {
            key: match &e.key {
                Key::Static(key) => Key::Static(key),
                Key::Text(range) => Key::Text(shift(range)),
            },
            bare: e.bare,
            value: shift(&e.value),
            text: e.text.as_ref().map(shift),
        }));
    }

    /// logrus keeps `time`, `msg` and `level` for itself: fields with those names are renamed.
    fn rename_clashes(&mut self) {
        for i in 0..self.entries.len() {
            let renamed = match self.key(&self.entries[i]) {
                "time" => "fields.time",
                "msg" => "fields.msg",
                "level" => "fields.level",
                _ => continue,
            };
            self.entries[i].key = Key::Static(renamed);
        }
    }

    /// Sorts by key (bytewise, as Go sorts strings); of equal keys the last set wins.
    fn sort_and_dedup(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| self.key(a).cmp(self.key(b)));
        // `dedup_by` keeps the first of a run; reversing twice keeps the last.
        entries.reverse();
        entries.dedup_by(|a, b| self.key(a) == self.key(b));
        entries.reverse();
        self.entries = entries;
    }
}

// === impl Collector ===

impl Collector<'_> {
    fn record(
        &mut self,
        field: &Field,
        bare: bool,
        write: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        let key = field.name();
        // tracing-log's copies of a `log` record's metadata.
        if key.starts_with("log.") {
            return;
        }
        if self.event && key == "message" {
            self.fields.message = Some(self.fields.push_text(write));
        } else {
            self.fields.push(key, bare, write);
        }
    }
}

impl Visit for Collector<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, false, |t| write!(t, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == super::RUNTIME_FIELDS {
            self.fields.push_runtime(value);
            return;
        }
        self.record(field, false, |t| t.write_str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, true, |t| write!(t, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, true, |t| write!(t, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record(field, true, |t| write!(t, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record(field, true, |t| write!(t, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, true, |t| write!(t, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.record(field, true, |t| write!(t, "{value}"));
        } else {
            // Go's names; JSON has no number for them, so they are strings there.
            let name = if value.is_nan() {
                "NaN"
            } else if value > 0.0 {
                "+Inf"
            } else {
                "-Inf"
            };
            self.record(field, false, |t| t.write_str(name));
        }
    }
}

// === text ===

/// A text value as logrus writes it: bare when it holds only letters, digits and `-._/@^+`
/// (or nothing), otherwise Go-quoted.
fn write_text_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let bare = value.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/' | b'@' | b'^' | b'+')
    });
    if bare {
        out.write_str(value)
    } else {
        spire_id::go_fmt::write_quoted(out, value)
    }
}

// === json ===

fn write_json(out: &mut impl fmt::Write, fields: &Fields) -> fmt::Result {
    out.write_char('{')?;
    for (i, entry) in fields.entries.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write_json_string(out, fields.key(entry))?;
        out.write_char(':')?;
        let value = &fields.text[entry.value.clone()];
        if entry.bare {
            out.write_str(value)?;
        } else {
            write_json_string(out, value)?;
        }
    }
    out.write_str("}\n")
}

/// A JSON string as Go's `encoding/json` writes it by default: `"` and `\` escaped, `\b \f \n
/// \r \t` short, other control characters as `\u00XX`, and `<`, `>`, `&`, U+2028 and U+2029
/// as `\uXXXX` (HTML-safe).
fn write_json_string(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain = 0;
    for (i, c) in value.char_indices() {
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                None
            }
            _ => continue,
        };
        out.write_str(&value[plain..i])?;
        match escape {
            Some(text) => out.write_str(text)?,
            None => write!(out, "\\u{:04x}", c as u32)?,
        }
        plain = i + c.len_utf8();
    }
    out.write_str(&value[plain..])?;
    out.write_char('"')
}

// === time ===

/// `t` in UTC as Go's `time.RFC3339` (`nanos` false) or `time.RFC3339Nano` (fraction with
/// its trailing zeros dropped, and no `.` when it is zero).
pub(super) fn write_time(out: &mut impl fmt::Write, t: SystemTime, nanos: bool) -> fmt::Result {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )?;
    let mut fraction = since.subsec_nanos();
    if nanos && fraction != 0 {
        let mut width = 9;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        write!(out, ".{fraction:0width$}")?;
    }
    out.write_char('Z')
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
