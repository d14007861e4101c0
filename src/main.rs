use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vipd::config::Config;

/// vipd: a virtual IP address and a virtual name that follow the active node of a cluster.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a cluster file and print what a node will do; touches no network.
    Check {
        /// The cluster file.
        file: PathBuf,
        /// The node to report on (default: the host name if it is a node, else every node).
        #[arg(long)]
        node: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file, node } => check(&file, node.as_deref()),
    }
}

fn check(file: &std::path::Path, node: Option<&str>) -> ExitCode {
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
