//! One node of the cluster, pure: the counterpart of quinn-proto's `Endpoint`. It takes what
//! happens to the node (raw VRRP datagrams with their metadata, link and address events,
//! resource reports, control requests) with the time passed in, owns every node-level rule
//! and all protocol state, and hands out what the world must do as [`Effect`] values plus its
//! next timeout. No sockets, no clock, no threads: the daemon is a loop that reads, calls and
//! performs effects, and the simulator drives whole clusters of nodes with the bytes they
//! emit.
//!
//! One advert, in one direction: [`Node::handle_datagram`] → IP checks
//! ([`crate::wire::ip`]) → VRRP parse ([`crate::wire::vrrp`]) → the node's rules (VRID,
//! version, address list) → the group's election ([`crate::election::Group`]) → its actions
//! become effects (send, claim, announce, release, resources) → the owners and the zone are
//! refreshed ([`Effect::PublishZone`]).

mod cold;
pub mod defend;
pub mod discard;
pub mod droplog;
pub mod effect;
pub mod fence;
pub mod identity;
mod quorum;
pub mod status;
pub mod track;
mod watch;

pub use discard::{Discard, Discards};
pub use effect::{Effect, GroupName};
pub use quorum::{QuorumSetup, QuorumStatus};

use crate::config::{Config, VirtualAddress};
use crate::dns::zone::{self, Zone};
use crate::election::{Action, Advert, Group, Reason, State, Transition};
use crate::plan::{self, Sources};
use crate::wire::Family;
use crate::wire::ip::{self, Datagram, multicast_group};
use crate::wire::vrrp::{IpEnds, Packet, Repr, V2Auth};
use status::{GroupStatus, InstanceStatus, Status, TransitionRecord};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// Transitions kept per group for `vipd status`.
const TRANSITIONS_KEPT: usize = 16;

/// What the shell found when it set the node up.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The addresses on the node's interface (sources of adverts are found among them).
    pub interface_addresses: Vec<IpAddr>,
    pub link_up: bool,
    /// The node's other LAN segments (`[[node.lan]]`, in file order): the addresses on each
    /// and whether its link is up. Missing entries: no addresses, link up.
    pub lans: Vec<(Vec<IpAddr>, bool)>,
    /// Tracked interfaces' links (`track_interface`) as found at start; unlisted: up.
    pub tracked_links: Vec<(String, bool)>,
    /// The membership channel's secret and boot id, when the file has `[quorum]`.
    pub quorum: Option<QuorumSetup>,
}

/// What a resource task reports, for the mastership it was started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    pub group: GroupName,
    pub generation: u64,
    pub outcome: ResourceOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceOutcome {
    Started,
    /// The stop commands of the mastership `generation` ended are done.
    Stopped,
    StartFailed(String),
    CheckFailed(String),
}

/// What a group's resources are doing on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ResourceState {
    /// Never started here (or the group has none).
    #[default]
    Idle,
    Starting,
    Started,
    Stopped,
    /// A failure stays visible until the next start.
    Failed(String),
}

impl std::fmt::Display for ResourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceState::Idle => Ok(()),
            ResourceState::Starting => f.write_str("starting"),
            ResourceState::Started => f.write_str("started"),
            ResourceState::Stopped => f.write_str("stopped"),
            ResourceState::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// One group as this node runs it.
struct GroupRuntime {
    /// Index into `Config::groups`.
    index: usize,
    name: GroupName,
    election: Group,
    /// Families whose addresses are on the interface now.
    claimed: Vec<Family>,
    transitions: VecDeque<(Instant, Family, Transition)>,
    /// Moves whenever the group's mastership begins or ends.
    mastership: u64,
    /// The mastership began while actions were drained: start the resources once the
    /// addresses are up, at the end of the drain.
    start_pending: bool,
    resources: ResourceState,
    /// Families whose conflict (two masters that never resolve) was logged.
    conflict_logged: Vec<Family>,
    /// The LAN segment of this node the group lives on (index into its `lans`).
    lan: usize,
    /// The mastership whose resources are being stopped (they still hold the group).
    stopping: Option<u64>,
    /// A quorum group: when the heartbeat that said this node wants the group went out.
    intent: Option<Instant>,
}

impl GroupRuntime {
    fn new(
        index: usize,
        config: &Config,
        me: usize,
        instances: Vec<crate::election::InstanceConfig>,
        advert_epoch: Instant,
    ) -> Self {
        let mut election = Group::new(instances);
        election.set_advert_grid(advert_epoch, ADVERT_GRID);
        GroupRuntime {
            index,
            name: Arc::from(config.groups[index].name.as_str()),
            election,
            claimed: Vec::new(),
            transitions: VecDeque::new(),
            mastership: 0,
            start_pending: false,
            resources: ResourceState::Idle,
            conflict_logged: Vec::new(),
            lan: config.groups[index].lan_of(&config.nodes[me]),
            stopping: None,
            intent: None,
        }
    }

    /// Starts the election, down when the link is, drained when the node is.
    fn start(&mut self, now: Instant, link_up: bool, drained: bool) {
        if !link_up {
            self.election.set_link(now, false);
        }
        if drained {
            self.election.set_drained(now, true);
        }
        self.election.start(now);
    }
}

/// The grid of masters' periodic adverts (see [`crate::election::Instance::set_advert_grid`]):
/// VRRPv3's unit of time, so every interval is a whole number of steps.
pub const ADVERT_GRID: Duration = Duration::from_millis(10);

pub struct Node {
    config: Config,
    me: usize,
    /// Where adverts come from, per LAN segment of this node.
    sources: Vec<Sources>,
    /// Per LAN segment of this node: its link is up.
    links_up: Vec<bool>,
    /// Drained: this node takes no group (it hands over those it owns).
    drained: bool,
    groups: Vec<GroupRuntime>,
    /// (LAN segment, family, vrid) → index into `groups`.
    by_vrid: HashMap<(usize, Family, u8), usize>,
    discards: Discards,
    /// Which drops were logged, per source (bounded).
    drop_log: droplog::DropLog,
    /// Addresses this node released lately (their deletion events are its own).
    own_releases: watch::OwnReleases,
    /// Adverts acted on although odd (RFC 9568 leaves them to the receiver), by name.
    anomalies: BTreeMap<&'static str, u64>,
    adverts_sent: u64,
    adverts_received: u64,
    started: Instant,
    /// The wall clock at `started`: serials and status times derive from it.
    started_wall: SystemTime,
    /// Every group's next timeout, soonest first. Entries go stale when a group reschedules;
    /// they are recognised by comparing with the group's own `poll_timeout` and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Groups fed an input since their actions were last turned into effects.
    touched: Vec<usize>,
    effects: VecDeque<Effect>,
    /// The owner of each group of the file, as this node knows it (for the zone).
    owners: Vec<Option<String>>,
    zone_serial: u32,
    /// More facts this node publishes beside its version (config digest, drained).
    facts: Vec<String>,
    /// The zone must be published even if no owner moved (a reload).
    zone_stale: bool,
    /// An owner moved: the zone is built and published once the queue is empty (see
    /// [`Node::poll_effect`]).
    zone_due: bool,
    /// Peers running another cluster file or vipd version.
    mismatched: Vec<String>,
    /// The other members of this node's IPv6 groups that the file gives no `link_local`
    /// (their MACs tie link-local sources to them), kept by `index_groups`: worked out for
    /// every advert from an unknown source, walking every group made a cold start of 250
    /// IPv6 groups with empty neighbour tables cost the node ~4-7 times what the same
    /// adverts cost once the members are known (lab, debug build: 126 ms for 307 queued
    /// adverts; timers ran that late, lower-ranked nodes took groups, the late node
    /// preempted them, the addresses on two nodes between).
    v6_members: Vec<usize>,
    /// Neighbour facts (address → MAC) that tie IPv6 link-local sources to members.
    neighbours: identity::Neighbours,
    /// Defences of held addresses against other hosts' claims.
    defences: defend::Defences,
    /// Health tracking: scripts' and tracked interfaces' states (see [`track`]).
    tracking: track::Tracking,
    /// The membership channel, with `[quorum]` and a key.
    membership: Option<crate::quorum::Membership>,
    quorum_was_held: bool,
    /// What the last heartbeats said of this node's groups.
    reports_sent: Vec<crate::quorum::GroupReport>,
    /// The latest time an input came with (timeouts are computed from it).
    now_seen: Instant,
    /// Fences of vanished members (see [`fence`]).
    fences: fence::Fences,
}

/// What a reload changed, for the log and the caller.
pub type ReloadSummary = Vec<String>;

impl Node {
    /// The node `me` of `config`, started at `now` (`wall`: the wall clock at `now`).
    pub fn new(config: Config, me: usize, setup: &Setup, now: Instant, wall: SystemTime) -> Node {
        Node::with_drain(config, me, setup, now, wall, false)
    }

    /// [`Node::new`], drained from the start when `drained` (a drain survives restarts).
    pub fn with_drain(
        config: Config,
        me: usize,
        setup: &Setup,
        now: Instant,
        wall: SystemTime,
        drained: bool,
    ) -> Node {
        let lans = config.nodes[me].lans.len();
        let sources: Vec<Sources> = (0..lans)
            .map(|lan| {
                let found = if lan == 0 {
                    Some(&setup.interface_addresses)
                } else {
                    setup.lans.get(lan - 1).map(|(a, _)| a)
                };
                Sources::find_on(&config, me, lan, found.map_or(&[], |a| a.as_slice()))
            })
            .collect();
        let links_up: Vec<bool> = (0..lans)
            .map(|lan| {
                if lan == 0 {
                    setup.link_up
                } else {
                    setup.lans.get(lan - 1).is_none_or(|(_, up)| *up)
                }
            })
            .collect();
        let mut node = Node {
            config,
            me,
            sources,
            links_up,
            drained,
            groups: Vec::new(),
            by_vrid: HashMap::new(),
            discards: Discards::default(),
            drop_log: droplog::DropLog::default(),
            own_releases: watch::OwnReleases::default(),
            anomalies: BTreeMap::new(),
            adverts_sent: 0,
            adverts_received: 0,
            started: now,
            started_wall: wall,
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            effects: VecDeque::new(),
            owners: Vec::new(),
            zone_serial: 0,
            facts: Vec::new(),
            zone_stale: false,
            zone_due: false,
            mismatched: Vec::new(),
            neighbours: identity::Neighbours::default(),
            v6_members: Vec::new(),
            defences: defend::Defences::default(),
            tracking: track::Tracking::default(),
            membership: None,
            quorum_was_held: false,
            reports_sent: Vec::new(),
            now_seen: now,
            fences: fence::Fences::default(),
        };
        node.tracking = track::Tracking::new(&node.config);
        for (interface, up) in &setup.tracked_links {
            node.tracking.link(interface, *up);
        }
        node.membership = Node::membership_for(&node.config, me, setup, now);
        node.zone_serial = node.unix_seconds(now);
        for plan in plan::for_node_with(&node.config, me, &node.sources) {
            let mut runtime =
                GroupRuntime::new(plan.group, &node.config, me, plan.instances, node.started);
            node.apply_tracking_to(now, &mut runtime);
            let up = node.links_up.get(runtime.lan).copied().unwrap_or(true);
            runtime.start(now, up, drained);
            node.groups.push(runtime);
        }
        node.index_groups();
        node.touch_all();
        node.process(now);
        node
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node's index in the cluster file.
    pub fn me(&self) -> usize {
        self.me
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.config.nodes[self.me].name
    }

    /// The address adverts of `family` go out from.
    pub fn source(&self, family: Family) -> Option<IpAddr> {
        self.sources[0].get(family)
    }

    /// The address adverts of `family` go out from on LAN segment `lan`.
    pub fn source_on(&self, lan: usize, family: Family) -> Option<IpAddr> {
        self.sources.get(lan)?.get(family)
    }

    /// The LAN segment (index into this node's `lans`) the group `group` lives on.
    pub fn lan_of_group(&self, group: &str) -> usize {
        self.slot(group).map_or(0, |slot| self.groups[slot].lan)
    }

    /// The (LAN segment, family) pairs this node speaks VRRP in (a socket each).
    pub fn lans_and_families(&self) -> Vec<(usize, Family)> {
        let mut pairs: Vec<(usize, Family)> =
            self.by_vrid.keys().map(|(l, f, _)| (*l, *f)).collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// The families this node speaks VRRP in (a socket each).
    pub fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = self.by_vrid.keys().map(|(_, f, _)| *f).collect();
        families.sort();
        families.dedup();
        families
    }

    /// The election of the file's group number `group`, when this node is a member.
    pub fn election(&self, group: usize) -> Option<&Group> {
        self.groups
            .iter()
            .find(|r| r.index == group)
            .map(|r| &r.election)
    }

    pub fn discards(&self) -> &Discards {
        &self.discards
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// The zone as this node serves it now.
    pub fn zone(&self) -> Zone {
        zone::build_with(
            &self.config,
            Some(self.me),
            &self.owners,
            self.zone_serial,
            &self.facts,
        )
    }

    /// The peers that run another cluster file or vipd version than this node (from the
    /// shell's questions to them): groups with `require_same_file` never preempt them and
    /// refuse a handover to them.
    pub fn set_mismatched_peers(&mut self, names: Vec<String>) {
        if names == self.mismatched {
            return;
        }
        if !names.is_empty() {
            warn!(peers = ?names, "peers run another cluster file or vipd version");
        }
        self.mismatched = names;
        self.apply_mismatched();
    }

    fn apply_mismatched(&mut self) {
        for runtime in &mut self.groups {
            let names: &[String] = if self.config.groups[runtime.index].require_same_file {
                &self.mismatched
            } else {
                &[]
            };
            runtime.election.set_no_preempt_from(names);
        }
    }

    /// Facts this node publishes beside its version in the zone (`config=...`, ...).
    pub fn set_facts(&mut self, now: Instant, facts: Vec<String>) {
        if facts != self.facts {
            self.facts = facts;
            self.zone_stale = true;
            self.process(now);
        }
    }

    // ---- inputs ----

    /// A datagram from a raw VRRP socket.
    pub fn handle_datagram(&mut self, now: Instant, datagram: Datagram<'_>) {
        self.handle_datagram_on(now, 0, datagram);
    }

    /// A datagram from the raw VRRP socket of LAN segment `lan` (index into this node's
    /// `lans`).
    pub fn handle_datagram_on(&mut self, now: Instant, lan: usize, datagram: Datagram<'_>) {
        let source = ip::source(&datagram);
        if let Err(discard) = self.receive(now, lan, datagram) {
            debug!("dropped a VRRP packet: {discard}");
            self.discards.count(&discard);
            watch::dropped(now, &mut self.drop_log, source, &discard);
        }
        self.process(now);
    }

    /// A neighbour fact from the kernel's table: `address` is at `mac` (None: the entry is
    /// gone). IPv6 link-local sources are tied to members by them (see [`identity`]).
    /// Adverts from sources that were unknown are handled again once a fact settles who
    /// sent them (a master then yields to a member's advert within a resolution time, not
    /// an advert interval later).
    pub fn handle_neighbour(&mut self, now: Instant, address: IpAddr, mac: Option<identity::Mac>) {
        if !self.neighbours.set(address, mac) || mac.is_none() {
            return;
        }
        for pending in self.neighbours.take_pending(now) {
            let Some(slot) = self.slot(&pending.group) else {
                continue;
            };
            match self.verdict(slot, pending.family, pending.advert.src) {
                Some(identity::Verdict::Member(n)) => {
                    let election = &mut self.groups[slot].election;
                    election.bind_source(
                        pending.family,
                        pending.advert.src,
                        Some(&self.config.nodes[n].name),
                    );
                    election.handle_advert(now, pending.family, &pending.advert);
                    self.touched.push(slot);
                }
                Some(identity::Verdict::Unknown) => self.neighbours.keep_pending(pending),
                _ => {}
            }
        }
        self.process(now);
    }

    /// Addresses the shell should have the kernel resolve (see [`identity`]): the members
    /// of groups with IPv6 addresses and IPv6 sources heard lately, where no fact is known.
    pub fn neighbours_wanted(&self) -> Vec<IpAddr> {
        self.neighbours.wanted(&self.config, &self.v6_members)
    }

    /// Another host (MAC `mac`, never this node's own: the shell filters those) claimed
    /// `address` by ARP or neighbour advertisement. If this node holds it as master, that is
    /// a conflict: logged with the offender's MAC, counted, and defended by announcing the
    /// address again at once, at most once per [`defend::DEFEND_INTERVAL`] per address.
    /// A claim from a member's MAC is left to the election (a split brain heals itself).
    pub fn handle_neighbour_claim(&mut self, now: Instant, address: IpAddr, mac: identity::Mac) {
        let family = Family::of(&address);
        let Some(runtime) = self.groups.iter().find(|r| {
            r.claimed.contains(&family)
                && r.election
                    .instance(family)
                    .is_some_and(|i| i.state() == State::Master)
                && self.config.groups[r.index]
                    .addresses
                    .iter()
                    .any(|a| a.address == address)
        }) else {
            return;
        };
        let offender = identity::mac_text(&mac);
        let member = self
            .config
            .nodes
            .iter()
            .enumerate()
            .find(|(n, node)| *n != self.me && self.neighbours.get(&node.address) == Some(mac));
        if let Some((_, node)) = member {
            debug!(group = %runtime.name, %address, %offender, member = %node.name, "a member claims a held address: left to the election");
            return;
        }
        let group = runtime.name.clone();
        if self.defences.conflict(now, address) {
            warn!(%group, %address, %offender, "another host claims a held virtual address: defending it");
            self.effects.push_back(Effect::Announce {
                group,
                family,
                addresses: vec![address],
            });
        } else {
            debug!(%group, %address, %offender, "another host claims a held virtual address again (defended lately)");
        }
    }

    /// A run of the track script `script` succeeded (`ok`) or failed (exit status, or
    /// time-out): counted against its rise and fall; the groups tracking it move their
    /// priority or go to (or leave) fault when its state changes.
    pub fn handle_check(&mut self, now: Instant, script: &str, ok: bool) {
        if self.tracking.script_result(&self.config, script, ok) {
            let state = if ok { "up" } else { "down" };
            info!(%script, "track script {state}");
            self.apply_tracking(now);
        }
        self.process(now);
    }

    /// A tracked interface (`track_interface`) went down or came up.
    pub fn handle_tracked_link(&mut self, now: Instant, interface: &str, up: bool) {
        if self.tracking.link(interface, up) {
            info!(%interface, "tracked interface {}", if up { "up" } else { "down" });
            self.apply_tracking(now);
        }
        self.process(now);
    }

    /// The track scripts this node runs: those its groups track.
    pub fn track_scripts(&self) -> Vec<crate::config::track::TrackScript> {
        self.tracked(|t| match t {
            crate::config::track::Tracked::Script(i) => {
                self.config.track_scripts.get(*i).map(|s| s.name.clone())
            }
            _ => None,
        })
        .into_iter()
        .filter_map(|name| self.config.track_scripts.iter().find(|s| s.name == name))
        .cloned()
        .collect()
    }

    /// The interfaces whose links this node's groups track.
    pub fn tracked_interfaces(&self) -> Vec<String> {
        self.tracked(|t| match t {
            crate::config::track::Tracked::Interface(name) => Some(name.clone()),
            _ => None,
        })
    }

    fn tracked(
        &self,
        pick: impl Fn(&crate::config::track::Tracked) -> Option<String>,
    ) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .iter()
            .flat_map(|r| self.config.groups[r.index].track.iter())
            .filter_map(|t| pick(&t.tracked))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every group takes its effective priority and fault from the trackers' states.
    fn apply_tracking(&mut self, now: Instant) {
        let mut groups = std::mem::take(&mut self.groups);
        for runtime in &mut groups {
            self.apply_tracking_to(now, runtime);
        }
        self.groups = groups;
        self.touch_all();
    }

    fn apply_tracking_to(&self, now: Instant, runtime: &mut GroupRuntime) {
        let group = &self.config.groups[runtime.index];
        let Some(base) = group.priority_of(self.me) else {
            return;
        };
        let verdict = self.tracking.verdict(&self.config, base, &group.track);
        runtime
            .election
            .set_tracking(now, verdict.priority, verdict.fault);
    }

    /// The node's (first) interface went down or came up.
    pub fn handle_link(&mut self, now: Instant, up: bool) {
        self.handle_link_on(now, 0, up);
    }

    /// The interface of LAN segment `lan` went down or came up: its groups follow.
    pub fn handle_link_on(&mut self, now: Instant, lan: usize, up: bool) {
        if self.links_up.get(lan) != Some(&!up) {
            return;
        }
        self.links_up[lan] = up;
        let interface = &self.config.nodes[self.me].lans[lan].interface;
        info!(%interface, "link {}", if up { "up" } else { "down" });
        for runtime in self.groups.iter_mut().filter(|r| r.lan == lan) {
            runtime.election.set_link(now, up);
        }
        self.touch_all();
        self.process(now);
    }

    /// An address disappeared from the node's interface.
    pub fn handle_address_removed(&mut self, now: Instant, address: IpAddr) {
        if self.own_releases.ours(now, address) {
            debug!(%address, "address removed: this node released it");
            return;
        }
        let family = Family::of(&address);
        for runtime in &self.groups {
            let group = &self.config.groups[runtime.index];
            let Some(virtual_address) = group.addresses.iter().find(|a| a.address == address)
            else {
                continue;
            };
            let master = runtime
                .election
                .instance(family)
                .is_some_and(|i| i.state() == State::Master);
            if master && runtime.claimed.contains(&family) {
                warn!(group = %group.name, %address, "virtual address removed by someone else while master: putting it back");
                self.effects.push_back(Effect::Restore {
                    group: runtime.name.clone(),
                    address: *virtual_address,
                });
                self.effects.push_back(Effect::Announce {
                    group: runtime.name.clone(),
                    family,
                    addresses: vec![address],
                });
            }
        }
        self.process(now);
    }

    /// The shell could not add the addresses of `family` of `group`: the node gives the
    /// group up for a while.
    pub fn handle_claim_failed(&mut self, now: Instant, group: &str, family: Family) {
        if let Some(slot) = self.slot(group) {
            self.groups[slot].election.claim_failed(now, family);
            self.touched.push(slot);
        }
        self.process(now);
    }

    /// A resource task reported. A failure while the mastership it was started in lasts gives
    /// the group up; reports of an earlier mastership are stale and ignored.
    pub fn handle_resources(&mut self, now: Instant, report: ResourceReport) {
        let Some(slot) = self.slot(&report.group) else {
            return;
        };
        let runtime = &mut self.groups[slot];
        if report.outcome == ResourceOutcome::Stopped {
            if runtime.stopping == Some(report.generation) {
                runtime.stopping = None;
            }
            self.process(now);
            return;
        }
        if runtime.mastership != report.generation {
            return;
        }
        match report.outcome {
            ResourceOutcome::Stopped => {}
            ResourceOutcome::Started => runtime.resources = ResourceState::Started,
            ResourceOutcome::StartFailed(why) | ResourceOutcome::CheckFailed(why) => {
                error!(group = %runtime.name, "resource failed, giving the group up: {why}");
                runtime.resources = ResourceState::Failed(why);
                runtime.election.give_up(now, Reason::ResourceFailed);
                self.touched.push(slot);
            }
        }
        self.process(now);
    }

    /// Feeds every group whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let election = &mut self.groups[slot].election;
            if election.poll_timeout() == Some(at) {
                election.handle_timeout(now);
                self.touched.push(slot);
            }
        }
        self.process(now);
    }

    /// Shutdown: every master says priority 0 and lets go of its addresses.
    pub fn shutdown(&mut self, now: Instant) {
        info!("shutting down: priority 0 and releasing the addresses");
        if let Some(membership) = self.membership.as_mut() {
            membership.set_gone(now);
        }
        let first = self.effects.len();
        for runtime in &mut self.groups {
            runtime.election.shutdown(now);
        }
        self.touch_all();
        self.process(now);
        // Every group's priority 0 before any release: the shell releases one group after the
        // other, and with the adverts in between the last groups' takers heard of the stop
        // only once all the earlier addresses were gone.
        // The heartbeats that say "leaving" stay ahead of the adverts: a peer that hears a
        // priority 0 before them drops it as forged, and waits for the next heartbeat.
        let batch: Vec<Effect> = self.effects.drain(first..).collect();
        let (heartbeats, batch): (Vec<Effect>, Vec<Effect>) = batch
            .into_iter()
            .partition(|e| matches!(e, Effect::Heartbeat { .. }));
        let (adverts, rest): (Vec<Effect>, Vec<Effect>) = batch
            .into_iter()
            .partition(|e| matches!(e, Effect::Send { priority: 0, .. }));
        self.effects.extend(heartbeats);
        self.effects.extend(adverts);
        self.effects.extend(rest);
    }

    /// A planned move of `group` from this node (its owner) to `to`, or to the next live
    /// member in line: make before break (see [`crate::election::Instance::hand_over`]).
    /// `alive` tells which members can take it (answering, not drained). Returns the node
    /// expected to take the group, or why the move is refused.
    pub fn handover(
        &mut self,
        now: Instant,
        group: &str,
        to: Option<&str>,
        alive: &dyn Fn(&str) -> bool,
    ) -> Result<String, String> {
        let me = self.name().to_string();
        let slot = self
            .slot(group)
            .ok_or_else(|| format!("node {me} is not a member of a group \"{group}\""))?;
        let leader = self.groups[slot]
            .election
            .leader()
            .ok_or_else(|| format!("group {group} has no address here"))?;
        if leader.state() != State::Master {
            let owner = leader.master_peer().unwrap_or("unknown");
            return Err(format!(
                "node {me} does not own {group} (owner: {owner}): run the handover on the owner"
            ));
        }
        if leader.handing_over() {
            return Err(format!("a handover of {group} is already under way"));
        }
        // Members in the order they would take over: priority, then address.
        // With health tracking a backup's effective priority is unknown here (backups are
        // silent): the line goes by the best each can reach, and only a member certain to
        // outrank the target (its lowest above the target's highest) refuses the move.
        let mut line: Vec<&crate::election::Peer> = leader.config().peers.iter().collect();
        line.sort_by_key(|p| std::cmp::Reverse((p.max_priority, p.priority, p.address)));
        let same_file = self.config.groups[self.groups[slot].index].require_same_file;
        let blocked = |name: &str| same_file && self.mismatched.iter().any(|m| m == name);
        let target = match to {
            None => line
                .iter()
                .find(|p| alive(&p.name) && !blocked(&p.name))
                .map(|p| p.name.clone())
                .ok_or_else(|| format!("no other live member can take {group}"))?,
            Some(name) => {
                let position = line
                    .iter()
                    .position(|p| p.name == name)
                    .ok_or_else(|| format!("{name} is not a member of {group}"))?;
                if !alive(name) {
                    return Err(format!(
                        "{name} is not a live member (no answer from it, or drained)"
                    ));
                }
                if blocked(name) {
                    return Err(format!(
                        "{name} runs another cluster file or vipd version, and {group} has require_same_file"
                    ));
                }
                let target = line[position];
                let outranks = |p: &&&crate::election::Peer| {
                    p.min_priority > target.max_priority
                        || (p.min_priority == target.max_priority && p.address > target.address)
                };
                if let Some(ahead) = line[..position]
                    .iter()
                    .filter(outranks)
                    .find(|p| alive(&p.name))
                {
                    return Err(format!(
                        "{} (priority {}) ranks above {name} (priority {}) in {group} and is live: it would take the group; hand over to {} or drain it first",
                        ahead.name, ahead.priority, line[position].priority, ahead.name
                    ));
                }
                name.to_string()
            }
        };
        info!(%group, to = %target, "handing over");
        if self.is_quorum_group(&self.groups[slot]) {
            // Break before make: the next owner starts once this one says it let go.
            self.groups[slot].election.step_down(now);
        } else {
            self.groups[slot].election.hand_over(now);
        }
        self.touched.push(slot);
        self.process(now);
        Ok(target)
    }

    /// True while the handover of `group` waits for another node.
    pub fn handing_over(&self, group: &str) -> Option<bool> {
        let slot = self.slot(group)?;
        let leader = self.groups[slot].election.leader()?;
        Some(leader.state() == State::Master && leader.handing_over())
    }

    /// The state of `group`'s leading instance here.
    pub fn state_of(&self, group: &str) -> Option<State> {
        Some(self.groups[self.slot(group)?].election.state())
    }

    /// Drain (hand over every group this node owns, then take none) or undrain.
    pub fn set_drained(&mut self, now: Instant, drained: bool) {
        if drained == self.drained {
            return;
        }
        info!("{}", if drained { "draining" } else { "undrained" });
        self.drained = drained;
        for slot in 0..self.groups.len() {
            let quorum = self.is_quorum_group(&self.groups[slot]);
            let election = &mut self.groups[slot].election;
            election.set_drained(now, drained);
            if drained && quorum {
                election.step_down(now);
            }
        }
        self.touch_all();
        self.process(now);
    }

    /// Applies a new cluster file as a difference: unchanged groups keep everything (state,
    /// addresses, advert rhythm, running resources); changed settings apply in place by the
    /// run-time rules; added groups start in Backup; removed groups are given up (priority 0
    /// when master, resources stopped, addresses released). What needs a restart (this
    /// node's own interface or addresses, the DNS server's settings) is refused and nothing
    /// changes.
    pub fn reload(&mut self, now: Instant, new: Config) -> Result<ReloadSummary, String> {
        let name = self.name().to_string();
        let new_me = new
            .node_index(&name)
            .ok_or_else(|| format!("node \"{name}\" is not in the new file"))?;
        let (old_node, new_node) = (&self.config.nodes[self.me], &new.nodes[new_me]);
        for (field, old, new) in [
            (
                "interface",
                old_node.interface.clone(),
                new_node.interface.clone(),
            ),
            (
                "address",
                old_node.address.to_string(),
                new_node.address.to_string(),
            ),
            (
                "link_local",
                format!("{:?}", old_node.link_local),
                format!("{:?}", new_node.link_local),
            ),
        ] {
            if old != new {
                return Err(format!(
                    "node \"{name}\": `{field}` changes from {old} to {new}: restart vipd on this node to apply it"
                ));
            }
        }
        let mut dns = new.dns.clone();
        (dns.ttl, dns.negative_ttl) = (self.config.dns.ttl, self.config.dns.negative_ttl);
        if dns != self.config.dns {
            return Err(
                "[dns]: only ttl and negative_ttl change on a reload; restart vipd to apply the rest"
                    .into(),
            );
        }

        if new.quorum != self.config.quorum || new.witnesses != self.config.witnesses {
            return Err(
                "[quorum] and [[witness]] change only with a restart of vipd (node by node)".into(),
            );
        }
        if new.metrics != self.config.metrics {
            return Err("[metrics]: the listener changes only with a restart of vipd".into());
        }
        if new.nodes[new_me].lans != self.config.nodes[self.me].lans {
            return Err(format!(
                "node \"{name}\": its [[node.lan]] entries change: restart vipd on this node to apply them"
            ));
        }
        for plan in plan::for_node_with(&new, new_me, &self.sources) {
            let lan = new.groups[plan.group].lan_of(&new.nodes[new_me]);
            for instance in plan.instances {
                if self.source_on(lan, instance.family).is_none() {
                    return Err(format!(
                        "group \"{}\" has {} addresses, and this node has no {} address to send adverts from",
                        new.groups[plan.group].name, instance.family, instance.family
                    ));
                }
            }
        }
        let mut summary = Vec::new();
        let plans = plan::for_node_with(&new, new_me, &self.sources);
        let mut old: Vec<Option<GroupRuntime>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        let mut kept: Vec<GroupRuntime> = Vec::new();
        let mut fresh: Vec<(usize, Vec<crate::election::InstanceConfig>)> = Vec::new();
        let mut in_place: Vec<(usize, Vec<crate::election::InstanceConfig>)> = Vec::new();
        for plan in plans {
            let group_name = new.groups[plan.group].name.as_str();
            let found = old
                .iter()
                .position(|r| r.as_ref().is_some_and(|r| &*r.name == group_name));
            let Some(found) = found else {
                summary.push(format!("added group {group_name}"));
                fresh.push((plan.group, plan.instances));
                continue;
            };
            let runtime = old[found].as_ref().expect("found");
            let before: Vec<_> = runtime
                .election
                .instances()
                .iter()
                .map(|i| i.config().clone())
                .collect();
            let identity = |ics: &[crate::election::InstanceConfig]| -> Vec<(Family, u8, bool)> {
                ics.iter()
                    .map(|i| (i.family, i.vrid, i.priority == 255))
                    .collect()
            };
            if identity(&before) != identity(&plan.instances) {
                summary.push(format!(
                    "replaced group {group_name} (its VRID, families or address owner changed)"
                ));
                old.push(None);
                let runtime = old.swap_remove(found).expect("found");
                self.give_up_removed(now, runtime);
                fresh.push((plan.group, plan.instances));
                continue;
            }
            let runtime = old[found].take().expect("found");
            let same = before == plan.instances
                && self.config.groups[runtime.index] == new.groups[plan.group];
            if !same {
                summary.push(format!("changed group {group_name}"));
                in_place.push((kept.len(), plan.instances));
            }
            let mut runtime = runtime;
            runtime.index = plan.group;
            kept.push(runtime);
        }
        for runtime in old.into_iter().flatten() {
            summary.push(format!("removed group {}", runtime.name));
            self.give_up_removed(now, runtime);
        }

        // From here on the new file is in force.
        let old_config = std::mem::replace(&mut self.config, new);
        self.me = new_me;
        self.groups = kept;
        for (slot, instances) in in_place {
            self.apply_in_place(now, slot, &old_config, instances);
        }
        self.tracking.reload(&self.config, Some(&old_config));
        self.apply_tracking(now);
        for (index, instances) in fresh {
            let mut runtime =
                GroupRuntime::new(index, &self.config, self.me, instances, self.started);
            self.apply_tracking_to(now, &mut runtime);
            let up = self.links_up.get(runtime.lan).copied().unwrap_or(true);
            runtime.start(now, up, self.drained);
            self.groups.push(runtime);
        }
        self.index_groups();
        self.apply_mismatched();
        self.timers.clear();
        self.zone_stale = true;
        self.touch_all();
        self.process(now);
        if summary.is_empty() {
            summary.push("no change".into());
        }
        Ok(summary)
    }

    // ---- outputs ----

    /// The soonest live timer, dropping stale heap entries on the way.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let quorum = self.quorum_timeout(self.now_seen);
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if self.groups[slot].election.poll_timeout() == Some(at) {
                return Some(quorum.map_or(at, |q| q.min(at)));
            }
            self.timers.pop();
        }
        quorum
    }

    /// The next effect. The zone (whose owners moved) comes last, built once for all the
    /// inputs since the queue was last emptied: building it walks every group, and a cold
    /// start of 250 groups moves an owner with nearly every advert (built per advert, that
    /// was most of what a node spent on them, and its timers ran late).
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if let Some(effect) = self.effects.pop_front() {
            return Some(effect);
        }
        if std::mem::take(&mut self.zone_due) {
            return Some(Effect::PublishZone(Box::new(self.zone())));
        }
        None
    }

    // ---- the rules ----

    /// Checks one datagram and hands the advert to its group.
    fn receive(&mut self, now: Instant, lan: usize, datagram: Datagram<'_>) -> Result<(), Discard> {
        let (ends, message) = ip::vrrp_message(datagram)?;
        let family = Family::of(&ends.src);
        let (repr, form) = Repr::parse(&Packet::new_unchecked(message), ends)?;
        self.adverts_received += 1;
        let &slot = self
            .by_vrid
            .get(&(lan, family, repr.vrid))
            .ok_or(Discard::UnknownVrid)?;
        let group = &self.config.groups[self.groups[slot].index];
        if repr.version != group.version {
            return Err(Discard::VersionMismatch);
        }
        let listed = group
            .addresses
            .iter()
            .filter(|a| Family::of(&a.address) == family);
        if repr.addresses.len() != listed.clone().count()
            || !listed
                .into_iter()
                .all(|a| repr.addresses.contains(&a.address))
        {
            // RFC 9568 leaves this to the receiver: log and count, and go on.
            *self.anomalies.entry("address_list_mismatch").or_default() += 1;
            debug!(group = %group.name, "advert from {} lists other addresses: {:?}", ends.src, repr.addresses);
        }
        if form.is_some_and(|form| form != self.config.cluster.ipv4_checksum) {
            // Both forms are accepted (interop with keepalived's v3_checksum_as_v2 and FRR);
            // the one the file does not name is counted.
            *self.anomalies.entry("checksum_form_mismatch").or_default() += 1;
        }
        let advert = Advert {
            src: ends.src,
            priority: repr.priority,
            interval: Duration::from_millis(u64::from(repr.interval_cs) * 10),
        };
        let verdict = self.verdict(slot, family, ends.src);
        if verdict == Some(identity::Verdict::Unknown) {
            self.neighbours.note_unknown(ends.src);
            self.neighbours.keep_pending(identity::Pending {
                group: self.groups[slot].name.clone(),
                family,
                advert,
                at: now,
            });
            let wanted = self.neighbours_wanted();
            for address in self.neighbours.ask(now, wanted) {
                self.effects.push_back(Effect::Resolve { address });
            }
        }
        if verdict == Some(identity::Verdict::Stranger) {
            self.groups[slot]
                .election
                .bind_source(family, ends.src, None);
            return Err(Discard::UnverifiedSource);
        }
        let sender = match verdict {
            Some(identity::Verdict::Member(n)) => Some(n),
            Some(_) => None,
            None => {
                let group = &self.config.groups[self.groups[slot].index];
                (0..self.config.nodes.len()).find(|n| {
                    plan::group_source(&self.config, group, *n, family) == Some(ends.src)
                        || self.config.nodes[*n].link_local.map(IpAddr::V6) == Some(ends.src)
                })
            }
        };
        if let Some(n) = sender
            && n != self.me
            && self.contradicts_member(now, slot, n, repr.priority)
        {
            return Err(Discard::Forged);
        }
        let mismatches = watch::interval_mismatches(&self.groups[slot].election, family);
        self.touched.push(slot);
        let election = &mut self.groups[slot].election;
        let ignored = match verdict {
            Some(identity::Verdict::Member(n)) => {
                election.bind_source(family, ends.src, Some(&self.config.nodes[n].name));
                election.handle_advert(now, family, &advert)
            }
            Some(_) => {
                let may_yield = !self.members_known(slot);
                self.groups[slot]
                    .election
                    .handle_unverified_advert(now, family, &advert, may_yield)
            }
            None => election.handle_advert(now, family, &advert),
        };
        let runtime = &mut self.groups[slot];
        if mismatches == 0 {
            let group = &self.config.groups[runtime.index];
            watch::interval_mismatch(&runtime.election, family, group, &advert);
        }
        watch::conflict(
            now,
            &runtime.name,
            &runtime.election,
            family,
            &mut runtime.conflict_logged,
        );
        match ignored {
            Some(ignored) => Err(ignored.into()),
            None => Ok(()),
        }
    }

    /// For an IPv6 advert from a source the file does not give: whose it is, by the
    /// neighbour facts (see [`identity`]). None when there is nothing to verify.
    fn verdict(&self, slot: usize, family: Family, src: IpAddr) -> Option<identity::Verdict> {
        let listed = |n: &crate::config::Node| {
            n.lans
                .iter()
                .any(|l| l.link_local.map(IpAddr::V6) == Some(src))
        };
        if family != Family::V6 || self.config.nodes.iter().any(listed) {
            return None;
        }
        if self.sources.iter().any(|s| s.get(family) == Some(src)) {
            return None;
        }
        let group = &self.config.groups[self.groups[slot].index];
        let members: Vec<usize> = group
            .priorities
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| *n != self.me)
            .collect();
        Some(self.neighbours.verdict(&self.config, &members, src))
    }

    /// True once the MAC of every other member of the group in `slot` is known: from then
    /// on an unknown IPv6 source makes no master yield (until then, a cold start, it may:
    /// else two masters stay until the facts arrive).
    fn members_known(&self, slot: usize) -> bool {
        let group = &self.config.groups[self.groups[slot].index];
        group
            .priorities
            .iter()
            .filter(|(n, _)| *n != self.me)
            .all(|(n, _)| {
                self.neighbours
                    .get(&self.config.nodes[*n].address)
                    .is_some()
            })
    }

    fn slot(&self, group: &str) -> Option<usize> {
        self.groups.iter().position(|r| &*r.name == group)
    }

    fn touch_all(&mut self) {
        self.touched = (0..self.groups.len()).collect();
    }

    /// Rebuilds what derives from the list of groups: the VRID index and the owners.
    fn index_groups(&mut self) {
        self.by_vrid.clear();
        for (slot, runtime) in self.groups.iter().enumerate() {
            for instance in runtime.election.instances() {
                let config = instance.config();
                self.by_vrid
                    .insert((runtime.lan, config.family, config.vrid), slot);
            }
        }
        let mut members: Vec<usize> = Vec::new();
        for runtime in &self.groups {
            if runtime.election.instance(Family::V6).is_some() {
                let group = &self.config.groups[runtime.index];
                members.extend(group.priorities.iter().map(|(n, _)| *n));
            }
        }
        members.sort_unstable();
        members.dedup();
        members.retain(|n| *n != self.me && self.config.nodes[*n].link_local.is_none());
        self.v6_members = members;
        // Groups this node is not a member of: it hears none of their adverts, so it cannot
        // tell their owner, and says so. Members' owners are refreshed by `process`.
        let me = self.me;
        self.owners = self
            .config
            .groups
            .iter()
            .map(|g| g.priority_of(me).is_none().then(|| "unknown".to_string()))
            .collect();
    }

    /// A group that leaves this node: a master says priority 0, releases its addresses and
    /// stops its resources, under the definitions it ran with.
    fn give_up_removed(&mut self, now: Instant, mut runtime: GroupRuntime) {
        runtime.election.shutdown(now);
        // The transition to Initialize reads as removal, not a daemon shutdown.
        while let Some((family, action)) = runtime.election.poll_action() {
            let action = match action {
                Action::Transition(t) if t.reason == Reason::Shutdown => {
                    Action::Transition(Transition {
                        reason: Reason::Removed,
                        ..t
                    })
                }
                other => other,
            };
            self.out().act(now, &mut runtime, family, action);
        }
    }

    /// New settings for a group that stays: the election takes them in place; a master
    /// releases the addresses the group no longer has, claims and announces the new ones, and
    /// restarts its resources when their definition changed.
    fn apply_in_place(
        &mut self,
        now: Instant,
        slot: usize,
        old_config: &Config,
        instances: Vec<crate::election::InstanceConfig>,
    ) {
        let Node {
            config,
            me,
            groups,
            effects,
            ..
        } = self;
        let runtime = &mut groups[slot];
        runtime.election.reconfigure(now, instances);
        let (old_group, new_group) = (
            old_config
                .groups
                .iter()
                .find(|g| *g.name == *runtime.name)
                .expect("kept groups were in the old file"),
            &config.groups[runtime.index],
        );
        let own = config.nodes[*me].address;
        for family in runtime.claimed.clone() {
            let of = |group: &crate::config::Group| -> Vec<VirtualAddress> {
                group
                    .addresses
                    .iter()
                    .filter(|a| Family::of(&a.address) == family && a.address != own)
                    .copied()
                    .collect()
            };
            let (before, after) = (of(old_group), of(new_group));
            let gone: Vec<_> = before
                .iter()
                .filter(|a| !after.contains(a))
                .copied()
                .collect();
            let new: Vec<_> = after
                .iter()
                .filter(|a| !before.contains(a))
                .copied()
                .collect();
            if !gone.is_empty() {
                effects.push_back(Effect::Release {
                    group: runtime.name.clone(),
                    family,
                    addresses: gone,
                });
            }
            if !new.is_empty() {
                effects.push_back(Effect::Claim {
                    group: runtime.name.clone(),
                    family,
                    accept: true,
                    addresses: new.clone(),
                });
                effects.push_back(Effect::Announce {
                    group: runtime.name.clone(),
                    family,
                    addresses: new.iter().map(|a| a.address).collect(),
                });
            }
        }
        let master = runtime.election.state() == State::Master;
        if master && old_group.resources != new_group.resources {
            if !old_group.resources.is_empty() {
                runtime.stopping = Some(runtime.mastership);
                effects.push_back(Effect::StopResources {
                    group: runtime.name.clone(),
                    generation: runtime.mastership,
                    resources: old_group.resources.clone(),
                    addresses: addresses_text(old_group),
                });
            }
            // A new generation ends the old definition's checks.
            runtime.mastership += 1;
            effects.push_back(mastership_effect(config, runtime, true));
            runtime.start_pending = true;
            runtime.resources = ResourceState::Idle;
        }
    }

    /// Turns what the touched groups asked for into effects, in order, files their next
    /// timers, and republishes the zone when an owner moved.
    fn process(&mut self, now: Instant) {
        self.now_seen = self.now_seen.max(now);
        if self.membership.is_some() {
            self.update_quorum(now);
        }
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        let mut polled: Vec<(usize, Vec<(Family, Action)>)> = Vec::with_capacity(touched.len());
        for &slot in &touched {
            let election = &mut self.groups[slot].election;
            polled.push((
                slot,
                std::iter::from_fn(|| election.poll_action()).collect(),
            ));
        }
        if self.membership.is_some() {
            // Peers hear that a group is leaving before its priority 0 arrives.
            let leaving: Vec<GroupName> = polled
                .iter()
                .filter(|(_, actions)| {
                    actions
                        .iter()
                        .any(|(_, a)| matches!(a, Action::SendAdvert { priority: 0 }))
                })
                .map(|(slot, _)| self.groups[*slot].name.clone())
                .collect();
            if !leaving.is_empty() {
                self.transmit_heartbeats(now, &leaving);
            }
        }
        let Node {
            config,
            me,
            sources,
            groups,
            effects,
            adverts_sent,
            timers,
            ..
        } = self;
        let mut out = Out {
            config,
            me: *me,
            sources,
            effects,
            adverts_sent,
        };
        let mut actions = Vec::new();
        let first = out.effects.len();
        let mut cold: Vec<GroupName> = Vec::new();
        for (slot, mut polled_actions) in polled {
            let runtime = &mut groups[slot];
            actions.append(&mut polled_actions);
            if actions.iter().any(|(_, a)| {
                matches!(a, Action::Transition(t) if t.to == State::Master && t.reason == Reason::MasterDown)
            }) {
                cold.push(runtime.name.clone());
            }
            // Make before break: a new master's addresses are up and announced (in every
            // family of the group) before its first advert tells the old master to let go.
            if actions
                .iter()
                .any(|(_, a)| matches!(a, Action::Claim { .. }))
            {
                actions.sort_by_key(
                    |(_, a)| matches!(a, Action::SendAdvert { priority } if *priority > 0),
                );
            }
            for (family, action) in actions.drain(..) {
                out.act(now, runtime, family, action);
            }
            let group = &out.config.groups[runtime.index];
            if std::mem::take(&mut runtime.start_pending) && !group.resources.is_empty() {
                runtime.resources = ResourceState::Starting;
                out.effects.push_back(Effect::StartResources {
                    group: runtime.name.clone(),
                    generation: runtime.mastership,
                    resources: group.resources.clone(),
                    addresses: addresses_text(group),
                });
            }
            if let Some(at) = runtime.election.poll_timeout() {
                timers.push(Reverse((at, slot)));
            }
        }
        cold::adverts_first(out.effects, first, &cold);
        self.refresh_owners(now, &touched);
        touched.clear();
        self.touched = touched;
        self.own_releases.note(now, &self.effects);
        self.transmit_heartbeats(now, &[]);
    }

    fn out(&mut self) -> Out<'_> {
        Out {
            config: &self.config,
            me: self.me,
            sources: &self.sources,
            effects: &mut self.effects,
            adverts_sent: &mut self.adverts_sent,
        }
    }

    /// Who owns the group in `slot`, as this node sees it.
    fn owner_of(&self, slot: usize) -> Option<String> {
        let leader = self.groups[slot].election.leader()?;
        match leader.state() {
            State::Master => Some(self.config.nodes[self.me].name.clone()),
            State::Backup => leader.master_peer().map(str::to_string),
            State::Initialize | State::Fault => None,
        }
    }

    /// Republishes the zone when an owner changed (or it is stale): the owner records and
    /// the serial move.
    fn refresh_owners(&mut self, now: Instant, touched: &[usize]) {
        let mut changed = std::mem::take(&mut self.zone_stale);
        for &slot in touched {
            let owner = self.owner_of(slot);
            let index = self.groups[slot].index;
            if self.owners[index] != owner {
                self.owners[index] = owner;
                changed = true;
            }
        }
        if changed && self.config.dns.enabled {
            self.zone_serial = self.zone_serial.wrapping_add(1).max(self.unix_seconds(now));
            self.zone_due = true;
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.started_wall + at.saturating_duration_since(self.started)
    }

    fn unix_seconds(&self, now: Instant) -> u32 {
        self.wall(now)
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32)
    }

    /// What `vipd status` shows, from the node's own state. The shell adds what it keeps
    /// itself (the DNS server's counters, the peers' versions).
    pub fn status(&self, now: Instant) -> Status {
        let me = &self.config.nodes[self.me];
        Status {
            cluster: self.config.cluster.name.clone(),
            node: me.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interface: me.interface.clone(),
            link_up: self.links_up[0],
            drained: self.drained,
            uptime_ms: now.saturating_duration_since(self.started).as_millis() as u64,
            groups: self
                .groups
                .iter()
                .map(|runtime| self.group_status(runtime, now))
                .collect(),
            dropped: self.discards.to_map(),
            anomalies: self
                .anomalies
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            adverts_sent: self.adverts_sent,
            adverts_received: self.adverts_received,
            address_conflicts: self.defences.conflicts,
            config_digest: None,
            dns: None,
            peers: Vec::new(),
            quorum: self.quorum_status(now),
        }
    }

    fn group_status(&self, runtime: &GroupRuntime, now: Instant) -> GroupStatus {
        let group = &self.config.groups[runtime.index];
        GroupStatus {
            name: group.name.clone(),
            vrid: group.vrid,
            addresses: group.addresses.iter().map(ToString::to_string).collect(),
            instances: runtime
                .election
                .instances()
                .iter()
                .map(|instance| {
                    let counters = instance.counters();
                    let family = instance.config().family;
                    InstanceStatus {
                        family: family.to_string(),
                        state: instance.state().to_string(),
                        priority: instance.priority(),
                        master: instance.master_peer().map(str::to_string),
                        master_adver_interval_ms: instance.master_adver_interval().as_secs_f64()
                            * 1000.0,
                        configured_adver_interval_ms: instance
                            .config()
                            .advert_interval
                            .as_secs_f64()
                            * 1000.0,
                        master_down_interval_ms: instance.master_down_interval().as_secs_f64()
                            * 1000.0,
                        holds_addresses: runtime.claimed.contains(&family),
                        adverts_received: counters.adverts_received,
                        dropped_not_member: counters.dropped_not_member,
                        dropped_own: counters.dropped_own,
                        dropped_lower_priority: counters.dropped_lower_priority,
                        interval_mismatch: counters.interval_mismatch,
                        second_master_seen: counters.second_master_seen,
                        became_master: counters.became_master,
                        conflict: instance.conflict(now).map(|rival| {
                            instance
                                .peer_name(rival.sender)
                                .map_or_else(|| rival.src.to_string(), str::to_string)
                        }),
                    }
                })
                .collect(),
            transitions: runtime
                .transitions
                .iter()
                .map(|(at, family, t)| TransitionRecord {
                    at_ms: at.saturating_duration_since(self.started).as_secs_f64() * 1000.0,
                    unix_us: self
                        .wall(*at)
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64),
                    family: family.to_string(),
                    from: t.from.to_string(),
                    to: t.to.to_string(),
                    reason: t.reason.to_string(),
                })
                .collect(),
            resources: runtime.resources.to_string(),
            base_priority: group.priority_of(self.me).unwrap_or_default(),
            tracking: self.tracking.status(&self.config, &group.track),
            handing_over: runtime
                .election
                .leader()
                .is_some_and(|l| l.state() == State::Master && l.handing_over()),
            quorum: self.group_quorum_text(runtime, now),
        }
    }
}

/// What turns a group's actions into effects: the node's configuration and outputs,
/// borrowed apart from its groups.
struct Out<'a> {
    config: &'a Config,
    me: usize,
    sources: &'a [Sources],
    effects: &'a mut VecDeque<Effect>,
    adverts_sent: &'a mut u64,
}

impl Out<'_> {
    fn act(&mut self, now: Instant, runtime: &mut GroupRuntime, family: Family, action: Action) {
        let group = &self.config.groups[runtime.index];
        let name = runtime.name.clone();
        match action {
            Action::SendAdvert { priority } => {
                let effect = self.advert(group, name, family, priority);
                self.effects.push_back(effect);
            }
            Action::Claim { accept } => {
                if !runtime.claimed.contains(&family) {
                    runtime.claimed.push(family);
                }
                self.effects.push_back(Effect::Claim {
                    group: name,
                    family,
                    accept,
                    addresses: self.claimable(group, family),
                });
            }
            Action::Announce => self.effects.push_back(Effect::Announce {
                group: name,
                family,
                addresses: addresses_of(group, family).map(|a| a.address).collect(),
            }),
            Action::Release => {
                runtime.claimed.retain(|f| *f != family);
                self.effects.push_back(Effect::Release {
                    group: name,
                    family,
                    addresses: self.claimable(group, family),
                });
            }
            Action::Transition(transition) => self.record(now, runtime, family, transition),
        }
    }

    fn mastership_effect(&self, runtime: &GroupRuntime, began: bool) -> Effect {
        mastership_effect(self.config, runtime, began)
    }

    /// Logs and keeps a transition; the leading instance's transitions to and from Master
    /// begin and end the group's mastership.
    fn record(&mut self, now: Instant, runtime: &mut GroupRuntime, family: Family, t: Transition) {
        let group = &self.config.groups[runtime.index];
        info!(group = %group.name, family = %family, "{} -> {}: {}", t.from, t.to, t.reason);
        self.effects.push_back(Effect::Transition {
            group: runtime.name.clone(),
            family,
            transition: t,
        });
        let leads = runtime.election.leader_family() == Some(family);
        if leads && (t.to == State::Master || t.from == State::Master) {
            runtime.mastership += 1;
            let began = t.to == State::Master;
            self.effects
                .push_back(self.mastership_effect(runtime, began));
            if began {
                runtime.start_pending = true;
            } else if !group.resources.is_empty() {
                if !matches!(runtime.resources, ResourceState::Failed(_)) {
                    runtime.resources = ResourceState::Stopped;
                }
                runtime.stopping = Some(runtime.mastership);
                self.effects.push_back(Effect::StopResources {
                    group: runtime.name.clone(),
                    generation: runtime.mastership,
                    resources: group.resources.clone(),
                    addresses: addresses_text(group),
                });
            }
        }
        if runtime.transitions.len() == TRANSITIONS_KEPT {
            runtime.transitions.pop_front();
        }
        runtime.transitions.push_back((now, family, t));
    }

    /// An advert of `group` in `family` with `priority`, checksummed for each destination.
    fn advert(
        &mut self,
        group: &crate::config::Group,
        name: GroupName,
        family: Family,
        priority: u8,
    ) -> Effect {
        let mut datagrams = Vec::new();
        let lan = group.lan_of(&self.config.nodes[self.me]);
        if let Some(source) = self.sources.get(lan).and_then(|s| s.get(family)) {
            let repr = Repr {
                version: group.version,
                vrid: group.vrid,
                priority,
                interval_cs: (group.advert_interval.as_millis() / 10) as u16,
                addresses: addresses_of(group, family).map(|a| a.address).collect(),
                auth: V2Auth::default(),
            };
            let destinations: Vec<IpAddr> = if group.unicast {
                group
                    .priorities
                    .iter()
                    .filter(|(n, _)| *n != self.me)
                    .filter_map(|(n, _)| plan::group_source(self.config, group, *n, family))
                    .collect()
            } else {
                vec![multicast_group(family)]
            };
            for destination in destinations {
                let ends = IpEnds {
                    src: source,
                    dst: destination,
                };
                let mut message = vec![0u8; repr.buffer_len()];
                match repr.emit(&mut message, ends, self.config.cluster.ipv4_checksum) {
                    Ok(_) => datagrams.push((destination, message)),
                    Err(e) => warn!(group = %group.name, "cannot build advert: {e}"),
                }
            }
        }
        *self.adverts_sent += datagrams.len() as u64;
        Effect::Send {
            group: name,
            lan,
            family,
            priority,
            datagrams,
        }
    }

    /// The group's addresses this node adds and removes: all but its own real address (the
    /// address owner, priority 255, has it on its interface for good).
    fn claimable(&self, group: &crate::config::Group, family: Family) -> Vec<VirtualAddress> {
        let own = self.config.nodes[self.me].address;
        addresses_of(group, family)
            .filter(|a| a.address != own)
            .copied()
            .collect()
    }
}

fn mastership_effect(config: &Config, runtime: &GroupRuntime, began: bool) -> Effect {
    let group = &config.groups[runtime.index];
    Effect::Mastership {
        group: runtime.name.clone(),
        generation: runtime.mastership,
        began,
        names: group.names.clone(),
        addresses: group.addresses.iter().map(|a| a.address).collect(),
    }
}

fn addresses_of(
    group: &crate::config::Group,
    family: Family,
) -> impl Iterator<Item = &VirtualAddress> {
    group
        .addresses
        .iter()
        .filter(move |a| Family::of(&a.address) == family)
}

/// The group's addresses as resource commands see them (`VIPD_ADDRESSES`).
fn addresses_text(group: &crate::config::Group) -> String {
    group
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
