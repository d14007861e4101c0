//! Virtual MAC per group (`vmac = true`; RFC 9568 section 7.3, keepalived's `use_vmac`): a
//! macvlan in private mode on the node's interface, named `vrrp.<vrid>` (IPv4) or
//! `vrrp6.<vrid>` (IPv6), with the virtual router MAC 00:00:5e:00:01:<vrid> (IPv4) or
//! 00:00:5e:00:02:<vrid> (IPv6). The group's virtual addresses live on it, and the
//! gratuitous ARP / unsolicited NA leave from it, so a client's neighbour entry never
//! changes MAC on a failover.
//!
//! The adverts leave from the virtual MAC too (built whole and sent through the link's
//! packet socket, `Announcer::send_advert`). VEPA mode, not private: a multicast frame
//! whose source MAC is that of a macvlan of the receiving node (every node has the group's
//! link, with the same MAC) is, in private mode, handed to that macvlan alone and never
//! reaches the parent, where the VRRP sockets listen: a backup would hear no advert from
//! the master and take over. In VEPA mode the parent gets it as well. Like private mode,
//! VEPA sends everything out through the parent (no traffic between sibling macvlans or to
//! the parent itself inside the node); the node's own traffic to a virtual address goes
//! through the local table anyway.

use super::netlink::NetlinkError;
use crate::wire::Family;
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};
use tracing::{info, warn};

/// The macvlan's name: `vrrp.<vrid>` or `vrrp6.<vrid>` (at most 9 bytes, IFNAMSIZ is 16).
pub fn link_name(family: Family, vrid: u8) -> String {
    match family {
        Family::V4 => format!("vrrp.{vrid}"),
        Family::V6 => format!("vrrp6.{vrid}"),
    }
}

/// The virtual router MAC (RFC 9568 section 7.3).
pub fn mac(family: Family, vrid: u8) -> [u8; 6] {
    let kind = match family {
        Family::V4 => 0x01,
        Family::V6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}

/// The macvlan mode of the virtual-MAC links (see the module's text).
const MODE: MacVlanMode = MacVlanMode::Vepa;

/// What a link message says of a macvlan: its parent index, MAC and mode.
fn macvlan_of(message: &LinkMessage) -> Option<(u32, Vec<u8>, Option<MacVlanMode>)> {
    let mut parent = None;
    let mut mac = Vec::new();
    let mut is_macvlan = false;
    let mut mode = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::Link(index) => parent = Some(*index),
            LinkAttribute::Address(bytes) => mac = bytes.clone(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::MacVlan) => is_macvlan = true,
                        LinkInfo::Data(InfoData::MacVlan(data)) => {
                            mode = data.iter().find_map(|d| match d {
                                InfoMacVlan::Mode(m) => Some(*m),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if is_macvlan {
        parent.map(|p| (p, mac, mode))
    } else {
        None
    }
}

/// Makes the group's macvlan exist on `parent`, with its MAC, up; returns its index. A
/// stale one from an earlier run is reused when it is a macvlan of that parent with that
/// MAC, else deleted and created again.
pub async fn ensure(
    handle: &Handle,
    parent: u32,
    family: Family,
    vrid: u8,
) -> Result<u32, NetlinkError> {
    let name = link_name(family, vrid);
    let want = mac(family, vrid);
    if let Some(message) = get(handle, &name).await? {
        let index = message.header.index;
        match macvlan_of(&message) {
            Some((p, m, mode)) if p == parent && m == want && mode == Some(MODE) => {
                info!("{name}: reusing the existing virtual-MAC link (index {index})");
                configure_and_up(handle, &name, family, index).await?;
                return Ok(index);
            }
            Some((p, _, _)) if p == parent => {
                warn!("{name}: a macvlan of that name with another MAC or mode: deleting it");
                handle.link().del(index).execute().await?;
            }
            _ => {
                return Err(NetlinkError::Io(std::io::Error::other(format!(
                    "{name} exists and is not a macvlan of the node's interface: vipd does not touch it (rename or delete it, or set vmac = false)"
                ))));
            }
        }
    }
    handle
        .link()
        .add(
            LinkMacVlan::new(&name, parent, MODE)
                .address(want.to_vec())
                .build(),
        )
        .execute()
        .await?;
    let message = get(handle, &name)
        .await?
        .ok_or_else(|| NetlinkError::NoSuchLink(name.clone()))?;
    let index = message.header.index;
    // Before it is up: a backup's link must send nothing from the shared virtual MAC (a
    // switch would learn it at the backup's port), and IPv6 would give both nodes' links the
    // same EUI-64 link-local at once.
    configure_and_up(handle, &name, family, index).await?;
    info!("{name}: virtual-MAC link created on parent index {parent} (index {index}, VEPA mode)");
    Ok(index)
}

/// Deletes the link `name` if it exists and is a macvlan of `parent`; whether one was.
/// Sets the link's ARP and IPv6 behaviour, then brings it up: in that order, so that a
/// backup's link never sends from the shared virtual MAC.
async fn configure_and_up(
    handle: &Handle,
    name: &str,
    family: Family,
    index: u32,
) -> Result<(), NetlinkError> {
    quiet_ipv6(name, family);
    arp_settings(name);
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    Ok(())
}

pub async fn remove_named(handle: &Handle, name: &str, parent: u32) -> Result<bool, NetlinkError> {
    match get(handle, name).await? {
        Some(message) if macvlan_of(&message).is_some_and(|(p, _, _)| p == parent) => {
            handle.link().del(message.header.index).execute().await?;
            info!("{name}: virtual-MAC link deleted");
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn get(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(found) => Ok(found),
        Err(rtnetlink::Error::NetlinkError(m)) if -m.raw_code() == libc::ENODEV => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An IPv4 group's link runs no IPv6 (`disable_ipv6 = 1`); an IPv6 group's link makes no
/// link-local address of its own (`addr_gen_mode = 1`): the NA leave from the parent's.
fn quiet_ipv6(name: &str, family: Family) {
    let (key, value) = match family {
        Family::V4 => ("disable_ipv6", "1"),
        Family::V6 => ("addr_gen_mode", "1"),
    };
    let path = format!("/proc/sys/net/ipv6/conf/{name}/{key}");
    if let Err(e) = std::fs::write(&path, value) {
        warn!("cannot set {path} = {value}: {e}");
    }
}

/// ARP settings for the parent and each virtual-MAC link, as keepalived documents for
/// `use_vmac`: an interface answers ARP only for addresses configured on it
/// (`arp_ignore = 1`: the parent never answers for a virtual address on its macvlan, the
/// macvlan never for the node's own address) and sources its requests from an address of
/// its own (`arp_announce = 2`). `arp_filter` is left alone: with `arp_ignore = 1` it adds
/// nothing on one parent. Logged; a warning when it cannot be set.
pub fn arp_settings(interface: &str) {
    for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
        let path = format!("/proc/sys/net/ipv4/conf/{interface}/{key}");
        match std::fs::write(&path, value) {
            Ok(()) => info!("{path} = {value}: for the virtual-MAC links on {interface}"),
            Err(e) => warn!(
                "cannot set {path} = {value}: {e}; {interface} may answer ARP for a virtual address"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs_follow_rfc_9568() {
        assert_eq!(link_name(Family::V4, 51), "vrrp.51");
        assert_eq!(link_name(Family::V6, 255), "vrrp6.255");
        assert!(link_name(Family::V6, 255).len() < 16);
        assert_eq!(mac(Family::V4, 51), [0, 0, 0x5e, 0, 1, 0x33]);
        assert_eq!(mac(Family::V6, 1), [0, 0, 0x5e, 0, 2, 1]);
    }
}
