//! Bodies of the helper functions: the allocator, string comparison and conversion, and the
//! libm functions the module cannot import.
//!
//! `ln` and `exp` are the FreeBSD/musl algorithms (Sun's fdlibm, error below 1 ulp): range
//! reduction on the float's bits, then a minimax polynomial. They are transcribed instruction by
//! instruction, keeping C's evaluation order so results match that code bit for bit.

use wasm_encoder::{BlockType, ValType};

use crate::codegen::{Func, mem};

/// fdlibm's constants, by their bits as the C source gives them in hex comments;
/// `constants_match_the_source` checks them against the source's decimal values.
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
pub(crate) const LG: [f64; 7] = [
    f64::from_bits(0x3FE5_5555_5555_5593),
    f64::from_bits(0x3FD9_9999_9997_FA04),
    f64::from_bits(0x3FD2_4924_9422_9359),
    f64::from_bits(0x3FCC_71C5_1D8E_78AF),
    f64::from_bits(0x3FC7_4664_96CB_03DE),
    f64::from_bits(0x3FC3_9A09_D078_C69F),
    f64::from_bits(0x3FC2_F112_DF3E_5244),
];
pub(crate) const INV_LN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
pub(crate) const EXP_P: [f64; 5] = [
    f64::from_bits(0x3FC5_5555_5555_553E),
    f64::from_bits(0xBF66_C16C_16BE_BD93),
    f64::from_bits(0x3F11_566A_AF25_DE2C),
    f64::from_bits(0xBEBB_BD41_C5D2_6BF1),
    f64::from_bits(0x3E66_3769_72BE_A4D0),
];
/// Above this exp overflows; below `EXP_UNDERFLOW` it underflows to zero.
const EXP_OVERFLOW: f64 = f64::from_bits(0x4086_2e42_fefa_39ef);
const EXP_UNDERFLOW: f64 = f64::from_bits(0xc087_4910_d52d_3051);

/// `alloc(size: i64, align: i32) -> i32`: bumps the heap pointer, growing memory as needed.
/// Sizes are 64-bit so that `rows × element size` cannot wrap; anything past 4 GiB, or a failed
/// `memory.grow`, traps rather than hand out memory that overlaps.
pub(crate) fn alloc(f: &mut Func) {
    let (size, align) = (0, 1);
    let p = f.local(ValType::I64);
    let end = f.local(ValType::I64);
    let have = f.local(ValType::I64);
    f.ins()
        // p = (bump + align - 1) & -align, in 64 bits
        .global_get(0)
        .i64_extend_i32_u()
        .local_get(align)
        .i64_extend_i32_u()
        .i64_add()
        .i64_const(1)
        .i64_sub()
        .i64_const(0)
        .local_get(align)
        .i64_extend_i32_u()
        .i64_sub()
        .i64_and()
        .local_tee(p)
        .local_get(size)
        .i64_add()
        .local_tee(end)
        .i64_const(0xFFFF_FFFF)
        .i64_gt_u()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .local_get(end)
        .memory_size(0)
        .i64_extend_i32_u()
        .i64_const(16)
        .i64_shl()
        .local_tee(have)
        .i64_gt_u()
        .if_(BlockType::Empty)
        .local_get(end)
        .local_get(have)
        .i64_sub()
        .i64_const(0xFFFF)
        .i64_add()
        .i64_const(16)
        .i64_shr_u()
        .i32_wrap_i64()
        .memory_grow(0)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end()
        .local_get(end)
        .i32_wrap_i64()
        .global_set(0)
        .local_get(p)
        .i32_wrap_i64();
}

/// `str_eq(a_ptr, a_len, b_ptr, b_len) -> i32`: 1 when the bytes are equal.
pub(crate) fn str_eq(f: &mut Func) {
    let (ap, al, bp, bl) = (0, 1, 2, 3);
    let i = f.local(ValType::I32);
    f.ins()
        .local_get(al)
        .local_get(bl)
        .i32_ne()
        .if_(BlockType::Empty)
        .i32_const(0)
        .return_()
        .end();
    chunked_prefix(f, ap, bp, al, i);
    f.ins()
        // byte loop over the rest
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(i)
        .local_get(al)
        .i32_ge_u()
        .br_if(1)
        .local_get(ap)
        .local_get(i)
        .i32_add()
        .i32_load8_u(mem(0, 0))
        .local_get(bp)
        .local_get(i)
        .i32_add()
        .i32_load8_u(mem(0, 0))
        .i32_ne()
        .if_(BlockType::Empty)
        .i32_const(0)
        .return_()
        .end()
        .local_get(i)
        .i32_const(1)
        .i32_add()
        .local_set(i)
        .br(0)
        .end()
        .end()
        .i32_const(1);
}

/// Advances `i` past the leading 8-byte chunks that are equal in both strings (within `n`).
fn chunked_prefix(f: &mut Func, ap: u32, bp: u32, n: u32, i: u32) {
    f.ins()
        .i32_const(0)
        .local_set(i)
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(i)
        .i32_const(8)
        .i32_add()
        .local_get(n)
        .i32_gt_u()
        .br_if(1)
        .local_get(ap)
        .local_get(i)
        .i32_add()
        .i64_load(mem(0, 0))
        .local_get(bp)
        .local_get(i)
        .i32_add()
        .i64_load(mem(0, 0))
        .i64_ne()
        .br_if(1)
        .local_get(i)
        .i32_const(8)
        .i32_add()
        .local_set(i)
        .br(0)
        .end()
        .end();
}

/// `str_cmp(a_ptr, a_len, b_ptr, b_len) -> i32`: -1, 0 or 1, comparing bytes unsigned, then
/// lengths.
pub(crate) fn str_cmp(f: &mut Func) {
    let (ap, al, bp, bl) = (0, 1, 2, 3);
    let n = f.local(ValType::I32);
    let i = f.local(ValType::I32);
    let ca = f.local(ValType::I32);
    let cb = f.local(ValType::I32);
    f.ins()
        .local_get(al)
        .local_get(bl)
        .local_get(al)
        .local_get(bl)
        .i32_lt_u()
        .select()
        .local_set(n);
    chunked_prefix(f, ap, bp, n, i);
    f.ins()
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(i)
        .local_get(n)
        .i32_ge_u()
        .br_if(1)
        .local_get(ap)
        .local_get(i)
        .i32_add()
        .i32_load8_u(mem(0, 0))
        .local_tee(ca)
        .local_get(bp)
        .local_get(i)
        .i32_add()
        .i32_load8_u(mem(0, 0))
        .local_tee(cb)
        .i32_ne()
        .if_(BlockType::Empty)
        .i32_const(-1)
        .i32_const(1)
        .local_get(ca)
        .local_get(cb)
        .i32_lt_u()
        .select()
        .return_()
        .end()
        .local_get(i)
        .i32_const(1)
        .i32_add()
        .local_set(i)
        .br(0)
        .end()
        .end()
        .local_get(al)
        .local_get(bl)
        .i32_gt_u()
        .local_get(al)
        .local_get(bl)
        .i32_lt_u()
        .i32_sub();
}

/// `round(x) -> f64`: half away from zero. `x - trunc(x)` is exact, so the test is too.
pub(crate) fn round(f: &mut Func) {
    let x = 0;
    let t = f.local(ValType::F64);
    f.ins()
        .local_get(x)
        .f64_trunc()
        .local_set(t)
        .local_get(x)
        .local_get(t)
        .f64_sub()
        .f64_abs()
        .f64_const(0.5.into())
        .f64_ge()
        .if_(BlockType::Result(ValType::F64))
        .local_get(t)
        .f64_const(1.0.into())
        .local_get(x)
        .f64_copysign()
        .f64_add()
        .else_()
        .local_get(t)
        .end();
}

/// `itoa(v: i64) -> (ptr, len)`: decimal text in 20 freshly allocated bytes.
pub(crate) fn itoa(f: &mut Func, alloc: u32) {
    let v = 0;
    let end = f.local(ValType::I32);
    let p = f.local(ValType::I32);
    let u = f.local(ValType::I64);
    let neg = f.local(ValType::I32);
    f.ins()
        .i64_const(20)
        .i32_const(1)
        .call(alloc)
        .i32_const(20)
        .i32_add()
        .local_tee(end)
        .local_set(p)
        .local_get(v)
        .i64_const(0)
        .i64_lt_s()
        .local_set(neg)
        // |v| as unsigned; 0 - i64::MIN is 2^63, right when read unsigned.
        .i64_const(0)
        .local_get(v)
        .i64_sub()
        .local_get(v)
        .local_get(neg)
        .select()
        .local_set(u)
        .loop_(BlockType::Empty)
        .local_get(p)
        .i32_const(1)
        .i32_sub()
        .local_tee(p)
        .local_get(u)
        .i64_const(10)
        .i64_rem_u()
        .i32_wrap_i64()
        .i32_const(48)
        .i32_add()
        .i32_store8(mem(0, 0))
        .local_get(u)
        .i64_const(10)
        .i64_div_u()
        .local_tee(u)
        .i64_eqz()
        .i32_eqz()
        .br_if(0)
        .end()
        .local_get(neg)
        .if_(BlockType::Empty)
        .local_get(p)
        .i32_const(1)
        .i32_sub()
        .local_tee(p)
        .i32_const(45)
        .i32_store8(mem(0, 0))
        .end()
        .local_get(p)
        .local_get(end)
        .local_get(p)
        .i32_sub();
}

/// Pushes whether the byte in `c` is ASCII whitespace (space, \t, \n, \v, \f, \r).
fn is_space(f: &mut Func, c: u32) {
    f.ins()
        .local_get(c)
        .i32_const(32)
        .i32_eq()
        .local_get(c)
        .i32_const(9)
        .i32_sub()
        .i32_const(5)
        .i32_lt_u()
        .i32_or();
}

/// `atoi(ptr, len) -> (value: i64, ok: i32)`: PostgreSQL's int8 input: optional surrounding
/// whitespace, an optional sign, at least one digit, no overflow.
pub(crate) fn atoi(f: &mut Func) {
    let (p, len) = (0, 1);
    let end = f.local(ValType::I32);
    let c = f.local(ValType::I32);
    let neg = f.local(ValType::I32);
    let any = f.local(ValType::I32);
    let acc = f.local(ValType::I64);
    let fail = |f: &mut Func| {
        f.ins().i64_const(0).i32_const(0).return_();
    };
    f.ins().local_get(p).local_get(len).i32_add().local_set(end);
    // Leading whitespace.
    f.ins()
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(p)
        .local_get(end)
        .i32_ge_u()
        .br_if(1)
        .local_get(p)
        .i32_load8_u(mem(0, 0))
        .local_set(c);
    is_space(f, c);
    f.ins()
        .i32_eqz()
        .br_if(1)
        .local_get(p)
        .i32_const(1)
        .i32_add()
        .local_set(p)
        .br(0)
        .end()
        .end();
    // Sign.
    f.ins()
        .local_get(p)
        .local_get(end)
        .i32_lt_u()
        .if_(BlockType::Empty)
        .local_get(p)
        .i32_load8_u(mem(0, 0))
        .local_tee(c)
        .i32_const(i32::from(b'-'))
        .i32_eq()
        .local_tee(neg)
        .local_get(c)
        .i32_const(i32::from(b'+'))
        .i32_eq()
        .i32_or()
        .if_(BlockType::Empty)
        .local_get(p)
        .i32_const(1)
        .i32_add()
        .local_set(p)
        .end()
        .end();
    // Digits, accumulated as the unsigned magnitude; the limit is 2^63 - 1, or 2^63 if negative.
    f.ins()
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(p)
        .local_get(end)
        .i32_ge_u()
        .br_if(1)
        .local_get(p)
        .i32_load8_u(mem(0, 0))
        .i32_const(48)
        .i32_sub()
        .local_tee(c)
        .i32_const(9)
        .i32_gt_u()
        .br_if(1)
        .local_get(acc)
        .i64_const(922_337_203_685_477_580)
        .i64_gt_u()
        .if_(BlockType::Empty);
    fail(f);
    f.ins()
        .end()
        .local_get(acc)
        .i64_const(10)
        .i64_mul()
        .local_get(c)
        .i64_extend_i32_u()
        .i64_add()
        .local_tee(acc)
        .i64_const(i64::MAX)
        .local_get(neg)
        .i64_extend_i32_u()
        .i64_add()
        .i64_gt_u()
        .if_(BlockType::Empty);
    fail(f);
    f.ins()
        .end()
        .i32_const(1)
        .local_set(any)
        .local_get(p)
        .i32_const(1)
        .i32_add()
        .local_set(p)
        .br(0)
        .end()
        .end()
        .local_get(any)
        .i32_eqz()
        .if_(BlockType::Empty);
    fail(f);
    f.ins().end();
    // Trailing whitespace only.
    f.ins()
        .block(BlockType::Empty)
        .loop_(BlockType::Empty)
        .local_get(p)
        .local_get(end)
        .i32_ge_u()
        .br_if(1)
        .local_get(p)
        .i32_load8_u(mem(0, 0))
        .local_set(c);
    is_space(f, c);
    f.ins().i32_eqz().if_(BlockType::Empty);
    fail(f);
    f.ins()
        .end()
        .local_get(p)
        .i32_const(1)
        .i32_add()
        .local_set(p)
        .br(0)
        .end()
        .end()
        .i64_const(0)
        .local_get(acc)
        .i64_sub()
        .local_get(acc)
        .local_get(neg)
        .select()
        .i32_const(1);
}

/// `ln(x) -> f64`, fdlibm's `log`: x = 2^k·(1+f) with 1+f in [√2/2, √2), then
/// ln(1+f) = f - hfsq + s·(hfsq + R(s²)) with s = f/(2+f).
pub(crate) fn ln(f: &mut Func) {
    use ValType::{F64, I32, I64};
    let x = 0;
    let ix = f.local(I64);
    let hx = f.local(I32);
    let k = f.local(I32);
    let fl = f.local(F64);
    let hfsq = f.local(F64);
    let s = f.local(F64);
    let z = f.local(F64);
    let w = f.local(F64);
    let t1 = f.local(F64);
    let t2 = f.local(F64);
    let dk = f.local(F64);
    let c = |v: f64| wasm_encoder::Ieee64::from(v);
    f.ins()
        .local_get(x)
        .i64_reinterpret_f64()
        .local_tee(ix)
        .i64_const(32)
        .i64_shr_u()
        .i32_wrap_i64()
        .local_set(hx)
        .i32_const(0)
        .local_set(k)
        // Subnormal, zero or negative.
        .local_get(hx)
        .i32_const(0x0010_0000)
        .i32_lt_u()
        .local_get(hx)
        .i32_const(31)
        .i32_shr_u()
        .i32_or()
        .if_(BlockType::Empty)
        .local_get(ix)
        .i64_const(1)
        .i64_shl()
        .i64_eqz()
        .if_(BlockType::Empty)
        .f64_const(c(f64::NEG_INFINITY))
        .return_()
        .end()
        .local_get(hx)
        .i32_const(31)
        .i32_shr_u()
        .if_(BlockType::Empty)
        .f64_const(c(f64::NAN))
        .return_()
        .end()
        // Scale a subnormal up into the normal range.
        .i32_const(-54)
        .local_set(k)
        .local_get(x)
        .f64_const(c(18_014_398_509_481_984.0)) // 2^54
        .f64_mul()
        .local_tee(x)
        .i64_reinterpret_f64()
        .local_tee(ix)
        .i64_const(32)
        .i64_shr_u()
        .i32_wrap_i64()
        .local_set(hx)
        .else_()
        // Infinity or NaN.
        .local_get(hx)
        .i32_const(0x7ff0_0000)
        .i32_ge_u()
        .if_(BlockType::Empty)
        .local_get(x)
        .return_()
        .end()
        // Exactly 1.
        .local_get(hx)
        .i32_const(0x3ff0_0000)
        .i32_eq()
        .local_get(ix)
        .i64_const(32)
        .i64_shl()
        .i64_eqz()
        .i32_and()
        .if_(BlockType::Empty)
        .f64_const(c(0.0))
        .return_()
        .end()
        .end()
        // Reduce x into [√2/2, √2).
        .local_get(hx)
        .i32_const(0x3ff0_0000 - 0x3fe6_a09e)
        .i32_add()
        .local_tee(hx)
        .i32_const(20)
        .i32_shr_u()
        .i32_const(0x3ff)
        .i32_sub()
        .local_get(k)
        .i32_add()
        .local_set(k)
        .local_get(hx)
        .i32_const(0x000f_ffff)
        .i32_and()
        .i32_const(0x3fe6_a09e)
        .i32_add()
        .i64_extend_i32_u()
        .i64_const(32)
        .i64_shl()
        .local_get(ix)
        .i64_const(0xffff_ffff)
        .i64_and()
        .i64_or()
        .f64_reinterpret_i64()
        .f64_const(c(1.0))
        .f64_sub()
        .local_set(fl)
        // hfsq = 0.5*f*f
        .f64_const(c(0.5))
        .local_get(fl)
        .f64_mul()
        .local_get(fl)
        .f64_mul()
        .local_set(hfsq)
        // s = f/(2.0+f); z = s*s; w = z*z
        .local_get(fl)
        .f64_const(c(2.0))
        .local_get(fl)
        .f64_add()
        .f64_div()
        .local_tee(s)
        .local_get(s)
        .f64_mul()
        .local_tee(z)
        .local_get(z)
        .f64_mul()
        .local_set(w)
        // t1 = w*(Lg2+w*(Lg4+w*Lg6))
        .local_get(w)
        .f64_const(c(LG[1]))
        .local_get(w)
        .f64_const(c(LG[3]))
        .local_get(w)
        .f64_const(c(LG[5]))
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .local_set(t1)
        // t2 = z*(Lg1+w*(Lg3+w*(Lg5+w*Lg7)))
        .local_get(z)
        .f64_const(c(LG[0]))
        .local_get(w)
        .f64_const(c(LG[2]))
        .local_get(w)
        .f64_const(c(LG[4]))
        .local_get(w)
        .f64_const(c(LG[6]))
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .local_set(t2)
        // s*(hfsq+R) + dk*ln2_lo - hfsq + f + dk*ln2_hi, with R = t2 + t1
        .local_get(s)
        .local_get(hfsq)
        .local_get(t2)
        .local_get(t1)
        .f64_add()
        .f64_add()
        .f64_mul()
        .local_get(k)
        .f64_convert_i32_s()
        .local_tee(dk)
        .f64_const(c(LN2_LO))
        .f64_mul()
        .f64_add()
        .local_get(hfsq)
        .f64_sub()
        .local_get(fl)
        .f64_add()
        .local_get(dk)
        .f64_const(c(LN2_HI))
        .f64_mul()
        .f64_add();
}

/// `exp(x) -> f64`, fdlibm's `exp`: x = k·ln2 + r with |r| ≤ ln2/2 (r as hi - lo), exp(r) from
/// a rational approximation, then scaled by 2^k.
pub(crate) fn exp(f: &mut Func) {
    use ValType::{F64, I32};
    let x = 0;
    let hx = f.local(I32);
    let sign = f.local(I32);
    let k = f.local(I32);
    let hi = f.local(F64);
    let lo = f.local(F64);
    let cc = f.local(F64);
    let xx = f.local(F64);
    let y = f.local(F64);
    let c = |v: f64| wasm_encoder::Ieee64::from(v);
    f.ins()
        .local_get(x)
        .i64_reinterpret_f64()
        .i64_const(32)
        .i64_shr_u()
        .i32_wrap_i64()
        .local_tee(hx)
        .i32_const(31)
        .i32_shr_u()
        .local_set(sign)
        .local_get(hx)
        .i32_const(0x7fff_ffff)
        .i32_and()
        .local_set(hx)
        // |x| >= 708.39, or NaN/infinity.
        .local_get(hx)
        .i32_const(0x4086_232b)
        .i32_ge_u()
        .if_(BlockType::Empty)
        .local_get(x)
        .local_get(x)
        .f64_ne()
        .if_(BlockType::Empty)
        .local_get(x)
        .return_()
        .end()
        .local_get(x)
        .f64_const(c(EXP_OVERFLOW))
        .f64_gt()
        .if_(BlockType::Empty)
        .f64_const(c(f64::INFINITY))
        .return_()
        .end()
        .local_get(x)
        .f64_const(c(EXP_UNDERFLOW))
        .f64_lt()
        .if_(BlockType::Empty)
        .f64_const(c(0.0))
        .return_()
        .end()
        .end()
        // Argument reduction.
        .local_get(hx)
        .i32_const(0x3fd6_2e42)
        .i32_gt_u()
        .if_(BlockType::Empty)
        .local_get(hx)
        .i32_const(0x3ff0_a2b2)
        .i32_ge_u()
        .if_(BlockType::Result(I32))
        // k = (int)(invln2*x + half[sign])
        .f64_const(c(INV_LN2))
        .local_get(x)
        .f64_mul()
        .f64_const(c(-0.5))
        .f64_const(c(0.5))
        .local_get(sign)
        .select()
        .f64_add()
        .i32_trunc_sat_f64_s()
        .else_()
        .i32_const(1)
        .local_get(sign)
        .i32_const(1)
        .i32_shl()
        .i32_sub()
        .end()
        .local_set(k)
        .local_get(x)
        .local_get(k)
        .f64_convert_i32_s()
        .f64_const(c(LN2_HI))
        .f64_mul()
        .f64_sub()
        .local_set(hi)
        .local_get(k)
        .f64_convert_i32_s()
        .f64_const(c(LN2_LO))
        .f64_mul()
        .local_set(lo)
        .local_get(hi)
        .local_get(lo)
        .f64_sub()
        .local_set(x)
        .else_()
        .local_get(hx)
        .i32_const(0x3e30_0000)
        .i32_gt_u()
        .if_(BlockType::Empty)
        .i32_const(0)
        .local_set(k)
        .local_get(x)
        .local_set(hi)
        .f64_const(c(0.0))
        .local_set(lo)
        .else_()
        // |x| < 2^-28: exp(x) rounds to 1 + x.
        .f64_const(c(1.0))
        .local_get(x)
        .f64_add()
        .return_()
        .end()
        .end()
        // c = x - xx*(P1+xx*(P2+xx*(P3+xx*(P4+xx*P5))))
        .local_get(x)
        .local_get(x)
        .local_get(x)
        .f64_mul()
        .local_tee(xx)
        .f64_const(c(EXP_P[0]))
        .local_get(xx)
        .f64_const(c(EXP_P[1]))
        .local_get(xx)
        .f64_const(c(EXP_P[2]))
        .local_get(xx)
        .f64_const(c(EXP_P[3]))
        .local_get(xx)
        .f64_const(c(EXP_P[4]))
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_add()
        .f64_mul()
        .f64_sub()
        .local_set(cc)
        // y = 1 + (x*c/(2-c) - lo + hi)
        .f64_const(c(1.0))
        .local_get(x)
        .local_get(cc)
        .f64_mul()
        .f64_const(c(2.0))
        .local_get(cc)
        .f64_sub()
        .f64_div()
        .local_get(lo)
        .f64_sub()
        .local_get(hi)
        .f64_add()
        .f64_add()
        .local_set(y)
        .local_get(k)
        .i32_eqz()
        .if_(BlockType::Empty)
        .local_get(y)
        .return_()
        .end()
        // scalbn(y, k): k is in [-1077, 1025] here, so one pre-scaling step suffices; the
        // subnormal case pre-scales by 2^-969 so the final multiply rounds only once.
        .local_get(k)
        .i32_const(1023)
        .i32_gt_s()
        .if_(BlockType::Empty)
        .local_get(y)
        .f64_const(c(f64::from_bits(0x7fe0_0000_0000_0000))) // 2^1023
        .f64_mul()
        .local_set(y)
        .local_get(k)
        .i32_const(1023)
        .i32_sub()
        .local_set(k)
        .else_()
        .local_get(k)
        .i32_const(-1022)
        .i32_lt_s()
        .if_(BlockType::Empty)
        .local_get(y)
        .f64_const(c(f64::from_bits(0x0360_0000_0000_0000))) // 2^-969
        .f64_mul()
        .local_set(y)
        .local_get(k)
        .i32_const(969)
        .i32_add()
        .local_set(k)
        .end()
        .end()
        .local_get(y)
        .local_get(k)
        .i32_const(0x3ff)
        .i32_add()
        .i64_extend_i32_u()
        .i64_const(52)
        .i64_shl()
        .f64_reinterpret_i64()
        .f64_mul();
}

#[cfg(test)]
#[allow(clippy::excessive_precision, clippy::approx_constant)]
mod tests {
    use super::*;

    /// The decimal values printed in FreeBSD's e_log.c and e_exp.c.
    #[test]
    fn constants_match_the_source() {
        assert_eq!(LN2_HI, 6.93147180369123816490e-01);
        assert_eq!(LN2_LO, 1.90821492927058770002e-10);
        let lg = [
            6.666666666666735130e-01,
            3.999999999940941908e-01,
            2.857142874366239149e-01,
            2.222219843214978396e-01,
            1.818357216161805012e-01,
            1.531383769920937332e-01,
            1.479819860511658591e-01,
        ];
        assert_eq!(LG, lg);
        assert_eq!(INV_LN2, 1.44269504088896338700e+00);
        let p = [
            1.66666666666666019037e-01,
            -2.77777777770155933842e-03,
            6.61375632143793436117e-05,
            -1.65339022054652515390e-06,
            4.13813679705723846039e-08,
        ];
        assert_eq!(EXP_P, p);
        assert_eq!(EXP_OVERFLOW, 709.782712893383973096);
        assert_eq!(EXP_UNDERFLOW, -745.13321910194110842);
        assert_eq!(f64::from_bits(0x7fe0_0000_0000_0000), 2f64.powi(1023));
        assert_eq!(f64::from_bits(0x0360_0000_0000_0000), 2f64.powi(-969));
    }
}
