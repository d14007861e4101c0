//! `vipd import-keepalived` on the sample files Debian's keepalived package ships: each
//! converts, or fails with a clear reason; every written cluster file passes what
//! `vipd check` uses; a master sample and its backup variant make a two-node cluster.
//! Needs the keepalived package (integration/test.sh installs it); without it the test
//! fails and says so. No network: the samples' addresses are only converted, never used.

use std::path::{Path, PathBuf};
use std::process::Command;
use vipd::config::Config;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";
const VIPD: &str = env!("CARGO_BIN_EXE_vipd");

/// The VRRP samples: keepalived.conf.vrrp*, .IPv6 and .track_interface (maybe gzipped).
fn samples() -> Vec<PathBuf> {
    let dir = Path::new(SAMPLES);
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "{SAMPLES}: {e}: keepalived's sample files are missing; install Debian's keepalived package \
             (apt-get install keepalived; integration/test.sh does it)"
        )
    });
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let name = name.strip_suffix(".gz").unwrap_or(&name);
            name.starts_with("keepalived.conf.vrrp")
                || name == "keepalived.conf.IPv6"
                || name == "keepalived.conf.track_interface"
        })
        .collect();
    found.sort();
    for want in [
        "keepalived.conf.vrrp",
        "keepalived.conf.IPv6",
        "keepalived.conf.track_interface",
    ] {
        assert!(
            found.iter().any(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name == want || name == format!("{want}.gz")
            }),
            "{SAMPLES} has no {want}: is Debian's keepalived package installed completely?"
        );
    }
    found
}

fn text_of(path: &Path) -> String {
    if path.extension().is_some_and(|e| e == "gz") {
        let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
        assert!(out.status.success(), "gzip -dc {}", path.display());
        String::from_utf8(out.stdout).unwrap()
    } else {
        std::fs::read_to_string(path).unwrap()
    }
}

struct Run {
    ok: bool,
    stderr: String,
}

fn import(files: &[&Path], out: &Path) -> Run {
    let mut command = Command::new(VIPD);
    command
        .arg("import-keepalived")
        .args(files)
        .arg("--out")
        .arg(out);
    for (i, file) in files.iter().enumerate() {
        command
            .arg("--address")
            .arg(format!("{}=198.51.100.{}", file.display(), 11 + i));
    }
    let output = command.output().unwrap();
    Run {
        ok: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// Every note names a file given and a line: `  FILE:LINE: message`.
fn assert_notes_have_file_and_line(stderr: &str, files: &[&Path]) {
    for line in stderr.lines().filter(|l| l.starts_with("  ")) {
        let note = line.trim_start();
        let file = files
            .iter()
            .map(|f| f.display().to_string())
            .find(|f| note.starts_with(&format!("{f}:")))
            .unwrap_or_else(|| panic!("note without a file: {line}"));
        let rest = &note[file.len() + 1..];
        let (number, _) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("note without a line: {line}"));
        assert!(
            number.parse::<usize>().is_ok_and(|n| n >= 1),
            "note without a line number: {line}"
        );
    }
}

/// The sample as the backup node would have it: state BACKUP, each priority 10 lower.
fn backup_variant(text: &str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["state", "MASTER", ..] => line.replace("MASTER", "BACKUP"),
                ["priority", n, ..] if n.parse::<u8>().is_ok() => {
                    let lower = n.parse::<u8>().unwrap().saturating_sub(10).max(1);
                    line.replace(n, &lower.to_string())
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn debian_keepalived_samples_convert_or_say_why() {
    let dir = std::env::temp_dir().join(format!("vipd-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = vipd::lab::RemoveOnDrop(dir.clone());
    let mut converted = Vec::new();
    let mut failed = Vec::new();
    for sample in samples() {
        let name = sample.file_name().unwrap().to_string_lossy().to_string();
        let out = dir.join(format!("{name}.toml"));
        let run = import(&[&sample], &out);
        assert_notes_have_file_and_line(&run.stderr, &[&sample]);
        if run.ok {
            let config = Config::load(&out)
                .unwrap_or_else(|e| panic!("{name}: written file fails vipd check: {e}"));
            assert_eq!(config.nodes.len(), 1, "{name}");
            assert!(!config.groups.is_empty(), "{name}: no group");
            converted.push(name.clone());
        } else {
            let reason = run
                .stderr
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or_else(|| panic!("{name}: failed without an error line:\n{}", run.stderr));
            assert!(reason.len() > 20, "{name}: reason too short: {reason}");
            assert!(!out.exists(), "{name}: a failed conversion wrote a file");
            failed.push((name.clone(), reason.to_string()));
            continue;
        }
        // The same cluster seen from two nodes: the sample as master, a variant as backup.
        let backup = dir.join(format!("{name}.backup"));
        std::fs::write(&backup, backup_variant(&text_of(&sample))).unwrap();
        let pair_out = dir.join(format!("{name}.pair.toml"));
        let run = import(&[&sample, &backup], &pair_out);
        assert!(run.ok, "{name} with its backup: {}", run.stderr);
        assert_notes_have_file_and_line(&run.stderr, &[&sample, &backup]);
        let config = Config::load(&pair_out).unwrap_or_else(|e| panic!("{name} pair: {e}"));
        assert_eq!(config.nodes.len(), 2, "{name} pair");
        for group in &config.groups {
            let master = group.priority_of(0).expect("master is a member");
            let backup = group.priority_of(1).expect("backup is a member");
            assert!(
                master > backup,
                "{name} {}: {master} vs {backup}",
                group.name
            );
        }
    }
    // keepalived.conf.IPv6 is LVS only: nothing to convert, and it says so.
    assert_eq!(
        failed
            .iter()
            .map(|(n, _)| n.trim_end_matches(".gz"))
            .collect::<Vec<_>>(),
        ["keepalived.conf.IPv6"],
        "{failed:?}"
    );
    assert!(
        failed[0].1.contains("no usable vrrp_instance"),
        "{failed:?}"
    );
    assert!(
        converted
            .iter()
            .any(|n| n.trim_end_matches(".gz") == "keepalived.conf.track_interface")
    );
    assert!(converted.len() >= 2, "{converted:?}");
}

#[test]
fn track_interface_sample_keeps_only_what_vipd_can_run() {
    let sample = samples()
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keepalived.conf.track_interface")
        })
        .unwrap();
    let out = std::env::temp_dir().join(format!("vipd-import-ti-{}.toml", std::process::id()));
    let _cleanup = vipd::lab::RemoveOnDrop(out.clone());
    let run = import(&[&sample], &out);
    assert!(run.ok, "{}", run.stderr);
    let config = Config::load(&out).unwrap();
    assert_eq!(config.nodes[0].interface, "eth0.1");
    let addresses: Vec<String> = config.groups[0]
        .addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    // The sample's three addresses: the one on the instance's own interface is carried (as
    // a /32), the two with `dev eth1` and `dev eth2` are listed, not carried.
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    // Its track_interface block (eth0, eth1) is carried over: fault while either is down.
    let tracked: Vec<String> = config.groups[0]
        .track
        .iter()
        .map(|t| format!("{:?} {}", t.tracked, t.weight))
        .collect();
    assert_eq!(tracked, ["Interface(\"eth0\") 0", "Interface(\"eth1\") 0"]);
    assert!(addresses[0].ends_with("/32"), "{addresses:?}");
    for part in [
        "dev eth1: vipd puts every address",
        "dev eth2: vipd puts every address",
        "`virtual_routes` not carried over",
        "`static_routes` block not carried over",
    ] {
        assert!(run.stderr.contains(part), "no {part:?} in\n{}", run.stderr);
    }
}
