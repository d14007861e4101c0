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

pub mod discard;
pub mod effect;
pub mod status;

pub use discard::{Discard, Discards};
pub use effect::{Effect, GroupIndex};

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
}

/// What a resource task reports, for the mastership it was started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    pub group: GroupIndex,
    pub generation: u64,
    pub outcome: ResourceOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceOutcome {
    Started,
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
    index: GroupIndex,
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
}

pub struct Node {
    config: Config,
    me: usize,
    sources: Sources,
    link_up: bool,
    groups: Vec<GroupRuntime>,
    /// (family, vrid) → index into `groups`.
    by_vrid: HashMap<(Family, u8), usize>,
    discards: Discards,
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
}

impl Node {
    /// The node `me` of `config`, started at `now` (`wall`: the wall clock at `now`).
    pub fn new(config: Config, me: usize, setup: &Setup, now: Instant, wall: SystemTime) -> Node {
        let sources = Sources::find(&config, me, &setup.interface_addresses);
        let mut groups = Vec::new();
        let mut by_vrid = HashMap::new();
        for group_plan in plan::for_node_with(&config, me, &sources) {
            for instance in &group_plan.instances {
                by_vrid.insert((instance.family, instance.vrid), groups.len());
            }
            groups.push(GroupRuntime {
                index: group_plan.group,
                election: Group::new(group_plan.instances),
                claimed: Vec::new(),
                transitions: VecDeque::new(),
                mastership: 0,
                start_pending: false,
                resources: ResourceState::Idle,
            });
        }
        // Groups this node is not a member of: it hears none of their adverts, so it cannot
        // tell their owner, and says so.
        let owners = config
            .groups
            .iter()
            .map(|g| g.priority_of(me).is_none().then(|| "unknown".to_string()))
            .collect();
        let mut node = Node {
            config,
            me,
            sources,
            link_up: setup.link_up,
            groups,
            by_vrid,
            discards: Discards::default(),
            anomalies: BTreeMap::new(),
            adverts_sent: 0,
            adverts_received: 0,
            started: now,
            started_wall: wall,
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            effects: VecDeque::new(),
            owners,
            zone_serial: 0,
        };
        node.zone_serial = node.unix_seconds(now);
        for runtime in &mut node.groups {
            if !setup.link_up {
                runtime.election.set_link(now, false);
            }
            runtime.election.start(now);
        }
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

    /// The address adverts of `family` go out from.
    pub fn source(&self, family: Family) -> Option<IpAddr> {
        self.sources.get(family)
    }

    /// The families this node speaks VRRP in (a socket each).
    pub fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = self.by_vrid.keys().map(|(f, _)| *f).collect();
        families.sort();
        families.dedup();
        families
    }

    /// The election of the file's group `group`, when this node is a member.
    pub fn election(&self, group: GroupIndex) -> Option<&Group> {
        self.groups
            .iter()
            .find(|r| r.index == group)
            .map(|r| &r.election)
    }

    pub fn discards(&self) -> &Discards {
        &self.discards
    }

    /// The zone as this node serves it now.
    pub fn zone(&self) -> Zone {
        zone::build(&self.config, Some(self.me), &self.owners, self.zone_serial)
    }

    // ---- inputs ----

    /// A datagram from a raw VRRP socket.
    pub fn handle_datagram(&mut self, now: Instant, datagram: Datagram<'_>) {
        if let Err(discard) = self.receive(now, datagram) {
            debug!("dropped a VRRP packet: {discard}");
            self.discards.count(&discard);
        }
        self.process(now);
    }

    /// The node's interface went down or came up.
    pub fn handle_link(&mut self, now: Instant, up: bool) {
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        let interface = &self.config.nodes[self.me].interface;
        info!(%interface, "link {}", if up { "up" } else { "down" });
        for runtime in &mut self.groups {
            runtime.election.set_link(now, up);
        }
        self.touch_all();
        self.process(now);
    }

    /// An address disappeared from the node's interface.
    pub fn handle_address_removed(&mut self, now: Instant, address: IpAddr) {
        let family = Family::of(&address);
        for slot in 0..self.groups.len() {
            let runtime = &self.groups[slot];
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
                    group: runtime.index,
                    address: *virtual_address,
                });
                self.effects.push_back(Effect::Announce {
                    group: runtime.index,
                    family,
                    addresses: vec![address],
                });
            }
        }
        self.process(now);
    }

    /// The shell could not add the addresses of `family` of `group`: the node gives the
    /// group up for a while.
    pub fn handle_claim_failed(&mut self, now: Instant, group: GroupIndex, family: Family) {
        if let Some(slot) = self.slot(group) {
            self.groups[slot].election.claim_failed(now, family);
            self.touched.push(slot);
        }
        self.process(now);
    }

    /// A resource task reported. A failure while the mastership it was started in lasts gives
    /// the group up; reports of an earlier mastership are stale and ignored.
    pub fn handle_resources(&mut self, now: Instant, report: ResourceReport) {
        let Some(slot) = self.slot(report.group) else {
            return;
        };
        let runtime = &mut self.groups[slot];
        if runtime.mastership != report.generation {
            return;
        }
        let name = &self.config.groups[runtime.index].name;
        match report.outcome {
            ResourceOutcome::Started => runtime.resources = ResourceState::Started,
            ResourceOutcome::StartFailed(why) | ResourceOutcome::CheckFailed(why) => {
                error!(group = %name, "resource failed, giving the group up: {why}");
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
        for runtime in &mut self.groups {
            runtime.election.shutdown(now);
        }
        self.touch_all();
        self.process(now);
    }

    // ---- outputs ----

    /// The soonest live timer, dropping stale heap entries on the way.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if self.groups[slot].election.poll_timeout() == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    // ---- the rules ----

    /// Checks one datagram and hands the advert to its group.
    fn receive(&mut self, now: Instant, datagram: Datagram<'_>) -> Result<(), Discard> {
        let (ends, message) = ip::vrrp_message(datagram)?;
        let family = Family::of(&ends.src);
        let (repr, _form) = Repr::parse(&Packet::new_unchecked(message), ends)?;
        self.adverts_received += 1;
        let &slot = self
            .by_vrid
            .get(&(family, repr.vrid))
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
        let advert = Advert {
            src: ends.src,
            priority: repr.priority,
            interval: Duration::from_millis(u64::from(repr.interval_cs) * 10),
        };
        self.touched.push(slot);
        match self.groups[slot]
            .election
            .handle_advert(now, family, &advert)
        {
            Some(ignored) => Err(ignored.into()),
            None => Ok(()),
        }
    }

    fn slot(&self, group: GroupIndex) -> Option<usize> {
        self.groups.iter().position(|r| r.index == group)
    }

    fn touch_all(&mut self) {
        self.touched = (0..self.groups.len()).collect();
    }

    /// Turns what the touched groups asked for into effects, in order, files their next
    /// timers, and republishes the zone when an owner moved.
    fn process(&mut self, now: Instant) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &slot in &touched {
            while let Some((family, action)) = self.groups[slot].election.poll_action() {
                self.act(now, slot, family, action);
            }
            let runtime = &mut self.groups[slot];
            if std::mem::take(&mut runtime.start_pending)
                && !self.config.groups[runtime.index].resources.is_empty()
            {
                runtime.resources = ResourceState::Starting;
                self.effects.push_back(Effect::StartResources {
                    group: runtime.index,
                    generation: runtime.mastership,
                });
            }
            if let Some(at) = self.groups[slot].election.poll_timeout() {
                self.timers.push(Reverse((at, slot)));
            }
        }
        self.refresh_owners(now, &touched);
        touched.clear();
        self.touched = touched;
    }

    fn act(&mut self, now: Instant, slot: usize, family: Family, action: Action) {
        let index = self.groups[slot].index;
        match action {
            Action::SendAdvert { priority } => self.send_advert(slot, family, priority),
            Action::Claim { accept } => {
                let claimed = &mut self.groups[slot].claimed;
                if !claimed.contains(&family) {
                    claimed.push(family);
                }
                self.effects.push_back(Effect::Claim {
                    group: index,
                    family,
                    accept,
                    addresses: self.claimable(index, family),
                });
            }
            Action::Announce => self.effects.push_back(Effect::Announce {
                group: index,
                family,
                addresses: self
                    .addresses_of(index, family)
                    .map(|a| a.address)
                    .collect(),
            }),
            Action::Release => {
                self.groups[slot].claimed.retain(|f| *f != family);
                self.effects.push_back(Effect::Release {
                    group: index,
                    family,
                    addresses: self.claimable(index, family),
                });
            }
            Action::Transition(transition) => self.record(now, slot, family, transition),
        }
    }

    /// Logs and keeps a transition; the leading instance's transitions to and from Master
    /// begin and end the group's mastership.
    fn record(&mut self, now: Instant, slot: usize, family: Family, transition: Transition) {
        let runtime = &mut self.groups[slot];
        let group = &self.config.groups[runtime.index];
        let t = transition;
        info!(group = %group.name, family = %family, "{} -> {}: {}", t.from, t.to, t.reason);
        self.effects.push_back(Effect::Transition {
            group: runtime.index,
            family,
            transition,
        });
        let leads = runtime.election.leader_family() == Some(family);
        if leads && (t.to == State::Master || t.from == State::Master) {
            runtime.mastership += 1;
            let began = t.to == State::Master;
            self.effects.push_back(Effect::Mastership {
                group: runtime.index,
                generation: runtime.mastership,
                began,
            });
            if began {
                runtime.start_pending = true;
            } else if !group.resources.is_empty() {
                if !matches!(runtime.resources, ResourceState::Failed(_)) {
                    runtime.resources = ResourceState::Stopped;
                }
                self.effects.push_back(Effect::StopResources {
                    group: runtime.index,
                });
            }
        }
        if runtime.transitions.len() == TRANSITIONS_KEPT {
            runtime.transitions.pop_front();
        }
        runtime.transitions.push_back((now, family, transition));
    }

    fn send_advert(&mut self, slot: usize, family: Family, priority: u8) {
        let index = self.groups[slot].index;
        let group = &self.config.groups[index];
        let Some(source) = self.sources.get(family) else {
            return;
        };
        let repr = Repr {
            version: group.version,
            vrid: group.vrid,
            priority,
            interval_cs: (group.advert_interval.as_millis() / 10) as u16,
            addresses: self
                .addresses_of(index, family)
                .map(|a| a.address)
                .collect(),
            auth: V2Auth::default(),
        };
        let destinations: Vec<IpAddr> = if group.unicast {
            group
                .priorities
                .iter()
                .filter(|(n, _)| *n != self.me)
                .filter_map(|(n, _)| plan::source_address(&self.config.nodes[*n], family))
                .collect()
        } else {
            vec![multicast_group(family)]
        };
        let mut datagrams = Vec::with_capacity(destinations.len());
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
        self.adverts_sent += datagrams.len() as u64;
        self.effects.push_back(Effect::Send {
            group: index,
            family,
            priority,
            datagrams,
        });
    }

    fn addresses_of(
        &self,
        group: GroupIndex,
        family: Family,
    ) -> impl Iterator<Item = &VirtualAddress> {
        self.config.groups[group]
            .addresses
            .iter()
            .filter(move |a| Family::of(&a.address) == family)
    }

    /// The group's addresses this node adds and removes: all but its own real address (the
    /// address owner, priority 255, has it on its interface for good).
    fn claimable(&self, group: GroupIndex, family: Family) -> Vec<VirtualAddress> {
        let own = self.config.nodes[self.me].address;
        self.addresses_of(group, family)
            .filter(|a| a.address != own)
            .copied()
            .collect()
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

    /// Republishes the zone when an owner changed: the owner records and the serial move.
    fn refresh_owners(&mut self, now: Instant, touched: &[usize]) {
        let mut changed = false;
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
            self.effects
                .push_back(Effect::PublishZone(Box::new(self.zone())));
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
            link_up: self.link_up,
            uptime_ms: now.saturating_duration_since(self.started).as_millis() as u64,
            groups: self
                .groups
                .iter()
                .map(|runtime| self.group_status(runtime))
                .collect(),
            dropped: self.discards.to_map(),
            anomalies: self
                .anomalies
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            adverts_sent: self.adverts_sent,
            adverts_received: self.adverts_received,
            dns: None,
            peers: Vec::new(),
        }
    }

    fn group_status(&self, runtime: &GroupRuntime) -> GroupStatus {
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
                        priority: instance.config().priority,
                        master: instance.master_peer().map(str::to_string),
                        master_adver_interval_ms: instance.master_adver_interval().as_secs_f64()
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
        }
    }
}
