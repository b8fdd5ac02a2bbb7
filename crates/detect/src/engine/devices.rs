//! The numbering of the devices detection has seen: device index ↔ (device id, field), compactly.
//!
//! Every id is stored once, back to back in one byte arena: a gateway-issued id (`d_` and 20 lowercase
//! hex digits, [`DeviceId::from_random`]) as a marker byte and its 10 bytes, any other id as its UTF-8
//! bytes. A device's index locates its id through a table of `u32` offsets, and a hash table of `u32`
//! device indices, hashed by the stored bytes, finds the index of an id. Per device that is 11 bytes of
//! id (a gateway-issued one), 4 bytes of offset, 4 bytes of field number and about 10 bytes of hash
//! table (4-byte slots and 1 control byte, at most 7/8 full and at least 7/16 after a growth), whatever
//! the number of devices: no allocation, pointer or reference count per device. Lookups encode the id
//! on the stack, hash it and compare bytes in the arena; they never allocate.

use hashbrown::{DefaultHashBuilder, HashTable};
use sekisho_core::{DeviceId, FieldId};
use std::collections::HashMap;
use std::hash::BuildHasher;

/// The first stored byte of a packed gateway-issued id (never the first byte of UTF-8 text).
const PACKED: u8 = 0xff;
/// The random bytes of a gateway-issued id.
const RANDOM: usize = 10;
/// Hex digits, as gateway-issued ids spell them.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// An id as the arena stores it: packed when gateway-issued, else its bytes. Lives on the stack.
struct Key<'a> {
    packed: [u8; 1 + RANDOM],
    raw: Option<&'a [u8]>,
}

impl<'a> Key<'a> {
    fn of(id: &'a str) -> Self {
        let mut packed = [PACKED; 1 + RANDOM];
        let digits = id
            .strip_prefix(DeviceId::PREFIX)
            .map(str::as_bytes)
            .filter(|d| d.len() == 2 * RANDOM);
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let ok = digits.is_some_and(|d| {
            d.chunks_exact(2).zip(&mut packed[1..]).all(|(pair, out)| {
                match (nibble(pair[0]), nibble(pair[1])) {
                    (Some(hi), Some(lo)) => {
                        *out = hi << 4 | lo;
                        true
                    }
                    _ => false,
                }
            })
        });
        Self {
            packed,
            raw: (!ok).then_some(id.as_bytes()),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.raw.unwrap_or(&self.packed)
    }
}

/// The id stored as `bytes` (`None` if they are not a stored id).
fn unpack(bytes: &[u8]) -> Option<String> {
    match bytes.split_first() {
        Some((&PACKED, random)) if random.len() == RANDOM => {
            let mut s = String::with_capacity(DeviceId::PREFIX.len() + 2 * RANDOM);
            s.push_str(DeviceId::PREFIX);
            for b in random {
                s.push(char::from(HEX[usize::from(b >> 4)]));
                s.push(char::from(HEX[usize::from(b & 15)]));
            }
            Some(s)
        }
        _ => std::str::from_utf8(bytes).ok().map(str::to_owned),
    }
}

/// Device index ↔ (device id, field) for every device detection has seen. Indices are dense, from 0,
/// in order of first sight; a device keeps its index (and the field it was first seen in) for the life
/// of the process. Holds at most `u32::MAX` devices and 4 GiB of ids; beyond, new devices are refused.
#[derive(Default)]
pub(super) struct Devices {
    /// Every id as [`Key`] stores it, back to back.
    ids: Vec<u8>,
    /// Device `i`'s id is `ids[starts[i]..starts[i + 1]]` (one entry more than devices, from 0).
    starts: Vec<u32>,
    /// Device `i`'s field, as an index into `fields`.
    field_of: Vec<u32>,
    /// Device indices, hashed by their stored ids.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    fields: Vec<FieldId>,
    field_index: HashMap<FieldId, u32>,
}

/// Device `i`'s stored id (`i` must be a device's index).
fn stored<'a>(ids: &'a [u8], starts: &[u32], i: u32) -> &'a [u8] {
    let i = i as usize;
    &ids[starts[i] as usize..starts[i + 1] as usize]
}

impl Devices {
    /// The number of devices.
    pub(super) fn len(&self) -> usize {
        self.field_of.len()
    }

    /// The index of the device stored as `key`, and the key's hash.
    fn find(&self, key: &[u8]) -> (Option<u32>, u64) {
        let hash = self.hasher.hash_one(key);
        let (ids, starts) = (&self.ids, &self.starts);
        let found = self.table.find(hash, |&i| stored(ids, starts, i) == key);
        (found.copied(), hash)
    }

    /// The index of device `id`, if it has one. Does not allocate.
    pub(super) fn get(&self, id: &str) -> Option<u32> {
        self.find(Key::of(id).bytes()).0
    }

    /// The index of device `id`, numbering it (in `field`) if it has none; `None` when the table is
    /// full (see [`Devices`]). A device already numbered keeps its index and field.
    pub(super) fn insert(&mut self, id: &str, field: &FieldId) -> Option<u32> {
        let key = Key::of(id);
        let key = key.bytes();
        let (found, hash) = self.find(key);
        if found.is_some() {
            return found;
        }
        let i = u32::try_from(self.field_of.len()).ok()?;
        let end = u32::try_from(self.ids.len() + key.len()).ok()?;
        let f = match self.field_index.get(field) {
            Some(f) => *f,
            None => {
                let f = u32::try_from(self.fields.len()).ok()?;
                self.fields.push(field.clone());
                self.field_index.insert(field.clone(), f);
                f
            }
        };
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.ids.extend_from_slice(key);
        self.starts.push(end);
        self.field_of.push(f);
        let (ids, starts, hasher) = (&self.ids, &self.starts, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(stored(ids, starts, j)));
        Some(i)
    }

    /// Device `i`'s id.
    fn id(&self, i: u32) -> Option<DeviceId> {
        if i as usize >= self.len() {
            return None;
        }
        unpack(stored(&self.ids, &self.starts, i)).map(DeviceId)
    }

    /// Device `i`'s id and field.
    pub(super) fn owner(&self, i: u32) -> Option<(DeviceId, FieldId)> {
        let f = *self.field_of.get(i as usize)?;
        Some((self.id(i)?, self.fields.get(f as usize)?.clone()))
    }

    /// The first `cap` devices of `field` (index and id), in order of index.
    pub(super) fn of_field(&self, field: &FieldId, cap: usize) -> Vec<(u32, DeviceId)> {
        let Some(fi) = self.field_index.get(field).copied() else {
            return Vec::new();
        };
        self.field_of
            .iter()
            .enumerate()
            .filter(|(_, f)| **f == fi)
            .filter_map(|(i, _)| Some((i as u32, self.id(i as u32)?)))
            .take(cap)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u32) -> FieldId {
        FieldId(format!("f_{n:020}"))
    }

    #[test]
    fn numbers_devices_in_order_and_finds_them() {
        let mut d = Devices::default();
        assert_eq!(d.get("a"), None);
        assert_eq!(d.owner(0), None);
        assert_eq!(d.insert("a", &field(1)), Some(0));
        assert_eq!(d.insert("bb", &field(2)), Some(1));
        assert_eq!(d.insert("", &field(1)), Some(2), "an empty id is an id");
        assert_eq!(
            (d.get("a"), d.get("bb"), d.get("")),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(d.get("b"), None, "a prefix of an id is not the id");
        assert_eq!(d.get("abb"), None, "neighbours in the arena are not an id");
        assert_eq!(d.owner(1), Some((DeviceId("bb".into()), field(2))));
        assert_eq!(d.owner(3), None);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_device_seen_again_keeps_its_index_and_field() {
        let mut d = Devices::default();
        assert_eq!(d.insert("d_1", &field(1)), Some(0));
        assert_eq!(d.insert("d_2", &field(1)), Some(1));
        assert_eq!(d.insert("d_1", &field(2)), Some(0));
        assert_eq!(d.len(), 2);
        assert_eq!(d.owner(0), Some((DeviceId("d_1".into()), field(1))));
        assert_eq!(d.ids, b"d_1d_2", "the id is stored once");
    }

    #[test]
    fn gateway_issued_ids_are_packed_and_others_kept_as_they_are() {
        let issued = DeviceId::from_random([0, 1, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0x10, 0x99, 0xff]);
        assert_eq!(issued.as_str(), "d_00017f80abcdef1099ff");
        let others = [
            "d_00017F80ABCDEF1099FF",
            "d_00017f80abcdef1099f",
            "d_00017f80abcdef1099ffa",
            "x_00017f80abcdef1099ff",
            "d_00017f80abcdef1099fg",
            "d_ 0017f80abcdef1099ff",
            "d_00017f80abcdéf1099f",
            "capteur-é",
        ];
        let mut d = Devices::default();
        assert_eq!(d.insert(issued.as_str(), &field(1)), Some(0));
        assert_eq!(d.ids.len(), 11);
        for (n, id) in others.iter().enumerate() {
            assert_eq!(d.get(id), None, "{id} is not the issued id");
            assert_eq!(d.insert(id, &field(1)), Some(n as u32 + 1));
        }
        assert_eq!(d.get(issued.as_str()), Some(0));
        assert_eq!(d.owner(0), Some((issued, field(1))));
        for (n, id) in others.iter().enumerate() {
            assert_eq!(d.get(id), Some(n as u32 + 1));
            assert_eq!(
                d.owner(n as u32 + 1),
                Some((DeviceId((*id).into()), field(1)))
            );
        }
        assert_eq!(
            d.ids.len(),
            11 + others.iter().map(|id| id.len()).sum::<usize>()
        );
    }

    #[test]
    fn many_devices_across_growths_and_fields() {
        let mut d = Devices::default();
        let n = 100_000u32;
        for i in 0..n {
            assert_eq!(d.insert(&format!("d_{i:020x}"), &field(i % 7)), Some(i));
        }
        for i in (0..n).rev() {
            let id = format!("d_{i:020x}");
            assert_eq!(d.get(&id), Some(i));
            assert_eq!(d.insert(&id, &field(0)), Some(i));
            assert_eq!(d.owner(i), Some((DeviceId(id), field(i % 7))));
        }
        assert_eq!(d.get("d_"), None);
        assert_eq!(d.len(), n as usize);
        assert_eq!(
            d.ids.len(),
            11 * n as usize,
            "gateway-issued ids are packed"
        );
        let of_3 = d.of_field(&field(3), 2);
        assert_eq!(
            of_3,
            vec![
                (3, DeviceId(format!("d_{:020x}", 3))),
                (10, DeviceId(format!("d_{:020x}", 10)))
            ]
        );
        assert!(d.of_field(&field(8), 10).is_empty());
    }
}
