//! Failover outage, vipd against keepalived in the same lab and the same run: a client probes
//! the virtual address every millisecond while the owner crashes (SIGKILL and off the LAN)
//! or stops gracefully (SIGTERM). Same topology, priorities (200 / 100) and advert interval
//! (100 ms unless VIPD_BENCH_INTERVAL_MS says otherwise) for both. Prints medians, worst cases
//! and the ratios.
//!
//! The planned move is `vipd handover` for vipd (make-before-break) and a SIGTERM of the
//! master for keepalived, which has no handover.
//!
//!     cargo bench --bench failover            # as root; VIPD_BENCH_TRIALS=N (default 10)
//!                                             # VIPD_BENCH_ONLY=planned|graceful|crash
//!                                             # VIPD_BENCH_INTERVAL_MS=10|50|100|1000

use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use vipd::lab::{Lab, probe};

const VIP: &str = "192.0.2.100";

/// The advert interval of both daemons, in milliseconds.
fn interval_ms() -> u64 {
    std::env::var("VIPD_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|ms| (10..=40_950).contains(ms) && ms % 10 == 0)
        .unwrap_or(100)
}

fn cluster() -> String {
    vipd::lab::cluster_file(
        2,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
             priority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"{}ms\"\n",
            interval_ms()
        ),
    )
}

fn keepalived_conf(priority: u8) -> String {
    let seconds = format!("{}", interval_ms() as f64 / 1000.0);
    vipd::lab::keepalived_conf(51, priority, &seconds, &["192.0.2.100/24"])
}

#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    Vipd,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Crash,
    Stop,
    /// A planned move: `vipd handover` (make-before-break); keepalived has none, its
    /// operators stop the master (SIGTERM), which is what it gets here.
    Planned,
}

/// Asks vipd on `node` to hand the group over and checks that it did.
fn hand_over(lab: &Lab, node: usize) {
    let out = lab.vipd(node, &["handover", "g"]).unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.logs()
    );
}

/// Waits until `node` has heard its peers answer (a handover goes only to a live member).
fn wait_for_peers(lab: &Lab, node: usize) {
    let start = std::time::Instant::now();
    while !lab
        .status(node)
        .map(|s| {
            s.peers
                .iter()
                .all(|p| p.version.is_some() && p.error.is_none())
        })
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "peers never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(lab: &mut Lab, daemon: Daemon, node: usize, priority: u8) {
    match daemon {
        Daemon::Vipd => lab.start(node).unwrap(),
        Daemon::Keepalived => {
            lab.start_keepalived(node, &keepalived_conf(priority))
                .unwrap();
        }
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Outages seen by the client over `trials` faults of the owner.
fn measure(daemon: Daemon, fault: Fault, trials: usize) -> Vec<Duration> {
    let vip: IpAddr = VIP.parse().unwrap();
    let mut lab = Lab::new("bench", &cluster(), env!("CARGO_BIN_EXE_vipd").as_ref())
        .expect("lab (run as root)");
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    for node in [alpha, beta] {
        lab.start_responder(node).unwrap();
    }
    start(&mut lab, daemon, alpha, 200);
    start(&mut lab, daemon, beta, 100);
    let planned = fault == Fault::Planned && daemon == Daemon::Vipd;
    if planned {
        lab.wait_ready(alpha, Duration::from_secs(5)).unwrap();
        lab.wait_ready(beta, Duration::from_secs(5)).unwrap();
        wait_for_peers(&lab, alpha);
        wait_for_peers(&lab, beta);
    }
    let mut outages = Vec::new();
    for _ in 0..trials {
        lab.wait_for_holder(vip, "alpha", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        // Let the backup learn the master and the client's neighbour entry settle.
        let interval = interval_ms();
        std::thread::sleep(Duration::from_millis(300.max(3 * interval)));
        let client = lab
            .start_probe(vip, Duration::from_millis(600 + 5 * interval + 400))
            .unwrap();
        // A random phase against the advert timer, as a real failure has.
        std::thread::sleep(Duration::from_millis(400 + (unix_us() % interval)));
        let at = unix_us();
        match fault {
            Fault::Crash => lab.crash(alpha).unwrap(),
            Fault::Planned if planned => hand_over(&lab, alpha),
            Fault::Stop | Fault::Planned => lab.stop(alpha).unwrap(),
        }
        let answers = lab.finish_probe(client).unwrap();
        let handover = probe::handover(&answers, at)
            .unwrap_or_else(|| panic!("no handover seen\n{}", lab.logs()));
        assert_eq!(handover.to, "beta");
        outages.push(handover.outage());
        if planned {
            // Back to alpha the same way, for the next trial.
            std::thread::sleep(Duration::from_millis(300));
            hand_over(&lab, beta);
            continue;
        }
        if fault == Fault::Crash {
            lab.revive(alpha).unwrap();
        }
        start(&mut lab, daemon, alpha, 200);
    }
    outages
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this without it: a smoke run (tiny
    // sizes, numbers not meaningful) with VIPD_BENCH_SMOKE set, so the harness cannot rot.
    let smoke = std::env::var_os("VIPD_BENCH_SMOKE").is_some();
    if !std::env::args().any(|a| a == "--bench") && !smoke {
        println!("failover: a benchmark; run it with `cargo bench --bench failover` (root)");
        return;
    }
    let trials: usize = std::env::var("VIPD_BENCH_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(if smoke { 1 } else { 10 });
    println!(
        "failover outage seen by a client probing every 1 ms; 2 nodes, priorities 200/100, adverts every {} ms; {trials} trials each",
        interval_ms()
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "", "vipd median", "vipd worst", "ka median", "ka worst", "ratio"
    );
    let only = std::env::var("VIPD_BENCH_ONLY").unwrap_or_default();
    for (fault, name) in [
        (Fault::Planned, "planned move"),
        (Fault::Stop, "graceful stop"),
        (Fault::Crash, "crash (kill + off LAN)"),
    ] {
        if !only.is_empty() && !name.starts_with(only.as_str()) {
            continue;
        }
        let vipd = measure(Daemon::Vipd, fault, trials);
        let keepalived = measure(Daemon::Keepalived, fault, trials);
        let ratio = ms(median(&vipd)) / ms(median(&keepalived));
        println!(
            "{name:<22} {:>9.1} ms {:>9.1} ms {:>9.1} ms {:>9.1} ms {:>8.3}",
            ms(median(&vipd)),
            ms(*vipd.iter().max().unwrap()),
            ms(median(&keepalived)),
            ms(*keepalived.iter().max().unwrap()),
            ratio
        );
        let all = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.1}", ms(*d)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("  vipd:       {}", all(&vipd));
        println!("  keepalived: {}", all(&keepalived));
    }
}
