//! Groups on several LAN segments on the real network: two bridges, every node on both (eth0
//! and eth1), one VRID used by a group on each. The judge is the kernels' address tables (on
//! which interface the address is), tshark's view of the adverts on the second segment, and
//! a client probing the address there. Needs root; without it the test fails and says why.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use vipd::lab::{Lab, sh};

fn cluster() -> String {
    let mut text = String::from("[cluster]\nname = \"lab\"\nzone = \"cluster.example.\"\n");
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\ninterface = \"eth0\"\naddress = \"192.0.2.{}\"\n\
             [[node.lan]]\ninterface = \"eth1\"\naddress = \"198.51.100.{}\"\nlink_local = \"fe80::1:{}\"\n",
            11 + i,
            11 + i,
            11 + i
        ));
    }
    text.push_str(
        "\n[[group]]\nname = \"front\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = { alpha = 200, beta = 100 }\nadvert_interval = \"100ms\"\n\
         \n[[group]]\nname = \"back\"\nvrid = 51\ninterface = \"eth1\"\n\
         addresses = [\"198.51.100.100/24\", \"2001:db8:1::100/64\"]\n\
         priority = { alpha = 200, beta = 100 }\nadvert_interval = \"100ms\"\n",
    );
    text
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Polls until `address` is on exactly `holder`'s `interface` (and on no other node's).
fn wait_on(lab: &Lab, address: &str, interface: &str, holder: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let holders = lab.holders_on(ip(address), interface).unwrap();
        if holders == [holder] {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{address} on {interface} of {holders:?}, not of {holder} only\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_vrid_on_two_segments_makes_two_groups_and_a_link_moves_only_its_own() {
    let mut lab = Lab::new("lans", &cluster(), env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    lab.start_all().unwrap();
    let limit = Duration::from_secs(5);
    wait_on(&lab, "192.0.2.100", "eth0", "alpha", limit);
    wait_on(&lab, "198.51.100.100", "eth1", "alpha", limit);
    wait_on(&lab, "2001:db8:1::100", "eth1", "alpha", limit);
    // Not on the wrong interface.
    assert!(
        !lab.addresses_on(alpha, "eth0")
            .unwrap()
            .contains(&ip("198.51.100.100"))
    );
    // The adverts of the back group go out on eth1 from alpha's address there; beta hears
    // them (it follows alpha, nothing dropped as an unknown VRID).
    let capture = sh(&[
        "ip",
        "netns",
        "exec",
        &lab.client,
        "timeout",
        "2",
        "tshark",
        "-i",
        "eth1",
        "-c",
        "3",
        "-f",
        "ip proto 112",
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "vrrp.virt_rtr_id",
    ])
    .unwrap();
    let seen = String::from_utf8_lossy(&capture.stdout);
    assert!(
        seen.contains("198.51.100.11\t51"),
        "tshark on eth1: {seen:?}"
    );
    let status = lab.status(beta).unwrap();
    let back = status.groups.iter().find(|g| g.name == "back").unwrap();
    assert_eq!(back.instances[0].master.as_deref(), Some("alpha"));
    assert!(
        !status.dropped.contains_key("unknown_vrid"),
        "{:?}",
        status.dropped
    );
    // The client reaches the address on the second segment, and alpha answers there.
    for node in [alpha, beta] {
        lab.start_responder(node).unwrap();
    }
    let probe = lab
        .start_probe(ip("198.51.100.100"), Duration::from_millis(500))
        .unwrap();
    let answers = lab.finish_probe(probe).unwrap();
    assert!(answers.len() > 100, "{} answers", answers.len());
    assert!(answers.iter().all(|a| a.node == "alpha"));
    // alpha's eth1 goes down: the back group moves, the front group stays.
    let ns = lab.nodes[alpha].namespace.clone();
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "down"]).unwrap();
    wait_on(&lab, "198.51.100.100", "eth1", "beta", limit);
    wait_on(&lab, "2001:db8:1::100", "eth1", "beta", limit);
    wait_on(&lab, "192.0.2.100", "eth0", "alpha", Duration::ZERO);
    // Back up: alpha preempts on eth1.
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "up"]).unwrap();
    wait_on(&lab, "198.51.100.100", "eth1", "alpha", limit);
    // Stopped, vipd leaves nothing on either segment.
    lab.stop(alpha).unwrap();
    wait_on(&lab, "198.51.100.100", "eth1", "beta", limit);
    assert!(
        !lab.addresses_on(alpha, "eth1")
            .unwrap()
            .contains(&ip("198.51.100.100"))
    );
}
