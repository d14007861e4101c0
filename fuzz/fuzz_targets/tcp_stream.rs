//! A TCP byte stream, split at arbitrary points: the framer must yield the same messages
//! however the bytes arrive, and each message goes through the answer path over TCP.
//! Input: the first byte chooses the chunk sizes, the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipd::dns::framing::{Framer, frame};
use vipd_fuzz::{Transport, answer_all};

fn messages(chunks: impl Iterator<Item = Vec<u8>>) -> (Vec<Vec<u8>>, bool) {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(&chunk);
        while let Some(message) = framer.next_message() {
            out.push(message);
        }
    }
    (out, framer.in_message())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pattern, stream)) = data.split_first() else {
        return;
    };
    let whole = messages(std::iter::once(stream.to_vec()));
    let mut sizes = [1usize, 2, 3, 7, 64, 512, 1]
        .into_iter()
        .cycle()
        .skip(usize::from(pattern % 7));
    let mut rest = stream;
    let chunks = std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        let size = sizes.next().unwrap().min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk.to_vec())
    });
    let split = messages(chunks);
    assert_eq!(whole, split, "the split changed the messages");
    let mut replies = Vec::new();
    for message in &whole.0 {
        for reply in answer_all(message, Transport::Tcp) {
            replies.extend_from_slice(&frame(&reply));
        }
    }
    let (framed_back, partial) = messages(std::iter::once(replies));
    assert!(!partial, "a reply did not frame");
    assert!(framed_back.iter().all(|r| r.len() >= 12));
});
