//! Every kind of bad cluster file gets an error naming file, line, column and field, and
//! `vipd check` accepts every example in netconf/.

use std::process::Command;
use vipd::config::{Config, ConfigError};

const GOOD: &str = r#"[cluster]
name = "backup"
zone = "cluster.example."

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"

[[node]]
name = "beta"
interface = "eth0"
address = "192.0.2.12"

[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24", "2001:db8::100/64"]
names = ["nbu-master"]
priority = { alpha = 150, beta = 100 }
advert_interval = "100ms"
"#;

/// Parses `GOOD` with `from` replaced by `to` (or `to` appended when `from` is empty).
fn with(from: &str, to: &str) -> Result<Config, ConfigError> {
    let text = if from.is_empty() {
        format!("{GOOD}{to}\n")
    } else {
        assert!(GOOD.contains(from), "test bug: {from:?} not in GOOD");
        GOOD.replacen(from, to, 1)
    };
    Config::parse("netconf/test.toml", &text)
}

/// Asserts the error's position, that its field mentions `field`, and that its message
/// contains `words`.
fn assert_error(
    result: Result<Config, ConfigError>,
    line: usize,
    column: usize,
    field: &str,
    words: &str,
) {
    let error = result.expect_err("the file must be rejected");
    let shown = error.to_string();
    assert_eq!(error.position, Some((line, column)), "{shown}");
    assert!(
        shown.starts_with(&format!("netconf/test.toml:{line}:{column}: ")),
        "{shown}"
    );
    assert!(
        error.field.contains(field),
        "field {field:?} not in: {shown}"
    );
    assert!(error.message.contains(words), "{words:?} not in: {shown}");
}

#[test]
fn the_good_file_parses_with_keepalived_like_defaults() {
    let config = with("", "").unwrap();
    let group = &config.groups[0];
    assert_eq!(config.cluster.zone, "cluster.example.");
    assert_eq!(group.names, vec!["nbu-master.cluster.example.".to_string()]);
    assert_eq!(group.priorities, vec![(0, 150), (1, 100)]);
    assert!(group.preempt && group.accept_mode && !group.unicast);
    assert_eq!(group.announce.count, 5);
    assert_eq!(group.families().len(), 2);
    assert!(!group.vmac, "vmac is off unless asked for");
}

#[test]
fn vmac_true_is_read() {
    let config = with("", "vmac = true").unwrap();
    assert!(config.groups[0].vmac);
}

#[test]
fn vmac_on_a_member_whose_interface_has_the_macvlan_name() {
    // Line 21 is `advert_interval`; `vmac` goes on line 22, column 8 is its value.
    let from = "[[node]]\nname = \"beta\"\ninterface = \"eth0\"";
    let to = "[[node]]\nname = \"beta\"\ninterface = \"vrrp6.51\"";
    let text = GOOD.replacen(from, to, 1) + "vmac = true\n";
    assert_error(
        Config::parse("netconf/test.toml", &text),
        22,
        8,
        "field `vmac`",
        "node \"beta\" runs on interface vrrp6.51",
    );
}

#[test]
fn vmac_that_is_not_a_boolean() {
    let error = with("", "vmac = \"yes\"").expect_err("rejected");
    assert_eq!(error.position.map(|p| p.0), Some(22), "{error}");
    assert!(error.to_string().contains("vmac"), "{error}");
}

#[test]
fn duplicate_node_name() {
    assert_error(
        with("name = \"beta\"", "name = \"alpha\""),
        11,
        8,
        "[[node]] #2",
        "already used by node #1",
    );
}

#[test]
fn duplicate_node_address() {
    assert_error(
        with("address = \"192.0.2.12\"", "address = \"192.0.2.11\""),
        13,
        11,
        "field `address`",
        "already the address of node \"alpha\"",
    );
}

#[test]
fn vrid_used_twice_on_one_interface() {
    let second = "[[group]]\nname = \"other\"\nvrid = 51\naddresses = [\"192.0.2.101/24\"]\npriority = { beta = 100 }\n";
    assert_error(
        with("", second),
        24,
        8,
        "field `vrid`",
        "vrid 51 is already used by group \"master-server\"",
    );
}

#[test]
fn same_vrid_on_other_nodes_or_families_is_fine() {
    let other_family = "[[group]]\nname = \"v6only\"\nvrid = 52\naddresses = [\"2001:db8::200/64\"]\npriority = { alpha = 100 }\n[[group]]\nname = \"v4only\"\nvrid = 52\naddresses = [\"192.0.2.200/24\"]\npriority = { alpha = 100 }\n";
    assert!(with("", other_family).is_ok());
}

#[test]
fn priority_255_on_a_node_that_does_not_own_the_address() {
    assert_error(
        with("alpha = 150", "alpha = 255"),
        20,
        22,
        "priority.alpha",
        "reserved for the owner",
    );
}

#[test]
fn the_owner_of_an_address_must_have_priority_255() {
    assert_error(
        with("\"192.0.2.100/24\"", "\"192.0.2.11/24\""),
        20,
        22,
        "priority.alpha",
        "must have priority 255",
    );
}

#[test]
fn advert_interval_not_a_multiple_of_ten_milliseconds() {
    assert_error(
        with("\"100ms\"", "\"105ms\""),
        21,
        19,
        "advert_interval",
        "not a multiple of 10ms",
    );
}

#[test]
fn advert_interval_out_of_range() {
    assert_error(
        with("\"100ms\"", "\"41s\""),
        21,
        19,
        "advert_interval",
        "outside 10ms..=40.95s",
    );
    assert_error(
        with("\"100ms\"", "\"0s\""),
        21,
        19,
        "advert_interval",
        "outside 10ms..=40.95s",
    );
}

#[test]
fn advert_interval_that_is_not_a_duration() {
    assert_error(
        with("\"100ms\"", "\"fast\""),
        21,
        19,
        "[[group]] #1, field `advert_interval`",
        "unknown unit `fast`",
    );
    assert_error(
        with("\"100ms\"", "100"),
        21,
        19,
        "advert_interval",
        "string",
    );
}

#[test]
fn a_group_without_addresses() {
    assert_error(
        with("[\"192.0.2.100/24\", \"2001:db8::100/64\"]", "[]"),
        18,
        13,
        "field `addresses`",
        "no virtual address",
    );
}

#[test]
fn a_bad_virtual_address() {
    assert_error(
        with("\"192.0.2.100/24\"", "\"192.0.2.300/24\""),
        18,
        13,
        "[[group]] #1, field `addresses`",
        "not an IP address",
    );
    assert_error(
        with("\"192.0.2.100/24\"", "\"192.0.2.100/33\""),
        18,
        13,
        "addresses",
        "prefix length",
    );
}

#[test]
fn a_name_outside_the_zone() {
    assert_error(
        with("\"nbu-master\"", "\"nbu-master.other.example.\""),
        19,
        10,
        "field `names`",
        "outside the cluster zone cluster.example.",
    );
}

#[test]
fn a_recursion_network_that_is_not_a_network() {
    assert_error(
        with(
            "",
            "[dns]\nforwarders = [\"198.51.100.53\"]\nallow_recursion = [\"198.51.100.0/24\", \"198.51.100.0/40\"]",
        ),
        24,
        39,
        "[dns], field `allow_recursion`",
        "is not a network",
    );
    let config = with(
        "",
        "[dns]\nallow_recursion = [\"198.51.100.0/24\", \"2001:db8::1\"]",
    )
    .unwrap();
    assert_eq!(config.dns.allow_recursion.unwrap().len(), 2);
    assert_eq!(with("", "").unwrap().dns.allow_recursion, None);
}

#[test]
fn a_name_that_is_not_a_dns_name() {
    assert_error(
        with("\"nbu-master\"", "\"nbu_master\""),
        19,
        10,
        "field `names`",
        "not a valid DNS label",
    );
}

#[test]
fn a_priority_for_a_node_that_does_not_exist() {
    assert_error(
        with("beta = 100 }", "gamma = 100 }"),
        20,
        27,
        "field `priority`",
        "\"gamma\" is not a node of this cluster (nodes: alpha, beta)",
    );
}

#[test]
fn a_priority_out_of_range() {
    assert_error(
        with("beta = 100 }", "beta = 0 }"),
        20,
        34,
        "priority.beta",
        "not 1..=255",
    );
    assert_error(
        with("beta = 100 }", "beta = 300 }"),
        20,
        34,
        "priority.beta",
        "not 1..=255",
    );
}

#[test]
fn unknown_key_in_a_group() {
    assert_error(
        with(
            "advert_interval = \"100ms\"",
            "advert_intervall = \"100ms\"",
        ),
        21,
        1,
        "[[group]] #1, field `advert_intervall`",
        "unknown field `advert_intervall`",
    );
}

#[test]
fn unknown_key_in_a_node() {
    assert_error(
        with(
            "interface = \"eth0\"\naddress = \"192.0.2.12\"",
            "iface = \"eth0\"\naddress = \"192.0.2.12\"",
        ),
        12,
        1,
        "[[node]] #2, field `iface`",
        "unknown field `iface`",
    );
}

#[test]
fn unknown_key_in_the_cluster() {
    assert_error(
        with("zone = ", "zones = "),
        3,
        1,
        "[cluster], field `zones`",
        "unknown field `zones`",
    );
}

#[test]
fn a_missing_required_key() {
    let error = with("vrid = 51\n", "").unwrap_err();
    assert!(
        error.to_string().contains("missing field `vrid`"),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("netconf/test.toml:"),
        "{error}"
    );
}

#[test]
fn a_vrid_out_of_range() {
    assert_error(
        with("vrid = 51", "vrid = 256"),
        17,
        8,
        "field `vrid`",
        "not 1..=255",
    );
    assert_error(
        with("vrid = 51", "vrid = 0"),
        17,
        8,
        "field `vrid`",
        "not 1..=255",
    );
}

#[test]
fn version_2_with_ipv6() {
    assert_error(
        with("vrid = 51", "vrid = 51\nversion = 2"),
        19,
        32,
        "field `addresses`",
        "VRRP version 2 carries IPv4 only",
    );
}

#[test]
fn version_2_needs_whole_seconds() {
    let v2 = GOOD
        .replace(
            "\"192.0.2.100/24\", \"2001:db8::100/64\"",
            "\"192.0.2.100/24\"",
        )
        .replace("vrid = 51", "vrid = 51\nversion = 2");
    let error = Config::parse("netconf/test.toml", &v2).unwrap_err();
    assert_eq!(error.position, Some((22, 19)), "{error}");
    assert!(
        error
            .message
            .contains("not a whole number of seconds 1s..=255s"),
        "{error}"
    );
    assert!(Config::parse("netconf/test.toml", &v2.replace("\"100ms\"", "\"2s\"")).is_ok());
}

#[test]
fn equal_priorities_in_a_dual_stack_group() {
    assert_error(
        with("beta = 100 }", "beta = 150 }"),
        20,
        12,
        "field `priority`",
        "could break the tie differently",
    );
}

#[test]
fn equal_ipv6_priorities_without_link_locals() {
    let v6_only = GOOD.replace(
        "\"192.0.2.100/24\", \"2001:db8::100/64\"",
        "\"2001:db8::100/64\"",
    );
    let tie = v6_only.replace("beta = 100 }", "beta = 150 }");
    let error = Config::parse("netconf/test.toml", &tie).unwrap_err();
    assert!(error.message.contains("share priority 150"), "{error}");
    let with_link_locals = tie
        .replace(
            "address = \"192.0.2.11\"",
            "address = \"192.0.2.11\"\nlink_local = \"fe80::11\"",
        )
        .replace(
            "address = \"192.0.2.12\"",
            "address = \"192.0.2.12\"\nlink_local = \"fe80::12\"",
        );
    assert!(Config::parse("t.toml", &with_link_locals).is_ok());
}

#[test]
fn a_link_local_that_is_not_link_local() {
    assert_error(
        with(
            "address = \"192.0.2.12\"",
            "address = \"192.0.2.12\"\nlink_local = \"2001:db8::12\"",
        ),
        14,
        14,
        "field `link_local`",
        "not an IPv6 link-local",
    );
}

#[test]
fn a_bad_zone() {
    assert_error(
        with("\"cluster.example.\"", "\"cluster..example.\""),
        3,
        8,
        "[cluster], field `zone`",
        "not a valid DNS label",
    );
}

#[test]
fn a_bad_interface_name() {
    assert_error(
        with(
            "interface = \"eth0\"",
            "interface = \"a-very-long-interface-name\"",
        ),
        7,
        13,
        "field `interface`",
        "not a Linux interface name",
    );
}

#[test]
fn no_nodes() {
    let text = "[cluster]\nname = \"x\"\nzone = \"cluster.example.\"\n";
    let error = Config::parse("netconf/test.toml", text).unwrap_err();
    assert!(error.message.contains("no [[node]]"), "{error}");
}

#[test]
fn two_groups_with_one_address() {
    let second = "[[group]]\nname = \"other\"\nvrid = 52\naddresses = [\"192.0.2.100/24\"]\npriority = { beta = 100 }\n";
    assert_error(
        with("", second),
        25,
        14,
        "field `addresses`",
        "already a virtual address of group \"master-server\"",
    );
}

#[test]
fn unicast_needs_member_addresses_of_the_family() {
    assert_error(
        with("vrid = 51", "vrid = 51\nunicast = true"),
        16,
        8,
        "field `unicast`",
        "has no `link_local` address",
    );
}

#[test]
fn a_toml_syntax_error() {
    let error = with("vrid = 51", "vrid = = 51").unwrap_err();
    assert_eq!(error.position.map(|p| p.0), Some(17), "{error}");
}

fn vipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vipd"))
}

#[test]
fn vipd_check_accepts_every_example_in_netconf() {
    let dir = format!("{}/netconf", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for node in &config.nodes {
            let out = vipd()
                .arg("check")
                .arg(&path)
                .args(["--node", &node.name])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(": OK"), "{stdout}");
            assert!(
                stdout.contains(&format!("node {} on", node.name)),
                "{stdout}"
            );
        }
    }
    assert!(seen >= 2, "netconf/ holds the examples");
}

#[test]
fn vipd_check_prints_the_timers() {
    let path = format!("{}/netconf/backup-master.toml", env!("CARGO_MANIFEST_DIR"));
    let out = vipd()
        .args(["check", &path, "--node", "beta"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // beta (priority 100) backs up alpha at 100 ms: skew 60.937 ms, and it is first in line.
    assert!(
        stdout.contains("advert every 100ms, skew 60.937ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("takes over 300ms after it crashes"),
        "{stdout}"
    );
    assert!(stdout.contains("RFC timers: 360.937ms"), "{stdout}");
}

#[test]
fn vipd_check_fails_on_a_bad_file_with_the_position() {
    let dir = std::env::temp_dir().join(format!("vipd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, GOOD.replace("vrid = 51", "vrid = 300")).unwrap();
    let out = vipd().arg("check").arg(&path).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "bad.toml:17:8: [[group]] \"master-server\", field `vrid`: vrid 300 is not 1..=255"
        ),
        "{stderr}"
    );
}

#[test]
fn vipd_check_names_an_unknown_node() {
    let path = format!("{}/netconf/backup-master.toml", env!("CARGO_MANIFEST_DIR"));
    let out = vipd()
        .args(["check", &path, "--node", "zeta"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("node \"zeta\" is not in this file (nodes: alpha, beta)")
    );
}

#[test]
fn two_address_owners_in_one_group() {
    let text = GOOD
        .replace(
            "\"192.0.2.100/24\", \"2001:db8::100/64\"",
            "\"192.0.2.11/24\", \"192.0.2.12/24\"",
        )
        .replace("alpha = 150, beta = 100", "alpha = 255, beta = 255");
    let error = Config::parse("netconf/test.toml", &text).unwrap_err();
    assert!(
        error.message.contains("a group has one address owner"),
        "{error}"
    );
}

#[test]
fn accept_mode_off_is_refused_until_it_is_enforced() {
    let error = with("vrid = 51", "vrid = 51\naccept_mode = false").unwrap_err();
    assert!(
        error.field.contains("accept_mode") && error.message.contains("not supported yet"),
        "{error}"
    );
    assert!(with("vrid = 51", "vrid = 51\naccept_mode = true").is_ok());
}

#[test]
fn announce_refresh_that_would_flood_the_lan() {
    assert_error(
        with("vrid = 51", "vrid = 51\nannounce_refresh = \"1us\""),
        18,
        20,
        "announce_refresh",
        "at least 1s",
    );
}

#[test]
fn a_vrid_reused_by_groups_of_other_nodes_on_the_same_lan() {
    let text = GOOD.replace(
        "priority = { alpha = 150, beta = 100 }",
        "priority = { alpha = 150 }",
    );
    let second = "[[group]]\nname = \"other\"\nvrid = 51\naddresses = [\"192.0.2.101/24\"]\npriority = { beta = 100 }\n";
    let error = Config::parse("netconf/test.toml", &format!("{text}{second}")).unwrap_err();
    assert!(
        error
            .message
            .contains("a VRID must be unique per interface and address family"),
        "{error}"
    );
}

#[test]
fn a_virtual_name_that_is_a_node_name() {
    assert_error(
        with("\"nbu-master\"", "\"alpha\""),
        19,
        10,
        "field `names`",
        "is the name of node \"alpha\"",
    );
}

#[test]
fn a_zero_prefix() {
    assert_error(
        with("\"192.0.2.100/24\"", "\"192.0.2.100/0\""),
        18,
        13,
        "addresses",
        "prefix length",
    );
}

#[test]
fn link_local_addresses_where_they_do_not_belong() {
    let twice = GOOD
        .replace(
            "address = \"192.0.2.11\"",
            "address = \"192.0.2.11\"\nlink_local = \"fe80::1\"",
        )
        .replace(
            "address = \"192.0.2.12\"",
            "address = \"192.0.2.12\"\nlink_local = \"fe80::1\"",
        );
    let error = Config::parse("netconf/test.toml", &twice).unwrap_err();
    assert!(
        error
            .message
            .contains("already the link-local address of node \"alpha\""),
        "{error}"
    );
    let error = with("address = \"192.0.2.12\"", "address = \"fe80::12\"").unwrap_err();
    assert!(error.message.contains("is link-local"), "{error}");
}

#[test]
fn resources_are_parsed_in_order_with_defaults() {
    let resources = "quorum = false\n[[group.resource]]\nname = \"disk\"\nstart = \"mount /srv\"\nstop = \"umount /srv\"\ncheck = \"mountpoint -q /srv\"\n\
                     [[group.resource]]\nname = \"service\"\nstart = \"systemctl start backup\"\nstop = \"systemctl stop backup\"\ntimeout = \"1m\"\n";
    let config = with("", resources).unwrap();
    let names: Vec<&str> = config.groups[0]
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["disk", "service"]);
    assert_eq!(
        config.groups[0].resources[0].timeout,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        config.groups[0].resources[0].check_interval,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        config.groups[0].resources[1].timeout,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(config.groups[0].resources[1].check, None);
}

#[test]
fn a_resource_without_a_stop_command_or_twice_the_same_name() {
    let error = with(
        "",
        "[[group.resource]]\nname = \"disk\"\nstart = \"mount /srv\"\n",
    )
    .unwrap_err();
    assert!(error.message.contains("missing field `stop`"), "{error}");
    let twice = "[[group.resource]]\nname = \"disk\"\nstart = \"a\"\nstop = \"b\"\n[[group.resource]]\nname = \"disk\"\nstart = \"a\"\nstop = \"b\"\n";
    let error = with("", twice).unwrap_err();
    assert!(
        error.message.contains("its own name")
            && error.field.contains("[[group.resource]] \"disk\""),
        "{error}"
    );
    let empty = "[[group.resource]]\nname = \"disk\"\nstart = \" \"\nstop = \"b\"\n";
    let error = with("", empty).unwrap_err();
    assert!(
        error.message.contains("the start command is empty"),
        "{error}"
    );
}

#[test]
fn a_group_with_resources_needs_quorum_or_says_it_does_without() {
    let resource = "[[group.resource]]\nname = \"disk\"\nstart = \"true\"\nstop = \"true\"\n";
    let error = with("", resource).unwrap_err();
    assert!(error.field.contains("quorum"), "{error}");
    assert!(error.message.contains("[quorum] table"), "{error}");
    assert!(error.message.contains("quorum = false"), "{error}");
    assert!(
        !with("", &format!("quorum = false\n{resource}"))
            .unwrap()
            .groups[0]
            .quorum
    );
    let quorum = "[quorum]\nkey_file = \"/etc/vipd/cluster.key\"\nlease = \"2s\"\n";
    let slow = format!("{resource}timeout = \"5s\"\n{quorum}");
    let error = with("", &slow).unwrap_err();
    assert!(
        error
            .message
            .contains("lower the resources' timeout or raise the lease"),
        "{error}"
    );
    let fits = format!("{resource}timeout = \"1s\"\n{quorum}");
    let config = with("", &fits).unwrap();
    assert!(config.groups[0].quorum);
    assert_eq!(
        config.quorum.unwrap().lease,
        std::time::Duration::from_secs(2)
    );
}

#[test]
fn quorum_and_witness_errors_name_their_field() {
    let relative = with("", "[quorum]\nkey_file = \"cluster.key\"\n").unwrap_err();
    assert!(relative.field.contains("key_file"), "{relative}");
    let short = with(
        "",
        "[quorum]\nkey_file = \"/k\"\nheartbeat = \"100ms\"\nlease = \"300ms\"\n",
    )
    .unwrap_err();
    assert!(short.field.contains("lease"), "{short}");
    let clash = with(
        "",
        "[quorum]\nkey_file = \"/k\"\n[[witness]]\nname = \"alpha\"\naddress = \"192.0.2.99\"\n",
    )
    .unwrap_err();
    assert!(
        clash.message.contains("every voter needs its own"),
        "{clash}"
    );
}
