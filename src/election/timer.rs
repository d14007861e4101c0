//! Named timers of one instance, in the style of quinn-proto's `TimerTable`: each purpose has
//! its own slot, so that a fault retry never hides in the master-down timer.

use std::time::Instant;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Backup: no advert from the master for Master_Down_Interval.
    MasterDown,
    /// Master: the next advert is due.
    Advert,
    /// Master: the next gratuitous ARP / neighbour advertisement is due.
    Announce,
    /// Fault after giving the group up: the wait before trying again through Backup.
    FaultRetry,
    /// Master handing the group over: the wait for another node to take it.
    Handover,
    /// Handed over: the old master keeps its addresses a moment longer for late packets.
    Linger,
}

impl Timer {
    pub const ALL: [Timer; 6] = [
        Timer::MasterDown,
        Timer::Advert,
        Timer::Announce,
        Timer::FaultRetry,
        Timer::Handover,
        Timer::Linger,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.slot()] = Some(at);
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.slot()]
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.slot()] = None;
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; Timer::ALL.len()];
    }

    /// The soonest deadline of any timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// True, and the timer stopped, when `timer` is due at `now`.
    pub fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        if self.get(timer).is_some_and(|at| at <= now) {
            self.stop(timer);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expire_fires_once_and_only_when_due() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        table.set(Timer::Advert, t0 + Duration::from_millis(10));
        table.set(Timer::FaultRetry, t0 + Duration::from_millis(5));
        assert_eq!(table.next_timeout(), Some(t0 + Duration::from_millis(5)));
        assert!(!table.expire(Timer::Advert, t0 + Duration::from_millis(9)));
        assert!(table.expire(Timer::Advert, t0 + Duration::from_millis(10)));
        assert!(!table.expire(Timer::Advert, t0 + Duration::from_millis(10)));
        assert_eq!(
            table.get(Timer::FaultRetry),
            Some(t0 + Duration::from_millis(5))
        );
        table.stop_all();
        assert_eq!(table.next_timeout(), None);
    }
}
