//! Fencing: a node that is about to start a quorum group's resources after another member
//! vanished (no heartbeat says it let go) first has that member fenced, by the `fence`
//! command the file gives for it (a power-off through its BMC, a storage reservation, a
//! cloud API call), and waits for the command's success. A failed fence is retried every
//! [`FENCE_RETRY`]; until one succeeds the group stays without owner (safe before
//! available, as Pacemaker does without STONITH success). A member that says it let go
//! (a handover, a shutdown) needs no fencing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The wait before a failed fence is tried again.
pub const FENCE_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceState {
    Running { since: Instant },
    Done { at: Instant },
    Failed { at: Instant, why: String },
}

/// The fences this node ran, per member (index in the file's nodes).
#[derive(Debug, Clone, Default)]
pub struct Fences {
    states: BTreeMap<usize, FenceState>,
    runs: BTreeMap<usize, u64>,
    failures: BTreeMap<usize, u64>,
}

impl Fences {
    /// True when `node` was fenced after it was last heard (`heard`): it is down.
    pub fn fenced_since(&self, node: usize, heard: Option<Instant>) -> bool {
        matches!(self.states.get(&node), Some(FenceState::Done { at }) if heard.is_none_or(|h| *at >= h))
    }

    /// True when a fence of `node` should start now: none runs, none succeeded since it was
    /// last heard, and the last failure is older than [`FENCE_RETRY`].
    pub fn due(&self, node: usize, heard: Option<Instant>, now: Instant) -> bool {
        match self.states.get(&node) {
            None => true,
            Some(FenceState::Running { .. }) => false,
            Some(FenceState::Done { .. }) => !self.fenced_since(node, heard),
            Some(FenceState::Failed { at, .. }) => now >= *at + FENCE_RETRY,
        }
    }

    pub fn start(&mut self, node: usize, now: Instant) {
        self.states.insert(node, FenceState::Running { since: now });
        *self.runs.entry(node).or_default() += 1;
    }

    /// The fence's outcome; false when none was running (a stale report).
    pub fn finish(&mut self, node: usize, now: Instant, outcome: Result<(), String>) -> bool {
        if !matches!(self.states.get(&node), Some(FenceState::Running { .. })) {
            return false;
        }
        let state = match outcome {
            Ok(()) => FenceState::Done { at: now },
            Err(why) => {
                *self.failures.entry(node).or_default() += 1;
                FenceState::Failed { at: now, why }
            }
        };
        self.states.insert(node, state);
        true
    }

    /// When a failed fence may be tried again, the soonest.
    pub fn next_retry(&self) -> Option<Instant> {
        self.states
            .values()
            .filter_map(|s| match s {
                FenceState::Failed { at, .. } => Some(*at + FENCE_RETRY),
                _ => None,
            })
            .min()
    }

    /// For status: (node, state text, runs, failures).
    pub fn view(&self, now: Instant) -> Vec<(usize, String, u64, u64)> {
        self.runs
            .iter()
            .map(|(node, runs)| {
                let state = match self.states.get(node) {
                    Some(FenceState::Running { since }) => {
                        format!("running for {:?}", now.saturating_duration_since(*since))
                    }
                    Some(FenceState::Done { at }) => {
                        format!("fenced {:?} ago", now.saturating_duration_since(*at))
                    }
                    Some(FenceState::Failed { why, .. }) => format!("failed: {why}"),
                    None => String::new(),
                };
                (
                    *node,
                    state,
                    *runs,
                    self.failures.get(node).copied().unwrap_or(0),
                )
            })
            .collect()
    }
}
