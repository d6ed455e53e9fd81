//! Compile errors: what they say and where they point.

mod common;

use fstore_compiler::{CompileError, Expr, Position, compile};
use fstore_snapshot::FeatureType;

fn err_declared(sql: &str, declared: Option<FeatureType>) -> CompileError {
    match compile(
        &common::available(),
        &[Expr {
            name: "champion",
            sql,
            declared,
        }],
    ) {
        Ok(_) => panic!("`{sql}` compiled"),
        Err(e) => e,
    }
}

fn err(sql: &str) -> CompileError {
    err_declared(sql, None)
}

fn at(line: u32, column: u32) -> Option<Position> {
    Some(Position { line, column })
}

#[test]
fn type_errors_quote_the_fragment_and_its_position() {
    let e = err("recency_days <= 30 AND frequency_90d >= 'x'");
    assert_eq!(e.expr, "champion");
    assert_eq!(e.message, "cannot compare int64 with string");
    assert_eq!(e.fragment.as_deref(), Some("frequency_90d >= 'x'"));
    assert_eq!(e.position, at(1, 24));
    assert_eq!(
        e.to_string(),
        "champion: `frequency_90d >= 'x'`: cannot compare int64 with string at line 1, column 24"
    );
}

#[test]
fn positions_count_lines_and_characters() {
    let e = err("recency_days > 1\n  AND 'é' > 5");
    assert_eq!(e.position, at(2, 7));
    assert_eq!(e.fragment.as_deref(), Some("'é' > 5"));
}

#[test]
fn unknown_names_suggest_the_closest() {
    let e = err("frequncy_90d > 3");
    assert_eq!(
        e.to_string(),
        "champion: `frequncy_90d`: unknown name `frequncy_90d`; did you mean `frequency_90d`? at line 1, column 1"
    );
    let e = err("1 + zzz");
    assert!(
        e.message
            .starts_with("unknown name `zzz`; available: recency_days, frequency_90d"),
        "{e}"
    );
    assert_eq!(e.position, at(1, 5));
}

#[test]
fn names_fold_case_unless_quoted() {
    let available = common::available();
    let ok = |sql: &str| {
        compile(
            &available,
            &[Expr {
                name: "x",
                sql,
                declared: None,
            }],
        )
        .map(|c| c.inputs)
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        ok("RECENCY_DAYS + 1"),
        Ok(vec![("recency_days".to_string(), FeatureType::Int64)])
    );
    assert_eq!(
        ok("\"Mixed Case\" * 2"),
        Ok(vec![("Mixed Case".to_string(), FeatureType::Int64)])
    );
    let e = ok("\"RECENCY_DAYS\" + 1").expect_err("quoted names match exactly");
    assert!(
        e.contains("unknown name `RECENCY_DAYS`; did you mean `recency_days`?"),
        "{e}"
    );
}

#[test]
fn unsupported_constructs_are_named() {
    let e = err("FOO(recency_days, 2) > 1");
    assert!(
        e.message
            .starts_with("unknown function `FOO`; supported: ABS"),
        "{e}"
    );
    assert_eq!(e.fragment.as_deref(), Some("FOO(recency_days, 2)"));
    let e = err("country LIKE 'D%'");
    assert_eq!(e.message, "pattern matching is not supported");
    let e = err("recency_days & 1");
    assert_eq!(e.message, "operator `&` is not supported");
    let e = err("country || 'x'");
    assert_eq!(e.message, "operator `||` is not supported");
    let e = err("(SELECT 1)");
    assert_eq!(e.message, "subqueries is not supported");
    let e = err("SUM(recency_days)");
    assert!(e.message.starts_with("unknown function `SUM`"), "{e}");
    let e = err("embedding");
    assert_eq!(
        e.message,
        "`embedding` is a list<float64>; SQL expressions cannot use lists"
    );
    let e = err("t.recency_days");
    assert!(
        e.message.starts_with("qualified names are not supported"),
        "{e}"
    );
}

#[test]
fn operand_types_are_checked() {
    let e = err("monetary_90d % 2");
    assert_eq!(
        e.message,
        "`%` needs int64 operands, as in PostgreSQL; float64 given"
    );
    let e = err("country + 1");
    assert_eq!(e.message, "cannot apply `+` to string and int64");
    assert_eq!(e.fragment.as_deref(), Some("country + 1"));
    let e = err("recency_days AND is_member");
    assert_eq!(e.message, "AND needs a boolean, not int64");
    assert_eq!(e.fragment.as_deref(), Some("recency_days"));
    let e = err("CASE WHEN is_member THEN 'a' ELSE 1 END");
    assert_eq!(e.message, "CASE mixes string and int64");
    assert_eq!(e.fragment.as_deref(), Some("1"));
    assert_eq!(e.position, at(1, 35));
    let e = err("CASE WHEN recency_days THEN 1 END");
    assert_eq!(e.message, "WHEN needs a boolean, not int64");
    let e = err("LEAST(1, 'a')");
    assert_eq!(e.message, "LEAST mixes int64 and string");
    let e = err("last_seen > 5");
    assert_eq!(e.message, "cannot compare timestamp with int64");
    let e = err("LN(country)");
    assert_eq!(e.message, "LN needs a number, not string");
    let e = err("ABS(1, 2)");
    assert_eq!(e.message, "ABS takes 1 argument, got 2");
    let e = err("-country");
    assert_eq!(e.message, "cannot negate string");
    let e = err("recency_days IN (1, 'a')");
    assert_eq!(e.message, "cannot compare int64 with string");
    assert_eq!(e.fragment.as_deref(), Some("'a'"));
    let e = err("ROUND(monetary_90d, recency_days)");
    assert!(
        e.message
            .starts_with("ROUND's digits must be an integer literal"),
        "{e}"
    );
}

#[test]
fn casts_are_checked() {
    let e = err("CAST(monetary_90d AS VARCHAR)");
    assert!(
        e.message
            .starts_with("cannot cast float64 to string: exact shortest formatting"),
        "{e}"
    );
    let e = err("country::double precision");
    assert!(
        e.message.starts_with("cannot cast string to float64"),
        "{e}"
    );
    let e = err("CAST(is_member AS TIMESTAMP)");
    assert_eq!(e.message, "cannot cast boolean to timestamp");
    let e = err("CAST(recency_days AS DATE)");
    assert!(e.message.starts_with("cannot cast to DATE"), "{e}");
    let e = err("TIMESTAMP 'tomorrow'");
    assert!(e.message.starts_with("invalid TIMESTAMP literal"), "{e}");
    let e = err("99999999999999999999");
    assert!(e.message.contains("does not fit in int64"), "{e}");
}

#[test]
fn syntax_errors_keep_the_parser_position() {
    let e = err("recency_days +");
    assert!(
        e.message
            .starts_with("syntax error: Expected: an expression"),
        "{e}"
    );
    let e = err("1 2");
    assert_eq!(e.message, "unexpected `2` after the end of the expression");
    assert_eq!(e.position, at(1, 3));
    let e = err("'abc");
    assert_eq!(e.message, "syntax error: Unterminated string literal");
    assert_eq!(e.position, at(1, 1));
    let e = err("   ");
    assert_eq!(e.message, "the expression is empty");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep_parens = format!("{}1{}", "(".repeat(70), ")".repeat(70));
    let e = err(&deep_parens);
    assert_eq!(e.message, "the expression nests deeper than 64 levels");
    let very_deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(
        err(&very_deep).message,
        "the expression nests deeper than 64 levels"
    );
    // Left-deep chains are built without parser recursion: the checker must stop them.
    let chain = vec!["recency_days"; 1000].join(" + ");
    let e = err(&chain);
    assert_eq!(e.message, "the expression nests deeper than 64 levels");
    assert_eq!(e.position, at(1, 1));
    let chain = vec!["1"; 8000].join("+");
    assert_eq!(
        err(&chain).message,
        "the expression nests deeper than 64 levels"
    );
    let nulls = format!("1{}", " IS NULL".repeat(2000));
    assert_eq!(
        err(&nulls).message,
        "the expression nests deeper than 64 levels"
    );
    // An unsupported construct around a deep tree is reported (its span is computed) safely.
    let like = format!("country LIKE ({})", vec!["'a'"; 3000].join("||"));
    assert_eq!(err(&like).message, "pattern matching is not supported");
    // 64 levels are fine.
    let ok = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    compile(
        &common::available(),
        &[Expr {
            name: "x",
            sql: &ok,
            declared: None,
        }],
    )
    .expect("60 levels compile");
    let long = "1+".repeat(9000) + "1";
    assert!(
        err(&long).message.contains("at most 16384 are accepted"),
        "{}",
        err(&long)
    );
}

#[test]
fn declared_types_must_match() {
    let e = err_declared("country", Some(FeatureType::Int64));
    assert_eq!(e.message, "declared int64, but the expression is string");
    assert_eq!(e.position, at(1, 1));
    let e = err_declared("1.5", Some(FeatureType::Int64));
    assert_eq!(e.message, "declared int64, but the expression is float64");
    let e = err_declared("1", Some(FeatureType::ListFloat64));
    assert!(e.message.contains("cannot produce lists"), "{e}");
    let e = err("NULL");
    assert!(e.message.contains("always NULL"), "{e}");
    let available = common::available();
    let widened = compile(
        &available,
        &[Expr {
            name: "w",
            sql: "recency_days * 2",
            declared: Some(FeatureType::Float64),
        }],
    )
    .expect("int64 widens to float64");
    assert_eq!(
        widened.outputs,
        vec![("w".to_string(), FeatureType::Float64)]
    );
    let null = compile(
        &available,
        &[Expr {
            name: "n",
            sql: "NULL",
            declared: Some(FeatureType::String),
        }],
    )
    .expect("a NULL takes the declared type");
    assert_eq!(null.outputs, vec![("n".to_string(), FeatureType::String)]);
    assert!(null.inputs.is_empty());
}

#[test]
fn expression_sets_are_checked() {
    let available = common::available();
    let e = compile(&available, &[]).expect_err("nothing to compile");
    assert_eq!(e.to_string(), "no expressions to compile");
    let x = Expr {
        name: "x",
        sql: "1",
        declared: None,
    };
    let e = compile(&available, &[x, x]).expect_err("duplicate names");
    assert_eq!(e.to_string(), "x: two expressions have this name");
}

#[test]
fn inputs_are_the_referenced_ones_in_available_order() {
    let c = compile(
        &common::available(),
        &[
            Expr {
                name: "a",
                sql: "country = 'DE' OR monetary_90d > 1",
                declared: None,
            },
            Expr {
                name: "b",
                sql: "recency_days + 1",
                declared: None,
            },
            Expr {
                name: "c",
                sql: "LN(monetary_90d)",
                declared: None,
            },
        ],
    )
    .expect("compiles");
    let names: Vec<&str> = c.inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["recency_days", "monetary_90d", "country"]);
    assert_eq!(
        c.outputs,
        vec![
            ("a".to_string(), FeatureType::Bool),
            ("b".to_string(), FeatureType::Int64),
            ("c".to_string(), FeatureType::Float64),
        ]
    );
}
