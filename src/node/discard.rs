//! Every reason a received datagram is not acted on, from the wire checks to the node's own
//! rules and the election's, in one type (in the spirit of rustls's `InvalidMessage`), with
//! its metric name; counted in one place ([`Discards`]) and shown in status and metrics.

use crate::election::Ignored;
use crate::wire::WireError;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    /// The bytes break a rule of RFC 9568 (or of the IP layer around them).
    #[error("{0}")]
    Wire(#[from] WireError),
    /// No group of this node uses the advert's virtual router id in that family.
    #[error("no group of this node has this virtual router id")]
    UnknownVrid,
    /// The group speaks another VRRP version.
    #[error("VRRP version differs from the group's")]
    VersionMismatch,
    /// The source is not a member of the group.
    #[error("the sender is not a member of the group")]
    NotMember,
    /// This node's own advert came back.
    #[error("this node's own advert")]
    Own,
    /// An IPv6 source that claims to be a member but is not verified as one: its MAC is not
    /// the member's (neighbour facts), or, without facts, a priority 0 from it.
    #[error("the IPv6 source is not verified as the member it claims to be")]
    UnverifiedSource,
    /// A member's advert that contradicts what the member says in its signed heartbeats:
    /// someone forged it.
    #[error("the advert contradicts what its sender says in its signed heartbeats (forged)")]
    Forged,
}

impl From<Ignored> for Discard {
    fn from(ignored: Ignored) -> Discard {
        match ignored {
            Ignored::Own => Discard::Own,
            Ignored::NotMember => Discard::NotMember,
            Ignored::Unverified => Discard::UnverifiedSource,
        }
    }
}

impl Discard {
    /// A short stable name for counters and metrics.
    pub fn metric_name(&self) -> &'static str {
        match self {
            Discard::Wire(error) => error.counter_name(),
            Discard::UnknownVrid => "unknown_vrid",
            Discard::VersionMismatch => "version_mismatch",
            Discard::NotMember => "not_member",
            Discard::Own => "own_advert",
            Discard::UnverifiedSource => "unverified_source",
            Discard::Forged => "forged",
        }
    }
}

/// Datagrams dropped, by metric name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discards(BTreeMap<&'static str, u64>);

impl Discards {
    pub fn count(&mut self, discard: &Discard) {
        *self.0.entry(discard.metric_name()).or_default() += 1;
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.0.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}
