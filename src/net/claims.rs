//! Hears other hosts' claims on addresses: a receive-only packet socket for ARP (ETH_P_ARP)
//! on the node's interface. Frames this host sent, and frames from its own MAC, are left
//! out; the rest is parsed ([`crate::wire::announce::parse_arp`]) and handed to the node,
//! which decides (`Node::handle_neighbour_claim`).

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
