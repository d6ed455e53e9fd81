//! API tokens: `fst_<id>_<secret>`. The id is public (it names the token in lists, logs and
//! the audit log); only the SHA-256 of the secret is stored. The secret is 32 random bytes, so
//! a fast hash is enough: a slow password hash protects guessable secrets, not random ones.

use crate::AccessError;

pub const TOKEN_PREFIX: &str = "fst_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token just made: `token` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub secret_sha256: String,
}

/// `n` random bytes from the system generator, hex.
pub fn random_hex(n: usize) -> Result<String, AccessError> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| AccessError::Crypto("the system random number generator failed".into()))?;
    Ok(hex::encode(buf))
}

pub fn generate_token() -> Result<NewToken, AccessError> {
    let id = random_hex(ID_BYTES)?;
    let secret = random_hex(SECRET_BYTES)?;
    Ok(NewToken {
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        secret_sha256: secret_sha256(&secret),
        id,
    })
}

/// Splits a token into (id, secret), checking only its shape.
pub fn parse_token(token: &str) -> Result<(&str, &str), AccessError> {
    let bad =
        || AccessError::Invalid("the token is not an fstore token (`fst_<id>_<secret>`)".into());
    let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (id, secret) = rest.split_once('_').ok_or_else(bad)?;
    let hexish = |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hexish(id, ID_BYTES) || !hexish(secret, SECRET_BYTES) {
        return Err(bad());
    }
    Ok((id, secret))
}

/// The token from an `Authorization: Bearer …` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

pub fn secret_sha256(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Whether `secret` hashes to `expected_hex`, compared in constant time.
pub fn secret_matches(secret: &str, expected_hex: &str) -> bool {
    let got = secret_sha256(secret);
    aws_lc_rs::constant_time::verify_slices_are_equal(got.as_bytes(), expected_hex.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_only_their_secret_matches() {
        let t = generate_token().expect("token");
        let (id, secret) = parse_token(&t.token).expect("parse");
        assert_eq!(id, t.id);
        assert!(secret_matches(secret, &t.secret_sha256));
        let other = generate_token().expect("token");
        assert_ne!(other.id, t.id);
        let (_, other_secret) = parse_token(&other.token).expect("parse");
        assert!(!secret_matches(other_secret, &t.secret_sha256));
        assert!(!t.token.contains(&t.secret_sha256));
        for bad in [
            "",
            "fst_",
            "fst_abc_def",
            "xyz_0011223344556677_00",
            &t.token[1..],
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
