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
    pub uptime_ms: u64,
    pub groups: Vec<GroupStatus>,
    /// Received packets dropped before the election saw them, by reason.
    pub dropped: BTreeMap<String, u64>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// The DNS server's counters and zone serial, when it serves the zone.
    #[serde(default)]
    pub dns: Option<crate::dns::server::CountersSnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub vrid: u8,
    pub addresses: Vec<String>,
    pub instances: Vec<InstanceStatus>,
    /// Most recent last.
    pub transitions: Vec<TransitionRecord>,
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
    pub interval_mismatch: u64,
    pub second_master_seen: u64,
    pub became_master: u64,
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

impl Status {
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
