use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vipd::cli::{Cli, Command, Target};
use vipd::config::Config;
use vipd::daemon::control;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file, node } => check(&file, node.as_deref()),
        Command::Run {
            config,
            node,
            control,
            state_dir,
            control_group,
            rt_priority,
        } => run(config, node, control, state_dir, control_group, rt_priority),
        Command::Reload(target) => ask(&target, control::Command::Reload),
        Command::Handover { group, to, target } => {
            ask(&target, control::Command::Handover { group, to })
        }
        Command::Drain(target) => ask(&target, control::Command::Drain),
        Command::Undrain(target) => ask(&target, control::Command::Undrain),
        Command::Status {
            control,
            node,
            json,
            metrics,
        } => status(control, node, json, metrics),
        Command::Lab(options) => vipd::lab::demo::main(options),
        Command::DnsUnregister { config, group } => dns_unregister(&config, &group),
        Command::Cleanup { config, node } => cleanup(&config, node),
        Command::Witness { config, name } => witness(&config, &name),
        Command::ImportKeepalived {
            files,
            out,
            name,
            zone,
            addresses,
        } => import_keepalived(
            &files,
            out.as_deref(),
            vipd::import::Options {
                cluster_name: name,
                zone,
                addresses,
            },
        ),
        Command::LabResponder { name, port } => report(vipd::lab::probe::respond(&name, port)),
        Command::LabProbe(options) => report(vipd::lab::probe::probe(&options)),
        Command::LabService(options) => report(vipd::lab::seed::service(&options)),
        Command::LabClient(options) => report(vipd::lab::seed::client(&options)),
    }
}

fn report(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_control(node: &str) -> PathBuf {
    PathBuf::from(format!("/run/vipd/{node}.sock"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sends one control command to a running daemon; prints its answer, and fails when the
/// daemon refused.
fn ask(target: &Target, command: control::Command) -> ExitCode {
    let Some(control) = target.control.clone().or_else(|| {
        target
            .node
            .clone()
            .or_else(hostname)
            .map(|n| default_control(&n))
    }) else {
        eprintln!("error: give --control or --node");
        return ExitCode::FAILURE;
    };
    let wait = std::time::Duration::from_secs(30);
    match runtime().block_on(control::request(&control, command, wait)) {
        Ok(response) if response.ok => {
            println!("{}", response.message.unwrap_or_else(|| "ok".into()));
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!("error: {}", response.error.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

fn witness(config: &Path, name: &str) -> ExitCode {
    init_log();
    match vipd::daemon::membership::run_witness(config, name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    config: PathBuf,
    node: Option<String>,
    control: Option<PathBuf>,
    state_dir: PathBuf,
    control_group: Option<String>,
    rt_priority: u8,
) -> ExitCode {
    init_log();
    let Some(node) = node.or_else(hostname) else {
        eprintln!("error: no --node given and the host name is unknown");
        return ExitCode::FAILURE;
    };
    let control = control.unwrap_or_else(|| default_control(&node));
    let control_group = match control_group
        .map(|name| nix::unistd::Group::from_name(&name).map(|g| (name, g)))
        .transpose()
    {
        Ok(None) => None,
        Ok(Some((_, Some(group)))) => Some(group.gid.as_raw()),
        Ok(Some((name, None))) => {
            eprintln!("error: --control-group {name}: no such group");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: --control-group: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = vipd::daemon::Options {
        config,
        node,
        control,
        state_dir,
        control_group,
        rt_priority,
    };
    match runtime().block_on(vipd::daemon::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn status(control: Option<PathBuf>, node: Option<String>, json: bool, metrics: bool) -> ExitCode {
    let Some(control) = control.or_else(|| node.or_else(hostname).map(|n| default_control(&n)))
    else {
        eprintln!("error: give --control or --node");
        return ExitCode::FAILURE;
    };
    match runtime().block_on(vipd::daemon::query_status(&control)) {
        Ok(status) => {
            if metrics {
                print!("{}", status.prometheus());
            } else if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{}", status.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dns_unregister(file: &Path, group_name: &str) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(e) => return fail(e.to_string()),
    };
    let Some(update) = config.dns.update.clone() else {
        return fail(format!("{}: no [dns.update] table", file.display()));
    };
    let Some(group) = config.groups.iter().find(|g| g.name == group_name) else {
        return fail(format!("{}: no group \"{group_name}\"", file.display()));
    };
    let key = match vipd::dns::update::read_key(&update.key_name, &update.key_file) {
        Ok(key) => key,
        Err(e) => return fail(e.to_string()),
    };
    let outcomes = runtime().block_on(vipd::dns::update::update_names(
        &update,
        &key,
        &config.cluster.zone,
        &group.names,
        &[],
    ));
    let mut result = Ok(());
    for (_, name, outcome) in outcomes {
        match outcome {
            Ok(()) => println!("removed {name} from {}", update.server),
            Err(e) => {
                result = Err(format!("{name}: {e}"));
                break;
            }
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn cleanup(file: &Path, node: Option<String>) -> ExitCode {
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let index = match find_node(&config, file, node) {
        Ok(index) => index,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = &config.nodes[index].name;
    let interface = &config.nodes[index].interface;
    match runtime().block_on(vipd::cleanup::remove_vmac_links(&config, index)) {
        Ok(links) => {
            for link in links {
                println!("{name}: deleted the virtual-MAC link {link} (and its addresses)");
            }
        }
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match runtime().block_on(vipd::cleanup::remove_virtual_addresses(&config, index)) {
        Ok(removed) if removed.is_empty() => {
            println!("{name}: no virtual address on {interface}");
            ExitCode::SUCCESS
        }
        Ok(removed) => {
            for address in removed {
                println!("{name}: removed {address} from {interface}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The index of `--node` (default: the host name) in the cluster file, or why not.
fn find_node(config: &Config, file: &Path, node: Option<String>) -> Result<usize, String> {
    let Some(name) = node.or_else(hostname) else {
        return Err("no --node given and the host name is unknown".to_string());
    };
    config.node_index(&name).ok_or_else(|| {
        let known: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "{}: node \"{name}\" is not in this file (nodes: {}); give --node",
            file.display(),
            known.join(", ")
        )
    })
}

fn import_keepalived(
    files: &[PathBuf],
    out: Option<&Path>,
    options: vipd::import::Options,
) -> ExitCode {
    let mut inputs = Vec::new();
    for file in files {
        let text = if file.extension().is_some_and(|e| e == "gz") {
            std::process::Command::new("gzip")
                .arg("-dc")
                .arg(file)
                .output()
                .map_err(|e| format!("gzip: {e}"))
                .and_then(|o| {
                    if o.status.success() {
                        String::from_utf8(o.stdout).map_err(|e| e.to_string())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                    }
                })
        } else {
            std::fs::read_to_string(file).map_err(|e| e.to_string())
        };
        match text {
            Ok(text) => inputs.push(vipd::import::Input {
                file: file.display().to_string(),
                text,
            }),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let print_notes = |notes: &[vipd::import::Note]| {
        if !notes.is_empty() {
            eprintln!("not carried over, or carried over differently:");
            for note in notes {
                eprintln!("  {note}");
            }
        }
    };
    match vipd::import::convert(&inputs, &options) {
        Ok(imported) => {
            print_notes(&imported.notes);
            match out {
                Some(path) => {
                    if let Err(e) = std::fs::write(path, &imported.toml) {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    let nodes: Vec<String> = imported
                        .nodes
                        .iter()
                        .map(|(n, f)| format!("{n} ({f})"))
                        .collect();
                    eprintln!("wrote {} with nodes {}", path.display(), nodes.join(", "));
                }
                None => print!("{}", imported.toml),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_notes(&e.notes);
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &Path, node: Option<&str>) -> ExitCode {
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let nodes: Vec<usize> = match node {
        Some(name) => match config.node_index(name) {
            Some(index) => vec![index],
            None => {
                let known: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
                eprintln!(
                    "error: {}: node \"{name}\" is not in this file (nodes: {})",
                    file.display(),
                    known.join(", ")
                );
                return ExitCode::FAILURE;
            }
        },
        None => match hostname().and_then(|h| config.node_index(&h)) {
            Some(index) => vec![index],
            None => (0..config.nodes.len()).collect(),
        },
    };
    print!("{}", vipd::check::report(&config, &nodes));
    ExitCode::SUCCESS
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().split('.').next()?.to_string())
}
