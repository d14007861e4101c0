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

use super::effect::GroupName;
use crate::config::Config;
use crate::election::Advert;
use crate::wire::Family;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

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
    /// The last advert of each unknown source per group and family, handled again once a
    /// fact settles who sent it (bounded).
    pending: VecDeque<Pending>,
    /// When each address was last asked to be resolved (bounded).
    asked: HashMap<IpAddr, Instant>,
}

/// An advert from a source nothing was known about, kept until a fact arrives.
#[derive(Debug, Clone)]
pub struct Pending {
    pub group: GroupName,
    pub family: Family,
    pub advert: Advert,
    pub at: Instant,
}

/// How long an unknown source's advert waits for a fact.
const PENDING_FOR: Duration = Duration::from_millis(500);
/// An address is asked to be resolved at most this often.
const ASK_EVERY: Duration = Duration::from_millis(100);

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

    /// Keeps the advert of an unknown source, replacing an older one of the same source,
    /// group and family.
    pub fn keep_pending(&mut self, pending: Pending) {
        self.pending.retain(|p| {
            !(p.advert.src == pending.advert.src
                && p.group == pending.group
                && p.family == pending.family)
        });
        if self.pending.len() == UNKNOWN_KEPT {
            self.pending.pop_front();
        }
        self.pending.push_back(pending);
    }

    /// The kept adverts still fresh at `now` (taken out: the caller handles them again).
    pub fn take_pending(&mut self, now: Instant) -> Vec<Pending> {
        self.pending
            .drain(..)
            .filter(|p| now < p.at + PENDING_FOR)
            .collect()
    }

    /// Of `addresses`, those not asked for within [`ASK_EVERY`]; they count as asked now.
    pub fn ask(&mut self, now: Instant, addresses: Vec<IpAddr>) -> Vec<IpAddr> {
        if self.asked.len() > 256 {
            self.asked.retain(|_, at| now < *at + ASK_EVERY);
        }
        addresses
            .into_iter()
            .filter(|a| {
                let due = self.asked.get(a).is_none_or(|at| now >= *at + ASK_EVERY);
                if due {
                    self.asked.insert(*a, now);
                }
                due
            })
            .collect()
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
