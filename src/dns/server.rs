//! The DNS server's shared state: the zone (swapped by the daemon on every change of
//! owner), the counters, the rate limiter, the recursion ACL and the forwarder, and the
//! entry point [`Server::answer`]. The layers below it:
//! - [`super::answer`]: query bytes to reply bytes, pure;
//! - [`super::ratelimit`]: the per-client limit;
//! - [`super::forward`]: recursion (ACL, hickory's resolver and its cache);
//! - [`super::serve`]: threads, UDP and TCP loops, TCP connection limits.

use super::answer::{self, Context, Kind, Upstream};
use super::forward::{self, Forwarder};
use super::ratelimit::RateLimiter;
use super::zone::Zone;
use crate::config::dns::{Dns, Network};
use hickory_server::net::xfer::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

pub use super::answer::Reply;
pub use super::serve::{THREADS, spawn};

/// What the DNS server counts; shown by `vipd status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub queries: AtomicU64,
    pub answers: AtomicU64,
    pub nxdomain: AtomicU64,
    pub nodata: AtomicU64,
    pub refused: AtomicU64,
    /// Recursive questions from clients outside the recursion ACL (also in `refused`).
    pub recursion_refused: AtomicU64,
    pub formerr: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_rate_limited: AtomicU64,
    pub truncated: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failed: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// Idle TCP connections closed to make room for a new one.
    pub tcp_evicted: AtomicU64,
    /// New TCP connections closed unanswered: over a limit with nothing idle to close.
    pub tcp_refused: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub serial: u32,
    pub queries: u64,
    pub answers: u64,
    pub nxdomain: u64,
    pub nodata: u64,
    pub refused: u64,
    #[serde(default)]
    pub recursion_refused: u64,
    pub formerr: u64,
    pub dropped_malformed: u64,
    pub dropped_rate_limited: u64,
    pub truncated: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
    #[serde(default)]
    pub tcp_evicted: u64,
    #[serde(default)]
    pub tcp_refused: u64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// State shared by the socket loops and the daemon (which swaps the zone).
pub struct Server {
    zone: RwLock<Arc<Zone>>,
    /// Moves with every new zone: cached answers from an older one are dropped.
    generation: AtomicU64,
    rate_limit: u32,
    pub counters: Counters,
    forwarders: Vec<SocketAddr>,
    /// Clients that may recurse, from the file; None: `local_networks`.
    allow_recursion: Option<Vec<Network>>,
    /// This host's interface subnets, read when the server starts serving.
    local_networks: OnceLock<Vec<Network>>,
    forwarder: OnceLock<Forwarder>,
    limiter: Mutex<RateLimiter>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    pub fn new(dns: &Dns, zone: Zone) -> Server {
        Server {
            zone: RwLock::new(Arc::new(zone)),
            generation: AtomicU64::new(0),
            rate_limit: dns.rate_limit,
            counters: Counters::default(),
            forwarders: dns.forwarders.clone(),
            allow_recursion: dns.allow_recursion.clone(),
            local_networks: OnceLock::new(),
            forwarder: OnceLock::new(),
            limiter: Mutex::new(RateLimiter::new(dns.rate_limit)),
        }
    }

    /// Replaces the zone (after a change of owner).
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forwarders are configured.
    pub fn forwarding(&self) -> bool {
        !self.forwarders.is_empty()
    }

    pub fn forwarders(&self) -> &[SocketAddr] {
        &self.forwarders
    }

    /// The default recursion ACL (used when the file sets no `allow_recursion`).
    pub fn set_local_networks(&self, networks: Vec<Network>) {
        let _ = self.local_networks.set(networks);
    }

    pub(crate) fn set_forwarder(&self, forwarder: Forwarder) {
        let _ = self.forwarder.set(forwarder);
    }

    pub(crate) fn forwarder(&self) -> Option<&Forwarder> {
        self.forwarder.get()
    }

    /// May `client` ask recursive questions?
    pub fn recursion_allowed(&self, client: std::net::IpAddr) -> bool {
        let networks = match &self.allow_recursion {
            Some(networks) => networks.as_slice(),
            None => self.local_networks.get().map_or(&[][..], Vec::as_slice),
        };
        forward::allowed(networks, client)
    }

    pub(crate) fn count_forward(&self, upstream: &Upstream) {
        match upstream {
            Upstream::Failed => bump(&self.counters.forward_failed),
            _ => bump(&self.counters.forwarded),
        }
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            serial: self.zone().serial(),
            queries: get(&c.queries),
            answers: get(&c.answers),
            nxdomain: get(&c.nxdomain),
            nodata: get(&c.nodata),
            refused: get(&c.refused),
            recursion_refused: get(&c.recursion_refused),
            formerr: get(&c.formerr),
            dropped_malformed: get(&c.dropped_malformed),
            dropped_rate_limited: get(&c.dropped_rate_limited),
            truncated: get(&c.truncated),
            forwarded: get(&c.forwarded),
            forward_failed: get(&c.forward_failed),
            tcp_evicted: get(&c.tcp_evicted),
            tcp_refused: get(&c.tcp_refused),
        }
    }

    /// Answers one query received over `protocol` from `client`.
    pub fn answer(&self, query: &[u8], client: SocketAddr, protocol: Protocol) -> Reply {
        self.answer_with(None, query, client, protocol)
    }

    /// Answers one query, from `cache` when the same question was answered before.
    pub fn answer_with(
        &self,
        cache: Option<&mut AnswerCache>,
        query: &[u8],
        client: SocketAddr,
        protocol: Protocol,
    ) -> Reply {
        let c = &self.counters;
        bump(&c.queries);
        // No header, or a response rather than a query: nothing to answer (never answer a
        // response, or two servers could ping-pong forever).
        if query.len() < 12 || query[2] & 0x80 != 0 {
            bump(&c.dropped_malformed);
            return Reply::Drop;
        }
        if protocol == Protocol::Udp && self.rate_limit > 0 {
            let allowed = self
                .limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(client.ip(), now_s());
            if !allowed {
                bump(&c.dropped_rate_limited);
                return Reply::Drop;
            }
        }
        let recursion_allowed = self.forwarding() && self.recursion_allowed(client.ip());
        let generation = self.generation.load(Ordering::Acquire);
        let mut cache = cache;
        if let Some(cache) = cache.as_deref_mut() {
            if cache.generation != generation {
                cache.generation = generation;
                cache.entries.clear();
            }
            cache_key(&mut cache.key, recursion_allowed, query);
            if let Some((kind, bytes)) = cache.entries.get(cache.key.as_slice()) {
                let mut reply = bytes.clone();
                reply[..2].copy_from_slice(&query[..2]);
                self.count(*kind, &reply);
                return Reply::Send(reply);
            }
        }
        let zone = self.zone();
        let context = Context {
            zone: &zone,
            forwarding: self.forwarding(),
            recursion_allowed,
            nsid: zone.node_name(),
        };
        let (reply, kind) = answer::respond(&context, query, client, protocol);
        if let Reply::Send(bytes) = &reply {
            self.count(kind, bytes);
            if let Some(cache) = cache
                && kind.cacheable()
            {
                if cache.entries.len() >= CACHE_ENTRIES {
                    cache.entries.clear();
                }
                cache_key(&mut cache.key, recursion_allowed, query);
                let key = cache.key.clone();
                cache.entries.insert(key, (kind, bytes.clone()));
            }
        }
        reply
    }

    fn count(&self, kind: Kind, reply: &[u8]) {
        let c = &self.counters;
        match kind {
            Kind::Answer => bump(&c.answers),
            Kind::NoData => bump(&c.nodata),
            Kind::NxDomain => bump(&c.nxdomain),
            Kind::Refused => bump(&c.refused),
            Kind::RecursionRefused => {
                bump(&c.refused);
                bump(&c.recursion_refused);
            }
            Kind::FormErr => bump(&c.formerr),
            Kind::Other => {}
        }
        if reply.len() > 2 && reply[2] & 0x02 != 0 {
            bump(&c.truncated);
        }
    }
}

/// The query after its ID, and whether the client may recurse (the answer's RA flag and a
/// recursive question's REFUSED depend on it).
/// Written into a buffer kept by the cache: a hit costs no allocation.
fn cache_key(key: &mut Vec<u8>, recursion_allowed: bool, query: &[u8]) {
    key.clear();
    key.push(u8::from(recursion_allowed));
    key.extend_from_slice(&query[2..]);
}

/// Entries kept per DNS thread before the cache starts over.
const CACHE_ENTRIES: usize = 4096;

/// Answers already encoded, by the query's bytes after its ID: a question asked again (the
/// same names, flags and EDNS) costs a copy, not a parse and an encoding. Emptied whenever
/// the zone changes. One per DNS thread, for UDP.
#[derive(Default)]
pub struct AnswerCache {
    generation: u64,
    entries: HashMap<Vec<u8>, (Kind, Vec<u8>)>,
    key: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_server::proto::rr::{Name, RecordType};

    fn server(extra: &str) -> Server {
        let text = format!(
            "[cluster]\nname = \"t\"\nzone = \"cluster.example.\"\n[[node]]\nname = \"alpha\"\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n\
             [[group]]\nname = \"g\"\nvrid = 1\naddresses = [\"192.0.2.100/24\"]\nnames = [\"svc\"]\npriority = {{ alpha = 100 }}\n{extra}"
        );
        let config = Config::parse("t.toml", &text).unwrap();
        Server::new(
            &config.dns,
            super::super::zone::build(&config, None, &[Some("alpha".into())], 1),
        )
    }

    fn query(name: &str, record_type: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        message.to_vec().unwrap()
    }

    fn ask(server: &Server, bytes: &[u8]) -> Message {
        match server.answer(bytes, "192.0.2.200:5353".parse().unwrap(), Protocol::Udp) {
            Reply::Send(reply) => Message::from_vec(&reply).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn authoritative_answer_nxdomain_nodata_refused() {
        let server = server("");
        let reply = ask(&server, &query("svc.cluster.example.", RecordType::A));
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.answers.len(), 1);
        let reply = ask(&server, &query("nothing.cluster.example.", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
        let reply = ask(&server, &query("svc.cluster.example.", RecordType::MX));
        assert_eq!(
            (reply.metadata.response_code, reply.answers.len()),
            (ResponseCode::NoError, 0)
        );
        assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
        let reply = ask(&server, &query("example.org.", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(!reply.metadata.recursion_available);
    }

    #[test]
    fn malformed_queries_are_counted() {
        let server = server("");
        let client: SocketAddr = "192.0.2.200:5353".parse().unwrap();
        assert_eq!(
            server.answer(&[1, 2, 3], client, Protocol::Udp),
            Reply::Drop
        );
        let mut garbage = query("svc.cluster.example.", RecordType::A);
        garbage.truncate(20);
        let Reply::Send(reply) = server.answer(&garbage, client, Protocol::Udp) else {
            panic!()
        };
        assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
        assert_eq!(reply[..2], garbage[..2]);
        let mut response = query("svc.cluster.example.", RecordType::A);
        response[2] |= 0x80;
        assert_eq!(server.answer(&response, client, Protocol::Udp), Reply::Drop);
        let snapshot = server.snapshot();
        assert_eq!((snapshot.dropped_malformed, snapshot.formerr), (2, 1));
    }

    #[test]
    fn cached_answers_carry_the_new_id_and_go_when_the_zone_changes() {
        let config = Config::parse(
            "t.toml",
            "[cluster]\nname = \"t\"\nzone = \"cluster.example.\"\n[[node]]\nname = \"alpha\"\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n\
             [[group]]\nname = \"g\"\nvrid = 1\naddresses = [\"192.0.2.100/24\"]\nnames = [\"svc\"]\npriority = { alpha = 100 }\n",
        )
        .unwrap();
        let server = Server::new(
            &config.dns,
            super::super::zone::build(&config, None, &[Some("alpha".into())], 1),
        );
        let mut cache = AnswerCache::default();
        let client: SocketAddr = "192.0.2.200:5353".parse().unwrap();
        let mut ask = |id: u16, server: &Server| {
            let mut bytes = query("svc.cluster.example.", RecordType::TXT);
            bytes[..2].copy_from_slice(&id.to_be_bytes());
            match server.answer_with(Some(&mut cache), &bytes, client, Protocol::Udp) {
                Reply::Send(reply) => Message::from_vec(&reply).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let first = ask(1, &server);
        let second = ask(2, &server);
        assert_eq!((first.metadata.id, second.metadata.id), (1, 2));
        assert_eq!(first.answers, second.answers);
        assert_eq!(server.snapshot().answers, 2, "hits are counted too");
        server.set_zone(super::super::zone::build(
            &config,
            None,
            &[Some("beta".into())],
            2,
        ));
        let third = ask(3, &server);
        assert_ne!(third.answers, first.answers, "the owner record moved");
    }

    #[test]
    fn rate_limit_drops_udp_but_not_tcp() {
        let server = server("[dns]\nrate_limit = 1");
        let bytes = query("svc.cluster.example.", RecordType::A);
        let client: SocketAddr = "192.0.2.200:5353".parse().unwrap();
        // Three in a row fall in at most two seconds: at least one is dropped.
        let replies: Vec<Reply> = (0..3)
            .map(|_| server.answer(&bytes, client, Protocol::Udp))
            .collect();
        assert!(replies.contains(&Reply::Drop));
        assert!(server.snapshot().dropped_rate_limited >= 1);
        assert!(
            matches!(server.answer(&bytes, client, Protocol::Tcp), Reply::Send(_)),
            "TCP is not limited"
        );
    }

    #[test]
    fn forwarding_is_chosen_only_for_recursive_questions_outside_the_zone() {
        let server =
            server("[dns]\nforwarders = [\"198.51.100.53\"]\nallow_recursion = [\"192.0.2.0/24\"]");
        let client: SocketAddr = "192.0.2.200:5353".parse().unwrap();
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(
            Name::from_ascii("example.org.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            server.answer(&message.to_vec().unwrap(), client, Protocol::Udp),
            Reply::Forward
        );
        let reply = ask(&server, &query("svc.cluster.example.", RecordType::A));
        assert!(reply.metadata.recursion_available);
    }

    // ---- issue 12: RFC conformance of the answers ----

    fn big_server() -> Server {
        let addresses: Vec<String> = (150..190).map(|i| format!("\"192.0.2.{i}/24\"")).collect();
        let text = format!(
            "[cluster]\nname = \"t\"\nzone = \"cluster.example.\"\n[[node]]\nname = \"alpha\"\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n\
             [[group]]\nname = \"big\"\nvrid = 1\naddresses = [{}]\nnames = [\"big\"]\npriority = {{ alpha = 100 }}\n",
            addresses.join(", ")
        );
        let config = Config::parse("t.toml", &text).unwrap();
        Server::new(
            &config.dns,
            super::super::zone::build(&config, Some(0), &[Some("alpha".into())], 1),
        )
    }

    fn edns_query(name: &str, record_type: RecordType, edit: impl FnOnce(&mut Edns)) -> Vec<u8> {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edit(&mut edns);
        message.set_edns(edns);
        message.to_vec().unwrap()
    }

    #[test]
    fn a_truncated_udp_answer_to_an_edns_query_carries_the_opt() {
        let server = big_server();
        let bytes = edns_query("big.cluster.example.", RecordType::A, |e| {
            e.set_max_payload(512);
        });
        let reply = ask(&server, &bytes);
        assert!(reply.metadata.truncation, "40 A records exceed 512 bytes");
        assert!(
            reply.edns.is_some(),
            "RFC 6891 7: header, question and OPT, with TC"
        );
        assert_eq!(reply.queries.len(), 1, "the question is kept");
    }

    #[test]
    fn a_formerr_for_a_bad_opt_carries_an_opt() {
        let server = server("");
        // Two OPT records: RFC 6891 6.1.1 makes it FORMERR, and the reply still has an OPT.
        let mut bytes = edns_query("svc.cluster.example.", RecordType::A, |_| {});
        bytes[11] = 2;
        bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let reply = ask(&server, &bytes);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert!(
            reply.edns.is_some(),
            "FORMERR to a query with OPT carries OPT"
        );
    }

    #[test]
    fn the_do_bit_is_copied_into_answers_and_badvers() {
        let server = server("");
        let bytes = edns_query("svc.cluster.example.", RecordType::A, |e| {
            e.set_dnssec_ok(true);
        });
        let reply = ask(&server, &bytes);
        assert!(
            reply.edns.as_ref().unwrap().flags().dnssec_ok,
            "RFC 3225 3: DO copied"
        );
        let bytes = edns_query("svc.cluster.example.", RecordType::A, |e| {
            e.set_dnssec_ok(true);
            e.set_version(1);
        });
        let reply = ask(&server, &bytes);
        // 16: BADVERS (hickory reads the shared code back as BADSIG).
        assert_eq!(u16::from(reply.metadata.response_code), 16);
        assert!(
            reply.edns.as_ref().unwrap().flags().dnssec_ok,
            "DO copied in BADVERS"
        );
        let bytes = edns_query("svc.cluster.example.", RecordType::A, |_| {});
        let reply = ask(&server, &bytes);
        assert!(
            !reply.edns.as_ref().unwrap().flags().dnssec_ok,
            "not set when not asked"
        );
    }

    #[test]
    fn notimp_for_an_unknown_opcode_does_not_echo_cd() {
        let server = server("");
        let mut bytes = query("svc.cluster.example.", RecordType::A);
        bytes[2] = (bytes[2] & 0x87) | (15 << 3); // opcode 15, unassigned
        bytes[3] |= 0x10; // CD
        let Reply::Send(reply) =
            server.answer(&bytes, "192.0.2.200:5353".parse().unwrap(), Protocol::Udp)
        else {
            panic!()
        };
        assert_eq!(reply[3] & 0x0f, 4, "NOTIMP");
        assert_eq!(
            reply[3] & 0x10,
            0,
            "CD not echoed for an opcode we do not know"
        );
    }

    #[test]
    fn nsid_names_the_node_that_answered() {
        let server = big_server();
        let bytes = edns_query("svc.cluster.example.", RecordType::A, |e| {
            e.options_mut()
                .insert(hickory_server::proto::rr::rdata::opt::EdnsOption::Unknown(
                    3,
                    Vec::new(),
                ));
        });
        let reply = ask(&server, &bytes);
        let edns = reply.edns.as_ref().expect("OPT");
        let nsid = edns
            .options()
            .as_ref()
            .iter()
            .find(|(code, _)| u16::from(*code) == 3)
            .map(|(_, option)| option.clone());
        let Some(hickory_server::proto::rr::rdata::opt::EdnsOption::NSID(payload)) = nsid else {
            panic!("no NSID in {edns:?}")
        };
        assert_eq!(payload.as_ref(), b"alpha");
        // Not asked: not sent (RFC 5001 3).
        let reply = ask(
            &server,
            &edns_query("svc.cluster.example.", RecordType::A, |_| {}),
        );
        assert!(
            reply
                .edns
                .unwrap()
                .option(hickory_server::proto::rr::rdata::opt::EdnsCode::NSID)
                .is_none()
        );
    }

    #[test]
    fn recursion_only_for_allowed_clients_the_rest_refused_and_counted() {
        let server = server(
            "[dns]\nforwarders = [\"198.51.100.53\"]\nallow_recursion = [\"198.51.100.0/24\", \"2001:db8:1::/48\"]",
        );
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(
            Name::from_ascii("example.org.").unwrap(),
            RecordType::A,
        ));
        let bytes = message.to_vec().unwrap();
        let inside: SocketAddr = "198.51.100.7:5353".parse().unwrap();
        let outside: SocketAddr = "192.0.2.200:5353".parse().unwrap();
        assert_eq!(server.answer(&bytes, inside, Protocol::Udp), Reply::Forward);
        let Reply::Send(reply) = server.answer(&bytes, outside, Protocol::Udp) else {
            panic!("not forwarded for an outsider")
        };
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(
            !reply.metadata.recursion_available,
            "no recursion offered to outsiders"
        );
        assert_eq!(server.snapshot().recursion_refused, 1);
    }

    /// Found by fuzzing (tcp_stream): a question whose name ends in a compression pointer to
    /// the header was echoed as is, and the reply could not be read (the pointer then lands
    /// on the reply's flags).
    #[test]
    fn fuzz_a_question_pointing_into_the_header_gets_a_readable_formerr() {
        // With recursion offered, the reply's flags byte (RA) is no label length at all.
        let server =
            server("[dns]\nforwarders = [\"198.51.100.53\"]\nallow_recursion = [\"192.0.2.0/24\"]");
        let query = [
            18, 60, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 7, 99, 108, 117, 115, 0, 4, 0, 192, 3, 4, 0, 192,
            3, 0, 0, 115, 116, 101, 114, 7, 101, 0, 0, 6, 0, 0, 246, 40, 4, 208, 0, 0, 0, 115, 116,
        ];
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            let Reply::Send(reply) =
                server.answer(&query, "192.0.2.200:5353".parse().unwrap(), protocol)
            else {
                panic!("no reply")
            };
            let reply = Message::from_vec(&reply).expect("a readable reply");
            assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
            assert_eq!(reply.metadata.id, 0x123c);
        }
    }
}
