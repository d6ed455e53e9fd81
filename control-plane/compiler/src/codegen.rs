//! The core module: a bump allocator, the world's four exports with their post-return
//! functions, and the expressions compiled twice — once for `compute`'s single row, once inside
//! `compute-batch`'s row loop, so a batch makes no call per row.
//!
//! Memory map: `[0, DATA_BASE)` unused (so no valid object sits at address 0), then the data
//! segment (string literals, error messages, `describe`'s answer), then the heap, which is
//! bump-allocated from `heap_base` and reset after every call.

use std::collections::HashMap;

use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, InstructionSink, MemArg, MemorySection, MemoryType,
    Module, TypeSection, ValType,
};
use wit_component::{ComponentEncoder, StringEncoding};

use crate::abi::{Abi, ResultLayout, Ty, WorldInfo};
use crate::check::{Arith, Cmp, K, Math, Node};
use crate::math;

const DATA_BASE: u32 = 16;
const BUMP: u32 = 0;
const HEAP_BASE: u32 = 1;

pub(crate) struct Port<'a> {
    pub name: &'a str,
    pub ty: Ty,
    /// For inputs, the index in `available` that `K::Input` refers to.
    pub available_index: usize,
}

pub(crate) struct Spec<'a> {
    pub inputs: Vec<Port<'a>>,
    pub outputs: Vec<Port<'a>>,
    /// One tree per output.
    pub roots: &'a [Node],
}

pub(crate) type GenResult<T> = Result<T, String>;

/// A function body under construction: locals are handed out as code needs them and declared
/// when the body is finished.
pub(crate) struct Func {
    nparams: u32,
    locals: Vec<ValType>,
    body: Vec<u8>,
}

impl Func {
    pub(crate) fn new(params: &[ValType]) -> Func {
        Func {
            nparams: params.len() as u32,
            locals: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn local(&mut self, t: ValType) -> u32 {
        self.locals.push(t);
        self.nparams + self.locals.len() as u32 - 1
    }

    pub(crate) fn ins(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.body)
    }

    fn finish(mut self) -> Function {
        self.ins().end();
        let mut f = Function::new_with_locals_types(self.locals);
        f.raw(self.body);
        f
    }
}

/// A memory operand at a constant offset with the given alignment (log2 bytes).
pub(crate) fn mem(offset: u32, align_log2: u32) -> MemArg {
    MemArg {
        offset: u64::from(offset),
        align: align_log2,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// Functions emitted only when some code needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Helper {
    Alloc,
    StrCmp,
    StrEq,
    Ln,
    Exp,
    Round,
    Itoa,
    Atoi,
}

impl Helper {
    fn sig(self) -> (&'static [ValType], &'static [ValType]) {
        use ValType::*;
        match self {
            Helper::Alloc => (&[I64, I32], &[I32]),
            Helper::StrCmp | Helper::StrEq => (&[I32, I32, I32, I32], &[I32]),
            Helper::Ln | Helper::Exp | Helper::Round => (&[F64], &[F64]),
            Helper::Itoa => (&[I64], &[I32, I32]),
            Helper::Atoi => (&[I32, I32], &[I64, I32]),
        }
    }
}

/// The data segment, addressed from `DATA_BASE`.
struct Data {
    bytes: Vec<u8>,
    strings: HashMap<Vec<u8>, u32>,
}

impl Data {
    fn reserve(&mut self, size: u32, align: u32) -> u32 {
        let align = align.max(1) as usize;
        let start = (DATA_BASE as usize + self.bytes.len()).next_multiple_of(align);
        self.bytes
            .resize(start - DATA_BASE as usize + size as usize, 0);
        start as u32
    }

    fn string(&mut self, s: &[u8]) -> (u32, u32) {
        if let Some(&addr) = self.strings.get(s) {
            return (addr, s.len() as u32);
        }
        let addr = self.reserve(s.len() as u32, 1);
        let at = (addr - DATA_BASE) as usize;
        self.bytes[at..at + s.len()].copy_from_slice(s);
        self.strings.insert(s.to_vec(), addr);
        (addr, s.len() as u32)
    }

    fn put_u32(&mut self, addr: u32, v: u32) {
        let at = (addr - DATA_BASE) as usize;
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u8(&mut self, addr: u32, v: u8) {
        self.bytes[(addr - DATA_BASE) as usize] = v;
    }
}

/// Where a value lives while the generated code computes with it.
#[derive(Clone, Copy, Debug)]
enum Val {
    I64(u32),
    F64(u32),
    I32(u32),
    /// A string: pointer and length locals.
    Str(u32, u32),
}

/// A value and its NULL flag (an i32 local, 1 when NULL). The value's locals hold garbage
/// when the flag is set, but never an out-of-bounds string: string locals are only ever
/// assigned strings that exist in memory, and memory never shrinks.
#[derive(Clone, Copy, Debug)]
struct Slot {
    null: u32,
    val: Val,
}

/// Slots of the inputs and of `Let`-bound variables while one function's code is generated.
#[derive(Default)]
struct Env {
    inputs: HashMap<usize, Slot>,
    vars: HashMap<u32, Slot>,
}

enum Operand {
    Local(u32),
    Const(u32),
}

pub(crate) struct Gen<'a> {
    abi: &'a Abi,
    types: Vec<(Vec<ValType>, Vec<ValType>)>,
    funcs: Vec<(u32, Option<Function>)>,
    helpers: HashMap<Helper, u32>,
    pending: Vec<Helper>,
    data: Data,
}

impl<'a> Gen<'a> {
    fn new(abi: &'a Abi) -> Gen<'a> {
        Gen {
            abi,
            types: Vec::new(),
            funcs: Vec::new(),
            helpers: HashMap::new(),
            pending: Vec::new(),
            data: Data {
                bytes: Vec::new(),
                strings: HashMap::new(),
            },
        }
    }

    fn type_index(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        if let Some(i) = self
            .types
            .iter()
            .position(|(p, r)| p == params && r == results)
        {
            return i as u32;
        }
        self.types.push((params.to_vec(), results.to_vec()));
        self.types.len() as u32 - 1
    }

    fn declare(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let ty = self.type_index(params, results);
        self.funcs.push((ty, None));
        self.funcs.len() as u32 - 1
    }

    fn define(&mut self, index: u32, f: Func) {
        self.funcs[index as usize].1 = Some(f.finish());
    }

    /// The index of a helper, declaring it (and queueing its body) on first use.
    pub(crate) fn helper(&mut self, h: Helper) -> u32 {
        if let Some(&i) = self.helpers.get(&h) {
            return i;
        }
        let (p, r) = h.sig();
        let i = self.declare(p, r);
        self.helpers.insert(h, i);
        self.pending.push(h);
        i
    }

    fn emit_helpers(&mut self) {
        while let Some(h) = self.pending.pop() {
            let index = self.helpers[&h];
            let (params, _) = h.sig();
            let mut f = Func::new(params);
            match h {
                Helper::Alloc => math::alloc(&mut f),
                Helper::StrCmp => math::str_cmp(&mut f),
                Helper::StrEq => math::str_eq(&mut f),
                Helper::Ln => math::ln(&mut f),
                Helper::Exp => math::exp(&mut f),
                Helper::Round => math::round(&mut f),
                Helper::Itoa => {
                    let alloc = self.helper(Helper::Alloc);
                    math::itoa(&mut f, alloc);
                }
                Helper::Atoi => math::atoi(&mut f),
            }
            self.define(index, f);
        }
    }

    /// `alloc(size, align)` with constant size and alignment, leaving the pointer on the stack.
    fn alloc_const(&mut self, f: &mut Func, size: u32, align: u32) {
        let alloc = self.helper(Helper::Alloc);
        f.ins()
            .i64_const(i64::from(size))
            .i32_const(align as i32)
            .call(alloc);
    }

    /// Writes a `result` into a fresh return area and returns its address from the function.
    fn emit_return(
        &mut self,
        f: &mut Func,
        layout: ResultLayout,
        disc: u8,
        payload: Option<(Operand, Operand)>,
    ) {
        let ret = f.local(ValType::I32);
        self.alloc_const(f, layout.area.size, layout.area.align);
        f.ins()
            .local_tee(ret)
            .i32_const(i32::from(disc))
            .i32_store8(mem(0, 0));
        if let Some((ptr, len)) = payload {
            let pl = self.abi.ptr_len;
            for (op, off) in [(ptr, pl.ptr), (len, pl.len)] {
                f.ins().local_get(ret);
                match op {
                    Operand::Local(l) => f.ins().local_get(l),
                    Operand::Const(c) => f.ins().i32_const(c as i32),
                };
                f.ins().i32_store(mem(layout.payload + off, 2));
            }
        }
        f.ins().local_get(ret).return_();
    }

    fn return_error(&mut self, f: &mut Func, layout: ResultLayout, message: &str) {
        let (addr, len) = self.data.string(message.as_bytes());
        self.emit_return(
            f,
            layout,
            layout.err_disc,
            Some((Operand::Const(addr), Operand::Const(len))),
        );
    }

    // ---------------------------------------------------------------- values and slots

    fn slot(f: &mut Func, ty: Option<Ty>) -> Slot {
        let null = f.local(ValType::I32);
        let val = match ty.unwrap_or(Ty::Bool) {
            Ty::Int | Ty::Ts => Val::I64(f.local(ValType::I64)),
            Ty::Float => Val::F64(f.local(ValType::F64)),
            Ty::Bool => Val::I32(f.local(ValType::I32)),
            Ty::Str => Val::Str(f.local(ValType::I32), f.local(ValType::I32)),
        };
        Slot { null, val }
    }

    fn get(f: &mut Func, v: Val) {
        match v {
            Val::I64(l) | Val::F64(l) | Val::I32(l) => {
                f.ins().local_get(l);
            }
            Val::Str(p, l) => {
                f.ins().local_get(p).local_get(l);
            }
        }
    }

    fn set(f: &mut Func, v: Val) {
        match v {
            Val::I64(l) | Val::F64(l) | Val::I32(l) => {
                f.ins().local_set(l);
            }
            Val::Str(p, l) => {
                f.ins().local_set(l).local_set(p);
            }
        }
    }

    fn copy(f: &mut Func, from: Slot, to: Slot) {
        f.ins().local_get(from.null).local_set(to.null);
        match (from.val, to.val) {
            (Val::Str(p, l), Val::Str(tp, tl)) => {
                f.ins()
                    .local_get(p)
                    .local_set(tp)
                    .local_get(l)
                    .local_set(tl);
            }
            (Val::I64(a), Val::I64(b))
            | (Val::F64(a), Val::F64(b))
            | (Val::I32(a), Val::I32(b)) => {
                f.ins().local_get(a).local_set(b);
            }
            // Only an always-NULL value can disagree in representation; its value is unused.
            _ => {}
        }
    }

    fn set_null(f: &mut Func, s: Slot, null: bool) {
        f.ins().i32_const(i32::from(null)).local_set(s.null);
    }

    /// Pushes `a <op> b` (an i32 truth value) for two non-NULL values of type `ty`.
    fn compare(&mut self, f: &mut Func, op: Cmp, ty: Ty, a: Val, b: Val) {
        Self::get(f, a);
        Self::get(f, b);
        match ty {
            Ty::Int | Ty::Ts => {
                let mut i = f.ins();
                match op {
                    Cmp::Eq => i.i64_eq(),
                    Cmp::Ne => i.i64_ne(),
                    Cmp::Lt => i.i64_lt_s(),
                    Cmp::Le => i.i64_le_s(),
                    Cmp::Gt => i.i64_gt_s(),
                    Cmp::Ge => i.i64_ge_s(),
                };
            }
            Ty::Float => {
                let mut i = f.ins();
                match op {
                    Cmp::Eq => i.f64_eq(),
                    Cmp::Ne => i.f64_ne(),
                    Cmp::Lt => i.f64_lt(),
                    Cmp::Le => i.f64_le(),
                    Cmp::Gt => i.f64_gt(),
                    Cmp::Ge => i.f64_ge(),
                };
            }
            Ty::Bool => {
                let mut i = f.ins();
                match op {
                    Cmp::Eq => i.i32_eq(),
                    Cmp::Ne => i.i32_ne(),
                    Cmp::Lt => i.i32_lt_u(),
                    Cmp::Le => i.i32_le_u(),
                    Cmp::Gt => i.i32_gt_u(),
                    Cmp::Ge => i.i32_ge_u(),
                };
            }
            Ty::Str => match op {
                Cmp::Eq | Cmp::Ne => {
                    let eq = self.helper(Helper::StrEq);
                    f.ins().call(eq);
                    if op == Cmp::Ne {
                        f.ins().i32_eqz();
                    }
                }
                _ => {
                    let cmp = self.helper(Helper::StrCmp);
                    let mut i = f.ins();
                    i.call(cmp).i32_const(0);
                    match op {
                        Cmp::Lt => i.i32_lt_s(),
                        Cmp::Le => i.i32_le_s(),
                        Cmp::Gt => i.i32_gt_s(),
                        _ => i.i32_ge_s(),
                    };
                }
            },
        }
    }

    // ---------------------------------------------------------------- expressions

    fn eval(&mut self, f: &mut Func, env: &mut Env, n: &Node) -> GenResult<Slot> {
        let ty = n.ty;
        Ok(match &n.kind {
            K::Input(i) => *env
                .inputs
                .get(i)
                .ok_or_else(|| format!("input #{i} has no slot"))?,
            K::Var(v) => *env
                .vars
                .get(v)
                .ok_or_else(|| format!("variable {v} is unbound"))?,
            K::Let(v, value, body) => {
                let s = self.eval(f, env, value)?;
                env.vars.insert(*v, s);
                self.eval(f, env, body)?
            }
            K::Null => {
                let s = Self::slot(f, ty);
                Self::set_null(f, s, true);
                s
            }
            K::Int(v) => {
                let s = Self::slot(f, ty);
                f.ins().i64_const(*v);
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::Float(v) => {
                let s = Self::slot(f, ty);
                f.ins().f64_const((*v).into());
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::Bool(b) => {
                let s = Self::slot(f, ty);
                f.ins().i32_const(i32::from(*b));
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::Str(text) => {
                let s = Self::slot(f, ty);
                let (addr, len) = self.data.string(text.as_bytes());
                f.ins().i32_const(addr as i32).i32_const(len as i32);
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::Arith(op, l, r) => {
                let a = self.eval(f, env, l)?;
                let b = self.eval(f, env, r)?;
                self.arith(f, ty, *op, a, b)?
            }
            K::Neg(x) => {
                let a = self.eval(f, env, x)?;
                let s = Self::slot(f, ty);
                f.ins().local_get(a.null).local_set(s.null);
                match (a.val, s.val) {
                    (Val::I64(v), Val::I64(o)) => {
                        f.ins().i64_const(0).local_get(v).i64_sub().local_set(o);
                    }
                    (Val::F64(v), Val::F64(o)) => {
                        f.ins().local_get(v).f64_neg().local_set(o);
                    }
                    _ => return Err("negation of a non-number".into()),
                }
                s
            }
            K::Cmp(op, l, r) => {
                let a = self.eval(f, env, l)?;
                let b = self.eval(f, env, r)?;
                let operand_ty = l.ty.ok_or("comparison of untyped operands")?;
                let s = Self::slot(f, ty);
                f.ins()
                    .local_get(a.null)
                    .local_get(b.null)
                    .i32_or()
                    .local_set(s.null);
                // Skip the comparison when either side is NULL: strings compare in a loop.
                f.ins()
                    .local_get(s.null)
                    .if_(BlockType::Result(ValType::I32))
                    .i32_const(0)
                    .else_();
                self.compare(f, *op, operand_ty, a.val, b.val);
                f.ins().end();
                Self::set(f, s.val);
                s
            }
            K::And(l, r) | K::Or(l, r) => {
                let is_and = matches!(n.kind, K::And(..));
                let a = self.eval(f, env, l)?;
                let b = self.eval(f, env, r)?;
                let (Val::I32(av), Val::I32(bv)) = (a.val, b.val) else {
                    return Err("AND/OR of non-booleans".into());
                };
                let s = Self::slot(f, ty);
                let Val::I32(sv) = s.val else {
                    return Err("AND/OR result is not boolean".into());
                };
                // `decided`: a side that alone fixes the result (a FALSE for AND, a TRUE for OR).
                let decided = f.local(ValType::I32);
                for (null, v) in [(a.null, av), (b.null, bv)] {
                    f.ins().local_get(null).i32_eqz().local_get(v);
                    if is_and {
                        f.ins().i32_eqz();
                    }
                    f.ins().i32_and();
                }
                f.ins().i32_or().local_tee(decided);
                // AND: value = not decided; OR: value = decided.
                if is_and {
                    f.ins().i32_eqz();
                }
                f.ins().local_set(sv);
                f.ins()
                    .local_get(a.null)
                    .local_get(b.null)
                    .i32_or()
                    .local_get(decided)
                    .i32_eqz()
                    .i32_and()
                    .local_set(s.null);
                s
            }
            K::Not(x) => {
                let a = self.eval(f, env, x)?;
                let s = Self::slot(f, ty);
                let (Val::I32(av), Val::I32(sv)) = (a.val, s.val) else {
                    return Err("NOT of a non-boolean".into());
                };
                f.ins().local_get(a.null).local_set(s.null);
                f.ins().local_get(av).i32_eqz().local_set(sv);
                s
            }
            K::IsNull(x) => {
                let a = self.eval(f, env, x)?;
                let s = Self::slot(f, ty);
                f.ins().local_get(a.null);
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::IsBool(x, want) => {
                let a = self.eval(f, env, x)?;
                let Val::I32(av) = a.val else {
                    return Err("IS TRUE of a non-boolean".into());
                };
                let s = Self::slot(f, ty);
                f.ins().local_get(a.null).i32_eqz().local_get(av);
                if !*want {
                    f.ins().i32_eqz();
                }
                f.ins().i32_and();
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::NotDistinct(l, r) => {
                let a = self.eval(f, env, l)?;
                let b = self.eval(f, env, r)?;
                let operand_ty = l.ty.ok_or("comparison of untyped operands")?;
                let s = Self::slot(f, ty);
                f.ins()
                    .local_get(a.null)
                    .local_get(b.null)
                    .i32_or()
                    .if_(BlockType::Result(ValType::I32))
                    .local_get(a.null)
                    .local_get(b.null)
                    .i32_and()
                    .else_();
                self.compare(f, Cmp::Eq, operand_ty, a.val, b.val);
                f.ins().end();
                Self::set(f, s.val);
                Self::set_null(f, s, false);
                s
            }
            K::Case(arms, otherwise) => {
                let s = Self::slot(f, ty);
                f.ins().block(BlockType::Empty);
                for (cond, result) in arms {
                    let c = self.eval(f, env, cond)?;
                    let Val::I32(cv) = c.val else {
                        return Err("WHEN of a non-boolean".into());
                    };
                    f.ins()
                        .local_get(c.null)
                        .i32_eqz()
                        .local_get(cv)
                        .i32_and()
                        .if_(BlockType::Empty);
                    let r = self.eval(f, env, result)?;
                    Self::copy(f, r, s);
                    f.ins().br(1).end();
                }
                match otherwise {
                    Some(e) => {
                        let r = self.eval(f, env, e)?;
                        Self::copy(f, r, s);
                    }
                    None => Self::set_null(f, s, true),
                }
                f.ins().end();
                s
            }
            K::Coalesce(args) => {
                let s = Self::slot(f, ty);
                f.ins().block(BlockType::Empty);
                for arg in args {
                    let a = self.eval(f, env, arg)?;
                    f.ins().local_get(a.null).i32_eqz().if_(BlockType::Empty);
                    Self::copy(f, a, s);
                    f.ins().br(1).end();
                }
                Self::set_null(f, s, true);
                f.ins().end();
                s
            }
            K::MinMax(greatest, args) => {
                let ty = ty.ok_or("LEAST/GREATEST without a type")?;
                let s = Self::slot(f, Some(ty));
                Self::set_null(f, s, true);
                for arg in args {
                    let a = self.eval(f, env, arg)?;
                    // Take `a` when it is not NULL and the result so far is NULL or worse.
                    f.ins()
                        .local_get(a.null)
                        .i32_eqz()
                        .if_(BlockType::Empty)
                        .local_get(s.null)
                        .if_(BlockType::Result(ValType::I32))
                        .i32_const(1)
                        .else_();
                    let op = if *greatest { Cmp::Gt } else { Cmp::Lt };
                    self.compare(f, op, ty, a.val, s.val);
                    f.ins().end().if_(BlockType::Empty);
                    Self::copy(f, a, s);
                    f.ins().end().end();
                }
                s
            }
            K::Math(m, x) => {
                let a = self.eval(f, env, x)?;
                self.math(f, ty, *m, a)?
            }
            K::RoundTo(x, digits) => {
                let a = self.eval(f, env, x)?;
                let (Val::F64(v), s) = (a.val, Self::slot(f, ty)) else {
                    return Err("ROUND of a non-float".into());
                };
                let Val::F64(out) = s.val else {
                    return Err("ROUND result is not a float".into());
                };
                let round = self.helper(Helper::Round);
                let scale = 10f64.powi(digits.abs());
                f.ins().local_get(a.null).local_set(s.null);
                if *digits >= 0 {
                    // round(v·10ᵈ)/10ᵈ, or v itself where v·10ᵈ is not finite.
                    let y = f.local(ValType::F64);
                    f.ins()
                        .local_get(v)
                        .f64_const(scale.into())
                        .f64_mul()
                        .local_tee(y)
                        .call(round)
                        .f64_const(scale.into())
                        .f64_div()
                        .local_get(v)
                        .local_get(y)
                        .f64_abs()
                        .f64_const(f64::INFINITY.into())
                        .f64_lt()
                        .select()
                        .local_set(out);
                } else {
                    f.ins()
                        .local_get(v)
                        .f64_const(scale.into())
                        .f64_div()
                        .call(round)
                        .f64_const(scale.into())
                        .f64_mul()
                        .local_set(out);
                }
                s
            }
            K::Convert(x) => {
                let a = self.eval(f, env, x)?;
                self.convert(f, x.ty, ty, a)?
            }
        })
    }

    fn arith(
        &mut self,
        f: &mut Func,
        ty: Option<Ty>,
        op: Arith,
        a: Slot,
        b: Slot,
    ) -> GenResult<Slot> {
        let s = Self::slot(f, ty);
        f.ins()
            .local_get(a.null)
            .local_get(b.null)
            .i32_or()
            .local_set(s.null);
        match (a.val, b.val, s.val) {
            (Val::I64(x), Val::I64(y), Val::I64(o)) => {
                match op {
                    Arith::Add => {
                        f.ins().local_get(x).local_get(y).i64_add();
                    }
                    Arith::Sub => {
                        f.ins().local_get(x).local_get(y).i64_sub();
                    }
                    Arith::Mul => {
                        f.ins().local_get(x).local_get(y).i64_mul();
                    }
                    Arith::Div | Arith::Rem => {
                        // x / 0 is NULL; i64::MIN / -1 wraps (wasm would trap), and
                        // i64::MIN % -1 is 0, which wasm's rem_s already gives.
                        f.ins()
                            .local_get(s.null)
                            .local_get(y)
                            .i64_eqz()
                            .i32_or()
                            .local_set(s.null);
                        f.ins()
                            .local_get(y)
                            .i64_eqz()
                            .if_(BlockType::Result(ValType::I64))
                            .i64_const(0)
                            .else_();
                        if op == Arith::Div {
                            f.ins()
                                .local_get(y)
                                .i64_const(-1)
                                .i64_eq()
                                .if_(BlockType::Result(ValType::I64))
                                .i64_const(0)
                                .local_get(x)
                                .i64_sub()
                                .else_()
                                .local_get(x)
                                .local_get(y)
                                .i64_div_s()
                                .end();
                        } else {
                            f.ins().local_get(x).local_get(y).i64_rem_s();
                        }
                        f.ins().end();
                    }
                }
                f.ins().local_set(o);
            }
            (Val::F64(x), Val::F64(y), Val::F64(o)) => {
                let mut i = f.ins();
                i.local_get(x).local_get(y);
                match op {
                    Arith::Add => i.f64_add(),
                    Arith::Sub => i.f64_sub(),
                    Arith::Mul => i.f64_mul(),
                    Arith::Div => i.f64_div(),
                    Arith::Rem => return Err("float64 modulo".into()),
                };
                i.local_set(o);
                if op == Arith::Div {
                    f.ins()
                        .local_get(s.null)
                        .local_get(y)
                        .f64_const(0.0.into())
                        .f64_eq()
                        .i32_or()
                        .local_set(s.null);
                }
            }
            _ => return Err("arithmetic on mismatched operands".into()),
        }
        Ok(s)
    }

    fn math(&mut self, f: &mut Func, ty: Option<Ty>, m: Math, a: Slot) -> GenResult<Slot> {
        let s = Self::slot(f, ty);
        f.ins().local_get(a.null).local_set(s.null);
        match (a.val, s.val) {
            (Val::I64(v), Val::I64(o)) => match m {
                Math::Abs => {
                    f.ins()
                        .i64_const(0)
                        .local_get(v)
                        .i64_sub()
                        .local_get(v)
                        .local_get(v)
                        .i64_const(0)
                        .i64_lt_s()
                        .select()
                        .local_set(o);
                }
                _ => return Err(format!("{m:?} of an int64")),
            },
            (Val::F64(v), Val::F64(o)) => {
                match m {
                    Math::Abs => {
                        f.ins().local_get(v).f64_abs();
                    }
                    Math::Floor => {
                        f.ins().local_get(v).f64_floor();
                    }
                    Math::Ceil => {
                        f.ins().local_get(v).f64_ceil();
                    }
                    Math::Sqrt => {
                        // NULL unless v >= 0 (which also rules out NaN).
                        f.ins()
                            .local_get(s.null)
                            .local_get(v)
                            .f64_const(0.0.into())
                            .f64_ge()
                            .i32_eqz()
                            .i32_or()
                            .local_set(s.null)
                            .local_get(v)
                            .f64_sqrt();
                    }
                    Math::Ln => {
                        let ln = self.helper(Helper::Ln);
                        f.ins()
                            .local_get(s.null)
                            .local_get(v)
                            .f64_const(0.0.into())
                            .f64_gt()
                            .i32_eqz()
                            .i32_or()
                            .local_set(s.null)
                            .local_get(v)
                            .call(ln);
                    }
                    Math::Exp => {
                        let exp = self.helper(Helper::Exp);
                        f.ins().local_get(v).call(exp);
                    }
                    Math::Round => {
                        let round = self.helper(Helper::Round);
                        f.ins().local_get(v).call(round);
                    }
                }
                f.ins().local_set(o);
            }
            _ => return Err(format!("{m:?} of a non-number")),
        }
        Ok(s)
    }

    fn convert(
        &mut self,
        f: &mut Func,
        from: Option<Ty>,
        to: Option<Ty>,
        a: Slot,
    ) -> GenResult<Slot> {
        let s = Self::slot(f, to);
        f.ins().local_get(a.null).local_set(s.null);
        let (Some(from), Some(to)) = (from, to) else {
            Self::set_null(f, s, true);
            return Ok(s);
        };
        match (from, to, a.val, s.val) {
            (x, y, _, _) if x == y => Self::copy(f, a, s),
            (Ty::Int | Ty::Ts, Ty::Int | Ty::Ts, Val::I64(v), Val::I64(o)) => {
                f.ins().local_get(v).local_set(o);
            }
            (Ty::Int, Ty::Float, Val::I64(v), Val::F64(o)) => {
                f.ins().local_get(v).f64_convert_i64_s().local_set(o);
            }
            (Ty::Float, Ty::Int, Val::F64(v), Val::I64(o)) => {
                // Round half to even (PostgreSQL), NULL outside int64's range or for NaN.
                let r = f.local(ValType::F64);
                f.ins()
                    .local_get(v)
                    .f64_nearest()
                    .local_tee(r)
                    .i64_trunc_sat_f64_s()
                    .local_set(o)
                    .local_get(r)
                    .f64_const((-9_223_372_036_854_775_808.0f64).into())
                    .f64_ge()
                    .local_get(r)
                    .f64_const(9_223_372_036_854_775_808.0f64.into())
                    .f64_lt()
                    .i32_and()
                    .i32_eqz()
                    .local_get(s.null)
                    .i32_or()
                    .local_set(s.null);
            }
            (Ty::Int, Ty::Bool, Val::I64(v), Val::I32(o)) => {
                f.ins().local_get(v).i64_const(0).i64_ne().local_set(o);
            }
            (Ty::Bool, Ty::Int, Val::I32(v), Val::I64(o)) => {
                f.ins().local_get(v).i64_extend_i32_u().local_set(o);
            }
            (Ty::Bool, Ty::Str, Val::I32(v), Val::Str(op, ol)) => {
                let (t, tl) = self.data.string(b"true");
                let (fa, fl) = self.data.string(b"false");
                f.ins()
                    .i32_const(t as i32)
                    .i32_const(fa as i32)
                    .local_get(v)
                    .select()
                    .local_set(op)
                    .i32_const(tl as i32)
                    .i32_const(fl as i32)
                    .local_get(v)
                    .select()
                    .local_set(ol);
            }
            (Ty::Int, Ty::Str, Val::I64(v), Val::Str(op, ol)) => {
                let itoa = self.helper(Helper::Itoa);
                // Format only non-NULL values: each formatting takes heap space.
                f.ins().local_get(s.null).i32_eqz().if_(BlockType::Empty);
                f.ins().local_get(v).call(itoa).local_set(ol).local_set(op);
                f.ins().end();
            }
            (Ty::Str, Ty::Int, Val::Str(p, l), Val::I64(o)) => {
                let atoi = self.helper(Helper::Atoi);
                let ok = f.local(ValType::I32);
                f.ins()
                    .local_get(p)
                    .local_get(l)
                    .call(atoi)
                    .local_set(ok)
                    .local_set(o)
                    .local_get(ok)
                    .i32_eqz()
                    .local_get(s.null)
                    .i32_or()
                    .local_set(s.null);
            }
            _ => return Err(format!("no conversion from {from:?} to {to:?}")),
        }
        Ok(s)
    }

    // ---------------------------------------------------------------- exports

    /// `describe`'s answer never changes, so it is laid out in the data segment once.
    fn describe_data(&mut self, spec: &Spec<'_>) -> u32 {
        let abi = self.abi;
        let list = |g: &mut Self, ports: &[Port<'_>]| -> (u32, u32) {
            let arr = g
                .data
                .reserve(abi.field.size * ports.len() as u32, abi.field.align);
            for (i, p) in ports.iter().enumerate() {
                let (addr, len) = g.data.string(p.name.as_bytes());
                let at = arr + i as u32 * abi.field.size;
                g.data.put_u32(at + abi.field_name + abi.ptr_len.ptr, addr);
                g.data.put_u32(at + abi.field_name + abi.ptr_len.len, len);
                g.data
                    .put_u8(at + abi.field_type, abi.value_type_disc(p.ty));
            }
            (arr, ports.len() as u32)
        };
        let inputs = list(self, &spec.inputs);
        let outputs = list(self, &spec.outputs);
        let sig = self.data.reserve(abi.signature.size, abi.signature.align);
        for ((ptr, len), off) in [
            (inputs, abi.signature_inputs),
            (outputs, abi.signature_outputs),
        ] {
            self.data.put_u32(sig + off + abi.ptr_len.ptr, ptr);
            self.data.put_u32(sig + off + abi.ptr_len.len, len);
        }
        sig
    }

    fn realloc_body(&mut self) -> Func {
        use ValType::I32;
        let mut f = Func::new(&[I32, I32, I32, I32]);
        let (old_ptr, old_size, align, new_size) = (0, 1, 2, 3);
        let p = f.local(I32);
        let alloc = self.helper(Helper::Alloc);
        // Shrinking keeps the block; growing copies, as a bump allocator cannot extend in place.
        f.ins()
            .local_get(old_ptr)
            .if_(BlockType::Empty)
            .local_get(new_size)
            .local_get(old_size)
            .i32_le_u()
            .if_(BlockType::Empty)
            .local_get(old_ptr)
            .return_()
            .end()
            .end()
            .local_get(new_size)
            .i64_extend_i32_u()
            .local_get(align)
            .call(alloc)
            .local_set(p)
            .local_get(old_ptr)
            .if_(BlockType::Empty)
            .local_get(p)
            .local_get(old_ptr)
            .local_get(old_size)
            .memory_copy(0, 0)
            .end()
            .local_get(p);
        f
    }

    fn configure_body(&mut self) -> Func {
        let abi = self.abi;
        let layout = abi.configure_result;
        let mut f = Func::new(&abi.configure_sig.params);
        let (ptr, len) = (0, 1);
        f.ins().local_get(len).i32_eqz().if_(BlockType::Empty);
        self.emit_return(&mut f, layout, layout.ok_disc, None);
        f.ins().end();
        // Name the first key in the error: "unknown configuration key `KEY`: …".
        let (pre, pre_len) = self.data.string(b"unknown configuration key `");
        let (suf, suf_len) = self
            .data
            .string(b"`: a SQL transform takes no configuration");
        let (key, key_len, total, buf) = (
            f.local(ValType::I32),
            f.local(ValType::I32),
            f.local(ValType::I32),
            f.local(ValType::I32),
        );
        let alloc = self.helper(Helper::Alloc);
        f.ins()
            .local_get(ptr)
            .i32_load(mem(abi.config_key + abi.ptr_len.ptr, 2))
            .local_set(key)
            .local_get(ptr)
            .i32_load(mem(abi.config_key + abi.ptr_len.len, 2))
            .local_tee(key_len)
            .i32_const((pre_len + suf_len) as i32)
            .i32_add()
            .local_tee(total)
            .i64_extend_i32_u()
            .i32_const(1)
            .call(alloc)
            .local_tee(buf)
            .i32_const(pre as i32)
            .i32_const(pre_len as i32)
            .memory_copy(0, 0)
            .local_get(buf)
            .i32_const(pre_len as i32)
            .i32_add()
            .local_get(key)
            .local_get(key_len)
            .memory_copy(0, 0)
            .local_get(buf)
            .i32_const(pre_len as i32)
            .i32_add()
            .local_get(key_len)
            .i32_add()
            .i32_const(suf as i32)
            .i32_const(suf_len as i32)
            .memory_copy(0, 0);
        self.emit_return(
            &mut f,
            layout,
            layout.err_disc,
            Some((Operand::Local(buf), Operand::Local(total))),
        );
        f
    }

    fn arity_message(spec: &Spec<'_>, what: &str) -> String {
        let names: Vec<&str> = spec.inputs.iter().map(|p| p.name).collect();
        format!(
            "expected {} {what}{}{}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            if names.is_empty() {
                String::new()
            } else {
                format!(": {}", names.join(", "))
            }
        )
    }

    fn compute_body(&mut self, spec: &Spec<'_>) -> GenResult<Func> {
        let abi = self.abi;
        let layout = abi.compute_result;
        let mut f = Func::new(&abi.compute_sig.params);
        let (ptr, len) = (0, 1);
        let vsize = abi.value.size;

        f.ins()
            .local_get(len)
            .i32_const(spec.inputs.len() as i32)
            .i32_ne()
            .if_(BlockType::Empty);
        self.return_error(&mut f, layout, &Self::arity_message(spec, "input"));
        f.ins().end();

        let mut env = Env::default();
        for (k, port) in spec.inputs.iter().enumerate() {
            let base = k as u32 * vsize;
            let s = Self::slot(&mut f, Some(port.ty));
            let disc = f.local(ValType::I32);
            f.ins()
                .local_get(ptr)
                .i32_load8_u(mem(base, 0))
                .local_tee(disc)
                .i32_const(i32::from(abi.value_null_disc))
                .i32_eq()
                .local_tee(s.null)
                .local_get(disc)
                .i32_const(i32::from(abi.value_disc(port.ty)))
                .i32_eq()
                .i32_or()
                .i32_eqz()
                .if_(BlockType::Empty);
            self.return_error(
                &mut f,
                layout,
                &format!(
                    "input `{}` must be {} or null",
                    port.name,
                    crate::check::type_name(Some(port.ty))
                ),
            );
            f.ins().end();
            self.load_value(&mut f, ptr, base + abi.value_payload, s.val);
            env.inputs.insert(port.available_index, s);
        }

        let mut outs = Vec::with_capacity(spec.roots.len());
        for root in spec.roots {
            outs.push(self.eval(&mut f, &mut env, root)?);
        }

        let out = f.local(ValType::I32);
        self.alloc_const(&mut f, vsize * outs.len() as u32, abi.value.align);
        f.ins().local_set(out);
        for (j, (s, port)) in outs.iter().zip(&spec.outputs).enumerate() {
            let base = j as u32 * vsize;
            f.ins()
                .local_get(s.null)
                .if_(BlockType::Empty)
                .local_get(out)
                .i32_const(i32::from(abi.value_null_disc))
                .i32_store8(mem(base, 0))
                .else_()
                .local_get(out)
                .i32_const(i32::from(abi.value_disc(port.ty)))
                .i32_store8(mem(base, 0));
            self.store_value(&mut f, out, base + abi.value_payload, s.val, None);
            f.ins().end();
        }
        self.emit_return(
            &mut f,
            layout,
            layout.ok_disc,
            Some((Operand::Local(out), Operand::Const(outs.len() as u32))),
        );
        Ok(f)
    }

    /// Loads a value of `v`'s type from `base_local + offset`.
    fn load_value(&mut self, f: &mut Func, base_local: u32, offset: u32, v: Val) {
        let pl = self.abi.ptr_len;
        match v {
            Val::I64(o) => {
                f.ins()
                    .local_get(base_local)
                    .i64_load(mem(offset, 3))
                    .local_set(o);
            }
            Val::F64(o) => {
                f.ins()
                    .local_get(base_local)
                    .f64_load(mem(offset, 3))
                    .local_set(o);
            }
            // Any nonzero byte is true; normalize so boolean code can rely on 0/1.
            Val::I32(o) => {
                f.ins()
                    .local_get(base_local)
                    .i32_load8_u(mem(offset, 0))
                    .i32_const(0)
                    .i32_ne()
                    .local_set(o);
            }
            Val::Str(p, l) => {
                f.ins()
                    .local_get(base_local)
                    .i32_load(mem(offset + pl.ptr, 2))
                    .local_set(p)
                    .local_get(base_local)
                    .i32_load(mem(offset + pl.len, 2))
                    .local_set(l);
            }
        }
    }

    /// Stores `v` at `base_local + offset`; with `zero_if`, stores zero when that flag is set.
    fn store_value(
        &mut self,
        f: &mut Func,
        base_local: u32,
        offset: u32,
        v: Val,
        zero_if: Option<u32>,
    ) {
        let pl = self.abi.ptr_len;
        // Pushes the local, or `select(zero, local, null)` when NULL rows must hold zero.
        let operand = |f: &mut Func, x: u32, zero: &dyn Fn(&mut InstructionSink<'_>)| {
            let mut i = f.ins();
            match zero_if {
                Some(null) => {
                    zero(&mut i);
                    i.local_get(x).local_get(null).select();
                }
                None => {
                    i.local_get(x);
                }
            }
        };
        match v {
            Val::I64(x) => {
                f.ins().local_get(base_local);
                operand(f, x, &|i| {
                    i.i64_const(0);
                });
                f.ins().i64_store(mem(offset, 3));
            }
            Val::F64(x) => {
                f.ins().local_get(base_local);
                operand(f, x, &|i| {
                    i.f64_const(0.0.into());
                });
                f.ins().f64_store(mem(offset, 3));
            }
            Val::I32(x) => {
                f.ins().local_get(base_local);
                operand(f, x, &|i| {
                    i.i32_const(0);
                });
                f.ins().i32_store8(mem(offset, 0));
            }
            Val::Str(p, l) => {
                for (x, off) in [(p, pl.ptr), (l, pl.len)] {
                    f.ins().local_get(base_local);
                    operand(f, x, &|i| {
                        i.i32_const(0);
                    });
                    f.ins().i32_store(mem(offset + off, 2));
                }
            }
        }
    }

    fn batch_body(&mut self, spec: &Spec<'_>) -> GenResult<Func> {
        use ValType::I32;
        let abi = self.abi;
        let layout = abi.batch_result;
        let mut f = Func::new(&abi.batch_sig.params);
        let (rows, ptr, len) = (0, 1, 2);
        let csize = abi.column.size;
        let pl = abi.ptr_len;
        let data_list = abi.column_data + abi.column_data_payload;

        f.ins()
            .local_get(len)
            .i32_const(spec.inputs.len() as i32)
            .i32_ne()
            .if_(BlockType::Empty);
        self.return_error(&mut f, layout, &Self::arity_message(spec, "input column"));
        f.ins().end();

        // Bytes of a validity bitmap covering `rows` rows.
        let bitmap_len = f.local(I32);
        f.ins()
            .local_get(rows)
            .i64_extend_i32_u()
            .i64_const(7)
            .i64_add()
            .i64_const(3)
            .i64_shr_u()
            .i32_wrap_i64()
            .local_set(bitmap_len);

        struct In {
            data: u32,
            valid: u32,
            has_valid: u32,
            slot: Slot,
            elem: u32,
        }
        let mut ins = Vec::with_capacity(spec.inputs.len());
        for (k, port) in spec.inputs.iter().enumerate() {
            let base = k as u32 * csize;
            let name = port.name;
            let ty_name = crate::check::type_name(Some(port.ty));
            f.ins()
                .local_get(ptr)
                .i32_load8_u(mem(base + abi.column_data, 0))
                .i32_const(i32::from(abi.column_data_disc(port.ty)))
                .i32_ne()
                .if_(BlockType::Empty);
            self.return_error(
                &mut f,
                layout,
                &format!("input column `{name}` must be {ty_name}"),
            );
            f.ins().end();
            let (data, valid, has_valid) = (f.local(I32), f.local(I32), f.local(I32));
            f.ins()
                .local_get(ptr)
                .i32_load(mem(base + data_list + pl.ptr, 2))
                .local_set(data)
                .local_get(ptr)
                .i32_load(mem(base + data_list + pl.len, 2))
                .local_get(rows)
                .i32_ne()
                .if_(BlockType::Empty);
            self.return_error(
                &mut f,
                layout,
                &format!("input column `{name}` must hold one entry per row"),
            );
            f.ins().end();
            // An empty bitmap means no NULLs; a shorter one than the rows need is an error.
            f.ins()
                .local_get(ptr)
                .i32_load(mem(base + abi.column_validity + pl.ptr, 2))
                .local_set(valid)
                .local_get(ptr)
                .i32_load(mem(base + abi.column_validity + pl.len, 2))
                .local_tee(has_valid)
                .if_(BlockType::Empty)
                .local_get(has_valid)
                .local_get(bitmap_len)
                .i32_lt_u()
                .if_(BlockType::Empty);
            self.return_error(
                &mut f,
                layout,
                &format!("validity bitmap of input column `{name}` is shorter than the rows"),
            );
            f.ins().end().end();
            let slot = Self::slot(&mut f, Some(port.ty));
            ins.push(In {
                data,
                valid,
                has_valid,
                slot,
                elem: abi.elem(port.ty).size,
            });
        }

        struct Out {
            data: u32,
            valid: u32,
            any_null: u32,
            elem: u32,
        }
        let alloc = self.helper(Helper::Alloc);
        let mut outs = Vec::with_capacity(spec.outputs.len());
        for port in &spec.outputs {
            let elem = abi.elem(port.ty);
            let (data, valid, any_null) = (f.local(I32), f.local(I32), f.local(I32));
            f.ins()
                .local_get(rows)
                .i64_extend_i32_u()
                .i64_const(i64::from(elem.size))
                .i64_mul()
                .i32_const(elem.align as i32)
                .call(alloc)
                .local_set(data)
                .local_get(bitmap_len)
                .i64_extend_i32_u()
                .i32_const(1)
                .call(alloc)
                .local_tee(valid)
                .i32_const(0)
                .local_get(bitmap_len)
                .memory_fill(0)
                .i32_const(0)
                .local_set(any_null);
            outs.push(Out {
                data,
                valid,
                any_null,
                elem: elem.size,
            });
        }

        let row = f.local(I32);
        let addr = f.local(I32);
        f.ins()
            .i32_const(0)
            .local_set(row)
            .block(BlockType::Empty)
            .loop_(BlockType::Empty)
            .local_get(row)
            .local_get(rows)
            .i32_ge_u()
            .br_if(1);

        let mut env = Env::default();
        for (input, port) in ins.iter().zip(&spec.inputs) {
            f.ins()
                .local_get(input.has_valid)
                .if_(BlockType::Result(I32))
                .local_get(input.valid)
                .local_get(row)
                .i32_const(3)
                .i32_shr_u()
                .i32_add()
                .i32_load8_u(mem(0, 0))
                .local_get(row)
                .i32_const(7)
                .i32_and()
                .i32_shr_u()
                .i32_const(1)
                .i32_and()
                .i32_eqz()
                .else_()
                .i32_const(0)
                .end()
                .local_set(input.slot.null)
                .local_get(input.data)
                .local_get(row)
                .i32_const(input.elem as i32)
                .i32_mul()
                .i32_add()
                .local_set(addr);
            self.load_value(&mut f, addr, 0, input.slot.val);
            env.inputs.insert(port.available_index, input.slot);
        }

        let mut results = Vec::with_capacity(spec.roots.len());
        for root in spec.roots {
            results.push(self.eval(&mut f, &mut env, root)?);
        }

        for (out, s) in outs.iter().zip(&results) {
            f.ins()
                .local_get(out.data)
                .local_get(row)
                .i32_const(out.elem as i32)
                .i32_mul()
                .i32_add()
                .local_set(addr);
            // NULL rows hold zero (or the empty string) by the WIT's convention.
            self.store_value(&mut f, addr, 0, s.val, Some(s.null));
            f.ins()
                .local_get(out.valid)
                .local_get(row)
                .i32_const(3)
                .i32_shr_u()
                .i32_add()
                .local_tee(addr)
                .local_get(addr)
                .i32_load8_u(mem(0, 0))
                .local_get(s.null)
                .i32_eqz()
                .local_get(row)
                .i32_const(7)
                .i32_and()
                .i32_shl()
                .i32_or()
                .i32_store8(mem(0, 0))
                .local_get(out.any_null)
                .local_get(s.null)
                .i32_or()
                .local_set(out.any_null);
        }
        f.ins()
            .local_get(row)
            .i32_const(1)
            .i32_add()
            .local_set(row)
            .br(0)
            .end()
            .end();

        let cols = f.local(I32);
        self.alloc_const(&mut f, csize * outs.len() as u32, abi.column.align);
        f.ins().local_set(cols);
        for (j, (out, port)) in outs.iter().zip(&spec.outputs).enumerate() {
            let base = j as u32 * csize;
            // The bitmap is sent only when some row is NULL: empty means "all valid".
            f.ins()
                .local_get(cols)
                .i32_const(i32::from(abi.column_data_disc(port.ty)))
                .i32_store8(mem(base + abi.column_data, 0))
                .local_get(cols)
                .local_get(out.data)
                .i32_store(mem(base + data_list + pl.ptr, 2))
                .local_get(cols)
                .local_get(rows)
                .i32_store(mem(base + data_list + pl.len, 2))
                .local_get(cols)
                .local_get(out.valid)
                .i32_store(mem(base + abi.column_validity + pl.ptr, 2))
                .local_get(cols)
                .local_get(bitmap_len)
                .i32_const(0)
                .local_get(out.any_null)
                .select()
                .i32_store(mem(base + abi.column_validity + pl.len, 2));
        }
        self.emit_return(
            &mut f,
            layout,
            layout.ok_disc,
            Some((Operand::Local(cols), Operand::Const(outs.len() as u32))),
        );
        Ok(f)
    }
}

/// Checks the layout facts the generated code hard-wires (byte-wide discriminants and enum,
/// wasm32 pointer pairs); the offsets themselves all come from the WIT.
fn check_assumptions(abi: &Abi) -> GenResult<()> {
    let sigs = [
        (&abi.describe_sig, 0),
        (&abi.configure_sig, 2),
        (&abi.compute_sig, 2),
        (&abi.batch_sig, 3),
    ];
    for (sig, params) in sigs {
        if sig.params.len() != params
            || sig.params.iter().any(|p| *p != ValType::I32)
            || sig.results != [ValType::I32]
        {
            return Err(format!("unexpected core signature {sig:?}"));
        }
    }
    if abi.ptr_len_size.size != 8 || abi.ptr_len_size.align != 4 {
        return Err("strings and lists are not (i32, i32) pairs".into());
    }
    if abi.value_type_width != 1 {
        return Err("`value-type` is not one byte wide".into());
    }
    Ok(())
}

pub(crate) fn build(world: &WorldInfo, spec: &Spec<'_>) -> GenResult<Vec<u8>> {
    let abi = &world.abi;
    check_assumptions(abi)?;
    let mut g = Gen::new(abi);

    // Fixed function indices first; helpers are appended as code asks for them.
    use ValType::I32;
    let realloc = g.declare(&[I32, I32, I32, I32], &[I32]);
    let describe = g.declare(&abi.describe_sig.params, &abi.describe_sig.results);
    let configure = g.declare(&abi.configure_sig.params, &abi.configure_sig.results);
    let compute = g.declare(&abi.compute_sig.params, &abi.compute_sig.results);
    let batch = g.declare(&abi.batch_sig.params, &abi.batch_sig.results);
    // Post-return functions take the export's results; all four return one pointer.
    let post = g.declare(&abi.compute_sig.results, &[]);

    let f = g.realloc_body();
    g.define(realloc, f);
    let sig = g.describe_data(spec);
    let mut f = Func::new(&[]);
    f.ins().i32_const(sig as i32);
    g.define(describe, f);
    let f = g.configure_body();
    g.define(configure, f);
    let f = g.compute_body(spec)?;
    g.define(compute, f);
    let f = g.batch_body(spec)?;
    g.define(batch, f);
    // Everything a call allocated is garbage once the host has read the results.
    let mut f = Func::new(&[I32]);
    f.ins().global_get(HEAP_BASE).global_set(BUMP);
    g.define(post, f);
    g.emit_helpers();

    let heap_base = (DATA_BASE as usize + g.data.bytes.len()).next_multiple_of(16);
    let heap_base = u32::try_from(heap_base).map_err(|_| "data segment too large")?;
    let pages = u64::from(heap_base / 65536 + 1);

    let mut module = Module::new();
    let mut types = TypeSection::new();
    for (p, r) in &g.types {
        types.ty().function(p.iter().copied(), r.iter().copied());
    }
    module.section(&types);
    let mut functions = FunctionSection::new();
    for (t, _) in &g.funcs {
        functions.function(*t);
    }
    module.section(&functions);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut globals = GlobalSection::new();
    for mutable in [true, false] {
        globals.global(
            GlobalType {
                val_type: I32,
                mutable,
                shared: false,
            },
            &ConstExpr::i32_const(heap_base as i32),
        );
    }
    module.section(&globals);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("cabi_realloc", ExportKind::Func, realloc);
    for (name, index) in [
        ("describe", describe),
        ("configure", configure),
        ("compute", compute),
        ("compute-batch", batch),
    ] {
        exports.export(name, ExportKind::Func, index);
        exports.export(&format!("cabi_post_{name}"), ExportKind::Func, post);
    }
    module.section(&exports);
    let mut code = CodeSection::new();
    for (i, (_, body)) in g.funcs.iter().enumerate() {
        code.function(
            body.as_ref()
                .ok_or_else(|| format!("function {i} has no body"))?,
        );
    }
    module.section(&code);
    let mut data = DataSection::new();
    data.active(
        0,
        &ConstExpr::i32_const(DATA_BASE as i32),
        g.data.bytes.iter().copied(),
    );
    module.section(&data);

    let mut bytes = module.finish();
    wit_component::embed_component_metadata(
        &mut bytes,
        &world.resolve,
        world.world,
        StringEncoding::UTF8,
        false,
    )
    .map_err(|e| format!("{e:#}"))?;
    ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .map_err(|e| format!("{e:#}"))?
        .encode()
        .map_err(|e| format!("{e:#}"))
}
