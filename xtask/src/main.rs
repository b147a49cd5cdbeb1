//! `cargo xtask`: the front door for building, running and testing vrrp-agent.

mod bench;
mod demo;
mod install;
mod toolchain;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, run and test vrrp-agent (installs the eBPF toolchain when missing)")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object and the agent, then run the agent with ARGS;
    /// without ARGS, run the seed scenario as a live demo in namespaces.
    Run {
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
        /// Arguments for vrrp-agent (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests and the network-namespace tests (needs root).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Only make sure the eBPF toolchain is installed.
    Bootstrap,
    /// Build in release mode and install the binary (PREFIX/sbin) and its
    /// systemd unit (PREFIX/lib/systemd/system), nothing else.
    Install {
        /// Installation prefix.
        #[arg(long, value_name = "DIR", default_value = "/usr/local")]
        prefix: PathBuf,
    },
    /// Build in release mode and make a Debian package of the binary and
    /// the unit: target/debian/vrrp-agent_VERSION_ARCH.deb.
    Package,
    /// Benchmark vrrp-agent against keepalived in the same run (needs root).
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let workspace = workspace_root();
    toolchain::ensure(&workspace)?;
    match cli.command {
        Task::Bootstrap => Ok(()),
        Task::Run { release, args } => run_agent(&workspace, release, &args),
        Task::Test { args } => test(&workspace, &args),
        Task::Install { prefix } => install::install(&build_agent(&workspace, true)?, &prefix),
        Task::Package => {
            let deb = install::build_deb(
                &build_agent(&workspace, true)?,
                &workspace.join("target").join("debian"),
            )?;
            println!("built {}", deb.display());
            Ok(())
        }
        Task::Bench { args } => bench::run(&workspace, &args),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn build_agent(workspace: &Path, release: bool) -> Result<PathBuf> {
    let started = Instant::now();
    let mut build = Command::new("cargo");
    build
        .current_dir(workspace)
        .args(["build", "--package", "vrrp-agent"]);
    if release {
        build.arg("--release");
    }
    toolchain::run(&mut build).context("building vrrp-agent and its eBPF object")?;
    eprintln!(
        "xtask: build vrrp-agent: done ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let profile = if release { "release" } else { "debug" };
    Ok(workspace.join("target").join(profile).join("vrrp-agent"))
}

fn run_agent(workspace: &Path, release: bool, args: &[String]) -> Result<()> {
    let binary = build_agent(workspace, release)?;
    if args.is_empty() {
        return demo::run(&binary);
    }
    let status = Command::new(&binary)
        .args(args)
        .status()
        .with_context(|| format!("could not start {}", binary.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn test(workspace: &Path, args: &[String]) -> Result<()> {
    let binary = build_agent(workspace, false)?;
    let started = Instant::now();
    let mut cargo_test = Command::new("cargo");
    cargo_test
        .current_dir(workspace)
        .args(["test", "--workspace", "--exclude", "agent-ebpf"])
        .args(args)
        .env("VRRP_AGENT_BIN", &binary);
    let result = toolchain::run(&mut cargo_test);
    eprintln!(
        "xtask: tests: {} ({:.1} s)",
        if result.is_ok() { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    result
}
