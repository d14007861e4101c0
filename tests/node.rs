//! The node layer's own rules, without root: whole nodes (`vipd::node::Node`) on a simulated
//! LAN, fed the bytes their peers emit and datagrams forged here. What used to be reachable
//! only through real sockets (VRID and version filters, the IP-level checks, address lists,
//! ownership in the zone, resource give-up, link and address events) is plain `cargo test`.

mod support;

use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;
use support::sim::{Sim, What, link_local};
use vipd::dns::zone::{Lookup, Zone};
use vipd::election::{Reason, State};
use vipd::lab::cluster_file;
use vipd::node::{Effect, ResourceOutcome, ResourceReport};
use vipd::wire::Family::{V4, V6};
use vipd::wire::ip::{Datagram, MULTICAST_V6, multicast_group};
use vipd::wire::ipv4;
use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};

const MS: Duration = Duration::from_millis(1);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Two nodes, one dual-stack group at 100 ms (alpha 150, beta 100); extra lines go into the
/// group.
fn pair(group_extra: &str) -> Sim {
    Sim::new(&cluster_file(
        2,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\n\
             addresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\nnames = [\"nbu-master\"]\n\
             priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
        ),
    ))
}

/// An advert's bytes as a peer at `src` would send them to the multicast group.
fn advert(version: Version, vrid: u8, priority: u8, addresses: &[&str], src: IpAddr) -> Vec<u8> {
    let addresses: Vec<IpAddr> = addresses.iter().map(|a| ip(a)).collect();
    let repr = Repr {
        version,
        vrid,
        priority,
        interval_cs: if version == Version::V2 { 100 } else { 10 },
        addresses,
        auth: V2Auth::default(),
    };
    let family = vipd::wire::Family::of(&src);
    let ends = IpEnds {
        src,
        dst: multicast_group(family),
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    message
}

/// The same advert inside an IPv4 header with `ttl`, as a raw IPv4 socket delivers it.
fn ipv4_packet(message: &[u8], src: &str, ttl: u8) -> Vec<u8> {
    let src = Ipv4Addr::from_str(src).unwrap();
    let mut packet =
        ipv4::emit_header(src, Ipv4Addr::new(224, 0, 0, 18), ttl, message.len()).to_vec();
    packet.extend_from_slice(message);
    packet
}

fn txt_owner(zone: &Zone) -> String {
    let name = LowerName::from(Name::from_ascii("nbu-master.cluster.example.").unwrap());
    let Lookup::Answer(records) = zone.lookup(&name, RecordType::TXT) else {
        panic!("no TXT at the virtual name");
    };
    records
        .iter()
        .find_map(|r| match &r.data {
            RData::TXT(txt) => txt
                .txt_data
                .iter()
                .filter_map(|p| std::str::from_utf8(p).ok())
                .find_map(|p| p.strip_prefix("owner=").map(str::to_string)),
            _ => None,
        })
        .expect("owner= in the TXT record")
}

/// An elected pair: alpha master, beta backup.
fn elected(group_extra: &str) -> (Sim, usize, usize) {
    let mut sim = pair(group_extra);
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.state(beta, 0, V4), Some(State::Backup));
    (sim, alpha, beta)
}

fn transitions_to(sim: &Sim, node: usize, to: State) -> usize {
    sim.log
        .iter()
        .filter(|l| l.node == node && matches!(l.what, What::Transition(t) if t.to == to))
        .count()
}

#[test]
fn an_advert_for_an_unknown_vrid_is_dropped_and_counted() {
    let (mut sim, alpha, beta) = elected("");
    let before = transitions_to(&sim, beta, State::Master);
    let forged = advert(Version::V3, 52, 254, &["192.0.2.100"], ip("192.0.2.11"));
    sim.inject(beta, Datagram::V4(&ipv4_packet(&forged, "192.0.2.11", 255)));
    assert_eq!(sim.running(beta).discards().get("unknown_vrid"), 1);
    assert_eq!(sim.status(beta).dropped.get("unknown_vrid"), Some(&1));
    assert_eq!(transitions_to(&sim, beta, State::Master), before);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn an_advert_of_another_vrrp_version_is_dropped_and_counted() {
    let (mut sim, alpha, beta) = elected("");
    // Version 2 from the master's own address with priority 0 would make beta take over.
    let v2 = advert(Version::V2, 51, 0, &["192.0.2.100"], ip("192.0.2.11"));
    sim.inject(beta, Datagram::V4(&ipv4_packet(&v2, "192.0.2.11", 255)));
    assert_eq!(sim.running(beta).discards().get("version_mismatch"), 1);
    sim.run_for(10 * MS);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn ttl_and_hop_limit_other_than_255_are_dropped_in_both_families() {
    let (mut sim, alpha, beta) = elected("");
    let v4 = advert(Version::V3, 51, 0, &["192.0.2.100"], ip("192.0.2.11"));
    sim.inject(beta, Datagram::V4(&ipv4_packet(&v4, "192.0.2.11", 254)));
    let alpha_ll = link_local(alpha);
    let v6 = advert(Version::V3, 51, 0, &["2001:db8::100"], alpha_ll);
    let IpAddr::V6(src) = alpha_ll else {
        unreachable!()
    };
    sim.inject(
        beta,
        Datagram::V6 {
            src,
            dst: MULTICAST_V6,
            hop_limit: 1,
            message: &v6,
        },
    );
    assert_eq!(sim.running(beta).discards().get("bad_ttl"), 2);
    sim.run_for(10 * MS);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.masters(0, V6), vec![alpha]);
}

#[test]
fn garbage_is_dropped_by_its_wire_reason() {
    let (mut sim, alpha, beta) = elected("");
    let mut bad_checksum = advert(Version::V3, 51, 254, &["192.0.2.100"], ip("192.0.2.12"));
    bad_checksum[7] ^= 0xff;
    sim.inject(
        beta,
        Datagram::V4(&ipv4_packet(&bad_checksum, "192.0.2.12", 255)),
    );
    sim.inject(beta, Datagram::V4(&[0x45, 0, 0]));
    let node = sim.running(beta);
    assert_eq!(node.discards().get("bad_checksum"), 1);
    assert_eq!(node.discards().get("truncated"), 1);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn a_stranger_is_dropped_as_not_a_member_and_moves_nothing() {
    let (mut sim, alpha, beta) = elected("");
    let forged = advert(Version::V3, 51, 254, &["192.0.2.100"], ip("192.0.2.99"));
    for _ in 0..3 {
        sim.inject(
            alpha,
            Datagram::V4(&ipv4_packet(&forged, "192.0.2.99", 255)),
        );
        sim.inject(beta, Datagram::V4(&ipv4_packet(&forged, "192.0.2.99", 255)));
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.running(alpha).discards().get("not_member"), 3);
    assert_eq!(sim.running(beta).discards().get("not_member"), 3);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.holders(0, V4), vec![alpha]);
}

#[test]
fn an_advert_listing_other_addresses_is_counted_as_an_anomaly_and_still_acted_on() {
    let (mut sim, alpha, beta) = elected("");
    // The member alpha (as far as the bytes go) says priority 0 with a different list:
    // beta follows alpha and is next in line, so it takes over at once.
    let odd = advert(Version::V3, 51, 0, &["192.0.2.200"], ip("192.0.2.11"));
    sim.inject(beta, Datagram::V4(&ipv4_packet(&odd, "192.0.2.11", 255)));
    let status = sim.status(beta);
    assert_eq!(status.anomalies.get("address_list_mismatch"), Some(&1));
    assert!(status.dropped.is_empty(), "{:?}", status.dropped);
    assert_eq!(sim.state(beta, 0, V4), Some(State::Master));
    let _ = alpha;
}

#[test]
fn the_zone_names_the_owner_and_its_serial_moves_with_every_change() {
    let (mut sim, alpha, beta) = elected("");
    let published = |sim: &Sim, node: usize| -> Vec<Zone> {
        sim.nodes[node]
            .effects
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::PublishZone(zone) => Some((**zone).clone()),
                _ => None,
            })
            .collect()
    };
    let beta_zone = sim.running(beta).zone();
    assert_eq!(txt_owner(&beta_zone), "alpha");
    assert_eq!(txt_owner(&sim.running(alpha).zone()), "alpha");
    let serial = beta_zone.serial();
    sim.kill(alpha);
    sim.run_for(Duration::from_secs(1));
    let zones = published(&sim, beta);
    let last = zones.last().expect("beta published a zone");
    assert_eq!(txt_owner(last), "beta");
    assert!(last.serial() > serial, "{} > {serial}", last.serial());
    // Every published zone has a higher serial than the one before it.
    assert!(zones.windows(2).all(|w| w[1].serial() > w[0].serial()));
}

const RESOURCE: &str =
    "quorum = false\n[[group.resource]]\nname = \"service\"\nstart = \"true\"\nstop = \"true\"\n";

#[test]
fn resources_start_after_the_claim_and_a_failure_gives_the_group_to_the_next_node() {
    let (mut sim, alpha, beta) = elected(RESOURCE);
    // alpha's resources were asked to start once, after its claim, for its mastership.
    let starts: Vec<u64> = sim.nodes[alpha]
        .effects
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::StartResources { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 1);
    let generation = starts[0];
    // A report of an older mastership is stale: nothing happens.
    sim.input(alpha, |node, now| {
        node.handle_resources(
            now,
            ResourceReport {
                group: "g".into(),
                generation: generation - 1,
                outcome: ResourceOutcome::CheckFailed("stale".into()),
            },
        )
    });
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    sim.input(alpha, |node, now| {
        node.handle_resources(
            now,
            ResourceReport {
                group: "g".into(),
                generation,
                outcome: ResourceOutcome::CheckFailed("disk gone".into()),
            },
        )
    });
    let reason = sim.log.iter().rev().find_map(|l| match l.what {
        What::Transition(t) if l.node == alpha && t.to == State::Fault => Some(t.reason),
        _ => None,
    });
    assert_eq!(reason, Some(Reason::ResourceFailed));
    assert!(
        sim.nodes[alpha]
            .effects
            .iter()
            .any(|(_, e)| matches!(e, Effect::StopResources { group, .. } if &**group == "g"))
    );
    let status = sim.status(alpha);
    assert_eq!(status.groups[0].resources, "failed: disk gone");
    // The priority 0 reaches beta at once: it takes over without a master-down wait.
    sim.run_for(MS);
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(sim.holders(0, V4), vec![beta]);
    // After its retry wait alpha comes back as backup and does not preempt.
    sim.run_for(vipd::election::RETRY_AFTER_CLAIM_FAILURE + Duration::from_secs(1));
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Backup));
    assert_eq!(sim.masters(0, V4), vec![beta]);
}

#[test]
fn a_failed_claim_gives_the_group_up_and_retries_on_its_own_timer() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.failing_claims.insert(alpha);
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    // alpha became master, could not add the addresses, said priority 0: beta holds them.
    assert_eq!(sim.holders(0, V4), vec![beta]);
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Fault));
    let retry_at = sim
        .running(alpha)
        .election(0)
        .unwrap()
        .instance(V4)
        .unwrap()
        .timer(vipd::election::Timer::FaultRetry);
    assert!(retry_at.is_some(), "the fault retry runs on its own timer");
    sim.failing_claims.clear();
    sim.run_for(vipd::election::RETRY_AFTER_CLAIM_FAILURE);
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Backup));
    assert_eq!(sim.holders(0, V4), vec![beta]);
}

#[test]
fn link_down_releases_and_link_up_comes_back_through_backup() {
    let (mut sim, alpha, beta) = elected("");
    sim.set_link(alpha, false);
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Fault));
    assert_eq!(sim.state(alpha, 0, V6), Some(State::Fault));
    assert!(sim.nodes[alpha].holds.is_empty());
    assert!(!sim.status(alpha).link_up);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.holders(0, V4), vec![beta]);
    sim.set_link(alpha, true);
    let back = sim.log.iter().rev().find_map(|l| match l.what {
        What::Transition(t) if l.node == alpha && t.from == State::Fault => Some((t.to, t.reason)),
        _ => None,
    });
    assert_eq!(back, Some((State::Backup, Reason::LinkUp)));
    // With preempt (the default) the higher priority takes the group back.
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.holders(0, V4), vec![alpha]);
}

#[test]
fn an_address_removed_by_someone_else_is_put_back_only_by_the_master() {
    let (mut sim, alpha, beta) = elected("");
    let restores = |sim: &Sim, node: usize| {
        sim.nodes[node]
            .effects
            .iter()
            .filter(|(_, e)| matches!(e, Effect::Restore { .. }))
            .count()
    };
    sim.input(alpha, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.100"))
    });
    sim.input(beta, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.100"))
    });
    // Not a virtual address of any group: nothing.
    sim.input(alpha, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.11"))
    });
    assert_eq!(restores(&sim, alpha), 1);
    assert_eq!(restores(&sim, beta), 0);
    let announced = sim
        .log
        .iter()
        .filter(|l| l.node == alpha && l.what == What::Announced)
        .count();
    assert!(announced >= 1);
}

#[test]
fn ipv6_adverts_come_from_the_link_local_address_and_elect_both_families() {
    let (mut sim, alpha, beta) = elected("");
    assert_eq!(sim.masters(0, V6), vec![alpha]);
    assert_eq!(sim.running(alpha).source(V6), Some(link_local(alpha)));
    let status = sim.status(beta);
    let v6 = status.groups[0]
        .instances
        .iter()
        .find(|i| i.family == "IPv6")
        .unwrap();
    assert_eq!(
        (v6.state.as_str(), v6.master.as_deref()),
        ("backup", Some("alpha"))
    );
    assert!(v6.adverts_received > 0);
    let _ = Ipv6Addr::LOCALHOST;
}

#[test]
fn shutdown_says_priority_0_and_releases_and_the_next_node_takes_over_at_once() {
    let (mut sim, alpha, beta) = elected("");
    let at = sim.elapsed();
    sim.stop(alpha);
    let sent_zero = sim
        .log
        .iter()
        .any(|l| l.node == alpha && l.at == at && l.what == What::Sent { priority: 0 });
    assert!(sent_zero);
    sim.run_for(MS);
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(sim.became_master_at(beta, 0, V4), Some(at));
}

/// Three nodes, one IPv4 group (alpha 200, beta 150, gamma 100).
fn trio(group_extra: &str) -> (Sim, usize, usize, usize) {
    let mut sim = Sim::new(&cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
             priority = {{ alpha = 200, beta = 150, gamma = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
        ),
    ));
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    (sim, alpha, beta, gamma)
}

fn everyone_alive(_: &str) -> bool {
    true
}

/// When `node` last did `what` in group 0, IPv4.
fn last(sim: &Sim, node: usize, what: What) -> Option<Duration> {
    sim.log
        .iter()
        .rev()
        .find(|l| l.node == node && l.group == 0 && l.family == V4 && l.what == what)
        .map(|l| l.at)
}

fn claimed_at(sim: &Sim, node: usize) -> Option<Duration> {
    sim.log
        .iter()
        .rev()
        .find(|l| l.node == node && matches!(l.what, What::Claimed { .. }))
        .map(|l| l.at)
}

#[test]
fn a_handover_makes_before_it_breaks_and_the_old_owner_does_not_take_it_back() {
    let (mut sim, alpha, beta, gamma) = trio("");
    sim.delay = Duration::from_micros(200);
    let mut answer = None;
    sim.input(alpha, |node, now| {
        answer = Some(node.handover(now, "g", None, &everyone_alive))
    });
    assert_eq!(answer, Some(Ok("beta".to_string())));
    // While the handover waits, alpha still holds the address and says priority 0.
    assert_eq!(sim.holders(0, V4), vec![alpha]);
    assert!(sim.status(alpha).groups[0].handing_over);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(sim.holders(0, V4), vec![beta]);
    // beta claimed before alpha released: never a moment without a holder.
    let claimed = claimed_at(&sim, beta).expect("beta claimed");
    let released = last(&sim, alpha, What::Released).expect("alpha released");
    assert!(
        claimed <= released,
        "claim {claimed:?} before release {released:?}"
    );
    let reason = sim.log.iter().rev().find_map(|l| match l.what {
        What::Transition(t) if l.node == alpha && t.to == State::Backup => Some(t.reason),
        _ => None,
    });
    assert_eq!(reason, Some(Reason::HandedOver));
    // gamma, not first in line, never moved.
    assert_eq!(transitions_to(&sim, gamma, State::Master), 0);
    // alpha (priority 200) hears beta (150) for seconds and does not preempt back.
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    // Handing it back from beta: alpha is first in line and takes it at once.
    let mut answer = None;
    sim.input(beta, |node, now| {
        answer = Some(node.handover(now, "g", None, &everyone_alive))
    });
    assert_eq!(answer, Some(Ok("alpha".to_string())));
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.holders(0, V4), vec![alpha]);
}

#[test]
fn a_handover_is_refused_off_the_owner_to_a_stranger_a_dead_node_or_past_a_live_better_one() {
    let (mut sim, alpha, beta, gamma) = trio("");
    let mut tries = Vec::new();
    sim.input(beta, |node, now| {
        tries.push(node.handover(now, "g", None, &everyone_alive))
    });
    sim.input(alpha, |node, now| {
        tries.push(node.handover(now, "g", Some("omega"), &everyone_alive));
        tries.push(node.handover(now, "g", Some("gamma"), &everyone_alive));
        tries.push(node.handover(now, "g", Some("beta"), &|n| n != "beta"));
        tries.push(node.handover(now, "nope", None, &everyone_alive));
        tries.push(node.handover(now, "g", None, &|_| false));
    });
    let errors: Vec<String> = tries.into_iter().map(|t| t.unwrap_err()).collect();
    assert!(
        errors[0].contains("does not own g (owner: alpha)"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("omega is not a member"), "{}", errors[1]);
    assert!(
        errors[2].contains("beta (priority 150) ranks above gamma"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].contains("beta is not a live member"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4].contains("not a member of a group \"nope\""),
        "{}",
        errors[4]
    );
    assert!(errors[5].contains("no other live member"), "{}", errors[5]);
    // Nothing moved.
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert!(!sim.status(alpha).groups[0].handing_over);
    // Past a dead better node, to gamma: beta is down, gamma takes it (after its skew).
    sim.kill(beta);
    let mut answer = None;
    sim.input(alpha, |node, now| {
        answer = Some(node.handover(now, "g", Some("gamma"), &|n| n != "beta"))
    });
    assert_eq!(answer, Some(Ok("gamma".to_string())));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.masters(0, V4), vec![gamma]);
    assert_eq!(sim.holders(0, V4), vec![gamma]);
}

#[test]
fn a_handover_nobody_takes_leaves_the_owner_in_place() {
    let (mut sim, alpha, beta, gamma) = trio("");
    sim.kill(beta);
    sim.kill(gamma);
    let mut answer = None;
    sim.input(alpha, |node, now| {
        answer = Some(node.handover(now, "g", None, &everyone_alive))
    });
    assert_eq!(answer, Some(Ok("beta".to_string())));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.holders(0, V4), vec![alpha]);
    assert!(!sim.status(alpha).groups[0].handing_over);
    // And it adverts its own priority again.
    let priority = sim.log.iter().rev().find_map(|l| match l.what {
        What::Sent { priority } if l.node == alpha => Some(priority),
        _ => None,
    });
    assert_eq!(priority, Some(200));
}

#[test]
fn a_drained_node_hands_over_takes_nothing_even_last_and_comes_back_when_undrained() {
    let (mut sim, alpha, beta, gamma) = trio("");
    sim.input(alpha, |node, now| node.set_drained(now, true));
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert!(sim.status(alpha).drained);
    // beta dies: gamma takes over, not the drained alpha.
    sim.kill(beta);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![gamma]);
    // gamma dies too: alpha is the last one alive and still takes nothing.
    sim.kill(gamma);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.masters(0, V4), Vec::<usize>::new());
    assert!(sim.holders(0, V4).is_empty());
    sim.input(alpha, |node, now| node.set_drained(now, false));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn a_drained_master_with_nobody_to_take_over_lets_go_all_the_same() {
    let (mut sim, alpha, beta, gamma) = trio("");
    sim.kill(beta);
    sim.kill(gamma);
    sim.input(alpha, |node, now| node.set_drained(now, true));
    sim.run_for(Duration::from_secs(2));
    assert!(sim.holders(0, V4).is_empty());
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Backup));
}

fn trio_file(priorities: &str, addresses: &str, extra: &str) -> String {
    cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [{addresses}]\n\
             priority = {{ {priorities} }}\nadvert_interval = \"100ms\"\n{extra}\n"
        ),
    )
}

const PRIORITIES: &str = "alpha = 200, beta = 150, gamma = 100";

#[test]
fn a_reload_of_the_same_file_changes_nothing_and_keeps_the_advert_rhythm() {
    let (mut sim, alpha, _, _) = trio("");
    let before = sim.log.len();
    let sent_before = last(&sim, alpha, What::Sent { priority: 200 }).unwrap();
    let outcomes = sim.reload_all(&trio_file(PRIORITIES, "\"192.0.2.100/24\"", ""));
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_deref() == Ok(&["no change".to_string()][..]))
    );
    // No transition, no claim, no release, no advert: only the zone was republished.
    assert_eq!(sim.log.len(), before);
    sim.run_for(Duration::from_millis(150));
    // The next advert comes on the old rhythm: 100 ms after the last one before the reload.
    let next = sim
        .log
        .iter()
        .find(|l| l.node == alpha && l.at > sent_before && matches!(l.what, What::Sent { .. }))
        .map(|l| l.at);
    assert_eq!(next, Some(sent_before + Duration::from_millis(100)));
}

#[test]
fn a_reload_applies_priorities_addresses_and_groups_in_place() {
    let (mut sim, alpha, beta, _) = trio("");
    // beta raised above alpha: it preempts at alpha's next advert.
    sim.reload_all(&trio_file(
        "alpha = 200, beta = 250, gamma = 100",
        "\"192.0.2.100/24\"",
        "",
    ));
    sim.run_for(Duration::from_millis(150));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    // An address added and one removed: the master claims and announces only the change.
    let outcomes = sim.reload_all(&trio_file(
        "alpha = 200, beta = 250, gamma = 100",
        "\"192.0.2.101/24\"",
        "",
    ));
    assert!(outcomes[1].as_ref().unwrap()[0].contains("changed group g"));
    // beta's last address effects: 192.0.2.100 released, 192.0.2.101 claimed and announced.
    let addresses: Vec<String> = sim.nodes[beta]
        .effects
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Release { addresses, .. } => Some(format!("-{}", addresses[0].address)),
            Effect::Claim { addresses, .. } => Some(format!("+{}", addresses[0].address)),
            Effect::Announce { addresses, .. } => Some(format!("!{}", addresses[0])),
            _ => None,
        })
        .collect();
    assert_eq!(
        addresses[addresses.len() - 3..],
        ["-192.0.2.100", "+192.0.2.101", "!192.0.2.101"]
    );
    let owner = sim.running(alpha).zone();
    let vip = LowerName::from(Name::from_ascii("beta.cluster.example.").unwrap());
    assert!(matches!(
        owner.lookup(&vip, RecordType::A),
        Lookup::Answer(_)
    ));
    // A second group added: it starts in backup and is elected; then removed again.
    let two_groups = format!(
        "{}[[group]]\nname = \"h\"\nvrid = 52\naddresses = [\"192.0.2.102/24\"]\n\
         priority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"100ms\"\n",
        trio_file(
            "alpha = 200, beta = 250, gamma = 100",
            "\"192.0.2.101/24\"",
            ""
        )
    );
    sim.reload_all(&two_groups);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(1, V4), vec![alpha]);
    assert_eq!(sim.holders(1, V4), vec![alpha]);
    let outcomes = sim.reload_all(&trio_file(
        "alpha = 200, beta = 250, gamma = 100",
        "\"192.0.2.101/24\"",
        "",
    ));
    assert!(
        outcomes[0]
            .as_ref()
            .unwrap()
            .contains(&"removed group h".to_string())
    );
    assert!(sim.nodes[alpha].holds.iter().all(|(g, _)| g == "g"));
    assert_eq!(sim.masters(0, V4), vec![beta]);
}

#[test]
fn a_reload_that_needs_a_restart_is_refused_and_changes_nothing() {
    let (mut sim, alpha, _, _) = trio("");
    let moved = trio_file(PRIORITIES, "\"192.0.2.100/24\"", "").replacen(
        "interface = \"eth0\"",
        "interface = \"eth1\"",
        1,
    );
    let outcomes = sim.reload_all(&moved);
    let error = outcomes[0].clone().unwrap_err();
    assert!(
        error.contains("`interface` changes from eth0 to eth1"),
        "{error}"
    );
    assert!(error.contains("restart"), "{error}");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn a_reload_restarts_changed_resources_under_their_new_definition() {
    let (mut sim, alpha, _, _) = trio(RESOURCE);
    let changed = RESOURCE.replace("start = \"true\"", "start = \"true # v2\"");
    sim.reload_all(&trio_file(PRIORITIES, "\"192.0.2.100/24\"", &changed));
    let effects: Vec<&Effect> = sim.nodes[alpha].effects.iter().map(|(_, e)| e).collect();
    let stop = effects.iter().rposition(
        |e| matches!(e, Effect::StopResources { resources, .. } if resources[0].start == "true"),
    );
    let start = effects.iter().rposition(
        |e| matches!(e, Effect::StartResources { resources, .. } if resources[0].start == "true # v2"),
    );
    assert!(
        stop.is_some() && start.is_some() && stop < start,
        "{effects:?}"
    );
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn with_require_same_file_a_node_never_preempts_a_master_on_another_file_nor_takes_a_handover() {
    let (mut sim, alpha, beta, _) = trio("require_same_file = true\npreempt = true");
    // alpha hands over to beta; then alpha runs another file than beta (a rolling upgrade).
    let mut answer = None;
    sim.input(alpha, |node, now| {
        answer = Some(node.handover(now, "g", None, &everyone_alive))
    });
    assert_eq!(answer, Some(Ok("beta".to_string())));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    sim.input(beta, |node, _| {
        node.set_mismatched_peers(vec!["alpha".into()])
    });
    sim.input(alpha, |node, _| {
        node.set_mismatched_peers(vec!["beta".into()])
    });
    // alpha restarts (its preempt suppression is gone): it still does not preempt beta.
    sim.kill(alpha);
    sim.start_node(alpha);
    sim.input(alpha, |node, _| {
        node.set_mismatched_peers(vec!["beta".into()])
    });
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    // A handover to the node on the other file is refused; beta's failure still moves it.
    let mut answer = None;
    sim.input(beta, |node, now| {
        answer = Some(node.handover(now, "g", Some("alpha"), &everyone_alive))
    });
    assert!(
        answer
            .unwrap()
            .unwrap_err()
            .contains("runs another cluster file"),
        "refused"
    );
    sim.kill(beta);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn a_reload_that_adds_a_node_makes_it_a_peer_of_the_running_nodes() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    let three = cluster_file(
        3,
        "[[group]]\nname = \"g\"\nvrid = 51\n\
         addresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\nnames = [\"nbu-master\"]\n\
         priority = { alpha = 150, beta = 100, gamma = 250 }\nadvert_interval = \"100ms\"\n",
    );
    // The simulator had two nodes: a third joins the LAN with the new file.
    let outcomes = sim.reload_all(&three);
    assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
    let peers: Vec<String> = sim
        .running(alpha)
        .election(0)
        .unwrap()
        .instance(V4)
        .unwrap()
        .config()
        .peers
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(peers, ["beta", "gamma"]);
    // Back to two nodes: gamma is no peer any more.
    sim.reload_all(&cluster_file(
        2,
        "[[group]]\nname = \"g\"\nvrid = 51\n\
         addresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\nnames = [\"nbu-master\"]\n\
         priority = { alpha = 150, beta = 100 }\nadvert_interval = \"100ms\"\n",
    ));
    let peers = sim
        .running(beta)
        .election(0)
        .unwrap()
        .instance(V4)
        .unwrap()
        .config()
        .peers
        .len();
    assert_eq!(peers, 1);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}
