//! Recovery at open: every segment is read frame by frame and each frame authenticated. A frame that
//! does not authenticate is damage: recovery looks for the next frame that does, so what follows the
//! damage is kept, and reports the offsets it could not recover. Bytes after the last good frame of
//! the newest segment are a torn tail (a group commit the crash interrupted): they are cut off and
//! reported too. Nothing is skipped without a [`Damage`] entry.

use crate::segment::{
    FRAME_HEADER_LEN, FRAME_MAGIC, FrameHeader, HEADER_LEN, MasterKey, SegmentHeader, SegmentKey,
};
use crate::{FramePos, Segment};
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What recovery found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub kind: DamageKind,
    /// Byte position in the segment where the damage starts.
    pub at: u64,
    /// Damaged bytes (0 for a gap between intact frames).
    pub bytes: u64,
    /// The record offsets that could not be recovered, where the frames around the damage tell.
    pub lost: Option<Range<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Bytes after the newest segment's last intact frame, cut off.
    TornTail,
    /// Bytes that do not authenticate, between intact frames or before a segment's end.
    Corrupt,
    /// The segment header does not parse or names an unknown key: none of its frames can be read.
    UnreadableSegment,
    /// Intact frames whose offsets do not follow on.
    Gap,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} in {} at byte {} ({} bytes)",
            self.kind,
            self.segment.display(),
            self.at,
            self.bytes
        )?;
        if let Some(l) = &self.lost {
            write!(f, ", records {}..{} lost", l.start, l.end)?;
        }
        Ok(())
    }
}

/// What a recovery pass found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub segments: usize,
    /// Records readable in the log.
    pub records: u64,
    /// The offset the next record gets.
    pub next_offset: u64,
    pub damage: Vec<Damage>,
}

/// Segment files in `dir`, by base offset (from the file name).
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// Whether the segment at `path` has an intact header sealed with a key from `master`.
fn opens(path: &Path, master: &MasterKey) -> bool {
    let mut hb = [0u8; HEADER_LEN];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut hb, 0))
        .ok()
        .and_then(|()| SegmentHeader::decode(&hb))
        .is_some_and(|h| SegmentHeader::check(&hb, &SegmentKey::derive(master, &h.salt)))
}

/// Reads the frame at `pos` if it is whole and authenticates.
fn frame_at(
    file: &File,
    len: u64,
    pos: u64,
    key: &SegmentKey,
    buf: &mut Vec<u8>,
) -> Option<FrameHeader> {
    if len.saturating_sub(pos) < FRAME_HEADER_LEN as u64 {
        return None;
    }
    let mut h = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut h, pos).ok()?;
    let header = FrameHeader::decode(&h)?;
    if pos + header.frame_len() > len || header.count == 0 {
        return None;
    }
    buf.resize(header.len as usize, 0);
    file.read_exact_at(buf, pos + FRAME_HEADER_LEN as u64)
        .ok()?;
    let plain = key.open(&header, buf)?;
    crate::segment::split_records(plain, header.count)?;
    Some(header)
}

/// The next position after `from` where an intact frame starts.
fn resync(
    file: &File,
    len: u64,
    from: u64,
    key: &SegmentKey,
    buf: &mut Vec<u8>,
) -> Option<(u64, FrameHeader)> {
    const CHUNK: usize = 1 << 16;
    let mut chunk = vec![0u8; CHUNK + FRAME_MAGIC.len()];
    let mut pos = from + 1;
    while pos + FRAME_HEADER_LEN as u64 <= len {
        let n = ((len - pos) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], pos).ok()?;
        for i in 0..n.saturating_sub(FRAME_MAGIC.len() - 1) {
            if &chunk[i..i + FRAME_MAGIC.len()] == FRAME_MAGIC
                && let Some(h) = frame_at(file, len, pos + i as u64, key, buf)
            {
                return Some((pos + i as u64, h));
            }
        }
        pos += CHUNK as u64;
    }
    None
}

/// Scans every segment of `dir`; cuts a torn tail off the newest one.
pub(crate) fn recover(dir: &Path, master: &MasterKey) -> io::Result<(Vec<Segment>, Recovery)> {
    let files = list(dir)?;
    // Segments cut short while being created say nothing about the key.
    let whole: Vec<_> = files
        .iter()
        .filter(|(_, p)| std::fs::metadata(p).is_ok_and(|m| m.len() >= HEADER_LEN as u64))
        .collect();
    if !whole.is_empty() && whole.iter().all(|(_, p)| !opens(p, master)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the key does not open the message log in {}", dir.display()),
        ));
    }
    let mut report = Recovery {
        segments: files.len(),
        ..Recovery::default()
    };
    let mut segments = Vec::with_capacity(files.len());
    let mut buf = Vec::new();
    let mut expected: Option<u64> = None;
    for (i, (name_base, path)) in files.iter().enumerate() {
        let newest = i + 1 == files.len();
        let next_base = files.get(i + 1).map(|(b, _)| *b);
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut hb = [0u8; HEADER_LEN];
        let header = file
            .read_exact_at(&mut hb, 0)
            .ok()
            .and_then(|()| SegmentHeader::decode(&hb))
            .filter(|h| h.key_id == master.id && h.base == *name_base)
            .map(|h| (SegmentKey::derive(master, &h.salt), h))
            .filter(|(key, _)| SegmentHeader::check(&hb, key));
        let Some((key, header)) = header else {
            if newest && len < HEADER_LEN as u64 {
                // Created but never written past a torn header: nothing in it was acknowledged.
                report.damage.push(Damage {
                    segment: path.clone(),
                    kind: DamageKind::TornTail,
                    at: 0,
                    bytes: len,
                    lost: None,
                });
                std::fs::remove_file(path)?;
                report.segments -= 1;
                continue;
            }
            // Kept for whoever investigates, out of the writer's way.
            let aside = path.with_extension("seg.damaged");
            std::fs::rename(path, &aside)?;
            report.damage.push(Damage {
                segment: aside,
                kind: DamageKind::UnreadableSegment,
                at: 0,
                bytes: len,
                lost: next_base.map(|n| *name_base..n),
            });
            report.segments -= 1;
            expected = Some(expected.unwrap_or(0).max(next_base.unwrap_or(*name_base)));
            continue;
        };
        let mut frames = Vec::new();
        let mut at = expected.unwrap_or(header.base).max(header.base);
        if let Some(e) = expected
            && header.base > e
        {
            report.damage.push(Damage {
                segment: path.clone(),
                kind: DamageKind::Gap,
                at: 0,
                bytes: 0,
                lost: Some(e..header.base),
            });
        }
        let mut pos = HEADER_LEN as u64;
        let mut max_nonce = 0u64;
        while pos < len {
            let found = match frame_at(&file, len, pos, &key, &mut buf) {
                Some(h) => Some((pos, h)),
                None => resync(&file, len, pos, &key, &mut buf),
            };
            let Some((fpos, h)) = found else {
                let kind = if newest {
                    DamageKind::TornTail
                } else {
                    DamageKind::Corrupt
                };
                report.damage.push(Damage {
                    segment: path.clone(),
                    kind,
                    at: pos,
                    bytes: len - pos,
                    lost: next_base.filter(|n| *n > at).map(|n| at..n),
                });
                if newest {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(pos)?;
                } else if let Some(n) = next_base {
                    // Reported here; not again as a gap before the next segment.
                    at = at.max(n);
                }
                break;
            };
            if fpos > pos {
                report.damage.push(Damage {
                    segment: path.clone(),
                    kind: DamageKind::Corrupt,
                    at: pos,
                    bytes: fpos - pos,
                    lost: (h.first > at).then_some(at..h.first),
                });
            } else if h.first > at {
                report.damage.push(Damage {
                    segment: path.clone(),
                    kind: DamageKind::Gap,
                    at: pos,
                    bytes: 0,
                    lost: Some(at..h.first),
                });
            }
            pos = fpos + h.frame_len();
            max_nonce = max_nonce.max(h.nonce);
            if h.first < at {
                // Offsets seen already: a frame copied in from elsewhere, never a frame this log wrote.
                report.damage.push(Damage {
                    segment: path.clone(),
                    kind: DamageKind::Corrupt,
                    at: fpos,
                    bytes: h.frame_len(),
                    lost: None,
                });
                continue;
            }
            frames.push(FramePos {
                first: h.first,
                pos: fpos,
            });
            report.records += u64::from(h.count);
            at = h.first + u64::from(h.count);
        }
        expected = Some(at);
        segments.push(Segment {
            base: header.base,
            end: at,
            path: path.clone(),
            file: Arc::new(file),
            key: Arc::new(key),
            frames,
        });
    }
    report.next_offset = expected.unwrap_or(0);
    // An empty newest segment is removed: the writer starts a fresh one (with a fresh key) either way.
    if let Some(last) = segments.last()
        && last.frames.is_empty()
        && last.base == report.next_offset
    {
        std::fs::remove_file(&last.path)?;
        segments.pop();
        report.segments -= 1;
    }
    Ok((segments, report))
}
