//! Raw IP protocol 112 sockets, one per address family and interface: send adverts with
//! TTL / hop limit 255 from the node's own address, receive what arrives on that interface
//! only, with what the checks need (source, destination, TTL).

use super::mmsg;
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

    /// Sends many VRRP messages with as few system calls as the kernel allows (sendmmsg,
    /// 64 at a time), from this node's source address on this interface. A master of many
    /// groups sends its adverts of one timer step this way: one call instead of one per
    /// group, and the receivers it wakes do not preempt it between adverts. Returns how many
    /// could not be sent (each is logged at debug level).
    pub fn send_many(&self, datagrams: &[(IpAddr, &[u8])]) -> usize {
        const CHUNK: usize = 64;
        let fd = self.fd.get_ref().as_raw_fd();
        // One control message for all: the same source address and interface.
        let mut control = [0u64; 8];
        let control_len = self.packet_info(&mut control);
        let mut failed = 0;
        for chunk in datagrams.chunks(CHUNK) {
            let mut names: Vec<libc::sockaddr_storage> = Vec::with_capacity(chunk.len());
            let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(chunk.len());
            for (destination, message) in chunk {
                names.push(self.socket_address(*destination));
                iovecs.push(libc::iovec {
                    iov_base: message.as_ptr() as *mut libc::c_void,
                    iov_len: message.len(),
                });
            }
            let control = (control.as_mut_ptr() as *mut libc::c_void, control_len);
            let mut headers: Vec<libc::mmsghdr> = (0..chunk.len())
                .map(|i| {
                    let name_len = match chunk[i].0 {
                        IpAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
                        IpAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
                    };
                    mmsg::header(
                        &mut names[i] as *mut _ as *mut libc::c_void,
                        name_len as libc::socklen_t,
                        &mut iovecs[i],
                        control,
                    )
                })
                .collect();
            // SAFETY: every header points into names, iovecs, control and the messages, all
            // alive for the call.
            unsafe {
                mmsg::send_all(fd, &mut headers, |index, e| {
                    tracing::debug!("sending an advert to {}: {e}", chunk[index].0);
                    failed += 1;
                })
            };
        }
        failed
    }

    /// The IP_PKTINFO / IPV6_PKTINFO control message naming this socket's source address
    /// and interface, written into `buffer`; its length (0 for mismatched families).
    fn packet_info(&self, buffer: &mut [u64; 8]) -> usize {
        let bytes = buffer.as_mut_ptr() as *mut u8;
        // SAFETY: the buffer is 64 bytes, aligned for cmsghdr, more than CMSG_SPACE of
        // either structure; CMSG_DATA points inside it.
        unsafe {
            let header = bytes as *mut libc::cmsghdr;
            match self.source {
                IpAddr::V4(src) if self.family == Family::V4 => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: self.ifindex as i32,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(src).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    let size = std::mem::size_of::<libc::in_pktinfo>() as u32;
                    (*header).cmsg_level = libc::IPPROTO_IP;
                    (*header).cmsg_type = libc::IP_PKTINFO;
                    (*header).cmsg_len = libc::CMSG_LEN(size) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(header) as *mut libc::in_pktinfo,
                        info,
                    );
                    libc::CMSG_SPACE(size) as usize
                }
                IpAddr::V6(src) if self.family == Family::V6 => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: src.octets(),
                        },
                        ipi6_ifindex: self.ifindex,
                    };
                    let size = std::mem::size_of::<libc::in6_pktinfo>() as u32;
                    (*header).cmsg_level = libc::IPPROTO_IPV6;
                    (*header).cmsg_type = libc::IPV6_PKTINFO;
                    (*header).cmsg_len = libc::CMSG_LEN(size) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(header) as *mut libc::in6_pktinfo,
                        info,
                    );
                    libc::CMSG_SPACE(size) as usize
                }
                _ => 0,
            }
        }
    }

    /// `destination` as a socket address (IPv6 scoped to this interface).
    fn socket_address(&self, destination: IpAddr) -> libc::sockaddr_storage {
        // SAFETY: an all-zero sockaddr_storage is valid, and large enough for either.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        match destination {
            IpAddr::V4(v4) => {
                let address = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(v4).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned for it.
                unsafe {
                    std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, address)
                };
            }
            IpAddr::V6(v6) => {
                let address = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.octets(),
                    },
                    sin6_scope_id: self.ifindex,
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe {
                    std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, address)
                };
            }
        }
        storage
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
