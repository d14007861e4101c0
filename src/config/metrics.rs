//! The `[metrics]` table: the optional HTTP listener for Prometheus (`/metrics`) and health
//! checks (`/healthz`). Absent: no listener.

use super::{ConfigError, Source};
use serde::Deserialize;
use std::net::SocketAddr;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metrics {
    /// Address and port of the HTTP listener; `None`: off.
    pub listen: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    #[serde(default)]
    listen: Option<Spanned<String>>,
}

pub(super) fn validate(source: &Source, raw: Option<RawMetrics>) -> Result<Metrics, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Metrics::default());
    };
    let Some(written) = raw.listen else {
        return Ok(Metrics::default());
    };
    let text = written.get_ref().trim();
    let error =
        |message: String| source.error(written.span(), "[metrics], field `listen`", message);
    let listen: SocketAddr = text.parse().map_err(|_| {
        error(if text.parse::<std::net::Ipv4Addr>().is_ok() {
            format!("`{text}` has no port: write an address and a port, such as 198.51.100.1:9650")
        } else if text.parse::<std::net::Ipv6Addr>().is_ok() {
            format!(
                "`{text}` has no port: an IPv6 address takes brackets before the port, such as [2001:db8::1]:9650"
            )
        } else if text.starts_with(':') {
            format!("`{text}` has no address: write 0.0.0.0{text} or [::]{text} to listen on every address")
        } else {
            format!(
                "`{text}` is not an address and port (198.51.100.1:9650 or [2001:db8::1]:9650)"
            )
        })
    })?;
    if listen.port() == 0 {
        return Err(error(format!(
            "`{text}`: port 0 is not a port a scraper can find, write 1..=65535"
        )));
    }
    Ok(Metrics {
        listen: Some(listen),
    })
}
