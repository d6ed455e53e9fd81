//! Compiles SQL expressions into a WebAssembly component implementing the `fstore:transform`
//! world (`wit/transform.wit`), in-process and without any external toolchain.
//!
//! ```text
//! SQL ──sqlparser──▶ typed tree ──wasm-encoder──▶ core module ──wit-component──▶ component
//! ```
//!
//! Several expressions compile into one component with one output each and the union of the
//! inputs they reference, so a view with several SQL features costs one call per row.
//!
//! # SQL
//!
//! PostgreSQL syntax. Supported:
//!
//! - literals: integers (int64), decimals and exponents (float64), `'strings'`, `TRUE`,
//!   `FALSE`, `NULL`, `TIMESTAMP '2024-05-01 12:00:00[.ffffff][Z|±HH:MM]'` (UTC unless an
//!   offset is given);
//! - names of the available inputs; unquoted names match exactly or, when that is unambiguous,
//!   ignoring ASCII case; `"quoted"` names match exactly;
//! - `+ - * / %`, unary `-` and `+`; `= <> != < <= > >=`; `AND`, `OR`, `NOT`;
//!   `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE`, `IS [NOT] DISTINCT FROM`;
//!   `x [NOT] IN (a, b, …)`, `x [NOT] BETWEEN a AND b`;
//! - `CASE WHEN c THEN r … [ELSE e] END` and `CASE x WHEN v THEN r … END`;
//! - `COALESCE`, `NULLIF`, `LEAST`, `GREATEST`, `ABS`, `SQRT`, `LN`, `EXP`, `FLOOR`,
//!   `CEIL`/`CEILING`, `ROUND(x)`, `ROUND(x, digits)`;
//! - `CAST(x AS t)` and `x::t` with `t` one of BIGINT/INT/INTEGER/SMALLINT (all int64),
//!   DOUBLE [PRECISION]/FLOAT/REAL (all float64), BOOLEAN, VARCHAR/TEXT, TIMESTAMP.
//!
//! Everything else (other functions and operators, subqueries, `LIKE`, lists…) is rejected
//! with an error that names the expression and points at the offending SQL.
//!
//! # Semantics
//!
//! - NULL propagates through arithmetic, comparisons, functions and casts.
//! - `AND`, `OR`, `NOT` use SQL's three-valued logic (`NULL AND FALSE` is `FALSE`,
//!   `NULL OR TRUE` is `TRUE`); `x IN (…)` is the `OR` of equalities, so a NULL in the list
//!   makes a non-match NULL; `BETWEEN` is `x >= a AND x <= b`.
//! - A `CASE` branch is taken when its condition is TRUE (not NULL); no match and no `ELSE`
//!   gives NULL. Only the chosen branch is evaluated.
//! - int64 ∘ int64 → int64, wrapping on overflow (so does unary minus and `ABS` of the most
//!   negative value); `/` truncates toward zero, `%` takes the dividend's sign. Mixing int64 and
//!   float64 converts the int64 to float64 (nearest). `%` on float64 is rejected, as in
//!   PostgreSQL.
//! - Division or modulo by zero gives NULL, for floats as for integers.
//! - `SQRT(x)` is NULL unless `x >= 0`; `LN(x)` is NULL unless `x > 0` (so NaN gives NULL for
//!   both). `LN` and `EXP` are computed inside the module (no imports) to within 1 ulp.
//!   `EXP` overflows to infinity.
//! - `ROUND` rounds half away from zero; `ROUND(x, d)` is `ROUND(x·10ᵈ)/10ᵈ` in float64 and
//!   always float64. `FLOOR`, `CEIL`, `ROUND` of an int64 are the int64 itself.
//! - Comparisons: numbers numerically (int64 vs float64 in float64; NaN compares false with
//!   everything), strings byte-wise (UTF-8 order), booleans `FALSE < TRUE`, timestamps with
//!   timestamps only.
//! - `LEAST`/`GREATEST` ignore NULL arguments (PostgreSQL's rule); NULL only when all are.
//! - Casts: float64 → int64 rounds to nearest, ties to even (PostgreSQL), NULL when NaN or out
//!   of range; string → int64 accepts optional surrounding whitespace and a sign, NULL when the
//!   text is not an int64; int64 ↔ boolean is `x <> 0` / 0 or 1; int64 ↔ timestamp is
//!   microseconds since the epoch; int64 and boolean → string format in decimal and as
//!   `true`/`false`. float64 → string and string → float64 are rejected (exact shortest
//!   formatting and correctly rounded parsing are not implemented).
//! - An output's type is inferred; if a declared type is given the inferred type must equal it,
//!   except that int64 widens to float64.
//!
//! # The module
//!
//! The generated core module implements the canonical ABI by hand (layouts are computed from
//! the WIT with wit-parser's `SizeAlign`): `cabi_realloc` is a bump allocator reset by every
//! `cabi_post_*`, so a long-lived instance does not grow; `compute-batch` evaluates all rows
//! in one loop inside the module. Memory growth that fails traps.

mod abi;
mod check;
mod codegen;
mod math;

use std::fmt;

use fstore_snapshot::FeatureType;

pub use check::{MAX_DEPTH, MAX_SQL_LEN};

/// One SQL feature to compile.
#[derive(Debug, Clone, Copy)]
pub struct Expr<'a> {
    /// The output's name (the feature's name).
    pub name: &'a str,
    pub sql: &'a str,
    /// The type the feature is declared with, if any; the inferred type must match it.
    pub declared: Option<FeatureType>,
}

/// A compiled component and its signature.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The inputs the expressions reference, in the order `describe()` lists them (the order of
    /// `available`).
    pub inputs: Vec<(String, FeatureType)>,
    /// One output per expression, in the order given.
    pub outputs: Vec<(String, FeatureType)>,
}

/// A 1-based line and column in an expression's SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// Why a set of expressions did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(self))]
pub struct CompileError {
    /// The expression's name; empty when the error concerns no single expression.
    pub expr: String,
    pub message: String,
    /// Where in the expression's SQL, when known.
    pub position: Option<Position>,
    /// The SQL at fault, when known.
    pub fragment: Option<String>,
}

impl CompileError {
    pub(crate) fn new(expr: &str, message: impl Into<String>) -> CompileError {
        CompileError {
            expr: expr.to_string(),
            message: message.into(),
            position: None,
            fragment: None,
        }
    }
}

fn render(e: &CompileError) -> String {
    let mut out = String::new();
    if !e.expr.is_empty() {
        out.push_str(&e.expr);
        out.push_str(": ");
    }
    if let Some(fragment) = &e.fragment {
        // Keep one-line messages one line, and long fragments short.
        let flat: String = fragment
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let shown: String = flat.chars().take(80).collect();
        let ellipsis = if flat.chars().count() > 80 { "…" } else { "" };
        out.push_str(&format!("`{shown}{ellipsis}`: "));
    }
    out.push_str(&e.message);
    if let Some(p) = e.position {
        out.push_str(&format!(" at line {}, column {}", p.line, p.column));
    }
    out
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Compiles `exprs` into one component whose inputs are the `available` entries they reference.
///
/// `available` holds the names and types the expressions may reference (the view's features or
/// a request's fields).
pub fn compile(
    available: &[(String, FeatureType)],
    exprs: &[Expr<'_>],
) -> Result<Compiled, CompileError> {
    // sqlparser's span and drop code recurses as deep as the tree, and an `a + a + …` chain is
    // as deep as it is long; a thread with a known, generous stack makes MAX_SQL_LEN a safe
    // bound whatever stack the caller runs on. Spawning costs microseconds.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("fstore-compiler".into())
            .stack_size(32 << 20)
            .spawn_scoped(scope, || compile_here(available, exprs))
            .map_err(|e| CompileError::new("", format!("cannot start the compiler thread: {e}")))?
            .join()
            .unwrap_or_else(|_| Err(CompileError::new("", "the compiler panicked")))
    })
}

fn compile_here(
    available: &[(String, FeatureType)],
    exprs: &[Expr<'_>],
) -> Result<Compiled, CompileError> {
    if exprs.is_empty() {
        return Err(CompileError::new("", "no expressions to compile"));
    }
    for (i, e) in exprs.iter().enumerate() {
        if e.name.is_empty() {
            return Err(CompileError::new(
                "",
                format!("expression #{} has no name", i + 1),
            ));
        }
        if exprs[..i].iter().any(|p| p.name == e.name) {
            return Err(CompileError::new(e.name, "two expressions have this name"));
        }
    }
    let world = abi::world().map_err(|e| CompileError::new("", e))?;

    let mut used = vec![false; available.len()];
    let mut next_var = 0u32;
    let mut roots = Vec::with_capacity(exprs.len());
    for e in exprs {
        let ast = check::parse(e.name, e.sql)?;
        let mut checker = check::Checker {
            name: e.name,
            sql: e.sql,
            available,
            used: &mut used,
            next_var: &mut next_var,
        };
        let node = checker.check_root(&ast)?;
        let node = declare(e, node, &ast)?;
        roots.push(node);
    }

    let inputs: Vec<(usize, abi::Ty)> = used
        .iter()
        .enumerate()
        .filter(|(_, u)| **u)
        .map(|(i, _)| (i, ty_of(available[i].1).unwrap_or(abi::Ty::Int)))
        .collect();
    let outputs: Vec<(String, abi::Ty)> = exprs
        .iter()
        .zip(&roots)
        .map(|(e, n)| (e.name.to_string(), n.ty.unwrap_or(abi::Ty::Int)))
        .collect();

    let spec = codegen::Spec {
        inputs: inputs
            .iter()
            .map(|(i, t)| codegen::Port {
                name: &available[*i].0,
                ty: *t,
                available_index: *i,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|(n, t)| codegen::Port {
                name: n,
                ty: *t,
                available_index: usize::MAX,
            })
            .collect(),
        roots: &roots,
    };
    let component = codegen::build(world, &spec)
        .map_err(|e| CompileError::new("", format!("internal error: {e}")))?;

    Ok(Compiled {
        component,
        inputs: inputs.iter().map(|(i, _)| available[*i].clone()).collect(),
        outputs: outputs
            .into_iter()
            .map(|(n, t)| (n, feature_type(t)))
            .collect(),
    })
}

/// Applies the declared type: it must match the inferred one, int64 may widen to float64, and
/// a NULL-only expression takes it.
fn declare(
    e: &Expr<'_>,
    node: check::Node,
    ast: &sqlparser::ast::Expr,
) -> Result<check::Node, CompileError> {
    use sqlparser::ast::Spanned;
    let declared = match e.declared {
        None => None,
        Some(FeatureType::ListFloat64) => {
            return Err(CompileError::new(
                e.name,
                "declared list<float64>, but SQL expressions cannot produce lists",
            ));
        }
        Some(ft) => ty_of(ft),
    };
    let mismatch = |msg: String| {
        let mut err = CompileError::new(e.name, msg);
        let span = ast.span();
        if span.start.line > 0 {
            err.position = Some(Position {
                line: span.start.line as u32,
                column: span.start.column as u32,
            });
        }
        err
    };
    match (node.ty, declared) {
        (None, None) => Err(CompileError::new(
            e.name,
            "the expression is always NULL, so its type cannot be inferred; declare the feature's type",
        )),
        (None, Some(t)) => Ok(check::Node {
            ty: Some(t),
            kind: check::K::Null,
        }),
        (Some(_), None) => Ok(node),
        (Some(a), Some(b)) if a == b => Ok(node),
        (Some(abi::Ty::Int), Some(abi::Ty::Float)) => Ok(check::Node {
            ty: Some(abi::Ty::Float),
            kind: check::K::Convert(Box::new(node)),
        }),
        (Some(a), Some(_)) => Err(mismatch(format!(
            "declared {}, but the expression is {}",
            e.declared.map(|d| d.name()).unwrap_or("?"),
            feature_type(a).name()
        ))),
    }
}

fn ty_of(ft: FeatureType) -> Option<abi::Ty> {
    match ft {
        FeatureType::Int64 => Some(abi::Ty::Int),
        FeatureType::Float64 => Some(abi::Ty::Float),
        FeatureType::String => Some(abi::Ty::Str),
        FeatureType::Bool => Some(abi::Ty::Bool),
        FeatureType::Timestamp => Some(abi::Ty::Ts),
        FeatureType::ListFloat64 => None,
    }
}

fn feature_type(t: abi::Ty) -> FeatureType {
    match t {
        abi::Ty::Int => FeatureType::Int64,
        abi::Ty::Float => FeatureType::Float64,
        abi::Ty::Str => FeatureType::String,
        abi::Ty::Bool => FeatureType::Bool,
        abi::Ty::Ts => FeatureType::Timestamp,
    }
}
