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
use std::net::{Ipv4Addr, Ipv6Addr};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];

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
