//! Newtype identifiers. External ids are opaque strings with a kind prefix (`f_`, `d_`, `m_`, `u_`) so a
//! misplaced id is obvious in logs and errors.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Builds an id from random bytes supplied by the caller (this crate does no I/O).
            pub fn from_random(bytes: [u8; 10]) -> Self {
                let mut s = String::with_capacity(Self::PREFIX.len() + 20);
                s.push_str(Self::PREFIX);
                for b in bytes {
                    s.push_str(&format!("{b:02x}"));
                }
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// A field (tenant): one IoT service with its devices, credentials and cloud destination.
    FieldId,
    "f_"
);
id_type!(
    /// A registered device, as handed to the device in the token response (`device_id`).
    DeviceId,
    "d_"
);
id_type!(
    /// A console/API user.
    UserId,
    "u_"
);

/// A received message's id: a UUIDv7 (time-ordered), used as the idempotency key towards the cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

impl MessageId {
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_hex() {
        let d = DeviceId::from_random([0xab; 10]);
        assert_eq!(d.as_str(), "d_abababababababababab");
        assert!(FieldId::from_random([1; 10]).as_str().starts_with("f_01"));
    }

    #[test]
    fn message_ids_are_time_ordered() {
        let a = MessageId::new_v7();
        let b = MessageId::new_v7();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 36);
    }
}
