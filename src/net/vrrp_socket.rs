//! Raw IP protocol 112 sockets, one per address family and interface: send adverts with
//! TTL / hop limit 255 from the node's own address, receive what arrives on that interface
//! only, with what the checks need (source, destination, TTL).

use crate::wire::Family;
use crate::wire::checksum::PROTOCOL_VRRP;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, recvmsg, sendmsg,
    setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use tokio::io::unix::AsyncFd;

/// Receive buffer of a VRRP socket.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

pub use crate::wire::ip::{MULTICAST_V4, MULTICAST_V6, multicast_group};

/// A received datagram: for IPv4 the whole IP packet (raw IPv4 sockets deliver the header),
/// for IPv6 the VRRP message with the header fields from ancillary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    /// IPv6 only: source, destination and hop limit (IPv4 reads them from the header).
    pub v6: Option<(Ipv6Addr, Ipv6Addr, u8)>,
}

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    family: Family,
    ifindex: u32,
    source: IpAddr,
}

impl VrrpSocket {
    /// Opens the socket on `interface` (index `ifindex`), sending from `source`.
    pub fn open(
        family: Family,
        interface: &str,
        ifindex: u32,
        source: IpAddr,
    ) -> io::Result<VrrpSocket> {
        let protocol = Some(Protocol::from(i32::from(PROTOCOL_VRRP)));
        let socket = match family {
            Family::V4 => {
                let socket = Socket::new(Domain::IPV4, Type::RAW, protocol)?;
                // Without this, a socket receives every interface's memberships.
                socket.set_multicast_all_v4(false)?;
                socket.set_multicast_ttl_v4(255)?;
                socket.set_ttl_v4(255)?;
                socket.set_multicast_loop_v4(false)?;
                // DSCP CS6 (network control), as keepalived sends.
                socket.set_tos_v4(0xc0)?;
                socket.join_multicast_v4_n(
                    &MULTICAST_V4,
                    &socket2::InterfaceIndexOrAddress::Index(ifindex),
                )?;
                socket
            }
            Family::V6 => {
                let socket = Socket::new(Domain::IPV6, Type::RAW, protocol)?;
                socket.set_multicast_all_v6(false)?;
                socket.set_multicast_hops_v6(255)?;
                socket.set_unicast_hops_v6(255)?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(ifindex)?;
                socket.set_recv_hoplimit_v6(true)?;
                setsockopt(&socket.as_fd(), sockopt::Ipv6RecvPacketInfo, &true)?;
                socket.join_multicast_v6(&MULTICAST_V6, ifindex)?;
                socket
            }
        };
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_nonblocking(true)?;
        // Room for bursts (a flood of junk must not crowd out the real adverts before we
        // read them): beyond rmem_max with CAP_NET_ADMIN, else as much as the kernel allows.
        let forced = nix::sys::socket::setsockopt(
            &socket.as_fd(),
            sockopt::RcvBufForce,
            &RECEIVE_BUFFER_BYTES,
        );
        if forced.is_err() {
            let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES);
        }
        // SAFETY: the socket owns its descriptor, which stays open as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(VrrpSocket {
            fd,
            family,
            ifindex,
            source,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends one VRRP message to `destination` (the multicast group or a unicast peer),
    /// from this node's source address on this interface.
    pub fn send(&self, destination: IpAddr, message: &[u8]) -> io::Result<()> {
        let fd = self.fd.get_ref().as_raw_fd();
        let iov = [IoSlice::new(message)];
        match (destination, self.source) {
            (IpAddr::V4(dst), IpAddr::V4(src)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as i32,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            (IpAddr::V6(dst), IpAddr::V6(src)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, self.ifindex));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            _ => {
                return Err(io::Error::other(
                    "destination and source of different families",
                ));
            }
        }
        Ok(())
    }

    /// Waits for datagrams and reads at most one per buffer. Readiness is kept while more
    /// may be queued, so a flood is read in bounded batches between the loop's other work
    /// (timers, adverts) instead of starving it.
    pub async fn recv_batch(
        &self,
        buffers: &mut [Vec<u8>],
        received: &mut Vec<(usize, Received)>,
    ) -> io::Result<()> {
        received.clear();
        let mut guard = self.fd.readable().await?;
        for (index, buffer) in buffers.iter_mut().enumerate() {
            match guard.try_io(|_| self.try_recv(buffer)) {
                Ok(Ok(datagram)) => received.push((index, datagram)),
                Ok(Err(e)) => return Err(e),
                // Drained: readiness is cleared, the next call waits.
                Err(_would_block) => break,
            }
        }
        Ok(())
    }

    /// Reads one datagram if there is one (`WouldBlock` otherwise).
    pub fn try_recv(&self, buffer: &mut [u8]) -> io::Result<Received> {
        let fd = self.fd.get_ref().as_raw_fd();
        match self.family {
            Family::V4 => {
                let len = nix::sys::socket::recv(fd, buffer, MsgFlags::MSG_DONTWAIT)?;
                Ok(Received { len, v6: None })
            }
            Family::V6 => {
                let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
                let mut iov = [IoSliceMut::new(buffer)];
                let msg =
                    recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)?;
                let source = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
                let mut destination = Ipv6Addr::UNSPECIFIED;
                let mut hop_limit = 0u8;
                for message in msg.cmsgs()? {
                    match message {
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            destination = Ipv6Addr::from(info.ipi6_addr.s6_addr)
                        }
                        ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = limit as u8,
                        _ => {}
                    }
                }
                Ok(Received {
                    len: msg.bytes,
                    v6: Some((source, destination, hop_limit)),
                })
            }
        }
    }
}
