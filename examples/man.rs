//! Writes vipd's man pages (vipd.1 and one page per subcommand) from the command line's
//! definition (`vipd::cli::Cli`): `cargo run --example man -- DIR`. The Debian package
//! (cargo-deb, `[package.metadata.deb]`) ships them from target/man; a dev-dependency, so
//! the daemon itself does not carry the generator.

use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target/man".into());
    std::fs::create_dir_all(&dir)?;
    clap_mangen::generate_to(vipd::cli::Cli::command(), &dir)?;
    let mut pages: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    pages.sort();
    println!("{}: {}", dir.display(), pages.join(" "));
    Ok(())
}
