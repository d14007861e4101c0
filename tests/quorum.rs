//! Quorum groups in simulated clusters: real nodes and witnesses exchanging signed
//! heartbeats and adverts, a simulated service per group (running from the start of its
//! start commands to the end of its stop commands), and the invariant checked at every
//! event: never two nodes running one group's service, never two holding its addresses.

mod support;

use std::time::Duration;
use support::sim::Sim;
use vipd::election::State;
use vipd::wire::Family;

const HEARTBEAT: Duration = Duration::from_millis(100);
const LEASE: Duration = Duration::from_millis(1000);

/// Two nodes and a witness; one quorum group with a resource (the disk), one plain group.
fn two_and_a_witness() -> String {
    r#"
[cluster]
name = "seed"
zone = "cluster.example."

[quorum]
key_file = "/etc/vipd/cluster.key"
heartbeat = "100ms"
lease = "1s"

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"

[[node]]
name = "beta"
interface = "eth0"
address = "192.0.2.12"

[[witness]]
name = "tiebreak"
address = "192.0.2.30"

[[group]]
name = "disk"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { alpha = 200, beta = 100 }
advert_interval = "100ms"

[[group.resource]]
name = "catalog"
start = "true"
stop = "true"
timeout = "500ms"

[[group]]
name = "plain"
vrid = 52
addresses = ["192.0.2.101/24"]
priority = { alpha = 200, beta = 100 }
advert_interval = "100ms"
"#
    .to_string()
}

fn started(toml: &str) -> Sim {
    let mut sim = Sim::new(toml);
    sim.delay = Duration::from_micros(200);
    sim.start_all();
    sim.run_for(LEASE * 3);
    sim
}

/// Checks the invariant recorded at every event so far.
fn never_doubled(sim: &Sim) {
    assert!(
        sim.double_service.is_empty(),
        "two owners at once: {:?}",
        &sim.double_service[..sim.double_service.len().min(5)]
    );
}

fn runs_service(sim: &Sim, node: usize) -> bool {
    sim.services.iter().any(|(n, g)| *n == node && g == "disk")
}

#[test]
fn a_quorum_group_starts_on_the_preferred_node_after_the_first_lease() {
    let sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    assert_eq!(sim.masters(disk, Family::V4), vec![alpha]);
    assert!(runs_service(&sim, alpha) && !runs_service(&sim, beta));
    // The plain group does not wait for quorum: alpha took it at once.
    let plain = sim.group("plain");
    assert!(sim.became_master_at(alpha, plain, Family::V4).unwrap() < LEASE);
    // The quorum group waited for votes: no node restarts into a vote it gave before.
    assert!(sim.became_master_at(alpha, disk, Family::V4).unwrap() >= LEASE);
    let status = sim.status(alpha);
    let quorum = status.quorum.as_ref().expect("quorum status");
    assert!(quorum.held);
    assert_eq!((quorum.votes, quorum.needed), (3, 2));
    assert_eq!(status.groups[0].quorum, "held");
    let metrics = status.prometheus();
    for line in [
        "vipd_quorum_held{node=\"alpha\"} 1",
        "vipd_quorum_votes{node=\"alpha\"} 3",
        "vipd_quorum_voter_heard{node=\"alpha\",voter=\"tiebreak\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(
        status.table().contains("quorum held: 3 votes, 2 needed"),
        "{}",
        status.table()
    );
    never_doubled(&sim);
}

#[test]
fn a_crashed_owner_is_replaced_once_its_votes_have_run_out() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let crash = sim.elapsed();
    sim.kill(alpha);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    assert!(runs_service(&sim, beta));
    let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - crash;
    // Released by beta and the witness: a lease after the last vote, which went out up to
    // four heartbeats after the crash.
    assert!(took >= LEASE, "took over after {took:?}: too early");
    assert!(took <= LEASE + 6 * HEARTBEAT, "took over after {took:?}");
    // The plain group moved at VRRP speed.
    let plain = sim.group("plain");
    let plain_took = sim.became_master_at(beta, plain, Family::V4).unwrap() - crash;
    assert!(plain_took < Duration::from_millis(400), "{plain_took:?}");
    never_doubled(&sim);
}

#[test]
fn a_graceful_stop_hands_the_group_over_without_waiting_for_the_lease() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let stop = sim.elapsed();
    // The shell runs the stop commands and reports before it exits: let the node see that.
    sim.input(alpha, |n, now| n.shutdown(now));
    sim.run_for(sim.resource_delay * 3);
    sim.kill(alpha);
    sim.run_for(LEASE);
    let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - stop;
    assert!(took < Duration::from_millis(200), "took {took:?}");
    assert!(runs_service(&sim, beta));
    never_doubled(&sim);
}

#[test]
fn a_stopping_node_says_leaving_before_its_priority_zero_goes_out() {
    let mut sim = started(&two_and_a_witness());
    let alpha = sim.node("alpha");
    let mut order = Vec::new();
    sim.input(alpha, |n, now| {
        n.shutdown(now);
        while let Some(effect) = n.poll_effect() {
            match effect {
                vipd::node::Effect::Heartbeat { .. } => order.push("heartbeat"),
                vipd::node::Effect::Send { priority: 0, .. } => order.push("priority 0"),
                _ => {}
            }
        }
    });
    // The other order has the peers drop the advert as forged (they know of no leaving),
    // and the next owner waits for the next heartbeat: 300 ms instead of 10 in the lab.
    let first_advert = order.iter().position(|e| *e == "priority 0");
    let first_heartbeat = order.iter().position(|e| *e == "heartbeat");
    assert!(
        first_advert.is_some() && first_heartbeat < first_advert,
        "{order:?}"
    );
}

#[test]
fn a_handover_of_a_quorum_group_breaks_before_it_makes() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let at = sim.elapsed();
    let mut target = None;
    sim.input(alpha, |n, now| {
        target = Some(n.handover(now, "disk", None, &|_| true));
    });
    assert_eq!(target.unwrap().unwrap(), "beta");
    sim.run_for(LEASE);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - at;
    assert!(took < Duration::from_millis(200), "took {took:?}");
    assert!(runs_service(&sim, beta) && !runs_service(&sim, alpha));
    never_doubled(&sim);
}

#[test]
fn an_owner_cut_off_from_the_others_stops_before_they_start() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let cut = sim.elapsed();
    // alpha alone on one side (the clients could still reach it).
    sim.partition(&[alpha]);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    assert!(runs_service(&sim, beta) && !runs_service(&sim, alpha));
    let state = sim.state(alpha, disk, Family::V4);
    assert_eq!(state, Some(State::Fault), "alpha without quorum");
    // The plain group has two masters in a partition: VRRP's answer, unchanged.
    let plain = sim.group("plain");
    assert_eq!(sim.masters(plain, Family::V4).len(), 2);
    let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - cut;
    assert!(took <= LEASE + 6 * HEARTBEAT, "{took:?}");
    // Healed: alpha regains quorum and preempts, break before make.
    sim.heal();
    sim.run_for(LEASE * 4);
    assert_eq!(sim.masters(disk, Family::V4), vec![alpha]);
    assert!(runs_service(&sim, alpha) && !runs_service(&sim, beta));
    never_doubled(&sim);
}

#[test]
fn a_backup_cut_off_changes_nothing_for_the_owner() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let since = sim.became_master_at(alpha, disk, Family::V4);
    sim.partition(&[beta]);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![alpha]);
    assert_eq!(sim.became_master_at(alpha, disk, Family::V4), since);
    assert_eq!(sim.state(beta, disk, Family::V4), Some(State::Fault));
    sim.heal();
    sim.run_for(LEASE * 3);
    assert_eq!(sim.state(beta, disk, Family::V4), Some(State::Backup));
    assert_eq!(sim.became_master_at(alpha, disk, Family::V4), since);
    never_doubled(&sim);
}

#[test]
fn nodes_that_no_longer_hear_each_other_but_hear_the_witness_get_one_vote_between_them() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    sim.cut(alpha, beta);
    sim.run_for(LEASE * 4);
    let held: Vec<bool> = [alpha, beta]
        .iter()
        .map(|n| sim.status(*n).quorum.unwrap().held)
        .collect();
    assert_eq!(held.iter().filter(|h| **h).count(), 1, "{held:?}");
    assert_eq!(sim.masters(disk, Family::V4).len(), 1);
    never_doubled(&sim);
}

#[test]
fn the_witness_lost_then_a_node_lost_stops_the_group_rather_than_risk_it() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let witness = sim.witness("tiebreak");
    sim.kill_witness(witness);
    sim.run_for(LEASE * 3);
    // Two of three votes: still quorum, nothing moves.
    assert_eq!(sim.masters(disk, Family::V4), vec![alpha]);
    sim.kill(alpha);
    sim.run_for(LEASE * 4);
    // beta alone has one vote of three: it must not start the disk.
    assert!(sim.masters(disk, Family::V4).is_empty());
    assert!(!runs_service(&sim, beta));
    // The witness comes back: beta has a majority again and takes the group.
    sim.start_witness(witness);
    sim.run_for(LEASE * 4);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    never_doubled(&sim);
}

#[test]
fn two_nodes_without_a_witness_stop_quorum_groups_when_one_is_lost() {
    let toml = two_and_a_witness().replace(
        "[[witness]]\nname = \"tiebreak\"\naddress = \"192.0.2.30\"\n",
        "",
    );
    let mut sim = started(&toml);
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    assert_eq!(sim.masters(disk, Family::V4), vec![alpha]);
    sim.kill(alpha);
    sim.run_for(LEASE * 4);
    assert!(sim.masters(disk, Family::V4).is_empty());
    assert!(!runs_service(&sim, beta));
    // The plain group moved all the same.
    assert_eq!(sim.masters(sim.group("plain"), Family::V4), vec![beta]);
    never_doubled(&sim);
}

/// A forged advert in the name of a member, as any host on the LAN can send: VRRP itself
/// has no authentication, the heartbeats have.
fn forged_advert(from: &str, vrid: u8, priority: u8) -> Vec<u8> {
    use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};
    let src: std::net::IpAddr = from.parse().unwrap();
    let dst = vipd::wire::ip::multicast_group(Family::V4);
    let repr = Repr {
        version: Version::V3,
        vrid,
        priority,
        interval_cs: 10,
        addresses: vec!["192.0.2.100".parse().unwrap()],
        auth: V2Auth::default(),
    };
    let mut message = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut message,
        IpEnds { src, dst },
        Ipv4ChecksumForm::PseudoHeader,
    )
    .unwrap();
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (src, dst) else {
        unreachable!()
    };
    let mut bytes = vipd::wire::ipv4::emit_header(s, d, 255, message.len()).to_vec();
    bytes.extend_from_slice(&message);
    bytes
}

#[test]
fn forged_member_adverts_that_contradict_the_heartbeats_move_nothing() {
    let mut sim = started(&two_and_a_witness());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    for (group, vrid) in [("disk", 51), ("plain", 52)] {
        let g = sim.group(group);
        // "alpha is leaving" while alpha is master and says nothing of the kind.
        let leaving = forged_advert("192.0.2.11", vrid, 0);
        sim.inject(beta, vipd::wire::ip::Datagram::V4(&leaving));
        // "beta outranks alpha" while beta says it runs at 100.
        let higher = forged_advert("192.0.2.12", vrid, 254);
        sim.inject(alpha, vipd::wire::ip::Datagram::V4(&higher));
        sim.run_for(LEASE);
        assert_eq!(sim.masters(g, Family::V4), vec![alpha], "{group}");
    }
    assert_eq!(sim.status(beta).dropped.get("forged"), Some(&2));
    assert_eq!(sim.status(alpha).dropped.get("forged"), Some(&2));
    never_doubled(&sim);
}

#[test]
fn random_partitions_crashes_and_restarts_never_make_two_owners() {
    for seed in 1..=16u64 {
        // Half the seeds with fencing, and then SIGSTOP/SIGCONT among the faults too.
        let fencing = seed.is_multiple_of(2);
        let toml = if fencing {
            with_fencing()
        } else {
            two_and_a_witness()
        };
        let mut sim = started(&toml);
        sim.rng = support::sim::Rng::new(seed);
        let endpoints = 3;
        for _ in 0..25 {
            match sim.rng.below(if fencing { 7 } else { 6 }) {
                6 => {
                    let n = sim.rng.below(2) as usize;
                    if !sim.frozen.remove(&n) {
                        sim.frozen.insert(n);
                    }
                }
                0 => {
                    let side: Vec<usize> = (0..endpoints).filter(|_| sim.rng.chance(500)).collect();
                    sim.partition(&side);
                }
                1 => {
                    let a = sim.rng.below(endpoints as u64) as usize;
                    let b = sim.rng.below(endpoints as u64) as usize;
                    if a != b {
                        sim.cut(a, b);
                    }
                }
                2 => sim.heal(),
                3 => {
                    let n = sim.rng.below(2) as usize;
                    if sim.nodes[n].running() {
                        sim.kill(n);
                    } else {
                        sim.start_node(n);
                    }
                }
                4 => {
                    let n = sim.rng.below(2) as usize;
                    if sim.nodes[n].running() {
                        sim.input(n, |node, now| node.shutdown(now));
                        sim.run_for(sim.resource_delay * 3);
                        sim.kill(n);
                    }
                }
                _ => sim.loss_per_mille = sim.rng.below(300),
            }
            let span = 50 + sim.rng.below(2000);
            sim.run_for(Duration::from_millis(span));
        }
        assert!(
            sim.double_service.is_empty(),
            "seed {seed}: two owners at {:?}",
            &sim.double_service[..sim.double_service.len().min(5)]
        );
        // After the faults: every node up, everything healed; one owner within bounds.
        sim.heal();
        sim.frozen.clear();
        for n in 0..2 {
            if !sim.nodes[n].running() {
                sim.start_node(n);
            }
        }
        sim.run_for(LEASE * 5);
        let disk = sim.group("disk");
        assert_eq!(sim.masters(disk, Family::V4).len(), 1, "seed {seed}");
        never_doubled(&sim);
    }
}

/// The seed's cluster with a fence command for each node.
fn with_fencing() -> String {
    two_and_a_witness()
        .replace(
            "address = \"192.0.2.11\"\n",
            "address = \"192.0.2.11\"\nfence = \"ipmitool -H alpha-bmc chassis power off\"\n",
        )
        .replace(
            "address = \"192.0.2.12\"\n",
            "address = \"192.0.2.12\"\nfence = \"ipmitool -H beta-bmc chassis power off\"\n",
        )
}

#[test]
fn with_fencing_a_crashed_owner_is_fenced_and_replaced_before_its_lease_ends() {
    let mut sim = started(&with_fencing());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    let crash = sim.elapsed();
    sim.kill(alpha);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    assert_eq!(sim.fenced.len(), 1, "{:?}", sim.fenced);
    assert_eq!((sim.fenced[0].1, sim.fenced[0].2.as_str()), (beta, "alpha"));
    let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - crash;
    assert!(took < LEASE, "fenced and took over after {took:?}");
    let status = sim.status(beta);
    let fences = &status.quorum.as_ref().unwrap().fences;
    assert_eq!((fences[0].runs, fences[0].failures), (1, 0));
    never_doubled(&sim);
}

#[test]
fn a_frozen_owner_is_fenced_before_its_service_starts_elsewhere() {
    let mut sim = started(&with_fencing());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    // SIGSTOP: vipd stops, its service runs on, and nobody stops it from inside.
    sim.frozen.insert(alpha);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    assert!(!sim.nodes[alpha].running(), "the fence powered alpha off");
    assert!(runs_service(&sim, beta));
    never_doubled(&sim);
}

#[test]
fn without_fencing_a_frozen_owner_keeps_its_service_and_no_lease_can_stop_it() {
    // The documented limit of quorum without fencing: a process that cannot run cannot
    // stop its services when its votes run out.
    let mut sim = started(&two_and_a_witness());
    let alpha = sim.node("alpha");
    sim.frozen.insert(alpha);
    sim.run_for(LEASE * 3);
    assert!(
        !sim.double_service.is_empty(),
        "a frozen owner's service ran beside the new owner's"
    );
}

#[test]
fn a_failing_fence_leaves_the_group_without_owner_and_is_retried() {
    let mut sim = started(&with_fencing());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    sim.fence_works = false;
    sim.kill(alpha);
    sim.run_for(Duration::from_secs(7));
    assert!(sim.masters(disk, Family::V4).is_empty());
    assert!(!runs_service(&sim, beta));
    let status = sim.status(beta);
    let fence = &status.quorum.as_ref().unwrap().fences[0];
    assert_eq!((fence.runs, fence.failures), (2, 2), "{fence:?}");
    assert!(fence.state.contains("BMC does not answer"), "{fence:?}");
    assert!(
        status.table().contains("fence of alpha: failed"),
        "{}",
        status.table()
    );
    // The BMC answers again: the next try fences alpha and beta takes the group.
    sim.fence_works = true;
    sim.run_for(Duration::from_secs(6));
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    never_doubled(&sim);
}

#[test]
fn a_graceful_stop_needs_no_fencing() {
    let mut sim = started(&with_fencing());
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    sim.input(alpha, |n, now| n.shutdown(now));
    sim.run_for(sim.resource_delay * 3);
    sim.kill(alpha);
    sim.run_for(LEASE);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    assert!(sim.fenced.is_empty(), "{:?}", sim.fenced);
    never_doubled(&sim);
}

#[test]
fn a_stopping_node_that_no_longer_listens_is_let_go_of_at_once() {
    // SIGTERM: the daemon leaves its loop, stops the resources and says its last word; it
    // answers no wish any more. Its "gone" heartbeat needs no acknowledgement.
    for fencing in [false, true] {
        let mut sim = started(&if fencing {
            with_fencing()
        } else {
            two_and_a_witness()
        });
        let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
        let disk = sim.group("disk");
        let stop = sim.elapsed();
        sim.deaf.insert(alpha);
        sim.input(alpha, |n, now| n.shutdown(now));
        sim.run_for(sim.resource_delay * 3);
        sim.kill(alpha);
        sim.run_for(LEASE);
        let took = sim.became_master_at(beta, disk, Family::V4).unwrap() - stop;
        assert!(took < Duration::from_millis(200), "took {took:?}");
        assert!(
            sim.fenced.is_empty(),
            "a graceful stop was fenced: {:?}",
            sim.fenced
        );
        never_doubled(&sim);
    }
}

/// Three nodes and a witness, each node with a fence command.
fn three_with_fencing() -> String {
    with_fencing()
        .replace(
            "[[witness]]",
            "[[node]]\nname = \"gamma\"\ninterface = \"eth0\"\naddress = \"192.0.2.13\"\nfence = \"ipmitool -H gamma-bmc chassis power off\"\n\n[[witness]]",
        )
        .replace(
            "priority = { alpha = 200, beta = 100 }",
            "priority = { alpha = 200, beta = 150, gamma = 100 }",
        )
}

#[test]
fn only_the_next_owner_fences_and_a_short_stall_is_not_fenced() {
    let toml = three_with_fencing().replace(
        "lease = \"1s\"\n",
        "lease = \"1s\"\nfence_after = \"800ms\"\n",
    );
    let mut sim = started(&toml);
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let disk = sim.group("disk");
    // A stall shorter than fence_after: nobody powers alpha off (beta waits to take the
    // group meanwhile: alpha's adverts stopped).
    sim.frozen.insert(alpha);
    sim.run_for(Duration::from_millis(600));
    sim.frozen.remove(&alpha);
    sim.run_for(LEASE * 2);
    assert!(sim.fenced.is_empty(), "{:?}", sim.fenced);
    assert!(sim.nodes[alpha].running());
    // A crash: only beta, the next in line, fences alpha.
    sim.kill(alpha);
    sim.run_for(LEASE * 3);
    assert_eq!(sim.masters(disk, Family::V4), vec![beta]);
    let fencers: Vec<usize> = sim.fenced.iter().map(|(_, by, _)| *by).collect();
    assert_eq!(fencers, vec![beta], "{:?}", sim.fenced);
    never_doubled(&sim);
}
