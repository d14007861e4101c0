//! The cluster file: one TOML file, copied unchanged to every node, turned into a validated,
//! typed [`Config`]. Pure: reading the file is the caller's business.

pub mod dns;
pub mod duration;
mod error;
pub mod metrics;
pub mod quorum;
pub mod track;
mod validate;

pub use error::{ConfigError, Source};

use crate::wire::Family;
use crate::wire::vrrp::{Ipv4ChecksumForm, Version};
use duration::HumanDuration;
use serde::{Deserialize, Deserializer, de};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use toml::Spanned;

/// A validated cluster file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cluster: Cluster,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    pub dns: dns::Dns,
    /// The HTTP listener for metrics and health checks (off unless `[metrics] listen`).
    pub metrics: metrics::Metrics,
    /// Health checks groups track (`[[track_script]]`, keepalived's `vrrp_script`).
    pub track_scripts: Vec<track::TrackScript>,
    /// The membership channel and votes (off unless `[quorum]`).
    pub quorum: Option<quorum::Quorum>,
    /// Voters on third machines.
    pub witnesses: Vec<quorum::Witness>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Absolute, lower case, with the trailing dot.
    pub zone: String,
    /// Checksum form sent for VRRPv3 over IPv4 (both are accepted on receive).
    pub ipv4_checksum: Ipv4ChecksumForm,
    /// Accept adverts from addresses that are not nodes of this file (off: dropped, counted).
    pub allow_unknown_peers: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub interface: String,
    pub address: IpAddr,
    /// The IPv6 link-local address this node sends IPv6 adverts from, when known.
    pub link_local: Option<Ipv6Addr>,
    /// A VRRP speaker that is not vipd (keepalived during a migration): its groups keep the
    /// RFC timers.
    pub foreign: bool,
    /// How to fence this node (power it off, cut it from the storage): run by another node
    /// before it starts a quorum group's resources after this node vanished.
    pub fence: Option<String>,
    /// The LAN segments this node is on: the first is `interface`/`address`/`link_local`,
    /// then each `[[node.lan]]`. A group lives on one of them (its `interface`).
    pub lans: Vec<Lan>,
}

/// One LAN segment of a node: the interface, the node's address there, and its IPv6
/// link-local address there when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    pub interface: String,
    pub address: IpAddr,
    pub link_local: Option<Ipv6Addr>,
}

impl Node {
    /// The index in `lans` of the segment a group on `interface` uses here (None: the
    /// first); None when the node has no such interface.
    pub fn lan_index(&self, interface: Option<&str>) -> Option<usize> {
        match interface {
            None => Some(0),
            Some(name) => self.lans.iter().position(|l| l.interface == name),
        }
    }
}

/// A virtual address with the prefix length it is added with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl std::str::FromStr for VirtualAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| {
            format!("`{text}` is not an IP address (write 192.0.2.100/24 or 2001:db8::100/64)")
        })?;
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|len| (1..=max).contains(len))
                .ok_or_else(|| format!("prefix length `{p}` in `{text}` is not 1..={max}"))?,
        };
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(format!("`{text}` cannot be a virtual address"));
        }
        Ok(VirtualAddress {
            address,
            prefix_len,
        })
    }
}

impl<'de> Deserialize<'de> for VirtualAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// How the node that becomes master tells the LAN (gratuitous ARP / unsolicited NA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Announcements sent on becoming master.
    pub count: u32,
    /// Spacing between them.
    pub interval: Duration,
    /// Repeat the announcement this often while master (keepalived's garp_master_refresh);
    /// zero is off.
    pub refresh: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub vrid: u8,
    pub addresses: Vec<VirtualAddress>,
    /// Fully qualified, lower case, with the trailing dot.
    pub names: Vec<String>,
    /// Members in the order of the file's `[[node]]` list: (node index, priority).
    pub priorities: Vec<(usize, u8)>,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// After its link flapped, a node does not preempt until the link has been up this long
    /// (zero: off).
    pub link_hold: Duration,
    pub accept_mode: bool,
    pub version: Version,
    pub unicast: bool,
    pub announce: Announce,
    /// TTL of this group's names in the zone, when not the zone's `[dns] ttl`.
    pub dns_ttl: Option<Duration>,
    /// A member that runs another cluster file or vipd version than the master never
    /// preempts it, and a handover to it is refused (a rolling upgrade moves by hand).
    pub require_same_file: bool,
    /// Commands that bring the service up on the owner, in order (down in reverse order).
    pub resources: Vec<Resource>,
    /// The interface (LAN segment) the group lives on, by its name on every member; None:
    /// each member's first interface. VRIDs are unique per interface and family.
    pub interface: Option<String>,
    /// `vmac = true`: the virtual addresses live on a macvlan per family with the RFC 9568
    /// virtual MAC (`vrrp.<vrid>` / `vrrp6.<vrid>`, see `crate::net::vmac`). Default false.
    pub vmac: bool,
    /// Health tracking: scripts and interfaces that move this group's priority or put it in
    /// fault (`track_script`, `track_interface`).
    pub track: Vec<track::Tracker>,
    /// Claimed, and its resources started, only by a node that holds a majority of the
    /// votes, and only once no other member can still hold it (see `crate::quorum`).
    /// Default: on when the group has resources.
    pub quorum: bool,
}

/// A service the owner of a group runs: `sh -c` commands with a time-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub start: String,
    pub stop: String,
    /// Run every `check_interval` while master; a failure gives the group up.
    pub check: Option<String>,
    pub timeout: Duration,
    pub check_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: Spanned<String>,
    start: Spanned<String>,
    stop: Spanned<String>,
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    check_interval: Option<Spanned<HumanDuration>>,
}

impl Group {
    /// The address families this group runs a VRRP instance for.
    pub fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = self
            .addresses
            .iter()
            .map(|a| Family::of(&a.address))
            .collect();
        families.sort();
        families.dedup();
        families
    }

    /// The segment of `node` this group lives on (index into its `lans`).
    pub fn lan_of(&self, node: &Node) -> usize {
        node.lan_index(self.interface.as_deref()).unwrap_or(0)
    }

    pub fn priority_of(&self, node: usize) -> Option<u8> {
        self.priorities
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, p)| *p)
    }
}

impl Config {
    /// Parses and validates the text of a cluster file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let source = Source { file, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            source.error(span.clone(), source.field_at(span.start), message)
        })?;
        validate::validate(&source, raw)
    }

    /// Reads and validates a cluster file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            field: String::new(),
            message: format!("cannot read the cluster file: {e}"),
        })?;
        Config::parse(&file, &text)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// True when every member of `group` is vipd, so the known priorities allow takeovers
    /// faster than the RFC's Skew_Time.
    pub fn all_members_vipd(&self, group: &Group) -> bool {
        group
            .priorities
            .iter()
            .all(|(n, _)| !self.nodes[*n].foreign)
    }
}

// The file as written. Every key is listed; unknown keys are errors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cluster: RawCluster,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    dns: Option<dns::RawDns>,
    #[serde(default)]
    metrics: Option<metrics::RawMetrics>,
    #[serde(default)]
    track_script: Vec<Spanned<track::RawTrackScript>>,
    quorum: Option<quorum::RawQuorum>,
    #[serde(default)]
    witness: Vec<Spanned<quorum::RawWitness>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum RawChecksum {
    PseudoHeader,
    MessageOnly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    zone: Spanned<String>,
    #[serde(default)]
    ipv4_checksum: Option<RawChecksum>,
    #[serde(default)]
    allow_unknown_peers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    interface: Spanned<String>,
    address: Spanned<IpAddr>,
    #[serde(default)]
    link_local: Option<Spanned<Ipv6Addr>>,
    #[serde(default)]
    foreign: bool,
    #[serde(default)]
    fence: Option<Spanned<String>>,
    #[serde(default)]
    lan: Vec<Spanned<RawLan>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLan {
    interface: Spanned<String>,
    address: Spanned<IpAddr>,
    #[serde(default)]
    link_local: Option<Spanned<Ipv6Addr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    vrid: Spanned<i64>,
    addresses: Spanned<Vec<Spanned<VirtualAddress>>>,
    #[serde(default)]
    names: Vec<Spanned<String>>,
    priority: Spanned<BTreeMap<Spanned<String>, Spanned<i64>>>,
    #[serde(default)]
    advert_interval: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    preempt: Option<bool>,
    #[serde(default)]
    preempt_delay: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    link_hold: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    accept_mode: Option<bool>,
    #[serde(default)]
    version: Option<Spanned<i64>>,
    #[serde(default)]
    unicast: Option<bool>,
    #[serde(default)]
    announce_count: Option<Spanned<i64>>,
    #[serde(default)]
    announce_interval: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    announce_refresh: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    dns_ttl: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    require_same_file: Option<bool>,
    #[serde(default)]
    vmac: Option<Spanned<bool>>,
    #[serde(default)]
    interface: Option<Spanned<String>>,
    #[serde(default)]
    quorum: Option<Spanned<bool>>,
    #[serde(default)]
    resource: Vec<RawResource>,
    #[serde(default)]
    track_script: Vec<Spanned<track::RawTrackRef>>,
    #[serde(default)]
    track_interface: Vec<Spanned<track::RawTrackRef>>,
}
