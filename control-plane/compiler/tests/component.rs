//! The output is a valid component that targets the world, without running it.

mod common;

use fstore_compiler::{Expr, compile};
use wit_parser::Resolve;

const WIT: &str = include_str!("../../../wit/transform.wit");

fn world() -> (Resolve, wit_parser::WorldId) {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_source("transform.wit", WIT)
        .expect("WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("transform"))
        .expect("world");
    (resolve, world)
}

fn check(bytes: &[u8]) {
    let mut validator =
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
    validator.validate_all(bytes).expect("valid component");
    let (resolve, world) = world();
    wit_component::targets(&resolve, world, bytes, false)
        .expect("targets fstore:transform/transform");
    match wit_component::decode(bytes).expect("decodes") {
        wit_component::DecodedWasm::Component(resolve, world) => {
            let mut exports: Vec<String> = resolve.worlds[world]
                .exports
                .keys()
                .map(|k| resolve.name_world_key(k))
                .collect();
            exports.sort();
            assert_eq!(
                exports,
                ["compute", "compute-batch", "configure", "describe"]
            );
            // No imports beyond the types interface: the module needs nothing from the host.
            for item in resolve.worlds[world].imports.values() {
                if let wit_parser::WorldItem::Interface { id, .. } = item {
                    assert!(resolve.interfaces[*id].functions.is_empty());
                }
                assert!(!matches!(item, wit_parser::WorldItem::Function(_)));
            }
        }
        wit_component::DecodedWasm::WitPackage(..) => panic!("a WIT package, not a component"),
    }
}

#[test]
fn the_segment_example_is_a_valid_component_of_the_world() {
    let c = compile(
        &common::available(),
        &[Expr {
            name: "segment",
            sql: common::SEGMENT,
            declared: None,
        }],
    )
    .expect("compiles");
    check(&c.component);
    println!("segment component: {} bytes", c.component.len());
    assert!(c.component.len() < 16 * 1024, "{} bytes", c.component.len());
}

#[test]
fn every_construct_compiles_to_a_valid_component() {
    let sqls = [
        "recency_days + frequency_90d * 2 - recency_days / 3 % 4",
        "-monetary_90d / 2.5 + recency_days",
        "recency_days <> 1 AND NOT is_member OR country >= 'DE'",
        "country IS NULL OR monetary_90d IS NOT NULL",
        "is_member IS TRUE AND is_member IS NOT FALSE",
        "country IS DISTINCT FROM 'x'",
        "CASE country WHEN 'DE' THEN 1 WHEN 'AT' THEN 2 END",
        "COALESCE(country, 'unknown')",
        "LEAST(recency_days, monetary_90d, 3)",
        "GREATEST(country, 'm')",
        "ABS(recency_days) + ABS(monetary_90d)",
        "LN(monetary_90d) + SQRT(monetary_90d) + EXP(monetary_90d)",
        "ROUND(monetary_90d) + FLOOR(monetary_90d) + CEIL(monetary_90d) + CEILING(1.5)",
        "ROUND(monetary_90d, 2)",
        "CAST(recency_days AS VARCHAR)",
        "CAST(country AS BIGINT)",
        "monetary_90d::bigint",
        "CAST(is_member AS TEXT)",
        "recency_days IN (1, 2, NULL)",
        "monetary_90d NOT BETWEEN 1 AND recency_days",
        "NULLIF(country, '')",
        "last_seen > TIMESTAMP '2024-01-01 00:00:00'",
        "CAST(last_seen AS BIGINT)",
        "CAST(recency_days AS TIMESTAMP)",
        "CAST(recency_days AS BOOLEAN)",
        "1",
    ];
    let exprs: Vec<Expr> = sqls
        .iter()
        .enumerate()
        .map(|(i, sql)| Expr {
            name: Box::leak(format!("f{i}").into_boxed_str()),
            sql,
            declared: None,
        })
        .collect();
    for e in &exprs {
        let c = compile(&common::available(), std::slice::from_ref(e))
            .unwrap_or_else(|err| panic!("{}: {err}", e.sql));
        check(&c.component);
    }
    let all = compile(&common::available(), &exprs).expect("all together");
    check(&all.component);
    assert_eq!(all.outputs.len(), sqls.len());
}

/// Components are stored under the sha256 of their bytes: the same SQL must give the same bytes.
#[test]
fn output_is_deterministic() {
    let exprs = [
        Expr {
            name: "segment",
            sql: common::SEGMENT,
            declared: None,
        },
        Expr {
            name: "score",
            sql: "LN(1 + monetary_90d) * EXP(-recency_days / 30.0)",
            declared: None,
        },
        Expr {
            name: "label",
            sql: "CAST(frequency_90d AS VARCHAR)",
            declared: None,
        },
    ];
    let a = compile(&common::available(), &exprs).expect("compiles");
    let b = compile(&common::available(), &exprs).expect("compiles");
    assert_eq!(a.component, b.component);
}
