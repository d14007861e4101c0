//! What 1000 groups cost in memory on the node layer, counted by the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use vipd::config::Config;
use vipd::node::{Node, Setup};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn a_thousand_groups_cost_the_node_layer_under_3_kib_each() {
    // The scale benchmark's file: 1000 IPv6 groups, 250 on each of four segments.
    let text = vipd::lab::many_groups(1000, true, 100);
    let base = live();
    let config = Config::parse("scale.toml", &text).unwrap();
    let after_config = live();
    let setup = Setup {
        interface_addresses: vec!["192.0.2.11".parse().unwrap()],
        link_up: true,
        lans: (1..4)
            .map(|s| {
                (
                    vec![
                        format!("2001:db8:{s}::11").parse().unwrap(),
                        format!("fe80::{s}:11").parse().unwrap(),
                    ],
                    true,
                )
            })
            .collect(),
        tracked_links: Vec::new(),
        quorum: None,
    };
    let t0 = Instant::now();
    let mut node = Node::new(config.clone(), 0, &setup, t0, SystemTime::now());
    let after_node = live();
    // Run it to master of every group.
    let mut now = t0;
    while now < t0 + Duration::from_secs(2) {
        now = node
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(10));
        node.handle_timeout(now);
        while node.poll_effect().is_some() {}
    }
    let after_run = live();
    let zone = node.zone();
    let after_zone = live();
    let status = node.status(now);
    let after_status = live();
    let kib = |a: isize, b: isize| (b - a) as f64 / 1024.0;
    println!("config: {:.0} KiB", kib(base, after_config));
    println!("node at start: {:.0} KiB", kib(after_config, after_node));
    println!(
        "node after 2 s as master: {:.0} KiB",
        kib(after_config, after_run)
    );
    println!("zone: {:.0} KiB", kib(after_run, after_zone));
    println!("status: {:.0} KiB", kib(after_zone, after_status));
    drop((zone, status));
    // Measured 2.3 KiB per group (2026-11-30); the daemon's own share is in the scale bench.
    let per_group = kib(after_config, after_run) / 1000.0;
    assert!(per_group < 3.0, "{per_group:.2} KiB per group");
    assert!(kib(base, after_config) / 1000.0 < 1.0, "the file");
}
