//! Day-2 operations on the real network: every signal an operator sends, reloads (good and
//! bad), planned handovers, drain and undrain, one daemon per node, and the control socket's
//! access check. vipd processes in network namespaces, a client probing every millisecond,
//! and the kernels' address tables as the judge. Needs root; without it every test fails and
//! says why.

use nix::sys::signal::Signal;
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

fn cluster(priorities: &str, addresses: &str) -> String {
    vipd::lab::cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [{addresses}]\n\
             priority = {{ {priorities} }}\nadvert_interval = \"100ms\"\n"
        ),
    )
}

const PRIORITIES: &str = "alpha = 200, beta = 150, gamma = 100";
const ADDRESSES: &str = "\"192.0.2.100/24\", \"2001:db8::100/64\"";

fn default_cluster() -> String {
    cluster(PRIORITIES, ADDRESSES)
}

/// A started lab with `alpha` elected; the guard keeps tests apart.
fn elected(tag: &str, toml: &str) -> (std::sync::MutexGuard<'static, ()>, Lab) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(tag, toml, env!("CARGO_BIN_EXE_vipd").as_ref())
        .unwrap_or_else(|e| panic!("lab: {e}"));
    lab.start_cluster().unwrap();
    for vip in [VIP4, VIP6] {
        if let Err(e) = lab.wait_for_holder(ip(vip), "alpha", Duration::from_secs(3)) {
            panic!("{e}\n{}", lab.logs());
        }
    }
    (guard, lab)
}

/// Runs a vipd command against a node; returns (success, stdout, stderr).
fn vipd(lab: &Lab, node: usize, args: &[&str]) -> (bool, String, String) {
    let out = lab.vipd(node, args).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Probes that got no answer between the first and the last answered one, and who
/// answered, in order.
fn lost_probes(answers: &[probe::Answer]) -> (Vec<u64>, Vec<String>) {
    let mut seqs: Vec<u64> = answers.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let lost = match (seqs.first(), seqs.last()) {
        (Some(&first), Some(&last)) => (first..=last)
            .filter(|s| seqs.binary_search(s).is_err())
            .collect(),
        _ => vec![u64::MAX],
    };
    let mut who: Vec<String> = answers.iter().map(|a| a.node.clone()).collect();
    who.dedup();
    (lost, who)
}

/// Waits until `node` has heard every other node answer (versions asked over DNS), so that
/// it knows which members are live.
fn wait_for_peers(lab: &Lab, node: usize) {
    let start = Instant::now();
    loop {
        let peers = lab.status(node).unwrap().peers;
        if !peers.is_empty()
            && peers
                .iter()
                .all(|p| p.version.is_some() && p.error.is_none())
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "peers not known: {peers:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twenty_reloads_by_sighup_lose_no_probe_and_leave_one_holder() {
    let (_guard, lab) = elected("hup", &default_cluster());
    let alpha = lab.node("alpha");
    let probe = lab
        .start_probe(ip(VIP4), Duration::from_millis(2500))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        lab.send_signal(alpha, Signal::SIGHUP).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let answers = lab.finish_probe(probe).unwrap();
    let (lost, who) = lost_probes(&answers);
    assert_eq!(who, ["alpha"], "{}", lab.logs());
    assert!(answers.len() > 2000, "{} answers", answers.len());
    assert!(lost.is_empty(), "lost probes {lost:?}");
    println!(
        "20 SIGHUP reloads under a 1 ms probe: {} answers, {} lost, all from {who:?}",
        answers.len(),
        lost.len()
    );
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
    let log = lab.log(alpha);
    assert_eq!(log.matches("reloaded: no change").count(), 20, "{log}");
    let status = lab.status(alpha).unwrap();
    assert_eq!(status.groups[0].instances[0].became_master, 1);
}

#[test]
fn usr1_usr2_stop_cont_and_quit_never_leave_two_holders() {
    let (_guard, mut lab) = elected("signals", &default_cluster());
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    // USR1 and USR2 log the status; the daemon lives on, still master.
    for signal in [Signal::SIGUSR1, Signal::SIGUSR2] {
        lab.send_signal(alpha, signal).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.vipd_running(alpha), "{}", lab.log(alpha));
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
    assert!(lab.log(alpha).contains("status"), "{}", lab.log(alpha));
    // SIGSTOP: alpha is frozen, its addresses still on its interface (no process can help
    // that: fencing is for this); beta takes over after master-down and the client follows
    // its announcements.
    lab.send_signal(alpha, Signal::SIGSTOP).unwrap();
    let start = Instant::now();
    while !lab.holders(ip(VIP4)).unwrap().contains(&"beta".to_string()) {
        assert!(start.elapsed() < Duration::from_secs(2), "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let probe = lab
        .start_probe(ip(VIP4), Duration::from_millis(100))
        .unwrap();
    let answers = lab.finish_probe(probe).unwrap();
    assert!(
        !answers.is_empty() && answers.iter().all(|a| a.node == "beta"),
        "{answers:?}"
    );
    // SIGCONT: alpha wakes up as master, hears beta, and one of them yields at once; with
    // preempt alpha ends as the only holder.
    lab.send_signal(alpha, Signal::SIGCONT).unwrap();
    let start = Instant::now();
    let mut settled = false;
    while start.elapsed() < Duration::from_secs(3) {
        if lab.holders(ip(VIP4)).unwrap() == ["alpha"]
            && lab.holders(ip(VIP6)).unwrap() == ["alpha"]
        {
            settled = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(settled, "{:?}\n{}", lab.holders(ip(VIP4)), lab.logs());
    // SIGQUIT: a graceful stop like SIGTERM: priority 0, addresses released, beta holds.
    let pid = lab.vipd_pid(alpha).unwrap();
    lab.send_signal(alpha, Signal::SIGQUIT).unwrap();
    let start = Instant::now();
    while lab.vipd_running(alpha) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !lab.vipd_running(alpha),
        "vipd {pid} did not exit on SIGQUIT"
    );
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(1))
        .unwrap();
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"]);
    assert!(!lab.addresses(alpha).unwrap().contains(&ip(VIP4)));
    let _ = beta;
}

#[test]
fn a_bad_reload_is_refused_with_its_location_and_the_running_config_stays() {
    let (_guard, mut lab) = elected("badreload", &default_cluster());
    let alpha = lab.node("alpha");
    let broken = default_cluster().replace("vrid = 51", "vrid = 300");
    lab.write_config(&broken).unwrap();
    let (ok, _, stderr) = vipd(&lab, alpha, &["reload"]);
    assert!(!ok, "a bad file must fail the reload");
    let line = broken
        .lines()
        .position(|l| l == "vrid = 300")
        .map(|i| i + 1)
        .unwrap();
    assert!(
        stderr.contains(&format!("cluster.toml:{line}:")) && stderr.contains("vrid"),
        "{stderr}"
    );
    // The log says it too, and nothing moved.
    assert!(
        lab.log(alpha).contains("reload refused"),
        "{}",
        lab.log(alpha)
    );
    lab.send_signal(alpha, Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.vipd_running(alpha));
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
    assert_eq!(
        lab.status(alpha).unwrap().groups[0].instances[0].priority,
        200
    );
    // A change this node cannot make without a restart: refused, named.
    let moved =
        default_cluster().replacen("address = \"192.0.2.11\"", "address = \"192.0.2.21\"", 1);
    lab.write_config(&moved).unwrap();
    let (ok, _, stderr) = vipd(&lab, alpha, &["reload"]);
    assert!(!ok);
    assert!(
        stderr.contains("`address` changes") && stderr.contains("restart"),
        "{stderr}"
    );
}

#[test]
fn a_reload_moves_the_group_to_a_raised_priority_and_claims_a_new_address() {
    let (_guard, mut lab) = elected("reload", &default_cluster());
    let beta = lab.node("beta");
    let changed = cluster(
        "alpha = 200, beta = 250, gamma = 100",
        "\"192.0.2.100/24\", \"192.0.2.101/24\", \"2001:db8::100/64\"",
    );
    lab.write_config(&changed).unwrap();
    for node in 0..3 {
        let (ok, stdout, stderr) = vipd(&lab, node, &["reload"]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("changed group master-server"), "{stdout}");
    }
    lab.wait_for_holder(ip("192.0.2.101"), "beta", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(2))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for vip in [VIP4, "192.0.2.101", VIP6] {
        assert_eq!(
            lab.holders(ip(vip)).unwrap(),
            ["beta"],
            "{vip}\n{}",
            lab.logs()
        );
    }
    let status = lab.status(beta).unwrap();
    assert_eq!(status.groups[0].instances[0].priority, 250);
    assert_eq!(status.groups[0].addresses.len(), 3);
}

#[test]
fn a_handover_loses_at_most_2_ms_on_ipv4_and_ipv6_and_is_refused_off_the_owner() {
    let (_guard, lab) = elected("handover", &default_cluster());
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    wait_for_peers(&lab, alpha);
    // Refused where it cannot work, with the reason.
    let (ok, _, stderr) = vipd(&lab, beta, &["handover", "master-server"]);
    assert!(!ok && stderr.contains("owner: alpha"), "{stderr}");
    let (ok, _, stderr) = vipd(&lab, alpha, &["handover", "master-server", "--to", "omega"]);
    assert!(!ok && stderr.contains("omega is not a member"), "{stderr}");
    // Warm the neighbour entries both ways (client to the addresses, nodes to the client),
    // so that what is measured is the move, not the first ARP/ND of a fresh LAN.
    for target in [
        VIP4,
        VIP6,
        "192.0.2.11",
        "192.0.2.12",
        "2001:db8::10",
        "2001:db8::11",
    ] {
        let warm = lab
            .start_probe(ip(target), Duration::from_millis(50))
            .unwrap();
        lab.finish_probe(warm).unwrap();
    }
    // Three moves, alpha -> beta -> alpha -> beta, each probed on both families.
    let mut outages = Vec::new();
    let mut total_lost = 0;
    for (from, to) in [(alpha, "beta"), (beta, "alpha"), (alpha, "beta")] {
        let probe4 = lab
            .start_probe(ip(VIP4), Duration::from_millis(1200))
            .unwrap();
        let probe6 = lab
            .start_probe(ip(VIP6), Duration::from_millis(1200))
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let (ok, stdout, stderr) = vipd(&lab, from, &["handover", "master-server"]);
        assert!(ok, "{stderr}\n{}", lab.logs());
        assert!(stdout.contains("handed over"), "{stdout}");
        for (vip, probe) in [(VIP4, probe4), (VIP6, probe6)] {
            let answers = lab.finish_probe(probe).unwrap();
            let moved = probe::handover(&answers, at)
                .unwrap_or_else(|| panic!("{vip}: no handover seen\n{}", lab.logs()));
            assert_eq!(moved.to, to, "{vip}");
            // Make before break: a late answer is not a lost one; lost ones are counted.
            let (lost, _) = lost_probes(&answers);
            total_lost += lost.len();
            println!(
                "handover to {to}, outage {vip}: {:?}, lost probes {lost:?}",
                moved.outage()
            );
            if std::env::var_os("VIPD_DEBUG_HANDOVER").is_some() {
                for a in answers.iter().filter(|a| {
                    a.unix_us + 5000 > moved.last_old_us && a.unix_us < moved.first_new_us + 5000
                }) {
                    println!("  {} {} {}", a.unix_us, a.seq, a.node);
                }
            }
            outages.push(moved.outage());
        }
        // The old owner does not take it back; the next move starts from a settled group.
        std::thread::sleep(Duration::from_millis(300));
    }
    // Six moves of 1 ms probes: at most one move may lose a few (seen on IPv6 on a busy
    // 2-core machine; most runs lose none).
    assert!(
        total_lost <= 3,
        "lost {total_lost} probes in six moves\n{}",
        lab.logs()
    );
    // Make before break shows as a few milliseconds at most (a break-before-make move waits
    // out an advert interval, 100 ms here); the 2 ms target itself is the failover
    // benchmark's business (`cargo bench --bench failover`), measured on a quiet machine.
    outages.sort();
    let median = outages[outages.len() / 2];
    assert!(median <= Duration::from_millis(5), "outages {outages:?}");
    assert!(
        outages.iter().all(|o| *o <= Duration::from_millis(20)),
        "outages {outages:?}"
    );
    // The old owner does not take it back.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"]);
    assert_eq!(lab.holders(ip(VIP6)).unwrap(), ["beta"]);
}

#[test]
fn a_drain_survives_a_restart_shows_on_the_peers_and_ends_with_undrain() {
    let (_guard, mut lab) = elected("drain", &default_cluster());
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    let (ok, stdout, stderr) = vipd(&lab, alpha, &["drain"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("drained"), "{stdout}");
    lab.wait_for_holder(ip(VIP4), "beta", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // A restart keeps the drain: alpha (priority 200) does not take the group back.
    lab.stop(alpha).unwrap();
    lab.start(alpha).unwrap();
    lab.wait_ready(alpha, Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(lab.status(alpha).unwrap().drained);
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["beta"]);
    // The other nodes see it (they ask every 10 s).
    let start = Instant::now();
    while !lab
        .status(beta)
        .unwrap()
        .peers
        .iter()
        .any(|p| p.node == "alpha" && p.drained)
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "beta never saw the drain"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, _, stderr) = vipd(&lab, alpha, &["undrain"]);
    assert!(ok, "{stderr}");
    lab.wait_for_holder(ip(VIP4), "alpha", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert!(!lab.status(alpha).unwrap().drained);
}

#[test]
fn a_second_daemon_for_a_running_node_refuses_and_the_first_runs_on() {
    let (_guard, lab) = elected("twice", &default_cluster());
    let alpha = lab.node("alpha");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.nodes[alpha].namespace])
        .arg(env!("CARGO_BIN_EXE_vipd"))
        .arg("run")
        .arg("--config")
        .arg(&lab.config_path)
        .args(["--node", "alpha", "--control"])
        .arg(lab.control_path(alpha))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("another vipd already runs"), "{said}");
    // The first daemon still answers and still holds the addresses.
    assert!(lab.status(alpha).is_ok());
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
}

#[test]
fn the_control_socket_checks_the_callers_credentials_not_only_the_file_mode() {
    let (_guard, lab) = elected("creds", &default_cluster());
    let alpha = lab.node("alpha");
    let socket = lab.control_path(alpha);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root only by default");
    // Open the file to everyone: the daemon still refuses a stranger by its credentials.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // The lab's folder must be traversable for the stranger to reach the socket at all.
    std::fs::set_permissions(
        socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_vipd"))
        .args(["drain", "--control"])
        .arg(&socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a stranger drained the node");
    assert!(stderr.contains("permission denied: uid 65534"), "{stderr}");
    assert!(!lab.status(alpha).unwrap().drained);
    assert_eq!(lab.holders(ip(VIP4)).unwrap(), ["alpha"]);
}

#[test]
fn metrics_and_health_are_scraped_over_http_from_the_client() {
    let toml = format!(
        "{}\n[metrics]\nlisten = \"0.0.0.0:9650\"\n",
        default_cluster()
    );
    let (_guard, lab) = elected("metrics", &toml);
    let get = |address: &str, path: &str| -> String {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let address = format!("{address}:9650");
        Lab::in_namespace(&lab.client, move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            answer
        })
        .unwrap()
    };
    let metrics = get("192.0.2.11", "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(
            "vipd_state{node=\"alpha\",group=\"master-server\",family=\"IPv4\",state=\"master\"} 1"
        ),
        "{metrics}"
    );
    let health = get("192.0.2.12", "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
}

#[test]
fn control_clients_that_say_nothing_never_hold_the_election() {
    let (_guard, lab) = elected("mute", &default_cluster());
    let alpha = lab.node("alpha");
    // Ten clients connect and say nothing; each would have the daemon wait 2 s for its
    // request if the loop read it itself: 20 s without adverts.
    let mute: Vec<std::os::unix::net::UnixStream> = (0..10)
        .map(|_| std::os::unix::net::UnixStream::connect(lab.control_path(alpha)).unwrap())
        .collect();
    let probe = lab
        .start_probe(ip(VIP4), Duration::from_millis(1500))
        .unwrap();
    let answers = lab.finish_probe(probe).unwrap();
    let (lost, who) = lost_probes(&answers);
    assert_eq!(who, ["alpha"], "{}", lab.logs());
    assert!(lost.is_empty(), "lost {lost:?}");
    // The daemon still answers a real request meanwhile.
    assert!(lab.status(alpha).is_ok());
    assert_eq!(
        lab.status(lab.node("beta")).unwrap().groups[0].instances[0].became_master,
        0
    );
    drop(mute);
}
