//! The secret format: typed by prefix, random, checksummed; and what is stored of it.
//!
//! A secret reads `{P}{kind}_{body}{check}`: `{P}` is the deployment's prefix (`kw`),
//! `{kind}` is empty for an API key, `at` for an access token, `rt` for a refresh token,
//! `sa` for a service-account secret, `dc` for a device code and `ss` for a browser
//! session; `{body}` is 32 base62 characters from the OS
//! CSPRNG (about 190 bits); `{check}` is the CRC32 of everything before it in six base62
//! characters. So the server knows which verification path to take before any database
//! work, a typo or a truncated paste is refused without a lookup, and a secret scanner
//! can match `kw_[0-9A-Za-z]{38}` and validate the checksum offline.
//!
//! Only [`SecretHash`] (SHA-256 of the whole secret) is stored. SHA-256 without a pepper
//! is enough here: the input has ~190 bits of entropy, so the hash cannot be brute-forced,
//! and it keeps every process that shares the database (server, CLI) able to compute it
//! without sharing another secret.

use std::fmt;

use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Number of random base62 characters in a secret.
pub const BODY_LEN: usize = 32;
/// Number of base62 characters of the checksum.
pub const CHECK_LEN: usize = 6;
/// Number of leading characters stored in clear and shown in lists.
pub const DISPLAY_PREFIX_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a secret is for; chosen by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    ApiKey,
    AccessToken,
    RefreshToken,
    ServiceAccountSecret,
    /// The device code of a device authorization (RFC 8628), held by the client.
    DeviceCode,
    /// A browser session (the `keyward_session` cookie).
    Session,
}

impl SecretKind {
    /// The infix between the deployment prefix and the `_`.
    fn infix(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "",
            SecretKind::AccessToken => "at",
            SecretKind::RefreshToken => "rt",
            SecretKind::ServiceAccountSecret => "sa",
            SecretKind::DeviceCode => "dc",
            SecretKind::Session => "ss",
        }
    }

    const ALL: [SecretKind; 6] = [
        SecretKind::ApiKey,
        SecretKind::AccessToken,
        SecretKind::RefreshToken,
        SecretKind::ServiceAccountSecret,
        SecretKind::DeviceCode,
        SecretKind::Session,
    ];
}

/// Why a string is not one of this deployment's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It does not start with this deployment's prefix: maybe an imported legacy key.
    #[error("not a keyward secret")]
    Foreign,
    /// It starts like a keyward secret but its length or alphabet is wrong.
    #[error("malformed secret")]
    Malformed,
    /// The checksum does not match: a typo or a truncated paste.
    #[error("secret checksum mismatch")]
    Checksum,
}

/// The deployment's secret prefix (`key_prefix`), e.g. `kw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFormat {
    prefix: String,
}

impl SecretFormat {
    /// Parses a deployment prefix: 1–12 characters of `a-z` and `0-9`, starting with a
    /// letter. Any such prefix is unambiguous: kinds are told apart by what stands
    /// between the prefix and the first `_`, which the random body never contains.
    pub fn new(prefix: &str) -> Result<Self, crate::domain::Invalid> {
        let ok = (1..=12).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self { prefix: prefix.to_owned() })
        } else {
            Err(crate::domain::Invalid(format!(
                "invalid key prefix {prefix:?}: use 1-12 characters of a-z and 0-9, starting with a letter"
            )))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new secret of `kind` from the OS CSPRNG.
    pub fn generate(&self, kind: SecretKind) -> PlainSecret {
        let mut s = String::with_capacity(self.prefix.len() + 3 + BODY_LEN + CHECK_LEN);
        s.push_str(&self.prefix);
        s.push_str(kind.infix());
        s.push('_');
        s.extend(OsRng.sample_iter(&Alphanumeric).take(BODY_LEN).map(char::from));
        let check = crc32fast::hash(s.as_bytes());
        s.push_str(&encode_check(check));
        PlainSecret { value: s, kind }
    }

    /// Whether `s` claims to be one of this deployment's secrets (starts with the
    /// prefix and a known kind), whether or not it is well formed. A string that does
    /// not is a candidate for the legacy (imported key) path.
    pub fn claims(&self, s: &str) -> bool {
        self.kind_of(s).is_some()
    }

    fn kind_of(&self, s: &str) -> Option<SecretKind> {
        let rest = s.strip_prefix(self.prefix.as_str())?;
        SecretKind::ALL.into_iter().find(|k| rest.strip_prefix(k.infix()).is_some_and(|r| r.starts_with('_')))
    }

    /// Parses a presented secret: prefix and kind, length, alphabet and checksum.
    pub fn parse(&self, s: &str) -> Result<PlainSecret, SecretError> {
        let kind = self.check(s)?;
        Ok(PlainSecret { value: s.to_owned(), kind })
    }

    /// What [`parse`](Self::parse) checks, without copying the secret: the request
    /// path hashes the presented text directly.
    pub fn check(&self, s: &str) -> Result<SecretKind, SecretError> {
        let kind = self.kind_of(s).ok_or(SecretError::Foreign)?;
        let head_len = self.prefix.len() + kind.infix().len() + 1;
        if s.len() != head_len + BODY_LEN + CHECK_LEN {
            return Err(SecretError::Malformed);
        }
        let (covered, check) = s.split_at(head_len + BODY_LEN);
        if !covered[head_len..].bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretError::Malformed);
        }
        let check = decode_check(check).ok_or(SecretError::Malformed)?;
        if check != crc32fast::hash(covered.as_bytes()) {
            return Err(SecretError::Checksum);
        }
        Ok(kind)
    }
}

fn encode_check(mut n: u32) -> String {
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    // 62^6 > 2^32, so nothing is left over.
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

fn decode_check(s: &str) -> Option<u32> {
    let mut n: u64 = 0;
    for b in s.bytes() {
        let digit = BASE62.iter().position(|&c| c == b)? as u64;
        n = n * 62 + digit;
    }
    u32::try_from(n).ok()
}

/// A secret in plain text. It exists only between generation and the one response
/// that shows it, or between a request and its hash; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainSecret {
    value: String,
    kind: SecretKind,
}

impl PlainSecret {
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// The plain text, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.value)
    }

    pub fn display_prefix(&self) -> DisplayPrefix {
        DisplayPrefix::of(&self.value)
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainSecret({:?}, {}…)", self.kind, self.display_prefix().as_str())
    }
}

/// The SHA-256 of a whole secret: what the database stores and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(plain: &str) -> Self {
        Self(Sha256::digest(plain.as_bytes()).into())
    }

    /// Parses the stored (lower-case hex) form; also how an imported SHA-256 hash enters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex.trim().to_ascii_lowercase(), &mut out).ok()?;
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time equality, for comparing a stored hash with a computed one.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// The first [`DISPLAY_PREFIX_LEN`] characters of a secret, stored in clear so people
/// can tell their keys apart. With the `kw_` prefix that leaves 9 random characters
/// (~53 bits) in view, which identifies a key without weakening the remaining ~137 bits.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayPrefix(String);

impl DisplayPrefix {
    pub fn of(plain: &str) -> Self {
        Self(plain.chars().take(DISPLAY_PREFIX_LEN).collect())
    }

    /// A stored display prefix, as read back from the database.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw() -> SecretFormat {
        SecretFormat::new("kw").unwrap()
    }

    #[test]
    fn kinds_are_told_apart_by_prefix() {
        let f = kw();
        for kind in SecretKind::ALL {
            let s = f.generate(kind);
            assert_eq!(f.parse(s.expose()).unwrap().kind(), kind);
        }
        assert!(f.generate(SecretKind::ApiKey).expose().starts_with("kw_"));
        assert!(f.generate(SecretKind::AccessToken).expose().starts_with("kwat_"));
        assert!(f.generate(SecretKind::RefreshToken).expose().starts_with("kwrt_"));
        assert!(f.generate(SecretKind::ServiceAccountSecret).expose().starts_with("kwsa_"));
    }

    #[test]
    fn truncated_and_foreign_secrets_are_refused() {
        let f = kw();
        let s = f.generate(SecretKind::ApiKey);
        let v = s.expose();
        assert_eq!(f.parse(&v[..v.len() - 1]), Err(SecretError::Malformed));
        assert_eq!(f.parse("sk_live_abc"), Err(SecretError::Foreign));
        assert_eq!(f.parse("kwx_abc"), Err(SecretError::Foreign));
        assert!(f.claims(v) && !f.claims("legacy-key-1234"));
    }

    #[test]
    fn the_check_encoding_covers_u32() {
        for n in [0, 1, 61, 62, u32::MAX] {
            assert_eq!(decode_check(&encode_check(n)), Some(n));
        }
        assert_eq!(decode_check("zzzzzz"), None, "62^6-1 exceeds u32");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = kw().generate(SecretKind::ApiKey);
        let shown = format!("{s:?} {:?}", s.hash());
        assert!(!shown.contains(&s.expose()[12..]));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = SecretHash::of("abc");
        assert_eq!(h.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(SecretHash::from_hex(&h.to_hex().to_uppercase()).unwrap().ct_eq(&h));
        assert!(SecretHash::from_hex("abc").is_none());
    }

    proptest! {
        #[test]
        fn generated_secrets_round_trip(kind in prop::sample::select(SecretKind::ALL.to_vec()),
                                        prefix in "[a-z][a-z0-9]{0,11}") {
            let f = SecretFormat::new(&prefix).unwrap();
            let s = f.generate(kind);
            prop_assert_eq!(f.parse(s.expose()), Ok(s.clone()));
            prop_assert_eq!(s.expose().len(), prefix.len() + kind.infix().len() + 1 + BODY_LEN + CHECK_LEN);
        }

        #[test]
        fn any_single_character_change_is_refused(pos in 0usize..41, c in prop::char::any()) {
            let f = kw();
            let s = f.generate(SecretKind::ApiKey);
            let v: Vec<char> = s.expose().chars().collect();
            let pos = pos % v.len();
            prop_assume!(v[pos] != c);
            let mut changed = v.clone();
            changed[pos] = c;
            let changed: String = changed.into_iter().collect();
            prop_assert!(f.parse(&changed).is_err(), "{} accepted", changed);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".*") {
            let _ = kw().parse(&s);
        }
    }
}
