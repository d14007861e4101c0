//! DNS answers per second, vipd against Knot DNS (Debian's knot) serving the same zone in the
//! same lab and the same run, measured by dnsperf from the client namespace.
//!
//!     cargo bench --bench dns       # as root; VIPD_BENCH_SECONDS=N per run (default 5)
//!
//! Knot runs twice, with one UDP worker and with two. Each dnsperf load of the sweep (clients,
//! outstanding queries, threads; VIPD_BENCH_DNSPERF="-c 20 -q 200 -T 2;-c 8 -q 500 -T 1"
//! replaces the default list) is run against the three servers in turn, twice; knot's best
//! (server and load) is where vipd is compared. Then latency at a fixed rate (dnsperf -Q, every
//! query's latency from -v: percentiles), and the election's adverts (every 10 ms) captured by
//! tshark on the client while vipd's DNS is saturated: the largest gap between two adverts.

use std::process::Command;
use std::time::Duration;
use vipd::lab::Lab;

fn cluster() -> String {
    vipd::lab::cluster_file(
        1,
        "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
         names = [\"nbu-master\"]\npriority = { alpha = 200 }\nadvert_interval = \"10ms\"\n",
    )
}

/// The same records as vipd serves, as a zone file for knot.
const ZONE: &str = "$ORIGIN cluster.example.\n$TTL 5\n@ SOA alpha hostmaster 1 3600 600 86400 5\n@ NS alpha\n\
alpha A 192.0.2.11\nnbu-master A 192.0.2.100\nnbu-master AAAA 2001:db8::100\nnbu-master TXT \"owner=alpha\" \"group=master-server\"\n";

/// dnsperf's query file: answers, an NXDOMAIN and a NODATA, as clients ask.
const QUERIES: &str = "nbu-master.cluster.example. A\nnbu-master.cluster.example. AAAA\nnbu-master.cluster.example. TXT\n\
alpha.cluster.example. A\ncluster.example. SOA\nmissing.cluster.example. A\nalpha.cluster.example. MX\n";

/// CPU time (user + system) a process has used so far, all threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Queries per second, and queries per CPU second of the server process.
fn measure(lab: &Lab, server: &str, pid: u32, seconds: u64, load: &str) -> (f64, f64) {
    let before = cpu_seconds(pid);
    let out = dnsperf(lab, server, seconds, load);
    let cpu = cpu_seconds(pid) - before;
    let qps = queries_per_second(&out);
    (qps, qps * seconds as f64 / cpu.max(0.01))
}

fn queries_per_second(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.contains("Queries per second"))
        .unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
}

/// Runs dnsperf from the client with `load` (its options) for `seconds`; its output.
fn dnsperf(lab: &Lab, server: &str, seconds: u64, load: &str) -> String {
    let queries = lab.dir.join("queries.txt");
    std::fs::write(&queries, QUERIES).unwrap();
    let load: Vec<&str> = load.split_whitespace().collect();
    lab.exec(
        &lab.client,
        &[
            "dnsperf",
            "-s",
            server,
            "-d",
            queries.to_str().unwrap(),
            "-l",
            &seconds.to_string(),
        ]
        .into_iter()
        .chain(load.iter().copied())
        .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("dnsperf (apt-get install dnsperf): {e}"))
}

/// Latency percentiles (50, 99, 99.9, in µs) at a fixed rate, from dnsperf -v's line per query
/// (`> NOERROR name type latency`).
fn latency(lab: &Lab, server: &str, seconds: u64, rate: u64) -> [f64; 3] {
    let out = dnsperf(
        lab,
        server,
        seconds,
        &format!("-c 8 -q 100 -T 1 -v -Q {rate}"),
    );
    let mut latencies: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with('>'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|s| s * 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    [at(0.5), at(0.99), at(0.999)]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this without it: a smoke run (tiny
    // sizes, numbers not meaningful) with VIPD_BENCH_SMOKE set, so the harness cannot rot.
    let smoke = std::env::var_os("VIPD_BENCH_SMOKE").is_some();
    if !std::env::args().any(|a| a == "--bench") && !smoke {
        println!("dns: a benchmark; run it with `cargo bench --bench dns` (root)");
        return;
    }
    let seconds: u64 = std::env::var("VIPD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 1 } else { 5 });
    let mut lab = Lab::new("dnsbench", &cluster(), env!("CARGO_BIN_EXE_vipd").as_ref())
        .expect("lab (run as root)");
    lab.start(0).unwrap();
    lab.wait_for_holder(
        "192.0.2.100".parse().unwrap(),
        "alpha",
        Duration::from_secs(3),
    )
    .unwrap();

    // Knot with one UDP worker at .53, with two at .54.
    let mut knots = Vec::new();
    for (workers, address) in [(1, "192.0.2.53"), (2, "192.0.2.54")] {
        let name = format!("knot{workers}");
        let namespace = lab.add_host(&name, &[&format!("{address}/24")]).unwrap();
        let pid = lab
            .start_knot(&name, &namespace, address, ZONE, Some(workers))
            .unwrap();
        lab.wait_for_dns(address, Duration::from_secs(10))
            .expect("knot did not start");
        knots.push((format!("knot 3.2, {workers} UDP worker(s)"), address, pid));
    }
    let vipd_pid = lab.vipd_pid(0).unwrap();
    let loads: Vec<String> = std::env::var("VIPD_BENCH_DNSPERF")
        .unwrap_or_else(|_| {
            if smoke {
                "-c 8 -q 100 -T 1".into()
            } else {
                "-c 8 -q 500 -T 1;-c 20 -q 200 -T 2;-c 40 -q 500 -T 2".into()
            }
        })
        .split(';')
        .map(|l| l.trim().to_string())
        .collect();
    println!(
        "DNS by dnsperf from the client namespace, {seconds} s per run, 2 runs each (the median of 2 is their mean), servers in turn; 2 cores shared by dnsperf and the server"
    );
    let mut servers = vec![(
        "vipd (at the virtual address)".to_string(),
        "192.0.2.100",
        vipd_pid,
    )];
    servers.extend(knots.iter().cloned());
    // rows[load][server] = runs of (q/s, q per CPU s)
    let mut rows: Vec<Vec<Vec<(f64, f64)>>> = vec![vec![Vec::new(); servers.len()]; loads.len()];
    for _ in 0..2 {
        for (l, load) in loads.iter().enumerate() {
            for (s, (_, address, pid)) in servers.iter().enumerate() {
                rows[l][s].push(measure(&lab, address, *pid, seconds, load));
            }
        }
    }
    let mean = |runs: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        runs.iter().map(pick).sum::<f64>() / runs.len().max(1) as f64
    };
    println!(
        "{:<22} {:<30} {:>11} {:>22}",
        "dnsperf load", "server", "queries/s", "queries per CPU second"
    );
    for (l, load) in loads.iter().enumerate() {
        for (s, (name, _, _)) in servers.iter().enumerate() {
            println!(
                "{load:<22} {name:<30} {:>11.0} {:>22.0}",
                mean(&rows[l][s], |m| m.0),
                mean(&rows[l][s], |m| m.1)
            );
        }
    }
    // Knot's best: the (load, knot) with the most queries per second.
    let (best_load, best_knot) = (0..loads.len())
        .flat_map(|l| (1..servers.len()).map(move |s| (l, s)))
        .max_by(|a, b| mean(&rows[a.0][a.1], |m| m.0).total_cmp(&mean(&rows[b.0][b.1], |m| m.0)))
        .unwrap();
    let (kq, kc) = (
        mean(&rows[best_load][best_knot], |m| m.0),
        mean(&rows[best_load][best_knot], |m| m.1),
    );
    let (vq, vc) = (
        mean(&rows[best_load][0], |m| m.0),
        mean(&rows[best_load][0], |m| m.1),
    );
    println!(
        "knot's best: {} at `{}`: {kq:.0} q/s; vipd at the same load {vq:.0} q/s: ratio {:.2} (per CPU second {:.2})",
        servers[best_knot].0,
        loads[best_load],
        vq / kq,
        vc / kc
    );

    // Latency at a fixed rate, well below both servers' peak.
    let rate = if smoke { 1000 } else { 20_000 };
    let latency_seconds = if smoke { 1 } else { 3 };
    println!("latency at {rate} queries/s (dnsperf -Q {rate}, every query's latency), µs:");
    println!("{:<30} {:>8} {:>8} {:>8}", "server", "p50", "p99", "p99.9");
    for (name, address, _) in [&servers[0], &servers[best_knot]] {
        let [p50, p99, p999] = latency(&lab, address, latency_seconds, rate);
        println!("{name:<30} {p50:>8.0} {p99:>8.0} {p999:>8.0}");
    }

    // The election while the DNS threads are saturated: adverts every 10 ms, seen on the wire.
    let capture = lab.dir.join("adverts.txt");
    let tshark = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client,
            "tshark",
            "-i",
            "eth0",
            "-f",
            "ip proto 112",
        ])
        .args(["-T", "fields", "-e", "frame.time_epoch", "-a"])
        .arg(format!("duration:{}", seconds + 2))
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tshark (apt-get install tshark)");
    std::thread::sleep(Duration::from_millis(1500));
    let saturated = measure(&lab, "192.0.2.100", vipd_pid, seconds, &loads[best_load]);
    let _ = tshark.wait_with_output();
    let times: Vec<f64> = std::fs::read_to_string(&capture)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let mut gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "adverts every 10 ms while vipd answered {:.0} q/s (`{}`): {} adverts, gap median {:.2} ms, p99 {:.2} ms, largest {:.2} ms",
        saturated.0,
        loads[best_load],
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
