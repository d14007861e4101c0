//! One instance driven by hand: the rules about what an advert may change.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use vipd::election::{
    Action, Advert, AnnounceConfig, Instance, InstanceConfig, Peer, Reason, State, Transition,
};
use vipd::wire::Family;

const MS: Duration = Duration::from_millis(1);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn config(priority: u8, fast: bool) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        family: Family::V4,
        priority,
        primary: ip("192.0.2.12"),
        advert_interval: 100 * MS,
        preempt: true,
        preempt_delay: Duration::ZERO,
        link_hold: Duration::ZERO,
        accept_mode: true,
        announce: AnnounceConfig {
            count: 1,
            interval: 10 * MS,
            refresh: Duration::ZERO,
        },
        peers: vec![Peer {
            name: "alpha".into(),
            priority: 150,
            min_priority: 150,
            max_priority: 150,
            address: Some(ip("192.0.2.11")),
        }],
        fast_takeover: fast,
        allow_unknown_peers: false,
    }
}

fn advert(src: &str, priority: u8, interval: Duration) -> Advert {
    Advert {
        src: ip(src),
        priority,
        interval,
    }
}

fn drain(instance: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| instance.poll_action()).collect()
}

#[test]
fn a_longer_interval_in_an_advert_never_stretches_the_timers() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, false));
    beta.start(t0);
    // A forged or misconfigured advert claims 40.95 s.
    beta.handle_advert(
        t0,
        &advert("192.0.2.11", 150, Duration::from_millis(40_950)),
    );
    assert_eq!(beta.counters().interval_mismatch, 1);
    assert_eq!(beta.master_adver_interval(), 100 * MS);
    let down = 300 * MS + Duration::from_nanos(156 * 100_000_000 / 256);
    assert_eq!(beta.poll_timeout(), Some(t0 + down));
}

#[test]
fn a_shorter_interval_is_learned_as_rfc_9568_says() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, false));
    beta.start(t0);
    beta.handle_advert(t0, &advert("192.0.2.11", 150, 50 * MS));
    assert_eq!(beta.master_adver_interval(), 50 * MS);
    let down = 150 * MS + Duration::from_nanos(156 * 50_000_000 / 256);
    assert_eq!(beta.poll_timeout(), Some(t0 + down));
}

#[test]
fn adverts_from_strangers_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, true));
    beta.start(t0);
    let before = beta.poll_timeout();
    // One forged priority-254 advert must not take the group down.
    beta.handle_advert(t0 + MS, &advert("192.0.2.99", 254, 100 * MS));
    assert_eq!(beta.counters().dropped_not_member, 1);
    assert_eq!(beta.poll_timeout(), before);
    let mut master = Instance::new(InstanceConfig {
        priority: 200,
        ..config(200, true)
    });
    master.start(t0);
    master.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(master.state(), State::Master);
    master.handle_advert(
        t0 + Duration::from_secs(1),
        &advert("192.0.2.99", 254, 100 * MS),
    );
    assert_eq!(
        master.state(),
        State::Master,
        "a stranger cannot make the master yield"
    );
}

#[test]
fn unknown_peers_can_be_allowed() {
    let t0 = Instant::now();
    let mut beta = Instance::new(InstanceConfig {
        allow_unknown_peers: true,
        ..config(100, false)
    });
    beta.start(t0);
    beta.handle_advert(t0 + MS, &advert("192.0.2.99", 254, 100 * MS));
    assert_eq!(beta.counters().dropped_not_member, 0);
    assert!(beta.poll_timeout() > Some(t0 + 300 * MS));
}

#[test]
fn own_adverts_are_ignored() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, false));
    beta.start(t0);
    beta.handle_advert(t0, &advert("192.0.2.12", 100, 100 * MS));
    assert_eq!(beta.counters().dropped_own, 1);
}

#[test]
fn ipv6_peers_are_recognised_by_priority_and_remembered() {
    let t0 = Instant::now();
    let mut cfg = config(100, true);
    cfg.family = Family::V6;
    cfg.primary = ip("fe80::12");
    cfg.peers[0].address = None;
    let mut beta = Instance::new(cfg);
    beta.start(t0);
    beta.handle_advert(t0, &advert("fe80::11", 150, 100 * MS));
    assert_eq!(beta.master_peer(), Some("alpha"));
    // Its priority-0 advert is then known to come from the master we follow.
    beta.handle_advert(t0 + MS, &advert("fe80::11", 0, 100 * MS));
    assert_eq!(beta.state(), State::Master);
    // A link-local source with a priority no member has is a stranger.
    let mut gamma = Instance::new(InstanceConfig {
        family: Family::V6,
        primary: ip("fe80::13"),
        ..config(100, true)
    });
    gamma.start(t0);
    gamma.handle_advert(t0, &advert("fe80::99", 222, 100 * MS));
    assert_eq!(gamma.counters().dropped_not_member, 1);
}

#[test]
fn a_master_stepping_down_says_priority_zero_then_releases() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, true));
    beta.start(t0);
    beta.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(beta.state(), State::Master);
    drain(&mut beta);
    beta.handle_advert(
        t0 + Duration::from_secs(1),
        &advert("192.0.2.11", 150, 100 * MS),
    );
    assert_eq!(
        drain(&mut beta),
        vec![
            Action::Transition(Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::HigherPriority
            }),
            Action::SendAdvert { priority: 0 },
            Action::Release,
        ]
    );
}

#[test]
fn shutdown_of_a_master_sends_priority_zero_and_releases() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, true));
    beta.start(t0);
    beta.handle_timeout(t0 + Duration::from_secs(1));
    drain(&mut beta);
    beta.shutdown(t0 + Duration::from_secs(2));
    assert_eq!(
        drain(&mut beta),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Release,
            Action::Transition(Transition {
                from: State::Master,
                to: State::Initialize,
                reason: Reason::Shutdown
            }),
        ]
    );
    assert_eq!(beta.poll_timeout(), None);
}

#[test]
fn a_master_answers_priority_zero_with_an_advert_at_once() {
    let t0 = Instant::now();
    let mut alpha = Instance::new(InstanceConfig {
        priority: 200,
        primary: ip("192.0.2.11"),
        peers: vec![Peer {
            name: "beta".into(),
            priority: 100,
            min_priority: 100,
            max_priority: 100,
            address: Some(ip("192.0.2.12")),
        }],
        ..config(200, false)
    });
    alpha.start(t0);
    alpha.handle_timeout(t0 + Duration::from_secs(1));
    drain(&mut alpha);
    alpha.handle_advert(
        t0 + Duration::from_millis(1510),
        &advert("192.0.2.12", 0, 100 * MS),
    );
    assert_eq!(
        drain(&mut alpha),
        vec![Action::SendAdvert { priority: 200 }, Action::Announce]
    );
    assert_eq!(
        alpha.poll_timeout(),
        Some(t0 + Duration::from_millis(1610)),
        "advert timer reset"
    );
}

#[test]
fn the_claim_says_whether_traffic_to_the_addresses_is_accepted() {
    let t0 = Instant::now();
    for (accept_mode, priority, expected) in
        [(false, 100, false), (true, 100, true), (false, 255, true)]
    {
        let mut config = config(priority, true);
        config.accept_mode = accept_mode;
        if priority == 255 {
            config.primary = ip("192.0.2.100");
        }
        let mut instance = Instance::new(config);
        instance.start(t0);
        instance.handle_timeout(t0 + Duration::from_secs(1));
        let claim = drain(&mut instance)
            .into_iter()
            .find(|a| matches!(a, Action::Claim { .. }));
        assert_eq!(
            claim,
            Some(Action::Claim { accept: expected }),
            "accept_mode {accept_mode}, priority {priority}"
        );
    }
}

#[test]
fn a_master_that_cannot_add_its_addresses_gives_the_group_up_and_retries_later() {
    let t0 = Instant::now();
    let mut beta = Instance::new(config(100, true));
    beta.start(t0);
    beta.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(beta.state(), State::Master);
    drain(&mut beta);
    let failed_at = t0 + Duration::from_secs(1);
    beta.claim_failed(failed_at);
    assert_eq!(
        drain(&mut beta),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::Release,
            Action::Transition(Transition {
                from: State::Master,
                to: State::Fault,
                reason: Reason::ClaimFailed
            }),
        ]
    );
    let retry = failed_at + vipd::election::RETRY_AFTER_CLAIM_FAILURE;
    assert_eq!(beta.poll_timeout(), Some(retry));
    beta.handle_timeout(retry);
    assert_eq!(beta.state(), State::Backup);
    // It does not preempt the lower master that took over, but takes over when that one goes.
    let later = retry + Duration::from_millis(10);
    let mut config_alpha_low = config(100, true);
    config_alpha_low.peers[0].priority = 50;
    let mut beta = Instance::new(config_alpha_low);
    beta.start(t0);
    beta.handle_timeout(t0 + Duration::from_secs(1));
    beta.claim_failed(t0 + Duration::from_secs(1));
    beta.handle_timeout(retry);
    beta.handle_advert(later, &advert("192.0.2.11", 50, 100 * MS));
    assert_eq!(
        beta.state(),
        State::Backup,
        "no preemption after giving the group up"
    );
    beta.handle_advert(later, &advert("192.0.2.11", 0, 100 * MS));
    assert_eq!(
        beta.state(),
        State::Master,
        "but it takes over when the master leaves"
    );
}

#[test]
fn a_masters_adverts_land_on_the_nodes_grid_at_the_exact_interval_however_late_the_loop() {
    let epoch = Instant::now();
    let mut me = Instance::new(config(200, false));
    me.set_advert_grid(epoch, 10 * MS);
    // Started off the grid; the loop handles every timer 0.7 ms late.
    me.start(epoch + 3 * MS + Duration::from_micros(300));
    let mut sent = Vec::new();
    for _ in 0..40 {
        let due = me.poll_timeout().unwrap();
        me.handle_timeout(due + Duration::from_micros(700));
        if drain(&mut me)
            .iter()
            .any(|a| matches!(a, Action::SendAdvert { .. }))
        {
            sent.push(due - epoch);
        }
    }
    assert_eq!(me.state(), State::Master);
    assert!(sent.len() > 20, "{sent:?}");
    // The first advert goes out on becoming master (off the grid), the second an interval
    // after it was sent, the third at most one step early, and every one after it on the
    // grid, exactly an interval apart.
    assert!(sent[0].as_nanos() % (10 * MS).as_nanos() != 0, "{sent:?}");
    let third = sent[2] - sent[1];
    assert!(third <= 100 * MS && third > 90 * MS, "{sent:?}");
    for pair in sent[2..].windows(2) {
        assert_eq!(pair[0].as_nanos() % (10 * MS).as_nanos(), 0, "{sent:?}");
        assert_eq!(pair[1] - pair[0], 100 * MS, "{sent:?}");
    }
}

#[test]
fn without_a_grid_adverts_keep_the_interval_from_when_they_were_due() {
    let t0 = Instant::now();
    let mut me = Instance::new(config(200, false));
    me.start(t0);
    let mut sent = Vec::new();
    for _ in 0..20 {
        let due = me.poll_timeout().unwrap();
        me.handle_timeout(due + Duration::from_micros(700));
        if drain(&mut me)
            .iter()
            .any(|a| matches!(a, Action::SendAdvert { .. }))
        {
            sent.push(due);
        }
    }
    // The loop's lateness does not add up from one periodic advert to the next (the first
    // after becoming master counts from when that one was sent).
    for pair in sent[1..].windows(2) {
        assert_eq!(pair[1] - pair[0], 100 * MS, "{sent:?}");
    }
}
