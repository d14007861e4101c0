//! Issue 11: an outsider claims a held address with gratuitous ARP (or a neighbour
//! advertisement). The owner defends at once, within RFC 5227's DEFEND_INTERVAL per address,
//! logs and counts it.

mod support;

use std::net::IpAddr;
use std::time::Duration;
use support::sim::{Sim, mac};
use vipd::lab::cluster_file;
use vipd::node::Effect;
use vipd::node::defend::DEFEND_INTERVAL;

const OUTSIDER: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0xc0];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn elected() -> Sim {
    let mut sim = Sim::new(&cluster_file(
        2,
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
         priority = { alpha = 150, beta = 100 }\nadvert_interval = \"100ms\"\n\
         [[group]]\nname = \"other\"\nvrid = 52\naddresses = [\"192.0.2.101/24\"]\n\
         priority = { alpha = 100, beta = 150 }\nadvert_interval = \"100ms\"\n",
    ));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.holders(0, vipd::wire::Family::V4), vec![0]);
    assert_eq!(sim.holders(1, vipd::wire::Family::V4), vec![1]);
    sim
}

/// Announcements of `address` by `node` made at the current instant.
fn defences_now(sim: &Sim, node: usize, address: IpAddr) -> usize {
    let now = sim.elapsed();
    sim.nodes[node]
        .effects
        .iter()
        .filter(|(at, e)| {
            *at == now
                && matches!(e, Effect::Announce { addresses, .. } if addresses == &vec![address])
        })
        .count()
}

fn claim(sim: &mut Sim, node: usize, address: IpAddr, from: [u8; 6]) {
    sim.input(node, |n, now| n.handle_neighbour_claim(now, address, from));
}

#[test]
fn the_owner_defends_a_claimed_address_at_once_and_at_most_once_per_defend_interval() {
    let mut sim = elected();
    let (alpha, beta) = (0, 1);
    for address in [ip("192.0.2.100"), ip("2001:db8::100")] {
        claim(&mut sim, alpha, address, OUTSIDER);
        assert_eq!(
            defences_now(&sim, alpha, address),
            1,
            "{address}: defended at once"
        );
        // Again within DEFEND_INTERVAL: counted, not defended.
        sim.run_for(Duration::from_secs(1));
        claim(&mut sim, alpha, address, OUTSIDER);
        assert_eq!(
            defences_now(&sim, alpha, address),
            0,
            "{address}: rate limited"
        );
    }
    assert_eq!(sim.status(alpha).address_conflicts, 4);
    // Once the interval is over, the next claim is defended again.
    sim.run_for(DEFEND_INTERVAL);
    claim(&mut sim, alpha, ip("192.0.2.100"), OUTSIDER);
    assert_eq!(defences_now(&sim, alpha, ip("192.0.2.100")), 1);
    assert!(
        sim.status(alpha)
            .prometheus()
            .contains("vipd_address_conflicts_total{node=\"alpha\"} 5\n")
    );
    // Not held here (beta is backup of g; alpha is backup of other): nothing to defend.
    claim(&mut sim, beta, ip("192.0.2.100"), OUTSIDER);
    claim(&mut sim, alpha, ip("192.0.2.101"), OUTSIDER);
    assert_eq!(defences_now(&sim, beta, ip("192.0.2.100")), 0);
    assert_eq!(defences_now(&sim, alpha, ip("192.0.2.101")), 0);
    assert_eq!(sim.status(beta).address_conflicts, 0);
    assert_eq!(sim.status(alpha).address_conflicts, 5);
    // A member's claim is the election's business (a split brain heals through adverts).
    claim(&mut sim, alpha, ip("192.0.2.100"), mac(beta));
    assert_eq!(sim.status(alpha).address_conflicts, 5);
    assert_eq!(sim.holders(0, vipd::wire::Family::V4), vec![alpha]);
}
