//! Randomized fault schedules on simulated clusters, seeded and reproducible. After any
//! schedule, once the LAN is whole and quiet for a Master_Down_Interval, every group has
//! exactly one master, it alone holds the addresses, both families of a group agree, and with
//! preempt on the master is the best live member.
//!
//! `VIPD_SIM_SEEDS=N` runs N schedules (default 2000); `VIPD_SIM_SEED=S` runs seed S alone
//! and prints its schedule.

mod support;

use std::fmt::Write;
use std::time::Duration;
use support::sim::{Rng, Sim};
use vipd::wire::Family;

/// A random cluster file: 2 to 4 nodes, 1 to 3 groups, some dual-stack, ties allowed.
fn random_cluster(rng: &mut Rng) -> String {
    let nodes = 2 + rng.below(3) as usize;
    let link_locals = rng.chance(500);
    let foreign = rng.chance(200);
    let mut text = String::from("[cluster]\nname = \"prop\"\nzone = \"cluster.example.\"\n");
    for i in 0..nodes {
        let _ = write!(
            text,
            "[[node]]\nname = \"n{i}\"\ninterface = \"eth0\"\naddress = \"192.0.2.{}\"\n",
            10 + i
        );
        if link_locals {
            let _ = writeln!(text, "link_local = \"fe80::{}\"", i + 1);
        }
        if foreign && i == 0 {
            text.push_str("foreign = true\n");
        }
    }
    let groups = 1 + rng.below(3);
    for g in 0..groups {
        let dual = rng.chance(400);
        let interval = [50, 100, 200][rng.below(3) as usize];
        let members = 2 + rng.below(nodes as u64 - 1) as usize;
        let mut priorities = Vec::new();
        for i in 0..members {
            // Ties need a way to tell the members apart: IPv4 addresses, or link-locals.
            // (Dual-stack groups refuse ties: the families could break them differently.)
            let priority = if !dual {
                50 + 50 * rng.below(4)
            } else {
                60 + 40 * i as u64
            };
            priorities.push(format!("n{i} = {priority}"));
        }
        let addresses = if dual {
            format!("[\"192.0.2.{}/24\", \"2001:db8::{}/64\"]", 100 + g, 100 + g)
        } else {
            format!("[\"192.0.2.{}/24\"]", 100 + g)
        };
        let _ = write!(
            text,
            "[[group]]\nname = \"g{g}\"\nvrid = {}\naddresses = {addresses}\npriority = {{ {} }}\nadvert_interval = \"{interval}ms\"\npreempt = {}\n",
            10 + g,
            priorities.join(", "),
            rng.chance(700),
        );
    }
    text
}

/// Runs one schedule; returns a description of the violation, if any.
fn run(seed: u64, verbose: bool) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let cluster = random_cluster(&mut rng);
    let mut sim = Sim::new(&cluster);
    sim.rng = Rng::new(seed ^ 0x5eed);
    let nodes = sim.nodes.len();
    let mut schedule = String::new();
    sim.start_all();
    let steps = 5 + rng.below(20);
    for _ in 0..steps {
        sim.run_for(Duration::from_millis(rng.below(1500)));
        let node = rng.below(nodes as u64) as usize;
        let event = rng.below(10);
        let _ = write!(schedule, "{:?} ", sim.elapsed());
        match event {
            0 => {
                sim.kill(node);
                let _ = writeln!(schedule, "kill n{node}");
            }
            1 => {
                sim.stop(node);
                let _ = writeln!(schedule, "stop n{node}");
            }
            2 | 3 => {
                sim.start_node(node);
                let _ = writeln!(schedule, "start n{node}");
            }
            4 => {
                let up = !sim.nodes[node].link_up;
                sim.set_link(node, up);
                let _ = writeln!(schedule, "link n{node} {}", if up { "up" } else { "down" });
            }
            5 => {
                let side: Vec<usize> = (0..nodes).filter(|_| rng.chance(500)).collect();
                sim.partition(&side);
                let _ = writeln!(schedule, "partition {side:?}");
            }
            6 => {
                sim.loss_per_mille = rng.below(600);
                let _ = writeln!(schedule, "loss {}/1000", sim.loss_per_mille);
            }
            7 => {
                sim.delay = Duration::from_micros(rng.below(5000));
                let _ = writeln!(schedule, "delay {:?}", sim.delay);
            }
            8 => {
                sim.block_family = Some(if rng.chance(500) {
                    Family::V4
                } else {
                    Family::V6
                });
                let _ = writeln!(schedule, "block {:?}", sim.block_family);
            }
            _ => {
                sim.heal();
                let _ = writeln!(schedule, "heal");
            }
        }
    }
    // Make the LAN whole, then stay quiet for the longest Master_Down_Interval, plus one
    // advert interval for a split brain to meet its better master, plus the link hold of a
    // node whose link just came back, plus the latency.
    sim.heal();
    for node in 0..nodes {
        if !sim.nodes[node].link_up {
            sim.set_link(node, true);
        }
    }
    let _ = writeln!(schedule, "{:?} heal, links up", sim.elapsed());
    let settle = sim
        .config
        .groups
        .iter()
        .map(|g| 4 * g.advert_interval + g.advert_interval + g.link_hold + 2 * sim.delay)
        .max()
        .unwrap();
    sim.run_for(settle);
    if verbose {
        eprintln!("cluster:\n{cluster}\nschedule:\n{schedule}");
    }

    let fail = |why: String| {
        Err(format!(
            "seed {seed}: {why}\ncluster:\n{cluster}\nschedule:\n{schedule}"
        ))
    };
    for (g, group) in sim.config.groups.iter().enumerate() {
        let live: Vec<usize> = group
            .priorities
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| sim.nodes[*n].running())
            .collect();
        if live.is_empty() {
            continue;
        }
        let mut owners = Vec::new();
        for family in group.families() {
            let masters = sim.masters(g, family);
            if masters.len() != 1 {
                return fail(format!(
                    "group {} {family}: masters {masters:?}",
                    group.name
                ));
            }
            let holders = sim.holders(g, family);
            if holders != masters {
                return fail(format!(
                    "group {} {family}: holders {holders:?}, masters {masters:?}",
                    group.name
                ));
            }
            // On a tie a backup accepts its equal as master (RFC 9568: only a master compares
            // addresses), so any live member of the highest priority will do.
            let best = live
                .iter()
                .map(|n| group.priority_of(*n).unwrap())
                .max()
                .unwrap();
            if group.preempt && group.priority_of(masters[0]) != Some(best) {
                return fail(format!(
                    "group {} {family}: master n{} is not of the best live priority {best}",
                    group.name, masters[0]
                ));
            }
            owners.push(masters[0]);
        }
        owners.dedup();
        if owners.len() != 1 {
            return fail(format!(
                "group {}: families on different nodes {owners:?}",
                group.name
            ));
        }
    }
    Ok(())
}

#[test]
fn after_any_fault_schedule_each_group_has_exactly_one_master() {
    if let Ok(seed) = std::env::var("VIPD_SIM_SEED") {
        let seed = seed.parse().expect("VIPD_SIM_SEED is a number");
        if let Err(e) = run(seed, true) {
            panic!("{e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("VIPD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let failures: Vec<String> = (0..seeds)
        .filter_map(|seed| run(seed, false).err())
        .collect();
    if !failures.is_empty() {
        panic!(
            "{} of {seeds} schedules failed; the first:\n{}",
            failures.len(),
            failures[0]
        );
    }
}
