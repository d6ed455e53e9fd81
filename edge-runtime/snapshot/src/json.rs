//! JSON rendering of values straight into a response buffer: no intermediate `serde_json::Value`,
//! no allocation per feature. Timestamps render as RFC 3339 strings; non-finite floats as `null`
//! (JSON has no NaN).

use crate::{Value, format_rfc3339_micros};

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Almost every string needs no escaping: one scan, one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

pub fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    out.push(b'"');
    format_rfc3339_micros(micros, out);
    out.push(b'"');
}

/// Appends `v` as JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Int64(i) => write_i64(out, *i),
        Value::Float64(f) => write_f64(out, *f),
        Value::String(s) => write_str(out, s),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Timestamp(t) => write_timestamp(out, *t),
        Value::ListFloat64(list) => {
            out.push(b'[');
            for (i, f) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_f64(out, f);
            }
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::F64List;

    fn render(v: Value<'_>) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &v);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn renders_valid_json_for_every_type() {
        let cases = [
            Value::Null,
            Value::Int64(-42),
            Value::Float64(0.1),
            Value::Float64(f64::NAN),
            Value::String("a \"quoted\"\n\u{1}é"),
            Value::Bool(true),
            Value::Timestamp(0),
            Value::ListFloat64(F64List::Slice(&[1.5, -2.0])),
        ];
        for v in cases {
            let s = render(v);
            let parsed: serde_json::Value = serde_json::from_str(&s).expect("valid json");
            if let Value::String(orig) = v {
                assert_eq!(parsed, serde_json::Value::String(orig.to_string()));
            }
        }
        assert_eq!(
            render(Value::ListFloat64(F64List::Slice(&[1.5, -2.0]))),
            "[1.5,-2.0]"
        );
    }
}
