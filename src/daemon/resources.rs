//! A group's resources on the owner: `sh -c` start commands in order after the addresses are
//! up, checks while master, stop commands in reverse order when it steps down. A start or
//! check that fails (or times out) is reported to the loop, which gives the group up so that
//! another node takes it.

use crate::config::Resource;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use crate::node::{ResourceOutcome as Outcome, ResourceReport as Report};

/// What the commands see of their context.
#[derive(Debug, Clone)]
pub struct Context {
    pub group: String,
    pub node: String,
    pub addresses: String,
}

/// Runs one command with a time-out; the child is killed (by its own pid) when it overruns.
async fn run(
    command: &str,
    timeout: Duration,
    context: &Context,
    resource: &str,
) -> Result<(), String> {
    let env = [
        ("VIPD_GROUP", context.group.as_str()),
        ("VIPD_NODE", context.node.as_str()),
        ("VIPD_ADDRESSES", context.addresses.as_str()),
        ("VIPD_RESOURCE", resource),
    ];
    run_command(command, timeout, &env).await
}

/// Runs `sh -c command` with `env` added, within `timeout`; the child is killed (by its own
/// pid) when it overruns. Success is exit status 0.
pub async fn run_command(
    command: &str,
    timeout: Duration,
    env: &[(&str, &str)],
) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{command}` {status}")),
        Ok(Err(e)) => Err(format!("`{command}`: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("`{command}` did not finish within {timeout:?}"))
        }
    }
}

/// Starts the resources in order, then checks them while the mastership lasts.
pub fn start(
    group: crate::node::GroupName,
    generation: u64,
    mastership: Arc<AtomicU64>,
    resources: Vec<Resource>,
    lock: Arc<tokio::sync::Mutex<()>>,
    context: Context,
    reports: UnboundedSender<Report>,
) {
    tokio::spawn(async move {
        let current = || mastership.load(Ordering::SeqCst) == generation;
        let report = |outcome| {
            let _ = reports.send(Report {
                group: group.clone(),
                generation,
                outcome,
            });
        };
        {
            // After the stop commands of an earlier mastership, never alongside them.
            let _serial = lock.lock().await;
            for resource in &resources {
                if !current() {
                    return;
                }
                match run(&resource.start, resource.timeout, &context, &resource.name).await {
                    Ok(()) => info!(group = %context.group, resource = %resource.name, "started"),
                    Err(e) => {
                        report(Outcome::StartFailed(format!("{}: {e}", resource.name)));
                        return;
                    }
                }
            }
        }
        report(Outcome::Started);
        let checked: Vec<&Resource> = resources.iter().filter(|r| r.check.is_some()).collect();
        let Some(interval) = checked.iter().map(|r| r.check_interval).min() else {
            return;
        };
        loop {
            tokio::time::sleep(interval).await;
            if !current() {
                return;
            }
            for resource in &checked {
                let command = resource.check.as_deref().unwrap_or_default();
                if let Err(e) = run(command, resource.timeout, &context, &resource.name).await {
                    if current() {
                        report(Outcome::CheckFailed(format!("{}: {e}", resource.name)));
                    }
                    return;
                }
            }
        }
    });
}

/// Stops the resources in reverse order; the handle lets shutdown wait for it.
pub fn stop(
    resources: Vec<Resource>,
    lock: Arc<tokio::sync::Mutex<()>>,
    context: Context,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _serial = lock.lock().await;
        for resource in resources.iter().rev() {
            match run(&resource.stop, resource.timeout, &context, &resource.name).await {
                Ok(()) => info!(group = %context.group, resource = %resource.name, "stopped"),
                Err(e) => {
                    warn!(group = %context.group, resource = %resource.name, "stop failed: {e}")
                }
            }
        }
    })
}
