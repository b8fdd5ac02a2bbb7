//! The per-device state the built-in rules keep: 48 bytes, asserted at compile time, so ten million
//! devices fit in 480 MB. Times are seconds since 2024-01-01 (`u32`, good until 2160).

/// Seconds from the Unix epoch to 2024-01-01T00:00:00Z.
pub const EPOCH_BASE: i64 = 1_704_067_200;

/// Unix milliseconds → state seconds (clamped into `u32`).
pub fn secs(unix_ms: i64) -> u32 {
    (unix_ms.div_euclid(1000) - EPOCH_BASE).clamp(0, u32::MAX as i64) as u32
}

/// State seconds → Unix milliseconds.
pub fn unix_ms(s: u32) -> i64 {
    (s as i64 + EPOCH_BASE) * 1000
}

pub const HAS_TS: u8 = 1;
pub const HAS_SEQ: u8 = 2;
pub const SEEN: u8 = 4;
/// The device has an entry in the silence wheel.
pub const SCHEDULED: u8 = 8;
pub const HAS_RATE_WINDOW: u8 = 16;
pub const HAS_MIN_WINDOW: u8 = 32;
pub const HAS_VOL_WINDOW: u8 = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// Gateway time of the latest message.
    pub last_rx: u32,
    /// Latest device timestamp seen (the device's own clock).
    pub last_ts: u32,
    /// Highest `seq` seen.
    pub last_seq: i64,
    /// Start (device time) and count of the current max-rate window.
    pub rate_start: u32,
    /// Start (device time) and count of the current min-rate window.
    pub min_start: u32,
    pub rate_count: u16,
    pub min_count: u16,
    /// Index of the current regime in the field's compiled template.
    pub regime: u8,
    /// Highest silence step already reported since the latest message (0 none, 1-3).
    pub silence_level: u8,
    pub flags: u8,
    _pad: u8,
    /// Hash of the latest source address (IPv4 as is).
    pub last_ip: u32,
    /// Start (gateway time) and bytes of the current volume window.
    pub vol_start: u32,
    pub vol_bytes: u32,
}

const _: () = assert!(
    std::mem::size_of::<DeviceState>() <= 48,
    "per-device detection state must stay small"
);

impl DeviceState {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// A 32-bit key for an address (IPv4 itself; IPv6 folded).
pub fn ip_key(ip: std::net::IpAddr) -> u32 {
    match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            (0..4).fold(0u32, |acc, i| {
                acc ^ u32::from_be_bytes([o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]])
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_48_bytes_and_times_round_trip() {
        assert_eq!(std::mem::size_of::<DeviceState>(), 48);
        let ms = 1_795_611_600_000;
        assert_eq!(unix_ms(secs(ms)), ms);
        assert_eq!(secs(0), 0);
    }
}
