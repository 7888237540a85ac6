//! The lexer: Go `text/template`'s item stream for the default delimiters `{{` `}}`.
//!
//! Lexing runs to the end (or to the first error, which is followed by an end item)
//! before parsing; the parser meets items in the same order as Go's lazy lexer would.

use std::borrow::Cow;

use crate::quote::{quote, unicode_name};
use crate::token::{Item, Kind, Lines};

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

#[derive(Clone, Copy)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
    Done,
}

struct Lexer<'s, 'l> {
    input: &'s str,
    lines: &'l Lines,
    pos: usize,
    start: usize,
    /// Byte width of the last rune read by `next`, for `backup`.
    width: usize,
    paren_depth: i64,
    items: Vec<Item<'s>>,
}

/// Lexes `input` into items ending with [`Kind::Eof`] (after an error item, if any).
pub(crate) fn lex<'s>(input: &'s str, lines: &Lines) -> Vec<Item<'s>> {
    let mut l = Lexer {
        input,
        lines,
        pos: 0,
        start: 0,
        width: 0,
        paren_depth: 0,
        items: Vec::new(),
    };
    let mut state = State::Text;
    loop {
        state = match state {
            State::Text => l.lex_text(),
            State::LeftDelim => l.lex_left_delim(),
            State::Comment => l.lex_comment(),
            State::RightDelim => l.lex_right_delim(),
            State::InsideAction => l.lex_inside_action(),
            State::Space => l.lex_space(),
            State::Identifier => l.lex_identifier(),
            State::Field => l.lex_field_or_variable(Kind::Field),
            State::Variable => l.lex_variable(),
            State::Char => {
                l.lex_quoted('\'', Kind::CharConstant, "unterminated character constant")
            }
            State::Number => l.lex_number(),
            State::Quote => l.lex_quoted('"', Kind::String, "unterminated quoted string"),
            State::RawQuote => l.lex_raw_quote(),
            State::Done => break,
        };
    }
    if l.items.last().is_none_or(|i| i.kind != Kind::Eof) {
        l.start = input.len();
        l.pos = input.len();
        l.emit(Kind::Eof);
    }
    l.items
}

/// Go's template space characters (inside actions and for trimming).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(char::from(b[1]))
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(char::from(b[0])) && b[1] == b'-'
}

fn right_trim_len(s: &str) -> usize {
    s.len() - s.trim_end_matches(is_space).len()
}

fn left_trim_len(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space).len()
}

// === impl Lexer ===

impl<'s> Lexer<'s, '_> {
    fn next(&mut self) -> Option<char> {
        let c = self.input[self.pos..].chars().next();
        self.width = c.map_or(0, char::len_utf8);
        self.pos += self.width;
        c
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }

    fn rest(&self) -> &'s str {
        &self.input[self.pos..]
    }

    fn emit(&mut self, kind: Kind) {
        let (line, _) = self.lines.locate(self.start);
        self.items.push(Item {
            kind,
            pos: self.start,
            val: Cow::Borrowed(&self.input[self.start..self.pos]),
            line,
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, message: String) -> State {
        let (line, _) = self.lines.locate(self.start);
        self.items.push(Item {
            kind: Kind::Error,
            pos: self.start,
            val: Cow::Owned(message),
            line,
        });
        State::Done
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    /// Whether the lexer is at `}}`, possibly preceded by a trim marker ` -`.
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    /// Whether the next character may end an identifier, field or variable.
    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) => is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(' | '}'),
        }
    }

    fn lex_text(&mut self) -> State {
        let Some(x) = self.rest().find(LEFT_DELIM) else {
            self.pos = self.input.len();
            if self.pos > self.start {
                self.emit(Kind::Text);
            }
            self.emit(Kind::Eof);
            return State::Done;
        };
        self.pos += x;
        let trim = if has_left_trim_marker(&self.input[self.pos + LEFT_DELIM.len()..]) {
            right_trim_len(&self.input[self.start..self.pos])
        } else {
            0
        };
        self.pos -= trim;
        if self.pos > self.start {
            self.emit(Kind::Text);
        }
        self.pos += trim;
        self.ignore();
        State::LeftDelim
    }

    fn lex_left_delim(&mut self) -> State {
        self.pos += LEFT_DELIM.len();
        let after_marker = if has_left_trim_marker(self.rest()) {
            2
        } else {
            0
        };
        if self.rest()[after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return State::Comment;
        }
        self.emit(Kind::LeftDelim);
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        State::InsideAction
    }

    fn lex_comment(&mut self) -> State {
        self.pos += LEFT_COMMENT.len();
        let Some(i) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".into());
        };
        self.pos += i + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT_DELIM.len();
        if trim {
            self.pos += left_trim_len(self.rest());
        }
        self.ignore();
        State::Text
    }

    fn lex_right_delim(&mut self) -> State {
        let trim = has_right_trim_marker(self.rest());
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT_DELIM.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.pos += left_trim_len(self.rest());
            self.ignore();
        }
        State::Text
    }

    fn lex_inside_action(&mut self) -> State {
        if self.at_right_delim().0 {
            if self.paren_depth == 0 {
                return State::RightDelim;
            }
            return self.error("unclosed left paren".into());
        }
        let Some(c) = self.next() else {
            return self.error("unclosed action".into());
        };
        match c {
            c if is_space(c) => {
                self.backup();
                return State::Space;
            }
            '=' => self.emit(Kind::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(Kind::Declare);
            }
            '|' => self.emit(Kind::Pipe),
            '"' => return State::Quote,
            '`' => return State::RawQuote,
            '$' => return State::Variable,
            '\'' => return State::Char,
            '.' if !self.rest().starts_with(|d: char| d.is_ascii_digit())
                && !self.rest().is_empty() =>
            {
                return State::Field;
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.backup();
                return State::Number;
            }
            c if is_alphanumeric(c) => {
                self.backup();
                return State::Identifier;
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    self.start = self.pos;
                    return self.error(format!("unexpected right paren {}", unicode_name(c)));
                }
                self.emit(Kind::RightParen);
            }
            c if c.is_ascii() && (' '..='~').contains(&c) => self.emit(Kind::Char),
            c => {
                return self.error(format!(
                    "unrecognized character in action: {}",
                    unicode_name(c)
                ));
            }
        }
        State::InsideAction
    }

    fn lex_space(&mut self) -> State {
        let mut spaces = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            spaces += 1;
        }
        // A trim-marked right delimiter starts with a space: leave that space to it.
        let last = &self.input[self.pos - 1..];
        if has_right_trim_marker(last) && last[2..].starts_with(RIGHT_DELIM) {
            self.pos -= 1;
            if spaces == 1 {
                return State::RightDelim;
            }
        }
        self.emit(Kind::Space);
        State::InsideAction
    }

    fn lex_identifier(&mut self) -> State {
        while self.next().is_some_and(is_alphanumeric) {}
        self.backup();
        if !self.at_terminator() {
            let c = self.peek().map(unicode_name).unwrap_or_default();
            return self.error(format!("bad character {c}"));
        }
        let word = &self.input[self.start..self.pos];
        let kind = match word {
            "true" | "false" => Kind::Bool,
            w => Kind::keyword(w).unwrap_or(Kind::Identifier),
        };
        self.emit(kind);
        State::InsideAction
    }

    fn lex_variable(&mut self) -> State {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return State::InsideAction;
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    /// Scans `.Alphanumeric` or `$Alphanumeric`; the `.` or `$` has been read.
    fn lex_field_or_variable(&mut self, kind: Kind) -> State {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return State::InsideAction;
        }
        while self.next().is_some_and(is_alphanumeric) {}
        self.backup();
        if !self.at_terminator() {
            let c = self.peek().map(unicode_name).unwrap_or_default();
            return self.error(format!("bad character {c}"));
        }
        self.emit(kind);
        State::InsideAction
    }

    /// Scans a quoted string or character constant; the opening quote has been read.
    fn lex_quoted(&mut self, close: char, kind: Kind, unterminated: &str) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.error(unterminated.into()),
                },
                None | Some('\n') => return self.error(unterminated.into()),
                Some(c) if c == close => break,
                Some(_) => {}
            }
        }
        self.emit(kind);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::RawString);
        State::InsideAction
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            return self.bad_number();
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // A complex constant: 1+2i, no spaces, ending in 'i'.
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                return self.bad_number();
            }
            self.emit(Kind::Complex);
        } else {
            self.emit(Kind::Number);
        }
        State::InsideAction
    }

    fn bad_number(&mut self) -> State {
        let text = quote(&self.input[self.start..self.pos], false);
        self.error(format!("bad number syntax: {text}"))
    }

    /// Go's permissive number scanner; the parser validates the text.
    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        lex(text, &Lines::new(text))
            .into_iter()
            .map(|i| (i.kind, i.val.into_owned()))
            .collect()
    }

    #[test]
    fn trim_markers_need_a_space() {
        use Kind::*;
        let got = kinds("a \n{{- .X -}}\n b{{-3}}");
        let want = [
            (Text, "a"),
            (LeftDelim, "{{"),
            (Field, ".X"),
            (RightDelim, "}}"),
            (Text, "b"),
            (LeftDelim, "{{"),
            (Number, "-3"),
            (RightDelim, "}}"),
            (Eof, ""),
        ];
        let want: Vec<_> = want.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn error_item_is_followed_by_eof() {
        let got = kinds("x{{/* y");
        assert_eq!(got.last().map(|(k, _)| *k), Some(Kind::Eof));
        assert!(
            got.iter()
                .any(|(k, v)| *k == Kind::Error && v == "unclosed comment")
        );
    }

    #[test]
    fn lines_locate_columns_from_zero() {
        let lines = Lines::new("ab\ncd\n");
        assert_eq!(lines.locate(0), (1, 0));
        assert_eq!(lines.locate(4), (2, 1));
        assert_eq!(lines.locate(6), (3, 0));
    }
}
