//! The failover daemon: runs the VRRP instances of a keepalived.conf on the
//! kernel datapath.
//!
//! Startup refuses clearly (not root, missing interface, invalid config);
//! SIGTERM/SIGINT hand over gracefully; SIGHUP reloads, keeping the state of
//! instances whose identity is unchanged.

pub mod adverts;
pub mod announce;
mod core;
mod deadline;
pub mod hooks;
mod lifecycle;
pub mod netops;
mod peer_batch;
pub mod plan;
pub mod runtime;
mod sd_notify;
mod setup;

use std::{collections::HashSet, net::SocketAddr, path::PathBuf, time::Duration};

use thiserror::Error;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};

use crate::{
    config,
    control::{ControlError, ControlRequest, ControlServer},
    datapath::{Datapath, DatapathError, PinDir},
    metrics::{MetricsError, MetricsServer, SnapshotRequest},
    netlink::{AddressWatcher, LinkWatcher, NetlinkError, WatchSet},
    tracking::ScriptStatus,
};

use self::{
    deadline::DeadlineTimer,
    netops::NetCommand,
    plan::TrackedSource,
    runtime::{HookEnv, Runtime},
    sd_notify::{Notifier, state_summary},
    setup::Prepared,
};

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub config: PathBuf,
    /// keepalived's config id (`-i`) the configuration is read as.
    pub config_id: String,
    pub control_socket: PathBuf,
    /// Let valid adverts continue to the stack after XDP recorded them.
    pub pass_adverts: bool,
    /// Where the datapath is pinned; `None`: the default for this network
    /// namespace ([`PinDir::for_this_namespace`]).
    pub pin_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (off when `None`).
    pub metrics_listen: Option<SocketAddr>,
    /// systemd's watchdog interval (`WATCHDOG_USEC`), read before the
    /// runtime's threads started.
    pub watchdog: Option<Duration>,
    /// Test only: the size of the peer event ring (`None`: the object's).
    pub event_ring_bytes: Option<u32>,
    /// `--process-events-netns`: the network namespace the process monitor
    /// listens from (`None`: the daemon's own).
    pub process_events_netns: Option<PathBuf>,
}

/// How the daemon leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// SIGTERM, SIGINT, `vrrp-agent stop`: priority 0, addresses released,
    /// notify_stop, and the datapath removed once a successor took over.
    HandOver,
    /// `vrrp-agent stop --keep-datapath`: a planned restart. Nothing is
    /// released: addresses, guard and pinned datapath stay, and a daemon
    /// started within Master_Down_Interval resumes as master.
    KeepDatapath,
}

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(
        "must run as root (needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_NET_RAW); try sudo"
    )]
    NotRoot,
    #[error(
        "{path}: configuration is invalid: {errors} (`vrrp-agent -t -f {path}` lists every problem)"
    )]
    Config { path: PathBuf, errors: String },
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{0}")]
    Setup(String),
}

/// Events other tasks send to the owner of the elections.
#[derive(Debug)]
pub(crate) enum Event {
    Tracked(TrackedSource, bool),
}

pub async fn run(options: DaemonOptions) -> Result<(), DaemonError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(DaemonError::NotRoot);
    }
    let handle = crate::netlink::connect()?;
    let hostname = setup::hostname();
    let Prepared { config, plan } = setup::prepare(
        options.config.clone(),
        options.config_id.clone(),
        handle.clone(),
        hostname.clone(),
    )
    .await?;

    let control = ControlServer::bind(&options.control_socket).await?;
    // Bound before the datapath loads, so a taken port refuses the start
    // cleanly instead of after the programs were attached.
    let metrics = match options.metrics_listen {
        Some(address) => Some(MetricsServer::bind(address).await?),
        None => None,
    };
    // Started before the datapath loads: a failure here leaves nothing
    // attached.
    let (net_tx, net_rx) = mpsc::unbounded_channel();
    let net_task = netops::spawn(net_rx)?;
    let pins = options
        .pin_dir
        .clone()
        .map_or_else(PinDir::for_this_namespace, PinDir::new);
    let (datapath, mut peer_events, kernel_log) =
        Datapath::load_pinned(pins, options.event_ring_bytes)?;
    tokio::spawn(async move {
        if let Err(error) = kernel_log.forward().await {
            warn!(%error, "kernel log forwarding stopped");
        }
    });
    let (event_tx, mut event_rx) = mpsc::channel::<Event>(256);
    let env = HookEnv::new(config.global_defs.clone(), hostname.clone());
    let mut runtime = Runtime::new(datapath, net_tx.clone(), event_tx, env);
    runtime.set_process_events_netns(options.process_events_netns.clone());
    setup::attach(
        &mut runtime,
        &plan,
        &handle,
        options.pass_adverts,
        &Default::default(),
    )
    .await?;
    // Subscribed before the links are read: no address change falls between.
    let mut addresses = AddressWatcher::start()?;
    let mut links = LinkWatcher::start(watched_links(&plan)).await?;
    runtime.start(&plan);
    runtime.flush();
    let (mut lifecycle, mut refreshed_rx) = lifecycle::Lifecycle::new(
        config,
        hostname.clone(),
        handle.clone(),
        options.pass_adverts,
    );

    let (control_tx, mut control_rx) = mpsc::channel(16);
    tokio::spawn(control.serve(control_tx));
    let (metrics_tx, mut metrics_rx) = mpsc::channel::<SnapshotRequest>(16);
    match (metrics, options.metrics_listen) {
        (Some(metrics), Some(address)) => {
            tokio::spawn(metrics.serve(metrics_tx));
            info!(%address, "serving Prometheus metrics on /metrics");
        }
        // Nobody will ask: the loop's metrics arm stays idle.
        _ => drop(metrics_tx),
    }
    let mut terminate = signal(SignalKind::terminate()).map_err(setup_error("SIGTERM handler"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(setup_error("SIGINT handler"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(setup_error("SIGHUP handler"))?;
    info!(
        instances = plan.instances().count(),
        router_id = %plan.router_id,
        "vrrp-agent running"
    );
    // Loading the datapath and planning peak far above what stays.
    crate::memory::release_free_memory();
    // Datapath attached and every instance started: ready for systemd.
    let notifier = Notifier::new(options.watchdog);
    let mut announced_changes = runtime.state_changes();
    // Shown in `systemctl status` until a reload succeeds.
    let mut last_reload_rejected = false;
    notifier.ready(&status_line(&runtime, last_reload_rejected));
    // WATCHDOG=1 goes out from this loop, so a loop that stops turning
    // (a blocked call, a deadlock) stops the pings and systemd restarts us.
    let mut watchdog = notifier.watchdog_period().map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    // A reload is read and planned off this task; its result comes back here.
    let (prepared_tx, mut prepared_rx) = mpsc::channel::<Result<Prepared, DaemonError>>(1);
    let mut reload = ReloadState::Idle;
    let start_prepare = || {
        let prepared_tx = prepared_tx.clone();
        let path = options.config.clone();
        let config_id = options.config_id.clone();
        let handle = handle.clone();
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let _ = prepared_tx
                .send(setup::prepare(path, config_id, handle, hostname).await)
                .await;
        });
    };
    let mut timer = DeadlineTimer::new().map_err(setup_error("election timer (timerfd)"))?;
    let exit = loop {
        if let Err(error) = timer.arm(runtime.next_deadline()) {
            // Not expected (a valid fd and time); the loop still turns on
            // every other input, and the next turn arms again.
            warn!(%error, "arming the election timer failed");
        }
        tokio::select! {
            event = peer_events.next() => match event {
                Ok(event) => {
                    runtime.on_peer_event(&event.key, &event.state);
                    if peer_events.is_drained() {
                        runtime.on_events_drained();
                    }
                }
                Err(error) => warn!(%error, "reading the peer event ring failed"),
            },
            expired = timer.expired() => match expired {
                Ok(()) => runtime.on_timers(),
                Err(error) => warn!(%error, "reading the election timer failed"),
            },
            Some(link) = links.next() => lifecycle.on_link(&mut runtime, &link),
            Some(change) = addresses.next() => lifecycle.on_address(&runtime, change),
            Some(refreshed) = refreshed_rx.recv() => lifecycle.on_refreshed(&mut runtime, refreshed).await,
            Some(event) = event_rx.recv() => match event {
                Event::Tracked(source, up) => runtime.on_tracked(&source, up),
            },
            Some(request) = control_rx.recv() => match request {
                ControlRequest::Status(reply) => { let _ = reply.send(runtime.status()); }
                ControlRequest::Stop { keep_datapath, reply } => {
                    let _ = reply.send(std::process::id());
                    break if keep_datapath { Exit::KeepDatapath } else { Exit::HandOver };
                }
            },
            Some(reply) = metrics_rx.recv() => { let _ = reply.send(runtime.metrics()); }
            _ = watchdog_tick(&mut watchdog) => notifier.watchdog(),
            _ = hangup.recv() => match reload {
                ReloadState::Idle => {
                    info!("reload requested: reading the configuration");
                    notifier.reloading();
                    start_prepare();
                    reload = ReloadState::Preparing;
                }
                // Whatever the file says by the time this one is done.
                ReloadState::Preparing | ReloadState::PreparingThenAgain => {
                    reload = ReloadState::PreparingThenAgain;
                }
            },
            Some(prepared) = prepared_rx.recv() => {
                let outcome = match prepared {
                    Ok(prepared) => commit_reload(&mut runtime, prepared, &handle, options.pass_adverts).await,
                    Err(error) => Err(error),
                };
                last_reload_rejected = match outcome {
                    Ok((watcher, config)) => {
                        links = watcher;
                        lifecycle.reloaded(&mut runtime, config);
                        false
                    }
                    Err(error) => {
                        error!(%error, "reload rejected; the running configuration stays");
                        true
                    }
                };
                // The old plan and the parsed file are gone by now.
                crate::memory::release_free_memory();
                reload = if reload == ReloadState::PreparingThenAgain {
                    start_prepare();
                    ReloadState::Preparing
                } else {
                    // Accepted or rejected, the daemon runs a configuration
                    // again: systemd's `reload` job ends here.
                    notifier.ready(&status_line(&runtime, last_reload_rejected));
                    announced_changes = runtime.state_changes();
                    ReloadState::Idle
                };
            }
            _ = terminate.recv() => break Exit::HandOver,
            _ = interrupt.recv() => break Exit::HandOver,
        }
        runtime.flush();
        if runtime.state_changes() != announced_changes {
            announced_changes = runtime.state_changes();
            notifier.status(&status_line(&runtime, last_reload_rejected));
        }
    };

    notifier.stopping();
    if exit == Exit::KeepDatapath {
        info!(
            "stopping without handing over: addresses, guard and pinned datapath stay for the next daemon"
        );
        runtime.stop_trackers();
        runtime.close_notify_queues(Duration::from_secs(10)).await;
        // The pinned links keep the programs attached and the maps alive.
        drop(runtime);
        drop(net_tx);
        net_task.finish(Duration::from_secs(1)).await;
        info!("vrrp-agent stopped; the datapath stays pinned");
        return Ok(());
    }
    info!("shutting down: releasing mastership and virtual addresses");
    let successors = runtime.shutdown_all();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let _ = net_tx.send(NetCommand::ReleaseAll(done_tx));
    let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
    runtime.stop_trackers();
    // notify_stop and anything still queued get a bounded time to run.
    runtime.close_notify_queues(Duration::from_secs(10)).await;
    runtime.wait_for_successors(successors).await;
    runtime.release_vmac_filters();
    runtime.datapath.release();
    runtime.close_mailer(Duration::from_secs(5)).await;
    // Dropping the runtime closes its handle on the netlink task, which
    // then ends once the last queued request is done.
    drop(runtime);
    drop(net_tx);
    net_task.finish(Duration::from_secs(1)).await;
    info!("vrrp-agent stopped");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReloadState {
    Idle,
    Preparing,
    /// Another SIGHUP came while preparing: read the file once more after.
    PreparingThenAgain,
}

/// The transaction's IO steps, then the commit. Attachments, sockets and
/// the link watcher come first because they can fail; if one does, what
/// was added is taken back and nothing else has changed.
async fn commit_reload(
    runtime: &mut Runtime,
    prepared: Prepared,
    handle: &crate::netlink::Handle,
    pass_adverts: bool,
) -> Result<(LinkWatcher, config::Config), DaemonError> {
    let Prepared { config, plan } = prepared;
    let attached = setup::attach(runtime, &plan, handle, pass_adverts, &Default::default()).await?;
    let watcher = match LinkWatcher::start(watched_links(&plan)).await {
        Ok(watcher) => watcher,
        Err(error) => {
            attached.roll_back(runtime);
            return Err(error.into());
        }
    };
    runtime.reload(&plan, config.global_defs.clone());
    info!(
        instances = plan.instances().count(),
        "configuration reloaded"
    );
    Ok((watcher, config))
}

/// Every planning problem on one line, as an operator reads a refusal.
fn plan_error(errors: Vec<plan::PlanError>) -> DaemonError {
    DaemonError::Plan(
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn setup_error(what: &'static str) -> impl Fn(std::io::Error) -> DaemonError {
    move |error| DaemonError::Setup(format!("installing the {what} failed: {error}"))
}

/// systemd's STATUS= line: the instance states, and whether the last
/// reload was refused (the daemon then runs the previous configuration).
fn status_line(runtime: &Runtime, last_reload_rejected: bool) -> String {
    let states = state_summary(runtime.states());
    if last_reload_rejected {
        format!("{states}; last reload rejected, running the previous configuration (see the log)")
    } else {
        states
    }
}

/// The next watchdog tick, or never when systemd set no watchdog.
async fn watchdog_tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The links to watch: every VRRP interface and every tracked interface.
fn watched_links(plan: &plan::Plan) -> WatchSet {
    let mut names = HashSet::new();
    for instance in plan.instances() {
        names.insert(instance.interface.clone());
        for tracked in &instance.tracked {
            if let TrackedSource::Interface(name) = tracked {
                names.insert(name.clone());
            }
        }
    }
    WatchSet::names(names)
}

/// Maps a script's status onto the tracked-item up/down the election uses.
pub(crate) fn script_up(status: ScriptStatus) -> Option<bool> {
    match status {
        ScriptStatus::Ok => Some(true),
        ScriptStatus::Failed => Some(false),
        ScriptStatus::Init => None,
    }
}
