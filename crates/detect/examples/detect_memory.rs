//! What threat detection costs per device at carrier scale: one message from each of N devices
//! (default 1,000,000) through the detector running the car-mobility template, then the growth of the
//! process's resident memory per device, and the single-thread evaluation rate.
//!
//! Run: `cargo run --release -p sekisho-detect --example detect_memory [N]`
//!
//! Measured at 1,000,000 devices (the system allocator, glibc): 119 bytes a device, the same at
//! 250,000 and 4,000,000 (was 230). Where they go: 48 of rule state ([`sekisho_detect::DeviceState`]
//! in 16 shards); 29.5 of device index (11 of id packed in the arena, 4 of arena offset, 4 of field
//! number, 10.5 of `u32` hash table, 2^21 slots of 5 bytes); 27.3 of shared-address window (one
//! 12-byte entry an address seen from one device, 2^21 slots of 13 bytes); 4 of silence wheel (one
//! `u32` a scheduled device); about 9 of free space the allocator keeps after the tables grew.

use sekisho_core::clock::SystemClock;
use sekisho_core::{AuthMode, Device, DeviceId, DeviceStatus, Field, FieldId, FieldLimits};
use sekisho_detect::engine::Detector;
use sekisho_detect::rules::MessageFacts;
use sekisho_script::host::{DiscardFaults, ScriptHost};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

/// No SIM has an address (the devices of this run have no SIM).
struct NoSims;

impl sekisho_core::detection::SimIps for NoSims {
    fn current_ip(&self, _imsi: &str) -> Option<IpAddr> {
        None
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let template = sekisho_detect::template::library("car-mobility")
        .expect("library")
        .compile()
        .expect("compiles");
    let scripts = ScriptHost::new(1, Arc::new(DiscardFaults), Arc::new(SystemClock));
    let (detector, _findings) =
        Detector::new(template, Arc::new(NoSims), 1 << 20, Arc::new(scripts));
    let field = Field {
        id: FieldId("f_00000000000000000001".into()),
        name: "cars".into(),
        auth_id: "aid".into(),
        auth_mode: AuthMode::Secret,
        limits: FieldLimits::default(),
        cloud: None,
        created_at: 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let body = br#"{"engine":"on","speed":42,"seq":1}"#;
    let before = rss_bytes();
    let started = Instant::now();
    for i in 0..n {
        let device = Device {
            id: DeviceId(format!("d_{:020x}", i)),
            field_id: field.id.clone(),
            unique_id: String::new(),
            name: None,
            sim: None,
            critical: false,
            status: DeviceStatus::Active,
            cert_sha256: None,
            created_at: 0,
            updated_at: 0,
        };
        let facts = MessageFacts {
            rx_ms: now,
            device_ts_ms: Some(now),
            bad_ts: false,
            seq: Some(1),
            buffered: false,
            size: body.len() as u32,
            rejected: None,
            source_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            body: Some(body),
            sim_ip: None,
        };
        detector.on_message(&field, &device, &facts);
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    let (devices, wheel) = detector.sizes();
    let growth = after.saturating_sub(before);
    println!("devices                 {devices}");
    println!("silence wheel entries   {wheel}");
    println!(
        "rule state per device   {} bytes (DeviceState, asserted at compile time)",
        std::mem::size_of::<sekisho_detect::DeviceState>()
    );
    println!(
        "RSS growth              {:.1} MiB",
        growth as f64 / 1048576.0
    );
    println!(
        "RSS growth per device   {:.0} bytes (state + id index + silence wheel + shared-address window)",
        growth as f64 / devices.max(1) as f64
    );
    println!(
        "first-message rate      {:.0} messages/s on one thread ({:.2} s)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}
