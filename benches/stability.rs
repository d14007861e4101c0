//! Aggressive timers under load, vipd against keepalived in the same lab and the same run:
//! three nodes advertise every 10 ms (VIPD_BENCH_INTERVAL_MS) while the master's DNS server
//! is flooded by dnsperf at the highest rate the client sends (vipd's own DNS threads; for
//! keepalived, knot in the master's namespace, the same load on the same cores) and two
//! CPU-bound processes compete on the master's cores. Counts the transitions that nobody
//! caused (must be none), then crashes the master under the same load and measures the outage
//! a client probing every millisecond sees.
//!
//!     cargo bench --bench stability   # as root; VIPD_STABILITY_SECONDS (default 600),
//!                                     # VIPD_BENCH_TRIALS (crashes, default 10),
//!                                     # VIPD_BENCH_INTERVAL_MS (default 10),
//!                                     # VIPD_BENCH_RT_PRIORITY=N: vipd run --rt-priority N,
//!                                     # VIPD_BENCH_ONLY=vipd: without keepalived,
//!                                     # VIPD_BENCH_PERF=1: perf profile of the master vipd

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use vipd::lab::{Lab, probe};

const VIP: &str = "192.0.2.100";
/// alpha's own address: its DNS server (vipd's, or knot beside keepalived) is flooded there.
const ALPHA: &str = "192.0.2.11";

fn interval_ms() -> u64 {
    std::env::var("VIPD_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|ms| (10..=40_950).contains(ms) && ms % 10 == 0)
        .unwrap_or(10)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster() -> String {
    vipd::lab::cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
             names = [\"vip\"]\npriority = {{ alpha = 200, beta = 150, gamma = 100 }}\n\
             advert_interval = \"{}ms\"\n",
            interval_ms()
        ),
    )
}

const ZONE: &str = "$ORIGIN cluster.example.\n$TTL 5\n\
@ IN SOA alpha.cluster.example. hostmaster.cluster.example. 1 3600 600 86400 5\n\
@ IN NS alpha.cluster.example.\nalpha IN A 192.0.2.11\nvip IN A 192.0.2.100\n";

const QUERIES: &str = "vip.cluster.example. A\nalpha.cluster.example. A\n\
cluster.example. SOA\nnothing.cluster.example. A\n";

#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    Vipd,
    Keepalived,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Vipd => "vipd",
            Daemon::Keepalived => "keepalived",
        }
    }
}

fn start(lab: &mut Lab, daemon: Daemon, node: usize) {
    let priority = [200u8, 150, 100][node];
    match daemon {
        Daemon::Vipd => lab.start(node).unwrap(),
        Daemon::Keepalived => {
            let seconds = format!("{}", interval_ms() as f64 / 1000.0);
            let conf = vipd::lab::keepalived_conf(51, priority, &seconds, &["192.0.2.100/24"]);
            lab.start_keepalived(node, &conf).unwrap();
        }
    }
}

/// Transitions to master so far, on every node (vipd: its counters; keepalived: its log).
fn masterships(lab: &Lab, daemon: Daemon) -> u64 {
    (0..3)
        .map(|node| match daemon {
            Daemon::Vipd => lab.status(node).map_or(0, |s| {
                s.groups
                    .iter()
                    .flat_map(|g| &g.instances)
                    .map(|i| i.became_master)
                    .sum()
            }),
            Daemon::Keepalived => lab.log(node).matches("Entering MASTER STATE").count() as u64,
        })
        .sum()
}

/// Starts the load on the master: a DNS flood from the client, two busy loops on its cores.
fn load(lab: &mut Lab, daemon: Daemon, seconds: u64) {
    if daemon == Daemon::Keepalived {
        let namespace = lab.nodes[0].namespace.clone();
        lab.start_knot("knot", &namespace, ALPHA, ZONE, None)
            .unwrap();
    }
    lab.wait_for_dns(ALPHA, Duration::from_secs(10)).unwrap();
    let namespace = lab.nodes[0].namespace.clone();
    for _ in 0..2 {
        let bound = format!(
            "end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; done"
        );
        lab.spawn(Command::new("ip").args(["netns", "exec", &namespace, "sh", "-c", &bound]))
            .unwrap();
    }
}

/// Floods the master's DNS server for `seconds` from the client; dnsperf writes `log`.
fn flood(lab: &mut Lab, seconds: u64, log: &str) -> u32 {
    let queries = lab.dir.join("queries.txt");
    std::fs::write(&queries, QUERIES).unwrap();
    let client = lab.client.clone();
    let out = std::fs::File::create(lab.dir.join(log)).unwrap();
    lab.spawn(
        Command::new("ip")
            .args(["netns", "exec", &client, "dnsperf", "-s", ALPHA, "-d"])
            .arg(&queries)
            .args([
                "-l",
                &seconds.to_string(),
                "-c",
                "20",
                "-q",
                "200",
                "-T",
                "2",
            ])
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    )
    .unwrap()
}

/// dnsperf's "Queries per second" from its log, once it ended (waits a little for it).
fn queries_per_second(lab: &Lab, log: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(lab.dir.join(log)).unwrap_or_default();
        if let Some(q) = text
            .lines()
            .find(|l| l.contains("Queries per second"))
            .and_then(|l| l.split(':').nth(1))
        {
            return q.trim().to_string();
        }
        if Instant::now() > deadline {
            return "?".into();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

struct Outcome {
    false_masterships: u64,
    outages: Vec<Duration>,
    queries_per_second: String,
}

fn run(daemon: Daemon, soak: Duration, trials: usize, smoke: bool) -> Outcome {
    let vip: IpAddr = VIP.parse().unwrap();
    let mut lab = Lab::new("stab", &cluster(), env!("CARGO_BIN_EXE_vipd").as_ref())
        .expect("lab (run as root)");
    if let Ok(priority) = std::env::var("VIPD_BENCH_RT_PRIORITY") {
        lab.vipd_args = vec!["--rt-priority".into(), priority];
    }
    for node in 0..3 {
        lab.start_responder(node).unwrap();
        start(&mut lab, daemon, node);
    }
    lab.wait_for_holder(vip, "alpha", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let interval = interval_ms();
    // The load lasts through the soak and the crash trials.
    let trial_time = 3 + (2 * interval).div_ceil(1000) * 2;
    let total = soak.as_secs() + trials as u64 * trial_time + 20;
    load(&mut lab, daemon, total);
    flood(&mut lab, soak.as_secs(), "dnsperf-soak.log");
    std::thread::sleep(Duration::from_secs(1));
    let before = masterships(&lab, daemon);
    if std::env::var_os("VIPD_BENCH_PERF").is_some() && daemon == Daemon::Vipd && !smoke {
        let pid = lab.vipd_pid(0).unwrap();
        let data = lab.dir.join("perf.data");
        println!("perf profile of the master vipd under load (entries above 2 %):");
        for line in vipd::lab::perf_profile(pid, soak.as_secs().min(30), &data, 2.0) {
            println!("  {line}");
        }
    }
    let profiled = if std::env::var_os("VIPD_BENCH_PERF").is_some() && !smoke {
        soak.as_secs().min(30)
    } else {
        0
    };
    std::thread::sleep(soak.saturating_sub(Duration::from_secs(profiled)));
    let false_masterships = masterships(&lab, daemon) - before;
    let queries_per_second = queries_per_second(&lab, "dnsperf-soak.log");
    flood(
        &mut lab,
        trials as u64 * trial_time + 10,
        "dnsperf-crash.log",
    );
    let mut outages = Vec::new();
    for _ in 0..trials {
        lab.wait_for_holder(vip, "alpha", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        std::thread::sleep(Duration::from_millis(500));
        let probe_for = Duration::from_millis(1500 + 10 * interval);
        let client = lab.start_probe(vip, probe_for).unwrap();
        std::thread::sleep(Duration::from_millis(400 + (unix_us() / 1000) % interval));
        let at = unix_us();
        lab.crash(0).unwrap();
        let answers = lab.finish_probe(client).unwrap();
        let handover = probe::handover(&answers, at)
            .unwrap_or_else(|| panic!("no handover seen\n{}", lab.logs()));
        outages.push(handover.outage());
        lab.revive(0).unwrap();
        start(&mut lab, daemon, 0);
    }
    Outcome {
        false_masterships,
        outages,
        queries_per_second,
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this without it: a smoke run (tiny
    // sizes, numbers not meaningful) with VIPD_BENCH_SMOKE set, so the harness cannot rot.
    let smoke = std::env::var_os("VIPD_BENCH_SMOKE").is_some();
    if !std::env::args().any(|a| a == "--bench") && !smoke {
        println!("stability: a benchmark; run it with `cargo bench --bench stability` (root)");
        return;
    }
    let soak = Duration::from_secs(env_or(
        "VIPD_STABILITY_SECONDS",
        if smoke { 3 } else { 600 },
    ));
    let trials = env_or("VIPD_BENCH_TRIALS", if smoke { 1 } else { 10 }) as usize;
    println!(
        "3 nodes, adverts every {} ms, the master's DNS flooded (dnsperf -c 20 -q 200 -T 2) and two busy loops beside it; {} s soak, then {trials} crashes under the same load",
        interval_ms(),
        soak.as_secs()
    );
    println!(
        "{:<11} {:>18} {:>14} {:>14} {:>24}",
        "", "false transitions", "crash median", "crash worst", "DNS queries/s (flood)"
    );
    let mut medians = Vec::new();
    let only_vipd = std::env::var("VIPD_BENCH_ONLY").is_ok_and(|o| o == "vipd");
    for daemon in [Daemon::Vipd, Daemon::Keepalived] {
        if only_vipd && daemon == Daemon::Keepalived {
            continue;
        }
        let outcome = run(daemon, soak, trials, smoke);
        let worst = outcome.outages.iter().max().copied().unwrap_or_default();
        println!(
            "{:<11} {:>18} {:>11.1} ms {:>11.1} ms {:>24}",
            daemon.name(),
            outcome.false_masterships,
            median(&outcome.outages).as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            outcome.queries_per_second
        );
        let all: Vec<String> = outcome
            .outages
            .iter()
            .map(|o| format!("{:.1}", o.as_secs_f64() * 1000.0))
            .collect();
        println!("  {} outages (ms): {}", daemon.name(), all.join(" "));
        medians.push(median(&outcome.outages));
    }
    if let [vipd, keepalived] = medians[..] {
        println!(
            "crash ratio vipd / keepalived: {:.2}",
            vipd.as_secs_f64() / keepalived.as_secs_f64().max(1e-9)
        );
    }
}
