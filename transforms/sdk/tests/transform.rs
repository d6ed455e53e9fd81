//! The code `transform!` generates, driven through `Transform` exactly as a host drives the
//! component: every type, null handling, arity and type errors, batch shapes.

use fstore_transform_sdk::{
    Column, ColumnData, Field, Transform, Value, ValueType, config, transform,
};

config! {
    #[derive(Debug)]
    pub struct EchoConfig {
        pub suffix: String = "!".to_string(),
    }
}

transform! {
    /// Passes every type through, changing each a little.
    pub struct Echo;
    config: EchoConfig,
    inputs: (i: int64, f: float64, s: string, b: boolean, t: timestamp, l: float64_list),
    outputs: (i2: int64, f2: float64, s2: string, b2: boolean, t2: timestamp, l2: float64_list),
    compute: echo,
}

type Row = (
    Option<i64>,
    Option<f64>,
    Option<String>,
    Option<bool>,
    Option<i64>,
    Option<Vec<f64>>,
);

fn echo(
    cfg: &EchoConfig,
    i: Option<i64>,
    f: Option<f64>,
    s: Option<&str>,
    b: Option<bool>,
    t: Option<i64>,
    l: Option<&[f64]>,
) -> Result<Row, String> {
    if i == Some(-1) {
        return Err("minus one".to_string());
    }
    Ok((
        i.map(|i| i + 1),
        f.map(|f| f * 2.0),
        s.map(|s| format!("{s}{}", cfg.suffix)),
        b.map(|b| !b),
        t.map(|t| t + 1_000_000),
        l.map(|l| l.iter().rev().copied().collect()),
    ))
}

transform! {
    /// One output, no configuration: the function returns a bare `Option`.
    pub struct Half;
    inputs: (x: float64),
    outputs: (y: float64),
    compute: half,
}

fn half(_: &(), x: Option<f64>) -> Result<Option<f64>, String> {
    Ok(x.map(|x| x / 2.0))
}

fn cfg() -> EchoConfig {
    EchoConfig::default()
}

#[test]
fn signature_lists_names_and_types_in_order() {
    let sig = Echo::signature();
    let names: Vec<&str> = sig.inputs.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["i", "f", "s", "b", "t", "l"]);
    assert_eq!(
        sig.outputs[5],
        Field {
            name: "l2".to_string(),
            type_: ValueType::Float64List
        }
    );
    assert_eq!(sig.outputs[4].type_, ValueType::Timestamp);
    assert_eq!(Half::signature().outputs.len(), 1);
}

#[test]
fn row_computes_every_type() {
    let out = Echo::compute(
        &cfg(),
        &[
            Value::Int64(1),
            Value::Float64(1.5),
            Value::String("hi".into()),
            Value::Boolean(true),
            Value::Timestamp(5),
            Value::Float64List(vec![1.0, 2.0]),
        ],
    );
    assert_eq!(
        out,
        Ok(vec![
            Value::Int64(2),
            Value::Float64(3.0),
            Value::String("hi!".into()),
            Value::Boolean(false),
            Value::Timestamp(1_000_005),
            Value::Float64List(vec![2.0, 1.0]),
        ])
    );
    let nulls = vec![Value::Null; 6];
    assert_eq!(Echo::compute(&cfg(), &nulls), Ok(nulls.clone()));
    assert_eq!(
        Half::compute(&(), &[Value::Float64(3.0)]),
        Ok(vec![Value::Float64(1.5)])
    );
}

#[test]
fn row_errors_name_the_input() {
    assert_eq!(
        Echo::compute(&cfg(), &[Value::Int64(1)]),
        Err("expected 6 inputs (i, f, s, b, t, l), got 1".to_string())
    );
    let mut row = vec![Value::Null; 6];
    row[3] = Value::String("true".into());
    assert_eq!(
        Echo::compute(&cfg(), &row),
        Err("input `b`: expected boolean, got string".to_string())
    );
    // A timestamp is not an int64, even though both are i64 in Rust.
    row[3] = Value::Null;
    row[0] = Value::Timestamp(1);
    assert_eq!(
        Echo::compute(&cfg(), &row),
        Err("input `i`: expected int64, got timestamp".to_string())
    );
    row[0] = Value::Int64(-1);
    assert_eq!(Echo::compute(&cfg(), &row), Err("minus one".to_string()));
}

fn col(data: ColumnData, validity: Vec<u8>) -> Column {
    Column { data, validity }
}

#[test]
fn batch_reads_bitmaps_and_writes_them_only_for_nulls() {
    let inputs = vec![
        col(ColumnData::Int64(vec![1, 0, 3]), vec![0b101]),
        col(ColumnData::Float64(vec![1.0, 2.0, 3.0]), vec![]),
        col(
            ColumnData::String(vec!["a".into(), "b".into(), "".into()]),
            vec![0b011],
        ),
        col(ColumnData::Boolean(vec![true, false, true]), vec![]),
        col(ColumnData::Timestamp(vec![0, 1, 2]), vec![0xff]),
        col(
            ColumnData::Float64List(vec![vec![], vec![1.0], vec![]]),
            vec![],
        ),
    ];
    let out = Echo::compute_batch(&cfg(), 3, &inputs).expect("batch");
    assert_eq!(out.len(), 6);
    assert_eq!(out[0], col(ColumnData::Int64(vec![2, 0, 4]), vec![0b101]));
    assert_eq!(
        out[1],
        col(ColumnData::Float64(vec![2.0, 4.0, 6.0]), vec![])
    );
    assert_eq!(
        out[2],
        col(
            ColumnData::String(vec!["a!".into(), "b!".into(), String::new()]),
            vec![0b011]
        )
    );
    assert_eq!(
        out[5],
        col(
            ColumnData::Float64List(vec![vec![], vec![1.0], vec![]]),
            vec![]
        )
    );
    // Zero rows: zero-length columns, no bitmap.
    let empty: Vec<Column> = inputs
        .iter()
        .map(|c| {
            let data = match &c.data {
                ColumnData::Int64(_) => ColumnData::Int64(vec![]),
                ColumnData::Float64(_) => ColumnData::Float64(vec![]),
                ColumnData::String(_) => ColumnData::String(vec![]),
                ColumnData::Boolean(_) => ColumnData::Boolean(vec![]),
                ColumnData::Timestamp(_) => ColumnData::Timestamp(vec![]),
                ColumnData::Float64List(_) => ColumnData::Float64List(vec![]),
            };
            col(data, vec![])
        })
        .collect();
    let out = Echo::compute_batch(&cfg(), 0, &empty).expect("empty batch");
    assert!(out.iter().all(|c| c.validity.is_empty()));
    assert_eq!(out[0].data, ColumnData::Int64(vec![]));
}

#[test]
fn batch_errors_name_the_input() {
    let x = |v: Vec<f64>, bits: Vec<u8>| vec![col(ColumnData::Float64(v), bits)];
    assert_eq!(
        Half::compute_batch(&(), 2, &[]),
        Err("expected 1 input (x), got 0".to_string())
    );
    assert_eq!(
        Half::compute_batch(&(), 2, &x(vec![1.0], vec![])),
        Err("input `x`: 1 entries for 2 rows".to_string())
    );
    assert_eq!(
        Half::compute_batch(&(), 9, &x(vec![0.0; 9], vec![0xff])),
        Err(
            "input `x`: validity bitmap of 1 bytes for 9 rows (needs 2, or 0 when no row is null)"
                .to_string()
        )
    );
    assert_eq!(
        Half::compute_batch(&(), 1, &[col(ColumnData::Int64(vec![1]), vec![])]),
        Err("input `x`: expected a column of float64, got a column of int64".to_string())
    );
    let mut row = vec![col(ColumnData::Int64(vec![5, -1]), vec![])];
    row.extend((1..6).map(|_| col(ColumnData::Float64(vec![]), vec![])));
    assert!(Echo::compute_batch(&cfg(), 2, &row).is_err());
}

#[test]
fn configure_parses_through_the_transform() {
    let c = Echo::configure(&[("suffix".into(), "?".into())]).expect("config");
    assert_eq!(c.suffix, "?");
    assert!(Echo::configure(&[("sufix".into(), "?".into())]).is_err());
    assert!(Half::configure(&[("x".into(), "1".into())]).is_err());
}
