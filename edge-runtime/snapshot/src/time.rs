//! RFC 3339 rendering without a date library: the edge formats event timestamps on the hot
//! path, so this writes straight into the response buffer.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `micros` (since the Unix epoch, UTC) as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`; the
/// fraction is written only when it is not zero. Years outside 0..=9999 are clamped.
pub fn format_rfc3339_micros(micros: i64, out: &mut Vec<u8>) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
    out.push(b'T');
    push2(out, sod / 3600);
    out.push(b':');
    push2(out, sod / 60 % 60);
    out.push(b':');
    push2(out, sod % 60);
    if frac != 0 {
        out.push(b'.');
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (f % 10) as u8;
            f /= 10;
        }
        out.extend_from_slice(&digits);
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(m: i64) -> String {
        let mut v = Vec::new();
        format_rfc3339_micros(m, &mut v);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt(1_714_564_800_000_000), "2024-05-01T12:00:00Z");
        assert_eq!(fmt(951_782_400_000_000 + 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(fmt(-1_000_000), "1969-12-31T23:59:59Z");
    }
}
