//! What `vipd status` shows: one JSON document from the daemon's control socket, printed as
//! a table or as JSON.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `Content-Type` of [`Status::prometheus`]'s text (Prometheus text format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub cluster: String,
    pub node: String,
    pub version: String,
    pub interface: String,
    pub link_up: bool,
    /// Drained: this node takes no group (`vipd drain`).
    #[serde(default)]
    pub drained: bool,
    pub uptime_ms: u64,
    pub groups: Vec<GroupStatus>,
    /// Received packets not acted on, by reason (wire checks, node rules, election).
    pub dropped: BTreeMap<String, u64>,
    /// Adverts acted on although odd (e.g. `address_list_mismatch`), by name.
    #[serde(default)]
    pub anomalies: BTreeMap<String, u64>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Other hosts that claimed an address this node held as master (ARP or neighbour
    /// advertisement), defended or not.
    #[serde(default)]
    pub address_conflicts: u64,
    /// A digest of the cluster file this node runs (the same on every node when the file is).
    #[serde(default)]
    pub config_digest: Option<String>,
    /// The DNS server's counters and zone serial, when it serves the zone.
    #[serde(default)]
    pub dns: Option<crate::dns::server::CountersSnapshot>,
    /// The other vipd nodes and the versions they run, as last asked.
    #[serde(default)]
    pub peers: Vec<PeerVersion>,
    /// Membership and votes, with `[quorum]`.
    #[serde(default)]
    pub quorum: Option<super::QuorumStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub vrid: u8,
    pub addresses: Vec<String>,
    pub instances: Vec<InstanceStatus>,
    /// Most recent last.
    pub transitions: Vec<TransitionRecord>,
    /// What the group's resources are doing here (empty: none configured).
    #[serde(default)]
    pub resources: String,
    /// A planned handover waits for another node to take the group.
    #[serde(default)]
    pub handing_over: bool,
    /// This node's priority in the file; the instances' `priority` is the effective one
    /// (moved by health tracking).
    #[serde(default)]
    pub base_priority: u8,
    /// Health trackers of the group (`track_script`, `track_interface`) and their state.
    #[serde(default)]
    pub tracking: Vec<super::track::TrackerStatus>,
    /// A quorum group: "held", "no quorum", or "waiting for NODE to let go"; empty
    /// otherwise.
    #[serde(default)]
    pub quorum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceStatus {
    pub family: String,
    pub state: String,
    pub priority: u8,
    /// The peer heard as master, when this node is backup.
    pub master: Option<String>,
    pub master_adver_interval_ms: f64,
    /// The advert interval the cluster file sets: when a member advertises another one, the
    /// backup follows it (`master_adver_interval_ms`) and `interval_mismatch` counts.
    #[serde(default)]
    pub configured_adver_interval_ms: f64,
    pub master_down_interval_ms: f64,
    pub holds_addresses: bool,
    pub adverts_received: u64,
    pub dropped_not_member: u64,
    #[serde(default)]
    pub dropped_own: u64,
    /// Adverts of a lower priority while backup (a preempt, or discarded per RFC 9568).
    #[serde(default)]
    pub dropped_lower_priority: u64,
    pub interval_mismatch: u64,
    pub second_master_seen: u64,
    pub became_master: u64,
    /// Two masters that never resolve: the other master (its node name, or its address when
    /// a stranger) has advertised for more than 3 intervals while this node is master, and
    /// has not been silent for a master-down interval since.
    #[serde(default)]
    pub conflict: Option<String>,
}

/// Another node, and the vipd version it runs, as last asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerVersion {
    pub node: String,
    /// None until it answered.
    pub version: Option<String>,
    /// Why the last question got no version.
    pub error: Option<String>,
    /// The digest of the cluster file it runs.
    #[serde(default)]
    pub config_digest: Option<String>,
    /// It is drained (takes no group).
    #[serde(default)]
    pub drained: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransitionRecord {
    /// Milliseconds since the daemon started.
    pub at_ms: f64,
    /// Wall clock, microseconds since the Unix epoch: lines up with other hosts' logs.
    pub unix_us: u64,
    pub family: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Labels of one sample: (name, value) pairs, in the order they are written.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A status snapshot as a prometheus-client [`Collector`]: every scrape encodes the families
/// from the snapshot in a fixed order (constant metrics: the daemon owns the counters).
#[derive(Debug)]
struct Snapshot(Status);

/// Encodes one metric family (skipped when it has no sample); `name` has neither the
/// `vipd_` prefix nor, for a counter, the `_total` suffix: the encoder adds them.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: Vec<(Labels, M)>,
) -> std::fmt::Result {
    let Some((_, first)) = samples.first() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, value) in &samples {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(value: bool) -> ConstGauge {
    ConstGauge::new(i64::from(value))
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let status = &self.0;
        let node = status.node.as_str();
        let instances: Vec<(Labels, &InstanceStatus)> = status
            .groups
            .iter()
            .flat_map(|g| {
                g.instances.iter().map(|i| {
                    (
                        vec![
                            ("node", node),
                            ("group", g.name.as_str()),
                            ("family", i.family.as_str()),
                        ],
                        i,
                    )
                })
            })
            .collect();
        let per_instance = |f: &dyn Fn(&InstanceStatus) -> u64| -> Vec<(Labels, ConstCounter)> {
            instances
                .iter()
                .map(|(labels, i)| (labels.clone(), ConstCounter::new(f(i))))
                .collect()
        };
        let node_only = || vec![("node", node)];
        let e = &mut encoder;

        let mut states = Vec::new();
        for (labels, instance) in &instances {
            for state in ["initialize", "backup", "master", "fault"] {
                let mut labels = labels.clone();
                labels.push(("state", state));
                states.push((labels, gauge(instance.state == state)));
            }
        }
        family(
            e,
            "state",
            "1 for the state each group and family is in.",
            None,
            states,
        )?;
        family(
            e,
            "priority",
            "This node's effective priority in the group (the file's, moved by health tracking).",
            None,
            instances
                .iter()
                .map(|(l, i)| (l.clone(), ConstGauge::new(i64::from(i.priority))))
                .collect(),
        )?;
        family(
            e,
            "base_priority",
            "This node's priority in the group as the cluster file gives it.",
            None,
            status
                .groups
                .iter()
                .filter(|g| !g.tracking.is_empty())
                .map(|g| {
                    (
                        vec![("node", node), ("group", g.name.as_str())],
                        ConstGauge::new(i64::from(g.base_priority)),
                    )
                })
                .collect(),
        )?;
        family(
            e,
            "track_up",
            "1 while a health tracker (track_script, track_interface) of the group is up.",
            None,
            status
                .groups
                .iter()
                .flat_map(|g| {
                    g.tracking.iter().map(move |t| {
                        (
                            vec![
                                ("node", node),
                                ("group", g.name.as_str()),
                                ("kind", t.kind.as_str()),
                                ("tracker", t.name.as_str()),
                            ],
                            gauge(t.up),
                        )
                    })
                })
                .collect(),
        )?;
        family(
            e,
            "holds_addresses",
            "1 when this node has the group's addresses on its interface.",
            None,
            instances
                .iter()
                .map(|(l, i)| (l.clone(), gauge(i.holds_addresses)))
                .collect(),
        )?;
        family(
            e,
            "conflict",
            "1 while another master keeps advertising and neither yields (two masters).",
            None,
            instances
                .iter()
                .map(|(l, i)| (l.clone(), gauge(i.conflict.is_some())))
                .collect(),
        )?;
        family(
            e,
            "master_down_interval",
            "Master_Down_Interval as this node applies it.",
            Some(&Unit::Seconds),
            instances
                .iter()
                .map(|(l, i)| {
                    (
                        l.clone(),
                        ConstGauge::new(i.master_down_interval_ms / 1000.0),
                    )
                })
                .collect(),
        )?;
        family(
            e,
            "became_master",
            "Times this node became master of the group.",
            None,
            per_instance(&|i| i.became_master),
        )?;
        family(
            e,
            "adverts_received_by_group",
            "Adverts handed to the group's election.",
            None,
            per_instance(&|i| i.adverts_received),
        )?;
        family(
            e,
            "adverts_dropped_not_member",
            "Adverts from addresses that are not members.",
            None,
            per_instance(&|i| i.dropped_not_member),
        )?;
        family(
            e,
            "adverts_lower_priority",
            "Lower-priority adverts heard while backup (a preempt, or discarded per RFC 9568).",
            None,
            per_instance(&|i| i.dropped_lower_priority),
        )?;
        family(
            e,
            "interval_mismatch",
            "Adverts whose interval disagrees with the cluster file.",
            None,
            per_instance(&|i| i.interval_mismatch),
        )?;
        family(
            e,
            "second_master_seen",
            "Adverts from a second master while master (split brain).",
            None,
            per_instance(&|i| i.second_master_seen),
        )?;
        family(
            e,
            "adverts_sent",
            "VRRP adverts sent.",
            None,
            vec![(node_only(), ConstCounter::new(status.adverts_sent))],
        )?;
        family(
            e,
            "adverts_received",
            "VRRP packets that passed the wire checks.",
            None,
            vec![(node_only(), ConstCounter::new(status.adverts_received))],
        )?;
        family(
            e,
            "address_conflicts",
            "Other hosts' claims (ARP, neighbour advertisement) on addresses this node held as master.",
            None,
            vec![(node_only(), ConstCounter::new(status.address_conflicts))],
        )?;
        family(
            e,
            "packets_dropped",
            "Received VRRP packets not acted on, by reason.",
            None,
            status
                .dropped
                .iter()
                .map(|(reason, n)| {
                    (
                        vec![("node", node), ("reason", reason.as_str())],
                        ConstCounter::new(*n),
                    )
                })
                .collect(),
        )?;
        family(
            e,
            "advert_anomalies",
            "Adverts acted on although odd (RFC 9568 leaves them to the receiver), by kind.",
            None,
            status
                .anomalies
                .iter()
                .map(|(kind, n)| {
                    (
                        vec![("node", node), ("kind", kind.as_str())],
                        ConstCounter::new(*n),
                    )
                })
                .collect(),
        )?;
        family(
            e,
            "peer_version_mismatch",
            "1 when a peer answered with another vipd version than this node's.",
            None,
            status
                .peers
                .iter()
                .filter_map(|p| {
                    let version = p.version.as_ref()?;
                    Some((
                        vec![("node", node), ("peer", p.node.as_str())],
                        gauge(*version != status.version),
                    ))
                })
                .collect(),
        )?;
        family(
            e,
            "link_up",
            "1 while the interface is up.",
            None,
            vec![(node_only(), gauge(status.link_up))],
        )?;
        if let Some(quorum) = &status.quorum {
            family(
                e,
                "quorum_held",
                "1 while this node holds quorum long enough to serve quorum groups.",
                None,
                vec![(node_only(), gauge(quorum.held))],
            )?;
            family(
                e,
                "quorum_votes",
                "Votes that count for this node now, its own included.",
                None,
                vec![(node_only(), ConstGauge::new(quorum.votes as i64))],
            )?;
            family(
                e,
                "quorum_votes_needed",
                "Votes a node needs for quorum (a majority of nodes and witnesses).",
                None,
                vec![(node_only(), ConstGauge::new(quorum.needed as i64))],
            )?;
            family(
                e,
                "quorum_voter_heard",
                "1 while the voter's signed heartbeats arrive.",
                None,
                quorum
                    .voters
                    .iter()
                    .filter(|v| !v.me)
                    .map(|v| {
                        (
                            vec![("node", node), ("voter", v.name.as_str())],
                            gauge(v.heard),
                        )
                    })
                    .collect(),
            )?;
            let per_fence = |count: &dyn Fn(&super::quorum::FenceStatus) -> u64| {
                quorum
                    .fences
                    .iter()
                    .map(|f| {
                        (
                            vec![("node", node), ("target", f.node.as_str())],
                            ConstCounter::new(count(f)),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            family(
                e,
                "fence_runs",
                "Fence commands this node ran, by the node fenced.",
                None,
                per_fence(&|f| f.runs),
            )?;
            family(
                e,
                "fence_failures",
                "Fence commands that failed or overran their time-out, by the node fenced.",
                None,
                per_fence(&|f| f.failures),
            )?;
            family(
                e,
                "heartbeats",
                "Heartbeats of the membership channel, by outcome.",
                None,
                quorum
                    .heartbeats
                    .iter()
                    .map(|(k, v)| {
                        (
                            vec![("node", node), ("outcome", k.as_str())],
                            ConstCounter::new(*v),
                        )
                    })
                    .collect(),
            )?;
        }
        if let Some(dns) = &status.dns {
            let outcomes = [
                ("answer", dns.answers),
                ("nxdomain", dns.nxdomain),
                ("nodata", dns.nodata),
                ("refused", dns.refused),
                ("formerr", dns.formerr),
                ("dropped_malformed", dns.dropped_malformed),
                ("dropped_rate_limited", dns.dropped_rate_limited),
                ("forwarded", dns.forwarded),
                ("forward_failed", dns.forward_failed),
            ];
            family(
                e,
                "dns_queries",
                "DNS queries received.",
                None,
                vec![(node_only(), ConstCounter::new(dns.queries))],
            )?;
            family(
                e,
                "dns_outcomes",
                "DNS queries by outcome.",
                None,
                outcomes
                    .iter()
                    .map(|(outcome, n)| {
                        (
                            vec![("node", node), ("outcome", *outcome)],
                            ConstCounter::new(*n),
                        )
                    })
                    .collect(),
            )?;
            family(
                e,
                "dns_zone_serial",
                "Serial of the zone this node serves.",
                None,
                vec![(node_only(), ConstGauge::new(i64::from(dns.serial)))],
            )?;
        }
        Ok(())
    }
}

impl Status {
    /// The Prometheus text exposition format, version 0.0.4 (`Content-Type`:
    /// [`PROMETHEUS_CONTENT_TYPE`]), encoded by prometheus-client: for `vipd status --metrics`,
    /// node_exporter's textfile collector, and the daemon's `/metrics`.
    pub fn prometheus(&self) -> String {
        let mut registry = Registry::with_prefix("vipd");
        registry.register_collector(Box::new(Snapshot(self.clone())));
        let mut out = String::new();
        // Writing to a String cannot fail, and the collector's own encoding neither.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }

    /// One line per instance in conflict (two masters), and per instance whose members
    /// advertise another interval than the file's.
    pub fn interval_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for group in &self.groups {
            for i in &group.instances {
                if let Some(peer) = &i.conflict {
                    notes.push(format!(
                        "CONFLICT in {} {}: {peer} keeps advertising as master and neither yields (see the log)",
                        group.name, i.family
                    ));
                }
            }
            for i in group.instances.iter().filter(|i| i.interval_mismatch > 0) {
                notes.push(format!(
                    "interval of {} {}: the file says {} ms, {} adverts said otherwise; following {} ms{}",
                    group.name,
                    i.family,
                    i.configured_adver_interval_ms,
                    i.interval_mismatch,
                    i.master_adver_interval_ms,
                    i.master
                        .as_ref()
                        .map(|m| format!(" (as learned from {m})"))
                        .unwrap_or_default(),
                ));
            }
        }
        notes
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "node {} of cluster {} (vipd {}), interface {} {}, up {:.1}s",
            self.node,
            self.cluster,
            self.version,
            self.interface,
            if self.link_up { "up" } else { "DOWN" },
            self.uptime_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "{:<20} {:>4} {:<5} {:<8} {:>4} {:<10} ADDRESSES",
            "GROUP", "VRID", "FAM", "STATE", "PRIO", "MASTER"
        );
        for group in &self.groups {
            for instance in &group.instances {
                let addresses: Vec<&str> = group
                    .addresses
                    .iter()
                    .filter(|a| a.contains(':') == (instance.family == "IPv6"))
                    .map(String::as_str)
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<20} {:>4} {:<5} {:<8} {:>4} {:<10} {}{}",
                    group.name,
                    group.vrid,
                    instance.family,
                    instance.state,
                    instance.priority,
                    match instance.state.as_str() {
                        "master" => "(this node)".to_string(),
                        _ => instance.master.clone().unwrap_or_else(|| "-".into()),
                    },
                    addresses.join(" "),
                    if instance.holds_addresses {
                        " (held here)"
                    } else {
                        ""
                    }
                );
            }
        }
        for line in self.interval_notes() {
            let _ = writeln!(out, "{line}");
        }
        for group in self.groups.iter().filter(|g| !g.tracking.is_empty()) {
            let trackers: Vec<String> = group
                .tracking
                .iter()
                .map(|t| {
                    let weight = match t.weight {
                        0 => "fault".to_string(),
                        w => format!("{w:+}"),
                    };
                    format!(
                        "{} {} ({weight}) {}",
                        t.kind,
                        t.name,
                        if t.up { "up" } else { "DOWN" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "tracking of {} (priority {} in the file): {}",
                group.name,
                group.base_priority,
                trackers.join(", ")
            );
        }
        for group in self.groups.iter().filter(|g| !g.resources.is_empty()) {
            let _ = writeln!(out, "resources of {}: {}", group.name, group.resources);
        }
        for group in self.groups.iter().filter(|g| !g.quorum.is_empty()) {
            let _ = writeln!(out, "quorum of {}: {}", group.name, group.quorum);
        }
        if let Some(quorum) = &self.quorum {
            let voters: Vec<String> = quorum
                .voters
                .iter()
                .filter(|v| !v.me)
                .map(|v| {
                    format!(
                        "{}{} {}{}",
                        v.name,
                        if v.witness { " (witness)" } else { "" },
                        if v.heard { "heard" } else { "NOT HEARD" },
                        if v.voting_for { ", voted for" } else { "" }
                    )
                })
                .collect();
            for fence in &quorum.fences {
                let _ = writeln!(
                    out,
                    "fence of {}: {} ({} runs, {} failed)",
                    fence.node, fence.state, fence.runs, fence.failures
                );
            }
            let _ = writeln!(
                out,
                "quorum {}: {} votes, {} needed; voters: {}",
                if quorum.held { "held" } else { "NOT HELD" },
                quorum.votes,
                quorum.needed,
                voters.join("; ")
            );
        }
        let recent: Vec<(&str, &TransitionRecord)> = self
            .groups
            .iter()
            .flat_map(|g| g.transitions.iter().map(move |t| (g.name.as_str(), t)))
            .collect();
        if !recent.is_empty() {
            let _ = writeln!(out, "last transitions:");
            let mut recent = recent;
            recent.sort_by(|a, b| a.1.at_ms.total_cmp(&b.1.at_ms));
            for (group, t) in recent.iter().rev().take(10).rev() {
                let _ = writeln!(
                    out,
                    "  {:>10.3}s {group} {} {} -> {}: {}",
                    t.at_ms / 1000.0,
                    t.family,
                    t.from,
                    t.to,
                    t.reason
                );
            }
        }
        let dropped: Vec<String> = self
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if self.drained {
            let _ = writeln!(
                out,
                "this node is DRAINED: it takes no group (vipd undrain)"
            );
        }
        if let Some(digest) = &self.config_digest {
            let _ = writeln!(out, "cluster file digest {digest}");
        }
        let _ = writeln!(
            out,
            "adverts sent {}, received {}, dropped: {}",
            self.adverts_sent,
            self.adverts_received,
            if dropped.is_empty() {
                "none".to_string()
            } else {
                dropped.join(", ")
            }
        );
        if !self.peers.is_empty() {
            let peers: Vec<String> = self
                .peers
                .iter()
                .map(|p| {
                    let mut line = match (&p.version, &p.error) {
                        (Some(v), _) if *v == self.version => format!("{} {v}", p.node),
                        (Some(v), _) => {
                            format!("{} {v} (MISMATCH: this node runs {})", p.node, self.version)
                        }
                        (None, Some(e)) => format!("{} ? ({e})", p.node),
                        (None, None) => format!("{} ? (not asked yet)", p.node),
                    };
                    if let (Some(theirs), Some(mine)) = (&p.config_digest, &self.config_digest)
                        && theirs != mine
                    {
                        line.push_str(&format!(" (OTHER FILE {theirs}, this node {mine})"));
                    }
                    if p.drained {
                        line.push_str(" (drained)");
                    }
                    line
                })
                .collect();
            let _ = writeln!(out, "peers: {}", peers.join(", "));
        }
        if let Some(dns) = &self.dns {
            let _ = writeln!(
                out,
                "dns: serial {}, queries {}, answers {}, nxdomain {}, nodata {}, refused {}, formerr {}, \
                 dropped {} malformed and {} rate-limited, forwarded {} ({} failed)",
                dns.serial,
                dns.queries,
                dns.answers,
                dns.nxdomain,
                dns.nodata,
                dns.refused,
                dns.formerr,
                dns.dropped_malformed,
                dns.dropped_rate_limited,
                dns.forwarded,
                dns.forward_failed
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_one_state_per_instance_and_escaped_labels() {
        let status = Status {
            cluster: "c".into(),
            node: "alpha".into(),
            version: "0".into(),
            interface: "eth0".into(),
            link_up: true,
            drained: false,
            uptime_ms: 1,
            groups: vec![GroupStatus {
                name: "we\"ird".into(),
                vrid: 1,
                addresses: vec![],
                instances: vec![InstanceStatus {
                    family: "IPv4".into(),
                    state: "master".into(),
                    priority: 150,
                    master: None,
                    master_adver_interval_ms: 100.0,
                    configured_adver_interval_ms: 100.0,
                    conflict: None,
                    master_down_interval_ms: 300.0,
                    holds_addresses: true,
                    adverts_received: 3,
                    dropped_not_member: 0,
                    dropped_own: 0,
                    dropped_lower_priority: 0,
                    interval_mismatch: 0,
                    second_master_seen: 0,
                    became_master: 1,
                }],
                transitions: vec![],
                resources: String::new(),
                handing_over: false,
                base_priority: 150,
                tracking: Vec::new(),
                quorum: String::new(),
            }],
            dropped: BTreeMap::from([("bad_ttl".to_string(), 2)]),
            anomalies: BTreeMap::new(),
            adverts_sent: 10,
            adverts_received: 3,
            address_conflicts: 0,
            config_digest: None,
            dns: None,
            peers: vec![],
            quorum: None,
        };
        let text = status.prometheus();
        assert!(text.contains("vipd_state{node=\"alpha\",group=\"we\\\"ird\",family=\"IPv4\",state=\"master\"} 1\n"), "{text}");
        assert!(text.contains("state=\"backup\"} 0\n"));
        assert!(text.contains("vipd_master_down_interval_seconds{node=\"alpha\",group=\"we\\\"ird\",family=\"IPv4\"} 0.3\n"));
        assert!(text.contains("vipd_packets_dropped_total{node=\"alpha\",reason=\"bad_ttl\"} 2\n"));
        assert!(text.contains(
            "# TYPE vipd_adverts_sent_total counter\nvipd_adverts_sent_total{node=\"alpha\"} 10\n"
        ));
        assert!(text.starts_with(
            "# HELP vipd_state 1 for the state each group and family is in.\n# TYPE vipd_state gauge\n"
        ), "{text}");
        // No DNS, no peers, no anomalies: those families are left out.
        assert!(!text.contains("vipd_dns_") && !text.contains("vipd_peer_version_mismatch"));
        assert!(!text.contains("vipd_advert_anomalies"));
        // Prometheus naming: a counter's family and samples end in _total.
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(
                words[3] == "counter",
                words[2].ends_with("_total"),
                "{line}"
            );
        }
    }

    #[test]
    fn prometheus_text_has_dns_and_peer_families_when_known() {
        let status = Status {
            cluster: "c".into(),
            node: "beta".into(),
            version: "0.2.0".into(),
            interface: "eth0".into(),
            link_up: false,
            drained: false,
            uptime_ms: 1,
            groups: vec![],
            dropped: BTreeMap::new(),
            anomalies: BTreeMap::from([("address_list_mismatch".to_string(), 1)]),
            adverts_sent: 0,
            adverts_received: 0,
            address_conflicts: 0,
            config_digest: None,
            dns: Some(crate::dns::server::CountersSnapshot {
                serial: 7,
                queries: 5,
                answers: 4,
                nxdomain: 1,
                ..Default::default()
            }),
            peers: vec![
                PeerVersion {
                    node: "alpha".into(),
                    version: Some("0.1.0".into()),
                    error: None,
                    config_digest: None,
                    drained: false,
                },
                PeerVersion {
                    node: "gamma".into(),
                    version: None,
                    error: Some("no answer".into()),
                    config_digest: None,
                    drained: false,
                },
            ],
            quorum: None,
        };
        let text = status.prometheus();
        for line in [
            "vipd_link_up{node=\"beta\"} 0\n",
            "vipd_peer_version_mismatch{node=\"beta\",peer=\"alpha\"} 1\n",
            "vipd_advert_anomalies_total{node=\"beta\",kind=\"address_list_mismatch\"} 1\n",
            "# TYPE vipd_dns_queries_total counter\nvipd_dns_queries_total{node=\"beta\"} 5\n",
            "vipd_dns_outcomes_total{node=\"beta\",outcome=\"nxdomain\"} 1\n",
            "vipd_dns_zone_serial{node=\"beta\"} 7\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        // A peer that never answered has no version to compare.
        assert!(!text.contains("peer=\"gamma\""));
        // No group: no per-group family at all.
        assert!(!text.contains("vipd_state"));
    }
}
