//! Interface settings the daemon makes at start.

use tracing::{info, warn};

/// `net.ipv4.conf.<interface>.promote_secondaries = 1`: without it, removing the first
/// address of a subnet (the primary) deletes every other address of that subnet, so that
/// releasing one group's virtual address takes another group's address of the same subnet
/// down with it. Logged; a warning when it cannot be set. Returns whether it is on.
pub fn promote_secondaries(interface: &str) -> bool {
    let path = format!("/proc/sys/net/ipv4/conf/{interface}/promote_secondaries");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        info!("{path} is 1: releasing one virtual address never deletes another of its subnet");
        return true;
    }
    match std::fs::write(&path, "1") {
        Ok(()) => {
            info!("{path} = 1: releasing one virtual address never deletes another of its subnet");
            true
        }
        Err(e) => {
            warn!(
                "cannot set {path}: {e}; releasing the first virtual address of a subnet deletes the others of that subnet (the holder puts them back, with a gap)"
            );
            false
        }
    }
}
