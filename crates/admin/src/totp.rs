//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): the administrators' second factor.
//!
//! HMAC-SHA1, 6 digits, 30-second steps, one step of clock drift either way — what every authenticator
//! app does by default. Secrets are 20 random bytes, shown to their owner as base32 (RFC 4648, no
//! padding) and as an `otpauth://` URI. Codes are compared in constant time.
//!
//! Replay: [`verify`] only accepts a step later than the last one the user used, so a code (and every
//! code before it) works once. Remembering that step is the caller's job (the store).
//!
//! Architecture invariant: no I/O and no clock here; every function takes the time it should use.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of clock drift accepted either side of the current one.
pub const WINDOW: u64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226 §4's recommendation for SHA-1).
pub const SECRET_LEN: usize = 20;

/// A new random secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    sekisho_registry::crypto::random()
}

/// The step a Unix time falls in.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// RFC 4226 HOTP before the final modulo: the dynamically truncated 31-bit value.
fn truncated(key: &[u8], counter: u64) -> u32 {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    u32::from_be_bytes([h[off], h[off + 1], h[off + 2], h[off + 3]]) & 0x7fff_ffff
}

/// The HOTP code of `counter` with `digits` digits, zero-padded.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let v = truncated(key, counter) % 10u32.pow(digits);
    format!("{v:0width$}", width = digits as usize)
}

/// The 6-digit code of a step.
pub fn code_at_step(key: &[u8], step: u64) -> String {
    hotp(key, step, DIGITS)
}

/// What a presented code turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Valid for this step, which is later than the last one used: accept it and remember the step.
    Valid(u64),
    /// Valid, but for a step already used (or earlier): a replay.
    Used,
    /// Not a code of any step in the window.
    Wrong,
}

/// Checks `code` against the steps around `unix_secs`. `last_step` is the last step this user used.
/// Every candidate step is computed and compared (in constant time), match or not.
pub fn verify(key: &[u8], code: &str, unix_secs: u64, last_step: Option<u64>) -> Check {
    let code = code.trim().as_bytes();
    let well_formed = code.len() == DIGITS as usize && code.iter().all(u8::is_ascii_digit);
    let now = step_at(unix_secs);
    let mut found = Check::Wrong;
    for step in now.saturating_sub(WINDOW)..=now + WINDOW {
        let expected = code_at_step(key, step);
        let same: bool = expected.as_bytes().ct_eq(code).into();
        if same && well_formed {
            let fresh = last_step.is_none_or(|last| step > last);
            found = match (found, fresh) {
                (Check::Valid(s), _) => Check::Valid(s),
                (_, true) => Check::Valid(step),
                (_, false) => Check::Used,
            };
        }
    }
    found
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 as people copy it: any case, spaces and `=` padding ignored. `None` on any other
/// character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        buf = (buf << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://` URI authenticator apps read (as a QR code or pasted):
/// `otpauth://totp/Sekisho:<user>?secret=…&issuer=Sekisho&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(user: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/Sekisho:{}?secret={}&issuer=Sekisho&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(user),
        base32_encode(secret)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed: the ASCII "12345678901234567890".
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // (Unix time, the RFC's 8-digit TOTP): its last 6 digits are the 6-digit code (both are the same
        // 31-bit value modulo a power of ten).
        for (t, totp8) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(hotp(SEED, step_at(t), 8), totp8, "t={t}");
            assert_eq!(code_at_step(SEED, step_at(t)), totp8[2..], "t={t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in want.iter().enumerate() {
            assert_eq!(code_at_step(SEED, counter as u64), *code);
        }
    }

    #[test]
    fn a_code_is_valid_one_step_either_side_and_only_once() {
        let t = 1_111_111_111; // step 37037037, code 050471
        let step = step_at(t);
        let code = code_at_step(SEED, step);
        let check = |code: &str, at: u64, last: Option<u64>| verify(SEED, code, at, last);
        assert_eq!(check(&code, t, None), Check::Valid(step));
        assert_eq!(check(&code, t - 30, None), Check::Valid(step));
        assert_eq!(check(&code, t + 30, None), Check::Valid(step));
        assert_eq!(check(&code, t + 60, None), Check::Wrong);
        assert_eq!(check(&code, t - 60, None), Check::Wrong);
        // Replay: the step was used, or a later one was.
        assert_eq!(check(&code, t, Some(step)), Check::Used);
        assert_eq!(check(&code, t, Some(step + 1)), Check::Used);
        assert_eq!(check(&code, t, Some(step - 1)), Check::Valid(step));
        // The next step's code still works after this one was used.
        let next = code_at_step(SEED, step + 1);
        assert_eq!(check(&next, t, Some(step)), Check::Valid(step + 1));
        // Not a code at all.
        for bad in ["", "12345", "1234567", "abcdef", "05047 ", "０５０４７１"] {
            assert_eq!(check(bad, t, None), Check::Wrong, "{bad:?}");
        }
        assert_eq!(check(" 050471 ", t, None), Check::Valid(step));
        assert_eq!(verify(SEED, &code, 0, None), Check::Wrong);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(raw.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), raw.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW1"), None);
        let s = new_secret();
        assert_eq!(base32_encode(&s).len(), 32);
        assert_eq!(base32_decode(&base32_encode(&s)).unwrap(), s);
        assert_ne!(new_secret(), s);
    }

    #[test]
    fn otpauth_uri_names_the_user_and_parameters() {
        assert_eq!(
            otpauth_uri("ops@example.jp", b"foobar"),
            "otpauth://totp/Sekisho:ops%40example.jp?secret=MZXW6YTBOI&issuer=Sekisho\
             &algorithm=SHA1&digits=6&period=30"
        );
    }
}
