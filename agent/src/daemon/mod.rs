//! The failover daemon: runs the VRRP instances of a keepalived.conf on the
//! kernel datapath.
//!
//! Startup refuses clearly (not root, missing interface, invalid config);
//! SIGTERM/SIGINT hand over gracefully; SIGHUP reloads, keeping the state of
//! instances whose identity is unchanged.

pub mod adverts;
pub mod announce;
pub mod hooks;
pub mod netops;
pub mod plan;
pub mod runtime;
mod setup;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};

use crate::{
    config,
    control::{ControlError, ControlRequest, ControlServer},
    datapath::{Datapath, DatapathError, kernel_now_ns},
    netlink::{LinkWatcher, NetlinkError, WatchSet},
    tracking::ScriptStatus,
};

use self::{netops::NetCommand, plan::TrackedSource, runtime::Runtime};

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub config: PathBuf,
    pub control_socket: PathBuf,
    /// Let valid adverts continue to the stack after XDP recorded them.
    pub pass_adverts: bool,
}

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("must run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW); try sudo")]
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
    #[error("{0}")]
    Setup(String),
}

/// Events other tasks send to the owner of the elections.
#[derive(Debug)]
enum Event {
    Tracked(TrackedSource, bool),
}

pub async fn run(options: DaemonOptions) -> Result<(), DaemonError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(DaemonError::NotRoot);
    }
    let config = load_config(&options.config)?;
    let handle = crate::netlink::connect()?;
    let hostname = setup::hostname();
    let facts = setup::interface_facts(&handle, &config).await?;
    let plan =
        plan::plan(&config, &|name| facts.get(name).cloned(), &hostname).map_err(plan_error)?;

    let control = ControlServer::bind(&options.control_socket).await?;
    let (datapath, mut peer_events, kernel_log) = Datapath::load()?;
    tokio::spawn(async move {
        if let Err(error) = kernel_log.forward().await {
            warn!(%error, "kernel log forwarding stopped");
        }
    });
    let (net_tx, net_rx) = mpsc::unbounded_channel();
    let net_task = tokio::spawn(netops::run(handle.clone(), net_rx));
    let (event_tx, mut event_rx) = mpsc::channel::<Event>(256);
    let mailer = hooks::mailer(&config.global_defs, &hostname);
    let garp_spacing = config.global_defs.vrrp_garp_interval;
    let mut runtime = Runtime::new(
        plan.router_id.clone(),
        datapath,
        net_tx.clone(),
        garp_spacing,
    );

    let mut resources = setup::Resources::new(event_tx.clone(), mailer);
    resources
        .install(&mut runtime, &config, &plan, &handle, options.pass_adverts)
        .await?;
    let mut links = LinkWatcher::start(WatchSet::names(watched_links(plan.instances()))).await?;

    let (control_tx, mut control_rx) = mpsc::channel(16);
    tokio::spawn(control.serve(control_tx));
    let mut terminate = signal(SignalKind::terminate()).map_err(setup_error("SIGTERM handler"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(setup_error("SIGINT handler"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(setup_error("SIGHUP handler"))?;
    info!(
        instances = plan.instances().count(),
        router_id = %plan.router_id,
        "vrrp-agent running"
    );

    let mut current_config = config;
    loop {
        let sleep = deadline_sleep(runtime.next_deadline());
        tokio::select! {
            event = peer_events.next() => match event {
                Ok(event) => runtime.on_peer_event(&event),
                Err(error) => warn!(%error, "reading the peer event ring failed"),
            },
            () = sleep => runtime.on_timers(),
            Some(link) = links.next() => runtime.on_interface(&link.name, link.up),
            Some(event) = event_rx.recv() => match event {
                Event::Tracked(source, up) => runtime.on_tracked(&source, up),
            },
            Some(request) = control_rx.recv() => match request {
                ControlRequest::Status(reply) => { let _ = reply.send(runtime.status()); }
            },
            _ = hangup.recv() => {
                match reload(&options, &handle, &hostname, &mut runtime, &mut resources, &current_config).await {
                    Ok(config) => {
                        current_config = config;
                        links = LinkWatcher::start(WatchSet::names(watched_links(
                            runtime.groups.iter().flat_map(|group| group.members.iter().map(|member| &member.plan)),
                        ))).await?;
                    }
                    Err(error) => error!(%error, "reload rejected; the running configuration stays"),
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
        runtime.flush();
    }

    info!("shutting down: releasing mastership and virtual addresses");
    runtime.shutdown_all();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let _ = net_tx.send(NetCommand::ReleaseAll(done_tx));
    let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
    resources.stop_trackers();
    // notify_stop and anything still queued get a bounded time to run.
    let _ = tokio::time::timeout(Duration::from_secs(10), runtime.close_notify_queues()).await;
    // Dropping the runtime detaches the programs and closes its handle on the
    // netlink task, which then ends once the last queued request is done.
    drop(runtime);
    drop(net_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), net_task).await;
    info!("vrrp-agent stopped");
    Ok(())
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

fn load_config(path: &Path) -> Result<config::Config, DaemonError> {
    match config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                warn!("{warning}");
            }
            for instance in &loaded.config.vrrp_instances {
                if instance.use_vmac.is_some() {
                    warn!(
                        instance = %instance.name,
                        "use_vmac is not supported yet: the instance runs on its interface's own MAC address"
                    );
                }
            }
            Ok(loaded.config)
        }
        // One line, as an operator reads a refusal: every error, `; `-joined.
        Err(errors) => Err(DaemonError::Config {
            path: path.to_owned(),
            errors: errors
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

async fn deadline_sleep(deadline: Option<crate::vrrp::election::Timestamp>) {
    match deadline {
        Some(deadline) => {
            let wait = Duration::from_nanos(deadline.as_nanos().saturating_sub(kernel_now_ns()));
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

/// The links to watch: every VRRP interface and every tracked interface.
fn watched_links<'a>(instances: impl Iterator<Item = &'a plan::InstancePlan>) -> HashSet<String> {
    let mut names = HashSet::new();
    for instance in instances {
        names.insert(instance.interface.clone());
        for tracked in &instance.tracked {
            if let TrackedSource::Interface(name) = tracked {
                names.insert(name.clone());
            }
        }
    }
    names
}

/// SIGHUP: a bad new configuration is rejected whole; otherwise groups whose
/// members' identities are unchanged keep their election state, removed
/// ones release their addresses, new ones start.
async fn reload(
    options: &DaemonOptions,
    handle: &crate::netlink::Handle,
    hostname: &str,
    runtime: &mut Runtime,
    resources: &mut setup::Resources,
    _previous: &config::Config,
) -> Result<config::Config, DaemonError> {
    let config = load_config(&options.config)?;
    let facts = setup::interface_facts(handle, &config).await?;
    let plan =
        plan::plan(&config, &|name| facts.get(name).cloned(), hostname).map_err(plan_error)?;
    resources
        .reload(runtime, &config, &plan, handle, options.pass_adverts)
        .await?;
    info!(
        instances = plan.instances().count(),
        "configuration reloaded"
    );
    Ok(config)
}

/// Maps a script's status onto the tracked-item up/down the election uses.
pub(crate) fn script_up(status: ScriptStatus) -> Option<bool> {
    match status {
        ScriptStatus::Ok => Some(true),
        ScriptStatus::Failed => Some(false),
        ScriptStatus::Init => None,
    }
}
