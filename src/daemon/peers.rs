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

/// Asks `server` for `name`'s version record.
pub async fn ask(server: SocketAddr, name: &str) -> Result<String, String> {
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
    answer
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::TXT(txt) => txt.txt_data.iter().find_map(|part| {
                std::str::from_utf8(part)
                    .ok()?
                    .strip_prefix("version=")
                    .map(str::to_string)
            }),
            _ => None,
        })
        .ok_or_else(|| format!("no version record ({})", answer.metadata.response_code))
}

/// Asks every other vipd node every PERIOD; logs a mismatch when it appears.
pub fn spawn(config: &Config, me: usize, shared: Shared) {
    let zone = config.cluster.zone.clone();
    let port = config.dns.port;
    let peers: Vec<(String, IpAddr)> = config
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| *i != me && !n.foreign)
        .map(|(_, n)| (n.name.clone(), n.address))
        .collect();
    *shared.lock().unwrap_or_else(|e| e.into_inner()) = peers
        .iter()
        .map(|(node, _)| PeerVersion {
            node: node.clone(),
            version: None,
            error: None,
        })
        .collect();
    tokio::spawn(async move {
        let mine = env!("CARGO_PKG_VERSION");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (index, (node, address)) in peers.iter().enumerate() {
                let name = format!("{VERSION_LABEL}.{node}.{zone}");
                let result = ask(SocketAddr::new(*address, port), &name).await;
                let mut table = shared.lock().unwrap_or_else(|e| e.into_inner());
                let entry = &mut table[index];
                match result {
                    Ok(version) => {
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
    });
}
