//! The seed's scenario in the lab: a "master server" that appends client records to a file on a
//! shared "disk" (a directory every namespace sees), a client that resolves the virtual name
//! through vipd's DNS and writes numbered records, reconnecting after failures, and a checker
//! that samples, every few milliseconds, which node namespaces run the service (the process
//! table) and hold the virtual addresses (the kernels' address tables), never vipd's own
//! status.

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The service's TCP port.
pub const SERVICE_PORT: u16 = 7100;

/// `vipd lab-service`: the master server, or (with `--background`, `--stop`) its start and
/// stop commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceOptions {
    /// The disk: records are appended to DIR/records.
    #[arg(long)]
    pub dir: PathBuf,
    /// The node it runs on (written with each record).
    #[arg(long, default_value = "")]
    pub node: String,
    /// Its pid file.
    #[arg(long)]
    pub pidfile: PathBuf,
    /// Addresses to listen on (the group's virtual addresses; bound with IP_FREEBIND).
    #[arg(long = "address")]
    pub addresses: Vec<IpAddr>,
    #[arg(long, default_value_t = SERVICE_PORT)]
    pub port: u16,
    /// Start the service in the background and return once it listens (a resource's start).
    #[arg(long)]
    pub background: bool,
    /// Stop the service named by the pid file and wait until it is gone (a resource's stop).
    #[arg(long, conflicts_with = "background")]
    pub stop: bool,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// True when `pid` runs (not a zombie) and is a lab service.
fn is_service(pid: i32) -> bool {
    super::running(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("lab-service"))
            .unwrap_or(false)
}

pub fn service(options: &ServiceOptions) -> io::Result<()> {
    if options.stop {
        return stop_service(&options.pidfile);
    }
    if options.background {
        return start_in_background(options);
    }
    std::fs::create_dir_all(&options.dir)?;
    let records = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(options.dir.join("records"))?;
    let records = Arc::new(Mutex::new(records));
    let mut listeners = Vec::new();
    for address in &options.addresses {
        let domain = if address.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if address.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
        socket.bind(&SocketAddr::new(*address, options.port).into())?;
        socket.listen(64)?;
        listeners.push(TcpListener::from(socket));
    }
    // Listening: now it counts as started.
    let temporary = options.pidfile.with_extension("tmp");
    std::fs::write(&temporary, format!("{}\n", std::process::id()))?;
    std::fs::rename(&temporary, &options.pidfile)?;
    let mut threads = Vec::new();
    for listener in listeners {
        let records = records.clone();
        let node = options.node.clone();
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let records = records.clone();
                let node = node.clone();
                std::thread::spawn(move || serve(stream, &records, &node));
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

/// One client: each line is a record number; it is appended to the file, then acknowledged.
fn serve(stream: TcpStream, records: &Mutex<std::fs::File>, node: &str) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let Ok(number) = line.trim().parse::<u64>() else {
            return;
        };
        {
            // The page cache is what every namespace reads, and a SIGKILL keeps it: the
            // write has reached the disk, as far as the lab can tell, once write returns.
            let mut file = records.lock().unwrap_or_else(|e| e.into_inner());
            if file
                .write_all(format!("{number} {node}\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
        if writer
            .write_all(format!("ok {number} {node}\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

fn start_in_background(options: &ServiceOptions) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let _ = std::fs::remove_file(&options.pidfile);
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("lab-service")
        .arg("--dir")
        .arg(&options.dir)
        .args(["--node", &options.node])
        .arg("--pidfile")
        .arg(&options.pidfile)
        .args(["--port", &options.port.to_string()]);
    for address in &options.addresses {
        command.args(["--address", &address.to_string()]);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(options.dir.join(format!("service-{}.log", options.node)))?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = command.spawn()?;
    let pid = child.id() as i32;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if read_pid(&options.pidfile) == Some(pid) {
            return Ok(());
        }
        if !super::running(pid) {
            return Err(io::Error::other("the service exited at start"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(io::Error::other("the service did not listen within 2 s"))
}

fn stop_service(pidfile: &Path) -> io::Result<()> {
    use nix::sys::signal::{Signal, kill};
    if let Some(pid) = read_pid(pidfile).filter(|p| is_service(*p)) {
        let target = nix::unistd::Pid::from_raw(pid);
        let _ = kill(target, Signal::SIGTERM);
        let start = Instant::now();
        while is_service(pid) {
            if start.elapsed() > Duration::from_millis(300) {
                let _ = kill(target, Signal::SIGKILL);
            }
            if start.elapsed() > Duration::from_secs(2) {
                return Err(io::Error::other(format!("the service {pid} does not end")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = std::fs::remove_file(pidfile);
    Ok(())
}

/// `vipd lab-client`: resolves the name, connects, writes numbered records, reconnects after
/// failures; prints `ack UNIX_US NUMBER NODE` per acknowledged record, then `sent N`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientOptions {
    /// The DNS servers to ask (the nodes' own addresses), in turn.
    #[arg(long = "server", required = true)]
    pub servers: Vec<IpAddr>,
    /// The virtual name.
    #[arg(long)]
    pub name: String,
    /// Ask for AAAA records instead of A.
    #[arg(long)]
    pub ipv6: bool,
    #[arg(long, default_value_t = SERVICE_PORT)]
    pub port: u16,
    /// How long to write, in milliseconds (the client always stops by itself).
    #[arg(long, default_value_t = 3000)]
    pub duration_ms: u64,
    /// Milliseconds between records.
    #[arg(long, default_value_t = 2)]
    pub interval_ms: u64,
}

/// Asks `server` for the name's address, once, waiting at most `wait`.
pub fn resolve(server: SocketAddr, name: &str, ipv6: bool, wait: Duration) -> Option<IpAddr> {
    let record_type = if ipv6 {
        RecordType::AAAA
    } else {
        RecordType::A
    };
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).ok()?, record_type));
    let bytes = query.to_vec().ok()?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.connect(server).ok()?;
    socket.send(&bytes).ok()?;
    let mut buffer = vec![0u8; 4096];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let len = socket.recv(&mut buffer).ok()?;
        let Ok(answer) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if answer.metadata.id != query.metadata.id {
            continue;
        }
        if answer.metadata.response_code != ResponseCode::NoError {
            return None;
        }
        return answer.answers.iter().find_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        });
    }
    None
}

pub fn client(options: &ClientOptions) -> io::Result<()> {
    let start = Instant::now();
    let end = start + Duration::from_millis(options.duration_ms);
    let interval = Duration::from_millis(options.interval_ms);
    let mut out = String::new();
    let mut number: u64 = 0;
    let mut server = 0usize;
    let mut failures = 0u64;
    'connect: while Instant::now() < end {
        // Resolve by name, starting with the server that answered last.
        let mut target = None;
        for i in 0..options.servers.len() {
            let candidate = (server + i) % options.servers.len();
            let dns = SocketAddr::new(options.servers[candidate], 53);
            if let Some(address) =
                resolve(dns, &options.name, options.ipv6, Duration::from_millis(100))
            {
                server = candidate;
                target = Some(address);
                break;
            }
        }
        let Some(address) = target else {
            failures += 1;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(stream) = TcpStream::connect_timeout(
            &SocketAddr::new(address, options.port),
            Duration::from_millis(200),
        ) else {
            failures += 1;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
        let Ok(mut writer) = stream.try_clone() else {
            continue;
        };
        let mut reader = BufReader::new(stream);
        while Instant::now() < end {
            number += 1;
            if writer.write_all(format!("{number}\n").as_bytes()).is_err() {
                failures += 1;
                continue 'connect;
            }
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(n) if n > 0 => {
                    let mut parts = line.split_whitespace();
                    let ok = parts.next() == Some("ok")
                        && parts.next().and_then(|n| n.parse::<u64>().ok()) == Some(number);
                    let node = parts.next().unwrap_or("?");
                    if !ok {
                        failures += 1;
                        continue 'connect;
                    }
                    out.push_str(&format!("ack {} {number} {node}\n", unix_us()));
                }
                _ => {
                    failures += 1;
                    continue 'connect;
                }
            }
            std::thread::sleep(interval);
        }
    }
    out.push_str(&format!("sent {number}\nfailures {failures}\n"));
    print!("{out}");
    Ok(())
}

/// One acknowledged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub unix_us: u64,
    pub number: u64,
    pub node: String,
}

/// Reads a client's output.
pub fn parse_acks(text: &str) -> Vec<Ack> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            if parts.next()? != "ack" {
                return None;
            }
            Some(Ack {
                unix_us: parts.next()?.parse().ok()?,
                number: parts.next()?.parse().ok()?,
                node: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// The record numbers in the disk's file.
pub fn records_on_disk(dir: &Path) -> io::Result<BTreeSet<u64>> {
    let text = std::fs::read_to_string(dir.join("records")).or_else(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(String::new())
        } else {
            Err(e)
        }
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect())
}

/// Acknowledged records missing from the file.
pub fn lost(acks: &[Ack], disk: &BTreeSet<u64>) -> Vec<u64> {
    acks.iter()
        .map(|a| a.number)
        .filter(|n| !disk.contains(n))
        .collect()
}

/// The longest gap between acknowledgements, and when it ended (wall clock, µs), within
/// [from_us, to_us].
pub fn longest_gap(acks: &[Ack], from_us: u64, to_us: u64) -> (Duration, u64) {
    let mut best = (Duration::ZERO, 0);
    let mut previous = from_us;
    for ack in acks
        .iter()
        .filter(|a| a.unix_us >= from_us && a.unix_us <= to_us)
    {
        let gap = Duration::from_micros(ack.unix_us.saturating_sub(previous));
        if gap > best.0 {
            best = (gap, ack.unix_us);
        }
        previous = ack.unix_us;
    }
    best
}

/// What the checker saw at one sample: bit `i` set for node `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owners {
    /// Nodes whose namespace runs the service.
    pub services: u32,
    /// Nodes whose kernel holds one of the virtual addresses.
    pub holders: u32,
}

impl Owners {
    /// Two nodes run the service, or two hold an address.
    pub fn doubled(self) -> bool {
        self.services.count_ones() > 1 || self.holders.count_ones() > 1
    }
    /// Exactly one node runs the service and holds the addresses.
    pub fn single(self) -> Option<usize> {
        (self.services.count_ones() == 1 && self.services == self.holders)
            .then(|| self.services.trailing_zeros() as usize)
    }
}

/// A change the checker saw, at `at` after it started.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub at: Duration,
    pub unix_us: u64,
    pub owners: Owners,
}

/// What a checker found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub samples: u64,
    /// Samples with two owners, and the time they covered (from each such sample to the next).
    pub doubled_samples: u64,
    pub doubled_time: Duration,
    /// The longest time no node ran the service (after the first owner appeared).
    pub longest_without_owner: Duration,
    /// The largest gap between two samples.
    pub longest_sample_gap: Duration,
    pub changes: Vec<Change>,
}

impl Report {
    /// The timeline, one line per change: `+1234ms services=[alpha] addresses=[alpha]`.
    pub fn timeline(&self, names: &[String]) -> String {
        let list = |mask: u32| {
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        self.changes
            .iter()
            .map(|c| {
                format!(
                    "  +{:>6} ms  service: [{}]  addresses: [{}]{}\n",
                    c.at.as_millis(),
                    list(c.owners.services),
                    list(c.owners.holders),
                    if c.owners.doubled() {
                        "  <-- TWO OWNERS"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }

    /// The owner at the end, if exactly one.
    pub fn last(&self) -> Option<Owners> {
        self.changes.last().map(|c| c.owners)
    }
}

/// Samples, every `interval`, the services (by the process table: a `lab-service` for this
/// disk, in which node's network namespace) and the address holders (each namespace's
/// kernel address table), until stopped.
pub struct Checker {
    stop: Arc<AtomicBool>,
    /// Nodes powered off: what their kernel still holds does not count.
    pub off: Arc<AtomicU32>,
    started: Instant,
    latest: Arc<Mutex<Owners>>,
    thread: Option<std::thread::JoinHandle<io::Result<Report>>>,
}

/// The network namespace inode of a process.
fn net_inode_of(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let text = link.to_string_lossy();
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn has_address(addresses: &[IpAddr]) -> io::Result<bool> {
    let found = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    for interface in found {
        let Some(address) = interface.address else {
            continue;
        };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if addresses.contains(&ip) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Checker {
    /// `namespaces`: the nodes' network namespaces, in node order; `disk`: the service's
    /// directory (its command line names it).
    pub fn start(
        namespaces: &[String],
        addresses: &[IpAddr],
        disk: &Path,
        interval: Duration,
    ) -> io::Result<Checker> {
        let mut files = Vec::new();
        let mut inodes = Vec::new();
        for namespace in namespaces {
            let path = format!("/var/run/netns/{namespace}");
            inodes.push(std::fs::metadata(&path)?.ino());
            files.push(std::fs::File::open(&path)?);
        }
        let addresses = addresses.to_vec();
        let tag = disk.to_string_lossy().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let off = Arc::new(AtomicU32::new(0));
        let latest = Arc::new(Mutex::new(Owners::default()));
        let started = Instant::now();
        let thread = {
            let (stop, off, latest) = (stop.clone(), off.clone(), latest.clone());
            std::thread::spawn(move || {
                // Sample on time even when the machine is busy (root may raise its priority;
                // when it cannot, the report's longest sample gap says so).
                // SAFETY: plain system calls on this thread's own id.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, -10);
                }
                let mut report = Report::default();
                // pid -> the node whose namespace it runs in (None: not a service of ours).
                let mut known: HashMap<i32, Option<usize>> = HashMap::new();
                let mut previous: Option<(Instant, Owners)> = None;
                let mut last_owner = None::<Instant>;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let mut owners = Owners::default();
                    // The process table.
                    let mut seen = Vec::new();
                    for entry in std::fs::read_dir("/proc")?.flatten() {
                        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok())
                        else {
                            continue;
                        };
                        seen.push(pid);
                        let node = match known.get(&pid) {
                            Some(node) => *node,
                            None => {
                                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                                    .map(|c| String::from_utf8_lossy(&c).to_string())
                                    .unwrap_or_default();
                                if cmdline.is_empty() {
                                    // A kernel thread, or a process in the middle of an
                                    // exec: read again next time.
                                    None
                                } else if !cmdline.contains("lab-service") {
                                    // Never a service: a service is exec'd by a process
                                    // that has "lab-service" in its command line (those
                                    // are read again until they are the service).
                                    known.insert(pid, None);
                                    None
                                } else if !cmdline.contains(&tag)
                                    || cmdline.contains("--background")
                                    || cmdline.contains("--stop")
                                    || cmdline.contains("sh\0-c")
                                {
                                    None
                                } else {
                                    let node = net_inode_of(pid)
                                        .and_then(|inode| inodes.iter().position(|i| *i == inode));
                                    known.insert(pid, node);
                                    node
                                }
                            }
                        };
                        if let Some(node) = node
                            && super::running(pid)
                        {
                            owners.services |= 1 << node;
                        }
                    }
                    known.retain(|pid, _| seen.contains(pid));
                    // The kernels' address tables.
                    for (node, file) in files.iter().enumerate() {
                        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(io::Error::from)?;
                        if has_address(&addresses)? {
                            owners.holders |= 1 << node;
                        }
                    }
                    let off = off.load(Ordering::Relaxed);
                    owners.services &= !off;
                    owners.holders &= !off;
                    let now_done = Instant::now();
                    report.samples += 1;
                    if let Some((at, before)) = previous {
                        let gap = now.duration_since(at);
                        report.longest_sample_gap = report.longest_sample_gap.max(gap);
                        if before.doubled() {
                            report.doubled_time += gap;
                        }
                    }
                    if owners.doubled() {
                        report.doubled_samples += 1;
                    }
                    if owners.services != 0 {
                        last_owner = Some(now);
                    } else if let Some(since) = last_owner {
                        report.longest_without_owner =
                            report.longest_without_owner.max(now.duration_since(since));
                    }
                    if previous.is_none_or(|(_, o)| o != owners) {
                        report.changes.push(Change {
                            at: now.duration_since(started),
                            unix_us: unix_us(),
                            owners,
                        });
                        *latest.lock().unwrap_or_else(|e| e.into_inner()) = owners;
                    }
                    previous = Some((now, owners));
                    std::thread::sleep(interval.saturating_sub(now_done.duration_since(now)));
                }
                Ok(report)
            })
        };
        Ok(Checker {
            stop,
            off,
            started,
            latest,
            thread: Some(thread),
        })
    }

    /// What the checker saw last.
    pub fn now(&self) -> Owners {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `test` holds for the latest sample, up to `limit`; returns how long it took.
    pub fn wait_for(&self, limit: Duration, test: impl Fn(Owners) -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if test(self.now()) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    pub fn finish(mut self) -> io::Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("once")
            .join()
            .map_err(|_| io::Error::other("the checker panicked"))?
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A forged VRRPv3 advert as if from `source` (a member's address), sent from the current
/// thread's namespace: IPv4, TTL 255, to 224.0.0.18, the IP header written here.
pub fn forged_advert_v4(
    source: std::net::Ipv4Addr,
    vrid: u8,
    priority: u8,
    addresses: &[IpAddr],
) -> io::Result<()> {
    use crate::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};
    let group = std::net::Ipv4Addr::new(224, 0, 0, 18);
    let repr = Repr {
        version: Version::V3,
        vrid,
        priority,
        interval_cs: 10,
        addresses: addresses.to_vec(),
        auth: V2Auth::default(),
    };
    let mut vrrp = vec![0u8; repr.buffer_len()];
    let ends = IpEnds {
        src: IpAddr::V4(source),
        dst: IpAddr::V4(group),
    };
    repr.emit(&mut vrrp, ends, Ipv4ChecksumForm::PseudoHeader)
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    let total = 20 + vrrp.len();
    let mut packet = vec![0u8; 20];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    packet[8] = 255;
    packet[9] = 112;
    packet[12..16].copy_from_slice(&source.octets());
    packet[16..20].copy_from_slice(&group.octets());
    let mut sum: u32 = packet
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    packet.extend_from_slice(&vrrp);
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
    socket.set_header_included_v4(true)?;
    socket.set_multicast_ttl_v4(255)?;
    // The lab's hosts have no default route: name the interface.
    socket.bind_device(Some(b"eth0"))?;
    let to: SocketAddr = SocketAddr::new(IpAddr::V4(group), 0);
    socket.send_to(&packet, &to.into())?;
    Ok(())
}
