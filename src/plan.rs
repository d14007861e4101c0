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
        .map(|(n, p)| Peer {
            name: config.nodes[*n].name.clone(),
            priority: *p,
            address: source_address(&config.nodes[*n], family),
        })
        .collect();
    Some(InstanceConfig {
        vrid: group.vrid,
        family,
        priority,
        primary: source_address(&config.nodes[node], family)
            .or(primary)
            .unwrap_or_else(|| unspecified(family)),
        advert_interval: group.advert_interval,
        preempt: group.preempt,
        preempt_delay: group.preempt_delay,
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

/// Every group node `node` is a member of, with one instance per family.
pub fn for_node(config: &Config, node: usize) -> Vec<GroupPlan> {
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
                .filter_map(|family| instance_config(config, group, node, family, None))
                .collect(),
        })
        .collect()
}
