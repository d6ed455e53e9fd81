//! Runs compiled components for real, through the wasmtime host the edge and the control plane
//! use: every operator and function, NULL semantics, LN/EXP accuracy, batch against row.

mod common;

use std::sync::OnceLock;

use fstore_compiler::{Compiled, Expr, compile};
use fstore_snapshot::FeatureType;
use fstore_wasm_host::{
    CallError, Column, ColumnData, Host, HostConfig, Limits, LoadError, Transform, Value, ValueType,
};

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new(HostConfig::default()).expect("host starts"))
}

/// A value with equality that suits tests: floats compare by bits (NaN equals NaN, -0 ≠ 0).
#[derive(Debug, Clone, PartialEq)]
enum V {
    N,
    I(i64),
    F(u64),
    S(String),
    B(bool),
    T(i64),
}
use V::{B, I, N, T};

fn f(x: f64) -> V {
    V::F(x.to_bits())
}
fn s(x: &str) -> V {
    V::S(x.to_string())
}

fn to_host(v: &V) -> Value {
    match v {
        N => Value::Null,
        I(x) => Value::Int64(*x),
        V::F(bits) => Value::Float64(f64::from_bits(*bits)),
        V::S(x) => Value::String(x.clone()),
        B(x) => Value::Boolean(*x),
        T(x) => Value::Timestamp(*x),
    }
}

fn from_host(v: &Value) -> V {
    match v {
        Value::Null => N,
        Value::Int64(x) => I(*x),
        Value::Float64(x) => f(*x),
        Value::String(x) => s(x),
        Value::Boolean(x) => B(*x),
        Value::Timestamp(x) => T(*x),
        Value::Float64List(_) => panic!("a list came out"),
    }
}

fn vars() -> Vec<(String, FeatureType)> {
    use FeatureType::*;
    [
        ("a", Int64),
        ("b", Int64),
        ("x", Float64),
        ("y", Float64),
        ("s", String),
        ("t", String),
        ("p", Bool),
        ("q", Bool),
        ("ts", Timestamp),
        ("tu", Timestamp),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

/// Generous deadlines: the tests run in parallel on a small machine, and a descheduled thread
/// must not read as a slow transform.
fn limits() -> Limits {
    Limits {
        deadline: std::time::Duration::from_secs(5),
        ..Limits::default()
    }
}

fn load(available: &[(String, FeatureType)], exprs: &[Expr<'_>]) -> (Compiled, Transform) {
    let compiled = compile(available, exprs).unwrap_or_else(|e| panic!("{e}"));
    let t = host()
        .load(&compiled.component, &[], limits())
        .unwrap_or_else(|e| panic!("load: {e}"));
    (compiled, t)
}

/// Builds one column from row values of one type, with an Arrow validity bitmap (empty when no
/// value is NULL).
fn column(ty: FeatureType, values: &[V]) -> Column {
    let rows = values.len();
    let mut validity = vec![0u8; rows.div_ceil(8)];
    for (i, v) in values.iter().enumerate() {
        if *v != N {
            validity[i / 8] |= 1 << (i % 8);
        }
    }
    if values.iter().all(|v| *v != N) {
        validity.clear();
    }
    let data = match ty {
        FeatureType::Int64 => ColumnData::Int64(
            values
                .iter()
                .map(|v| if let I(x) = v { *x } else { 0 })
                .collect(),
        ),
        FeatureType::Timestamp => ColumnData::Timestamp(
            values
                .iter()
                .map(|v| if let T(x) = v { *x } else { 0 })
                .collect(),
        ),
        FeatureType::Float64 => ColumnData::Float64(
            values
                .iter()
                .map(|v| {
                    if let V::F(x) = v {
                        f64::from_bits(*x)
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
        FeatureType::String => ColumnData::String(
            values
                .iter()
                .map(|v| {
                    if let V::S(x) = v {
                        x.clone()
                    } else {
                        String::new()
                    }
                })
                .collect(),
        ),
        FeatureType::Bool => ColumnData::Boolean(
            values
                .iter()
                .map(|v| if let B(x) = v { *x } else { false })
                .collect(),
        ),
        FeatureType::ListFloat64 => panic!("no list columns here"),
    };
    Column { data, validity }
}

/// Reads a column back into row values.
fn unpack(c: &Column) -> Vec<V> {
    let valid = |i: usize| c.validity.is_empty() || c.validity[i / 8] & (1 << (i % 8)) != 0;
    let vals: Vec<V> = match &c.data {
        ColumnData::Int64(v) => v.iter().map(|x| I(*x)).collect(),
        ColumnData::Float64(v) => v.iter().map(|x| f(*x)).collect(),
        ColumnData::String(v) => v.iter().map(|x| s(x)).collect(),
        ColumnData::Boolean(v) => v.iter().map(|x| B(*x)).collect(),
        ColumnData::Timestamp(v) => v.iter().map(|x| T(*x)).collect(),
        ColumnData::Float64List(_) => panic!("a list came out"),
    };
    vals.into_iter()
        .enumerate()
        .map(|(i, v)| if valid(i) { v } else { N })
        .collect()
}

type Case<'a> = (&'a str, &'a [(&'a str, V)], V);
/// Input bindings of one case, owned.
type Binds = Vec<(&'static str, V)>;

/// Compiles every case's SQL into one component, then checks each case on its own row, once
/// with `compute` and once with all rows in one `compute-batch`.
fn check(cases: &[Case<'_>]) {
    let available = vars();
    let names: Vec<String> = (0..cases.len()).map(|i| format!("o{i}")).collect();
    let exprs: Vec<Expr<'_>> = cases
        .iter()
        .zip(&names)
        .map(|((sql, _, _), name)| Expr {
            name,
            sql,
            declared: None,
        })
        .collect();
    let (compiled, t) = load(&available, &exprs);
    let rows: Vec<Vec<V>> = cases
        .iter()
        .map(|(_, binds, _)| {
            compiled
                .inputs
                .iter()
                .map(|(n, _)| {
                    binds
                        .iter()
                        .find(|(b, _)| b == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(N)
                })
                .collect()
        })
        .collect();
    for (k, ((sql, binds, want), row)) in cases.iter().zip(&rows).enumerate() {
        let input: Vec<Value> = row.iter().map(to_host).collect();
        let out = t
            .call(&input)
            .unwrap_or_else(|e| panic!("`{sql}` with {binds:?}: {e}"));
        assert_eq!(&from_host(&out[k]), want, "`{sql}` with {binds:?}");
    }
    let columns: Vec<Column> = compiled
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            let vals: Vec<V> = rows.iter().map(|r| r[i].clone()).collect();
            column(*ty, &vals)
        })
        .collect();
    let out = t
        .call_batch(cases.len() as u32, &columns)
        .unwrap_or_else(|e| panic!("batch: {e}"));
    for (k, (sql, binds, want)) in cases.iter().enumerate() {
        assert_eq!(&unpack(&out[k])[k], want, "batch: `{sql}` with {binds:?}");
    }
}

#[test]
fn integer_arithmetic_wraps_truncates_and_nulls_division_by_zero() {
    let max = i64::MAX;
    let min = i64::MIN;
    check(&[
        ("a + b", &[("a", I(2)), ("b", I(3))], I(5)),
        ("a - b", &[("a", I(2)), ("b", I(3))], I(-1)),
        ("a * b", &[("a", I(-4)), ("b", I(3))], I(-12)),
        ("a / b", &[("a", I(7)), ("b", I(2))], I(3)),
        ("a / b", &[("a", I(-7)), ("b", I(2))], I(-3)),
        ("a % b", &[("a", I(-7)), ("b", I(3))], I(-1)),
        ("a % b", &[("a", I(7)), ("b", I(-3))], I(1)),
        ("a / b", &[("a", I(7)), ("b", I(0))], N),
        ("a % b", &[("a", I(7)), ("b", I(0))], N),
        ("a / b", &[("a", I(min)), ("b", I(-1))], I(min)),
        ("a % b", &[("a", I(min)), ("b", I(-1))], I(0)),
        ("a + 1", &[("a", I(max))], I(min)),
        ("a * 2", &[("a", I(max))], I(-2)),
        ("-a", &[("a", I(min))], I(min)),
        ("-a", &[("a", I(5))], I(-5)),
        ("+a", &[("a", I(5))], I(5)),
        ("a + b", &[("a", N), ("b", I(3))], N),
        ("a / b", &[("a", N), ("b", I(0))], N),
        ("-9223372036854775808", &[], I(min)),
        ("2 + 3 * 4 - 10 / 3 % 2", &[], I(13)),
        ("(2 + 3) * 4", &[], I(20)),
        ("a + NULL", &[("a", I(1))], N),
    ]);
}

#[test]
fn float_arithmetic_promotes_and_nulls_division_by_zero() {
    check(&[
        ("x + a", &[("x", f(0.5)), ("a", I(2))], f(2.5)),
        ("a / 2.0", &[("a", I(7))], f(3.5)),
        ("x * y", &[("x", f(1.5)), ("y", f(-2.0))], f(-3.0)),
        ("x - y", &[("x", f(0.1)), ("y", f(0.2))], f(0.1 - 0.2)),
        ("x / y", &[("x", f(1.0)), ("y", f(3.0))], f(1.0 / 3.0)),
        ("x / y", &[("x", f(1.0)), ("y", f(0.0))], N),
        ("x / y", &[("x", f(1.0)), ("y", f(-0.0))], N),
        ("x / a", &[("x", f(1.0)), ("a", I(0))], N),
        ("-x", &[("x", f(0.0))], f(-0.0)),
        ("x + 1", &[("x", N)], N),
        ("x * 2", &[("x", f(f64::INFINITY))], f(f64::INFINITY)),
        ("1e3 + 0.5", &[], f(1000.5)),
        (
            "a + 0.5",
            &[("a", I(9_007_199_254_740_993))],
            f(9_007_199_254_740_993i64 as f64 + 0.5),
        ),
    ]);
}

#[test]
fn comparisons_cover_every_type() {
    let ops = ["=", "<>", "!=", "<", "<=", ">", ">="];
    let truth = |op: &str, o: std::cmp::Ordering| -> bool {
        use std::cmp::Ordering::*;
        match op {
            "=" => o == Equal,
            "<>" | "!=" => o != Equal,
            "<" => o == Less,
            "<=" => o != Greater,
            ">" => o == Greater,
            _ => o != Less,
        }
    };
    let mut sqls = Vec::new();
    let mut cases: Vec<(usize, Binds, V)> = Vec::new();
    let pairs: Vec<(&str, &str, Binds, std::cmp::Ordering)> = {
        use std::cmp::Ordering::*;
        vec![
            ("a", "b", vec![("a", I(1)), ("b", I(2))], Less),
            ("a", "b", vec![("a", I(-1)), ("b", I(-1))], Equal),
            (
                "a",
                "b",
                vec![("a", I(i64::MAX)), ("b", I(i64::MIN))],
                Greater,
            ),
            ("x", "y", vec![("x", f(1.5)), ("y", f(-2.0))], Greater),
            ("x", "y", vec![("x", f(0.0)), ("y", f(-0.0))], Equal),
            ("a", "x", vec![("a", I(2)), ("x", f(2.5))], Less),
            ("a", "x", vec![("a", I(3)), ("x", f(3.0))], Equal),
            ("s", "t", vec![("s", s("a")), ("t", s("b"))], Less),
            ("s", "t", vec![("s", s("ab")), ("t", s("abc"))], Less),
            ("s", "t", vec![("s", s("Z")), ("t", s("a"))], Less),
            ("s", "t", vec![("s", s("é")), ("t", s("z"))], Greater),
            ("s", "t", vec![("s", s("")), ("t", s(""))], Equal),
            (
                "s",
                "t",
                vec![
                    ("s", s("0123456789abcdef_x")),
                    ("t", s("0123456789abcdef_x")),
                ],
                Equal,
            ),
            (
                "s",
                "t",
                vec![
                    ("s", s("0123456789abcdef_x")),
                    ("t", s("0123456789abcdef_y")),
                ],
                Less,
            ),
            (
                "s",
                "t",
                vec![("s", s("01234567_b")), ("t", s("01234567_a"))],
                Greater,
            ),
            (
                "s",
                "t",
                vec![("s", s("0123456789")), ("t", s("01234567"))],
                Greater,
            ),
            ("p", "q", vec![("p", B(false)), ("q", B(true))], Less),
            ("p", "q", vec![("p", B(true)), ("q", B(true))], Equal),
            ("ts", "tu", vec![("ts", T(10)), ("tu", T(-10))], Greater),
        ]
    };
    for (l, r, binds, ord) in &pairs {
        for op in ops {
            sqls.push(format!("{l} {op} {r}"));
            cases.push((sqls.len() - 1, binds.clone(), B(truth(op, *ord))));
            sqls.push(format!("{l} {op} {r}"));
            let mut nulled = binds.clone();
            nulled[0].1 = N;
            cases.push((sqls.len() - 1, nulled, N));
        }
    }
    // NaN compares false with everything (IEEE), except `<>`.
    for op in ops {
        sqls.push(format!("x {op} y"));
        cases.push((
            sqls.len() - 1,
            vec![("x", f(f64::NAN)), ("y", f(1.0))],
            B(matches!(op, "<>" | "!=")),
        ));
    }
    sqls.push("s = 'DE'".into());
    cases.push((sqls.len() - 1, vec![("s", s("DE"))], B(true)));
    sqls.push("NULL = NULL".into());
    cases.push((sqls.len() - 1, vec![], N));
    sqls.push("ts < TIMESTAMP '2024-01-01T00:00:00Z'".into());
    cases.push((
        sqls.len() - 1,
        vec![("ts", T(1_704_067_199_999_999))],
        B(true),
    ));
    let owned: Vec<(String, Binds, V)> = cases
        .into_iter()
        .map(|(i, b, v)| (sqls[i].clone(), b, v))
        .collect();
    let borrowed: Vec<Case<'_>> = owned
        .iter()
        .map(|(q, b, v)| (q.as_str(), b.as_slice(), v.clone()))
        .collect();
    check(&borrowed);
}

#[test]
fn logic_is_three_valued() {
    let vals = [B(true), B(false), N];
    let and = |l: &V, r: &V| match (l, r) {
        (B(false), _) | (_, B(false)) => B(false),
        (B(true), B(true)) => B(true),
        _ => N,
    };
    let or = |l: &V, r: &V| match (l, r) {
        (B(true), _) | (_, B(true)) => B(true),
        (B(false), B(false)) => B(false),
        _ => N,
    };
    let mut owned = Vec::new();
    for l in &vals {
        for r in &vals {
            let binds = vec![("p", l.clone()), ("q", r.clone())];
            owned.push(("p AND q", binds.clone(), and(l, r)));
            owned.push(("p OR q", binds.clone(), or(l, r)));
        }
        let not = match l {
            B(x) => B(!x),
            _ => N,
        };
        owned.push(("NOT p", vec![("p", l.clone())], not));
        let is_true = B(*l == B(true));
        let is_false = B(*l == B(false));
        owned.push(("p IS TRUE", vec![("p", l.clone())], is_true.clone()));
        owned.push(("p IS FALSE", vec![("p", l.clone())], is_false.clone()));
        owned.push(("p IS NOT TRUE", vec![("p", l.clone())], B(*l != B(true))));
        owned.push(("p IS NOT FALSE", vec![("p", l.clone())], B(*l != B(false))));
        owned.push(("p IS NULL", vec![("p", l.clone())], B(*l == N)));
        owned.push(("p IS NOT NULL", vec![("p", l.clone())], B(*l != N)));
    }
    owned.push(("NULL AND FALSE", vec![], B(false)));
    owned.push(("NULL OR TRUE", vec![], B(true)));
    owned.push(("NOT NULL", vec![], N));
    owned.push(("a > 1 AND s = 'x'", vec![("a", I(2)), ("s", N)], N));
    owned.push(("a > 1 OR s = 'x'", vec![("a", I(2)), ("s", N)], B(true)));
    owned.push(("x IS NULL", vec![("x", N)], B(true)));
    owned.push(("s IS NOT NULL", vec![("s", s(""))], B(true)));
    owned.push(("NULL IS NULL", vec![], B(true)));
    owned.push(("a IS DISTINCT FROM b", vec![("a", I(1)), ("b", N)], B(true)));
    owned.push(("a IS DISTINCT FROM b", vec![("a", N), ("b", N)], B(false)));
    owned.push((
        "a IS NOT DISTINCT FROM b",
        vec![("a", I(1)), ("b", I(1))],
        B(true),
    ));
    owned.push((
        "s IS DISTINCT FROM t",
        vec![("s", s("x")), ("t", s("y"))],
        B(true),
    ));
    let cases: Vec<Case<'_>> = owned
        .iter()
        .map(|(q, b, v)| (*q, b.as_slice(), v.clone()))
        .collect();
    check(&cases);
}

#[test]
fn case_coalesce_nullif_least_greatest() {
    let seg = common::SEGMENT
        .replace("recency_days", "a")
        .replace("frequency_90d", "b")
        .replace("monetary_90d", "x");
    let seg = seg.as_str();
    check(&[
        (
            seg,
            &[("a", I(10)), ("b", I(7)), ("x", f(0.0))],
            s("champion"),
        ),
        (
            seg,
            &[("a", I(40)), ("b", I(7)), ("x", f(600.0))],
            s("big_spender"),
        ),
        (
            seg,
            &[("a", I(40)), ("b", I(7)), ("x", f(10.0))],
            s("other"),
        ),
        // A NULL condition is not TRUE: the next branch is tried.
        (
            seg,
            &[("a", N), ("b", I(7)), ("x", f(600.0))],
            s("big_spender"),
        ),
        (seg, &[("a", N), ("b", N), ("x", N)], s("other")),
        ("CASE WHEN a > 0 THEN 'pos' END", &[("a", I(-1))], N),
        ("CASE WHEN a > 0 THEN 'pos' END", &[("a", I(1))], s("pos")),
        (
            "CASE WHEN p THEN a ELSE x END",
            &[("p", B(true)), ("a", I(2)), ("x", f(0.5))],
            f(2.0),
        ),
        (
            "CASE WHEN p THEN s ELSE t END",
            &[("p", B(false)), ("s", s("S")), ("t", s("T"))],
            s("T"),
        ),
        ("CASE WHEN p THEN NULL ELSE 1 END", &[("p", B(true))], N),
        (
            "CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'many' END",
            &[("a", I(2))],
            s("two"),
        ),
        (
            "CASE a WHEN 1 THEN 'one' ELSE 'many' END",
            &[("a", N)],
            s("many"),
        ),
        (
            "CASE s WHEN 'DE' THEN 49 WHEN 'AT' THEN 43 END",
            &[("s", s("AT"))],
            I(43),
        ),
        ("COALESCE(a, b, 0)", &[("a", N), ("b", I(5))], I(5)),
        ("COALESCE(a, b, 0)", &[("a", N), ("b", N)], I(0)),
        ("COALESCE(s, 'unknown')", &[("s", s("x"))], s("x")),
        ("COALESCE(a, x)", &[("a", I(3)), ("x", f(0.5))], f(3.0)),
        ("COALESCE(a, NULL)", &[("a", N)], N),
        ("NULLIF(s, '')", &[("s", s(""))], N),
        ("NULLIF(s, '')", &[("s", s("x"))], s("x")),
        ("NULLIF(a, x)", &[("a", I(2)), ("x", f(2.0))], N),
        ("NULLIF(a, 3)", &[("a", I(2))], I(2)),
        ("LEAST(a, b, 10)", &[("a", I(3)), ("b", I(-4))], I(-4)),
        ("GREATEST(a, b, 10)", &[("a", I(3)), ("b", I(-4))], I(10)),
        ("LEAST(a, b)", &[("a", N), ("b", I(4))], I(4)),
        ("GREATEST(a, b)", &[("a", N), ("b", N)], N),
        ("LEAST(a, x)", &[("a", I(1)), ("x", f(0.5))], f(0.5)),
        (
            "GREATEST(s, t, 'm')",
            &[("s", s("apple")), ("t", s("zebra"))],
            s("zebra"),
        ),
        ("LEAST(s, t, 'm')", &[("s", N), ("t", s("zebra"))], s("m")),
        ("GREATEST(ts, tu)", &[("ts", T(5)), ("tu", T(7))], T(7)),
        ("LEAST(p, q)", &[("p", B(true)), ("q", B(false))], B(false)),
    ]);
}

#[test]
fn math_functions() {
    check(&[
        ("ABS(a)", &[("a", I(-5))], I(5)),
        ("ABS(a)", &[("a", I(i64::MIN))], I(i64::MIN)),
        ("ABS(x)", &[("x", f(-0.0))], f(0.0)),
        ("ABS(x)", &[("x", N)], N),
        ("SQRT(x)", &[("x", f(2.0))], f(2f64.sqrt())),
        ("SQRT(a)", &[("a", I(9))], f(3.0)),
        ("SQRT(x)", &[("x", f(-1.0))], N),
        ("SQRT(x)", &[("x", f(f64::NAN))], N),
        ("SQRT(x)", &[("x", f(-0.0))], f(-0.0)),
        ("LN(x)", &[("x", f(1.0))], f(0.0)),
        ("LN(x)", &[("x", f(0.0))], N),
        ("LN(x)", &[("x", f(-2.0))], N),
        ("LN(x)", &[("x", f(f64::NAN))], N),
        ("LN(x)", &[("x", f(f64::INFINITY))], f(f64::INFINITY)),
        ("LN(a)", &[("a", I(1))], f(0.0)),
        ("LN(x)", &[("x", f(std::f64::consts::E))], f(1.0)),
        ("EXP(x)", &[("x", f(0.0))], f(1.0)),
        ("EXP(x)", &[("x", f(1000.0))], f(f64::INFINITY)),
        ("EXP(x)", &[("x", f(-1000.0))], f(0.0)),
        ("EXP(x)", &[("x", f(f64::NEG_INFINITY))], f(0.0)),
        ("EXP(a)", &[("a", I(0))], f(1.0)),
        ("EXP(x)", &[("x", f(-0.0))], f(1.0)),
        ("FLOOR(x)", &[("x", f(-1.5))], f(-2.0)),
        ("CEIL(x)", &[("x", f(-1.5))], f(-1.0)),
        ("CEILING(x)", &[("x", f(1.2))], f(2.0)),
        ("FLOOR(a)", &[("a", I(7))], I(7)),
        ("ROUND(x)", &[("x", f(2.5))], f(3.0)),
        ("ROUND(x)", &[("x", f(-2.5))], f(-3.0)),
        ("ROUND(x)", &[("x", f(0.49999999999999994))], f(0.0)),
        ("ROUND(x)", &[("x", f(-0.4))], f(-0.0)),
        (
            "ROUND(x)",
            &[("x", f(4503599627370497.0))],
            f(4503599627370497.0),
        ),
        ("ROUND(a)", &[("a", I(-3))], I(-3)),
        ("ROUND(x, 2)", &[("x", f(1.23456))], f(1.23)),
        ("ROUND(x, 1)", &[("x", f(-0.25))], f(-0.3)),
        ("ROUND(x, -2)", &[("x", f(1250.0))], f(1300.0)),
        ("ROUND(a, 1)", &[("a", I(3))], f(3.0)),
        ("ROUND(x, 2)", &[("x", f(1e307))], f(1e307)),
        ("ROUND(x, 2)", &[("x", N)], N),
    ]);
}

#[test]
fn casts() {
    check(&[
        ("CAST(a AS VARCHAR)", &[("a", I(0))], s("0")),
        ("CAST(a AS TEXT)", &[("a", I(-45))], s("-45")),
        (
            "CAST(a AS VARCHAR)",
            &[("a", I(i64::MIN))],
            s("-9223372036854775808"),
        ),
        ("a::text", &[("a", I(i64::MAX))], s("9223372036854775807")),
        ("CAST(a AS VARCHAR)", &[("a", N)], N),
        ("CAST(p AS VARCHAR)", &[("p", B(true))], s("true")),
        ("CAST(p AS VARCHAR)", &[("p", B(false))], s("false")),
        ("CAST(s AS BIGINT)", &[("s", s(" 42 "))], I(42)),
        ("CAST(s AS BIGINT)", &[("s", s("+7"))], I(7)),
        (
            "CAST(s AS BIGINT)",
            &[("s", s("-9223372036854775808"))],
            I(i64::MIN),
        ),
        (
            "CAST(s AS BIGINT)",
            &[("s", s("9223372036854775807"))],
            I(i64::MAX),
        ),
        ("CAST(s AS BIGINT)", &[("s", s("9223372036854775808"))], N),
        ("CAST(s AS BIGINT)", &[("s", s("99999999999999999999"))], N),
        ("CAST(s AS BIGINT)", &[("s", s("12a"))], N),
        ("CAST(s AS BIGINT)", &[("s", s(""))], N),
        ("CAST(s AS BIGINT)", &[("s", s("-"))], N),
        ("CAST(s AS BIGINT)", &[("s", s("1 2"))], N),
        ("CAST(s AS INT)", &[("s", s("\t-0012\n"))], I(-12)),
        ("CAST(x AS BIGINT)", &[("x", f(2.5))], I(2)),
        ("CAST(x AS BIGINT)", &[("x", f(3.5))], I(4)),
        ("CAST(x AS BIGINT)", &[("x", f(-2.7))], I(-3)),
        ("CAST(x AS BIGINT)", &[("x", f(f64::NAN))], N),
        ("CAST(x AS BIGINT)", &[("x", f(1e19))], N),
        (
            "CAST(x AS BIGINT)",
            &[("x", f(-(2f64.powi(63))))],
            I(i64::MIN),
        ),
        ("x::int", &[("x", f(2f64.powi(63)))], N),
        ("CAST(a AS DOUBLE)", &[("a", I(3))], f(3.0)),
        ("CAST(a AS REAL)", &[("a", I(-1))], f(-1.0)),
        ("CAST(a AS BOOLEAN)", &[("a", I(5))], B(true)),
        ("CAST(a AS BOOLEAN)", &[("a", I(0))], B(false)),
        ("CAST(p AS BIGINT)", &[("p", B(true))], I(1)),
        ("CAST(ts AS BIGINT)", &[("ts", T(123))], I(123)),
        ("CAST(a AS TIMESTAMP)", &[("a", I(-5))], T(-5)),
        ("CAST(NULL AS VARCHAR)", &[], N),
        ("TIMESTAMP '1970-01-02'", &[], T(86_400_000_000)),
    ]);
}

#[test]
fn in_and_between() {
    check(&[
        ("a IN (1, 2, 3)", &[("a", I(2))], B(true)),
        ("a IN (1, 2, 3)", &[("a", I(5))], B(false)),
        ("a IN (1, NULL)", &[("a", I(1))], B(true)),
        ("a IN (1, NULL)", &[("a", I(5))], N),
        ("a IN (1, 2)", &[("a", N)], N),
        ("a NOT IN (1, 2)", &[("a", I(5))], B(true)),
        ("a NOT IN (1, NULL)", &[("a", I(5))], N),
        ("s IN ('DE', 'AT')", &[("s", s("AT"))], B(true)),
        ("x IN (1, 2.5)", &[("x", f(2.5))], B(true)),
        ("a BETWEEN 1 AND 10", &[("a", I(10))], B(true)),
        ("a BETWEEN 1 AND 10", &[("a", I(11))], B(false)),
        ("a NOT BETWEEN 1 AND 10", &[("a", I(0))], B(true)),
        ("a BETWEEN b AND 10", &[("a", I(11)), ("b", N)], B(false)),
        ("a BETWEEN b AND 10", &[("a", I(5)), ("b", N)], N),
        ("x BETWEEN 0 AND 1", &[("x", f(0.5))], B(true)),
        ("s BETWEEN 'a' AND 'c'", &[("s", s("b"))], B(true)),
    ]);
}

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn ulps(a: f64, b: f64) -> u64 {
    if a == b {
        return 0;
    }
    let key = |x: f64| {
        let bits = x.to_bits() as i64;
        if bits < 0 { i64::MIN - bits } else { bits }
    };
    key(a).abs_diff(key(b))
}

/// Runs a one-input float function over many values in a single batch call.
fn batch_f64(sql: &str, inputs: &[f64]) -> Vec<Option<f64>> {
    let available = vec![("x".to_string(), FeatureType::Float64)];
    let (_, t) = load(
        &available,
        &[Expr {
            name: "y",
            sql,
            declared: None,
        }],
    );
    let column = Column {
        data: ColumnData::Float64(inputs.to_vec()),
        validity: Vec::new(),
    };
    let out = t
        .call_batch(inputs.len() as u32, &[column])
        .expect("batch runs");
    unpack(&out[0])
        .into_iter()
        .map(|v| match v {
            V::F(bits) => Some(f64::from_bits(bits)),
            N => None,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn accuracy_inputs(rng: &mut Rng, random_bits: usize) -> Vec<f64> {
    let mut xs = Vec::new();
    // Every binade, including subnormals, at random positions.
    for _ in 0..random_bits {
        let bits = rng.next() & 0x7fff_ffff_ffff_ffff;
        let x = f64::from_bits(bits);
        if x.is_finite() && x > 0.0 {
            xs.push(x);
        }
    }
    // Close to 1, where ln's cancellation is hardest, and exact powers of two.
    for _ in 0..20_000 {
        xs.push(1.0 + (rng.unit() - 0.5) * 1e-3);
        xs.push(1.0 + (rng.unit() - 0.5) * 0.6);
    }
    for e in -1074i64..1024 {
        let bits = if e < -1022 {
            1u64 << (e + 1074)
        } else {
            ((e + 1023) as u64) << 52
        };
        xs.push(f64::from_bits(bits));
    }
    xs.extend([
        f64::MIN_POSITIVE,
        f64::MAX,
        5e-324,
        0.5,
        2.0,
        10.0,
        1e-300,
        1e300,
    ]);
    xs
}

#[test]
fn ln_is_within_one_ulp_of_rust() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let xs = accuracy_inputs(&mut rng, 200_000);
    let got = batch_f64("LN(x)", &xs);
    let mut worst = (0, 0.0);
    for (x, y) in xs.iter().zip(&got) {
        let y = y.unwrap_or_else(|| panic!("LN({x:e}) is NULL"));
        let d = ulps(y, x.ln());
        if d > worst.0 {
            worst = (d, *x);
        }
    }
    println!(
        "LN: {} values, worst {} ulp at {:e}",
        xs.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 <= 1, "LN({:e}) is {} ulp off", worst.1, worst.0);
}

#[test]
fn exp_is_within_one_ulp_of_rust() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut xs: Vec<f64> = (0..200_000)
        .map(|_| (rng.unit() - 0.5) * 2.0 * 746.0)
        .collect();
    xs.extend((0..50_000).map(|_| (rng.unit() - 0.5) * 4.0));
    xs.extend((0..10_000).map(|_| (rng.unit() - 0.5) * 1e-8));
    xs.extend([
        0.0, -0.0, 709.78, 709.79, -708.4, -744.0, -745.1, -745.2, 1e-300, 0.5, -0.5,
    ]);
    let got = batch_f64("EXP(x)", &xs);
    let mut worst = (0, 0.0);
    for (x, y) in xs.iter().zip(&got) {
        let y = y.unwrap_or_else(|| panic!("EXP({x:e}) is NULL"));
        let d = ulps(y, x.exp());
        if d > worst.0 {
            worst = (d, *x);
        }
    }
    println!(
        "EXP: {} values, worst {} ulp at {:e}",
        xs.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 <= 1, "EXP({:e}) is {} ulp off", worst.1, worst.0);
}

fn random_value(rng: &mut Rng, ty: FeatureType) -> V {
    if rng.below(7) == 0 {
        return N;
    }
    match ty {
        FeatureType::Int64 => match rng.below(10) {
            0 => I(0),
            1 => I(-1),
            2 => I(rng.next() as i64),
            _ => I(rng.below(200) as i64 - 50),
        },
        FeatureType::Float64 => match rng.below(12) {
            0 => f(0.0),
            1 => f(-(rng.unit() * 10.0)),
            _ => f((rng.unit() * 1000.0 * 100.0).round() / 100.0),
        },
        FeatureType::String => {
            let words = [
                "DE", "AT", "CH", "", " 42", "-7", "x", "champion", "zebra", "é",
            ];
            s(words[rng.below(words.len() as u64) as usize])
        }
        FeatureType::Bool => B(rng.below(2) == 1),
        FeatureType::Timestamp => T(rng.below(2_000_000_000) as i64 * 1_000_000),
        FeatureType::ListFloat64 => N,
    }
}

const MIXED: &[&str] = &[
    "CASE WHEN a <= 30 AND b >= 5 THEN 'champion' WHEN x > 500 THEN 'big_spender' ELSE 'other' END",
    "a * b + a / b - a % b",
    "x / y + a",
    "LN(x) + SQRT(y) - EXP(x / 500)",
    "COALESCE(s, t, 'none')",
    "GREATEST(a, b, x)",
    "LEAST(s, t)",
    "CAST(a AS VARCHAR)",
    "CAST(s AS BIGINT)",
    "p AND q OR NOT (a > b)",
    "s IN ('DE', 'AT', t)",
    "ts BETWEEN tu AND TIMESTAMP '2030-01-01'",
    "ROUND(x / 3, 2)",
    "NULLIF(a, b) IS NULL",
    "CASE s WHEN 'DE' THEN x WHEN 'AT' THEN a END",
    "ABS(a - b) % 7",
    "CAST(x AS BIGINT)",
];

#[test]
fn batch_and_row_agree_on_random_rows() {
    let available = vars();
    let names: Vec<String> = (0..MIXED.len()).map(|i| format!("o{i}")).collect();
    let exprs: Vec<Expr<'_>> = MIXED
        .iter()
        .zip(&names)
        .map(|(sql, name)| Expr {
            name,
            sql,
            declared: None,
        })
        .collect();
    let (compiled, t) = load(&available, &exprs);
    let mut rng = Rng(42);
    let rows = 3000;
    let data: Vec<Vec<V>> = (0..rows)
        .map(|_| {
            compiled
                .inputs
                .iter()
                .map(|(_, ty)| random_value(&mut rng, *ty))
                .collect()
        })
        .collect();
    let columns: Vec<Column> = compiled
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| column(*ty, &data.iter().map(|r| r[i].clone()).collect::<Vec<_>>()))
        .collect();
    let batch = t.call_batch(rows as u32, &columns).expect("batch");
    let batch: Vec<Vec<V>> = batch.iter().map(unpack).collect();
    let mut nulls = 0;
    for (r, row) in data.iter().enumerate() {
        let out = t
            .call(&row.iter().map(to_host).collect::<Vec<_>>())
            .expect("row");
        for (k, v) in out.iter().enumerate() {
            let v = from_host(v);
            nulls += usize::from(v == N);
            assert_eq!(v, batch[k][r], "row {r} {row:?}, `{}`", MIXED[k]);
        }
    }
    // The data exercises NULL outputs as well as values.
    assert!(nulls > rows, "{nulls} NULL outputs");
}

#[test]
fn batch_bitmaps_are_empty_without_nulls_and_exact_with_them() {
    let available = vars();
    let (compiled, t) = load(
        &available,
        &[
            Expr {
                name: "twice",
                sql: "a * 2",
                declared: None,
            },
            Expr {
                name: "label",
                sql: "CASE WHEN a > 0 THEN 'pos' END",
                declared: None,
            },
        ],
    );
    assert_eq!(compiled.inputs.len(), 1);
    let values: Vec<V> = (0..21).map(|i| I(i - 10)).collect();
    let out = t
        .call_batch(21, &[column(FeatureType::Int64, &values)])
        .expect("batch");
    assert!(out[0].validity.is_empty(), "no NULLs: empty bitmap");
    assert_eq!(out[1].validity, vec![0, 0b1111_1000, 0b1_1111]);
    match &out[1].data {
        ColumnData::String(v) => {
            assert_eq!(v[0], "", "NULL rows hold the empty string");
            assert_eq!(v[20], "pos");
        }
        other => panic!("{other:?}"),
    }
    let none = t
        .call_batch(0, &[column(FeatureType::Int64, &[])])
        .expect("no rows");
    assert!(matches!(&none[0].data, ColumnData::Int64(v) if v.is_empty()));
}

#[test]
fn constant_expressions_need_no_inputs() {
    let (compiled, t) = load(
        &vars(),
        &[Expr {
            name: "k",
            sql: "'fixed'",
            declared: None,
        }],
    );
    assert!(compiled.inputs.is_empty());
    assert!(t.signature().inputs.is_empty());
    assert_eq!(t.signature().outputs[0].type_, ValueType::String);
    assert_eq!(from_host(&t.call(&[]).expect("call")[0]), s("fixed"));
    let out = t.call_batch(3, &[]).expect("batch");
    assert_eq!(unpack(&out[0]), vec![s("fixed"), s("fixed"), s("fixed")]);
}

#[test]
fn describe_matches_the_compiled_signature() {
    let (compiled, t) = load(
        &vars(),
        &[
            Expr {
                name: "seg",
                sql: "CASE WHEN p THEN s END",
                declared: None,
            },
            Expr {
                name: "n",
                sql: "a + x",
                declared: None,
            },
            Expr {
                name: "when",
                sql: "GREATEST(ts, tu)",
                declared: None,
            },
        ],
    );
    let sig = t.signature();
    let names = |fs: &[fstore_wasm_host::Field]| -> Vec<String> {
        fs.iter().map(|f| f.name.clone()).collect()
    };
    assert_eq!(names(&sig.inputs), ["a", "x", "s", "p", "ts", "tu"]);
    assert_eq!(
        names(&sig.inputs),
        compiled
            .inputs
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    );
    let types: Vec<ValueType> = sig.outputs.iter().map(|f| f.type_).collect();
    assert_eq!(
        types,
        [ValueType::String, ValueType::Float64, ValueType::Timestamp]
    );
    assert_eq!(names(&sig.outputs), ["seg", "n", "when"]);
}

#[test]
fn configuration_keys_are_rejected() {
    let c = compile(
        &vars(),
        &[Expr {
            name: "y",
            sql: "a",
            declared: None,
        }],
    )
    .expect("compiles");
    let config = vec![("threshold".to_string(), "5".to_string())];
    match host().load(&c.component, &config, limits()) {
        Err(LoadError::Configure(message)) => assert_eq!(
            message,
            "unknown configuration key `threshold`: a SQL transform takes no configuration"
        ),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a configuration key was accepted"),
    }
}

#[test]
fn a_batch_too_large_for_the_memory_cap_traps_cleanly() {
    let (_, t) = load(
        &vars(),
        &[Expr {
            name: "k",
            sql: "1",
            declared: None,
        }],
    );
    // 20 M rows × 8 bytes exceeds the host's 64 MiB cap: memory.grow fails and the module traps.
    match t.call_batch(20_000_000, &[]) {
        Err(CallError::MemoryLimit(_)) => {}
        other => panic!("{other:?}"),
    }
    // The transform still works: the trapped instance was thrown away.
    assert_eq!(from_host(&t.call(&[]).expect("call")[0]), I(1));
}

#[test]
fn many_calls_on_one_transform() {
    let (_, t) = load(
        &vars(),
        &[
            Expr {
                name: "label",
                sql: "CAST(a AS VARCHAR)",
                declared: None,
            },
            Expr {
                name: "x2",
                sql: "COALESCE(s, 'none')",
                declared: None,
            },
        ],
    );
    for i in 0..100_000i64 {
        let out = t
            .call(&[
                Value::Int64(i),
                Value::String("abc".repeat((i % 50) as usize)),
            ])
            .expect("call");
        if i % 9973 == 0 {
            assert_eq!(from_host(&out[0]), s(&i.to_string()));
        }
    }
}
