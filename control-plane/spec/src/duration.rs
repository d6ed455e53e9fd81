/// Parses a duration such as `0`, `90s`, `15m`, `12h`, `30d` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (expected e.g. 90s, 15m, 12h, 30d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "`{s}` has unknown unit `{unit}` (use s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// Formats seconds with the largest unit that divides them exactly.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0".into();
    }
    for (unit, m) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(m) {
            return format!("{}{unit}", secs / m);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("30x").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(format_duration(90 * 86_400), "90d");
        assert_eq!(format_duration(90), "90s");
    }
}
