//! Registration of a group's virtual names in the site's DNS: an RFC 2136 UPDATE that
//! replaces the name's A and AAAA records in one message, signed with TSIG (HMAC-SHA256),
//! over TCP (a retried UDP update could be applied twice).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// TSIG fudge: allowed clock difference between the two servers.
const FUDGE: u16 = 300;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("TSIG key file {0}: {1}")]
    Key(String, String),
    #[error("{0}")]
    Dns(String),
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("the server refused the update: {rcode} (TSIG error: {tsig})")]
    Refused { rcode: ResponseCode, tsig: String },
}

/// A TSIG key: its name and secret.
#[derive(Clone)]
pub struct Key {
    pub name: Name,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, secret hidden)", self.name)
    }
}

/// Reads the base64 secret from `path`: a file holding just the secret, or a BIND/knot key
/// file (`tsig-keygen` output) whose `secret "...";` line holds it.
pub fn read_key(name: &str, path: &Path) -> Result<Key, UpdateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UpdateError::Key(shown.clone(), e.to_string()))?;
    let lines = || {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
    };
    let from_bind = lines().find_map(|l| {
        let rest = l.strip_prefix("secret")?;
        let quoted = rest.trim().strip_prefix('"')?;
        quoted.split('"').next()
    });
    let secret_text = from_bind
        .or_else(|| lines().next())
        .ok_or_else(|| UpdateError::Key(shown.clone(), "no secret in the file".into()))?;
    let secret = data_encoding::BASE64
        .decode(secret_text.as_bytes())
        .map_err(|e| UpdateError::Key(shown.clone(), format!("not base64: {e}")))?;
    let name = Name::from_ascii(name).map_err(|e| UpdateError::Key(shown, e.to_string()))?;
    Ok(Key { name, secret })
}

/// Where a virtual name of the cluster zone is registered in the site's zone:
/// `nbu-master.cluster.example.` → `nbu-master.site.example.`.
pub fn site_name(fqdn: &str, cluster_zone: &str, site_zone: &str) -> Option<String> {
    let relative = fqdn.strip_suffix(cluster_zone)?.strip_suffix('.')?;
    (!relative.is_empty()).then(|| format!("{relative}.{site_zone}"))
}

fn dns_error(e: impl std::fmt::Display) -> UpdateError {
    UpdateError::Dns(e.to_string())
}

/// The UPDATE message: in `zone`, delete `name`'s A and AAAA RRsets, then add `addresses`
/// (none: the name is removed).
pub fn build(zone: &Name, name: &Name, addresses: &[IpAddr], ttl: u32) -> Message {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    let mut zone_query = Query::query(zone.clone(), RecordType::SOA);
    zone_query.set_query_class(DNSClass::IN);
    message.add_zone(zone_query);
    for record_type in [RecordType::A, RecordType::AAAA] {
        let mut delete = Record::update0(name.clone(), 0, record_type);
        delete.dns_class = DNSClass::ANY;
        message.add_update(delete);
    }
    for address in addresses {
        message.add_update(Record::from_rdata(name.clone(), ttl, RData::from(*address)));
    }
    message
}

/// Sends one signed update and checks the answer (rcode first: servers answer errors
/// unsigned, then the answer's signature).
pub async fn send(server: SocketAddr, key: &Key, mut message: Message) -> Result<(), UpdateError> {
    let signer = TSigner::new(
        key.secret.clone(),
        TsigAlgorithm::HmacSha256,
        key.name.clone(),
        FUDGE,
    )
    .map_err(dns_error)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut verifier = message.finalize(&signer, now).map_err(dns_error)?;
    let wire = message.to_vec().map_err(dns_error)?;
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        stream.write_all(&framed).await?;
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| UpdateError::Io(server, std::io::ErrorKind::TimedOut.into()))?
        .map_err(|e| UpdateError::Io(server, e))?;
    let reply = Message::from_vec(&answer).map_err(dns_error)?;
    if reply.metadata.id != message.metadata.id
        || reply.metadata.message_type != MessageType::Response
    {
        return Err(UpdateError::Dns(
            "the answer does not match the update".into(),
        ));
    }
    if reply.metadata.response_code != ResponseCode::NoError {
        let tsig = reply
            .signature()
            .and_then(|s| s.data.error)
            .map_or_else(|| "none".to_string(), |e| format!("{e:?}"));
        return Err(UpdateError::Refused {
            rcode: reply.metadata.response_code,
            tsig,
        });
    }
    match verifier.as_mut() {
        Some(verifier) => verifier
            .verify(&answer)
            .map(|_| ())
            .map_err(|e| UpdateError::Dns(format!("answer signature: {e}"))),
        None => Err(UpdateError::Dns("no TSIG verifier".into())),
    }
}

/// Registers `names` (virtual names of the cluster zone) in the site's zone with
/// `addresses`, or removes them when `addresses` is empty: one signed update per name.
/// Returns each name with its site name and outcome; names outside the cluster zone are
/// skipped.
pub async fn update_names(
    update: &crate::config::dns::Update,
    key: &Key,
    cluster_zone: &str,
    names: &[String],
    addresses: &[IpAddr],
) -> Vec<(String, String, Result<(), UpdateError>)> {
    let Ok(zone) = Name::from_ascii(&update.zone) else {
        return Vec::new();
    };
    let ttl = if addresses.is_empty() {
        0
    } else {
        update.ttl.as_secs() as u32
    };
    let mut outcomes = Vec::new();
    for fqdn in names {
        let Some(name) = site_name(fqdn, cluster_zone, &update.zone) else {
            continue;
        };
        let outcome = match Name::from_ascii(&name) {
            Ok(owner) => send(update.server, key, build(&zone, &owner, addresses, ttl)).await,
            Err(e) => Err(dns_error(e)),
        };
        outcomes.push((fqdn.clone(), name, outcome));
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_replaces_both_address_sets_in_one_message() {
        let zone = Name::from_ascii("site.example.").unwrap();
        let name = Name::from_ascii("nbu-master.site.example.").unwrap();
        let message = build(
            &zone,
            &name,
            &[
                "192.0.2.100".parse().unwrap(),
                "2001:db8::100".parse().unwrap(),
            ],
            30,
        );
        assert_eq!(message.metadata.op_code, OpCode::Update);
        let updates = &message.authorities;
        assert_eq!(updates.len(), 4);
        assert_eq!(
            (updates[0].dns_class, updates[0].record_type()),
            (DNSClass::ANY, RecordType::A)
        );
        assert_eq!(
            (updates[1].dns_class, updates[1].record_type()),
            (DNSClass::ANY, RecordType::AAAA)
        );
        assert_eq!((updates[2].dns_class, updates[2].ttl), (DNSClass::IN, 30));
        assert_eq!(
            updates[3].data.ip_addr(),
            Some("2001:db8::100".parse().unwrap())
        );
    }

    #[test]
    fn virtual_names_map_into_the_site_zone() {
        let map = |fqdn| site_name(fqdn, "cluster.example.", "site.example.");
        assert_eq!(
            map("nbu-master.cluster.example."),
            Some("nbu-master.site.example.".into())
        );
        assert_eq!(
            map("api.svc.cluster.example."),
            Some("api.svc.site.example.".into())
        );
        assert_eq!(
            map("a.example.cluster.example."),
            Some("a.example.site.example.".into())
        );
        assert_eq!(map("cluster.example."), None);
        assert_eq!(map("other.example."), None);
    }

    #[test]
    fn keys_read_from_plain_or_bind_style_files() {
        let dir = std::env::temp_dir().join(format!("vipd-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.key");
        std::fs::write(&plain, "# site key\nc2VjcmV0LXNlY3JldC1zZWNyZXQ=\n").unwrap();
        assert_eq!(
            read_key("vipd.", &plain).unwrap().secret,
            b"secret-secret-secret"
        );
        let bind = dir.join("bind.key");
        let tsig_keygen = "key \"vipd-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\";\n};\n";
        std::fs::write(&bind, tsig_keygen).unwrap();
        assert_eq!(
            read_key("vipd.", &bind).unwrap().secret,
            b"secret-secret-secret"
        );
        std::fs::write(&bind, "not base64!\n").unwrap();
        assert!(
            read_key("vipd.", &bind)
                .unwrap_err()
                .to_string()
                .contains("not base64")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
