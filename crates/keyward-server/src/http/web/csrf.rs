//! CSRF tokens for the web forms and for the session cookie on the management API:
//! synchronizer tokens bound to the browser they were given to.
//!
//! A token is `base64url(HMAC-SHA-256(key, binding))`, where the binding is
//!
//! - the **session cookie** (`keyward_session`) when the browser has one: a token works
//!   for that session only, and a session's tokens die with it;
//! - otherwise a **pre-session cookie** (`keyward_csrf`, 32 random characters,
//!   `HttpOnly`, `SameSite=Strict`), set by the first page that needs a token — the
//!   `/login` form — so that signing in is protected too (login CSRF).
//!
//! The cookie alone proves nothing: a token can only be computed with the key, so a
//! forged pair (`keyward_csrf=x` with `csrf=x`), an empty pair, or another session's
//! token is refused. The binding is the cookie's plain value, which only the browser and
//! the server see (the database holds the session's hash only).
//!
//! **The key** is shared by every instance behind a load balancer, so a form rendered by
//! one instance is accepted by another: it is made by the first instance that starts (32
//! random bytes) and kept in the database (`server_secrets`, name `csrf`); every other
//! instance reads it at start. See docs/decisions.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use keyward_core::secret::SecretKind;
use keyward_store::Store;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key CSRF tokens are computed with. Never printed.
pub struct CsrfKey(Vec<u8>);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

/// What a token is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding<'a> {
    /// The session cookie's value.
    Session(&'a str),
    /// The pre-session cookie's value.
    PreSession(&'a str),
}

impl CsrfKey {
    /// The deployment's key: the stored one, or a new one that this instance stores.
    pub async fn load(store: &Store) -> keyward_store::Result<Self> {
        let mut fresh = [0u8; 32];
        OsRng.fill_bytes(&mut fresh);
        let stored = store.server_secret("csrf", &hex::encode(fresh)).await?;
        Ok(Self(stored.into_bytes()))
    }

    /// A key from bytes (tests).
    pub fn from_bytes(key: &[u8]) -> Self {
        Self(key.to_vec())
    }

    /// The token for `binding`.
    pub fn token(&self, binding: Binding<'_>) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        // Domain-separated, so a session value and a pre-session value never share a token.
        let (kind, value) = match binding {
            Binding::Session(v) => ("session", v),
            Binding::PreSession(v) => ("pre-session", v),
        };
        for part in ["keyward csrf v1", kind, value] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` is the token for `binding`, compared in constant time. An
    /// empty token is never right.
    pub fn verify(&self, binding: Binding<'_>, presented: &str) -> bool {
        let expected = self.token(binding);
        !presented.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// A pre-session cookie value keyward made: 32 letters and digits.
pub fn is_pre_session_value(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new pre-session cookie value.
pub fn new_pre_session_value() -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    OsRng.sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// What the request's cookies bind a token to: the session cookie when it has the form
/// of a session secret, else the pre-session cookie when it is one keyward could have
/// made. `None`: neither (no token can be right).
pub fn binding_of<'a>(
    secrets: &keyward_core::secret::SecretFormat,
    session: Option<&'a str>,
    pre_session: Option<&'a str>,
) -> Option<Binding<'a>> {
    match (session, pre_session) {
        (Some(s), _) if secrets.check(s) == Ok(SecretKind::Session) => Some(Binding::Session(s)),
        (_, Some(p)) if is_pre_session_value(p) => Some(Binding::PreSession(p)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::secret::SecretFormat;

    fn key() -> CsrfKey {
        CsrfKey::from_bytes(b"a test key, not a real one")
    }

    #[test]
    fn a_token_is_bound_to_its_cookie_and_key() {
        let k = key();
        let pre = "abcdefghijklmnopqrstuvwxyz012345";
        let token = k.token(Binding::PreSession(pre));
        assert_eq!(token.len(), 43);
        assert!(k.verify(Binding::PreSession(pre), &token));
        assert_eq!(token, k.token(Binding::PreSession(pre)), "stable for one cookie");
        // The cookie's own value, another cookie's token, another key's, empty: refused.
        assert!(!k.verify(Binding::PreSession(pre), pre));
        assert!(!k.verify(Binding::PreSession("bbcdefghijklmnopqrstuvwxyz012345"), &token));
        assert!(!CsrfKey::from_bytes(b"another key").verify(Binding::PreSession(pre), &token));
        assert!(!k.verify(Binding::PreSession(pre), ""));
        assert!(!k.verify(Binding::PreSession(""), ""));
        // A session value and a pre-session value never share a token.
        assert!(!k.verify(Binding::Session(pre), &token));
        let changed: String = token.chars().rev().collect();
        assert!(!k.verify(Binding::PreSession(pre), &changed));
    }

    #[test]
    fn the_binding_is_the_session_when_there_is_one() {
        let f = SecretFormat::new("kw").unwrap();
        let session = f.generate(SecretKind::Session);
        let pre = new_pre_session_value();
        assert!(is_pre_session_value(&pre));
        assert_eq!(binding_of(&f, Some(session.expose()), Some(&pre)), Some(Binding::Session(session.expose())));
        assert_eq!(binding_of(&f, None, Some(&pre)), Some(Binding::PreSession(&pre)));
        // A cookie that is no session secret does not count as one.
        assert_eq!(binding_of(&f, Some("x"), Some(&pre)), Some(Binding::PreSession(&pre)));
        assert_eq!(binding_of(&f, Some("x"), Some("x")), None);
        assert_eq!(binding_of(&f, None, Some("")), None);
        assert_eq!(binding_of(&f, None, None), None);
    }
}
