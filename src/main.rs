use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vipd::cli::{Cli, Command};
use vipd::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file, node } => check(&file, node.as_deref()),
        Command::Run {
            config,
            node,
            control,
        } => run(config, node, control),
        Command::Status {
            control,
            node,
            json,
            metrics,
        } => status(control, node, json, metrics),
        Command::Lab(options) => vipd::lab::demo::main(options),
        Command::DnsUnregister { config, group } => dns_unregister(&config, &group),
        Command::Cleanup { config, node } => cleanup(&config, node),
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

fn run(config: PathBuf, node: Option<String>, control: Option<PathBuf>) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    let Some(node) = node.or_else(hostname) else {
        eprintln!("error: no --node given and the host name is unknown");
        return ExitCode::FAILURE;
    };
    let control = control.unwrap_or_else(|| default_control(&node));
    let options = vipd::daemon::Options {
        config,
        node,
        control,
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
    let zone = hickory_proto::rr::Name::from_ascii(&update.zone).expect("validated zone");
    let result = runtime().block_on(async {
        for fqdn in &group.names {
            let Some(name) = vipd::dns::update::site_name(fqdn, &config.cluster.zone, &update.zone)
            else {
                continue;
            };
            let owner = hickory_proto::rr::Name::from_ascii(&name).map_err(|e| e.to_string())?;
            let message = vipd::dns::update::build(&zone, &owner, &[], 0);
            vipd::dns::update::send(update.server, &key, message)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            println!("removed {name} from {}", update.server);
        }
        Ok::<(), String>(())
    });
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
