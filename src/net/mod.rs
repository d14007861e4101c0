//! The shell: the only code that touches the kernel. Raw VRRP sockets, netlink addresses and
//! link-layer announcements.

pub mod announce;
pub mod claims;
pub mod mmsg;
pub mod netlink;
pub mod resolve;
pub mod sysctl;
pub mod vmac;
pub mod vrrp_socket;
