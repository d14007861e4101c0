//! Health tracking on the real network: a track_script that starts failing on the owner, and
//! a tracked interface whose link goes down there, each move the group to the backup, and
//! the owner takes it back when they recover. vipd processes in network namespaces; the
//! judge is the kernels' address tables, not vipd's own claims. Needs root; without it every
//! test fails and says why.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use vipd::lab::{Lab, RemoveOnDrop, sh};

/// One lab at a time: timing on a 2-core machine needs the cores.
static SERIAL: Mutex<()> = Mutex::new(());

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
const MOVE_WITHIN: Duration = Duration::from_secs(3);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The flag file that makes node `node`'s track script fail while it exists.
fn flag(tag: &str, node: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "vipd-tracking-{}-{tag}-fail-{node}",
        std::process::id()
    ))
}

/// alpha (150) and beta (100) share a dual-stack group that tracks the script "chk" (fails
/// while the node's flag file exists; -60) and the interface trk0 (fault while it is down).
fn cluster(tag: &str) -> String {
    let command = format!(
        "test ! -e {}",
        flag(tag, "NODE")
            .display()
            .to_string()
            .replace("NODE", "$VIPD_NODE")
    );
    vipd::lab::cluster_file(
        2,
        &format!(
            "[[track_script]]\nname = \"chk\"\ncommand = \"{command}\"\ninterval = \"100ms\"\n\
             timeout = \"1s\"\nweight = -60\nfall = 2\nrise = 2\n\n\
             [[group]]\nname = \"master-server\"\nvrid = 51\n\
             addresses = [\"{VIP4}/24\", \"{VIP6}/64\"]\n\
             priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n\
             track_script = [\"chk\"]\ntrack_interface = [\"trk0\"]\n"
        ),
    )
}

/// A started lab where every node has a link trk0 (a veth pair inside its namespace) and
/// alpha holds the addresses.
fn elected(tag: &str) -> (std::sync::MutexGuard<'static, ()>, Lab) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(tag, &cluster(tag), env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    for node in &lab.nodes {
        let ns = node.namespace.as_str();
        sh(&[
            "ip", "-n", ns, "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
        ])
        .unwrap();
        sh(&["ip", "-n", ns, "link", "set", "trk1", "up"]).unwrap();
        sh(&["ip", "-n", ns, "link", "set", "trk0", "up"]).unwrap();
    }
    lab.start_cluster().unwrap();
    holds(&lab, "alpha");
    (guard, lab)
}

/// Waits until the kernel of `node`, and only that one, holds both addresses.
fn holds(lab: &Lab, node: &str) {
    for vip in [VIP4, VIP6] {
        if let Err(e) = lab.wait_for_holder(ip(vip), node, MOVE_WITHIN) {
            panic!("{e}\n{}", lab.logs());
        }
    }
}

#[test]
fn a_failing_track_script_on_the_owner_moves_the_group_and_its_recovery_brings_it_back() {
    let tag = "trks";
    let _flags = [
        RemoveOnDrop(flag(tag, "alpha")),
        RemoveOnDrop(flag(tag, "beta")),
    ];
    let (_guard, lab) = elected(tag);
    let alpha = lab.node("alpha");
    let status = lab.status(alpha).unwrap();
    assert_eq!(status.groups[0].instances[0].priority, 150);

    std::fs::write(flag(tag, "alpha"), "").unwrap();
    holds(&lab, "beta");
    let status = lab.status(alpha).unwrap();
    assert_eq!(status.groups[0].instances[0].priority, 90, "150 - 60");
    let script = &status.groups[0].tracking[0];
    assert_eq!((script.name.as_str(), script.up), ("chk", false));

    std::fs::remove_file(flag(tag, "alpha")).unwrap();
    holds(&lab, "alpha");
    let metrics = lab.vipd(alpha, &["status", "--metrics"]).unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("vipd_track_up{node=\"alpha\",group=\"master-server\",kind=\"script\",tracker=\"chk\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_tracked_interface_going_down_on_the_owner_moves_the_group_and_back() {
    let tag = "trki";
    let (_guard, lab) = elected(tag);
    let alpha = lab.node("alpha");
    let ns = lab.nodes[alpha].namespace.clone();

    sh(&["ip", "-n", &ns, "link", "set", "trk0", "down"]).unwrap();
    holds(&lab, "beta");
    let status = lab.status(alpha).unwrap();
    assert_eq!(
        status.groups[0].instances[0].state, "fault",
        "weight 0: fault"
    );

    sh(&["ip", "-n", &ns, "link", "set", "trk0", "up"]).unwrap();
    holds(&lab, "alpha");
    assert_eq!(
        lab.status(alpha).unwrap().groups[0].instances[0].state,
        "master"
    );
}
