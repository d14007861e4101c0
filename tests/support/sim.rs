//! A whole cluster in one process: every node runs the real election core, joined by a
//! virtual LAN that delays, drops, partitions and heals, under a virtual clock that jumps
//! from one event to the next. Deterministic for a given seed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};
use vipd::config::Config;
use vipd::election::{Action, Advert, Group, State, Transition};
use vipd::plan;
use vipd::wire::Family;

/// SplitMix64: small, seedable, good enough to draw fault schedules.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability per_mille / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Something that happened, with the virtual time since the start of the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub at: Duration,
    pub node: usize,
    pub group: usize,
    pub family: Family,
    pub what: What,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Transition(Transition),
    Sent { priority: u8 },
    Claimed { accept: bool },
    Released,
    Announced,
}

#[derive(Debug, Clone)]
struct InFlight {
    from: usize,
    to: usize,
    group: usize,
    family: Family,
    advert: Advert,
}

pub struct SimNode {
    pub name: String,
    pub running: bool,
    pub link_up: bool,
    /// Side of the partition the node is on; adverts only pass within a side.
    pub side: u8,
    /// (config group index, election group)
    groups: Vec<(usize, Group)>,
    /// Virtual addresses this node holds now: (group, family).
    pub holds: BTreeSet<(usize, Family)>,
}

pub struct Sim {
    pub config: Config,
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<SimNode>,
    /// One-way latency of the LAN.
    pub delay: Duration,
    /// Each advert to each receiver is lost with this probability (per mille).
    pub loss_per_mille: u64,
    /// Adverts of this family are lost (a family-specific fault).
    pub block_family: Option<Family>,
    pub rng: Rng,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    packets: std::collections::HashMap<u64, InFlight>,
    seq: u64,
    pub log: Vec<Logged>,
}

/// The source address a simulated node sends `family` adverts from: its address, or for
/// IPv6 a link-local address the file does not know (as on a real LAN).
pub fn sim_source(config: &Config, node: usize, family: Family) -> IpAddr {
    plan::source_address(&config.nodes[node], family).unwrap_or(IpAddr::V6(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        0,
        0,
        0,
        node as u16 + 1,
    )))
}

impl Sim {
    /// A stopped cluster from a cluster file's text.
    pub fn new(toml: &str) -> Sim {
        let config = Config::parse("sim.toml", toml).unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let nodes = config
            .nodes
            .iter()
            .map(|n| SimNode {
                name: n.name.clone(),
                running: false,
                link_up: true,
                side: 0,
                groups: Vec::new(),
                holds: BTreeSet::new(),
            })
            .collect();
        Sim {
            config,
            start,
            now: start,
            nodes,
            delay: Duration::ZERO,
            loss_per_mille: 0,
            block_family: None,
            rng: Rng::new(0),
            in_flight: BinaryHeap::new(),
            packets: std::collections::HashMap::new(),
            seq: 0,
            log: Vec::new(),
        }
    }

    pub fn node(&self, name: &str) -> usize {
        self.config
            .node_index(name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn group(&self, name: &str) -> usize {
        self.config
            .groups
            .iter()
            .position(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name}"))
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn at(&self, since_start: Duration) -> Instant {
        self.start + since_start
    }

    /// Starts (or restarts) a node's daemon: fresh state, as a new process.
    pub fn start_node(&mut self, node: usize) {
        let config = &self.config;
        let groups = plan::for_node(config, node)
            .into_iter()
            .map(|gp| {
                let instances = gp
                    .instances
                    .into_iter()
                    .map(|mut ic| {
                        ic.primary = sim_source(config, node, ic.family);
                        ic
                    })
                    .collect();
                (gp.group, Group::new(instances))
            })
            .collect();
        let link_up = self.nodes[node].link_up;
        let now = self.now;
        let n = &mut self.nodes[node];
        n.running = true;
        n.groups = groups;
        n.holds.clear();
        for (_, group) in &mut n.groups {
            if !link_up {
                group.set_link(now, false);
            }
            group.start(now);
        }
        self.drain(node);
    }

    pub fn start_all(&mut self) {
        for node in 0..self.nodes.len() {
            self.start_node(node);
        }
    }

    /// SIGKILL: the process is gone, and with it (on a real host the kernel keeps them, but
    /// nobody answers for them) its claim on the addresses.
    pub fn kill(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.running = false;
        n.groups.clear();
        n.holds.clear();
    }

    /// SIGTERM: a graceful stop (priority 0 from a master, addresses released).
    pub fn stop(&mut self, node: usize) {
        let now = self.now;
        for (_, group) in &mut self.nodes[node].groups {
            group.shutdown(now);
        }
        self.drain(node);
        self.kill(node);
    }

    pub fn set_link(&mut self, node: usize, up: bool) {
        let now = self.now;
        self.nodes[node].link_up = up;
        for (_, group) in &mut self.nodes[node].groups {
            group.set_link(now, up);
        }
        self.drain(node);
    }

    /// Puts the listed nodes on side 1, the others on side 0.
    pub fn partition(&mut self, side_one: &[usize]) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.side = u8::from(side_one.contains(&i));
        }
    }

    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.side = 0;
        }
        self.loss_per_mille = 0;
        self.block_family = None;
    }

    /// Runs every event up to and including `until`, then sets the clock there.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.in_flight.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.next_timer();
            let next = match (next_packet, next_timer) {
                (Some(p), Some((t, _, _))) => p.min(t),
                (Some(p), None) => p,
                (None, Some((t, _, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            // Packets due now go first: a timer and an advert at the same instant resolve in
            // the advert's favour, as they would with any real latency.
            if next_packet == Some(next) {
                let Reverse((_, id)) = self.in_flight.pop().expect("peeked");
                let packet = self.packets.remove(&id).expect("packet stored");
                self.deliver(packet);
            } else if let Some((_, node, slot)) = next_timer {
                let now = self.now;
                self.nodes[node].groups[slot].1.handle_timeout(now);
                self.drain(node);
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        self.run_until(until);
    }

    fn next_timer(&self) -> Option<(Instant, usize, usize)> {
        let mut best: Option<(Instant, usize, usize)> = None;
        for (node, n) in self.nodes.iter().enumerate() {
            if !n.running {
                continue;
            }
            for (slot, (_, group)) in n.groups.iter().enumerate() {
                if let Some(t) = group.poll_timeout()
                    && best.is_none_or(|(b, _, _)| t < b)
                {
                    best = Some((t, node, slot));
                }
            }
        }
        best
    }

    fn deliver(&mut self, packet: InFlight) {
        let (from, to) = (&self.nodes[packet.from], &self.nodes[packet.to]);
        if !to.running || !to.link_up || !from.link_up || from.side != to.side {
            return;
        }
        let now = self.now;
        let to = packet.to;
        if let Some((_, group)) = self.nodes[to]
            .groups
            .iter_mut()
            .find(|(g, _)| *g == packet.group)
        {
            group.handle_advert(now, packet.family, &packet.advert);
        }
        self.drain(to);
    }

    /// Carries out what a node's groups asked for.
    fn drain(&mut self, node: usize) {
        let elapsed = self.elapsed();
        let mut sends = Vec::new();
        for slot in 0..self.nodes[node].groups.len() {
            let group_index = self.nodes[node].groups[slot].0;
            while let Some((family, action)) = self.nodes[node].groups[slot].1.poll_action() {
                let what = match action {
                    Action::SendAdvert { priority } => {
                        sends.push((group_index, family, priority));
                        What::Sent { priority }
                    }
                    Action::Claim { accept } => {
                        self.nodes[node].holds.insert((group_index, family));
                        What::Claimed { accept }
                    }
                    Action::Release => {
                        self.nodes[node].holds.remove(&(group_index, family));
                        What::Released
                    }
                    Action::Announce => What::Announced,
                    Action::Transition(t) => What::Transition(t),
                };
                self.log.push(Logged {
                    at: elapsed,
                    node,
                    group: group_index,
                    family,
                    what,
                });
            }
        }
        for (group, family, priority) in sends {
            self.send(node, group, family, priority);
        }
    }

    fn send(&mut self, from: usize, group: usize, family: Family, priority: u8) {
        if !self.nodes[from].link_up {
            return;
        }
        let advert = Advert {
            src: sim_source(&self.config, from, family),
            priority,
            interval: self.config.groups[group].advert_interval,
        };
        for to in 0..self.nodes.len() {
            if to == from
                || self.block_family == Some(family)
                || self.rng.chance(self.loss_per_mille)
            {
                continue;
            }
            self.seq += 1;
            self.packets.insert(
                self.seq,
                InFlight {
                    from,
                    to,
                    group,
                    family,
                    advert,
                },
            );
            self.in_flight
                .push(Reverse((self.now + self.delay, self.seq)));
        }
    }

    /// State of a node's instance, if it runs.
    pub fn state(&self, node: usize, group: usize, family: Family) -> Option<State> {
        let n = &self.nodes[node];
        if !n.running {
            return None;
        }
        n.groups
            .iter()
            .find(|(g, _)| *g == group)
            .and_then(|(_, gr)| gr.instance(family))
            .map(|i| i.state())
    }

    /// Running nodes that are master of (group, family).
    pub fn masters(&self, group: usize, family: Family) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|n| self.state(*n, group, family) == Some(State::Master))
            .collect()
    }

    /// Running nodes that hold the addresses of (group, family).
    pub fn holders(&self, group: usize, family: Family) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|n| self.nodes[*n].running && self.nodes[*n].holds.contains(&(group, family)))
            .collect()
    }

    /// When `node` last became master of (group, family), as time since start.
    pub fn became_master_at(&self, node: usize, group: usize, family: Family) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|l| {
                l.node == node
                    && l.group == group
                    && l.family == family
                    && matches!(l.what, What::Transition(t) if t.to == State::Master)
            })
            .map(|l| l.at)
    }

    /// When `node` last sent an advert of (group, family) with a non-zero priority.
    pub fn last_advert_at(&self, node: usize, group: usize, family: Family) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|l| {
                l.node == node
                    && l.group == group
                    && l.family == family
                    && matches!(l.what, What::Sent { priority } if priority > 0)
            })
            .map(|l| l.at)
    }

    /// Every logged event of one kind for one node and group.
    pub fn events(&self, node: usize, group: usize, family: Family) -> Vec<&Logged> {
        self.log
            .iter()
            .filter(|l| l.node == node && l.group == group && l.family == family)
            .collect()
    }
}
