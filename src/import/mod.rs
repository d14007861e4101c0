//! `vipd import-keepalived`: the keepalived.conf of each node in, ONE cluster file out, and
//! a line-by-line list (file:line) of what could not be carried over.
//!
//! [`syntax`] reads keepalived's brace syntax into statements; [`convert`] maps the VRRP
//! part onto vipd's cluster file: one node per input file, one group per `vrrp_instance`
//! (matched across files by VRID and address family). Pure: no file or network access; the
//! result is checked with [`Config::parse`] before it is returned.

pub mod syntax;

use crate::config::{Config, VirtualAddress};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use syntax::Statement;

/// One node's keepalived.conf.
#[derive(Debug, Clone)]
pub struct Input {
    /// How the file is named in notes and errors (its path).
    pub file: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// `[cluster] name`.
    pub cluster_name: String,
    /// `[cluster] zone`.
    pub zone: String,
    /// Node addresses given on the command line (node name → address), for nodes whose
    /// file has no `unicast_src_ip`.
    pub addresses: Vec<(String, IpAddr)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_name: "imported".to_string(),
            zone: "cluster.example.".to_string(),
            addresses: Vec::new(),
        }
    }
}

/// Something of a keepalived.conf that the cluster file does not carry, or carries
/// differently: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The converted cluster file and the notes about it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub toml: String,
    /// The nodes, in input order, with the file each came from.
    pub nodes: Vec<(String, String)>,
    pub notes: Vec<Note>,
}

/// Why nothing was written, with the notes gathered so far.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub message: String,
    pub notes: Vec<Note>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}

/// A notify or track script become a vipd resource.
#[derive(Debug, Clone)]
struct Resource {
    name: String,
    start: String,
    stop: String,
    check: Option<String>,
    check_interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

/// One `vrrp_instance` of one node.
#[derive(Debug, Clone)]
struct Instance {
    name: String,
    line: usize,
    vrid: u8,
    priority: u8,
    addresses: Vec<VirtualAddress>,
    advert_ms: u64,
    version: u8,
    preempt: bool,
    preempt_delay_s: u64,
    unicast_peers: Vec<(IpAddr, usize)>,
    announce_count: Option<u32>,
    announce_refresh_s: Option<u64>,
    resources: Vec<Resource>,
    /// `use_vmac`: the group's addresses on a virtual-MAC link (`vmac = true`).
    vmac: bool,
    /// track_script entries: (script name, weight).
    track_scripts: Vec<(String, i64)>,
    /// track_interface entries: (interface, weight).
    track_interfaces: Vec<(String, i64)>,
}

impl Instance {
    fn v6(&self) -> bool {
        self.addresses.first().is_some_and(|a| a.address.is_ipv6())
    }
}

struct Node {
    name: String,
    file: String,
    interface: String,
    address: Option<IpAddr>,
    instances: Vec<Instance>,
    /// Its vrrp_script blocks, by name.
    scripts: BTreeMap<String, Script>,
}

struct Notes<'a> {
    file: &'a str,
    notes: &'a mut Vec<Note>,
}

impl Notes<'_> {
    fn add(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note {
            file: self.file.to_string(),
            line,
            message: message.into(),
        });
    }
}

/// A DNS label made of `text`: lower case, other characters as `-`.
fn label(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out: String = out.trim_matches('-').chars().take(63).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "node".to_string()
    } else {
        out
    }
}

/// Every word of a list block (`track_interface { eth0 eth1 }`, one per line or not).
fn list_items(statement: &Statement) -> Vec<(String, usize)> {
    statement
        .children()
        .iter()
        .flat_map(|s| {
            std::iter::once((s.keyword.clone(), s.line))
                .chain(s.args.iter().map(move |a| (a.clone(), s.line)))
        })
        .collect()
}

/// keepalived's seconds ("1", "0.1", "2.5") in milliseconds.
fn seconds_ms(text: &str) -> Option<u64> {
    let value: f64 = text.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * 1000.0).round() as u64)
}

fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A `vrrp_script` block: what a track_script refers to.
#[derive(Debug, Clone, PartialEq)]
struct Script {
    command: String,
    interval_ms: u64,
    timeout_ms: Option<u64>,
    weight: i64,
    rise: Option<u64>,
    fall: Option<u64>,
    init_fail: bool,
    line: usize,
}

/// The entries of a `track_script` or `track_interface` block: a name, then optionally
/// `weight N` and `reverse`/`noreverse`, one per line or several on one line.
fn tracked_entries(statement: &Statement) -> Vec<(String, Option<i64>, bool, usize)> {
    let words = list_items(statement);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (name, line) = words[i].clone();
        i += 1;
        let mut weight = None;
        let mut reverse = false;
        if words.get(i).is_some_and(|(w, _)| w == "weight") {
            weight = words.get(i + 1).and_then(|(w, _)| w.parse::<i64>().ok());
            i += 2;
        }
        if let Some((word, _)) = words.get(i)
            && ["reverse", "noreverse", "no_reverse"].contains(&word.as_str())
        {
            reverse = word == "reverse";
            i += 1;
        }
        entries.push((name, weight, reverse, line));
    }
    entries
}

fn read_script(statement: &Statement, notes: &mut Notes) -> Option<Script> {
    let mut script = Script {
        command: String::new(),
        interval_ms: 1000,
        timeout_ms: None,
        weight: 0,
        rise: None,
        fall: None,
        init_fail: false,
        line: statement.line,
    };
    for item in statement.children() {
        let arg = item.args.first().map(String::as_str).unwrap_or("");
        match item.keyword.as_str() {
            "script" => script.command = item.args.join(" "),
            "interval" => script.interval_ms = seconds_ms(arg).unwrap_or(1000),
            "timeout" => script.timeout_ms = seconds_ms(arg),
            "weight" => {
                script.weight = arg.parse::<i64>().unwrap_or(0).clamp(-253, 253);
                if item.args.iter().any(|a| a == "reverse") {
                    notes.add(
                        item.line,
                        format!(
                            "vrrp_script {}: `weight ... reverse` not carried over (vipd has no \
                             reverse weights); the plain weight is used",
                            statement.text()
                        ),
                    );
                }
            }
            "rise" => script.rise = arg.parse().ok().filter(|n| (1..=1000).contains(n)),
            "fall" => script.fall = arg.parse().ok().filter(|n| (1..=1000).contains(n)),
            "init_fail" => script.init_fail = true,
            other => notes.add(
                item.line,
                format!(
                    "vrrp_script {}: `{other}` not carried over",
                    statement.text()
                ),
            ),
        }
    }
    (!script.command.is_empty()).then_some(script)
}

/// The scripts a sync group runs for its members.
#[derive(Default, Clone)]
struct Notify {
    master: Option<(String, usize)>,
    backup: Option<(String, usize)>,
    generic: Option<(String, usize)>,
}

impl Notify {
    fn read(&mut self, item: &Statement) -> bool {
        let command = (item.args.join(" "), item.line);
        match item.keyword.as_str() {
            "notify_master" => self.master = Some(command),
            "notify_backup" => self.backup = Some(command),
            "notify" => self.generic = Some(command),
            _ => return false,
        }
        true
    }

    /// One resource running the scripts, or none. `kind`/`name`: keepalived's arguments of
    /// the generic `notify` script (INSTANCE or GROUP, and the name).
    fn resource(
        &self,
        resource_name: &str,
        kind: &str,
        name: &str,
        priority: u8,
    ) -> Option<Resource> {
        let generic = |state: &str| {
            self.generic
                .as_ref()
                .map(|(c, _)| format!("{c} {kind} {name} {state} {priority}"))
        };
        let join = |parts: [Option<String>; 2]| {
            let parts: Vec<String> = parts.into_iter().flatten().collect();
            (!parts.is_empty()).then(|| parts.join(" ; "))
        };
        let start = join([
            self.master.as_ref().map(|(c, _)| c.clone()),
            generic("MASTER"),
        ]);
        let stop = join([
            self.backup.as_ref().map(|(c, _)| c.clone()),
            generic("BACKUP"),
        ]);
        if start.is_none() && stop.is_none() {
            return None;
        }
        Some(Resource {
            name: resource_name.to_string(),
            start: start.unwrap_or_else(|| "true".to_string()),
            stop: stop.unwrap_or_else(|| "true".to_string()),
            check: None,
            check_interval_ms: None,
            timeout_ms: None,
        })
    }

    fn line(&self) -> Option<usize> {
        [&self.master, &self.backup, &self.generic]
            .into_iter()
            .flatten()
            .map(|(_, l)| *l)
            .min()
    }
}

/// A `vrrp_sync_group`: its member instances and the scripts it runs for them.
struct SyncGroup {
    name: String,
    line: usize,
    members: Vec<String>,
    notify: Notify,
}

const NOTIFY_NOTE: &str = "vipd runs it as a resource: its start when this node becomes the owner, its stop when it steps down; a failing start gives the group up (keepalived ignored notify exit codes)";

/// What one `vrrp_instance` block says, before it is fitted to its node.
struct Written {
    name: String,
    line: usize,
    vrid: Option<u8>,
    priority: (String, usize),
    advert_ms: u64,
    version: Option<u8>,
    preempt: bool,
    preempt_delay_s: u64,
    interface: Option<(String, usize)>,
    addresses: Vec<VirtualAddress>,
    unicast_src: Option<(IpAddr, usize)>,
    unicast_peers: Vec<(IpAddr, usize)>,
    announce_count: Option<u32>,
    announce_refresh_s: Option<u64>,
    vmac: bool,
    /// track_script entries: script name, weight written there, reverse, line.
    scripts: Vec<(String, Option<i64>, bool, usize)>,
    /// track_interface entries: interface, weight, reverse, line.
    interfaces: Vec<(String, Option<i64>, bool, usize)>,
    notify: Notify,
}

fn at(instance: &str, what: &str) -> String {
    format!("vrrp_instance {instance}: {what}")
}

/// The addresses of a `virtual_ipaddress` (or `_excluded`) block into `addresses`.
fn read_addresses(
    list: &Statement,
    instance: &str,
    notes: &mut Notes,
    addresses: &mut Vec<VirtualAddress>,
) {
    for entry in list.children() {
        let text = &entry.keyword;
        let mut parsed: VirtualAddress = match text.parse() {
            Ok(a) => a,
            Err(why) => {
                let what = format!("{} {text}: {why}; not carried over", list.keyword);
                notes.add(entry.line, at(instance, &what));
                continue;
            }
        };
        if !text.contains('/') {
            // keepalived's default: a host address.
            parsed.prefix_len = if parsed.address.is_ipv4() { 32 } else { 128 };
        }
        let options = entry.args.join(" ");
        if let Some(position) = entry.args.iter().position(|o| o == "dev") {
            let dev = entry.args.get(position + 1).map_or("", |s| s.as_str());
            let what = format!(
                "{text} dev {dev}: vipd puts every address on the node's one interface; \
                 not carried over"
            );
            notes.add(entry.line, at(instance, &what));
            continue;
        }
        if !options.is_empty() {
            let what = format!("{text}: options `{options}` not carried over");
            notes.add(entry.line, at(instance, &what));
        }
        if addresses.iter().any(|a| a.address == parsed.address) {
            let what = format!("{text} is listed twice; kept once");
            notes.add(entry.line, at(instance, &what));
            continue;
        }
        addresses.push(parsed);
    }
}

/// Reads a `vrrp_instance` block; an error is `line: message`.
fn read_instance(statement: &Statement, notes: &mut Notes) -> Result<Written, String> {
    let name = statement.args.first().cloned().unwrap_or_default();
    let mut w = Written {
        name: name.clone(),
        line: statement.line,
        vrid: None,
        priority: ("100".to_string(), statement.line),
        advert_ms: 1000,
        version: None,
        preempt: true,
        preempt_delay_s: 0,
        interface: None,
        addresses: Vec::new(),
        unicast_src: None,
        unicast_peers: Vec::new(),
        announce_count: None,
        announce_refresh_s: None,
        vmac: false,
        scripts: Vec::new(),
        interfaces: Vec::new(),
        notify: Notify::default(),
    };
    let at = |what: &str| at(&name, what);
    for item in statement.children() {
        let arg = item.args.first().cloned().unwrap_or_default();
        let line = item.line;
        match item.keyword.as_str() {
            "state" => {
                let what = format!(
                    "state {arg}: vipd elects by priority alone; the starting state is not \
                     carried over"
                );
                notes.add(line, at(&what));
            }
            "interface" => w.interface = Some((arg, line)),
            "virtual_router_id" => match arg.parse::<u8>() {
                Ok(v) if v >= 1 => w.vrid = Some(v),
                _ => {
                    let what = format!("virtual_router_id {arg} is not 1..=255");
                    return Err(format!("{line}: {}", at(&what)));
                }
            },
            "priority" => w.priority = (arg, line),
            "advert_int" => match seconds_ms(&arg) {
                Some(ms) => w.advert_ms = ms,
                None => {
                    let what = format!("advert_int {arg} is not a number of seconds; 1s used");
                    notes.add(line, at(&what));
                }
            },
            "version" => w.version = arg.parse::<u8>().ok().filter(|v| (2..=3).contains(v)),
            "nopreempt" => w.preempt = false,
            "preempt" => w.preempt = true,
            "preempt_delay" => {
                w.preempt_delay_s = seconds_ms(&arg).map_or(0, |ms| ms.div_ceil(1000));
            }
            "virtual_ipaddress" => read_addresses(item, &name, notes, &mut w.addresses),
            "virtual_ipaddress_excluded" => {
                let before = w.addresses.len();
                read_addresses(item, &name, notes, &mut w.addresses);
                if w.addresses.len() > before {
                    let what = "virtual_ipaddress_excluded: carried over as ordinary addresses \
                                (vipd lists every address in its adverts)";
                    notes.add(line, at(what));
                }
            }
            "unicast_src_ip" => match arg.parse::<IpAddr>() {
                Ok(ip) => w.unicast_src = Some((ip, line)),
                Err(_) => notes.add(line, at(&format!("unicast_src_ip {arg} is not an address"))),
            },
            "unicast_peer" => {
                for (peer, line) in list_items(item) {
                    match peer.parse::<IpAddr>() {
                        Ok(ip) => w.unicast_peers.push((ip, line)),
                        Err(_) => {
                            notes.add(line, at(&format!("unicast_peer {peer} is not an address")))
                        }
                    }
                }
            }
            "track_interface" => w.interfaces.extend(tracked_entries(item)),
            "track_script" => w.scripts.extend(tracked_entries(item)),
            "notify_master" | "notify_backup" | "notify" => {
                w.notify.read(item);
            }
            "notify_fault" | "notify_stop" | "notify_master_rx_lower_pri" => {
                let what = format!(
                    "{}: not carried over (vipd runs the resource's stop command whenever it \
                     gives the group up)",
                    item.keyword
                );
                notes.add(line, at(&what));
            }
            "garp_master_repeat" => w.announce_count = arg.parse().ok(),
            "garp_master_refresh" => w.announce_refresh_s = arg.parse().ok(),
            "authentication" => {
                let what = "authentication: vipd sends and checks none (VRRPv3 has none); not \
                            carried over (vipd drops adverts from addresses that are not nodes)";
                notes.add(line, at(what));
            }
            "use_vmac" => {
                w.vmac = true;
                if !arg.is_empty() {
                    let what = format!(
                        "use_vmac {arg}: carried over as vmac = true; vipd names the link \
                         itself (vrrp.<vrid>, vrrp6.<vrid>)"
                    );
                    notes.add(line, at(&what));
                }
            }
            other => notes.add(line, at(&format!("`{other}` not carried over"))),
        }
    }
    Ok(w)
}

/// What a node's earlier statements decided, for fitting its next instance.
struct NodeSoFar<'a> {
    /// The node's interface: that of its first usable instance.
    interface: &'a mut Option<String>,
    address: &'a mut Option<IpAddr>,
    instances: &'a [Instance],
    /// global_defs vrrp_version (keepalived's default: 2).
    version: u8,
    scripts: &'a BTreeMap<String, Script>,
    sync_groups: &'a [SyncGroup],
}

/// Fits a read instance to its node: `None` (with a note) when vipd cannot run it there.
fn finish_instance(w: Written, node: NodeSoFar, notes: &mut Notes) -> Option<Instance> {
    let name = w.name.clone();
    let at = |what: &str| at(&name, what);
    let Some(vrid) = w.vrid else {
        notes.add(w.line, at("no virtual_router_id; skipped"));
        return None;
    };
    let Some((interface, interface_line)) = w.interface else {
        notes.add(w.line, at("no interface; skipped"));
        return None;
    };
    match node.interface {
        Some(first) if *first != interface => {
            let what = format!(
                "interface {interface}: vipd runs on one interface per node ({first}, from the \
                 first instance); instance skipped"
            );
            notes.add(interface_line, at(&what));
            return None;
        }
        Some(_) => {}
        None => *node.interface = Some(interface),
    }
    if w.addresses.is_empty() {
        notes.add(w.line, at("no virtual address left; skipped"));
        return None;
    }
    if let Some((ip, line)) = w.unicast_src {
        match node.address {
            Some(known) if *known != ip => {
                let what = format!(
                    "unicast_src_ip {ip} differs from {known} of an earlier instance; vipd has \
                     one address per node"
                );
                notes.add(line, at(&what));
            }
            _ => *node.address = Some(ip),
        }
    }
    let v6 = w.addresses[0].address.is_ipv6();
    // keepalived runs IPv6 over VRRPv3 whatever vrrp_version says; so does vipd.
    let any_v6 = w.addresses.iter().any(|a| a.address.is_ipv6());
    let written_version = w.version.unwrap_or(node.version);
    let version = if any_v6 { 3 } else { written_version };
    if version != written_version && !v6 {
        notes.add(w.line, at("IPv4 and IPv6 addresses: VRRP version 3 used"));
    }
    let advert_ms = if version == 2 {
        let seconds = w.advert_ms.div_ceil(1000).clamp(1, 255);
        if seconds * 1000 != w.advert_ms {
            let what = format!(
                "advert_int {}s rounded to {seconds}s (VRRPv2 counts whole seconds)",
                w.advert_ms as f64 / 1000.0
            );
            notes.add(w.line, at(&what));
        }
        seconds * 1000
    } else {
        let centiseconds = w.advert_ms.div_ceil(10).clamp(1, 4095);
        if centiseconds * 10 != w.advert_ms {
            let what = format!(
                "advert_int rounded to {}ms (VRRPv3 counts centiseconds)",
                centiseconds * 10
            );
            notes.add(w.line, at(&what));
        }
        centiseconds * 10
    };
    let (written_priority, priority_line) = w.priority;
    let priority = match written_priority.parse::<u8>() {
        Ok(p) if p >= 1 => p,
        _ => {
            let what = format!("priority {written_priority} is not 1..=255; 100 used");
            notes.add(priority_line, at(&what));
            100
        }
    };
    let mut resources = Vec::new();
    // keepalived zeroes the tracking weights of a sync group's members (unless
    // sync_group_tracking_weight): a failure then faults the instance.
    let in_sync_group = node.sync_groups.iter().any(|g| g.members.contains(&name));
    let weighed = |notes: &mut Notes,
                   kind: &str,
                   tracked: &str,
                   weight: i64,
                   reverse: bool,
                   line: usize| {
        if reverse {
            let what = format!(
                "{kind} {tracked}: `reverse` not carried over (vipd has no reverse weights); \
                 not tracked"
            );
            notes.add(line, at(&what));
            return None;
        }
        if in_sync_group && weight != 0 {
            let what = format!(
                "{kind} {tracked}: weight {weight} in a vrrp_sync_group member: keepalived uses \
                 weight 0 there (fault while it fails), so does the converted file"
            );
            notes.add(line, at(&what));
            return Some(0);
        }
        Some(weight.clamp(-253, 253))
    };
    let mut track_scripts = Vec::new();
    for (script_name, weight, reverse, line) in w.scripts {
        let Some(script) = node.scripts.get(&script_name) else {
            let what = format!(
                "track_script {script_name}: no vrrp_script of that name; not carried over"
            );
            notes.add(line, at(&what));
            continue;
        };
        let weight = weight.unwrap_or(script.weight);
        if let Some(weight) = weighed(notes, "track_script", &script_name, weight, reverse, line)
            && !track_scripts.iter().any(|(n, _)| *n == script_name)
        {
            track_scripts.push((script_name, weight));
        }
    }
    let mut track_interfaces = Vec::new();
    for (tracked, weight, reverse, line) in w.interfaces {
        let valid = !tracked.is_empty() && tracked.len() <= 15 && !tracked.contains(['/', ' ']);
        if !valid {
            notes.add(
                line,
                at(&format!("track_interface {tracked}: not an interface name")),
            );
            continue;
        }
        if let Some(weight) = weighed(
            notes,
            "track_interface",
            &tracked,
            weight.unwrap_or(0),
            reverse,
            line,
        ) && !track_interfaces.iter().any(|(n, _)| *n == tracked)
        {
            track_interfaces.push((tracked, weight));
        }
    }
    if let Some(resource) = w.notify.resource("notify", "INSTANCE", &name, priority) {
        let line = w.notify.line().unwrap_or(w.line);
        notes.add(line, at(&format!("notify scripts: {NOTIFY_NOTE}")));
        resources.push(resource);
    }
    for group in node.sync_groups {
        if !group.members.contains(&name) {
            continue;
        }
        let resource_name = format!("sync-{}", label(&group.name));
        if let Some(resource) =
            group
                .notify
                .resource(&resource_name, "GROUP", &group.name, priority)
        {
            let what = format!(
                "vrrp_sync_group {}: notify scripts carried over to {name}: they run once per \
                 member group; {NOTIFY_NOTE}",
                group.name
            );
            notes.add(group.notify.line().unwrap_or(group.line), what);
            resources.push(resource);
        }
    }
    if node
        .instances
        .iter()
        .any(|i| i.vrid == vrid && i.v6() == v6)
    {
        let what = format!(
            "VRID {vrid} is used twice for one address family on one interface; instance skipped"
        );
        notes.add(w.line, at(&what));
        return None;
    }
    Some(Instance {
        name: w.name,
        line: w.line,
        vrid,
        priority,
        addresses: w.addresses,
        advert_ms,
        version,
        preempt: w.preempt,
        preempt_delay_s: w.preempt_delay_s,
        unicast_peers: w.unicast_peers,
        announce_count: w.announce_count,
        announce_refresh_s: w.announce_refresh_s,
        resources,
        vmac: w.vmac,
        track_scripts,
        track_interfaces,
    })
}

/// Reads one node's file.
fn read_node(input: &Input, notes: &mut Vec<Note>) -> Result<Node, ImportError> {
    let tree = syntax::parse(&input.text).map_err(|e| ImportError {
        message: format!("{}:{}: {}", input.file, e.line, e.message),
        notes: notes.clone(),
    })?;
    let mut notes = Notes {
        file: &input.file,
        notes,
    };
    let mut router_id = None;
    let mut version = 2u8;
    let mut scripts = BTreeMap::new();
    let mut sync_groups: Vec<SyncGroup> = Vec::new();
    for statement in &tree {
        match statement.keyword.as_str() {
            "global_defs" => {
                for item in statement.children() {
                    let arg = item.args.first().cloned().unwrap_or_default();
                    match item.keyword.as_str() {
                        "router_id" => router_id = Some(arg),
                        "vrrp_version" => match arg.as_str() {
                            "2" => version = 2,
                            "3" => version = 3,
                            _ => notes.add(item.line, format!("vrrp_version {arg} is not 2 or 3")),
                        },
                        other => notes.add(
                            item.line,
                            format!("global_defs `{other}` not carried over"),
                        ),
                    }
                }
            }
            "vrrp_script" => {
                let name = statement.args.first().cloned().unwrap_or_default();
                if let Some(script) = read_script(statement, &mut notes) {
                    scripts.insert(name, script);
                } else {
                    notes.add(statement.line, format!("vrrp_script {name} has no `script`"));
                }
            }
            "vrrp_sync_group" => {
                let name = statement.args.first().cloned().unwrap_or_default();
                let mut members = Vec::new();
                let mut notify = Notify::default();
                for item in statement.children() {
                    if item.keyword == "group" {
                        members.extend(list_items(item).into_iter().map(|(m, _)| m));
                    } else if item.args.is_empty()
                        && item.block.is_none()
                        && !["smtp_alert", "global_tracking", "sync_group_tracking_weight"]
                            .contains(&item.keyword.as_str())
                    {
                        // Older syntax: the member instances listed without `group { }`.
                        members.push(item.keyword.clone());
                    } else if !notify.read(item) {
                        notes.add(
                            item.line,
                            format!("vrrp_sync_group {name}: `{}` not carried over", item.keyword),
                        );
                    }
                }
                notes.add(
                    statement.line,
                    format!(
                        "vrrp_sync_group {name}: vipd has no sync groups; its instances ({}) become separate groups with the same priorities, so they normally have the same owner, but one that fails alone moves alone",
                        members.join(", ")
                    ),
                );
                sync_groups.push(SyncGroup {
                    name,
                    line: statement.line,
                    members,
                    notify,
                });
            }
            "vrrp_instance" => {}
            "include" => notes.add(
                statement.line,
                format!(
                    "include {}: not followed; give the included VRRP configuration as part of this node's file",
                    statement.args.join(" ")
                ),
            ),
            "virtual_server" | "virtual_server_group" => notes.add(
                statement.line,
                format!(
                    "{}: LVS load balancing is not part of vipd; not carried over",
                    statement.text()
                ),
            ),
            other => notes.add(
                statement.line,
                format!("`{other}` block not carried over (vipd has no equivalent)"),
            ),
        }
    }
    let mut interface: Option<String> = None;
    let mut address: Option<IpAddr> = None;
    let mut instances: Vec<Instance> = Vec::new();
    for statement in tree.iter().filter(|s| s.keyword == "vrrp_instance") {
        let written = read_instance(statement, &mut notes).map_err(|message| ImportError {
            message: format!("{}:{message}", input.file),
            notes: notes.notes.clone(),
        })?;
        let node = NodeSoFar {
            interface: &mut interface,
            address: &mut address,
            instances: &instances,
            version,
            scripts: &scripts,
            sync_groups: &sync_groups,
        };
        if let Some(instance) = finish_instance(written, node, &mut notes) {
            instances.push(instance);
        }
    }
    let Some(interface) = interface else {
        return Err(ImportError {
            message: format!(
                "{}: no usable vrrp_instance (with virtual_router_id, interface and addresses): nothing to convert",
                input.file
            ),
            notes: notes.notes.clone(),
        });
    };
    let name = router_id.unwrap_or_else(|| {
        std::path::Path::new(&input.file)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    Ok(Node {
        name,
        file: input.file.clone(),
        interface,
        address,
        instances,
        scripts,
    })
}

/// Converts the keepalived.conf of every node (one file per node) into one cluster file.
pub fn convert(inputs: &[Input], options: &Options) -> Result<Imported, ImportError> {
    let mut notes = Vec::new();
    if inputs.is_empty() {
        return Err(ImportError {
            message: "no keepalived.conf given".to_string(),
            notes,
        });
    }
    let mut nodes = Vec::new();
    for input in inputs {
        nodes.push(read_node(input, &mut notes)?);
    }
    // Node names: router_id when every file has a distinct one, else the file names.
    let ids: Vec<String> = nodes.iter().map(|n| label(&n.name)).collect();
    let distinct = {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len() == ids.len()
    };
    let mut used: Vec<String> = Vec::new();
    for (node, id) in nodes.iter_mut().zip(ids) {
        let base = if distinct {
            id
        } else {
            let file = std::path::Path::new(&node.file)
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            label(&file)
        };
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        used.push(name.clone());
        node.name = name;
    }
    for (given, _) in &options.addresses {
        if !nodes.iter().any(|n| n.name == *given || n.file == *given) {
            return Err(ImportError {
                message: format!(
                    "--address {given}=...: no node or file of that name (nodes: {})",
                    used.join(", ")
                ),
                notes,
            });
        }
    }
    for node in &mut nodes {
        if let Some((_, address)) = options
            .addresses
            .iter()
            .find(|(n, _)| *n == node.name || *n == node.file)
        {
            node.address = Some(*address);
        }
        if node.address.is_none() {
            return Err(ImportError {
                message: format!(
                    "{}: keepalived.conf does not say node {}'s own address (no unicast_src_ip): give it with --address {}=IP",
                    node.file, node.name, node.name
                ),
                notes,
            });
        }
    }
    // Groups: instances matched across nodes by VRID and family, in first-seen order.
    struct Merged {
        first: Instance,
        file: String,
        members: Vec<(usize, u8)>,
        unicast: bool,
    }
    let mut groups: Vec<Merged> = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let mut file_notes = Notes {
            file: &node.file,
            notes: &mut notes,
        };
        for instance in &node.instances {
            let mut priority = instance.priority;
            let owns = instance
                .addresses
                .iter()
                .any(|a| Some(a.address) == node.address);
            if owns && priority != 255 {
                file_notes.add(
                    instance.line,
                    format!(
                        "vrrp_instance {}: {} is this node's own address, so it owns the group: \
                         priority 255 used",
                        instance.name,
                        node.address.unwrap()
                    ),
                );
                priority = 255;
            } else if !owns && priority == 255 {
                file_notes.add(
                    instance.line,
                    format!(
                        "vrrp_instance {}: priority 255 is for the owner of the address, which \
                         this node is not: 254 used",
                        instance.name
                    ),
                );
                priority = 254;
            }
            for (peer, line) in &instance.unicast_peers {
                if !nodes.iter().any(|n| n.address == Some(*peer)) {
                    file_notes.add(
                        *line,
                        format!(
                            "vrrp_instance {}: unicast_peer {peer} is not one of the converted \
                             nodes: convert its keepalived.conf too (or add it as a [[node]])",
                            instance.name
                        ),
                    );
                }
            }
            match groups
                .iter_mut()
                .find(|g| g.first.vrid == instance.vrid && g.first.v6() == instance.v6())
            {
                Some(group) => {
                    let differs = |what: &str, file_notes: &mut Notes| {
                        file_notes.add(
                            instance.line,
                            format!(
                                "vrrp_instance {}: {what} differs from {} ({}); the first file's is used",
                                instance.name, group.file, group.first.name
                            ),
                        )
                    };
                    let mut mine: Vec<_> = instance.addresses.clone();
                    let mut theirs: Vec<_> = group.first.addresses.clone();
                    mine.sort_by_key(|a| a.to_string());
                    theirs.sort_by_key(|a| a.to_string());
                    if mine != theirs {
                        differs("virtual_ipaddress", &mut file_notes);
                    }
                    if instance.advert_ms != group.first.advert_ms {
                        differs("advert_int", &mut file_notes);
                    }
                    if instance.preempt != group.first.preempt
                        || instance.preempt_delay_s != group.first.preempt_delay_s
                    {
                        differs("nopreempt/preempt_delay", &mut file_notes);
                    }
                    if instance.version != group.first.version {
                        differs("VRRP version", &mut file_notes);
                    }
                    if instance.resources.len() != group.first.resources.len()
                        || instance
                            .resources
                            .iter()
                            .zip(&group.first.resources)
                            .any(|(a, b)| {
                                a.start != b.start || a.stop != b.stop || a.check != b.check
                            })
                    {
                        differs("notify scripts", &mut file_notes);
                    }
                    if instance.track_scripts != group.first.track_scripts
                        || instance.track_interfaces != group.first.track_interfaces
                    {
                        differs("track_script/track_interface", &mut file_notes);
                    }
                    group.unicast |= !instance.unicast_peers.is_empty();
                    group.members.push((index, priority));
                }
                None => groups.push(Merged {
                    first: instance.clone(),
                    file: node.file.clone(),
                    members: vec![(index, priority)],
                    unicast: !instance.unicast_peers.is_empty(),
                }),
            }
        }
    }
    // The notes in file order, then line order.
    let order = |note: &Note| inputs.iter().position(|i| i.file == note.file);
    notes.sort_by_key(|n| (order(n), n.line));
    // The file.
    let mut out = String::new();
    out.push_str("# Converted from keepalived by `vipd import-keepalived`, one node per file:\n");
    for node in &nodes {
        out.push_str(&format!("#   {}: {}\n", node.name, node.file));
    }
    out.push_str(
        "# Check it with `vipd check FILE --node NAME`; copy it unchanged to every node.\n",
    );
    if !notes.is_empty() {
        out.push_str("# Not carried over, or carried over differently:\n");
        for note in &notes {
            out.push_str(&format!("#   {note}\n"));
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "[cluster]\nname = {}\nzone = {}\n",
        quoted(&options.cluster_name),
        quoted(&options.zone)
    ));
    for node in &nodes {
        out.push_str(&format!(
            "\n[[node]]\nname = {}\ninterface = {}\naddress = {}\n",
            quoted(&node.name),
            quoted(&node.interface),
            quoted(&node.address.unwrap().to_string())
        ));
    }
    // The vrrp_scripts the groups track, as the first file that tracks each defines it.
    let mut scripts: Vec<(String, &Script, &str)> = Vec::new();
    for group in &groups {
        for (name, _) in &group.first.track_scripts {
            if scripts.iter().any(|(n, _, _)| n == name) {
                continue;
            }
            let Some((node, script)) = nodes
                .iter()
                .find_map(|n| n.scripts.get(name).map(|s| (n, s)))
            else {
                continue;
            };
            for other in nodes.iter().filter(|n| n.file != node.file) {
                if let Some(theirs) = other.scripts.get(name)
                    && (theirs.command != script.command
                        || theirs.interval_ms != script.interval_ms
                        || theirs.weight != script.weight)
                {
                    notes.push(Note {
                        file: other.file.clone(),
                        line: theirs.line,
                        message: format!(
                            "vrrp_script {name} differs from {}'s; the first file's is used",
                            node.file
                        ),
                    });
                }
            }
            scripts.push((name.clone(), script, node.file.as_str()));
        }
    }
    for (name, script, file) in &scripts {
        out.push_str(&format!(
            "\n# vrrp_script {name} ({file}:{})\n[[track_script]]\nname = {}\ncommand = {}\ninterval = \"{}\"\n",
            script.line,
            quoted(name),
            quoted(&script.command),
            duration(script.interval_ms.max(10))
        ));
        if let Some(timeout) = script.timeout_ms.filter(|t| *t >= 10) {
            out.push_str(&format!("timeout = \"{}\"\n", duration(timeout)));
        }
        out.push_str(&format!("weight = {}\n", script.weight));
        if let Some(rise) = script.rise {
            out.push_str(&format!("rise = {rise}\n"));
        }
        if let Some(fall) = script.fall {
            out.push_str(&format!("fall = {fall}\n"));
        }
        if script.init_fail {
            out.push_str("init_fail = true\n");
        }
    }
    for group in &groups {
        let first = &group.first;
        out.push_str(&format!(
            "\n# vrrp_instance {} ({}:{})\n[[group]]\nname = {}\nvrid = {}\n",
            first.name,
            group.file,
            first.line,
            quoted(&first.name),
            first.vrid
        ));
        let addresses: Vec<String> = first
            .addresses
            .iter()
            .map(|a| quoted(&a.to_string()))
            .collect();
        out.push_str(&format!("addresses = [{}]\n", addresses.join(", ")));
        let priorities: Vec<String> = group
            .members
            .iter()
            .map(|(n, p)| format!("{} = {p}", nodes[*n].name))
            .collect();
        out.push_str(&format!("priority = {{ {} }}\n", priorities.join(", ")));
        out.push_str(&format!(
            "advert_interval = \"{}\"\n",
            duration(first.advert_ms)
        ));
        out.push_str(&format!("preempt = {}\n", first.preempt));
        if first.preempt_delay_s > 0 {
            out.push_str(&format!(
                "preempt_delay = \"{}s\"\n",
                first.preempt_delay_s.min(1000)
            ));
        }
        if first.version == 2 {
            out.push_str("version = 2\n");
        }
        if group.unicast {
            out.push_str("unicast = true\n");
        }
        if first.vmac {
            out.push_str("vmac = true\n");
        }
        if let Some(count) = first.announce_count {
            out.push_str(&format!("announce_count = {}\n", count.min(100)));
        }
        if let Some(refresh) = first.announce_refresh_s.filter(|r| *r > 0) {
            out.push_str(&format!("announce_refresh = \"{refresh}s\"\n"));
        }
        let entry = |name: &str, weight: i64, default: i64| {
            if weight == default {
                quoted(name)
            } else {
                format!("{{ name = {}, weight = {weight} }}", quoted(name))
            }
        };
        if !first.track_scripts.is_empty() {
            let entries: Vec<String> = first
                .track_scripts
                .iter()
                .map(|(name, weight)| {
                    let default = scripts
                        .iter()
                        .find(|(n, _, _)| n == name)
                        .map_or(0, |(_, s, _)| s.weight);
                    entry(name, *weight, default)
                })
                .collect();
            out.push_str(&format!("track_script = [{}]\n", entries.join(", ")));
        }
        if !first.track_interfaces.is_empty() {
            let entries: Vec<String> = first
                .track_interfaces
                .iter()
                .map(|(name, weight)| entry(name, *weight, 0))
                .collect();
            out.push_str(&format!("track_interface = [{}]\n", entries.join(", ")));
        }
        if !first.resources.is_empty() {
            // keepalived runs notify scripts without quorum: keep that, and say how to close
            // the partition hole.
            out.push_str(
                "# keepalived had no quorum: a partition makes two owners. For something that must\n# run once, add [quorum] (and a [[witness]]) and drop this line.\nquorum = false\n",
            );
        }
        for resource in &first.resources {
            out.push_str(&format!(
                "\n[[group.resource]]\nname = {}\nstart = {}\nstop = {}\n",
                quoted(&resource.name),
                quoted(&resource.start),
                quoted(&resource.stop)
            ));
            if let Some(check) = &resource.check {
                out.push_str(&format!("check = {}\n", quoted(check)));
            }
            if let Some(interval) = resource.check_interval_ms {
                out.push_str(&format!("check_interval = \"{}\"\n", duration(interval)));
            }
            if let Some(timeout) = resource.timeout_ms {
                out.push_str(&format!("timeout = \"{}\"\n", duration(timeout)));
            }
        }
    }
    if let Err(e) = Config::parse("converted.toml", &out) {
        return Err(ImportError {
            message: format!(
                "the converted file does not pass `vipd check`: {e}\n--- converted.toml ---\n{out}"
            ),
            notes,
        });
    }
    Ok(Imported {
        toml: out,
        nodes: nodes
            .iter()
            .map(|n| (n.name.clone(), n.file.clone()))
            .collect(),
        notes,
    })
}

#[cfg(test)]
mod tests;
