//! One node's daemon: the thin shell around the pure [`crate::node::Node`]. It reads raw
//! VRRP sockets, netlink events, signals, resource reports and control requests, hands them
//! to the node with the time, and carries out the effects the node hands back (send, add and
//! remove addresses, announce, run resources, register names, serve the zone). Every decision
//! is the node's.

pub mod control;
pub mod membership;
pub mod peers;
pub mod resources;
pub mod track;

pub use crate::node::status;

use crate::config::Config;
use crate::dns;
use crate::net::announce::Announcer;
use crate::net::netlink::{self, Event, Link};
use crate::net::vrrp_socket::{self, VrrpSocket};
use crate::node::{Effect, GroupName, Node, ResourceReport, Setup};
use crate::plan;
use crate::wire::Family;
use crate::wire::ip::Datagram;
use control::{Access, Command, Response};
use futures::StreamExt;
use status::Status;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

pub struct Options {
    pub config: PathBuf,
    pub node: String,
    pub control: PathBuf,
    /// Where state that survives restarts lives (the drain mark).
    pub state_dir: PathBuf,
    /// Members of this group (gid) may use the control socket, beside root.
    pub control_group: Option<u32>,
    /// SCHED_RR priority of the event loop (0: normal scheduling).
    pub rt_priority: u8,
}

/// Puts the calling thread (the event loop) under SCHED_RR at `priority`, with
/// SCHED_RESET_ON_FORK so that threads and processes it starts later (resource commands,
/// fences, checks) get normal scheduling. A refusal (no CAP_SYS_NICE) is logged, not fatal.
fn set_realtime(priority: u8) {
    if priority == 0 {
        return;
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: sched_setscheduler reads `param` only; pid 0 is the calling thread.
    let result =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if result == 0 {
        info!(priority, "event loop runs under SCHED_RR");
    } else {
        warn!(
            priority,
            "cannot run the event loop under SCHED_RR ({}): CPU-bound neighbours may delay adverts",
            std::io::Error::last_os_error()
        );
    }
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
    #[error("another vipd already runs for this node (control socket {0}): stop it first")]
    AlreadyRunning(String),
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
    config_path: PathBuf,
    /// The digest of the cluster file in force (published to the peers).
    digest: String,
    /// The file `<state_dir>/<node>.drained` marks a drained node across restarts.
    drain_mark: PathBuf,
    access: Access,
    /// Handovers asked over the control socket, answered when the group moved or the wait
    /// is over.
    handovers: Vec<PendingHandover>,
    netlink: rtnetlink::Handle,
    link: Link,
    link_local: Option<Ipv6Addr>,
    sockets: Vec<VrrpSocket>,
    announcer: Announcer,
    /// Other hosts' ARP claims on addresses (defence of held addresses).
    claims: Option<crate::net::claims::ClaimSocket>,
    /// Other hosts' neighbour advertisements (defence of held IPv6 addresses).
    na_claims: Option<crate::net::claims::NaSocket>,
    /// Pokes neighbours the node wants resolved (IPv6 member identity).
    resolver: Option<crate::net::resolve::Resolver>,
    tasks: HashMap<GroupName, GroupTasks>,
    /// The DNS server's shared state, when the zone is served.
    dns: Option<Arc<dns::server::Server>>,
    /// Registration in the site's DNS, when configured: the key read at start.
    registration: Option<Arc<dns::update::Key>>,
    /// The other nodes' versions, asked over DNS.
    peers: peers::Shared,
    peers_task: Option<tokio::task::JoinHandle<()>>,
    /// Addresses the DNS server listens on.
    dns_addresses: Vec<IpAddr>,
    /// Resource tasks report here.
    resource_reports: (
        tokio::sync::mpsc::UnboundedSender<ResourceReport>,
        Option<tokio::sync::mpsc::UnboundedReceiver<ResourceReport>>,
    ),
    /// Stop commands under way: shutdown waits for them.
    stopping: Vec<tokio::task::JoinHandle<()>>,
    /// `vmac = true` groups: the macvlan each (group, family) keeps its addresses on and
    /// announces from. Empty without `vmac`: everything then happens on `link`.
    vmacs: HashMap<(String, Family), VmacLink>,
    /// Link and address changes, subscribed before the link was first read.
    events: Option<futures::stream::BoxStream<'static, Event>>,
    /// Health tracking: the track scripts running, the tracked interfaces' indexes.
    track: track::Runner,
    /// The membership channel's socket, with `[quorum]`.
    heartbeats: Option<tokio::net::UdpSocket>,
    /// The node's other LAN segments (index: segment - 1), and what their sockets read.
    extra_lans: Vec<ExtraLan>,
    lan_datagrams: (
        tokio::sync::mpsc::Sender<LanDatagram>,
        Option<tokio::sync::mpsc::Receiver<LanDatagram>>,
    ),
    /// Fence commands report here: (node fenced, outcome).
    fence_reports: (
        tokio::sync::mpsc::UnboundedSender<FenceReport>,
        Option<tokio::sync::mpsc::UnboundedReceiver<FenceReport>>,
    ),
}

/// A fence command's end: the node fenced, and the outcome.
type FenceReport = (String, Result<(), String>);

/// One of the node's other LAN segments (`[[node.lan]]`): its link, where announcements go
/// out, its IPv6 link-local address, and its VRRP sockets (read by tasks of their own).
struct ExtraLan {
    interface: String,
    link: Link,
    announcer: Announcer,
    link_local: Option<Ipv6Addr>,
    sockets: Vec<Arc<VrrpSocket>>,
}

/// A datagram read off another LAN segment's socket: (segment, bytes, IPv6 metadata).
type LanDatagram = (usize, Vec<u8>, Option<(Ipv6Addr, Ipv6Addr, u8)>);

/// Reads a segment's VRRP socket in batches and hands the datagrams to the loop.
fn read_lan_socket(
    lan: usize,
    socket: Arc<VrrpSocket>,
    sender: tokio::sync::mpsc::Sender<LanDatagram>,
) {
    tokio::spawn(async move {
        let mut batch = Batch::new();
        loop {
            if let Err(e) = socket
                .recv_batch(&mut batch.buffers, &mut batch.received)
                .await
            {
                warn!("receiving VRRP {} on segment {lan}: {e}", socket.family());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            for (index, received) in &batch.received {
                let bytes = batch.buffers[*index][..received.len].to_vec();
                if sender.send((lan, bytes, received.v6)).await.is_err() {
                    return;
                }
            }
        }
    });
}

/// A group's virtual-MAC link (`crate::net::vmac`).
struct VmacLink {
    index: u32,
    announcer: Announcer,
}

struct PendingHandover {
    group: String,
    target: String,
    deadline: Instant,
    client: UnixStream,
}

/// How long a handover may take: the old owner's wait for a taker, and some.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

/// A digest of the cluster file's bytes: the same on every node that runs the same file.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path)?;
    let hash = sha2::Sha256::digest(&bytes);
    Ok(hash[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the daemon until SIGTERM, SIGINT or SIGQUIT.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    let config = Config::load(&options.config)?;
    let node = config
        .node_index(&options.node)
        .ok_or_else(|| DaemonError::UnknownNode(options.node.clone()))?;
    // One daemon per node and host: the lock is held for the life of the process.
    let _lock = lock_control(&options.control)?;
    let listener = bind_control(&options.control, options.control_group)?;
    let drain_mark = options.state_dir.join(format!("{}.drained", options.node));
    let metrics_listen = config.metrics.listen;
    let mut daemon = Daemon::start(config, node, &options, drain_mark).await?;
    // HTTP metrics and health, when configured: the server asks this loop for the status.
    let (status_source, status_requests) = crate::metrics_http::channel();
    if let Some(listen) = metrics_listen {
        crate::metrics_http::spawn(listen, status_source)
            .await
            .map_err(io_error("metrics listener"))?;
        info!(%listen, "metrics at http://{listen}/metrics, health at /healthz");
    }
    info!(node = %options.node, control = %options.control.display(), "vipd {} running", env!("CARGO_PKG_VERSION"));
    notify(&[sd_notify::NotifyState::Ready]);
    set_realtime(options.rt_priority);
    let result = daemon.run(listener, status_requests).await;
    let _ = std::fs::remove_file(&options.control);
    result
}

/// Tells systemd (Type=notify) where the daemon stands; nothing when not under systemd.
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify: {e}");
    }
}

/// Takes `<control>.lock` for good, or says that another daemon holds it.
fn lock_control(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    }
    let lock_path = path.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(format!("lock file {}", lock_path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::AlreadyRunning(path.display().to_string()))
}

fn bind_control(path: &Path, group: Option<u32>) -> Result<UnixListener, DaemonError> {
    // A socket file left by a killed daemon would make bind fail; the lock says none runs.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(io_error(format!("control socket {}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    if let Some(gid) = group {
        let _ = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)));
    }
    Ok(listener)
}

/// Datagrams read per socket per turn of the loop.
const RECEIVE_BATCH: usize = 32;
/// Datagrams read per socket before a timer is handled: more than a 4 MiB receive buffer
/// holds of the smallest adverts, so in practice the whole queue.
const QUEUED_AT_MOST: usize = 16384;
/// Room for the largest advert (IPv6, 255 addresses) with its IPv4 header.
const RECEIVE_BUFFER: usize = 4200;

/// A socket's receive buffers and what the last batch read into them.
/// A VRRP socket: (LAN segment, family).
type SocketKey = (usize, Family);

/// Adverts for one socket: (destination, message).
type Outgoing<'a> = Vec<(IpAddr, &'a [u8])>;

/// How long after start-up or a reload the heap is trimmed.
const TRIM_AFTER: Duration = Duration::from_secs(10);

/// Hands the heap's free pages back to the system (glibc keeps them otherwise).
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and releases the allocator's free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

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

/// Waits on `future` when there is one, forever when not (a socket this node does not need).
async fn when_open<F: std::future::Future>(future: Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    async fn start(
        config: Config,
        me: usize,
        options: &Options,
        drain_mark: PathBuf,
    ) -> Result<Daemon, DaemonError> {
        let interface = config.nodes[me].interface.clone();
        let config_node_name = config.nodes[me].name.clone();
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

        for address in plan::stale_addresses(&config, me, &on_interface) {
            info!(%address, "removing a stale virtual address left by an earlier run");
            netlink::del_address(&handle, link.index, address).await?;
        }
        accept_local_if_needed(&config, me);
        crate::net::sysctl::promote_secondaries(&interface);
        let vmacs = vmac_links(&config, me, &handle, &interface, link.index).await?;
        let link_local = on_interface.iter().find_map(|a| match a {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        });
        let (quorum, heartbeats) = match &config.quorum {
            Some(quorum) => {
                let secret =
                    membership::read_key(&quorum.key_file).map_err(|e| DaemonError::Io {
                        what: "[quorum]".into(),
                        source: std::io::Error::other(e),
                    })?;
                let address = config.nodes[me].address;
                let socket = membership::open_socket(address, quorum.port).map_err(io_error(
                    format!("heartbeat socket on {address} port {}", quorum.port),
                ))?;
                let setup = crate::node::QuorumSetup {
                    secret,
                    boot: membership::boot_id(),
                };
                (Some(setup), Some(socket))
            }
            None => (None, None),
        };
        let mut lan_links = Vec::new();
        let mut lan_setup = Vec::new();
        for lan in config.nodes[me].lans.iter().skip(1) {
            let lan_link = netlink::link_by_name(&handle, &lan.interface).await?;
            let found: Vec<IpAddr> = netlink::addresses(&handle, lan_link.index)
                .await?
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            for address in plan::stale_addresses(&config, me, &found) {
                info!(%address, interface = %lan.interface, "removing a stale virtual address left by an earlier run");
                netlink::del_address(&handle, lan_link.index, address).await?;
            }
            crate::net::sysctl::promote_secondaries(&lan.interface);
            let link_local = found.iter().find_map(|a| match a {
                IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
                _ => None,
            });
            lan_setup.push((found, lan_link.up));
            lan_links.push((lan.interface.clone(), lan_link, link_local));
        }
        let setup = Setup {
            interface_addresses: on_interface,
            link_up: link.up,
            lans: lan_setup,
            tracked_links: track::links(&handle, &config, me).await,
            quorum,
        };
        let drained = drain_mark.exists();
        if drained {
            info!(mark = %drain_mark.display(), "drained (vipd undrain to take part again)");
        }
        let digest = file_digest(&options.config)
            .map_err(io_error(format!("reading {}", options.config.display())))?;
        let mut node = Node::with_drain(
            config,
            me,
            &setup,
            Instant::now(),
            SystemTime::now(),
            drained,
        );
        node.set_facts(Instant::now(), facts(&digest, drained));
        match netlink::neighbours(&handle, link.index).await {
            Ok(entries) => {
                for (address, mac) in entries {
                    node.handle_neighbour(Instant::now(), address, Some(mac));
                }
            }
            Err(e) => warn!("reading the neighbour table: {e}"),
        }
        let claims = crate::net::claims::ClaimSocket::open(link.index, link.mac)
            .map_err(|e| warn!("packet socket for ARP (defending held addresses): {e}"))
            .ok();
        let na_claims = crate::net::claims::NaSocket::open(&interface, link.mac)
            .map_err(|e| warn!("ICMPv6 socket (defending held IPv6 addresses): {e}"))
            .ok();
        let resolver = crate::net::resolve::Resolver::new(&interface, link.index)
            .map_err(|e| warn!("sockets to resolve neighbours: {e}"))
            .ok();

        let mut sockets = Vec::new();
        for family in node
            .lans_and_families()
            .into_iter()
            .filter(|(l, _)| *l == 0)
            .map(|(_, f)| f)
        {
            let source = node
                .source(family)
                .ok_or_else(|| DaemonError::NoSource(interface.clone(), family))?;
            let socket = VrrpSocket::open(family, &interface, link.index, source)
                .map_err(io_error(format!("VRRP {family} socket on {interface}")))?;
            sockets.push(socket);
        }
        let announcer = Announcer::new(link.index, link.mac)
            .map_err(io_error("packet socket for announcements"))?;
        let (lan_sender, lan_receiver) = tokio::sync::mpsc::channel(1024);
        let mut extra_lans = Vec::new();
        for (number, (lan_interface, lan_link, link_local)) in lan_links.into_iter().enumerate() {
            let lan = number + 1;
            let mut lan_sockets = Vec::new();
            for (_, family) in node
                .lans_and_families()
                .into_iter()
                .filter(|(l, _)| *l == lan)
            {
                let source = node
                    .source_on(lan, family)
                    .ok_or_else(|| DaemonError::NoSource(lan_interface.clone(), family))?;
                let socket = VrrpSocket::open(family, &lan_interface, lan_link.index, source)
                    .map_err(io_error(format!("VRRP {family} socket on {lan_interface}")))?;
                let socket = Arc::new(socket);
                read_lan_socket(lan, socket.clone(), lan_sender.clone());
                lan_sockets.push(socket);
            }
            extra_lans.push(ExtraLan {
                announcer: Announcer::new(lan_link.index, lan_link.mac).map_err(io_error(
                    format!("packet socket for announcements on {lan_interface}"),
                ))?,
                interface: lan_interface,
                link: lan_link,
                link_local,
                sockets: lan_sockets,
            });
        }
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
            config_path: options.config.clone(),
            digest: digest.clone(),
            drain_mark,
            access: Access {
                group: options.control_group,
            },
            handovers: Vec::new(),
            netlink: handle,
            link,
            link_local,
            sockets,
            announcer,
            resolver,
            claims,
            na_claims,
            tasks: HashMap::new(),
            dns: None,
            registration,
            events: Some(events),
            peers: peers::Shared::default(),
            peers_task: None,
            dns_addresses: Vec::new(),
            resource_reports: {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                (sender, Some(receiver))
            },
            stopping: Vec::new(),
            vmacs,
            track: track::Runner::new(&config_node_name),
            heartbeats,
            extra_lans,
            lan_datagrams: (lan_sender, Some(lan_receiver)),
            fence_reports: {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                (sender, Some(receiver))
            },
        };
        daemon.sync_tracking().await;
        daemon.start_dns()?;
        daemon.start_peers(digest);
        daemon.perform_effects().await;
        Ok(daemon)
    }

    async fn run(
        &mut self,
        control: UnixListener,
        mut status_requests: tokio::sync::mpsc::Receiver<crate::metrics_http::StatusRequest>,
    ) -> Result<(), DaemonError> {
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(io_error(format!("{name} handler")))
        };
        let mut sigterm = handler(SignalKind::terminate(), "SIGTERM")?;
        let mut sigint = handler(SignalKind::interrupt(), "SIGINT")?;
        let mut sigquit = handler(SignalKind::quit(), "SIGQUIT")?;
        let mut sighup = handler(SignalKind::hangup(), "SIGHUP")?;
        let mut sigusr1 = handler(SignalKind::user_defined1(), "SIGUSR1")?;
        let mut sigusr2 = handler(SignalKind::user_defined2(), "SIGUSR2")?;
        let mut events = self.events.take().expect("subscribed at start");
        let mut reports = self.resource_reports.1.take().expect("one run");
        let mut fence_reports = self.fence_reports.1.take().expect("one run");
        let mut lan_datagrams = self.lan_datagrams.1.take().expect("one run");
        let mut checks = self.track.receiver.take().expect("one run");
        let (mut first, mut second) = (Batch::new(), Batch::new());
        let mut heartbeat_buffer = vec![0u8; 65536];
        // systemd's watchdog, fed by this loop: a stuck loop gets the daemon restarted.
        let watchdog = sd_notify::watchdog_enabled().map(|period| period / 2);
        let mut feed = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        // What the peers said (asked by another task) reaches the node once a second.
        let mut peer_check = tokio::time::interval(Duration::from_secs(1));
        // Start-up and reloads leave freed memory inside the heap: handed back once things
        // settle (about 0.7 MiB at 1000 groups).
        let mut trim_at = Some(Instant::now() + TRIM_AFTER);
        // Control requests are read by tasks of their own: a slow client never holds the loop.
        let (requests_in, mut requests) = tokio::sync::mpsc::channel(16);
        loop {
            let sleep_until = tokio::time::Instant::from_std(
                self.node
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                    .min(self.next_handover_deadline()),
            );
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {
                    // Adverts that arrived while the loop was busy go first: a timer that
                    // expired meanwhile must not take a group whose master has spoken.
                    self.receive_queued();
                    self.node.handle_timeout(Instant::now());
                }
                Some(_) = receive_batch(self.sockets.first(), &mut first) => self.receive(&first),
                Some(_) = receive_batch(self.sockets.get(1), &mut second) => self.receive(&second),
                Some((lan, bytes, v6)) = lan_datagrams.recv() => {
                    self.drain_heartbeats();
                    let datagram = match v6 {
                        None => Datagram::V4(&bytes),
                        Some((src, dst, hop_limit)) => Datagram::V6 { src, dst, hop_limit, message: &bytes },
                    };
                    self.node.handle_datagram_on(Instant::now(), lan, datagram);
                }
                Some(event) = events.next() => self.handle_event(event),
                received = when_open(self.heartbeats.as_ref().map(|s| s.recv_from(&mut heartbeat_buffer))) => {
                    if let Ok((len, src)) = received {
                        self.node.handle_heartbeat(Instant::now(), src.ip(), &heartbeat_buffer[..len]);
                    }
                }
                claims = when_open(self.claims.as_ref().map(|s| s.recv())) => self.claims_heard(claims),
                claims = when_open(self.na_claims.as_ref().map(|s| s.recv())) => self.claims_heard(claims),
                Some(report) = reports.recv() => self.node.handle_resources(Instant::now(), report),
                Some((node, outcome)) = fence_reports.recv() => self.node.handle_fence(Instant::now(), &node, outcome),
                Some((script, ok)) = checks.recv() => self.node.handle_check(Instant::now(), &script, ok),
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
                _ = sigquit.recv() => break,
                _ = sighup.recv() => {
                    info!("SIGHUP: reloading {}", self.config_path.display());
                    let _ = self.reload().await;
                    trim_at = Some(Instant::now() + TRIM_AFTER);
                }
                _ = sigusr1.recv() => self.log_status(),
                _ = sigusr2.recv() => self.log_status(),
                _ = feed.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
                _ = peer_check.tick() => {
                    self.check_peers();
                    self.resolve_neighbours();
                    self.resolve_tracked().await;
                    if trim_at.is_some_and(|at| Instant::now() >= at) {
                        trim_at = None;
                        trim_heap();
                    }
                }
                Ok((stream, _)) = control.accept() => read_control_apart(stream, self.access, requests_in.clone()),
                Some((request, stream)) = requests.recv() => self.control(request, stream).await,
                Some(reply) = status_requests.recv() => {
                    let _ = reply.send(self.status());
                }
            }
            self.perform_effects().await;
            self.settle_handovers();
        }
        notify(&[sd_notify::NotifyState::Stopping]);
        self.track.stop();
        self.node.shutdown(Instant::now());
        self.perform_effects().await;
        for pending in std::mem::take(&mut self.handovers) {
            let mut client = pending.client;
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                control::answer(&mut client, &Response::error("vipd is stopping")),
            )
            .await;
        }
        // Let the stop commands finish (each has its own time-out), then tell the peers
        // (a quorum group's next owner waits for that).
        for handle in std::mem::take(&mut self.stopping) {
            let _ = handle.await;
        }
        while let Ok(report) = reports.try_recv() {
            self.node.handle_resources(Instant::now(), report);
        }
        self.perform_effects().await;
        for ((group, family), vmac) in std::mem::take(&mut self.vmacs) {
            if let Err(e) = self.netlink.link().del(vmac.index).execute().await {
                warn!(%group, %family, "cannot delete the virtual-MAC link: {e}");
            }
        }
        Ok(())
    }

    /// One control request, read off the loop: answered at once, or (a handover) once the
    /// group moved.
    async fn control(&mut self, request: control::Request, stream: UnixStream) {
        let now = Instant::now();
        let response = match request.command {
            Command::Status => Response::status(self.status()),
            Command::Reload => match self.reload().await {
                Ok(summary) => Response::ok(summary),
                Err(e) => Response::error(e),
            },
            Command::Handover { group, to } => {
                let peers = self.peers.clone();
                let alive = move |node: &str| peers::is_live(&peers, node);
                match self.node.handover(now, &group, to.as_deref(), &alive) {
                    Ok(target) => {
                        self.handovers.push(PendingHandover {
                            group,
                            target,
                            deadline: now + HANDOVER_WAIT,
                            client: stream,
                        });
                        return;
                    }
                    Err(e) => Response::error(e),
                }
            }
            Command::Drain => self.drain(true),
            Command::Undrain => self.drain(false),
        };
        answer_apart(stream, response);
    }

    fn next_handover_deadline(&self) -> Instant {
        self.handovers
            .iter()
            .map(|h| h.deadline)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Answers the handovers that are over: the group left this node, or the wait ended.
    fn settle_handovers(&mut self) {
        let now = Instant::now();
        let mut waiting = Vec::new();
        for pending in std::mem::take(&mut self.handovers) {
            let still_master =
                self.node.state_of(&pending.group) == Some(crate::election::State::Master);
            let response = if !still_master {
                Response::ok(format!(
                    "{} handed over (expected taker: {})",
                    pending.group, pending.target
                ))
            } else if self.node.handing_over(&pending.group) == Some(false)
                || now >= pending.deadline
            {
                Response::error(format!(
                    "no node took {} over: this node stays its owner",
                    pending.group
                ))
            } else {
                waiting.push(pending);
                continue;
            };
            answer_apart(pending.client, response);
        }
        self.handovers = waiting;
    }

    /// Drains or undrains this node; the mark survives restarts.
    fn drain(&mut self, drained: bool) -> Response {
        let mark = &self.drain_mark;
        let persisted = if drained {
            mark.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(mark, "drained by vipd drain\n"))
        } else {
            match std::fs::remove_file(mark) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        if let Err(e) = persisted {
            return Response::error(format!(
                "cannot record the drain in {}: {e}",
                mark.display()
            ));
        }
        let now = Instant::now();
        self.node.set_drained(now, drained);
        self.node.set_facts(now, facts(&self.digest, drained));
        Response::ok(if drained {
            format!(
                "{} drained: it hands over what it owns and takes nothing until `vipd undrain` (mark: {})",
                self.node.name(),
                mark.display()
            )
        } else {
            format!("{} undrained", self.node.name())
        })
    }

    /// Reads the file again and applies it as a difference; a bad file changes nothing.
    async fn reload(&mut self) -> Result<String, String> {
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::Reloading),
        ]);
        let result = self.apply_file().await;
        match &result {
            Ok(summary) => info!("reloaded: {summary}"),
            Err(e) => error!("reload refused, the running configuration stays: {e}"),
        }
        notify(&[sd_notify::NotifyState::Ready]);
        result
    }

    async fn apply_file(&mut self) -> Result<String, String> {
        let config = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let digest = file_digest(&self.config_path).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let summary = self.node.reload(now, config)?;
        self.node
            .set_facts(now, facts(&digest, self.node.drained()));
        accept_local_if_needed(self.node.config(), self.node.me());
        self.sync_tracking().await;
        self.warn_vmac_changes();
        self.open_missing_sockets();
        self.listen_dns_on_new_addresses();
        if digest != self.digest {
            // The file changed: the peers (and what this node tells them) may have too.
            self.digest = digest.clone();
            self.start_peers(digest);
        }
        Ok(summary.join("; "))
    }

    /// Runs the track scripts and watches the interfaces the node's groups track now.
    async fn sync_tracking(&mut self) {
        let (scripts, interfaces) = (self.node.track_scripts(), self.node.tracked_interfaces());
        self.track.sync(scripts, interfaces);
        self.resolve_tracked().await;
    }

    /// Tracked interfaces that did not exist before: their link state, once they do.
    async fn resolve_tracked(&mut self) {
        if !self.track.unresolved() {
            return;
        }
        for (interface, up) in self.track.resolve(&self.netlink).await {
            self.node
                .handle_tracked_link(Instant::now(), &interface, up);
        }
    }

    /// The virtual-MAC links are made at start only: say so when a reload asks for others.
    fn warn_vmac_changes(&self) {
        let config = self.node.config();
        let me = self.node.me();
        let mut wanted: Vec<(String, Family)> = config
            .groups
            .iter()
            .filter(|g| g.vmac && g.priority_of(me).is_some())
            .flat_map(|g| g.families().into_iter().map(|f| (g.name.clone(), f)))
            .collect();
        let mut have: Vec<(String, Family)> = self.vmacs.keys().cloned().collect();
        wanted.sort();
        have.sort();
        if wanted != have {
            warn!(
                "the reloaded file changes which groups use a virtual MAC: that takes effect at the next restart (until then the groups keep the links they started with)"
            );
        }
    }

    /// A reload may bring a family this node did not speak yet.
    fn open_missing_sockets(&mut self) {
        let interface = self.node.config().nodes[self.node.me()].interface.clone();
        for (lan, family) in self.node.lans_and_families() {
            if lan > 0 {
                self.open_missing_lan_socket(lan, family);
                continue;
            }
            if self.sockets.iter().any(|s| s.family() == family) {
                continue;
            }
            let Some(source) = self.node.source(family) else {
                error!("interface {interface} has no {family} address to send adverts from");
                continue;
            };
            match VrrpSocket::open(family, &interface, self.link.index, source) {
                Ok(socket) => self.sockets.push(socket),
                Err(e) => error!("VRRP {family} socket on {interface}: {e}"),
            }
        }
    }

    /// A reload may bring a family to another LAN segment.
    fn open_missing_lan_socket(&mut self, lan: usize, family: Family) {
        let Some(extra) = self.extra_lans.get_mut(lan - 1) else {
            return;
        };
        if extra.sockets.iter().any(|s| s.family() == family) {
            return;
        }
        let Some(source) = self.node.source_on(lan, family) else {
            error!(interface = %extra.interface, "no {family} address to send adverts from");
            return;
        };
        match VrrpSocket::open(family, &extra.interface, extra.link.index, source) {
            Ok(socket) => {
                let socket = Arc::new(socket);
                read_lan_socket(lan, socket.clone(), self.lan_datagrams.0.clone());
                extra.sockets.push(socket);
            }
            Err(e) => error!(interface = %extra.interface, "VRRP {family} socket: {e}"),
        }
    }

    /// Tells the node which peers run another cluster file or vipd version.
    fn check_peers(&mut self) {
        let digest = Some(self.digest.clone());
        let mine = env!("CARGO_PKG_VERSION");
        let mismatched: Vec<String> = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| {
                p.version.as_deref().is_some_and(|v| v != mine)
                    || (p.config_digest.is_some() && p.config_digest != digest)
            })
            .map(|p| p.node.clone())
            .collect();
        self.node.set_mismatched_peers(mismatched);
    }

    fn claims_heard(&mut self, claims: std::io::Result<Vec<crate::wire::announce::Claim>>) {
        match claims {
            Ok(claims) => {
                let now = Instant::now();
                for claim in claims {
                    self.node
                        .handle_neighbour_claim(now, claim.address, claim.mac);
                }
            }
            Err(e) => warn!("receiving ARP: {e}"),
        }
    }

    /// Has the kernel resolve the neighbours whose MAC the node wants (member identity).
    fn resolve_neighbours(&self) {
        let Some(resolver) = &self.resolver else {
            return;
        };
        for address in self.node.neighbours_wanted() {
            if let Err(e) = resolver.resolve(address) {
                debug!(%address, "resolving the neighbour: {e}");
            }
        }
    }

    /// USR1/USR2: one line per group in the log (keepalived writes its data file then).
    fn log_status(&self) {
        let status = self.status();
        for group in &status.groups {
            for instance in &group.instances {
                info!(group = %group.name, family = %instance.family, state = %instance.state, master = ?instance.master, priority = instance.priority, "status");
            }
        }
        info!(drained = status.drained, dropped = ?status.dropped, sent = status.adverts_sent, received = status.adverts_received, "status");
    }

    /// Reads everything queued on the VRRP sockets now (bounded), without waiting: a timer
    /// handled after only part of the queue would take groups whose masters have spoken
    /// (with 250 groups on three nodes a busy turn of the loop queues hundreds of adverts).
    fn receive_queued(&mut self) {
        self.drain_heartbeats();
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        for index in 0..self.sockets.len() {
            for _ in 0..QUEUED_AT_MOST {
                let received = match self.sockets[index].try_recv(&mut buffer) {
                    Ok(received) => received,
                    Err(_) => break,
                };
                let bytes = &buffer[..received.len];
                let datagram = match received.v6 {
                    None => Datagram::V4(bytes),
                    Some((src, dst, hop_limit)) => Datagram::V6 {
                        src,
                        dst,
                        hop_limit,
                        message: bytes,
                    },
                };
                self.node.handle_datagram(Instant::now(), datagram);
            }
        }
    }

    /// Heartbeats already queued go before adverts: a peer's "leaving" heartbeat, sent before
    /// its priority-0 advert, must be known when the advert is judged.
    fn drain_heartbeats(&mut self) {
        let Some(socket) = &self.heartbeats else {
            return;
        };
        let mut buffer = [0u8; 65536];
        for _ in 0..64 {
            match socket.try_recv_from(&mut buffer) {
                Ok((len, src)) => {
                    self.node
                        .handle_heartbeat(Instant::now(), src.ip(), &buffer[..len])
                }
                Err(_) => break,
            }
        }
    }

    fn receive(&mut self, batch: &Batch) {
        self.drain_heartbeats();
        let now = Instant::now();
        for datagram in batch.datagrams() {
            self.node.handle_datagram(now, datagram);
        }
    }

    fn handle_event(&mut self, event: Event) {
        if let Event::Link { index, up } = &event {
            for interface in self.track.names_of(*index) {
                self.node
                    .handle_tracked_link(Instant::now(), &interface, *up);
            }
        }
        match event {
            Event::Link { index, up } if index == self.link.index => {
                self.link.up = up;
                self.node.handle_link(Instant::now(), up);
            }
            Event::Link { index, up } if self.extra_lans.iter().any(|l| l.link.index == index) => {
                let number = self
                    .extra_lans
                    .iter()
                    .position(|l| l.link.index == index)
                    .expect("found");
                self.extra_lans[number].link.up = up;
                self.node.handle_link_on(Instant::now(), number + 1, up);
            }
            Event::AddressRemoved { index, address }
                if index == self.link.index
                    || self.vmacs.values().any(|v| v.index == index)
                    || self.extra_lans.iter().any(|l| l.link.index == index) =>
            {
                self.node.handle_address_removed(Instant::now(), address);
            }
            Event::Neighbour {
                index,
                address,
                mac,
            } if index == self.link.index => {
                self.node.handle_neighbour(Instant::now(), address, mac)
            }
            _ => {}
        }
    }

    /// Carries out what the node asked for, in order, until it asks for nothing more.
    /// Resources start once the whole queue is done (the addresses are up then), and only
    /// if their mastership still lasts (a failed claim may have ended it).
    ///
    /// IPv6 addresses are announced only once usable, and the kernel finishes them in its
    /// work queue in order: the claims of one batch are made first and read back once
    /// (the last address added on each link tells for all), and their announcements wait
    /// until then, and so do the adverts queued after them (make before break: the old
    /// master lets go when it hears them). Reading back after every claim held the loop
    /// about a millisecond per group (a cold start of 250 groups: 60-130 ms in which no
    /// advert was read or sent). Anything else that changes addresses (a release) first
    /// settles what waits.
    async fn perform_effects(&mut self) {
        let mut starts = Vec::new();
        let mut unsettled: Vec<(u32, IpAddr)> = Vec::new();
        let mut announcements: Vec<Effect> = Vec::new();
        // Adverts in a row (a timer step's, for every group due) go out together; any
        // other effect sends them first, so the order between effects is kept.
        let mut sends: Vec<Effect> = Vec::new();
        while let Some(effect) = self.node.poll_effect() {
            if !matches!(effect, Effect::Send { .. } | Effect::StartResources { .. }) {
                self.send_adverts(&mut sends);
            }
            match effect {
                start @ Effect::StartResources { .. } => starts.push(start),
                Effect::Claim {
                    group,
                    family,
                    addresses,
                    ..
                } => {
                    if let Some(added) = self.claim(&group, family, &addresses).await {
                        unsettled.retain(|(index, _)| *index != added.0);
                        unsettled.push(added);
                    }
                }
                announce @ Effect::Announce { .. } if !unsettled.is_empty() => {
                    announcements.push(announce);
                }
                // Make before break: an advert that follows an announcement waits with it.
                send @ Effect::Send { .. } if !announcements.is_empty() => {
                    announcements.push(send);
                }
                send @ Effect::Send { .. } => sends.push(send),
                effect @ (Effect::Heartbeat { .. }
                | Effect::Transition { .. }
                | Effect::Mastership { .. }
                | Effect::Resolve { .. }
                | Effect::PublishZone(_)) => self.perform(effect).await,
                effect => {
                    self.settle(&mut unsettled, &mut announcements).await;
                    self.perform(effect).await;
                }
            }
        }
        self.send_adverts(&mut sends);
        self.settle(&mut unsettled, &mut announcements).await;
        for start in starts {
            let Effect::StartResources {
                group,
                generation,
                resources,
                addresses,
            } = start
            else {
                continue;
            };
            let tasks = self.tasks.entry(group.clone()).or_default();
            if tasks.mastership.load(Ordering::SeqCst) == generation {
                self.start_resources(group, generation, resources, addresses);
            }
        }
    }

    /// The VRRP socket for `family` on LAN segment `lan`.
    fn vrrp_socket(&self, lan: usize, family: Family) -> Option<&VrrpSocket> {
        if lan == 0 {
            self.sockets.iter().find(|s| s.family() == family)
        } else {
            self.extra_lans.get(lan - 1).and_then(|l| {
                l.sockets
                    .iter()
                    .find(|s| s.family() == family)
                    .map(|s| s.as_ref())
            })
        }
    }

    /// Sends the adverts of `sends` (emptied), socket by socket with sendmmsg; a group with
    /// a virtual MAC sends its own (whole frames from the macvlan).
    fn send_adverts(&mut self, sends: &mut Vec<Effect>) {
        if sends.is_empty() {
            return;
        }
        let mut by_socket: Vec<(SocketKey, Outgoing)> = Vec::new();
        let mut one_by_one = Vec::new();
        for effect in sends.iter() {
            let Effect::Send {
                group,
                lan,
                family,
                datagrams,
                ..
            } = effect
            else {
                continue;
            };
            if *lan == 0
                && !self.vmacs.is_empty()
                && self.vmacs.contains_key(&(group.to_string(), *family))
            {
                one_by_one.push(effect.clone());
                continue;
            }
            let key = (*lan, *family);
            let index = match by_socket.iter().position(|(k, _)| *k == key) {
                Some(index) => index,
                None => {
                    by_socket.push((key, Vec::new()));
                    by_socket.len() - 1
                }
            };
            by_socket[index]
                .1
                .extend(datagrams.iter().map(|(to, bytes)| (*to, bytes.as_slice())));
        }
        for ((lan, family), datagrams) in &by_socket {
            if let Some(socket) = self.vrrp_socket(*lan, *family) {
                socket.send_many(datagrams);
            }
        }
        drop(by_socket);
        sends.clear();
        for effect in one_by_one {
            self.perform_send(effect);
        }
    }

    /// Sends one group's adverts (from its virtual MAC when it has one).
    fn perform_send(&self, effect: Effect) {
        let Effect::Send {
            group,
            lan,
            family,
            datagrams,
            ..
        } = effect
        else {
            return;
        };
        let socket = self.vrrp_socket(lan, family);
        let Some(socket) = socket else {
            return;
        };
        // With a virtual MAC, multicast adverts leave from it (RFC 9568 7.3). The
        // virtual-MAC links live on the node's interface (segment 0).
        let vmac = self
            .vmacs
            .get(&(group.to_string(), family))
            .filter(|_| lan == 0);
        let source = socket.source();
        for (destination, message) in datagrams {
            if let Some(vmac) = vmac {
                match vmac.announcer.send_advert(source, destination, &message) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        debug!(%group, "sending advert from the virtual MAC: {e}");
                        continue;
                    }
                }
            }
            if let Err(e) = socket.send(destination, &message) {
                debug!(%group, "sending advert to {destination}: {e}");
            }
        }
    }

    async fn perform(&mut self, effect: Effect) {
        match effect {
            send @ Effect::Send { .. } => self.perform_send(send),
            Effect::Claim {
                group,
                family,
                addresses,
                ..
            } => {
                let mut unsettled: Vec<(u32, IpAddr)> = self
                    .claim(&group, family, &addresses)
                    .await
                    .into_iter()
                    .collect();
                self.settle(&mut unsettled, &mut Vec::new()).await;
            }
            Effect::Restore { group, address } => {
                let index = self.address_link(&group, Family::of(&address.address));
                if let Err(e) = netlink::add_address(&self.netlink, index, address).await {
                    warn!(%group, %address, "cannot put the address back: {e}");
                }
            }
            Effect::Release {
                group,
                family,
                addresses,
            } => {
                let index = self.address_link(&group, family);
                for address in addresses {
                    if let Err(e) = netlink::del_address(&self.netlink, index, address).await {
                        warn!(%group, %address, "cannot remove the virtual address: {e}");
                    }
                }
            }
            Effect::Announce {
                group,
                family,
                addresses,
            } => {
                let lan = self.node.lan_of_group(&group);
                let (announcer, link_local) = match self.vmacs.get(&(group.to_string(), family)) {
                    Some(vmac) => (&vmac.announcer, self.link_local),
                    None if lan > 0 => match self.extra_lans.get(lan - 1) {
                        Some(extra) => (&extra.announcer, extra.link_local),
                        None => (&self.announcer, self.link_local),
                    },
                    None => (&self.announcer, self.link_local),
                };
                for address in addresses {
                    if let Err(e) = announcer.announce(address, link_local) {
                        warn!(%address, "announcement failed: {e}");
                    }
                }
            }
            Effect::Transition { .. } => {}
            Effect::Resolve { address } => {
                if let Some(resolver) = &self.resolver
                    && let Err(e) = resolver.resolve(address)
                {
                    debug!(%address, "resolving the neighbour: {e}");
                }
            }
            Effect::Mastership {
                group,
                generation,
                began,
                names,
                addresses,
            } => {
                let tasks = self.tasks.entry(group.clone()).or_default();
                tasks.mastership.store(generation, Ordering::SeqCst);
                if began {
                    self.register(group, generation, names, addresses);
                }
            }
            Effect::StartResources {
                group,
                generation,
                resources,
                addresses,
            } => self.start_resources(group, generation, resources, addresses),
            Effect::StopResources {
                group,
                generation,
                resources,
                addresses,
            } => self.stop_resources(group, generation, resources, addresses),
            Effect::Fence {
                node,
                address,
                command,
                timeout,
            } => {
                let me = self.node.name().to_string();
                let reports = self.fence_reports.0.clone();
                tokio::spawn(async move {
                    let outcome =
                        membership::run_fence(&me, &node, address, &command, timeout).await;
                    let _ = reports.send((node, outcome));
                });
            }
            Effect::Heartbeat { to, bytes } => {
                if let Some(socket) = &self.heartbeats
                    && let Err(e) = socket.try_send_to(&bytes, to)
                {
                    debug!(%to, "heartbeat not sent: {e}");
                }
            }
            Effect::PublishZone(zone) => {
                if let Some(server) = &self.dns {
                    server.set_zone(*zone);
                }
            }
        }
    }

    /// Adds a claim's addresses; a failure gives the group up. Returns the link and the
    /// last IPv6 address added, to be read back before the addresses are announced.
    async fn claim(
        &mut self,
        group: &str,
        family: Family,
        addresses: &[crate::config::VirtualAddress],
    ) -> Option<(u32, IpAddr)> {
        let index = self.address_link(group, family);
        let mut failed = false;
        for address in addresses {
            if let Err(e) = netlink::add_address(&self.netlink, index, *address).await {
                error!(%group, %address, "cannot add the virtual address, giving the group up: {e}");
                failed = true;
            }
        }
        if failed {
            self.node.handle_claim_failed(Instant::now(), group, family);
            return None;
        }
        let last_v6 = addresses.iter().rev().find(|a| a.address.is_ipv6())?;
        Some((index, last_v6.address))
    }

    /// Waits until the IPv6 addresses just added are usable (IPv6 finishes in the kernel's
    /// work queue, in order, so the last address added on a link tells for all of them;
    /// bounded: at most 20 ms per link), then makes the announcements (and sends the adverts)
    /// that waited for them.
    async fn settle(&mut self, unsettled: &mut Vec<(u32, IpAddr)>, waiting: &mut Vec<Effect>) {
        for (index, address) in unsettled.drain(..) {
            match netlink::wait_usable(&self.netlink, index, address, Duration::from_millis(20))
                .await
            {
                Ok(true) => {}
                Ok(false) => warn!(%address, "still tentative after 20 ms"),
                Err(e) => debug!(%address, "reading the address back: {e}"),
            }
        }
        for announce in waiting.drain(..) {
            Box::pin(self.perform(announce)).await;
        }
    }

    /// The link a group's addresses of `family` live on: its virtual-MAC link with `vmac`,
    /// else the interface.
    fn address_link(&self, group: &str, family: Family) -> u32 {
        let lan = self.node.lan_of_group(group);
        let link = match lan {
            0 => self.link.index,
            _ => self
                .extra_lans
                .get(lan - 1)
                .map_or(self.link.index, |l| l.link.index),
        };
        self.vmacs
            .get(&(group.to_string(), family))
            .map_or(link, |v| v.index)
    }

    fn resource_context(&self, group: &str, addresses: String) -> resources::Context {
        resources::Context {
            group: group.to_string(),
            node: self.node.name().to_string(),
            addresses,
        }
    }

    /// The addresses are up: start the group's resources (checked while master).
    fn start_resources(
        &mut self,
        group: GroupName,
        generation: u64,
        definitions: Vec<crate::config::Resource>,
        addresses: String,
    ) {
        let context = self.resource_context(&group, addresses);
        let tasks = self.tasks.entry(group.clone()).or_default();
        resources::start(
            group,
            generation,
            tasks.mastership.clone(),
            definitions,
            tasks.resource_lock.clone(),
            context,
            self.resource_reports.0.clone(),
        );
    }

    /// Stepped down: stop the group's resources, in reverse order.
    fn stop_resources(
        &mut self,
        group: GroupName,
        generation: u64,
        definitions: Vec<crate::config::Resource>,
        addresses: String,
    ) {
        let context = self.resource_context(&group, addresses);
        let tasks = self.tasks.entry(group.clone()).or_default();
        let stop = resources::stop(definitions, tasks.resource_lock.clone(), context);
        let reports = self.resource_reports.0.clone();
        let handle = tokio::spawn(async move {
            let _ = stop.await;
            let _ = reports.send(ResourceReport {
                group,
                generation,
                outcome: crate::node::ResourceOutcome::Stopped,
            });
        });
        self.stopping.retain(|h| !h.is_finished());
        self.stopping.push(handle);
    }

    /// Registers the group's names in the site's DNS, retrying with backoff while this
    /// mastership lasts.
    fn register(
        &mut self,
        group: GroupName,
        generation: u64,
        names: Vec<String>,
        addresses: Vec<IpAddr>,
    ) {
        let config = self.node.config();
        let (Some(key), Some(update)) = (self.registration.clone(), config.dns.update.clone())
        else {
            return;
        };
        let cluster_zone = config.cluster.zone.clone();
        let mut pending = names;
        let mastership = self
            .tasks
            .entry(group.clone())
            .or_default()
            .mastership
            .clone();
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
                            info!(%group, %name, server = %update.server, "registered in the site's DNS")
                        }
                        Err(e) => {
                            warn!(%group, %name, server = %update.server, "registration failed, retrying in {backoff:?}: {e}");
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

    /// The addresses the zone is served on: the node's own and every virtual address of its
    /// groups (bound ahead of time: a virtual address answers while this node holds it).
    fn wanted_dns_addresses(&self) -> Vec<IpAddr> {
        let config = self.node.config();
        let me = self.node.me();
        let mut addresses = vec![config.nodes[me].address];
        for group in config.groups.iter().filter(|g| g.priority_of(me).is_some()) {
            for address in &group.addresses {
                if !addresses.contains(&address.address) {
                    addresses.push(address.address);
                }
            }
        }
        addresses
    }

    fn start_dns(&mut self) -> Result<(), DaemonError> {
        let config = self.node.config();
        if !config.dns.enabled {
            return Ok(());
        }
        let addresses = self.wanted_dns_addresses();
        let server = Arc::new(dns::server::Server::new(&config.dns, self.node.zone()));
        dns::server::spawn(server.clone(), &addresses, config.dns.port)
            .map_err(io_error(format!("DNS on port {}", config.dns.port)))?;
        self.dns = Some(server);
        self.dns_addresses = addresses;
        Ok(())
    }

    /// A reload may add virtual addresses: the zone is served on them too.
    fn listen_dns_on_new_addresses(&mut self) {
        let Some(server) = self.dns.clone() else {
            return;
        };
        let new: Vec<IpAddr> = self
            .wanted_dns_addresses()
            .into_iter()
            .filter(|a| !self.dns_addresses.contains(a))
            .collect();
        if new.is_empty() {
            return;
        }
        let port = self.node.config().dns.port;
        match dns::server::spawn(server, &new, port) {
            Ok(()) => self.dns_addresses.extend(new),
            Err(e) => error!("DNS on the new addresses {new:?}: {e}"),
        }
    }

    /// (Re)starts asking the other nodes for their version, file digest and drain.
    fn start_peers(&mut self, digest: String) {
        if !self.node.config().dns.enabled {
            return;
        }
        if let Some(task) = self.peers_task.take() {
            task.abort();
        }
        self.peers_task = Some(peers::spawn(
            self.node.config(),
            self.node.me(),
            self.peers.clone(),
            digest,
        ));
    }

    fn status(&self) -> Status {
        let mut status = self.node.status(Instant::now());
        status.config_digest = Some(self.digest.clone());
        status.dns = self.dns.as_ref().map(|d| d.snapshot());
        status.peers = self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        status
    }
}

/// Reads a control request in a task of its own (credentials, then one line within its
/// time-out) and hands it to the loop; a refusal is answered from the task.
fn read_control_apart(
    mut stream: UnixStream,
    access: Access,
    requests: tokio::sync::mpsc::Sender<(control::Request, UnixStream)>,
) {
    tokio::spawn(async move {
        match control::read_request(&mut stream, access).await {
            Ok(request) => {
                let _ = requests.send((request, stream)).await;
            }
            Err(e) => {
                warn!("control: {e}");
                control::answer(&mut stream, &Response::error(e)).await;
            }
        }
    });
}

/// Writes an answer in a task of its own: a client that does not read never holds the loop.
fn answer_apart(mut stream: UnixStream, response: Response) {
    tokio::spawn(async move { control::answer(&mut stream, &response).await });
}

/// The facts a node publishes about itself beside its version.
fn facts(digest: &str, drained: bool) -> Vec<String> {
    let mut facts = vec![format!("config={digest}")];
    if drained {
        facts.push("drained=1".into());
    }
    facts
}

/// A group whose address owner is another node: when we hold that address and the owner
/// returns, its adverts come from an address that is local here, which the kernel drops as
/// martian unless accept_local is on for the interface.
/// Creates (or reuses) the virtual-MAC links of this node's `vmac = true` groups, empties
/// them of addresses left by an earlier run, and sets the parent's ARP behaviour. Nothing
/// happens, and nothing is logged, when no group of this node has `vmac`.
async fn vmac_links(
    config: &Config,
    me: usize,
    handle: &rtnetlink::Handle,
    interface: &str,
    parent: u32,
) -> Result<HashMap<(String, Family), VmacLink>, DaemonError> {
    use crate::net::vmac;
    let mut links = HashMap::new();
    for group in &config.groups {
        if !group.vmac || group.priority_of(me).is_none() {
            continue;
        }
        for family in group.families() {
            let index = vmac::ensure(handle, parent, family, group.vrid).await?;
            for (address, prefix_len) in netlink::addresses(handle, index).await? {
                if matches!(address, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
                    continue;
                }
                let name = vmac::link_name(family, group.vrid);
                info!(%address, "removing a stale virtual address from {name}");
                let address = crate::config::VirtualAddress {
                    address,
                    prefix_len,
                };
                netlink::del_address(handle, index, address).await?;
            }
            let announcer = Announcer::new(index, vmac::mac(family, group.vrid))
                .map_err(io_error("packet socket for virtual-MAC announcements"))?;
            links.insert((group.name.clone(), family), VmacLink { index, announcer });
        }
    }
    if !links.is_empty() {
        vmac::arp_settings(interface);
    }
    Ok(links)
}

fn accept_local_if_needed(config: &Config, me: usize) {
    if !plan::backs_up_an_owner(config, me) {
        return;
    }
    let path = format!(
        "/proc/sys/net/ipv4/conf/{}/accept_local",
        config.nodes[me].interface
    );
    match std::fs::write(&path, "1") {
        Ok(()) => {
            info!("{path} = 1: the address owner's adverts must reach us while we hold its address")
        }
        Err(e) => warn!("cannot set {path}: {e}; the address owner's return may go unheard"),
    }
}

/// Reads the status from a running daemon's control socket.
pub async fn query_status(control: &Path) -> Result<Status, String> {
    let response = control::request(control, Command::Status, Duration::from_secs(5)).await?;
    match (response.status, response.error) {
        (Some(status), _) => Ok(*status),
        (None, Some(error)) => Err(error),
        (None, None) => Err("vipd answered without a status".into()),
    }
}
