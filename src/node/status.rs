//! What `vipd status` shows: one JSON document from the daemon's control socket, printed as
//! a table or as JSON.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

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
    /// A digest of the cluster file this node runs (the same on every node when the file is).
    #[serde(default)]
    pub config_digest: Option<String>,
    /// The DNS server's counters and zone serial, when it serves the zone.
    #[serde(default)]
    pub dns: Option<crate::dns::server::CountersSnapshot>,
    /// The other vipd nodes and the versions they run, as last asked.
    #[serde(default)]
    pub peers: Vec<PeerVersion>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceStatus {
    pub family: String,
    pub state: String,
    pub priority: u8,
    /// The peer heard as master, when this node is backup.
    pub master: Option<String>,
    pub master_adver_interval_ms: f64,
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

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Status {
    /// The Prometheus text exposition format (for node_exporter's textfile collector, say).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP vipd_{name} {help}\n# TYPE vipd_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "vipd_{name}{labels} {value}");
            }
        };
        let node = label(&self.node);
        let node = node.as_str();
        let instances: Vec<(String, &InstanceStatus)> = self
            .groups
            .iter()
            .flat_map(|g| {
                g.instances.iter().map(|i| {
                    (
                        format!(
                            "node=\"{node}\",group=\"{}\",family=\"{}\"",
                            label(&g.name),
                            i.family
                        ),
                        i,
                    )
                })
            })
            .collect();
        let per_instance = |f: &dyn Fn(&InstanceStatus) -> f64| -> Vec<(String, f64)> {
            instances
                .iter()
                .map(|(labels, i)| (format!("{{{labels}}}"), f(i)))
                .collect()
        };
        let mut state_samples = Vec::new();
        for (labels, instance) in &instances {
            for state in ["initialize", "backup", "master", "fault"] {
                state_samples.push((
                    format!("{{{labels},state=\"{state}\"}}"),
                    f64::from(u8::from(instance.state == state)),
                ));
            }
        }
        metric(
            "state",
            "gauge",
            "1 for the state each group and family is in.",
            state_samples,
        );
        metric(
            "priority",
            "gauge",
            "This node's priority in the group.",
            per_instance(&|i| f64::from(i.priority)),
        );
        metric(
            "holds_addresses",
            "gauge",
            "1 when this node has the group's addresses on its interface.",
            per_instance(&|i| f64::from(u8::from(i.holds_addresses))),
        );
        metric(
            "master_down_interval_seconds",
            "gauge",
            "Master_Down_Interval as this node applies it.",
            per_instance(&|i| i.master_down_interval_ms / 1000.0),
        );
        metric(
            "became_master_total",
            "counter",
            "Times this node became master of the group.",
            per_instance(&|i| i.became_master as f64),
        );
        metric(
            "adverts_received_by_group_total",
            "counter",
            "Adverts handed to the group's election.",
            per_instance(&|i| i.adverts_received as f64),
        );
        metric(
            "adverts_dropped_not_member_total",
            "counter",
            "Adverts from addresses that are not members.",
            per_instance(&|i| i.dropped_not_member as f64),
        );
        metric(
            "adverts_lower_priority_total",
            "counter",
            "Lower-priority adverts heard while backup (a preempt, or discarded per RFC 9568).",
            per_instance(&|i| i.dropped_lower_priority as f64),
        );
        metric(
            "interval_mismatch_total",
            "counter",
            "Adverts whose interval disagrees with the cluster file.",
            per_instance(&|i| i.interval_mismatch as f64),
        );
        metric(
            "second_master_seen_total",
            "counter",
            "Adverts from a second master while master (split brain).",
            per_instance(&|i| i.second_master_seen as f64),
        );
        metric(
            "adverts_sent_total",
            "counter",
            "VRRP adverts sent.",
            vec![(format!("{{node=\"{node}\"}}"), self.adverts_sent as f64)],
        );
        metric(
            "adverts_received_total",
            "counter",
            "VRRP packets that passed the wire checks.",
            vec![(format!("{{node=\"{node}\"}}"), self.adverts_received as f64)],
        );
        metric(
            "packets_dropped_total",
            "counter",
            "Received VRRP packets not acted on, by reason.",
            self.dropped
                .iter()
                .map(|(reason, n)| {
                    (
                        format!("{{node=\"{node}\",reason=\"{}\"}}", label(reason)),
                        *n as f64,
                    )
                })
                .collect(),
        );
        metric(
            "advert_anomalies_total",
            "counter",
            "Adverts acted on although odd (RFC 9568 leaves them to the receiver), by kind.",
            self.anomalies
                .iter()
                .map(|(kind, n)| {
                    (
                        format!("{{node=\"{node}\",kind=\"{}\"}}", label(kind)),
                        *n as f64,
                    )
                })
                .collect(),
        );
        metric(
            "peer_version_mismatch",
            "gauge",
            "1 when a peer answered with another vipd version than this node's.",
            self.peers
                .iter()
                .filter_map(|p| {
                    let version = p.version.as_ref()?;
                    Some((
                        format!("{{node=\"{node}\",peer=\"{}\"}}", label(&p.node)),
                        f64::from(u8::from(*version != self.version)),
                    ))
                })
                .collect(),
        );
        metric(
            "link_up",
            "gauge",
            "1 while the interface is up.",
            vec![(
                format!("{{node=\"{node}\"}}"),
                f64::from(u8::from(self.link_up)),
            )],
        );
        if let Some(dns) = &self.dns {
            let kinds = [
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
            metric(
                "dns_queries_total",
                "counter",
                "DNS queries received.",
                vec![(format!("{{node=\"{node}\"}}"), dns.queries as f64)],
            );
            metric(
                "dns_outcomes_total",
                "counter",
                "DNS queries by outcome.",
                kinds
                    .iter()
                    .map(|(k, n)| (format!("{{node=\"{node}\",outcome=\"{k}\"}}"), *n as f64))
                    .collect(),
            );
            metric(
                "dns_zone_serial",
                "gauge",
                "Serial of the zone this node serves.",
                vec![(format!("{{node=\"{node}\"}}"), f64::from(dns.serial))],
            );
        }
        out
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
        for group in self.groups.iter().filter(|g| !g.resources.is_empty()) {
            let _ = writeln!(out, "resources of {}: {}", group.name, group.resources);
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
                .map(|p| match (&p.version, &p.error) {
                    (Some(v), _) if *v == self.version => format!("{} {v}", p.node),
                    (Some(v), _) => {
                        format!("{} {v} (MISMATCH: this node runs {})", p.node, self.version)
                    }
                    (None, Some(e)) => format!("{} ? ({e})", p.node),
                    (None, None) => format!("{} ? (not asked yet)", p.node),
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
            }],
            dropped: BTreeMap::from([("bad_ttl".to_string(), 2)]),
            anomalies: BTreeMap::new(),
            adverts_sent: 10,
            adverts_received: 3,
            config_digest: None,
            dns: None,
            peers: vec![],
        };
        let text = status.prometheus();
        assert!(text.contains("vipd_state{node=\"alpha\",group=\"we\\\"ird\",family=\"IPv4\",state=\"master\"} 1\n"), "{text}");
        assert!(text.contains("state=\"backup\"} 0\n"));
        assert!(text.contains("vipd_master_down_interval_seconds{node=\"alpha\",group=\"we\\\"ird\",family=\"IPv4\"} 0.3\n"));
        assert!(text.contains("vipd_packets_dropped_total{node=\"alpha\",reason=\"bad_ttl\"} 2\n"));
        assert!(text.contains(
            "# TYPE vipd_adverts_sent_total counter\nvipd_adverts_sent_total{node=\"alpha\"} 10\n"
        ));
    }
}
