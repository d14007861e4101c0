//! One datagram, raw bytes, through the whole answer path (parse, zone, recursion ACL,
//! forwarding outcomes, encoding and truncation), and through the answer cache: a cached
//! reply must equal the fresh one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd::dns::server::{AnswerCache, Reply};
use vipd_fuzz::{SERVER, Transport, answer_all, clients};

fuzz_target!(|data: &[u8]| {
    answer_all(data, Transport::Udp);
    let mut cache = AnswerCache::default();
    let client = clients()[0];
    let first = SERVER.answer_with(Some(&mut cache), data, client, Transport::Udp);
    let second = SERVER.answer_with(Some(&mut cache), data, client, Transport::Udp);
    if let (Reply::Send(first), Reply::Send(second)) = (&first, &second) {
        assert_eq!(first, second, "a cached reply differs from the fresh one");
    }
});
