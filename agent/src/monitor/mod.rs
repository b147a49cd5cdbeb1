//! `vrrp-agent monitor`: watch the virtual routers on a link through the XDP
//! datapath in observe-only mode (every VRID recorded, nothing dropped).

mod view;

use std::{collections::BTreeMap, io::Write, time::Duration};

use agent_common::{
    CHANGE_FIRST, CHANGE_INTERVAL, CHANGE_PRIORITY, CHANGE_PRIORITY_ZERO, CHANGE_RESUMED,
    CHANGE_SOURCE, CHANGE_VERSION, PeerEvent,
};
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tracing::warn;

use crate::datapath::{Datapath, DatapathError, InterfaceMode, PeerRecord, kernel_now_ns};
pub use view::RouterRow;

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub interface: String,
    pub vrid: Option<u8>,
    pub json: bool,
    /// Refresh period of the table and of the JSON `stats` line.
    pub refresh: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error("installing a signal handler failed: {0}")]
    Signal(std::io::Error),
}

/// Runs until SIGINT/SIGTERM; the datapath is detached on the way out.
pub async fn run(options: MonitorOptions) -> Result<(), MonitorError> {
    let (mut datapath, mut events, kernel_log) = Datapath::load()?;
    tokio::spawn(async move {
        if let Err(error) = kernel_log.forward().await {
            warn!(%error, "kernel log forwarding stopped");
        }
    });
    let attachment = datapath.attach(&options.interface, InterfaceMode::ObserveOnly)?;
    let ifindex = attachment.ifindex;
    let mut out = std::io::stdout().lock();
    if options.json {
        emit(
            &mut out,
            json!({
                "event": "attached",
                "interface": attachment.interface,
                "ifindex": attachment.ifindex,
                "xdp_mode": attachment.mode,
            }),
        );
    }

    let mut tracker = view::RateTracker::default();
    let mut ticker = tokio::time::interval(options.refresh);
    // Both streams live across iterations: a signal arriving while the loop
    // body runs must still be seen (a fresh `ctrl_c()` per turn loses it).
    let mut terminate = signal(SignalKind::terminate()).map_err(MonitorError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(MonitorError::Signal)?;
    loop {
        tokio::select! {
            event = events.next() => {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        warn!(%error, "reading the event ring failed");
                        continue;
                    }
                };
                if options.json && wanted(&options, event.key.vrid) {
                    emit(&mut out, change_event(&options.interface, &event));
                }
            }
            _ = ticker.tick() => {
                let peers = datapath.peers()?;
                let counters = datapath
                    .interface_counters()?
                    .get(&ifindex)
                    .copied()
                    .unwrap_or_default();
                let now = kernel_now_ns();
                let rows: Vec<RouterRow> = peers
                    .iter()
                    .filter(|((index, _, vrid), _)| *index == ifindex && wanted(&options, *vrid))
                    .map(|(key, state)| RouterRow::new(&options.interface, *key, state, now, tracker.rate(*key, state, now)))
                    .collect();
                if options.json {
                    emit(&mut out, json!({
                        "event": "stats",
                        "interface": options.interface,
                        "routers": rows,
                        "counters": counters.to_json(),
                    }));
                } else {
                    let table = view::render_table(&options.interface, &rows, &counters);
                    let _ = write!(out, "{}{table}", view::clear_screen_if_terminal());
                    let _ = out.flush();
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(datapath);
    if options.json {
        emit(
            &mut out,
            json!({"event": "detached", "interface": options.interface}),
        );
    }
    Ok(())
}

fn wanted(options: &MonitorOptions, vrid: u8) -> bool {
    options.vrid.is_none_or(|wanted| wanted == vrid)
}

fn emit(out: &mut impl Write, value: serde_json::Value) {
    // A closed stdout (monitor piped into `head`) is not worth a crash.
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn change_event(interface: &str, event: &PeerEvent) -> serde_json::Value {
    let names: BTreeMap<u8, &str> = [
        (CHANGE_FIRST, "first"),
        (CHANGE_SOURCE, "source"),
        (CHANGE_PRIORITY, "priority"),
        (CHANGE_PRIORITY_ZERO, "priority_zero"),
        (CHANGE_INTERVAL, "interval"),
        (CHANGE_VERSION, "version"),
        (CHANGE_RESUMED, "resumed"),
    ]
    .into_iter()
    .collect();
    let changes: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| event.changes & **bit != 0)
        .map(|(_, name)| *name)
        .collect();
    let key = (event.key.ifindex, event.key.family, event.key.vrid);
    let mut value = serde_json::to_value(RouterRow::new(
        interface,
        key,
        &PeerRecord::from_kernel(&event.key, &event.state),
        kernel_now_ns(),
        None,
    ))
    .unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("event".into(), "router".into());
        object.insert("changes".into(), changes.into());
        object.insert(
            "kernel_timestamp_ns".into(),
            event.state.last_seen_ns.into(),
        );
    }
    value
}
