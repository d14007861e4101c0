//! The DNS server's shell: threads, sockets, the UDP and TCP loops, and the limits on TCP
//! connections (RFC 7766 6.2.3 and 10: a limit per client, a short time for a message that
//! has begun, and the oldest idle connection closed to make room for a new one).

use super::answer::Reply;
use super::forward::{self, Forwarder};
use super::framing::{Framer, frame};
use super::server::{AnswerCache, Server, bump};
use super::socket_set::SocketSet;
use super::udp_batch;
use hickory_server::net::xfer::Protocol;
use socket2::{Domain, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Open TCP connections per listening address.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// Open TCP connections per client address and listening address.
pub const MAX_TCP_PER_CLIENT: usize = 32;
/// How long a connection may wait for the next message.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long a message may take to arrive once its first byte has (RFC 7766 6.2.3: short
/// timeouts for incomplete messages).
pub const TCP_MESSAGE: Duration = Duration::from_secs(2);
/// How long a client may take to read an answer.
const TCP_WRITE: Duration = Duration::from_secs(5);

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
/// threads of their own: UDP on every thread, TCP on the first. With forwarders, starts the
/// resolver's thread and, unless `allow_recursion` is set, takes this host's interface
/// subnets as the clients allowed to recurse.
pub fn spawn(server: Arc<Server>, addresses: &[IpAddr], port: u16) -> io::Result<()> {
    if server.forwarding() {
        server.set_local_networks(forward::local_networks());
        server.set_forwarder(Forwarder::start(server.forwarders())?);
    }
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
                let (udp, tcp): (Vec<Socket>, Vec<Option<Socket>>) = sockets.into_iter().unzip();
                let udp: Vec<std::net::UdpSocket> = udp.into_iter().map(Into::into).collect();
                let listeners: Vec<std::net::TcpListener> =
                    tcp.into_iter().flatten().map(Into::into).collect();
                // One task for all the thread's UDP sockets and one for its listeners, each
                // waiting on an epoll set of them, not one per address: a node listens on
                // every virtual address of its groups.
                let tcp = tokio::spawn(serve_tcp(server.clone(), listeners));
                serve_udp(server, udp).await;
                let _ = tcp.await;
            });
        })?;
    Ok(())
}

/// A DNS thread's receive buffers, answers and answer cache, shared by all its UDP sockets: a
/// node serves on every virtual address of its groups, and buffers and a cache per socket
/// cost about 6 KiB per address and thread (12 MiB at 1000 groups).
#[derive(Default)]
struct UdpScratch {
    received: udp_batch::Received,
    answers: Vec<(Vec<u8>, SocketAddr)>,
    cache: AnswerCache,
}

thread_local! {
    static UDP_SCRATCH: std::cell::RefCell<UdpScratch> = std::cell::RefCell::new(UdpScratch::default());
}

/// What one batch of datagrams leaves for the UDP loop.
enum UdpRound {
    /// Nothing queued: wait for the socket.
    Wait,
    /// Answered what could be; these go to the forwarders.
    Served(Vec<(Vec<u8>, SocketAddr)>),
}

/// Reads a batch of datagrams and answers them from the zone, all in two system calls.
fn udp_round(server: &Server, socket: &std::net::UdpSocket) -> UdpRound {
    UDP_SCRATCH.with_borrow_mut(|scratch| {
        let UdpScratch {
            received,
            answers,
            cache,
        } = scratch;
        match received.receive(socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return UdpRound::Wait,
            Err(e) => {
                debug!("DNS UDP receive: {e}");
                return UdpRound::Served(Vec::new());
            }
        }
        answers.clear();
        let mut forwards = Vec::new();
        for (query, client) in received.datagrams() {
            match server.answer_with(Some(cache), query, client, Protocol::Udp) {
                Reply::Send(bytes) => answers.push((bytes, client)),
                Reply::Forward => forwards.push((query.to_vec(), client)),
                Reply::Drop => {}
            }
        }
        udp_batch::send_all(socket, answers);
        UdpRound::Served(forwards)
    })
}

/// Serves a thread's UDP sockets: each that has input is drained (at most a few batches at a
/// time under a flood, so the others have their turn).
async fn serve_udp(server: Arc<Server>, sockets: Vec<std::net::UdpSocket>) {
    let sockets: Vec<Arc<std::net::UdpSocket>> = sockets.into_iter().map(Arc::new).collect();
    let mut set = match SocketSet::new(&sockets) {
        Ok(set) => set,
        Err(e) => {
            warn!("DNS UDP sockets: {e}");
            return;
        }
    };
    loop {
        let ready = set.ready().await;
        for index in ready {
            let socket = &sockets[index];
            for _ in 0..4 {
                let UdpRound::Served(forwards) = udp_round(&server, socket) else {
                    break;
                };
                for (query, client) in forwards {
                    // The lookup runs on the resolver's thread (bounded in number there);
                    // this task only waits for it.
                    let (server, socket) = (server.clone(), socket.clone());
                    tokio::spawn(async move {
                        if let Some(answer) =
                            forward::resolve(&server, &query, client, Protocol::Udp).await
                        {
                            let _ = socket.send_to(&answer, client);
                        }
                    });
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// One open TCP connection, as the listener's table knows it.
struct Entry {
    client: IpAddr,
    /// Waiting for a message since then; None while a message is read or answered.
    idle_since: Option<Instant>,
    close: Arc<Notify>,
}

/// The open TCP connections of one listening address, and the limits on them.
#[derive(Default)]
pub(crate) struct Connections {
    next: u64,
    entries: HashMap<u64, Entry>,
}

/// What happened to a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Admitted,
    /// Admitted after closing the oldest idle connection (of the same client when that
    /// client was at its limit).
    Evicted,
    /// Over a limit with no idle connection to close: closed unanswered.
    Refused,
}

impl Connections {
    /// Admits a connection from `client`: its id and the signal that closes it.
    pub(crate) fn admit(&mut self, client: IpAddr) -> (Admission, Option<(u64, Arc<Notify>)>) {
        let from_client = self.entries.values().filter(|e| e.client == client).count();
        let admission = if from_client >= MAX_TCP_PER_CLIENT {
            self.evict_oldest_idle(|e| e.client == client)
        } else if self.entries.len() >= MAX_TCP_CONNECTIONS {
            self.evict_oldest_idle(|_| true)
        } else {
            Admission::Admitted
        };
        if admission == Admission::Refused {
            return (admission, None);
        }
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        self.entries.insert(
            id,
            Entry {
                client,
                // Busy until its task first waits for a message: a connection whose query
                // is already queued is not mistaken for an idle one.
                idle_since: None,
                close: close.clone(),
            },
        );
        (admission, Some((id, close)))
    }

    fn evict_oldest_idle(&mut self, which: impl Fn(&Entry) -> bool) -> Admission {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, e)| which(e))
            .filter_map(|(id, e)| e.idle_since.map(|since| (since, *id)))
            .min();
        match oldest.and_then(|(_, id)| self.entries.remove(&id)) {
            Some(entry) => {
                entry.close.notify_one();
                Admission::Evicted
            }
            None => Admission::Refused,
        }
    }

    pub(crate) fn set_idle(&mut self, id: u64, idle_since: Option<Instant>) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.idle_since = idle_since;
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

type Table = Arc<Mutex<Connections>>;

fn lock(table: &Table) -> std::sync::MutexGuard<'_, Connections> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts on a thread's listeners, each with its own table of connections and limits.
async fn serve_tcp(server: Arc<Server>, listeners: Vec<std::net::TcpListener>) {
    let tables: Vec<Table> = listeners.iter().map(|_| Table::default()).collect();
    let mut set = match SocketSet::new(&listeners) {
        Ok(set) => set,
        Err(e) => {
            warn!("DNS TCP sockets: {e}");
            return;
        }
    };
    loop {
        let ready: Vec<usize> = set.ready().await.collect();
        for index in ready {
            let accepted = listeners[index].accept().and_then(|(stream, client)| {
                stream.set_nonblocking(true)?;
                Ok((TcpStream::from_std(stream)?, client))
            });
            let (stream, client) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // Out of descriptors, say: do not spin.
                    debug!("DNS TCP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            admit(&server, &tables[index], stream, client);
        }
    }
}

/// A new connection: admitted within the listener's limits (see [`Connections::admit`]),
/// then served by a task of its own.
fn admit(server: &Arc<Server>, table: &Table, stream: TcpStream, client: SocketAddr) {
    let (admission, admitted) = lock(table).admit(client.ip());
    match admission {
        Admission::Admitted => {}
        Admission::Evicted => bump(&server.counters.tcp_evicted),
        Admission::Refused => bump(&server.counters.tcp_refused),
    }
    let Some((id, close)) = admitted else {
        return;
    };
    bump(&server.counters.tcp_connections);
    let (server, table) = (server.clone(), table.clone());
    tokio::spawn(async move {
        let _ = serve_connection(&server, stream, client, &table, id, &close).await;
        lock(&table).remove(id);
    });
}

/// Writes one framed message; a client that does not read gets cut off after TCP_WRITE.
async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    tokio::time::timeout(TCP_WRITE, stream.write_all(&frame(message)))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

async fn serve_connection(
    server: &Server,
    mut stream: TcpStream,
    client: SocketAddr,
    table: &Table,
    id: u64,
    close: &Notify,
) -> io::Result<()> {
    let mut framer = Framer::default();
    let mut buffer = vec![0u8; 4096];
    // When the message under way must be complete.
    let mut deadline: Option<Instant> = None;
    loop {
        while let Some(query) = framer.next_message() {
            // The next message's time starts with its own first byte.
            deadline = None;
            match server.answer(&query, client, Protocol::Tcp) {
                Reply::Send(bytes) => write_message(&mut stream, &bytes).await?,
                Reply::Forward => {
                    if let Some(answer) =
                        forward::resolve(server, &query, client, Protocol::Tcp).await
                    {
                        write_message(&mut stream, &answer).await?;
                    }
                }
                Reply::Drop => return Ok(()),
            }
        }
        let now = Instant::now();
        let partial = framer.in_message();
        let wait = if partial {
            deadline
                .get_or_insert(now + TCP_MESSAGE)
                .saturating_duration_since(now)
        } else {
            // Only a connection waiting between messages may be closed to make room.
            lock(table).set_idle(id, Some(now));
            TCP_IDLE
        };
        let read = tokio::select! {
            _ = close.notified(), if !partial => return Ok(()),
            read = tokio::time::timeout(wait, stream.read(&mut buffer)) => read,
        };
        match read {
            Err(_) | Ok(Ok(0)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(len)) => {
                lock(table).set_idle(id, None);
                framer.push(&buffer[..len]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_at_its_limit_makes_room_by_closing_its_own_oldest_idle_connection() {
        let mut table = Connections::default();
        let start = Instant::now();
        let mut ids = Vec::new();
        for i in 0..MAX_TCP_PER_CLIENT {
            let (admission, admitted) = table.admit(ip("192.0.2.200"));
            assert_eq!(admission, Admission::Admitted);
            let admitted = admitted.unwrap();
            table.set_idle(admitted.0, Some(start + Duration::from_millis(i as u64)));
            ids.push(admitted);
        }
        let other = table.admit(ip("192.0.2.201")).1.unwrap();
        table.set_idle(other.0, Some(start));
        // The first is busy (a message under way): the second is the oldest idle one.
        table.set_idle(ids[0].0, None);
        let (admission, admitted) = table.admit(ip("192.0.2.200"));
        assert_eq!(admission, Admission::Evicted);
        assert!(admitted.is_some());
        assert_eq!(table.len(), MAX_TCP_PER_CLIENT + 1);
        assert!(table.entries.contains_key(&ids[0].0), "busy: kept");
        assert!(
            !table.entries.contains_key(&ids[1].0),
            "oldest idle: closed"
        );
        assert!(
            table.entries.contains_key(&other.0),
            "another client: untouched"
        );
        // All busy: the newcomer from that client is refused, others still admitted.
        let busy: Vec<u64> = table.entries.keys().copied().collect();
        for id in busy {
            table.set_idle(id, None);
        }
        assert_eq!(table.admit(ip("192.0.2.200")).0, Admission::Refused);
        assert_eq!(table.admit(ip("192.0.2.202")).0, Admission::Admitted);
    }

    #[test]
    fn a_full_listener_closes_the_oldest_idle_connection_of_anyone() {
        let mut table = Connections::default();
        let start = Instant::now();
        let mut first = None;
        for i in 0..MAX_TCP_CONNECTIONS {
            let client = IpAddr::from([198, 51, 100, (i % 250) as u8]);
            let client = if i >= 250 {
                IpAddr::from([192, 0, 2, i as u8])
            } else {
                client
            };
            let (admission, admitted) = table.admit(client);
            assert_eq!(admission, Admission::Admitted, "{i}");
            let id = admitted.unwrap().0;
            table.set_idle(id, Some(start + Duration::from_millis(i as u64)));
            first.get_or_insert(id);
        }
        let (admission, _) = table.admit(ip("192.0.2.1"));
        assert_eq!(admission, Admission::Evicted);
        assert!(!table.entries.contains_key(&first.unwrap()));
        assert_eq!(table.len(), MAX_TCP_CONNECTIONS);
    }
}
