//! Hears other hosts' claims on addresses: a receive-only packet socket for ARP (ETH_P_ARP)
//! on the node's interface, and a raw ICMPv6 socket filtered to neighbour advertisements.
//! Frames this host sent, and claims for its own MAC, are left out; the rest is parsed
//! ([`crate::wire::announce::parse_arp`], [`crate::wire::announce::parse_na_message`]) and
//! handed to the node, which decides (`Node::handle_neighbour_claim`).

use crate::wire::announce::{self, Claim};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use tokio::io::unix::AsyncFd;

const ETH_P_ARP: u16 = 0x0806;
/// Frames read per wake-up at most (a flood is read in bounded batches).
const BATCH: usize = 64;

pub struct ClaimSocket {
    fd: AsyncFd<Socket>,
    mac: [u8; 6],
}

impl ClaimSocket {
    /// Listens for ARP on the interface `ifindex`, whose own MAC is `mac`.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> io::Result<ClaimSocket> {
        let protocol = Protocol::from(i32::from(ETH_P_ARP.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(protocol))?;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll is a sockaddr type of this platform and fits the storage.
        let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ARP.to_be();
        ll.sll_ifindex = ifindex as i32;
        // SAFETY: the storage holds an initialised sockaddr_ll of the given length.
        let address = unsafe {
            SockAddr::new(
                storage,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        socket.bind(&address)?;
        socket.set_nonblocking(true)?;
        // SAFETY: the socket owns its descriptor, which stays open as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(ClaimSocket { fd, mac })
    }

    /// Waits for frames and returns the claims among them (at most one batch).
    pub async fn recv(&self) -> io::Result<Vec<Claim>> {
        let mut claims = Vec::new();
        let mut guard = self.fd.readable().await?;
        let mut buffer = [MaybeUninit::<u8>::uninit(); 128];
        for _ in 0..BATCH {
            match guard.try_io(|fd| fd.get_ref().recv_from(&mut buffer)) {
                Ok(Ok((len, from))) => {
                    // SAFETY: recv_from initialised the first `len` bytes.
                    let frame: &[u8] =
                        unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), len) };
                    if outgoing(&from) {
                        continue;
                    }
                    if let Some(claim) = announce::parse_arp(frame)
                        && claim.mac != self.mac
                    {
                        claims.push(claim);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => break,
            }
        }
        Ok(claims)
    }
}

/// True for a frame this host sent (a packet socket sees those too).
fn outgoing(from: &SockAddr) -> bool {
    if usize::try_from(from.len()).unwrap_or(0) < std::mem::size_of::<libc::sockaddr_ll>() {
        return false;
    }
    // SAFETY: the address is a sockaddr_ll of full length (checked above).
    let ll = unsafe { &*from.as_ptr().cast::<libc::sockaddr_ll>() };
    ll.sll_pkttype == libc::PACKET_OUTGOING
}

/// ICMP6_FILTER (linux/icmpv6.h): a bitmap of ICMPv6 types, a set bit blocks the type.
const ICMP6_FILTER: libc::c_int = 1;
const NEIGHBOUR_ADVERTISEMENT: usize = 136;

/// Neighbour advertisements received on the interface (hop limit 255 only).
pub struct NaSocket {
    fd: AsyncFd<Socket>,
    mac: [u8; 6],
}

impl NaSocket {
    pub fn open(interface: &str, mac: [u8; 6]) -> io::Result<NaSocket> {
        use std::os::fd::AsRawFd;
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(interface.as_bytes()))?;
        let mut filter = [u32::MAX; 8];
        filter[NEIGHBOUR_ADVERTISEMENT / 32] &= !(1 << (NEIGHBOUR_ADVERTISEMENT % 32));
        // SAFETY: a valid descriptor and a filter of the size the kernel expects (32 bytes).
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.set_recv_hoplimit_v6(true)?;
        socket.set_nonblocking(true)?;
        // SAFETY: the socket owns its descriptor, which stays open as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(NaSocket { fd, mac })
    }

    /// Waits for advertisements and returns the claims among them (at most one batch).
    pub async fn recv(&self) -> io::Result<Vec<Claim>> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
        use std::os::fd::AsRawFd;
        let mut claims = Vec::new();
        let mut guard = self.fd.readable().await?;
        let mut buffer = [0u8; 256];
        for _ in 0..BATCH {
            let read = guard.try_io(|fd| {
                let mut cmsg = nix::cmsg_space!(libc::c_int);
                let mut iov = [io::IoSliceMut::new(&mut buffer)];
                let msg = recvmsg::<SockaddrIn6>(
                    fd.get_ref().as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                )?;
                let mut hop_limit = 0;
                for message in msg.cmsgs()? {
                    if let ControlMessageOwned::Ipv6HopLimit(limit) = message {
                        hop_limit = limit;
                    }
                }
                Ok((msg.bytes, hop_limit))
            });
            match read {
                Ok(Ok((len, 255))) => {
                    if let Some(claim) = announce::parse_na_message(&buffer[..len])
                        && claim.mac != self.mac
                    {
                        claims.push(claim);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => break,
            }
        }
        Ok(claims)
    }
}
