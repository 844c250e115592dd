//! Password hashing for people: argon2id with the crate's recommended parameters.
//! Both functions are CPU-heavy by design; servers call them off the async runtime.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq;

pub use argon2::Block;

/// The largest work area a stored hash may ask for (256 MiB): a hash with more is a
/// mismatch rather than an allocation without bound.
const MAX_BLOCKS: usize = 256 * 1024;

/// The PHC string (`$argon2id$v=19$…`) for `password`.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a generated salt")
        .to_string()
}

/// Whether `password` matches the stored PHC string; a malformed stored string is a
/// mismatch, never a panic.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false)
}

/// [`verify`] with a caller-owned work area: argon2id needs `m` KiB (19 MiB with the
/// defaults) per check, and a server that checks passwords under load keeps a few of
/// these areas and reuses them instead of asking the allocator for 19 MiB per check
/// (which, across many threads, is how resident memory grew to gigabytes and stayed).
/// `memory` grows to the size the stored hash needs and is left at that size.
pub fn verify_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash)) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks]).is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// The work area [`hash`]'s parameters need, in blocks of 1 KiB.
pub fn default_blocks() -> usize {
    Params::default().block_count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert!(!super::verify("x", "not a hash"));
    }

    #[test]
    fn verify_in_agrees_with_verify_and_reuses_its_memory() {
        let h = super::hash("correct horse");
        let mut memory = Vec::new();
        assert!(super::verify_in("correct horse", &h, &mut memory));
        assert_eq!(memory.len(), super::default_blocks());
        let area = memory.as_ptr();
        assert!(!super::verify_in("wrong horse", &h, &mut memory));
        assert_eq!(memory.as_ptr(), area, "the same work area serves the next check");
        assert!(!super::verify_in("x", "not a hash", &mut memory));
        assert!(!super::verify_in("x", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$", &mut memory));
        // A cost beyond the cap is refused, not allocated.
        let huge = h.replace("m=19456", "m=4000000");
        assert!(!super::verify_in("correct horse", &huge, &mut memory));
    }
}
