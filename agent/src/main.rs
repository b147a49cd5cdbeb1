//! `vrrp-agent`: command-line entry point.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vrrp_agent::{DaemonOptions, MonitorOptions};

#[derive(Parser)]
#[command(
    name = "vrrp-agent",
    version,
    about = "keepalived-compatible VRRP agent with an XDP datapath"
)]
struct Cli {
    /// keepalived configuration file.
    #[arg(
        short = 'f',
        long = "use-file",
        value_name = "FILE",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    config: PathBuf,
    /// Check the configuration file and exit (0 when valid), like `keepalived -t`.
    #[arg(short = 't', long)]
    config_test: bool,
    /// Print the effective configuration (with defaults) as JSON and exit.
    #[arg(long)]
    dump_config: bool,
    /// Control socket of the daemon (`vrrp-agent status` reads it).
    #[arg(long, value_name = "PATH", default_value = vrrp_agent::DEFAULT_CONTROL_SOCKET, global = true)]
    control_socket: PathBuf,
    /// Let valid adverts continue to the network stack after XDP recorded
    /// them, so tcpdump on the VRRP interface shows them (costs CPU at high
    /// advert rates).
    #[arg(long)]
    pass_adverts: bool,
    /// Keep the daemon's threads in normal scheduling. By default they run
    /// SCHED_RR (priority 10) so a CPU-starved master still sends its adverts
    /// on time; scripts and notify hooks always run with normal scheduling.
    #[arg(long)]
    no_realtime: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the running daemon's instances (state, priorities, master, tracking).
    Status {
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Watch the virtual routers on a link, live (observe-only: drops nothing).
    Monitor {
        /// Interface to watch.
        #[arg(short, long)]
        interface: String,
        /// Only show this virtual router ID.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
        vrid: Option<u8>,
        /// One JSON object per line instead of a refreshing table.
        #[arg(long)]
        json: bool,
        /// Refresh period in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
        refresh_ms: u64,
    },
}

fn main() -> ExitCode {
    // Before any thread exists: every thread then shares the one arena.
    vrrp_agent::limit_allocator_arenas();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log files and pipes stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if cli.config_test {
        return vrrp_agent::config_test(&cli.config);
    }
    if cli.dump_config {
        return vrrp_agent::dump_config(&cli.config);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vrrp-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Real-time scheduling is an improvement, not a requirement: a container
/// without CAP_SYS_NICE still runs the daemon, with a warning.
fn make_realtime() {
    if let Err(error) =
        vrrp_agent::make_current_thread_realtime(vrrp_agent::DEFAULT_REALTIME_PRIORITY)
    {
        tracing::warn!(%error, "could not switch to real-time scheduling; adverts may be late under CPU load");
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let realtime = cli.command.is_none() && !cli.no_realtime;
    if realtime {
        make_realtime();
    }
    // One thread runs everything: the election task owns all state anyway,
    // and every other task (netlink, rings, control socket, hooks) is IO
    // bound. Worker threads cost a stack and a cross-thread wake (futex and
    // eventfd) per timer. Blocking work (reading the configuration) goes to
    // the blocking pool, whose threads exit when idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            if realtime {
                make_realtime();
            }
        })
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Some(Command::Monitor {
            interface,
            vrid,
            json,
            refresh_ms,
        }) => runtime
            .block_on(vrrp_agent::run_monitor(MonitorOptions {
                interface,
                vrid,
                json,
                refresh: Duration::from_millis(refresh_ms),
            }))
            .context("monitor"),
        Some(Command::Status { json }) => {
            let report = runtime
                .block_on(vrrp_agent::query_status(&cli.control_socket))
                .context("status")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", vrrp_agent::render_status(&report));
            }
            Ok(())
        }
        None => runtime
            .block_on(vrrp_agent::run_daemon(DaemonOptions {
                config: cli.config,
                control_socket: cli.control_socket,
                pass_adverts: cli.pass_adverts,
            }))
            .map_err(anyhow::Error::from),
    }
}
