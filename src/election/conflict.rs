//! Two masters that never resolve: another master keeps advertising while this node is
//! master and neither yields (the IPv4 checksum forms differ, the VRID clashes with another
//! router's, adverts pass one way only). Pure: the instance feeds it what it hears.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A conflict is declared once another master has been heard for this many of this node's
/// advert intervals without either side yielding.
pub const CONFLICT_AFTER_INTERVALS: u32 = 3;

/// The other master as last heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rival {
    pub src: IpAddr,
    /// Index into the instance's peers, when a member.
    pub sender: Option<usize>,
    pub priority: u8,
    /// First advert of this stretch (a silence of `clear_after` starts a new one).
    pub since: Instant,
    pub last: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ConflictWatch {
    rival: Option<Rival>,
}

impl ConflictWatch {
    /// A second master's advert (priority above 0) heard while master. `clear_after`: the
    /// silence after which an earlier stretch is over (Master_Down_Interval).
    pub fn heard(
        &mut self,
        now: Instant,
        src: IpAddr,
        sender: Option<usize>,
        priority: u8,
        clear_after: Duration,
    ) {
        let since = match self.rival {
            Some(r) if r.src == src && now < r.last + clear_after => r.since,
            _ => now,
        };
        self.rival = Some(Rival {
            src,
            sender,
            priority,
            since,
            last: now,
        });
    }

    /// The rival while the conflict lasts: heard for more than `after`, and not silent for
    /// `clear_after`.
    pub fn active(&self, now: Instant, after: Duration, clear_after: Duration) -> Option<Rival> {
        self.rival
            .filter(|r| r.last - r.since > after && now < r.last + clear_after)
    }

    pub fn clear(&mut self) {
        self.rival = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn declared_after_three_intervals_and_cleared_after_a_silence() {
        let t0 = Instant::now();
        let src: IpAddr = "192.0.2.12".parse().unwrap();
        let (after, clear) = (300 * MS, 360 * MS);
        let mut watch = ConflictWatch::default();
        for k in 0..=3 {
            watch.heard(t0 + 100 * MS * k, src, Some(0), 100, clear);
            assert!(watch.active(t0 + 100 * MS * k, after, clear).is_none());
        }
        watch.heard(t0 + 400 * MS, src, Some(0), 100, clear);
        assert_eq!(watch.active(t0 + 400 * MS, after, clear).unwrap().src, src);
        assert!(watch.active(t0 + 759 * MS, after, clear).is_some());
        assert!(watch.active(t0 + 760 * MS, after, clear).is_none());
        // Heard again after the silence: a new stretch.
        watch.heard(t0 + 800 * MS, src, Some(0), 100, clear);
        assert!(watch.active(t0 + 800 * MS, after, clear).is_none());
    }
}
