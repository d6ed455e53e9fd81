//! Turning what a user typed (`--registry`, config) into the URL sqlx's Any driver connects to.
//!
//! The Any driver parses its URL with the `url` crate and the SQLite driver then re-parses
//! `url.as_str()` and percent-decodes the path, on every new connection. A relative path such as
//! `sqlite://.fstore/registry.db` would be read as host `.fstore`, and characters like `?`, `#`
//! or `%` in a file name would be misread; so SQLite paths are made absolute and fully
//! percent-encoded into an opaque `sqlite:` URL that survives both parsers unchanged.

use std::path::{Path, PathBuf};

use crate::RegistryError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Postgres { url: String },
    SqliteMemory,
    SqliteFile { path: PathBuf },
}

impl Target {
    pub(crate) fn parse(input: &str) -> Result<Self, RegistryError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(RegistryError::BadUrl(
                "the registry URL is empty; use postgres://…, sqlite://PATH or a file path".into(),
            ));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Target::Postgres { url: s.to_string() });
        }
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest == ":memory:" {
                return Ok(Target::SqliteMemory);
            }
            if rest.contains('?') {
                return Err(RegistryError::BadUrl(format!(
                    "`{s}`: SQLite registry URLs take no query parameters (the file is always \
                     created if missing and opened read-write in WAL mode)"
                )));
            }
            if rest.is_empty() {
                return Err(RegistryError::BadUrl(format!(
                    "`{s}` names no database file; use sqlite://PATH"
                )));
            }
            return Ok(Target::SqliteFile {
                path: PathBuf::from(rest),
            });
        }
        if s == ":memory:" {
            return Ok(Target::SqliteMemory);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            // Only the scheme is echoed: the rest may hold a password.
            return Err(RegistryError::BadUrl(format!(
                "unsupported scheme `{scheme}://`; use postgres://…, postgresql://…, \
                 sqlite://PATH or a plain file path"
            )));
        }
        Ok(Target::SqliteFile {
            path: PathBuf::from(s),
        })
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Target::Postgres { .. } => "postgres",
            Target::SqliteMemory | Target::SqliteFile { .. } => "sqlite",
        }
    }

    /// A description safe to put in logs and errors (no password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Postgres { url } => redact(url),
            Target::SqliteMemory => "sqlite::memory:".into(),
            Target::SqliteFile { path } => format!("sqlite:{}", path.display()),
        }
    }
}

/// The URL handed to sqlx for a SQLite file, which must already be absolute.
pub(crate) fn sqlite_file_url(abs: &Path) -> Result<String, RegistryError> {
    let p = abs.to_str().ok_or_else(|| {
        RegistryError::BadUrl(format!(
            "the registry path {} is not valid UTF-8, which SQLite URLs require",
            abs.display()
        ))
    })?;
    Ok(format!("sqlite:{}?mode=rwc", percent_encode(p)))
}

/// Encodes everything but unreserved characters, `/` included: an opaque path never starts
/// with `//`, so no part of it can be mistaken for a host.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if user.len() < userinfo.len() {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            Target::parse("postgres://u@h/db").ok(),
            Some(Target::Postgres {
                url: "postgres://u@h/db".into()
            })
        );
        assert!(matches!(
            Target::parse("postgresql://h/db"),
            Ok(Target::Postgres { .. })
        ));
        assert_eq!(
            Target::parse("sqlite::memory:").ok(),
            Some(Target::SqliteMemory)
        );
        assert_eq!(
            Target::parse("sqlite://.fstore/registry.db").ok(),
            Some(Target::SqliteFile {
                path: ".fstore/registry.db".into()
            })
        );
        assert_eq!(
            Target::parse("sqlite:///abs/r.db").ok(),
            Some(Target::SqliteFile {
                path: "/abs/r.db".into()
            })
        );
        assert_eq!(
            Target::parse(".fstore/registry.db").ok(),
            Some(Target::SqliteFile {
                path: ".fstore/registry.db".into()
            })
        );
        assert!(matches!(
            Target::parse("mysql://x"),
            Err(RegistryError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("sqlite://x.db?mode=ro"),
            Err(RegistryError::BadUrl(_))
        ));
        assert!(matches!(Target::parse("  "), Err(RegistryError::BadUrl(_))));
    }

    #[test]
    fn never_echoes_passwords() {
        let t = Target::parse("postgres://bob:s3cret@db:5432/x").expect("parses");
        assert_eq!(t.describe(), "postgres://bob:***@db:5432/x");
        let Err(e) = Target::parse("mysql://bob:s3cret@db/x") else {
            panic!("mysql must be refused")
        };
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn odd_file_names_survive_the_url_round_trip() {
        let url = sqlite_file_url(Path::new("/tmp/a b/#x?%.db")).expect("utf-8");
        assert_eq!(url, "sqlite:%2Ftmp%2Fa%20b%2F%23x%3F%25.db?mode=rwc");
    }
}
