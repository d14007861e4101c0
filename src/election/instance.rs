//! One virtual router: the RFC 9568 state machine for one group and one address family.

use super::InstanceConfig;
use super::conflict::{CONFLICT_AFTER_INTERVALS, ConflictWatch, Rival};
use super::timer::{Timer, TimerTable};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a node that gave a group up (its addresses or its resources failed) stays out of
/// the election.
pub const RETRY_AFTER_CLAIM_FAILURE: Duration = Duration::from_secs(5);

/// After a planned handover, how long the old master keeps its addresses once the new master
/// spoke: packets that left a client before the new master's announcement reached it are
/// still answered (make before break). Well below the announcement interval, so that a
/// client that asked the old master in that moment is moved by the next announcement.
pub const HANDOVER_LINGER: Duration = Duration::from_millis(20);

/// A backup follows a member's longer advert interval up to this many times the file's
/// (keepalived's default of 1 s against a file at 100 ms); beyond, the file's interval holds.
pub const MAX_LEARNED_STRETCH: u32 = 10;

/// RFC 9568 states, plus Fault (the interface is down: keepalived's FAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        })
    }
}

/// Why a state changed: one log line per transition names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Started as backup, waiting for a master.
    Startup,
    /// Priority 255: the address owner starts as master.
    AddressOwner,
    /// No advert for Master_Down_Interval.
    MasterDown,
    /// The master sent priority 0 (it is leaving) and this node was next in line.
    MasterLeft,
    /// A lower-priority master was heard and preemption is on.
    Preempt,
    /// A higher-priority advert was heard while master.
    HigherPriority,
    /// An equal-priority advert from a higher address was heard while master.
    HigherAddress,
    /// The other family's instance of the same group changed state (sync group).
    SyncGroup,
    Shutdown,
    LinkDown,
    LinkUp,
    /// The virtual addresses could not be added: this node gives the group up for a while.
    ClaimFailed,
    /// A resource failed to start or its check failed: this node gives the group up for a
    /// while.
    ResourceFailed,
    /// Trying again after giving the group up.
    Retry,
    /// A planned handover: another node took the group over.
    HandedOver,
    /// The configuration changed: this node is no longer in the group.
    Removed,
    /// A tracked script or interface with weight 0 failed (keepalived's FAULT).
    TrackFailed,
    /// Every weight-0 tracker is up again.
    TrackRecovered,
    /// A quorum group: this node's votes run out soon (it is cut off from the majority).
    QuorumLost,
    /// A quorum group: this node holds a majority of the votes again.
    QuorumRegained,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address owner (priority 255)",
            Reason::MasterDown => "no advert for master-down interval",
            Reason::MasterLeft => "master left (priority 0)",
            Reason::Preempt => "preempting a lower-priority master",
            Reason::HigherPriority => "higher-priority advert",
            Reason::HigherAddress => "equal priority, higher address",
            Reason::SyncGroup => "other address family of the group",
            Reason::Shutdown => "shutdown",
            Reason::LinkDown => "link down",
            Reason::LinkUp => "link up",
            Reason::ClaimFailed => "the virtual addresses could not be added",
            Reason::ResourceFailed => "a resource failed",
            Reason::Retry => "trying again after giving the group up",
            Reason::HandedOver => "handed over",
            Reason::Removed => "removed from the configuration",
            Reason::TrackFailed => "a tracked script or interface failed",
            Reason::TrackRecovered => "tracked scripts and interfaces recovered",
            Reason::QuorumLost => "quorum lost (cut off from the majority of the votes)",
            Reason::QuorumRegained => "quorum regained",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (0: leaving) and the configured interval.
    SendAdvert { priority: u8 },
    /// Add the virtual addresses; `accept`: let traffic to them in (Accept_Mode or owner).
    Claim { accept: bool },
    /// Announce the addresses: gratuitous ARP / unsolicited neighbour advertisement.
    Announce,
    /// Remove the virtual addresses.
    Release,
    /// The state changed (for logs, status and resources).
    Transition(Transition),
}

/// An advert as the state machine sees it, after the wire checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    pub src: IpAddr,
    pub priority: u8,
    /// Max Advertise Interval as received.
    pub interval: Duration,
}

/// Why an advert that passed the wire checks was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// This node's own advert, looped back.
    Own,
    /// The source is not a member of the group (and unknown peers are not allowed).
    NotMember,
    /// Priority 0 from a source whose membership is not verified (see
    /// [`Instance::handle_unverified_advert`]): it takes nothing over.
    Unverified,
}

/// Received adverts the state machine did not act on, and other things worth a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub adverts_received: u64,
    pub dropped_not_member: u64,
    pub dropped_own: u64,
    pub dropped_lower_priority: u64,
    pub interval_mismatch: u64,
    pub second_master_seen: u64,
    pub became_master: u64,
}

/// One VRRP virtual router. Drive it with [`Instance::start`], [`Instance::handle_advert`],
/// [`Instance::handle_timeout`] at [`Instance::poll_timeout`], and drain
/// [`Instance::poll_action`] after each call.
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    /// The effective priority: the file's, moved by the health trackers (see
    /// [`Instance::set_priority`]). What adverts carry and elections compare.
    priority: u8,
    /// A weight-0 tracker is down: Fault until it recovers.
    track_fault: bool,
    /// The last non-zero priority heard from each peer (index into `config.peers`).
    heard: Vec<Option<u8>>,
    state: State,
    link_up: bool,
    /// Learned from the master's adverts: above the configured interval only from a member
    /// (see [`Instance::learnable_interval`]).
    master_adver_interval: Duration,
    /// The current master (index into `config.peers`) as last heard, when known.
    master: Option<usize>,
    /// IPv6 link-local sources matched to peers whose address the file does not give.
    learned_sources: Vec<(IpAddr, usize)>,
    /// Set while an advert from an unverified source is handled (see
    /// [`Instance::handle_unverified_advert`]).
    unverified: bool,
    /// ... and a master may yield to it all the same.
    unverified_may_yield: bool,
    timers: TimerTable,
    announces_left: u32,
    /// While set and in the future, lower-priority masters are tolerated (preempt_delay).
    preempt_after: Option<Instant>,
    last_heal: Option<Instant>,
    /// After this node gave the group up (addresses or resources failed), it does not
    /// preempt again: it takes over only when the master goes away.
    preempt_suppressed: bool,
    /// Master handing the group over: it says priority 0 and keeps its addresses until
    /// another node speaks as master (make before break).
    handing_over: bool,
    /// Drained: this node takes the group in no case (it hands it over when master).
    drained: bool,
    /// Handed over, still holding the addresses until the Linger timer.
    lingering: bool,
    /// Peers (indexes into `config.peers`) this node never preempts: they run another
    /// cluster file or version (`require_same_file`).
    no_preempt_from: Vec<usize>,
    actions: VecDeque<Action>,
    counters: Counters,
    /// Another master heard while master (two masters that never resolve).
    conflict: ConflictWatch,
    /// When the link last came back after a fault: no preempt before `link_hold` has passed.
    link_up_since: Option<Instant>,
    /// A quorum group: false while this node lacks quorum (the instance stays in Fault).
    quorum_ok: bool,
    /// A quorum group: another member may still hold the group, so this node must not take
    /// it yet; a takeover due meanwhile waits here and happens once the gate opens.
    claim_blocked: bool,
    claim_deferred: Option<Reason>,
    /// A master's periodic adverts fall on this grid (epoch, step) shared by the node's
    /// groups (see [`Instance::set_advert_grid`]).
    advert_grid: Option<(Instant, Duration)>,
}

impl Instance {
    pub fn new(config: InstanceConfig) -> Instance {
        let master_adver_interval = config.advert_interval;
        Instance {
            advert_grid: None,
            priority: config.priority,
            track_fault: false,
            heard: vec![None; config.peers.len()],
            config,
            state: State::Initialize,
            link_up: true,
            master_adver_interval,
            master: None,
            learned_sources: Vec::new(),
            unverified: false,
            unverified_may_yield: false,
            timers: TimerTable::default(),
            announces_left: 0,
            preempt_after: None,
            last_heal: None,
            preempt_suppressed: false,
            handing_over: false,
            drained: false,
            lingering: false,
            no_preempt_from: Vec::new(),
            actions: VecDeque::new(),
            counters: Counters::default(),
            conflict: ConflictWatch::default(),
            link_up_since: None,
            quorum_ok: true,
            claim_blocked: false,
            claim_deferred: None,
        }
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority (the file's, moved by health tracking).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// True while a weight-0 tracker holds this instance in Fault.
    pub fn track_fault(&self) -> bool {
        self.track_fault
    }

    /// The priority last heard from the peer named `name` (its effective priority as it
    /// last advertised it), if any.
    pub fn heard_priority(&self, name: &str) -> Option<u8> {
        let index = self.config.peers.iter().position(|p| p.name == name)?;
        self.heard[index]
    }

    /// A peer's priority as best known: the last one it advertised, else the file's.
    fn known_priority(&self, peer: usize) -> u8 {
        self.heard[peer].unwrap_or(self.config.peers[peer].priority)
    }

    /// Health tracking moved the effective priority. A master advertises the new priority
    /// at once (a backup that now outranks it preempts on hearing it); a backup's new
    /// priority counts from the master's next advert (it preempts then, with preempt on).
    pub fn set_priority(&mut self, now: Instant, priority: u8) {
        if priority == self.priority {
            return;
        }
        self.priority = priority;
        if self.state == State::Master && !self.handing_over {
            self.send_advert(now);
        }
    }

    /// A weight-0 tracker went down (`fault`) or every one is up again. Down: a master says
    /// priority 0 (the next node takes over at once) and releases its addresses; any state
    /// but Initialize goes to Fault. Up: Fault is left as after a link-up, unless the link is
    /// down or the wait after giving the group up still runs.
    pub fn set_track_fault(&mut self, now: Instant, fault: bool) {
        if fault == self.track_fault {
            return;
        }
        self.track_fault = fault;
        if fault {
            self.end_linger();
            if self.state == State::Master {
                self.actions.push_back(Action::SendAdvert { priority: 0 });
                self.actions.push_back(Action::Release);
            }
            if matches!(self.state, State::Master | State::Backup) {
                self.cancel_timers();
                self.transition(State::Fault, Reason::TrackFailed);
            }
        } else if self.state == State::Fault
            && self.link_up
            && self.quorum_ok
            && self.timers.get(Timer::FaultRetry).is_none()
        {
            self.master = None;
            self.leave_fault(now, Reason::TrackRecovered);
        }
    }

    /// Out of Fault: the address owner straight to Master (unless drained or held after a
    /// link flap), everyone else to Backup.
    fn leave_fault(&mut self, now: Instant, reason: Reason) {
        if self.config.priority == 255 && !self.drained && !self.link_held(now) {
            self.become_master(now, reason);
        } else {
            self.become_backup(now, reason, self.config.advert_interval);
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// The peer currently heard as master, if any.
    pub fn master_peer(&self) -> Option<&str> {
        self.master.map(|i| self.config.peers[i].name.as_str())
    }

    /// Master_Down_Interval as this node applies it now.
    pub fn master_down_interval(&self) -> Duration {
        self.config
            .master_down_interval_at(self.priority, self.master_adver_interval, self.master)
    }

    /// The Startup event.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if !self.link_up {
            self.transition(State::Fault, Reason::LinkDown);
        } else if self.track_fault {
            self.transition(State::Fault, Reason::TrackFailed);
        } else if !self.quorum_ok {
            self.transition(State::Fault, Reason::QuorumLost);
        } else if self.config.priority == 255 && !self.drained {
            self.become_master(now, Reason::AddressOwner);
        } else {
            self.become_backup(now, Reason::Startup, self.config.advert_interval);
        }
    }

    /// A planned move: a master says priority 0 while it keeps its addresses and keeps
    /// answering, so the next node in line claims and announces before this one lets go
    /// (make before break); it steps down when it hears the new master, and does not
    /// preempt back. If nobody takes over within Master_Down_Interval (and the RFC's skew),
    /// it stays master, unless it is drained. Returns false when not master.
    pub fn hand_over(&mut self, now: Instant) -> bool {
        if self.state != State::Master {
            return false;
        }
        self.handing_over = true;
        self.preempt_suppressed = true;
        self.actions.push_back(Action::SendAdvert { priority: 0 });
        self.timers
            .set(Timer::Advert, now + self.config.advert_interval);
        let wait = 3 * self.config.advert_interval
            + super::skew_time_at(self.priority, self.config.advert_interval);
        self.timers
            .set(Timer::Handover, now + wait + self.config.advert_interval);
        true
    }

    /// True while a handover waits for another node.
    pub fn handing_over(&self) -> bool {
        self.handing_over
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Drain: take the group in no case; a master hands it over (and gives it up when no
    /// node takes it). Undrain: take part again (with preempt, a better node takes the group
    /// back at the master's next advert).
    pub fn set_drained(&mut self, now: Instant, drained: bool) {
        self.drained = drained;
        if drained {
            self.hand_over(now);
        } else {
            self.preempt_suppressed = false;
            if self.state == State::Backup && self.config.priority == 255 {
                self.become_master(now, Reason::AddressOwner);
            }
        }
    }

    /// The peers named here are never preempted by this node (they run another cluster file
    /// or vipd version); a takeover from them happens only when they fail or hand over.
    pub fn set_no_preempt_from(&mut self, names: &[String]) {
        self.no_preempt_from = self
            .config
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| names.contains(&p.name))
            .map(|(i, _)| i)
            .collect();
    }

    /// The configuration changed in place (same family and VRID): the state, the timers'
    /// rhythm and the known master stay; priority, interval, peers, preemption and the rest
    /// take effect from the next advert, by the same rules as at run time.
    pub fn reconfigure(&mut self, now: Instant, config: InstanceConfig) {
        let rename = |index: Option<usize>, old: &InstanceConfig, new: &InstanceConfig| {
            let name = &old.peers.get(index?)?.name;
            new.peers.iter().position(|p| &p.name == name)
        };
        self.master = rename(self.master, &self.config, &config);
        self.heard = (0..config.peers.len())
            .map(|new| {
                let old = self
                    .config
                    .peers
                    .iter()
                    .position(|p| p.name == config.peers[new].name)?;
                self.heard[old]
            })
            .collect();
        if config.priority != self.config.priority {
            // The node applies the trackers to the new base right after.
            self.priority = config.priority;
        }
        self.learned_sources = std::mem::take(&mut self.learned_sources)
            .into_iter()
            .filter_map(|(src, i)| Some((src, rename(Some(i), &self.config, &config)?)))
            .collect();
        let interval_changed = config.advert_interval != self.config.advert_interval;
        self.no_preempt_from.clear();
        self.config = config;
        self.master_adver_interval =
            self.learnable_interval(self.master, self.master_adver_interval);
        if interval_changed && self.state == State::Master {
            let next = now + self.config.advert_interval;
            if self.timers.get(Timer::Advert).is_none_or(|at| at > next) {
                self.timers.set(Timer::Advert, next);
            }
        }
    }

    /// The Shutdown event: a master says priority 0 and lets go of its addresses.
    pub fn shutdown(&mut self, _now: Instant) {
        self.end_linger();
        if self.state == State::Master {
            self.actions.push_back(Action::SendAdvert { priority: 0 });
            self.actions.push_back(Action::Release);
        }
        self.cancel_timers();
        if self.state != State::Initialize {
            self.transition(State::Initialize, Reason::Shutdown);
        }
    }

    /// The interface went down or came up.
    pub fn set_link(&mut self, now: Instant, up: bool) {
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        if !up {
            self.end_linger();
            if self.state == State::Master {
                self.actions.push_back(Action::Release);
            }
            self.cancel_timers();
            if self.state != State::Initialize {
                self.transition(State::Fault, Reason::LinkDown);
            }
        } else if self.state == State::Fault && self.quorum_ok {
            self.master = None;
            self.link_up_since = Some(now);
            if !self.track_fault {
                self.leave_fault(now, Reason::LinkUp);
            }
        }
    }

    /// A quorum group: whether this node holds quorum for long enough to serve it. Without,
    /// a master releases its addresses (its resources stop) and the instance waits in Fault;
    /// with it again, it comes back as backup.
    pub fn set_quorum(&mut self, now: Instant, ok: bool) {
        if ok == self.quorum_ok {
            return;
        }
        self.quorum_ok = ok;
        if !ok {
            self.end_linger();
            if self.state == State::Master {
                self.actions.push_back(Action::SendAdvert { priority: 0 });
                self.actions.push_back(Action::Release);
            }
            self.cancel_timers();
            if matches!(self.state, State::Master | State::Backup) {
                self.transition(State::Fault, Reason::QuorumLost);
            }
        } else if self.state == State::Fault
            && self.link_up
            && !self.track_fault
            && self.timers.get(Timer::FaultRetry).is_none()
        {
            self.master = None;
            self.leave_fault(now, Reason::QuorumRegained);
        }
    }

    pub fn quorum_ok(&self) -> bool {
        self.quorum_ok
    }

    /// A quorum group: while `blocked`, another member may still hold the group and this
    /// node does not take it (a takeover that falls due waits); unblocked, a waiting
    /// takeover happens at once.
    pub fn set_claim_blocked(&mut self, now: Instant, blocked: bool) {
        self.claim_blocked = blocked;
        if !blocked
            && self.state == State::Backup
            && let Some(reason) = self.claim_deferred.take()
        {
            self.become_master(now, reason);
        }
    }

    pub fn claim_blocked(&self) -> bool {
        self.claim_blocked
    }

    /// True while a takeover waits for the claim gate.
    pub fn claim_waiting(&self) -> bool {
        self.claim_deferred.is_some()
    }

    /// Break before make (a quorum group's planned move): a master says priority 0, releases
    /// its addresses (its resources stop) and stays backup without preempting back; the next
    /// node takes the group once this one says, authenticated, that it holds it no more.
    pub fn step_down(&mut self, now: Instant) -> bool {
        if self.state != State::Master {
            return false;
        }
        self.handing_over = false;
        if !self.config.fast_takeover {
            self.actions.push_back(Action::SendAdvert { priority: 0 });
        }
        self.become_backup(now, Reason::HandedOver, self.config.advert_interval);
        self.preempt_suppressed = true;
        true
    }

    /// An advert for this virtual router passed the wire checks. Returns why it was not acted
    /// on, if it was not.
    pub fn handle_advert(&mut self, now: Instant, advert: &Advert) -> Option<Ignored> {
        self.counters.adverts_received += 1;
        if advert.src == self.config.primary {
            self.counters.dropped_own += 1;
            return Some(Ignored::Own);
        }
        let sender = self.identify(advert);
        if let Some(s) = sender
            && advert.priority > 0
            && !self.unverified
        {
            self.heard[s] = Some(advert.priority);
        }
        if sender.is_none() && !self.config.allow_unknown_peers {
            self.counters.dropped_not_member += 1;
            return Some(Ignored::NotMember);
        }
        if self.unverified && advert.priority == 0 {
            return Some(Ignored::Unverified);
        }
        if advert.interval != self.config.advert_interval {
            self.counters.interval_mismatch += 1;
        }
        let learned = self.learnable_interval(sender, advert.interval);
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_hears(now, advert, sender, learned),
            State::Master => self.master_hears(now, advert, sender, learned),
        }
        None
    }

    /// An advert from a source the node could not verify as a member's (an IPv6 link-local
    /// address that no neighbour fact ties to a member): a backup may follow it, but its
    /// priority 0 never takes the group over, and it makes a master yield or end a handover
    /// only when `may_yield` (the node cannot check the members yet: a cold start); the
    /// source is matched to a member by priority for this advert only, never remembered.
    pub fn handle_unverified_advert(
        &mut self,
        now: Instant,
        advert: &Advert,
        may_yield: bool,
    ) -> Option<Ignored> {
        self.unverified = true;
        self.unverified_may_yield = may_yield;
        let ignored = self.handle_advert(now, advert);
        self.unverified = false;
        ignored
    }

    /// Ties an IPv6 source to the peer named `peer` (verified by the node: its MAC is the
    /// peer's), or unties it (`None`).
    pub fn bind_source(&mut self, src: IpAddr, peer: Option<&str>) {
        self.learned_sources.retain(|(s, _)| *s != src);
        if let Some(index) =
            peer.and_then(|name| self.config.peers.iter().position(|p| p.name == name))
        {
            self.learned_sources.push((src, index));
        }
    }

    /// The Master_Adver_Interval a backup takes from an advert (RFC 9568 6.4.2): a shorter
    /// interval from anyone; a longer one only from a member the file names, and at most
    /// [`MAX_LEARNED_STRETCH`] times the file's (a keepalived member at `advert_int 0.3` or
    /// `1` is followed, a forged 40.95 s is not). A stranger (`allow_unknown_peers`) never
    /// stretches the timers beyond the file.
    fn learnable_interval(&self, sender: Option<usize>, interval: Duration) -> Duration {
        let configured = self.config.advert_interval;
        if interval <= configured
            || (sender.is_some() && interval <= configured * MAX_LEARNED_STRETCH)
        {
            interval
        } else {
            configured
        }
    }

    fn backup_hears(
        &mut self,
        now: Instant,
        advert: &Advert,
        sender: Option<usize>,
        learned: Duration,
    ) {
        if advert.priority == 0 && self.drained {
            // A drained node takes nothing: it leaves the group to the others.
            self.timers
                .set(Timer::MasterDown, now + self.master_down_interval());
            return;
        }
        if advert.priority == 0 {
            if !self.config.fast_takeover {
                // RFC 9568: the master is leaving; wait Skew_Time for a better backup.
                self.timers.set(
                    Timer::MasterDown,
                    now + super::skew_time_at(self.priority, self.master_adver_interval),
                );
                return;
            }
            match self.master {
                // The master we follow is leaving: the next in line takes over at once.
                Some(master)
                    if sender == Some(master)
                        && self.config.rank_without_at(self.priority, sender) == 0 =>
                {
                    self.become_master(now, Reason::MasterLeft);
                }
                // Another node stepping down (a split brain healing) says nothing about the
                // master we follow.
                Some(master) if sender != Some(master) => {}
                // Not first in line, or no master known yet (this node just started): the
                // RFC's Skew_Time, so that a better node, or a live lower master, speaks first.
                _ => self.timers.set(
                    Timer::MasterDown,
                    now + super::skew_time_at(self.priority, self.master_adver_interval),
                ),
            }
            return;
        }
        let tolerated = !self.config.preempt
            || self.drained
            || sender.is_some_and(|s| self.no_preempt_from.contains(&s))
            || self.preempt_suppressed
            || advert.priority >= self.priority
            || self.link_held(now)
            || {
                let deadline = *self
                    .preempt_after
                    .get_or_insert(now + self.config.preempt_delay);
                now < deadline
            };
        if tolerated {
            if advert.priority >= self.priority {
                self.preempt_after = None;
            }
            // A live master that outranks this node is heard: a takeover waiting at the
            // gate is moot.
            if self.claim_deferred.take().is_some() {
                self.timers.stop(Timer::Advert);
            }
            self.master = sender;
            self.master_adver_interval = learned;
            self.timers
                .set(Timer::MasterDown, now + self.master_down_interval());
        } else if self.config.fast_takeover
            && self.follows_no_better_master(sender)
            && self.config.rank_without_at(self.priority, sender) == 0
        {
            // Every member knows the priorities: no need to wait out Master_Down_Interval,
            // the lower master yields as soon as it hears this node's advert. Only the first
            // in line does so (another backup may outrank this one now that trackers move
            // priorities): the others let the Master_Down_Timer decide, by Skew_Time.
            self.counters.dropped_lower_priority += 1;
            self.become_master(now, Reason::Preempt);
        } else {
            // RFC 9568: discard, and the Master_Down_Timer takes this node to master.
            self.counters.dropped_lower_priority += 1;
        }
    }

    /// True while the link has not been up for `link_hold` since it came back after a fault:
    /// a flapping link must not pull the group back and forth.
    fn link_held(&self, now: Instant) -> bool {
        self.link_up_since
            .is_some_and(|since| now < since + self.config.link_hold)
    }

    /// True unless this node follows a live master that outranks it (then a lower second
    /// master is that master's business: it heals the split brain itself).
    fn follows_no_better_master(&self, sender: Option<usize>) -> bool {
        match self.master {
            None => true,
            Some(master) => Some(master) == sender || self.known_priority(master) < self.priority,
        }
    }

    fn master_hears(
        &mut self,
        now: Instant,
        advert: &Advert,
        sender: Option<usize>,
        learned: Duration,
    ) {
        // An unverified source may be a stranger posing as a member: never yield to it (it
        // counts as a second master below, and this node asserts itself).
        let trusted = !self.unverified || self.unverified_may_yield;
        if self.handing_over && advert.priority > 0 && trusted {
            self.master = sender;
            self.become_backup(now, Reason::HandedOver, learned);
            return;
        }
        let mine = self.priority;
        let yields = trusted
            && (advert.priority > mine
                || (advert.priority == mine && advert.src > self.config.primary));
        if yields {
            let reason = if advert.priority > mine {
                Reason::HigherPriority
            } else {
                Reason::HigherAddress
            };
            self.master = sender;
            self.become_backup(now, reason, learned);
            return;
        }
        // A second master: one of lower rank, or one that just stepped down (priority 0).
        // Either way the LAN's neighbour caches may point at it: assert ourselves at once
        // (RFC 9568 for priority 0) and announce again, at most once per advert interval.
        self.counters.second_master_seen += 1;
        if advert.priority > 0 {
            let clear_after = self.config.master_down_interval_at(
                self.priority,
                self.config.advert_interval,
                None,
            );
            self.conflict
                .heard(now, advert.src, sender, advert.priority, clear_after);
        }
        let due = self
            .last_heal
            .is_none_or(|t| now >= t + self.config.advert_interval);
        if advert.priority == 0 || due {
            self.send_advert(now);
            self.last_heal = Some(now);
            self.actions.push_back(Action::Announce);
        }
    }

    /// The earliest instant at which [`Instance::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// When `timer` is due, if it runs.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers.get(timer)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.expire(Timer::MasterDown, now) && self.state == State::Backup {
            self.master = None;
            if self.drained {
                // No master, and this node takes nothing while drained: wait on.
                self.timers
                    .set(Timer::MasterDown, now + self.master_down_interval());
            } else {
                self.become_master(now, Reason::MasterDown);
            }
        }
        if self.timers.expire(Timer::Linger, now) {
            self.lingering = true;
            self.end_linger();
        }
        if self.timers.expire(Timer::Handover, now) && self.state == State::Master {
            // Nobody took the group: a drained node lets go all the same, another stays.
            self.handing_over = false;
            if self.drained {
                self.become_backup(now, Reason::HandedOver, self.config.advert_interval);
            } else {
                self.preempt_suppressed = false;
                self.send_advert(now);
            }
        }
        // The wait after giving the group up is over.
        if self.timers.expire(Timer::FaultRetry, now)
            && self.state == State::Fault
            && self.link_up
            && !self.track_fault
            && self.quorum_ok
        {
            self.become_backup(now, Reason::Retry, self.config.advert_interval);
        }
        if let Some(due) = self.timers.get(Timer::Advert)
            && due <= now
        {
            self.send_advert(now);
            self.timers
                .set(Timer::Advert, self.next_periodic_advert(due, now));
        }
        if self.timers.expire(Timer::Announce, now) {
            self.actions.push_back(Action::Announce);
            self.schedule_next_announce(now);
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The shell could not add the virtual addresses: see [`Instance::give_up`].
    pub fn claim_failed(&mut self, now: Instant) {
        self.give_up(now, Reason::ClaimFailed);
    }

    /// A master that cannot serve the group (`reason`: its addresses or its resources failed)
    /// says priority 0 (another node takes over at once), releases what it added, and stays
    /// in Fault for RETRY_AFTER_CLAIM_FAILURE before it tries again through Backup, without
    /// preempting again.
    pub fn give_up(&mut self, now: Instant, reason: Reason) {
        if self.state != State::Master {
            return;
        }
        self.actions.push_back(Action::SendAdvert { priority: 0 });
        self.actions.push_back(Action::Release);
        self.cancel_timers();
        self.preempt_suppressed = true;
        self.transition(State::Fault, reason);
        self.timers
            .set(Timer::FaultRetry, now + RETRY_AFTER_CLAIM_FAILURE);
    }

    /// Sync group: the other family became master; follow unless this link is down.
    pub(super) fn force_master(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.become_master(now, Reason::SyncGroup);
        }
    }

    /// Sync group: the other family stepped down; follow.
    pub(super) fn force_backup(&mut self, now: Instant) {
        if self.state == State::Master {
            self.become_backup(now, Reason::SyncGroup, self.master_adver_interval);
        }
    }

    fn identify(&mut self, advert: &Advert) -> Option<usize> {
        let peers = &self.config.peers;
        if let Some(i) = peers.iter().position(|p| p.address == Some(advert.src)) {
            return Some(i);
        }
        if let Some((_, i)) = self
            .learned_sources
            .iter()
            .find(|(src, _)| *src == advert.src)
            .filter(|_| !self.unverified)
        {
            return Some(*i);
        }
        // A peer whose source address the file does not give (IPv6 link-local): recognise
        // it by its priority when that is unambiguous, and remember its address.
        if advert.priority == 0 {
            return None;
        }
        let mut candidates = peers.iter().enumerate().filter(|(_, p)| {
            p.address.is_none() && (p.min_priority..=p.max_priority).contains(&advert.priority)
        });
        match (candidates.next(), candidates.next()) {
            (Some((i, _)), None) => {
                if !self.unverified {
                    self.learned_sources.push((advert.src, i));
                }
                Some(i)
            }
            _ => None,
        }
    }

    /// Another master this node has heard for more than [`CONFLICT_AFTER_INTERVALS`] advert
    /// intervals while master, neither yielding, and not silent since for a master-down
    /// interval.
    pub fn conflict(&self, now: Instant) -> Option<Rival> {
        if self.state != State::Master {
            return None;
        }
        let interval = self.config.advert_interval;
        self.conflict.active(
            now,
            CONFLICT_AFTER_INTERVALS * interval,
            self.config
                .master_down_interval_at(self.priority, interval, None),
        )
    }

    /// The name of a rival that is a member.
    pub fn peer_name(&self, sender: Option<usize>) -> Option<&str> {
        Some(self.config.peers.get(sender?)?.name.as_str())
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        if self.claim_blocked {
            if self.state != State::Backup {
                self.become_backup(now, reason, self.config.advert_interval);
            }
            self.claim_deferred = Some(reason);
            // Say that this node wants the group, without claiming it: a lower master
            // yields (and lets go), and the gate opens once it says so.
            if self.timers.get(Timer::Advert).is_none() {
                self.send_advert(now);
            }
            return;
        }
        self.claim_deferred = None;
        self.conflict.clear();
        // Addresses kept from a handover are claimed again below (idempotent).
        self.lingering = false;
        self.cancel_timers();
        self.preempt_suppressed = false;
        self.handing_over = false;
        self.master = None;
        self.preempt_after = None;
        self.counters.became_master += 1;
        self.last_heal = Some(now);
        self.transition(State::Master, reason);
        let accept = self.config.accept_mode || self.config.priority == 255;
        self.actions.push_back(Action::SendAdvert {
            priority: self.priority,
        });
        self.actions.push_back(Action::Claim { accept });
        self.timers
            .set(Timer::Advert, now + self.config.advert_interval);
        if self.config.announce.count > 0 {
            self.actions.push_back(Action::Announce);
            self.announces_left = self.config.announce.count - 1;
            self.schedule_next_announce(now);
        }
    }

    fn become_backup(&mut self, now: Instant, reason: Reason, master_adver_interval: Duration) {
        let was_master = self.state == State::Master;
        let handed_over = was_master && self.handing_over && !self.drained_alone(reason);
        self.cancel_timers();
        self.transition(State::Backup, reason);
        if was_master {
            // Among vipd nodes, say priority 0 as we leave: the new master hears that a second
            // master existed (split brain) and re-announces, so caches that followed us move
            // back at once. RFC backups (keepalived) would answer it with Skew_Time: not then.
            if self.config.fast_takeover && !handed_over {
                self.actions.push_back(Action::SendAdvert { priority: 0 });
            }
            if handed_over {
                self.lingering = true;
            } else {
                self.actions.push_back(Action::Release);
            }
        }
        self.master_adver_interval = master_adver_interval;
        self.timers
            .set(Timer::MasterDown, now + self.master_down_interval());
        if self.lingering {
            self.timers.set(Timer::Linger, now + HANDOVER_LINGER);
        }
    }

    /// A drained master whose handover nobody took lets go at once: no new master to linger
    /// behind.
    fn drained_alone(&self, reason: Reason) -> bool {
        reason == Reason::HandedOver && self.drained && self.master.is_none()
    }

    /// Lets go of addresses kept after a handover (at the end of the linger, or earlier when
    /// the node stops or loses its link).
    fn end_linger(&mut self) {
        if std::mem::take(&mut self.lingering) {
            self.timers.stop(Timer::Linger);
            // Among vipd nodes, priority 0 makes the new master announce once more: a client
            // that asked this node for the address during the linger is moved at once.
            if self.config.fast_takeover {
                self.actions.push_back(Action::SendAdvert { priority: 0 });
            }
            self.actions.push_back(Action::Release);
        }
    }

    /// Puts a master's periodic adverts on a grid of `step` from `epoch`, shared by every
    /// group of the node: their timers then expire together, and the loop wakes once per
    /// step for all of them instead of once per group (1000 groups at 100 ms woke it about
    /// 1000 times a second, and the wake-ups were the largest cost). An advert goes out at
    /// most one step early, once, when its group first lands on the grid; afterwards at the
    /// exact interval.
    pub fn set_advert_grid(&mut self, epoch: Instant, step: Duration) {
        self.advert_grid = (!step.is_zero()).then_some((epoch, step));
    }

    /// When the periodic advert after the one due at `due` (sent at `now`) goes out: one
    /// interval after it was due (the loop's lateness does not accumulate), on the grid when
    /// the interval is a whole number of steps.
    fn next_periodic_advert(&self, due: Instant, now: Instant) -> Instant {
        let interval = self.config.advert_interval;
        let mut next = due + interval;
        if next <= now {
            // Far behind (a stalled loop): start again from now.
            next = now + interval;
        }
        if let Some((epoch, step)) = self.advert_grid
            && step <= interval
            && interval.as_nanos().is_multiple_of(step.as_nanos())
            && next > epoch
        {
            let since = (next - epoch).as_nanos();
            let aligned = epoch + Duration::from_nanos((since - since % step.as_nanos()) as u64);
            if aligned > now {
                next = aligned;
            }
        }
        next
    }

    fn send_advert(&mut self, now: Instant) {
        let priority = if self.handing_over { 0 } else { self.priority };
        self.actions.push_back(Action::SendAdvert { priority });
        self.timers
            .set(Timer::Advert, now + self.config.advert_interval);
    }

    /// After an announcement: the next of the initial burst, else the periodic refresh.
    fn schedule_next_announce(&mut self, now: Instant) {
        let announce = self.config.announce;
        if self.announces_left > 0 {
            self.announces_left -= 1;
            self.timers.set(Timer::Announce, now + announce.interval);
        } else if announce.refresh > Duration::ZERO {
            self.timers.set(Timer::Announce, now + announce.refresh);
        } else {
            self.timers.stop(Timer::Announce);
        }
    }

    fn cancel_timers(&mut self) {
        // A preempt_delay runs within one stay in Backup only.
        self.preempt_after = None;
        self.timers.stop_all();
        self.announces_left = 0;
        self.handing_over = false;
    }

    fn transition(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        self.actions
            .push_back(Action::Transition(Transition { from, to, reason }));
    }
}
