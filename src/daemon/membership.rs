//! The shell of the membership channel: the key file, the boot id, the UDP socket; and
//! `vipd witness`, a voter that owns nothing (see [`crate::quorum`]).

use crate::config::Config;
use crate::quorum::{MIN_KEY_LEN, Membership};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

/// Reads the shared secret: the file's bytes, a trailing newline dropped; at least
/// [`MIN_KEY_LEN`] bytes, and readable by root alone.
pub fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let what = format!("[quorum] key_file {}", path.display());
    let metadata = std::fs::metadata(path).map_err(|e| format!("{what}: {e}"))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        warn!("{what} is readable by others than its owner: chmod 600 it");
    }
    let mut secret = std::fs::read(path).map_err(|e| format!("{what}: {e}"))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_KEY_LEN {
        return Err(format!(
            "{what}: the secret has {} bytes, at least {MIN_KEY_LEN} are needed (for example: head -c 32 /dev/urandom | base64 > {})",
            secret.len(),
            path.display()
        ));
    }
    Ok(secret)
}

/// A boot id larger than any earlier run's: the wall clock in nanoseconds.
pub fn boot_id() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// The heartbeat socket, bound to the voter's own address (IP_FREEBIND: it may come up
/// after vipd starts).
pub fn open_socket(address: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let domain = match address {
        IpAddr::V4(_) => socket2::Domain::IPV4,
        IpAddr::V6(_) => socket2::Domain::IPV6,
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    if address.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.bind(&SocketAddr::new(address, port).into())?;
    UdpSocket::from_std(socket.into())
}

/// `vipd witness`: votes until SIGTERM/SIGINT, logging who it hears and votes for.
pub fn run_witness(config_path: &Path, name: &str) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let quorum = config
        .quorum
        .clone()
        .ok_or_else(|| format!("{}: no [quorum] table", config_path.display()))?;
    let witness = config
        .witnesses
        .iter()
        .find(|w| w.name == name)
        .ok_or_else(|| {
            format!(
                "{}: no [[witness]] named \"{name}\" (witnesses: {})",
                config_path.display(),
                config
                    .witnesses
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?
        .clone();
    let secret = read_key(&quorum.key_file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let socket = open_socket(witness.address, quorum.port)
            .map_err(|e| format!("heartbeat socket on {}:{}: {e}", witness.address, quorum.port))?;
        let mut membership =
            Membership::for_config(&config, name, &secret, boot_id(), Instant::now())
                .ok_or("the witness is not a voter of the file")?;
        info!(witness = %name, address = %witness.address, port = quorum.port, "witness voting");
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; 65536];
        let mut last_view = Vec::new();
        loop {
            let now = Instant::now();
            for transmit in membership.poll_transmit(now, &[]) {
                if let Err(e) = socket.try_send_to(&transmit.bytes, transmit.to) {
                    debug!("heartbeat to {}: {e}", transmit.to);
                }
            }
            let view: Vec<(String, bool, bool)> = membership
                .view(now)
                .into_iter()
                .filter(|v| !v.me)
                .map(|v| (v.name, v.heard, v.voting_for))
                .collect();
            if view != last_view {
                for (voter, heard, voting) in &view {
                    info!(%voter, heard, voting_for = voting, "witness view");
                }
                last_view = view;
            }
            let wake = membership
                .next_change(now)
                .map_or(membership.poll_timeout(), |t| t.min(membership.poll_timeout()))
                .max(now + Duration::from_millis(1));
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
                received = socket.recv_from(&mut buffer) => {
                    if let Ok((len, src)) = received
                        && let Err(why) = membership.handle(Instant::now(), src.ip(), &buffer[..len]) {
                            debug!("dropped a heartbeat: {why}");
                        }
                }
                _ = sigterm.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        info!("witness stopping");
        Ok(())
    })
}

/// Runs a fence command (`sh -c`) with `VIPD_FENCE_NODE`, `VIPD_FENCE_ADDRESS` and
/// `VIPD_NODE` (the node that fences) set; killed by its own pid when it overruns.
pub async fn run_fence(
    me: &str,
    node: &str,
    address: IpAddr,
    command: &str,
    timeout: Duration,
) -> Result<(), String> {
    let address = address.to_string();
    let env = [
        ("VIPD_NODE", me),
        ("VIPD_FENCE_NODE", node),
        ("VIPD_FENCE_ADDRESS", address.as_str()),
    ];
    super::resources::run_command(command, timeout, &env).await
}
