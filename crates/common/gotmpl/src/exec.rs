//! The evaluator: Go `text/template`'s execution rules and messages.
//!
//! Like Go's `state`, the evaluator remembers the node it is at; execution errors name it
//! (`at <.PodMeta.Foo>`) with its line and byte column.

use std::borrow::Cow;
use std::fmt::Display;

use crate::ast::{Action, Arg, Branch, BranchDisplay, Command, Node, Number, Pipe, Tree, Var};
use crate::funcs::{self, Func, Param};
use crate::print;
use crate::quote::quote;
use crate::value::Val;
use crate::{Error, MAX_OUTPUT, MAX_RANGE_ITERATIONS, Value};

type R<T> = Result<T, Error>;

/// The node execution is at, for error messages.
#[derive(Clone, Copy)]
enum At<'a> {
    None,
    Action(&'a Action),
    Branch(&'static str, &'a Branch),
    Pipe(&'a Pipe),
    Command(&'a Command),
    Arg(&'a Arg),
}

struct State<'a> {
    name: &'a str,
    /// `$` (unless a template redeclares it).
    root: Val<'a>,
    /// Declared variables, innermost last.
    vars: Vec<(usize, Val<'a>)>,
    /// Scratch stack for function arguments.
    args: Vec<Val<'a>>,
    at: At<'a>,
    iterations: usize,
}

pub(crate) fn execute(name: &str, tree: &Tree, data: &Value) -> R<String> {
    let mut out = String::with_capacity(tree.text_len + 32);
    let root = Val::of(data);
    let mut state = State {
        name,
        root: root.clone(),
        vars: Vec::new(),
        args: Vec::new(),
        at: At::None,
        iterations: 0,
    };
    state.walk_list(&root, &tree.root, &mut out)?;
    Ok(out)
}

// === impl State ===

impl<'a> State<'a> {
    fn errorf(&self, message: impl Display) -> Error {
        let (loc, context) = match self.at {
            At::None => return Error::exec(format!("template: {}: {}", self.name, message)),
            At::Action(a) => (a.loc, a.to_string()),
            At::Branch(keyword, b) => (b.pipe.loc, BranchDisplay(keyword, b).to_string()),
            At::Pipe(p) => (p.loc, p.to_string()),
            At::Command(c) => (c.loc, c.to_string()),
            At::Arg(a) => (a.loc(), a.to_string()),
        };
        Error::exec(format!(
            "template: {}:{}:{}: executing {} at <{}>: {}",
            self.name,
            loc.line,
            loc.col,
            quote(self.name, false),
            context,
            message
        ))
    }

    fn check_output(&self, out: &str) -> R<()> {
        if out.len() > MAX_OUTPUT {
            return Err(self.errorf(format_args!("output exceeds {MAX_OUTPUT} bytes")));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Val<'a>, list: &'a [Node], out: &mut String) -> R<()> {
        list.iter().try_for_each(|node| self.walk(dot, node, out))
    }

    fn walk(&mut self, dot: &Val<'a>, node: &'a Node, out: &mut String) -> R<()> {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(action) => {
                self.at = At::Action(action);
                let value = self.eval_pipeline(dot, &action.pipe)?;
                // An action that declares variables prints nothing.
                if action.pipe.decl.is_empty() {
                    self.at = At::Action(action);
                    match value {
                        Val::Invalid => out.push_str("<no value>"),
                        v => print::write_value(out, &v),
                    }
                }
            }
            Node::If(b) => {
                self.at = At::Branch("if", b);
                self.walk_if_or_with(false, dot, b, out)?;
            }
            Node::With(b) => {
                self.at = At::Branch("with", b);
                self.walk_if_or_with(true, dot, b, out)?;
            }
            Node::Range(b) => {
                self.at = At::Branch("range", b);
                self.walk_range(dot, b, out)?;
            }
        }
        self.check_output(out)
    }

    fn walk_if_or_with(
        &mut self,
        with: bool,
        dot: &Val<'a>,
        b: &'a Branch,
        out: &mut String,
    ) -> R<()> {
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &b.pipe)?;
        if value.is_true() {
            let dot = if with { &value } else { dot };
            self.walk_list(dot, &b.list, out)?;
        } else if let Some(else_list) = &b.else_list {
            self.walk_list(dot, else_list, out)?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn walk_range(&mut self, dot: &Val<'a>, b: &'a Branch, out: &mut String) -> R<()> {
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &b.pipe)?;
        let body_mark = self.vars.len();
        let ran = match value {
            Val::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    let v = print::sprint_verb(&value, 'v');
                    return Err(self.errorf(format_args!(
                        "can't use {v} to iterate over more than one variable"
                    )));
                }
                for i in 0..n {
                    self.one_iteration(b, body_mark, Val::Invalid, Val::Int(i), out)?;
                }
                n > 0
            }
            Val::Ref(Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let index = Val::Int(i64::try_from(i).unwrap_or(i64::MAX));
                    self.one_iteration(b, body_mark, index, Val::of(item), out)?;
                }
                !items.is_empty()
            }
            Val::Ref(Value::Map(entries)) => {
                for (key, item) in entries {
                    let key = Val::Str(Cow::Borrowed(key.as_str()));
                    self.one_iteration(b, body_mark, key, Val::of(item), out)?;
                }
                !entries.is_empty()
            }
            // No value acts like an empty map.
            Val::Invalid => false,
            v => {
                let v = print::sprint_verb(&v, 'v');
                return Err(self.errorf(format_args!("range can't iterate over {v}")));
            }
        };
        if !ran && let Some(else_list) = &b.else_list {
            self.walk_list(dot, else_list, out)?;
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn one_iteration(
        &mut self,
        b: &'a Branch,
        mark: usize,
        index: Val<'a>,
        elem: Val<'a>,
        out: &mut String,
    ) -> R<()> {
        self.iterations += 1;
        if self.iterations > MAX_RANGE_ITERATIONS {
            return Err(self.errorf(format_args!(
                "more than {MAX_RANGE_ITERATIONS} range iterations"
            )));
        }
        let decl = &b.pipe.decl;
        if let Some(first) = decl.first() {
            if b.pipe.is_assign {
                let v = if decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(first, v)?;
            } else {
                self.set_top_var(1, elem.clone())?;
            }
        }
        if let Some(second) = decl.get(1) {
            if b.pipe.is_assign {
                self.set_var(second, elem.clone())?;
            } else {
                self.set_top_var(2, index)?;
            }
        }
        self.walk_list(&elem, &b.list, out)?;
        self.vars.truncate(mark);
        Ok(())
    }

    fn var_value(&self, var: &Var) -> R<Val<'a>> {
        match self.vars.iter().rev().find(|(id, _)| *id == var.id) {
            Some((_, v)) => Ok(v.clone()),
            None if var.id == 0 => Ok(self.root.clone()),
            None => Err(self.errorf(format_args!("undefined variable: {}", var.name))),
        }
    }

    fn set_var(&mut self, var: &Var, value: Val<'a>) -> R<()> {
        match self.vars.iter_mut().rev().find(|(id, _)| *id == var.id) {
            Some((_, slot)) => *slot = value,
            None if var.id == 0 => self.root = value,
            None => return Err(self.errorf(format_args!("undefined variable: {}", var.name))),
        }
        Ok(())
    }

    /// Sets the `n`th variable from the top (range variables, just declared).
    fn set_top_var(&mut self, n: usize, value: Val<'a>) -> R<()> {
        let slot = self
            .vars
            .len()
            .checked_sub(n)
            .and_then(|i| self.vars.get_mut(i));
        match slot {
            Some((_, slot)) => {
                *slot = value;
                Ok(())
            }
            None => Err(self.errorf("internal error: range variable not declared")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Val<'a>, pipe: &'a Pipe) -> R<Val<'a>> {
        self.at = At::Pipe(pipe);
        let mut value = None;
        for cmd in &pipe.cmds {
            // The previous command's value is this one's final argument.
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Val::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(var, value.clone())?;
            } else {
                self.vars.push((var.id, value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], last: &Option<Val<'a>>) -> R<()> {
        if args.len() > 1 || last.is_some() {
            let first = args.first().map(ToString::to_string).unwrap_or_default();
            return Err(self.errorf(format_args!("can't give argument to non-function {first}")));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Val<'a>,
        cmd: &'a Command,
        last: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let Some(first) = cmd.args.first() else {
            return Err(self.errorf("empty command"));
        };
        match first {
            Arg::Field { idents, .. } => {
                self.at = At::Arg(first);
                return self.eval_field_chain(dot.clone(), idents, &cmd.args, last);
            }
            Arg::Chain { node, fields, .. } => {
                return self.eval_chain(dot, first, node, fields, &cmd.args, last);
            }
            Arg::Identifier { func, .. } => {
                return self.eval_function(dot, first, *func, At::Command(cmd), &cmd.args, last);
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(&cmd.args, &last)?;
                return self.eval_pipeline(dot, pipe);
            }
            Arg::Variable { var, fields, .. } => {
                return self.eval_variable(first, var, fields, &cmd.args, last);
            }
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &last)?;
        match first {
            Arg::Bool(_, b) => Ok(Val::Bool(*b)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Err(self.errorf("nil is not a command")),
            Arg::Number { text, value, .. } => self.ideal_constant(first, text, *value),
            Arg::String { text, .. } => Ok(Val::Str(Cow::Borrowed(text))),
            _ => Err(self.errorf(format_args!(
                "can't evaluate command {}",
                quote(&first.to_string(), false)
            ))),
        }
    }

    fn ideal_constant(&mut self, node: &'a Arg, text: &str, value: Number) -> R<Val<'a>> {
        self.at = At::Arg(node);
        match value {
            Number::Int(i) => Ok(Val::Int(i)),
            Number::OverflowsInt => Err(self.errorf(format_args!("{text} overflows int"))),
        }
    }

    /// `.X.Y.Z` on `receiver`, the last field possibly followed by arguments.
    fn eval_field_chain(
        &mut self,
        receiver: Val<'a>,
        idents: &'a [Box<str>],
        args: &'a [Arg],
        last: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let Some((final_field, fields)) = idents.split_last() else {
            return Ok(receiver);
        };
        let mut receiver = receiver;
        for field in fields {
            receiver = self.eval_field(field, &[], None, receiver)?;
        }
        self.eval_field(final_field, args, last, receiver)
    }

    /// One field of a struct or key of a map; no value yields no value.
    fn eval_field(
        &self,
        name: &str,
        args: &[Arg],
        last: Option<Val<'a>>,
        receiver: Val<'a>,
    ) -> R<Val<'a>> {
        let has_args = args.len() > 1 || last.is_some();
        match receiver {
            Val::Invalid => Ok(Val::Invalid),
            Val::Ref(Value::Struct(fields)) => match fields.get(name) {
                Some(_) if has_args => Err(self.errorf(format_args!(
                    "{name} has arguments but cannot be invoked as function"
                ))),
                Some(v) => Ok(Val::of(v)),
                None => Err(self.errorf(format_args!(
                    "can't evaluate field {name} in type {}",
                    receiver.type_name()
                ))),
            },
            Val::Ref(Value::Map(entries)) => {
                if has_args {
                    return Err(
                        self.errorf(format_args!("{name} is not a method but has arguments"))
                    );
                }
                Ok(entries.get(name).map_or(Val::Invalid, Val::of))
            }
            other => Err(self.errorf(format_args!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            ))),
        }
    }

    fn eval_variable(
        &mut self,
        node: &'a Arg,
        var: &Var,
        fields: &'a [Box<str>],
        args: &'a [Arg],
        last: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        self.at = At::Arg(node);
        let value = self.var_value(var)?;
        if fields.is_empty() {
            self.not_a_function(args, &last)?;
            return Ok(value);
        }
        self.eval_field_chain(value, fields, args, last)
    }

    fn eval_chain(
        &mut self,
        dot: &Val<'a>,
        node: &'a Arg,
        inner: &'a Arg,
        fields: &'a [Box<str>],
        args: &'a [Arg],
        last: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        self.at = At::Arg(node);
        let receiver = self.eval_arg(dot, None, inner)?;
        self.eval_field_chain(receiver, fields, args, last)
    }

    fn eval_function(
        &mut self,
        dot: &Val<'a>,
        node: &'a Arg,
        func: Func,
        call_at: At<'a>,
        args: &'a [Arg],
        last: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        self.at = At::Arg(node);
        let args = args.get(1..).unwrap_or_default();
        let sig = func.signature();
        let fixed = sig.fixed.len();
        let num_in = args.len() + usize::from(last.is_some());
        let name = func.name();
        if sig.variadic.is_some() {
            if num_in < fixed {
                let got = args.len();
                return Err(self.errorf(format_args!(
                    "wrong number of args for {name}: want at least {fixed} got {got}"
                )));
            }
        } else if num_in != fixed {
            return Err(self.errorf(format_args!(
                "wrong number of args for {name}: want {fixed} got {num_in}"
            )));
        }
        if let Func::And | Func::Or = func {
            // Short-circuit: the first false (and) or true (or) argument, else the last.
            let stop_on = func == Func::Or;
            let mut value = Val::Invalid;
            for arg in args {
                value = self.eval_arg(dot, Some(Param::Reflect), arg)?;
                if value.is_true() == stop_on {
                    return Ok(value);
                }
            }
            return Ok(last.unwrap_or(value));
        }
        let base = self.args.len();
        for (i, arg) in args.iter().enumerate() {
            let param = sig.fixed.get(i).copied().or(sig.variadic);
            let value = self.eval_arg(dot, param, arg)?;
            self.args.push(value);
        }
        if let Some(last) = last {
            let param = sig.fixed.get(num_in - 1).copied().or(sig.variadic);
            let value = self.validate_type(last, param)?;
            self.args.push(value);
        }
        let result = funcs::call(func, &self.args[base..]);
        self.args.truncate(base);
        result.map_err(|message| {
            self.at = call_at;
            self.errorf(format_args!("error calling {name}: {message}"))
        })
    }

    fn validate_type(&self, value: Val<'a>, param: Option<Param>) -> R<Val<'a>> {
        if param != Some(Param::String) {
            return Ok(value);
        }
        match value {
            Val::Str(_) => Ok(value),
            Val::Invalid => Err(self.errorf("invalid value; expected string")),
            other => Err(self.errorf(format_args!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ))),
        }
    }

    fn eval_arg(&mut self, dot: &Val<'a>, param: Option<Param>, node: &'a Arg) -> R<Val<'a>> {
        self.at = At::Arg(node);
        let value = match node {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) if param == Some(Param::String) => {
                return Err(self.errorf("cannot assign nil to string"));
            }
            Arg::Nil(_) => Val::Invalid,
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot.clone(), idents, std::slice::from_ref(node), None)?
            }
            Arg::Variable { var, fields, .. } => {
                self.eval_variable(node, var, fields, &[], None)?
            }
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Identifier { func, .. } => {
                self.eval_function(dot, node, *func, At::Arg(node), &[], None)?
            }
            Arg::Chain {
                node: inner,
                fields,
                ..
            } => self.eval_chain(dot, node, inner, fields, &[], None)?,
            Arg::Bool(..) | Arg::Number { .. } if param == Some(Param::String) => {
                return Err(self.errorf(format_args!("expected string; found {node}")));
            }
            Arg::Bool(_, b) => Val::Bool(*b),
            Arg::Number { text, value, .. } => self.ideal_constant(node, text, *value)?,
            Arg::String { text, .. } => Val::Str(Cow::Borrowed(text)),
        };
        self.validate_type(value, param)
    }
}
