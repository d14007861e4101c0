//! The real network: vipd processes in network namespaces joined by a bridge, a client in
//! its own namespace, and assertions on what the kernels show (`ip addr`, `ip neigh`) and
//! what the client sees. Needs root; without it every test fails and says why.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vipd::lab::{Lab, probe};

/// One lab at a time: timing assertions on a 2-core machine need the cores.
static SERIAL: Mutex<()> = Mutex::new(());

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn cluster(group_extra: &str) -> String {
    vipd::lab::cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
             priority = {{ alpha = 200, beta = 150, gamma = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
        ),
    )
}

/// A started lab with `alpha` elected; the guard keeps tests apart.
fn elected(tag: &str, toml: &str) -> (std::sync::MutexGuard<'static, ()>, Lab) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(tag, toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    lab.start_cluster().unwrap();
    if let Err(e) = lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3)) {
        panic!("{e}\n{}", lab.logs());
    }
    (guard, lab)
}

/// Makes the client talk to both virtual addresses so it has neighbour entries for them.
fn touch_from_client(lab: &Lab) {
    for target in [VIP4, VIP6] {
        let probe = lab
            .start_probe(ip(target), Duration::from_millis(50))
            .unwrap();
        let answers = lab.finish_probe(probe).unwrap();
        assert!(!answers.is_empty(), "client reaches {target}");
    }
}

#[test]
fn election_puts_the_addresses_on_the_highest_priority_node_only() {
    let (_guard, lab) = elected("elect", &cluster(""));
    lab.wait_for_holder(ip(VIP6), "alpha", Duration::from_secs(1))
        .unwrap();
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
    assert_eq!(lab.holders(ip(VIP6)).unwrap(), ["alpha"]);
    let status = lab.status(lab.node("beta")).unwrap();
    let instance = &status.groups[0].instances[0];
    assert_eq!(
        (instance.state.as_str(), instance.master.as_deref()),
        ("backup", Some("alpha"))
    );
    assert!(
        status.dropped.values().all(|n| *n == 0),
        "{:?}",
        status.dropped
    );
    // Every node knows which version the others run (asked over DNS about a second in).
    let start = Instant::now();
    loop {
        let peers = lab.status(lab.node("alpha")).unwrap().peers;
        let names: Vec<&str> = peers.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(names, ["beta", "gamma"]);
        if peers
            .iter()
            .all(|p| p.version.as_deref() == Some(env!("CARGO_PKG_VERSION")))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "peer versions unknown: {peers:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same, for Prometheus (node_exporter's textfile collector).
    let control = lab.control_path(lab.node("alpha"));
    let metrics = std::process::Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args([
            "status",
            "--metrics",
            "--control",
            control.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains(
            "vipd_state{node=\"alpha\",group=\"master-server\",family=\"IPv4\",state=\"master\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "vipd_holds_addresses{node=\"alpha\",group=\"master-server\",family=\"IPv6\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("vipd_peer_version_mismatch{node=\"alpha\",peer=\"beta\"} 0"),
        "{metrics}"
    );
    // The IPv6 instance identified alpha's link-local source as a member.
    assert_eq!(
        status.groups[0].instances[1].master.as_deref(),
        Some("alpha")
    );
    assert_eq!(status.groups[0].instances[1].dropped_not_member, 0);
}

#[test]
fn hard_failure_is_taken_over_within_master_down_interval() {
    let (_guard, mut lab) = elected("crash", &cluster(""));
    touch_from_client(&lab);
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    assert_eq!(
        lab.client_neighbour(ip(VIP4)).unwrap().as_deref(),
        Some(lab.mac_of(alpha).as_str())
    );
    let probe = lab
        .start_probe(ip(VIP4), Duration::from_millis(1200))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let crash_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    lab.crash(alpha).unwrap();
    // beta is next in line and all members are vipd: 3 x 100 ms after alpha's last advert.
    let took = lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2));
    let took = took.unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let master_down = Duration::from_millis(300);
    assert!(
        took <= master_down + Duration::from_millis(100),
        "took {took:?}, master-down {master_down:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "not before a master-down interval could pass"
    );
    lab.wait_for_holder(ip(VIP6), "beta", Duration::from_millis(100))
        .unwrap();

    let answers = lab.finish_probe(probe).unwrap();
    let handover = probe::handover(&answers, crash_us).expect("the client saw beta answer");
    assert_eq!(
        (handover.from.as_str(), handover.to.as_str()),
        ("alpha", "beta")
    );
    assert!(
        handover.outage() <= master_down + Duration::from_millis(100),
        "outage {:?}",
        handover.outage()
    );
    // The gratuitous ARP moved the client's neighbour entry to beta's MAC.
    assert_eq!(
        lab.client_neighbour(ip(VIP4)).unwrap().as_deref(),
        Some(lab.mac_of(beta).as_str())
    );
    // And the unsolicited neighbour advertisement did the same for IPv6.
    assert_eq!(
        lab.client_neighbour(ip(VIP6)).unwrap().as_deref(),
        Some(lab.mac_of(beta).as_str())
    );
}

#[test]
fn graceful_stop_is_taken_over_at_once() {
    let (_guard, mut lab) = elected("stop", &cluster(""));
    touch_from_client(&lab);
    let alpha = lab.node("alpha");
    let probe = lab
        .start_probe(ip(VIP4), Duration::from_millis(800))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stop_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    lab.stop(alpha).unwrap();
    // beta is next in line: no Skew_Time (41 ms at priority 150) to wait.
    let took = lab
        .wait_for_holder(ip(VIP4), "beta", Duration::from_secs(1))
        .unwrap();
    assert!(took <= Duration::from_millis(41 + 30), "took {took:?}");
    let answers = lab.finish_probe(probe).unwrap();
    let handover = probe::handover(&answers, stop_us).expect("the client saw beta answer");
    assert!(
        handover.outage() <= Duration::from_millis(20),
        "outage {:?}",
        handover.outage()
    );
    assert!(
        lab.log(alpha).contains("shutting down"),
        "{}",
        lab.log(alpha)
    );
    assert_eq!(lab.holders(ip(VIP6)).unwrap(), ["beta"]);
}

#[test]
fn the_preferred_node_takes_its_group_back_with_preempt() {
    let (_guard, mut lab) = elected("preempt", &cluster(""));
    let alpha = lab.node("alpha");
    lab.crash(alpha).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    lab.revive(alpha).unwrap();
    lab.start(alpha).unwrap();
    // alpha preempts on the first advert of beta it hears: within about one interval.
    let took = lab
        .wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(2))
        .unwrap();
    assert!(
        took <= Duration::from_millis(400),
        "took {took:?}\n{}",
        lab.logs()
    );
    lab.wait_for_holder(ip(VIP6), "alpha", Duration::from_millis(200))
        .unwrap();
}

#[test]
fn without_preempt_the_returning_node_stays_backup() {
    let (_guard, mut lab) = elected("nopreempt", &cluster("preempt = false"));
    let alpha = lab.node("alpha");
    lab.crash(alpha).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    lab.revive(alpha).unwrap();
    lab.start(alpha).unwrap();
    lab.wait_ready(alpha, Duration::from_secs(3)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"], "{}", lab.logs());
    let status = lab.status(alpha).unwrap();
    assert_eq!(status.groups[0].instances[0].state, "backup");
}

#[test]
fn link_down_on_the_owner_is_a_fault_and_link_up_comes_back_through_backup() {
    let (_guard, lab) = elected("link", &cluster(""));
    let alpha = lab.node("alpha");
    lab.set_port(alpha, false).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    let status = lab.status(alpha).unwrap();
    assert_eq!(status.groups[0].instances[0].state, "fault");
    assert!(!status.link_up);
    assert!(
        !lab.addresses(alpha).unwrap().contains(&ip(VIP4)),
        "alpha released on link down"
    );
    lab.set_port(alpha, true).unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(2))
        .unwrap();
    let transitions: Vec<(String, String)> = lab.status(alpha).unwrap().groups[0]
        .transitions
        .iter()
        .filter(|t| t.family == "IPv4")
        .map(|t| (t.from.clone(), t.to.clone()))
        .collect();
    let tail: Vec<(&str, &str)> = transitions
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("master", "fault"),
            ("fault", "backup"),
            ("backup", "master")
        ]
    );
}

#[test]
fn restart_after_sigkill_removes_the_stale_address_first() {
    let (_guard, mut lab) = elected("stale", &cluster("preempt = false"));
    let alpha = lab.node("alpha");
    lab.kill(alpha).unwrap();
    // alpha's kernel keeps the address when only the daemon dies.
    assert!(lab.addresses(alpha).unwrap().contains(&ip(VIP4)));
    let start = Instant::now();
    while !lab.holders(ip(VIP4)).unwrap().contains(&"beta".to_string()) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "beta never took over"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    lab.start(alpha).unwrap();
    lab.wait_ready(alpha, Duration::from_secs(3)).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(1))
        .unwrap();
    assert!(
        lab.log(alpha).contains("removing a stale virtual address"),
        "{}",
        lab.log(alpha)
    );
}

#[test]
fn an_address_removed_by_hand_is_put_back() {
    let (_guard, lab) = elected("readd", &cluster(""));
    let alpha = lab.node("alpha");
    lab.exec(
        &lab.nodes[alpha].namespace,
        &["ip", "addr", "del", "192.0.2.100/24", "dev", "eth0"],
    )
    .unwrap();
    let start = Instant::now();
    while !lab.addresses(alpha).unwrap().contains(&ip(VIP4)) {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not put back\n{}",
            lab.log(alpha)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lab.log(alpha).contains("putting it back"));
}

#[test]
fn two_groups_with_different_owners_on_the_same_nodes() {
    let toml = cluster("")
        + r#"
[[group]]
name = "media"
vrid = 52
addresses = ["192.0.2.101/24"]
priority = { alpha = 100, beta = 200, gamma = 150 }
advert_interval = "100ms"
"#;
    let (_guard, mut lab) = elected("twogroups", &toml);
    lab.wait_for_holder(ip("192.0.2.101"), "beta", Duration::from_secs(2))
        .unwrap();
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
    let beta = lab.node("beta");
    lab.stop(beta).unwrap();
    lab.wait_for_holder(ip("192.0.2.101"), "gamma", Duration::from_millis(200))
        .unwrap();
    assert_eq!(
        lab.holders(ip(VIP4)).unwrap(),
        ["alpha"],
        "the other group did not move"
    );
}

// ---- keepalived in the same group: the real peer nobody on the team wrote ----

/// Two nodes, IPv4 group, `alpha` is keepalived (foreign), `beta` vipd.
fn mixed_cluster(alpha_priority: u8, beta_priority: u8) -> String {
    let group = format!(
        "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = {{ alpha = {alpha_priority}, beta = {beta_priority} }}\nadvert_interval = \"100ms\"\n"
    );
    vipd::lab::with_foreign(&vipd::lab::cluster_file(2, &group), "alpha")
}

fn keepalived_conf(priority: u8) -> String {
    vipd::lab::keepalived_conf(51, priority, "0.1", &["192.0.2.100/24"])
}

fn mixed_lab(
    tag: &str,
    alpha_priority: u8,
    beta_priority: u8,
) -> (std::sync::MutexGuard<'static, ()>, Lab) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(
        tag,
        &mixed_cluster(alpha_priority, beta_priority),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .unwrap_or_else(|e| panic!("lab: {e}"));
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    lab.start_keepalived(alpha, &keepalived_conf(alpha_priority))
        .unwrap();
    lab.start(beta).unwrap();
    lab.wait_ready(beta, Duration::from_secs(5)).unwrap();
    (guard, lab)
}

#[test]
fn keepalived_with_the_higher_priority_is_master_and_vipd_follows_it() {
    let (_guard, mut lab) = mixed_lab("kamaster", 200, 150);
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    // keepalived starts as backup and waits its master-down interval (about 4 x 100 ms).
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"], "{}", lab.logs());
    let status = lab.status(beta).unwrap();
    let instance = &status.groups[0].instances[0];
    assert_eq!(
        (instance.state.as_str(), instance.master.as_deref()),
        ("backup", Some("alpha"))
    );
    assert_eq!(
        status.dropped.values().sum::<u64>(),
        0,
        "keepalived's adverts all accepted: {:?}",
        status.dropped
    );
    // keepalived crashes: vipd takes over with the RFC timers (a foreign member):
    // 3 x 100 ms + skew (256 - 150) / 256 x 100 ms = 341.4 ms after the last advert.
    let start = Instant::now();
    lab.crash(alpha).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    let took = start.elapsed();
    assert!(took <= Duration::from_millis(341 + 100), "took {took:?}");
    assert!(
        took >= Duration::from_millis(240),
        "RFC timers, not the fast path: took {took:?}\n{}",
        lab.logs()
    );
    // keepalived returns and preempts; vipd yields.
    lab.revive(alpha).unwrap();
    lab.start_keepalived(alpha, &keepalived_conf(200)).unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
}

#[test]
fn vipd_with_the_higher_priority_is_master_and_keepalived_stays_backup() {
    let (_guard, mut lab) = mixed_lab("kabackup", 100, 200);
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(3))
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        lab.holders(ip(VIP4)).unwrap(),
        ["beta"],
        "keepalived accepted vipd's adverts\n{}",
        lab.logs()
    );
    assert!(
        !lab.log(alpha).contains("Entering MASTER STATE"),
        "{}",
        lab.log(alpha)
    );
    // vipd stops gracefully: keepalived takes over after its Skew_Time (61 ms at 100).
    lab.stop(beta).unwrap();
    let took = lab
        .wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert!(
        took <= Duration::from_millis(61 + 100),
        "took {took:?}\n{}",
        lab.log(alpha)
    );
}

#[test]
fn tshark_decodes_vipd_adverts_as_valid_vrrp() {
    let (_guard, lab) = elected("tshark", &cluster(""));
    let capture = |filter: &str| {
        let out = lab
            .exec(
                &lab.client,
                &[
                    "tshark",
                    "-i",
                    "eth0",
                    "-n",
                    "-a",
                    "duration:3",
                    "-c",
                    "3",
                    "-f",
                    filter,
                    "-V",
                    "-o",
                    "vrrp.v3_checksum_as_in_v2:FALSE",
                ],
            )
            .unwrap_or_else(|e| panic!("tshark: {e}"));
        assert!(out.contains("Virtual Router Redundancy Protocol"), "{out}");
        out
    };
    let v4 = capture("ip proto 112");
    assert!(v4.contains("Version 3"), "{v4}");
    assert!(v4.contains("Virtual Rtr ID: 51"), "{v4}");
    assert!(v4.contains("Priority: 200"), "{v4}");
    assert!(v4.contains("Adver Int: 10"), "centiseconds: {v4}");
    assert!(v4.contains("Time to Live: 255"), "{v4}");
    assert!(v4.contains("[Checksum Status: Good]"), "{v4}");
    assert!(v4.contains("IP Address: 192.0.2.100"), "{v4}");
    let v6 = capture("ip6 proto 112");
    assert!(v6.contains("Hop Limit: 255"), "{v6}");
    assert!(v6.contains("[Checksum Status: Good]"), "{v6}");
    assert!(v6.contains("2001:db8::100"), "{v6}");
    assert!(
        v6.contains("Source Address: fe80::"),
        "IPv6 adverts come from the link-local address: {v6}"
    );
}

#[test]
fn unicast_adverts_elect_and_fail_over_without_multicast() {
    let toml = &vipd::lab::cluster_file(
        2,
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = { alpha = 200, beta = 100 }\nadvert_interval = \"100ms\"\nunicast = true\n",
    );
    let (_guard, mut lab) = elected("unicast", toml);
    let beta = lab.node("beta");
    // The adverts on the wire go to beta's address, not to 224.0.0.18: seen from beta.
    let out = lab
        .exec(
            &lab.nodes[beta].namespace,
            &[
                "tshark",
                "-i",
                "eth0",
                "-n",
                "-a",
                "duration:2",
                "-f",
                "ip proto 112",
                "-T",
                "fields",
                "-e",
                "ip.dst",
            ],
        )
        .unwrap();
    assert!(!out.contains("224.0.0.18"), "multicast adverts seen: {out}");
    assert!(out.contains("192.0.2.12"), "unicast adverts to beta: {out}");
    let status = lab.status(beta).unwrap();
    assert_eq!(
        status.groups[0].instances[0].master.as_deref(),
        Some("alpha"),
        "{status:?}"
    );
    assert!(status.adverts_received > 5);
    lab.crash(lab.node("alpha")).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(1))
        .unwrap();
}

#[test]
fn the_address_owner_keeps_its_own_address_and_routes() {
    let toml = &vipd::lab::cluster_file(
        2,
        "[[group]]\nname = \"router\"\nvrid = 51\naddresses = [\"192.0.2.11/24\"]\n\
         priority = { alpha = 255, beta = 100 }\nadvert_interval = \"100ms\"\n",
    );
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new("owner", toml, env!("CARGO_BIN_EXE_vipd").as_ref()).unwrap();
    lab.start_all().unwrap();
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    lab.wait_ready(alpha, Duration::from_secs(5)).unwrap();
    let status = lab.status(alpha).unwrap();
    assert_eq!(
        status.groups[0].instances[0].state, "master",
        "the owner starts as master"
    );
    assert!(
        !lab.log(alpha).contains("removing a stale"),
        "its own address is not stale\n{}",
        lab.log(alpha)
    );
    let routes = lab
        .exec(&lab.nodes[alpha].namespace, &["ip", "route"])
        .unwrap();
    assert!(
        routes.contains("192.0.2.0/24 dev eth0 proto kernel"),
        "connected route kept: {routes}"
    );
    // The owner crashes: the backup takes the owner's address over.
    lab.crash(alpha).unwrap();
    lab.wait_for_holder(ip("192.0.2.11"), "beta", Duration::from_secs(2))
        .unwrap();
    // It returns and takes its address back at once; beta lets go.
    lab.revive(alpha).unwrap();
    lab.start(alpha).unwrap();
    let start = Instant::now();
    while lab.addresses(beta).unwrap().contains(&ip("192.0.2.11")) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "beta kept the owner's address\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lab.addresses(alpha).unwrap().contains(&ip("192.0.2.11")));
    drop(lab);
    drop(guard);
}

#[test]
fn a_flood_of_hostile_vrrp_packets_is_counted_and_moves_nothing() {
    let (_guard, lab) = elected("vrrpflood", &cluster(""));
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    let transitions = |node| lab.status(node).unwrap().groups[0].transitions.len();
    let before = (transitions(alpha), transitions(beta));
    let sent = Lab::in_namespace(&lab.client, || {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        socket.set_multicast_ttl_v4(255).unwrap();
        // The client has no default route: name the interface for multicast.
        socket
            .set_multicast_if_v4(&"192.0.2.200".parse().unwrap())
            .unwrap();
        let group: std::net::SocketAddr = "224.0.0.18:0".parse().unwrap();
        // A forged priority-254 advert for our VRID from a stranger, with a right checksum...
        let forged = {
            use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};
            let repr = Repr {
                version: Version::V3,
                vrid: 51,
                priority: 254,
                interval_cs: 4095,
                addresses: vec![ip(VIP4)],
                auth: V2Auth::default(),
            };
            let mut buffer = vec![0u8; repr.buffer_len()];
            let ends = IpEnds {
                src: ip("192.0.2.200"),
                dst: ip("224.0.0.18"),
            };
            repr.emit(&mut buffer, ends, Ipv4ChecksumForm::PseudoHeader)
                .unwrap();
            buffer
        };
        // ...and garbage of every kind, for two seconds at about 50 000 packets a second.
        let garbage: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x31],
            vec![0x31, 51, 254, 1, 0, 10, 0, 0, 192, 0, 2, 100],
            vec![0xff; 1400],
        ];
        let start = Instant::now();
        let mut sent = 0u64;
        let mut rounds = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            rounds += 1;
            if rounds.is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if socket.send_to(&forged, &group.into()).is_ok() {
                sent += 1;
            }
            for bytes in &garbage {
                if socket.send_to(bytes, &group.into()).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
    .unwrap();
    let status = lab.status(beta).unwrap();
    let dropped: u64 =
        status.dropped.values().sum::<u64>() + status.groups[0].instances[0].dropped_not_member;
    assert!(sent > 10_000, "the flood was real: {sent}");
    assert!(
        dropped > 1_000,
        "counted: {:?} {:?}",
        status.dropped,
        status.groups[0].instances[0]
    );
    assert!(
        status.groups[0].instances[0].dropped_not_member > 100,
        "the forged adverts were dropped as a stranger's"
    );
    assert_eq!(
        (transitions(alpha), transitions(beta)),
        before,
        "no state changed\n{}",
        lab.logs()
    );
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
}

#[test]
fn resources_start_on_the_owner_and_a_failing_check_moves_the_group() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let events_dir = std::env::temp_dir().join(format!("vipd-resources-{}", std::process::id()));
    std::fs::create_dir_all(&events_dir).unwrap();
    // Removed even when an assertion below fails.
    let _cleanup = vipd::lab::RemoveOnDrop(events_dir.clone());
    let dir = events_dir.to_str().unwrap();
    let toml = cluster("")
        + &format!(
            r#"
quorum = false
[[group.resource]]
name = "service"
start = "echo start-$VIPD_NODE >> {dir}/events"
stop = "echo stop-$VIPD_NODE >> {dir}/events"
check = "test ! -e {dir}/broken-$VIPD_NODE"
check_interval = "100ms"
timeout = "2s"
"#
        );
    let mut lab = Lab::new("resources", &toml, env!("CARGO_BIN_EXE_vipd").as_ref()).unwrap();
    lab.start_all().unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
        .unwrap();
    let events = || std::fs::read_to_string(events_dir.join("events")).unwrap_or_default();
    let wait_for = |want: &str| {
        let start = Instant::now();
        while !events().contains(want) {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "no {want} in {:?}",
                events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("start-alpha");
    let alpha = lab.node("alpha");
    assert_eq!(lab.status(alpha).unwrap().groups[0].resources, "started");
    // The service breaks on alpha: its check fails, alpha gives the group up, beta takes it
    // and starts the service, and alpha stops its own.
    std::fs::write(events_dir.join("broken-alpha"), "").unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    wait_for("start-beta");
    wait_for("stop-alpha");
    assert!(
        lab.status(alpha).unwrap().groups[0]
            .resources
            .starts_with("failed: service")
    );
    // alpha comes back as backup after its pause and does not preempt again.
    std::thread::sleep(vipd::election::RETRY_AFTER_CLAIM_FAILURE + Duration::from_millis(500));
    assert_eq!(
        lab.status(alpha).unwrap().groups[0].instances[0].state,
        "backup"
    );
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"]);
    // A graceful stop of beta stops its service before the process exits.
    let beta = lab.node("beta");
    lab.stop(beta).unwrap();
    assert!(events().contains("stop-beta"), "{:?}", events());
    drop(lab);
    drop(guard);
}

#[test]
fn cleanup_after_sigkill_leaves_the_address_on_the_new_owner_only() {
    let (_guard, mut lab) = elected("cleanup", &cluster(""));
    let alpha = lab.node("alpha");
    lab.kill(alpha).unwrap();
    // The daemon is dead but alpha stays on the LAN: its kernel keeps the addresses while
    // beta takes them over, so two nodes hold them (what ExecStopPost must repair).
    let start = Instant::now();
    while lab.holders(ip(VIP4)).unwrap() != ["alpha", "beta"] {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "expected alpha (dead) and beta (new owner) to hold {VIP4}, got {:?}\n{}",
            lab.holders(ip(VIP4)).unwrap(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lab.addresses(alpha).unwrap().contains(&ip(VIP6)));
    // What the unit's ExecStopPost runs, in alpha's namespace.
    let config = lab.config_path.to_str().unwrap().to_string();
    let cleanup = || {
        lab.exec(
            &lab.nodes[alpha].namespace,
            &[
                env!("CARGO_BIN_EXE_vipd"),
                "cleanup",
                "--config",
                &config,
                "--node",
                "alpha",
            ],
        )
        .unwrap()
    };
    let out = cleanup();
    assert!(out.contains("removed 192.0.2.100/24"), "{out}");
    assert!(out.contains("removed 2001:db8::100/64"), "{out}");
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"]);
    assert_eq!(lab.holders(ip(VIP6)).unwrap(), ["beta"]);
    // alpha's own addresses stay.
    let left = lab.addresses(alpha).unwrap();
    assert!(left.contains(&ip("192.0.2.11")), "{left:?}");
    assert!(left.contains(&ip("2001:db8::10")), "{left:?}");
    // A second run finds nothing to do and still succeeds.
    let again = cleanup();
    assert!(again.contains("no virtual address"), "{again}");
    // An unknown node is a clear error, not a silent success.
    let wrong = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.nodes[alpha].namespace])
        .args([env!("CARGO_BIN_EXE_vipd"), "cleanup", "--config", &config])
        .args(["--node", "omega"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("node \"omega\" is not in this file"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

/// The unit that shipped before resources needed root: only the network capabilities,
/// no new privileges, and a private, read-only view of the file systems.
const OLD_UNIT_SERVICE: &str = "[Service]
Type=simple
ExecStart=/usr/local/bin/vipd run --config /etc/vipd/cluster.toml
User=root
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=/run/vipd /proc/sys/net/ipv4/conf
";

/// The sandbox a unit's [Service] section puts its processes in, as a command prefix built
/// from setpriv and unshare (CI may have no running systemd): the capability bounding set,
/// no-new-privileges, and a private mount namespace for the settings that make one. A
/// setting it cannot reproduce fails the test, so the test follows the unit as it changes.
fn unit_sandbox(unit: &str) -> Vec<String> {
    let mut setpriv: Vec<String> = Vec::new();
    let mut private_mounts = false;
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        match key {
            "CapabilityBoundingSet" => {
                let caps: Vec<String> = value
                    .split_whitespace()
                    .map(|c| format!("+{}", c.to_ascii_lowercase().trim_start_matches("cap_")))
                    .collect();
                setpriv.push("--bounding-set".into());
                setpriv.push(format!("-all,{}", caps.join(",")));
            }
            "NoNewPrivileges" if value == "yes" => setpriv.push("--no-new-privs".into()),
            "ProtectSystem" | "ProtectHome" | "PrivateTmp" | "PrivateDevices"
            | "ReadWritePaths" | "ReadOnlyPaths" | "InaccessiblePaths"
                if !matches!(value, "no" | "false") =>
            {
                private_mounts = true
            }
            // For a root service, the bounding set decides; ambient capabilities matter
            // only to non-root users.
            "AmbientCapabilities" => {}
            "User" => assert_eq!(value, "root", "the test runs vipd as root"),
            "Type" | "NotifyAccess" | "WatchdogSec" | "Environment" | "EnvironmentFile"
            | "ExecStartPre" | "ExecStart" | "ExecReload" | "ExecStop" | "ExecStopPost"
            | "KillMode" | "KillSignal" | "TimeoutStopSec" | "TimeoutStartSec" | "Restart"
            | "RestartSec" | "RuntimeDirectory" | "StateDirectory" => {}
            other => panic!(
                "the unit sets {other}={value}, which this test does not reproduce: teach unit_sandbox"
            ),
        }
    }
    // systemd builds the mount namespace first, then drops the capabilities.
    let mut prefix = Vec::new();
    if private_mounts {
        // What systemd does for these settings: a mount namespace, slave to the host's.
        prefix.extend(["unshare", "--mount", "--propagation", "slave", "--"].map(String::from));
    }
    if !setpriv.is_empty() {
        prefix.push("setpriv".to_string());
        prefix.extend(setpriv);
        prefix.push("--".into());
    }
    prefix
}

/// True when `path` is a tmpfs mount point in the mount namespace of process `pid`.
fn tmpfs_mounted(pid: u32, path: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path) && l.contains(" - tmpfs "))
}

/// A lab whose vipd runs inside `unit`'s sandbox, with a resource that mounts a tmpfs on
/// `DIR/mnt/NODE` (stop unmounts it). The guard folder outlives the lab.
fn mounting_lab(tag: &str, unit: &str) -> (vipd::lab::RemoveOnDrop, String, Lab) {
    let dir = std::env::temp_dir().join(format!("vipd-unit-{tag}-{}", std::process::id()));
    let guard = vipd::lab::RemoveOnDrop(dir.clone());
    for node in ["alpha", "beta"] {
        std::fs::create_dir_all(dir.join("mnt").join(node)).unwrap();
    }
    let d = dir.to_str().unwrap().to_string();
    let wrapper = dir.join("vipd-in-unit-sandbox");
    let prefix = unit_sandbox(unit).join(" ");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {prefix} {} \"$@\"\n",
            env!("CARGO_BIN_EXE_vipd")
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&wrapper, permissions).unwrap();
    let toml = vipd::lab::cluster_file(
        2,
        &format!(
            r#"[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = {{ alpha = 200, beta = 100 }}
advert_interval = "100ms"
quorum = false

[[group.resource]]
name = "disk"
start = "mount -t tmpfs vipd-test {d}/mnt/$VIPD_NODE"
stop = "umount {d}/mnt/$VIPD_NODE"
check = "mountpoint -q {d}/mnt/$VIPD_NODE"
check_interval = "200ms"
timeout = "5s"
"#
        ),
    );
    let mut lab = Lab::new(tag, &toml, &wrapper).unwrap_or_else(|e| panic!("lab: {e}"));
    lab.start_all().unwrap();
    for node in 0..2 {
        lab.wait_ready(node, Duration::from_secs(5)).unwrap();
    }
    (guard, d, lab)
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool, lab: &Lab) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}\n{}", lab.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// netconf/vipd.service runs vipd with what resources need: a resource that mounts a file
/// system works, and moves with the group. Under the old unit's sandbox (network
/// capabilities only, no new privileges, private mounts) the same mount fails with
/// "permission denied" and the group is given up; both runs are made here.
#[test]
fn a_resource_can_mount_under_the_unit_s_sandbox_and_not_under_the_old_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let unit = include_str!("../netconf/vipd.service");
    {
        let (_dir, d, mut lab) = mounting_lab("unitnew", unit);
        lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{e} (did the resource fail?)\n{}", lab.logs()));
        let alpha = lab.node("alpha");
        let beta = lab.node("beta");
        let alpha_pid = lab.vipd_pid(alpha).unwrap();
        let alpha_mnt = format!("{d}/mnt/alpha");
        wait_until(
            "alpha's resource never mounted its tmpfs",
            Duration::from_secs(3),
            || tmpfs_mounted(alpha_pid, &alpha_mnt),
            &lab,
        );
        assert_eq!(lab.status(alpha).unwrap().groups[0].resources, "started");
        // alpha's link goes down: it gives the group up and its stop command unmounts;
        // beta takes over and mounts its own.
        lab.set_port(alpha, false).unwrap();
        let beta_pid = lab.vipd_pid(beta).unwrap();
        let beta_mnt = format!("{d}/mnt/beta");
        wait_until(
            "beta never mounted after the takeover",
            Duration::from_secs(3),
            || tmpfs_mounted(beta_pid, &beta_mnt),
            &lab,
        );
        wait_until(
            "alpha's stop command never unmounted",
            Duration::from_secs(3),
            || !tmpfs_mounted(alpha_pid, &alpha_mnt),
            &lab,
        );
        lab.stop(beta).unwrap();
        assert!(lab.log(beta).contains("stopped"), "{}", lab.log(beta));
    }
    {
        let (_dir, d, lab) = mounting_lab("unitold", OLD_UNIT_SERVICE);
        let alpha = lab.node("alpha");
        let alpha_pid = lab.vipd_pid(alpha).unwrap();
        wait_until(
            "alpha's resource did not fail under the old unit's sandbox",
            Duration::from_secs(3),
            || {
                lab.status(alpha)
                    .is_ok_and(|s| s.groups[0].resources.starts_with("failed: disk"))
            },
            &lab,
        );
        assert!(!tmpfs_mounted(alpha_pid, &format!("{d}/mnt/alpha")));
        assert!(
            lab.log(alpha).contains("permission denied"),
            "{}",
            lab.log(alpha)
        );
    }
}

// ---- issue 11: hardening ----

/// keepalived (alpha, priority 200) at `advert_int 0.3` while the cluster file says 100 ms;
/// vipd (beta, 150) follows keepalived's interval (RFC 9568 6.4.2): no flap, and a takeover
/// at 3 x 300 ms + skew after keepalived's last advert.
#[test]
fn keepalived_at_300ms_against_a_file_at_100ms_is_followed_without_a_flap() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(
        "ka300",
        &mixed_cluster(200, 150),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .unwrap_or_else(|e| panic!("lab: {e}"));
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    lab.start_keepalived(
        alpha,
        &vipd::lab::keepalived_conf(51, 200, "0.3", &["192.0.2.100/24"]),
    )
    .unwrap();
    lab.start(beta).unwrap();
    lab.wait_ready(beta, Duration::from_secs(5)).unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // vipd may hold the group at first (keepalived starts as backup and waits about 1 s);
    // then, about 5 s with keepalived as master: vipd never takes the group.
    std::thread::sleep(Duration::from_millis(100));
    let became_master = lab.status(beta).unwrap().groups[0].instances[0].became_master;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"], "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = lab.status(beta).unwrap();
    let instance = &status.groups[0].instances[0];
    assert_eq!(
        instance.became_master,
        became_master,
        "vipd flapped\n{}",
        lab.logs()
    );
    assert_eq!(instance.master.as_deref(), Some("alpha"));
    assert_eq!(instance.master_adver_interval_ms, 300.0);
    assert!(instance.interval_mismatch > 0);
    // keepalived crashes: 3 x 300 ms + (256 - 150) / 256 x 300 ms = 1024.2 ms after its last
    // advert, which left 0..300 ms before the crash.
    let start = Instant::now();
    lab.crash(alpha).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let took = start.elapsed();
    eprintln!("keepalived at 300 ms, file at 100 ms: vipd took over {took:?} after the crash");
    assert!(
        took >= Duration::from_millis(1024 - 300) && took <= Duration::from_millis(1024 + 150),
        "took {took:?}\n{}",
        lab.logs()
    );
    drop(lab);
    drop(guard);
}

/// Two groups with addresses in one /24 that is not the interface's own: the address added
/// first is the subnet's primary. Releasing it (a reload removes its group) must leave the
/// other group's address alone: promote_secondaries, set by vipd at start.
#[test]
fn releasing_the_first_address_of_a_subnet_leaves_the_other_groups_address() {
    let groups = |with_a: bool| {
        let a = "[[group]]\nname = \"a\"\nvrid = 51\naddresses = [\"198.51.100.10/24\"]\n\
                 priority = { alpha = 200, beta = 100 }\nadvert_interval = \"100ms\"\n\n";
        let b = "[[group]]\nname = \"b\"\nvrid = 52\naddresses = [\"198.51.100.20/24\"]\n\
                 priority = { alpha = 200, beta = 100 }\nadvert_interval = \"100ms\"\n";
        vipd::lab::cluster_file(2, &format!("{}{b}", if with_a { a } else { "" }))
    };
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(
        "promote",
        &groups(true),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .unwrap_or_else(|e| panic!("lab: {e}"));
    let alpha = lab.node("alpha");
    lab.start(alpha).unwrap();
    lab.wait_ready(alpha, Duration::from_secs(5)).unwrap();
    for vip in ["198.51.100.10", "198.51.100.20"] {
        lab.wait_for_holder(ip(vip), "alpha", Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    }
    let namespace = lab.nodes[alpha].namespace.clone();
    let shown = lab
        .exec(&namespace, &["ip", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    let secondary = shown
        .lines()
        .find(|l| l.contains("198.51.100.20/24"))
        .unwrap_or_default()
        .to_string();
    assert!(
        secondary.contains("secondary"),
        "198.51.100.10 came first: {shown}"
    );
    let sysctl = lab
        .exec(
            &namespace,
            &["cat", "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"],
        )
        .unwrap();
    assert!(
        lab.log(alpha).contains("promote_secondaries"),
        "{}",
        lab.log(alpha)
    );
    lab.write_config(&groups(false)).unwrap();
    lab.send_signal(alpha, nix::sys::signal::Signal::SIGHUP)
        .unwrap();
    let start = Instant::now();
    while lab.addresses(alpha).unwrap().contains(&ip("198.51.100.10")) {
        assert!(start.elapsed() < Duration::from_secs(3), "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lab.addresses(alpha).unwrap().contains(&ip("198.51.100.20")),
        "{}",
        lab.logs()
    );
    let log = lab.log(alpha);
    assert!(
        !log.contains("removed by someone else"),
        "the kernel deleted group b's address with group a's (promote_secondaries {}):\n{log}",
        sysctl.trim()
    );
    drop(lab);
    drop(guard);
}

/// Sends one gratuitous ARP for `address` at `mac` from the namespace's eth0.
fn gratuitous_arp_from(namespace: &str, address: std::net::Ipv4Addr, mac: [u8; 6]) {
    let frame = vipd::wire::announce::gratuitous_arp(mac, address);
    frame_from(namespace, &frame, [0xff; 6], 0x0806);
}

/// Sends one Ethernet frame from the namespace's eth0.
fn frame_from(namespace: &str, frame: &[u8], destination: [u8; 6], ethertype: u16) {
    Lab::in_namespace(namespace, || {
        use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};
        let socket = Socket::new(Domain::PACKET, Type::RAW, None).unwrap();
        let index = nix::net::if_::if_nametoindex("eth0").unwrap();
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll fits the storage.
        let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ethertype.to_be();
        ll.sll_ifindex = index as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&destination);
        // SAFETY: an initialised sockaddr_ll of its length.
        let to = unsafe {
            SockAddr::new(
                storage,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        socket.send_to(frame, &to).unwrap();
    })
    .unwrap();
}

#[test]
fn an_outsider_claiming_the_address_by_gratuitous_arp_is_answered_at_once() {
    let (_guard, mut lab) = elected("garp", &cluster(""));
    let alpha = lab.node("alpha");
    touch_from_client(&lab);
    let owner = lab.mac_of(alpha);
    assert_eq!(
        lab.client_neighbour(ip(VIP4)).unwrap().as_deref(),
        Some(owner.as_str())
    );
    let intruder_mac = [0x02, 0, 0, 0, 0x02, 0x66];
    let intruder = lab.add_host("intruder", &["192.0.2.201/24"]).unwrap();
    lab.exec(
        &intruder,
        &["ip", "link", "set", "eth0", "address", "02:00:00:00:02:66"],
    )
    .unwrap();
    gratuitous_arp_from(&intruder, "192.0.2.100".parse().unwrap(), intruder_mac);
    let start = Instant::now();
    // The client's entry follows the intruder (unless the owner's answer was quicker than
    // this loop), then comes back to the owner: (entry, when first seen).
    let mut seen: Vec<(Option<String>, Duration)> = Vec::new();
    while start.elapsed() < Duration::from_millis(500) {
        let entry = lab.client_neighbour(ip(VIP4)).unwrap();
        if seen.last().map(|(e, _)| e) != Some(&entry) {
            seen.push((entry, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let conflicts = lab.status(alpha).unwrap().address_conflicts;
    eprintln!(
        "client's entries after the intruder's ARP: {seen:?}; conflicts counted: {conflicts}"
    );
    let (last, back) = seen.last().cloned().expect("sampled");
    assert_eq!(last.as_deref(), Some(owner.as_str()), "{seen:?}");
    assert!(back < Duration::from_millis(100), "{seen:?}");
    assert_eq!(conflicts, 1, "{seen:?}");
    assert!(
        lab.log(alpha).contains("02:00:00:00:02:66"),
        "the offender's MAC is logged"
    );
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
}

/// The namespace's IPv6 link-local address on eth0.
fn link_local_of(lab: &Lab, namespace: &str) -> std::net::Ipv6Addr {
    let out = lab
        .exec(
            namespace,
            &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
        )
        .unwrap();
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("fe80::").map(|rest| format!("fe80::{rest}")))
        .and_then(|w| w.split('/').next().map(str::to_string))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no link-local in {out}"))
}

#[test]
fn a_stranger_posing_as_the_ipv6_master_cannot_make_a_backup_take_over() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let toml = vipd::lab::cluster_file(
        3,
        "[[group]]\nname = \"v6\"\nvrid = 51\naddresses = [\"2001:db8::100/64\"]\n\
         priority = { alpha = 200, beta = 150, gamma = 100 }\nadvert_interval = \"100ms\"\n",
    );
    let mut lab = Lab::new("ident", &toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    lab.start_cluster().unwrap();
    if let Err(e) = lab.wait_for_holder(ip(VIP6), "alpha", Duration::from_secs(3)) {
        panic!("{e}\n{}", lab.logs());
    }
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    // The daemons resolve their members and the link-local sources they hear (once a second).
    std::thread::sleep(Duration::from_millis(2500));
    let stranger = link_local_of(&lab, &lab.client.clone());
    let transitions = |node| lab.status(node).unwrap().groups[0].transitions.len();
    let before = transitions(beta);
    Lab::in_namespace(&lab.client, || {
        use socket2::{Domain, Protocol, Socket, Type};
        use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112))).unwrap();
        let index = nix::net::if_::if_nametoindex("eth0").unwrap();
        socket.set_multicast_hops_v6(255).unwrap();
        socket.set_multicast_if_v6(index).unwrap();
        let to: std::net::SocketAddr =
            std::net::SocketAddrV6::new(vipd::wire::ip::MULTICAST_V6, 0, 0, index).into();
        // alpha's priority three times, then priority 0: "the master is leaving".
        for priority in [200, 200, 200, 0] {
            let repr = Repr {
                version: Version::V3,
                vrid: 51,
                priority,
                interval_cs: 10,
                addresses: vec![ip(VIP6)],
                auth: V2Auth::default(),
            };
            let mut message = vec![0u8; repr.buffer_len()];
            let ends = IpEnds {
                src: IpAddr::V6(stranger),
                dst: IpAddr::V6(vipd::wire::ip::MULTICAST_V6),
            };
            repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
                .unwrap();
            socket.send_to(&message, &to.into()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .unwrap();
    // Two holders or a takeover would show within a master-down interval.
    let end = Instant::now() + Duration::from_millis(600);
    while Instant::now() < end {
        let holders = lab.holders(ip(VIP6)).unwrap();
        assert_eq!(holders, ["alpha"], "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        transitions(beta),
        before,
        "beta changed state\n{}",
        lab.logs()
    );
    let dropped = lab.status(beta).unwrap().dropped;
    eprintln!("beta dropped: {dropped:?}");
    // The real master's priority 0 (a graceful stop) still hands over at once: its
    // link-local is verified by the neighbour table.
    let stopped = Instant::now();
    lab.stop(alpha).unwrap();
    let took = lab
        .wait_for_holder(ip(VIP6), "beta", Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    eprintln!(
        "beta holds the address {took:?} after alpha's stop ({:?})",
        stopped.elapsed()
    );
    let status = lab.status(beta).unwrap();
    let last = status.groups[0].transitions.last().unwrap();
    assert_eq!(
        last.reason, "master left (priority 0)",
        "{:?}",
        status.groups[0].transitions
    );
    drop(lab);
    drop(guard);
}

#[test]
fn an_outsider_claiming_the_ipv6_address_by_neighbour_advertisement_is_answered_at_once() {
    let (_guard, mut lab) = elected("na", &cluster(""));
    let alpha = lab.node("alpha");
    lab.wait_for_holder(ip(VIP6), "alpha", Duration::from_secs(1))
        .unwrap();
    touch_from_client(&lab);
    let owner = lab.mac_of(alpha);
    let intruder = lab.add_host("intruder", &["2001:db8::201/64"]).unwrap();
    let intruder_mac = [0x02, 0, 0, 0, 0x02, 0x66];
    lab.exec(
        &intruder,
        &["ip", "link", "set", "eth0", "address", "02:00:00:00:02:66"],
    )
    .unwrap();
    let source = link_local_of(&lab, &intruder);
    let frame = vipd::wire::announce::unsolicited_na(intruder_mac, source, VIP6.parse().unwrap());
    frame_from(
        &intruder,
        &frame,
        vipd::wire::announce::ALL_NODES_MAC,
        0x86dd,
    );
    let start = Instant::now();
    let mut seen: Vec<(Option<String>, Duration)> = Vec::new();
    while start.elapsed() < Duration::from_millis(500) {
        let entry = lab.client_neighbour(ip(VIP6)).unwrap();
        if seen.last().map(|(e, _)| e) != Some(&entry) {
            seen.push((entry, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let conflicts = lab.status(alpha).unwrap().address_conflicts;
    eprintln!("client's entries after the intruder's NA: {seen:?}; conflicts counted: {conflicts}");
    let (last, back) = seen.last().cloned().expect("sampled");
    assert_eq!(last.as_deref(), Some(owner.as_str()), "{seen:?}");
    assert!(back < Duration::from_millis(100), "{seen:?}");
    assert_eq!(conflicts, 1, "{seen:?}\n{}", lab.logs());
    assert!(
        lab.log(alpha).contains("02:00:00:00:02:66"),
        "the offender's MAC is logged"
    );
}

/// Issue 11: a cold start of 250 IPv6 groups on three nodes at once never puts an address on
/// two nodes. The elections begin together (`Lab::start_all_at_once`: the processes start
/// cut off from the LAN, and their ports go up with one command), so that the test measures
/// the daemons and not how far apart a busy machine started three processes.
///
/// The sampler reads the nodes in order and back (0, 1, 2, 2, 1, 0): an address counts as
/// doubled only when a node had it in both of its reads and another node had it in a read
/// between them. Read once in order, an address that moved from node 0 to node 2 between
/// the two reads looked doubled although no instant had it on both.
///
/// Before (the three processes started one after the other; naive sampler): 171-199 of 250
/// addresses on two nodes at once around 0.5-1 s, sometimes all 250 for 1-2 s.
#[test]
fn a_cold_start_of_250_ipv6_groups_on_three_nodes_never_doubles_an_address() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut groups = String::new();
    for i in 0..250usize {
        let (a, b, c) = match i % 3 {
            0 => (200, 150, 100),
            1 => (100, 200, 150),
            _ => (150, 100, 200),
        };
        groups.push_str(&format!(
            "[[group]]\nname = \"g{i}\"\nvrid = {}\naddresses = [\"2001:db8::1:{:x}/64\"]\n\
             priority = {{ alpha = {a}, beta = {b}, gamma = {c} }}\nadvert_interval = \"100ms\"\n\n",
            i + 1,
            i + 1
        ));
    }
    let toml = vipd::lab::cluster_file(3, &groups);
    let mut lab = Lab::new("cold6", &toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    let virtual_addresses = |lab: &Lab, node: usize| -> std::collections::HashSet<IpAddr> {
        lab.addresses(node)
            .unwrap()
            .into_iter()
            .filter(|a| a.to_string().starts_with("2001:db8::1:"))
            .collect()
    };
    let start = lab.start_all_at_once().unwrap();
    let mut worst = (0usize, Duration::ZERO);
    let mut naive_worst = (0usize, Duration::ZERO);
    let mut samples = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let at = start.elapsed();
        let forth: Vec<_> = (0..3).map(|n| virtual_addresses(&lab, n)).collect();
        let back: Vec<_> = (0..3).rev().map(|n| virtual_addresses(&lab, n)).collect();
        let (f, b) = (&forth, |n: usize| &back[2 - n]);
        samples += 1;
        let doubled = f[0]
            .iter()
            .chain(f[1].iter())
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .filter(|a| {
                let on = |n: usize| f[n].contains(a) || b(n).contains(a);
                (f[0].contains(a) && b(0).contains(a) && (on(1) || on(2)))
                    || (f[1].contains(a) && b(1).contains(a) && on(2))
            })
            .count();
        if doubled > worst.0 {
            worst = (doubled, at);
        }
        let mut seen = std::collections::HashMap::<&IpAddr, usize>::new();
        for address in f.iter().flatten() {
            *seen.entry(address).or_default() += 1;
        }
        let naive = seen.values().filter(|n| **n > 1).count();
        if naive > naive_worst.0 {
            naive_worst = (naive, at);
        }
    }
    let held: usize = (0..3).map(|n| virtual_addresses(&lab, n).len()).sum();
    eprintln!(
        "{samples} samples; most addresses on two nodes at once: {worst:?} \
         (read once in order: {naive_worst:?}); held: {held}"
    );
    assert_eq!(
        held,
        250,
        "every group settles on one node\n{}",
        lab.logs().chars().take(4000).collect::<String>()
    );
    let g0: String = lab
        .logs()
        .lines()
        .filter(|l| l.contains("group=g0 ") || l.starts_with("---") || l.contains("WARN"))
        .take(60)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        worst.0, 0,
        "addresses on two nodes at once: {worst:?}\n{g0}"
    );
    drop(lab);
    drop(guard);
}

/// Which live nodes hold `address` on any of their links (with `vmac` the virtual addresses
/// live on the `vrrp.<vrid>` macvlan, not on eth0).
fn holders_on_any_link(lab: &Lab, address: IpAddr) -> Vec<String> {
    let mut holders = Vec::new();
    for node in lab.nodes.iter().filter(|n| !n.crashed) {
        let out = lab
            .exec(&node.namespace, &["ip", "-j", "addr", "show"])
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let held = json.as_array().into_iter().flatten().any(|link| {
            link["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| i["local"].as_str() == Some(address.to_string().as_str()))
        });
        if held {
            holders.push(node.name.clone());
        }
    }
    holders
}

fn wait_for_holder_on_any_link(lab: &Lab, address: IpAddr, node: &str, limit: Duration) {
    let start = Instant::now();
    while holders_on_any_link(lab, address) != [node.to_string()] {
        assert!(
            start.elapsed() < limit,
            "{address} held by {:?}, not by {node} alone, after {limit:?}\n{}",
            holders_on_any_link(lab, address),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ARP replies the client hears for `address` after forgetting it and pinging it: the
/// senders' MACs, one per reply.
fn arp_replies_for(lab: &Lab, address: &str) -> Vec<String> {
    let _ = lab.exec(&lab.client, &["ip", "neigh", "flush", "dev", "eth0"]);
    let capture = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.client])
        .args(["timeout", "2", "tcpdump", "-i", "eth0", "-nn", "-l", "arp"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // No ping in the lab: the client's probe makes the kernel ask.
    let probe = lab
        .start_probe(ip(address), Duration::from_millis(50))
        .unwrap();
    let _ = lab.finish_probe(probe);
    let out = capture.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("client's ARP capture:\n{text}");
    text.lines()
        .filter(|l| l.contains(&format!("Reply {address} is-at ")))
        .map(|l| {
            l.split("is-at ")
                .nth(1)
                .unwrap_or("")
                .split([',', ' '])
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn with_vmac_the_client_never_sees_the_mac_change_on_a_failover() {
    vmac_failover(
        "vmac",
        VIP4,
        "192.0.2.100/24",
        "vrrp.51",
        "00:00:5e:00:01:33",
    );
}

#[test]
fn with_vmac_the_ipv6_client_never_sees_the_mac_change_on_a_failover() {
    vmac_failover(
        "vmac6",
        VIP6,
        "2001:db8::100/64",
        "vrrp6.51",
        "00:00:5e:00:02:33",
    );
}

/// A frame the client captured: its Ethernet source, the VRID when it is a VRRP advert
/// (priority above 0), and the address it tells the LAN about when it is ARP (sender) or a
/// neighbour advertisement (target).
#[derive(Debug)]
struct CapturedFrame {
    source: String,
    vrid: Option<u8>,
    announces: Option<String>,
}

/// tshark on the client's link, writing one line per frame to a file of the lab.
struct SourceCapture {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl SourceCapture {
    fn start(lab: &Lab) -> SourceCapture {
        let path = lab.dir.join("sources.capture");
        let out = std::fs::File::create(&path).unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.client])
            .args(["tshark", "-i", "eth0", "-n", "-l", "-f"])
            .arg("ip proto 112 or ip6 proto 112 or arp or icmp6")
            .args(["-T", "fields", "-E", "separator=|"])
            .args(["-e", "eth.src", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio"])
            .args([
                "-e",
                "arp.src.proto_ipv4",
                "-e",
                "icmpv6.nd.na.target_address",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // tshark takes a while to open the link.
        std::thread::sleep(Duration::from_millis(1500));
        SourceCapture { child, path }
    }

    /// Ends the capture (by its pid) and reads what it saw.
    fn finish(mut self) -> Vec<CapturedFrame> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('|').collect();
                let field = |i: usize| {
                    fields
                        .get(i)
                        .filter(|f| !f.is_empty())
                        .map(|f| f.to_string())
                };
                let vrid = field(1)
                    .and_then(|v| v.parse().ok())
                    .filter(|_| field(2).is_some_and(|p| p != "0"));
                Some(CapturedFrame {
                    source: field(0)?,
                    vrid,
                    announces: field(3).or(field(4)),
                })
            })
            .collect()
    }
}

impl Drop for SourceCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `vmac = true` group (VRID 51) with one address: alpha master on `link`, the client's
/// entry at `vmac`; alpha crashes, beta takes over, the entry never changed.
fn vmac_failover(tag: &str, vip: &str, written: &str, link_name: &str, vmac: &str) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let toml = vipd::lab::cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"{written}\"]\n\
             priority = {{ alpha = 200, beta = 150, gamma = 100 }}\nadvert_interval = \"100ms\"\nvmac = true\n"
        ),
    );
    let v4 = ip(vip).is_ipv4();
    let mut lab = Lab::new(tag, &toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    // What the client sees on the wire from start to failover: adverts, ARP, NA.
    let capture = SourceCapture::start(&lab);
    lab.start_cluster().unwrap();
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    wait_for_holder_on_any_link(&lab, ip(vip), "alpha", Duration::from_secs(3));
    // On the macvlan, never on the parent.
    assert!(!lab.addresses(alpha).unwrap().contains(&ip(vip)));
    let link = lab
        .exec(
            &lab.nodes[alpha].namespace,
            &["ip", "-j", "link", "show", link_name],
        )
        .unwrap();
    assert!(link.contains(vmac), "{link}");
    if v4 {
        // Only the virtual MAC answers ARP for the address: no parent (alpha's, beta's, gamma's).
        let replies = arp_replies_for(&lab, vip);
        assert!(
            !replies.is_empty(),
            "no ARP reply for {vip}\n{}",
            lab.logs()
        );
        assert!(
            replies.iter().all(|m| m == vmac),
            "replies from {replies:?}"
        );
    }
    let probe = lab.start_probe(ip(vip), Duration::from_millis(50)).unwrap();
    assert!(
        !lab.finish_probe(probe).unwrap().is_empty(),
        "client reaches {vip}\n{}",
        lab.logs()
    );
    assert_eq!(
        lab.client_neighbour(ip(vip)).unwrap().as_deref(),
        Some(vmac)
    );

    let probe = lab
        .start_probe(ip(vip), Duration::from_millis(1200))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let crash_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    lab.crash(alpha).unwrap();
    wait_for_holder_on_any_link(&lab, ip(vip), "beta", Duration::from_secs(2));
    let answers = lab.finish_probe(probe).unwrap();
    let handover = probe::handover(&answers, crash_us).expect("the client saw beta answer");
    assert_eq!(
        (handover.from.as_str(), handover.to.as_str()),
        ("alpha", "beta")
    );
    // The client's entry never changed MAC.
    assert_eq!(
        lab.client_neighbour(ip(vip)).unwrap().as_deref(),
        Some(vmac)
    );
    assert_ne!(lab.mac_of(beta), vmac);
    // RFC 9568 7.3: the adverts (alpha's, then beta's) and the announcements leave from the
    // virtual MAC, never from a node's own.
    std::thread::sleep(Duration::from_millis(300));
    let frames = capture.finish();
    let adverts: Vec<&CapturedFrame> = frames.iter().filter(|f| f.vrid == Some(51)).collect();
    assert!(adverts.len() > 10, "adverts seen: {frames:?}");
    assert!(
        adverts.iter().all(|f| f.source == vmac),
        "adverts from {:?}",
        adverts
            .iter()
            .map(|f| &f.source)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let announcements: Vec<&CapturedFrame> = frames
        .iter()
        .filter(|f| f.announces.as_deref() == Some(vip))
        .collect();
    assert!(!announcements.is_empty(), "no ARP/NA for {vip}: {frames:?}");
    assert!(
        announcements.iter().all(|f| f.source == vmac),
        "ARP/NA for {vip} from {:?}",
        announcements
            .iter()
            .map(|f| &f.source)
            .collect::<std::collections::BTreeSet<_>>()
    );
    eprintln!(
        "{} adverts and {} ARP/NA for {vip}, all from {vmac}",
        adverts.len(),
        announcements.len()
    );
    if v4 {
        let replies = arp_replies_for(&lab, vip);
        assert!(
            !replies.is_empty(),
            "no ARP reply for {vip} after the failover"
        );
        assert!(
            replies.iter().all(|m| m == vmac),
            "replies from {replies:?}"
        );
    }
    // The killed alpha still has its link and address: `vipd cleanup` deletes both.
    let alpha_ns = lab.nodes[alpha].namespace.clone();
    let links = lab.exec(&alpha_ns, &["ip", "link", "show"]).unwrap();
    assert!(links.contains(link_name), "{links}");
    let config = lab.config_path.to_str().unwrap().to_string();
    let out = lab
        .exec(
            &alpha_ns,
            &[
                env!("CARGO_BIN_EXE_vipd"),
                "cleanup",
                "--config",
                &config,
                "--node",
                "alpha",
            ],
        )
        .unwrap();
    assert!(
        out.contains(&format!("deleted the virtual-MAC link {link_name}")),
        "{out}"
    );
    let links = lab.exec(&alpha_ns, &["ip", "link", "show"]).unwrap();
    assert!(!links.contains(link_name), "{links}");
    // A graceful stop takes the link away with the addresses.
    lab.stop(beta).unwrap();
    let links = lab
        .exec(&lab.nodes[beta].namespace, &["ip", "link", "show"])
        .unwrap();
    assert!(!links.contains(link_name), "{links}");
    drop(lab);
    drop(guard);
}

#[test]
fn with_vmac_a_restart_after_sigkill_reuses_the_link_and_empties_it_first() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let toml = vipd::lab::cluster_file(
        3,
        "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = { alpha = 200, beta = 150, gamma = 100 }\nadvert_interval = \"100ms\"\n\
         preempt = false\nvmac = true\n",
    );
    let mut lab = Lab::new("vmacstale", &toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    lab.start_cluster().unwrap();
    let alpha = lab.node("alpha");
    wait_for_holder_on_any_link(&lab, ip(VIP4), "alpha", Duration::from_secs(3));
    lab.kill(alpha).unwrap();
    let start = Instant::now();
    while !holders_on_any_link(&lab, ip(VIP4)).contains(&"beta".to_string()) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "beta never took over"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    lab.start(alpha).unwrap();
    lab.wait_ready(alpha, Duration::from_secs(3)).unwrap();
    wait_for_holder_on_any_link(&lab, ip(VIP4), "beta", Duration::from_secs(1));
    let log = lab.log(alpha);
    assert!(
        log.contains("vrrp.51: reusing the existing virtual-MAC link"),
        "{log}"
    );
    assert!(
        log.contains("removing a stale virtual address from vrrp.51"),
        "{log}"
    );
    // Taken off beta's macvlan by hand: put back there (the node hears the macvlan's events).
    let beta = lab.node("beta");
    lab.exec(
        &lab.nodes[beta].namespace,
        &["ip", "addr", "del", "192.0.2.100/24", "dev", "vrrp.51"],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    wait_for_holder_on_any_link(&lab, ip(VIP4), "beta", Duration::from_secs(1));
    let on_link = lab
        .exec(
            &lab.nodes[beta].namespace,
            &["ip", "addr", "show", "dev", "vrrp.51"],
        )
        .unwrap();
    assert!(on_link.contains("192.0.2.100/24"), "{on_link}");
    drop(lab);
    drop(guard);
}

/// How a handover is asked for in [`handover_in_one_subnet`].
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// SIGTERM: priority 0, addresses released.
    Stop,
    /// `vipd drain`: make-before-break for every group.
    Drain,
}

/// What a client and a sampler saw while `count` IPv4 groups in 198.51.100.0/24 (alpha 200,
/// beta 100) moved from alpha to beta: each probe's outage (first, middle and last address),
/// the most addresses on no node and on both nodes at one sample, and how often alpha said
/// someone else removed an address.
struct SubnetHandover {
    outages: Vec<Duration>,
    most_on_none: usize,
    most_on_both: usize,
    put_back: usize,
}

fn handover_in_one_subnet(count: usize, leave: Leave) -> SubnetHandover {
    let mut groups = String::new();
    for i in 0..count {
        groups.push_str(&format!(
            "[[group]]\nname = \"g{i}\"\nvrid = {}\naddresses = [\"198.51.100.{}/24\"]\n\
             priority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"100ms\"\n\n",
            i + 1,
            i + 1
        ));
    }
    let toml = vipd::lab::cluster_file(2, &groups);
    let mut lab = Lab::new("subnet", &toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    // The client on the virtual addresses' subnet too.
    lab.exec(
        &lab.client,
        &["ip", "addr", "add", "198.51.100.254/24", "dev", "eth0"],
    )
    .unwrap();
    lab.start_cluster().unwrap();
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    let virtuals = |lab: &Lab, node: usize| -> std::collections::HashSet<IpAddr> {
        lab.addresses(node)
            .unwrap()
            .into_iter()
            .filter(|a| a.to_string().starts_with("198.51.100."))
            .collect()
    };
    let start = Instant::now();
    while virtuals(&lab, alpha).len() < count || !virtuals(&lab, beta).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut targets = vec![1, count / 2 + 1, count];
    targets.dedup();
    let probes: Vec<_> = targets
        .iter()
        .map(|n| {
            lab.start_probe(ip(&format!("198.51.100.{n}")), Duration::from_millis(2500))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let asked_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    match leave {
        Leave::Stop => lab
            .send_signal(alpha, nix::sys::signal::Signal::SIGTERM)
            .unwrap(),
        Leave::Drain => {
            let _ = lab
                .vipd(alpha, &["drain"])
                .map(|o| assert!(o.status.success(), "{o:?}"));
        }
    }
    // Alpha is read before beta: while the groups move from alpha to beta, an address seen
    // on neither was on neither for the whole time between the two reads.
    let (mut most_on_none, mut most_on_both) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        let on_alpha = virtuals(&lab, alpha);
        let on_beta = virtuals(&lab, beta);
        let on_alpha_after = virtuals(&lab, alpha);
        let none = (1..=count)
            .map(|n| ip(&format!("198.51.100.{n}")))
            .filter(|a| !on_alpha.contains(a) && !on_beta.contains(a))
            .count();
        let both = on_beta
            .iter()
            .filter(|a| on_alpha.contains(*a) && on_alpha_after.contains(*a))
            .count();
        most_on_none = most_on_none.max(none);
        most_on_both = most_on_both.max(both);
    }
    let outages = probes
        .into_iter()
        .zip(&targets)
        .map(|(probe, n)| {
            let answers = lab.finish_probe(probe).unwrap();
            probe::handover(&answers, asked_us)
                .unwrap_or_else(|| panic!("198.51.100.{n}: no move seen\n{}", lab.logs()))
                .outage()
        })
        .collect();
    assert_eq!(virtuals(&lab, beta).len(), count, "{}", lab.logs());
    let put_back = lab.log(alpha).matches("putting it back").count();
    SubnetHandover {
        outages,
        most_on_none,
        most_on_both,
        put_back,
    }
}

/// Issue 11: every group's handover at 250 groups in one /24 as clean as one group's (the
/// kernel's promote_secondaries default once deleted every secondary with its primary: a
/// graceful stop left 249-250 addresses on no node for 28-32 ms, a probe lost 52-62 ms, and
/// the node giving way logged "putting it back" up to 383 times). Three trials of each, a
/// client probing the first, middle and last address every millisecond.
#[test]
fn a_handover_of_250_groups_in_one_subnet_is_as_clean_as_one() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let only = std::env::var("VIPD_LAB_LEAVE").unwrap_or_default();
    for leave in [Leave::Stop, Leave::Drain] {
        if !only.is_empty() && !format!("{leave:?}").eq_ignore_ascii_case(&only) {
            continue;
        }
        for count in [1, 250] {
            let trials: Vec<SubnetHandover> = (0..3)
                .map(|_| handover_in_one_subnet(count, leave))
                .collect();
            let mut outages: Vec<Duration> =
                trials.iter().flat_map(|t| t.outages.clone()).collect();
            outages.sort();
            let ms = |d: &Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
            eprintln!(
                "{leave:?}, {count} group(s): outages (ms) {}; median {} worst {}; \
                 most on no node {:?}, on both {:?}, put back {:?}",
                outages.iter().map(ms).collect::<Vec<_>>().join(" "),
                ms(&outages[outages.len() / 2]),
                ms(outages.last().unwrap()),
                trials.iter().map(|t| t.most_on_none).collect::<Vec<_>>(),
                trials.iter().map(|t| t.most_on_both).collect::<Vec<_>>(),
                trials.iter().map(|t| t.put_back).collect::<Vec<_>>(),
            );
            // One group loses a few milliseconds in this lab (debug build, shared cores);
            // the 250 groups' addresses must not lose tens as they did.
            assert!(
                *outages.last().unwrap() < Duration::from_millis(30),
                "{leave:?}, {count} groups: {outages:?}"
            );
            assert!(trials.iter().all(|t| t.put_back == 0));
        }
    }
    drop(guard);
}
