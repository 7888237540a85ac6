//! The parser: Go `text/template`'s grammar and parse-error messages, restricted to the
//! supported subset (see the crate docs).

use crate::ast::{Action, Arg, Branch, Command, Loc, Node, Number, Pipe, Tree, Var};
use crate::funcs::{Func, Lookup};
use crate::lex::lex;
use crate::number::{is_float, parse_int, parse_uint};
use crate::quote::{quote, unquote, unquote_char};
use crate::token::{Item, Kind, Lines};
use crate::{Error, MAX_DEPTH};

/// What `textOrAction` produced: a node, or an `{{end}}` / `{{else}}` that closes a list.
enum Parsed {
    Node(Node),
    End,
    Else,
}

struct Parser<'s, 'l> {
    name: &'s str,
    items: Vec<Item<'s>>,
    lines: &'l Lines,
    /// Index of the next item.
    idx: usize,
    /// The furthest item read: Go reports parse errors at its line.
    furthest: usize,
    /// Interned variable names; id 0 is `$`.
    var_names: Vec<Box<str>>,
    /// Ids of the variables in scope, innermost last.
    scope: Vec<usize>,
    /// Line of the `{{` of the action being parsed (0 outside actions).
    action_line: usize,
    control_depth: usize,
    paren_depth: usize,
    text_len: usize,
}

pub(crate) fn parse(name: &str, text: &str) -> Result<Tree, Error> {
    let lines = Lines::new(text);
    let items = lex(text, &lines);
    let mut p = Parser {
        name,
        items,
        lines: &lines,
        idx: 0,
        furthest: 0,
        var_names: vec!["$".into()],
        scope: vec![0],
        action_line: 0,
        control_depth: 0,
        paren_depth: 0,
        text_len: 0,
    };
    let mut root = Vec::new();
    while p.peek().kind != Kind::Eof {
        match p.text_or_action()? {
            Parsed::Node(n) => root.push(n),
            Parsed::End => return Err(p.errorf("unexpected {{end}}")),
            Parsed::Else => return Err(p.errorf("unexpected {{else}}")),
        }
    }
    Ok(Tree {
        root,
        text_len: p.text_len,
    })
}

// === impl Parser ===

impl<'s> Parser<'s, '_> {
    fn next(&mut self) -> Item<'s> {
        let i = self.idx.min(self.items.len() - 1);
        self.idx = i + 1;
        self.furthest = self.furthest.max(i);
        self.items[i].clone()
    }

    fn backup(&mut self) {
        self.idx -= 1;
    }

    fn peek(&mut self) -> Item<'s> {
        let item = self.next();
        self.backup();
        item
    }

    fn next_non_space(&mut self) -> Item<'s> {
        loop {
            let item = self.next();
            if item.kind != Kind::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item<'s> {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn loc(&self, pos: usize) -> Loc {
        let (line, col) = self.lines.locate(pos);
        Loc {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }

    fn errorf(&self, message: impl std::fmt::Display) -> Error {
        let line = self.items[self.furthest].line;
        Error::parse(format!("template: {}:{}: {}", self.name, line, message))
    }

    fn unexpected(&self, item: &Item<'_>, context: &str) -> Error {
        if item.kind != Kind::Error {
            return self.errorf(format_args!("unexpected {item} in {context}"));
        }
        let mut extra = String::new();
        if self.action_line != 0 && self.action_line != item.line {
            extra = format!(" in action started at {}:{}", self.name, self.action_line);
            if item.val.ends_with(" action") {
                extra.replace_range(.." in action".len(), "");
            }
        }
        self.errorf(format_args!("{}{}", item.val, extra))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> Result<Item<'s>, Error> {
        let item = self.next_non_space();
        if item.kind != kind {
            return Err(self.unexpected(&item, context));
        }
        Ok(item)
    }

    /// `textOrAction*` up to an `{{end}}` or `{{else}}`, returned separately.
    fn item_list(&mut self) -> Result<(Vec<Node>, Parsed), Error> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                closing => return Ok((list, closing)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> Result<Parsed, Error> {
        let item = self.next_non_space();
        match item.kind {
            Kind::Text => {
                self.text_len += item.val.len();
                Ok(Parsed::Node(Node::Text(item.val.into())))
            }
            Kind::LeftDelim => {
                self.action_line = item.line;
                let parsed = self.action();
                self.action_line = 0;
                parsed
            }
            _ => Err(self.unexpected(&item, "input")),
        }
    }

    /// An action; the left delimiter is past.
    fn action(&mut self) -> Result<Parsed, Error> {
        let item = self.next_non_space();
        match item.kind {
            Kind::Block | Kind::Break | Kind::Continue | Kind::Define | Kind::Template => {
                Err(self.errorf(format_args!("{{{{{}}}}} is not supported", item.val)))
            }
            Kind::Else => {
                if !matches!(self.peek_non_space().kind, Kind::If | Kind::With) {
                    self.expect(Kind::RightDelim, "else")?;
                }
                Ok(Parsed::Else)
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                Ok(Parsed::End)
            }
            Kind::If | Kind::With | Kind::Range => self.control(item.kind).map(Parsed::Node),
            _ => {
                self.backup();
                let start = self.peek();
                let pipe = self.pipeline("command", Kind::RightDelim)?;
                Ok(Parsed::Node(Node::Action(Action {
                    loc: self.loc(start.pos),
                    pipe,
                })))
            }
        }
    }

    /// `{{if|with|range pipeline}} list [{{else}} list] {{end}}`; the keyword is past.
    fn control(&mut self, kind: Kind) -> Result<Node, Error> {
        let context = match kind {
            Kind::If => "if",
            Kind::With => "with",
            _ => "range",
        };
        self.control_depth += 1;
        if self.control_depth > MAX_DEPTH {
            return Err(self.errorf("max nesting depth exceeded"));
        }
        let mark = self.scope.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let (list, closing) = self.item_list()?;
        let else_list = match closing {
            Parsed::Else => {
                let next = self.peek().kind;
                if (kind == Kind::If || kind == Kind::With) && next == kind {
                    // `{{else if …}}` is `{{else}}{{if …}}…{{end}}{{end}}` sharing one end.
                    self.next();
                    Some(vec![self.control(kind)?])
                } else {
                    let (list, closing) = self.item_list()?;
                    if !matches!(closing, Parsed::End) {
                        return Err(self.errorf("expected end; found {{else}}"));
                    }
                    Some(list)
                }
            }
            _ => None,
        };
        self.scope.truncate(mark);
        self.control_depth -= 1;
        let branch = Box::new(Branch {
            pipe,
            list,
            else_list,
        });
        Ok(match kind {
            Kind::If => Node::If(branch),
            Kind::With => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    /// `declarations? command ('|' command)*` up to `end`.
    fn pipeline(&mut self, context: &str, end: Kind) -> Result<Pipe, Error> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            loc: self.loc(start.pos),
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let at_variable = self.idx;
            self.next();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(self.declare(&v.val));
                    break;
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(self.declare(&v.val));
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format_args!("too many declarations in {context}")));
                }
                _ => {
                    self.idx = at_variable;
                    break;
                }
            }
        }
        loop {
            let item = self.next_non_space();
            if item.kind == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match item.kind {
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&item, context)),
            }
        }
    }

    fn declare(&mut self, name: &str) -> Var {
        let id = match self.var_names.iter().position(|n| &**n == name) {
            Some(id) => id,
            None => {
                self.var_names.push(name.into());
                self.var_names.len() - 1
            }
        };
        self.scope.push(id);
        Var {
            id,
            name: name.into(),
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> Result<(), Error> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format_args!("missing value for {context}")));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(
                    Arg::Bool(..)
                        | Arg::Dot(_)
                        | Arg::Nil(_)
                        | Arg::Number { .. }
                        | Arg::String { .. }
                )
            ) {
                return Err(self.errorf(format_args!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    /// `operand (space operand)*` up to a pipe (consumed) or a right delimiter or paren.
    fn command(&mut self) -> Result<Command, Error> {
        let start = self.peek_non_space();
        let mut cmd = Command {
            loc: self.loc(start.pos),
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(arg) = self.operand()? {
                cmd.args.push(arg);
            }
            let item = self.next();
            match item.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return Err(self.unexpected(&item, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    /// `term .Field*`.
    fn operand(&mut self) -> Result<Option<Arg>, Error> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        let first = self.peek();
        if first.kind != Kind::Field {
            return Ok(Some(node));
        }
        let loc = self.loc(first.pos);
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let item = self.next();
            fields.push(item.val[1..].into());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field { loc, idents }
            }
            Arg::Variable {
                var, fields: mut f, ..
            } => {
                f.extend(fields);
                Arg::Variable {
                    loc,
                    var,
                    fields: f,
                }
            }
            Arg::Bool(..) | Arg::String { .. } | Arg::Number { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                let term = quote(&node.to_string(), false);
                return Err(self.errorf(format_args!("unexpected . after term {term}")));
            }
            node => Arg::Chain {
                loc,
                node: Box::new(node),
                fields,
            },
        }))
    }

    /// A literal, function name, `.`, `.Field`, `$x` or `(pipeline)`; `None` if the next
    /// item is not a term.
    fn term(&mut self) -> Result<Option<Arg>, Error> {
        let item = self.next_non_space();
        let loc = self.loc(item.pos);
        Ok(Some(match item.kind {
            Kind::Identifier => match Func::lookup(&item.val) {
                Lookup::Supported(func) => Arg::Identifier { loc, func },
                Lookup::Unsupported => {
                    let name = quote(&item.val, false);
                    return Err(self.errorf(format_args!("function {name} is not supported")));
                }
                Lookup::Unknown => {
                    let name = quote(&item.val, false);
                    return Err(self.errorf(format_args!("function {name} not defined")));
                }
            },
            Kind::Dot => Arg::Dot(loc),
            Kind::Nil => Arg::Nil(loc),
            Kind::Variable => {
                let known = self
                    .scope
                    .iter()
                    .any(|&id| *self.var_names[id] == *item.val);
                if !known {
                    let name = quote(&item.val, false);
                    return Err(self.errorf(format_args!("undefined variable {name}")));
                }
                let id = self
                    .var_names
                    .iter()
                    .position(|n| **n == *item.val)
                    .unwrap_or(0);
                Arg::Variable {
                    loc,
                    var: Var {
                        id,
                        name: item.val.as_ref().into(),
                    },
                    fields: Vec::new(),
                }
            }
            Kind::Field => Arg::Field {
                loc,
                idents: vec![item.val[1..].into()],
            },
            Kind::Bool => Arg::Bool(loc, item.val == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                let value = self.number(&item)?;
                Arg::Number {
                    loc,
                    text: item.val.as_ref().into(),
                    value,
                }
            }
            Kind::LeftParen => {
                if self.paren_depth >= MAX_DEPTH {
                    return Err(self.errorf("max expression depth exceeded"));
                }
                self.paren_depth += 1;
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.paren_depth -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => {
                let text = unquote(&item.val).map_err(|e| self.errorf(e))?;
                Arg::String {
                    loc,
                    quoted: item.val.as_ref().into(),
                    text: text.into(),
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    /// The value of a number or character constant, with Go's parse errors.
    fn number(&self, item: &Item<'_>) -> Result<Number, Error> {
        let text: &str = &item.val;
        if item.kind == Kind::CharConstant {
            let (unit, tail) = unquote_char(&text[1..], '\'').map_err(|e| self.errorf(e))?;
            if tail != "'" {
                return Err(self.errorf(format_args!("malformed character constant: {text}")));
            }
            return Ok(Number::Int(i64::from(unit.code())));
        }
        if item.kind == Kind::Complex || text.ends_with('i') {
            return Err(self.errorf(format_args!("complex constant {text} is not supported")));
        }
        if let Ok(i) = parse_int(text) {
            return Ok(Number::Int(i));
        }
        if parse_uint(text).is_ok() {
            return Ok(Number::OverflowsInt);
        }
        if is_float(text) {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                let text = quote(text, false);
                return Err(self.errorf(format_args!("integer overflow: {text}")));
            }
            return Err(self.errorf(format_args!(
                "floating-point constant {text} is not supported"
            )));
        }
        let text = quote(text, false);
        Err(self.errorf(format_args!("illegal number syntax: {text}")))
    }
}
