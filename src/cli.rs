//! The command line, as a library item so that man pages can be generated from it
//! (`clap_mangen`); `main.rs` only dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// vipd: a virtual IP address and a virtual name that follow the active node of a cluster.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate a cluster file and print what a node will do; touches no network.
    Check {
        /// The cluster file.
        file: PathBuf,
        /// The node to report on (default: the host name if it is a node, else every node).
        #[arg(long)]
        node: Option<String>,
    },
    /// Run the daemon for one node of the cluster.
    Run {
        /// The cluster file, the same on every node.
        #[arg(long, short)]
        config: PathBuf,
        /// This node's name in the file (default: the host name).
        #[arg(long)]
        node: Option<String>,
        /// Control socket (default: /run/vipd/NODE.sock).
        #[arg(long)]
        control: Option<PathBuf>,
        /// Where state that survives restarts is kept (the drain mark NODE.drained).
        #[arg(long, default_value = "/var/lib/vipd")]
        state_dir: PathBuf,
        /// Members of this Unix group may use the control socket too (default: root only).
        #[arg(long)]
        control_group: Option<String>,
        /// Real-time priority (SCHED_RR, 1-99) of the event loop that sends and hears the
        /// adverts, so that CPU-bound neighbours cannot delay them past a master-down
        /// interval (keepalived's vrrp_rt_priority); its children and the DNS threads keep
        /// normal scheduling. Default 0: normal scheduling (a busy real-time loop starves
        /// the kernel's own workers, which add the addresses).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=99))]
        rt_priority: u8,
    },
    /// Show the groups, their state, owner, priorities and last transitions.
    Status {
        /// Control socket of the daemon (default: /run/vipd/NODE.sock for the host name).
        #[arg(long)]
        control: Option<PathBuf>,
        /// Node name used to find the default control socket.
        #[arg(long)]
        node: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print Prometheus text format (for node_exporter's textfile collector).
        #[arg(long, conflicts_with = "json")]
        metrics: bool,
    },
    /// Read the cluster file again and apply it as a difference, as SIGHUP does; prints
    /// what changed, or why the file was refused (then the running configuration stays).
    Reload(Target),
    /// Planned move of a group from this node (its owner) to another, make-before-break.
    Handover {
        /// The group to move.
        group: String,
        /// The node to take it (default: the next live member in line).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Hand over every group this node owns, then take none until undrained (survives
    /// restarts).
    Drain(Target),
    /// Take part in the elections again after a drain.
    Undrain(Target),
    /// Remove a group's names from the site's DNS ([dns.update]), e.g. when it is retired.
    DnsUnregister {
        #[arg(long, short)]
        config: PathBuf,
        /// The group whose names to remove.
        #[arg(long)]
        group: String,
    },
    /// Run a witness: a voter on a third machine that owns no group and no address (see
    /// `[[witness]]` and `[quorum]` in the cluster file).
    Witness {
        /// The cluster file, the same as on the nodes.
        #[arg(long, short)]
        config: PathBuf,
        /// This witness's name in the file.
        #[arg(long)]
        name: String,
    },
    /// Remove this node's virtual addresses from its interface once the daemon is gone
    /// (systemd's ExecStopPost, or by hand after a crash); its own address stays.
    Cleanup {
        /// The cluster file, the same on every node.
        #[arg(long, short)]
        config: PathBuf,
        /// This node's name in the file (default: the host name).
        #[arg(long)]
        node: Option<String>,
    },
    /// Convert the keepalived.conf of each node (one file per node) into one cluster file,
    /// and list (file:line) what could not be carried over.
    ImportKeepalived {
        /// keepalived.conf files, one per node (a .gz is read through gzip).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the cluster file here (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The cluster's name.
        #[arg(long, default_value = "imported")]
        name: String,
        /// The DNS zone every node will serve.
        #[arg(long, default_value = "cluster.example.")]
        zone: String,
        /// A node's own address, NODE=IP (NODE: its name or its file), when its file has no
        /// unicast_src_ip (repeatable).
        #[arg(long = "address", value_name = "NODE=IP", value_parser = node_address)]
        addresses: Vec<(String, std::net::IpAddr)>,
    },
    /// Build a three-node cluster in network namespaces on this machine, fail its owner over,
    /// and show what a client saw (root).
    Lab(crate::lab::demo::DemoOptions),
    /// Lab helper: answer UDP probes with this node's name (runs inside a lab namespace).
    #[command(hide = true)]
    LabResponder {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = crate::lab::probe::PORT)]
        port: u16,
    },
    /// Lab helper: probe an address every interval and print who answered when.
    #[command(hide = true)]
    LabProbe(crate::lab::probe::ProbeOptions),
    /// Lab helper: the seed's "master server", appending client records to a file on the
    /// shared disk (and, with --background / --stop, its start and stop commands).
    #[command(hide = true)]
    LabService(crate::lab::seed::ServiceOptions),
    /// Lab helper: resolve the virtual name, write numbered records, reconnect after failures.
    #[command(hide = true)]
    LabClient(crate::lab::seed::ClientOptions),
}

/// Which running daemon a command talks to.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The node whose daemon to ask (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Its control socket (default: /run/vipd/NODE.sock).
    #[arg(long)]
    pub control: Option<PathBuf>,
}

fn node_address(text: &str) -> Result<(String, std::net::IpAddr), String> {
    let (node, address) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NODE=IP"))?;
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IP address"))?;
    Ok((node.to_string(), address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
