//! Issue 11: who may speak for a member. IPv6 adverts come from link-local addresses the file
//! may not give; a stranger on the LAN must not pass for a member by saying its priority.

mod support;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use support::sim::{Sim, What, link_local};
use vipd::election::State;
use vipd::lab::cluster_file;
use vipd::wire::Family::{V4, V6};
use vipd::wire::ip::{Datagram, MULTICAST_V6};
use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};

const MS: Duration = Duration::from_millis(1);
const STRANGER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99);
const STRANGER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0xc0];

/// Two nodes, one group at 100 ms (alpha 150, beta 100), no `link_local` in the file.
fn elected(addresses: &str) -> Sim {
    let mut sim = Sim::new(&cluster_file(
        2,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [{addresses}]\n\
             priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n"
        ),
    ));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V6), vec![0]);
    assert_eq!(sim.state(1, 0, V6), Some(State::Backup));
    sim
}

fn advert_v6(priority: u8, src: Ipv6Addr) -> Vec<u8> {
    let repr = Repr {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: vec!["2001:db8::100".parse().unwrap()],
        auth: V2Auth::default(),
    };
    let ends = IpEnds {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(MULTICAST_V6),
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    message
}

/// The attack: the stranger says alpha's priority three times, then priority 0, to beta.
fn attack(sim: &mut Sim) {
    for priority in [150, 150, 150, 0] {
        let message = advert_v6(priority, STRANGER);
        sim.inject(
            1,
            Datagram::V6 {
                src: STRANGER,
                dst: MULTICAST_V6,
                hop_limit: 255,
                message: &message,
            },
        );
        sim.run_for(20 * MS);
    }
}

/// Watches for two holders of one family's addresses for `span`.
fn never_two_holders(sim: &mut Sim, family: vipd::wire::Family, span: Duration) {
    let end = sim.now + span;
    while sim.now < end {
        sim.run_for(MS);
        assert!(
            sim.holders(0, family).len() <= 1,
            "two holders at {:?}: {:?}",
            sim.elapsed(),
            sim.holders(0, family)
        );
    }
}

fn became_master(sim: &Sim, node: usize) -> usize {
    sim.log
        .iter()
        .filter(|l| {
            l.node == node && matches!(l.what, What::Transition(t) if t.to == State::Master)
        })
        .count()
}

#[test]
fn a_stranger_at_a_known_other_mac_cannot_pass_for_the_master_and_say_priority_0() {
    for addresses in [
        "\"2001:db8::100/64\"",
        "\"192.0.2.100/24\", \"2001:db8::100/64\"",
    ] {
        let mut sim = elected(addresses);
        let before = became_master(&sim, 1);
        // The backup's neighbour table knows the stranger's link-local at its own MAC.
        sim.input(1, |n, now| {
            n.handle_neighbour(now, IpAddr::V6(STRANGER), Some(STRANGER_MAC))
        });
        attack(&mut sim);
        never_two_holders(&mut sim, V6, Duration::from_secs(1));
        assert_eq!(
            became_master(&sim, 1),
            before,
            "{addresses}: beta took over"
        );
        assert_eq!(sim.holders(0, V6), vec![0]);
        assert_eq!(sim.running(1).discards().get("unverified_source"), 4);
        // The real master's adverts are still followed, and its priority 0 still hands over
        // at once.
        let at = sim.elapsed();
        sim.stop(0);
        sim.run_for(MS);
        assert_eq!(sim.became_master_at(1, 0, V6), Some(at), "{addresses}");
    }
}

#[test]
fn a_stranger_nobody_knows_is_followed_at_most_and_its_priority_0_takes_nothing_over() {
    let mut sim = elected("\"2001:db8::100/64\"");
    let before = became_master(&sim, 1);
    attack(&mut sim);
    never_two_holders(&mut sim, V6, Duration::from_secs(1));
    assert_eq!(became_master(&sim, 1), before, "beta took over");
    // Priority 0 names no member by itself, and the stranger was never remembered as one.
    assert_eq!(sim.running(1).discards().get("not_member"), 1);
    // The master hears the stranger claim a higher priority: it does not yield to it.
    for _ in 0..3 {
        let message = advert_v6(254, STRANGER);
        sim.inject(
            0,
            Datagram::V6 {
                src: STRANGER,
                dst: MULTICAST_V6,
                hop_limit: 255,
                message: &message,
            },
        );
        sim.run_for(20 * MS);
    }
    never_two_holders(&mut sim, V6, Duration::from_secs(1));
    assert_eq!(sim.masters(0, V6), vec![0]);
    assert_eq!(sim.holders(0, V6), vec![0]);
    let _ = (link_local(0), V4);
}
