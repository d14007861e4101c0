//! Health tracking in the shell: runs the track scripts the node asks for (`sh -c`, every
//! `interval`, each in a task of its own with a time-out, never on the event loop) and
//! reports each result; maps tracked interfaces to their link indexes so that link events
//! reach the node. Every decision (rise, fall, weights, fault) is the node's.

use crate::config::Config;
use crate::config::track::{TrackScript, Tracked};
use crate::net::netlink;
use std::collections::HashMap;
use tokio::process::Command;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// One script run's outcome: (script name, succeeded).
pub type CheckResult = (String, bool);

/// The interfaces node `me`'s groups track, by name.
fn tracked_interfaces(config: &Config, me: usize) -> Vec<String> {
    let mut names: Vec<String> = config
        .groups
        .iter()
        .filter(|g| g.priority_of(me).is_some())
        .flat_map(|g| g.track.iter())
        .filter_map(|t| match &t.tracked {
            Tracked::Interface(name) => Some(name.clone()),
            Tracked::Script(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The tracked interfaces' links at start (a missing interface counts as down).
pub async fn links(handle: &rtnetlink::Handle, config: &Config, me: usize) -> Vec<(String, bool)> {
    let mut links = Vec::new();
    for name in tracked_interfaces(config, me) {
        match netlink::link_by_name(handle, &name).await {
            Ok(link) => links.push((name, link.up)),
            Err(e) => {
                warn!(interface = %name, "tracked interface not found, counted as down: {e}");
                links.push((name, false));
            }
        }
    }
    links
}

/// The running scripts and the tracked interfaces' indexes.
pub struct Runner {
    tasks: HashMap<String, (TrackScript, JoinHandle<()>)>,
    /// Tracked interface name → its link index, when it exists.
    indexes: HashMap<String, Option<u32>>,
    results: UnboundedSender<CheckResult>,
    pub receiver: Option<UnboundedReceiver<CheckResult>>,
    node: String,
}

impl Runner {
    pub fn new(node: &str) -> Runner {
        let (results, receiver) = unbounded_channel();
        Runner {
            tasks: HashMap::new(),
            indexes: HashMap::new(),
            results,
            receiver: Some(receiver),
            node: node.to_string(),
        }
    }

    /// Runs exactly `scripts` (a changed script restarts; a removed one stops) and watches
    /// exactly `interfaces` (found by [`Runner::resolve`]).
    pub fn sync(&mut self, scripts: Vec<TrackScript>, interfaces: Vec<String>) {
        self.tasks.retain(|name, (script, task)| {
            let keep = scripts.iter().any(|s| s == script) && !task.is_finished();
            if !keep {
                debug!(script = %name, "track script stopped");
                task.abort();
            }
            keep
        });
        for script in scripts {
            if self.tasks.contains_key(&script.name) {
                continue;
            }
            let task = tokio::spawn(run_every(
                script.clone(),
                self.node.clone(),
                self.results.clone(),
            ));
            self.tasks.insert(script.name.clone(), (script, task));
        }
        self.indexes.retain(|name, _| interfaces.contains(name));
        for name in interfaces {
            self.indexes.entry(name).or_insert(None);
        }
    }

    /// Finds the indexes of tracked interfaces not found yet (one may appear later).
    pub async fn resolve(&mut self, handle: &rtnetlink::Handle) -> Vec<(String, bool)> {
        let mut found = Vec::new();
        for (name, index) in self.indexes.iter_mut().filter(|(_, i)| i.is_none()) {
            if let Ok(link) = netlink::link_by_name(handle, name).await {
                *index = Some(link.index);
                found.push((name.clone(), link.up));
            }
        }
        found
    }

    /// True when a tracked interface is still missing.
    pub fn unresolved(&self) -> bool {
        self.indexes.values().any(Option::is_none)
    }

    /// The tracked interfaces with link index `index`.
    pub fn names_of(&self, index: u32) -> Vec<String> {
        self.indexes
            .iter()
            .filter(|(_, i)| **i == Some(index))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn stop(&mut self) {
        for (_, (_, task)) in self.tasks.drain() {
            task.abort();
        }
    }
}

/// Runs `script` every interval (a run that overruns delays the next), reporting each
/// outcome.
async fn run_every(script: TrackScript, node: String, results: UnboundedSender<CheckResult>) {
    let mut ticks = tokio::time::interval(script.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = run(&script, &node).await;
        if let Err(why) = &outcome {
            debug!(script = %script.name, "track script failed: {why}");
        }
        if results
            .send((script.name.clone(), outcome.is_ok()))
            .is_err()
        {
            return;
        }
    }
}

/// One run: `sh -c command`, killed when it overruns its time-out.
async fn run(script: &TrackScript, node: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script.command)
        .env("VIPD_NODE", node)
        .env("VIPD_SCRIPT", &script.name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", script.command))?;
    match tokio::time::timeout(script.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{}` {status}", script.command)),
        Ok(Err(e)) => Err(format!("`{}`: {e}", script.command)),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "`{}` did not finish within {:?}",
                script.command, script.timeout
            ))
        }
    }
}
