//! Who sent an IPv6 advert. IPv6 adverts come from link-local addresses that the cluster file
//! may not give (`link_local`); matching such a source to a member by its priority alone lets
//! any host on the LAN pose as that member (a stranger that says the master's priority and
//! then priority 0 made a backup take over beside the live master). A link-local source is
//! therefore tied to a member only when the kernel's neighbour table puts it at the same MAC
//! as the member's configured address: facts the shell hands in
//! ([`super::Node::handle_neighbour`]); the node itself does no I/O.
//!
//! The verdict for a source the file does not give:
//! - the MAC of the source is the MAC of exactly one member's configured address: that member
//!   ([`Verdict::Member`]);
//! - the MAC of the source is known, every member's MAC is known, and none agrees: a stranger
//!   ([`Verdict::Stranger`], dropped and counted as `unverified_source`);
//! - otherwise the node cannot tell ([`Verdict::Unknown`]): the advert may be followed (a
//!   backup learns a master from it), but its priority 0 never takes the group over, it never
//!   makes a master yield, and its source is not remembered.

use crate::config::Config;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

pub type Mac = [u8; 6];

/// A MAC as `02:00:00:00:01:10`.
pub fn mac_text(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The neighbour facts the shell reported: address → MAC.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    macs: HashMap<IpAddr, Mac>,
    /// IPv6 sources heard lately with no fact about them, newest last (bounded).
    unknown: VecDeque<IpAddr>,
}

/// Unknown sources remembered for the shell to resolve (a flood of forged sources pushes
/// out the oldest).
const UNKNOWN_KEPT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The node of the file (index) whose MAC the source has.
    Member(usize),
    Stranger,
    Unknown,
}

impl Neighbours {
    /// `address` is at `mac`, or (None) no longer known. Returns whether anything changed.
    pub fn set(&mut self, address: IpAddr, mac: Option<Mac>) -> bool {
        match mac {
            Some(mac) => self.macs.insert(address, mac) != Some(mac),
            None => self.macs.remove(&address).is_some(),
        }
    }

    /// An advert came from `src`, about which nothing is known: the shell should resolve it.
    pub fn note_unknown(&mut self, src: IpAddr) {
        if self.unknown.contains(&src) {
            return;
        }
        if self.unknown.len() == UNKNOWN_KEPT {
            self.unknown.pop_front();
        }
        self.unknown.push_back(src);
    }

    /// Addresses whose MAC would settle a verdict: the configured addresses of `members`
    /// and the sources heard lately, where no fact is known.
    pub fn wanted(&self, config: &Config, members: &[usize]) -> Vec<IpAddr> {
        let mut wanted: Vec<IpAddr> = members
            .iter()
            .map(|m| config.nodes[*m].address)
            .chain(self.unknown.iter().copied())
            .filter(|a| !self.macs.contains_key(a))
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted
    }

    pub fn get(&self, address: &IpAddr) -> Option<Mac> {
        self.macs.get(address).copied()
    }

    /// Whose advert `src` is, among `members` (nodes of the file other than this one).
    pub fn verdict(&self, config: &Config, members: &[usize], src: IpAddr) -> Verdict {
        let Some(mac) = self.get(&src) else {
            return Verdict::Unknown;
        };
        let mut all_known = true;
        let mut found = None;
        for &member in members {
            match self.get(&config.nodes[member].address) {
                Some(m) if m == mac => {
                    if found.is_some() {
                        // Two members at one MAC: nothing tells them apart.
                        return Verdict::Unknown;
                    }
                    found = Some(member);
                }
                Some(_) => {}
                None => all_known = false,
            }
        }
        match found {
            Some(member) => Verdict::Member(member),
            None if all_known => Verdict::Stranger,
            None => Verdict::Unknown,
        }
    }
}
