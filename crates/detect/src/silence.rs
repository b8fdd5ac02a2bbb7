//! The silence wheel: when each device's next silence step falls due. One entry per device that may
//! still go silent, bucketed by second; messages never touch it (the due check reads the device's
//! state and reschedules when the device has spoken since). Memory and work grow with devices, not
//! with messages, and no task or timer exists per device.

use std::collections::BTreeMap;

#[derive(Default, Debug)]
pub struct Wheel {
    buckets: BTreeMap<u32, Vec<u32>>,
    len: usize,
}

impl Wheel {
    /// Schedules `device` (an index) at `at` (state seconds).
    pub fn schedule(&mut self, device: u32, at: u32) {
        self.buckets.entry(at).or_default().push(device);
        self.len += 1;
    }

    /// Removes and returns every device due at or before `now`.
    pub fn due(&mut self, now: u32) -> Vec<u32> {
        let later = self.buckets.split_off(&now.saturating_add(1));
        let due: Vec<u32> = std::mem::replace(&mut self.buckets, later)
            .into_values()
            .flatten()
            .collect();
        self.len -= due.len();
        due
    }

    /// The earliest scheduled time.
    pub fn next(&self) -> Option<u32> {
        self.buckets.keys().next().copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_what_is_due_in_order_of_time() {
        let mut w = Wheel::default();
        w.schedule(1, 100);
        w.schedule(2, 50);
        w.schedule(3, 100);
        w.schedule(4, 200);
        assert_eq!(w.next(), Some(50));
        assert_eq!(w.due(49), Vec::<u32>::new());
        assert_eq!(w.due(100), vec![2, 1, 3]);
        assert_eq!((w.len(), w.next()), (1, Some(200)));
        assert_eq!(w.due(u32::MAX), vec![4]);
        assert!(w.is_empty());
    }
}
