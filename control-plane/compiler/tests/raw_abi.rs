//! Calls the component with plain wasmtime, below the host, to test what the host checks
//! before calling (arity, input types, column lengths) and what it hides (memory size): the
//! component must defend itself, and a long-lived instance must not grow.

mod common;

use fstore_compiler::{Expr, compile};
use fstore_snapshot::FeatureType;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, ResourceLimiter, Store};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "fstore:transform/transform",
    });
}

use bindings::fstore::transform::types::{Column, ColumnData, Value};

/// Records every growth of linear memory.
#[derive(Default)]
struct Watch {
    memory_bytes: usize,
    grows: usize,
}

impl ResourceLimiter for Watch {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.memory_bytes = desired;
        self.grows += 1;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

fn instance(sqls: &[&str]) -> (Store<Watch>, bindings::Transform) {
    let available = vec![
        ("n".to_string(), FeatureType::Int64),
        ("name".to_string(), FeatureType::String),
        ("ok".to_string(), FeatureType::Bool),
    ];
    let names: Vec<String> = (0..sqls.len()).map(|i| format!("o{i}")).collect();
    let exprs: Vec<Expr<'_>> = sqls
        .iter()
        .zip(&names)
        .map(|(sql, name)| Expr {
            name,
            sql,
            declared: None,
        })
        .collect();
    let compiled = compile(&available, &exprs).expect("compiles");
    let engine = Engine::default();
    let component = Component::new(&engine, &compiled.component).expect("compiles natively");
    let linker = Linker::new(&engine);
    let mut store = Store::new(&engine, Watch::default());
    store.limiter(|w| w);
    let t =
        bindings::Transform::instantiate(&mut store, &component, &linker).expect("instantiates");
    t.call_configure(&mut store, &[])
        .expect("runs")
        .expect("empty config accepted");
    (store, t)
}

fn int_column(values: Vec<i64>) -> Column {
    Column {
        data: ColumnData::Int64(values),
        validity: Vec::new(),
    }
}

#[test]
fn compute_rejects_wrong_arity_and_types() {
    let (mut store, t) = instance(&["n + 1", "name", "ok"]);
    let err = t
        .call_compute(&mut store, &[Value::Int64(1)])
        .expect("no trap")
        .expect_err("arity");
    assert_eq!(err, "expected 3 inputs: n, name, ok");
    let err = t
        .call_compute(&mut store, &[Value::Int64(1), Value::Int64(2), Value::Null])
        .expect("no trap")
        .expect_err("type");
    assert_eq!(err, "input `name` must be string or null");
    let err = t
        .call_compute(&mut store, &[Value::Float64(1.0), Value::Null, Value::Null])
        .expect("no trap")
        .expect_err("type");
    assert_eq!(err, "input `n` must be int64 or null");
    let out = t
        .call_compute(
            &mut store,
            &[
                Value::Int64(1),
                Value::String("x".into()),
                Value::Boolean(true),
            ],
        )
        .expect("no trap")
        .expect("ok");
    assert!(
        matches!(out[..], [Value::Int64(2), Value::String(ref s), Value::Boolean(true)] if s == "x")
    );
}

#[test]
fn compute_batch_rejects_bad_columns() {
    let (mut store, t) = instance(&["n * 2"]);
    let err = t
        .call_compute_batch(&mut store, 2, &[])
        .expect("no trap")
        .expect_err("arity");
    assert_eq!(err, "expected 1 input column: n");
    let wrong = Column {
        data: ColumnData::Float64(vec![1.0, 2.0]),
        validity: Vec::new(),
    };
    let err = t
        .call_compute_batch(&mut store, 2, &[wrong])
        .expect("no trap")
        .expect_err("type");
    assert_eq!(err, "input column `n` must be int64");
    let err = t
        .call_compute_batch(&mut store, 3, &[int_column(vec![1, 2])])
        .expect("no trap")
        .expect_err("length");
    assert_eq!(err, "input column `n` must hold one entry per row");
    let short = Column {
        data: ColumnData::Int64(vec![0; 9]),
        validity: vec![0xff],
    };
    let err = t
        .call_compute_batch(&mut store, 9, &[short])
        .expect("no trap")
        .expect_err("bitmap");
    assert_eq!(
        err,
        "validity bitmap of input column `n` is shorter than the rows"
    );
    // Arrow allows a longer bitmap than needed.
    let long = Column {
        data: ColumnData::Int64(vec![1, 2]),
        validity: vec![0b10, 0xff],
    };
    let out = t
        .call_compute_batch(&mut store, 2, &[long])
        .expect("no trap")
        .expect("ok");
    assert!(matches!(&out[0].data, ColumnData::Int64(v) if v[..] == [0, 4]));
    assert_eq!(out[0].validity, vec![0b10]);
}

#[test]
fn configure_names_the_first_unknown_key() {
    let (mut store, t) = instance(&["n"]);
    let err = t
        .call_configure(
            &mut store,
            &[("cut".into(), "3".into()), ("b".into(), "".into())],
        )
        .expect("no trap")
        .expect_err("rejected");
    assert_eq!(
        err,
        "unknown configuration key `cut`: a SQL transform takes no configuration"
    );
}

#[test]
fn a_long_lived_instance_does_not_grow() {
    let (mut store, t) = instance(&[
        "CAST(n AS VARCHAR)",
        "COALESCE(name, 'none')",
        "CASE WHEN ok THEN 'yes' ELSE CAST(n * 2 AS TEXT) END",
    ]);
    let row = |i: i64| {
        vec![
            Value::Int64(i),
            Value::String("x".repeat((i % 100) as usize)),
            Value::Boolean(i % 3 == 0),
        ]
    };
    // Warm up with the largest row, then note the size.
    t.call_compute(&mut store, &row(99))
        .expect("no trap")
        .expect("ok");
    let columns = || {
        vec![
            int_column((0..1000).collect()),
            Column {
                data: ColumnData::String((0..1000).map(|i| format!("{i}")).collect()),
                validity: Vec::new(),
            },
            Column {
                data: ColumnData::Boolean((0..1000).map(|i| i % 2 == 0).collect()),
                validity: Vec::new(),
            },
        ]
    };
    t.call_compute_batch(&mut store, 1000, &columns())
        .expect("no trap")
        .expect("ok");
    let (bytes, grows) = (store.data().memory_bytes, store.data().grows);
    for i in 0..100_000 {
        let out = t
            .call_compute(&mut store, &row(i))
            .expect("no trap")
            .expect("ok");
        assert_eq!(out.len(), 3);
    }
    for _ in 0..100 {
        t.call_compute_batch(&mut store, 1000, &columns())
            .expect("no trap")
            .expect("ok");
    }
    assert_eq!(store.data().grows, grows, "memory grew after warm-up");
    assert_eq!(store.data().memory_bytes, bytes);
    println!("memory after 100,000 calls: {bytes} bytes");
}
