//! Defending held addresses (RFC 5227 section 2.4): another host that claims, by ARP or by a
//! neighbour advertisement, an address this node holds as master moves the LAN's caches to
//! itself. The owner answers at once with its own announcement, at most once per
//! [`DEFEND_INTERVAL`] per address (beyond that, it keeps announcing at most that often),
//! logs the offender's MAC and counts the conflict. Pure: the shell hands claims in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// RFC 5227's DEFEND_INTERVAL: at most one defence per address in this time.
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// Addresses kept at most (the oldest defences are forgotten first).
const KEPT: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct Defences {
    last: HashMap<IpAddr, Instant>,
    /// Conflicting claims heard (defended or not).
    pub conflicts: u64,
}

impl Defences {
    /// A conflicting claim on `address` at `now`: true when this node defends it now.
    pub fn conflict(&mut self, now: Instant, address: IpAddr) -> bool {
        self.conflicts += 1;
        if self
            .last
            .get(&address)
            .is_some_and(|at| now < *at + DEFEND_INTERVAL)
        {
            return false;
        }
        if self.last.len() >= KEPT {
            self.last.retain(|_, at| now < *at + DEFEND_INTERVAL);
        }
        self.last.insert(address, now);
        true
    }
}
