//! From the cluster file to what one node runs: the election configuration of each of its
//! groups, one instance per address family.

use crate::config::{Config, Group, Node};
use crate::election::{AnnounceConfig, InstanceConfig, Peer};
use crate::wire::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One group as this node runs it.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Index into `Config::groups`.
    pub group: usize,
    pub instances: Vec<InstanceConfig>,
}

/// The address a node's adverts of `family` come from, when the file tells it: its IPv4
/// address, or for IPv6 its link-local address (IPv6 adverts always come from the link-local
/// address, even on a node whose `address` is IPv6).
pub fn source_address(node: &Node, family: Family) -> Option<IpAddr> {
    match (family, node.address) {
        (Family::V4, IpAddr::V4(_)) => Some(node.address),
        (Family::V4, IpAddr::V6(_)) => None,
        (Family::V6, _) => node.link_local.map(IpAddr::V6),
    }
}

/// [`source_address`] on the node's LAN segment `lan` (index into its `lans`).
pub fn source_address_on(node: &Node, lan: usize, family: Family) -> Option<IpAddr> {
    let Some(segment) = node.lans.get(lan).filter(|_| lan > 0) else {
        return source_address(node, family);
    };
    match (family, segment.address) {
        (Family::V4, IpAddr::V4(_)) => Some(segment.address),
        (Family::V4, IpAddr::V6(_)) => None,
        (Family::V6, _) => segment.link_local.map(IpAddr::V6),
    }
}

/// The address node `node` sends `group`'s adverts of `family` from, when the file tells.
pub fn group_source(config: &Config, group: &Group, node: usize, family: Family) -> Option<IpAddr> {
    let member = &config.nodes[node];
    source_address_on(member, group.lan_of(member), family)
}

/// The addresses a node sends its adverts from, one per family, as found on its interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

impl Sources {
    /// The one rule for where adverts come from: what the file says ([`source_address`]);
    /// else, for IPv4, the first address of the interface that is not a virtual address of
    /// the cluster, and for IPv6 the interface's link-local address.
    pub fn find(config: &Config, node: usize, interface_addresses: &[IpAddr]) -> Sources {
        Sources::find_on(config, node, 0, interface_addresses)
    }

    /// [`Sources::find`] for the node's LAN segment `lan`.
    pub fn find_on(
        config: &Config,
        node: usize,
        lan: usize,
        interface_addresses: &[IpAddr],
    ) -> Sources {
        let me = &config.nodes[node];
        let is_virtual = |a: &IpAddr| {
            config
                .groups
                .iter()
                .any(|g| g.addresses.iter().any(|v| v.address == *a))
        };
        let v4 = source_address_on(me, lan, Family::V4).or_else(|| {
            interface_addresses
                .iter()
                .copied()
                .find(|a| a.is_ipv4() && !is_virtual(a))
        });
        let v6 = source_address_on(me, lan, Family::V6).or_else(|| {
            interface_addresses
                .iter()
                .copied()
                .find(|a| matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        });
        Sources { v4, v6 }
    }

    pub fn get(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The virtual addresses `node` may hold: those of every group it is a member of, without
/// its own address, each once, in file order.
pub fn virtual_addresses_of(config: &Config, node: usize) -> Vec<crate::config::VirtualAddress> {
    let own = config.nodes.get(node).map(|n| n.address);
    let mut found: Vec<crate::config::VirtualAddress> = Vec::new();
    for group in &config.groups {
        if group.priority_of(node).is_none() {
            continue;
        }
        for address in &group.addresses {
            if Some(address.address) != own && !found.contains(address) {
                found.push(*address);
            }
        }
    }
    found
}

/// Virtual addresses of `node`'s groups found on its interface: left by an earlier run that
/// crashed, they must go before the node joins, so that two nodes never hold them at once.
pub fn stale_addresses(
    config: &Config,
    node: usize,
    interface_addresses: &[IpAddr],
) -> Vec<crate::config::VirtualAddress> {
    virtual_addresses_of(config, node)
        .into_iter()
        .filter(|a| interface_addresses.contains(&a.address))
        .collect()
}

/// True when `node` backs up a group whose address owner (priority 255) is another node:
/// while it holds that address, the owner's adverts come from an address local here, which
/// the kernel drops as martian unless accept_local is on for the interface.
pub fn backs_up_an_owner(config: &Config, node: usize) -> bool {
    config.groups.iter().any(|g| {
        g.priority_of(node).is_some_and(|p| p < 255) && g.priorities.iter().any(|(_, p)| *p == 255)
    })
}

fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The election configuration of `family` in `group` for node `node`. `primary` is the
/// address this node sends from when the file does not say (the daemon reads it off the
/// interface); without it the unspecified address stands in.
pub fn instance_config(
    config: &Config,
    group: &Group,
    node: usize,
    family: Family,
    primary: Option<IpAddr>,
) -> Option<InstanceConfig> {
    let priority = group.priority_of(node)?;
    let peers = group
        .priorities
        .iter()
        .filter(|(n, _)| *n != node)
        .map(|(n, p)| {
            // The file is the same on every node: a peer's trackers bound its priority.
            let (min_priority, max_priority) = crate::config::track::range(*p, &group.track);
            Peer {
                name: config.nodes[*n].name.clone(),
                priority: *p,
                min_priority,
                max_priority,
                address: group_source(config, group, *n, family),
            }
        })
        .collect();
    Some(InstanceConfig {
        vrid: group.vrid,
        family,
        priority,
        primary: group_source(config, group, node, family)
            .or(primary)
            .unwrap_or_else(|| unspecified(family)),
        advert_interval: group.advert_interval,
        preempt: group.preempt,
        preempt_delay: group.preempt_delay,
        link_hold: group.link_hold,
        accept_mode: group.accept_mode,
        announce: AnnounceConfig {
            count: group.announce.count,
            interval: group.announce.interval,
            refresh: group.announce.refresh,
        },
        peers,
        fast_takeover: config.all_members_vipd(group),
        allow_unknown_peers: config.cluster.allow_unknown_peers,
    })
}

/// Every group node `node` is a member of, with one instance per family, sending from
/// `sources` where the file does not say.
pub fn for_node_with(config: &Config, node: usize, sources: &[Sources]) -> Vec<GroupPlan> {
    config
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.priority_of(node).is_some())
        .map(|(index, group)| GroupPlan {
            group: index,
            instances: group
                .families()
                .into_iter()
                .filter_map(|family| {
                    let lan = group.lan_of(&config.nodes[node]);
                    let found = sources.get(lan).and_then(|s| s.get(family));
                    instance_config(config, group, node, family, found)
                })
                .collect(),
        })
        .collect()
}

/// Every group node `node` is a member of, with one instance per family (the file's source
/// addresses only).
pub fn for_node(config: &Config, node: usize) -> Vec<GroupPlan> {
    for_node_with(config, node, &[])
}
