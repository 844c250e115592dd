//! Hashes of API keys imported from a system that ran before keyward.
//!
//! Imported keys keep the hash format they came with: a plain value is hashed with
//! SHA-256 at import (the plain value is never stored), a SHA-256 hex digest is taken
//! as is, and a bcrypt hash is kept until the key's first successful use, when it is
//! replaced by the fast SHA-256 form (bcrypt costs tens of milliseconds per check).

use crate::secret::SecretHash;

/// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`), as produced by `htpasswd -B` or most
/// web frameworks.
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(String);

impl std::fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BcryptHash(…)")
    }
}

impl BcryptHash {
    pub fn parse(s: &str) -> Result<Self, crate::domain::Invalid> {
        let s = s.trim();
        let shape_ok = s.len() == 60
            && ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p))
            && s.as_bytes()[6] == b'$'
            && s[4..6].parse::<u32>().is_ok_and(|cost| (4..=31).contains(&cost))
            // Salt and hash in bcrypt's base64 alphabet.
            && s.as_bytes()[7..].iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/'));
        // The bcrypt crate is the authority on the rest of the encoding; parsing its
        // parts computes nothing (a verify would cost a whole bcrypt round).
        if shape_ok && s.parse::<bcrypt::HashParts>().is_ok() {
            Ok(Self(s.to_owned()))
        } else {
            Err(crate::domain::Invalid(
                "not a bcrypt hash: expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a presented secret against the hash. Slow by design (the hash's cost):
    /// call it off the async runtime.
    pub fn verify(&self, plain: &str) -> bool {
        bcrypt::verify(plain, &self.0).unwrap_or(false)
    }
}

/// How an imported key's secret is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportedHash {
    /// SHA-256 of the plain key: the same form keyward's own keys use.
    Sha256(SecretHash),
    /// bcrypt, until the first successful use.
    Bcrypt(BcryptHash),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_of_every_variant_verify() {
        let h = bcrypt::hash_with_result("legacy-secret", 4).unwrap();
        for v in [bcrypt::Version::TwoA, bcrypt::Version::TwoB, bcrypt::Version::TwoY] {
            let parsed = BcryptHash::parse(&h.format_for_version(v)).unwrap();
            assert!(parsed.verify("legacy-secret"));
            assert!(!parsed.verify("legacy-secreT"));
        }
    }

    #[test]
    fn non_bcrypt_strings_are_refused() {
        for bad in ["", "$1$abc", "$2b$99$", &format!("$2b$10${}", "!".repeat(53))] {
            assert!(BcryptHash::parse(bad).is_err(), "{bad:?}");
        }
    }
}
