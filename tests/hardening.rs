//! Issue 11 (hardening), on simulated nodes fed real bytes: foreign members' timers, two
//! masters that never resolve, drops that are logged, a flapping link, an address the node
//! released itself, malformed adverts.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::sim::Sim;
use vipd::election::State;
use vipd::lab::{cluster_file, with_foreign};
use vipd::wire::Family::V4;
use vipd::wire::ip::{Datagram, multicast_group};
use vipd::wire::ipv4;
use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Repr, V2Auth, Version};

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Two nodes, one IPv4 group at 100 ms (alpha 150, beta 100); `cluster_extra` goes into
/// `[cluster]`, `group_extra` into the group; alpha is foreign when `foreign`.
fn pair(foreign: bool, cluster_extra: &str, group_extra: &str) -> Sim {
    let group = format!(
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n{group_extra}\n"
    );
    let mut cluster = cluster_file(2, &group);
    if foreign {
        cluster = with_foreign(&cluster, "alpha");
    }
    let cluster = cluster.replacen(
        "zone = \"cluster.example.\"\n",
        &format!("zone = \"cluster.example.\"\n{cluster_extra}"),
        1,
    );
    Sim::new(&cluster)
}

/// An IPv4 VRRPv3 advert for group 51 (192.0.2.100) as a peer at `src` sends it, inside the
/// IPv4 header a raw socket delivers.
fn advert_v4(src: &str, priority: u8, interval_cs: u16) -> Vec<u8> {
    let repr = Repr {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs,
        addresses: vec![ip("192.0.2.100")],
        auth: V2Auth::default(),
    };
    let ends = IpEnds {
        src: ip(src),
        dst: multicast_group(V4),
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    let mut packet = ipv4::emit_header(
        Ipv4Addr::from_str(src).unwrap(),
        Ipv4Addr::new(224, 0, 0, 18),
        255,
        message.len(),
    )
    .to_vec();
    packet.extend_from_slice(&message);
    packet
}

/// Skew_Time for a priority and a Master_Adver_Interval, as RFC 9568 computes it.
fn skew(priority: u64, interval: Duration) -> Duration {
    Duration::from_nanos((256 - priority) * interval.as_nanos() as u64 / 256)
}

/// Starts beta alone and feeds it `count` adverts from `src` every `every`, from time 0;
/// returns the time of the last one.
fn feed_beta(sim: &mut Sim, src: &str, priority: u8, every: Duration, count: u32) -> Duration {
    let beta = sim.node("beta");
    sim.start_node(beta);
    let packet = advert_v4(src, priority, (every.as_millis() / 10) as u16);
    let mut last = Duration::ZERO;
    for k in 0..count {
        last = every * k;
        sim.run_until(sim.at(last));
        assert_ne!(
            sim.state(beta, 0, V4),
            Some(State::Master),
            "beta took over at {:?}, while the master still advertised every {every:?}",
            sim.elapsed()
        );
        sim.inject(beta, Datagram::V4(&packet));
    }
    last
}

fn assert_master_exactly_at(sim: &mut Sim, node: usize, at: Duration) {
    sim.run_until(sim.at(at - US));
    assert_ne!(
        sim.state(node, 0, V4),
        Some(State::Master),
        "master before {at:?} (became master at {:?})",
        sim.became_master_at(node, 0, V4)
    );
    sim.run_until(sim.at(at));
    assert_eq!(
        sim.state(node, 0, V4),
        Some(State::Master),
        "not master at {at:?}"
    );
    assert_eq!(sim.became_master_at(node, 0, V4), Some(at));
}

// ---- 1. foreign peers' timers ----

#[test]
fn a_backup_follows_a_foreign_member_advertising_a_longer_interval() {
    let mut sim = pair(true, "", "");
    let beta = sim.node("beta");
    let last = feed_beta(&mut sim, "192.0.2.11", 150, 300 * MS, 10);
    let status = sim.status(beta);
    let instance = &status.groups[0].instances[0];
    assert_eq!(instance.master_adver_interval_ms, 300.0);
    assert_eq!(instance.interval_mismatch, 10);
    // RFC 9568 6.4.2: 3 x Master_Adver_Interval + Skew_Time, both from the master's 300 ms.
    let at = last + 3 * 300 * MS + skew(100, 300 * MS);
    assert_master_exactly_at(&mut sim, beta, at);
}

#[test]
fn a_foreign_member_at_500ms_is_followed_without_a_flap() {
    let mut sim = pair(true, "", "");
    let beta = sim.node("beta");
    let last = feed_beta(&mut sim, "192.0.2.11", 150, 500 * MS, 10);
    assert_master_exactly_at(&mut sim, beta, last + 1500 * MS + skew(100, 500 * MS));
}

#[test]
fn a_stranger_never_stretches_the_timers_beyond_the_file() {
    let mut sim = pair(false, "allow_unknown_peers = true\n", "");
    let beta = sim.node("beta");
    let last = feed_beta(&mut sim, "192.0.2.99", 200, 300 * MS, 5);
    let status = sim.status(beta);
    assert_eq!(
        status.groups[0].instances[0].master_adver_interval_ms,
        100.0
    );
    assert_master_exactly_at(&mut sim, beta, last + 300 * MS + skew(100, 100 * MS));
}

#[test]
fn a_member_beyond_ten_times_the_file_does_not_stretch_the_timers() {
    let mut sim = pair(true, "", "");
    let beta = sim.node("beta");
    sim.start_node(beta);
    // A forged or wildly misconfigured member advert: 40.95 s.
    sim.inject(beta, Datagram::V4(&advert_v4("192.0.2.11", 150, 4095)));
    assert_master_exactly_at(&mut sim, beta, 300 * MS + skew(100, 100 * MS));
}

#[test]
fn check_and_status_say_when_a_member_advertises_another_interval() {
    let mut sim = pair(true, "", "");
    let beta = sim.node("beta");
    let report = vipd::check::node_report(&sim.config, beta);
    assert!(
        report.contains("members must advertise every 100ms (keepalived: advert_int 0.1)"),
        "{report}"
    );
    let (_, log) = logged(|| feed_beta(&mut sim, "192.0.2.11", 150, 300 * MS, 3));
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("differs from the file"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("advert interval 300ms differs from the file's 100ms"),
        "{log}"
    );
    let status = sim.status(beta);
    let instance = &status.groups[0].instances[0];
    assert_eq!(instance.configured_adver_interval_ms, 100.0);
    // Logged once, for the first member's advert that disagrees; strangers' adverts are
    // dropped and not logged as a mismatch.
    let ((), log) = logged(|| {
        sim.inject(beta, Datagram::V4(&advert_v4("192.0.2.99", 150, 30)));
        sim.inject(beta, Datagram::V4(&advert_v4("192.0.2.11", 150, 30)));
    });
    assert!(!log.contains("differs from the file"), "{log}");
    assert_eq!(instance.master_adver_interval_ms, 300.0);
    let table = status.table();
    assert!(
        table.contains(
            "interval of g IPv4: the file says 100 ms, 3 adverts said otherwise; following 300 ms (as learned from alpha)"
        ),
        "{table}"
    );
}

/// Everything logged (tracing, at debug and above) while `f` runs on this thread.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

// ---- 2. two masters that never resolve ----

#[test]
fn a_second_master_that_never_yields_is_a_conflict_logged_once_and_cleared_by_its_silence() {
    let mut sim = pair(false, "", "");
    let alpha = sim.node("alpha");
    let conflict = |sim: &Sim| sim.status(alpha).groups[0].instances[0].conflict.clone();
    let (_, log) = logged(|| {
        sim.start_node(alpha);
        sim.run_until(sim.at(Duration::from_secs(1)));
        assert_eq!(sim.state(alpha, 0, V4), Some(State::Master));
        // beta (priority 100) speaks as master every 100 ms and ignores alpha's adverts.
        let packet = advert_v4("192.0.2.12", 100, 10);
        for k in 0..=10u32 {
            sim.run_until(sim.at(Duration::from_secs(1) + 100 * MS * k));
            sim.inject(alpha, Datagram::V4(&packet));
            let expected = (k >= 4).then(|| "beta".to_string());
            assert_eq!(conflict(&sim), expected, "after {} adverts", k + 1);
        }
        assert_eq!(sim.state(alpha, 0, V4), Some(State::Master));
        let table = sim.status(alpha).table();
        assert!(
            table.contains("CONFLICT in g IPv4: beta keeps advertising"),
            "{table}"
        );
        let metrics = sim.status(alpha).prometheus();
        assert!(
            metrics.contains(r#"vipd_conflict{node="alpha",group="g",family="IPv4"} 1"#),
            "{metrics}"
        );
        // Silent for a master-down interval (alpha's: 300 ms, first in line): cleared.
        sim.run_until(sim.at(2300 * MS - US));
        assert_eq!(conflict(&sim).as_deref(), Some("beta"));
        sim.run_until(sim.at(2300 * MS));
        assert_eq!(conflict(&sim), None);
        let metrics = sim.status(alpha).prometheus();
        assert!(
            metrics.contains(r#"vipd_conflict{node="alpha",group="g",family="IPv4"} 0"#),
            "{metrics}"
        );
        assert!(!sim.status(alpha).table().contains("CONFLICT"));
    });
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("two masters")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
    assert!(warnings[0].contains("member beta (192.0.2.12)"), "{log}");
    assert!(warnings[0].contains("checksum"), "{log}");
    assert!(warnings[0].contains("VRID"), "{log}");
}

// ---- 3. drops are logged ----

#[test]
fn drops_are_logged_first_per_source_and_reason_then_summarised_per_minute() {
    let mut sim = pair(false, "", "");
    let beta = sim.node("beta");
    let (_, log) = logged(|| {
        sim.start_node(beta);
        let stranger = advert_v4("192.0.2.99", 200, 10);
        let mut bad_ttl = advert_v4("192.0.2.98", 200, 10);
        bad_ttl[8] = 1;
        for k in 0..100u32 {
            sim.run_until(sim.at(100 * MS * k));
            sim.inject(beta, Datagram::V4(&stranger));
            sim.inject(beta, Datagram::V4(&bad_ttl));
        }
        // A minute after the first: one summary line for each source.
        sim.run_until(sim.at(Duration::from_secs(60)));
        sim.inject(beta, Datagram::V4(&stranger));
        sim.inject(beta, Datagram::V4(&stranger));
    });
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("dropped"))
        .collect();
    assert_eq!(warnings.len(), 3, "{log}");
    assert!(
        warnings[0].contains("dropped a VRRP packet from 192.0.2.99: the sender is not a member"),
        "{log}"
    );
    assert!(
        warnings[1].contains("dropped a VRRP packet from 192.0.2.98: TTL or hop limit 1"),
        "{log}"
    );
    assert!(
        warnings[2].contains("dropped 100 more VRRP packets from 192.0.2.99 in the last 60s"),
        "{log}"
    );
    assert_eq!(sim.status(beta).dropped.get("not_member"), Some(&102));
}

// ---- 4. a flapping link ----

/// alpha (master) flaps 10 times in 1 s from t = 1 s (50 ms down, 50 ms up); returns the
/// time without a holder of the address (sampled every millisecond up to 6 s), the number of
/// claims (the address moving), and when alpha held it again.
fn flap(group_extra: &str) -> (Duration, usize, Option<Duration>, Sim) {
    let mut sim = pair(false, "", group_extra);
    let (alpha, beta) = (sim.node("alpha"), sim.node("beta"));
    sim.start_all();
    sim.run_until(sim.at(Duration::from_secs(1)));
    assert_eq!(sim.holders(0, V4), vec![alpha]);
    let (mut lost, mut moves, mut back) = (Duration::ZERO, 0, None);
    let mut holder = Some(alpha);
    for ms in 1000..6000u64 {
        let at = Duration::from_millis(ms);
        if (1000..2000).contains(&ms) && ms % 50 == 0 {
            let up = ms % 100 == 50;
            sim.run_until(sim.at(at));
            sim.set_link(alpha, up);
        }
        sim.run_until(sim.at(at));
        let holders = sim.holders(0, V4);
        if holders.is_empty() {
            lost += MS;
        }
        let now = holders.first().copied();
        if now.is_some() && now != holder {
            moves += 1;
            if now == Some(alpha) && back.is_none() && ms > 2000 {
                back = Some(at);
            }
            holder = now;
        }
        if now == Some(beta) {
            back = None;
        }
    }
    // Claims after the first link-down: each is the group moving (sampling misses those
    // undone within the same instant).
    let claims = sim
        .log
        .iter()
        .filter(|l| l.at >= Duration::from_secs(1))
        .filter(|l| matches!(l.what, support::sim::What::Claimed { .. }))
        .count();
    assert!(claims >= moves);
    (lost, claims, back, sim)
}

#[test]
fn a_flapping_link_does_not_pull_the_group_back_until_it_has_been_up_for_link_hold() {
    let (lost_before, moves_before, _, _) = flap("link_hold = \"0s\"");
    let (lost, moves, back, sim) = flap("link_hold = \"2s\"");
    // The default (three advert intervals) already keeps the group from ping-ponging.
    let (lost_default, moves_default, _, _) = flap("");
    assert_eq!(
        moves_default, 2,
        "{moves_default} moves with the default hold"
    );
    assert!(
        lost_default < lost_before,
        "{lost_default:?} lost, {lost_before:?} without a hold"
    );
    let alpha = sim.node("alpha");
    eprintln!(
        "without link_hold: {lost_before:?} without a holder, {moves_before} moves; \
         with link_hold 2s: {lost:?}, {moves} moves, back on alpha at {back:?}"
    );
    // No preempt after any of the link-ups: alpha was master only before the flaps and
    // after the hold.
    let masterships: Vec<Duration> = sim
        .log
        .iter()
        .filter(|l| {
            l.node == alpha
                && matches!(l.what, support::sim::What::Transition(t) if t.to == State::Master)
        })
        .map(|l| l.at)
        .collect();
    assert_eq!(masterships.len(), 2, "{masterships:?}");
    // The last link-up was at 1.95 s: alpha takes back at beta's first advert after 3.95 s.
    let again = masterships[1];
    assert!(
        again >= 3950 * MS && again <= 4050 * MS,
        "alpha took the group back at {again:?}"
    );
    assert_eq!(back, Some(again));
    // The group moved once to beta and once back; without a hold it ping-pongs.
    assert_eq!(moves, 2);
    assert!(moves_before > moves, "{moves_before} moves without a hold");
    assert!(lost < lost_before, "{lost:?} lost, {lost_before:?} without");
}

#[test]
fn link_hold_errors_name_the_place() {
    let file = |value: &str| {
        cluster_file(
            2,
            &format!(
                "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
                 priority = {{ alpha = 150, beta = 100 }}\nlink_hold = {value}\n"
            ),
        )
    };
    let line = file("\"700s\"")
        .lines()
        .position(|l| l.starts_with("link_hold"))
        .unwrap()
        + 1;
    let error = vipd::config::Config::parse("c.toml", &file("\"700s\"")).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("c.toml:{line}:13: [[group]] \"g\", field `link_hold`: link_hold is at most 600s")
    );
    let error = vipd::config::Config::parse("c.toml", &file("\"soon\"")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("c.toml:{line}:13: ")),
        "{error}"
    );
    let ok = vipd::config::Config::parse("c.toml", &file("\"2s\"")).unwrap();
    assert_eq!(ok.groups[0].link_hold, Duration::from_secs(2));
}

// ---- 5. the node's own releases are not someone else's deletions ----

fn restores(sim: &Sim, node: usize) -> usize {
    sim.nodes[node]
        .effects
        .iter()
        .filter(|(_, e)| matches!(e, vipd::node::Effect::Restore { .. }))
        .count()
}

fn elected_pair(addresses: &str) -> Sim {
    let mut sim = Sim::new(&sim_file(addresses));
    sim.start_all();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.holders(0, V4), vec![sim.node("alpha")]);
    sim
}

fn sim_file(addresses: &str) -> String {
    cluster_file(
        2,
        &format!(
            "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [{addresses}]\n\
             priority = {{ alpha = 150, beta = 100 }}\nadvert_interval = \"100ms\"\n"
        ),
    )
}

#[test]
fn an_address_the_node_released_itself_is_not_put_back() {
    // A reload changes the address's prefix: the master releases the old one and claims the
    // new one; the kernel's deletion event for the old one is its own doing.
    let mut sim = elected_pair("\"192.0.2.100/24\"");
    let alpha = sim.node("alpha");
    for result in sim.reload_all(&sim_file("\"192.0.2.100/25\"")) {
        result.unwrap();
    }
    sim.input(alpha, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.100"))
    });
    assert_eq!(restores(&sim, alpha), 0);

    // A handover: the old master releases after the linger; its deletion event is its own.
    let mut sim = elected_pair("\"192.0.2.100/24\"");
    let beta = sim.node("beta");
    sim.input(alpha, |node, now| {
        node.handover(now, "g", None, &|_| true).unwrap();
    });
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.holders(0, V4), vec![beta]);
    sim.input(alpha, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.100"))
    });
    assert_eq!(restores(&sim, alpha), 0);

    // Someone else removing the address from the master is still put back, also right
    // after the node's own release of it was answered by the kernel.
    sim.input(beta, |node, now| {
        node.handle_address_removed(now, ip("192.0.2.100"))
    });
    assert_eq!(restores(&sim, beta), 1);
    let mut sim = elected_pair("\"192.0.2.100/24\"");
    for result in sim.reload_all(&sim_file("\"192.0.2.100/25\"")) {
        result.unwrap();
    }
    for expected in [0, 1] {
        sim.input(alpha, |node, now| {
            node.handle_address_removed(now, ip("192.0.2.100"))
        });
        assert_eq!(restores(&sim, alpha), expected);
    }
}

// ---- 6. malformed adverts ----

/// `advert_v4` with `extra` bytes after the address list, the IP length counting them, the
/// VRRP checksum over the longer message (what a sender that pads would compute).
fn advert_v4_with_trailing(src: &str, priority: u8, extra: usize) -> Vec<u8> {
    let repr = Repr {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: vec![ip("192.0.2.100")],
        auth: V2Auth::default(),
    };
    let ends = IpEnds {
        src: ip(src),
        dst: multicast_group(V4),
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    message.extend(std::iter::repeat_n(0u8, extra));
    let mut packet = ipv4::emit_header(
        Ipv4Addr::from_str(src).unwrap(),
        Ipv4Addr::new(224, 0, 0, 18),
        255,
        message.len(),
    )
    .to_vec();
    packet.extend_from_slice(&message);
    packet
}

#[test]
fn an_advert_with_trailing_bytes_is_dropped_by_its_own_reason() {
    let mut sim = pair(false, "", "");
    let beta = sim.node("beta");
    sim.start_node(beta);
    // A member's advert that would make beta follow alpha, were it well formed.
    sim.inject(
        beta,
        Datagram::V4(&advert_v4_with_trailing("192.0.2.11", 150, 4)),
    );
    let status = sim.status(beta);
    assert_eq!(status.dropped.get("trailing_bytes"), Some(&1), "{status:?}");
    assert_eq!(status.groups[0].instances[0].master, None);
    // The same advert without the trailing bytes is acted on.
    sim.inject(
        beta,
        Datagram::V4(&advert_v4_with_trailing("192.0.2.11", 150, 0)),
    );
    assert_eq!(
        sim.status(beta).groups[0].instances[0].master.as_deref(),
        Some("alpha")
    );
    // IPv6: the message the socket hands over is longer than its count declares.
    let repr = Repr {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval_cs: 10,
        addresses: vec![ip("2001:db8::100")],
        auth: V2Auth::default(),
    };
    let ends = IpEnds {
        src: ip("fe80::1"),
        dst: multicast_group(vipd::wire::Family::V6),
    };
    let mut message = vec![0; repr.buffer_len() + 2];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    assert_eq!(
        Repr::parse(&vipd::wire::vrrp::Packet::new_unchecked(&message[..]), ends),
        Err(vipd::wire::WireError::TrailingBytes {
            declared: 24,
            got: 26
        })
    );
}

#[test]
fn the_checksum_form_the_file_does_not_name_is_accepted_and_counted() {
    let mut sim = pair(false, "", "");
    let beta = sim.node("beta");
    sim.start_node(beta);
    let repr = Repr {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval_cs: 10,
        addresses: vec![ip("192.0.2.100")],
        auth: V2Auth::default(),
    };
    let ends = IpEnds {
        src: ip("192.0.2.11"),
        dst: multicast_group(V4),
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::MessageOnly)
        .unwrap();
    let mut packet = ipv4::emit_header(
        Ipv4Addr::new(192, 0, 2, 11),
        Ipv4Addr::new(224, 0, 0, 18),
        255,
        message.len(),
    )
    .to_vec();
    packet.extend_from_slice(&message);
    sim.inject(beta, Datagram::V4(&packet));
    let status = sim.status(beta);
    // The file says pseudo-header (the default): RFC 9568's message-only form from a member
    // is still acted on (interop), and counted.
    assert_eq!(
        status.groups[0].instances[0].master.as_deref(),
        Some("alpha")
    );
    assert_eq!(status.anomalies.get("checksum_form_mismatch"), Some(&1));
    // The configured form is no anomaly.
    sim.inject(beta, Datagram::V4(&advert_v4("192.0.2.11", 150, 10)));
    assert_eq!(
        sim.status(beta).anomalies.get("checksum_form_mismatch"),
        Some(&1)
    );
}
