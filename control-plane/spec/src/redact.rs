//! Keeping passwords out of what people read: database URLs appear in definitions, and so in
//! messages, plans, diffs and the change log.

/// The byte range of the user-info (`user:password`) of a URL, before its last `@` ahead of
/// any query string: a password with an unencoded `/` still counts as user-info.
pub fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let query = url[start..].find('?').map_or(url.len(), |q| q + start);
    let at = url[start..query].rfind('@')? + start;
    Some((start, at))
}

/// The URL with its password (in the user-info or a `password=` parameter) replaced by
/// `***`: what messages and listings show.
pub fn redact_url(url: &str) -> String {
    let mut out = match userinfo_span(url) {
        Some((start, at)) => match url[start..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    if let Some(q) = out.find('?') {
        let params: Vec<String> = out[q + 1..]
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], params.join("&"));
    }
    out
}
