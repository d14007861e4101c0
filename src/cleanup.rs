//! `vipd cleanup`: take this node's virtual addresses off its interface after the daemon is
//! gone (systemd's `ExecStopPost`, or by hand after a crash), so that a node whose daemon was
//! killed does not keep answering for an address another node now holds.
//!
//! Only the addresses of the groups this node is a member of are removed, never the node's
//! own address (a group may list it when this node is the address owner, priority 255), and
//! nothing else is touched.

use crate::config::{Config, VirtualAddress};
use crate::net::netlink::{self, NetlinkError};

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("node index {0} is not in the cluster file")]
    NoSuchNode(usize),
    #[error("interface {interface} of node {node}: {source}")]
    Interface {
        node: String,
        interface: String,
        source: NetlinkError,
    },
    #[error("cannot remove {address} from {interface}: {source}")]
    Remove {
        address: VirtualAddress,
        interface: String,
        source: NetlinkError,
    },
}

pub use crate::plan::virtual_addresses_of;

/// The error for a failure on `node`'s interface.
fn interface_error(
    node: &crate::config::Node,
) -> impl Fn(NetlinkError) -> CleanupError + Copy + '_ {
    move |source| CleanupError::Interface {
        node: node.name.clone(),
        interface: node.interface.clone(),
        source,
    }
}

/// Removes `node`'s virtual addresses from its interface through rtnetlink; returns those
/// that were there. An address that is already gone counts as removed. Needs
/// CAP_NET_ADMIN and a tokio runtime.
pub async fn remove_virtual_addresses(
    config: &Config,
    node: usize,
) -> Result<Vec<VirtualAddress>, CleanupError> {
    let me = config
        .nodes
        .get(node)
        .ok_or(CleanupError::NoSuchNode(node))?;
    let interface_error = interface_error(me);
    let handle = netlink::connect().map_err(interface_error)?;
    let mut removed = Vec::new();
    // Every LAN segment of the node: its first interface, then each [[node.lan]].
    for lan in &me.lans {
        let link = netlink::link_by_name(&handle, &lan.interface)
            .await
            .map_err(|source| CleanupError::Interface {
                node: me.name.clone(),
                interface: lan.interface.clone(),
                source,
            })?;
        let present = netlink::addresses(&handle, link.index)
            .await
            .map_err(interface_error)?;
        for address in virtual_addresses_of(config, node) {
            if !present.iter().any(|(a, _)| *a == address.address) {
                continue;
            }
            netlink::del_address(&handle, link.index, address)
                .await
                .map_err(|source| CleanupError::Remove {
                    address,
                    interface: lan.interface.clone(),
                    source,
                })?;
            removed.push(address);
        }
    }
    Ok(removed)
}

/// Deletes the virtual-MAC links (`vrrp.<vrid>` / `vrrp6.<vrid>` macvlans) of `node`'s
/// `vmac = true` groups on its interface, with the addresses on them; returns their names.
/// Only those names, only macvlans of that interface: nothing else is touched.
pub async fn remove_vmac_links(config: &Config, node: usize) -> Result<Vec<String>, CleanupError> {
    let me = config
        .nodes
        .get(node)
        .ok_or(CleanupError::NoSuchNode(node))?;
    let interface_error = interface_error(me);
    if !config
        .groups
        .iter()
        .any(|g| g.vmac && g.priority_of(node).is_some())
    {
        // Without `vmac`, cleanup is what it always was: no netlink request here.
        return Ok(Vec::new());
    }
    let handle = netlink::connect().map_err(interface_error)?;
    let link = netlink::link_by_name(&handle, &me.interface)
        .await
        .map_err(interface_error)?;
    let mut removed = Vec::new();
    for group in &config.groups {
        if !group.vmac || group.priority_of(node).is_none() {
            continue;
        }
        for family in group.families() {
            let name = crate::net::vmac::link_name(family, group.vrid);
            if crate::net::vmac::remove_named(&handle, &name, link.index)
                .await
                .map_err(interface_error)?
            {
                removed.push(name);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_s_virtual_addresses_are_its_groups_without_its_own_address() {
        let text = crate::lab::cluster_file(
            3,
            r#"
[[group]]
name = "a"
vrid = 1
addresses = ["192.0.2.100/24", "2001:db8::100/64"]
priority = { alpha = 200, beta = 100 }

[[group]]
name = "owned"
vrid = 2
addresses = ["192.0.2.12/24"]
priority = { beta = 255, alpha = 100 }

[[group]]
name = "gamma-only"
vrid = 3
addresses = ["192.0.2.103/24"]
priority = { gamma = 100 }
"#,
        );
        let config = Config::parse("t.toml", &text).unwrap();
        let text_of = |node| -> Vec<String> {
            virtual_addresses_of(&config, node)
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        assert_eq!(
            text_of(0),
            ["192.0.2.100/24", "2001:db8::100/64", "192.0.2.12/24"]
        );
        // beta owns 192.0.2.12: its own address is never removed.
        assert_eq!(text_of(1), ["192.0.2.100/24", "2001:db8::100/64"]);
        assert_eq!(text_of(2), ["192.0.2.103/24"]);
    }
}
