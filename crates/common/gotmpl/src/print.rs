//! Go's `fmt` printing of values: `%v` for actions, `Sprint`, `Sprintln` and `Sprintf`
//! for `print`, `println` and `printf`.
//!
//! Verbs: `v` (with `+` and `#`), `s`, `q`, `d`, `b`, `o`, `O`, `x`, `X`, `c`, `U`, `t`,
//! `T`, `%%`, flags `+ - # 0 space`, width and precision (also `*`), argument indexes
//! `[n]`, and Go's `%!verb(type=value)`, `%!verb(MISSING)`, `%!(EXTRA …)` markers.
//! Not supported: floating-point verbs (no float values exist) and `%p` (no pointers):
//! they print as bad verbs. `%#v` of lists, maps and structs uses this crate's type names.

use std::fmt::Write as _;

use crate::Value;
use crate::quote::{can_backquote, is_print, quote, quote_rune};
use crate::value::Val;

/// Flags, width and precision of one verb.
#[derive(Clone, Copy, Debug, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Width and precision above this are Go's "too large" (`%!(BADWIDTH)`).
const TOO_LARGE: usize = 1_000_000;

/// Appends `v` as Go's `fmt.Print` would (`%v`).
pub(crate) fn write_value(out: &mut String, v: &Val<'_>) {
    print_arg(out, Spec::default(), v, 'v');
}

/// `fmt.Sprint` of one value with `verb`, for error messages.
pub(crate) fn sprint_verb(v: &Val<'_>, verb: char) -> String {
    let mut out = String::new();
    print_arg(&mut out, Spec::default(), v, verb);
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Val<'_>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, Spec::default(), a, 'v');
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, then a newline.
pub(crate) fn sprintln(args: &[Val<'_>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, Spec::default(), a, 'v');
    }
    out.push('\n');
    out
}

/// Go's `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Val<'_>]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    Printf {
        format: format.as_bytes(),
        args,
        arg_num: 0,
        reordered: false,
        good_arg_num: true,
        out: &mut out,
    }
    .run(format);
    out
}

struct Printf<'f, 'v, 'a, 'o> {
    format: &'f [u8],
    args: &'v [Val<'a>],
    arg_num: usize,
    reordered: bool,
    good_arg_num: bool,
    out: &'o mut String,
}

impl Printf<'_, '_, '_, '_> {
    fn run(&mut self, format: &str) {
        let end = self.format.len();
        let mut i = 0;
        while i < end {
            self.good_arg_num = true;
            let last = i;
            while i < end && self.format[i] != b'%' {
                i += 1;
            }
            self.out.push_str(&format[last..i]);
            if i >= end {
                break;
            }
            i += 1;
            let mut spec = Spec::default();
            while i < end {
                match self.format[i] {
                    b'#' => spec.sharp = true,
                    b'0' => spec.zero = !spec.minus,
                    b'+' => spec.plus = true,
                    b'-' => {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    b' ' => spec.space = true,
                    _ => break,
                }
                i += 1;
            }
            let mut after_index;
            (i, after_index) = self.arg_number(i);
            if i < end && self.format[i] == b'*' {
                i += 1;
                match self.int_from_arg() {
                    None => self.out.push_str("%!(BADWIDTH)"),
                    Some(w) => {
                        spec.width = usize::try_from(w.unsigned_abs()).ok();
                        if w < 0 {
                            spec.minus = true;
                            spec.zero = false;
                        }
                    }
                }
                after_index = false;
            } else {
                let (w, ni) = parse_num(self.format, i, end);
                spec.width = w;
                i = ni;
                if after_index && spec.width.is_some() {
                    self.good_arg_num = false;
                }
            }
            if i + 1 < end && self.format[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (i, after_index) = self.arg_number(i);
                if i < end && self.format[i] == b'*' {
                    i += 1;
                    spec.prec = self.int_from_arg().and_then(|p| usize::try_from(p).ok());
                    if spec.prec.is_none() {
                        self.out.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (p, ni) = parse_num(self.format, i, end);
                    spec.prec = Some(p.unwrap_or(0));
                    i = ni;
                }
            }
            if !after_index {
                (i, _) = self.arg_number(i);
            }
            if i >= end {
                self.out.push_str("%!(NOVERB)");
                break;
            }
            let verb = format[i..].chars().next().unwrap_or('%');
            i += verb.len_utf8();
            if verb == '%' {
                self.out.push('%');
            } else if !self.good_arg_num {
                let _ = write!(self.out, "%!{verb}(BADINDEX)");
            } else if self.arg_num >= self.args.len() {
                let _ = write!(self.out, "%!{verb}(MISSING)");
            } else {
                if verb == 'v' {
                    spec.sharp_v = spec.sharp;
                    spec.sharp = false;
                    spec.plus_v = spec.plus;
                    spec.plus = false;
                }
                print_arg(self.out, spec, &self.args[self.arg_num], verb);
                self.arg_num += 1;
            }
        }
        if !self.reordered && self.arg_num < self.args.len() {
            self.out.push_str("%!(EXTRA ");
            for (i, a) in self.args[self.arg_num..].iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                if matches!(a, Val::Invalid) {
                    self.out.push_str("<nil>");
                } else {
                    self.out.push_str(&a.type_name());
                    self.out.push('=');
                    print_arg(self.out, Spec::default(), a, 'v');
                }
            }
            self.out.push(')');
        }
    }

    /// Parses an argument index `[n]` at `i`; returns the new position and whether one was
    /// there.
    fn arg_number(&mut self, i: usize) -> (usize, bool) {
        if self.format.get(i) != Some(&b'[') {
            return (i, false);
        }
        self.reordered = true;
        let rest = &self.format[i..];
        let close = if rest.len() < 3 {
            None
        } else {
            rest.iter().position(|&b| b == b']')
        };
        let Some(close) = close else {
            self.good_arg_num = false;
            return (i + 1, false);
        };
        match parse_num(rest, 1, close) {
            (Some(n), ni) if ni == close && n >= 1 && n - 1 < self.args.len() => {
                self.arg_num = n - 1;
                (i + close + 1, true)
            }
            (Some(_), ni) if ni == close => {
                self.good_arg_num = false;
                (i + close + 1, true)
            }
            _ => {
                self.good_arg_num = false;
                (i + close + 1, false)
            }
        }
    }

    /// The int argument for a `*` width or precision (consumed if present).
    fn int_from_arg(&mut self) -> Option<i64> {
        let arg = self.args.get(self.arg_num)?;
        self.arg_num += 1;
        match arg {
            Val::Int(n) if n.unsigned_abs() <= TOO_LARGE as u64 => Some(*n),
            _ => None,
        }
    }
}

/// Go's `parsenum`: decimal digits from `start` to at most `end`.
fn parse_num(s: &[u8], start: usize, end: usize) -> (Option<usize>, usize) {
    let mut i = start;
    let mut num: Option<usize> = None;
    while i < end && s[i].is_ascii_digit() {
        let n = num.unwrap_or(0);
        if n > TOO_LARGE {
            return (None, end);
        }
        num = Some(n * 10 + usize::from(s[i] - b'0'));
        i += 1;
    }
    (num, i)
}

fn print_arg(out: &mut String, spec: Spec, v: &Val<'_>, verb: char) {
    match (v, verb) {
        (Val::Invalid, 'T' | 'v') => pad(out, spec, "<nil>"),
        (Val::Invalid, _) | (_, 'p') => bad_verb(out, spec, v, verb),
        (_, 'T') => fmt_s(out, spec, &v.type_name()),
        _ => print_value(out, spec, v, verb),
    }
}

fn print_value(out: &mut String, spec: Spec, v: &Val<'_>, verb: char) {
    match v {
        Val::Invalid if spec.sharp_v => out.push_str("interface {}(nil)"),
        Val::Invalid => out.push_str("<nil>"),
        Val::Bool(b) => match verb {
            't' | 'v' => pad(out, spec, if *b { "true" } else { "false" }),
            _ => bad_verb(out, spec, v, verb),
        },
        Val::Int(i) => fmt_int(out, spec, *i, verb, v),
        Val::Str(s) => match verb {
            'v' if spec.sharp_v => fmt_q(out, spec, s),
            'v' | 's' => fmt_s(out, spec, s),
            'x' => fmt_sx(out, spec, s, b"0123456789abcdefx"),
            'X' => fmt_sx(out, spec, s, b"0123456789ABCDEFX"),
            'q' => fmt_q(out, spec, s),
            _ => bad_verb(out, spec, v, verb),
        },
        Val::Ref(Value::List(l)) => {
            let sep = if spec.sharp_v {
                out.push_str(&v.type_name());
                out.push('{');
                ", "
            } else {
                out.push('[');
                " "
            };
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                print_value(out, spec, &Val::of(e), verb);
            }
            out.push(if spec.sharp_v { '}' } else { ']' });
        }
        Val::Ref(Value::Map(m)) => {
            let sep = if spec.sharp_v {
                out.push_str(&v.type_name());
                out.push('{');
                ", "
            } else {
                out.push_str("map[");
                " "
            };
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                print_value(out, spec, &Val::Str(k.as_str().into()), verb);
                out.push(':');
                print_value(out, spec, &Val::of(e), verb);
            }
            out.push(if spec.sharp_v { '}' } else { ']' });
        }
        Val::Ref(Value::Struct(fields)) => {
            if spec.sharp_v {
                out.push_str("struct ");
            }
            out.push('{');
            for (i, (name, e)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(if spec.sharp_v { ", " } else { " " });
                }
                if spec.plus_v || spec.sharp_v {
                    out.push_str(name);
                    out.push(':');
                }
                print_value(out, spec, &Val::of(e), verb);
            }
            out.push('}');
        }
        Val::Ref(scalar) => print_value(out, spec, &Val::of(scalar), verb),
    }
}

/// `%!verb(type=value)`.
fn bad_verb(out: &mut String, spec: Spec, v: &Val<'_>, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if matches!(v, Val::Invalid) {
        out.push_str("<nil>");
    } else {
        out.push_str(&v.type_name());
        out.push('=');
        print_arg(out, spec, v, 'v');
    }
    out.push(')');
}

/// Pads `s` to the width in runes, with zeros if the `0` flag is set.
fn pad(out: &mut String, spec: Spec, s: &str) {
    let fill = if spec.zero { '0' } else { ' ' };
    pad_with(out, spec, s, fill);
}

fn pad_with(out: &mut String, spec: Spec, s: &str, fill: char) {
    if spec.width.is_none() {
        out.push_str(s);
        return;
    }
    let missing = spec.width.unwrap_or(0).saturating_sub(s.chars().count());
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(fill, missing));
    } else {
        out.extend(std::iter::repeat_n(fill, missing));
        out.push_str(s);
    }
}

fn truncate(s: &str, prec: Option<usize>) -> &str {
    match prec.and_then(|p| s.char_indices().nth(p)) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn fmt_s(out: &mut String, spec: Spec, s: &str) {
    pad(out, spec, truncate(s, spec.prec));
}

fn fmt_q(out: &mut String, spec: Spec, s: &str) {
    let s = truncate(s, spec.prec);
    if spec.sharp && can_backquote(s) {
        pad(out, spec, &format!("`{s}`"));
    } else {
        pad(out, spec, &quote(s, spec.plus));
    }
}

/// `%x` / `%X` of a string: hex bytes, `#` for `0x`, space flag to separate bytes.
fn fmt_sx(out: &mut String, spec: Spec, s: &str, digits: &[u8; 17]) {
    let bytes = s.as_bytes();
    let n = spec.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
    let mut buf = String::with_capacity(4 * n);
    let prefix = [char::from(b'0'), char::from(digits[16])];
    if spec.sharp && n > 0 {
        buf.extend(prefix);
    }
    for (i, b) in bytes[..n].iter().enumerate() {
        if spec.space && i > 0 {
            buf.push(' ');
            if spec.sharp {
                buf.extend(prefix);
            }
        }
        buf.push(char::from(digits[usize::from(b >> 4)]));
        buf.push(char::from(digits[usize::from(b & 15)]));
    }
    pad(out, spec, &buf);
}

fn fmt_int(out: &mut String, spec: Spec, i: i64, verb: char, v: &Val<'_>) {
    match verb {
        'v' | 'd' => fmt_integer(out, spec, i, 10, verb, false),
        'b' => fmt_integer(out, spec, i, 2, verb, false),
        'o' | 'O' => fmt_integer(out, spec, i, 8, verb, false),
        'x' => fmt_integer(out, spec, i, 16, verb, false),
        'X' => fmt_integer(out, spec, i, 16, verb, true),
        'c' => {
            let c = rune(i);
            pad(out, spec, c.encode_utf8(&mut [0; 4]));
        }
        'q' => {
            let c = rune(i);
            let mut buf = [0; 4];
            if spec.sharp && can_backquote(c.encode_utf8(&mut buf)) {
                pad(out, spec, &format!("`{c}`"));
            } else {
                pad(out, spec, &quote_rune(c, spec.plus));
            }
        }
        'U' => fmt_unicode(out, spec, i),
        _ => bad_verb(out, spec, v, verb),
    }
}

/// The rune of an integer, U+FFFD when it is not one (as Go's `%c`).
fn rune(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

/// Go's `fmtInteger`: precision or `0`-width as minimum digits, then prefix and sign.
fn fmt_integer(out: &mut String, spec: Spec, i: i64, base: u32, verb: char, upper: bool) {
    let negative = i < 0;
    let u = i.unsigned_abs();
    let mut min_digits = 0;
    if let Some(p) = spec.prec {
        min_digits = p;
        if p == 0 && u == 0 {
            pad_with(out, spec, "", ' ');
            return;
        }
    } else if spec.zero
        && !spec.minus
        && let Some(w) = spec.width
    {
        min_digits = w;
        if negative || spec.plus || spec.space {
            min_digits = min_digits.saturating_sub(1);
        }
    }
    let digits = match (base, upper) {
        (2, _) => format!("{u:b}"),
        (8, _) => format!("{u:o}"),
        (16, false) => format!("{u:x}"),
        (16, true) => format!("{u:X}"),
        _ => u.to_string(),
    };
    let mut s = String::with_capacity(digits.len().max(min_digits) + 4);
    if negative {
        s.push('-');
    } else if spec.plus {
        s.push('+');
    } else if spec.space {
        s.push(' ');
    }
    if verb == 'O' {
        s.push_str("0o");
    }
    let zeros = min_digits.saturating_sub(digits.len());
    if spec.sharp {
        match base {
            2 => s.push_str("0b"),
            8 if zeros == 0 && !digits.starts_with('0') => s.push('0'),
            16 => s.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    s.extend(std::iter::repeat_n('0', zeros));
    s.push_str(&digits);
    pad_with(out, spec, &s, ' ');
}

/// Go's `%U`: `U+0041`, with `#` also the printable rune.
fn fmt_unicode(out: &mut String, spec: Spec, i: i64) {
    let u = i as u64;
    let prec = spec.prec.filter(|p| *p > 4).unwrap_or(4);
    let mut s = format!("U+{u:0prec$X}");
    if spec.sharp
        && let Some(c) = u32::try_from(u).ok().and_then(char::from_u32)
        && is_print(c)
    {
        let _ = write!(s, " '{c}'");
    }
    pad_with(out, spec, &s, ' ');
}
