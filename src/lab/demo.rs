//! `vipd lab`: a three-node cluster in network namespaces on this machine, a failover to
//! watch, and the outage a client measured. Cleans up after itself.

use super::Lab;
use super::probe::{self, Answer};
use super::query;
use hickory_proto::rr::RecordType;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// The built-in cluster file of the demo: three nodes, one group with an IPv4 and an IPv6
/// virtual address and a virtual name.
pub fn demo_cluster() -> String {
    super::cluster_file(
        3,
        "[[group]]\nname = \"master-server\"\nvrid = 51\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\n\
         names = [\"nbu-master\"]\npriority = { alpha = 200, beta = 150, gamma = 100 }\nadvert_interval = \"100ms\"\n",
    )
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Use this cluster file instead of the built-in one (interfaces must be eth0).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub fn main(options: DemoOptions) -> ExitCode {
    if !super::is_root() {
        eprintln!(
            "vipd lab builds network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run it as root."
        );
        return ExitCode::FAILURE;
    }
    let cluster = match &options.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => demo_cluster(),
    };
    match run(&cluster) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_timeline(kill_us: u64, lab: &Lab, answers: &[Answer], new_owner: usize) {
    let mut lines: Vec<(u64, String)> = Vec::new();
    if let Some(h) = probe::handover(answers, kill_us) {
        lines.push((
            h.last_old_us,
            format!("client: last answer from {}", h.from),
        ));
        lines.push((
            h.first_new_us,
            format!("client: first answer from {}", h.to),
        ));
    }
    if let Ok(status) = lab.status(new_owner) {
        for group in &status.groups {
            for t in &group.transitions {
                if t.unix_us + 100_000 >= kill_us {
                    lines.push((
                        t.unix_us,
                        format!(
                            "{}: {} {} {} -> {} ({})",
                            status.node, group.name, t.family, t.from, t.to, t.reason
                        ),
                    ));
                }
            }
        }
    }
    lines.sort();
    for (at, line) in lines {
        println!(
            "  {:>+9.1} ms  {line}",
            (at as f64 - kill_us as f64) / 1000.0
        );
    }
}

/// What happens to the owner while the client probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The host dies: vipd is killed and the node drops off the LAN at the same instant.
    Crash,
    /// SIGTERM: vipd says priority 0 and releases the addresses.
    Stop,
    /// The crashed node comes back (link up, vipd started) and takes its group back.
    Return,
}

/// Applies `fault` to `node` while the client probes; returns the node answering after.
fn watch(lab: &mut Lab, node: usize, target: IpAddr, fault: Fault) -> std::io::Result<usize> {
    let name = lab.nodes[node].name.clone();
    let probe = lab.start_probe(target, Duration::from_millis(1500))?;
    std::thread::sleep(Duration::from_millis(500));
    let at = unix_us();
    match fault {
        Fault::Crash => {
            println!("\n== {name} crashes: SIGKILL to its vipd and its port on the bridge down");
            lab.crash(node)?;
        }
        Fault::Stop => {
            println!("\n== SIGTERM to {name}: a graceful stop");
            lab.stop(node)?;
        }
        Fault::Return => {
            println!("\n== {name} returns: port up and vipd started (preempt is on)");
            lab.revive(node)?;
            lab.start(node)?;
        }
    }
    let answers = lab.finish_probe(probe)?;
    let handover = probe::handover(&answers, at)
        .ok_or_else(|| std::io::Error::other("the client saw no change of owner"))?;
    let new_owner = lab.node(&handover.to);
    println!("  time relative to the event:");
    print_timeline(at, lab, &answers, new_owner);
    println!(
        "  => the client was answered by {} instead of {} after an outage of {:.1} ms",
        handover.to,
        handover.from,
        handover.outage().as_secs_f64() * 1000.0
    );
    Ok(new_owner)
}

/// What the client hears when it asks the virtual address about the virtual name right now:
/// vipd's own DNS client, run inside the client's namespace (nothing to install, no dig).
fn show_dns(lab: &Lab, address: IpAddr, name: Option<&String>) {
    let Some(name) = name else { return };
    if !lab.config.dns.enabled {
        return;
    }
    let server = SocketAddr::new(address, lab.config.dns.port);
    for record_type in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
        let line = match Lab::in_namespace(&lab.client, || query::ask(server, name, record_type)) {
            Ok(Ok(answers)) if answers.is_empty() => "(no record)".to_string(),
            Ok(Ok(answers)) => answers.join(" "),
            Ok(Err(why)) => format!("({why})"),
            Err(e) => format!("(cannot enter the client's namespace: {e})"),
        };
        println!("  client: ask {address}: {name} {record_type} -> {line}");
    }
}

fn show_owner(lab: &Lab, address: IpAddr) -> std::io::Result<()> {
    for (i, node) in lab.nodes.iter().enumerate() {
        let holds = lab.addresses(i)?.contains(&address);
        let state = lab
            .status(i)
            .ok()
            .and_then(|s| {
                s.groups
                    .first()
                    .and_then(|g| g.instances.first().map(|i| i.state.clone()))
            })
            .unwrap_or_else(|| "stopped".to_string());
        println!(
            "  {:<6} {:<8} {}",
            node.name,
            state,
            if holds {
                format!("holds {address}")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn run(cluster: &str) -> std::io::Result<()> {
    let binary = std::env::current_exe()?;
    println!(
        "== building the lab: a bridge, a namespace per node and a client, all private to this run"
    );
    let mut lab = Lab::new("lab", cluster, &binary)?;
    let group = lab
        .config
        .groups
        .first()
        .cloned()
        .ok_or_else(|| std::io::Error::other("the cluster file has no group"))?;
    let target = group.addresses[0].address;
    for node in 0..lab.nodes.len() {
        lab.start_responder(node)?;
        lab.start(node)?;
    }
    for node in 0..lab.nodes.len() {
        lab.wait_ready(node, Duration::from_secs(5))?;
    }
    let preferred = group
        .priorities
        .iter()
        .max_by_key(|(_, p)| *p)
        .map(|(n, _)| lab.config.nodes[*n].name.clone())
        .unwrap_or_default();
    let took = lab.wait_for_holder(target, &preferred, Duration::from_secs(5))?;
    println!(
        "== {preferred} was elected owner of {} in {:.0} ms:",
        group.name,
        took.as_secs_f64() * 1000.0
    );
    show_owner(&lab, target)?;
    let name = group.names.first();
    show_dns(&lab, target, name);

    let owner = lab.node(&preferred);
    let next = watch(&mut lab, owner, target, Fault::Crash)?;
    show_owner(&lab, target)?;
    show_dns(&lab, target, name);
    watch(&mut lab, owner, target, Fault::Return)?;
    show_owner(&lab, target)?;
    show_dns(&lab, target, name);
    let last = watch(&mut lab, owner, target, Fault::Stop)?;
    show_owner(&lab, target)?;
    show_dns(&lab, target, name);
    let _ = next;
    println!("\n== status of {}:", lab.nodes[last].name);
    if let Ok(status) = lab.status(last) {
        print!("{}", status.table());
    }
    println!("\n== cleaning up the namespaces");
    Ok(())
}
