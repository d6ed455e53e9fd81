//! Parsing and type checking: SQL text to a small typed tree the code generator walks.
//!
//! The tree is deliberately smaller than SQL: `BETWEEN`, `IN`, simple `CASE` and `NULLIF`
//! become comparisons over a `Let`-bound value, `IS NOT NULL` becomes `NOT (IS NULL)`, so the
//! code generator has few cases to get right.

use fstore_snapshot::FeatureType;
use sqlparser::ast::{
    self as sql, BinaryOperator, CastKind, CeilFloorKind, DataType, DateTimeField, FunctionArg,
    FunctionArgExpr, FunctionArguments, Spanned, UnaryOperator, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token};

use crate::abi::Ty;
use crate::{CompileError, Position};

/// Deepest expression nesting accepted; deeper trees are rejected, not recursed into.
pub const MAX_DEPTH: u32 = 64;
/// Longest SQL text accepted for one expression. Together with the compile thread's stack this
/// bounds the recursion in sqlparser's own span and drop code (a long `a + a + …` chain is
/// parsed iteratively but is as deep as it is long).
pub const MAX_SQL_LEN: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Math {
    Abs,
    Sqrt,
    Ln,
    Exp,
    Floor,
    Ceil,
    Round,
}

/// A typed expression. `ty == None` only for nodes that are always NULL and whose type no
/// context fixed (a bare `NULL`); such nodes are always `K::Null`.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub ty: Option<Ty>,
    pub kind: K,
}

#[derive(Debug, Clone)]
pub(crate) enum K {
    /// An input, by its index in `available`.
    Input(usize),
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Both operands have the node's type.
    Arith(Arith, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    /// Both operands have the same type; the node is boolean.
    Cmp(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    IsNull(Box<Node>),
    /// `IS TRUE` (`true`) or `IS FALSE` (`false`): never NULL.
    IsBool(Box<Node>, bool),
    /// `IS NOT DISTINCT FROM`: equality where NULL equals NULL; never NULL.
    NotDistinct(Box<Node>, Box<Node>),
    Case(Vec<(Node, Node)>, Option<Box<Node>>),
    Coalesce(Vec<Node>),
    /// `GREATEST` (`true`) or `LEAST`; NULL arguments are ignored, as in PostgreSQL.
    MinMax(bool, Vec<Node>),
    /// The argument has the node's type (float64 except for ABS/FLOOR/CEIL/ROUND of int64).
    Math(Math, Box<Node>),
    /// `ROUND(x, digits)` on a float64.
    RoundTo(Box<Node>, i32),
    /// A conversion from the child's type to the node's type.
    Convert(Box<Node>),
    /// Evaluates the value once, binds it to the variable, then evaluates the body.
    Let(u32, Box<Node>, Box<Node>),
    Var(u32),
}

impl Node {
    fn new(ty: Ty, kind: K) -> Node {
        Node { ty: Some(ty), kind }
    }
    fn null(ty: Option<Ty>) -> Node {
        Node { ty, kind: K::Null }
    }
}

pub(crate) fn type_name(ty: Option<Ty>) -> &'static str {
    match ty {
        None => "NULL",
        Some(Ty::Int) => "int64",
        Some(Ty::Float) => "float64",
        Some(Ty::Str) => "string",
        Some(Ty::Bool) => "boolean",
        Some(Ty::Ts) => "timestamp",
    }
}

/// The type two operands are brought to for comparing or merging them, if there is one.
fn common(a: Option<Ty>, b: Option<Ty>) -> Option<Option<Ty>> {
    match (a, b) {
        (None, t) | (t, None) => Some(t),
        (Some(x), Some(y)) if x == y => Some(Some(x)),
        (Some(Ty::Int), Some(Ty::Float)) | (Some(Ty::Float), Some(Ty::Int)) => {
            Some(Some(Ty::Float))
        }
        _ => None,
    }
}

/// Brings a node to a type `common` agreed on: NULLs take the type, int64 widens to float64.
fn coerce(node: Node, ty: Ty) -> Node {
    match node.ty {
        None => Node::null(Some(ty)),
        Some(t) if t == ty => node,
        Some(_) => Node::new(ty, K::Convert(Box::new(node))),
    }
}

/// What one expression's checking needs to know and produces besides its tree.
pub(crate) struct Checker<'a> {
    pub name: &'a str,
    pub sql: &'a str,
    pub available: &'a [(String, FeatureType)],
    /// Set for every `available` entry the expression references.
    pub used: &'a mut [bool],
    /// Source of `Let` variable numbers, unique across all expressions of one compile.
    pub next_var: &'a mut u32,
}

/// Parses one expression, requiring that nothing follows it.
pub(crate) fn parse(name: &str, sql: &str) -> Result<sql::Expr, CompileError> {
    if sql.len() > MAX_SQL_LEN {
        return Err(CompileError::new(
            name,
            format!(
                "the expression is {} bytes long; at most {MAX_SQL_LEN} are accepted",
                sql.len()
            ),
        ));
    }
    let dialect = PostgreSqlDialect {};
    let parse_err = |e: ParserError| parser_error(name, e);
    // The parser counts its own recursion; give it room past MAX_DEPTH so that our check, which
    // points at the offending spot, is the one users normally meet.
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(2 * MAX_DEPTH as usize)
        .try_with_sql(sql)
        .map_err(parse_err)?;
    if parser.peek_token().token == Token::EOF {
        return Err(CompileError::new(name, "the expression is empty"));
    }
    let expr = parser.parse_expr().map_err(parse_err)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let mut err = CompileError::new(
            name,
            format!(
                "unexpected `{}` after the end of the expression",
                next.token
            ),
        );
        err.position = position(next.span.start);
        return Err(err);
    }
    Ok(expr)
}

fn position(loc: Location) -> Option<Position> {
    (loc.line > 0).then(|| Position {
        line: u32::try_from(loc.line).unwrap_or(u32::MAX),
        column: u32::try_from(loc.column).unwrap_or(u32::MAX),
    })
}

/// sqlparser reports positions inside its messages (" at Line: 1, Column: 5"); lift them out.
fn parser_error(name: &str, e: ParserError) -> CompileError {
    let text = match e {
        ParserError::RecursionLimitExceeded => {
            return CompileError::new(
                name,
                format!("the expression nests deeper than {MAX_DEPTH} levels"),
            );
        }
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
    };
    let (message, pos) = match text.rfind(" at Line: ") {
        Some(i) => {
            let tail = &text[i + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            let line = parts.next().and_then(|s| s.trim().parse().ok());
            let column = parts.next().and_then(|s| s.trim().parse().ok());
            match (line, column) {
                (Some(line), Some(column)) => {
                    (text[..i].to_string(), Some(Position { line, column }))
                }
                _ => (text.clone(), None),
            }
        }
        None => (text, None),
    };
    let mut err = CompileError::new(name, format!("syntax error: {message}"));
    err.position = pos;
    err
}

/// Byte offset of a sqlparser location (1-based line, 1-based column counted in characters).
fn offset_of(sql: &str, loc: Location) -> Option<usize> {
    if loc.line == 0 || loc.column == 0 {
        return None;
    }
    let mut line = 1u64;
    let mut col = 1u64;
    for (i, c) in sql.char_indices() {
        if line == loc.line && col == loc.column {
            return Some(i);
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line == loc.line && col == loc.column).then_some(sql.len())
}

/// The leftmost location of an expression, found without recursion so that it is safe on trees
/// too deep to walk.
fn start_of(mut e: &sql::Expr) -> Option<Location> {
    loop {
        e = match e {
            sql::Expr::BinaryOp { left, .. } => left,
            sql::Expr::IsNull(x)
            | sql::Expr::IsNotNull(x)
            | sql::Expr::IsTrue(x)
            | sql::Expr::IsFalse(x)
            | sql::Expr::IsNotTrue(x)
            | sql::Expr::IsNotFalse(x) => x,
            sql::Expr::Cast {
                kind: CastKind::DoubleColon,
                expr,
                ..
            } => expr,
            sql::Expr::Identifier(i) => return Some(i.span.start),
            sql::Expr::Value(v) => return Some(v.span.start),
            other => {
                let s = other.span();
                return (s.start.line > 0).then_some(s.start);
            }
        };
    }
}

impl Checker<'_> {
    fn err(&self, message: impl Into<String>) -> CompileError {
        CompileError::new(self.name, message)
    }

    /// An error pointing at `span`, quoting the SQL it covers.
    fn err_span(&self, span: Span, message: impl Into<String>) -> CompileError {
        let mut err = self.err(message);
        err.position = position(span.start);
        if let (Some(a), Some(b)) = (
            offset_of(self.sql, span.start),
            offset_of(self.sql, span.end),
        ) && a < b
        {
            let b = close_parens(self.sql, a, b);
            err.fragment = Some(self.sql[a..b].to_string());
        }
        err
    }

    fn err_at(&self, e: &sql::Expr, message: impl Into<String>) -> CompileError {
        self.err_span(e.span(), message)
    }

    pub(crate) fn check_root(&mut self, e: &sql::Expr) -> Result<Node, CompileError> {
        self.check(e, 1)
    }

    fn check(&mut self, e: &sql::Expr, depth: u32) -> Result<Node, CompileError> {
        if depth > MAX_DEPTH {
            let mut err = self.err(format!(
                "the expression nests deeper than {MAX_DEPTH} levels"
            ));
            err.position = start_of(e).and_then(position);
            return Err(err);
        }
        let d = depth + 1;
        use sql::Expr as E;
        match e {
            E::Identifier(ident) => self.identifier(ident),
            E::CompoundIdentifier(_) => Err(self.err_at(
                e,
                "qualified names are not supported; refer to a feature by its name",
            )),
            E::Value(v) => self.literal(e, &v.value, false),
            E::Nested(inner) => self.check(inner, d),
            E::UnaryOp { op, expr } => self.unary(e, *op, expr, d),
            E::BinaryOp { left, op, right } => self.binary(e, left, op, right, d),
            E::IsNull(x) | E::IsNotNull(x) => {
                let n = self.check(x, d)?;
                let is_null = Node::new(Ty::Bool, K::IsNull(Box::new(n)));
                Ok(if matches!(e, E::IsNull(_)) {
                    is_null
                } else {
                    not(is_null)
                })
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let n = self.check(x, d)?;
                let n = self.boolean(n, x, "IS TRUE / IS FALSE")?;
                let want = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let test = Node::new(Ty::Bool, K::IsBool(Box::new(n), want));
                Ok(if matches!(e, E::IsTrue(_) | E::IsFalse(_)) {
                    test
                } else {
                    not(test)
                })
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let l = self.check(a, d)?;
                let r = self.check(b, d)?;
                let ty = self.comparable(e, &l, &r)?;
                let node = match ty {
                    // NULL IS NOT DISTINCT FROM NULL
                    None => Node::new(Ty::Bool, K::Bool(true)),
                    Some(ty) => Node::new(
                        Ty::Bool,
                        K::NotDistinct(Box::new(coerce(l, ty)), Box::new(coerce(r, ty))),
                    ),
                };
                Ok(if matches!(e, E::IsDistinctFrom(..)) {
                    not(node)
                } else {
                    node
                })
            }
            E::In {
                expr,
                target,
                negated,
                ..
            } => match target {
                sql::InTarget::List(list) => self.in_list(e, expr, list, *negated, d),
                _ => Err(self.err_at(e, "IN takes a list of values; subqueries are not supported")),
            },
            E::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(e, expr, low, high, *negated, d),
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(e, operand.as_deref(), conditions, else_result.as_deref(), d),
            E::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) {
                    return Err(self.err_at(e, "only CAST(x AS type) and x::type are supported"));
                }
                if format.is_some() {
                    return Err(self.err_at(e, "CAST … FORMAT is not supported"));
                }
                let n = self.check(expr, d)?;
                let to = self.cast_target(e, data_type)?;
                self.cast(e, n, to)
            }
            E::Ceil { expr, field } | E::Floor { expr, field } => {
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)
                ) {
                    return Err(self.err_at(e, "CEIL/FLOOR take one argument"));
                }
                let n = self.check(expr, d)?;
                let f = if matches!(e, E::Ceil { .. }) {
                    Math::Ceil
                } else {
                    Math::Floor
                };
                self.math(expr, f, n)
            }
            E::Function(f) => self.function(e, f, d),
            E::TypedString(ts) => self.typed_string(e, ts),
            other => Err(self.err_at(other, unsupported(other))),
        }
    }

    fn identifier(&mut self, ident: &sql::Ident) -> Result<Node, CompileError> {
        let idx = self.lookup(ident)?;
        let (name, ft) = &self.available[idx];
        let ty = match ft {
            FeatureType::Int64 => Ty::Int,
            FeatureType::Float64 => Ty::Float,
            FeatureType::String => Ty::Str,
            FeatureType::Bool => Ty::Bool,
            FeatureType::Timestamp => Ty::Ts,
            FeatureType::ListFloat64 => {
                return Err(self.err_span(
                    ident.span,
                    format!("`{name}` is a list<float64>; SQL expressions cannot use lists"),
                ));
            }
        };
        self.used[idx] = true;
        Ok(Node::new(ty, K::Input(idx)))
    }

    /// Finds a name: exactly as written, or (unquoted, as SQL folds case) ignoring case when
    /// that is unambiguous.
    fn lookup(&self, ident: &sql::Ident) -> Result<usize, CompileError> {
        let names = || self.available.iter().map(|(n, _)| n.as_str());
        if let Some(i) = names().position(|n| n == ident.value) {
            return Ok(i);
        }
        if ident.quote_style.is_none() {
            let mut hits = names()
                .enumerate()
                .filter(|(_, n)| n.eq_ignore_ascii_case(&ident.value));
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => return Ok(i),
                (Some((_, a)), Some((_, b))) => {
                    return Err(self.err_span(
                        ident.span,
                        format!(
                            "`{}` could mean `{a}` or `{b}`; quote the name to pick one",
                            ident.value
                        ),
                    ));
                }
                _ => {}
            }
        }
        let mut message = format!("unknown name `{}`", ident.value);
        match closest(&ident.value, names()) {
            Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
            None if self.available.is_empty() => message.push_str("; no inputs are available"),
            None => {
                let list: Vec<&str> = names().take(12).collect();
                message.push_str(&format!("; available: {}", list.join(", ")));
                if self.available.len() > list.len() {
                    message.push_str(", …");
                }
            }
        }
        Err(self.err_span(ident.span, message))
    }

    fn literal(&self, e: &sql::Expr, v: &Value, negative: bool) -> Result<Node, CompileError> {
        Ok(match v {
            Value::Number(text, _) => {
                let text = if negative {
                    format!("-{text}")
                } else {
                    text.clone()
                };
                let integral = text.bytes().all(|b| b.is_ascii_digit() || b == b'-');
                if integral {
                    match text.parse::<i64>() {
                        Ok(i) => Node::new(Ty::Int, K::Int(i)),
                        Err(_) => {
                            return Err(self.err_at(
                                e,
                                format!("integer literal {text} does not fit in int64; write it as {text}.0 for a float64"),
                            ));
                        }
                    }
                } else {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Node::new(Ty::Float, K::Float(f)),
                        _ => return Err(self.err_at(e, format!("invalid number `{text}`"))),
                    }
                }
            }
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s) => Node::new(Ty::Str, K::Str(s.clone())),
            Value::DollarQuotedString(s) => Node::new(Ty::Str, K::Str(s.value.clone())),
            Value::Boolean(b) => Node::new(Ty::Bool, K::Bool(*b)),
            Value::Null => Node::null(None),
            Value::Placeholder(p) => {
                return Err(self.err_at(e, format!("parameters such as `{p}` are not supported")));
            }
            _ => return Err(self.err_at(e, "this kind of literal is not supported")),
        })
    }

    fn unary(
        &mut self,
        e: &sql::Expr,
        op: UnaryOperator,
        inner: &sql::Expr,
        d: u32,
    ) -> Result<Node, CompileError> {
        match op {
            UnaryOperator::Minus => {
                // Fold the sign into a number literal so that -9223372036854775808 fits.
                if let sql::Expr::Value(v) = inner
                    && matches!(v.value, Value::Number(..))
                {
                    return self.literal(e, &v.value, true);
                }
                let n = self.check(inner, d)?;
                match n.ty {
                    None => Ok(n),
                    Some(t @ (Ty::Int | Ty::Float)) => Ok(Node::new(t, K::Neg(Box::new(n)))),
                    Some(t) => Err(self.err_at(e, format!("cannot negate {}", type_name(Some(t))))),
                }
            }
            UnaryOperator::Plus => {
                let n = self.check(inner, d)?;
                match n.ty {
                    None | Some(Ty::Int | Ty::Float) => Ok(n),
                    t => {
                        Err(self
                            .err_at(e, format!("unary `+` needs a number, not {}", type_name(t))))
                    }
                }
            }
            UnaryOperator::Not => {
                let n = self.check(inner, d)?;
                Ok(not(self.boolean(n, inner, "NOT")?))
            }
            other => Err(self.err_at(e, format!("operator `{other}` is not supported"))),
        }
    }

    fn binary(
        &mut self,
        e: &sql::Expr,
        left: &sql::Expr,
        op: &BinaryOperator,
        right: &sql::Expr,
        d: u32,
    ) -> Result<Node, CompileError> {
        let arith = match op {
            BinaryOperator::Plus => Some(Arith::Add),
            BinaryOperator::Minus => Some(Arith::Sub),
            BinaryOperator::Multiply => Some(Arith::Mul),
            BinaryOperator::Divide => Some(Arith::Div),
            BinaryOperator::Modulo => Some(Arith::Rem),
            _ => None,
        };
        let cmp = match op {
            BinaryOperator::Eq => Some(Cmp::Eq),
            BinaryOperator::NotEq => Some(Cmp::Ne),
            BinaryOperator::Lt => Some(Cmp::Lt),
            BinaryOperator::LtEq => Some(Cmp::Le),
            BinaryOperator::Gt => Some(Cmp::Gt),
            BinaryOperator::GtEq => Some(Cmp::Ge),
            _ => None,
        };
        let logic = matches!(op, BinaryOperator::And | BinaryOperator::Or);
        if arith.is_none() && cmp.is_none() && !logic {
            return Err(self.err_at(e, format!("operator `{op}` is not supported")));
        }
        let l = self.check(left, d)?;
        let r = self.check(right, d)?;
        if let Some(a) = arith {
            return self.arith(e, op, a, l, r);
        }
        if let Some(c) = cmp {
            return Ok(match self.comparable(e, &l, &r)? {
                None => Node::null(Some(Ty::Bool)),
                Some(ty) => Node::new(
                    Ty::Bool,
                    K::Cmp(c, Box::new(coerce(l, ty)), Box::new(coerce(r, ty))),
                ),
            });
        }
        let what = if matches!(op, BinaryOperator::And) {
            "AND"
        } else {
            "OR"
        };
        let l = Box::new(self.boolean(l, left, what)?);
        let r = Box::new(self.boolean(r, right, what)?);
        Ok(Node::new(
            Ty::Bool,
            if matches!(op, BinaryOperator::And) {
                K::And(l, r)
            } else {
                K::Or(l, r)
            },
        ))
    }

    fn arith(
        &self,
        e: &sql::Expr,
        op: &BinaryOperator,
        a: Arith,
        l: Node,
        r: Node,
    ) -> Result<Node, CompileError> {
        let numeric = |t: Option<Ty>| matches!(t, None | Some(Ty::Int | Ty::Float));
        if !numeric(l.ty) || !numeric(r.ty) {
            return Err(self.err_at(
                e,
                format!(
                    "cannot apply `{op}` to {} and {}",
                    type_name(l.ty),
                    type_name(r.ty)
                ),
            ));
        }
        let ty = match (l.ty, r.ty) {
            (Some(Ty::Float), _) | (_, Some(Ty::Float)) => Ty::Float,
            (Some(_), _) | (_, Some(_)) => Ty::Int,
            (None, None) => return Ok(Node::null(None)),
        };
        if a == Arith::Rem && ty == Ty::Float {
            return Err(self.err_at(
                e,
                "`%` needs int64 operands, as in PostgreSQL; float64 given",
            ));
        }
        Ok(Node::new(
            ty,
            K::Arith(a, Box::new(coerce(l, ty)), Box::new(coerce(r, ty))),
        ))
    }

    /// The type two operands are compared in; `None` when both are NULL.
    fn comparable(&self, e: &sql::Expr, l: &Node, r: &Node) -> Result<Option<Ty>, CompileError> {
        common(l.ty, r.ty).ok_or_else(|| {
            self.err_at(
                e,
                format!(
                    "cannot compare {} with {}",
                    type_name(l.ty),
                    type_name(r.ty)
                ),
            )
        })
    }

    fn boolean(&self, n: Node, e: &sql::Expr, what: &str) -> Result<Node, CompileError> {
        match n.ty {
            None => Ok(Node::null(Some(Ty::Bool))),
            Some(Ty::Bool) => Ok(n),
            t => Err(self.err_at(e, format!("{what} needs a boolean, not {}", type_name(t)))),
        }
    }

    fn var(&mut self) -> u32 {
        let v = *self.next_var;
        *self.next_var += 1;
        v
    }

    fn in_list(
        &mut self,
        e: &sql::Expr,
        expr: &sql::Expr,
        list: &[sql::Expr],
        negated: bool,
        d: u32,
    ) -> Result<Node, CompileError> {
        let x = self.check(expr, d)?;
        let mut ty = x.ty;
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let n = self.check(item, d)?;
            ty = common(ty, n.ty).ok_or_else(|| {
                self.err_at(
                    item,
                    format!(
                        "cannot compare {} with {}",
                        type_name(x.ty),
                        type_name(n.ty)
                    ),
                )
            })?;
            items.push(n);
        }
        let Some(ty) = ty else {
            return Ok(Node::null(Some(Ty::Bool)));
        };
        if items.is_empty() {
            return Err(self.err_at(e, "IN needs at least one value"));
        }
        let v = self.var();
        let var = || Node::new(ty, K::Var(v));
        let mut body: Option<Node> = None;
        for item in items {
            let eq = Node::new(
                Ty::Bool,
                K::Cmp(Cmp::Eq, Box::new(var()), Box::new(coerce(item, ty))),
            );
            body = Some(match body {
                None => eq,
                Some(acc) => Node::new(Ty::Bool, K::Or(Box::new(acc), Box::new(eq))),
            });
        }
        let body = body.ok_or_else(|| self.err_at(e, "IN needs at least one value"))?;
        let node = Node::new(Ty::Bool, K::Let(v, Box::new(coerce(x, ty)), Box::new(body)));
        Ok(if negated { not(node) } else { node })
    }

    fn between(
        &mut self,
        e: &sql::Expr,
        expr: &sql::Expr,
        low: &sql::Expr,
        high: &sql::Expr,
        negated: bool,
        d: u32,
    ) -> Result<Node, CompileError> {
        let x = self.check(expr, d)?;
        let lo = self.check(low, d)?;
        let hi = self.check(high, d)?;
        let ty = common(x.ty, lo.ty)
            .and_then(|t| common(t, hi.ty))
            .ok_or_else(|| {
                self.err_at(
                    e,
                    format!(
                        "cannot compare {} with {} and {}",
                        type_name(x.ty),
                        type_name(lo.ty),
                        type_name(hi.ty)
                    ),
                )
            })?;
        let Some(ty) = ty else {
            return Ok(Node::null(Some(Ty::Bool)));
        };
        let v = self.var();
        let var = || Box::new(Node::new(ty, K::Var(v)));
        let ge = Node::new(Ty::Bool, K::Cmp(Cmp::Ge, var(), Box::new(coerce(lo, ty))));
        let le = Node::new(Ty::Bool, K::Cmp(Cmp::Le, var(), Box::new(coerce(hi, ty))));
        let body = Node::new(Ty::Bool, K::And(Box::new(ge), Box::new(le)));
        let node = Node::new(Ty::Bool, K::Let(v, Box::new(coerce(x, ty)), Box::new(body)));
        Ok(if negated { not(node) } else { node })
    }

    /// Brings branch results to one type, reporting the first that does not fit.
    fn unify(
        &self,
        what: &str,
        parts: Vec<(Node, &sql::Expr)>,
    ) -> Result<(Option<Ty>, Vec<Node>), CompileError> {
        let mut ty = None;
        for (n, src) in &parts {
            ty = common(ty, n.ty).ok_or_else(|| {
                self.err_at(
                    src,
                    format!("{what} mixes {} and {}", type_name(ty), type_name(n.ty)),
                )
            })?;
        }
        let nodes = parts
            .into_iter()
            .map(|(n, _)| match ty {
                Some(t) => coerce(n, t),
                None => n,
            })
            .collect();
        Ok((ty, nodes))
    }

    fn case(
        &mut self,
        e: &sql::Expr,
        operand: Option<&sql::Expr>,
        conditions: &[sql::CaseWhen],
        else_result: Option<&sql::Expr>,
        d: u32,
    ) -> Result<Node, CompileError> {
        let operand = match operand {
            Some(o) => Some(self.check(o, d)?),
            None => None,
        };
        let mut conds = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        for w in conditions {
            let c = self.check(&w.condition, d)?;
            conds.push(c);
            results.push((self.check(&w.result, d)?, &w.result));
        }
        let has_else = else_result.is_some();
        if let Some(r) = else_result {
            results.push((self.check(r, d)?, r));
        }
        let (ty, mut results) = self.unify("CASE", results)?;
        let else_node = if has_else { results.pop() } else { None };

        // The simple form compares the operand, evaluated once, with each WHEN value.
        let mut bound = None;
        let conds: Vec<Node> = match operand {
            None => conds
                .into_iter()
                .zip(conditions)
                .map(|(c, w)| self.boolean(c, &w.condition, "WHEN"))
                .collect::<Result<_, _>>()?,
            Some(x) => {
                let mut cty = x.ty;
                for (c, w) in conds.iter().zip(conditions) {
                    cty = common(cty, c.ty).ok_or_else(|| {
                        self.err_at(
                            &w.condition,
                            format!(
                                "cannot compare {} with {}",
                                type_name(x.ty),
                                type_name(c.ty)
                            ),
                        )
                    })?;
                }
                match cty {
                    // Every comparison is with NULL: no branch can match.
                    None => conds.iter().map(|_| Node::null(Some(Ty::Bool))).collect(),
                    Some(cty) => {
                        let v = self.var();
                        bound = Some((v, coerce(x, cty)));
                        conds
                            .into_iter()
                            .map(|c| {
                                Node::new(
                                    Ty::Bool,
                                    K::Cmp(
                                        Cmp::Eq,
                                        Box::new(Node::new(cty, K::Var(v))),
                                        Box::new(coerce(c, cty)),
                                    ),
                                )
                            })
                            .collect()
                    }
                }
            }
        };
        let Some(ty) = ty else {
            return Ok(Node::null(None));
        };
        if conds.is_empty() {
            return Err(self.err_at(e, "CASE needs at least one WHEN"));
        }
        let case = Node::new(
            ty,
            K::Case(
                conds.into_iter().zip(results).collect(),
                else_node.map(Box::new),
            ),
        );
        Ok(match bound {
            Some((v, x)) => Node::new(ty, K::Let(v, Box::new(x), Box::new(case))),
            None => case,
        })
    }

    fn cast_target(&self, e: &sql::Expr, dt: &DataType) -> Result<Ty, CompileError> {
        Ok(match dt {
            DataType::BigInt(_)
            | DataType::Int(_)
            | DataType::Integer(_)
            | DataType::Int8(_)
            | DataType::Int4(_)
            | DataType::Int64
            | DataType::SmallInt(_) => Ty::Int,
            DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float(_)
            | DataType::Float8
            | DataType::Float64
            | DataType::Real => Ty::Float,
            DataType::Boolean | DataType::Bool => Ty::Bool,
            DataType::Varchar(_) | DataType::Text | DataType::String(_) => Ty::Str,
            DataType::Timestamp(_, _) => Ty::Ts,
            other => {
                return Err(self.err_at(
                    e,
                    format!(
                        "cannot cast to {other}; supported: BIGINT/INT, DOUBLE/FLOAT/REAL, BOOLEAN, VARCHAR/TEXT, TIMESTAMP"
                    ),
                ));
            }
        })
    }

    fn cast(&self, e: &sql::Expr, n: Node, to: Ty) -> Result<Node, CompileError> {
        let Some(from) = n.ty else {
            return Ok(Node::null(Some(to)));
        };
        use Ty::*;
        let ok = match (from, to) {
            (a, b) if a == b => return Ok(n),
            (Int, Float | Bool | Str | Ts) => true,
            (Float, Int) => true,
            (Bool, Int | Str) => true,
            (Str, Int) => true,
            (Ts, Int) => true,
            (Float, Str) => {
                return Err(self.err_at(
                    e,
                    "cannot cast float64 to string: exact shortest formatting is not implemented; round or cast to BIGINT first",
                ));
            }
            (Str, Float) => {
                return Err(self.err_at(
                    e,
                    "cannot cast string to float64: exact decimal parsing is not implemented",
                ));
            }
            _ => false,
        };
        if !ok {
            return Err(self.err_at(
                e,
                format!(
                    "cannot cast {} to {}",
                    type_name(Some(from)),
                    type_name(Some(to))
                ),
            ));
        }
        Ok(Node::new(to, K::Convert(Box::new(n))))
    }

    fn math(&self, arg_src: &sql::Expr, f: Math, n: Node) -> Result<Node, CompileError> {
        let name = format!("{f:?}").to_uppercase();
        let ty = match (f, n.ty) {
            (_, None) => {
                return Ok(Node::null(Some(match f {
                    Math::Abs | Math::Floor | Math::Ceil | Math::Round => Ty::Int,
                    _ => Ty::Float,
                })));
            }
            // Rounding an integer is the integer.
            (Math::Floor | Math::Ceil | Math::Round, Some(Ty::Int)) => return Ok(n),
            (Math::Abs, Some(t @ (Ty::Int | Ty::Float))) => t,
            (_, Some(Ty::Int | Ty::Float)) => Ty::Float,
            (_, t) => {
                return Err(self.err_at(
                    arg_src,
                    format!("{name} needs a number, not {}", type_name(t)),
                ));
            }
        };
        Ok(Node::new(ty, K::Math(f, Box::new(coerce(n, ty)))))
    }

    fn function(&mut self, e: &sql::Expr, f: &sql::Function, d: u32) -> Result<Node, CompileError> {
        let name = match f.name.0.as_slice() {
            [sql::ObjectNamePart::Identifier(i)] => i.value.to_ascii_uppercase(),
            _ => return Err(self.err_at(e, format!("unknown function `{}`", f.name))),
        };
        if f.over.is_some()
            || f.filter.is_some()
            || !f.within_group.is_empty()
            || f.null_treatment.is_some()
        {
            return Err(self.err_at(
                e,
                format!("{name}: window, FILTER and WITHIN GROUP clauses are not supported"),
            ));
        }
        if !matches!(f.parameters, FunctionArguments::None) {
            return Err(self.err_at(e, format!("{name}: parametric calls are not supported")));
        }
        let args: Vec<&sql::Expr> = match &f.args {
            FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(self.err_at(
                        e,
                        format!("{name}: DISTINCT/ALL and argument clauses are not supported"),
                    ));
                }
                list.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Ok(x),
                        _ => Err(self.err_at(
                            e,
                            format!("{name}: only plain positional arguments are supported"),
                        )),
                    })
                    .collect::<Result<_, _>>()?
            }
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(_) => {
                return Err(self.err_at(e, "subqueries are not supported"));
            }
        };
        let arity = |n: usize| -> Result<(), CompileError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.err_at(
                    e,
                    format!(
                        "{name} takes {n} argument{}, got {}",
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                ))
            }
        };
        let math = match name.as_str() {
            "ABS" => Some(Math::Abs),
            "SQRT" => Some(Math::Sqrt),
            "LN" => Some(Math::Ln),
            "EXP" => Some(Math::Exp),
            "FLOOR" => Some(Math::Floor),
            "CEIL" | "CEILING" => Some(Math::Ceil),
            "ROUND" if args.len() != 2 => Some(Math::Round),
            _ => None,
        };
        if let Some(m) = math {
            arity(1)?;
            let n = self.check(args[0], d)?;
            return self.math(args[0], m, n);
        }
        match name.as_str() {
            "ROUND" => {
                let n = self.check(args[0], d)?;
                let digits = self.round_digits(args[1])?;
                match n.ty {
                    None => Ok(Node::null(Some(Ty::Float))),
                    Some(Ty::Int | Ty::Float) => Ok(Node::new(
                        Ty::Float,
                        K::RoundTo(Box::new(coerce(n, Ty::Float)), digits),
                    )),
                    t => Err(self.err_at(args[0], format!("ROUND needs a number, not {}", type_name(t)))),
                }
            }
            "COALESCE" | "LEAST" | "GREATEST" => {
                if args.is_empty() {
                    return Err(self.err_at(e, format!("{name} needs at least one argument")));
                }
                let mut parts = Vec::with_capacity(args.len());
                for a in &args {
                    parts.push((self.check(a, d)?, *a));
                }
                let (ty, nodes) = self.unify(&name, parts)?;
                let Some(ty) = ty else {
                    return Ok(Node::null(None));
                };
                Ok(Node::new(
                    ty,
                    match name.as_str() {
                        "COALESCE" => K::Coalesce(nodes),
                        "GREATEST" => K::MinMax(true, nodes),
                        _ => K::MinMax(false, nodes),
                    },
                ))
            }
            "NULLIF" => {
                arity(2)?;
                let a = self.check(args[0], d)?;
                let b = self.check(args[1], d)?;
                let Some(cty) = self.comparable(e, &a, &b)? else {
                    return Ok(Node::null(None));
                };
                let Some(aty) = a.ty else {
                    return Ok(Node::null(None));
                };
                let v = self.var();
                // Compare in the common type but return `a` in its own type.
                let cond = Node::new(
                    Ty::Bool,
                    K::Cmp(
                        Cmp::Eq,
                        Box::new(coerce(Node::new(aty, K::Var(v)), cty)),
                        Box::new(coerce(b, cty)),
                    ),
                );
                let case = Node::new(
                    aty,
                    K::Case(
                        vec![(cond, Node::null(Some(aty)))],
                        Some(Box::new(Node::new(aty, K::Var(v)))),
                    ),
                );
                Ok(Node::new(aty, K::Let(v, Box::new(a), Box::new(case))))
            }
            _ => Err(self.err_at(
                e,
                format!(
                    "unknown function `{name}`; supported: ABS, CEIL, COALESCE, EXP, FLOOR, GREATEST, LEAST, LN, NULLIF, ROUND, SQRT"
                ),
            )),
        }
    }

    fn round_digits(&self, e: &sql::Expr) -> Result<i32, CompileError> {
        let (text, neg) = match e {
            sql::Expr::Value(v) => (&v.value, false),
            sql::Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                sql::Expr::Value(v) => (&v.value, true),
                _ => return Err(self.err_at(e, "ROUND's digits must be an integer literal")),
            },
            _ => return Err(self.err_at(e, "ROUND's digits must be an integer literal")),
        };
        let digits = match text {
            Value::Number(s, _) => s.parse::<i32>().ok(),
            _ => None,
        }
        .map(|n| if neg { -n } else { n })
        .filter(|n| (-22..=22).contains(n));
        digits.ok_or_else(|| {
            self.err_at(
                e,
                "ROUND's digits must be an integer literal between -22 and 22",
            )
        })
    }

    fn typed_string(&self, e: &sql::Expr, ts: &sql::TypedString) -> Result<Node, CompileError> {
        let text = match &ts.value.value {
            Value::SingleQuotedString(s) => s.as_str(),
            _ => return Err(self.err_at(e, "expected a quoted literal")),
        };
        match ts.data_type {
            DataType::Timestamp(_, _) => parse_timestamp(text)
                .map(|us| Node::new(Ty::Ts, K::Int(us)))
                .ok_or_else(|| {
                    self.err_at(
                        e,
                        "invalid TIMESTAMP literal; write 'YYYY-MM-DD[ HH:MM:SS[.ffffff]][Z|±HH:MM]' (UTC unless an offset is given)",
                    )
                }),
            _ => Err(self.err_at(e, format!("{} literals are not supported", ts.data_type))),
        }
    }
}

/// sqlparser's span of a call stops before its closing parenthesis; extend a fragment over the
/// parentheses it leaves open (quotes respected) so the quoted SQL reads whole.
fn close_parens(sql: &str, start: usize, end: usize) -> usize {
    let mut open = 0i32;
    let mut quote = None;
    for c in sql[start..end].chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => open += 1,
            (None, ')') => open -= 1,
            _ => {}
        }
    }
    if quote.is_some() {
        return end;
    }
    let mut new_end = end;
    for (i, c) in sql[end..].char_indices() {
        if open <= 0 {
            break;
        }
        match c {
            ')' => {
                open -= 1;
                new_end = end + i + 1;
            }
            c if c.is_whitespace() => {}
            _ => break,
        }
    }
    new_end
}

fn not(n: Node) -> Node {
    Node::new(Ty::Bool, K::Not(Box::new(n)))
}

fn unsupported(e: &sql::Expr) -> String {
    use sql::Expr as E;
    let what = match e {
        E::Like { .. } | E::ILike { .. } | E::SimilarTo { .. } | E::RLike { .. } => {
            "pattern matching"
        }
        E::Subquery(_) | E::Exists { .. } => "subqueries",
        E::Extract { .. } => "EXTRACT",
        E::Interval(_) => "intervals",
        E::Substring { .. } | E::Trim { .. } | E::Position { .. } | E::Overlay { .. } => {
            "string functions"
        }
        E::AtTimeZone { .. } => "AT TIME ZONE",
        E::Array(_) | E::Tuple(_) | E::Struct { .. } | E::Map(_) => "composite values",
        _ => "this construct",
    };
    format!("{what} is not supported")
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest name, if it is close enough to be a likely typo.
fn closest<'n>(name: &str, names: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    let lower = name.to_lowercase();
    names
        .map(|n| (distance(&lower, &n.to_lowercase()), n))
        .filter(|(d, n)| *d <= 2.max(n.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Microseconds since the epoch for `YYYY-MM-DD[( |T)HH:MM:SS[.ffffff]][Z|±HH[:MM]]`.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut us = days_from_civil(y, mo, d) * 86_400_000_000;
    let mut i = 10;
    if i < b.len() && (b[i] == b' ' || b[i] == b'T') {
        if b.len() < i + 9 || b[i + 3] != b':' || b[i + 6] != b':' {
            return None;
        }
        let (h, mi, sec) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?, num(i + 7..i + 9)?);
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        us += ((h * 60 + mi) * 60 + sec) * 1_000_000;
        i += 9;
        if i < b.len() && b[i] == b'.' {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start || end - start > 6 {
                return None;
            }
            let frac = num(start..end)?;
            us += frac * 10i64.pow(6 - (end - start) as u32);
            i = end;
        }
    }
    let rest = &s[i..];
    let offset_min = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body = &rest[1..];
            let (h, m) = match body.len() {
                2 => (body.parse::<i64>().ok()?, 0),
                5 if body.as_bytes()[2] == b':' => {
                    (body[..2].parse().ok()?, body[3..].parse().ok()?)
                }
                4 => (body[..2].parse().ok()?, body[2..].parse().ok()?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    Some(us - offset_min * 60_000_000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_micros() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_timestamp("2024-02-29T12:30:00.5Z"),
            Some(1_709_209_800_500_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:30:00+01:00"),
            Some(1_709_206_200_000_000)
        );
        assert_eq!(parse_timestamp("1969-12-31 23:59:59.999999"), Some(-1));
        assert_eq!(parse_timestamp("2023-02-29"), None);
        assert_eq!(parse_timestamp("2024-13-01"), None);
        assert_eq!(parse_timestamp("2024-01-01 24:00:00"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn suggestions_pick_close_names() {
        let names = ["frequency_90d", "recency_days", "monetary_90d"];
        assert_eq!(
            closest("frequncy_90d", names.into_iter()),
            Some("frequency_90d")
        );
        assert_eq!(
            closest("Recency_Day", names.into_iter()),
            Some("recency_days")
        );
        assert_eq!(closest("zzz", names.into_iter()), None);
    }
}
