//! A lab of real hosts made of network namespaces on this machine: a switch namespace with a
//! bridge, one namespace per node joined to it by a veth pair, and a client namespace. Used
//! by `vipd lab` and by the integration tests. Nothing touches the host's own interfaces:
//! every link lives in a namespace the lab created, and dropping the [`Lab`] ends its
//! processes (by pid) and deletes its namespaces, also when a test fails.

mod cluster_file;
pub mod demo;
mod keepalived;
pub mod probe;
pub mod query;
pub mod seed;
mod tools;

use crate::config::Config;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use cluster_file::{
    GROUPS_PER_SEGMENT, NODE_NAMES, cluster_file, many_group, many_groups, segments_for,
    with_foreign,
};
pub use keepalived::keepalived_conf;
pub use tools::perf_profile;

/// The client's addresses on the lab LAN.
pub const CLIENT_V4: &str = "192.0.2.200/24";
pub const CLIENT_V6: &str = "2001:db8::200/64";

static LABS: AtomicU32 = AtomicU32::new(0);

/// True when running as root (the lab needs CAP_NET_ADMIN for namespaces).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A file or folder removed when this goes out of scope, also when a test fails.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}

/// True while the process exists and is not a zombie.
pub(crate) fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Runs a command, failing with its stderr when it fails.
pub fn sh(args: &[&str]) -> io::Result<Output> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output)
}

pub struct LabNode {
    pub name: String,
    pub namespace: String,
    pub mac: [u8; 6],
    /// Port on the lab's bridge, in the switch namespace.
    pub port: String,
    /// Its ports on the other LAN segments' bridges (`[[node.lan]]`), in the switch namespace.
    pub segment_ports: Vec<String>,
    pub vipd: Option<Child>,
    responder: Option<Child>,
    /// Crashed: off the LAN, and what its kernel still holds does not count.
    pub crashed: bool,
    /// keepalived running in this node instead of vipd: the parent and its VRRP child's pid file.
    keepalived: Option<(Child, PathBuf)>,
}

pub struct Lab {
    pub prefix: String,
    pub switch: String,
    pub client: String,
    pub nodes: Vec<LabNode>,
    pub config_path: PathBuf,
    pub config: Config,
    pub dir: PathBuf,
    vipd_binary: PathBuf,
    namespaces: Vec<String>,
    /// Other processes the lab started (DNS servers, ...), ended by pid on drop.
    others: Vec<Child>,
    /// Extra arguments for every `vipd run` the lab starts (a benchmark's knob).
    pub vipd_args: Vec<String>,
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Lab {
    /// Builds the lab for a cluster file (every node's interface must be `eth0`) and writes
    /// the file where the nodes read it. `tag` names the lab's namespaces.
    pub fn new(tag: &str, cluster_toml: &str, vipd_binary: &Path) -> io::Result<Lab> {
        if !is_root() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the lab needs root (CAP_NET_ADMIN, CAP_NET_RAW) to create network namespaces: run as root",
            ));
        }
        let config =
            Config::parse("lab.toml", cluster_toml).map_err(|e| io::Error::other(e.to_string()))?;
        // Daemons that fork (keepalived's VRRP child) are orphaned when their parent dies:
        // become their reaper, so that no zombie is left and none keeps a pid file alive.
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        let id = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("vipd-{tag}-{}-{id}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir)?;
        let config_path = dir.join("cluster.toml");
        std::fs::write(&config_path, cluster_toml)?;
        let mut lab = Lab {
            switch: format!("{prefix}-sw"),
            client: format!("{prefix}-client"),
            prefix,
            nodes: Vec::new(),
            config_path,
            config,
            dir,
            vipd_binary: vipd_binary.to_path_buf(),
            namespaces: Vec::new(),
            others: Vec::new(),
            vipd_args: Vec::new(),
        };
        // From here on, Drop cleans up whatever was made.
        lab.build()?;
        Ok(lab)
    }

    fn add_namespace(&mut self, name: &str) -> io::Result<()> {
        sh(&["ip", "netns", "add", name])?;
        self.namespaces.push(name.to_string());
        sh(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// A host on the bridge: veth `eth0` in `namespace`, its peer `port` on the bridge.
    fn attach(
        &self,
        namespace: &str,
        port: &str,
        mac: &[u8; 6],
        addresses: &[&str],
    ) -> io::Result<()> {
        self.attach_to(namespace, port, "br0", "eth0", mac, addresses)
    }

    /// A host on one of the lab's bridges: veth `interface` in `namespace`, its peer `port`
    /// on `bridge`.
    fn attach_to(
        &self,
        namespace: &str,
        port: &str,
        bridge: &str,
        interface: &str,
        mac: &[u8; 6],
        addresses: &[&str],
    ) -> io::Result<()> {
        let sw = self.switch.as_str();
        sh(&[
            "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", interface,
            "netns", namespace,
        ])?;
        sh(&["ip", "-n", sw, "link", "set", port, "master", bridge, "up"])?;
        // Lab links skip duplicate address detection, so link-local addresses are usable at
        // once; virtual addresses are added with NODAD anyway.
        for key in ["all", "default"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                namespace,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.accept_dad=0"),
            ])?;
        }
        sh(&[
            "ip",
            "-n",
            namespace,
            "link",
            "set",
            interface,
            "address",
            &mac_text(mac),
        ])?;
        sh(&[
            "ip",
            "netns",
            "exec",
            namespace,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{interface}.accept_dad=0"),
        ])?;
        for address in addresses {
            sh(&[
                "ip", "-n", namespace, "addr", "add", address, "dev", interface,
            ])?;
        }
        sh(&["ip", "-n", namespace, "link", "set", interface, "up"])?;
        Ok(())
    }

    /// The other LAN segments of the file (`[[node.lan]]`): a bridge each, every node that
    /// lists the interface on it with its address and link-local address there, and the
    /// client on it too (at .200 / ::200 of the first node's subnet there).
    fn build_segments(&mut self) -> io::Result<()> {
        let mut interfaces: Vec<String> = Vec::new();
        for node in &self.config.nodes {
            for lan in node.lans.iter().skip(1) {
                if !interfaces.contains(&lan.interface) {
                    interfaces.push(lan.interface.clone());
                }
            }
        }
        for (k, interface) in interfaces.iter().enumerate() {
            let bridge = format!("br{}", k + 1);
            let sw = self.switch.clone();
            sh(&[
                "ip",
                "-n",
                &sw,
                "link",
                "add",
                &bridge,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ])?;
            sh(&[
                "ip",
                "-n",
                &sw,
                "link",
                "set",
                &bridge,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])?;
            sh(&["ip", "-n", &sw, "link", "set", &bridge, "up"])?;
            let mut client_address = None;
            for (i, node) in self.config.nodes.clone().iter().enumerate() {
                let Some(lan) = node.lans.iter().find(|l| l.interface == *interface) else {
                    continue;
                };
                let prefix = if lan.address.is_ipv4() { 24 } else { 64 };
                let mut addresses = vec![format!("{}/{prefix}", lan.address)];
                if let Some(link_local) = lan.link_local {
                    addresses.push(format!("{link_local}/64"));
                }
                client_address.get_or_insert(match lan.address {
                    IpAddr::V4(v4) => {
                        let o = v4.octets();
                        format!("{}.{}.{}.200/24", o[0], o[1], o[2])
                    }
                    IpAddr::V6(v6) => {
                        let mut s = v6.segments();
                        s[7] = 0x200;
                        format!("{}/64", std::net::Ipv6Addr::from(s))
                    }
                });
                let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                let mac = [0x02, 0, 0, k as u8 + 1, 0x01, 0x10 + i as u8];
                let namespace = self.nodes[i].namespace.clone();
                let port = format!("p{i}s{}", k + 1);
                self.nodes[i].segment_ports.push(port.clone());
                self.attach_to(&namespace, &port, &bridge, interface, &mac, &refs)?;
            }
            if let Some(address) = client_address {
                let client = self.client.clone();
                let mac = [0x02, 0, 0, k as u8 + 1, 0x01, 0xc0];
                self.attach_to(
                    &client,
                    &format!("pcs{}", k + 1),
                    &bridge,
                    interface,
                    &mac,
                    &[&address],
                )?;
            }
        }
        Ok(())
    }

    fn build(&mut self) -> io::Result<()> {
        let switch = self.switch.clone();
        self.add_namespace(&switch)?;
        sh(&[
            "ip",
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        // Multicast snooping would need a querier to forward VRRP reliably: off, as on most LANs.
        sh(&[
            "ip",
            "-n",
            &switch,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        sh(&["ip", "-n", &switch, "link", "set", "br0", "up"])?;
        let nodes: Vec<(String, IpAddr)> = self
            .config
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.address))
            .collect();
        for (i, (name, address)) in nodes.iter().enumerate() {
            let namespace = format!("{}-{name}", self.prefix);
            self.add_namespace(&namespace)?;
            let mac = [0x02, 0, 0, 0, 0x01, 0x10 + i as u8];
            let port = format!("p{i}");
            let prefix = if address.is_ipv4() { 24 } else { 64 };
            let own = format!("{address}/{prefix}");
            let v6 = format!("2001:db8::{:x}/64", 0x10 + i);
            let mut addresses = vec![own.as_str()];
            if address.is_ipv4() {
                addresses.push(&v6);
            }
            self.attach(&namespace, &port, &mac, &addresses)?;
            self.nodes.push(LabNode {
                name: name.clone(),
                namespace,
                mac,
                port,
                segment_ports: Vec::new(),
                vipd: None,
                responder: None,
                crashed: false,
                keepalived: None,
            });
        }
        let client = self.client.clone();
        self.add_namespace(&client)?;
        self.attach(
            &client,
            "pc",
            &[0x02, 0, 0, 0, 0x01, 0xc0],
            &[CLIENT_V4, CLIENT_V6],
        )?;
        self.build_segments()?;
        Ok(())
    }

    /// Another host on the lab's LAN (a DNS server, say); returns its namespace.
    pub fn add_host(&mut self, name: &str, addresses: &[&str]) -> io::Result<String> {
        let namespace = format!("{}-{name}", self.prefix);
        self.add_namespace(&namespace)?;
        let index = self.namespaces.len() as u8;
        self.attach(
            &namespace,
            &format!("h{index}"),
            &[0x02, 0, 0, 0, 0x02, index],
            addresses,
        )?;
        Ok(namespace)
    }

    /// The pid of the node's running vipd.
    pub fn vipd_pid(&self, node: usize) -> Option<u32> {
        self.nodes[node].vipd.as_ref().map(Child::id)
    }

    /// Starts a process that the lab ends (by its pid) when dropped.
    pub fn spawn(&mut self, command: &mut Command) -> io::Result<u32> {
        let child = command.stdin(Stdio::null()).spawn()?;
        let pid = child.id();
        self.others.push(child);
        Ok(pid)
    }

    /// Runs `f` on a thread inside `namespace` (sockets it opens live there).
    pub fn in_namespace<T: Send>(namespace: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(format!("/var/run/netns/{namespace}"))?;
                    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(io::Error::from)?;
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("thread in namespace panicked"))?
        })
    }

    pub fn node(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no lab node {name}"))
    }

    pub fn control_path(&self, node: usize) -> PathBuf {
        self.dir.join(format!("{}.sock", self.nodes[node].name))
    }

    pub fn log_path(&self, node: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.nodes[node].name))
    }

    /// Starts the real vipd binary in the node's namespace.
    pub fn start(&mut self, node: usize) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[node].namespace])
            .arg(&self.vipd_binary)
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .args(["--node", &self.nodes[node].name])
            .arg("--control")
            .arg(self.control_path(node))
            // State (the drain mark) stays in the lab's folder, never the host's.
            .arg("--state-dir")
            .arg(&self.dir)
            .args(&self.vipd_args)
            .env("VIPD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.nodes[node].vipd = Some(child);
        Ok(())
    }

    /// Starts every node as a host of the cluster (the probe responder and vipd) and waits
    /// until each daemon answers on its control socket.
    pub fn start_cluster(&mut self) -> io::Result<()> {
        for node in 0..self.nodes.len() {
            self.start_responder(node)?;
            self.start(node)?;
        }
        for node in 0..self.nodes.len() {
            self.wait_ready(node, Duration::from_secs(5))?;
        }
        Ok(())
    }

    pub fn start_all(&mut self) -> io::Result<()> {
        for node in 0..self.nodes.len() {
            self.start(node)?;
        }
        Ok(())
    }

    /// Starts every node's vipd cut off from the LAN (its bridge port down: each comes up
    /// in fault), waits until all answer, then connects them all with one command: their
    /// elections begin within a millisecond of each other, however long each process took
    /// to start on a busy machine (the skew between three processes started one after the
    /// other reached 70 ms, more than the Skew_Time that orders the nodes). Returns when
    /// the ports went up.
    pub fn start_all_at_once(&mut self) -> io::Result<Instant> {
        self.set_ports((0..self.nodes.len()).collect(), false)?;
        for node in 0..self.nodes.len() {
            self.start(node)?;
        }
        for node in 0..self.nodes.len() {
            self.wait_ready(node, Duration::from_secs(10))?;
        }
        self.set_ports((0..self.nodes.len()).collect(), true)?;
        Ok(Instant::now())
    }

    /// Sets the bridge ports of `nodes` (on every segment) up or down with one `ip -batch`
    /// (at one instant).
    pub fn set_ports(&self, nodes: Vec<usize>, up: bool) -> io::Result<()> {
        let batch = self.dir.join("ports.batch");
        let state = if up { "up" } else { "down" };
        let lines: String = nodes
            .iter()
            .flat_map(|n| {
                std::iter::once(&self.nodes[*n].port).chain(&self.nodes[*n].segment_ports)
            })
            .map(|port| format!("link set {port} {state}\n"))
            .collect();
        std::fs::write(&batch, lines)?;
        sh(&[
            "ip",
            "-n",
            &self.switch,
            "-batch",
            batch.to_str().unwrap_or_default(),
        ])?;
        Ok(())
    }

    /// Sends `signal` to the node's vipd (by its pid) and waits for it to exit.
    pub fn signal(&mut self, node: usize, signal: nix::sys::signal::Signal) -> io::Result<()> {
        if let Some(mut child) = self.nodes[node].vipd.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, signal).map_err(io::Error::from)?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn kill(&mut self, node: usize) -> io::Result<()> {
        self.signal(node, nix::sys::signal::Signal::SIGKILL)?;
        self.stop_keepalived(node, nix::sys::signal::Signal::SIGKILL)
    }

    /// The host dies: its vipd is killed and it drops off the LAN at the same instant.
    pub fn crash(&mut self, node: usize) -> io::Result<()> {
        self.set_port(node, false)?;
        self.nodes[node].crashed = true;
        self.kill(node)
    }

    /// The crashed host is back on the LAN (its daemon not yet started).
    pub fn revive(&mut self, node: usize) -> io::Result<()> {
        self.set_port(node, true)?;
        self.nodes[node].crashed = false;
        Ok(())
    }

    pub fn stop(&mut self, node: usize) -> io::Result<()> {
        self.signal(node, nix::sys::signal::Signal::SIGTERM)?;
        self.stop_keepalived(node, nix::sys::signal::Signal::SIGTERM)
    }

    /// Starts a probe responder that answers with the node's name.
    pub fn start_responder(&mut self, node: usize) -> io::Result<()> {
        if self.nodes[node].responder.is_some() {
            return Ok(());
        }
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[node].namespace])
            .arg(&self.vipd_binary)
            .args(["lab-responder", "--name", &self.nodes[node].name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.nodes[node].responder = Some(child);
        Ok(())
    }

    /// Starts a probe from the client; collect its answers with [`Lab::finish_probe`].
    pub fn start_probe(&self, target: IpAddr, duration: Duration) -> io::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.client])
            .arg(&self.vipd_binary)
            .args([
                "lab-probe",
                "--target",
                &target.to_string(),
                "--duration-ms",
                &duration.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    pub fn finish_probe(&self, probe: Child) -> io::Result<Vec<probe::Answer>> {
        let output = probe.wait_with_output()?;
        Ok(probe::parse_answers(&String::from_utf8_lossy(
            &output.stdout,
        )))
    }

    /// Runs a command inside a namespace.
    pub fn exec(&self, namespace: &str, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["ip", "netns", "exec", namespace];
        all.extend_from_slice(args);
        Ok(String::from_utf8_lossy(&sh(&all)?.stdout).to_string())
    }

    /// The addresses the kernel has on the node's eth0.
    pub fn addresses(&self, node: usize) -> io::Result<Vec<IpAddr>> {
        self.addresses_on(node, "eth0")
    }

    /// The addresses on `node`'s interface `interface`, as its kernel says.
    pub fn addresses_on(&self, node: usize, interface: &str) -> io::Result<Vec<IpAddr>> {
        let out = sh(&[
            "ip",
            "-n",
            &self.nodes[node].namespace,
            "-j",
            "addr",
            "show",
            "dev",
            interface,
        ])?;
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(io::Error::other)?;
        let mut found = Vec::new();
        for link in json.as_array().into_iter().flatten() {
            for info in link["addr_info"].as_array().into_iter().flatten() {
                if let Some(address) = info["local"].as_str().and_then(|a| a.parse().ok()) {
                    found.push(address);
                }
            }
        }
        Ok(found)
    }

    /// Which live nodes hold `address` on `interface` now, according to their kernels.
    pub fn holders_on(&self, address: IpAddr, interface: &str) -> io::Result<Vec<String>> {
        let mut holders = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.crashed && self.addresses_on(i, interface)?.contains(&address) {
                holders.push(node.name.clone());
            }
        }
        Ok(holders)
    }

    /// Which live nodes hold `address` now, according to their kernels.
    pub fn holders(&self, address: IpAddr) -> io::Result<Vec<String>> {
        let mut holders = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.crashed && self.addresses(i)?.contains(&address) {
                holders.push(node.name.clone());
            }
        }
        Ok(holders)
    }

    /// Polls until exactly `node` holds `address`, up to `limit`; returns when it did.
    pub fn wait_for_holder(
        &self,
        address: IpAddr,
        node: &str,
        limit: Duration,
    ) -> io::Result<Duration> {
        let start = Instant::now();
        loop {
            if self.holders(address)? == [node.to_string()] {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(io::Error::other(format!(
                    "{address} is held by {:?}, not by {node} alone, after {limit:?}",
                    self.holders(address)?
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The MAC the client's neighbour table has for `address`, if any.
    pub fn client_neighbour(&self, address: IpAddr) -> io::Result<Option<String>> {
        let out = sh(&[
            "ip",
            "-n",
            &self.client,
            "-j",
            "neigh",
            "show",
            "to",
            &address.to_string(),
            "dev",
            "eth0",
        ])?;
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(io::Error::other)?;
        Ok(json
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e["lladdr"].as_str())
            .map(str::to_string))
    }

    pub fn mac_of(&self, node: usize) -> String {
        mac_text(&self.nodes[node].mac)
    }

    /// Takes the node's ports on the bridges down or up: its eth0 (and its interfaces on
    /// the other segments) lose or regain carrier.
    pub fn set_port(&self, node: usize, up: bool) -> io::Result<()> {
        if self.nodes[node].segment_ports.is_empty() {
            sh(&[
                "ip",
                "-n",
                &self.switch,
                "link",
                "set",
                &self.nodes[node].port,
                if up { "up" } else { "down" },
            ])?;
            return Ok(());
        }
        self.set_ports(vec![node], up)
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.log_path(node)).unwrap_or_default()
    }

    /// Every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("--- {} ---\n{}", self.nodes[i].name, self.log(i)))
            .collect()
    }

    /// The node's status from its control socket.
    pub fn status(&self, node: usize) -> io::Result<crate::daemon::status::Status> {
        let out = sh(&[
            self.vipd_binary.to_str().unwrap_or("vipd"),
            "status",
            "--json",
            "--control",
            self.control_path(node).to_str().unwrap_or_default(),
        ])?;
        serde_json::from_slice(&out.stdout).map_err(io::Error::other)
    }

    /// Runs `vipd ARGS --control <node's socket>` on the host (the control socket is a file:
    /// no namespace needed) and returns its output.
    pub fn vipd(&self, node: usize, args: &[&str]) -> io::Result<Output> {
        Command::new(&self.vipd_binary)
            .args(args)
            .arg("--control")
            .arg(self.control_path(node))
            .stdin(Stdio::null())
            .output()
    }

    /// Sends `signal` to the node's vipd by its pid, without waiting for anything.
    pub fn send_signal(&self, node: usize, signal: nix::sys::signal::Signal) -> io::Result<()> {
        let pid = self
            .vipd_pid(node)
            .ok_or_else(|| io::Error::other("vipd does not run on that node"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .map_err(io::Error::from)
    }

    /// True while the node's vipd process is alive.
    pub fn vipd_running(&mut self, node: usize) -> bool {
        match self.nodes[node].vipd.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Writes a new cluster file where every node reads it (then `vipd reload` or SIGHUP).
    pub fn write_config(&mut self, toml: &str) -> io::Result<()> {
        std::fs::write(&self.config_path, toml)
    }

    /// Waits until the node's control socket answers.
    pub fn wait_ready(&self, node: usize, limit: Duration) -> io::Result<()> {
        let start = Instant::now();
        while self.status(node).is_err() {
            if start.elapsed() > limit {
                return Err(io::Error::other(format!(
                    "{} did not come up:\n{}",
                    self.nodes[node].name,
                    self.log(node)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut child in self.others.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in 0..self.nodes.len() {
            let _ = self.stop_keepalived(node, nix::sys::signal::Signal::SIGKILL);
        }
        for node in &mut self.nodes {
            for child in [node.vipd.take(), node.responder.take()]
                .into_iter()
                .flatten()
            {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for namespace in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
