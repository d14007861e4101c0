//! The VRRPv3 election (RFC 9568 section 6), pure: time goes in as an argument, adverts go in
//! as values, and what the world must do comes out of `poll_action` as values, in the style
//! of quinn-proto's `Connection`. No sockets, no clock, no threads.
//!
//! [`Instance`] is one virtual router (one group, one address family); [`Group`] keeps the
//! instances of a dual-stack group on the same owner, like a keepalived sync group.

mod conflict;
mod group;
mod instance;
mod timer;

pub use conflict::{CONFLICT_AFTER_INTERVALS, Rival};
pub use group::Group;
pub use instance::{
    Action, Advert, Counters, Ignored, Instance, MAX_LEARNED_STRETCH, RETRY_AFTER_CLAIM_FAILURE,
    Reason, State, Transition,
};
pub use timer::{Timer, TimerTable};

use crate::wire::Family;
use std::net::IpAddr;
use std::time::Duration;

/// Another member of the group, as the cluster file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Its priority in the file.
    pub priority: u8,
    /// The range its effective priority moves in with its health trackers (both equal to
    /// `priority` without trackers).
    pub min_priority: u8,
    pub max_priority: u8,
    /// The address its adverts of this family come from, when known in advance (IPv6 adverts
    /// come from link-local addresses that the file may not list).
    pub address: Option<IpAddr>,
}

/// How the node that becomes master announces its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceConfig {
    pub count: u32,
    pub interval: Duration,
    /// Zero: no periodic refresh.
    pub refresh: Duration,
}

/// Everything one instance needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    pub vrid: u8,
    pub family: Family,
    /// This node's priority: 255 for the address owner.
    pub priority: u8,
    /// The address this node sends adverts from: compared on equal priority.
    pub primary: IpAddr,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// After a link-up that follows a flap, no preempt until the link has been up this long.
    pub link_hold: Duration,
    pub accept_mode: bool,
    pub announce: AnnounceConfig,
    /// The other members.
    pub peers: Vec<Peer>,
    /// All members are vipd and know each other's priorities: the next node in line skips
    /// Skew_Time. Off when a foreign VRRP speaker is a member.
    pub fast_takeover: bool,
    /// Accept adverts from sources that are not members.
    pub allow_unknown_peers: bool,
}

impl InstanceConfig {
    /// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256, computed in nanoseconds,
    /// for the file's priority.
    pub fn skew_time(&self, master_adver_interval: Duration) -> Duration {
        skew_time_at(self.priority, master_adver_interval)
    }

    /// How many live-able members would take over before this node (at its file priority)
    /// if the master named by `master` (an index into `peers`) went away.
    pub fn rank_without(&self, master: Option<usize>) -> usize {
        self.rank_without_at(self.priority, master)
    }

    /// How many members could take over before this node, at effective priority `mine`, if
    /// the master named by `master` (an index into `peers`) went away: those whose priority
    /// can be higher (their trackers' best case: backups are silent, so their effective
    /// priority is unknown), or equal with a higher address. A peer whose address is unknown
    /// counts as ahead on a tie, to be safe.
    pub fn rank_without_at(&self, mine: u8, master: Option<usize>) -> usize {
        self.peers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != master)
            .filter(|(_, p)| {
                p.max_priority > mine
                    || (p.max_priority == mine && p.address.is_none_or(|a| a > self.primary))
            })
            .count()
    }

    /// Skew this node applies at effective priority `mine`: none when it is first in line
    /// and every member is vipd.
    pub fn effective_skew(
        &self,
        mine: u8,
        master_adver_interval: Duration,
        master: Option<usize>,
    ) -> Duration {
        if self.fast_takeover && self.rank_without_at(mine, master) == 0 {
            Duration::ZERO
        } else {
            skew_time_at(mine, master_adver_interval)
        }
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time, at the file's priority.
    pub fn master_down_interval(
        &self,
        master_adver_interval: Duration,
        master: Option<usize>,
    ) -> Duration {
        self.master_down_interval_at(self.priority, master_adver_interval, master)
    }

    /// Master_Down_Interval at effective priority `mine`.
    pub fn master_down_interval_at(
        &self,
        mine: u8,
        master_adver_interval: Duration,
        master: Option<usize>,
    ) -> Duration {
        3 * master_adver_interval + self.effective_skew(mine, master_adver_interval, master)
    }
}

/// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256, computed in nanoseconds.
pub fn skew_time_at(priority: u8, master_adver_interval: Duration) -> Duration {
    let nanos = (256 - u128::from(priority)) * master_adver_interval.as_nanos() / 256;
    Duration::from_nanos(nanos as u64)
}
