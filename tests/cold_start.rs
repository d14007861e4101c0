//! Issue 11: a cold start of many groups on three nodes at once must never put one group's
//! addresses on two nodes, IPv6 as IPv4.

mod support;

use std::time::Duration;
use support::sim::Sim;
use vipd::lab::cluster_file;
use vipd::wire::Family;

fn groups(count: usize, family: Family) -> String {
    let mut text = String::new();
    for i in 0..count {
        let address = match family {
            Family::V4 => format!("198.51.100.{}/24", i + 1),
            Family::V6 => format!("2001:db8::1:{:x}/64", i + 1),
        };
        // The owner rotates over the three nodes.
        let (a, b, c) = match i % 3 {
            0 => (200, 150, 100),
            1 => (100, 200, 150),
            _ => (150, 100, 200),
        };
        text.push_str(&format!(
            "[[group]]\nname = \"g{i}\"\nvrid = {}\naddresses = [\"{address}\"]\n\
             priority = {{ alpha = {a}, beta = {b}, gamma = {c} }}\nadvert_interval = \"100ms\"\n\n",
            i + 1
        ));
    }
    text
}

/// Starts three nodes at one instant and returns the (time, group) samples where a group's
/// addresses were on two nodes, sampled every millisecond for `span`.
fn doubled_holders(
    family: Family,
    delay: Duration,
    claim_cost: Duration,
    span: Duration,
) -> Vec<(Duration, usize)> {
    let count = 250;
    let mut sim = Sim::new(&cluster_file(3, &groups(count, family)));
    sim.delay = delay;
    sim.claim_cost_v6 = claim_cost;
    sim.start_all();
    let mut doubled = Vec::new();
    let end = sim.now + span;
    while sim.now < end {
        sim.run_for(Duration::from_millis(1));
        for group in 0..count {
            if sim.holders(group, family).len() > 1 {
                doubled.push((sim.elapsed(), group));
            }
        }
    }
    for group in 0..count {
        assert_eq!(sim.holders(group, family).len(), 1, "group {group} settles");
    }
    doubled
}

#[test]
fn a_cold_start_of_250_groups_on_three_nodes_never_doubles_an_address() {
    for family in [Family::V4, Family::V6] {
        // An IPv6 address costs the daemon about a millisecond: added, then read back until
        // the kernel has finished it (`netlink::wait_usable`).
        for (delay, cost) in [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_micros(300), Duration::from_millis(1)),
        ] {
            let doubled = doubled_holders(family, delay, cost, Duration::from_secs(2));
            let groups: std::collections::BTreeSet<usize> =
                doubled.iter().map(|(_, g)| *g).collect();
            assert!(
                doubled.is_empty(),
                "{family} (delay {delay:?}, IPv6 claim {cost:?}): {} groups on two nodes, first {:?}",
                groups.len(),
                doubled.first()
            );
        }
    }
}
