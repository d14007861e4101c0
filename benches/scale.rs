//! The cost of many groups: CPU and memory of vipd and of keepalived 2.2.7 carrying the same
//! N groups (adverts every 100 ms) in the same lab, as master and as backup.
//!
//!     cargo bench --bench scale       # as root; VIPD_BENCH_GROUPS=N (default 250, at most 255:
//!                                     # one interface holds 255 VRIDs), VIPD_BENCH_SECONDS=10

use std::fmt::Write;
use std::time::Duration;
use vipd::lab::Lab;

fn cluster(groups: usize) -> String {
    let mut text = String::new();
    for g in 1..=groups {
        let _ = write!(
            text,
            "[[group]]\nname = \"g{g}\"\nvrid = {g}\naddresses = [\"198.51.100.{g}/32\"]\npriority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"100ms\"\n"
        );
    }
    vipd::lab::cluster_file(2, &text)
}

fn keepalived(groups: usize, priority: u8) -> String {
    let mut text = String::from("global_defs {\n    router_id scale\n    vrrp_version 3\n}\n");
    for g in 1..=groups {
        let instance =
            vipd::lab::keepalived_conf(g as u8, priority, "0.1", &[&format!("198.51.100.{g}/32")]);
        // Only the instance block: the global_defs once, above.
        text.push_str(instance.split_once("}\n").map_or("", |(_, rest)| rest));
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
fn measure(lab: &mut Lab, use_keepalived: bool, groups: usize, seconds: u64) -> [(f64, u64); 2] {
    let (alpha, beta) = (lab.node("alpha"), lab.node("beta"));
    let mut pids = Vec::new();
    for (node, priority) in [(alpha, 200), (beta, 100)] {
        if use_keepalived {
            let pid = lab
                .start_keepalived(node, &keepalived(groups, priority))
                .unwrap();
            pids.push(pid);
        } else {
            lab.start(node).unwrap();
            pids.push(lab.vipd_pid(node).unwrap());
        }
    }
    // Let every group elect alpha (keepalived waits ~4 intervals; startup costs are not ours
    // to measure).
    let last = format!("198.51.100.{groups}").parse().unwrap();
    lab.wait_for_holder(last, "alpha", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
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
    [0, 1].map(|i| ((after[i].0 - before[i].0) / seconds as f64, after[i].1))
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
        .clamp(1, 255);
    let seconds: u64 = std::env::var("VIPD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 2 } else { 10 });
    let mut lab = Lab::new(
        "scale",
        &cluster(groups),
        env!("CARGO_BIN_EXE_vipd").as_ref(),
    )
    .expect("lab (run as root)");
    let vipd = measure(&mut lab, false, groups, seconds);
    let keepalived = measure(&mut lab, true, groups, seconds);
    println!(
        "{groups} groups, adverts every 100 ms, 2 nodes, {seconds} s measured after the election"
    );
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>14}",
        "", "master CPU", "master RSS", "backup CPU", "backup RSS"
    );
    for (name, m) in [("vipd", vipd), ("keepalived", keepalived)] {
        println!(
            "{name:<10} {:>13.1}% {:>10} KiB {:>13.1}% {:>10} KiB",
            m[0].0 * 100.0,
            m[0].1,
            m[1].0 * 100.0,
            m[1].1
        );
    }
    println!(
        "ratio      {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
        vipd[0].0 / keepalived[0].0.max(1e-9),
        vipd[0].1 as f64 / keepalived[0].1 as f64,
        vipd[1].0 / keepalived[1].0.max(1e-9),
        vipd[1].1 as f64 / keepalived[1].1 as f64
    );
}
