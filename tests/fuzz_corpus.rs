//! The fuzz targets' corpora (fuzz/corpus/<target>/) replayed through the same properties in
//! every `cargo test`, without nightly: a crash that fuzzing found, once copied into its
//! corpus, is a regression test here.

use std::path::PathBuf;
use vipd::wire::ip::{Datagram, vrrp_message};
use vipd::wire::vrrp::{Packet, Repr};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// The vrrp target's property (fuzz/fuzz_targets/vrrp.rs); true when the input parsed.
fn vrrp(data: &[u8]) -> bool {
    let Some((&selector, bytes)) = data.split_first() else {
        return false;
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
        return false;
    };
    let Ok((repr, form)) = Repr::parse(&Packet::new_unchecked(message), ends) else {
        return false;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    if repr.emit(&mut out, ends, form.unwrap_or_default()).is_ok() {
        let (again, _) =
            Repr::parse(&Packet::new_unchecked(&out[..]), ends).expect("what vipd emits parses");
        assert_eq!(again, repr);
    }
    true
}

#[test]
fn the_vrrp_corpus_parses_and_round_trips() {
    for (path, bytes) in corpus("vrrp") {
        let parsed = vrrp(&bytes);
        // The seeds are keepalived's captured adverts: each parses.
        let seed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("keepalived-"));
        assert!(parsed || !seed, "{} does not parse", path.display());
    }
}

#[test]
fn the_config_corpus_never_panics() {
    for (_, bytes) in corpus("config") {
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Err(error) = vipd::config::Config::parse("fuzz.toml", text)
        {
            let _ = error.to_string();
        }
    }
}

#[test]
fn the_control_corpus_never_panics() {
    for (_, bytes) in corpus("control") {
        if let Ok(line) = std::str::from_utf8(&bytes) {
            let _ = vipd::daemon::control::parse(line);
        }
    }
}

#[test]
fn the_heartbeat_corpus_parses_signed_seeds_and_round_trips() {
    use ring::hmac;
    use vipd::quorum::Heartbeat;
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"fuzzing secret, at least 16 bytes");
    for (path, data) in corpus("heartbeat") {
        let Some((&selector, body)) = data.split_first() else {
            continue;
        };
        let mut bytes = body.to_vec();
        if selector % 2 == 1 {
            bytes.extend_from_slice(hmac::sign(&key, body).as_ref());
        }
        let parsed = Heartbeat::parse(&bytes, &key);
        if let Ok(heartbeat) = &parsed {
            assert_eq!(
                Heartbeat::parse(&heartbeat.emit(&key), &key).as_ref(),
                Ok(heartbeat)
            );
        }
        let seed = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("signed-"));
        assert!(parsed.is_ok() || !seed, "{} does not parse", path.display());
    }
}
