//! Wire formats, pure: parse and emit, no I/O.

pub mod announce;
pub mod checksum;
pub mod ip;
pub mod ipv4;
pub mod vrrp;

use std::net::IpAddr;

/// Address family of a VRRP instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(address: &IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn address_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Why a received message is discarded. Every RFC 9568 discard rule that can be judged from
/// the bytes alone has its own variant; the shell counts drops by variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: {got} bytes where {needed} are needed")]
    Truncated { needed: usize, got: usize },
    #[error("unknown VRRP version {0}")]
    UnknownVersion(u8),
    #[error("VRRPv2 is IPv4 only")]
    V2OverIpv6,
    #[error("unknown VRRP message type {0}")]
    UnknownType(u8),
    #[error("virtual router id 0")]
    ZeroVrid,
    #[error("address count 0")]
    ZeroCount,
    #[error("advertisement interval 0")]
    ZeroInterval,
    #[error("bad checksum {got:#06x}, expected {expected:#06x}")]
    BadChecksum { got: u16, expected: u16 },
    #[error("TTL or hop limit {0}, VRRP requires 255")]
    BadTtl(u8),
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    #[error("malformed IPv4 header: {0}")]
    BadIpHeader(&'static str),
    #[error("cannot be sent: {0}")]
    Unrepresentable(&'static str),
    /// The IP length says more than the message's address count declares (keepalived
    /// rejects these too).
    #[error("{got} bytes where the address count declares {declared}: trailing bytes")]
    TrailingBytes { declared: usize, got: usize },
}

impl WireError {
    /// A short stable name for counters and metrics.
    pub fn counter_name(&self) -> &'static str {
        match self {
            WireError::Truncated { .. } => "truncated",
            WireError::UnknownVersion(_) => "unknown_version",
            WireError::V2OverIpv6 => "v2_over_ipv6",
            WireError::UnknownType(_) => "unknown_type",
            WireError::ZeroVrid => "zero_vrid",
            WireError::ZeroCount => "zero_count",
            WireError::ZeroInterval => "zero_interval",
            WireError::BadChecksum { .. } => "bad_checksum",
            WireError::BadTtl(_) => "bad_ttl",
            WireError::NotVrrp(_) => "not_vrrp",
            WireError::BadIpHeader(_) => "bad_ip_header",
            WireError::Unrepresentable(_) => "unrepresentable",
            WireError::TrailingBytes { .. } => "trailing_bytes",
        }
    }
}
