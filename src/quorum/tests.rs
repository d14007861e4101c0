//! Voters exchanging real signed heartbeats over links that the test cuts, delays and drops,
//! with the lease argument checked at every millisecond.

use super::*;
use std::net::Ipv4Addr;

const SECRET: &[u8] = b"a test secret of 32 bytes, fixed";
const HEARTBEAT: Duration = Duration::from_millis(100);
const LEASE: Duration = Duration::from_millis(1000);

struct Net {
    now: Instant,
    voters: Vec<Membership>,
    /// up[a][b]: datagrams from a reach b.
    up: Vec<Vec<bool>>,
    in_flight: Vec<(Instant, usize, IpAddr, Vec<u8>)>,
    rng: u64,
    /// Delivery delay bound and drop rate (per mille).
    max_delay_ms: u64,
    drop_per_mille: u64,
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8))
}

impl Net {
    /// `nodes` vipd nodes and `witnesses` witnesses, all connected.
    fn new(nodes: usize, witnesses: usize, seed: u64) -> Net {
        let now = Instant::now();
        let list: Vec<Voter> = (0..nodes + witnesses)
            .map(|i| Voter {
                name: format!("v{i}"),
                address: address(i),
                node: (i < nodes).then_some(i),
            })
            .collect();
        let voters = (0..list.len())
            .map(|i| {
                Membership::new(
                    list.clone(),
                    i,
                    8405,
                    HEARTBEAT,
                    LEASE,
                    SECRET,
                    1000 + i as u64,
                    now + Duration::from_millis(7 * i as u64),
                )
            })
            .collect();
        let n = list.len();
        Net {
            now,
            voters,
            up: vec![vec![true; n]; n],
            in_flight: Vec::new(),
            rng: seed | 1,
            max_delay_ms: 2,
            drop_per_mille: 0,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn cut(&mut self, a: usize, b: usize) {
        self.up[a][b] = false;
        self.up[b][a] = false;
    }

    fn heal(&mut self, a: usize, b: usize) {
        self.up[a][b] = true;
        self.up[b][a] = true;
    }

    /// Advances by `ms` milliseconds, checking the invariant at each.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            let now = self.now;
            let mut due = Vec::new();
            self.in_flight.retain(|(at, to, from, bytes)| {
                if *at <= now {
                    due.push((*to, *from, bytes.clone()));
                    false
                } else {
                    true
                }
            });
            for (to, from, bytes) in due {
                let _ = self.voters[to].handle(now, from, &bytes);
            }
            for from in 0..self.voters.len() {
                for transmit in self.voters[from].poll_transmit(now, &[]) {
                    let to = (0..self.voters.len())
                        .find(|i| address(*i) == transmit.to.ip())
                        .unwrap();
                    let delay = self.random() % (self.max_delay_ms + 1);
                    let dropped = self.random() % 1000 < self.drop_per_mille;
                    if self.up[from][to] && !dropped {
                        self.in_flight.push((
                            now + Duration::from_millis(delay),
                            to,
                            address(from),
                            transmit.bytes,
                        ));
                    }
                }
            }
            self.check();
        }
    }

    /// The lease argument: whenever a node believes another released by a majority, that
    /// other holds no quorum.
    fn check(&self) {
        let nodes: Vec<usize> = (0..self.voters.len())
            .filter(|v| self.voters[0].voters()[*v].node.is_some())
            .collect();
        for &x in &nodes {
            for &y in &nodes {
                if x != y && self.voters[x].released_by_majority(y, self.now) {
                    assert!(
                        !self.voters[y]
                            .standing(self.now)
                            .holds_for(self.now, Duration::ZERO),
                        "v{x} thinks v{y} released while v{y} holds quorum ({:?})",
                        self.voters[y].standing(self.now)
                    );
                }
            }
        }
    }

    fn quorate(&self, v: usize) -> bool {
        self.voters[v]
            .standing(self.now)
            .holds_for(self.now, Duration::ZERO)
    }

    fn released(&self, by: usize, x: usize) -> bool {
        self.voters[by].released_by_majority(x, self.now)
    }
}

#[test]
fn connected_nodes_hold_quorum_and_release_nobody() {
    let mut net = Net::new(2, 1, 1);
    net.run(1500);
    assert!(net.quorate(0) && net.quorate(1));
    assert!(!net.released(0, 1) && !net.released(1, 0));
    assert_eq!(net.voters[0].votes(net.now), 3);
}

#[test]
fn a_node_cut_off_loses_quorum_within_a_lease_and_only_then_is_released() {
    let mut net = Net::new(2, 1, 2);
    net.run(1500);
    net.cut(0, 1);
    net.cut(0, 2);
    let cut_at = net.now;
    let mut lost = None;
    let mut released = None;
    for _ in 0..4000 {
        net.run(1);
        if lost.is_none() && !net.quorate(0) {
            lost = Some(net.now - cut_at);
        }
        if released.is_none() && net.released(1, 0) {
            released = Some(net.now - cut_at);
        }
    }
    let (lost, released) = (lost.unwrap(), released.unwrap());
    assert!(lost <= LEASE + HEARTBEAT, "lost after {lost:?}");
    assert!(
        released >= lost,
        "released {released:?} before lost {lost:?}"
    );
    assert!(
        released <= LEASE + 5 * HEARTBEAT,
        "released only after {released:?}"
    );
    assert!(net.quorate(1), "the majority side keeps quorum");
}

#[test]
fn a_witness_that_hears_both_halves_votes_for_one() {
    let mut net = Net::new(2, 1, 3);
    net.run(1500);
    net.cut(0, 1);
    net.run(3000);
    assert!(
        net.quorate(0) != net.quorate(1),
        "exactly one node keeps quorum: {} {}",
        net.quorate(0),
        net.quorate(1)
    );
}

#[test]
fn two_nodes_without_a_witness_both_lose_quorum_when_cut() {
    let mut net = Net::new(2, 0, 4);
    net.run(1500);
    assert!(net.quorate(0) && net.quorate(1));
    net.cut(0, 1);
    net.run(2000);
    assert!(!net.quorate(0) && !net.quorate(1));
    assert!(!net.released(0, 1) && !net.released(1, 0));
}

#[test]
fn a_healed_partition_restores_quorum_after_the_promise() {
    let mut net = Net::new(3, 0, 5);
    net.run(1500);
    net.cut(0, 1);
    net.cut(0, 2);
    net.run(3000);
    assert!(!net.quorate(0));
    net.heal(0, 1);
    net.heal(0, 2);
    net.run(3 * LEASE.as_millis() as u64);
    assert!(net.quorate(0) && net.quorate(1) && net.quorate(2));
    assert!(!net.released(1, 0));
}

#[test]
fn replayed_and_forged_heartbeats_change_nothing() {
    let mut net = Net::new(2, 1, 6);
    net.run(1500);
    // Capture a heartbeat from v1 to v0, cut v1 off, then replay it.
    let now = net.now;
    let captured = net.voters[1].poll_transmit(now + HEARTBEAT, &[]);
    let to_v0 = captured
        .iter()
        .find(|t| t.to.ip() == address(0))
        .unwrap()
        .bytes
        .clone();
    net.cut(1, 0);
    net.cut(1, 2);
    net.run(3000);
    assert!(!net.voters[0].heard(1, net.now));
    // Never delivered: it teaches v1's counter, nothing else (it echoes nothing recent).
    assert_eq!(net.voters[0].handle(net.now, address(1), &to_v0), Ok(false));
    let before = net.voters[0].counters();
    assert!(net.voters[0].handle(net.now, address(1), &to_v0).is_err());
    let mut forged = to_v0.clone();
    forged[60] ^= 1;
    assert!(net.voters[0].handle(net.now, address(1), &forged).is_err());
    assert!(net.voters[0].handle(net.now, address(2), &to_v0).is_err());
    let after = net.voters[0].counters();
    assert_eq!(after.replayed, before.replayed + 1);
    assert_eq!(after.bad_signature, before.bad_signature + 1);
    assert_eq!(after.misdirected, before.misdirected + 1);
    assert!(!net.voters[0].heard(1, net.now));
}

#[test]
fn random_partitions_delays_and_losses_never_break_the_lease_argument() {
    for seed in 1..=40u64 {
        let (nodes, witnesses) = if seed.is_multiple_of(2) {
            (2, 1)
        } else {
            (3, 1)
        };
        let mut net = Net::new(nodes, witnesses, seed * 7919);
        net.max_delay_ms = 30;
        net.drop_per_mille = 50;
        let n = nodes + witnesses;
        for _ in 0..40 {
            let a = (net.random() % n as u64) as usize;
            let b = (net.random() % n as u64) as usize;
            if a != b {
                if net.random().is_multiple_of(2) {
                    net.cut(a, b);
                } else {
                    net.heal(a, b);
                }
            }
            let ms = 50 + net.random() % 700;
            net.run(ms);
        }
        for a in 0..n {
            for b in 0..n {
                net.up[a][b] = true;
            }
        }
        net.drop_per_mille = 0;
        net.max_delay_ms = 2;
        net.run(4 * LEASE.as_millis() as u64);
        for v in 0..nodes {
            assert!(
                net.quorate(v),
                "seed {seed}: v{v} without quorum after healing"
            );
        }
    }
}
