//! The membership channel's receive path: a signed heartbeat whose body is the input (the
//! signature is made with the voters' key, so the fuzzer reaches the parser behind it),
//! then a voter's handling of it. What parses must emit and parse again to the same value;
//! nothing may panic. The first byte picks unsigned (raw bytes) or signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring::hmac;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use vipd::quorum::{Heartbeat, Membership, Voter};

const SECRET: &[u8] = b"fuzzing secret, at least 16 bytes";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let bytes = if selector % 2 == 0 {
        body.to_vec()
    } else {
        let mut signed = body.to_vec();
        signed.extend_from_slice(hmac::sign(&key, body).as_ref());
        signed
    };
    if let Ok(heartbeat) = Heartbeat::parse(&bytes, &key) {
        assert_eq!(Heartbeat::parse(&heartbeat.emit(&key), &key), Ok(heartbeat));
    }
    let voters: Vec<Voter> = (0..3)
        .map(|i| Voter {
            name: format!("v{i}"),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i)),
            node: Some(usize::from(i)),
        })
        .collect();
    let now = Instant::now();
    let mut membership = Membership::new(
        voters,
        0,
        8405,
        Duration::from_millis(100),
        Duration::from_secs(1),
        SECRET,
        1,
        now,
    );
    let _ = membership.poll_transmit(now, &[]);
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + selector % 3));
    let _ = membership.handle(now, src, &bytes);
    let _ = membership.standing(now);
    let _ = membership.released_by_majority(1, now);
    let _ = membership.poll_transmit(now + Duration::from_millis(100), &[]);
});
