//! User codes of the device authorization grant (RFC 8628 §6.1).
//!
//! Eight characters from `BCDFGHJKLMNPQRSTVWXZ` — twenty consonants, no vowels (so no
//! words), no digits or look-alikes — shown `XXXX-XXXX`. That is about 34.6 bits: enough
//! while a code lives ten minutes *and* wrong entries are rate-limited, which the server
//! does. A person may type one in any case, with or without the dash or spaces.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;

/// The alphabet of user codes.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (without the dash).
pub const LEN: usize = 8;

/// A user code in its canonical form: eight upper-case letters from [`ALPHABET`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// A new code from the OS CSPRNG.
    pub fn generate() -> Self {
        let code = (0..LEN).map(|_| ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char).collect();
        Self(code)
    }

    /// Reads a code as a person typed it: any case; dashes and spaces ignored. `None`
    /// for anything else (a wrong length, a character not in the alphabet).
    pub fn parse(typed: &str) -> Option<Self> {
        if typed.len() > 32 {
            return None;
        }
        let code: String =
            typed.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(Self(code))
    }

    /// The canonical form, as stored: `BCDFGHJK`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form shown to people: `BCDF-GHJK`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({})", self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_codes_use_the_alphabet_and_show_with_a_dash() {
        for _ in 0..100 {
            let c = UserCode::generate();
            assert_eq!(c.as_str().len(), LEN);
            assert!(c.as_str().bytes().all(|b| ALPHABET.contains(&b)));
            let shown = c.display();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(UserCode::parse(&shown), Some(c.clone()));
        }
    }

    #[test]
    fn typed_codes_are_read_in_any_case_with_or_without_the_dash() {
        let c = UserCode::parse("BCDF-GHJK").unwrap();
        for typed in ["bcdfghjk", "bcdf-ghjk", " BcDf GhJk ", "BCDFGHJK"] {
            assert_eq!(UserCode::parse(typed).as_ref(), Some(&c), "{typed}");
        }
        for wrong in ["BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "", "ß"] {
            assert_eq!(UserCode::parse(wrong), None, "{wrong}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = UserCode::parse(&s);
        }
    }
}
