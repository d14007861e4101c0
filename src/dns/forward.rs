//! Recursion for clients, by forwarding: who may recurse (the ACL), and hickory's resolver
//! (with its cache: positive answers for their TTLs, negative ones per RFC 2308) on a thread
//! of its own, so that a slow or dead upstream never holds up the threads that serve.

use super::answer::{self, Upstream};
use super::server::Server;
use crate::config::dns::Network;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::ResolveHosts;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tracing::{debug, warn};

/// Time for one upstream to answer one attempt.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// The whole lookup, every upstream included: then SERVFAIL.
pub const FORWARD_DEADLINE: Duration = Duration::from_millis(2500);
/// Forwarded questions in flight at once; the excess is answered SERVFAIL.
pub const MAX_FORWARDS: usize = 256;
/// Answers kept by the resolver's cache.
const CACHE_ENTRIES: u64 = 4096;

/// Who may ask recursive questions.
pub fn allowed(networks: &[Network], client: IpAddr) -> bool {
    networks.iter().any(|n| n.contains(client))
}

/// The subnets of this host's (this network namespace's) interfaces, loopback included: the
/// default recursion ACL.
pub fn local_networks() -> Vec<Network> {
    let mut networks = Vec::new();
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return networks;
    };
    for interface in interfaces {
        let (Some(address), Some(mask)) = (interface.address, interface.netmask) else {
            continue;
        };
        let network = if let (Some(a), Some(m)) = (address.as_sockaddr_in(), mask.as_sockaddr_in())
        {
            Network {
                address: IpAddr::V4(a.ip()),
                prefix: u32::from(m.ip()).count_ones() as u8,
            }
        } else if let (Some(a), Some(m)) = (address.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            Network {
                address: IpAddr::V6(a.ip()),
                prefix: u128::from(m.ip()).count_ones() as u8,
            }
        } else {
            continue;
        };
        if !networks.contains(&network) {
            networks.push(network);
        }
    }
    networks
}

/// hickory's resolver, running on its own thread; lookups are handed to it and awaited.
pub struct Forwarder {
    runtime: tokio::runtime::Handle,
    resolver: TokioResolver,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    /// Starts the resolver's thread for `upstreams`.
    pub fn start(upstreams: &[SocketAddr]) -> io::Result<Forwarder> {
        let mut config = ResolverConfig::from_name_servers(Vec::new());
        for upstream in upstreams {
            let mut udp = ConnectionConfig::udp();
            udp.port = upstream.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = upstream.port();
            config.add_name_server(NameServerConfig::new(upstream.ip(), true, vec![udp, tcp]));
        }
        let mut options = ResolverOpts::default();
        options.timeout = UPSTREAM_TIMEOUT;
        options.attempts = 1;
        options.cache_size = CACHE_ENTRIES;
        options.use_hosts_file = ResolveHosts::Never;
        options.preserve_intermediates = true;
        options.recursion_desired = true;
        options.ndots = 0;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("vipd-dns-forward".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = sender.send(Err(e));
                        return;
                    }
                };
                let _ = sender.send(Ok(runtime.handle().clone()));
                // Runs the lookups handed to it until the process ends.
                runtime.block_on(std::future::pending::<()>());
            })?;
        let runtime = receiver
            .recv()
            .map_err(|_| io::Error::other("forwarding thread"))??;
        let resolver = {
            let _entered = runtime.enter();
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(options)
                .build()
                .map_err(|e| io::Error::other(format!("resolver: {e}")))?
        };
        Ok(Forwarder {
            runtime,
            resolver,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS)),
        })
    }

    /// What the upstreams say about the question of `query`; Failed after FORWARD_DEADLINE.
    pub async fn ask(&self, query: &[u8]) -> Upstream {
        let Ok(message) = Message::from_vec(query) else {
            return Upstream::Failed;
        };
        let Some(question) = message.queries.first() else {
            return Upstream::Failed;
        };
        let mut name = question.name().clone();
        name.set_fqdn(true);
        let record_type = question.query_type();
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Upstream::Failed;
        };
        let resolver = self.resolver.clone();
        let lookup = self.runtime.spawn(async move {
            let _permit = permit;
            tokio::time::timeout(FORWARD_DEADLINE, resolver.lookup(name, record_type)).await
        });
        match lookup.await {
            Ok(Ok(Ok(found))) => Upstream::Answer {
                answers: found.answers().to_vec(),
                authorities: found.authorities().to_vec(),
            },
            Ok(Ok(Err(NetError::Dns(DnsError::NoRecordsFound(none))))) => Upstream::Negative {
                rcode: none.response_code,
                soa: none.soa.map(|soa| Box::new(soa.into_record_of_rdata())),
            },
            Ok(Ok(Err(e))) => {
                debug!("forwarding: {e}");
                Upstream::Failed
            }
            Ok(Err(_)) => {
                debug!("forwarding: no answer within {FORWARD_DEADLINE:?}");
                Upstream::Failed
            }
            Err(e) => {
                warn!("forwarding task: {e}");
                Upstream::Failed
            }
        }
    }
}

/// Answers a query that [`answer::respond`] chose to forward: the upstream's answer, or
/// SERVFAIL; counted.
pub async fn resolve(
    server: &Server,
    query: &[u8],
    client: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let upstream = match server.forwarder() {
        Some(forwarder) => forwarder.ask(query).await,
        None => Upstream::Failed,
    };
    server.count_forward(&upstream);
    let zone = server.zone();
    answer::relayed(query, client, protocol, zone.node_name(), &upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_acl_holds_this_hosts_own_networks() {
        let networks = local_networks();
        assert!(
            allowed(&networks, "127.0.0.1".parse().unwrap()),
            "{networks:?}"
        );
        assert!(
            !allowed(&[], "127.0.0.1".parse().unwrap()),
            "no networks, nobody"
        );
    }
}
