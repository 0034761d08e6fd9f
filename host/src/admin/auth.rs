//! Who may call the admin API: with `admin_token_file` set, only a request carrying
//! `Authorization: Bearer <token>`. The token presented is hashed and the digests compared in
//! constant time, so neither the time taken nor its length tells a caller how close it came.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminToken;

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// It carried no bearer token.
    Missing,
    /// It carried a token, not the right one.
    Wrong,
}

impl Refused {
    /// 401, with the `WWW-Authenticate` challenge RFC 6750 §3 asks for.
    pub(super) fn status(self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The challenge: `error="invalid_token"` when a token was given.
    pub(super) fn challenge(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Refused::Missing => "Bearer realm=\"vane admin\"",
            Refused::Wrong => "Bearer realm=\"vane admin\", error=\"invalid_token\"",
        })
    }

    /// The body, in a few words.
    pub(super) fn message(self) -> &'static str {
        match self {
            Refused::Missing => "this admin API needs an Authorization: Bearer token",
            Refused::Wrong => "the bearer token is not the admin API's",
        }
    }
}

/// Lets a request with `headers` in, or says why not; everything is let in without a token.
pub(super) fn check(token: Option<&AdminToken>, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()))
        .ok_or(Refused::Missing)?;
    let digest: [u8; 32] = Sha256::digest(presented).into();
    if bool::from(digest.ct_eq(token.digest())) {
        Ok(())
    } else {
        Err(Refused::Wrong)
    }
}

/// The token of a `Bearer` credential (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AdminToken {
        let folder = std::env::temp_dir().join(format!("vane-auth-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        AdminToken::read(&path).unwrap()
    }

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_right_bearer_token_is_let_in() {
        let token = token();
        assert_eq!(
            check(Some(&token), &HeaderMap::new()),
            Err(Refused::Missing)
        );
        assert_eq!(
            check(Some(&token), &with("Basic YTpi")),
            Err(Refused::Missing)
        );
        assert_eq!(check(Some(&token), &with("Bearer ")), Err(Refused::Missing));
        assert_eq!(
            check(Some(&token), &with("Bearer 0123456789abcdef012")),
            Err(Refused::Wrong)
        );
        assert_eq!(
            check(Some(&token), &with("Bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(
            check(Some(&token), &with("bearer  0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(check(None, &HeaderMap::new()), Ok(()));
    }
}
