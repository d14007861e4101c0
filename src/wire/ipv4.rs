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

/// Writes a 20-byte IPv4 header for a VRRP message of `payload_len` bytes (as the kernel puts
/// in front of what a raw socket sends): what a simulated LAN or a test feeds to
/// [`split_vrrp`].
pub fn emit_header(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload_len: usize) -> [u8; 20] {
    let total = (20 + payload_len) as u16;
    let mut header = [0u8; 20];
    header[0] = 0x45;
    header[1] = 0xc0;
    header[2..4].copy_from_slice(&total.to_be_bytes());
    header[8] = ttl;
    header[9] = PROTOCOL_VRRP;
    header[12..16].copy_from_slice(&src.octets());
    header[16..20].copy_from_slice(&dst.octets());
    let sum = super::checksum::plain(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emitted_header_splits_back() {
        let src = Ipv4Addr::new(192, 0, 2, 11);
        let dst = Ipv4Addr::new(224, 0, 0, 18);
        let mut packet = emit_header(src, dst, 255, 3).to_vec();
        packet.extend_from_slice(&[1, 2, 3]);
        let (header, payload) = split_vrrp(&packet).unwrap();
        assert_eq!((header.src, header.dst, header.ttl), (src, dst, 255));
        assert_eq!(payload, &[1, 2, 3]);
        assert_eq!(super::super::checksum::plain(&packet[..20]), 0);
    }
}
