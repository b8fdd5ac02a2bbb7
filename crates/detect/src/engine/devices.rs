//! The numbering of the devices detection has seen: device index ↔ (device id, field), compactly.
//!
//! Every id's bytes are stored once, back to back in one arena string; a device's index locates its id
//! through a table of `u32` offsets, and a hash table of `u32` device indices, hashed by the id's
//! bytes, finds the index of an id. Per device that is the id's length, 4 bytes of offset, 4 bytes of
//! field number and about 10 bytes of hash table (4-byte slots and 1 control byte, at most 7/8 full and
//! at least 7/16 after a growth), whatever the number of devices: no allocation, pointer or reference
//! count per device. Lookups hash the id and compare bytes in the arena; they never allocate.

use hashbrown::{DefaultHashBuilder, HashTable};
use sekisho_core::{DeviceId, FieldId};
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Device index ↔ (device id, field) for every device detection has seen. Indices are dense, from 0,
/// in order of first sight; a device keeps its index (and the field it was first seen in) for the life
/// of the process. Holds at most `u32::MAX` devices and 4 GiB of ids; beyond, new devices are refused.
#[derive(Default)]
pub(super) struct Devices {
    /// Every id, back to back.
    ids: String,
    /// Device `i`'s id is `ids[starts[i]..starts[i + 1]]` (one entry more than devices, from 0).
    starts: Vec<u32>,
    /// Device `i`'s field, as an index into `fields`.
    field_of: Vec<u32>,
    /// Device indices, hashed by the bytes of their ids.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    fields: Vec<FieldId>,
    field_index: HashMap<FieldId, u32>,
}

/// Device `i`'s id in the arena (`i` must be a device's index).
fn id_at<'a>(ids: &'a str, starts: &[u32], i: u32) -> &'a str {
    let i = i as usize;
    &ids[starts[i] as usize..starts[i + 1] as usize]
}

impl Devices {
    /// The number of devices.
    pub(super) fn len(&self) -> usize {
        self.field_of.len()
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id.as_bytes())
    }

    /// The index of device `id`, if it has one. Does not allocate.
    pub(super) fn get(&self, id: &str) -> Option<u32> {
        let (ids, starts) = (&self.ids, &self.starts);
        self.table
            .find(self.hash(id), |&i| id_at(ids, starts, i) == id)
            .copied()
    }

    /// The index of device `id`, numbering it (in `field`) if it has none; `None` when the table is
    /// full (see [`Devices`]). A device already numbered keeps its index and field.
    pub(super) fn insert(&mut self, id: &str, field: &FieldId) -> Option<u32> {
        if let Some(i) = self.get(id) {
            return Some(i);
        }
        let i = u32::try_from(self.field_of.len()).ok()?;
        let end = u32::try_from(self.ids.len() + id.len()).ok()?;
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
        self.ids.push_str(id);
        self.starts.push(end);
        self.field_of.push(f);
        let hash = self.hash(id);
        let (ids, starts, hasher) = (&self.ids, &self.starts, &self.hasher);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(id_at(ids, starts, j).as_bytes())
        });
        Some(i)
    }

    /// Device `i`'s id and field.
    pub(super) fn owner(&self, i: u32) -> Option<(DeviceId, FieldId)> {
        let f = *self.field_of.get(i as usize)?;
        Some((
            DeviceId(id_at(&self.ids, &self.starts, i).to_owned()),
            self.fields.get(f as usize)?.clone(),
        ))
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
            .take(cap)
            .map(|(i, _)| {
                let i = i as u32;
                (i, DeviceId(id_at(&self.ids, &self.starts, i).to_owned()))
            })
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
        assert_eq!(d.ids, "d_1d_2", "the id is stored once");
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
        assert_eq!(d.ids.len(), 22 * n as usize);
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
