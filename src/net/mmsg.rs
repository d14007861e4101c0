//! The parts of sendmmsg/recvmmsg that every caller needs: a message header over one buffer,
//! and sending a whole array of them however many the kernel takes per call.

use std::io;
use std::os::fd::RawFd;

/// A message header for one datagram in `iov`, to or from the socket address at `name`, with
/// the control messages at `control` (pointer and length; length 0 for none).
pub fn header(
    name: *mut libc::c_void,
    name_len: libc::socklen_t,
    iov: &mut libc::iovec,
    control: (*mut libc::c_void, usize),
) -> libc::mmsghdr {
    // SAFETY: an all-zero msghdr is valid; the fields that matter are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = name;
    header.msg_namelen = name_len;
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    if control.1 > 0 {
        header.msg_control = control.0;
        header.msg_controllen = control.1 as _;
    }
    libc::mmsghdr {
        msg_hdr: header,
        msg_len: 0,
    }
}

/// Sends every message of `headers` on `fd` (non-blocking), in as few calls as the kernel
/// allows; a message the kernel refuses is skipped and reported to `failed` with its index.
///
/// # Safety
/// Every header must point to a socket address, an iovec, data and control messages that
/// stay valid for the call.
pub unsafe fn send_all(
    fd: RawFd,
    headers: &mut [libc::mmsghdr],
    mut failed: impl FnMut(usize, io::Error),
) {
    let mut offset = 0;
    while offset < headers.len() {
        // SAFETY: the caller vouches for the headers.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                headers[offset..].as_mut_ptr(),
                (headers.len() - offset) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent > 0 {
            offset += sent as usize;
        } else {
            failed(offset, io::Error::last_os_error());
            offset += 1;
        }
    }
}
