//! The canonical-ABI facts the generated module relies on, read from the repository's WIT so
//! that a change to the world shows up here (as an error or a failing layout test) instead of
//! as silently corrupted memory.

use std::sync::OnceLock;

use wit_parser::{
    Resolve, SizeAlign, Type, TypeDefKind, TypeId, WorldId, WorldItem,
    abi::{AbiVariant, WasmType},
};

/// The world every compiled component implements. Read at build time so the crate cannot drift
/// from the file other crates bind to.
pub(crate) const WIT: &str = include_str!("../../../wit/transform.wit");
const WORLD: &str = "transform";

/// The value types SQL expressions compute with (lists are not among them), in the WIT's order of meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Float,
    Str,
    Bool,
    Ts,
}

impl Ty {
    pub(crate) const ALL: [Ty; 5] = [Ty::Int, Ty::Float, Ty::Str, Ty::Bool, Ty::Ts];

    /// The case name used by `value-type`, `value` and `column-data`.
    pub(crate) fn wit_case(self) -> &'static str {
        match self {
            Ty::Int => "int64",
            Ty::Float => "float64",
            Ty::Str => "string",
            Ty::Bool => "boolean",
            Ty::Ts => "timestamp",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A `list<T>` or `string` in memory: a pointer and an element count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PtrLen {
    pub ptr: u32,
    pub len: u32,
}

/// Size and alignment of one type, in bytes, for wasm32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeAlignBytes {
    pub size: u32,
    pub align: u32,
}

/// Layout of a `result<T, string>` return area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResultLayout {
    pub area: SizeAlignBytes,
    pub ok_disc: u8,
    pub err_disc: u8,
    /// Offset of the payload (the ok list or the error string) inside the area.
    pub payload: u32,
}

/// The core signature of one exported function, as the canonical ABI flattens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CoreSig {
    pub params: Vec<wasm_encoder::ValType>,
    pub results: Vec<wasm_encoder::ValType>,
}

/// Everything the code generator needs to know about memory layouts.
#[derive(Clone, Debug)]
pub(crate) struct Abi {
    /// Offsets of the pointer and the length inside a string or list.
    pub ptr_len: PtrLen,
    pub ptr_len_size: SizeAlignBytes,

    pub field: SizeAlignBytes,
    pub field_name: u32,
    pub field_type: u32,
    /// `value-type` enum discriminants, indexed by `Ty`.
    pub value_type_disc: [u8; 5],
    /// Size of the `value-type` enum's discriminant (the store width).
    pub value_type_width: u32,

    pub signature: SizeAlignBytes,
    pub signature_inputs: u32,
    pub signature_outputs: u32,

    pub value: SizeAlignBytes,
    pub value_payload: u32,
    pub value_null_disc: u8,
    pub value_disc: [u8; 5],

    pub column: SizeAlignBytes,
    pub column_data: u32,
    pub column_validity: u32,
    pub column_data_payload: u32,
    pub column_data_disc: [u8; 5],
    /// Size and alignment of one list element of each column type, indexed by `Ty`.
    pub column_elem: [SizeAlignBytes; 5],

    pub config_key: u32,

    pub configure_result: ResultLayout,
    pub compute_result: ResultLayout,
    pub batch_result: ResultLayout,

    pub describe_sig: CoreSig,
    pub configure_sig: CoreSig,
    pub compute_sig: CoreSig,
    pub batch_sig: CoreSig,
}

/// The parsed world and the layouts derived from it, computed once per process.
pub(crate) struct WorldInfo {
    pub resolve: Resolve,
    pub world: WorldId,
    pub abi: Abi,
}

pub(crate) fn world() -> Result<&'static WorldInfo, String> {
    static WORLD_INFO: OnceLock<Result<WorldInfo, String>> = OnceLock::new();
    WORLD_INFO
        .get_or_init(|| load().map_err(|e| format!("wit/transform.wit: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn load() -> Result<WorldInfo, String> {
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_source("transform.wit", WIT)
        .map_err(|e| format!("{e:#}"))?;
    let world = resolve
        .select_world(&[pkg], Some(WORLD))
        .map_err(|e| format!("{e:#}"))?;
    let abi = Abi::new(&resolve, world)?;
    Ok(WorldInfo {
        resolve,
        world,
        abi,
    })
}

fn bytes(sa: &SizeAlign, ty: &Type) -> SizeAlignBytes {
    SizeAlignBytes {
        size: sa.size(ty).size_wasm32() as u32,
        align: sa.align(ty).align_wasm32() as u32,
    }
}

/// Looks a type up by name in the world's `types` interface.
fn named_type(resolve: &Resolve, name: &str) -> Result<TypeId, String> {
    resolve
        .interfaces
        .iter()
        .find_map(|(_, iface)| iface.types.get(name).copied())
        .ok_or_else(|| format!("type `{name}` is missing"))
}

fn record_offsets(
    resolve: &Resolve,
    sa: &SizeAlign,
    id: TypeId,
    names: &[&str],
) -> Result<Vec<u32>, String> {
    let TypeDefKind::Record(record) = &resolve.types[id].kind else {
        return Err("expected a record".into());
    };
    let offsets = sa.field_offsets(record.fields.iter().map(|f| &f.ty));
    names
        .iter()
        .map(|name| {
            record
                .fields
                .iter()
                .position(|f| f.name == *name)
                .map(|i| offsets[i].0.size_wasm32() as u32)
                .ok_or_else(|| format!("record field `{name}` is missing"))
        })
        .collect()
}

/// A variant's cases: name and payload type, in discriminant order.
type Cases = Vec<(String, Option<Type>)>;

/// A variant's cases and the offset of its payload.
fn variant_cases(resolve: &Resolve, sa: &SizeAlign, id: TypeId) -> Result<(Cases, u32), String> {
    let TypeDefKind::Variant(v) = &resolve.types[id].kind else {
        return Err("expected a variant".into());
    };
    if v.cases.len() > 256 {
        return Err("variant with more than 256 cases".into());
    }
    let payload = sa.payload_offset(v.tag(), v.cases.iter().map(|c| c.ty.as_ref()));
    Ok((
        v.cases.iter().map(|c| (c.name.clone(), c.ty)).collect(),
        payload.size_wasm32() as u32,
    ))
}

fn disc_of(cases: &Cases, name: &str) -> Result<u8, String> {
    cases
        .iter()
        .position(|(n, _)| n == name)
        .map(|i| i as u8)
        .ok_or_else(|| format!("case `{name}` is missing"))
}

fn result_layout(
    resolve: &Resolve,
    sa: &SizeAlign,
    ty: Option<&Type>,
) -> Result<ResultLayout, String> {
    let Some(ty @ Type::Id(id)) = ty else {
        return Err("expected a result type".into());
    };
    let TypeDefKind::Result(r) = &resolve.types[*id].kind else {
        return Err("expected a result type".into());
    };
    if r.err != Some(Type::String) {
        return Err("expected the error type to be `string`".into());
    }
    let payload = sa.payload_offset(wit_parser::Int::U8, [r.ok.as_ref(), r.err.as_ref()]);
    Ok(ResultLayout {
        area: bytes(sa, ty),
        ok_disc: 0,
        err_disc: 1,
        payload: payload.size_wasm32() as u32,
    })
}

fn core_sig(resolve: &Resolve, func: &wit_parser::Function) -> CoreSig {
    let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
    let map = |t: &WasmType| match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => wasm_encoder::ValType::I32,
        WasmType::I64 | WasmType::PointerOrI64 => wasm_encoder::ValType::I64,
        WasmType::F32 => wasm_encoder::ValType::F32,
        WasmType::F64 => wasm_encoder::ValType::F64,
    };
    CoreSig {
        params: sig.params.iter().map(map).collect(),
        results: sig.results.iter().map(map).collect(),
    }
}

impl Abi {
    fn new(resolve: &Resolve, world: WorldId) -> Result<Abi, String> {
        let mut sa = SizeAlign::default();
        sa.fill(resolve).map_err(|e| format!("{e:#}"))?;

        // Strings and lists share one representation; the ABI puts the pointer first.
        let ptr_len_size = bytes(&sa, &Type::String);
        let ptr_len = PtrLen { ptr: 0, len: 4 };

        let field_id = named_type(resolve, "field")?;
        let field_offs = record_offsets(resolve, &sa, field_id, &["name", "type"])?;
        let value_type_id = named_type(resolve, "value-type")?;
        let TypeDefKind::Enum(value_type) = &resolve.types[value_type_id].kind else {
            return Err("`value-type` is not an enum".into());
        };
        let mut value_type_disc = [0u8; 5];
        for kind in Ty::ALL {
            value_type_disc[kind.index()] = value_type
                .cases
                .iter()
                .position(|c| c.name == kind.wit_case())
                .map(|i| i as u8)
                .ok_or_else(|| format!("value-type case `{}` is missing", kind.wit_case()))?;
        }
        let value_type_width = bytes(&sa, &Type::Id(value_type_id)).size;

        let sig_id = named_type(resolve, "signature")?;
        let sig_offs = record_offsets(resolve, &sa, sig_id, &["inputs", "outputs"])?;

        let value_id = named_type(resolve, "value")?;
        let (value_cases, value_payload) = variant_cases(resolve, &sa, value_id)?;
        let mut value_disc = [0u8; 5];
        for kind in Ty::ALL {
            value_disc[kind.index()] = disc_of(&value_cases, kind.wit_case())?;
        }

        let column_id = named_type(resolve, "column")?;
        let column_offs = record_offsets(resolve, &sa, column_id, &["data", "validity"])?;
        let column_data_id = named_type(resolve, "column-data")?;
        let (data_cases, column_data_payload) = variant_cases(resolve, &sa, column_data_id)?;
        let mut column_data_disc = [0u8; 5];
        let mut column_elem = [SizeAlignBytes { size: 0, align: 1 }; 5];
        for kind in Ty::ALL {
            let disc = disc_of(&data_cases, kind.wit_case())?;
            column_data_disc[kind.index()] = disc;
            // Each case carries `list<T>`; the element layout is what the batch loop strides by.
            let Some(Type::Id(list_id)) = data_cases[disc as usize].1 else {
                return Err(format!(
                    "column-data case `{}` has no list",
                    kind.wit_case()
                ));
            };
            let TypeDefKind::List(elem) = &resolve.types[list_id].kind else {
                return Err(format!(
                    "column-data case `{}` is not a list",
                    kind.wit_case()
                ));
            };
            column_elem[kind.index()] = bytes(&sa, elem);
        }

        let world_def = &resolve.worlds[world];
        let func = |name: &str| -> Result<&wit_parser::Function, String> {
            world_def
                .exports
                .values()
                .find_map(|item| match item {
                    WorldItem::Function(f) if f.name == name => Some(f),
                    _ => None,
                })
                .ok_or_else(|| format!("export `{name}` is missing"))
        };
        let describe = func("describe")?;
        let configure = func("configure")?;
        let compute = func("compute")?;
        let batch = func("compute-batch")?;

        // `configure` takes `list<tuple<string, string>>`: the key is the tuple's first field.
        let Some(Type::Id(config_list)) = configure.params.first().map(|p| p.ty) else {
            return Err("`configure` has no parameter".into());
        };
        let TypeDefKind::List(Type::Id(entry_id)) = &resolve.types[config_list].kind else {
            return Err("`configure` does not take a list".into());
        };
        let TypeDefKind::Tuple(tuple) = &resolve.types[*entry_id].kind else {
            return Err("`configure` entries are not tuples".into());
        };
        let config_key = sa
            .field_offsets(tuple.types.iter())
            .first()
            .map(|(off, _)| off.size_wasm32() as u32)
            .ok_or("`configure` entries are empty tuples")?;

        Ok(Abi {
            ptr_len,
            ptr_len_size,
            field: bytes(&sa, &Type::Id(field_id)),
            field_name: field_offs[0],
            field_type: field_offs[1],
            value_type_disc,
            value_type_width,
            signature: bytes(&sa, &Type::Id(sig_id)),
            signature_inputs: sig_offs[0],
            signature_outputs: sig_offs[1],
            value: bytes(&sa, &Type::Id(value_id)),
            value_payload,
            value_null_disc: disc_of(&value_cases, "null")?,
            value_disc,
            column: bytes(&sa, &Type::Id(column_id)),
            column_data: column_offs[0],
            column_validity: column_offs[1],
            column_data_payload,
            column_data_disc,
            column_elem,
            config_key,
            configure_result: result_layout(resolve, &sa, configure.result.as_ref())?,
            compute_result: result_layout(resolve, &sa, compute.result.as_ref())?,
            batch_result: result_layout(resolve, &sa, batch.result.as_ref())?,
            describe_sig: core_sig(resolve, describe),
            configure_sig: core_sig(resolve, configure),
            compute_sig: core_sig(resolve, compute),
            batch_sig: core_sig(resolve, batch),
        })
    }

    pub(crate) fn elem(&self, kind: Ty) -> SizeAlignBytes {
        self.column_elem[kind.index()]
    }
    pub(crate) fn value_disc(&self, kind: Ty) -> u8 {
        self.value_disc[kind.index()]
    }
    pub(crate) fn column_data_disc(&self, kind: Ty) -> u8 {
        self.column_data_disc[kind.index()]
    }
    pub(crate) fn value_type_disc(&self, kind: Ty) -> u8 {
        self.value_type_disc[kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts the generated code uses, spelled out: if the WIT changes shape, this fails
    /// and says how.
    #[test]
    fn layouts_are_the_canonical_abi_of_the_wit() {
        let abi = &world().expect("the WIT parses").abi;
        assert_eq!(abi.ptr_len, PtrLen { ptr: 0, len: 4 });
        assert_eq!(abi.ptr_len_size, SizeAlignBytes { size: 8, align: 4 });
        assert_eq!(abi.field, SizeAlignBytes { size: 12, align: 4 });
        assert_eq!((abi.field_name, abi.field_type), (0, 8));
        assert_eq!(abi.value_type_width, 1);
        assert_eq!(abi.value_type_disc, [0, 1, 2, 3, 4]);
        assert_eq!(abi.signature, SizeAlignBytes { size: 16, align: 4 });
        assert_eq!((abi.signature_inputs, abi.signature_outputs), (0, 8));
        assert_eq!(abi.value, SizeAlignBytes { size: 16, align: 8 });
        assert_eq!(abi.value_payload, 8);
        assert_eq!(abi.value_null_disc, 0);
        assert_eq!(abi.value_disc, [1, 2, 3, 4, 5]);
        assert_eq!(abi.column, SizeAlignBytes { size: 20, align: 4 });
        assert_eq!((abi.column_data, abi.column_validity), (0, 12));
        assert_eq!(abi.column_data_payload, 4);
        assert_eq!(abi.column_data_disc, [0, 1, 2, 3, 4]);
        let elem = |size, align| SizeAlignBytes { size, align };
        assert_eq!(
            abi.column_elem,
            [elem(8, 8), elem(8, 8), elem(8, 4), elem(1, 1), elem(8, 8)]
        );
        assert_eq!(abi.config_key, 0);
        for r in [abi.configure_result, abi.compute_result, abi.batch_result] {
            assert_eq!(r.area, SizeAlignBytes { size: 12, align: 4 });
            assert_eq!((r.ok_disc, r.err_disc, r.payload), (0, 1, 4));
        }
        use wasm_encoder::ValType::I32;
        assert_eq!(
            abi.describe_sig,
            CoreSig {
                params: vec![],
                results: vec![I32]
            }
        );
        assert_eq!(
            abi.configure_sig,
            CoreSig {
                params: vec![I32; 2],
                results: vec![I32]
            }
        );
        assert_eq!(
            abi.compute_sig,
            CoreSig {
                params: vec![I32; 2],
                results: vec![I32]
            }
        );
        assert_eq!(
            abi.batch_sig,
            CoreSig {
                params: vec![I32; 3],
                results: vec![I32]
            }
        );
    }
}
