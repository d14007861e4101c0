//! One `[[group]]` of the file, checked one concern at a time, in the order the fields are
//! explained to an operator: identity, addresses, names, members, timers, transport,
//! announcements, resources. The first broken rule is the error.

use super::*;
use crate::config::quorum::Quorum;

/// Where a group's vrid and addresses stand in the file, for the checks across groups.
pub(super) struct GroupSpans {
    pub vrid: std::ops::Range<usize>,
    pub addresses: Vec<std::ops::Range<usize>>,
}

/// One group being checked, with what its rules refer to.
struct GroupCheck<'a> {
    source: &'a Source<'a>,
    cluster: &'a Cluster,
    nodes: &'a [Node],
    raw: &'a RawGroup,
    quorum: Option<&'a Quorum>,
}

type Checked<T> = Result<T, ConfigError>;

pub(super) fn group(
    source: &Source,
    cluster: &Cluster,
    nodes: &[Node],
    track_scripts: &[super::super::track::TrackScript],
    quorum: Option<&Quorum>,
    spanned: Spanned<RawGroup>,
) -> Result<(Group, GroupSpans), ConfigError> {
    let raw = spanned.into_inner();
    if raw.name.get_ref().trim().is_empty() {
        return Err(source.error(
            raw.name.span(),
            "[[group]], field `name`",
            "the group needs a name",
        ));
    }
    let check = GroupCheck {
        source,
        cluster,
        nodes,
        raw: &raw,
        quorum,
    };
    let vrid = check.vrid()?;
    let version = check.version()?;
    let addresses = check.addresses(version)?;
    let names = check.names()?;
    let priorities = check.priorities(&addresses)?;
    let advert_interval = check.advert_interval(version)?;
    let preempt_delay = check.preempt_delay()?;
    let link_hold = check.link_hold(advert_interval)?;
    let unicast = check.unicast(&addresses, &priorities)?;
    check.accept_mode()?;
    let (announce, dns_ttl) = check.announce_and_ttl()?;
    let resources = check.resources()?;
    let vmac = check.vmac(vrid, &addresses, &priorities)?;
    let track = super::super::track::group_trackers(
        source,
        raw.name.get_ref(),
        track_scripts,
        &raw.track_script,
        &raw.track_interface,
    )?;
    let quorum = check.quorum(&resources, &priorities)?;
    let interface = check.interface(&addresses, &priorities)?;
    let spans = GroupSpans {
        vrid: raw.vrid.span(),
        addresses: raw.addresses.get_ref().iter().map(|a| a.span()).collect(),
    };
    Ok((
        Group {
            name: raw.name.get_ref().clone(),
            vrid,
            addresses,
            names,
            priorities,
            advert_interval,
            preempt: raw.preempt.unwrap_or(true),
            preempt_delay,
            link_hold,
            // keepalived accepts traffic to the virtual addresses unless vrrp_strict; so do we.
            accept_mode: raw.accept_mode.unwrap_or(true),
            version,
            unicast,
            announce,
            dns_ttl,
            require_same_file: raw.require_same_file.unwrap_or(false),
            resources,
            vmac,
            track,
            quorum,
            interface,
        },
        spans,
    ))
}

impl<'a> GroupCheck<'a> {
    /// "[[group]] "NAME", field `KEY`": where an error points.
    fn at(&self, key: &str) -> String {
        format!("[[group]] \"{}\", field `{key}`", self.raw.name.get_ref())
    }

    fn vrid(&self) -> Checked<u8> {
        u8::try_from(*self.raw.vrid.get_ref())
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                self.source.error(
                    self.raw.vrid.span(),
                    self.at("vrid"),
                    format!("vrid {} is not 1..=255", self.raw.vrid.get_ref()),
                )
            })
    }

    fn version(&self) -> Checked<Version> {
        Ok(match self.raw.version.as_ref().map(|v| *v.get_ref()) {
            None | Some(3) => Version::V3,
            Some(2) => Version::V2,
            Some(other) => {
                let span = self
                    .raw
                    .version
                    .as_ref()
                    .map(|v| v.span())
                    .unwrap_or_default();
                return Err(self.source.error(
                    span,
                    self.at("version"),
                    format!("VRRP version {other} does not exist: use 3 (or 2 for IPv4)"),
                ));
            }
        })
    }

    /// The virtual addresses: at least one, none twice, IPv4 only under version 2.
    fn addresses(&self, version: Version) -> Checked<Vec<VirtualAddress>> {
        if self.raw.addresses.get_ref().is_empty() {
            return Err(self.source.error(
                self.raw.addresses.span(),
                self.at("addresses"),
                "the group has no virtual address: list at least one, e.g. [\"192.0.2.100/24\"]",
            ));
        }
        let mut addresses: Vec<VirtualAddress> = Vec::new();
        for address in self.raw.addresses.get_ref() {
            if addresses
                .iter()
                .any(|a| a.address == address.get_ref().address)
            {
                return Err(self.source.error(
                    address.span(),
                    self.at("addresses"),
                    format!("{} is listed twice", address.get_ref().address),
                ));
            }
            if version == Version::V2 && address.get_ref().address.is_ipv6() {
                return Err(self.source.error(
                    address.span(),
                    self.at("addresses"),
                    "VRRP version 2 carries IPv4 only: use version 3 for IPv6",
                ));
            }
            addresses.push(*address.get_ref());
        }
        Ok(addresses)
    }

    /// The virtual names, in the cluster zone, none twice, none a node's name.
    fn names(&self) -> Checked<Vec<String>> {
        let mut names = Vec::with_capacity(self.raw.names.len());
        for written in &self.raw.names {
            let fqdn = name_in_zone(written.get_ref(), &self.cluster.zone)
                .map_err(|why| self.source.error(written.span(), self.at("names"), why))?;
            if names.contains(&fqdn) {
                return Err(self.source.error(
                    written.span(),
                    self.at("names"),
                    format!("{fqdn} is listed twice"),
                ));
            }
            if let Some(node) = self
                .nodes
                .iter()
                .find(|n| fqdn == format!("{}.{}", n.name.to_ascii_lowercase(), self.cluster.zone))
            {
                return Err(self.source.error(
                    written.span(),
                    self.at("names"),
                    format!("{fqdn} is the name of node \"{}\" in the zone", node.name),
                ));
            }
            names.push(fqdn);
        }
        Ok(names)
    }

    /// The members and their priorities: known nodes, 1..=255, 255 for (and only for) the one
    /// owner of an address, no address of a non-member, no ties where ties cannot be broken.
    fn priorities(&self, addresses: &[VirtualAddress]) -> Checked<Vec<(usize, u8)>> {
        if self.raw.priority.get_ref().is_empty() {
            return Err(self.source.error(
                self.raw.priority.span(),
                self.at("priority"),
                "no node is a member: give each member a priority, e.g. { alpha = 150, beta = 100 }",
            ));
        }
        let mut priorities = Vec::new();
        for (node_name, priority) in self.raw.priority.get_ref() {
            let member = self.member(node_name, priority, addresses, &priorities)?;
            priorities.push(member);
        }
        priorities.sort();
        self.no_address_of_a_non_member(addresses, &priorities)?;
        self.no_unbreakable_ties(addresses, &priorities)?;
        Ok(priorities)
    }

    /// One `node = priority` entry.
    fn member(
        &self,
        node_name: &Spanned<String>,
        priority: &Spanned<i64>,
        addresses: &[VirtualAddress],
        priorities: &[(usize, u8)],
    ) -> Checked<(usize, u8)> {
        let node = self
            .nodes
            .iter()
            .position(|n| n.name == *node_name.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                self.source.error(
                    node_name.span(),
                    self.at("priority"),
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
                self.source.error(
                    priority.span(),
                    self.at(&format!("priority.{}", node_name.get_ref())),
                    format!("priority {} is not 1..=255", priority.get_ref()),
                )
            })?;
        let owns = addresses
            .iter()
            .any(|a| a.address == self.nodes[node].address);
        if value == 255 && !owns {
            return Err(self.source.error(
                priority.span(),
                self.at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "priority 255 is reserved for the owner of the virtual address, and none of this group's addresses is node \"{}\"'s own address {}: use 1..=254",
                    node_name.get_ref(),
                    self.nodes[node].address
                ),
            ));
        }
        if value != 255 && owns {
            return Err(self.source.error(
                priority.span(),
                self.at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "{} is node \"{}\"'s own address, so that node owns it and must have priority 255",
                    self.nodes[node].address,
                    node_name.get_ref()
                ),
            ));
        }
        if value == 255
            && let Some((other, _)) = priorities.iter().find(|(_, p): &&(usize, u8)| *p == 255)
        {
            return Err(self.source.error(
                priority.span(),
                self.at(&format!("priority.{}", node_name.get_ref())),
                format!(
                    "node \"{}\" already owns an address of this group: a group has one address owner; give each owner's address its own group",
                    self.nodes[*other].name
                ),
            ));
        }
        Ok((node, value))
    }

    fn no_address_of_a_non_member(
        &self,
        addresses: &[VirtualAddress],
        priorities: &[(usize, u8)],
    ) -> Checked<()> {
        // A virtual address that is some other, non-member node's own address would be stolen.
        for address in addresses {
            if let Some(node) = self.nodes.iter().position(|n| n.address == address.address)
                && !priorities.iter().any(|(n, _)| *n == node)
            {
                return Err(self.source.error(
                    self.raw.addresses.span(),
                    self.at("addresses"),
                    format!(
                        "{} is node \"{}\"'s own address, and that node is not a member",
                        address.address, self.nodes[node].name
                    ),
                ));
            }
        }

        Ok(())
    }

    fn no_unbreakable_ties(
        &self,
        addresses: &[VirtualAddress],
        priorities: &[(usize, u8)],
    ) -> Checked<()> {
        // A dual-stack group keeps both families on one owner, but the two families break
        // priority ties by different addresses (IPv4 address, IPv6 link-local) and could pick
        // different owners: ties are refused there.
        if families_of(addresses).len() == 2 {
            for (i, (a, pa)) in priorities.iter().enumerate() {
                if let Some((b, _)) = priorities[i + 1..].iter().find(|(_, pb)| pb == pa) {
                    return Err(self.source.error(
                        self.raw.priority.span(),
                        self.at("priority"),
                        format!(
                            "self.nodes \"{}\" and \"{}\" share priority {pa} in a group with IPv4 and IPv6 addresses: the two families could break the tie differently; give them different priorities",
                            self.nodes[*a].name, self.nodes[*b].name
                        ),
                    ));
                }
            }
        }

        // IPv6 adverts come from link-local addresses: without them in the file, members are
        // told apart by priority, which a tie makes impossible.
        if addresses.iter().any(|a| a.address.is_ipv6()) {
            let unknown_source = |n: usize| self.nodes[n].link_local.is_none();
            for (i, (a, pa)) in priorities.iter().enumerate() {
                if let Some((b, _)) = priorities[i + 1..]
                    .iter()
                    .find(|(b, pb)| pb == pa && (unknown_source(*a) || unknown_source(*b)))
                {
                    return Err(self.source.error(
                        self.raw.priority.span(),
                        self.at("priority"),
                        format!(
                            "self.nodes \"{}\" and \"{}\" share priority {pa} in a group with IPv6 addresses: give them different priorities, or give each node its `link_local` address so their IPv6 adverts can be told apart",
                            self.nodes[*a].name, self.nodes[*b].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn advert_interval(&self, version: Version) -> Checked<Duration> {
        Ok(match &self.raw.advert_interval {
            None => DEFAULT_ADVERT_INTERVAL,
            Some(spanned) => {
                let interval = spanned.get_ref().0;
                advert_interval_fits(interval, version).map_err(|why| {
                    self.source
                        .error(spanned.span(), self.at("advert_interval"), why)
                })?;
                interval
            }
        })
    }

    fn preempt_delay(&self) -> Checked<Duration> {
        Ok(match &self.raw.preempt_delay {
            None => Duration::ZERO,
            Some(spanned) if spanned.get_ref().0 > MAX_PREEMPT_DELAY => {
                return Err(self.source.error(
                    spanned.span(),
                    self.at("preempt_delay"),
                    "preempt_delay is at most 1000s",
                ));
            }
            Some(spanned) => spanned.get_ref().0,
        })
    }

    /// Default: three advert intervals (the master-down interval): one link fault is
    /// recovered from (preempt back) a moment after the link returns, a flapping link never
    /// pulls the group back until it stays up.
    fn link_hold(&self, advert_interval: Duration) -> Checked<Duration> {
        Ok(match &self.raw.link_hold {
            None => 3 * advert_interval,
            Some(spanned) if spanned.get_ref().0 > MAX_LINK_HOLD => {
                return Err(self.source.error(
                    spanned.span(),
                    self.at("link_hold"),
                    "link_hold is at most 600s",
                ));
            }
            Some(spanned) => spanned.get_ref().0,
        })
    }

    /// Unicast adverts need an address of the family for every member.
    fn unicast(&self, addresses: &[VirtualAddress], priorities: &[(usize, u8)]) -> Checked<bool> {
        let unicast = self.raw.unicast.unwrap_or(false);
        if unicast {
            for family in families_of(addresses) {
                let reachable = |n: usize| match family {
                    Family::V4 => self.nodes[n].address.is_ipv4(),
                    Family::V6 => self.nodes[n].link_local.is_some(),
                };
                if let Some((node, _)) = priorities.iter().find(|(n, _)| !reachable(*n)) {
                    let what = match family {
                        Family::V4 => "no IPv4 address",
                        Family::V6 => {
                            "no `link_local` address (IPv6 adverts go between link-local addresses)"
                        }
                    };
                    return Err(self.source.error(
                        self.raw.name.span(),
                        self.at("unicast"),
                        format!(
                            "unicast adverts for the {family} addresses go to each member's address, and node \"{}\" has {what}",
                            self.nodes[*node].name
                        ),
                    ));
                }
            }
        }
        Ok(unicast)
    }

    fn accept_mode(&self) -> Checked<()> {
        if self.raw.accept_mode == Some(false) {
            return Err(self.source.error(
                self.raw.name.span(),
                self.at("accept_mode"),
                "accept_mode = false is not supported yet: vipd accepts traffic to the virtual addresses, as keepalived does by default; remove the line",
            ));
        }
        Ok(())
    }

    /// `vmac`: a macvlan `vrrp.<vrid>` / `vrrp6.<vrid>` per family on each member's
    /// interface. Nonsensical: a member whose own interface already has that name (the
    /// macvlan would be created on itself).
    fn vmac(
        &self,
        vrid: u8,
        addresses: &[VirtualAddress],
        priorities: &[(usize, u8)],
    ) -> Checked<bool> {
        let Some(spanned) = &self.raw.vmac else {
            return Ok(false);
        };
        if !*spanned.get_ref() {
            return Ok(false);
        }
        for family in families_of(addresses) {
            let name = crate::net::vmac::link_name(family, vrid);
            for (node, _) in priorities {
                let node = &self.nodes[*node];
                if !node.foreign && node.interface == name {
                    return Err(self.source.error(
                        spanned.span(),
                        self.at("vmac"),
                        format!(
                            "node \"{}\" runs on interface {name}, the name of this group's virtual-MAC link: rename the interface or set vmac = false",
                            node.name
                        ),
                    ));
                }
            }
        }
        Ok(true)
    }

    /// The announcement burst and refresh, and the names' DNS TTL.
    fn announce_and_ttl(&self) -> Checked<(Announce, Option<Duration>)> {
        let count = match &self.raw.announce_count {
            None => DEFAULT_ANNOUNCE_COUNT,
            Some(spanned) => u32::try_from(*spanned.get_ref())
                .ok()
                .filter(|c| *c <= 100)
                .ok_or_else(|| {
                    self.source.error(
                        spanned.span(),
                        self.at("announce_count"),
                        "announce_count is 0..=100",
                    )
                })?,
        };
        let dns_ttl = match &self.raw.dns_ttl {
            None => None,
            Some(spanned) => {
                let ttl = spanned.get_ref().0;
                if ttl.subsec_nanos() != 0 || ttl > Duration::from_secs(86_400) {
                    return Err(self.source.error(
                        spanned.span(),
                        self.at("dns_ttl"),
                        "a TTL is whole seconds, at most 1 day",
                    ));
                }
                Some(ttl)
            }
        };
        if let Some(interval) = &self.raw.announce_interval
            && interval.get_ref().0 < Duration::from_millis(1)
            && count > 1
        {
            return Err(self.source.error(
                interval.span(),
                self.at("announce_interval"),
                "announce_interval is at least 1ms",
            ));
        }
        if let Some(refresh) = &self.raw.announce_refresh
            && !refresh.get_ref().0.is_zero()
            && refresh.get_ref().0 < Duration::from_secs(1)
        {
            return Err(self.source.error(
                refresh.span(),
                self.at("announce_refresh"),
                "announce_refresh is 0s (off) or at least 1s",
            ));
        }
        let announce = Announce {
            count,
            interval: self
                .raw
                .announce_interval
                .as_ref()
                .map_or(DEFAULT_ANNOUNCE_INTERVAL, |d| d.get_ref().0),
            refresh: self
                .raw
                .announce_refresh
                .as_ref()
                .map_or(Duration::ZERO, |d| d.get_ref().0),
        };
        Ok((announce, dns_ttl))
    }

    /// The resources: named, with start and stop commands, sane time-outs.
    fn resources(&self) -> Checked<Vec<Resource>> {
        let mut resources: Vec<Resource> = Vec::new();
        for resource in &self.raw.resource {
            let name = resource.name.get_ref().trim().to_string();
            let at_resource = |key: &str| {
                format!(
                    "[[group.resource]] \"{name}\" of group \"{}\", field `{key}`",
                    self.raw.name.get_ref()
                )
            };
            if name.is_empty() || resources.iter().any(|r| r.name == name) {
                return Err(self.source.error(
                    resource.name.span(),
                    at_resource("name"),
                    "each resource of a group needs its own name",
                ));
            }
            for (key, command) in [("start", &resource.start), ("stop", &resource.stop)] {
                if command.get_ref().trim().is_empty() {
                    return Err(self.source.error(
                        command.span(),
                        at_resource(key),
                        format!("the {key} command is empty"),
                    ));
                }
            }
            let positive = |value: &Option<Spanned<HumanDuration>>,
                            key: &str,
                            default: Duration| match value {
                None => Ok(default),
                Some(d) if d.get_ref().0 >= Duration::from_millis(10) => Ok(d.get_ref().0),
                Some(d) => Err(self.source.error(
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
        Ok(resources)
    }

    /// `quorum`: on by default for a group with resources (it guards something that must
    /// run once), off otherwise. A quorum group needs the `[quorum]` table, members that are
    /// all vipd, and resources that stop within the lease.
    fn quorum(&self, resources: &[Resource], priorities: &[(usize, u8)]) -> Checked<bool> {
        let written = self.raw.quorum.as_ref();
        let on = written.map_or(!resources.is_empty(), |q| *q.get_ref());
        if !on {
            return Ok(false);
        }
        let span = written.map_or(self.raw.name.span(), |q| q.span());
        let Some(quorum) = self.quorum else {
            let why = if written.is_some() {
                "a quorum group needs the [quorum] table (its key_file authenticates the votes)"
                    .to_string()
            } else {
                "this group has resources, so it runs with quorum by default (never two owners of what the resources guard): add a [quorum] table with a key_file (and a [[witness]] for two nodes), or write `quorum = false` to keep plain VRRP, where a partition makes two owners".to_string()
            };
            return Err(self.source.error(span, self.at("quorum"), why));
        };
        if let Some((node, _)) = priorities.iter().find(|(n, _)| self.nodes[*n].foreign) {
            return Err(self.source.error(
                span,
                self.at("quorum"),
                format!(
                    "member \"{}\" is foreign (not vipd): it cannot vote or say what it holds, so this group cannot run with quorum",
                    self.nodes[*node].name
                ),
            ));
        }
        let stop: Duration = resources.iter().map(|r| r.timeout).sum();
        let budget = quorum.stop_budget();
        if stop > budget {
            return Err(self.source.error(
                span,
                self.at("quorum"),
                format!(
                    "the resources may take {stop:?} to stop (the sum of their `timeout`s), but a node that loses quorum has {budget:?} (the [quorum] lease less three heartbeats and a drift margin) before another node may start them: lower the resources' timeout or raise the lease"
                ),
            ));
        }
        Ok(true)
    }

    /// `interface`: the LAN segment the group lives on; every member must have it (its
    /// first interface, or a `[[node.lan]]`), with a link-local address given for IPv6 on a
    /// segment other than the first (member identity there comes from the file).
    fn interface(
        &self,
        addresses: &[VirtualAddress],
        priorities: &[(usize, u8)],
    ) -> Checked<Option<String>> {
        let Some(spanned) = &self.raw.interface else {
            return Ok(None);
        };
        let name = spanned.get_ref().trim().to_string();
        let has_v6 = addresses.iter().any(|a| a.address.is_ipv6());
        for (n, _) in priorities {
            let node = &self.nodes[*n];
            let Some(lan) = node.lan_index(Some(&name)) else {
                return Err(self.source.error(
                    spanned.span(),
                    self.at("interface"),
                    format!(
                        "member \"{}\" has no interface {name}: add it to the node as [[node.lan]] (interface, address)",
                        node.name
                    ),
                ));
            };
            if lan > 0 && self.raw.vmac.as_ref().is_some_and(|v| *v.get_ref()) {
                return Err(self.source.error(
                    spanned.span(),
                    self.at("interface"),
                    format!(
                        "vmac = true works on each member's first interface only (for member \"{}\", {name} is another one): set vmac = false or move the group",
                        node.name
                    ),
                ));
            }
            if lan > 0 && has_v6 && node.lans[lan].link_local.is_none() && !node.foreign {
                return Err(self.source.error(
                    spanned.span(),
                    self.at("interface"),
                    format!(
                        "member \"{}\": an IPv6 group on {name} needs its link-local address there (`link_local` in its [[node.lan]]), so adverts can be tied to members",
                        node.name
                    ),
                ));
            }
        }
        Ok(Some(name))
    }
}
