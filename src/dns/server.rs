//! The DNS server of every node: its own socket loops (so that every malformed or
//! rate-limited query is counted, and no task is spawned per datagram), with
//! hickory-server's request parsing and response building, on a thread of its own so that
//! no DNS load can delay the election.

use super::zone::{Lookup, Zone};
use crate::config::dns::Dns;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::MessageResponseBuilder;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, warn};

/// Largest UDP answer we send, whatever the client offers (the DNS flag day 2020 value).
const MAX_UDP_PAYLOAD: u16 = 1232;
const TCP_IDLE: Duration = Duration::from_secs(10);
const MAX_TCP_CONNECTIONS: u64 = 256;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_FORWARDS: usize = 256;
/// Clients remembered by the rate limiter within one second.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// What the DNS server counts; shown by `vipd status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub queries: AtomicU64,
    pub answers: AtomicU64,
    pub nxdomain: AtomicU64,
    pub nodata: AtomicU64,
    pub refused: AtomicU64,
    pub formerr: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_rate_limited: AtomicU64,
    pub truncated: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failed: AtomicU64,
    pub tcp_connections: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub serial: u32,
    pub queries: u64,
    pub answers: u64,
    pub nxdomain: u64,
    pub nodata: u64,
    pub refused: u64,
    pub formerr: u64,
    pub dropped_malformed: u64,
    pub dropped_rate_limited: u64,
    pub truncated: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A fixed one-second window per client address.
struct RateLimiter {
    limit: u32,
    window: u64,
    counts: HashMap<IpAddr, u32>,
}

impl RateLimiter {
    fn allow(&mut self, client: IpAddr, now_s: u64) -> bool {
        if self.limit == 0 {
            return true;
        }
        if now_s != self.window || self.counts.len() >= MAX_TRACKED_CLIENTS {
            self.window = now_s;
            self.counts.clear();
        }
        let count = self.counts.entry(client).or_insert(0);
        *count += 1;
        *count <= self.limit
    }
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Send(Vec<u8>),
    /// Outside the zone with forwarders configured: relay the query as is.
    Forward,
    Drop,
}

/// State shared by the socket loops and the daemon (which swaps the zone).
pub struct Server {
    zone: RwLock<Arc<Zone>>,
    /// Forwarded questions in flight, at most MAX_FORWARDS.
    forwards: Arc<tokio::sync::Semaphore>,
    /// Moves with every new zone: cached answers from an older one are dropped.
    generation: AtomicU64,
    rate_limit: u32,
    pub counters: Counters,
    forwarders: Vec<SocketAddr>,
    limiter: Mutex<RateLimiter>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// FORMERR for a query whose header is readable but not the rest: ID and opcode kept.
fn formerr(query: &[u8]) -> Vec<u8> {
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&query[..2]);
    reply[2] = 0x80 | (query[2] & 0x78);
    reply[3] = ResponseCode::FormErr.low();
    reply
}

impl Server {
    pub fn new(dns: &Dns, zone: Zone) -> Server {
        Server {
            zone: RwLock::new(Arc::new(zone)),
            forwards: Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS)),
            generation: AtomicU64::new(0),
            rate_limit: dns.rate_limit,
            counters: Counters::default(),
            forwarders: dns.forwarders.clone(),
            limiter: Mutex::new(RateLimiter {
                limit: dns.rate_limit,
                window: 0,
                counts: HashMap::new(),
            }),
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
            formerr: get(&c.formerr),
            dropped_malformed: get(&c.dropped_malformed),
            dropped_rate_limited: get(&c.dropped_rate_limited),
            truncated: get(&c.truncated),
            forwarded: get(&c.forwarded),
            forward_failed: get(&c.forward_failed),
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
        let generation = self.generation.load(Ordering::Acquire);
        let mut cache = cache;
        if let Some(cache) = cache.as_deref_mut() {
            if cache.generation != generation {
                cache.generation = generation;
                cache.entries.clear();
            }
            if let Some((kind, bytes)) = cache.entries.get(&query[2..]) {
                let mut reply = bytes.clone();
                reply[..2].copy_from_slice(&query[..2]);
                self.count(*kind, &reply);
                return Reply::Send(reply);
            }
        }
        let (reply, kind) = self.respond(query, client, protocol);
        if let Reply::Send(bytes) = &reply {
            self.count(kind, bytes);
            if let Some(cache) = cache
                && kind.cacheable()
            {
                if cache.entries.len() >= CACHE_ENTRIES {
                    cache.entries.clear();
                }
                cache
                    .entries
                    .insert(query[2..].to_vec(), (kind, bytes.clone()));
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
            Kind::FormErr => bump(&c.formerr),
            Kind::Other => {}
        }
        if reply.len() > 2 && reply[2] & 0x02 != 0 {
            bump(&c.truncated);
        }
    }

    /// Parses, looks up and encodes: the answer and what kind it is.
    fn respond(&self, query: &[u8], client: SocketAddr, protocol: Protocol) -> (Reply, Kind) {
        let request = match Request::from_bytes(query.to_vec(), client, protocol) {
            Ok(request) => request,
            Err(e) => {
                debug!(%client, "malformed query: {e}");
                return (Reply::Send(formerr(query)), Kind::FormErr);
            }
        };
        let mut badvers = false;
        let edns = request.edns.as_ref().map(|offered| {
            badvers = offered.version() > 0;
            let mut edns = Edns::new();
            edns.set_max_payload(offered.max_payload().clamp(512, MAX_UDP_PAYLOAD))
                .set_version(0);
            edns
        });
        let max_size = match protocol {
            Protocol::Udp => edns.as_ref().map_or(512, |e| e.max_payload()),
            _ => u16::MAX,
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = !self.forwarders.is_empty();
        let zone = self.zone();
        let soa = std::slice::from_ref(zone.negative_soa());
        let (rcode, kind, answers, authority): (ResponseCode, Kind, Vec<&Record>, &[Record]) =
            if badvers {
                (ResponseCode::BADVERS, Kind::Other, Vec::new(), &[])
            } else if request.metadata.op_code != OpCode::Query {
                (ResponseCode::NotImp, Kind::Other, Vec::new(), &[])
            } else {
                match request.request_info() {
                    Err(_) => (ResponseCode::FormErr, Kind::FormErr, Vec::new(), &[]),
                    Ok(info) => {
                        let (name, record_type) = (info.query.name(), info.query.query_type());
                        let transfer = matches!(record_type, RecordType::AXFR | RecordType::IXFR);
                        if info.query.query_class() != DNSClass::IN || transfer {
                            (ResponseCode::Refused, Kind::Refused, Vec::new(), &[])
                        } else {
                            match zone.lookup(name, record_type) {
                                Lookup::NotInZone
                                    if !self.forwarders.is_empty()
                                        && request.metadata.recursion_desired =>
                                {
                                    return (Reply::Forward, Kind::Other);
                                }
                                Lookup::NotInZone => {
                                    (ResponseCode::Refused, Kind::Refused, Vec::new(), &[])
                                }
                                Lookup::Answer(records) => {
                                    metadata.authoritative = true;
                                    (ResponseCode::NoError, Kind::Answer, records, &[])
                                }
                                Lookup::NoData => {
                                    metadata.authoritative = true;
                                    (ResponseCode::NoError, Kind::NoData, Vec::new(), soa)
                                }
                                Lookup::NxDomain => {
                                    metadata.authoritative = true;
                                    (ResponseCode::NXDomain, Kind::NxDomain, Vec::new(), soa)
                                }
                            }
                        }
                    }
                }
            };
        metadata.response_code = rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answers,
            authority.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max_size);
        if let Err(e) = response.destructive_emit(&mut encoder) {
            warn!(%client, "cannot encode an answer: {e}");
            return (Reply::Drop, Kind::Other);
        }
        (Reply::Send(bytes), kind)
    }
}

/// What an answer was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Answer,
    NoData,
    NxDomain,
    Refused,
    FormErr,
    Other,
}

impl Kind {
    /// Answers that depend only on the question and the zone.
    fn cacheable(self) -> bool {
        matches!(
            self,
            Kind::Answer | Kind::NoData | Kind::NxDomain | Kind::Refused
        )
    }
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
}

/// A socket for the DNS port on `address`, bound even before the address exists (a
/// virtual address this node does not hold yet answers once it holds it).
fn bind(address: IpAddr, port: u16, kind: Type) -> io::Result<Socket> {
    let domain = if address.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, kind, None)?;
    socket.set_reuse_address(true)?;
    // Each DNS thread binds its own UDP socket: the kernel spreads datagrams over them.
    socket.set_reuse_port(true)?;
    match address {
        IpAddr::V4(_) => socket.set_freebind_v4(true)?,
        IpAddr::V6(_) => {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
    }
    socket.bind(&SocketAddr::new(address, port).into())?;
    if kind == Type::STREAM {
        socket.listen(128)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Threads serving DNS, each with its own UDP sockets (the election has its own thread).
pub const THREADS: usize = 2;

/// Binds UDP and TCP on every address now (errors surface at start-up), then serves them on
/// threads of their own: UDP on every thread, TCP on the first.
pub fn spawn(server: Arc<Server>, addresses: &[IpAddr], port: u16) -> io::Result<()> {
    for thread in 0..THREADS {
        let mut sockets = Vec::new();
        for address in addresses {
            let tcp = if thread == 0 {
                Some(bind(*address, port, Type::STREAM)?)
            } else {
                None
            };
            sockets.push((bind(*address, port, Type::DGRAM)?, tcp));
        }
        spawn_thread(server.clone(), sockets, thread)?;
    }
    Ok(())
}

fn spawn_thread(
    server: Arc<Server>,
    sockets: Vec<(Socket, Option<Socket>)>,
    thread: usize,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("vipd-dns-{thread}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    warn!("DNS runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for (udp, tcp) in sockets {
                    match UdpSocket::from_std(udp.into()) {
                        Ok(udp) => {
                            tasks.push(tokio::spawn(serve_udp(server.clone(), Arc::new(udp))))
                        }
                        Err(e) => warn!("DNS UDP socket: {e}"),
                    }
                    match tcp.map(|tcp| TcpListener::from_std(tcp.into())) {
                        Some(Ok(tcp)) => tasks.push(tokio::spawn(serve_tcp(server.clone(), tcp))),
                        Some(Err(e)) => warn!("DNS TCP socket: {e}"),
                        None => {}
                    }
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        })?;
    Ok(())
}

async fn serve_udp(server: Arc<Server>, socket: Arc<UdpSocket>) {
    let mut buffer = vec![0u8; 4096];
    let mut cache = AnswerCache::default();
    let mut served: u32 = 0;
    loop {
        // Drain what is queued without going back to the reactor, but let the thread's
        // other sockets have their turn now and then under a flood.
        served = served.wrapping_add(1);
        if served.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
        let (len, client) = match socket.try_recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = socket.readable().await;
                continue;
            }
            Err(e) => {
                debug!("DNS UDP receive: {e}");
                continue;
            }
        };
        match server.answer_with(Some(&mut cache), &buffer[..len], client, Protocol::Udp) {
            Reply::Send(bytes) => {
                if let Err(e) = socket.try_send_to(&bytes, client)
                    && e.kind() == io::ErrorKind::WouldBlock
                {
                    let _ = socket.send_to(&bytes, client).await;
                }
            }
            Reply::Forward => {
                // A bounded number in flight: a flood of forwarded questions cannot exhaust
                // sockets or memory; the excess is dropped and counted.
                let Ok(permit) = server.forwards.clone().try_acquire_owned() else {
                    bump(&server.counters.forward_failed);
                    continue;
                };
                let (server, socket, query) =
                    (server.clone(), socket.clone(), buffer[..len].to_vec());
                tokio::spawn(async move {
                    let _permit = permit;
                    match forward_udp(&server.forwarders, &query).await {
                        Some(answer) => {
                            bump(&server.counters.forwarded);
                            let _ = socket.send_to(&answer, client).await;
                        }
                        None => bump(&server.counters.forward_failed),
                    }
                });
            }
            Reply::Drop => {}
        }
    }
}

async fn serve_tcp(server: Arc<Server>, listener: TcpListener) {
    let open = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: do not spin.
                debug!("DNS TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
            continue;
        }
        bump(&server.counters.tcp_connections);
        open.fetch_add(1, Ordering::Relaxed);
        let (server, open) = (server.clone(), open.clone());
        tokio::spawn(async move {
            let _ = serve_connection(&server, stream, client).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Writes one framed message; a client that does not read gets cut off after TCP_IDLE.
async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    tokio::time::timeout(TCP_IDLE, stream.write_all(&framed))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

async fn serve_connection(
    server: &Server,
    mut stream: TcpStream,
    client: SocketAddr,
) -> io::Result<()> {
    loop {
        let query = tokio::time::timeout(TCP_IDLE, read_message(&mut stream))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        match server.answer(&query, client, Protocol::Tcp) {
            Reply::Send(bytes) => write_message(&mut stream, &bytes).await?,
            Reply::Forward => match forward_tcp(&server.forwarders, &query).await {
                Some(answer) => {
                    bump(&server.counters.forwarded);
                    write_message(&mut stream, &answer).await?;
                }
                None => bump(&server.counters.forward_failed),
            },
            Reply::Drop => return Ok(()),
        }
    }
}

/// A relayed answer comes from us, a server that recurses (by forwarding): RA set.
fn offer_recursion(mut answer: Vec<u8>) -> Vec<u8> {
    answer[3] |= 0x80;
    answer
}

/// Relays a query to the first upstream that answers with the same ID.
async fn forward_udp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(socket) = UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.connect(upstream).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buffer = vec![0u8; 65535];
        if let Ok(Ok(len)) = tokio::time::timeout(FORWARD_TIMEOUT, socket.recv(&mut buffer)).await
            && len >= 12
            && buffer[..2] == query[..2]
        {
            buffer.truncate(len);
            return Some(offer_recursion(buffer));
        }
    }
    None
}

async fn forward_tcp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let exchange = async {
            let mut stream = TcpStream::connect(upstream).await?;
            write_message(&mut stream, query).await?;
            read_message(&mut stream).await
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(FORWARD_TIMEOUT, exchange).await
            && answer.len() >= 12
            && answer[..2] == query[..2]
        {
            return Some(offer_recursion(answer));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::Name;

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
    fn rate_limit_allows_the_limit_per_client_per_second() {
        let mut limiter = RateLimiter {
            limit: 3,
            window: 0,
            counts: HashMap::new(),
        };
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.200".parse().unwrap(),
            "192.0.2.201".parse().unwrap(),
        );
        let allowed =
            |l: &mut RateLimiter, ip, second| (0..5).filter(|_| l.allow(ip, second)).count();
        assert_eq!(allowed(&mut limiter, a, 100), 3);
        assert_eq!(
            allowed(&mut limiter, b, 100),
            3,
            "another client has its own allowance"
        );
        assert_eq!(
            allowed(&mut limiter, a, 101),
            3,
            "a new second, a new allowance"
        );
        let mut off = RateLimiter {
            limit: 0,
            window: 0,
            counts: HashMap::new(),
        };
        assert_eq!(allowed(&mut off, a, 100), 5);
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
        let server = server("[dns]\nforwarders = [\"198.51.100.53\"]");
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
}
