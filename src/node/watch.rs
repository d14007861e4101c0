//! Warnings the node logs about what it hears (issue 11): an advert interval that differs
//! from the file's, two masters that never resolve. Each is logged once per episode.

use super::discard::Discard;
use super::droplog::DropLog;
use super::effect::Effect;
use crate::config;
use crate::election::{Advert, Group};
use crate::wire::Family;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The instance's `interval_mismatch` count, before an advert is handed to it.
pub(super) fn interval_mismatches(election: &Group, family: Family) -> u64 {
    election
        .instance(family)
        .map_or(0, |i| i.counters().interval_mismatch)
}

/// Logs the first advert of an instance whose interval differs from the file's, once the
/// election counted it (in `interval_mismatch`: strangers' adverts, dropped, are not); a
/// member's longer interval is followed, see [`crate::election::MAX_LEARNED_STRETCH`]. Call
/// when the count was 0 before the advert.
pub(super) fn interval_mismatch(
    election: &Group,
    family: Family,
    group: &config::Group,
    advert: &Advert,
) {
    if election
        .instance(family)
        .is_some_and(|i| i.counters().interval_mismatch == 1)
    {
        warn!(group = %group.name, %family, src = %advert.src,
            "advert interval {:?} differs from the file's {:?}: the members' advert_interval should agree",
            advert.interval, group.advert_interval);
    }
}

/// Logs ONE warning when another master has kept advertising past the threshold while this
/// node is master, and notes when it has ended (`logged`: the families warned about).
pub(super) fn conflict(
    now: Instant,
    name: &str,
    election: &Group,
    family: Family,
    logged: &mut Vec<Family>,
) {
    let Some(instance) = election.instance(family) else {
        return;
    };
    match instance.conflict(now) {
        Some(rival) if !logged.contains(&family) => {
            logged.push(family);
            let peer = instance
                .peer_name(rival.sender)
                .map_or_else(|| "a stranger".to_string(), |n| format!("member {n}"));
            warn!(group = %name, %family,
                "two masters: {peer} ({}) keeps advertising priority {} for {:?} while this node is master, and neither yields; likely causes: the IPv4 checksum forms differ (vipd's ipv4_checksum, keepalived's v3_checksum_as_v2), another router on this LAN uses the same VRID, or adverts pass one way only (a firewall, a switch filter): compare tcpdump on both nodes",
                rival.src, rival.priority, rival.last - rival.since);
        }
        None if logged.contains(&family) => {
            logged.retain(|f| *f != family);
            info!(group = %name, %family, "the other master is gone: conflict over");
        }
        _ => {}
    }
}

/// Logs a dropped datagram as [`DropLog`] decides: the first per (source, reason) at warn,
/// then a summary per source per minute. This node's own adverts coming back are no news.
pub(super) fn dropped(now: Instant, log: &mut DropLog, source: Option<IpAddr>, discard: &Discard) {
    if matches!(discard, Discard::Own) {
        return;
    }
    let source = source.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if let Some(line) = log.note(now, source, discard.metric_name(), discard) {
        warn!(%source, reason = discard.metric_name(), "{line}");
    }
}

/// Addresses this node released itself, lately: the kernel's deletion event that follows
/// is not someone else removing a virtual address (it is not put back).
#[derive(Debug, Default)]
pub(super) struct OwnReleases(Vec<(IpAddr, Instant)>);

impl OwnReleases {
    /// A deletion event this long after the node's own release is taken for its echo.
    pub const GRACE: Duration = Duration::from_secs(2);
    /// Entries kept at most (a release of more addresses than this in one grace period
    /// forgets the oldest).
    const CAPACITY: usize = 4096;

    /// Notes the releases among `effects` (handed out at `now`); a claim in a later call
    /// ends an earlier release (the address is wanted again: a deletion is someone else's).
    pub(super) fn note(&mut self, now: Instant, effects: &VecDeque<Effect>) {
        self.0.retain(|(_, at)| now < *at + Self::GRACE);
        for effect in effects {
            match effect {
                Effect::Release { addresses, .. } => {
                    for a in addresses {
                        self.0.retain(|(address, _)| *address != a.address);
                        self.0.push((a.address, now));
                    }
                }
                Effect::Claim { addresses, .. } => {
                    self.0.retain(|(address, at)| {
                        *at == now || !addresses.iter().any(|a| a.address == *address)
                    });
                }
                _ => {}
            }
        }
        if self.0.len() > Self::CAPACITY {
            let excess = self.0.len() - Self::CAPACITY;
            self.0.drain(..excess);
        }
    }

    /// True (once) when `address` was released by this node within the grace period.
    pub(super) fn ours(&mut self, now: Instant, address: IpAddr) -> bool {
        self.0.retain(|(_, at)| now < *at + Self::GRACE);
        match self.0.iter().position(|(a, _)| *a == address) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }
}
