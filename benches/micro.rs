//! The per-advert and per-query costs, in nanoseconds, with criterion: what the loop does for
//! every advert (IP checks, parse and checksum verify, the node's rules, one election step,
//! the effects) and for every DNS question. No root, no network.
//!
//!     cargo bench --bench micro              # full measurement (a few minutes)
//!     cargo test --bench micro               # each case once: the smoke run in the test suite

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::xfer::Protocol;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};
use vipd::config::Config;
use vipd::dns::server::{AnswerCache, Server};
use vipd::election::{Advert, Instance};
use vipd::node::{Node, Setup};
use vipd::wire::ip::{Datagram, MULTICAST_V4, vrrp_message};
use vipd::wire::ipv4;
use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Packet, Repr, V2Auth, Version};

fn cluster() -> Config {
    let text = vipd::lab::cluster_file(
        2,
        "[[group]]\nname = \"g\"\nvrid = 51\naddresses = [\"192.0.2.100/24\"]\n\
         names = [\"nbu-master\"]\npriority = { alpha = 200, beta = 100 }\n\
         advert_interval = \"100ms\"\n",
    );
    Config::parse("micro.toml", &text).expect("valid")
}

fn advert_repr(priority: u8) -> Repr {
    Repr {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))],
        auth: V2Auth::default(),
    }
}

/// alpha's advert as beta's raw IPv4 socket delivers it: IP header included.
fn alpha_datagram() -> Vec<u8> {
    let src = Ipv4Addr::new(192, 0, 2, 11);
    let repr = advert_repr(200);
    let ends = IpEnds {
        src: src.into(),
        dst: MULTICAST_V4.into(),
    };
    let mut message = vec![0u8; repr.buffer_len()];
    repr.emit(&mut message, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    let mut packet = ipv4::emit_header(src, MULTICAST_V4, 255, message.len()).to_vec();
    packet.extend_from_slice(&message);
    packet
}

fn wire(c: &mut Criterion) {
    let datagram = alpha_datagram();
    c.bench_function("advert parse + verify (IPv4 header, checksum)", |b| {
        b.iter(|| {
            let (ends, message) = vrrp_message(Datagram::V4(black_box(&datagram))).unwrap();
            Repr::parse(&Packet::new_unchecked(message), ends).unwrap()
        })
    });
    let repr = advert_repr(200);
    let ends = IpEnds {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
        dst: MULTICAST_V4.into(),
    };
    let mut buffer = [0u8; 64];
    c.bench_function("advert emit", |b| {
        b.iter(|| {
            black_box(&repr)
                .emit(&mut buffer, ends, Ipv4ChecksumForm::PseudoHeader)
                .unwrap()
        })
    });
}

fn election(c: &mut Criterion) {
    let config = cluster();
    let plan = vipd::plan::for_node(&config, 1);
    let mut backup = Instance::new(plan[0].instances[0].clone());
    let mut now = Instant::now();
    backup.start(now);
    while backup.poll_action().is_some() {}
    let advert = Advert {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
        priority: 200,
        interval: Duration::from_millis(100),
    };
    c.bench_function("election step (backup hears its master)", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            backup.handle_advert(now, black_box(&advert));
            while backup.poll_action().is_some() {}
        })
    });
    let setup = Setup {
        interface_addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12))],
        link_up: true,
        lans: Vec::new(),
        tracked_links: Vec::new(),
        quorum: None,
    };
    let mut node = Node::new(config, 1, &setup, Instant::now(), SystemTime::now());
    while node.poll_effect().is_some() {}
    let datagram = alpha_datagram();
    let mut now = Instant::now();
    c.bench_function("node: one advert from the socket to its effects", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            node.handle_datagram(now, Datagram::V4(black_box(&datagram)));
            while node.poll_effect().is_some() {}
            node.poll_timeout()
        })
    });
}

fn dns(c: &mut Criterion) {
    let config = cluster();
    let zone = vipd::dns::zone::build(&config, Some(0), &[Some("alpha".into())], 1);
    let server = Server::new(&config.dns, zone);
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("nbu-master.cluster.example.").unwrap(),
        RecordType::A,
    ));
    let bytes = query.to_vec().unwrap();
    let client = SocketAddr::from(([192, 0, 2, 200], 5353));
    c.bench_function("DNS answer from the zone (no cache)", |b| {
        b.iter(|| server.answer(black_box(&bytes), client, Protocol::Udp))
    });
    let mut cache = AnswerCache::default();
    c.bench_function("DNS answer from the zone (answer cache)", |b| {
        b.iter(|| server.answer_with(Some(&mut cache), black_box(&bytes), client, Protocol::Udp))
    });
}

criterion_group!(benches, wire, election, dns);
criterion_main!(benches);
