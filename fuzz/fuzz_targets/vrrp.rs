//! The receive path of an advert: IP checks, then the VRRP parse; what parses must emit and
//! parse again to the same value. The first byte picks the family (even: a whole IPv4
//! packet, as a raw IPv4 socket delivers it; odd: an IPv6 VRRP message from fe80::ff:fe00:11).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd::wire::ip::{Datagram, vrrp_message};
use vipd::wire::vrrp::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let datagram = if selector % 2 == 0 {
        Datagram::V4(bytes)
    } else {
        Datagram::V6 {
            src: "fe80::ff:fe00:11".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
            hop_limit: 255,
            message: bytes,
        }
    };
    let _ = vipd::wire::ip::source(&datagram);
    let Ok((ends, message)) = vrrp_message(datagram) else {
        return;
    };
    let Ok((repr, form)) = Repr::parse(&Packet::new_unchecked(message), ends) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    if repr.emit(&mut out, ends, form.unwrap_or_default()).is_ok() {
        let (again, _) =
            Repr::parse(&Packet::new_unchecked(&out[..]), ends).expect("what vipd emits parses");
        assert_eq!(again, repr);
    }
});
