//! The virtual name in the lab: every node serves the cluster zone, dig (Debian's dnsutils)
//! in the client namespace is the client, Knot DNS (Debian's knot) in its own namespace is
//! the site's DNS server for forwarding and RFC 2136 registration. Needs root.

use std::net::{IpAddr, UdpSocket};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vipd::lab::Lab;

static SERIAL: Mutex<()> = Mutex::new(());

const VIP4: &str = "192.0.2.100";
const SITE_DNS: &str = "192.0.2.53";
/// A TSIG secret for the lab only (base64 of 32 bytes).
const TSIG_SECRET: &str = "dmlwZC1sYWItdHNpZy1zZWNyZXQtMzItYnl0ZXMhISE=";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn cluster(dns_extra: &str) -> String {
    let big: Vec<String> = (150..190).map(|i| format!("\"192.0.2.{i}/24\"")).collect();
    vipd::lab::cluster_file(
        2,
        &format!(
            r#"
[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24", "2001:db8::100/64"]
names = ["nbu-master"]
priority = {{ alpha = 200, beta = 100 }}
advert_interval = "100ms"

[[group]]
name = "big"
vrid = 52
addresses = [{}]
names = ["big"]
priority = {{ alpha = 200, beta = 100 }}
advert_interval = "100ms"

[dns]
ttl = "5s"
negative_ttl = "3s"
{dns_extra}
"#,
            big.join(", ")
        ),
    )
}

fn started(tag: &str, toml: &str) -> (std::sync::MutexGuard<'static, ()>, Lab) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(tag, toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    (guard, {
        lab.start_all().unwrap();
        for node in 0..lab.nodes.len() {
            lab.wait_ready(node, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        lab
    })
}

/// dig from the client namespace; returns its whole output.
fn dig(lab: &Lab, args: &[&str]) -> String {
    let mut all = vec!["dig", "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    lab.exec(&lab.client, &all)
        .unwrap_or_else(|e| panic!("dig {args:?}: {e}"))
}

fn short(lab: &Lab, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    let mut lines: Vec<String> = dig(lab, &all).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn every_record_at_the_virtual_and_the_node_addresses_over_udp_and_tcp() {
    let (_guard, lab) = started("records", &cluster(""));
    for server in [
        "@192.0.2.100",
        "@192.0.2.11",
        "@192.0.2.12",
        "@2001:db8::100",
    ] {
        for transport in ["+notcp", "+tcp"] {
            let ask = |name: &str, rtype: &str| short(&lab, &[server, transport, name, rtype]);
            assert_eq!(
                ask("nbu-master.cluster.example.", "A"),
                ["192.0.2.100"],
                "{server} {transport}"
            );
            assert_eq!(
                ask("nbu-master.cluster.example.", "AAAA"),
                ["2001:db8::100"]
            );
            assert_eq!(ask("alpha.cluster.example.", "A"), ["192.0.2.11"]);
            assert_eq!(ask("beta.cluster.example.", "A"), ["192.0.2.12"]);
            assert_eq!(
                ask("cluster.example.", "NS"),
                ["alpha.cluster.example.", "beta.cluster.example."]
            );
            let soa = ask("cluster.example.", "SOA");
            assert!(
                soa[0].starts_with("alpha.cluster.example. hostmaster.cluster.example. "),
                "{soa:?}"
            );
            assert_eq!(
                ask("nbu-master.cluster.example.", "TXT"),
                ["\"owner=alpha\" \"group=master-server\""]
            );
        }
    }
    // The answer to a question sent to the virtual address comes from it: dig checks.
    let out = dig(&lab, &["@192.0.2.100", "nbu-master.cluster.example.", "A"]);
    assert!(
        out.contains("SERVER: 192.0.2.100#53(192.0.2.100) (UDP)"),
        "{out}"
    );
    assert!(out.contains("flags: qr aa"), "authoritative: {out}");
    assert!(!out.contains(" ra"), "no recursion offered: {out}");
    assert!(
        out.contains("ANSWER SECTION:\nnbu-master.cluster.example. 5\tIN\tA\t192.0.2.100"),
        "TTL 5: {out}"
    );
}

#[test]
fn nxdomain_nodata_refused_and_edns() {
    let (_guard, lab) = started("rcodes", &cluster(""));
    let out = dig(&lab, &["@192.0.2.100", "nothing.cluster.example.", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(
        out.contains("AUTHORITY SECTION:\ncluster.example.\t3\tIN\tSOA"),
        "SOA with the negative TTL: {out}"
    );
    let out = dig(&lab, &["@192.0.2.100", "alpha.cluster.example.", "MX"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0,"),
        "NODATA: {out}"
    );
    assert!(out.contains("AUTHORITY SECTION:"), "{out}");
    let out = dig(&lab, &["@192.0.2.100", "www.example.org.", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    let out = dig(
        &lab,
        &[
            "@192.0.2.100",
            "+bufsize=4096",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(
        out.contains("EDNS: version: 0, flags:; udp: 1232"),
        "EDNS answered, capped at 1232: {out}"
    );
    let out = dig(
        &lab,
        &[
            "@192.0.2.100",
            "+edns=1",
            "+noednsnegotiation",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(out.contains("status: BADVERS"), "{out}");
    let out = dig(&lab, &["@192.0.2.100", "cluster.example.", "AXFR"]);
    assert!(
        out.contains("Transfer failed") || out.contains("REFUSED"),
        "no zone transfers: {out}"
    );
}

#[test]
fn large_answers_are_truncated_over_udp_and_complete_over_tcp() {
    let (_guard, lab) = started("truncate", &cluster(""));
    let out = dig(
        &lab,
        &[
            "@192.0.2.11",
            "+noedns",
            "+ignore",
            "big.cluster.example.",
            "A",
        ],
    );
    assert!(
        out.contains("flags: qr aa tc"),
        "truncated without EDNS: {out}"
    );
    // dig retries over TCP by itself and gets all 40.
    let out = dig(
        &lab,
        &["@192.0.2.11", "+noedns", "big.cluster.example.", "A"],
    );
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert_eq!(
        short(
            &lab,
            &["@192.0.2.11", "+noedns", "big.cluster.example.", "A"]
        )
        .len(),
        40
    );
    let status = lab.status(lab.node("alpha")).unwrap();
    assert!(status.dns.unwrap().truncated >= 2);
}

#[test]
fn after_a_crash_the_virtual_address_answers_again_and_names_the_new_owner() {
    let (_guard, mut lab) = started("failover", &cluster(""));
    let alpha = lab.node("alpha");
    let serial_before = lab.status(lab.node("beta")).unwrap().dns.unwrap().serial;
    let start = Instant::now();
    lab.crash(alpha).unwrap();
    // Within the failover bound (300 ms master-down interval) plus a margin, dig at the
    // virtual address is answered again, now by beta.
    let mut answered = None;
    while start.elapsed() < Duration::from_secs(2) {
        let txt = short(
            &lab,
            &[
                "@192.0.2.100",
                "+time=1",
                "nbu-master.cluster.example.",
                "TXT",
            ],
        );
        if txt == ["\"owner=beta\" \"group=master-server\""] {
            answered = Some(start.elapsed());
            break;
        }
    }
    let answered = answered.unwrap_or_else(|| panic!("no answer naming beta\n{}", lab.logs()));
    assert!(
        answered < Duration::from_millis(1300),
        "answered after {answered:?}"
    );
    let out = dig(&lab, &["@192.0.2.100", "nbu-master.cluster.example.", "A"]);
    assert!(
        out.contains("192.0.2.100") && out.contains("flags: qr aa"),
        "{out}"
    );
    let serial_after = lab.status(lab.node("beta")).unwrap().dns.unwrap().serial;
    assert!(
        serial_after > serial_before,
        "the serial moved: {serial_before} -> {serial_after}"
    );
    // beta's own address answers too, and says the same.
    assert_eq!(
        short(&lab, &["@192.0.2.12", "nbu-master.cluster.example.", "TXT"]),
        ["\"owner=beta\" \"group=master-server\""]
    );
}

#[test]
fn malformed_and_flooding_clients_do_not_stop_the_server_or_the_election() {
    let (_guard, lab) = started("hostile", &cluster("rate_limit = 100"));
    let alpha = lab.node("alpha");
    let transitions_before = lab.status(alpha).unwrap().groups[0].transitions.len();
    Lab::in_namespace(&lab.client, || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        // Garbage of every size, a truncated query, a response instead of a query, and an
        // oversized datagram.
        for len in [0usize, 1, 5, 11, 12, 13, 40, 511, 4000, 9000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let _ = socket.send_to(&bytes, "192.0.2.100:53");
        }
        let mut truncated = vec![
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 10, b'n', b'b',
        ];
        let _ = socket.send_to(&truncated, "192.0.2.100:53");
        truncated[2] = 0x81;
        let _ = socket.send_to(&truncated, "192.0.2.100:53");
        // Raw IP datagrams to port 53 with a bad UDP checksum: the kernel drops them.
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        let bogus = [0x30, 0x39, 0, 53, 0, 12, 0xde, 0xad, 1, 2, 3, 4];
        let _ = raw.send_to(
            &bogus,
            &"192.0.2.100:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        );
        // A flood well over the limit of 100 per second from this one client.
        let query = [
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'b', b'i', b'g', 7, b'c', b'l', b'u',
            b's', b't', b'e', b'r', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1,
        ];
        for _ in 0..2000 {
            let _ = socket.send_to(&query, "192.0.2.100:53");
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = lab.status(alpha).unwrap();
    let dns = status.dns.clone().unwrap();
    assert!(dns.dropped_malformed >= 5, "{dns:?}");
    assert!(dns.formerr >= 1, "{dns:?}");
    // Some of the flood overflows the socket buffer before vipd reads it; of what it read,
    // all but about a second's allowance was dropped.
    assert!(
        dns.dropped_rate_limited >= 500 && dns.answers <= 300,
        "{dns:?}"
    );
    // Still answering (another client address: the nodes themselves are clients too).
    let out = lab
        .exec(
            &lab.nodes[1].namespace,
            &[
                "dig",
                "+short",
                "@192.0.2.100",
                "nbu-master.cluster.example.",
                "A",
            ],
        )
        .unwrap();
    assert_eq!(out.trim(), "192.0.2.100");
    // And the election never noticed.
    assert_eq!(status.groups[0].transitions.len(), transitions_before);
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
}

/// Starts Knot DNS (Debian's) at 192.0.2.53 as the site's DNS server for site.example;
/// returns knotd's pid.
fn start_site_dns(lab: &mut Lab, tsig: bool) -> u32 {
    let namespace = lab.add_host("sitedns", &["192.0.2.53/24"]).unwrap();
    let work = lab.dir.join("knot");
    std::fs::create_dir_all(&work).unwrap();
    let zone_file = lab.dir.join("site.example.zone");
    std::fs::write(
        &zone_file,
        "$ORIGIN site.example.\n$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 5\n@ NS ns\nns A 192.0.2.53\nwww A 198.51.100.80\n",
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/knot/run-knot.sh");
    let log = std::fs::File::create(lab.dir.join("knot.log")).unwrap();
    let mut command = Command::new("bash");
    command
        .arg(script)
        .arg(&namespace)
        .arg(&work)
        .arg(SITE_DNS)
        .arg("site.example.")
        .arg(&zone_file);
    if tsig {
        command.args(["vipd-key.", TSIG_SECRET]);
    }
    let pid = lab
        .spawn(command.stdout(log.try_clone().unwrap()).stderr(log))
        .unwrap();
    let start = Instant::now();
    let answers = |lab: &Lab| {
        lab.exec(
            &lab.client,
            &[
                "dig",
                "+short",
                "+time=1",
                "+tries=1",
                "@192.0.2.53",
                "site.example.",
                "SOA",
            ],
        )
    };
    while answers(lab).map_or(true, |out| out.trim().is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "knot did not start: {}",
            std::fs::read_to_string(lab.dir.join("knot.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pid
}

#[test]
fn names_outside_the_zone_are_forwarded_to_the_upstream() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(
        "forward",
        &cluster("forwarders = [\"192.0.2.53\"]"),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .unwrap();
    let _ = start_site_dns(&mut lab, false);
    lab.start_all().unwrap();
    lab.wait_ready(0, Duration::from_secs(5)).unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
        .unwrap();
    let out = dig(&lab, &["@192.0.2.100", "www.site.example.", "A"]);
    assert!(
        out.contains("www.site.example.\t60\tIN\tA\t198.51.100.80"),
        "{out}"
    );
    assert!(
        out.contains(" ra"),
        "recursion available when forwarding: {out}"
    );
    let out = dig(&lab, &["@192.0.2.100", "+tcp", "www.site.example.", "A"]);
    assert!(out.contains("198.51.100.80"), "over TCP too: {out}");
    // The cluster's own names stay authoritative.
    let out = dig(&lab, &["@192.0.2.100", "nbu-master.cluster.example.", "A"]);
    assert!(out.contains("flags: qr aa"), "{out}");
    assert!(lab.status(0).unwrap().dns.unwrap().forwarded >= 2);
    drop(lab);
    drop(guard);
}

#[test]
fn the_owner_registers_the_virtual_name_in_the_site_dns_with_tsig() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let key_line = "key_file = \"KEYFILE\"";
    let toml = cluster(&format!(
        "[dns.update]\nserver = \"192.0.2.53\"\nzone = \"site.example.\"\nkey_name = \"vipd-key.\"\n{key_line}\nttl = \"30s\""
    ));
    let key_file = std::env::temp_dir().join(format!("vipd-lab-tsig-{}.key", std::process::id()));
    std::fs::write(&key_file, format!("{TSIG_SECRET}\n")).unwrap();
    // Removed even when an assertion below fails.
    let _cleanup = vipd::lab::RemoveOnDrop(key_file.clone());
    let toml = toml.replace("KEYFILE", key_file.to_str().unwrap());
    let mut lab = Lab::new("register", &toml, env!("CARGO_BIN_EXE_vipd").as_ref()).unwrap();
    let _ = start_site_dns(&mut lab, true);
    lab.start_all().unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
        .unwrap();
    let wait_for = |lab: &Lab, want: &[&str]| {
        let start = Instant::now();
        loop {
            let got = short(lab, &["@192.0.2.53", "nbu-master.site.example.", "A"]);
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "site DNS has {got:?}, want {want:?}\n{}",
                lab.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&lab, &["192.0.2.100"]);
    assert_eq!(
        short(&lab, &["@192.0.2.53", "nbu-master.site.example.", "AAAA"]),
        ["2001:db8::100"]
    );
    assert!(
        lab.log(0).contains("registered in the site's DNS"),
        "{}",
        lab.log(0)
    );
    // The operator retires the name (the site DNS is only reachable inside the lab: the
    // command runs in the client namespace); after a failover the new owner registers again.
    let out = lab
        .exec(
            &lab.client,
            &[
                env!("CARGO_BIN_EXE_vipd"),
                "dns-unregister",
                "--group",
                "master-server",
                "--config",
                lab.config_path.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(out.contains("removed nbu-master.site.example."), "{out}");
    wait_for(&lab, &[]);
    lab.crash(0).unwrap();
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    wait_for(&lab, &["192.0.2.100"]);
    assert!(
        lab.log(1).contains("registered in the site's DNS"),
        "{}",
        lab.log(1)
    );
    drop(lab);
    drop(guard);
}

/// `dig +tcp` from `namespace` until it answers the virtual name: how long that took
/// (None: no TCP answer within `limit`).
fn first_tcp_answer(lab: &Lab, namespace: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let out = lab
            .exec(
                namespace,
                &[
                    "dig",
                    "+tcp",
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "@192.0.2.100",
                    "nbu-master.cluster.example.",
                    "A",
                ],
            )
            .unwrap_or_default();
        if out.trim() == "192.0.2.100" {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// RFC 7766 6.2.3 and 10: one client holding many idle or half-sent TCP connections must not
/// lock the others out (resolvers retry over TCP after a truncated answer).
#[test]
fn one_client_with_hundreds_of_idle_tcp_connections_does_not_lock_out_the_others() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let (_guard, lab) = started("tcpidle", &cluster(""));
    let beta_ns = lab.nodes[lab.node("beta")].namespace.clone();
    let target: std::net::SocketAddr = "192.0.2.100:53".parse().unwrap();
    // 300 idle connections from the client's one address (bounded; closed when dropped).
    let idle: Vec<TcpStream> = Lab::in_namespace(&lab.client, || {
        (0..300)
            .filter_map(|_| TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok())
            .collect()
    })
    .unwrap();
    assert!(idle.len() >= 256, "connected {}", idle.len());
    std::thread::sleep(Duration::from_millis(200));
    let other = first_tcp_answer(&lab, &beta_ns, Duration::from_secs(15));
    eprintln!(
        "300 idle connections from one address: another client's first TCP answer after {other:?}"
    );
    let other = other.unwrap_or_else(|| panic!("no TCP answer for another client\n{}", lab.logs()));
    assert!(
        other < Duration::from_secs(1),
        "another client waited {other:?}"
    );
    // The same client opening one more connection is served too: its oldest idle
    // connection makes room.
    let same = first_tcp_answer(&lab, &lab.client, Duration::from_secs(15));
    eprintln!("the same address, one more connection: answered after {same:?}");
    assert!(same.is_some_and(|t| t < Duration::from_secs(1)), "{same:?}");
    drop(idle);

    // Half-sent messages (one byte of the length) are cut off soon, not after the idle time.
    let mut lone = Lab::in_namespace(&lab.client, || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(1)).unwrap();
        stream.write_all(&[0]).unwrap();
        stream
    })
    .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let half: Vec<TcpStream> = Lab::in_namespace(&lab.client, || {
        (0..300)
            .filter_map(|_| {
                let mut stream =
                    TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok()?;
                stream.write_all(&[0]).ok()?;
                Some(stream)
            })
            .collect()
    })
    .unwrap();
    let other = first_tcp_answer(&lab, &beta_ns, Duration::from_secs(15));
    eprintln!("300 half-sent connections: another client's first TCP answer after {other:?}");
    assert!(
        other.is_some_and(|t| t < Duration::from_secs(1)),
        "{other:?}"
    );
    lone.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = lone.read(&mut [0u8; 16]);
    let closed = start.elapsed();
    drop(half);
    eprintln!("a half-sent message was cut off after {closed:?}");
    assert!(
        closed > Duration::from_millis(1500),
        "cut off too soon: {closed:?}"
    );
    assert!(closed < Duration::from_secs(4), "half-sent held {closed:?}");
}

/// As a resolver for clients (forwarders set): recursion only for the node's own networks
/// by default, forwarded answers cached with their TTLs (negative ones too, RFC 2308), and
/// SERVFAIL soon when the upstream is gone.
#[test]
fn forwarding_only_for_local_networks_cached_and_servfail_when_the_upstream_is_gone() {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(
        "resolver",
        &cluster("forwarders = [\"192.0.2.53\"]"),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .unwrap();
    let knot = start_site_dns(&mut lab, false);
    lab.start_all().unwrap();
    lab.wait_ready(0, Duration::from_secs(5)).unwrap();
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(3))
        .unwrap();
    let alpha_ns = lab.nodes[0].namespace.clone();
    // A client outside the node's subnets: 198.51.100.7 on the client's link, routed on-link
    // by alpha (a route is not one of alpha's own networks).
    lab.exec(
        &lab.client,
        &["ip", "addr", "add", "198.51.100.7/24", "dev", "eth0"],
    )
    .unwrap();
    lab.exec(
        &alpha_ns,
        &["ip", "route", "add", "198.51.100.0/24", "dev", "eth0"],
    )
    .unwrap();
    let outsider = dig(
        &lab,
        &[
            "@192.0.2.100",
            "-b",
            "198.51.100.7",
            "www.site.example.",
            "A",
        ],
    );
    assert!(
        outsider.contains("status: REFUSED"),
        "no open resolver: {outsider}"
    );
    assert!(!outsider.contains(" ra"), "{outsider}");
    // The cluster's own names are still answered to anyone.
    let own = dig(
        &lab,
        &[
            "@192.0.2.100",
            "-b",
            "198.51.100.7",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(own.contains("flags: qr aa"), "{own}");
    // A client on the node's LAN is served, positive and negative answers.
    let out = dig(&lab, &["@192.0.2.100", "www.site.example.", "A"]);
    assert!(
        out.contains("198.51.100.80") && out.contains(" ra"),
        "{out}"
    );
    let out = dig(&lab, &["@192.0.2.100", "nothing.site.example.", "A"]);
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("\t5\tIN\tSOA\tns.site.example."),
        "negative answer with the SOA (minimum 5): {out}"
    );
    let snapshot = lab.status(0).unwrap().dns.unwrap();
    assert!(snapshot.refused >= 1, "{snapshot:?}");
    // The upstream goes away: what was cached is still answered, with its TTL counting down.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(knot as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let out = dig(&lab, &["@192.0.2.100", "www.site.example.", "A"]);
    assert!(
        out.contains("198.51.100.80") && !out.contains("www.site.example.\t60\t"),
        "from the cache, TTL below 60: {out}"
    );
    let out = dig(&lab, &["@192.0.2.100", "nothing.site.example.", "A"]);
    assert!(
        out.contains("status: NXDOMAIN"),
        "negative answer cached: {out}"
    );
    // A name never asked: SERVFAIL, soon, and the server keeps answering meanwhile (over
    // UDP and over TCP).
    let start = Instant::now();
    let (out, meanwhile) = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            dig(
                &lab,
                &["@192.0.2.100", "+time=5", "other.site.example.", "A"],
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        let meanwhile: Vec<(Duration, String)> = ["+notcp", "+tcp"]
            .iter()
            .map(|transport| {
                let asked = Instant::now();
                let out = short(
                    &lab,
                    &[
                        "@192.0.2.100",
                        transport,
                        "nbu-master.cluster.example.",
                        "A",
                    ],
                );
                (asked.elapsed(), out.join(" "))
            })
            .collect();
        (waiting.join().unwrap(), meanwhile)
    });
    let took = start.elapsed();
    for (answered_in, answer) in &meanwhile {
        assert!(
            answer == "192.0.2.100" && *answered_in < Duration::from_millis(500),
            "while an upstream is awaited: {meanwhile:?}"
        );
    }
    eprintln!("unreachable upstream: {took:?}: {out}");
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    drop(lab);
    drop(guard);
}

/// RFC details as dig sees them: NSID names the node that answered (RFC 5001), the DO bit is
/// copied (RFC 3225), a truncated EDNS answer keeps its OPT (RFC 6891 7), and a NOTIMP for an
/// unknown opcode does not echo CD.
#[test]
fn dig_sees_nsid_do_opt_on_truncation_and_no_cd_in_notimp() {
    let (_guard, lab) = started("rfc", &cluster(""));
    for (server, node) in [("@192.0.2.11", "alpha"), ("@192.0.2.12", "beta")] {
        let out = dig(&lab, &[server, "+nsid", "nbu-master.cluster.example.", "A"]);
        assert!(out.contains(&format!("(\"{node}\")")), "NSID {node}: {out}");
    }
    let out = dig(
        &lab,
        &["@192.0.2.100", "+nsid", "nbu-master.cluster.example.", "A"],
    );
    assert!(
        out.contains("(\"alpha\")"),
        "the owner answers at the virtual address: {out}"
    );
    let out = dig(&lab, &["@192.0.2.100", "nbu-master.cluster.example.", "A"]);
    assert!(!out.contains("NSID"), "not asked, not sent: {out}");
    let out = dig(
        &lab,
        &[
            "@192.0.2.100",
            "+dnssec",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(
        out.contains("EDNS: version: 0, flags: do;"),
        "DO copied: {out}"
    );
    let out = dig(
        &lab,
        &[
            "@192.0.2.100",
            "+dnssec",
            "+edns=1",
            "+noednsnegotiation",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(
        out.contains("status: BADVERS") && out.contains("flags: do;"),
        "DO in BADVERS: {out}"
    );
    let out = dig(
        &lab,
        &[
            "@192.0.2.11",
            "+bufsize=512",
            "+ignore",
            "big.cluster.example.",
            "A",
        ],
    );
    assert!(out.contains("flags: qr aa tc"), "{out}");
    assert!(out.contains("OPT PSEUDOSECTION"), "OPT kept with TC: {out}");
    let out = dig(
        &lab,
        &[
            "@192.0.2.100",
            "+opcode=15",
            "+cdflag",
            "nbu-master.cluster.example.",
            "A",
        ],
    );
    assert!(out.contains("status: NOTIMP"), "{out}");
    let flags = out
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_default();
    assert!(!flags.contains(" cd"), "CD not echoed: {flags}");
}
