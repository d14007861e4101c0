//! Datagrams read and answers sent many at a time (recvmmsg and sendmmsg), as knot does: under
//! load a DNS thread makes two system calls per batch instead of two per query.

use crate::net::mmsg;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Datagrams read per call.
pub const BATCH: usize = 16;
/// Room for each: the largest EDNS query vipd reads.
const DATAGRAM: usize = 4096;

/// Buffers for one batch of received datagrams and their senders.
pub struct Received {
    buffers: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    lengths: [usize; BATCH],
    count: usize,
}

impl Default for Received {
    fn default() -> Self {
        Received {
            buffers: vec![0u8; BATCH * DATAGRAM],
            // SAFETY: an all-zero sockaddr_storage is valid.
            names: vec![unsafe { std::mem::zeroed() }; BATCH],
            lengths: [0; BATCH],
            count: 0,
        }
    }
}

impl Received {
    /// Reads what is queued, up to a batch; `WouldBlock` when nothing is.
    pub fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        // On the stack: this runs once per batch under load.
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.buffers[i * DATAGRAM..].as_mut_ptr() as *mut libc::c_void,
            iov_len: DATAGRAM,
        });
        let mut headers: [libc::mmsghdr; BATCH] = std::array::from_fn(|i| {
            mmsg::header(
                &mut self.names[i] as *mut _ as *mut libc::c_void,
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
                &mut iovecs[i],
                (std::ptr::null_mut(), 0),
            )
        });
        // SAFETY: the headers point into names, iovecs and buffers, alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (i, header) in headers.iter().take(self.count).enumerate() {
            self.lengths[i] = header.msg_len as usize;
        }
        Ok(self.count)
    }

    /// The datagrams of the last batch with their senders (those of another family, which
    /// cannot be, are skipped).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.count).filter_map(|i| {
            let bytes = &self.buffers[i * DATAGRAM..i * DATAGRAM + self.lengths[i]];
            Some((bytes, socket_address(&self.names[i])?))
        })
    }
}

/// The IPv4 or IPv6 address the kernel wrote into `storage`.
fn socket_address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends every answer; those the kernel refuses (a full send buffer) are dropped, as the
/// network drops datagrams: the client asks again.
pub fn send_all(socket: &impl AsRawFd, answers: &[(Vec<u8>, SocketAddr)]) {
    for chunk in answers.chunks(BATCH) {
        let mut names: Vec<socket2::SockAddr> = chunk
            .iter()
            .map(|(_, to)| socket2::SockAddr::from(*to))
            .collect();
        let mut iovecs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(bytes, _)| libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = (0..chunk.len())
            .map(|i| {
                mmsg::header(
                    names[i].as_ptr() as *mut libc::c_void,
                    names[i].len(),
                    &mut iovecs[i],
                    (std::ptr::null_mut(), 0),
                )
            })
            .collect();
        // SAFETY: the headers point into names, iovecs and the answers, alive here. An
        // answer the kernel refuses is dropped and the rest still go.
        unsafe { mmsg::send_all(socket.as_raw_fd(), &mut headers, |_, _| {}) };
        names.clear();
    }
}
