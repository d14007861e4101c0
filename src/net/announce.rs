//! Sends announcement frames through a send-only packet socket (protocol 0: it receives
//! nothing, unlike pnet_datalink's ETH_P_ALL channel that copies every frame of the link).

use crate::wire::announce::{self, ALL_NODES_MAC, BROADCAST_MAC};
use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv6Addr};

pub struct Announcer {
    socket: Socket,
    ifindex: u32,
    mac: [u8; 6],
}

impl Announcer {
    pub fn new(ifindex: u32, mac: [u8; 6]) -> io::Result<Announcer> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        socket.set_nonblocking(true)?;
        Ok(Announcer {
            socket,
            ifindex,
            mac,
        })
    }

    fn link_address(&self, destination: [u8; 6], ethertype: u16) -> SockAddr {
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits the storage.
        let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ethertype.to_be();
        ll.sll_ifindex = self.ifindex as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&destination);
        // SAFETY: the storage holds an initialised sockaddr_ll of the given length.
        unsafe {
            SockAddr::new(
                storage,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        }
    }

    /// Sends a VRRP advert to a multicast `destination` as a whole frame from this link's
    /// MAC (a virtual-MAC link's: RFC 9568 section 7.3). Ok(false), nothing sent, when the
    /// destination is not multicast (unicast adverts go through the VRRP socket).
    pub fn send_advert(
        &self,
        source: IpAddr,
        destination: IpAddr,
        message: &[u8],
    ) -> io::Result<bool> {
        let Some(frame) = announce::vrrp_frame(self.mac, source, destination, message) else {
            return Ok(false);
        };
        let ethertype = if destination.is_ipv4() {
            0x0800
        } else {
            0x86dd
        };
        let to = announce::multicast_mac(destination).expect("a multicast destination");
        self.socket
            .send_to(&frame, &self.link_address(to, ethertype))?;
        Ok(true)
    }

    /// Announces `address`: gratuitous ARP, or an unsolicited NA from `link_local`.
    pub fn announce(&self, address: IpAddr, link_local: Option<Ipv6Addr>) -> io::Result<()> {
        match address {
            IpAddr::V4(v4) => {
                let frame = announce::gratuitous_arp(self.mac, v4);
                self.socket
                    .send_to(&frame, &self.link_address(BROADCAST_MAC, 0x0806))?;
            }
            IpAddr::V6(v6) => {
                let source = link_local.ok_or_else(|| {
                    io::Error::other("no IPv6 link-local address on the interface")
                })?;
                let frame = announce::unsolicited_na(self.mac, source, v6);
                self.socket
                    .send_to(&frame, &self.link_address(ALL_NODES_MAC, 0x86dd))?;
            }
        }
        Ok(())
    }
}
