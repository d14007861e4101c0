//! Health tracking on one node, pure: the results of the track scripts (run by the shell)
//! and the link states of tracked interfaces go in; rise and fall counting decide when a
//! script is up or down; each group's effective priority and fault follow
//! ([`crate::config::track::verdict`]) and go to its election.

use crate::config::Config;
use crate::config::track::{Tracked, Tracker, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One script's state: up or down, and the run of results against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScriptState {
    up: bool,
    /// Results in a row that disagree with `up` (a fall or a rise under way).
    streak: u32,
    runs: u64,
    failures: u64,
    last_ok: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct Tracking {
    /// By script name (kept across reloads when the script stays the same).
    scripts: BTreeMap<String, ScriptState>,
    /// Tracked interfaces' links as the shell last reported them; unknown counts as up.
    links: BTreeMap<String, bool>,
}

/// One tracker of a group, for `vipd status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackerStatus {
    /// `script` or `interface`.
    pub kind: String,
    pub name: String,
    pub weight: i16,
    pub up: bool,
    /// Scripts: runs and failed runs so far.
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub failures: u64,
}

impl Tracking {
    /// The scripts of `config` in their initial state (up, or down with `init_fail`).
    pub fn new(config: &Config) -> Tracking {
        let mut tracking = Tracking::default();
        tracking.reload(config, None);
        tracking
    }

    /// A new file: scripts that stay the same keep their state, others start afresh.
    pub fn reload(&mut self, new: &Config, old: Option<&Config>) {
        let mut scripts = BTreeMap::new();
        for script in &new.track_scripts {
            let same = old
                .and_then(|old| old.track_scripts.iter().find(|s| s.name == script.name))
                .is_some_and(|s| s == script);
            let state = match self.scripts.remove(&script.name) {
                Some(state) if same => state,
                _ => ScriptState {
                    up: !script.init_fail,
                    ..ScriptState::default()
                },
            };
            scripts.insert(script.name.clone(), state);
        }
        self.scripts = scripts;
    }

    /// A run of script `name` succeeded (`ok`) or failed. True when its up/down changed.
    pub fn script_result(&mut self, config: &Config, name: &str, ok: bool) -> bool {
        let Some(script) = config.track_scripts.iter().find(|s| s.name == name) else {
            return false;
        };
        let Some(state) = self.scripts.get_mut(name) else {
            return false;
        };
        state.runs += 1;
        state.failures += u64::from(!ok);
        state.last_ok = Some(ok);
        if ok == state.up {
            state.streak = 0;
            return false;
        }
        state.streak += 1;
        let needed = if state.up { script.fall } else { script.rise };
        if state.streak >= needed {
            state.up = ok;
            state.streak = 0;
            true
        } else {
            false
        }
    }

    /// A tracked interface's link. True when it changed.
    pub fn link(&mut self, interface: &str, up: bool) -> bool {
        self.links.insert(interface.to_string(), up) != Some(up)
    }

    pub fn script_up(&self, name: &str) -> bool {
        self.scripts.get(name).is_none_or(|s| s.up)
    }

    fn up(&self, config: &Config, tracker: &Tracker) -> bool {
        match &tracker.tracked {
            Tracked::Script(index) => config
                .track_scripts
                .get(*index)
                .is_none_or(|s| self.script_up(&s.name)),
            Tracked::Interface(name) => self.links.get(name).copied().unwrap_or(true),
        }
    }

    /// The effective priority of a member with priority `base` in a group with `trackers`.
    pub fn verdict(&self, config: &Config, base: u8, trackers: &[Tracker]) -> Verdict {
        crate::config::track::verdict(base, trackers, |t| self.up(config, t))
    }

    /// The group's trackers as `vipd status` shows them.
    pub fn status(&self, config: &Config, trackers: &[Tracker]) -> Vec<TrackerStatus> {
        trackers
            .iter()
            .map(|tracker| {
                let up = self.up(config, tracker);
                match &tracker.tracked {
                    Tracked::Script(index) => {
                        let name = config
                            .track_scripts
                            .get(*index)
                            .map(|s| s.name.clone())
                            .unwrap_or_default();
                        let state = self.scripts.get(&name).cloned().unwrap_or_default();
                        TrackerStatus {
                            kind: "script".into(),
                            name,
                            weight: tracker.weight,
                            up,
                            runs: state.runs,
                            failures: state.failures,
                        }
                    }
                    Tracked::Interface(name) => TrackerStatus {
                        kind: "interface".into(),
                        name: name.clone(),
                        weight: tracker.weight,
                        up,
                        runs: 0,
                        failures: 0,
                    },
                }
            })
            .collect()
    }
}
