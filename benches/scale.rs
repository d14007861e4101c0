//! The cost of many groups: CPU and memory of vipd and of keepalived 2.2.7 carrying the same
//! N groups in the same lab, as master and as backup, and the time until all N are settled
//! after both nodes start at once.
//!
//!     cargo bench --bench scale       # as root; VIPD_BENCH_GROUPS=N (default 250, at most
//!                                     # 1000: 250 per LAN segment, eth0..eth3),
//!                                     # VIPD_BENCH_FAMILY=4|6 (default 4; 6 above 250 groups),
//!                                     # VIPD_BENCH_INTERVAL_MS (default 100),
//!                                     # VIPD_BENCH_SECONDS=10

use std::fmt::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use vipd::lab::Lab;

/// Groups per LAN segment (VRIDs 1..=250 on each).
const PER_SEGMENT: usize = 250;

fn interval_ms() -> u64 {
    std::env::var("VIPD_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|ms| (10..=40_950).contains(ms) && ms % 10 == 0)
        .unwrap_or(100)
}

/// Group `g` (0-based): its segment, VRID and virtual address.
fn group(g: usize, v6: bool) -> (usize, usize, String) {
    let (segment, vrid) = (g / PER_SEGMENT, g % PER_SEGMENT + 1);
    let address = if v6 {
        format!("2001:db8:{:x}::{vrid:x}", 0x100 + segment)
    } else {
        format!("198.51.100.{vrid}")
    };
    (segment, vrid, address)
}

fn segments(groups: usize) -> usize {
    groups.div_ceil(PER_SEGMENT)
}

fn cluster(groups: usize, v6: bool) -> String {
    let mut text = String::from("[cluster]\nname = \"lab\"\nzone = \"cluster.example.\"\n");
    for (n, name) in ["alpha", "beta"].iter().enumerate() {
        let _ = write!(
            text,
            "\n[[node]]\nname = \"{name}\"\ninterface = \"eth0\"\naddress = \"192.0.2.{}\"\n",
            11 + n
        );
        for segment in 1..segments(groups) {
            let _ = write!(
                text,
                "[[node.lan]]\ninterface = \"eth{segment}\"\naddress = \"2001:db8:{segment}::{:x}\"\nlink_local = \"fe80::{segment}:{:x}\"\n",
                0x11 + n,
                0x11 + n
            );
        }
    }
    for g in 0..groups {
        let (segment, vrid, address) = group(g, v6);
        let interface = if segment == 0 {
            String::new()
        } else {
            format!("interface = \"eth{segment}\"\n")
        };
        let _ = write!(
            text,
            "\n[[group]]\nname = \"g{g}\"\nvrid = {vrid}\n{interface}addresses = [\"{address}/{}\"]\npriority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"{}ms\"\n",
            if v6 { 128 } else { 32 },
            interval_ms()
        );
    }
    text
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
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

/// CPU share of one core and resident memory, master and backup, after settling.
fn measure(
    lab: &mut Lab,
    use_keepalived: bool,
    groups: usize,
    v6: bool,
    seconds: u64,
) -> ([(f64, u64); 2], Duration) {
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
    let settled = wait_settled(lab, groups, v6);
    let settle_time = settled.duration_since(started);
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
    std::thread::sleep(Duration::from_secs(seconds));
    let after: Vec<(f64, u64)> = trees.iter().map(|t| total(t)).collect();
    for node in [alpha, beta] {
        lab.stop(node).unwrap();
    }
    (
        [0, 1].map(|i| ((after[i].0 - before[i].0) / seconds as f64, after[i].1)),
        settle_time,
    )
}

/// Polls the kernels until alpha holds every group's address and beta none (on the right
/// segment); returns when.
fn wait_settled(lab: &Lab, groups: usize, v6: bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut settled = true;
        for segment in 0..segments(groups) {
            let interface = format!("eth{segment}");
            let on = |node: usize| lab.addresses_on(node, &interface).unwrap_or_default();
            let (alpha, beta) = (on(0), on(1));
            for g in (segment * PER_SEGMENT)..groups.min((segment + 1) * PER_SEGMENT) {
                let address: IpAddr = group(g, v6).2.parse().unwrap();
                if !alpha.contains(&address) || beta.contains(&address) {
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
    let (vipd, vipd_settle) = measure(&mut lab, false, groups, v6, seconds);
    let (keepalived, keepalived_settle) = measure(&mut lab, true, groups, v6, seconds);
    println!(
        "{groups} {} groups on {} segment(s), adverts every {} ms, 2 nodes, {seconds} s measured after the election",
        if v6 { "IPv6" } else { "IPv4" },
        segments(groups),
        interval_ms()
    );
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "", "master CPU", "master RSS", "backup CPU", "backup RSS", "settled after"
    );
    for (name, m, settle) in [
        ("vipd", vipd, vipd_settle),
        ("keepalived", keepalived, keepalived_settle),
    ] {
        println!(
            "{name:<10} {:>13.1}% {:>10} KiB {:>13.1}% {:>10} KiB {:>11.0} ms",
            m[0].0 * 100.0,
            m[0].1,
            m[1].0 * 100.0,
            m[1].1,
            settle.as_secs_f64() * 1000.0
        );
    }
    println!(
        "ratio      {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
        vipd[0].0 / keepalived[0].0.max(1e-9),
        vipd[0].1 as f64 / keepalived[0].1 as f64,
        vipd[1].0 / keepalived[1].0.max(1e-9),
        vipd[1].1 as f64 / keepalived[1].1 as f64,
        vipd_settle.as_secs_f64() / keepalived_settle.as_secs_f64().max(1e-9)
    );
}
