//! keepalived as the yardstick in the lab: its configuration, and starting and stopping
//! Debian's keepalived in a node's namespace (by pid, never by name).

use super::{Lab, running};
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A keepalived configuration for one VRRPv3 instance on `eth0`, the yardstick's side of
/// a lab: `advert_int` in seconds as keepalived writes it ("0.1").
pub fn keepalived_conf(vrid: u8, priority: u8, advert_int: &str, addresses: &[&str]) -> String {
    let addresses: String = addresses.iter().map(|a| format!("        {a}\n")).collect();
    format!(
        "global_defs {{\n    router_id vipdlab\n    vrrp_version 3\n}}\n\
         vrrp_instance vi{vrid} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {vrid}\n    \
         priority {priority}\n    advert_int {advert_int}\n    virtual_ipaddress {{\n{addresses}    }}\n}}\n"
    )
}

impl Lab {
    /// Runs keepalived (Debian's) in the node's namespace with `conf`, VRRP only, in the
    /// foreground, with private pid files so that it never meets a system keepalived.
    pub fn start_keepalived(&mut self, node: usize, conf: &str) -> io::Result<u32> {
        let name = &self.nodes[node].name;
        let conf_path = self.dir.join(format!("{name}.keepalived.conf"));
        std::fs::write(&conf_path, conf)?;
        let pid = |what: &str| self.dir.join(format!("{name}.keepalived.{what}.pid"));
        for what in ["main", "vrrp", "checker", "bfd"] {
            let _ = std::fs::remove_file(pid(what));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.nodes[node].namespace,
                "keepalived",
                "-n",
                "-P",
                "-l",
                "-D",
                "-G",
                "-f",
            ])
            .arg(&conf_path)
            .arg("-p")
            .arg(pid("main"))
            .arg("-r")
            .arg(pid("vrrp"))
            .arg("-c")
            .arg(pid("checker"))
            .arg("-b")
            .arg(pid("bfd"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let parent = child.id();
        self.nodes[node].keepalived = Some((child, pid("vrrp")));
        Ok(parent)
    }

    /// Signals keepalived's parent and its VRRP child, by their pids, and waits for them.
    pub fn stop_keepalived(
        &mut self,
        node: usize,
        signal: nix::sys::signal::Signal,
    ) -> io::Result<()> {
        use nix::sys::signal::kill;
        use nix::unistd::Pid;
        let Some((mut parent, vrrp_pid_file)) = self.nodes[node].keepalived.take() else {
            return Ok(());
        };
        let vrrp = std::fs::read_to_string(&vrrp_pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if signal == nix::sys::signal::Signal::SIGKILL
            && let Some(pid) = vrrp
        {
            // Crash: the VRRP process dies at once, not through its parent.
            let _ = kill(Pid::from_raw(pid), signal);
        }
        let _ = kill(Pid::from_raw(parent.id() as i32), signal);
        parent.wait()?;
        if let Some(pid) = vrrp {
            // The child exits with its parent; make sure, by its own pid.
            let start = Instant::now();
            while running(pid) && start.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if running(pid) {
                let _ = kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            // Reap it: with the parent gone it is our child now (we are the subreaper).
            let _ = nix::sys::wait::waitpid(
                Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
        Ok(())
    }
}
