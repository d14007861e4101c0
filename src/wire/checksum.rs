//! The Internet checksum (RFC 1071) and the pseudo-headers VRRP uses.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL_VRRP: u8 = 112;

/// One's-complement sum of `data` as big-endian 16-bit words, not yet folded.
fn sum_words(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u32 = chunks
        .by_ref()
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum over the message alone (VRRPv2, and VRRPv3 over IPv4 as RFC 9568 words it).
pub fn plain(message: &[u8]) -> u16 {
    fold(sum_words(message))
}

/// Checksum with the IPv4 pseudo-header (what keepalived and FRR send for VRRPv3 by default).
pub fn with_ipv4_pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, message: &[u8]) -> u16 {
    let len = message.len() as u32;
    let pseudo = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + u32::from(PROTOCOL_VRRP)
        + (len & 0xffff);
    fold(pseudo + sum_words(message))
}

/// Checksum with the IPv6 pseudo-header (RFC 8200 section 8.1), mandatory for VRRPv3 over IPv6.
pub fn with_ipv6_pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = message.len() as u32;
    let pseudo = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + (len >> 16)
        + (len & 0xffff)
        + u32::from(PROTOCOL_VRRP);
    fold(pseudo + sum_words(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum is its complement.
        assert_eq!(
            plain(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(plain(&[0x12, 0x34, 0x56]), plain(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn a_message_with_its_checksum_sums_to_zero() {
        let mut msg = [0x31, 51, 150, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 100];
        let sum = plain(&msg);
        msg[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(plain(&msg), 0);
    }
}
