//! `hostile`: a test fixture for hosts' sandboxes. One component whose config key `mode` picks a
//! misbehaviour of `compute` and `compute-batch`; `describe` and `configure` always behave, so a
//! host can register it and then watch each failure happen where it should be contained.
//!
//! Signature: `x: float64` → `y: float64`. Modes:
//!
//! | mode | compute / compute-batch |
//! |---|---|
//! | `ok` (default) | `y = x * 2`, null stays null |
//! | `error` | returns `Err("hostile: error mode")` |
//! | `panic` | panics (traps; the panic message may reach for stderr first, which also traps) |
//! | `loop` | never returns (for fuel or epoch interruption) |
//! | `alloc` | allocates 1 MiB at a time until the memory limit makes it trap |
//! | `wrong_type` | returns a string value / string column |
//! | `wrong_len` | returns no value for the row / a column one row short |
//!
//! It implements the raw [`Guest`] rather than going through the SDK's
//! `transform!`, whose checks would not let it return wrong types or lengths.

use fstore_transform_sdk::bindings::Guest;
use fstore_transform_sdk::{
    Column, ColumnData, Config, Field, Signature, Value, ValueType, config,
};
use std::sync::atomic::{AtomicU8, Ordering};

/// The misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Mode {
    #[default]
    Ok,
    Error,
    Panic,
    Loop,
    Alloc,
    WrongType,
    WrongLen,
}

impl fstore_transform_sdk::ConfigValue for Mode {
    fn parse_config(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ok" => Mode::Ok,
            "error" => Mode::Error,
            "panic" => Mode::Panic,
            "loop" => Mode::Loop,
            "alloc" => Mode::Alloc,
            "wrong_type" => Mode::WrongType,
            "wrong_len" => Mode::WrongLen,
            _ => {
                return Err(format!(
                    "`{s}` is not one of ok, error, panic, loop, alloc, wrong_type, wrong_len"
                ));
            }
        })
    }
}

config! {
    /// The fixture's one key.
    #[derive(Debug, Clone, PartialEq)]
    pub struct HostileConfig {
        pub mode: Mode = Mode::Ok,
    }
}

/// The configured mode (a component instance is single-threaded; the atomic only makes the
/// `static` safe).
static MODE: AtomicU8 = AtomicU8::new(Mode::Ok as u8);

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Error,
        2 => Mode::Panic,
        3 => Mode::Loop,
        4 => Mode::Alloc,
        5 => Mode::WrongType,
        6 => Mode::WrongLen,
        _ => Mode::Ok,
    }
}

/// The component.
pub struct Hostile;

/// The misbehaviours both compute paths share; `None` when the mode behaves.
fn misbehave(mode: Mode) -> Option<String> {
    match mode {
        Mode::Error => Some("hostile: error mode".to_string()),
        Mode::Panic => panic!("hostile: panic mode"),
        Mode::Loop => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::Alloc => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Mode::Ok | Mode::WrongType | Mode::WrongLen => None,
    }
}

/// `compute` in `mode`.
pub fn compute_in(mode: Mode, inputs: Vec<Value>) -> Result<Vec<Value>, String> {
    if let Some(e) = misbehave(mode) {
        return Err(e);
    }
    match (mode, inputs.as_slice()) {
        (Mode::WrongType, _) => Ok(vec![Value::String("not a float".to_string())]),
        (Mode::WrongLen, _) => Ok(vec![]),
        (_, [Value::Float64(x)]) => Ok(vec![Value::Float64(x * 2.0)]),
        (_, [Value::Null]) => Ok(vec![Value::Null]),
        _ => Err("hostile: expects one float64 input".to_string()),
    }
}

/// `compute-batch` in `mode`.
pub fn compute_batch_in(mode: Mode, rows: u32, inputs: Vec<Column>) -> Result<Vec<Column>, String> {
    if let Some(e) = misbehave(mode) {
        return Err(e);
    }
    let rows = rows as usize;
    match mode {
        Mode::WrongType => {
            return Ok(vec![Column {
                data: ColumnData::String(vec![String::new(); rows]),
                validity: vec![],
            }]);
        }
        Mode::WrongLen => {
            return Ok(vec![Column {
                data: ColumnData::Float64(vec![0.0; rows.saturating_sub(1)]),
                validity: vec![],
            }]);
        }
        _ => {}
    }
    match inputs.as_slice() {
        [
            Column {
                data: ColumnData::Float64(x),
                validity,
            },
        ] if x.len() == rows => Ok(vec![Column {
            data: ColumnData::Float64(x.iter().map(|x| x * 2.0).collect()),
            validity: validity.clone(),
        }]),
        _ => Err("hostile: expects one float64 column of `rows` entries".to_string()),
    }
}

impl Guest for Hostile {
    fn describe() -> Signature {
        let field = |name: &str| Field {
            name: name.to_string(),
            type_: ValueType::Float64,
        };
        Signature {
            inputs: vec![field("x")],
            outputs: vec![field("y")],
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), String> {
        let c = HostileConfig::from_pairs(&config)?;
        MODE.store(c.mode as u8, Ordering::Relaxed);
        Ok(())
    }

    fn compute(inputs: Vec<Value>) -> Result<Vec<Value>, String> {
        compute_in(mode(), inputs)
    }

    fn compute_batch(rows: u32, inputs: Vec<Column>) -> Result<Vec<Column>, String> {
        compute_batch_in(mode(), rows, inputs)
    }
}

#[cfg(target_arch = "wasm32")]
fstore_transform_sdk::bindings::export!(Hostile with_types_in fstore_transform_sdk::bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        let mode = |v: &str| HostileConfig::from_pairs(&[("mode".into(), v.into())]);
        assert_eq!(mode("loop").map(|c| c.mode), Ok(Mode::Loop));
        assert_eq!(mode("wrong_len").map(|c| c.mode), Ok(Mode::WrongLen));
        assert!(mode("explode").is_err());
        assert!(HostileConfig::from_pairs(&[("speed".into(), "1".into())]).is_err());
        assert_eq!(Hostile::describe().inputs[0].name, "x");
    }

    #[test]
    fn behaving_and_misbehaving_results() {
        assert_eq!(
            compute_in(Mode::Ok, vec![Value::Float64(1.5)]),
            Ok(vec![Value::Float64(3.0)])
        );
        assert_eq!(
            compute_in(Mode::Error, vec![Value::Float64(1.5)]),
            Err("hostile: error mode".to_string())
        );
        assert_eq!(
            compute_in(Mode::WrongType, vec![Value::Float64(1.5)]),
            Ok(vec![Value::String("not a float".into())])
        );
        assert_eq!(compute_in(Mode::WrongLen, vec![Value::Null]), Ok(vec![]));
        let col = || {
            vec![Column {
                data: ColumnData::Float64(vec![1.0, 2.0]),
                validity: vec![0b10],
            }]
        };
        assert_eq!(
            compute_batch_in(Mode::Ok, 2, col()),
            Ok(vec![Column {
                data: ColumnData::Float64(vec![2.0, 4.0]),
                validity: vec![0b10],
            }])
        );
        let short = compute_batch_in(Mode::WrongLen, 2, col());
        assert_eq!(
            short.map(|c| c[0].data.clone()),
            Ok(ColumnData::Float64(vec![0.0]))
        );
    }
}
