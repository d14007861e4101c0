//! Which vipd version every other node runs, so that a mismatch shows before it bites: each
//! node publishes its own version in the zone it serves (`_vipd.<node>.<zone>. TXT
//! "version=..."`), and the daemon asks every peer's DNS server for it now and then.

use crate::config::Config;
use crate::dns::zone::VERSION_LABEL;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tracing::{info, warn};

const PERIOD: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

pub use crate::node::status::PeerVersion;

pub type Shared = Arc<Mutex<Vec<PeerVersion>>>;

/// Asks `server` for `name`'s TXT record: the facts a node publishes about itself
/// (`version=...`, `config=...`, `drained=1`).
pub async fn ask(server: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let owner = Name::from_ascii(name).map_err(|e| e.to_string())?;
    let mut query = Message::query();
    query.add_query(Query::query(owner, RecordType::TXT));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 1500];
    let len = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv(&mut buffer))
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())?;
    let answer = Message::from_vec(&buffer[..len]).map_err(|e| e.to_string())?;
    if answer.metadata.id != query.metadata.id {
        return Err("an answer to another question".into());
    }
    let facts: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(txt),
            _ => None,
        })
        .flat_map(|txt| txt.txt_data.iter())
        .filter_map(|part| std::str::from_utf8(part).ok().map(str::to_string))
        .collect();
    if facts.iter().any(|f| f.starts_with("version=")) {
        Ok(facts)
    } else {
        Err(format!(
            "no version record ({})",
            answer.metadata.response_code
        ))
    }
}

fn fact<'a>(facts: &'a [String], key: &str) -> Option<&'a str> {
    facts
        .iter()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// True when `node` answered the last question, and is not drained: it can take a group.
pub fn is_live(shared: &Shared, node: &str) -> bool {
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p.node == node && p.version.is_some() && p.error.is_none() && !p.drained)
}

/// Asks every other vipd node every PERIOD; logs a mismatch of version or cluster file when
/// it appears. `digest`: this node's cluster file digest. The task ends when the handle is
/// aborted (a reload starts another one).
pub fn spawn(
    config: &Config,
    me: usize,
    shared: Shared,
    digest: String,
) -> tokio::task::JoinHandle<()> {
    let zone = config.cluster.zone.clone();
    let port = config.dns.port;
    let peers: Vec<(String, IpAddr)> = config
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| *i != me && !n.foreign)
        .map(|(_, n)| (n.name.clone(), n.address))
        .collect();
    {
        // Keep what is known of peers that stay (a reload).
        let mut table = shared.lock().unwrap_or_else(|e| e.into_inner());
        let known = std::mem::take(&mut *table);
        *table = peers
            .iter()
            .map(|(node, _)| {
                known
                    .iter()
                    .find(|p| p.node == *node)
                    .cloned()
                    .unwrap_or(PeerVersion {
                        node: node.clone(),
                        version: None,
                        error: None,
                        config_digest: None,
                        drained: false,
                    })
            })
            .collect();
    }
    tokio::spawn(async move {
        let mine = env!("CARGO_PKG_VERSION");
        let digest = digest;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (index, (node, address)) in peers.iter().enumerate() {
                let name = format!("{VERSION_LABEL}.{node}.{zone}");
                let result = ask(SocketAddr::new(*address, port), &name).await;
                let mut table = shared.lock().unwrap_or_else(|e| e.into_inner());
                let entry = &mut table[index];
                match result {
                    Ok(facts) => {
                        let version = fact(&facts, "version").unwrap_or_default().to_string();
                        let config = fact(&facts, "config").map(str::to_string);
                        if let Some(theirs) = &config
                            && *theirs != digest
                            && entry.config_digest.as_ref() != Some(theirs)
                        {
                            warn!(%node, "peer runs another cluster file (digest {theirs}, this node {digest}): copy the same file to every node");
                        }
                        entry.config_digest = config;
                        entry.drained = fact(&facts, "drained") == Some("1");
                        if entry.version.as_deref() != Some(version.as_str()) {
                            if version == mine {
                                info!(%node, "peer runs vipd {version}, as this node does");
                            } else {
                                warn!(%node, "peer runs vipd {version}, this node {mine}: run the same version on every node");
                            }
                        }
                        entry.version = Some(version);
                        entry.error = None;
                    }
                    Err(error) => entry.error = Some(error),
                }
            }
            tokio::time::sleep(PERIOD - Duration::from_secs(1)).await;
        }
    })
}
