//! Addresses and links through rtnetlink: claim and release virtual addresses, read the
//! interface, and watch for links going down and addresses removed behind our back, and the
//! neighbour table (what ties an IPv6 link-local source to a member).

use crate::config::VirtualAddress;
use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::{Handle, MulticastGroup};
use std::net::IpAddr;

/// What the daemon needs to know of its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up and carrier present.
    pub up: bool,
}

/// A change on the interfaces, from the kernel's multicast groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Link {
        index: u32,
        up: bool,
    },
    AddressRemoved {
        index: u32,
        address: IpAddr,
    },
    /// A neighbour entry: `address` is at `mac`, or (None) no longer known.
    Neighbour {
        index: u32,
        address: IpAddr,
        mac: Option<[u8; 6]>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("interface {0} not found")]
    NoSuchLink(String),
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
}

/// errno of a netlink error reply, if it is one.
fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

/// A request connection: spawn its driver on the current tokio runtime.
pub fn connect() -> Result<Handle, NetlinkError> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

fn link_from(message: &LinkMessage) -> Link {
    let mut mac = [0u8; 6];
    for attribute in &message.attributes {
        if let LinkAttribute::Address(bytes) = attribute
            && bytes.len() == 6
        {
            mac.copy_from_slice(bytes);
        }
    }
    Link {
        index: message.header.index,
        mac,
        up: link_is_up(message),
    }
}

fn link_is_up(message: &LinkMessage) -> bool {
    let flags = message.header.flags;
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp)
}

pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Link, NetlinkError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(message)) => Ok(link_from(&message)),
        Ok(None) => Err(NetlinkError::NoSuchLink(name.to_string())),
        Err(e) if errno(&e) == Some(libc::ENODEV) => {
            Err(NetlinkError::NoSuchLink(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer on point-to-point links.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

/// Every address on the interface, with its prefix length.
pub async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut found = Vec::new();
    while let Some(message) = stream.try_next().await? {
        if message.header.index != index {
            continue;
        }
        if let Some(address) = address_of(&message) {
            found.push((address, message.header.prefix_len));
        }
    }
    Ok(found)
}

/// IFA_F_TENTATIVE: an IPv6 address the kernel does not use yet.
const TENTATIVE: u32 = 0x40;

/// Waits (at most `limit`) until an IPv6 address just added is usable. Even without duplicate
/// address detection, the kernel finishes an address in a work queue: until then packets to
/// it are dropped, so announcing it earlier sends clients into a hole for a few
/// milliseconds. IPv4 addresses are usable at once.
pub async fn wait_usable(
    handle: &Handle,
    index: u32,
    address: IpAddr,
    limit: std::time::Duration,
) -> Result<bool, NetlinkError> {
    if address.is_ipv4() {
        return Ok(true);
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut stream = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut tentative = true;
        while let Some(message) = stream.try_next().await? {
            if message.header.index == index && address_of(&message) == Some(address) {
                let flags = message
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::Flags(flags) => Some(flags.bits()),
                        _ => None,
                    })
                    .unwrap_or(u32::from(message.header.flags.bits()));
                tentative = flags & TENTATIVE != 0;
            }
        }
        if !tentative {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
}

/// Adds a virtual address, idempotently. IPv6 without duplicate address detection: the
/// address moves between nodes, and DAD would hold it tentative during a handover.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    address: VirtualAddress,
) -> Result<(), NetlinkError> {
    let mut request = handle
        .address()
        .add(index, address.address, address.prefix_len)
        .replace();
    if address.address.is_ipv6() {
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request.execute().await?;
    Ok(())
}

/// Removes a virtual address; an address that is not there counts as removed.
pub async fn del_address(
    handle: &Handle,
    index: u32,
    address: VirtualAddress,
) -> Result<(), NetlinkError> {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = address.prefix_len;
    message.header.family = match address.address {
        IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
    };
    message
        .attributes
        .push(AddressAttribute::Local(address.address));
    message
        .attributes
        .push(AddressAttribute::Address(address.address));
    match handle.address().del(message).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Watches links and addresses: a stream of [`Event`]s, driven on the current runtime.
pub fn watch() -> Result<futures::stream::BoxStream<'static, Event>, NetlinkError> {
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Neigh,
    ];
    let (connection, _handle, messages) = rtnetlink::new_multicast_connection(&groups)?;
    tokio::spawn(connection);
    Ok(messages
        .filter_map(|(message, _)| async move {
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    Some(Event::Link {
                        index: link.header.index,
                        up: link_is_up(&link),
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    Some(Event::Link {
                        index: link.header.index,
                        up: false,
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(neighbour)) => {
                    neighbour_fact(&neighbour).map(|(address, mac)| Event::Neighbour {
                        index: neighbour.header.ifindex,
                        address,
                        mac,
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(neighbour)) => {
                    neighbour_fact(&neighbour).map(|(address, _)| Event::Neighbour {
                        index: neighbour.header.ifindex,
                        address,
                        mac: None,
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(address)) => {
                    address_of(&address).map(|ip| Event::AddressRemoved {
                        index: address.header.index,
                        address: ip,
                    })
                }
                _ => None,
            }
        })
        .boxed())
}

/// A neighbour entry as a fact: its address and, when the entry holds one that is usable, its
/// MAC (an entry being resolved or that failed to resolve holds none).
fn neighbour_fact(message: &NeighbourMessage) -> Option<(IpAddr, Option<[u8; 6]>)> {
    let address = message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })?;
    let usable = !matches!(
        message.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    );
    let mac = message
        .attributes
        .iter()
        .find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(bytes) if bytes.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(bytes);
                Some(mac)
            }
            _ => None,
        })
        .filter(|_| usable);
    Some((address, mac))
}

/// The kernel's neighbour table for the interface: address and MAC of each usable entry.
pub async fn neighbours(
    handle: &Handle,
    index: u32,
) -> Result<Vec<(IpAddr, [u8; 6])>, NetlinkError> {
    let mut stream = handle.neighbours().get().execute();
    let mut found = Vec::new();
    while let Some(message) = stream.try_next().await? {
        if message.header.ifindex != index {
            continue;
        }
        if let Some((address, Some(mac))) = neighbour_fact(&message) {
            found.push((address, mac));
        }
    }
    Ok(found)
}
