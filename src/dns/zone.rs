//! The cluster zone as every node serves it, pure: built from the cluster file and the live
//! owner of each group, and asked questions. No sockets here.

use crate::config::Config;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Where each node publishes its own version: `_vipd.<node>.<zone>.`
pub const VERSION_LABEL: &str = "_vipd";

/// SOA timers for secondaries (vipd zones are not transferred, but the values must be sane).
const REFRESH: i32 = 3600;
const RETRY: i32 = 600;
const EXPIRE: i32 = 86_400;

/// The answer to one question, by reference into the zone.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// Records of the asked type (or all, for ANY) at the name.
    Answer(Vec<&'a Record>),
    /// The name exists without records of that type: NOERROR, SOA in authority.
    NoData,
    /// The name does not exist in the zone: NXDOMAIN, SOA in authority.
    NxDomain,
    /// The name is outside the zone.
    NotInZone,
}

#[derive(Debug, Clone)]
pub struct Zone {
    origin: LowerName,
    soa: Record,
    /// The SOA of negative answers, its TTL lowered to the SOA minimum (RFC 2308).
    negative_soa: Record,
    /// Every record, by owner name.
    records: HashMap<LowerName, Vec<Record>>,
    /// Names with no records but with names below them (empty non-terminals): NODATA.
    empty_non_terminals: HashSet<LowerName>,
    /// The node serving this copy, when it is one: its name is the NSID (RFC 5001).
    node_name: Option<String>,
}

fn fqdn(text: &str) -> Name {
    let mut name = Name::from_ascii(text).expect("validated DNS name");
    name.set_fqdn(true);
    name
}

/// The zone's contents for one node's view: `owners[g]` is the node that owns group `g` now,
/// as this node knows it.
/// `me`: the node serving this copy of the zone, which adds `_vipd.<me>.<zone>. TXT
/// "version=..."` so that the other nodes can check they run the same version.
pub fn build(config: &Config, me: Option<usize>, owners: &[Option<String>], serial: u32) -> Zone {
    build_with(config, me, owners, serial, &[])
}

/// [`build`], with more facts about this node beside its version (`config=<digest>`,
/// `drained=1`, ...) in its `_vipd.<me>.<zone>.` TXT record.
pub fn build_with(
    config: &Config,
    me: Option<usize>,
    owners: &[Option<String>],
    serial: u32,
    facts: &[String],
) -> Zone {
    let zone = &config.cluster.zone;
    let origin = fqdn(zone);
    let ttl = config.dns.ttl.as_secs() as u32;
    let negative = config.dns.negative_ttl.as_secs() as u32;
    let node_name = |name: &str| fqdn(&format!("{name}.{zone}"));
    let servers: Vec<&crate::config::Node> = config.nodes.iter().filter(|n| !n.foreign).collect();
    let primary = servers
        .first()
        .map_or_else(|| origin.clone(), |n| node_name(&n.name));
    let soa = Record::from_rdata(
        origin.clone(),
        ttl,
        RData::SOA(SOA::new(
            primary,
            fqdn(&format!("hostmaster.{zone}")),
            serial,
            REFRESH,
            RETRY,
            EXPIRE,
            negative,
        )),
    );
    let mut records: HashMap<LowerName, Vec<Record>> = HashMap::new();
    let mut add = |record: Record| {
        records
            .entry(LowerName::new(&record.name))
            .or_default()
            .push(record)
    };
    add(soa.clone());
    for node in &servers {
        add(Record::from_rdata(
            origin.clone(),
            ttl,
            RData::NS(NS(node_name(&node.name))),
        ));
    }
    let address = |name: &Name, ip: IpAddr, ttl: u32| {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(name.clone(), ttl, data)
    };
    for node in &config.nodes {
        add(address(&node_name(&node.name), node.address, ttl));
    }
    if let Some(me) = me {
        let name = fqdn(&format!("{VERSION_LABEL}.{}.{zone}", config.nodes[me].name));
        let mut text = vec![format!("version={}", env!("CARGO_PKG_VERSION"))];
        text.extend(facts.iter().cloned());
        add(Record::from_rdata(name, ttl, RData::TXT(TXT::new(text))));
    }
    for (index, group) in config.groups.iter().enumerate() {
        let owner = owners
            .get(index)
            .cloned()
            .flatten()
            .unwrap_or_else(|| "none".to_string());
        let ttl = group.dns_ttl.map_or(ttl, |t| t.as_secs() as u32);
        for written in &group.names {
            let name = fqdn(written);
            for virtual_address in &group.addresses {
                add(address(&name, virtual_address.address, ttl));
            }
            let text = vec![format!("owner={owner}"), format!("group={}", group.name)];
            add(Record::from_rdata(name, ttl, RData::TXT(TXT::new(text))));
        }
    }
    let origin = LowerName::new(&origin);
    let mut empty_non_terminals = HashSet::new();
    for name in records.keys() {
        let mut parent = name.base_name();
        while origin.zone_of(&parent) && parent != origin {
            if !records.contains_key(&parent) {
                empty_non_terminals.insert(parent.clone());
            }
            parent = parent.base_name();
        }
    }
    let mut negative_soa = soa.clone();
    negative_soa.ttl = ttl.min(negative);
    Zone {
        origin,
        soa,
        negative_soa,
        records,
        empty_non_terminals,
        node_name: me.map(|me| config.nodes[me].name.clone()),
    }
}

impl Zone {
    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// The SOA record, for the authority section of negative answers. Its TTL is the
    /// negative TTL (RFC 2308: the lesser of the SOA's TTL and its minimum).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The name of the node serving this copy of the zone.
    pub fn node_name(&self) -> Option<&str> {
        self.node_name.as_deref()
    }

    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        }
    }

    pub fn contains(&self, name: &LowerName) -> bool {
        self.origin.zone_of(name)
    }

    pub fn lookup(&self, name: &LowerName, record_type: RecordType) -> Lookup<'_> {
        if !self.contains(name) {
            return Lookup::NotInZone;
        }
        let Some(records) = self.records.get(name) else {
            return if self.empty_non_terminals.contains(name) {
                Lookup::NoData
            } else {
                Lookup::NxDomain
            };
        };
        let matching: Vec<&Record> = records
            .iter()
            .filter(|r| record_type == RecordType::ANY || r.record_type() == record_type)
            .collect();
        if matching.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Answer(matching)
        }
    }

    /// The SOA for the authority section of NXDOMAIN and NODATA answers.
    pub fn negative_soa(&self) -> &Record {
        &self.negative_soa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = r#"
[cluster]
name = "backup"
zone = "cluster.example."
[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"
[[node]]
name = "beta"
interface = "eth0"
address = "192.0.2.12"
[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24", "2001:db8::100/64"]
names = ["nbu-master", "api.svc"]
priority = { alpha = 150, beta = 100 }
[dns]
ttl = "5s"
negative_ttl = "3s"
"#;

    fn zone(owner: Option<&str>) -> Zone {
        let config = Config::parse("t.toml", CLUSTER).unwrap();
        build(&config, None, &[owner.map(str::to_string)], 7)
    }

    fn name(text: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(text).unwrap())
    }

    fn rdata(lookup: Lookup<'_>) -> Vec<String> {
        match lookup {
            Lookup::Answer(records) => records.iter().map(|r| r.data.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_group_can_have_its_own_ttl() {
        let config = Config::parse(
            "t.toml",
            &CLUSTER.replace("[dns]", "dns_ttl = \"1s\"\n[dns]"),
        )
        .unwrap();
        let zone = build(&config, None, &[None], 1);
        let Lookup::Answer(records) =
            zone.lookup(&name("nbu-master.cluster.example."), RecordType::A)
        else {
            panic!()
        };
        assert_eq!(records[0].ttl, 1);
        let Lookup::Answer(records) = zone.lookup(&name("alpha.cluster.example."), RecordType::A)
        else {
            panic!()
        };
        assert_eq!(records[0].ttl, 5);
    }

    #[test]
    fn virtual_names_answer_with_the_group_addresses() {
        let zone = zone(Some("alpha"));
        assert_eq!(
            rdata(zone.lookup(&name("nbu-master.cluster.example."), RecordType::A)),
            ["192.0.2.100"]
        );
        assert_eq!(
            rdata(zone.lookup(&name("NBU-Master.Cluster.Example."), RecordType::AAAA)),
            ["2001:db8::100"]
        );
        assert_eq!(
            rdata(zone.lookup(&name("alpha.cluster.example."), RecordType::A)),
            ["192.0.2.11"]
        );
    }

    fn txt(zone: &Zone) -> Vec<String> {
        match zone.lookup(&name("nbu-master.cluster.example."), RecordType::TXT) {
            Lookup::Answer(records) => match &records[0].data {
                RData::TXT(txt) => txt
                    .txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).to_string())
                    .collect(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_owner_record_names_the_owner() {
        assert_eq!(
            txt(&zone(Some("beta"))),
            ["owner=beta", "group=master-server"]
        );
        assert_eq!(txt(&zone(None)), ["owner=none", "group=master-server"]);
    }

    #[test]
    fn apex_has_soa_and_ns() {
        let zone = zone(None);
        assert_eq!(zone.serial(), 7);
        let soa = rdata(zone.lookup(&name("cluster.example."), RecordType::SOA));
        assert!(
            soa[0].starts_with("alpha.cluster.example. hostmaster.cluster.example. 7"),
            "{soa:?}"
        );
        let ns = rdata(zone.lookup(&name("cluster.example."), RecordType::NS));
        assert_eq!(ns, ["alpha.cluster.example.", "beta.cluster.example."]);
        assert_eq!(zone.negative_soa().ttl, 3);
    }

    #[test]
    fn nxdomain_nodata_and_outside() {
        let zone = zone(None);
        assert_eq!(
            zone.lookup(&name("nope.cluster.example."), RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            zone.lookup(&name("alpha.cluster.example."), RecordType::MX),
            Lookup::NoData
        );
        // svc.cluster.example. has no records but api.svc.cluster.example. does.
        assert_eq!(
            zone.lookup(&name("svc.cluster.example."), RecordType::A),
            Lookup::NoData
        );
        assert_eq!(
            zone.lookup(&name("www.example.org."), RecordType::A),
            Lookup::NotInZone
        );
    }
}
