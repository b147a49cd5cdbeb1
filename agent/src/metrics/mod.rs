//! Prometheus metrics (`--metrics-listen ADDR:PORT`, `GET /metrics`).
//!
//! The election task owns every value. A scrape asks it for a [`Snapshot`]
//! over a channel (as `vrrp-agent status` does) and renders that snapshot
//! off the election task, in a registry built for this one scrape: nothing
//! is shared between the two tasks, so a slow scraper never holds a lock
//! the elections need.

mod render;
mod server;

pub use render::render;
pub use server::{MetricsError, MetricsServer, SnapshotRequest};

use std::collections::BTreeMap;

use crate::control::InstanceStatus;

/// What one scrape reports, taken by the election task in one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub instances: Vec<InstanceMetrics>,
    /// The datapath counters of each VRRP interface by name (`accepted`,
    /// `passed_unknown`, each drop reason, `event_lost`, ...), by
    /// interface name: the datapath metrics carry the label `interface`.
    pub interfaces: BTreeMap<String, BTreeMap<String, u64>>,
    /// Notify scripts run since start, by outcome.
    pub notify: NotifyTotals,
}

/// One instance: its status line plus the counters only metrics show.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceMetrics {
    pub status: InstanceStatus,
    /// Transitions since start, by the state entered (`MASTER`, ...).
    pub transitions_to: BTreeMap<&'static str, u64>,
    /// Times the master of this virtual router changed as this node saw
    /// it: a new advert source, or this node becoming master.
    pub master_changes: u64,
    /// Adverts this instance sent (priority 0 included).
    pub adverts_sent: u64,
}

/// Notify scripts run since start, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyTotals {
    pub ok: u64,
    pub failed: u64,
    pub timed_out: u64,
}
