//! Lexer items and source positions.

use std::borrow::Cow;

use crate::quote::{quote, quote_prefix};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Bool,
    /// A printable ASCII character: a grab bag for `,` and friends.
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

#[derive(Clone, Debug)]
pub(crate) struct Item<'s> {
    pub(crate) kind: Kind,
    /// Byte offset of the item in the template text.
    pub(crate) pos: usize,
    /// The item's text; the message for [`Kind::Error`].
    pub(crate) val: Cow<'s, str>,
    /// 1-based line of `pos`.
    pub(crate) line: usize,
}

// === impl Kind ===

impl Kind {
    pub(crate) fn keyword(word: &str) -> Option<Self> {
        Some(match word {
            "block" => Self::Block,
            "break" => Self::Break,
            "continue" => Self::Continue,
            "define" => Self::Define,
            "else" => Self::Else,
            "end" => Self::End,
            "if" => Self::If,
            "nil" => Self::Nil,
            "range" => Self::Range,
            "template" => Self::Template,
            "with" => Self::With,
            _ => return None,
        })
    }

    fn is_keyword(self) -> bool {
        matches!(
            self,
            Self::Block
                | Self::Break
                | Self::Continue
                | Self::Dot
                | Self::Define
                | Self::Else
                | Self::End
                | Self::If
                | Self::Nil
                | Self::Range
                | Self::Template
                | Self::With
        )
    }
}

// === impl Item ===

impl std::fmt::Display for Item<'_> {
    /// Go's rendering of an item in "unexpected …" messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error => f.write_str(&self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.len() > 10 => {
                write!(f, "{}...", quote_prefix(&self.val, 10))
            }
            _ => f.write_str(&quote(&self.val, false)),
        }
    }
}

/// Byte offsets of line starts, for turning positions into lines and columns.
#[derive(Debug)]
pub(crate) struct Lines(Vec<usize>);

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    /// 1-based line and 0-based byte column of `pos`, as Go's `ErrorContext` counts.
    pub(crate) fn locate(&self, pos: usize) -> (usize, usize) {
        let idx = self
            .0
            .partition_point(|&start| start <= pos)
            .saturating_sub(1);
        (idx + 1, pos - self.0.get(idx).copied().unwrap_or(0))
    }
}
