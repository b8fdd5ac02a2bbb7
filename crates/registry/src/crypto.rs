//! Secrets: random tokens, their SHA-256 fingerprints, and Argon2id password hashes.
//!
//! Tokens and secrets are 32 random bytes, shown to their holder once (base64url) and stored only as
//! SHA-256 (tokens, looked up by hash) or Argon2id (device secrets and passwords, slow by design).

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `N` random bytes from the operating system.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// A new random secret (token, device secret, password) as base64url text, 256 bits.
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn argon2() -> Argon2<'static> {
    // OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id hash of `secret` as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub fn hash_password(secret: &str) -> String {
    let salt = random::<16>();
    let mut out = [0u8; 32];
    argon2()
        .hash_password_into(secret.as_bytes(), &salt, &mut out)
        .expect("Argon2 with fixed parameters");
    format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// Checks `secret` against a hash made by [`hash_password`], in constant time.
pub fn verify_password(secret: &str, phc: &str) -> bool {
    let mut parts = phc.split('$').skip(4);
    let (Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (STANDARD_NO_PAD.decode(salt), STANDARD_NO_PAD.decode(hash))
    else {
        return false;
    };
    if !phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") || expected.len() != 32 {
        return false;
    }
    let mut out = [0u8; 32];
    if argon2()
        .hash_password_into(secret.as_bytes(), &salt, &mut out)
        .is_err()
    {
        return false;
    }
    out.ct_eq(&expected[..]).into()
}

/// A hash that never verifies, used to spend the same time when the account does not exist.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", dummy_hash()));
        assert!(!verify_password("x", "garbage"));
        assert_ne!(hash_password("correct horse"), h, "salted");
    }

    #[test]
    fn secrets_are_256_bits() {
        let s = new_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&s).unwrap().len(), 32);
        assert_ne!(s, new_secret());
    }
}
