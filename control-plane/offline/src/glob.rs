//! Glob patterns over object keys: `*` and `?` within one path segment, `**` across segments.
//! Object keys need only these three, so a few lines here replace a crate.
//!
//! Like a shell skipping dotfiles, a wildcard never matches a name that starts with `.` or `_`:
//! that is how Spark, Hive and friends mark what is not data (`_SUCCESS`, `_temporary/`,
//! `.part-0.parquet.crc`). A pattern reads such a name only by spelling its first character.

/// Whether a location holds glob characters.
pub(crate) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// The segments of `path` before its first one holding a glob character, joined by `/`: the
/// part of a glob that can be listed as a prefix.
pub(crate) fn fixed_prefix(path: &str) -> String {
    let mut fixed = Vec::new();
    for seg in path.split('/') {
        if has_glob(seg) {
            break;
        }
        fixed.push(seg);
    }
    fixed.join("/")
}

/// Whether `key` matches `pattern`. Both are `/`-separated; empty segments (doubled, leading
/// or trailing slashes) are ignored on both sides.
pub(crate) fn glob_match(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let k: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    // ok[i][j]: p[i..] matches k[j..]. Keys have few segments, so a table is cheap and, unlike
    // greedy backtracking, obviously right with the hidden-name rule.
    let mut ok = vec![vec![false; k.len() + 1]; p.len() + 1];
    ok[p.len()][k.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=k.len()).rev() {
            ok[i][j] = if p[i] == "**" {
                ok[i + 1][j] || (j < k.len() && !is_hidden(k[j]) && ok[i][j + 1])
            } else {
                j < k.len() && segment_match(p[i], k[j]) && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

fn is_hidden(name: &str) -> bool {
    name.starts_with(['.', '_'])
}

/// One segment: `*` matches any run of characters, `?` exactly one.
fn segment_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    if is_hidden(name) && p.first() != s.first() {
        return false;
    }
    let mut ok = vec![vec![false; s.len() + 1]; p.len() + 1];
    ok[p.len()][s.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=s.len()).rev() {
            ok[i][j] = match p[i] {
                '*' => ok[i + 1][j] || (j < s.len() && ok[i][j + 1]),
                '?' => j < s.len() && ok[i + 1][j + 1],
                c => j < s.len() && s[j] == c && ok[i + 1][j + 1],
            };
        }
    }
    ok[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark_stay_within_a_segment() {
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(!glob_match("*.parquet", ".parquet"));
        assert!(!glob_match("*.parquet", "x/a.parquet"));
        assert!(glob_match("x/*/a.csv", "x/y/a.csv"));
        assert!(!glob_match("x/*/a.csv", "x/y/z/a.csv"));
        assert!(!glob_match("x/*/a.csv", "x/a.csv"));
        assert!(glob_match("part-?.csv", "part-1.csv"));
        assert!(!glob_match("part-?.csv", "part-12.csv"));
        assert!(!glob_match("part-?.csv", "part-.csv"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("date=2026-05-0?/*", "date=2026-05-01/f.parquet"));
        // Multi-byte characters count as one.
        assert!(glob_match("caf?.csv", "café.csv"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob_match("a/**/b.parquet", "a/b.parquet"));
        assert!(glob_match("a/**/b.parquet", "a/x/b.parquet"));
        assert!(glob_match("a/**/b.parquet", "a/x/y/z/b.parquet"));
        assert!(!glob_match("a/**/b.parquet", "c/x/b.parquet"));
        assert!(glob_match("a/**", "a/x/y"));
        assert!(glob_match("a/**", "a"));
        assert!(glob_match("**/*.csv", "x.csv"));
        assert!(glob_match("**/*.csv", "p/q/x.csv"));
        assert!(!glob_match("**/*.csv", "p/q/x.json"));
        assert!(glob_match(
            "**/date=*/**/*.jsonl",
            "lake/date=2026-01-01/h=1/x.jsonl"
        ));
        assert!(glob_match("a/**/**/b", "a/b"));
        // `**` inside a segment is just a star.
        assert!(glob_match("a**.csv", "abc.csv"));
        assert!(!glob_match("a**.csv", "a/b.csv"));
    }

    #[test]
    fn literal_patterns_and_slashes() {
        assert!(glob_match("a/b.csv", "a/b.csv"));
        assert!(!glob_match("a/b.csv", "a/b.csvx"));
        assert!(glob_match("/a//b.csv/", "a/b.csv"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn wildcards_skip_hidden_names() {
        assert!(!glob_match("*", "_SUCCESS"));
        assert!(!glob_match("*", ".crc"));
        assert!(!glob_match("?SUCCESS", "_SUCCESS"));
        assert!(!glob_match(
            "lake/**/*.parquet",
            "lake/_temporary/0/x.parquet"
        ));
        assert!(!glob_match("lake/*/x.parquet", "lake/_temporary/x.parquet"));
        assert!(glob_match(
            "lake/_temporary/*.parquet",
            "lake/_temporary/x.parquet"
        ));
        assert!(glob_match("_*", "_SUCCESS"));
    }

    #[test]
    fn fixed_prefix_stops_at_the_first_glob_segment() {
        assert_eq!(fixed_prefix("lake/orders/date=*/x.parquet"), "lake/orders");
        assert_eq!(fixed_prefix("lake/ord?rs/x"), "lake");
        assert_eq!(fixed_prefix("*.csv"), "");
        assert_eq!(fixed_prefix("/data/**/x.csv"), "/data");
        assert_eq!(fixed_prefix("a/b/c.csv"), "a/b/c.csv");
        assert!(has_glob("a/*.csv") && has_glob("a?") && !has_glob("a/b.csv"));
    }
}
