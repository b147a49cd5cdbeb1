//! `vrrp-agent`: command-line entry point.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
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
    /// This node's config id, as keepalived's `-i`: configuration lines
    /// starting `@ID` are used only when ID matches it, `@^ID` only when it
    /// does not (default: the host name up to its first dot).
    #[arg(short = 'i', long, value_name = "ID")]
    config_id: Option<String>,
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
    /// bpffs directory where the daemon pins its maps and program links, so
    /// they outlive it (default: /sys/fs/bpf/vrrp-agent, or a
    /// `netns-<inode>` directory below it in another network namespace).
    #[arg(long, value_name = "DIR", global = true)]
    pin_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Log lines as human-readable text, or as one JSON object per line
    /// (for journald, Loki and the like).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Test only (hidden): the size in bytes of the ring through which
    /// the kernel reports peer changes (default 64 KiB). The namespace tests
    /// shrink it to one page so that a burst of changes overflows it.
    #[arg(long, value_name = "BYTES", hide = true, value_parser = ring_bytes)]
    test_event_ring_bytes: Option<u32>,
    /// Listen to the kernel's process events (`track_process`) from the
    /// network namespace at PATH (e.g. /proc/1/ns/net). The kernel accepts
    /// them only in the initial namespace; a daemon that runs there (the
    /// normal case) needs nothing.
    #[arg(long, value_name = "PATH")]
    process_events_netns: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// A ring-buffer size the kernel accepts: a power of two, at least a page.
fn ring_bytes(text: &str) -> Result<u32, String> {
    let bytes: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count"))?;
    // SAFETY: sysconf has no preconditions.
    let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if bytes < page || !bytes.is_power_of_two() {
        return Err(format!(
            "{bytes} is not a ring size: expected a power of two of at least {page} (the page size)"
        ));
    }
    Ok(bytes)
}

#[derive(Subcommand)]
enum Command {
    /// Show the running daemon's instances (state, priorities, master, tracking).
    Status {
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running daemon and wait until it has exited. By default it
    /// hands over like SIGTERM (priority 0, addresses released, notify_stop,
    /// programs removed once a backup took over).
    Stop {
        /// A planned restart (upgrade): exit at once, keeping addresses,
        /// guard and the pinned datapath; a daemon started within
        /// Master_Down_Interval resumes as master and no backup takes over.
        #[arg(long)]
        keep_datapath: bool,
        /// How long to wait for the daemon to exit, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Remove a pinned datapath (maps and program links) that no daemon
    /// will adopt, e.g. after a crash when the agent is not coming back.
    /// Refused while a daemon answers on the control socket.
    Cleanup {
        /// Only this interface's program links (the programs detach).
        #[arg(short, long)]
        interface: Option<String>,
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

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        // Colour codes only for a terminal: log files and pipes stay plain.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line, the event's fields at the top level next to
        // `timestamp`, `level`, `target` and `message` (README, "Logs").
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

fn main() -> ExitCode {
    // Before any thread exists: every thread then shares the one arena.
    vrrp_agent::limit_allocator_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Read before any thread exists: removing the variables is only sound
    // then, and scripts the daemon starts must not think the watchdog is
    // theirs. (NOTIFY_SOCKET stays: the crate reads it on every send; the
    // unit's NotifyAccess=main makes systemd ignore anything a script sends.)
    // SAFETY: single-threaded here; the tokio runtime starts in `run`.
    let watchdog = unsafe { sd_notify::watchdog_enabled_and_unset_env() };
    let config_id = cli
        .config_id
        .clone()
        .unwrap_or_else(vrrp_agent::default_config_id);
    if cli.config_test {
        return vrrp_agent::config_test(&cli.config, &config_id);
    }
    if cli.dump_config {
        return vrrp_agent::dump_config(&cli.config, &config_id);
    }
    match run(cli, config_id, watchdog) {
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

fn run(cli: Cli, config_id: String, watchdog: Option<Duration>) -> anyhow::Result<()> {
    if cli.command.is_some() && cli.metrics_listen.is_some() {
        anyhow::bail!(
            "--metrics-listen serves the daemon's metrics; `status` and `monitor` take no such option"
        );
    }
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
        Some(Command::Stop {
            keep_datapath,
            timeout,
        }) => {
            let pid = runtime
                .block_on(vrrp_agent::request_stop(&cli.control_socket, keep_datapath))
                .context("stop")?;
            wait_for_exit(pid, Duration::from_secs(timeout))
        }
        Some(Command::Cleanup { interface }) => {
            if let Ok(report) = runtime.block_on(vrrp_agent::query_status(&cli.control_socket)) {
                anyhow::bail!(
                    "a daemon (pid {}) answers on {}: stop it first (`vrrp-agent stop`), it removes its own pins",
                    report.pid,
                    cli.control_socket.display()
                );
            }
            let (root, removed) =
                vrrp_agent::cleanup_pins(cli.pin_dir, interface.as_deref()).context("cleanup")?;
            for pin in &removed {
                println!("removed {}", pin.display());
            }
            println!("{} pins removed under {}", removed.len(), root.display());
            Ok(())
        }
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
                config_id,
                control_socket: cli.control_socket,
                pass_adverts: cli.pass_adverts,
                pin_dir: cli.pin_dir,
                metrics_listen: cli.metrics_listen,
                watchdog,
                event_ring_bytes: cli.test_event_ring_bytes,
                process_events_netns: cli.process_events_netns,
            }))
            .map_err(anyhow::Error::from),
    }
}

/// `stop` returns once the daemon is gone, so a service manager or an
/// upgrade script can start the next one right after.
fn wait_for_exit(pid: u32, timeout: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    while running() {
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("the daemon (pid {pid}) is still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
