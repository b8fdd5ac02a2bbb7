//! The on-disk format: a segment file is a 64-byte header followed by frames, one frame per group
//! commit.
//!
//! ```text
//! segment header (plaintext, 80 bytes)
//!   magic     8   b"SKSHLOG1"
//!   key id    4   u32 LE: which master key the segment key is derived from (1: the database key)
//!   reserved  4   zero
//!   base      8   u64 LE: the offset of the segment's first record
//!   salt     32   random: HKDF salt of this segment's key
//!   check    16   AES-256-GCM tag over the 56 bytes before it (nonce u64::MAX): a wrong key shows
//!                 here, before any frame is judged
//!   reserved  8   zero
//! frame
//!   magic     4   b"SKF1"
//!   length    4   u32 LE: ciphertext length, tag included
//!   first     8   u64 LE: offset of the frame's first record
//!   count     4   u32 LE: records in the frame
//!   nonce     8   u64 LE: the segment's frame counter, the AEAD nonce (never reused under one key)
//!   sealed    length bytes: AES-256-GCM over the records, the 28 header bytes as associated data
//! records (plaintext, inside the seal): for each, u32 LE length then the bytes
//! ```
//!
//! Each segment has its own key, derived from the master key and the segment's random salt, so a
//! nonce is unique under its key as long as a segment never writes the same frame counter twice. The
//! writer never reopens a segment for writing: after a restart it starts a new one.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

pub const SEGMENT_MAGIC: &[u8; 8] = b"SKSHLOG1";
pub const FRAME_MAGIC: &[u8; 4] = b"SKF1";
pub const HEADER_LEN: usize = 80;
pub const FRAME_HEADER_LEN: usize = 28;
pub const TAG_LEN: usize = 16;
/// The key id of keys derived from the database key.
pub const KEY_ID_DATABASE: u32 = 1;
const KDF_INFO: &[u8] = b"sekisho message log v1";

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub key_id: u32,
    pub base: u64,
    pub salt: [u8; 32],
}

/// The nonce of the header check; frames count up from 0 and never reach it.
const CHECK_NONCE: u64 = u64::MAX;

impl SegmentHeader {
    /// The header, its check sealed with the segment's `key`.
    pub fn encode(&self, key: &SegmentKey) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(SEGMENT_MAGIC);
        h[8..12].copy_from_slice(&self.key_id.to_le_bytes());
        h[16..24].copy_from_slice(&self.base.to_le_bytes());
        h[24..56].copy_from_slice(&self.salt);
        let tag = key
            .0
            .seal_in_place_separate_tag(
                SegmentKey::nonce(CHECK_NONCE),
                Aad::from(&h[..56]),
                &mut [],
            )
            .expect("sealing nothing cannot fail");
        h[56..72].copy_from_slice(tag.as_ref());
        h
    }

    /// Whether `key` is the key this header was sealed with (and the header is unchanged).
    pub fn check(h: &[u8; HEADER_LEN], key: &SegmentKey) -> bool {
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&h[56..72]);
        key.0
            .open_in_place(
                SegmentKey::nonce(CHECK_NONCE),
                Aad::from(&h[..56]),
                &mut tag,
            )
            .is_ok()
    }

    pub fn decode(h: &[u8]) -> Option<Self> {
        if h.len() < HEADER_LEN || &h[..8] != SEGMENT_MAGIC {
            return None;
        }
        Some(Self {
            key_id: u32::from_le_bytes(h[8..12].try_into().ok()?),
            base: u64::from_le_bytes(h[16..24].try_into().ok()?),
            salt: h[24..56].try_into().ok()?,
        })
    }
}

/// A frame's plaintext header (also its associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub first: u64,
    pub count: u32,
    pub nonce: u64,
}

impl FrameHeader {
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut h = [0u8; FRAME_HEADER_LEN];
        h[..4].copy_from_slice(FRAME_MAGIC);
        h[4..8].copy_from_slice(&self.len.to_le_bytes());
        h[8..16].copy_from_slice(&self.first.to_le_bytes());
        h[16..20].copy_from_slice(&self.count.to_le_bytes());
        h[20..28].copy_from_slice(&self.nonce.to_le_bytes());
        h
    }

    /// `None` unless `h` starts with the frame magic.
    pub fn decode(h: &[u8]) -> Option<Self> {
        if h.len() < FRAME_HEADER_LEN || &h[..4] != FRAME_MAGIC {
            return None;
        }
        Some(Self {
            len: u32::from_le_bytes(h[4..8].try_into().ok()?),
            first: u64::from_le_bytes(h[8..16].try_into().ok()?),
            count: u32::from_le_bytes(h[16..20].try_into().ok()?),
            nonce: u64::from_le_bytes(h[20..28].try_into().ok()?),
        })
    }

    /// The whole frame's length on disk.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// The master keys segment keys derive from, by key id.
#[derive(Clone)]
pub struct MasterKey {
    pub id: u32,
    bytes: [u8; 32],
}

impl MasterKey {
    pub fn new(id: u32, bytes: [u8; 32]) -> Self {
        Self { id, bytes }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

/// One segment's sealing key.
pub struct SegmentKey(LessSafeKey);

impl SegmentKey {
    pub fn derive(master: &MasterKey, salt: &[u8; 32]) -> Self {
        let prk = Salt::new(HKDF_SHA256, salt).extract(&master.bytes);
        let okm = prk
            .expand(&[KDF_INFO], &AES_256_GCM)
            .expect("HKDF output of one AES-256 key is within bounds");
        Self(LessSafeKey::new(UnboundKey::from(okm)))
    }

    fn nonce(counter: u64) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[..8].copy_from_slice(&counter.to_le_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Seals `frame[FRAME_HEADER_LEN..]` in place (the records) and appends the tag; writes the header.
    pub fn seal(&self, frame: &mut Vec<u8>, first: u64, count: u32, nonce: u64) {
        let len = (frame.len() - FRAME_HEADER_LEN + TAG_LEN) as u32;
        let header = FrameHeader {
            len,
            first,
            count,
            nonce,
        }
        .encode();
        frame[..FRAME_HEADER_LEN].copy_from_slice(&header);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Self::nonce(nonce),
                Aad::from(&header),
                &mut frame[FRAME_HEADER_LEN..],
            )
            .expect("sealing a frame below 4 GiB cannot fail");
        frame.extend_from_slice(tag.as_ref());
    }

    /// Opens a sealed frame body in place; returns the records' bytes, or `None` if it does not
    /// authenticate.
    pub fn open<'a>(&self, header: &FrameHeader, sealed: &'a mut [u8]) -> Option<&'a mut [u8]> {
        self.0
            .open_in_place(
                Self::nonce(header.nonce),
                Aad::from(&header.encode()),
                sealed,
            )
            .ok()
    }
}

/// Splits a frame's opened bytes into its records; `None` if they do not hold exactly `count`.
pub fn split_records(plain: &[u8], count: u32) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(count as usize);
    let mut rest = plain;
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        out.push(rest.get(4..4 + n)?);
        rest = &rest[4 + n..];
    }
    (out.len() == count as usize).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_frame_opens_with_its_key_only_and_every_bit_counts() {
        let master = MasterKey::new(KEY_ID_DATABASE, [9; 32]);
        let key = SegmentKey::derive(&master, &[1; 32]);
        let mut frame = vec![0u8; FRAME_HEADER_LEN];
        for r in [&b"first"[..], b"second record"] {
            frame.extend_from_slice(&(r.len() as u32).to_le_bytes());
            frame.extend_from_slice(r);
        }
        key.seal(&mut frame, 40, 2, 7);
        assert!(
            !frame.windows(6).any(|w| w == b"second"),
            "plaintext leaked"
        );
        let h = FrameHeader::decode(&frame).unwrap();
        assert_eq!((h.first, h.count, h.nonce), (40, 2, 7));
        assert_eq!(h.frame_len(), frame.len() as u64);

        let mut body = frame[FRAME_HEADER_LEN..].to_vec();
        let plain = key.open(&h, &mut body).unwrap();
        let records = split_records(plain, 2).unwrap();
        assert_eq!(records, vec![&b"first"[..], b"second record"]);

        // Another segment's key, a changed header field, or any flipped bit does not open.
        let other = SegmentKey::derive(&master, &[2; 32]);
        assert!(
            other
                .open(&h, &mut frame[FRAME_HEADER_LEN..].to_vec())
                .is_none()
        );
        let moved = FrameHeader { first: 41, ..h };
        assert!(
            key.open(&moved, &mut frame[FRAME_HEADER_LEN..].to_vec())
                .is_none()
        );
        for bit in [0, 77, (frame.len() - FRAME_HEADER_LEN) * 8 - 1] {
            let mut body = frame[FRAME_HEADER_LEN..].to_vec();
            body[bit / 8] ^= 1 << (bit % 8);
            assert!(key.open(&h, &mut body).is_none(), "bit {bit}");
        }
    }

    #[test]
    fn headers_round_trip_and_reject_other_files() {
        let h = SegmentHeader {
            key_id: 1,
            base: 1 << 40,
            salt: [3; 32],
        };
        let master = MasterKey::new(KEY_ID_DATABASE, [9; 32]);
        let key = SegmentKey::derive(&master, &h.salt);
        let bytes = h.encode(&key);
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        assert!(SegmentHeader::check(&bytes, &key));
        let wrong = SegmentKey::derive(&MasterKey::new(KEY_ID_DATABASE, [8; 32]), &h.salt);
        assert!(!SegmentHeader::check(&bytes, &wrong));
        let mut moved = bytes;
        moved[16] ^= 1;
        assert!(!SegmentHeader::check(&moved, &key));
        assert_eq!(SegmentHeader::decode(b"SQLite format 3\0"), None);
        assert_eq!(split_records(&[1, 0, 0], 1), None);
        assert_eq!(split_records(&[1, 0, 0, 0, 5], 2), None);
    }
}
