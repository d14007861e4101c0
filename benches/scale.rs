//! The cost of many groups: CPU and memory of vipd and of keepalived 2.2.7 carrying the same
//! N groups in the same lab, as master and as backup, and the time until all N are settled
//! after both nodes start at once.
//!
//!     cargo bench --bench scale       # as root; VIPD_BENCH_GROUPS=N (default 250, at most
//!                                     # 1000: 250 per LAN segment, eth0..eth3),
//!                                     # VIPD_BENCH_FAMILY=4|6 (default 4; 6 above 250 groups),
//!                                     # VIPD_BENCH_INTERVAL_MS (default 100),
//!                                     # VIPD_BENCH_SECONDS=10, VIPD_BENCH_PERF=1 (perf
//!                                     # profile of the master vipd while measured)
//!
//! After the measurement the master crashes (SIGKILL, off every segment): the backup's kernel
//! address table, watched with `ip -ts monitor address`, says when each group's address came
//! up on the new owner; a client probes the last group every millisecond for the outage it
//! sees.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use vipd::lab::Lab;

/// Groups per LAN segment (VRIDs 1..=250 on each).
const PER_SEGMENT: usize = vipd::lab::GROUPS_PER_SEGMENT;

use vipd::lab::{many_group as group, segments_for as segments};

fn interval_ms() -> u64 {
    std::env::var("VIPD_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|ms| (10..=40_950).contains(ms) && ms % 10 == 0)
        .unwrap_or(100)
}

fn cluster(groups: usize, v6: bool) -> String {
    vipd::lab::many_groups(groups, v6, interval_ms())
}

fn keepalived(groups: usize, v6: bool, priority: u8) -> String {
    let mut text = String::from("global_defs {\n    router_id scale\n    vrrp_version 3\n}\n");
    let advert = format!("{}", interval_ms() as f64 / 1000.0);
    for g in 0..groups {
        let (segment, vrid, address) = group(g, v6);
        let prefix = if v6 { 128 } else { 32 };
        let instance = vipd::lab::keepalived_conf(
            vrid as u8,
            priority,
            &advert,
            &[&format!("{address}/{prefix}")],
        );
        // Only the instance block (the global_defs once, above), on its segment.
        let block = instance.split_once("}\n").map_or("", |(_, rest)| rest);
        text.push_str(
            &block
                .replace(
                    &format!("vrrp_instance vi{vrid} "),
                    &format!("vrrp_instance vi{segment}_{vrid} "),
                )
                .replace("interface eth0", &format!("interface eth{segment}")),
        );
    }
    text
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (CPU seconds, resident KiB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0);
    (ticks / 100.0, status_kib(pid, "VmRSS:"))
}

/// Sum over a set of processes.
fn total(pids: &[u32]) -> (f64, u64) {
    pids.iter()
        .map(|p| usage(*p))
        .fold((0.0, 0), |(c, r), (c2, r2)| (c + c2, r + r2))
}

fn children_of(pid: u32) -> Vec<u32> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What one daemon cost and how it failed over.
struct Measured {
    /// CPU share of one core and resident KiB: master, backup.
    usage: [(f64, u64); 2],
    /// The master's resident KiB: anonymous, file-backed (the mapped binary and libraries).
    master_anon_file: (u64, u64),
    /// From the start of both daemons until alpha holds every address and beta none.
    settle: Duration,
    /// The master's main threads' context switches (voluntary: wake-ups) per second.
    master_wakeups: f64,
    /// Crash of the master of every group.
    crash: Crash,
}

/// Crash of the master: when the backup's kernel got each address (first, median, last,
/// from the crash), and the outage the client saw on the last group.
struct Crash {
    first: Duration,
    median: Duration,
    last: Duration,
    missing: usize,
    last_group_outage: Option<Duration>,
}

/// CPU share of one core and resident memory, master and backup, after settling; then a
/// crash of the master.
fn measure(lab: &mut Lab, use_keepalived: bool, groups: usize, v6: bool, seconds: u64) -> Measured {
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    let mut pids = Vec::new();
    let started = Instant::now();
    for (node, priority) in [(alpha, 200), (beta, 100)] {
        if use_keepalived {
            let pid = lab
                .start_keepalived(node, &keepalived(groups, v6, priority))
                .unwrap();
            pids.push(pid);
        } else {
            lab.start(node).unwrap();
            pids.push(lab.vipd_pid(node).unwrap());
        }
    }
    // Let every group elect alpha (keepalived waits ~4 intervals; startup costs are not ours
    // to measure).
    let settled = wait_settled(lab, groups, v6, alpha);
    let settle = settled.duration_since(started);
    std::thread::sleep(Duration::from_secs(2));
    // keepalived forks its VRRP process: count the whole tree.
    let trees: Vec<Vec<u32>> = pids
        .iter()
        .map(|p| {
            let mut tree = vec![*p];
            tree.extend(children_of(*p));
            tree
        })
        .collect();
    let before: Vec<(f64, u64)> = trees.iter().map(|t| total(t)).collect();
    let switches = |tree: &[u32]| -> u64 {
        tree.iter()
            .map(|p| status_kib(*p, "voluntary_ctxt_switches:"))
            .sum()
    };
    let switches_before = switches(&trees[0]);
    if std::env::var_os("VIPD_BENCH_PERF").is_some() && !use_keepalived {
        profile(lab, pids[0], seconds);
    } else {
        std::thread::sleep(Duration::from_secs(seconds));
    }
    let after: Vec<(f64, u64)> = trees.iter().map(|t| total(t)).collect();
    let master_wakeups = (switches(&trees[0]) - switches_before) as f64 / seconds as f64;
    let master_anon_file = trees[0].iter().fold((0, 0), |(a, f), p| {
        (
            a + status_kib(*p, "RssAnon:"),
            f + status_kib(*p, "RssFile:"),
        )
    });
    if std::env::var_os("VIPD_BENCH_SMAPS").is_some() && !use_keepalived {
        print_anonymous_mappings(pids[0]);
    }
    let crash = crash(lab, groups, v6);
    lab.stop(beta).unwrap();
    lab.stop(alpha).unwrap();
    Measured {
        usage: [0, 1].map(|i| ((after[i].0 - before[i].0) / seconds as f64, after[i].1)),
        master_anon_file,
        settle,
        master_wakeups,
        crash,
    }
}

/// The master's largest anonymous mappings (heap, arenas, stacks), from /proc/PID/smaps.
fn print_anonymous_mappings(pid: u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut mappings: Vec<(u64, String)> = Vec::new();
    let mut files: std::collections::BTreeMap<String, u64> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            current = line.to_string();
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            let kib: u64 = rest.trim().trim_end_matches(" kB").parse().unwrap_or(0);
            let path = current
                .split_whitespace()
                .nth(5)
                .unwrap_or("[anon]")
                .to_string();
            *files.entry(path).or_default() += kib;
        } else if let Some(rest) = line.strip_prefix("Anonymous:") {
            let kib: u64 = rest.trim().trim_end_matches(" kB").parse().unwrap_or(0);
            if kib > 0 {
                mappings.push((kib, current.clone()));
            }
        }
    }
    mappings.sort_by_key(|m| std::cmp::Reverse(m.0));
    println!("the master's anonymous memory by mapping (KiB):");
    for (kib, mapping) in mappings.iter().take(12) {
        println!("  {kib:>7} {mapping}");
    }
    let mut files: Vec<(u64, String)> = files.into_iter().map(|(p, k)| (k, p)).collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    println!("the master's resident memory by file (KiB):");
    for (kib, path) in files.iter().take(8) {
        println!("  {kib:>7} {path}");
    }
}

/// `perf record` of the master for `seconds`; prints the report's top entries.
fn profile(lab: &Lab, pid: u32, seconds: u64) {
    println!("perf profile of the master vipd (entries above 1.5 %):");
    for line in vipd::lab::perf_profile(pid, seconds, &lab.dir.join("perf.data"), 1.5) {
        println!("  {line}");
    }
}

/// Crashes alpha (SIGKILL, off every segment) while beta's kernel address table is watched and
/// the client probes the last group; returns when beta holds every address, with alpha back
/// on the LAN and its stale addresses removed.
fn crash(lab: &mut Lab, groups: usize, v6: bool) -> Crash {
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    // Into a file: a pipe read only at the end would fill, block `ip`, and its netlink
    // socket would drop events.
    let monitor_log = lab.dir.join("monitor.log");
    let mut monitor = Command::new("ip")
        .env("TZ", "UTC")
        .args([
            "-n",
            &lab.nodes[beta].namespace,
            "-ts",
            "monitor",
            "address",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&monitor_log).expect("monitor log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    let (segment, _, last) = group(groups - 1, v6);
    let last: IpAddr = last.parse().unwrap();
    // The virtual addresses are on-link for the client (they are outside its subnet).
    let on_link = match last {
        IpAddr::V4(_) => "198.51.100.0/24".to_string(),
        IpAddr::V6(_) => format!("{last}/64"),
    };
    let _ = Command::new("ip")
        .args(["-n", &lab.client, "route", "replace", &on_link])
        .args(["dev", &format!("eth{segment}")])
        .status();
    for node in [alpha, beta] {
        lab.start_responder(node).unwrap();
    }
    let probe_time = Duration::from_millis(2_000 + 8 * interval_ms());
    let probe = lab.start_probe(last, probe_time).unwrap();
    std::thread::sleep(Duration::from_millis(500 + interval_ms()));
    let crashed_at = SystemTime::now();
    let crashed_us = unix_us(crashed_at);
    lab.crash(alpha).unwrap();
    let _ = wait_settled(lab, groups, v6, beta);
    // ip monitor prints as it goes; a moment for the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = monitor.wait();
    let text = std::fs::read_to_string(&monitor_log).unwrap_or_default();
    let answers = lab.finish_probe(probe).unwrap_or_default();
    let last_group_outage = vipd::lab::probe::handover(&answers, crashed_us).map(|h| h.outage());
    let wanted: Vec<IpAddr> = (0..groups)
        .map(|g| group(g, v6).2.parse().unwrap())
        .collect();
    let mut added: Vec<Duration> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (us, address) in address_additions(&text) {
        if us >= crashed_us && wanted.contains(&address) && seen.insert(address) {
            added.push(Duration::from_micros(us - crashed_us));
        }
    }
    added.sort();
    // Alpha back on the LAN without the addresses its kernel kept through the crash.
    lab.revive(alpha).unwrap();
    let batch = lab.dir.join("flush.batch");
    let lines: String = (0..groups)
        .map(|g| {
            let (segment, _, address) = group(g, v6);
            format!(
                "address del {address}/{} dev eth{segment}\n",
                if v6 { 128 } else { 32 }
            )
        })
        .collect();
    std::fs::write(&batch, lines).unwrap();
    let _ = Command::new("ip")
        .args(["-n", &lab.nodes[alpha].namespace, "-force", "-batch"])
        .arg(&batch)
        .stderr(Stdio::null())
        .status();
    let at = |q: f64| {
        added
            .get(((added.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Crash {
        first: at(0.0),
        median: at(0.5),
        last: at(1.0),
        missing: groups - added.len(),
        last_group_outage,
    }
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// (µs since the epoch, address) of every address added in `ip -ts monitor address` output
/// (UTC timestamps such as `[2026-11-30T00:14:33.266466]`).
fn address_additions(text: &str) -> Vec<(u64, IpAddr)> {
    text.lines()
        .filter_map(|line| {
            let (stamp, rest) = line.strip_prefix('[')?.split_once(']')?;
            let mut words = rest.split_whitespace();
            if rest.trim_start().starts_with("Deleted") {
                return None;
            }
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let address = words.next()?.split('/').next()?.parse().ok()?;
            Some((stamp_us(stamp)?, address))
        })
        .collect()
}

/// `2026-11-30T00:14:33.266466` (UTC) as µs since the epoch.
fn stamp_us(stamp: &str) -> Option<u64> {
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    Some((((days * 24 + h) * 60 + min) * 60 + sec) as u64 * 1_000_000 + micros as u64)
}

/// Polls the kernels until `owner` holds every group's address and the other node none (on
/// the right segment; a crashed node's kernel does not count); returns when.
fn wait_settled(lab: &Lab, groups: usize, v6: bool, owner: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut settled = true;
        for segment in 0..segments(groups) {
            let interface = format!("eth{segment}");
            let on = |node: usize| {
                if lab.nodes[node].crashed {
                    Vec::new()
                } else {
                    lab.addresses_on(node, &interface).unwrap_or_default()
                }
            };
            let (held, other) = (on(owner), on(1 - owner));
            for g in (segment * PER_SEGMENT)..groups.min((segment + 1) * PER_SEGMENT) {
                let address: IpAddr = group(g, v6).2.parse().unwrap();
                if !held.contains(&address) || other.contains(&address) {
                    settled = false;
                }
            }
        }
        if settled {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "not settled within 60 s\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this without it: a smoke run (tiny
    // sizes, numbers not meaningful) with VIPD_BENCH_SMOKE set, so the harness cannot rot.
    let smoke = std::env::var_os("VIPD_BENCH_SMOKE").is_some();
    if !std::env::args().any(|a| a == "--bench") && !smoke {
        println!("scale: a benchmark; run it with `cargo bench --bench scale` (root)");
        return;
    }
    let groups: usize = std::env::var("VIPD_BENCH_GROUPS")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(if smoke { 20 } else { 250 })
        .clamp(1, 4 * PER_SEGMENT);
    let v6 = std::env::var("VIPD_BENCH_FAMILY").map_or(groups > PER_SEGMENT, |f| f == "6");
    assert!(
        v6 || groups <= PER_SEGMENT,
        "IPv4 groups take their addresses from 198.51.100.0/24: at most {PER_SEGMENT} (VIPD_BENCH_FAMILY=6 for more)"
    );
    let seconds: u64 = std::env::var("VIPD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 2 } else { 10 });
    let mut lab = Lab::new(
        "scale",
        &cluster(groups, v6),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .expect("lab (run as root)");
    let vipd = measure(&mut lab, false, groups, v6, seconds);
    let keepalived = measure(&mut lab, true, groups, v6, seconds);
    println!(
        "{groups} {} groups on {} segment(s), adverts every {} ms, 2 nodes, {seconds} s measured after the election",
        if v6 { "IPv6" } else { "IPv4" },
        segments(groups),
        interval_ms()
    );
    println!(
        "{:<10} {:>11} {:>11} {:>22} {:>11} {:>11} {:>9} {:>9}",
        "",
        "master CPU",
        "master RSS",
        "(anon + file)",
        "backup CPU",
        "backup RSS",
        "settled",
        "wakeups/s"
    );
    for (name, m) in [("vipd", &vipd), ("keepalived", &keepalived)] {
        println!(
            "{name:<10} {:>10.1}% {:>7} KiB {:>8} + {:>7} KiB {:>10.1}% {:>7} KiB {:>6.0} ms {:>9.0}",
            m.usage[0].0 * 100.0,
            m.usage[0].1,
            m.master_anon_file.0,
            m.master_anon_file.1,
            m.usage[1].0 * 100.0,
            m.usage[1].1,
            m.settle.as_secs_f64() * 1000.0,
            m.master_wakeups
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "ratio      {:>11.2} {:>11.2} {:>22} {:>11.2} {:>11.2} {:>9.2}",
        ratio(vipd.usage[0].0, keepalived.usage[0].0),
        ratio(vipd.usage[0].1 as f64, keepalived.usage[0].1 as f64),
        "",
        ratio(vipd.usage[1].0, keepalived.usage[1].0),
        ratio(vipd.usage[1].1 as f64, keepalived.usage[1].1 as f64),
        ratio(vipd.settle.as_secs_f64(), keepalived.settle.as_secs_f64())
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "crash of the master of all {groups}: when the backup's kernel got each address, from the crash"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>8} {:>22}",
        "", "first", "median", "last", "missing", "last group's outage"
    );
    for (name, m) in [("vipd", &vipd), ("keepalived", &keepalived)] {
        println!(
            "{name:<10} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>8} {:>19}",
            ms(m.crash.first),
            ms(m.crash.median),
            ms(m.crash.last),
            m.crash.missing,
            m.crash
                .last_group_outage
                .map_or("none seen".to_string(), |d| format!("{:.1} ms", ms(d)))
        );
    }
    println!(
        "ratio      {:>10.2} {:>10.2} {:>10.2}",
        ratio(ms(vipd.crash.first), ms(keepalived.crash.first)),
        ratio(ms(vipd.crash.median), ms(keepalived.crash.median)),
        ratio(ms(vipd.crash.last), ms(keepalived.crash.last))
    );
}
