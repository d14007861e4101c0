//! What a node asks the world to do: values handed out by [`super::Node::poll_effect`], in
//! the order they must be carried out. Each effect is self-contained (a reload may change the
//! configuration before the shell carries it out).

use crate::config::{Resource, VirtualAddress};
use crate::dns::zone::Zone;
use crate::election::Transition;
use crate::wire::Family;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A group is named by its name in the cluster file (stable across reloads).
pub type GroupName = Arc<str>;

#[derive(Debug, Clone)]
pub enum Effect {
    /// One signed heartbeat of the membership channel (UDP).
    Heartbeat { to: SocketAddr, bytes: Vec<u8> },
    /// Run `command` to fence `node` (at `address`) within `timeout`; the outcome goes back
    /// as `Node::handle_fence`.
    Fence {
        node: String,
        address: IpAddr,
        command: String,
        timeout: std::time::Duration,
    },
    /// Send one advert: the same message to each destination, checksummed for it.
    Send {
        group: GroupName,
        /// The LAN segment of this node (index into its `lans`) whose socket sends it.
        lan: usize,
        family: Family,
        priority: u8,
        datagrams: Vec<(IpAddr, Vec<u8>)>,
    },
    /// Add the virtual addresses (a failure goes back as `Node::handle_claim_failed`).
    Claim {
        group: GroupName,
        family: Family,
        accept: bool,
        addresses: Vec<VirtualAddress>,
    },
    /// Put back one virtual address that someone else removed while this node is master.
    Restore {
        group: GroupName,
        address: VirtualAddress,
    },
    /// Remove the virtual addresses.
    Release {
        group: GroupName,
        family: Family,
        addresses: Vec<VirtualAddress>,
    },
    /// Gratuitous ARP / unsolicited neighbour advertisement for these addresses.
    Announce {
        group: GroupName,
        family: Family,
        addresses: Vec<IpAddr>,
    },
    /// A state changed (already logged by the node).
    Transition {
        group: GroupName,
        family: Family,
        transition: Transition,
    },
    /// The group's mastership on this node began or ended; `generation` names it. Work tied
    /// to a mastership (registration in the site's DNS, resource checks) lasts while the
    /// generation is current.
    Mastership {
        group: GroupName,
        generation: u64,
        began: bool,
        /// The group's virtual names and addresses (for the registration).
        names: Vec<String>,
        addresses: Vec<IpAddr>,
    },
    /// The addresses are up: start the group's resources, in order, then check them.
    StartResources {
        group: GroupName,
        generation: u64,
        resources: Vec<Resource>,
        /// The group's addresses as the commands see them (`VIPD_ADDRESSES`).
        addresses: String,
    },
    /// Stepped down (or the definition changed): stop these resources, in reverse order.
    StopResources {
        group: GroupName,
        /// The mastership that ended: the shell reports `ResourceOutcome::Stopped` with it
        /// once the stop commands are done.
        generation: u64,
        resources: Vec<Resource>,
        addresses: String,
    },
    /// Have the kernel resolve this neighbour (its MAC ties an IPv6 source to a member; the
    /// answer comes back as `Node::handle_neighbour`).
    Resolve { address: IpAddr },
    /// The zone changed (an owner moved, a reload): serve this one.
    PublishZone(Box<Zone>),
}
