//! The `[metrics]` table: off unless `listen` is set, and a bad `listen` names the file, line,
//! column and field like every other error of the cluster file.

use std::net::SocketAddr;
use vipd::config::{Config, ConfigError};

const GOOD: &str = r#"[cluster]
name = "backup"
zone = "cluster.example."

[[node]]
name = "alpha"
interface = "eth0"
address = "192.0.2.11"

[[group]]
name = "master-server"
vrid = 51
addresses = ["192.0.2.100/24"]
priority = { alpha = 150 }
"#;

/// `GOOD` with a `[metrics]` table holding `body` (one line); the line of `body` and the
/// parse result.
fn with_metrics(body: &str) -> (usize, Result<Config, ConfigError>) {
    let text = format!("{GOOD}\n[metrics]\n{body}\n");
    let line = GOOD.lines().count() + 3;
    (line, Config::parse("netconf/test.toml", &text))
}

fn assert_error(body: &str, column: usize, field: &str, words: &str) {
    let (line, result) = with_metrics(body);
    let error = result.expect_err("the file must be rejected");
    let shown = error.to_string();
    assert_eq!(error.position, Some((line, column)), "{shown}");
    assert!(
        shown.starts_with(&format!("netconf/test.toml:{line}:{column}: ")),
        "{shown}"
    );
    assert!(error.field.contains(field), "{field:?} not in: {shown}");
    assert!(error.message.contains(words), "{words:?} not in: {shown}");
}

#[test]
fn metrics_are_off_without_the_table_or_without_listen() {
    let config = Config::parse("netconf/test.toml", GOOD).unwrap();
    assert_eq!(config.metrics.listen, None);
    let (_, config) = with_metrics("");
    assert_eq!(config.unwrap().metrics.listen, None);
}

#[test]
fn listen_takes_an_ipv4_or_ipv6_address_and_port() {
    for written in ["198.51.100.1:9650", "[2001:db8::1]:9650", "0.0.0.0:9650"] {
        let (_, config) = with_metrics(&format!("listen = \"{written}\""));
        assert_eq!(
            config.unwrap().metrics.listen,
            Some(written.parse::<SocketAddr>().unwrap())
        );
    }
}

#[test]
fn listen_without_a_port() {
    assert_error(
        "listen = \"198.51.100.1\"",
        10,
        "[metrics], field `listen`",
        "has no port",
    );
}

#[test]
fn listen_with_an_ipv6_address_without_brackets() {
    assert_error(
        "listen = \"2001:db8::1:9650\"",
        10,
        "[metrics], field `listen`",
        "takes brackets before the port, such as [2001:db8::1]:9650",
    );
}

#[test]
fn listen_without_an_address() {
    assert_error(
        "listen = \":9650\"",
        10,
        "[metrics], field `listen`",
        "write 0.0.0.0:9650 or [::]:9650",
    );
}

#[test]
fn listen_that_is_not_an_address() {
    for written in [
        "metrics.example:9650",
        "198.51.100.1:70000",
        "[2001:db8::1]",
    ] {
        assert_error(
            &format!("listen = \"{written}\""),
            10,
            "[metrics], field `listen`",
            "is not an address and port",
        );
    }
}

#[test]
fn listen_on_port_zero() {
    assert_error(
        "listen = \"198.51.100.1:0\"",
        10,
        "[metrics], field `listen`",
        "port 0",
    );
}

#[test]
fn listen_that_is_not_a_string() {
    assert_error("listen = 9650", 10, "[metrics], field `listen`", "string");
}

#[test]
fn an_unknown_key_in_metrics() {
    assert_error(
        "port = 9650",
        1,
        "[metrics], field `port`",
        "unknown field `port`",
    );
}
