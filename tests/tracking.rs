//! Health tracking on simulated clusters: track scripts (their results fed in as the shell
//! would report them) and tracked interfaces move a node's effective priority or put its
//! group in fault; the election decides with the effective priority, also where it used to
//! read the peers' priorities from the file.

mod support;

use std::time::Duration;
use support::sim::{Sim, What};
use vipd::election::{Reason, State};
use vipd::lab::cluster_file;
use vipd::wire::Family::{V4, V6};

const MS: Duration = Duration::from_millis(1);

/// A cluster of `nodes` nodes with one dual-stack group "g" at 100 ms (`priorities`, e.g.
/// `alpha = 150, beta = 100`), a track script "chk" (`script` adds its fields), and `group`
/// lines added to the group.
fn cluster(nodes: usize, priorities: &str, script: &str, group: &str) -> Sim {
    Sim::new(&cluster_file(
        nodes,
        &format!(
            "[[track_script]]\nname = \"chk\"\ncommand = \"true\"\ninterval = \"100ms\"\n{script}\n\n\
             [[group]]\nname = \"g\"\nvrid = 51\n\
             addresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
             priority = {{ {priorities} }}\nadvert_interval = \"100ms\"\n{group}\n"
        ),
    ))
}

fn started(mut sim: Sim) -> Sim {
    sim.start_all();
    sim.run_for(Duration::from_secs(2));
    sim
}

/// The nodes that are master in both families and hold the addresses of both.
fn owner(sim: &Sim) -> Vec<usize> {
    let g = sim.group("g");
    let masters = sim.masters(g, V4);
    assert_eq!(masters, sim.masters(g, V6), "the families stay together");
    assert_eq!(masters, sim.holders(g, V4), "masters hold the addresses");
    assert_eq!(masters, sim.holders(g, V6));
    masters
}

/// Priorities of the adverts `node` sent after `since`.
fn sent_since(sim: &Sim, node: usize, since: Duration) -> Vec<u8> {
    sim.events(node, sim.group("g"), V4)
        .into_iter()
        .filter(|e| e.at >= since)
        .filter_map(|e| match e.what {
            What::Sent { priority } => Some(priority),
            _ => None,
        })
        .collect()
}

/// Times `node` became master of "g" (IPv4).
fn became_master(sim: &Sim, node: usize) -> usize {
    sim.events(node, sim.group("g"), V4)
        .into_iter()
        .filter(|e| matches!(e.what, What::Transition(t) if t.to == State::Master))
        .count()
}

fn priority_in_status(sim: &Sim, node: usize) -> u8 {
    let status = sim.status(node);
    let group = &status.groups[0];
    assert!(
        group
            .instances
            .iter()
            .all(|i| i.priority == group.instances[0].priority)
    );
    group.instances[0].priority
}

#[test]
fn a_failing_script_with_negative_weight_hands_the_group_to_the_backup_and_recovery_wins_it_back() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = -60",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(priority_in_status(&sim, alpha), 150);

    let failed_at = sim.elapsed();
    sim.check(alpha, "chk", false);
    // alpha advertises 90 at once; beta (100, preempt) takes over on hearing it.
    sim.run_for(50 * MS);
    assert_eq!(
        owner(&sim),
        vec![beta],
        "beta preempts a master whose priority fell below its own"
    );
    let sent = sent_since(&sim, alpha, failed_at);
    assert!(
        sent.contains(&90),
        "alpha advertised its new priority: {sent:?}"
    );
    assert_eq!(priority_in_status(&sim, alpha), 90);
    assert_eq!(sim.status(alpha).groups[0].base_priority, 150);
    assert!(!sim.status(alpha).groups[0].tracking[0].up);

    sim.check(alpha, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(
        owner(&sim),
        vec![alpha],
        "recovered, alpha (150) preempts at beta's next advert"
    );
    assert_eq!(priority_in_status(&sim, alpha), 150);
}

#[test]
fn without_preempt_a_lowered_master_keeps_the_group() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = -60",
        "track_script = [\"chk\"]\npreempt = false",
    ));
    let alpha = sim.node("alpha");
    sim.check(alpha, "chk", false);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![alpha]);
}

#[test]
fn a_positive_weight_counts_while_the_script_succeeds() {
    // Both track "chk" with +30: alpha 100 + 30 = 130, beta 120 + 30 = 150.
    let mut sim = started(cluster(
        2,
        "alpha = 100, beta = 120",
        "weight = 30",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    assert_eq!(owner(&sim), vec![beta]);
    assert_eq!(priority_in_status(&sim, beta), 150);
    assert_eq!(priority_in_status(&sim, alpha), 130);
    // beta's script fails: 120 < alpha's 130, alpha preempts at beta's next advert.
    sim.check(beta, "chk", false);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(priority_in_status(&sim, beta), 120);
}

#[test]
fn a_group_weight_overrides_the_scripts_and_the_priority_stays_within_1_to_254() {
    let mut sim = started(cluster(
        2,
        "alpha = 240, beta = 100",
        "weight = -60",
        "track_script = [{ name = \"chk\", weight = 40 }]",
    ));
    let alpha = sim.node("alpha");
    assert_eq!(priority_in_status(&sim, alpha), 254, "240 + 40, clamped");
    let since = sim.elapsed();
    sim.run_for(300 * MS);
    assert!(sent_since(&sim, alpha, since).iter().all(|p| *p == 254));
}

#[test]
fn fall_and_rise_count_results_in_a_row() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = -60\nfall = 3\nrise = 2",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    for ok in [false, false, true, false, false] {
        sim.check(alpha, "chk", ok);
        sim.run_for(100 * MS);
    }
    assert_eq!(owner(&sim), vec![alpha], "never three failures in a row");
    assert_eq!(priority_in_status(&sim, alpha), 150);
    sim.check(alpha, "chk", false);
    sim.run_for(100 * MS);
    assert_eq!(owner(&sim), vec![beta], "the third failure in a row");

    sim.check(alpha, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![beta], "one success is not a rise of 2");
    assert_eq!(priority_in_status(&sim, alpha), 90);
    sim.check(alpha, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha], "the second success in a row");
}

#[test]
fn init_fail_starts_the_script_down() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = -60\ninit_fail = true",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    // Both start down: alpha 150 - 60 = 90, beta 100 - 60 = 40.
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(priority_in_status(&sim, alpha), 90);
    assert_eq!(priority_in_status(&sim, beta), 40);
    sim.check(beta, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(
        owner(&sim),
        vec![beta],
        "beta up (100) outranks alpha down (90)"
    );
    sim.check(alpha, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
}

#[test]
fn weight_zero_puts_the_group_in_fault_while_the_script_fails() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let g = sim.group("g");
    let failed_at = sim.elapsed();
    sim.check(alpha, "chk", false);
    sim.run_for(5 * MS);
    assert_eq!(sim.state(alpha, g, V4), Some(State::Fault));
    assert_eq!(sim.state(alpha, g, V6), Some(State::Fault));
    assert_eq!(
        owner(&sim),
        vec![beta],
        "alpha said priority 0: beta took over at once"
    );
    let sent = sent_since(&sim, alpha, failed_at);
    assert_eq!(
        sent.last(),
        Some(&0),
        "priority 0 as alpha leaves: {sent:?}"
    );
    let reasons: Vec<Reason> = sim
        .events(alpha, g, V4)
        .into_iter()
        .filter_map(|e| match e.what {
            What::Transition(t) if t.to == State::Fault => Some(t.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![Reason::TrackFailed]);

    // Still failing: alpha stays in fault however long (no retry through backup).
    for _ in 0..80 {
        sim.check(alpha, "chk", false);
        sim.run_for(100 * MS);
    }
    assert_eq!(sim.state(alpha, g, V4), Some(State::Fault));
    assert_eq!(owner(&sim), vec![beta]);

    sim.check(alpha, "chk", true);
    sim.run_for(5 * MS);
    assert_eq!(sim.state(alpha, g, V4), Some(State::Backup));
    sim.run_for(300 * MS);
    assert_eq!(
        owner(&sim),
        vec![alpha],
        "out of fault, alpha (150) preempts"
    );
}

#[test]
fn a_failing_tracker_keeps_a_restarted_node_in_fault_from_the_start() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "",
        "track_interface = [\"eth1\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let g = sim.group("g");
    sim.kill(alpha);
    sim.set_tracked_link(alpha, "eth1", false);
    sim.run_for(Duration::from_secs(1));
    sim.start_node(alpha);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.state(alpha, g, V4), Some(State::Fault));
    assert_eq!(owner(&sim), vec![beta]);
    assert_eq!(became_master(&sim, alpha), 1, "only before the restart");
}

#[test]
fn the_address_owner_keeps_255_and_goes_to_fault_on_a_failing_tracker() {
    // alpha owns the address (its own, 192.0.2.11): priority 255.
    let mut sim = started(Sim::new(&cluster_file(
        2,
        "[[track_script]]\nname = \"chk\"\ncommand = \"true\"\nweight = -60\n\n\
         [[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.11/24\"]\n\
         priority = { alpha = 255, beta = 100 }\nadvert_interval = \"100ms\"\ntrack_script = [\"chk\"]\n",
    )));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let g = sim.group("g");
    let owner = |sim: &Sim| sim.masters(g, V4);
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(priority_in_status(&sim, alpha), 255);
    sim.check(alpha, "chk", false);
    sim.run_for(50 * MS);
    assert_eq!(
        sim.state(alpha, g, V4),
        Some(State::Fault),
        "weights do not apply to the owner: fault"
    );
    assert_eq!(priority_in_status(&sim, alpha), 255);
    assert_eq!(owner(&sim), vec![beta]);
    sim.check(alpha, "chk", true);
    sim.run_for(5 * MS);
    assert_eq!(
        owner(&sim),
        vec![alpha],
        "the owner takes its address back at once"
    );
    let since = sim.elapsed();
    sim.run_for(300 * MS);
    assert!(sent_since(&sim, alpha, since).iter().all(|p| *p == 255));
}

#[test]
fn a_tracked_interface_moves_the_priority_or_faults() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "",
        "track_interface = [{ name = \"eth1\", weight = -60 }, \"eth2\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    let g = sim.group("g");
    sim.set_tracked_link(alpha, "eth1", false);
    sim.run_for(50 * MS);
    assert_eq!(owner(&sim), vec![beta]);
    assert_eq!(priority_in_status(&sim, alpha), 90);
    sim.set_tracked_link(alpha, "eth1", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha]);

    // eth2 has weight 0: fault while it is down.
    sim.set_tracked_link(alpha, "eth2", false);
    sim.run_for(5 * MS);
    assert_eq!(sim.state(alpha, g, V4), Some(State::Fault));
    assert_eq!(owner(&sim), vec![beta]);
    sim.set_tracked_link(alpha, "eth2", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
    let tracking = &sim.status(alpha).groups[0].tracking;
    assert_eq!(tracking.len(), 2);
    assert!(tracking.iter().all(|t| t.kind == "interface" && t.up));
}

// ---- decisions that used to read a peer's priority from the file ----

#[test]
fn a_backup_whose_priority_fell_is_not_next_in_line_when_the_master_leaves() {
    // alpha 200 owns the group; beta's file priority (150) makes it next in line, but its
    // script fails: 150 - 100 = 50, below gamma's 100. When alpha stops (priority 0), gamma
    // must take the group, and beta must not take it first only to lose it to gamma.
    let mut sim = started(cluster(
        3,
        "alpha = 200, beta = 150, gamma = 100",
        "weight = -100",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.check(beta, "chk", false);
    sim.run_for(500 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
    sim.stop(alpha);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![gamma]);
    assert_eq!(became_master(&sim, beta), 0, "beta never took the group");
}

#[test]
fn only_the_best_backup_preempts_a_master_whose_priority_fell() {
    // alpha 200 falls to 90 (weight -110): both beta (150) and gamma (100) outrank it now,
    // and only beta, the best of them, takes over; gamma never holds the group.
    let mut sim = started(cluster(
        3,
        "alpha = 200, beta = 150, gamma = 100",
        "weight = -110",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    assert_eq!(owner(&sim), vec![alpha]);
    sim.check(alpha, "chk", false);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![beta]);
    assert_eq!(became_master(&sim, gamma), 0, "gamma never took the group");
    // Recovered: alpha (200) wins it back.
    sim.check(alpha, "chk", true);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(became_master(&sim, gamma), 0);
}

#[test]
fn a_backup_whose_priority_rose_above_the_masters_preempts() {
    // beta's file priority (100) is below alpha's (150); its +80 while "chk" succeeds (and
    // alpha's failing) makes it 180 against alpha's 150.
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = 80\ninit_fail = true",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    assert_eq!(owner(&sim), vec![alpha]);
    sim.check(beta, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![beta]);
    assert_eq!(priority_in_status(&sim, beta), 180);
    // alpha's own +80 makes it 230: it takes the group back.
    sim.check(alpha, "chk", true);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
}

#[test]
fn a_handover_goes_to_the_backup_with_the_best_effective_priority() {
    // beta's file priority is above gamma's, but its script fails (150 - 100 = 50): the
    // handover from alpha lands on gamma, and beta is never master on the way.
    let mut sim = started(cluster(
        3,
        "alpha = 200, beta = 150, gamma = 100",
        "weight = -100",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.check(beta, "chk", false);
    sim.run_for(300 * MS);
    let mut answer = None;
    sim.input(alpha, |node, now| {
        answer = Some(node.handover(now, "g", Some("gamma"), &|_| true));
    });
    // beta could outrank gamma (150 at best) but need not: the move is not refused.
    assert_eq!(answer, Some(Ok("gamma".to_string())));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![gamma]);
    assert_eq!(became_master(&sim, beta), 0);
}

#[test]
fn a_reload_that_adds_tracking_applies_it_in_place() {
    let mut sim = started(cluster(2, "alpha = 150, beta = 100", "weight = -60", ""));
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.check(alpha, "chk", false);
    sim.run_for(300 * MS);
    assert_eq!(owner(&sim), vec![alpha], "the group tracks nothing yet");
    let text = cluster_file(
        2,
        "[[track_script]]\nname = \"chk\"\ncommand = \"true\"\ninterval = \"100ms\"\nweight = -60\n\n\
         [[group]]\nname = \"g\"\nvrid = 51\n\
         addresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
         priority = { alpha = 150, beta = 100 }\nadvert_interval = \"100ms\"\ntrack_script = [\"chk\"]\n",
    );
    for outcome in sim.reload_all(&text) {
        outcome.unwrap();
    }
    sim.run_for(300 * MS);
    assert_eq!(
        owner(&sim),
        vec![beta],
        "the script's state was kept: down, 150 - 60 = 90"
    );
}

#[test]
fn a_backup_whose_priority_rose_is_ahead_in_line_when_the_master_leaves() {
    // +80 while "chk" succeeds: alpha 200 (254, clamped) owns the group; gamma's file
    // priority (100) is below beta's (150), but gamma's script succeeds (180) and beta's
    // fails (150). When alpha stops, gamma must take the group, and beta must not take it
    // first (by the file it would be next in line) only to lose it to gamma.
    let mut sim = started(cluster(
        3,
        "alpha = 200, beta = 150, gamma = 100",
        "weight = 80",
        "track_script = [\"chk\"]",
    ));
    let (alpha, beta, gamma) = (sim.node("alpha"), sim.node("beta"), sim.node("gamma"));
    sim.check(beta, "chk", false);
    sim.run_for(500 * MS);
    assert_eq!(owner(&sim), vec![alpha]);
    assert_eq!(priority_in_status(&sim, gamma), 180);
    sim.stop(alpha);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(owner(&sim), vec![gamma]);
    assert_eq!(became_master(&sim, beta), 0, "beta never took the group");
}

// ---- the cluster file ----

mod config {
    use vipd::config::Config;
    use vipd::config::track::{Tracked, Tracker};

    const FILE: &str = r#"[cluster]
name = "backup"
zone = "cluster.example."

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"

[[node]]
name = "beta"
interface = "eth0"
address = "192.0.2.12"

[[track_script]]
name = "chk_service"
command = "systemctl is-active --quiet nbu"
interval = "2s"
weight = -20
fall = 3
rise = 2

[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { alpha = 150, beta = 100 }
track_script = ["chk_service"]
track_interface = [{ name = "eth1", weight = -30 }, "bond0"]
"#;

    /// Parses FILE with `from` replaced by `to`.
    fn with(from: &str, to: &str) -> Result<Config, vipd::config::ConfigError> {
        assert!(FILE.contains(from), "test bug: {from:?}");
        Config::parse("netconf/test.toml", &FILE.replacen(from, to, 1))
    }

    /// The error points at the line and column where `at` begins in the edited text, names
    /// `field`, and says `words`.
    fn assert_error(from: &str, to: &str, at: &str, field: &str, words: &str) {
        let text = FILE.replacen(from, to, 1);
        let offset = text.find(at).expect("test bug: `at` not in the text");
        let line = text[..offset].matches('\n').count() + 1;
        let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        let error = with(from, to).expect_err("the file must be rejected");
        let shown = error.to_string();
        assert_eq!(error.position, Some((line, column)), "{shown}");
        assert!(shown.starts_with(&format!("netconf/test.toml:{line}:{column}: ")));
        assert!(
            error.field.contains(field),
            "field {field:?} not in: {shown}"
        );
        assert!(shown.contains(words), "{words:?} not in: {shown}");
    }

    #[test]
    fn the_file_reads_with_keepalived_defaults() {
        let config = Config::parse("netconf/test.toml", FILE).unwrap();
        let script = &config.track_scripts[0];
        assert_eq!(script.interval, std::time::Duration::from_secs(2));
        assert_eq!(
            script.timeout, script.interval,
            "the time-out defaults to the interval"
        );
        assert_eq!((script.weight, script.fall, script.rise), (-20, 3, 2));
        assert!(!script.init_fail);
        assert_eq!(
            config.groups[0].track,
            vec![
                Tracker {
                    tracked: Tracked::Script(0),
                    weight: -20
                },
                Tracker {
                    tracked: Tracked::Interface("eth1".into()),
                    weight: -30
                },
                Tracker {
                    tracked: Tracked::Interface("bond0".into()),
                    weight: 0
                },
            ]
        );
        let defaults = with("interval = \"2s\"\nweight = -20\nfall = 3\nrise = 2\n", "").unwrap();
        let script = &defaults.track_scripts[0];
        assert_eq!(script.interval, std::time::Duration::from_secs(1));
        assert_eq!((script.weight, script.fall, script.rise), (0, 1, 1));
        let overridden = with(
            "[\"chk_service\"]",
            "[{ name = \"chk_service\", weight = 0 }]",
        )
        .unwrap();
        assert_eq!(overridden.groups[0].track[0].weight, 0);
    }

    #[test]
    fn an_unknown_script() {
        assert_error(
            "track_script = [\"chk_service\"]",
            "track_script = [\"chk_servce\"]",
            "\"chk_servce\"",
            "[[group]] \"master-server\", field `track_script`",
            "no [[track_script]] is named \"chk_servce\" (defined: chk_service)",
        );
    }

    #[test]
    fn a_weight_out_of_range() {
        assert_error(
            "weight = -20",
            "weight = -300",
            "-300",
            "[[track_script]] #1 \"chk_service\", field `weight`",
            "-253..=253",
        );
        assert_error(
            "{ name = \"eth1\", weight = -30 }",
            "{ name = \"eth1\", weight = 254 }",
            "{ name = \"eth1\"",
            "field `track_interface`",
            "weight 254 is out of range",
        );
    }

    #[test]
    fn rise_and_fall_of_zero() {
        assert_error(
            "fall = 3",
            "fall = 0",
            "0\nrise",
            "field `fall`",
            "1..=1000",
        );
        assert_error("rise = 2", "rise = -1", "-1", "field `rise`", "1..=1000");
    }

    #[test]
    fn an_empty_command_and_a_short_interval() {
        assert_error(
            "command = \"systemctl is-active --quiet nbu\"",
            "command = \" \"",
            "\" \"",
            "field `command`",
            "the command is empty",
        );
        assert_error(
            "interval = \"2s\"",
            "interval = \"1ms\"",
            "\"1ms\"",
            "field `interval`",
            "at least 10ms",
        );
        assert_error(
            "interval = \"2s\"",
            "timeout = \"5us\"",
            "\"5us\"",
            "field `timeout`",
            "at least 10ms",
        );
    }

    #[test]
    fn a_script_defined_twice_and_a_tracker_listed_twice() {
        assert_error(
            "[[group]]",
            "[[track_script]]\nname = \"chk_service\"\ncommand = \"true\"\n\n[[group]]",
            "\"chk_service\"\ncommand = \"true\"",
            "[[track_script]] #2",
            "already defined",
        );
        assert_error(
            "\"bond0\"]",
            "\"eth1\"]",
            "\"eth1\"]",
            "field `track_interface`",
            "\"eth1\" is listed twice",
        );
    }

    #[test]
    fn a_bad_interface_name_and_an_unknown_key() {
        assert_error(
            "\"bond0\"",
            "\"a/b\"",
            "\"a/b\"",
            "field `track_interface`",
            "not a Linux interface name",
        );
        assert_error(
            "rise = 2",
            "rise = 2\nintervall = \"1s\"",
            "intervall",
            "track_script",
            "unknown field `intervall`",
        );
    }
}

#[test]
fn a_tracker_entry_that_is_neither_a_name_nor_a_table() {
    let text = r#"[cluster]
name = "backup"
zone = "cluster.example."

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"

[[group]]
name = "g"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { alpha = 150 }
track_interface = [3]
"#;
    let error = vipd::config::Config::parse("netconf/test.toml", text).unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with("netconf/test.toml:15:"), "{shown}");
    assert!(shown.contains("track_interface"), "{shown}");
    assert!(shown.contains("each entry is a name"), "{shown}");
}

#[test]
fn status_table_json_and_metrics_show_the_effective_priority_and_the_trackers() {
    let mut sim = started(cluster(
        2,
        "alpha = 150, beta = 100",
        "weight = -60",
        "track_script = [\"chk\"]\ntrack_interface = [\"eth1\"]",
    ));
    let alpha = sim.node("alpha");
    sim.check(alpha, "chk", false);
    sim.run_for(300 * MS);
    let status = sim.status(alpha);
    let metrics = status.prometheus();
    for line in [
        "vipd_priority{node=\"alpha\",group=\"g\",family=\"IPv4\"} 90",
        "vipd_base_priority{node=\"alpha\",group=\"g\"} 150",
        "vipd_track_up{node=\"alpha\",group=\"g\",kind=\"script\",tracker=\"chk\"} 0",
        "vipd_track_up{node=\"alpha\",group=\"g\",kind=\"interface\",tracker=\"eth1\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    let table = status.table();
    assert!(
        table.contains("tracking of g (priority 150 in the file): script chk (-60) DOWN, interface eth1 (fault) up"),
        "{table}"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["groups"][0]["instances"][0]["priority"], 90);
    assert_eq!(json["groups"][0]["tracking"][0]["name"], "chk");
    assert_eq!(json["groups"][0]["tracking"][0]["up"], false);
    assert_eq!(json["groups"][0]["tracking"][0]["runs"], 1);
}
