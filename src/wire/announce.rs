//! Link-layer announcements of a virtual address, built with pnet's packet types: gratuitous
//! ARP for IPv4 and unsolicited neighbour advertisements for IPv6. Pure: bytes out.

use pnet_base::MacAddr;
use pnet_packet::MutablePacket;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{MutableNeighborAdvertPacket, NeighborAdvertFlags};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::MutableIpv6Packet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETHERNET_HEADER_LEN: usize = 14;
pub const GARP_LEN: usize = ETHERNET_HEADER_LEN + 28;
/// Neighbour advertisement (24) plus the target link-layer address option (8).
const NA_LEN: usize = 32;
pub const NA_FRAME_LEN: usize = ETHERNET_HEADER_LEN + 40 + NA_LEN;
/// The all-nodes multicast address and its Ethernet mapping.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

fn mac(bytes: [u8; 6]) -> MacAddr {
    MacAddr::new(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
}

/// A gratuitous ARP request announcing that `address` is at `source_mac` (RFC 5227 ARP
/// announcement: sender and target address both the announced one), to broadcast.
pub fn gratuitous_arp(source_mac: [u8; 6], address: Ipv4Addr) -> [u8; GARP_LEN] {
    let mut frame = [0u8; GARP_LEN];
    let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("frame fits");
    ethernet.set_destination(mac(BROADCAST_MAC));
    ethernet.set_source(mac(source_mac));
    ethernet.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(ethernet.payload_mut()).expect("ARP fits");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(mac(source_mac));
    arp.set_sender_proto_addr(address);
    arp.set_target_hw_addr(MacAddr::zero());
    arp.set_target_proto_addr(address);
    frame
}

/// An unsolicited neighbour advertisement for `target` at `source_mac`, from the node's
/// link-local `source` to all nodes: Override on, Solicited off (RFC 4861 section 7.2.6),
/// Router off (the node does not route), hop limit 255.
pub fn unsolicited_na(
    source_mac: [u8; 6],
    source: Ipv6Addr,
    target: Ipv6Addr,
) -> [u8; NA_FRAME_LEN] {
    let mut frame = [0u8; NA_FRAME_LEN];
    let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("frame fits");
    ethernet.set_destination(mac(ALL_NODES_MAC));
    ethernet.set_source(mac(source_mac));
    ethernet.set_ethertype(EtherTypes::Ipv6);
    let mut ip = MutableIpv6Packet::new(ethernet.payload_mut()).expect("IPv6 fits");
    ip.set_version(6);
    ip.set_payload_length(NA_LEN as u16);
    ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
    ip.set_hop_limit(255);
    ip.set_source(source);
    ip.set_destination(ALL_NODES);
    let payload = ip.payload_mut();
    {
        let mut na = MutableNeighborAdvertPacket::new(&mut payload[..NA_LEN]).expect("NA fits");
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(NeighborAdvertFlags::Override);
        na.set_target_addr(target);
    }
    // Option: target link-layer address (type 2, length 1 = 8 bytes).
    payload[24] = 2;
    payload[25] = 1;
    payload[26..32].copy_from_slice(&source_mac);
    let sum = icmpv6::checksum(
        &Icmpv6Packet::new(&payload[..NA_LEN]).expect("ICMPv6 fits"),
        &source,
        &ALL_NODES,
    );
    payload[2..4].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// The Ethernet address an IP multicast group maps to (RFC 1112 section 6.4: 01:00:5e and
/// the low 23 bits; RFC 2464 section 7: 33:33 and the low 32 bits). None for unicast.
pub fn multicast_mac(group: IpAddr) -> Option<[u8; 6]> {
    match group {
        IpAddr::V4(v4) if v4.is_multicast() => {
            let o = v4.octets();
            Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
        }
        IpAddr::V6(v6) if v6.is_multicast() => {
            let o = v6.octets();
            Some([0x33, 0x33, o[12], o[13], o[14], o[15]])
        }
        _ => None,
    }
}

/// A VRRP advert to a multicast group as a whole Ethernet frame from `source_mac` (the
/// virtual MAC: RFC 9568 section 7.3 wants adverts sent from it): IPv4 with TTL 255, or
/// IPv6 with hop limit 255, protocol 112, around `message` (checksummed already for these
/// ends). None when the ends are not one family or `destination` is not multicast.
pub fn vrrp_frame(
    source_mac: [u8; 6],
    source: IpAddr,
    destination: IpAddr,
    message: &[u8],
) -> Option<Vec<u8>> {
    let destination_mac = multicast_mac(destination)?;
    let mut frame = Vec::with_capacity(ETHERNET_HEADER_LEN + 40 + message.len());
    frame.extend_from_slice(&destination_mac);
    frame.extend_from_slice(&source_mac);
    match (source, destination) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            frame.extend_from_slice(&super::ipv4::emit_header(src, dst, 255, message.len()));
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            frame.extend_from_slice(&0x86ddu16.to_be_bytes());
            // Version 6, traffic class 0xc0 (network control, as the kernel's VRRP sockets),
            // no flow label.
            frame.extend_from_slice(&[0x6c, 0x00, 0x00, 0x00]);
            frame.extend_from_slice(&(message.len() as u16).to_be_bytes());
            frame.push(super::checksum::PROTOCOL_VRRP);
            frame.push(255);
            frame.extend_from_slice(&src.octets());
            frame.extend_from_slice(&dst.octets());
        }
        _ => return None,
    }
    frame.extend_from_slice(message);
    Some(frame)
}

/// Who claims an address on the link: the sender of an ARP packet (a gratuitous ARP, a
/// request or a reply all say "sender IP is at sender MAC"), or the target of a neighbour
/// advertisement with its target link-layer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub address: std::net::IpAddr,
    pub mac: [u8; 6],
}

/// An Ethernet frame carrying ARP for IPv4 over Ethernet (as a packet socket delivers it):
/// the sender's address and MAC. None for anything else, and for probes (sender 0.0.0.0).
pub fn parse_arp(frame: &[u8]) -> Option<Claim> {
    let arp = frame.get(ETHERNET_HEADER_LEN..GARP_LEN)?;
    if frame[12..14] != [0x08, 0x06] || arp[..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    if !matches!(u16::from_be_bytes([arp[6], arp[7]]), 1 | 2) {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&arp[8..14]);
    let address = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    if address.is_unspecified() {
        return None;
    }
    Some(Claim {
        address: address.into(),
        mac,
    })
}

/// An Ethernet frame carrying an ICMPv6 neighbour advertisement with hop limit 255 and a
/// target link-layer address option: its target and that MAC.
pub fn parse_na(frame: &[u8]) -> Option<Claim> {
    if frame.get(12..14)? != [0x86, 0xdd] {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + 40)?;
    if ip[0] >> 4 != 6 || ip[6] != 58 || ip[7] != 255 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let na = frame.get(ETHERNET_HEADER_LEN + 40..ETHERNET_HEADER_LEN + 40 + length)?;
    parse_na_message(na)
}

/// A neighbour advertisement as a raw ICMPv6 socket delivers it (the ICMPv6 message, hop
/// limit checked by the caller): its target and target link-layer address.
pub fn parse_na_message(na: &[u8]) -> Option<Claim> {
    if na.len() < 24 || na[0] != 136 || na[1] != 0 {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&na[8..24]);
    let mut options = &na[24..];
    while options.len() >= 8 {
        let len = usize::from(options[1]) * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        if options[0] == 2 && len == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&options[2..8]);
            return Some(Claim {
                address: Ipv6Addr::from(target).into(),
                mac,
            });
        }
        options = &options[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];

    #[test]
    fn a_vrrp_frame_from_the_virtual_mac_carries_the_advert_to_the_multicast_group() {
        let vmac = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
        let message = [0x31, 51, 200, 1, 0, 10, 0, 0, 192, 0, 2, 100];
        let v4 = vrrp_frame(
            vmac,
            "192.0.2.11".parse().unwrap(),
            "224.0.0.18".parse().unwrap(),
            &message,
        )
        .unwrap();
        assert_eq!(&v4[..6], &[0x01, 0x00, 0x5e, 0, 0, 0x12]);
        assert_eq!(&v4[6..12], &vmac);
        assert_eq!(&v4[12..14], &[0x08, 0x00]);
        let (header, payload) = crate::wire::ipv4::split_vrrp(&v4[14..]).unwrap();
        assert_eq!(header.ttl, 255);
        assert_eq!(payload, &message);
        assert_eq!(checksum::plain(&v4[14..34]), 0, "header checksum");

        let vmac6 = [0x00, 0x00, 0x5e, 0x00, 0x02, 51];
        let v6 = vrrp_frame(
            vmac6,
            "fe80::11".parse().unwrap(),
            "ff02::12".parse().unwrap(),
            &message,
        )
        .unwrap();
        assert_eq!(&v6[..6], &[0x33, 0x33, 0, 0, 0, 0x12]);
        assert_eq!(&v6[6..12], &vmac6);
        assert_eq!(&v6[12..14], &[0x86, 0xdd]);
        assert_eq!(v6[14] >> 4, 6);
        assert_eq!(&v6[18..20], &(message.len() as u16).to_be_bytes());
        assert_eq!(
            (v6[20], v6[21]),
            (112, 255),
            "next header VRRP, hop limit 255"
        );
        assert_eq!(
            &v6[22..38],
            &"fe80::11".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &v6[38..54],
            &"ff02::12".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&v6[54..], &message);
        // Unicast adverts are left to the kernel (the peer's MAC is its business).
        assert!(
            vrrp_frame(
                vmac,
                "192.0.2.11".parse().unwrap(),
                "192.0.2.12".parse().unwrap(),
                &message
            )
            .is_none()
        );
    }

    #[test]
    fn gratuitous_arp_layout() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(&frame[..6], &BROADCAST_MAC);
        assert_eq!(&frame[6..12], &MAC);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        // htype 1, ptype 0x0800, hlen 6, plen 4, op 1 (request)
        assert_eq!(&frame[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&frame[22..28], &MAC);
        assert_eq!(&frame[28..32], &[192, 0, 2, 100]);
        assert_eq!(&frame[32..38], &[0; 6]);
        assert_eq!(&frame[38..42], &[192, 0, 2, 100]);
    }

    #[test]
    fn a_gratuitous_arp_parses_back_to_its_claim_and_junk_to_nothing() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(
            parse_arp(&frame),
            Some(Claim {
                address: "192.0.2.100".parse().unwrap(),
                mac: MAC
            })
        );
        assert_eq!(parse_arp(&frame[..30]), None);
        let mut probe = frame;
        probe[28..32].copy_from_slice(&[0; 4]);
        assert_eq!(parse_arp(&probe), None, "an ARP probe claims nothing");
        let mut ipv6 = frame;
        ipv6[12] = 0x86;
        assert_eq!(parse_arp(&ipv6), None);
    }

    #[test]
    fn a_neighbour_advertisement_parses_back_to_its_claim() {
        let frame = unsolicited_na(
            MAC,
            "fe80::11".parse().unwrap(),
            "2001:db8::100".parse().unwrap(),
        );
        assert_eq!(
            parse_na(&frame),
            Some(Claim {
                address: "2001:db8::100".parse().unwrap(),
                mac: MAC
            })
        );
        let mut hops = frame;
        hops[14 + 7] = 64;
        assert_eq!(parse_na(&hops), None, "hop limit must be 255");
        assert_eq!(
            parse_na(&gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 1))),
            None
        );
    }

    #[test]
    fn neighbour_advertisement_layout_and_checksum() {
        let source: Ipv6Addr = "fe80::11".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let frame = unsolicited_na(MAC, source, target);
        assert_eq!(&frame[..6], &ALL_NODES_MAC);
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        let ip = &frame[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!((ip[6], ip[7]), (58, 255), "ICMPv6, hop limit 255");
        let na = &frame[54..];
        assert_eq!(na[0], 136);
        assert_eq!(na[4], 0x20, "Override only");
        assert_eq!(&na[8..24], &target.octets());
        assert_eq!(&na[24..32], &[2, 1, 0x02, 0, 0, 0, 0, 0x11]);
        // The ICMPv6 checksum verifies with the pseudo-header (next header 58).
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&source.octets());
        pseudo.extend_from_slice(&ALL_NODES.octets());
        pseudo.extend_from_slice(&(NA_LEN as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(na);
        assert_eq!(checksum::plain(&pseudo), 0);
    }
}
