//! The node's side of membership and quorum (see [`crate::quorum`] for the channel and the
//! lease argument): heartbeats in and out, the quorum each quorum group needs, the gate
//! that keeps a member from taking a group another member may still hold, and adverts that
//! contradict what their sender says in its signed heartbeats.

use super::*;
use crate::quorum::{GroupReport, Membership, Standing};

/// What the shell gives the node for the membership channel.
#[derive(Clone)]
pub struct QuorumSetup {
    /// The key file's secret.
    pub secret: Vec<u8>,
    /// Larger than any earlier run's (the shell: the wall clock in nanoseconds).
    pub boot: u64,
}

impl std::fmt::Debug for QuorumSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumSetup")
            .field("boot", &self.boot)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// The node's quorum as status shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStatus {
    /// Holds quorum long enough to serve a quorum group.
    pub held: bool,
    pub votes: usize,
    pub needed: usize,
    pub voters: Vec<crate::quorum::VoterView>,
    /// Heartbeats by outcome (sent, accepted, bad_signature, replayed, ...).
    pub heartbeats: BTreeMap<String, u64>,
    /// Fences this node ran.
    #[serde(default)]
    pub fences: Vec<FenceStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FenceStatus {
    pub node: String,
    pub state: String,
    pub runs: u64,
    pub failures: u64,
}

impl Node {
    pub(super) fn membership_for(
        config: &Config,
        me: usize,
        setup: &Setup,
        now: Instant,
    ) -> Option<Membership> {
        let quorum = setup.quorum.as_ref()?;
        Membership::for_config(
            config,
            &config.nodes[me].name,
            &quorum.secret,
            quorum.boot,
            now,
        )
    }

    /// A datagram on the heartbeat port.
    pub fn handle_heartbeat(&mut self, now: Instant, src: IpAddr, bytes: &[u8]) {
        let Some(membership) = self.membership.as_mut() else {
            return;
        };
        match membership.handle(now, src, bytes) {
            // What a peer says changed: answer at once (a wish to take a group waits for
            // it), rather than at the next round.
            Ok(true) => membership.hurry(now),
            Ok(false) => {}
            Err(why) => debug!("dropped a heartbeat: {why}"),
        }
        self.process(now);
    }

    /// When the membership next needs the node: a heartbeat round, or a vote, a promise or
    /// a voter's freshness running out.
    pub(super) fn quorum_timeout(&self, now: Instant) -> Option<Instant> {
        let membership = self.membership.as_ref()?;
        let budget = self.stop_budget();
        let standing = match membership.standing(now) {
            Standing::Until(until) => Some(until.checked_sub(budget).unwrap_or(now)),
            _ => None,
        };
        [
            Some(membership.poll_timeout()),
            membership.next_change(now),
            standing.filter(|t| *t > now),
            self.fences.next_retry().filter(|t| *t > now),
            self.next_fence_due(now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// How long before its votes run out this node lets go of its quorum groups: what their
    /// resources may take to stop (the longest sum of `timeout`s) and two heartbeats for
    /// the addresses, within the file's budget. A short stall of the heartbeats (a loaded
    /// machine) then costs nothing, while the lease argument holds.
    fn stop_budget(&self) -> Duration {
        let Some(quorum) = self.config.quorum.as_ref() else {
            return Duration::ZERO;
        };
        let stops = self
            .groups
            .iter()
            .filter(|r| self.is_quorum_group(r))
            .map(|r| {
                self.config.groups[r.index]
                    .resources
                    .iter()
                    .map(|x| x.timeout)
                    .sum::<Duration>()
            })
            .max()
            .unwrap_or_default();
        (stops + 2 * quorum.heartbeat).min(quorum.stop_budget())
    }

    /// True while this node holds quorum for at least the stop budget.
    pub fn quorum_held(&self, now: Instant) -> bool {
        self.membership
            .as_ref()
            .is_some_and(|m| m.standing(now).holds_for(now, self.stop_budget()))
    }

    /// Applies quorum and the claim gate to every quorum group (before their actions are
    /// turned into effects).
    pub(super) fn update_quorum(&mut self, now: Instant) {
        let held = self.quorum_held(now);
        if held != self.quorum_was_held && self.groups.iter().any(|r| self.is_quorum_group(r)) {
            if held {
                info!("quorum held: this node may serve quorum groups");
            } else {
                warn!(
                    "no quorum: quorum groups are released here until the majority is heard again"
                );
            }
        }
        self.quorum_was_held = held;
        for slot in 0..self.groups.len() {
            if !self.is_quorum_group(&self.groups[slot]) {
                continue;
            }
            let blocked = !self.members_clear(slot, now);
            let election = &mut self.groups[slot].election;
            let gates = |e: &crate::election::Group| {
                e.instances()
                    .iter()
                    .map(|i| (i.state(), i.claim_blocked(), i.quorum_ok()))
                    .collect::<Vec<_>>()
            };
            let before = gates(election);
            election.set_quorum(now, held);
            election.set_claim_blocked(now, blocked);
            if before != gates(election) {
                self.touched.push(slot);
            }
        }
        if held {
            self.start_fences(now);
        }
    }

    /// Fences the vanished members that keep a waiting quorum group from this node (see
    /// [`super::fence`]).
    fn start_fences(&mut self, now: Instant) {
        let Some(membership) = self.membership.as_ref() else {
            return;
        };
        let mut wanted: Vec<usize> = Vec::new();
        let fence_after = self
            .config
            .quorum
            .as_ref()
            .map_or(Duration::ZERO, |q| q.fence_after);
        for (slot, runtime) in self.groups.iter().enumerate() {
            let waiting = runtime.election.leader().is_some_and(|l| l.claim_waiting());
            if !waiting || !self.is_quorum_group(runtime) || self.better_candidate_heard(slot, now)
            {
                continue;
            }
            for name in self.members_in_the_way(slot, now) {
                let Some(node) = self.config.node_index(&name) else {
                    continue;
                };
                let Some(voter) = membership.voter_of_node(node) else {
                    continue;
                };
                let heard = membership.last_heard(voter);
                let vanished = membership.reports_of(voter, now).is_none()
                    && heard.is_none_or(|t| now >= t + fence_after);
                if vanished
                    && self.config.nodes[node].fence.is_some()
                    && self.fences.due(node, membership.last_heard(voter), now)
                    && !wanted.contains(&node)
                {
                    wanted.push(node);
                }
            }
        }
        let timeout = self
            .config
            .quorum
            .as_ref()
            .map_or(Duration::from_secs(30), |q| q.fence_timeout);
        for node in wanted {
            let target = &self.config.nodes[node];
            warn!(node = %target.name, "fencing: it vanished while it may hold a quorum group");
            self.fences.start(node, now);
            self.effects.push_back(Effect::Fence {
                node: target.name.clone(),
                address: target.address,
                command: target.fence.clone().expect("checked"),
                timeout,
            });
        }
    }

    /// True when another member that ranks above this node in the group in `slot` is heard:
    /// that one takes the group (and fences, if needed); this node does not fence too.
    fn better_candidate_heard(&self, slot: usize, now: Instant) -> bool {
        let Some(membership) = self.membership.as_ref() else {
            return false;
        };
        let runtime = &self.groups[slot];
        let group = &self.config.groups[runtime.index];
        let mine = (
            runtime.election.leader().map_or(0, |l| l.priority()),
            self.config.nodes[self.me].address,
        );
        group.priorities.iter().any(|(n, _)| {
            let Some(voter) = membership.voter_of_node(*n).filter(|_| *n != self.me) else {
                return false;
            };
            membership
                .reports_of(voter, now)
                .and_then(|reports| reports.iter().find(|r| r.name == group.name))
                .is_some_and(|r| (r.priority, self.config.nodes[*n].address) > mine)
                && !membership.gone(voter)
        })
    }

    /// When a vanished member may be fenced (its silence reaches `fence_after`), the
    /// soonest, while a quorum group waits.
    fn next_fence_due(&self, now: Instant) -> Option<Instant> {
        let membership = self.membership.as_ref()?;
        let fence_after = self.config.quorum.as_ref()?.fence_after;
        let waiting = self.groups.iter().any(|r| {
            self.is_quorum_group(r) && r.election.leader().is_some_and(|l| l.claim_waiting())
        });
        if !waiting {
            return None;
        }
        self.config
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.fence.is_some())
            .filter_map(|(i, _)| membership.last_heard(membership.voter_of_node(i)?))
            .map(|t| t + fence_after)
            .filter(|t| *t > now)
            .min()
    }

    /// A fence command ended.
    pub fn handle_fence(&mut self, now: Instant, node: &str, outcome: Result<(), String>) {
        let Some(index) = self.config.node_index(node) else {
            return;
        };
        match &outcome {
            Ok(()) => info!(%node, "fenced"),
            Err(why) => {
                error!(%node, "fencing failed (the group waits, retrying in {:?}): {why}", super::fence::FENCE_RETRY)
            }
        }
        if self.fences.finish(index, now, outcome) {
            self.process(now);
        }
    }

    pub(super) fn is_quorum_group(&self, runtime: &GroupRuntime) -> bool {
        self.config.groups[runtime.index].quorum
    }

    /// True when this node may take the group in `slot`: see [`Node::members_in_the_way`].
    fn members_clear(&self, slot: usize, now: Instant) -> bool {
        self.groups[slot].intent.is_some() && self.members_in_the_way(slot, now).is_empty()
    }

    /// The members that keep this node from taking the group in `slot`. A member is out of
    /// the way when a majority of the voters released it (its votes ran out: it holds
    /// nothing), or when its latest heartbeat was sent after it heard that this node wants
    /// the group, and says that it holds the group not, and wants it not unless it ranks
    /// lower. Two members that want one group at once thus never both go ahead: the one
    /// that hears the other's wish first (or ranks lower) waits.
    pub(super) fn members_in_the_way(&self, slot: usize, now: Instant) -> Vec<String> {
        let Some(membership) = self.membership.as_ref() else {
            return Vec::new();
        };
        let runtime = &self.groups[slot];
        let group = &self.config.groups[runtime.index];
        let mine = runtime.election.leader().map_or(0, |l| l.priority());
        let my_address = self.config.nodes[self.me].address;
        group
            .priorities
            .iter()
            .filter(|(n, _)| *n != self.me)
            .filter(|(n, _)| {
                let Some(voter) = membership.voter_of_node(*n) else {
                    return false;
                };
                // A member that stopped for good and said it let go holds nothing, heard
                // lately or not (no fence for a graceful stop).
                let gone_free = membership.gone(voter)
                    && !membership
                        .last_reports_of(voter)
                        .iter()
                        .any(|r| r.name == group.name && r.holds);
                if gone_free {
                    return false;
                }
                let fenced = self.config.nodes[*n].fence.is_some();
                let heard = membership.reports_of(voter, now).is_some();
                // With a fence command, a vanished member counts as gone only once fenced:
                // its votes running out does not stop a hung process's services.
                if fenced {
                    if !heard && self.fences.fenced_since(*n, membership.last_heard(voter)) {
                        return false;
                    }
                } else if membership.released_by_majority(voter, now) {
                    return false;
                }
                // A member that stops for good says so: it takes nothing more in this boot, and
                // its last word needs no acknowledgement.
                let acknowledged = membership.gone(voter)
                    || runtime
                        .intent
                        .zip(membership.anchor_of(voter))
                        .is_some_and(|(intent, anchor)| anchor >= intent);
                let report = membership
                    .reports_of(voter, now)
                    .and_then(|reports| reports.iter().find(|r| r.name == group.name));
                let free = match report {
                    None => membership.reports_of(voter, now).is_some(),
                    Some(r) => {
                        let outranks =
                            (r.priority, self.config.nodes[*n].address) > (mine, my_address);
                        !(r.holds || (r.wants && outranks))
                    }
                };
                !(acknowledged && free)
            })
            .map(|(n, _)| self.config.nodes[*n].name.clone())
            .collect()
    }

    /// What this node says of its groups in heartbeats; `leaving` names groups whose
    /// priority-0 advert is about to go out.
    fn reports(&self, leaving: &[GroupName]) -> Vec<GroupReport> {
        self.groups
            .iter()
            .map(|runtime| {
                let leader = runtime.election.leader();
                let master = runtime.election.state() == State::Master;
                GroupReport {
                    name: runtime.name.to_string(),
                    holds: master
                        || !runtime.claimed.is_empty()
                        || matches!(
                            runtime.resources,
                            ResourceState::Starting | ResourceState::Started
                        )
                        || runtime.stopping.is_some(),
                    master,
                    leaving: leaving.contains(&runtime.name)
                        || leader.is_some_and(|l| l.handing_over()),
                    wants: leader.is_some_and(|l| l.claim_waiting()),
                    priority: leader.map_or(0, |l| l.priority()),
                }
            })
            .collect()
    }

    /// Heartbeats due now, or at once when what this node says changed. Those that go out
    /// before a priority-0 advert say `leaving` for its group, so that peers do not take
    /// the advert for a forgery.
    pub(super) fn transmit_heartbeats(&mut self, now: Instant, leaving: &[GroupName]) {
        if self.membership.is_none() {
            return;
        }
        let reports = self.reports(leaving);
        let membership = self.membership.as_mut().expect("checked");
        if reports != self.reports_sent {
            membership.hurry(now);
        }
        let transmits = membership.poll_transmit(now, &reports);
        if !transmits.is_empty() {
            // A wish to take a group counts from the first heartbeat that says it.
            for (runtime, report) in self.groups.iter_mut().zip(&reports) {
                if !report.wants {
                    runtime.intent = None;
                } else if runtime.intent.is_none() {
                    runtime.intent = Some(now);
                }
            }
            self.reports_sent = reports;
        }
        for transmit in transmits {
            self.effects.push_back(Effect::Heartbeat {
                to: transmit.to,
                bytes: transmit.bytes,
            });
        }
    }

    /// An advert from member `node` that contradicts what the member says in its fresh
    /// signed heartbeats: a priority 0 from a master that is not leaving, or a priority
    /// above the one it says it runs at. Only for groups whose members are all vipd.
    pub(super) fn contradicts_member(
        &self,
        now: Instant,
        slot: usize,
        node: usize,
        priority: u8,
    ) -> bool {
        let Some(membership) = self.membership.as_ref() else {
            return false;
        };
        let group = &self.config.groups[self.groups[slot].index];
        if !self.config.all_members_vipd(group) {
            return false;
        }
        let Some(voter) = membership.voter_of_node(node) else {
            return false;
        };
        let Some(report) = membership
            .reports_of(voter, now)
            .and_then(|reports| reports.iter().find(|r| r.name == group.name))
        else {
            return false;
        };
        if priority == 0 {
            report.master && !report.leaving
        } else {
            priority > report.priority
        }
    }

    pub(super) fn quorum_status(&self, now: Instant) -> Option<QuorumStatus> {
        let membership = self.membership.as_ref()?;
        let counters = membership.counters();
        let heartbeats = [
            ("sent", counters.sent),
            ("accepted", counters.accepted),
            ("malformed", counters.malformed),
            ("bad_signature", counters.bad_signature),
            ("misdirected", counters.misdirected),
            ("replayed", counters.replayed),
            ("unanchored", counters.unanchored),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(QuorumStatus {
            held: self.quorum_held(now),
            votes: membership.votes(now),
            needed: membership.voters().len() / 2 + 1,
            voters: membership.view(now),
            heartbeats,
            fences: self
                .fences
                .view(now)
                .into_iter()
                .map(|(node, state, runs, failures)| FenceStatus {
                    node: self.config.nodes[node].name.clone(),
                    state,
                    runs,
                    failures,
                })
                .collect(),
        })
    }

    pub(super) fn group_quorum_text(&self, runtime: &GroupRuntime, now: Instant) -> String {
        if !self.is_quorum_group(runtime) {
            return String::new();
        }
        if !self.quorum_held(now) {
            return "no quorum".into();
        }
        let Some(slot) = self.slot(&runtime.name) else {
            return String::new();
        };
        if !runtime.election.leader().is_some_and(|l| l.claim_waiting()) {
            return "held".into();
        }
        let in_the_way = self.members_in_the_way(slot, now);
        format!(
            "held; taking the group once {} let go",
            in_the_way.join(", ")
        )
    }
}
