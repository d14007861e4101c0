//! One node's daemon: the election core of each of its groups, wired to raw VRRP sockets,
//! netlink and link-layer announcements. The loop only moves bytes and timers; every
//! decision is the core's.

pub mod peers;
pub mod resources;
pub mod status;

use crate::config::{Config, VirtualAddress};
use crate::dns;
use crate::election::{Action, Advert, Group, State};
use crate::net::announce::Announcer;
use crate::net::netlink::{self, Event, Link};
use crate::net::vrrp_socket::{self, VrrpSocket};
use crate::plan;
use crate::wire::vrrp::{IpEnds, Packet, Repr, V2Auth};
use crate::wire::{Family, WireError, ipv4};
use futures::StreamExt;
use status::{GroupStatus, InstanceStatus, Status, TransitionRecord};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, info, warn};

/// Transitions kept per group for `vipd status`.
const TRANSITIONS_KEPT: usize = 16;

pub struct Options {
    pub config: PathBuf,
    pub node: String,
    pub control: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("node \"{0}\" is not in the cluster file (use --node)")]
    UnknownNode(String),
    #[error("{0}")]
    Netlink(#[from] netlink::NetlinkError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("interface {0} has no {1} address to send adverts from")]
    NoSource(String, Family),
}

fn unix_seconds() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// One group as the daemon runs it.
struct GroupRuntime {
    index: usize,
    election: Group,
    /// Families whose addresses are on the interface now.
    claimed: Vec<Family>,
    transitions: VecDeque<TransitionRecord>,
    /// Moves whenever the group's mastership begins or ends: a registration in the site's
    /// DNS retries only while the mastership it started in lasts.
    mastership: Arc<AtomicU64>,
    /// Resources to start once this drain of actions is done (the addresses are up then).
    start_pending: Option<u64>,
    /// Start and stop commands of one group never run at the same time.
    resource_lock: Arc<tokio::sync::Mutex<()>>,
    /// What the resources are doing, for status.
    resource_state: String,
}

struct Daemon {
    config: Config,
    node: usize,
    netlink: rtnetlink::Handle,
    link: Link,
    link_local: Option<Ipv6Addr>,
    sockets: Vec<VrrpSocket>,
    announcer: Announcer,
    groups: Vec<GroupRuntime>,
    /// (family, vrid) → index into `groups`.
    by_vrid: HashMap<(Family, u8), usize>,
    dropped: BTreeMap<&'static str, u64>,
    adverts_sent: u64,
    adverts_received: u64,
    started: Instant,
    /// Every group's next timeout, soonest first. Entries go stale when a group reschedules;
    /// they are recognised by comparing with the group's own `poll_timeout` and skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Groups fed an input since their actions were last carried out.
    touched: Vec<usize>,
    /// The DNS server's shared state, when the zone is served.
    dns: Option<Arc<dns::server::Server>>,
    /// The owner of each group of the file, as this node knows it (for the zone).
    owners: Vec<Option<String>>,
    zone_serial: u32,
    /// Registration in the site's DNS, when configured: the key read at start.
    registration: Option<Arc<dns::update::Key>>,
    /// The other nodes' versions, asked over DNS.
    peers: peers::Shared,
    /// Resource tasks report here.
    resource_reports: (
        tokio::sync::mpsc::UnboundedSender<resources::Report>,
        Option<tokio::sync::mpsc::UnboundedReceiver<resources::Report>>,
    ),
    /// Stop commands under way: shutdown waits for them.
    stopping: Vec<tokio::task::JoinHandle<()>>,
    /// Link and address changes, subscribed before the link was first read.
    events: Option<futures::stream::BoxStream<'static, Event>>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    let config = Config::load(&options.config)?;
    let node = config
        .node_index(&options.node)
        .ok_or_else(|| DaemonError::UnknownNode(options.node.clone()))?;
    let mut daemon = Daemon::start(config, node).await?;
    let listener = bind_control(&options.control)?;
    info!(node = %options.node, control = %options.control.display(), "vipd {} running", env!("CARGO_PKG_VERSION"));
    let result = daemon.run(listener).await;
    let _ = std::fs::remove_file(&options.control);
    result
}

fn bind_control(path: &std::path::Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    }
    // A socket file left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(io_error(format!("control socket {}", path.display())))
}

/// Datagrams read per socket per turn of the loop.
const RECEIVE_BATCH: usize = 32;
/// Room for the largest advert (IPv6, 255 addresses) with its IPv4 header.
const RECEIVE_BUFFER: usize = 4200;

/// A socket's receive buffers and what the last batch read into them.
struct Batch {
    buffers: Vec<Vec<u8>>,
    received: Vec<(usize, vrrp_socket::Received)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            buffers: vec![vec![0u8; RECEIVE_BUFFER]; RECEIVE_BATCH],
            received: Vec::with_capacity(RECEIVE_BATCH),
        }
    }
}

async fn receive_batch(socket: Option<&VrrpSocket>, batch: &mut Batch) -> Option<Family> {
    match socket {
        Some(socket) => {
            if let Err(e) = socket
                .recv_batch(&mut batch.buffers, &mut batch.received)
                .await
            {
                warn!("receiving VRRP {}: {e}", socket.family());
            }
            Some(socket.family())
        }
        None => std::future::pending().await,
    }
}

impl Daemon {
    async fn start(config: Config, node: usize) -> Result<Daemon, DaemonError> {
        let me = config.nodes[node].clone();
        // Listen for link and address changes before reading the link's state, so that no
        // change between the two is lost.
        let events = netlink::watch()?;
        let handle = netlink::connect()?;
        let link = netlink::link_by_name(&handle, &me.interface).await?;
        let on_interface = netlink::addresses(&handle, link.index).await?;
        let plans = plan::for_node(&config, node);
        let families: Vec<Family> = {
            let mut f: Vec<Family> = plans
                .iter()
                .flat_map(|p| p.instances.iter().map(|i| i.family))
                .collect();
            f.sort();
            f.dedup();
            f
        };

        // After a crash, our virtual addresses may still be on the interface: remove them
        // before joining, so that two nodes never hold them at once.
        for group in &config.groups {
            if group.priority_of(node).is_none() {
                continue;
            }
            for address in &group.addresses {
                if address.address != me.address
                    && on_interface.iter().any(|(a, _)| *a == address.address)
                {
                    info!(group = %group.name, %address, "removing a stale virtual address left by an earlier run");
                    netlink::del_address(&handle, link.index, *address).await?;
                }
            }
        }
        // A group whose address owner is another node: when we hold that address and the
        // owner returns, its adverts come from an address that is local here, which the
        // kernel drops as martian unless accept_local is on for the interface.
        let backs_up_an_owner = config.groups.iter().any(|g| {
            g.priority_of(node).is_some_and(|p| p < 255)
                && g.priorities.iter().any(|(_, p)| *p == 255)
        });
        if backs_up_an_owner {
            let path = format!("/proc/sys/net/ipv4/conf/{}/accept_local", me.interface);
            match std::fs::write(&path, "1") {
                Ok(()) => info!(
                    "{path} = 1: the address owner's adverts must reach us while we hold its address"
                ),
                Err(e) => {
                    warn!("cannot set {path}: {e}; the address owner's return may go unheard")
                }
            }
        }
        let virtual_addresses: Vec<IpAddr> = config
            .groups
            .iter()
            .flat_map(|g| g.addresses.iter().map(|a| a.address))
            .collect();
        let is_own = |a: &IpAddr| !virtual_addresses.contains(a);
        let source_v4 = plan::source_address(&me, Family::V4).or_else(|| {
            on_interface
                .iter()
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv4() && is_own(a))
        });
        let link_local = on_interface.iter().find_map(|(a, _)| match a {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        });
        let source_v6 = me.link_local.or(link_local).map(IpAddr::V6);

        let mut sockets = Vec::new();
        for family in &families {
            let source = match family {
                Family::V4 => source_v4,
                Family::V6 => source_v6,
            }
            .ok_or_else(|| DaemonError::NoSource(me.interface.clone(), *family))?;
            let socket = VrrpSocket::open(*family, &me.interface, link.index, source).map_err(
                io_error(format!("VRRP {family} socket on {}", me.interface)),
            )?;
            sockets.push(socket);
        }
        let announcer = Announcer::new(link.index, link.mac)
            .map_err(io_error("packet socket for announcements"))?;

        let now = Instant::now();
        let mut groups = Vec::new();
        let mut by_vrid = HashMap::new();
        for group_plan in plans {
            let group = &config.groups[group_plan.group];
            let instances = group
                .families()
                .into_iter()
                .filter_map(|family| {
                    let primary = sockets
                        .iter()
                        .find(|s| s.family() == family)
                        .map(|s| s.source());
                    plan::instance_config(&config, group, node, family, primary)
                })
                .collect::<Vec<_>>();
            for instance in &instances {
                by_vrid.insert((instance.family, instance.vrid), groups.len());
            }
            let mut election = Group::new(instances);
            if !link.up {
                election.set_link(now, false);
            }
            election.start(now);
            groups.push(GroupRuntime {
                index: group_plan.group,
                election,
                claimed: Vec::new(),
                transitions: VecDeque::new(),
                mastership: Arc::new(AtomicU64::new(0)),
                start_pending: None,
                resource_lock: Arc::new(tokio::sync::Mutex::new(())),
                resource_state: String::new(),
            });
        }
        let mut daemon = Daemon {
            config,
            node,
            netlink: handle,
            link,
            link_local,
            sockets,
            announcer,
            groups,
            by_vrid,
            dropped: BTreeMap::new(),
            adverts_sent: 0,
            adverts_received: 0,
            started: now,
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            dns: None,
            owners: Vec::new(),
            zone_serial: unix_seconds(),
            registration: None,
            events: Some(events),
            peers: peers::Shared::default(),
            resource_reports: {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                (sender, Some(receiver))
            },
            stopping: Vec::new(),
        };
        if let Some(update) = &daemon.config.dns.update {
            let key = dns::update::read_key(&update.key_name, &update.key_file).map_err(|e| {
                DaemonError::Io {
                    what: "[dns.update]".into(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
            daemon.registration = Some(Arc::new(key));
        }
        // Groups this node is not a member of: it hears none of their adverts, so it cannot
        // tell their owner, and says so.
        daemon.owners = daemon
            .config
            .groups
            .iter()
            .map(|g| g.priority_of(node).is_none().then(|| "unknown".to_string()))
            .collect();
        daemon.start_dns()?;
        daemon.touched = (0..daemon.groups.len()).collect();
        daemon.perform_actions().await;
        Ok(daemon)
    }

    async fn run(&mut self, control: UnixListener) -> Result<(), DaemonError> {
        let mut sigterm = signal(SignalKind::terminate()).map_err(io_error("SIGTERM handler"))?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(io_error("SIGINT handler"))?;
        let mut events = self.events.take().expect("subscribed at start");
        let mut reports = self.resource_reports.1.take().expect("one run");
        let (mut first, mut second) = (Batch::new(), Batch::new());
        loop {
            let sleep_until = tokio::time::Instant::from_std(
                self.next_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => self.fire_timers(Instant::now()),
                Some(_) = receive_batch(self.sockets.first(), &mut first) => self.receive_all(&first),
                Some(_) = receive_batch(self.sockets.get(1), &mut second) => self.receive_all(&second),
                Some(event) = events.next() => self.handle_event(event).await,
                Some(report) = reports.recv() => self.handle_resource_report(report),
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
                Ok((mut stream, _)) = control.accept() => {
                    let mut json = serde_json::to_vec(&self.status()).unwrap_or_default();
                    json.push(b'\n');
                    tokio::spawn(async move {
                        let _ = stream.write_all(&json).await;
                    });
                }
            }
            self.perform_actions().await;
        }
        info!("shutting down: priority 0 and releasing the addresses");
        let now = Instant::now();
        for group in &mut self.groups {
            group.election.shutdown(now);
        }
        self.touched = (0..self.groups.len()).collect();
        self.perform_actions().await;
        // Let the stop commands finish (each has its own time-out).
        for handle in std::mem::take(&mut self.stopping) {
            let _ = handle.await;
        }
        Ok(())
    }

    fn count_drop(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    fn receive_all(&mut self, batch: &Batch) {
        for (index, received) in &batch.received {
            let datagram = &batch.buffers[*index][..received.len];
            if let Err(error) = self.receive(datagram, *received) {
                debug!("dropped a VRRP packet: {error}");
                self.count_drop(error.counter_name());
            }
        }
    }

    /// Checks one datagram and hands the advert to its group.
    fn receive(
        &mut self,
        datagram: &[u8],
        received: vrrp_socket::Received,
    ) -> Result<(), WireError> {
        let (ends, message) = match received.v6 {
            None => {
                let (header, message) = ipv4::split_vrrp(datagram)?;
                (
                    IpEnds {
                        src: header.src.into(),
                        dst: header.dst.into(),
                    },
                    message,
                )
            }
            Some((src, dst, hop_limit)) => {
                if hop_limit != 255 {
                    return Err(WireError::BadTtl(hop_limit));
                }
                (
                    IpEnds {
                        src: src.into(),
                        dst: dst.into(),
                    },
                    datagram,
                )
            }
        };
        let family = Family::of(&ends.src);
        let (repr, _form) = Repr::parse(&Packet::new_unchecked(message), ends)?;
        self.adverts_received += 1;
        let Some(&slot) = self.by_vrid.get(&(family, repr.vrid)) else {
            self.count_drop("unknown_vrid");
            return Ok(());
        };
        let group = &self.config.groups[self.groups[slot].index];
        if repr.version != group.version {
            self.count_drop("version_mismatch");
            return Ok(());
        }
        let listed: Vec<IpAddr> = group
            .addresses
            .iter()
            .map(|a| a.address)
            .filter(|a| Family::of(a) == family)
            .collect();
        if repr.addresses.len() != listed.len()
            || !repr.addresses.iter().all(|a| listed.contains(a))
        {
            // RFC 9568 leaves this to the receiver: log and count, and go on.
            *self.dropped.entry("address_list_mismatch").or_default() += 1;
            debug!(group = %group.name, "advert from {} lists other addresses: {:?}", ends.src, repr.addresses);
        }
        let advert = Advert {
            src: ends.src,
            priority: repr.priority,
            interval: Duration::from_millis(u64::from(repr.interval_cs) * 10),
        };
        self.groups[slot]
            .election
            .handle_advert(Instant::now(), family, &advert);
        self.touched.push(slot);
        Ok(())
    }

    async fn handle_event(&mut self, event: Event) {
        match event {
            Event::Link { index, up } if index == self.link.index && up != self.link.up => {
                self.link.up = up;
                info!(interface = %self.config.nodes[self.node].interface, "link {}", if up { "up" } else { "down" });
                let now = Instant::now();
                for group in &mut self.groups {
                    group.election.set_link(now, up);
                }
                self.touched = (0..self.groups.len()).collect();
            }
            Event::AddressRemoved { index, address } if index == self.link.index => {
                for slot in 0..self.groups.len() {
                    let runtime = &self.groups[slot];
                    let group = &self.config.groups[runtime.index];
                    let family = Family::of(&address);
                    let ours = group
                        .addresses
                        .iter()
                        .find(|a| a.address == address)
                        .copied();
                    let master = runtime
                        .election
                        .instance(family)
                        .is_some_and(|i| i.state() == State::Master);
                    if let Some(virtual_address) = ours
                        && master
                        && runtime.claimed.contains(&family)
                    {
                        warn!(group = %group.name, %address, "virtual address removed by someone else while master: putting it back");
                        if let Err(e) =
                            netlink::add_address(&self.netlink, self.link.index, virtual_address)
                                .await
                        {
                            warn!(group = %group.name, %address, "cannot put the address back: {e}");
                        }
                        self.announce(address);
                    }
                }
            }
            _ => {}
        }
    }

    fn announce(&self, address: IpAddr) {
        if let Err(e) = self.announcer.announce(address, self.link_local) {
            warn!(%address, "announcement failed: {e}");
        }
    }

    /// The soonest live timer, dropping stale heap entries on the way.
    fn next_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if self.groups[slot].election.poll_timeout() == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Feeds every group whose timer is due.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let group = &mut self.groups[slot].election;
            if group.poll_timeout() == Some(at) {
                group.handle_timeout(now);
                self.touched.push(slot);
            }
        }
    }

    /// Carries out what the touched groups asked for, in order, and files their next timers.
    async fn perform_actions(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &slot in &touched {
            while let Some((family, action)) = self.groups[slot].election.poll_action() {
                self.perform(slot, family, action).await;
            }
            if let Some(generation) = self.groups[slot].start_pending.take() {
                self.start_resources(slot, generation);
            }
            if let Some(at) = self.groups[slot].election.poll_timeout() {
                self.timers.push(Reverse((at, slot)));
            }
        }
        self.refresh_owners(&touched);
        touched.clear();
        self.touched = touched;
    }

    /// Serves the zone on the node's address and on every virtual address of its groups
    /// (bound ahead of time: a virtual address answers while this node holds it).
    fn start_dns(&mut self) -> Result<(), DaemonError> {
        if !self.config.dns.enabled {
            return Ok(());
        }
        let mut addresses = vec![self.config.nodes[self.node].address];
        for runtime in &self.groups {
            for address in &self.config.groups[runtime.index].addresses {
                if !addresses.contains(&address.address) {
                    addresses.push(address.address);
                }
            }
        }
        let zone = dns::zone::build(
            &self.config,
            Some(self.node),
            &self.owners,
            self.zone_serial,
        );
        let server = Arc::new(dns::server::Server::new(&self.config.dns, zone));
        dns::server::spawn(server.clone(), &addresses, self.config.dns.port)
            .map_err(io_error(format!("DNS on port {}", self.config.dns.port)))?;
        self.dns = Some(server);
        peers::spawn(&self.config, self.node, self.peers.clone());
        Ok(())
    }

    fn resource_context(&self, slot: usize) -> resources::Context {
        let group = &self.config.groups[self.groups[slot].index];
        resources::Context {
            group: group.name.clone(),
            node: self.config.nodes[self.node].name.clone(),
            addresses: group
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The addresses are up: start the group's resources (checked while master).
    fn start_resources(&mut self, slot: usize, generation: u64) {
        let group = &self.config.groups[self.groups[slot].index];
        if group.resources.is_empty()
            || self.groups[slot].mastership.load(Ordering::SeqCst) != generation
        {
            return;
        }
        let runtime = &self.groups[slot];
        resources::start(
            slot,
            generation,
            runtime.mastership.clone(),
            group.resources.clone(),
            runtime.resource_lock.clone(),
            self.resource_context(slot),
            self.resource_reports.0.clone(),
        );
        self.groups[slot].resource_state = "starting".into();
    }

    /// Stepped down: stop the group's resources, in reverse order.
    fn stop_resources(&mut self, slot: usize) {
        let group = &self.config.groups[self.groups[slot].index];
        if group.resources.is_empty() {
            return;
        }
        let handle = resources::stop(
            group.resources.clone(),
            self.groups[slot].resource_lock.clone(),
            self.resource_context(slot),
        );
        self.stopping.retain(|h| !h.is_finished());
        self.stopping.push(handle);
        // A failure stays visible until the next start.
        let state = &mut self.groups[slot].resource_state;
        if !state.starts_with("failed") {
            *state = "stopped".into();
        }
    }

    /// A resource task reported: a failure while still master gives the group up.
    fn handle_resource_report(&mut self, report: resources::Report) {
        let runtime = &mut self.groups[report.slot];
        if runtime.mastership.load(Ordering::SeqCst) != report.generation {
            return;
        }
        let name = self.config.groups[runtime.index].name.clone();
        match report.outcome {
            resources::Outcome::Started => runtime.resource_state = "started".into(),
            resources::Outcome::StartFailed(why) | resources::Outcome::CheckFailed(why) => {
                tracing::error!(group = %name, "resource failed, giving the group up: {why}");
                runtime.resource_state = format!("failed: {why}");
                runtime.election.give_up(Instant::now());
                self.touched.push(report.slot);
            }
        }
    }

    /// Registers the group's names in the site's DNS, retrying with backoff while this
    /// mastership lasts.
    fn register(&self, slot: usize, generation: u64) {
        let (Some(key), Some(update)) = (self.registration.clone(), self.config.dns.update.clone())
        else {
            return;
        };
        let group = &self.config.groups[self.groups[slot].index];
        let cluster_zone = &self.config.cluster.zone;
        let names: Vec<String> = group
            .names
            .iter()
            .filter_map(|fqdn| dns::update::site_name(fqdn, cluster_zone, &update.zone))
            .collect();
        let addresses: Vec<IpAddr> = group.addresses.iter().map(|a| a.address).collect();
        let mastership = self.groups[slot].mastership.clone();
        let group_name = group.name.clone();
        tokio::spawn(async move {
            let Ok(zone) = hickory_proto::rr::Name::from_ascii(&update.zone) else {
                return;
            };
            let mut backoff = Duration::from_secs(1);
            let mut pending = names;
            while mastership.load(Ordering::SeqCst) == generation {
                let mut failed = Vec::new();
                for name in pending {
                    let Ok(fqdn) = hickory_proto::rr::Name::from_ascii(&name) else {
                        continue;
                    };
                    let message =
                        dns::update::build(&zone, &fqdn, &addresses, update.ttl.as_secs() as u32);
                    match dns::update::send(update.server, &key, message).await {
                        Ok(()) => {
                            info!(group = %group_name, %name, server = %update.server, "registered in the site's DNS")
                        }
                        Err(e) => {
                            warn!(group = %group_name, %name, server = %update.server, "registration failed, retrying in {backoff:?}: {e}");
                            failed.push(name);
                        }
                    }
                }
                if failed.is_empty() {
                    return;
                }
                pending = failed;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// Who owns the group in `slot`, as this node sees it.
    fn owner_of(&self, slot: usize) -> Option<String> {
        let instance = self.groups[slot].election.instances().first()?;
        match instance.state() {
            State::Master => Some(self.config.nodes[self.node].name.clone()),
            State::Backup => instance.master_peer().map(str::to_string),
            State::Initialize | State::Fault => None,
        }
    }

    /// Republishes the zone when an owner changed: the owner records and the serial move.
    fn refresh_owners(&mut self, touched: &[usize]) {
        let mut changed = false;
        for &slot in touched {
            let owner = self.owner_of(slot);
            let index = self.groups[slot].index;
            if self.owners[index] != owner {
                self.owners[index] = owner;
                changed = true;
            }
        }
        if changed && let Some(server) = &self.dns {
            self.zone_serial = (self.zone_serial.wrapping_add(1)).max(unix_seconds());
            server.set_zone(dns::zone::build(
                &self.config,
                Some(self.node),
                &self.owners,
                self.zone_serial,
            ));
        }
    }

    fn addresses_of(&self, slot: usize, family: Family) -> Vec<VirtualAddress> {
        self.config.groups[self.groups[slot].index]
            .addresses
            .iter()
            .filter(|a| Family::of(&a.address) == family)
            .copied()
            .collect()
    }

    /// The group's addresses this node adds and removes: all but its own real address (the
    /// address owner, priority 255, has it on its interface for good).
    fn claimable(&self, slot: usize, family: Family) -> Vec<VirtualAddress> {
        let own = self.config.nodes[self.node].address;
        self.addresses_of(slot, family)
            .into_iter()
            .filter(|a| a.address != own)
            .collect()
    }

    async fn perform(&mut self, slot: usize, family: Family, action: Action) {
        let group = &self.config.groups[self.groups[slot].index];
        match action {
            Action::SendAdvert { priority } => self.send_advert(slot, family, priority),
            Action::Claim { accept: _ } => {
                let mut failed = false;
                for address in self.claimable(slot, family) {
                    if let Err(e) =
                        netlink::add_address(&self.netlink, self.link.index, address).await
                    {
                        tracing::error!(group = %group.name, %address, "cannot add the virtual address, giving the group up: {e}");
                        failed = true;
                    }
                }
                let claimed = &mut self.groups[slot].claimed;
                if !claimed.contains(&family) {
                    claimed.push(family);
                }
                if failed {
                    // Queues priority 0 and a release behind this claim; drained by the caller.
                    self.groups[slot]
                        .election
                        .claim_failed(Instant::now(), family);
                }
            }
            Action::Announce => {
                for address in self.addresses_of(slot, family) {
                    self.announce(address.address);
                }
            }
            Action::Release => {
                for address in self.claimable(slot, family) {
                    if let Err(e) =
                        netlink::del_address(&self.netlink, self.link.index, address).await
                    {
                        warn!(group = %group.name, %address, "cannot remove the virtual address: {e}");
                    }
                }
                self.groups[slot].claimed.retain(|f| *f != family);
            }
            Action::Transition(t) => {
                info!(group = %group.name, family = %family, "{} -> {}: {}", t.from, t.to, t.reason);
                let leads = self.groups[slot]
                    .election
                    .instances()
                    .first()
                    .map(|i| i.config().family)
                    == Some(family);
                if leads && (t.to == State::Master || t.from == State::Master) {
                    let generation =
                        self.groups[slot].mastership.fetch_add(1, Ordering::SeqCst) + 1;
                    if t.to == State::Master {
                        self.register(slot, generation);
                        self.groups[slot].start_pending = Some(generation);
                    } else {
                        self.stop_resources(slot);
                    }
                }
                let record = TransitionRecord {
                    at_ms: self.started.elapsed().as_secs_f64() * 1000.0,
                    unix_us: SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64),
                    family: family.to_string(),
                    from: t.from.to_string(),
                    to: t.to.to_string(),
                    reason: t.reason.to_string(),
                };
                let transitions = &mut self.groups[slot].transitions;
                if transitions.len() == TRANSITIONS_KEPT {
                    transitions.pop_front();
                }
                transitions.push_back(record);
            }
        }
    }

    fn send_advert(&mut self, slot: usize, family: Family, priority: u8) {
        let group = &self.config.groups[self.groups[slot].index];
        let Some(socket) = self.sockets.iter().find(|s| s.family() == family) else {
            return;
        };
        let repr = Repr {
            version: group.version,
            vrid: group.vrid,
            priority,
            interval_cs: (group.advert_interval.as_millis() / 10) as u16,
            addresses: self
                .addresses_of(slot, family)
                .iter()
                .map(|a| a.address)
                .collect(),
            auth: V2Auth::default(),
        };
        let destinations: Vec<IpAddr> = if group.unicast {
            group
                .priorities
                .iter()
                .filter(|(n, _)| *n != self.node)
                .filter_map(|(n, _)| plan::source_address(&self.config.nodes[*n], family))
                .collect()
        } else {
            vec![vrrp_socket::multicast_group(family)]
        };
        let mut buffer = [0u8; 1024];
        for destination in destinations {
            let ends = IpEnds {
                src: socket.source(),
                dst: destination,
            };
            match repr.emit(&mut buffer, ends, self.config.cluster.ipv4_checksum) {
                Ok(len) => match socket.send(destination, &buffer[..len]) {
                    Ok(()) => self.adverts_sent += 1,
                    Err(e) => debug!(group = %group.name, "sending advert to {destination}: {e}"),
                },
                Err(e) => warn!(group = %group.name, "cannot build advert: {e}"),
            }
        }
    }

    fn status(&self) -> Status {
        let me = &self.config.nodes[self.node];
        Status {
            cluster: self.config.cluster.name.clone(),
            node: me.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interface: me.interface.clone(),
            link_up: self.link.up,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            groups: self
                .groups
                .iter()
                .map(|runtime| {
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
                                InstanceStatus {
                                    family: instance.config().family.to_string(),
                                    state: instance.state().to_string(),
                                    priority: instance.config().priority,
                                    master: instance.master_peer().map(str::to_string),
                                    master_adver_interval_ms: instance
                                        .master_adver_interval()
                                        .as_secs_f64()
                                        * 1000.0,
                                    master_down_interval_ms: instance
                                        .master_down_interval()
                                        .as_secs_f64()
                                        * 1000.0,
                                    holds_addresses: runtime
                                        .claimed
                                        .contains(&instance.config().family),
                                    adverts_received: counters.adverts_received,
                                    dropped_not_member: counters.dropped_not_member,
                                    interval_mismatch: counters.interval_mismatch,
                                    second_master_seen: counters.second_master_seen,
                                    became_master: counters.became_master,
                                }
                            })
                            .collect(),
                        transitions: runtime.transitions.iter().cloned().collect(),
                        resources: runtime.resource_state.clone(),
                    }
                })
                .collect(),
            dropped: self
                .dropped
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            adverts_sent: self.adverts_sent,
            adverts_received: self.adverts_received,
            dns: self.dns.as_ref().map(|d| d.snapshot()),
            peers: self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Reads the status from a running daemon's control socket.
pub async fn query_status(control: &std::path::Path) -> Result<Status, String> {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::UnixStream::connect(control)
        .await
        .map_err(|e| {
            format!(
                "cannot reach vipd at {}: {e} (is it running? --control)",
                control.display()
            )
        })?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .await
        .map_err(|e| format!("reading status: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("bad status from vipd: {e}"))
}
