//! Write fstore transforms as plain Rust functions.
//!
//! A transform is a WebAssembly component implementing the `fstore:transform@0.1.0` contract
//! (`wit/transform.wit` at the root of the repository): it `describe`s its positional inputs and
//! outputs, takes a key/value `configure`ation, and computes one row (`compute`, at the edge) or
//! many rows as columns (`compute-batch`, offline). This crate turns a typed function into all of
//! that, so an author writes the feature logic and unit-tests it natively:
//!
//! ```
//! use fstore_transform_sdk::{config, transform};
//!
//! config! {
//!     /// How many units make one dozen.
//!     #[derive(Debug, Clone)]
//!     pub struct DozenConfig {
//!         pub per_dozen: f64 = 12.0,
//!     }
//!     validate(c) {
//!         if c.per_dozen > 0.0 { Ok(()) } else { Err("per_dozen must be positive".into()) }
//!     }
//! }
//!
//! transform! {
//!     /// Counts in dozens.
//!     pub struct Dozens;
//!     config: DozenConfig,
//!     inputs: (units: int64),
//!     outputs: (dozens: float64),
//!     compute: dozens,
//! }
//!
//! /// One output: the function returns it bare; several outputs: a tuple, in declaration order.
//! pub fn dozens(cfg: &DozenConfig, units: Option<i64>) -> Result<Option<f64>, String> {
//!     Ok(units.map(|u| u as f64 / cfg.per_dozen))
//! }
//!
//! assert_eq!(dozens(&DozenConfig::default(), Some(24)), Ok(Some(2.0)));
//! ```
//!
//! [`transform!`] declares the signature, checks every call against it (arity, types, column
//! lengths and validity bitmaps, with errors naming the input) and, when compiled for
//! `wasm32`, exports the component's functions. [`config!`] declares a configuration struct whose
//! fields are the config keys; unknown keys and unparsable values are errors, as the contract
//! requires, so a typo fails at registration and not at request time.
//!
//! Type mapping (input argument → output value, each wrapped in `Option`, `None` being null):
//!
//! | WIT `value-type` | marker | input argument | output value |
//! |---|---|---|---|
//! | `int64` | [`ty::int64`] | `Option<i64>` | `Option<i64>` |
//! | `float64` | [`ty::float64`] | `Option<f64>` | `Option<f64>` |
//! | `string` | [`ty::string`] | `Option<&str>` | `Option<String>` |
//! | `boolean` | [`ty::boolean`] | `Option<bool>` | `Option<bool>` |
//! | `timestamp` | [`ty::timestamp`] | `Option<i64>` (µs since epoch) | `Option<i64>` |
//! | `float64-list` | [`ty::float64_list`] | `Option<&[f64]>` | `Option<Vec<f64>>` |
//!
//! Inputs are borrowed so the batch path reads the columns in place: numeric columns cost no
//! allocation per row, only the output vectors themselves.

#![warn(missing_docs)]

mod column;
mod config;
pub mod ty;

pub use column::{ColumnBuilder, ColumnView};
pub use config::{Config, ConfigValue, Cuts};
pub use ty::{Input, Output, Outputs, Type};

/// What [`config!`] expands to calls; not part of the authors' API.
#[doc(hidden)]
pub mod __config {
    pub use crate::config::{parse_key, unknown_key};
}

/// The guest bindings `wit-bindgen` generates from `wit/transform.wit`.
///
/// Transforms normally never touch them: [`transform!`] does. They are public for components
/// that must step outside the SDK's checks (the `hostile` test fixture returns wrong types on
/// purpose), which implement [`bindings::Guest`] and call [`bindings::export!`] themselves.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "fstore:transform/transform",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "fstore_transform_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::fstore::transform::types::{
    Column, ColumnData, Field, Signature, Value, ValueType,
};

/// A transform as the SDK sees it: a signature, a configuration and the two compute entry points
/// over the contract's own types. [`transform!`] implements it; tests can call it directly to
/// exercise exactly what a host would, without a WebAssembly runtime.
pub trait Transform {
    /// The configuration `configure` builds; `()` when the transform takes none.
    type Config: Config;

    /// What `describe` returns.
    fn signature() -> Signature;

    /// What `configure` does: parse and validate the key/value list.
    fn configure(pairs: &[(String, String)]) -> Result<Self::Config, String> {
        Self::Config::from_pairs(pairs)
    }

    /// `compute`: one row of positional inputs to one row of outputs.
    fn compute(config: &Self::Config, inputs: &[Value]) -> Result<Vec<Value>, String>;

    /// `compute-batch`: `rows` rows as columns to one column per output.
    fn compute_batch(
        config: &Self::Config,
        rows: u32,
        inputs: &[Column],
    ) -> Result<Vec<Column>, String>;
}

/// The WIT name of a value type, as error messages and docs spell it.
pub fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Int64 => "int64",
        ValueType::Float64 => "float64",
        ValueType::String => "string",
        ValueType::Boolean => "boolean",
        ValueType::Timestamp => "timestamp",
        ValueType::Float64List => "float64-list",
    }
}

/// Declares a transform: its name, configuration, positional inputs and outputs, and the function
/// computing one row.
///
/// ```text
/// transform! {
///     /// docs…
///     pub struct Name;
///     config: ConfigType,            // optional; `()` when omitted
///     inputs: (a: int64, b: string),
///     outputs: (x: float64, y: boolean),
///     compute: path::to::function,
/// }
/// ```
///
/// Types are the WIT names (see [`ty`]). The function takes `&ConfigType` then one argument per
/// input in order (see the crate docs for the Rust types) and returns
/// `Result<Option<T>, String>` for one output or `Result<(Option<T1>, Option<T2>, …), String>`
/// for several. An `Err` fails the call (the row or the whole batch) with that message.
///
/// It defines the unit struct `Name` (deriving `Debug`, `Clone`, `Copy` and `Default`)
/// implementing [`Transform`], and on `wasm32` exports the component's `describe`, `configure`,
/// `compute` and `compute-batch`. A component exports one world, so one crate holds one
/// transform.
#[macro_export]
macro_rules! transform {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        inputs: $inputs:tt,
        outputs: $outputs:tt,
        compute: $f:path $(,)?
    ) => {
        $crate::transform! {
            $(#[$meta])*
            $vis struct $name;
            config: (),
            inputs: $inputs,
            outputs: $outputs,
            compute: $f,
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        config: $cfg:ty,
        inputs: ($($in:ident : $inty:ident),+ $(,)?),
        outputs: ($($out:ident : $outty:ident),+ $(,)?),
        compute: $f:path $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        // One output is a bare type (and its row a bare `Option`), several a tuple: the same
        // parenthesized syntax covers both, hence `unused_parens`.
        #[allow(unused_parens)]
        impl $crate::Transform for $name {
            type Config = $cfg;

            fn signature() -> $crate::Signature {
                $crate::Signature {
                    inputs: ::std::vec![$($crate::rt::field::<$crate::ty::$inty>(stringify!($in))),+],
                    outputs: ::std::vec![$($crate::rt::field::<$crate::ty::$outty>(stringify!($out))),+],
                }
            }

            fn compute(
                config: &$cfg,
                inputs: &[$crate::Value],
            ) -> ::std::result::Result<::std::vec::Vec<$crate::Value>, ::std::string::String> {
                let [$($in),+] = inputs else {
                    return Err($crate::rt::arity_error(&[$(stringify!($in)),+], inputs.len()));
                };
                $(let $in = $crate::rt::row_input::<$crate::ty::$inty>(stringify!($in), $in)?;)+
                let row = $f(config, $($in),+)?;
                Ok(<($($crate::ty::$outty),+) as $crate::Outputs>::values(row))
            }

            fn compute_batch(
                config: &$cfg,
                rows: u32,
                inputs: &[$crate::Column],
            ) -> ::std::result::Result<::std::vec::Vec<$crate::Column>, ::std::string::String> {
                let rows = rows as usize;
                let [$($in),+] = inputs else {
                    return Err($crate::rt::arity_error(&[$(stringify!($in)),+], inputs.len()));
                };
                $(let $in = $crate::rt::column_input::<$crate::ty::$inty>(stringify!($in), $in, rows)?;)+
                let mut out = <($($crate::ty::$outty),+) as $crate::Outputs>::builders(rows);
                for i in 0..rows {
                    let row = $f(config, $($in.get(i)),+)?;
                    <($($crate::ty::$outty),+) as $crate::Outputs>::push(&mut out, row);
                }
                Ok(<($($crate::ty::$outty),+) as $crate::Outputs>::finish(out))
            }
        }

        // The component's exports. Only on wasm32: natively the crate is a plain library whose
        // tests call `$name` through `Transform`.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static STATE: $crate::rt::State<$cfg> = $crate::rt::State::new();

            struct Guest;

            impl $crate::bindings::Guest for Guest {
                fn describe() -> $crate::Signature {
                    <$name as $crate::Transform>::signature()
                }

                fn configure(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.configure(<$name as $crate::Transform>::configure(&config))
                }

                fn compute(
                    inputs: ::std::vec::Vec<$crate::Value>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Value>, ::std::string::String> {
                    STATE.with(|c| <$name as $crate::Transform>::compute(c, &inputs))
                }

                fn compute_batch(
                    rows: u32,
                    inputs: ::std::vec::Vec<$crate::Column>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Column>, ::std::string::String> {
                    STATE.with(|c| <$name as $crate::Transform>::compute_batch(c, rows, &inputs))
                }
            }

            $crate::bindings::export!(Guest with_types_in $crate::bindings);
        };
    };
}

/// What [`transform!`] expands to calls; not part of the authors' API.
#[doc(hidden)]
pub mod rt {
    use crate::{Column, ColumnView, Config, Field, Input, Type, Value, type_name};
    use std::sync::Mutex;

    /// One declared input or output. Raw identifiers (`r#type`) name the feature `type`.
    pub fn field<T: Type>(name: &str) -> Field {
        Field {
            name: name.trim_start_matches("r#").to_string(),
            type_: T::TYPE,
        }
    }

    pub fn arity_error(names: &[&str], got: usize) -> String {
        format!(
            "expected {} input{} ({}), got {got}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names
                .iter()
                .map(|n| n.trim_start_matches("r#"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The WIT name of the variant a value holds.
    pub fn value_kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "float64",
            Value::String(_) => "string",
            Value::Boolean(_) => "boolean",
            Value::Timestamp(_) => "timestamp",
            Value::Float64List(_) => "float64-list",
        }
    }

    /// One row's input: `null` is `None`, the declared type `Some`, anything else an error.
    pub fn row_input<'a, T: Input>(name: &str, v: &'a Value) -> Result<Option<T::Ref<'a>>, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some).ok_or_else(|| {
                format!(
                    "input `{}`: expected {}, got {}",
                    name.trim_start_matches("r#"),
                    type_name(T::TYPE),
                    value_kind(v)
                )
            }),
        }
    }

    /// One batch input, checked once so the row loop only indexes.
    pub fn column_input<'a, T: Input>(
        name: &str,
        c: &'a Column,
        rows: usize,
    ) -> Result<ColumnView<'a, T>, String> {
        ColumnView::new(c, rows)
            .map_err(|e| format!("input `{}`: {e}", name.trim_start_matches("r#")))
    }

    /// What `configure` left: nothing yet (then the defaults apply, as for an empty
    /// configuration), a configuration, or the error it returned, which every later call
    /// repeats rather than computing with a configuration the host was told is invalid.
    enum Slot<C> {
        Unset,
        Set(C),
        Failed(String),
    }

    /// The configuration of a component instance. A component instance is single-threaded, so
    /// the lock is never contended; it only makes the `static` sound.
    pub struct State<C>(Mutex<Slot<C>>);

    impl<C: Config> State<C> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            State(Mutex::new(Slot::Unset))
        }

        pub fn configure(&self, parsed: Result<C, String>) -> Result<(), String> {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let result = parsed.as_ref().map(|_| ()).map_err(Clone::clone);
            *slot = match parsed {
                Ok(c) => Slot::Set(c),
                Err(e) => Slot::Failed(e),
            };
            result
        }

        pub fn with<R>(&self, f: impl FnOnce(&C) -> Result<R, String>) -> Result<R, String> {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Slot::Unset = *slot {
                *slot = Slot::Set(C::from_pairs(&[])?);
            }
            match &*slot {
                Slot::Set(c) => f(c),
                Slot::Failed(e) => Err(format!("not configured: {e}")),
                Slot::Unset => Err("not configured".to_string()),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn state_defaults_then_remembers_failure() {
            let s: State<()> = State::new();
            assert_eq!(s.with(|_| Ok(1)), Ok(1));
            assert!(s.configure(Err("bad".into())).is_err());
            assert_eq!(s.with(|_| Ok(1)), Err("not configured: bad".to_string()));
            assert_eq!(s.configure(Ok(())), Ok(()));
            assert_eq!(s.with(|_| Ok(2)), Ok(2));
        }
    }
}
