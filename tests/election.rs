//! Election scenarios on simulated clusters, with exact timing: a takeover happens when the
//! timers say, not a microsecond before, not after.

mod support;

use std::time::Duration;
use support::sim::{Sim, What};
use vipd::election::{Reason, State};
use vipd::lab::{cluster_file, with_foreign};
use vipd::wire::Family::{V4, V6};

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);

/// Two nodes, one IPv4 group at 100 ms; extra lines go into the group.
fn pair(group_extra: &str) -> Sim {
    pair_with("", group_extra)
}

fn pair_with(node_extra: &str, group_extra: &str) -> Sim {
    let group = format!(
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
    );
    let cluster = cluster_file(2, &group);
    Sim::new(&match node_extra {
        "foreign = true" => with_foreign(&cluster, "alpha"),
        "" => cluster,
        other => panic!("test bug: node extra {other:?}"),
    })
}

fn trio(group_extra: &str) -> Sim {
    Sim::new(&cluster_file(
        3,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
             priority = {{ alpha = 200, beta = 150, gamma = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
        ),
    ))
}

/// Two nodes of equal priority, told apart by their addresses (.11 < .12).
fn equal_pair() -> Sim {
    Sim::new(
        r#"
[cluster]
name = "test"
zone = "cluster.example."
[[node]]
name = "low"
interface = "eth0"
address = "192.0.2.11"
[[node]]
name = "high"
interface = "eth0"
address = "192.0.2.12"
[[group]]
name = "g"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { low = 100, high = 100 }
advert_interval = "100ms"
"#,
    )
}

/// Skew_Time at 100 ms for a priority, as RFC 9568 computes it.
fn skew(priority: u64) -> Duration {
    Duration::from_nanos((256 - priority) * 100_000_000 / 256)
}

/// Runs to just before and just at `at`, asserting that `node` becomes master exactly then.
fn assert_master_exactly_at(sim: &mut Sim, node: usize, at: Duration) {
    let g = 0;
    sim.run_until(sim.at(at - US));
    assert_ne!(
        sim.state(node, g, V4),
        Some(State::Master),
        "master before {at:?}"
    );
    sim.run_until(sim.at(at));
    assert_eq!(
        sim.state(node, g, V4),
        Some(State::Master),
        "not master at {at:?}"
    );
    assert_eq!(sim.became_master_at(node, g, V4), Some(at));
}

#[test]
fn the_first_in_line_becomes_master_after_three_intervals_and_the_other_never() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Backup));
    // alpha knows nobody outranks it: no skew.
    assert_master_exactly_at(&mut sim, alpha, 300 * MS);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.holders(0, V4), vec![alpha]);
    assert_eq!(sim.became_master_at(beta, 0, V4), None);
}

#[test]
fn rfc_timers_when_a_foreign_speaker_is_a_member() {
    let mut sim = pair_with("foreign = true", "");
    let alpha = sim.node("alpha");
    sim.start_all();
    assert_master_exactly_at(&mut sim, alpha, 300 * MS + skew(150));
}

#[test]
fn the_address_owner_starts_as_master_at_once() {
    let mut sim = Sim::new(&cluster_file(
        2,
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.11/24\"]\n\
         priority = { alpha = 255, beta = 100 }\nadvert_interval = \"100ms\"\n",
    ));
    let alpha = sim.node("alpha");
    sim.start_all();
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Master));
    assert!(
        sim.events(alpha, 0, V4)
            .iter()
            .any(|l| l.what == What::Claimed { accept: true })
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn crash_is_taken_over_three_intervals_after_the_last_advert() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(2050)));
    sim.kill(alpha);
    let last = sim.last_advert_at(alpha, 0, V4).unwrap();
    assert_eq!(last, Duration::from_millis(2000));
    // Faster than the RFC's 3 x 100 ms + skew (360.9 ms for priority 100).
    assert_master_exactly_at(&mut sim, beta, last + 300 * MS);
    assert_eq!(sim.holders(0, V4), vec![beta]);
}

#[test]
fn crash_with_rfc_timers_waits_for_skew_too() {
    let mut sim = pair_with("foreign = true", "");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(2050)));
    sim.kill(alpha);
    let last = sim.last_advert_at(alpha, 0, V4).unwrap();
    assert_master_exactly_at(&mut sim, beta, last + 300 * MS + skew(100));
}

#[test]
fn graceful_stop_is_taken_over_within_the_network_delay() {
    let mut sim = pair("");
    sim.delay = 200 * US;
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(1234)));
    sim.stop(alpha);
    assert!(
        sim.events(alpha, 0, V4)
            .iter()
            .any(|l| l.what == What::Sent { priority: 0 })
    );
    assert!(sim.holders(0, V4).is_empty());
    assert_master_exactly_at(&mut sim, beta, Duration::from_millis(1234) + 200 * US);
    let became = sim
        .events(beta, 0, V4)
        .into_iter()
        .rev()
        .find_map(|l| match l.what {
            What::Transition(t) if t.to == State::Master => Some(t.reason),
            _ => None,
        });
    assert_eq!(became, Some(Reason::MasterLeft));
}

#[test]
fn graceful_stop_with_rfc_timers_waits_skew_time() {
    let mut sim = pair_with("foreign = true", "");
    let beta = sim.node("beta");
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(1234)));
    sim.stop(sim.node("alpha"));
    assert_master_exactly_at(&mut sim, beta, Duration::from_millis(1234) + skew(100));
}

#[test]
fn graceful_stop_when_the_next_in_line_is_dead_falls_back_to_skew() {
    let mut sim = trio("");
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.kill(beta);
    sim.run_until(sim.at(Duration::from_millis(1500)));
    sim.stop(alpha);
    // gamma cannot know that beta is dead: it waits Skew_Time for beta to speak first.
    assert_master_exactly_at(&mut sim, gamma, Duration::from_millis(1500) + skew(100));
    assert_eq!(sim.masters(0, V6), vec![gamma], "the IPv6 instance follows");
}

#[test]
fn graceful_stop_among_three_hands_over_to_the_next_in_line_only() {
    let mut sim = trio("");
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.delay = 100 * US;
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.stop(alpha);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(
        sim.became_master_at(beta, 0, V4),
        Some(Duration::from_secs(1) + 100 * US)
    );
    assert_eq!(
        sim.became_master_at(gamma, 0, V4),
        None,
        "gamma never collided"
    );
}

#[test]
fn the_preferred_node_takes_the_group_back_with_preempt() {
    let mut sim = pair("");
    sim.delay = 100 * US;
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_secs(1)));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    sim.run_until(sim.at(Duration::from_millis(1050)));
    sim.start_node(alpha);
    // beta's next advert (at 1.1 s, 1.1001 s at alpha) makes alpha preempt at once.
    let beta_advert = sim.last_advert_at(beta, 0, V4).unwrap() + 100 * MS;
    assert_master_exactly_at(&mut sim, alpha, beta_advert + 100 * US);
    sim.run_until(sim.at(beta_advert + 200 * US));
    assert_eq!(
        sim.masters(0, V4),
        vec![alpha],
        "beta yields on alpha's first advert"
    );
    assert_eq!(sim.holders(0, V4), vec![alpha]);
}

#[test]
fn preempt_with_rfc_timers_waits_master_down_interval() {
    let mut sim = pair_with("foreign = true", "");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_millis(1050)));
    sim.start_node(alpha);
    assert_master_exactly_at(
        &mut sim,
        alpha,
        Duration::from_millis(1050) + 300 * MS + skew(150),
    );
    sim.run_for(10 * MS);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn without_preempt_a_returning_node_leaves_the_master_alone() {
    let mut sim = pair("preempt = false");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.start_node(alpha);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(sim.became_master_at(alpha, 0, V4), None);
}

#[test]
fn preempt_delay_holds_the_preferred_node_back() {
    let mut sim = pair("preempt_delay = \"2s\"");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_millis(1050)));
    sim.start_node(alpha);
    // beta became master at 300 ms + its skew (360.9 ms), and adverts every 100 ms from
    // there, on the node's 10 ms grid from the second on (460 ms, 560 ms, ...). The first
    // that alpha hears starts the delay; the one 2 s later is no longer tolerated.
    let became = 300 * MS + skew(100);
    assert_eq!(became.as_micros(), 360_937);
    let first_heard = 460 * MS + 6 * 100 * MS;
    assert_master_exactly_at(&mut sim, alpha, first_heard + Duration::from_secs(2));
    sim.run_for(MS);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
}

#[test]
fn equal_priorities_are_broken_by_the_higher_address_without_a_collision() {
    let mut sim = equal_pair();
    sim.delay = 50 * US;
    let (low, high) = (sim.node("low"), sim.node("high"));
    sim.start_all();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.masters(0, V4), vec![high]);
    assert_eq!(sim.became_master_at(low, 0, V4), None);
}

#[test]
fn only_a_master_compares_addresses_a_backup_accepts_an_equal_priority_master() {
    let mut sim = equal_pair();
    let (low, high) = (sim.node("low"), sim.node("high"));
    sim.start_node(low);
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.start_node(high);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        sim.masters(0, V4),
        vec![low],
        "the backup took the equal advert as valid"
    );
}

#[test]
fn equal_priority_masters_after_a_partition_resolve_to_the_higher_address() {
    let mut sim = equal_pair();
    let (low, high) = (sim.node("low"), sim.node("high"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.partition(&[low]);
    sim.run_until(sim.at(Duration::from_secs(2)));
    assert_eq!(
        sim.masters(0, V4),
        vec![low, high],
        "split brain while partitioned"
    );
    sim.heal();
    sim.run_for(100 * MS);
    assert_eq!(sim.masters(0, V4), vec![high]);
    assert_eq!(sim.holders(0, V4), vec![high]);
}

#[test]
fn split_brain_heals_within_one_advert_interval_and_is_announced_again() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.partition(&[beta]);
    sim.run_until(sim.at(Duration::from_secs(2)));
    assert_eq!(sim.masters(0, V4), vec![alpha, beta]);
    let heal_at = sim.elapsed();
    let announces_before = sim
        .events(alpha, 0, V4)
        .iter()
        .filter(|l| l.what == What::Announced)
        .count();
    sim.heal();
    sim.run_for(100 * MS);
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.holders(0, V4), vec![alpha]);
    let announced_again = sim
        .events(alpha, 0, V4)
        .iter()
        .filter(|l| l.what == What::Announced && l.at >= heal_at)
        .count();
    assert!(
        announced_again >= 1,
        "alpha re-announces after seeing a second master"
    );
    assert!(announces_before >= 1);
}

#[test]
fn link_down_gives_up_the_group_and_link_up_comes_back_through_backup() {
    let mut sim = pair("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(1050)));
    sim.set_link(alpha, false);
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Fault));
    assert!(sim.holders(0, V4).is_empty());
    assert_master_exactly_at(&mut sim, beta, Duration::from_millis(1300));
    sim.run_until(sim.at(Duration::from_millis(2050)));
    sim.set_link(alpha, true);
    assert_eq!(sim.state(alpha, 0, V4), Some(State::Backup));
    // link_hold (by default three advert intervals): no preempt while the link may flap...
    sim.run_for(200 * MS);
    assert_eq!(
        sim.masters(0, V4),
        vec![beta],
        "held after the link returns"
    );
    // ...then back at beta's next advert.
    sim.run_for(300 * MS);
    assert_eq!(
        sim.masters(0, V4),
        vec![alpha],
        "preempts back once the link has stayed up"
    );
}

#[test]
fn announcements_follow_count_spacing_and_refresh() {
    let mut sim =
        pair("announce_count = 3\nannounce_interval = \"50ms\"\nannounce_refresh = \"1s\"");
    let alpha = sim.node("alpha");
    sim.start_all();
    sim.run_until(sim.at(Duration::from_millis(2400)));
    let times: Vec<Duration> = sim
        .events(alpha, 0, V4)
        .iter()
        .filter(|l| l.what == What::Announced)
        .map(|l| l.at)
        .collect();
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(times, vec![ms(300), ms(350), ms(400), ms(1400), ms(2400)]);
}

#[test]
fn dual_stack_group_keeps_both_families_on_one_owner() {
    let mut sim = trio("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(sim.masters(0, V6), vec![alpha]);
    sim.kill(alpha);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    assert_eq!(sim.masters(0, V6), vec![beta]);
    assert_eq!(sim.holders(0, V6), vec![beta]);
}

#[test]
fn when_one_family_sees_a_better_master_the_other_follows() {
    let mut sim = trio("");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_secs(1)));
    // alpha's IPv4 adverts are lost: only its IPv6 instance can win, and it drags IPv4 along.
    sim.block_family = Some(V4);
    sim.start_node(alpha);
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.masters(0, V6), vec![alpha]);
    assert_eq!(
        sim.state(beta, 0, V4),
        Some(State::Backup),
        "beta's IPv4 instance followed its IPv6 one"
    );
    let reason = sim
        .events(beta, 0, V4)
        .into_iter()
        .rev()
        .find_map(|l| match l.what {
            What::Transition(t) => Some(t.reason),
            _ => None,
        });
    assert_eq!(reason, Some(Reason::SyncGroup));
}

#[test]
fn a_backup_that_follows_a_better_master_leaves_a_lower_second_master_to_it() {
    let mut sim = trio("");
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    // gamma alone on its side becomes master there.
    sim.partition(&[gamma]);
    sim.run_until(sim.at(Duration::from_secs(2)));
    assert_eq!(sim.masters(0, V4), vec![alpha, gamma]);
    sim.heal();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    assert_eq!(
        sim.became_master_at(beta, 0, V4),
        None,
        "beta, following alpha, did not preempt gamma"
    );
}

#[test]
fn with_rfc_timers_a_yielding_master_says_nothing() {
    let mut sim = pair_with("foreign = true", "");
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_node(beta);
    sim.run_until(sim.at(Duration::from_secs(1)));
    sim.start_node(alpha);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![alpha]);
    // keepalived backups would take a priority 0 as the master leaving.
    assert!(
        !sim.events(beta, 0, V4)
            .iter()
            .any(|l| l.what == What::Sent { priority: 0 })
    );
}

#[test]
fn a_node_that_knows_no_master_yet_waits_skew_time_on_priority_zero() {
    let mut sim = trio("preempt = false");
    let (beta, gamma) = (sim.node("beta"), sim.node("gamma"));
    // gamma is master alone; beta starts, and before it hears an advert gamma stops.
    sim.start_node(gamma);
    sim.run_until(sim.at(Duration::from_millis(1050)));
    sim.start_node(beta);
    sim.stop(gamma);
    // beta knows no master: no fast path (a live lower master could exist); it waits Skew_Time.
    sim.run_until(sim.at(Duration::from_millis(1050) + skew(150) - US));
    assert_eq!(sim.masters(0, V4), Vec::<usize>::new());
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.masters(0, V4), vec![beta]);
    let reason = sim
        .events(beta, 0, V4)
        .into_iter()
        .rev()
        .find_map(|l| match l.what {
            What::Transition(t) if t.to == State::Master => Some(t.reason),
            _ => None,
        });
    assert_eq!(reason, Some(Reason::MasterDown));
}
