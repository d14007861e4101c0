//! From the file as written to a [`Config`]: every rule that keeps a cluster from breaking,
//! each error pointing at the offending value.

use super::*;
use crate::wire::vrrp::MAX_V3_INTERVAL_CS;
use std::collections::HashMap;
use std::net::Ipv6Addr;

const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_ANNOUNCE_COUNT: u32 = 5;
const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(50);
/// keepalived's ceiling for preempt_delay.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_INTERFACE_NAME: usize = 15;

pub(super) fn validate(source: &Source, raw: RawFile) -> Result<Config, ConfigError> {
    let cluster = cluster(source, raw.cluster)?;
    let nodes = nodes(source, raw.node, &cluster.zone)?;
    let mut groups = Vec::with_capacity(raw.group.len());
    for raw_group in raw.group {
        groups.push(group(source, &cluster, &nodes, raw_group)?);
    }
    check_across_groups(source, &nodes, &groups)?;
    let dns = super::dns::validate(source, raw.dns)?;
    Ok(Config {
        cluster,
        nodes,
        groups: groups.into_iter().map(|(g, _)| g).collect(),
        dns,
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
        if interface.is_empty()
            || interface.len() > MAX_INTERFACE_NAME
            || interface.contains(['/', ' '])
        {
            return Err(source.error(
                raw.interface.span(),
                at("interface"),
                format!("`{interface}` is not a Linux interface name (1 to 15 characters, no '/' or space)"),
            ));
        }
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
        if let Some(link_local) = &raw.link_local
            && !link_local.get_ref().is_unicast_link_local()
        {
            return Err(source.error(
                link_local.span(),
                at("link_local"),
                format!(
                    "{} is not an IPv6 link-local address (fe80::/10)",
                    link_local.get_ref()
                ),
            ));
        }
        nodes.push(Node {
            name,
            interface: interface.clone(),
            address,
            link_local: raw.link_local.map(|l| l.into_inner()),
            foreign: raw.foreign,
        });
    }
    Ok(nodes)
}

/// Where a group's vrid and addresses stand in the file, for the checks across groups.
struct GroupSpans {
    vrid: std::ops::Range<usize>,
    addresses: Vec<std::ops::Range<usize>>,
}

fn group(
    source: &Source,
    cluster: &Cluster,
    nodes: &[Node],
    spanned: Spanned<RawGroup>,
) -> Result<(Group, GroupSpans), ConfigError> {
    let raw = spanned.into_inner();
    let name = raw.name.get_ref().clone();
    let at = |key: &str| format!("[[group]] \"{name}\", field `{key}`");
    if name.trim().is_empty() {
        return Err(source.error(
            raw.name.span(),
            "[[group]], field `name`",
            "the group needs a name",
        ));
    }

    let vrid = u8::try_from(*raw.vrid.get_ref())
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            source.error(
                raw.vrid.span(),
                at("vrid"),
                format!("vrid {} is not 1..=255", raw.vrid.get_ref()),
            )
        })?;

    let version = match raw.version.as_ref().map(|v| *v.get_ref()) {
        None | Some(3) => Version::V3,
        Some(2) => Version::V2,
        Some(other) => {
            let span = raw.version.as_ref().map(|v| v.span()).unwrap_or_default();
            return Err(source.error(
                span,
                at("version"),
                format!("VRRP version {other} does not exist: use 3 (or 2 for IPv4)"),
            ));
        }
    };

    if raw.addresses.get_ref().is_empty() {
        return Err(source.error(
            raw.addresses.span(),
            at("addresses"),
            "the group has no virtual address: list at least one, e.g. [\"192.0.2.100/24\"]",
        ));
    }
    let mut addresses: Vec<VirtualAddress> = Vec::new();
    for address in raw.addresses.get_ref() {
        if addresses
            .iter()
            .any(|a| a.address == address.get_ref().address)
        {
            return Err(source.error(
                address.span(),
                at("addresses"),
                format!("{} is listed twice", address.get_ref().address),
            ));
        }
        if version == Version::V2 && address.get_ref().address.is_ipv6() {
            return Err(source.error(
                address.span(),
                at("addresses"),
                "VRRP version 2 carries IPv4 only: use version 3 for IPv6",
            ));
        }
        addresses.push(*address.get_ref());
    }

    let mut names = Vec::with_capacity(raw.names.len());
    for written in &raw.names {
        let fqdn = name_in_zone(written.get_ref(), &cluster.zone)
            .map_err(|why| source.error(written.span(), at("names"), why))?;
        if names.contains(&fqdn) {
            return Err(source.error(
                written.span(),
                at("names"),
                format!("{fqdn} is listed twice"),
            ));
        }
        if let Some(node) = nodes
            .iter()
            .find(|n| fqdn == format!("{}.{}", n.name.to_ascii_lowercase(), cluster.zone))
        {
            return Err(source.error(
                written.span(),
                at("names"),
                format!("{fqdn} is the name of node \"{}\" in the zone", node.name),
            ));
        }
        names.push(fqdn);
    }

    if raw.priority.get_ref().is_empty() {
        return Err(source.error(
            raw.priority.span(),
            at("priority"),
            "no node is a member: give each member a priority, e.g. { alpha = 150, beta = 100 }",
        ));
    }
    let mut priorities = Vec::new();
    for (node_name, priority) in raw.priority.get_ref() {
        let node = nodes
            .iter()
            .position(|n| n.name == *node_name.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                source.error(
                    node_name.span(),
                    at("priority"),
                    format!(
                        "\"{}\" is not a node of this cluster (nodes: {})",
                        node_name.get_ref(),
                        known.join(", ")
                    ),
                )
            })?;
        let value = u8::try_from(*priority.get_ref())
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| {
                source.error(
                    priority.span(),
                    at(&format!("priority.{}", node_name.get_ref())),
                    format!("priority {} is not 1..=255", priority.get_ref()),
                )
            })?;
        let owns = addresses.iter().any(|a| a.address == nodes[node].address);
        if value == 255 && !owns {
            return Err(source.error(
                priority.span(),
                at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "priority 255 is reserved for the owner of the virtual address, and none of this group's addresses is node \"{}\"'s own address {}: use 1..=254",
                    node_name.get_ref(),
                    nodes[node].address
                ),
            ));
        }
        if value != 255 && owns {
            return Err(source.error(
                priority.span(),
                at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "{} is node \"{}\"'s own address, so that node owns it and must have priority 255",
                    nodes[node].address,
                    node_name.get_ref()
                ),
            ));
        }
        if value == 255
            && let Some((other, _)) = priorities.iter().find(|(_, p): &&(usize, u8)| *p == 255)
        {
            return Err(source.error(
                priority.span(),
                at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "node \"{}\" already owns an address of this group: a group has one address owner; give each owner's address its own group",
                    nodes[*other].name
                ),
            ));
        }
        priorities.push((node, value));
    }
    priorities.sort();
    // A virtual address that is some other, non-member node's own address would be stolen.
    for address in &addresses {
        if let Some(node) = nodes.iter().position(|n| n.address == address.address)
            && !priorities.iter().any(|(n, _)| *n == node)
        {
            return Err(source.error(
                raw.addresses.span(),
                at("addresses"),
                format!(
                    "{} is node \"{}\"'s own address, and that node is not a member",
                    address.address, nodes[node].name
                ),
            ));
        }
    }

    // A dual-stack group keeps both families on one owner, but the two families break
    // priority ties by different addresses (IPv4 address, IPv6 link-local) and could pick
    // different owners: ties are refused there.
    if families_of(&addresses).len() == 2 {
        for (i, (a, pa)) in priorities.iter().enumerate() {
            if let Some((b, _)) = priorities[i + 1..].iter().find(|(_, pb)| pb == pa) {
                return Err(source.error(
                    raw.priority.span(),
                    at("priority"),
                    format!(
                        "nodes \"{}\" and \"{}\" share priority {pa} in a group with IPv4 and IPv6 addresses: the two families could break the tie differently; give them different priorities",
                        nodes[*a].name, nodes[*b].name
                    ),
                ));
            }
        }
    }

    // IPv6 adverts come from link-local addresses: without them in the file, members are
    // told apart by priority, which a tie makes impossible.
    if addresses.iter().any(|a| a.address.is_ipv6()) {
        let unknown_source = |n: usize| nodes[n].link_local.is_none();
        for (i, (a, pa)) in priorities.iter().enumerate() {
            if let Some((b, _)) = priorities[i + 1..]
                .iter()
                .find(|(b, pb)| pb == pa && (unknown_source(*a) || unknown_source(*b)))
            {
                return Err(source.error(
                    raw.priority.span(),
                    at("priority"),
                    format!(
                        "nodes \"{}\" and \"{}\" share priority {pa} in a group with IPv6 addresses: give them different priorities, or give each node its `link_local` address so their IPv6 adverts can be told apart",
                        nodes[*a].name, nodes[*b].name
                    ),
                ));
            }
        }
    }

    let advert_interval = match &raw.advert_interval {
        None => DEFAULT_ADVERT_INTERVAL,
        Some(spanned) => {
            let interval = spanned.get_ref().0;
            advert_interval_fits(interval, version)
                .map_err(|why| source.error(spanned.span(), at("advert_interval"), why))?;
            interval
        }
    };

    let preempt_delay = match &raw.preempt_delay {
        None => Duration::ZERO,
        Some(spanned) if spanned.get_ref().0 > MAX_PREEMPT_DELAY => {
            return Err(source.error(
                spanned.span(),
                at("preempt_delay"),
                "preempt_delay is at most 1000s",
            ));
        }
        Some(spanned) => spanned.get_ref().0,
    };

    let unicast = raw.unicast.unwrap_or(false);
    if unicast {
        for family in families_of(&addresses) {
            let reachable = |n: usize| match family {
                Family::V4 => nodes[n].address.is_ipv4(),
                Family::V6 => nodes[n].link_local.is_some(),
            };
            if let Some((node, _)) = priorities.iter().find(|(n, _)| !reachable(*n)) {
                let what = match family {
                    Family::V4 => "no IPv4 address",
                    Family::V6 => {
                        "no `link_local` address (IPv6 adverts go between link-local addresses)"
                    }
                };
                return Err(source.error(
                    raw.name.span(),
                    at("unicast"),
                    format!(
                        "unicast adverts for the {family} addresses go to each member's address, and node \"{}\" has {what}",
                        nodes[*node].name
                    ),
                ));
            }
        }
    }

    if raw.accept_mode == Some(false) {
        return Err(source.error(
            raw.name.span(),
            at("accept_mode"),
            "accept_mode = false is not supported yet: vipd accepts traffic to the virtual addresses, as keepalived does by default; remove the line",
        ));
    }

    let count = match &raw.announce_count {
        None => DEFAULT_ANNOUNCE_COUNT,
        Some(spanned) => u32::try_from(*spanned.get_ref())
            .ok()
            .filter(|c| *c <= 100)
            .ok_or_else(|| {
                source.error(
                    spanned.span(),
                    at("announce_count"),
                    "announce_count is 0..=100",
                )
            })?,
    };
    let dns_ttl = match &raw.dns_ttl {
        None => None,
        Some(spanned) => {
            let ttl = spanned.get_ref().0;
            if ttl.subsec_nanos() != 0 || ttl > Duration::from_secs(86_400) {
                return Err(source.error(
                    spanned.span(),
                    at("dns_ttl"),
                    "a TTL is whole seconds, at most 1 day",
                ));
            }
            Some(ttl)
        }
    };
    if let Some(interval) = &raw.announce_interval
        && interval.get_ref().0 < Duration::from_millis(1)
        && count > 1
    {
        return Err(source.error(
            interval.span(),
            at("announce_interval"),
            "announce_interval is at least 1ms",
        ));
    }
    if let Some(refresh) = &raw.announce_refresh
        && !refresh.get_ref().0.is_zero()
        && refresh.get_ref().0 < Duration::from_secs(1)
    {
        return Err(source.error(
            refresh.span(),
            at("announce_refresh"),
            "announce_refresh is 0s (off) or at least 1s",
        ));
    }
    let announce = Announce {
        count,
        interval: raw
            .announce_interval
            .as_ref()
            .map_or(DEFAULT_ANNOUNCE_INTERVAL, |d| d.get_ref().0),
        refresh: raw
            .announce_refresh
            .as_ref()
            .map_or(Duration::ZERO, |d| d.get_ref().0),
    };

    let mut resources: Vec<Resource> = Vec::new();
    for resource in &raw.resource {
        let name = resource.name.get_ref().trim().to_string();
        let at_resource = |key: &str| {
            format!(
                "[[group.resource]] \"{name}\" of group \"{}\", field `{key}`",
                raw.name.get_ref()
            )
        };
        if name.is_empty() || resources.iter().any(|r| r.name == name) {
            return Err(source.error(
                resource.name.span(),
                at_resource("name"),
                "each resource of a group needs its own name",
            ));
        }
        for (key, command) in [("start", &resource.start), ("stop", &resource.stop)] {
            if command.get_ref().trim().is_empty() {
                return Err(source.error(
                    command.span(),
                    at_resource(key),
                    format!("the {key} command is empty"),
                ));
            }
        }
        let positive =
            |value: &Option<Spanned<HumanDuration>>, key: &str, default: Duration| match value {
                None => Ok(default),
                Some(d) if d.get_ref().0 >= Duration::from_millis(10) => Ok(d.get_ref().0),
                Some(d) => Err(source.error(
                    d.span(),
                    at_resource(key),
                    format!("{key} is at least 10ms"),
                )),
            };
        resources.push(Resource {
            name: name.clone(),
            start: resource.start.get_ref().clone(),
            stop: resource.stop.get_ref().clone(),
            check: resource.check.clone().filter(|c| !c.trim().is_empty()),
            timeout: positive(&resource.timeout, "timeout", Duration::from_secs(30))?,
            check_interval: positive(
                &resource.check_interval,
                "check_interval",
                Duration::from_secs(10),
            )?,
        });
    }

    let spans = GroupSpans {
        vrid: raw.vrid.span(),
        addresses: raw.addresses.get_ref().iter().map(|a| a.span()).collect(),
    };
    Ok((
        Group {
            name,
            vrid,
            addresses,
            names,
            priorities,
            advert_interval,
            preempt: raw.preempt.unwrap_or(true),
            preempt_delay,
            // keepalived accepts traffic to the virtual addresses unless vrrp_strict; so do we.
            accept_mode: raw.accept_mode.unwrap_or(true),
            version,
            unicast,
            announce,
            dns_ttl,
            resources,
        },
        spans,
    ))
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
            // The cluster's nodes share one LAN: two groups with one VRID would hear each
            // other's adverts there, members or not.
            if let Some(family) = shared_family {
                let _ = nodes;
                return Err(source.error(
                    vrid_span.clone(),
                    format!("[[group]] \"{}\", field `vrid`", group.name),
                    format!(
                        "vrid {} is already used by group \"{}\" for {family}: a VRID must be unique per address family on the cluster's LAN",
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
