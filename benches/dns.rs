//! DNS answers per second, vipd against Knot DNS (Debian's knot) serving the same zone in the
//! same lab and the same run, measured by dnsperf from the client namespace.
//!
//!     cargo bench --bench dns       # as root; VIPD_BENCH_SECONDS=N per run (default 5)
//!
//! VIPD_BENCH_DNSPERF="-c 20 -q 200 -T 2" changes dnsperf's clients, outstanding queries and
//! threads (default "-c 8 -q 500 -T 1"); KNOT_UDP_WORKERS=1 sets knot's UDP workers (default 2;
//! 1 is knot's best setting on 2 cores).

use std::process::Command;
use std::time::{Duration, Instant};
use vipd::lab::Lab;

fn cluster() -> String {
    vipd::lab::cluster_file(
        1,
        "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
         names = [\"nbu-master\"]\npriority = { alpha = 200 }\nadvert_interval = \"100ms\"\n",
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
fn measure(lab: &Lab, server: &str, pid: u32, seconds: u64) -> (f64, f64) {
    let before = cpu_seconds(pid);
    let qps = dnsperf(lab, server, seconds);
    let cpu = cpu_seconds(pid) - before;
    (qps, qps * seconds as f64 / cpu.max(0.01))
}

fn dnsperf(lab: &Lab, server: &str, seconds: u64) -> f64 {
    let queries = lab.dir.join("queries.txt");
    std::fs::write(&queries, QUERIES).unwrap();
    let load: Vec<String> = std::env::var("VIPD_BENCH_DNSPERF")
        .unwrap_or_else(|_| "-c 8 -q 500 -T 1".into())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let out = lab
        .exec(
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
            .chain(load.iter().map(String::as_str))
            .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("dnsperf (apt-get install dnsperf): {e}"));
    let line = out
        .lines()
        .find(|l| l.contains("Queries per second"))
        .unwrap_or_else(|| panic!("{out}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
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

    let namespace = lab.add_host("knot", &["192.0.2.53/24"]).unwrap();
    let zone_file = lab.dir.join("cluster.example.zone");
    std::fs::write(&zone_file, ZONE).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/knot/run-knot.sh");
    let log = std::fs::File::create(lab.dir.join("knot.log")).unwrap();
    let knot_pid = lab
        .spawn(
            Command::new("bash")
                .arg(script)
                .arg(&namespace)
                .arg(lab.dir.join("knot"))
                .arg("192.0.2.53")
                .arg("cluster.example.")
                .arg(&zone_file)
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .unwrap();
    let start = Instant::now();
    while !lab
        .exec(
            &lab.client,
            &[
                "dig",
                "+short",
                "+time=1",
                "@192.0.2.53",
                "cluster.example.",
                "SOA",
            ],
        )
        .is_ok_and(|o| !o.trim().is_empty())
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "knot did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let vipd_pid = lab.vipd_pid(0).unwrap();
    let load = std::env::var("VIPD_BENCH_DNSPERF").unwrap_or_else(|_| "-c 8 -q 500 -T 1".into());
    println!(
        "DNS by dnsperf ({load}, {seconds} s per run, 3 runs each, alternating) on this 2-core machine,"
    );
    println!(
        "where dnsperf shares the cores: queries per CPU second of the server is the fairer number"
    );
    let (mut vipd, mut knot) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        vipd.push(measure(&lab, "192.0.2.100", vipd_pid, seconds));
        knot.push(measure(&lab, "192.0.2.53", knot_pid, seconds));
    }
    let median = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut values: Vec<f64> = v.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (vq, kq) = (median(&vipd, |m| m.0), median(&knot, |m| m.0));
    let (vc, kc) = (median(&vipd, |m| m.1), median(&knot, |m| m.1));
    println!(
        "{:<28} {:>14} {:>22}",
        "", "queries/s", "queries per CPU second"
    );
    println!(
        "{:<28} {vq:>14.0} {vc:>22.0}",
        "vipd (at the virtual address)"
    );
    let workers = std::env::var("KNOT_UDP_WORKERS").unwrap_or_else(|_| "2".into());
    let knot_name = format!("knot 3.2 ({workers} UDP workers)");
    println!("{knot_name:<28} {kq:>14.0} {kc:>22.0}");
    println!(
        "{:<28} {:>14.2} {:>22.2}",
        "ratio vipd / knot",
        vq / kq,
        vc / kc
    );
}
