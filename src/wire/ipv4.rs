//! The IPv4 header in front of what a raw IPv4 socket delivers: just enough to check TTL,
//! protocol and addresses before the VRRP message is parsed.

use super::WireError;
use super::checksum::PROTOCOL_VRRP;
use std::net::Ipv4Addr;

/// The fields of an IPv4 header that VRRP reception needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
}

/// Splits a received IPv4 datagram into its header and payload, bounded by the header's
/// total length. Checks version, lengths, protocol 112 and TTL 255.
pub fn split_vrrp(datagram: &[u8]) -> Result<(Header, &[u8]), WireError> {
    if datagram.len() < 20 {
        return Err(WireError::Truncated {
            needed: 20,
            got: datagram.len(),
        });
    }
    if datagram[0] >> 4 != 4 {
        return Err(WireError::BadIpHeader("not IPv4"));
    }
    let header_len = usize::from(datagram[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if header_len < 20 || total_len < header_len {
        return Err(WireError::BadIpHeader("header length"));
    }
    if datagram.len() < total_len {
        return Err(WireError::Truncated {
            needed: total_len,
            got: datagram.len(),
        });
    }
    let header = Header {
        ttl: datagram[8],
        protocol: datagram[9],
        src: Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]),
        dst: Ipv4Addr::new(datagram[16], datagram[17], datagram[18], datagram[19]),
    };
    if header.protocol != PROTOCOL_VRRP {
        return Err(WireError::NotVrrp(header.protocol));
    }
    if header.ttl != 255 {
        return Err(WireError::BadTtl(header.ttl));
    }
    Ok((header, &datagram[header_len..total_len]))
}
