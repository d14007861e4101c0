//! The IP layer around a received VRRP message, for both families in one place: raw IPv4
//! sockets deliver the whole IP packet, raw IPv6 sockets the message alone with the header
//! fields as ancillary data. Either way the same checks apply (protocol 112, TTL or hop limit
//! 255) before the message is parsed.

use super::Family;
use super::WireError;
use super::ipv4;
use super::vrrp::IpEnds;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The VRRP multicast group of a family (RFC 9568 sections 5.1.1.2 and 5.1.2.2).
pub fn multicast_group(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(MULTICAST_V4),
        Family::V6 => IpAddr::V6(MULTICAST_V6),
    }
}

/// A datagram as a raw VRRP socket hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// The whole IPv4 packet, header included.
    V4(&'a [u8]),
    /// The VRRP message, with what the kernel told of its IPv6 header.
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        message: &'a [u8],
    },
}

/// The source address of a datagram as far as it can be read (an IPv4 packet too short for
/// its header has none): for logs about what was dropped.
pub fn source(datagram: &Datagram<'_>) -> Option<IpAddr> {
    match datagram {
        Datagram::V4(packet) => {
            let bytes: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(bytes)))
        }
        Datagram::V6 { src, .. } => Some(IpAddr::V6(*src)),
    }
}

/// The addresses around the VRRP message and the message itself, once the IP-level checks
/// passed.
pub fn vrrp_message(datagram: Datagram<'_>) -> Result<(IpEnds, &[u8]), WireError> {
    match datagram {
        Datagram::V4(packet) => {
            let (header, message) = ipv4::split_vrrp(packet)?;
            let ends = IpEnds {
                src: header.src.into(),
                dst: header.dst.into(),
            };
            Ok((ends, message))
        }
        Datagram::V6 {
            src,
            dst,
            hop_limit,
            message,
        } => {
            if hop_limit != 255 {
                return Err(WireError::BadTtl(hop_limit));
            }
            let ends = IpEnds {
                src: src.into(),
                dst: dst.into(),
            };
            Ok((ends, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hop_limit_other_than_255_is_discarded() {
        let datagram = |hop_limit| Datagram::V6 {
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
            hop_limit,
            message: &[0x31, 1, 100, 1],
        };
        assert_eq!(vrrp_message(datagram(254)), Err(WireError::BadTtl(254)));
        assert!(vrrp_message(datagram(255)).is_ok());
    }
}
