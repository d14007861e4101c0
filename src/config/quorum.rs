//! The `[quorum]` table and the `[[witness]]` entries: the authenticated membership channel
//! between vipd nodes (heartbeats signed with a key that is never in the cluster file), the
//! votes, and the lease that keeps a node cut off from the majority from serving a quorum
//! group while another node starts it (see `crate::quorum`).

use super::{ConfigError, Source};
use crate::config::duration::HumanDuration;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The UDP port heartbeats use when the file names none.
pub const DEFAULT_PORT: u16 = 8405;
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(100);
pub const DEFAULT_LEASE: Duration = Duration::from_secs(2);
pub const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Voters are carried as bits of a u64 in heartbeats.
pub const MAX_VOTERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// The shared secret's file (read by the shell; at least 16 bytes).
    pub key_file: PathBuf,
    pub port: u16,
    /// How often every voter sends every other one a heartbeat.
    pub heartbeat: Duration,
    /// How long a vote, once given, counts for its holder (see `crate::quorum`): a node cut
    /// off from the majority has stopped a quorum group's resources and released its
    /// addresses before this has passed, and only then may another node start them.
    pub lease: Duration,
    /// How long a fence command may run before it counts as failed.
    pub fence_timeout: Duration,
    /// How long a member must be silent before it is fenced (a short stall of a VM is not
    /// worth a power-off). Default: half the lease.
    pub fence_after: Duration,
}

impl Quorum {
    /// How long a node that loses quorum has to stop a group's resources and release its
    /// addresses: it begins this long before its votes run out. Votes are renewed every
    /// heartbeat and anchored up to two heartbeats back, so a live node's votes always run
    /// at least `lease - 2 heartbeats` (less the drift margin) ahead: three heartbeats and
    /// twice that margin are kept out of the budget, and a healthy node never dips under it.
    pub fn stop_budget(&self) -> Duration {
        self.lease
            .saturating_sub(3 * self.heartbeat + self.lease / 32)
    }
}

/// A voter on a third machine: it owns no group and no address, it only votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub name: String,
    pub address: IpAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuorum {
    key_file: Spanned<String>,
    #[serde(default)]
    port: Option<Spanned<i64>>,
    #[serde(default)]
    heartbeat: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    lease: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    fence_timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    fence_after: Option<Spanned<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWitness {
    name: Spanned<String>,
    address: Spanned<IpAddr>,
}

pub(super) fn validate(
    source: &Source,
    raw: Option<RawQuorum>,
) -> Result<Option<Quorum>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let field = |key: &str| format!("[quorum], field `{key}`");
    let key_file = raw.key_file.get_ref().trim();
    if !key_file.starts_with('/') {
        return Err(source.error(
            raw.key_file.span(),
            field("key_file"),
            format!("`{key_file}` is not an absolute path (the key stays out of the cluster file: write its path, such as /etc/vipd/cluster.key)"),
        ));
    }
    let port = match raw.port {
        None => DEFAULT_PORT,
        Some(port) => u16::try_from(*port.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                source.error(port.span(), field("port"), "the port must be 1..=65535")
            })?,
    };
    let duration = |value: &Option<Spanned<HumanDuration>>, default: Duration| {
        value.as_ref().map_or(default, |v| v.get_ref().0)
    };
    let heartbeat = duration(&raw.heartbeat, DEFAULT_HEARTBEAT);
    if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&heartbeat) {
        let span = raw.heartbeat.as_ref().map_or(0..0, |h| h.span());
        return Err(source.error(
            span,
            field("heartbeat"),
            "the heartbeat interval must be between 10ms and 10s",
        ));
    }
    let lease = duration(&raw.lease, DEFAULT_LEASE);
    if lease < 5 * heartbeat || lease > Duration::from_secs(600) {
        let span = raw.lease.as_ref().map_or(0..0, |l| l.span());
        return Err(source.error(
            span,
            field("lease"),
            format!(
                "the lease must be at least 5 heartbeats ({:?}) and at most 600s: a vote must survive a lost heartbeat or two",
                5 * heartbeat
            ),
        ));
    }
    let fence_timeout = duration(&raw.fence_timeout, DEFAULT_FENCE_TIMEOUT);
    if fence_timeout.is_zero() {
        let span = raw.fence_timeout.as_ref().map_or(0..0, |f| f.span());
        return Err(source.error(
            span,
            field("fence_timeout"),
            "the fence time-out must be above zero",
        ));
    }
    let fence_after = duration(&raw.fence_after, lease / 2);
    if fence_after < 4 * heartbeat {
        let span = raw.fence_after.as_ref().map_or(0..0, |f| f.span());
        return Err(source.error(
            span,
            field("fence_after"),
            format!("a member is heard for four heartbeats after its last one: fence_after must be at least {:?}", 4 * heartbeat),
        ));
    }
    Ok(Some(Quorum {
        key_file: PathBuf::from(key_file),
        port,
        heartbeat,
        lease,
        fence_timeout,
        fence_after,
    }))
}

pub(super) fn witnesses(
    source: &Source,
    raw: Vec<Spanned<RawWitness>>,
    taken: &[(String, IpAddr)],
) -> Result<Vec<Witness>, ConfigError> {
    let mut witnesses: Vec<Witness> = Vec::new();
    for (index, entry) in raw.into_iter().enumerate() {
        let entry = entry.into_inner();
        let field = |key: &str| format!("[[witness]] #{}, field `{key}`", index + 1);
        let name = entry.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(source.error(entry.name.span(), field("name"), "a witness needs a name"));
        }
        let address = *entry.address.get_ref();
        let clash = taken
            .iter()
            .map(|(n, a)| (n.as_str(), *a))
            .chain(witnesses.iter().map(|w| (w.name.as_str(), w.address)))
            .find(|(n, a)| *n == name || *a == address);
        if let Some((other, _)) = clash {
            return Err(source.error(
                entry.name.span(),
                field("name"),
                format!("`{name}` ({address}) has the name or address of `{other}` already: every voter needs its own"),
            ));
        }
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(source.error(
                entry.address.span(),
                field("address"),
                format!("`{address}` cannot be a witness's address"),
            ));
        }
        witnesses.push(Witness { name, address });
    }
    Ok(witnesses)
}
