//! A whole cluster in one process: every node runs the real node layer (`vipd::node::Node`),
//! fed the very bytes the others emit, joined by a virtual LAN that delays, drops,
//! partitions and heals, under a virtual clock that jumps from one event to the next.
//! Deterministic for a given seed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};
use vipd::config::Config;
use vipd::election::{State, Transition};
use vipd::node::{Effect, Node, QuorumSetup, ResourceOutcome, ResourceReport, Setup};
use vipd::plan;
use vipd::quorum::Membership;
use vipd::wire::Family;
use vipd::wire::ip::Datagram;
use vipd::wire::ipv4;

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

/// The membership channel's secret in simulated clusters.
pub const SECRET: &[u8] = b"simulated cluster secret, 32 b.";

/// Something due later: a datagram on the virtual LAN, a heartbeat, or a resource task's
/// report.
#[derive(Debug, Clone)]
enum Flight {
    Packet(InFlight),
    /// Between endpoints (nodes, then witnesses).
    Heartbeat {
        from: usize,
        to: usize,
        src: IpAddr,
        bytes: Vec<u8>,
    },
    Resource {
        node: usize,
        report: ResourceReport,
    },
    /// A fence command ends: `by` asked for `target` to be fenced.
    Fence {
        by: usize,
        target: String,
    },
}

/// A witness: a voter that owns nothing.
pub struct SimWitness {
    pub name: String,
    pub address: IpAddr,
    pub membership: Option<Membership>,
    pub side: u8,
}

/// A datagram on the virtual LAN, as the receiver's raw socket would hand it over.
#[derive(Debug, Clone)]
struct InFlight {
    from: usize,
    to: usize,
    /// The receiver's LAN segment it arrives on (index into its `lans`).
    lan: usize,
    src: IpAddr,
    dst: IpAddr,
    message: Vec<u8>,
}

pub struct SimNode {
    pub name: String,
    /// The running daemon, if any: the real node layer.
    pub node: Option<Node>,
    pub link_up: bool,
    /// Side of the partition the node is on; adverts only pass within a side.
    pub side: u8,
    /// Virtual addresses this node holds now: (group name, family).
    pub holds: BTreeSet<(String, Family)>,
    /// Effects other than sends and transitions (those are in the log), as handed out.
    pub effects: Vec<(Duration, Effect)>,
    /// Tracked interfaces (`track_interface`) that are down on this node; others are up.
    pub tracked_down: BTreeSet<String>,
}

impl SimNode {
    pub fn running(&self) -> bool {
        self.node.is_some()
    }
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
    /// Claims on these nodes fail (the kernel refuses the addresses).
    pub failing_claims: BTreeSet<usize>,
    /// What one IPv6 address costs the claiming node's shell (added, then waited for until
    /// usable): effects after it in the queue wait that long, as in the daemon. Zero: free.
    pub claim_cost_v6: Duration,
    /// Nodes start with an empty neighbour table (as fresh hosts do): no MAC of any member
    /// is known until the facts are fed. False: every fact is fed at start.
    pub empty_neighbour_tables: bool,
    pub rng: Rng,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    packets: std::collections::HashMap<u64, Flight>,
    seq: u64,
    pub log: Vec<Logged>,
    pub witnesses: Vec<SimWitness>,
    /// Endpoint pairs (nodes, then witnesses) that cannot reach each other.
    pub cuts: BTreeSet<(usize, usize)>,
    /// How long a resource's start or stop commands take.
    pub resource_delay: Duration,
    /// Services running now: (node, group name), from the start of their start commands
    /// to the end of their stop commands (or the node's death).
    pub services: BTreeSet<(usize, String)>,
    /// Instants at which two nodes ran one group's service: (time, group).
    pub double_service: Vec<(Duration, String)>,
    /// Fence commands: how long one takes, and whether it works (it powers the node off).
    pub fence_delay: Duration,
    pub fence_works: bool,
    /// Fences run: (time, by node, node fenced).
    pub fenced: Vec<(Duration, usize, String)>,
    /// Frozen nodes (SIGSTOP): they take no input and no timer, and keep what they hold.
    pub frozen: BTreeSet<usize>,
    /// Names of the file's quorum groups (checked after every event).
    quorum_groups: BTreeSet<String>,
    /// Group name → index in the file.
    group_index: std::collections::HashMap<String, usize>,
    /// Nodes that no longer read heartbeats (a daemon past its event loop, stopping).
    pub deaf: BTreeSet<usize>,
    /// (node, LAN segment) whose link is down (segment 0 follows `SimNode::link_up`).
    pub lan_links_down: BTreeSet<(usize, usize)>,
    boots: u64,
}

/// The IPv6 link-local address of a simulated node: one the file does not know, as on a
/// real LAN.
pub fn link_local(node: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, node as u16 + 1))
}

/// The MAC of a simulated node's interface (as in the lab).
pub fn mac(node: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, 0x10 + node as u8]
}

/// What a simulated node finds on its interface: its address and its link-local address.
pub fn interface_addresses(config: &Config, node: usize) -> Vec<IpAddr> {
    vec![config.nodes[node].address, link_local(node)]
}

/// The source address a simulated node sends `family` adverts from, by the node layer's own
/// rule.
pub fn sim_source(config: &Config, node: usize, family: Family) -> IpAddr {
    sim_source_on(config, node, 0, family)
}

/// What a simulated node finds on its interface of LAN segment `lan` (index into `lans`).
pub fn lan_addresses(config: &Config, node: usize, lan: usize) -> Vec<IpAddr> {
    if lan == 0 {
        return interface_addresses(config, node);
    }
    let segment = &config.nodes[node].lans[lan];
    let mut found = vec![segment.address];
    found.extend(segment.link_local.map(IpAddr::V6));
    found
}

/// [`sim_source`] on LAN segment `lan`.
pub fn sim_source_on(config: &Config, node: usize, lan: usize, family: Family) -> IpAddr {
    plan::Sources::find_on(config, node, lan, &lan_addresses(config, node, lan))
        .get(family)
        .expect("every simulated node has a source in each family")
}

impl Sim {
    /// A stopped cluster from a cluster file's text.
    pub fn new(toml: &str) -> Sim {
        let config = Config::parse("sim.toml", toml).unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let quorum_groups = config
            .groups
            .iter()
            .filter(|g| g.quorum)
            .map(|g| g.name.clone())
            .collect();
        let group_index = config
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let nodes = config
            .nodes
            .iter()
            .map(|n| SimNode {
                name: n.name.clone(),
                node: None,
                link_up: true,
                side: 0,
                holds: BTreeSet::new(),
                effects: Vec::new(),
                tracked_down: BTreeSet::new(),
            })
            .collect();
        Sim {
            start,
            now: start,
            nodes,
            delay: Duration::ZERO,
            loss_per_mille: 0,
            block_family: None,
            failing_claims: BTreeSet::new(),
            claim_cost_v6: Duration::ZERO,
            empty_neighbour_tables: false,
            rng: Rng::new(0),
            in_flight: BinaryHeap::new(),
            packets: std::collections::HashMap::new(),
            seq: 0,
            log: Vec::new(),
            witnesses: config
                .witnesses
                .iter()
                .map(|w| SimWitness {
                    name: w.name.clone(),
                    address: w.address,
                    membership: None,
                    side: 0,
                })
                .collect(),
            config,
            cuts: BTreeSet::new(),
            resource_delay: Duration::from_millis(20),
            services: BTreeSet::new(),
            double_service: Vec::new(),
            fence_delay: Duration::from_millis(50),
            fence_works: true,
            fenced: Vec::new(),
            frozen: BTreeSet::new(),
            lan_links_down: BTreeSet::new(),
            deaf: BTreeSet::new(),
            quorum_groups,
            group_index,
            boots: 0,
        }
    }

    /// The endpoint index of a witness (after the nodes).
    pub fn witness(&self, name: &str) -> usize {
        self.nodes.len()
            + self
                .witnesses
                .iter()
                .position(|w| w.name == name)
                .unwrap_or_else(|| panic!("no witness {name}"))
    }

    /// Starts (or restarts) a witness.
    pub fn start_witness(&mut self, endpoint: usize) {
        self.boots += 1;
        let w = endpoint - self.nodes.len();
        let name = self.witnesses[w].name.clone();
        self.witnesses[w].membership =
            Membership::for_config(&self.config, &name, SECRET, self.boots, self.now);
        self.witness_transmit(w);
    }

    pub fn kill_witness(&mut self, endpoint: usize) {
        self.witnesses[endpoint - self.nodes.len()].membership = None;
    }

    /// Cuts the path between two endpoints (nodes, then witnesses) both ways.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.cuts.insert((a.min(b), a.max(b)));
    }

    fn side_of(&self, endpoint: usize) -> u8 {
        match self.nodes.get(endpoint) {
            Some(n) => n.side,
            None => self.witnesses[endpoint - self.nodes.len()].side,
        }
    }

    fn reaches(&self, a: usize, b: usize) -> bool {
        let up = |e: usize| self.nodes.get(e).is_none_or(|n| n.link_up);
        up(a)
            && up(b)
            && self.side_of(a) == self.side_of(b)
            && !self.cuts.contains(&(a.min(b), a.max(b)))
    }

    fn endpoint_at(&self, address: IpAddr) -> Option<usize> {
        self.config
            .nodes
            .iter()
            .position(|n| n.address == address)
            .or_else(|| {
                self.witnesses
                    .iter()
                    .position(|w| w.address == address)
                    .map(|w| self.nodes.len() + w)
            })
    }

    fn address_of(&self, endpoint: usize) -> IpAddr {
        match self.config.nodes.get(endpoint) {
            Some(n) => n.address,
            None => self.witnesses[endpoint - self.nodes.len()].address,
        }
    }

    fn schedule(&mut self, at: Instant, flight: Flight) {
        self.seq += 1;
        self.packets.insert(self.seq, flight);
        self.in_flight.push(Reverse((at, self.seq)));
    }

    fn send_heartbeat(&mut self, from: usize, to_address: IpAddr, bytes: Vec<u8>) {
        let Some(to) = self.endpoint_at(to_address) else {
            return;
        };
        if !self.reaches(from, to) || self.rng.chance(self.loss_per_mille) {
            return;
        }
        let src = self.address_of(from);
        let at = self.now + self.delay;
        self.schedule(
            at,
            Flight::Heartbeat {
                from,
                to,
                src,
                bytes,
            },
        );
    }

    fn witness_transmit(&mut self, w: usize) {
        let now = self.now;
        let Some(membership) = self.witnesses[w].membership.as_mut() else {
            return;
        };
        let transmits = membership.poll_transmit(now, &[]);
        let from = self.nodes.len() + w;
        for t in transmits {
            self.send_heartbeat(from, t.to.ip(), t.bytes);
        }
    }

    /// Records two nodes running one group's service, or holding a quorum group's
    /// addresses, if they do now.
    fn check_services(&mut self) {
        // Only clusters with services or quorum groups have anything to check (the check
        // runs after every event: keep it free for the others).
        if self.services.is_empty() && self.quorum_groups.is_empty() {
            return;
        }
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        for (_, group) in &self.services {
            *seen.entry(group.clone()).or_default() += 1;
        }
        for n in self.nodes.iter().filter(|n| n.running()) {
            for (group, family) in &n.holds {
                if self.quorum_groups.contains(group) {
                    *seen
                        .entry(format!("addresses of {group} {family}"))
                        .or_default() += 1;
                }
            }
        }
        let doubled: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(g, _)| g.to_string())
            .collect();
        let at = self.elapsed();
        for group in doubled {
            if self.double_service.last() != Some(&(at, group.clone())) {
                self.double_service.push((at, group));
            }
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

    /// The index of a group in the cluster's file (usize::MAX for one it does not have).
    pub fn group_index(&self, name: &str) -> usize {
        self.config
            .groups
            .iter()
            .position(|g| g.name == name)
            .unwrap_or(usize::MAX)
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn at(&self, since_start: Duration) -> Instant {
        self.start + since_start
    }

    /// The wall clock the simulated nodes see: a fixed epoch plus the virtual time.
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.elapsed()
    }

    /// The running node layer of `node`.
    pub fn running(&mut self, node: usize) -> &mut Node {
        self.nodes[node].node.as_mut().expect("node runs")
    }

    /// What `vipd status` would show for a running node now.
    pub fn status(&self, node: usize) -> vipd::node::status::Status {
        self.nodes[node]
            .node
            .as_ref()
            .expect("node runs")
            .status(self.now)
    }

    /// Starts (or restarts) a node's daemon: fresh state, as a new process.
    pub fn start_node(&mut self, node: usize) {
        self.boots += 1;
        let lans = self.config.nodes[node].lans.len();
        let setup = Setup {
            interface_addresses: interface_addresses(&self.config, node),
            link_up: self.nodes[node].link_up,
            lans: (1..lans)
                .map(|lan| {
                    (
                        lan_addresses(&self.config, node, lan),
                        !self.lan_links_down.contains(&(node, lan)),
                    )
                })
                .collect(),
            tracked_links: self.nodes[node]
                .tracked_down
                .iter()
                .map(|name| (name.clone(), false))
                .collect(),
            quorum: self.config.quorum.as_ref().map(|_| QuorumSetup {
                secret: SECRET.to_vec(),
                boot: self.boots,
            }),
        };
        let started = Node::new(self.config.clone(), node, &setup, self.now, self.wall());
        let n = &mut self.nodes[node];
        n.node = Some(started);
        n.holds.clear();
        if !self.empty_neighbour_tables {
            self.feed_neighbours(node);
        }
        self.drain(node);
    }

    /// What the shell reads from the kernel's neighbour table: every node's address and
    /// link-local address at its MAC.
    pub fn feed_neighbours(&mut self, node: usize) {
        let count = self.config.nodes.len();
        let facts: Vec<(IpAddr, [u8; 6])> = (0..count)
            .filter(|j| *j != node)
            .flat_map(|j| {
                [
                    (self.config.nodes[j].address, mac(j)),
                    (link_local(j), mac(j)),
                ]
            })
            .collect();
        let now = self.now;
        if let Some(n) = self.nodes[node].node.as_mut() {
            for (address, mac) in facts {
                n.handle_neighbour(now, address, Some(mac));
            }
        }
    }

    pub fn start_all(&mut self) {
        for node in 0..self.nodes.len() {
            self.start_node(node);
        }
        for w in 0..self.witnesses.len() {
            self.start_witness(self.nodes.len() + w);
        }
    }

    /// SIGKILL: the process is gone, and with it (on a real host the kernel keeps them, but
    /// nobody answers for them) its claim on the addresses.
    pub fn kill(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.node = None;
        n.holds.clear();
        self.services.retain(|(n, _)| *n != node);
    }

    /// SIGTERM: a graceful stop (priority 0 from a master, addresses released).
    pub fn stop(&mut self, node: usize) {
        let now = self.now;
        if let Some(n) = self.nodes[node].node.as_mut() {
            n.shutdown(now);
        }
        self.drain(node);
        self.kill(node);
    }

    /// The link of `node`'s LAN segment `lan` (1.. : its `[[node.lan]]`s) goes down or up.
    pub fn set_lan_link(&mut self, node: usize, lan: usize, up: bool) {
        if up {
            self.lan_links_down.remove(&(node, lan));
        } else {
            self.lan_links_down.insert((node, lan));
        }
        let now = self.now;
        if let Some(n) = self.nodes[node].node.as_mut() {
            n.handle_link_on(now, lan, up);
        }
        self.drain(node);
    }

    pub fn set_link(&mut self, node: usize, up: bool) {
        let now = self.now;
        self.nodes[node].link_up = up;
        if let Some(n) = self.nodes[node].node.as_mut() {
            n.handle_link(now, up);
        }
        self.drain(node);
    }

    /// A tracked interface (`track_interface`) of a node goes down or comes up; it stays so
    /// across restarts of the node.
    pub fn set_tracked_link(&mut self, node: usize, interface: &str, up: bool) {
        let now = self.now;
        if up {
            self.nodes[node].tracked_down.remove(interface);
        } else {
            self.nodes[node].tracked_down.insert(interface.to_string());
        }
        if let Some(n) = self.nodes[node].node.as_mut() {
            n.handle_tracked_link(now, interface, up);
        }
        self.drain(node);
    }

    /// One run of a node's track script `script` succeeded (`ok`) or failed.
    pub fn check(&mut self, node: usize, script: &str, ok: bool) {
        self.input(node, |n, now| n.handle_check(now, script, ok));
    }

    /// Feeds a node any input, then carries out its effects.
    pub fn input(&mut self, node: usize, input: impl FnOnce(&mut Node, Instant)) {
        if self.frozen.contains(&node) {
            return;
        }
        let now = self.now;
        if let Some(n) = self.nodes[node].node.as_mut() {
            input(n, now);
        }
        self.drain(node);
    }

    /// Copies a new cluster file to every node and reloads the running ones; returns each
    /// running node's outcome.
    pub fn reload_all(&mut self, toml: &str) -> Vec<Result<Vec<String>, String>> {
        let config = Config::parse("sim.toml", toml).unwrap_or_else(|e| panic!("{e}"));
        self.config = config.clone();
        self.quorum_groups = config
            .groups
            .iter()
            .filter(|g| g.quorum)
            .map(|g| g.name.clone())
            .collect();
        self.group_index = config
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let mut outcomes = Vec::new();
        for node in 0..self.nodes.len() {
            let now = self.now;
            if let Some(n) = self.nodes[node].node.as_mut() {
                outcomes.push(n.reload(now, config.clone()));
            }
            self.feed_neighbours(node);
            self.drain(node);
        }
        outcomes
    }

    /// Puts the listed nodes on side 1, the others on side 0.
    pub fn partition(&mut self, side_one: &[usize]) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.side = u8::from(side_one.contains(&i));
        }
        let count = self.nodes.len();
        for (w, witness) in self.witnesses.iter_mut().enumerate() {
            witness.side = u8::from(side_one.contains(&(count + w)));
        }
    }

    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.side = 0;
        }
        for w in &mut self.witnesses {
            w.side = 0;
        }
        self.cuts.clear();
        self.loss_per_mille = 0;
        self.block_family = None;
    }

    /// Runs every event up to and including `until`, then sets the clock there.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.in_flight.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.next_timer();
            let next = match (next_packet, next_timer) {
                (Some(p), Some((t, _))) => p.min(t),
                (Some(p), None) => p,
                (None, Some((t, _))) => t,
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
                match self.packets.remove(&id).expect("packet stored") {
                    Flight::Packet(packet) => self.deliver(packet),
                    Flight::Heartbeat {
                        from,
                        to,
                        src,
                        bytes,
                    } => {
                        if self.reaches(from, to) {
                            self.deliver_heartbeat(to, src, &bytes);
                        }
                    }
                    Flight::Fence { by, target } => {
                        let outcome = if self.fence_works {
                            // The fence powers the node off.
                            let t = self.node(&target);
                            self.frozen.remove(&t);
                            self.kill(t);
                            Ok(())
                        } else {
                            Err("the BMC does not answer".to_string())
                        };
                        self.input(by, |n, now| n.handle_fence(now, &target, outcome));
                    }
                    Flight::Resource { node, report } => {
                        if report.outcome == ResourceOutcome::Stopped {
                            self.services
                                .retain(|(n, g)| !(*n == node && **g == *report.group));
                        }
                        self.input(node, |n, now| n.handle_resources(now, report));
                    }
                }
            } else if let Some((_, endpoint)) = next_timer {
                if endpoint < self.nodes.len() {
                    self.input(endpoint, |n, now| n.handle_timeout(now));
                } else {
                    self.witness_transmit(endpoint - self.nodes.len());
                }
            }
            self.check_services();
        }
        self.now = until;
    }

    pub fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        self.run_until(until);
    }

    fn next_timer(&mut self) -> Option<(Instant, usize)> {
        let mut best: Option<(Instant, usize)> = None;
        for (index, n) in self.nodes.iter_mut().enumerate() {
            if self.frozen.contains(&index) {
                continue;
            }
            if let Some(t) = n.node.as_mut().and_then(Node::poll_timeout)
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, index));
            }
        }
        let now = self.now;
        let count = self.nodes.len();
        for (w, witness) in self.witnesses.iter().enumerate() {
            if let Some(m) = &witness.membership {
                let t = m.poll_timeout().max(now);
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, count + w));
                }
            }
        }
        best
    }

    fn deliver_heartbeat(&mut self, to: usize, src: IpAddr, bytes: &[u8]) {
        if self.frozen.contains(&to) || self.deaf.contains(&to) {
            return;
        }
        let now = self.now;
        if to < self.nodes.len() {
            if let Some(n) = self.nodes[to].node.as_mut() {
                n.handle_heartbeat(now, src, bytes);
            }
            self.drain(to);
        } else if let Some(m) = self.witnesses[to - self.nodes.len()].membership.as_mut() {
            let _ = m.handle(now, src, bytes);
        }
    }

    /// Hands a datagram to the receiver as its raw socket would: IPv4 with the header in
    /// front, IPv6 with the header's fields beside the message.
    fn deliver(&mut self, packet: InFlight) {
        let (from, to) = (&self.nodes[packet.from], &self.nodes[packet.to]);
        let links_up = if packet.lan == 0 {
            to.link_up && from.link_up
        } else {
            true
        };
        if !to.running()
            || !links_up
            || from.side != to.side
            || self.frozen.contains(&packet.to)
            || self
                .cuts
                .contains(&(packet.from.min(packet.to), packet.from.max(packet.to)))
        {
            return;
        }
        let ipv4_packet;
        let datagram = match (packet.src, packet.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut bytes = ipv4::emit_header(src, dst, 255, packet.message.len()).to_vec();
                bytes.extend_from_slice(&packet.message);
                ipv4_packet = bytes;
                Datagram::V4(&ipv4_packet)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => Datagram::V6 {
                src,
                dst,
                hop_limit: 255,
                message: &packet.message,
            },
            _ => unreachable!("one family per datagram"),
        };
        let now = self.now;
        if let Some(n) = self.nodes[packet.to].node.as_mut() {
            n.handle_datagram_on(now, packet.lan, datagram);
        }
        self.drain(packet.to);
    }

    /// Carries out what a node asked for.
    fn drain(&mut self, node: usize) {
        let elapsed = self.elapsed();
        let now = self.now;
        let mut sends = Vec::new();
        // Time the shell spent on the effects so far (IPv6 claims): later sends leave then.
        let mut busy = Duration::ZERO;
        while let Some(effect) = self.nodes[node].node.as_mut().and_then(Node::poll_effect) {
            if !matches!(effect, Effect::Send { .. } | Effect::Transition { .. }) {
                self.nodes[node].effects.push((elapsed, effect.clone()));
            }
            let (group, family, what) = match effect {
                Effect::Send {
                    group,
                    family,
                    priority,
                    datagrams,
                    ..
                } => {
                    sends.push((busy, group.clone(), family, datagrams));
                    (group, family, What::Sent { priority })
                }
                Effect::Claim {
                    group,
                    family,
                    accept,
                    addresses,
                } => {
                    if family == Family::V6 {
                        busy += self.claim_cost_v6 * addresses.len() as u32;
                    }
                    if self.failing_claims.contains(&node) {
                        if let Some(n) = self.nodes[node].node.as_mut() {
                            n.handle_claim_failed(now, &group, family);
                        }
                    } else {
                        self.nodes[node].holds.insert((group.to_string(), family));
                    }
                    (group, family, What::Claimed { accept })
                }
                Effect::Release { group, family, .. } => {
                    self.nodes[node].holds.remove(&(group.to_string(), family));
                    (group, family, What::Released)
                }
                Effect::Announce { group, family, .. } => (group, family, What::Announced),
                Effect::Transition {
                    group,
                    family,
                    transition,
                } => (group, family, What::Transition(transition)),
                Effect::Heartbeat { to, bytes } => {
                    self.send_heartbeat(node, to.ip(), bytes);
                    continue;
                }
                Effect::Fence { node: target, .. } => {
                    self.fenced.push((elapsed, node, target.clone()));
                    let at = now + self.fence_delay;
                    self.schedule(at, Flight::Fence { by: node, target });
                    continue;
                }
                Effect::StartResources {
                    group, generation, ..
                } => {
                    self.services.insert((node, group.to_string()));
                    let report = ResourceReport {
                        group,
                        generation,
                        outcome: ResourceOutcome::Started,
                    };
                    let at = now + self.resource_delay;
                    self.schedule(at, Flight::Resource { node, report });
                    continue;
                }
                Effect::StopResources {
                    group, generation, ..
                } => {
                    let report = ResourceReport {
                        group,
                        generation,
                        outcome: ResourceOutcome::Stopped,
                    };
                    let at = now + self.resource_delay;
                    self.schedule(at, Flight::Resource { node, report });
                    continue;
                }
                _ => continue,
            };
            let group = self.group_index(&group);
            self.log.push(Logged {
                at: elapsed,
                node,
                group,
                family,
                what,
            });
        }
        for (busy, group, family, datagrams) in sends {
            self.send_after(node, &group, family, datagrams, busy);
        }
    }

    fn send_after(
        &mut self,
        from: usize,
        group: &str,
        family: Family,
        datagrams: Vec<(IpAddr, Vec<u8>)>,
        busy: Duration,
    ) {
        let Some(&index) = self.group_index.get(group) else {
            return;
        };
        let group = &self.config.groups[index];
        let from_lan = group.lan_of(&self.config.nodes[from]);
        // Per node: its interface on the group's segment, and its address there.
        let segment: Vec<Option<(usize, Option<IpAddr>)>> = (0..self.nodes.len())
            .map(|to| {
                let lan = self.config.nodes[to].lan_index(group.interface.as_deref())?;
                Some((lan, plan::group_source(&self.config, group, to, family)))
            })
            .collect();
        let up = |sim: &Sim, node: usize, lan: usize| {
            if lan == 0 {
                sim.nodes[node].link_up
            } else {
                !sim.lan_links_down.contains(&(node, lan))
            }
        };
        if !up(self, from, from_lan) {
            return;
        }
        let src = sim_source_on(&self.config, from, from_lan, family);
        for (dst, message) in datagrams {
            for (to, on_segment) in segment.iter().enumerate() {
                // Only nodes on the group's LAN segment hear it, on their interface there.
                let Some((lan, address)) = *on_segment else {
                    continue;
                };
                let reaches = dst.is_multicast() || address == Some(dst);
                if to == from
                    || !up(self, to, lan)
                    || !reaches
                    || self.block_family == Some(family)
                    || self.rng.chance(self.loss_per_mille)
                {
                    continue;
                }
                let at = self.now + busy + self.delay;
                self.schedule(
                    at,
                    Flight::Packet(InFlight {
                        from,
                        to,
                        lan,
                        src,
                        dst,
                        message: message.clone(),
                    }),
                );
            }
        }
    }

    /// Injects a datagram from outside (a stranger on the LAN, a forged packet) into `to`.
    pub fn inject(&mut self, to: usize, datagram: Datagram<'_>) {
        let now = self.now;
        if let Some(n) = self.nodes[to].node.as_mut() {
            n.handle_datagram(now, datagram);
        }
        self.drain(to);
    }

    /// State of a node's instance, if it runs.
    pub fn state(&self, node: usize, group: usize, family: Family) -> Option<State> {
        self.nodes[node]
            .node
            .as_ref()?
            .election(group)?
            .instance(family)
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
            .filter(|n| {
                let name = self.config.groups[group].name.clone();
                self.nodes[*n].running() && self.nodes[*n].holds.contains(&(name, family))
            })
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
