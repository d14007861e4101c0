//! From the file as written to a [`Config`]: every rule that keeps a cluster from breaking,
//! each error pointing at the offending value.

use super::*;
use crate::wire::vrrp::MAX_V3_INTERVAL_CS;
use std::collections::HashMap;
use std::net::Ipv6Addr;

mod group;
use group::{GroupSpans, group};

const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_ANNOUNCE_COUNT: u32 = 5;
const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(50);
/// keepalived's ceiling for preempt_delay.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);
/// Ceiling for link_hold: a longer hold is a misconfiguration.
const MAX_LINK_HOLD: Duration = Duration::from_secs(600);
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_INTERFACE_NAME: usize = 15;

pub(super) fn validate(source: &Source, raw: RawFile) -> Result<Config, ConfigError> {
    let cluster = cluster(source, raw.cluster)?;
    let nodes = nodes(source, raw.node, &cluster.zone)?;
    let track_scripts = super::track::scripts(source, raw.track_script)?;
    let quorum = super::quorum::validate(source, raw.quorum)?;
    if quorum.is_none()
        && let Some(node) = nodes.iter().find(|n| n.fence.is_some())
    {
        return Err(source.error(
            0..0,
            format!("[[node]] \"{}\", field `fence`", node.name),
            "fencing serves quorum groups: add a [quorum] table (with its key_file)",
        ));
    }
    let taken: Vec<(String, IpAddr)> = nodes.iter().map(|n| (n.name.clone(), n.address)).collect();
    let witnesses = super::quorum::witnesses(source, raw.witness, &taken)?;
    let mut groups = Vec::with_capacity(raw.group.len());
    for raw_group in raw.group {
        groups.push(group(
            source,
            &cluster,
            &nodes,
            &track_scripts,
            quorum.as_ref(),
            raw_group,
        )?);
    }
    check_across_groups(source, &nodes, &groups)?;
    let dns = super::dns::validate(source, raw.dns)?;
    Ok(Config {
        cluster,
        nodes,
        groups: groups.into_iter().map(|(g, _)| g).collect(),
        dns,
        metrics: super::metrics::validate(source, raw.metrics)?,
        track_scripts,
        quorum,
        witnesses,
    })
}

fn cluster(source: &Source, raw: RawCluster) -> Result<Cluster, ConfigError> {
    let field = |key: &str| format!("[cluster], field `{key}`");
    if raw.name.get_ref().trim().is_empty() {
        return Err(source.error(raw.name.span(), field("name"), "the cluster needs a name"));
    }
    let zone = dns_name(raw.zone.get_ref())
        .map_err(|why| source.error(raw.zone.span(), field("zone"), why))?;
    // The zone's SOA names hostmaster.<zone>, and node names are <node>.<zone>: keep room.
    if zone.len() > 253 - 64 {
        return Err(source.error(
            raw.zone.span(),
            field("zone"),
            "the zone name is too long to hold node names (at most 189 characters)",
        ));
    }
    Ok(Cluster {
        name: raw.name.into_inner(),
        zone,
        ipv4_checksum: match raw.ipv4_checksum {
            None | Some(RawChecksum::PseudoHeader) => Ipv4ChecksumForm::PseudoHeader,
            Some(RawChecksum::MessageOnly) => Ipv4ChecksumForm::MessageOnly,
        },
        allow_unknown_peers: raw.allow_unknown_peers,
    })
}

fn nodes(
    source: &Source,
    raw: Vec<Spanned<RawNode>>,
    zone: &str,
) -> Result<Vec<Node>, ConfigError> {
    let mut link_locals: HashMap<Ipv6Addr, String> = HashMap::new();
    if raw.is_empty() {
        return Err(source.error(
            0..0,
            "",
            "the file lists no [[node]]: add one per cluster node",
        ));
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let raw = spanned.into_inner();
        let name = raw.name.get_ref().clone();
        let at = |key: &str| format!("[[node]] #{} \"{}\", field `{key}`", index + 1, name);
        label(&name).map_err(|why| source.error(raw.name.span(), at("name"), why))?;
        if let Some(first) = names.insert(name.to_ascii_lowercase(), index) {
            return Err(source.error(
                raw.name.span(),
                at("name"),
                format!(
                    "node name \"{name}\" is already used by node #{}",
                    first + 1
                ),
            ));
        }
        let interface = raw.interface.get_ref();
        interface_name(interface)
            .map_err(|why| source.error(raw.interface.span(), at("interface"), why))?;
        let address = *raw.address.get_ref();
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(source.error(
                raw.address.span(),
                at("address"),
                format!("{address} cannot be a node address"),
            ));
        }
        if let IpAddr::V6(v6) = address
            && v6.is_unicast_link_local()
        {
            return Err(source.error(
                raw.address.span(),
                at("address"),
                format!("{address} is link-local: give the node's routable address here, and its link-local one as `link_local`"),
            ));
        }
        if name.len() + 1 + zone.len() > 253 {
            return Err(source.error(
                raw.name.span(),
                at("name"),
                format!("{name}.{zone} is longer than 253 characters"),
            ));
        }
        if let Some(other) = addresses.insert(address, name.clone()) {
            return Err(source.error(
                raw.address.span(),
                at("address"),
                format!("address {address} is already the address of node \"{other}\""),
            ));
        }
        if let Some(link_local) = &raw.link_local
            && let Some(other) = link_locals.insert(*link_local.get_ref(), name.clone())
        {
            return Err(source.error(
                link_local.span(),
                at("link_local"),
                format!(
                    "{} is already the link-local address of node \"{other}\"",
                    link_local.get_ref()
                ),
            ));
        }
        if let Some(link_local) = &raw.link_local {
            link_local_address(link_local.get_ref())
                .map_err(|why| source.error(link_local.span(), at("link_local"), why))?;
        }
        let fence = match &raw.fence {
            Some(fence) if fence.get_ref().trim().is_empty() => {
                return Err(source.error(
                    fence.span(),
                    at("fence"),
                    "the fence command is empty: remove the line, or give the command that powers this node off",
                ));
            }
            Some(fence) => Some(fence.get_ref().clone()),
            None => None,
        };
        let mut lans = vec![Lan {
            interface: interface.clone(),
            address,
            link_local: raw.link_local.as_ref().map(|l| *l.get_ref()),
        }];
        for (number, spanned) in raw.lan.iter().enumerate() {
            let lan = spanned.get_ref();
            let at = |key: &str| {
                format!(
                    "[[node]] #{} \"{}\", [[node.lan]] #{}, field `{key}`",
                    index + 1,
                    name,
                    number + 1
                )
            };
            let lan_interface = lan.interface.get_ref();
            interface_name(lan_interface)
                .map_err(|why| source.error(lan.interface.span(), at("interface"), why))?;
            if lans.iter().any(|l| l.interface == *lan_interface) {
                return Err(source.error(
                    lan.interface.span(),
                    at("interface"),
                    format!("interface {lan_interface} is listed twice for this node"),
                ));
            }
            let lan_address = *lan.address.get_ref();
            let unusable = lan_address.is_unspecified()
                || lan_address.is_multicast()
                || lan_address.is_loopback()
                || matches!(lan_address, IpAddr::V6(v6) if v6.is_unicast_link_local());
            if unusable {
                return Err(source.error(
                    lan.address.span(),
                    at("address"),
                    format!("{lan_address} cannot be a node's address on a LAN (give a routable one; a link-local goes in `link_local`)"),
                ));
            }
            if let Some(other) = addresses.insert(lan_address, name.clone()) {
                return Err(source.error(
                    lan.address.span(),
                    at("address"),
                    format!("address {lan_address} is already an address of node \"{other}\""),
                ));
            }
            if let Some(link_local) = &lan.link_local {
                link_local_address(link_local.get_ref())
                    .map_err(|why| source.error(link_local.span(), at("link_local"), why))?;
            }
            lans.push(Lan {
                interface: lan_interface.clone(),
                address: lan_address,
                link_local: lan.link_local.as_ref().map(|l| *l.get_ref()),
            });
        }
        nodes.push(Node {
            lans,
            name,
            interface: interface.clone(),
            address,
            link_local: raw.link_local.map(|l| l.into_inner()),
            foreign: raw.foreign,
            fence,
        });
    }
    Ok(nodes)
}

/// An address that can be a node's IPv6 link-local advert source.
fn link_local_address(address: &Ipv6Addr) -> Result<(), String> {
    if !address.is_unicast_link_local() {
        return Err(format!(
            "{address} is not an IPv6 link-local address (fe80::/10)"
        ));
    }
    Ok(())
}

/// A name Linux accepts for an interface.
fn interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME || name.contains(['/', ' ']) {
        return Err(format!(
            "`{name}` is not a Linux interface name (1 to 15 characters, no '/' or space)"
        ));
    }
    Ok(())
}

fn families_of(addresses: &[VirtualAddress]) -> Vec<Family> {
    let mut families: Vec<Family> = addresses.iter().map(|a| Family::of(&a.address)).collect();
    families.sort();
    families.dedup();
    families
}

/// The advert interval must be representable on the wire.
pub fn advert_interval_fits(interval: Duration, version: Version) -> Result<(), String> {
    let written = duration::format(interval);
    match version {
        Version::V3 => {
            if !interval.as_nanos().is_multiple_of(10_000_000) {
                return Err(format!(
                    "{written} is not a multiple of 10ms (VRRPv3 counts in centiseconds)"
                ));
            }
            let centis = interval.as_millis() / 10;
            if centis == 0 || centis > u128::from(MAX_V3_INTERVAL_CS) {
                return Err(format!("{written} is outside 10ms..=40.95s"));
            }
        }
        Version::V2 => {
            if interval.subsec_nanos() != 0 || interval.as_secs() == 0 || interval.as_secs() > 255 {
                return Err(format!(
                    "{written} is not a whole number of seconds 1s..=255s (VRRPv2)"
                ));
            }
        }
    }
    Ok(())
}

fn check_across_groups(
    source: &Source,
    nodes: &[Node],
    groups: &[(Group, GroupSpans)],
) -> Result<(), ConfigError> {
    for (later, (group, spans)) in groups.iter().enumerate() {
        let vrid_span = &spans.vrid;
        for (earlier, _) in &groups[..later] {
            if earlier.name == group.name {
                return Err(source.error(
                    vrid_span.clone(),
                    format!("[[group]] \"{}\"", group.name),
                    "another group has the same name",
                ));
            }
            for (address, span) in group.addresses.iter().zip(&spans.addresses) {
                if earlier
                    .addresses
                    .iter()
                    .any(|a| a.address == address.address)
                {
                    return Err(source.error(
                        span.clone(),
                        format!("[[group]] \"{}\", field `addresses`", group.name),
                        format!(
                            "{} is already a virtual address of group \"{}\"",
                            address.address, earlier.name
                        ),
                    ));
                }
            }
            if let Some(name) = group.names.iter().find(|n| earlier.names.contains(n)) {
                return Err(source.error(
                    vrid_span.clone(),
                    format!("[[group]] \"{}\", field `names`", group.name),
                    format!("{name} is already a name of group \"{}\"", earlier.name),
                ));
            }
            if earlier.vrid != group.vrid {
                continue;
            }
            let shared_family = group
                .families()
                .into_iter()
                .find(|f| earlier.families().contains(f));
            // Two groups with one VRID on one LAN would hear each other's adverts there,
            // members or not: a VRID is unique per interface and family (RFC 9568 scopes
            // it so). Groups on the first interfaces share the cluster's LAN.
            let same_lan = match (&group.interface, &earlier.interface) {
                (None, None) => true,
                (Some(a), Some(b)) => a == b,
                (Some(named), None) | (None, Some(named)) => {
                    nodes.iter().any(|n| n.interface == *named)
                }
            };
            if let Some(family) = shared_family.filter(|_| same_lan) {
                return Err(source.error(
                    vrid_span.clone(),
                    format!("[[group]] \"{}\", field `vrid`", group.name),
                    format!(
                        "vrid {} is already used by group \"{}\" for {family} on the same LAN: a VRID must be unique per interface and address family",
                        group.vrid, earlier.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks one DNS label (a node name becomes `name.zone.`).
fn label(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{text}\" is not a valid DNS label (letters, digits and '-', at most 63)"
        ))
    }
}

/// An absolute DNS name, lower case with the trailing dot.
pub(super) fn dns_name(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("the zone needs a name, e.g. \"cluster.example.\"".to_string());
    }
    for part in trimmed.split('.') {
        label(part).map_err(|why| format!("\"{text}\": {why}"))?;
    }
    if trimmed.len() > 253 {
        return Err(format!("\"{text}\" is longer than 253 characters"));
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// A group's virtual name: relative names are taken inside the zone; absolute ones (with
/// the trailing dot) must lie inside it.
fn name_in_zone(written: &str, zone: &str) -> Result<String, String> {
    let fqdn = if written.ends_with('.') {
        dns_name(written)?
    } else {
        dns_name(&format!("{written}.{zone}"))?
    };
    if fqdn == zone || !fqdn.ends_with(&format!(".{zone}")) {
        return Err(format!(
            "{fqdn} is outside the cluster zone {zone}: use a name under it, such as \"{}\"",
            written
                .trim_end_matches('.')
                .split('.')
                .next()
                .unwrap_or("name")
        ));
    }
    Ok(fqdn)
}
