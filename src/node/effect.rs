//! What a node asks the world to do: values handed out by [`super::Node::poll_effect`], in
//! the order they must be carried out.

use crate::config::VirtualAddress;
use crate::dns::zone::Zone;
use crate::election::Transition;
use crate::wire::Family;
use std::net::IpAddr;

/// A group is named by its index in the cluster file's `groups`.
pub type GroupIndex = usize;

#[derive(Debug, Clone)]
pub enum Effect {
    /// Send one advert: the same message to each destination, checksummed for it.
    Send {
        group: GroupIndex,
        family: Family,
        priority: u8,
        datagrams: Vec<(IpAddr, Vec<u8>)>,
    },
    /// Add the virtual addresses (a failure goes back as `Node::handle_claim_failed`).
    Claim {
        group: GroupIndex,
        family: Family,
        accept: bool,
        addresses: Vec<VirtualAddress>,
    },
    /// Put back one virtual address that someone else removed while this node is master.
    Restore {
        group: GroupIndex,
        address: VirtualAddress,
    },
    /// Remove the virtual addresses.
    Release {
        group: GroupIndex,
        family: Family,
        addresses: Vec<VirtualAddress>,
    },
    /// Gratuitous ARP / unsolicited neighbour advertisement for these addresses.
    Announce {
        group: GroupIndex,
        family: Family,
        addresses: Vec<IpAddr>,
    },
    /// A state changed (already logged by the node).
    Transition {
        group: GroupIndex,
        family: Family,
        transition: Transition,
    },
    /// The group's mastership on this node began or ended; `generation` names it. Work tied
    /// to a mastership (registration in the site's DNS, resource checks) lasts while the
    /// generation is current.
    Mastership {
        group: GroupIndex,
        generation: u64,
        began: bool,
    },
    /// The addresses are up: start the group's resources, in order, then check them.
    StartResources { group: GroupIndex, generation: u64 },
    /// Stepped down: stop the group's resources, in reverse order.
    StopResources { group: GroupIndex },
    /// The zone changed (an owner moved): serve this one.
    PublishZone(Box<Zone>),
}
