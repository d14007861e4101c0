//! `vipd check`: what a node will do with a cluster file, without touching the network.

use crate::config::Config;
use crate::config::duration::format;
use crate::plan;
use std::fmt::Write;

/// The report for one node.
pub fn node_report(config: &Config, node: usize) -> String {
    let mut out = String::new();
    let me = &config.nodes[node];
    let _ = writeln!(
        out,
        "node {} on {} ({}{}){}",
        me.name,
        me.interface,
        me.address,
        me.link_local.map(|l| format!(", {l}")).unwrap_or_default(),
        if me.foreign {
            ", foreign VRRP speaker: vipd does not run here"
        } else {
            ""
        }
    );
    for lan in me.lans.iter().skip(1) {
        let _ = writeln!(
            out,
            "  also on {} ({}{})",
            lan.interface,
            lan.address,
            lan.link_local.map(|l| format!(", {l}")).unwrap_or_default()
        );
    }
    if config.dns.enabled {
        let _ = writeln!(
            out,
            "  dns: serves {} on port {} at {} and at its groups' virtual addresses while it holds them{}",
            config.cluster.zone,
            config.dns.port,
            me.address,
            match &config.dns.update {
                Some(update) => format!(
                    "; as owner registers the names in {} at {}",
                    update.zone, update.server
                ),
                None => String::new(),
            }
        );
    }
    if let Some(quorum) = &config.quorum {
        let voters = crate::quorum::voters(config);
        let names: Vec<String> = voters
            .iter()
            .map(|v| {
                if v.node.is_none() {
                    format!("{} (witness)", v.name)
                } else {
                    v.name.clone()
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "  quorum: {} of {} votes ({}); heartbeats every {} on UDP port {}, key {}; a vote lasts {}: a node cut off from the majority stops its quorum groups (resources may take up to {} to stop) before another node may start them{}",
            voters.len() / 2 + 1,
            voters.len(),
            names.join(", "),
            format(quorum.heartbeat),
            quorum.port,
            quorum.key_file.display(),
            format(quorum.lease),
            format(quorum.stop_budget()),
            if voters.len() == 2 {
                " (two votes: losing either node stops the quorum groups; add a [[witness]])"
            } else {
                ""
            }
        );
        let fenced: Vec<&str> = config
            .nodes
            .iter()
            .filter(|n| n.fence.is_some())
            .map(|n| n.name.as_str())
            .collect();
        if !fenced.is_empty() {
            let _ = writeln!(
                out,
                "  fencing: {} (a vanished owner is fenced before a quorum group starts elsewhere, time-out {})",
                fenced.join(", "),
                format(quorum.fence_timeout)
            );
        }
    }
    let plans = plan::for_node(config, node);
    if plans.is_empty() {
        let _ = writeln!(out, "  member of no group: serves DNS only");
    }
    for group_plan in plans {
        let group = &config.groups[group_plan.group];
        let addresses: Vec<String> = group.addresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  group {} (vrid {} on {}, VRRPv{}): {}{}",
            group.name,
            group.vrid,
            me.lans[group.lan_of(me)].interface,
            match group.version {
                crate::wire::vrrp::Version::V2 => 2,
                crate::wire::vrrp::Version::V3 => 3,
            },
            addresses.join(" "),
            if group.names.is_empty() {
                String::new()
            } else {
                format!(" as {}", group.names.join(" "))
            }
        );
        let members: Vec<String> = group
            .priorities
            .iter()
            .map(|(n, p)| format!("{} {p}", config.nodes[*n].name))
            .collect();
        let _ = writeln!(
            out,
            "    members {}; preempt {}{}, accept {}, {}",
            members.join(", "),
            if group.preempt { "on" } else { "off" },
            if group.preempt_delay.is_zero() {
                String::new()
            } else {
                format!(" after {}", format(group.preempt_delay))
            },
            if group.accept_mode { "on" } else { "off" },
            if group.unicast {
                "unicast"
            } else {
                "multicast"
            },
        );
        if !group.track.is_empty() {
            let trackers: Vec<String> = group
                .track
                .iter()
                .map(|t| {
                    let what = match &t.tracked {
                        crate::config::track::Tracked::Script(i) => {
                            format!("script {}", config.track_scripts[*i].name)
                        }
                        crate::config::track::Tracked::Interface(name) => {
                            format!("interface {name}")
                        }
                    };
                    match t.weight {
                        0 => format!("{what} (fault while down)"),
                        w if w > 0 => format!("{what} ({w:+} while up)"),
                        w => format!("{what} ({w:+} while down)"),
                    }
                })
                .collect();
            let _ = writeln!(out, "    tracks {}", trackers.join(", "));
        }
        if !group.resources.is_empty() {
            let resources: Vec<String> = group
                .resources
                .iter()
                .map(|r| {
                    format!(
                        "{}{}",
                        r.name,
                        if r.check.is_some() {
                            format!(" (checked every {})", format(r.check_interval))
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            let _ = writeln!(out, "    as owner runs, in order: {}", resources.join(", "));
        }
        if group.quorum {
            let _ = writeln!(
                out,
                "    quorum group: taken only with a majority of the votes, once every other member let go (or its votes ran out, or it was fenced)"
            );
        }
        for instance in &group_plan.instances {
            let interval = instance.advert_interval;
            let skew = instance.skew_time(interval);
            let rfc_down = 3 * interval + skew;
            // The master this node normally backs up: the best-ranked other member.
            let preferred = (0..instance.peers.len()).max_by_key(|i| instance.peers[*i].priority);
            let is_preferred =
                preferred.is_none_or(|i| instance.peers[i].priority < instance.priority);
            let _ = writeln!(
                out,
                "    {}: priority {}{}, advert every {}, skew {}",
                instance.family,
                instance.priority,
                match instance.priority {
                    255 => " (address owner: starts as master)",
                    _ if is_preferred => " (preferred master)",
                    _ => "",
                },
                format(interval),
                format(skew),
            );
            let Some(master) = preferred else { continue };
            let down = instance.master_down_interval(interval, Some(master));
            let graceful = if instance.fast_takeover && instance.rank_without(Some(master)) == 0 {
                "at once".to_string()
            } else {
                format!("after skew {}", format(skew))
            };
            let _ = writeln!(
                out,
                "      while {} is master: takes over {} after it crashes (master-down interval{}), {} when it stops",
                instance.peers[master].name,
                format(down),
                if down != rfc_down {
                    format!("; RFC timers: {}", format(rfc_down))
                } else {
                    String::new()
                },
                graceful,
            );
            if !instance.fast_takeover {
                let _ = writeln!(out, "      a foreign VRRP speaker is a member: RFC timers");
                let _ = writeln!(
                    out,
                    "      members must advertise every {} (keepalived: advert_int {}); a member's longer interval (up to {}x) is followed and counted in status (interval_mismatch)",
                    format(interval),
                    interval.as_secs_f64(),
                    crate::election::MAX_LEARNED_STRETCH,
                );
            }
        }
    }
    out
}

/// The report for the whole file: the cluster, then each node asked for.
pub fn report(config: &Config, nodes: &[usize]) -> String {
    let mut out = format!(
        "cluster {}, zone {}, {} node(s), {} group(s): OK\n",
        config.cluster.name,
        config.cluster.zone,
        config.nodes.len(),
        config.groups.len()
    );
    for node in nodes {
        out.push_str(&node_report(config, *node));
    }
    out
}
