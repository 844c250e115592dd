//! How a request presents a credential, parsed from raw header bytes.
//!
//! Precedence (DESIGN.md): `Authorization: Bearer`, then `Authorization: Basic` (the key
//! as the username; the literal user `apikey` with the key as password; otherwise a
//! client id and secret), then the API-key header. An `Authorization` header that is
//! present but cannot be read is an error, never a reason to look elsewhere, so a wrong
//! credential can never fall through to anonymous.

use std::borrow::Cow;

use base64::Engine;

use crate::secret::SecretFormat;

/// Longest header value considered; longer ones are refused before any work.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// Where a secret came from; recorded for audit and shown in `/api/v1/me`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Bearer,
    BasicUsername,
    BasicApikeyUser,
    /// A service account's client id and secret as HTTP Basic.
    BasicClient,
    Header,
    /// The web UI's session cookie (management API only, read by the server when no
    /// other credential is present).
    SessionCookie,
}

/// A credential as presented, before any lookup.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A secret: an API key (keyward's or imported) or a token, told apart later by
    /// prefix. Borrowed from the header when it can be (Bearer, API-key header).
    Secret { value: Cow<'a, str>, via: Via },
    /// Basic `user:password` where the user is not `apikey` and not a keyward-format
    /// key and the password is not empty: a client id and client secret, or an imported
    /// key given as the username with a password that is ignored.
    BasicPair { user: String, password: String },
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Secret { via, .. } => write!(f, "Secret({via:?})"),
            Presented::BasicPair { .. } => f.write_str("BasicPair"),
        }
    }
}

/// Why a present credential could not be read. The message is safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the Authorization header is not valid text")]
    NotText,
    #[error("the credential is too long")]
    TooLong,
    #[error("the Authorization scheme must be Bearer or Basic")]
    UnknownScheme,
    #[error("the Bearer credential is empty")]
    EmptyBearer,
    #[error("the Basic credential is not base64 of user:password")]
    BadBasic,
    #[error("the API key header is empty")]
    EmptyHeader,
}

/// Reads the credential from the `Authorization` header and the API-key header (raw
/// bytes, as they arrived). `Ok(None)`: no credential at all.
pub fn parse<'a>(
    authorization: Option<&'a [u8]>,
    api_key_header: Option<&'a [u8]>,
    format: &SecretFormat,
) -> Result<Option<Presented<'a>>, Malformed> {
    if let Some(raw) = authorization {
        return parse_authorization(raw, format).map(Some);
    }
    match api_key_header {
        None => Ok(None),
        Some(raw) => {
            let value = text(raw)?.trim();
            if value.is_empty() {
                return Err(Malformed::EmptyHeader);
            }
            Ok(Some(Presented::Secret { value: Cow::Borrowed(value), via: Via::Header }))
        }
    }
}

fn text(raw: &[u8]) -> Result<&str, Malformed> {
    if raw.len() > MAX_CREDENTIAL_LEN {
        return Err(Malformed::TooLong);
    }
    std::str::from_utf8(raw).map_err(|_| Malformed::NotText)
}

fn parse_authorization<'a>(raw: &'a [u8], format: &SecretFormat) -> Result<Presented<'a>, Malformed> {
    let value = text(raw)?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(Malformed::EmptyBearer);
        }
        return Ok(Presented::Secret { value: Cow::Borrowed(rest), via: Via::Bearer });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Malformed::UnknownScheme);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| Malformed::BadBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Malformed::BadBasic)?;
    // RFC 7617: the user-id cannot contain ':', so the first one separates.
    let (user, password) = decoded.split_once(':').ok_or(Malformed::BadBasic)?;
    if user == "apikey" {
        if password.is_empty() {
            return Err(Malformed::BadBasic);
        }
        return Ok(Presented::Secret { value: Cow::Owned(password.to_owned()), via: Via::BasicApikeyUser });
    }
    if user.is_empty() {
        return Err(Malformed::BadBasic);
    }
    if password.is_empty() || format.claims(user) {
        return Ok(Presented::Secret { value: Cow::Owned(user.to_owned()), via: Via::BasicUsername });
    }
    Ok(Presented::BasicPair { user: user.to_owned(), password: password.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw() -> SecretFormat {
        SecretFormat::new("kw").unwrap()
    }

    fn basic(s: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s)).into_bytes()
    }

    fn secret(value: &str, via: Via) -> Option<Presented<'static>> {
        Some(Presented::Secret { value: Cow::Owned(value.into()), via })
    }

    #[test]
    fn every_presentation() {
        let f = kw();
        assert_eq!(parse(Some(b"Bearer kw_abc"), None, &f), Ok(secret("kw_abc", Via::Bearer)));
        assert_eq!(parse(Some(b"bearer   kw_abc "), None, &f), Ok(secret("kw_abc", Via::Bearer)));
        assert_eq!(parse(Some(&basic("kw_abc:")), None, &f), Ok(secret("kw_abc", Via::BasicUsername)));
        assert_eq!(parse(Some(&basic("kw_abc:x")), None, &f), Ok(secret("kw_abc", Via::BasicUsername)));
        assert_eq!(parse(Some(&basic("legacy:")), None, &f), Ok(secret("legacy", Via::BasicUsername)));
        assert_eq!(parse(Some(&basic("apikey:kw_abc")), None, &f), Ok(secret("kw_abc", Via::BasicApikeyUser)));
        assert_eq!(
            parse(Some(&basic("client:s3:cr+t")), None, &f),
            Ok(Some(Presented::BasicPair { user: "client".into(), password: "s3:cr+t".into() }))
        );
        assert_eq!(parse(None, Some(b"kw_abc"), &f), Ok(secret("kw_abc", Via::Header)));
        assert_eq!(parse(None, None, &f), Ok(None));
    }

    #[test]
    fn authorization_wins_over_the_header_and_never_falls_through() {
        let f = kw();
        assert_eq!(parse(Some(b"Bearer a"), Some(b"b"), &f), Ok(secret("a", Via::Bearer)));
        assert_eq!(parse(Some(b"Digest x"), Some(b"b"), &f), Err(Malformed::UnknownScheme));
        assert_eq!(parse(Some(b"Bearer"), None, &f), Err(Malformed::EmptyBearer));
        assert_eq!(parse(Some(b"Basic !!!"), None, &f), Err(Malformed::BadBasic));
        assert_eq!(parse(Some(&basic("apikey:")), None, &f), Err(Malformed::BadBasic));
        assert_eq!(parse(Some(&basic("nocolon")), None, &f), Err(Malformed::BadBasic));
        assert_eq!(parse(Some(b"Bearer \xff\xfe"), None, &f), Err(Malformed::NotText));
        assert_eq!(parse(None, Some(b" "), &f), Err(Malformed::EmptyHeader));
        assert_eq!(parse(Some(&vec![b'a'; 5000]), None, &f), Err(Malformed::TooLong));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            auth in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            header in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        ) {
            let _ = parse(auth.as_deref(), header.as_deref(), &kw());
        }

        #[test]
        fn never_panics_on_arbitrary_basic_payloads(payload in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut raw = b"Basic ".to_vec();
            raw.extend(base64::engine::general_purpose::STANDARD.encode(&payload).into_bytes());
            let _ = parse(Some(&raw), None, &kw());
        }
    }
}
