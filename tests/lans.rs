//! Groups on several LAN segments: a node names its other interfaces (`[[node.lan]]`), a
//! group the interface it lives on; VRIDs are unique per interface and family. Simulated
//! clusters where adverts reach only the nodes of their segment.

mod support;

use std::time::Duration;
use support::sim::Sim;
use vipd::config::Config;
use vipd::wire::Family;

fn two_segments(groups: &str) -> String {
    format!(
        r#"
[cluster]
name = "lans"
zone = "cluster.example."

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"
[[node.lan]]
interface = "eth1"
address = "198.51.100.11"
link_local = "fe80::1:11"

[[node]]
name = "beta"
interface = "eth0"
address = "192.0.2.12"
[[node.lan]]
interface = "eth1"
address = "198.51.100.12"
link_local = "fe80::1:12"

{groups}"#
    )
}

const FRONT_AND_BACK: &str = r#"
[[group]]
name = "front"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { alpha = 200, beta = 100 }
advert_interval = "100ms"

[[group]]
name = "back"
vrid = 51
interface = "eth1"
addresses = ["198.51.100.100/24", "2001:db8:1::100/64"]
priority = { alpha = 200, beta = 100 }
advert_interval = "100ms"
"#;

#[test]
fn one_vrid_on_two_interfaces_makes_two_groups_that_move_apart() {
    let mut sim = Sim::new(&two_segments(FRONT_AND_BACK));
    sim.delay = Duration::from_micros(200);
    sim.start_all();
    sim.run_for(Duration::from_secs(2));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let (front, back) = (sim.group("front"), sim.group("back"));
    assert_eq!(sim.masters(front, Family::V4), vec![alpha]);
    assert_eq!(sim.masters(back, Family::V4), vec![alpha]);
    assert_eq!(sim.masters(back, Family::V6), vec![alpha]);
    // beta heard alpha's back adverts on eth1, from alpha's address there.
    let status = sim.status(beta);
    let back_status = status.groups.iter().find(|g| g.name == "back").unwrap();
    assert_eq!(back_status.instances[0].master.as_deref(), Some("alpha"));
    assert_eq!(
        status.dropped.get("unknown_vrid"),
        None,
        "{:?}",
        status.dropped
    );
    // alpha's eth1 goes down: only the back group moves.
    sim.set_lan_link(alpha, 1, false);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(front, Family::V4), vec![alpha]);
    assert_eq!(sim.masters(back, Family::V4), vec![beta]);
    assert_eq!(sim.masters(back, Family::V6), vec![beta]);
    sim.set_lan_link(alpha, 1, true);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(back, Family::V4), vec![alpha]);
    // The first interface going down does not touch the back group.
    sim.set_link(alpha, false);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(front, Family::V4), vec![beta]);
    assert_eq!(sim.masters(back, Family::V4), vec![alpha]);
}

/// 1000 IPv6 groups: four segments of 250, VRIDs 1..=250 on each.
fn thousand_groups() -> String {
    let mut text = String::from(
        "[cluster]\nname = \"big\"\nzone = \"cluster.example.\"\n[dns]\nenabled = false\n",
    );
    for (n, name) in ["alpha", "beta"].iter().enumerate() {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\ninterface = \"eth0\"\naddress = \"2001:db8::{:x}\"\nlink_local = \"fe80::{:x}\"\n",
            0x11 + n,
            0x11 + n
        ));
        for segment in 1..4 {
            text.push_str(&format!(
                "[[node.lan]]\ninterface = \"eth{segment}\"\naddress = \"2001:db8:{segment}::{:x}\"\nlink_local = \"fe80::{segment}:{:x}\"\n",
                0x11 + n,
                0x11 + n
            ));
        }
    }
    for segment in 0..4 {
        for vrid in 1..=250 {
            text.push_str(&format!(
                "\n[[group]]\nname = \"g{segment}-{vrid}\"\nvrid = {vrid}\n{}addresses = [\"2001:db8:{:x}::{vrid:x}/64\"]\npriority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"1s\"\n",
                if segment == 0 {
                    String::new()
                } else {
                    format!("interface = \"eth{segment}\"\n")
                },
                0x100 + segment,
            ));
        }
    }
    text
}

#[test]
fn a_thousand_ipv6_groups_on_four_segments_each_get_one_owner() {
    let toml = thousand_groups();
    let config = Config::parse("big.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.groups.len(), 1000);
    let mut sim = Sim::new(&toml);
    sim.delay = Duration::from_micros(200);
    sim.start_all();
    sim.run_for(Duration::from_secs(5));
    let alpha = sim.node("alpha");
    for group in 0..1000 {
        assert_eq!(sim.masters(group, Family::V6), vec![alpha], "group {group}");
        assert_eq!(sim.holders(group, Family::V6), vec![alpha], "group {group}");
    }
    let beta = sim.node("beta");
    let status = sim.status(beta);
    assert!(status.dropped.is_empty(), "{:?}", status.dropped);
}

#[test]
fn interfaces_and_vrids_are_checked_per_segment() {
    let parse = |groups: &str| Config::parse("lans.toml", &two_segments(groups));
    // One VRID twice on one interface: refused, pointing at the second group.
    let clash = parse(
        &FRONT_AND_BACK
            .replace("name = \"front\"", "name = \"front\"\ninterface = \"eth1\"")
            .replace("192.0.2.100/24", "198.51.100.99/24"),
    )
    .unwrap_err();
    assert!(clash.message.contains("unique per interface"), "{clash}");
    // A member without the interface.
    let missing =
        parse(&FRONT_AND_BACK.replace("interface = \"eth1\"", "interface = \"eth2\"")).unwrap_err();
    assert!(
        missing.message.contains("has no interface eth2"),
        "{missing}"
    );
    assert!(missing.field.contains("interface"), "{missing}");
    // IPv6 on another segment needs the link-local there.
    let text = two_segments(FRONT_AND_BACK).replace("link_local = \"fe80::1:12\"\n", "");
    let no_link_local = Config::parse("lans.toml", &text).unwrap_err();
    assert!(
        no_link_local.message.contains("link-local"),
        "{no_link_local}"
    );
    // vmac only on the first interface.
    let vmac =
        parse(&FRONT_AND_BACK.replace("interface = \"eth1\"", "interface = \"eth1\"\nvmac = true"))
            .unwrap_err();
    assert!(vmac.message.contains("first interface"), "{vmac}");
    // A segment address that is another node's.
    let text = two_segments(FRONT_AND_BACK)
        .replace("address = \"198.51.100.12\"", "address = \"198.51.100.11\"");
    let taken = Config::parse("lans.toml", &text).unwrap_err();
    assert!(taken.message.contains("already an address"), "{taken}");
}
