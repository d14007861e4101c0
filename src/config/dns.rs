//! The `[dns]` table: how every node serves the cluster zone, and optionally how the owner
//! registers the virtual names in the site's DNS (RFC 2136).

use super::duration::HumanDuration;
use super::{ConfigError, Source};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Short TTLs keep a failover visible to resolvers quickly.
const DEFAULT_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    /// Serve the zone at all (on by default).
    pub enabled: bool,
    pub port: u16,
    /// TTL of answers from the zone (virtual names, node names, owner records).
    pub ttl: Duration,
    /// TTL of negative answers: the SOA minimum.
    pub negative_ttl: Duration,
    /// Upstream resolvers for names outside the zone; empty: such questions are refused.
    pub forwarders: Vec<SocketAddr>,
    /// Queries per second allowed per client address; 0: no limit.
    pub rate_limit: u32,
    /// Clients whose recursive questions are forwarded; None: the subnets of the node's own
    /// interfaces. Everyone else is REFUSED (never an open resolver).
    pub allow_recursion: Option<Vec<Network>>,
    pub update: Option<Update>,
}

/// An address prefix (`198.51.100.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// `address/prefix`, or a bare address (one host).
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        };
        Some(Network { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |prefix: u8, width: u32| -> u128 {
            if prefix == 0 {
                0
            } else {
                (!0u128) << (width - u32::from(prefix))
            }
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = bits(self.prefix, 32) as u32;
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = bits(self.prefix, 128);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Default for Dns {
    fn default() -> Dns {
        Dns {
            enabled: true,
            port: 53,
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_TTL,
            forwarders: Vec::new(),
            rate_limit: 0,
            allow_recursion: None,
            update: None,
        }
    }
}

/// Registration of the virtual names in the site's DNS with signed dynamic updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub server: SocketAddr,
    /// The site's zone; each group's names are registered as `<label>.<zone>`.
    pub zone: String,
    /// TSIG key name (HMAC-SHA256).
    pub key_name: String,
    /// File holding the base64 secret; never the cluster file itself.
    pub key_file: PathBuf,
    pub ttl: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    port: Option<Spanned<i64>>,
    #[serde(default)]
    ttl: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    negative_ttl: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    forwarders: Vec<Spanned<String>>,
    #[serde(default)]
    rate_limit: Option<Spanned<i64>>,
    #[serde(default)]
    allow_recursion: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    update: Option<RawUpdate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpdate {
    server: Spanned<String>,
    zone: Spanned<String>,
    key_name: Spanned<String>,
    key_file: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<HumanDuration>>,
}

fn ttl(
    source: &Source,
    value: &Option<Spanned<HumanDuration>>,
    field: &str,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(DEFAULT_TTL),
        Some(spanned) => {
            let ttl = spanned.get_ref().0;
            if ttl > MAX_TTL || ttl.subsec_nanos() != 0 {
                return Err(source.error(
                    spanned.span(),
                    field,
                    "a TTL is whole seconds, at most 1 day",
                ));
            }
            Ok(ttl)
        }
    }
}

/// `host:port`, or a bare address with port 53.
fn socket_address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub(super) fn validate(source: &Source, raw: Option<RawDns>) -> Result<Dns, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Dns::default());
    };
    let at = |key: &str| format!("[dns], field `{key}`");
    let port = match &raw.port {
        None => 53,
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                source.error(
                    p.span(),
                    at("port"),
                    format!("port {} is not 1..=65535", p.get_ref()),
                )
            })?,
    };
    let mut forwarders = Vec::new();
    for written in &raw.forwarders {
        let address = socket_address(written.get_ref()).ok_or_else(|| {
            source.error(
                written.span(),
                at("forwarders"),
                format!(
                    "`{}` is not an address (198.51.100.53 or [2001:db8::53]:53)",
                    written.get_ref()
                ),
            )
        })?;
        forwarders.push(address);
    }
    let rate_limit = match &raw.rate_limit {
        None => 0,
        Some(r) => u32::try_from(*r.get_ref()).map_err(|_| {
            source.error(
                r.span(),
                at("rate_limit"),
                "rate_limit is queries per second per client, 0 (off) or more",
            )
        })?,
    };
    let allow_recursion = match &raw.allow_recursion {
        None => None,
        Some(written) => {
            let mut networks = Vec::new();
            for network in written {
                networks.push(Network::parse(network.get_ref()).ok_or_else(|| {
                    source.error(
                        network.span(),
                        at("allow_recursion"),
                        format!(
                            "`{}` is not a network (198.51.100.0/24, 2001:db8::/32 or one address)",
                            network.get_ref()
                        ),
                    )
                })?);
            }
            Some(networks)
        }
    };
    let update = match raw.update {
        None => None,
        Some(update) => {
            let at = |key: &str| format!("[dns.update], field `{key}`");
            let server = socket_address(update.server.get_ref()).ok_or_else(|| {
                source.error(
                    update.server.span(),
                    at("server"),
                    format!("`{}` is not an address", update.server.get_ref()),
                )
            })?;
            let zone = super::validate::dns_name(update.zone.get_ref())
                .map_err(|why| source.error(update.zone.span(), at("zone"), why))?;
            let key_name = super::validate::dns_name(update.key_name.get_ref())
                .map_err(|why| source.error(update.key_name.span(), at("key_name"), why))?;
            if update.key_file.get_ref().trim().is_empty() {
                return Err(source.error(
                    update.key_file.span(),
                    at("key_file"),
                    "the file that holds the TSIG secret (base64)",
                ));
            }
            Some(Update {
                server,
                zone,
                key_name,
                key_file: PathBuf::from(update.key_file.get_ref()),
                ttl: ttl(source, &update.ttl, &at("ttl"))?,
            })
        }
    };
    Ok(Dns {
        enabled: raw.enabled.unwrap_or(true),
        port,
        ttl: ttl(source, &raw.ttl, &at("ttl"))?,
        negative_ttl: ttl(source, &raw.negative_ttl, &at("negative_ttl"))?,
        forwarders,
        rate_limit,
        allow_recursion,
        update,
    })
}

#[cfg(test)]
mod tests {
    use super::Network;

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Network::parse("198.51.100.0/24").unwrap();
        assert!(net.contains("198.51.100.7".parse().unwrap()));
        assert!(net.contains("::ffff:198.51.100.7".parse().unwrap()));
        assert!(!net.contains("198.51.101.7".parse().unwrap()));
        assert!(!net.contains("2001:db8::7".parse().unwrap()));
        let net = Network::parse("2001:db8::/32").unwrap();
        assert!(net.contains("2001:db8:1::7".parse().unwrap()));
        assert!(!net.contains("2001:db9::7".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert_eq!(Network::parse("192.0.2.1").unwrap().prefix, 32);
        assert!(Network::parse("192.0.2.0/33").is_none());
        assert!(Network::parse("example.org").is_none());
    }
}
