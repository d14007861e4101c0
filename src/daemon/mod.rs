//! One node's daemon: the thin shell around the pure [`crate::node::Node`]. It reads raw
//! VRRP sockets, netlink events, signals, resource reports and control requests, hands them
//! to the node with the time, and carries out the effects the node hands back (send, add and
//! remove addresses, announce, run resources, register names, serve the zone). Every decision
//! is the node's.

pub mod peers;
pub mod resources;

pub use crate::node::status;

use crate::config::Config;
use crate::dns;
use crate::net::announce::Announcer;
use crate::net::netlink::{self, Event, Link};
use crate::net::vrrp_socket::{self, VrrpSocket};
use crate::node::{Effect, GroupIndex, Node, ResourceReport, Setup};
use crate::plan;
use crate::wire::Family;
use crate::wire::ip::Datagram;
use futures::StreamExt;
use status::Status;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, info, warn};

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

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// What the shell keeps per group for the tasks it runs: the node owns the truth.
#[derive(Default)]
struct GroupTasks {
    /// The node's mastership generation, mirrored for tasks that must end with it
    /// (registration retries, resource checks).
    mastership: Arc<AtomicU64>,
    /// Start and stop commands of one group never run at the same time.
    resource_lock: Arc<tokio::sync::Mutex<()>>,
}

struct Daemon {
    node: Node,
    netlink: rtnetlink::Handle,
    link: Link,
    link_local: Option<Ipv6Addr>,
    sockets: Vec<VrrpSocket>,
    announcer: Announcer,
    tasks: HashMap<GroupIndex, GroupTasks>,
    /// The DNS server's shared state, when the zone is served.
    dns: Option<Arc<dns::server::Server>>,
    /// Registration in the site's DNS, when configured: the key read at start.
    registration: Option<Arc<dns::update::Key>>,
    /// The other nodes' versions, asked over DNS.
    peers: peers::Shared,
    /// Resource tasks report here.
    resource_reports: (
        tokio::sync::mpsc::UnboundedSender<ResourceReport>,
        Option<tokio::sync::mpsc::UnboundedReceiver<ResourceReport>>,
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

    fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        self.received.iter().map(|(index, received)| {
            let bytes = &self.buffers[*index][..received.len];
            match received.v6 {
                None => Datagram::V4(bytes),
                Some((src, dst, hop_limit)) => Datagram::V6 {
                    src,
                    dst,
                    hop_limit,
                    message: bytes,
                },
            }
        })
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
    async fn start(config: Config, me: usize) -> Result<Daemon, DaemonError> {
        let interface = config.nodes[me].interface.clone();
        // Listen for link and address changes before reading the link's state, so that no
        // change between the two is lost.
        let events = netlink::watch()?;
        let handle = netlink::connect()?;
        let link = netlink::link_by_name(&handle, &interface).await?;
        let on_interface: Vec<IpAddr> = netlink::addresses(&handle, link.index)
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .collect();

        for (group, address) in plan::stale_addresses(&config, me, &on_interface) {
            let group = &config.groups[group].name;
            info!(%group, %address, "removing a stale virtual address left by an earlier run");
            netlink::del_address(&handle, link.index, address).await?;
        }
        if plan::backs_up_an_owner(&config, me) {
            let path = format!("/proc/sys/net/ipv4/conf/{interface}/accept_local");
            match std::fs::write(&path, "1") {
                Ok(()) => info!(
                    "{path} = 1: the address owner's adverts must reach us while we hold its address"
                ),
                Err(e) => {
                    warn!("cannot set {path}: {e}; the address owner's return may go unheard")
                }
            }
        }
        let link_local = on_interface.iter().find_map(|a| match a {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        });
        let setup = Setup {
            interface_addresses: on_interface,
            link_up: link.up,
        };
        let node = Node::new(config, me, &setup, Instant::now(), SystemTime::now());

        let mut sockets = Vec::new();
        for family in node.families() {
            let source = node
                .source(family)
                .ok_or_else(|| DaemonError::NoSource(interface.clone(), family))?;
            let socket = VrrpSocket::open(family, &interface, link.index, source)
                .map_err(io_error(format!("VRRP {family} socket on {interface}")))?;
            sockets.push(socket);
        }
        let announcer = Announcer::new(link.index, link.mac)
            .map_err(io_error("packet socket for announcements"))?;
        let registration = match &node.config().dns.update {
            Some(update) => Some(Arc::new(
                dns::update::read_key(&update.key_name, &update.key_file).map_err(|e| {
                    DaemonError::Io {
                        what: "[dns.update]".into(),
                        source: std::io::Error::other(e.to_string()),
                    }
                })?,
            )),
            None => None,
        };
        let mut daemon = Daemon {
            node,
            netlink: handle,
            link,
            link_local,
            sockets,
            announcer,
            tasks: HashMap::new(),
            dns: None,
            registration,
            events: Some(events),
            peers: peers::Shared::default(),
            resource_reports: {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                (sender, Some(receiver))
            },
            stopping: Vec::new(),
        };
        daemon.start_dns()?;
        daemon.perform_effects().await;
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
                self.node
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => self.node.handle_timeout(Instant::now()),
                Some(_) = receive_batch(self.sockets.first(), &mut first) => self.receive(&first),
                Some(_) = receive_batch(self.sockets.get(1), &mut second) => self.receive(&second),
                Some(event) = events.next() => self.handle_event(event),
                Some(report) = reports.recv() => self.node.handle_resources(Instant::now(), report),
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
            self.perform_effects().await;
        }
        self.node.shutdown(Instant::now());
        self.perform_effects().await;
        // Let the stop commands finish (each has its own time-out).
        for handle in std::mem::take(&mut self.stopping) {
            let _ = handle.await;
        }
        Ok(())
    }

    fn receive(&mut self, batch: &Batch) {
        let now = Instant::now();
        for datagram in batch.datagrams() {
            self.node.handle_datagram(now, datagram);
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Link { index, up } if index == self.link.index => {
                self.link.up = up;
                self.node.handle_link(Instant::now(), up);
            }
            Event::AddressRemoved { index, address } if index == self.link.index => {
                self.node.handle_address_removed(Instant::now(), address);
            }
            _ => {}
        }
    }

    /// Carries out what the node asked for, in order, until it asks for nothing more.
    /// Resources start once the whole queue is done (the addresses are up then), and only
    /// if their mastership still lasts (a failed claim may have ended it).
    async fn perform_effects(&mut self) {
        let mut starts = Vec::new();
        while let Some(effect) = self.node.poll_effect() {
            match effect {
                Effect::StartResources { group, generation } => starts.push((group, generation)),
                effect => self.perform(effect).await,
            }
        }
        for (group, generation) in starts {
            let tasks = self.tasks.entry(group).or_default();
            if tasks.mastership.load(Ordering::SeqCst) == generation {
                self.start_resources(group, generation);
            }
        }
    }

    async fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::Send {
                group,
                family,
                datagrams,
                ..
            } => {
                let Some(socket) = self.sockets.iter().find(|s| s.family() == family) else {
                    return;
                };
                for (destination, message) in datagrams {
                    if let Err(e) = socket.send(destination, &message) {
                        let group = &self.node.config().groups[group].name;
                        debug!(%group, "sending advert to {destination}: {e}");
                    }
                }
            }
            Effect::Claim {
                group,
                family,
                addresses,
                ..
            } => {
                let mut failed = false;
                for address in addresses {
                    if let Err(e) =
                        netlink::add_address(&self.netlink, self.link.index, address).await
                    {
                        let group = &self.node.config().groups[group].name;
                        tracing::error!(%group, %address, "cannot add the virtual address, giving the group up: {e}");
                        failed = true;
                    }
                }
                if failed {
                    self.node.handle_claim_failed(Instant::now(), group, family);
                }
            }
            Effect::Restore { group, address } => {
                if let Err(e) = netlink::add_address(&self.netlink, self.link.index, address).await
                {
                    let group = &self.node.config().groups[group].name;
                    warn!(%group, %address, "cannot put the address back: {e}");
                }
            }
            Effect::Release {
                group, addresses, ..
            } => {
                for address in addresses {
                    if let Err(e) =
                        netlink::del_address(&self.netlink, self.link.index, address).await
                    {
                        let group = &self.node.config().groups[group].name;
                        warn!(%group, %address, "cannot remove the virtual address: {e}");
                    }
                }
            }
            Effect::Announce { addresses, .. } => {
                for address in addresses {
                    if let Err(e) = self.announcer.announce(address, self.link_local) {
                        warn!(%address, "announcement failed: {e}");
                    }
                }
            }
            Effect::Transition { .. } => {}
            Effect::Mastership {
                group,
                generation,
                began,
            } => {
                let tasks = self.tasks.entry(group).or_default();
                tasks.mastership.store(generation, Ordering::SeqCst);
                if began {
                    self.register(group, generation);
                }
            }
            Effect::StartResources { group, generation } => self.start_resources(group, generation),
            Effect::StopResources { group } => self.stop_resources(group),
            Effect::PublishZone(zone) => {
                if let Some(server) = &self.dns {
                    server.set_zone(*zone);
                }
            }
        }
    }

    fn resource_context(&self, group: GroupIndex) -> resources::Context {
        let config = self.node.config();
        let group = &config.groups[group];
        resources::Context {
            group: group.name.clone(),
            node: config.nodes[self.node.me()].name.clone(),
            addresses: group
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The addresses are up: start the group's resources (checked while master).
    fn start_resources(&mut self, group: GroupIndex, generation: u64) {
        let context = self.resource_context(group);
        let tasks = self.tasks.entry(group).or_default();
        resources::start(
            group,
            generation,
            tasks.mastership.clone(),
            self.node.config().groups[group].resources.clone(),
            tasks.resource_lock.clone(),
            context,
            self.resource_reports.0.clone(),
        );
    }

    /// Stepped down: stop the group's resources, in reverse order.
    fn stop_resources(&mut self, group: GroupIndex) {
        let context = self.resource_context(group);
        let tasks = self.tasks.entry(group).or_default();
        let handle = resources::stop(
            self.node.config().groups[group].resources.clone(),
            tasks.resource_lock.clone(),
            context,
        );
        self.stopping.retain(|h| !h.is_finished());
        self.stopping.push(handle);
    }

    /// Registers the group's names in the site's DNS, retrying with backoff while this
    /// mastership lasts.
    fn register(&mut self, group: GroupIndex, generation: u64) {
        let config = self.node.config();
        let (Some(key), Some(update)) = (self.registration.clone(), config.dns.update.clone())
        else {
            return;
        };
        let cluster_zone = config.cluster.zone.clone();
        let group_config = &config.groups[group];
        let addresses: Vec<IpAddr> = group_config.addresses.iter().map(|a| a.address).collect();
        let mut pending = group_config.names.clone();
        let group_name = group_config.name.clone();
        let mastership = self.tasks.entry(group).or_default().mastership.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            while mastership.load(Ordering::SeqCst) == generation {
                let outcomes =
                    dns::update::update_names(&update, &key, &cluster_zone, &pending, &addresses)
                        .await;
                let mut failed = Vec::new();
                for (fqdn, name, outcome) in outcomes {
                    match outcome {
                        Ok(()) => {
                            info!(group = %group_name, %name, server = %update.server, "registered in the site's DNS")
                        }
                        Err(e) => {
                            warn!(group = %group_name, %name, server = %update.server, "registration failed, retrying in {backoff:?}: {e}");
                            failed.push(fqdn);
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

    /// Serves the zone on the node's address and on every virtual address of its groups
    /// (bound ahead of time: a virtual address answers while this node holds it).
    fn start_dns(&mut self) -> Result<(), DaemonError> {
        let config = self.node.config();
        if !config.dns.enabled {
            return Ok(());
        }
        let me = self.node.me();
        let mut addresses = vec![config.nodes[me].address];
        for group in config.groups.iter().filter(|g| g.priority_of(me).is_some()) {
            for address in &group.addresses {
                if !addresses.contains(&address.address) {
                    addresses.push(address.address);
                }
            }
        }
        let server = Arc::new(dns::server::Server::new(&config.dns, self.node.zone()));
        dns::server::spawn(server.clone(), &addresses, config.dns.port)
            .map_err(io_error(format!("DNS on port {}", config.dns.port)))?;
        self.dns = Some(server);
        peers::spawn(config, me, self.peers.clone());
        Ok(())
    }

    fn status(&self) -> Status {
        let mut status = self.node.status(Instant::now());
        status.dns = self.dns.as_ref().map(|d| d.snapshot());
        status.peers = self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        status
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
