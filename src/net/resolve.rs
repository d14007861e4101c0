//! Makes the kernel resolve a neighbour: one empty UDP datagram to the discard port (9). The
//! kernel resolves the address first (ARP or neighbour solicitation), and the entry it makes
//! reaches the daemon as a netlink neighbour event. Nothing listens on port 9 (the datagram
//! is dropped, at worst answered with an ICMP error).

use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

pub struct Resolver {
    v4: Socket,
    v6: Socket,
    ifindex: u32,
}

impl Resolver {
    /// Sockets bound to `interface` (index `ifindex`).
    pub fn new(interface: &str, ifindex: u32) -> io::Result<Resolver> {
        let open = |domain| -> io::Result<Socket> {
            let socket = Socket::new(domain, Type::DGRAM, None)?;
            socket.bind_device(Some(interface.as_bytes()))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        };
        Ok(Resolver {
            v4: open(Domain::IPV4)?,
            v6: open(Domain::IPV6)?,
            ifindex,
        })
    }

    /// Asks the kernel to resolve `address` on the interface.
    pub fn resolve(&self, address: IpAddr) -> io::Result<()> {
        match address {
            IpAddr::V4(_) => {
                let to = SockAddr::from(SocketAddr::new(address, 9));
                self.v4.send_to(&[], &to)?;
            }
            IpAddr::V6(v6) => {
                let scope = if v6.is_unicast_link_local() {
                    self.ifindex
                } else {
                    0
                };
                let to = SockAddr::from(SocketAddrV6::new(v6, 9, 0, scope));
                self.v6.send_to(&[], &to)?;
            }
        }
        Ok(())
    }
}
