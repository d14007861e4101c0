//! Dropped datagrams in the log (issue 11): the first drop per (source, reason) at warn with
//! the source and the reason, then at most one summary line per source per minute with the
//! count. Pure: the node decides with `now` and logs what [`DropLog::note`] returns. The
//! table is bounded: past [`DropLog::CAPACITY`] sources, the oldest is forgotten (it would
//! be warned about again).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What to log for one drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// The first drop of this reason from this source.
    First { source: IpAddr, reason: String },
    /// Drops from this source since its last line (this one included).
    Summary {
        source: IpAddr,
        count: u64,
        over: Duration,
    },
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogLine::First { source, reason } => {
                write!(f, "dropped a VRRP packet from {source}: {reason}")
            }
            LogLine::Summary {
                source,
                count,
                over,
            } => write!(
                f,
                "dropped {count} more VRRP packets from {source} in the last {}s (see the drop counters in status)",
                over.as_secs()
            ),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Reasons already warned about, by metric name.
    reasons: Vec<&'static str>,
    /// When the source's last line was logged.
    last_line: Instant,
    /// Drops since then that were not logged.
    unlogged: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DropLog {
    entries: HashMap<IpAddr, Entry>,
    /// Sources in the order they were first seen: the oldest is evicted first.
    order: VecDeque<IpAddr>,
}

impl DropLog {
    /// Sources remembered at most.
    pub const CAPACITY: usize = 1024;
    /// At most one summary line per source in this span.
    pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

    /// A drop from `source` for `reason` (`key`: the reason's stable name): what to log,
    /// if anything.
    pub fn note(
        &mut self,
        now: Instant,
        source: IpAddr,
        key: &'static str,
        reason: &dyn std::fmt::Display,
    ) -> Option<LogLine> {
        if !self.entries.contains_key(&source) {
            if self.entries.len() >= Self::CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.entries.remove(&oldest);
            }
            self.order.push_back(source);
            self.entries.insert(
                source,
                Entry {
                    reasons: Vec::new(),
                    last_line: now,
                    unlogged: 0,
                },
            );
        }
        let entry = self.entries.get_mut(&source).expect("inserted above");
        if !entry.reasons.contains(&key) {
            entry.reasons.push(key);
            entry.last_line = now;
            return Some(LogLine::First {
                source,
                reason: reason.to_string(),
            });
        }
        entry.unlogged += 1;
        let over = now.saturating_duration_since(entry.last_line);
        if over >= Self::SUMMARY_EVERY {
            let count = std::mem::take(&mut entry.unlogged);
            entry.last_line = now;
            return Some(LogLine::Summary {
                source,
                count,
                over,
            });
        }
        None
    }

    /// Sources remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0200 + n))
    }

    #[test]
    fn first_per_reason_then_one_summary_per_minute() {
        let t0 = Instant::now();
        let mut log = DropLog::default();
        let s = ip(99);
        let first = log.note(t0, s, "not_member", &"the sender is not a member");
        assert_eq!(
            first,
            Some(LogLine::First {
                source: s,
                reason: "the sender is not a member".into()
            })
        );
        // Another reason from the same source: its own first line.
        assert!(matches!(
            log.note(t0, s, "bad_ttl", &"TTL 1"),
            Some(LogLine::First { .. })
        ));
        // A flood within the minute: silent.
        for k in 1..=599 {
            let at = t0 + Duration::from_millis(100 * k);
            assert_eq!(log.note(at, s, "not_member", &"x"), None, "at {k}");
        }
        let line = log.note(t0 + Duration::from_secs(60), s, "not_member", &"x");
        assert_eq!(
            line,
            Some(LogLine::Summary {
                source: s,
                count: 600,
                over: Duration::from_secs(60)
            })
        );
        assert_eq!(
            log.note(t0 + Duration::from_secs(61), s, "not_member", &"x"),
            None
        );
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_source() {
        let t0 = Instant::now();
        let mut log = DropLog::default();
        for n in 0..(DropLog::CAPACITY as u32 + 10) {
            assert!(log.note(t0, ip(n), "not_member", &"x").is_some());
        }
        assert_eq!(log.len(), DropLog::CAPACITY);
        // The newest are remembered, the oldest forgotten (warned about again).
        assert_eq!(
            log.note(t0, ip(DropLog::CAPACITY as u32 + 9), "not_member", &"x"),
            None
        );
        assert!(log.note(t0, ip(0), "not_member", &"x").is_some());
    }
}
