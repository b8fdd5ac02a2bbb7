//! RADIUS accounting (RFC 2866) as the carrier's packet gateway sends it: parse an
//! Accounting-Request, check its Request Authenticator against the client's shared secret, read
//! what Sekisho needs of it (IMSI, MSISDN, the SIM's address, session, octets in both directions),
//! and build the Accounting-Response. No I/O: the UDP listener, de-duplication and storage belong to
//! the carrier integration.
//!
//! Octet counts are 64-bit: `Acct-Input-Gigawords << 32 | Acct-Input-Octets` (RFC 2869). The IMSI is
//! the 3GPP vendor-specific attribute (vendor 10415, type 1, TS 29.061). "Input" is what the SIM sent
//! (uplink), "output" what it received (downlink).
#![forbid(unsafe_code)]

use md5::{Digest, Md5};
use std::net::Ipv4Addr;
use subtle::ConstantTimeEq;

pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
const HEADER: usize = 20;
const MAX_PACKET: usize = 4096;
const VENDOR_3GPP: u32 = 10415;

/// Why a packet was dropped (it is counted, never answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RadiusError {
    #[error("packet of {0} bytes: shorter than a RADIUS header or longer than 4096")]
    BadLength(usize),
    #[error("the length field says {field} but {actual} bytes arrived")]
    LengthMismatch { field: usize, actual: usize },
    #[error("code {0} is not Accounting-Request (4)")]
    NotAccounting(u8),
    #[error("attribute {0} overruns the packet or is shorter than 2 bytes")]
    BadAttribute(u8),
    #[error("the Request Authenticator does not match the shared secret")]
    BadAuthenticator,
    #[error("Acct-Status-Type is missing")]
    NoStatusType,
}

/// Acct-Status-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start,
    Stop,
    InterimUpdate,
    AccountingOn,
    AccountingOff,
    Other(u32),
}

impl Status {
    /// The Acct-Status-Type value.
    pub fn code(self) -> u32 {
        match self {
            Self::Start => 1,
            Self::Stop => 2,
            Self::InterimUpdate => 3,
            Self::AccountingOn => 7,
            Self::AccountingOff => 8,
            Self::Other(n) => n,
        }
    }

    /// A short name for records: `start`, `interim`, `stop`, `accounting_on`, `accounting_off`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::InterimUpdate => "interim",
            Self::AccountingOn => "accounting_on",
            Self::AccountingOff => "accounting_off",
            Self::Other(_) => "other",
        }
    }

    fn from(v: u32) -> Self {
        match v {
            1 => Self::Start,
            2 => Self::Stop,
            3 => Self::InterimUpdate,
            7 => Self::AccountingOn,
            8 => Self::AccountingOff,
            n => Self::Other(n),
        }
    }
}

/// What Sekisho reads from one Accounting-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    pub identifier: u8,
    /// The Request Authenticator (kept to build the response and to recognise retransmissions).
    pub authenticator: [u8; 16],
    pub status: Status,
    /// 3GPP-IMSI (vendor 10415, type 1).
    pub imsi: Option<String>,
    /// Calling-Station-Id (31): the MSISDN.
    pub msisdn: Option<String>,
    /// Framed-IP-Address (8): the SIM's current address.
    pub framed_ip: Option<Ipv4Addr>,
    /// Acct-Session-Id (44).
    pub session_id: Option<String>,
    /// Uplink: Acct-Input-Gigawords (52) << 32 | Acct-Input-Octets (42).
    pub input_octets: u64,
    /// Downlink: Acct-Output-Gigawords (53) << 32 | Acct-Output-Octets (43).
    pub output_octets: u64,
    /// Acct-Session-Time (46), seconds.
    pub session_time: Option<u32>,
}

fn request_authenticator(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(&packet[..4]);
    h.update([0u8; 16]);
    h.update(&packet[HEADER..]);
    h.update(secret);
    h.finalize().into()
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

fn text(v: &[u8]) -> Option<String> {
    std::str::from_utf8(v)
        .ok()
        .map(|s| s.trim_end_matches('\0').to_owned())
        .filter(|s| !s.is_empty())
}

/// Parses and authenticates an Accounting-Request sent with `secret`.
pub fn parse(packet: &[u8], secret: &[u8]) -> Result<Accounting, RadiusError> {
    if !(HEADER..=MAX_PACKET).contains(&packet.len()) {
        return Err(RadiusError::BadLength(packet.len()));
    }
    let field = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    if field < HEADER || field > packet.len() {
        return Err(RadiusError::LengthMismatch {
            field,
            actual: packet.len(),
        });
    }
    let packet = &packet[..field]; // octets past the length field are padding (RFC 2865 §3)
    if packet[0] != ACCOUNTING_REQUEST {
        return Err(RadiusError::NotAccounting(packet[0]));
    }
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&packet[4..HEADER]);
    if !bool::from(request_authenticator(packet, secret).ct_eq(&authenticator)) {
        return Err(RadiusError::BadAuthenticator);
    }
    let mut a = Accounting {
        identifier: packet[1],
        authenticator,
        status: Status::Other(0),
        imsi: None,
        msisdn: None,
        framed_ip: None,
        session_id: None,
        input_octets: 0,
        output_octets: 0,
        session_time: None,
    };
    let (mut status, mut in_lo, mut in_hi, mut out_lo, mut out_hi) = (None, 0u64, 0u64, 0u64, 0u64);
    let mut rest = &packet[HEADER..];
    while !rest.is_empty() {
        let (ty, len) = (
            rest[0],
            *rest.get(1).ok_or(RadiusError::BadAttribute(rest[0]))? as usize,
        );
        if len < 2 || len > rest.len() {
            return Err(RadiusError::BadAttribute(ty));
        }
        let v = &rest[2..len];
        match ty {
            8 => a.framed_ip = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from),
            31 => a.msisdn = text(v),
            40 => status = u32_of(v),
            42 => in_lo = u32_of(v).unwrap_or(0) as u64,
            43 => out_lo = u32_of(v).unwrap_or(0) as u64,
            44 => a.session_id = text(v),
            46 => a.session_time = u32_of(v),
            52 => in_hi = u32_of(v).unwrap_or(0) as u64,
            53 => out_hi = u32_of(v).unwrap_or(0) as u64,
            26 if v.len() >= 6 && u32_of(&v[..4]) == Some(VENDOR_3GPP) => {
                // One or more vendor sub-attributes: type, length, value.
                let mut sub = &v[4..];
                while sub.len() >= 2 {
                    let (st, sl) = (sub[0], sub[1] as usize);
                    if sl < 2 || sl > sub.len() {
                        return Err(RadiusError::BadAttribute(26));
                    }
                    if st == 1 {
                        a.imsi = text(&sub[2..sl]);
                    }
                    sub = &sub[sl..];
                }
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    a.status = Status::from(status.ok_or(RadiusError::NoStatusType)?);
    a.input_octets = in_hi << 32 | in_lo;
    a.output_octets = out_hi << 32 | out_lo;
    Ok(a)
}

/// Encodes `a` as an Accounting-Request signed with `secret`, as a packet gateway sends it (the
/// `authenticator` field is ignored and computed). Octet counts above 32 bits use the Gigawords
/// attributes. Used by tests and the carrier simulator.
pub fn request(a: &Accounting, secret: &[u8]) -> Vec<u8> {
    fn attr(out: &mut Vec<u8>, ty: u8, v: &[u8]) {
        out.push(ty);
        out.push((v.len() + 2) as u8);
        out.extend_from_slice(v);
    }
    let mut p = vec![ACCOUNTING_REQUEST, a.identifier, 0, 0];
    p.extend_from_slice(&[0u8; 16]);
    attr(&mut p, 40, &a.status.code().to_be_bytes());
    if let Some(s) = &a.session_id {
        attr(&mut p, 44, s.as_bytes());
    }
    if let Some(imsi) = &a.imsi {
        let mut v = VENDOR_3GPP.to_be_bytes().to_vec();
        v.push(1);
        v.push((imsi.len() + 2) as u8);
        v.extend_from_slice(imsi.as_bytes());
        attr(&mut p, 26, &v);
    }
    if let Some(m) = &a.msisdn {
        attr(&mut p, 31, m.as_bytes());
    }
    if let Some(ip) = a.framed_ip {
        attr(&mut p, 8, &ip.octets());
    }
    for (lo, hi, n) in [(42, 52, a.input_octets), (43, 53, a.output_octets)] {
        attr(&mut p, lo, &(n as u32).to_be_bytes());
        if n >> 32 != 0 {
            attr(&mut p, hi, &((n >> 32) as u32).to_be_bytes());
        }
    }
    if let Some(t) = a.session_time {
        attr(&mut p, 46, &t.to_be_bytes());
    }
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let auth = request_authenticator(&p, secret);
    p[4..HEADER].copy_from_slice(&auth);
    p
}

/// The Accounting-Response to a request (no attributes), authenticated with `secret`.
pub fn response(request: &Accounting, secret: &[u8]) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[0] = ACCOUNTING_RESPONSE;
    out[1] = request.identifier;
    out[2..4].copy_from_slice(&(HEADER as u16).to_be_bytes());
    let mut h = Md5::new();
    h.update(&out[..4]);
    h.update(request.authenticator);
    h.update(secret);
    let auth: [u8; 16] = h.finalize().into();
    out[4..].copy_from_slice(&auth);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an Accounting-Request as a packet gateway would.
    fn request(id: u8, attrs: &[(u8, Vec<u8>)], secret: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.push(*t);
            body.push((v.len() + 2) as u8);
            body.extend_from_slice(v);
        }
        let mut p = vec![ACCOUNTING_REQUEST, id];
        p.extend_from_slice(&((HEADER + body.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0u8; 16]);
        p.extend_from_slice(&body);
        let auth = request_authenticator(&p, secret);
        p[4..HEADER].copy_from_slice(&auth);
        p
    }

    #[test]
    fn request_round_trips_with_gigawords() {
        let a = Accounting {
            identifier: 9,
            authenticator: [0; 16],
            status: Status::InterimUpdate,
            imsi: Some("440101234567890".into()),
            msisdn: Some("819012345678".into()),
            framed_ip: Some(Ipv4Addr::new(10, 45, 0, 7)),
            session_id: Some("s-1".into()),
            input_octets: (3u64 << 32) + 17,
            output_octets: 1234,
            session_time: Some(60),
        };
        let p = super::request(&a, b"pgw-secret");
        let back = parse(&p, b"pgw-secret").unwrap();
        assert_eq!(
            back,
            Accounting {
                authenticator: back.authenticator,
                ..a
            }
        );
        assert_eq!(parse(&p, b"other"), Err(RadiusError::BadAuthenticator));
    }

    fn imsi_vsa(imsi: &str) -> Vec<u8> {
        let mut v = VENDOR_3GPP.to_be_bytes().to_vec();
        v.push(1);
        v.push((imsi.len() + 2) as u8);
        v.extend_from_slice(imsi.as_bytes());
        v
    }

    fn interim() -> Vec<(u8, Vec<u8>)> {
        vec![
            (40, 3u32.to_be_bytes().to_vec()),
            (26, imsi_vsa("440101234567890")),
            (31, b"819012345678".to_vec()),
            (8, vec![10, 20, 30, 40]),
            (44, b"sess-0001".to_vec()),
            (42, 5u32.to_be_bytes().to_vec()),
            (52, 1u32.to_be_bytes().to_vec()),
            (43, 7u32.to_be_bytes().to_vec()),
            (46, 600u32.to_be_bytes().to_vec()),
        ]
    }

    #[test]
    fn reads_what_the_packet_gateway_reports() {
        let p = request(9, &interim(), b"s3cret");
        let a = parse(&p, b"s3cret").unwrap();
        assert_eq!(a.status, Status::InterimUpdate);
        assert_eq!(a.imsi.as_deref(), Some("440101234567890"));
        assert_eq!(a.msisdn.as_deref(), Some("819012345678"));
        assert_eq!(a.framed_ip, Some(Ipv4Addr::new(10, 20, 30, 40)));
        assert_eq!(a.session_id.as_deref(), Some("sess-0001"));
        assert_eq!(a.input_octets, (1 << 32) + 5, "Gigawords count");
        assert_eq!(a.output_octets, 7);
        assert_eq!(a.session_time, Some(600));
    }

    #[test]
    fn the_shared_secret_authenticates_and_the_response_answers() {
        let p = request(9, &interim(), b"s3cret");
        assert_eq!(parse(&p, b"other"), Err(RadiusError::BadAuthenticator));
        let mut tampered = p.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            parse(&tampered, b"s3cret"),
            Err(RadiusError::BadAuthenticator)
        );
        let a = parse(&p, b"s3cret").unwrap();
        let r = response(&a, b"s3cret");
        assert_eq!(
            (r[0], r[1], u16::from_be_bytes([r[2], r[3]])),
            (ACCOUNTING_RESPONSE, 9, 20)
        );
        // Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret) (RFC 2866 §3).
        let mut h = Md5::new();
        h.update(&r[..4]);
        h.update(a.authenticator);
        h.update(b"s3cret");
        assert_eq!(&r[4..], &<[u8; 16]>::from(h.finalize())[..]);
    }

    #[test]
    fn malformed_packets_are_refused_without_panicking() {
        let good = request(1, &interim(), b"k");
        assert!(matches!(
            parse(&good[..10], b"k"),
            Err(RadiusError::BadLength(10))
        ));
        let mut long = good.clone();
        long[3] = 255;
        assert!(matches!(
            parse(&long, b"k"),
            Err(RadiusError::LengthMismatch { .. })
        ));
        let mut access = good.clone();
        access[0] = 1;
        assert_eq!(parse(&access, b"k"), Err(RadiusError::NotAccounting(1)));
        assert_eq!(
            parse(&request(1, &[(31, b"x".to_vec())], b"k"), b"k"),
            Err(RadiusError::NoStatusType)
        );
        // An attribute whose length runs past the end.
        let mut bad = request(1, &[(40, 1u32.to_be_bytes().to_vec())], b"k");
        bad[HEADER + 1] = 40;
        assert!(parse(&bad, b"k").is_err());
        // Every truncation and every single-byte corruption is an error or a parse, never a panic.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], b"k");
        }
        for i in 0..good.len() {
            let mut c = good.clone();
            c[i] = c[i].wrapping_add(0x55);
            let _ = parse(&c, b"k");
        }
        // Padding past the length field is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert!(parse(&padded, b"k").is_ok());
    }
}
