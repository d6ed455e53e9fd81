//! The host against real components built from `transforms/` (checked in under
//! `transforms/components/`): the example transforms behave, and every kind of hostile
//! component fails only its own call while the host and its other instances carry on.

use std::time::Duration;

use fstore_wasm_host::{
    CallError, Column, ColumnData, Host, HostConfig, Limits, LoadError, Transform, Value, ValueType,
};

fn component(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../transforms/components/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn host() -> Host {
    Host::new(HostConfig {
        max_memory_bytes: 16 << 20,
        max_instances: 32,
        ..HostConfig::default()
    })
    .expect("host")
}

fn hostile(host: &Host, mode: &str, limits: Limits) -> Transform {
    host.load(
        &component("hostile"),
        &[("mode".to_string(), mode.to_string())],
        limits,
    )
    .expect("load hostile")
}

/// Limits for calls expected to succeed: the deadline is wall-clock time, and tests share two
/// cores, so the default 10 ms fails a call whenever its thread is descheduled.
fn relaxed() -> Limits {
    Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    }
}

fn column_f64(values: Vec<f64>) -> Column {
    Column {
        data: ColumnData::Float64(values),
        validity: Vec::new(),
    }
}

#[test]
fn rfm_score_describes_itself_and_rows_match_batches() {
    let host = host();
    let t = host
        .load(&component("rfm_score"), &[], relaxed())
        .expect("load");
    let sig = t.signature();
    let inputs: Vec<(&str, ValueType)> = sig
        .inputs
        .iter()
        .map(|f| (f.name.as_str(), f.type_))
        .collect();
    assert_eq!(
        inputs,
        vec![
            ("recency_days", ValueType::Int64),
            ("frequency_90d", ValueType::Int64),
            ("monetary_90d", ValueType::Float64)
        ]
    );
    assert_eq!(sig.outputs.len(), 4);

    let recency: Vec<i64> = (0..500).map(|i| (i * 7) % 400).collect();
    let frequency: Vec<i64> = (0..500).map(|i| i % 13).collect();
    let monetary: Vec<f64> = (0..500).map(|i| f64::from(i) * 3.7).collect();
    // Row 3 has no recency (never ordered).
    let mut validity = vec![0xffu8; 500usize.div_ceil(8)];
    validity[0] &= !(1 << 3);
    let batch = t
        .call_batch(
            500,
            &[
                Column {
                    data: ColumnData::Int64(recency.clone()),
                    validity,
                },
                Column {
                    data: ColumnData::Int64(frequency.clone()),
                    validity: Vec::new(),
                },
                column_f64(monetary.clone()),
            ],
        )
        .expect("batch");
    for row in 0..500 {
        let r = if row == 3 {
            Value::Null
        } else {
            Value::Int64(recency[row])
        };
        let one = t
            .call(&[
                r,
                Value::Int64(frequency[row]),
                Value::Float64(monetary[row]),
            ])
            .expect("row");
        for (o, col) in one.iter().zip(&batch) {
            let ColumnData::Int64(v) = &col.data else {
                panic!("scores are int64")
            };
            let valid = col.validity.is_empty() || col.validity[row / 8] & (1 << (row % 8)) != 0;
            let from_batch = if valid {
                Value::Int64(v[row])
            } else {
                Value::Null
            };
            assert_eq!(*o, from_batch, "row {row}");
        }
    }
}

#[test]
fn wrong_inputs_are_refused_before_the_call() {
    let host = host();
    let t = host
        .load(&component("rfm_score"), &[], relaxed())
        .expect("load");
    let e = t.call(&[Value::Int64(1)]).expect_err("arity");
    assert_eq!(e.code(), "bad_input", "{e}");
    let e = t
        .call(&[
            Value::String("x".into()),
            Value::Int64(1),
            Value::Float64(1.0),
        ])
        .expect_err("type");
    assert!(e.to_string().contains("recency_days"), "{e}");
}

#[test]
fn bad_configuration_and_bad_bytes_fail_to_load() {
    let host = host();
    let e = host
        .load(
            &component("rfm_score"),
            &[("recency_cuts".into(), "1,2".into())],
            relaxed(),
        )
        .err()
        .expect("bad cuts");
    assert!(matches!(e, LoadError::Configure(_)), "{e}");
    let e = host
        .load(
            &component("rfm_score"),
            &[("no_such_key".into(), "1".into())],
            relaxed(),
        )
        .err()
        .expect("unknown key");
    assert!(matches!(e, LoadError::Configure(_)), "{e}");
    let e = host
        .load(b"not wasm at all", &[], relaxed())
        .err()
        .expect("garbage");
    assert!(matches!(e, LoadError::Invalid(_)), "{e}");
    // A core module is not a component.
    let e = host
        .load(b"\0asm\x01\0\0\0", &[], relaxed())
        .err()
        .expect("core module");
    assert!(matches!(e, LoadError::Invalid(_)), "{e}");
}

#[test]
fn hostile_components_fail_only_their_own_calls() {
    let host = host();
    // Short enough to keep the loop cases quick, long enough that the other modes reach
    // their own failure (filling the memory cap takes a few milliseconds) on a loaded machine.
    // Fuel is effectively unbounded so the loop is stopped by the deadline: on a fast machine
    // a tight loop burns billions of fuel units before a descheduled epoch ticker fires.
    let fast = Limits {
        deadline: Duration::from_millis(200),
        max_batch_deadline: Duration::from_secs(1),
        fuel_per_call: 1 << 60,
    };
    let good = hostile(&host, "ok", relaxed());
    let cases: [(&str, &str); 6] = [
        ("loop", "timeout"),
        ("alloc", "memory_limit"),
        ("panic", "trap"),
        ("wrong_type", "bad_output"),
        ("wrong_len", "bad_output"),
        ("error", "guest_error"),
    ];
    for (mode, code) in cases {
        let t = hostile(&host, mode, fast.clone());
        for _ in 0..3 {
            // Each failure throws its instance away; the next call gets a fresh one and fails
            // the same way rather than running on a broken instance.
            let e = t.call(&[Value::Float64(2.0)]).expect_err(mode);
            assert_eq!(e.code(), code, "{mode}: {e}");
            let e = t.call_batch(3, &[column_f64(vec![1.0, 2.0, 3.0])]);
            assert_eq!(e.expect_err(mode).code(), code, "{mode} batch");
            // The well-behaved transform on the same host is untouched.
            assert_eq!(
                good.call(&[Value::Float64(2.0)]).expect("ok"),
                vec![Value::Float64(4.0)]
            );
        }
    }
}

#[test]
fn fuel_stops_a_loop_before_its_deadline() {
    let host = host();
    let t = hostile(
        &host,
        "loop",
        Limits {
            deadline: Duration::from_secs(30),
            max_batch_deadline: Duration::from_secs(30),
            fuel_per_call: 1_000_000,
        },
    );
    let e = t.call(&[Value::Float64(1.0)]).expect_err("loop");
    assert_eq!(e, CallError::OutOfFuel);
}

#[test]
fn precompiled_components_load_and_keys_match() {
    let host = host();
    let other = self::host();
    assert_eq!(host.compatibility_key(), other.compatibility_key());
    let native = host.precompile(&component("segment")).expect("precompile");
    // SAFETY: produced just above by a host with the same configuration.
    let t = unsafe { other.load_precompiled(&native, &[], relaxed()) }.expect("load");
    assert_eq!(t.signature().outputs[0].name, "segment");
    // A `.wasm` is not a precompiled artifact.
    // SAFETY: the bytes are rejected before anything is deserialized.
    let e = unsafe { other.load_precompiled(&component("segment"), &[], relaxed()) };
    assert!(e.is_err());
}

#[test]
fn a_transform_is_shared_by_threads() {
    let host = host();
    // A generous deadline: the deadline is wall-clock time, and four threads on a shared
    // two-core machine can be descheduled for longer than the default 10 ms.
    let limits = relaxed();
    let t = std::sync::Arc::new(hostile(&host, "ok", limits));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                for j in 0..200 {
                    let x = f64::from(i * 1000 + j);
                    assert_eq!(
                        t.call(&[Value::Float64(x)]).expect("call"),
                        vec![Value::Float64(2.0 * x)]
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("thread");
    }
}
