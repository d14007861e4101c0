//! Membership and quorum, pure (time passed in), shared by nodes and witnesses.
//!
//! Every voter (each vipd node of the file, then each `[[witness]]`; one vote each) sends
//! every other voter a signed heartbeat ([`wire::Heartbeat`]) every `[quorum] heartbeat`.
//! A heartbeat echoes the recipient's last (boot, seq) it heard: the recipient knows when it
//! sent that seq, so it can anchor what the heartbeat says on its own clock without any
//! clock being shared. Heartbeats that echo nothing recent ("unanchored": a replay, or the
//! first one after a restart) only teach the sender's counter; nothing else is taken from
//! them, so a replayed heartbeat changes nothing.
//!
//! ## Votes are leases
//!
//! A voter gives its vote to the nodes it hears, and that hear it, and that all hear each
//! other (a clique: a witness that hears two nodes that no longer hear each other keeps the
//! one it had, or the one holding more groups). A vote given in a heartbeat that echoes the
//! holder's seq `s` counts for the holder until `sent(s) + lease` on the holder's clock
//! (less a drift margin). `sent(s)` is before the grant was sent, so the holder's lease ends
//! before the grantor's own `grant + lease`, whatever the delays. A node holds quorum while
//! more than half of all votes count for it (its own included).
//!
//! ## Releases are promises
//!
//! Once `lease` has passed since a voter last gave `x` its vote, it reports `x` released and
//! promises not to vote for `x` for another `lease` (it stops reporting, and waits that out,
//! before it votes for `x` again). A report anchored at `sent(s)` counts until
//! `sent(s) + lease`, inside the promise. When more than half of the voters report `x`
//! released, `x` cannot count a majority: its quorum has ended.
//!
//! ## The lease argument (why two nodes never run a quorum group at once)
//!
//! A node holds a quorum group only while its quorum lasts at least `stop_budget` more
//! ([`crate::config::quorum::Quorum::stop_budget`], the lease less three heartbeats): when
//! what remains falls below that, it stops the group's resources and releases its
//! addresses, and the file's check makes sure the resources' stop time-outs fit in that
//! budget. So a node that loses contact has stopped by the time its votes run out.
//! Another member takes a quorum group only when it holds quorum itself and every other
//! member either says, in a fresh anchored heartbeat, that it holds the group no more
//! (a handover, a shutdown), or is released by a majority (its votes have run out, so it
//! has stopped). Lost heartbeats only delay; they never let two nodes hold at once. The
//! edges are tested in `tests/quorum.rs`.

pub mod wire;

use crate::config::Config;
use ring::hmac;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
pub use wire::{GroupReport, Heartbeat, HeartbeatError};

/// A voter is heard while its last anchored heartbeat is younger than this many intervals.
pub const HEARD_FOR_HEARTBEATS: u32 = 4;
/// Voters whose previous boot id is larger are believed again after this many leases of
/// silence (a wall clock stepped back across a restart).
const SILENCE_FOR_OLDER_BOOT: u32 = 2;

/// The minimum length of the key file's secret.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub name: String,
    pub address: IpAddr,
    /// Its index in the file's nodes; None for a witness.
    pub node: Option<usize>,
}

/// The voters of a file: its vipd nodes (foreign ones do not vote), then its witnesses.
pub fn voters(config: &Config) -> Vec<Voter> {
    let nodes = config
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.foreign)
        .map(|(i, n)| Voter {
            name: n.name.clone(),
            address: n.address,
            node: Some(i),
        });
    let witnesses = config.witnesses.iter().map(|w| Voter {
        name: w.name.clone(),
        address: w.address,
        node: None,
    });
    nodes.chain(witnesses).collect()
}

/// Drops and other events of the membership channel, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    pub accepted: u64,
    pub malformed: u64,
    pub bad_signature: u64,
    /// Signed, but from a voter's key at another address, to another voter, or from itself.
    pub misdirected: u64,
    /// A (boot, seq) already seen: a replay.
    pub replayed: u64,
    /// Echoes nothing this voter sent lately: only the sender's counter is learned.
    pub unanchored: u64,
}

#[derive(Debug, Clone, Default)]
struct Peer {
    /// The sender's last (boot, seq): what this voter echoes to it.
    boot: Option<u64>,
    seq: u64,
    /// When its last anchored heartbeat arrived, and when this voter sent what it echoed.
    anchored_at: Option<Instant>,
    anchor: Option<Instant>,
    grant: bool,
    heard: u64,
    released: u64,
    groups: Vec<GroupReport>,
    /// It said it stops for good (this boot takes nothing more).
    gone: bool,
    /// Its vote for this voter counts until then.
    lease_until: Option<Instant>,
    /// This voter's side: when it last gave the peer its vote, whether it gives it now, and
    /// when it last reported the peer released (and so promised not to vote for it).
    last_granted: Option<Instant>,
    granting: bool,
    released_reported: Option<Instant>,
}

/// Whether a node holds quorum, and until when without renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its own vote is a majority (a cluster of one voter).
    Always,
    Until(Instant),
    Lost,
}

impl Standing {
    /// True when quorum lasts at least `budget` beyond `now`.
    pub fn holds_for(self, now: Instant, budget: Duration) -> bool {
        match self {
            Standing::Always => true,
            Standing::Until(until) => until > now + budget,
            Standing::Lost => false,
        }
    }
}

pub struct Membership {
    me: usize,
    voters: Vec<Voter>,
    port: u16,
    heartbeat: Duration,
    lease: Duration,
    key: hmac::Key,
    boot: u64,
    seq: u64,
    /// This voter's recent seqs and when they went out (kept for a lease).
    sent: VecDeque<(u64, Instant)>,
    peers: Vec<Peer>,
    next_round: Instant,
    /// A voter that (re)starts gives no vote and reports no release for a lease: votes it
    /// gave before it restarted may still count.
    quiet_until: Instant,
    /// This voter stops for good: its heartbeats say so.
    gone: bool,
    counters: Counters,
}

/// One heartbeat to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Membership {
    /// Voter `me` of `voters`, with the shared `secret`, a `boot` id larger than any earlier
    /// run's (the shell uses the wall clock in nanoseconds), started at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        voters: Vec<Voter>,
        me: usize,
        port: u16,
        heartbeat: Duration,
        lease: Duration,
        secret: &[u8],
        boot: u64,
        now: Instant,
    ) -> Membership {
        let peers = vec![Peer::default(); voters.len()];
        Membership {
            me,
            voters,
            port,
            heartbeat,
            lease,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            boot,
            seq: 0,
            sent: VecDeque::new(),
            peers,
            next_round: now,
            quiet_until: now + lease,
            gone: false,
            counters: Counters::default(),
        }
    }

    /// The membership of node `node` (or witness `witness`) of `config`.
    pub fn for_config(
        config: &Config,
        me: &str,
        secret: &[u8],
        boot: u64,
        now: Instant,
    ) -> Option<Membership> {
        let quorum = config.quorum.as_ref()?;
        let voters = voters(config);
        let index = voters.iter().position(|v| v.name == me)?;
        Some(Membership::new(
            voters,
            index,
            quorum.port,
            quorum.heartbeat,
            quorum.lease,
            secret,
            boot,
            now,
        ))
    }

    pub fn voters(&self) -> &[Voter] {
        &self.voters
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The voter index of node `node` of the file.
    pub fn voter_of_node(&self, node: usize) -> Option<usize> {
        self.voters.iter().position(|v| v.node == Some(node))
    }

    /// A holder counts a vote a little shorter than given: clocks run at slightly
    /// different rates.
    fn lease_counted(&self) -> Duration {
        self.lease - self.lease / 64
    }

    fn heard_for(&self) -> Duration {
        self.heartbeat * HEARD_FOR_HEARTBEATS
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_round
    }

    /// Sends a round of heartbeats at once (something peers act on changed).
    pub fn hurry(&mut self, now: Instant) {
        self.next_round = self.next_round.min(now);
    }

    /// The heartbeats due at `now`, telling peers `groups` (this node's groups).
    pub fn poll_transmit(&mut self, now: Instant, groups: &[GroupReport]) -> Vec<Transmit> {
        if now < self.next_round {
            return Vec::new();
        }
        self.next_round = now + self.heartbeat;
        self.seq += 1;
        self.sent.push_back((self.seq, now));
        while self
            .sent
            .front()
            .is_some_and(|(_, at)| *at + self.lease < now)
        {
            self.sent.pop_front();
        }
        let released = self.choose_grants(now);
        let heard = self.heard_bits(now);
        let mut out = Vec::with_capacity(self.voters.len());
        for (index, voter) in self.voters.iter().enumerate() {
            if index == self.me {
                continue;
            }
            let peer = &mut self.peers[index];
            if peer.granting {
                peer.last_granted = Some(now);
            }
            let heartbeat = Heartbeat {
                from: self.me as u8,
                to: index as u8,
                boot: self.boot,
                seq: self.seq,
                grant: peer.granting,
                echo: peer.boot.map(|boot| (boot, peer.seq)),
                heard,
                released,
                gone: self.gone,
                groups: groups.to_vec(),
            };
            out.push(Transmit {
                to: SocketAddr::new(voter.address, self.port),
                bytes: heartbeat.emit(&self.key),
            });
        }
        self.counters.sent += out.len() as u64;
        out
    }

    /// A datagram that arrived on the heartbeat port from `src`. Returns whether anything a
    /// decision rests on may have changed.
    pub fn handle(&mut self, now: Instant, src: IpAddr, bytes: &[u8]) -> Result<bool, String> {
        let heartbeat = match Heartbeat::parse(bytes, &self.key) {
            Ok(h) => h,
            Err(e) => {
                match e {
                    HeartbeatError::Signature => self.counters.bad_signature += 1,
                    _ => self.counters.malformed += 1,
                }
                return Err(format!("heartbeat from {src}: {e}"));
            }
        };
        let from = usize::from(heartbeat.from);
        if usize::from(heartbeat.to) != self.me
            || from == self.me
            || self.voters.get(from).is_none_or(|v| v.address != src)
        {
            self.counters.misdirected += 1;
            return Err(format!(
                "heartbeat from {src} says it is from voter {from} to voter {}: not for this voter from there",
                heartbeat.to
            ));
        }
        let anchor = heartbeat.echo.and_then(|(boot, seq)| {
            (boot == self.boot)
                .then(|| self.sent.iter().find(|(s, _)| *s == seq).map(|(_, at)| *at))
                .flatten()
        });
        let silence = SILENCE_FOR_OLDER_BOOT * self.lease;
        let peer = &mut self.peers[from];
        let fresh = match peer.boot {
            None => true,
            Some(boot) if heartbeat.boot == boot => heartbeat.seq > peer.seq,
            Some(boot) if heartbeat.boot > boot => true,
            // An older boot id: a replay, unless the voter restarted with its wall clock
            // stepped back and is live (it echoes this voter) after a long silence.
            Some(_) => anchor.is_some() && peer.anchored_at.is_none_or(|t| now >= t + silence),
        };
        if !fresh {
            self.counters.replayed += 1;
            return Err(format!(
                "heartbeat from {} replayed (boot {}, seq {})",
                self.voters[from].name, heartbeat.boot, heartbeat.seq
            ));
        }
        peer.boot = Some(heartbeat.boot);
        peer.seq = heartbeat.seq;
        let Some(anchor) = anchor else {
            self.counters.unanchored += 1;
            return Ok(false);
        };
        self.counters.accepted += 1;
        let counted = self.lease - self.lease / 64;
        let peer = &mut self.peers[from];
        let changed = peer.anchored_at.is_none()
            || peer.grant != heartbeat.grant
            || peer.heard != heartbeat.heard
            || peer.released != heartbeat.released
            || peer.groups != heartbeat.groups;
        peer.anchored_at = Some(now);
        peer.anchor = Some(peer.anchor.map_or(anchor, |a| a.max(anchor)));
        if heartbeat.grant {
            let until = anchor + counted;
            peer.lease_until = Some(peer.lease_until.map_or(until, |u| u.max(until)));
        }
        peer.grant = heartbeat.grant;
        peer.gone = heartbeat.gone;
        peer.heard = heartbeat.heard;
        peer.released = heartbeat.released;
        peer.groups = heartbeat.groups;
        Ok(changed)
    }

    /// True while voter `v` is heard (an anchored heartbeat lately).
    pub fn heard(&self, v: usize, now: Instant) -> bool {
        v == self.me
            || self.peers[v]
                .anchored_at
                .is_some_and(|t| now < t + self.heard_for())
    }

    /// The next instant at which what `heard` says changes (for the caller's timer).
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let heard = self
            .peers
            .iter()
            .filter_map(|p| p.anchored_at.map(|t| t + self.heard_for()));
        let leases = self.peers.iter().filter_map(|p| p.lease_until);
        let promises = self
            .peers
            .iter()
            .filter_map(|p| Some(p.anchor? + self.lease_counted()).filter(|_| p.released != 0));
        heard
            .chain(leases)
            .chain(promises)
            .filter(|t| *t > now)
            .min()
    }

    fn heard_bits(&self, now: Instant) -> u64 {
        (0..self.voters.len())
            .filter(|v| self.heard(*v, now))
            .fold(0, |bits, v| bits | (1 << v))
    }

    /// Who this voter gives its vote to from now: the nodes it hears and that hear it, kept
    /// mutually connected (a clique), those it votes for already first, then those holding
    /// more groups, then the file's order; a node it reported released lately waits until
    /// its promise has passed. Returns the voters it reports released.
    fn choose_grants(&mut self, now: Instant) -> u64 {
        let me = self.me;
        let mutual = |a: usize, b: usize| -> bool {
            let hears = |x: usize, y: usize| {
                if x == me {
                    self.heard(y, now)
                } else {
                    self.peers[x].heard & (1 << y) != 0
                }
            };
            hears(a, b) && hears(b, a)
        };
        let mut candidates: Vec<usize> = (0..self.voters.len())
            .filter(|v| *v != me && self.voters[*v].node.is_some())
            .filter(|v| mutual(me, *v))
            .collect();
        let holding = |v: usize| self.peers[v].groups.iter().filter(|g| g.holds).count();
        candidates.sort_by_key(|v| (!self.peers[*v].granting, std::cmp::Reverse(holding(*v)), *v));
        let mut chosen: Vec<usize> = Vec::new();
        for v in candidates {
            if chosen.iter().all(|c| mutual(*c, v)) {
                chosen.push(v);
            }
        }
        let lease = self.lease;
        let mut released = 0;
        let quiet = now < self.quiet_until;
        for (v, peer) in self.peers.iter_mut().enumerate() {
            if v == me || quiet {
                continue;
            }
            let wanted = chosen.contains(&v);
            let promised_away = peer.released_reported.is_some_and(|t| now < t + lease);
            peer.granting = wanted && !promised_away;
            if wanted {
                continue;
            }
            // Not wanted: once its last vote has run out, report it released.
            if peer.last_granted.is_none_or(|t| now >= t + lease) {
                peer.released_reported = Some(now);
                released |= 1 << v;
            }
        }
        released
    }

    /// This voter's quorum (meaningful for a node).
    pub fn standing(&self, now: Instant) -> Standing {
        let needed = self.voters.len() / 2 + 1;
        let others = needed - 1;
        if others == 0 {
            return Standing::Always;
        }
        let mut leases: Vec<Instant> = self
            .peers
            .iter()
            .filter_map(|p| p.lease_until)
            .filter(|t| *t > now)
            .collect();
        if leases.len() < others {
            return Standing::Lost;
        }
        leases.sort_unstable_by(|a, b| b.cmp(a));
        Standing::Until(leases[others - 1])
    }

    /// The votes that count for this voter now, its own included.
    pub fn votes(&self, now: Instant) -> usize {
        1 + self
            .peers
            .iter()
            .filter(|p| p.lease_until.is_some_and(|t| t > now))
            .count()
    }

    /// True when more than half of the voters have released voter `x`: its votes have run
    /// out, so it holds no quorum group (it stopped them before).
    pub fn released_by_majority(&self, x: usize, now: Instant) -> bool {
        let needed = self.voters.len() / 2 + 1;
        let mine = now >= self.quiet_until
            && !self.peers[x].granting
            && self.peers[x]
                .last_granted
                .is_none_or(|t| now >= t + self.lease);
        let counted = self.lease_counted();
        let others = self
            .peers
            .iter()
            .enumerate()
            .filter(|(v, p)| {
                *v != x
                    && *v != self.me
                    && p.released & (1 << x) != 0
                    && p.anchor.is_some_and(|a| now < a + counted)
            })
            .count();
        usize::from(mine) + others >= needed
    }

    /// When this voter sent what voter `v` echoed last: `v` had heard everything this voter
    /// said until then.
    pub fn anchor_of(&self, v: usize) -> Option<Instant> {
        self.peers.get(v)?.anchor
    }

    /// This voter stops for good (a shutdown): its heartbeats say so from now on, and it
    /// sends a round at once.
    pub fn set_gone(&mut self, now: Instant) {
        self.gone = true;
        self.hurry(now);
    }

    /// True when voter `v`'s latest heartbeat said it stops for good, and it has not
    /// started again since (a new boot says otherwise).
    pub fn gone(&self, v: usize) -> bool {
        self.peers.get(v).is_some_and(|p| p.gone)
    }

    /// What voter `v` said of its groups last, heard lately or not.
    pub fn last_reports_of(&self, v: usize) -> &[GroupReport] {
        self.peers.get(v).map_or(&[], |p| p.groups.as_slice())
    }

    /// When voter `v`'s last anchored heartbeat arrived.
    pub fn last_heard(&self, v: usize) -> Option<Instant> {
        self.peers.get(v)?.anchored_at
    }

    /// What voter `v` said of its groups, while it is heard.
    pub fn reports_of(&self, v: usize, now: Instant) -> Option<&[GroupReport]> {
        (v != self.me && self.heard(v, now)).then(|| self.peers[v].groups.as_slice())
    }

    /// For status: per voter, (heard, this voter votes for it, its vote counts here until).
    pub fn view(&self, now: Instant) -> Vec<VoterView> {
        self.voters
            .iter()
            .enumerate()
            .map(|(v, voter)| {
                let peer = &self.peers[v];
                VoterView {
                    name: voter.name.clone(),
                    witness: voter.node.is_none(),
                    me: v == self.me,
                    heard: self.heard(v, now),
                    voting_for: v != self.me && peer.granting,
                    vote_counts_for: if v == self.me {
                        None
                    } else {
                        peer.lease_until
                            .filter(|t| *t > now)
                            .map(|t| t.duration_since(now))
                    },
                }
            })
            .collect()
    }
}

/// One voter as `vipd status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoterView {
    pub name: String,
    pub witness: bool,
    pub me: bool,
    pub heard: bool,
    /// This node gives it its vote.
    pub voting_for: bool,
    /// Its vote for this node counts for this much longer.
    pub vote_counts_for: Option<Duration>,
}

#[cfg(test)]
mod tests;
