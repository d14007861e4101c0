//! The benchmarks' yardsticks and instruments: Knot DNS as the peer DNS server, perf for
//! profiles.

use super::Lab;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

impl Lab {
    /// Starts Knot DNS (`integration/knot/run-knot.sh`, its files under the lab's folder named
    /// `name`) in `namespace` on `address`, serving `zone` (zone-file text) as
    /// cluster.example., with `udp_workers` (the script's default when None); returns its pid,
    /// which the lab ends.
    pub fn start_knot(
        &mut self,
        name: &str,
        namespace: &str,
        address: &str,
        zone: &str,
        udp_workers: Option<u32>,
    ) -> io::Result<u32> {
        let zone_file = self.dir.join(format!("{name}.zone"));
        std::fs::write(&zone_file, zone)?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration/knot/run-knot.sh");
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut command = Command::new("bash");
        command
            .arg(script)
            .arg(namespace)
            .arg(self.dir.join(name))
            .arg(address)
            .arg("cluster.example.")
            .arg(&zone_file)
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(workers) = udp_workers {
            command.env("KNOT_UDP_WORKERS", workers.to_string());
        }
        self.spawn(&mut command)
    }

    /// Waits until a DNS server at `address` answers the SOA of cluster.example. (asked by
    /// dig from the client).
    pub fn wait_for_dns(&self, address: &str, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        let server = format!("@{address}");
        let args = [
            "dig",
            "+short",
            "+time=1",
            &server,
            "cluster.example.",
            "SOA",
        ];
        while !self
            .exec(&self.client, &args)
            .is_ok_and(|o| !o.trim().is_empty())
        {
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "no DNS server answers at {address}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

/// Profiles `pid` with `perf record -g` for `seconds` (the data in `data`); the report's lines
/// above `percent_limit` %, self time, without call chains.
pub fn perf_profile(pid: u32, seconds: u64, data: &Path, percent_limit: f64) -> Vec<String> {
    let _ = Command::new("perf")
        .args(["record", "-g", "-o"])
        .arg(data)
        .args(["-p", &pid.to_string(), "--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let Ok(report) = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "-g", "none"])
        .args(["--percent-limit", &percent_limit.to_string(), "-i"])
        .arg(data)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|l| l.contains('%') && !l.starts_with('#'))
        .take(40)
        .map(str::to_string)
        .collect()
}
