//! VRRP adverts captured from keepalived 2.2.7 (tests/vectors/README.md says how): vipd
//! must parse them, and emit the very same bytes from what it parsed.

use proptest::prelude::*;
use std::net::IpAddr;
use vipd::wire::vrrp::{IpEnds, Ipv4ChecksumForm, Packet, Repr, V2Auth, Version};
use vipd::wire::{Family, WireError, ipv4};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect()
}

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

/// Parses a captured IPv4 datagram, checks it, and emits it again byte for byte.
fn ipv4_round_trip(name: &str, form: Ipv4ChecksumForm) -> Repr {
    let datagram = vector(name);
    let (header, message) = ipv4::split_vrrp(&datagram).expect("valid IPv4 header");
    assert_eq!(header.ttl, 255);
    assert_eq!(header.dst.to_string(), "224.0.0.18");
    let ends = IpEnds {
        src: header.src.into(),
        dst: header.dst.into(),
    };
    let (repr, got_form) =
        Repr::parse(&Packet::new_checked(message, Family::V4).unwrap(), ends).unwrap();
    if repr.version == Version::V3 {
        assert_eq!(got_form, Some(form), "{name}: checksum form");
    }
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, ends, form).unwrap();
    assert_eq!(out, message, "{name}: emit(parse(bytes)) == bytes");
    repr
}

#[test]
fn keepalived_v3_ipv4_with_pseudo_header_checksum() {
    let repr = ipv4_round_trip(
        "keepalived-v3-ipv4-pseudo.hex",
        Ipv4ChecksumForm::PseudoHeader,
    );
    assert_eq!(repr.version, Version::V3);
    assert_eq!((repr.vrid, repr.priority, repr.interval_cs), (51, 150, 100));
    assert_eq!(repr.addresses, addrs(&["192.0.2.100", "192.0.2.101"]));
}

#[test]
fn keepalived_v3_ipv4_ten_millisecond_interval() {
    let repr = ipv4_round_trip(
        "keepalived-v3-ipv4-centisec.hex",
        Ipv4ChecksumForm::PseudoHeader,
    );
    assert_eq!((repr.vrid, repr.priority, repr.interval_cs), (51, 150, 10));
    assert_eq!(repr.addresses, addrs(&["192.0.2.100"]));
}

#[test]
fn keepalived_v3_ipv4_priority_zero_on_shutdown() {
    let repr = ipv4_round_trip(
        "keepalived-v3-ipv4-prio0.hex",
        Ipv4ChecksumForm::PseudoHeader,
    );
    assert_eq!((repr.vrid, repr.priority), (51, 0));
}

#[test]
fn keepalived_v2_ipv4() {
    let repr = ipv4_round_trip("keepalived-v2-ipv4.hex", Ipv4ChecksumForm::PseudoHeader);
    assert_eq!(repr.version, Version::V2);
    assert_eq!((repr.vrid, repr.priority, repr.interval_cs), (53, 100, 100));
    assert_eq!(repr.auth, V2Auth::default());
    assert_eq!(repr.addresses, addrs(&["192.0.2.102"]));
}

#[test]
fn keepalived_v3_ipv6() {
    let message = vector("keepalived-v3-ipv6.hex");
    let ends = IpEnds {
        src: "fe80::ff:fe00:11".parse().unwrap(),
        dst: "ff02::12".parse().unwrap(),
    };
    let (repr, form) = Repr::parse(
        &Packet::new_checked(&message[..], Family::V6).unwrap(),
        ends,
    )
    .unwrap();
    assert_eq!(form, None);
    assert_eq!(
        (repr.version, repr.vrid, repr.priority, repr.interval_cs),
        (Version::V3, 52, 200, 100)
    );
    assert_eq!(repr.addresses, addrs(&["2001:db8::100"]));
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, ends, Ipv4ChecksumForm::PseudoHeader)
        .unwrap();
    assert_eq!(out, message);
    // The same bytes from another source fail the pseudo-header checksum.
    let other = IpEnds {
        src: "fe80::ff:fe00:12".parse().unwrap(),
        ..ends
    };
    assert!(matches!(
        Repr::parse(&Packet::new_unchecked(&message[..]), other),
        Err(WireError::BadChecksum { .. })
    ));
}

#[test]
fn message_only_form_of_a_keepalived_advert_is_accepted_too() {
    let datagram = vector("keepalived-v3-ipv4-pseudo.hex");
    let (header, message) = ipv4::split_vrrp(&datagram).unwrap();
    let ends = IpEnds {
        src: header.src.into(),
        dst: header.dst.into(),
    };
    let (repr, _) = Repr::parse(&Packet::new_unchecked(message), ends).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out, ends, Ipv4ChecksumForm::MessageOnly)
        .unwrap();
    assert_ne!(out, message, "the two forms differ");
    let (again, form) = Repr::parse(&Packet::new_unchecked(&out[..]), ends).unwrap();
    assert_eq!((again, form), (repr, Some(Ipv4ChecksumForm::MessageOnly)));
}

#[test]
fn ip_header_rules() {
    let mut datagram = vector("keepalived-v3-ipv4-pseudo.hex");
    datagram[8] = 254;
    assert_eq!(
        ipv4::split_vrrp(&datagram).unwrap_err(),
        WireError::BadTtl(254)
    );
    datagram[8] = 255;
    datagram[9] = 17;
    assert_eq!(
        ipv4::split_vrrp(&datagram).unwrap_err(),
        WireError::NotVrrp(17)
    );
    datagram[9] = 112;
    assert!(matches!(
        ipv4::split_vrrp(&datagram[..30]),
        Err(WireError::Truncated { .. })
    ));
    assert!(matches!(
        ipv4::split_vrrp(&datagram[..10]),
        Err(WireError::Truncated { .. })
    ));
}

fn arb_repr() -> impl Strategy<Value = (Repr, IpEnds, Ipv4ChecksumForm)> {
    let v4 = (
        any::<bool>(),
        1u8..=255,
        any::<u8>(),
        prop::collection::vec(any::<[u8; 4]>(), 1..20),
        1u16..=4095,
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(v2, vrid, priority, addresses, interval, pseudo, src)| {
            let version = if v2 { Version::V2 } else { Version::V3 };
            let interval_cs = if v2 {
                (interval % 255 + 1) * 100
            } else {
                interval
            };
            let repr = Repr {
                version,
                vrid,
                priority,
                interval_cs,
                addresses: addresses.into_iter().map(IpAddr::from).collect(),
                auth: V2Auth::default(),
            };
            let ends = IpEnds {
                src: IpAddr::from(src),
                dst: "224.0.0.18".parse().unwrap(),
            };
            let form = if pseudo {
                Ipv4ChecksumForm::PseudoHeader
            } else {
                Ipv4ChecksumForm::MessageOnly
            };
            (repr, ends, form)
        });
    let v6 = (
        1u8..=255,
        any::<u8>(),
        prop::collection::vec(any::<[u8; 16]>(), 1..10),
        1u16..=4095,
        any::<[u8; 16]>(),
    )
        .prop_map(|(vrid, priority, addresses, interval_cs, src)| {
            let repr = Repr {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                addresses: addresses.into_iter().map(IpAddr::from).collect(),
                auth: V2Auth::default(),
            };
            let ends = IpEnds {
                src: IpAddr::from(src),
                dst: "ff02::12".parse().unwrap(),
            };
            (repr, ends, Ipv4ChecksumForm::PseudoHeader)
        });
    prop_oneof![v4, v6]
}

proptest! {
    #[test]
    fn parse_of_emit_is_identity((repr, ends, form) in arb_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        let len = repr.emit(&mut buf, ends, form).unwrap();
        prop_assert_eq!(len, buf.len());
        let (parsed, _) = Repr::parse(&Packet::new_unchecked(&buf[..]), ends).unwrap();
        prop_assert_eq!(parsed, repr);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80), v6 in any::<bool>()) {
        let ends = if v6 {
            IpEnds { src: "fe80::1".parse().unwrap(), dst: "ff02::12".parse().unwrap() }
        } else {
            IpEnds { src: "192.0.2.1".parse().unwrap(), dst: "224.0.0.18".parse().unwrap() }
        };
        let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]), ends);
        let _ = ipv4::split_vrrp(&bytes);
    }

    #[test]
    fn a_flipped_bit_is_caught((repr, ends, form) in arb_repr(), bit in 0usize..64) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf, ends, form).unwrap();
        let bit = bit % (buf.len() * 8);
        buf[bit / 8] ^= 1 << (bit % 8);
        // Either a discard rule fires, or what parses is not what was sent.
        match Repr::parse(&Packet::new_unchecked(&buf[..]), ends) {
            Err(_) => {}
            Ok((parsed, _)) => prop_assert_ne!(parsed, repr),
        }
    }
}
