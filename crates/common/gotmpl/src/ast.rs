//! The parse tree. `Display` renders nodes as Go's `Node.String()` does, for the
//! `at <…>` part of execution errors.

use std::fmt::{self, Display, Formatter};

use crate::funcs::Func;

/// Where a node starts: 1-based line, 0-based byte column (Go's `ErrorContext`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) line: u32,
    pub(crate) col: u32,
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) root: Vec<Node>,
    /// Total length of the text nodes: a capacity hint for the output.
    pub(crate) text_len: usize,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(Box<str>),
    Action(Action),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
}

#[derive(Debug)]
pub(crate) struct Action {
    pub(crate) loc: Loc,
    pub(crate) pipe: Pipe,
}

/// An `if`, `with` or `range`: the pipeline, the body and the `else` body.
#[derive(Debug)]
pub(crate) struct Branch {
    pub(crate) pipe: Pipe,
    pub(crate) list: Vec<Node>,
    pub(crate) else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) loc: Loc,
    /// `$x = …` rather than `$x := …`.
    pub(crate) is_assign: bool,
    pub(crate) decl: Vec<Var>,
    pub(crate) cmds: Vec<Command>,
}

/// A variable name, interned per template (`$` is id 0).
#[derive(Clone, Debug)]
pub(crate) struct Var {
    pub(crate) id: usize,
    pub(crate) name: Box<str>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) loc: Loc,
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    /// `.A.B`: field names without dots.
    Field {
        loc: Loc,
        idents: Vec<Box<str>>,
    },
    /// `$x.A.B`: the variable, then field names.
    Variable {
        loc: Loc,
        var: Var,
        fields: Vec<Box<str>>,
    },
    /// `(pipeline).A.B` or `func.A`.
    Chain {
        loc: Loc,
        node: Box<Arg>,
        fields: Vec<Box<str>>,
    },
    Identifier {
        loc: Loc,
        func: Func,
    },
    Pipe(Box<Pipe>),
    Dot(Loc),
    Nil(Loc),
    Bool(Loc, bool),
    Number {
        loc: Loc,
        text: Box<str>,
        value: Number,
    },
    String {
        loc: Loc,
        quoted: Box<str>,
        text: Box<str>,
    },
}

/// An integer constant (floating-point and complex constants are rejected at parse).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Number {
    Int(i64),
    /// Fits `uint64` but not `int`: Go fails when the constant is evaluated.
    OverflowsInt,
}

// === impl Arg ===

impl Arg {
    pub(crate) fn loc(&self) -> Loc {
        match self {
            Self::Field { loc, .. }
            | Self::Variable { loc, .. }
            | Self::Chain { loc, .. }
            | Self::Identifier { loc, .. }
            | Self::Dot(loc)
            | Self::Nil(loc)
            | Self::Bool(loc, _)
            | Self::Number { loc, .. }
            | Self::String { loc, .. } => *loc,
            Self::Pipe(p) => p.loc,
        }
    }
}

impl Display for Arg {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field { idents, .. } => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Self::Variable { var, fields, .. } => {
                f.write_str(&var.name)?;
                fields.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Self::Chain { node, fields, .. } => {
                match &**node {
                    Self::Pipe(p) => write!(f, "({p})")?,
                    n => write!(f, "{n}")?,
                }
                fields.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Self::Identifier { func, .. } => f.write_str(func.name()),
            Self::Pipe(p) => write!(f, "{p}"),
            Self::Dot(_) => f.write_str("."),
            Self::Nil(_) => f.write_str("nil"),
            Self::Bool(_, b) => write!(f, "{b}"),
            Self::Number { text, .. } => f.write_str(text),
            Self::String { quoted, .. } => f.write_str(quoted),
        }
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match arg {
                Arg::Pipe(p) => write!(f, "({p})")?,
                a => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl Display for Pipe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            for (i, v) in self.decl.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&v.name)?;
            }
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Display for Action {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{{}}}}}", self.pipe)
    }
}

/// Renders `{{keyword pipe}}list{{else}}else{{end}}`.
pub(crate) struct BranchDisplay<'a>(pub(crate) &'static str, pub(crate) &'a Branch);

impl Display for BranchDisplay<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Self(keyword, b) = self;
        write!(f, "{{{{{keyword} {}}}}}", b.pipe)?;
        b.list.iter().try_for_each(|n| write!(f, "{n}"))?;
        if let Some(e) = &b.else_list {
            f.write_str("{{else}}")?;
            e.iter().try_for_each(|n| write!(f, "{n}"))?;
        }
        f.write_str("{{end}}")
    }
}

impl Display for Node {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(t) => f.write_str(t),
            Self::Action(a) => write!(f, "{a}"),
            Self::If(b) => write!(f, "{}", BranchDisplay("if", b)),
            Self::With(b) => write!(f, "{}", BranchDisplay("with", b)),
            Self::Range(b) => write!(f, "{}", BranchDisplay("range", b)),
        }
    }
}
