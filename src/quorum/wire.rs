//! The heartbeat between voters: one UDP datagram per recipient, signed with HMAC-SHA256
//! over every byte before the tag (key from the `[quorum] key_file`, never in the cluster
//! file). Layout, network byte order:
//!
//! ```text
//! 0   "vhb1"                      magic and version
//! 4   from, to                    voter indexes (nodes in file order, then witnesses)
//! 6   flags                       bit 0: the sender grants the recipient its vote
//!                                 bit 1: an echo follows
//!                                 bit 2: the sender stops for good
//! 7   0
//! 8   boot (u64), seq (u64)       the sender's boot id (grows across restarts) and counter
//! 24  echo boot, echo seq         the recipient's (boot, seq) last heard by the sender
//! 40  heard (u64)                 bit v: voter v is heard by the sender
//! 48  released (u64)              bit v: the sender gives voter v no vote, and promises
//!                                 not to for a lease from now
//! 56  groups (u16), then per group: name length (u8), name, flags (u8: bit 0 holds,
//!     bit 1 master, bit 2 leaving, bit 3 wants), priority (u8)
//! ... tag (32 bytes)
//! ```

use ring::hmac;

pub const MAGIC: &[u8; 4] = b"vhb1";
pub const TAG_LEN: usize = 32;
const HEADER_LEN: usize = 58;

/// What a node says of one group it is a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    pub name: String,
    /// Its addresses are on the node or its resources run (or still stop).
    pub holds: bool,
    pub master: bool,
    /// Master saying priority 0 (a handover or a shutdown).
    pub leaving: bool,
    /// Wants to take the group (a takeover waits for the others to acknowledge: see
    /// `crate::node` quorum gate).
    pub wants: bool,
    /// The priority its adverts carry.
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heartbeat {
    pub from: u8,
    pub to: u8,
    pub boot: u64,
    pub seq: u64,
    pub grant: bool,
    pub echo: Option<(u64, u64)>,
    pub heard: u64,
    pub released: u64,
    /// The sender stops for good (a shutdown): it takes nothing more in this boot.
    pub gone: bool,
    pub groups: Vec<GroupReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("too short for a heartbeat")]
    Short,
    #[error("not a vipd heartbeat (magic)")]
    Magic,
    #[error("the signature does not verify (another key, or forged)")]
    Signature,
    #[error("malformed group list")]
    Malformed,
}

impl HeartbeatError {
    pub fn metric_name(self) -> &'static str {
        match self {
            HeartbeatError::Short | HeartbeatError::Magic | HeartbeatError::Malformed => {
                "malformed"
            }
            HeartbeatError::Signature => "bad_signature",
        }
    }
}

impl Heartbeat {
    pub fn emit(&self, key: &hmac::Key) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + TAG_LEN + 16 * self.groups.len());
        out.extend_from_slice(MAGIC);
        out.push(self.from);
        out.push(self.to);
        out.push(
            u8::from(self.grant)
                | (u8::from(self.echo.is_some()) << 1)
                | (u8::from(self.gone) << 2),
        );
        out.push(0);
        out.extend_from_slice(&self.boot.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        let (echo_boot, echo_seq) = self.echo.unwrap_or_default();
        out.extend_from_slice(&echo_boot.to_be_bytes());
        out.extend_from_slice(&echo_seq.to_be_bytes());
        out.extend_from_slice(&self.heard.to_be_bytes());
        out.extend_from_slice(&self.released.to_be_bytes());
        let groups: Vec<&GroupReport> = self
            .groups
            .iter()
            .filter(|g| g.name.len() <= usize::from(u8::MAX))
            .take(usize::from(u16::MAX))
            .collect();
        out.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        for group in groups {
            out.push(group.name.len() as u8);
            out.extend_from_slice(group.name.as_bytes());
            out.push(
                u8::from(group.holds)
                    | (u8::from(group.master) << 1)
                    | (u8::from(group.leaving) << 2)
                    | (u8::from(group.wants) << 3),
            );
            out.push(group.priority);
        }
        let tag = hmac::sign(key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verifies the signature first: nothing of an unsigned datagram is read.
    pub fn parse(bytes: &[u8], key: &hmac::Key) -> Result<Heartbeat, HeartbeatError> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(HeartbeatError::Short);
        }
        if &bytes[..4] != MAGIC {
            return Err(HeartbeatError::Magic);
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        hmac::verify(key, body, tag).map_err(|_| HeartbeatError::Signature)?;
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let flags = body[6];
        let mut heartbeat = Heartbeat {
            from: body[4],
            to: body[5],
            grant: flags & 1 != 0,
            gone: flags & 4 != 0,
            echo: (flags & 2 != 0).then(|| (u64_at(24), u64_at(32))),
            boot: u64_at(8),
            seq: u64_at(16),
            heard: u64_at(40),
            released: u64_at(48),
            groups: Vec::new(),
        };
        let count = usize::from(u16::from_be_bytes([body[56], body[57]]));
        let mut rest = &body[HEADER_LEN..];
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or(HeartbeatError::Malformed)?;
            let len = usize::from(len);
            if tail.len() < len + 2 {
                return Err(HeartbeatError::Malformed);
            }
            let name = std::str::from_utf8(&tail[..len]).map_err(|_| HeartbeatError::Malformed)?;
            let flags = tail[len];
            heartbeat.groups.push(GroupReport {
                name: name.to_string(),
                holds: flags & 1 != 0,
                master: flags & 2 != 0,
                leaving: flags & 4 != 0,
                wants: flags & 8 != 0,
                priority: tail[len + 1],
            });
            rest = &tail[len + 2..];
        }
        if !rest.is_empty() {
            return Err(HeartbeatError::Malformed);
        }
        Ok(heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, secret)
    }

    fn sample() -> Heartbeat {
        Heartbeat {
            from: 1,
            to: 2,
            boot: 1_700_000_000_000,
            seq: 42,
            grant: true,
            echo: Some((7, 9)),
            heard: 0b111,
            released: 0b1000,
            gone: false,
            groups: vec![GroupReport {
                name: "disk".into(),
                holds: true,
                master: true,
                leaving: false,
                wants: true,
                priority: 150,
            }],
        }
    }

    #[test]
    fn a_heartbeat_round_trips_under_its_key() {
        let k = key(b"0123456789abcdef");
        assert_eq!(Heartbeat::parse(&sample().emit(&k), &k), Ok(sample()));
    }

    #[test]
    fn another_key_or_one_flipped_bit_fails_the_signature() {
        let bytes = sample().emit(&key(b"0123456789abcdef"));
        let other = key(b"fedcba9876543210");
        assert_eq!(
            Heartbeat::parse(&bytes, &other),
            Err(HeartbeatError::Signature)
        );
        let k = key(b"0123456789abcdef");
        for at in 4..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            assert_eq!(
                Heartbeat::parse(&flipped, &k),
                Err(HeartbeatError::Signature),
                "byte {at}"
            );
        }
    }

    #[test]
    fn short_and_foreign_datagrams_are_refused_before_the_signature() {
        let k = key(b"0123456789abcdef");
        assert_eq!(Heartbeat::parse(&[0; 10], &k), Err(HeartbeatError::Short));
        let mut bytes = sample().emit(&k);
        bytes[0] = b'x';
        assert_eq!(Heartbeat::parse(&bytes, &k), Err(HeartbeatError::Magic));
    }
}
