//! What `vrrp-agent status` reports, and its human rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub router_id: String,
    pub pid: u32,
    pub instances: Vec<InstanceStatus>,
    /// Datapath counters by name, summed over interfaces (see README:
    /// valid adverts, passed frames, drops by reason).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The same counters per VRRP interface, by interface name.
    #[serde(default)]
    pub interfaces: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub family: String,
    pub version: u8,
    /// INIT, BACKUP, MASTER, FAULT or STOP.
    pub state: String,
    pub base_priority: u8,
    pub effective_priority: u8,
    /// The current master's address, ours when we are master.
    pub master_address: Option<String>,
    /// Age of the last advert from the master as the kernel stamped it.
    pub last_advert_age_ms: Option<u64>,
    pub advert_interval_ms: u32,
    pub virtual_addresses: Vec<String>,
    pub tracked: Vec<TrackedStatus>,
    pub transitions: u64,
    /// Unix time (seconds) of the last transition.
    pub last_transition_unix: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedStatus {
    /// `script`, `interface` or `file`.
    pub kind: String,
    pub name: String,
    /// `ok`, `failed`, `down`, `up`, or the file's value.
    pub status: String,
    pub weight: i32,
}

pub fn render_status(report: &StatusReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "vrrp-agent (pid {}) router_id {}",
        report.pid, report.router_id
    );
    let _ = writeln!(
        text,
        "{:<16} {:<10} {:>4} {:<4} {:<6} {:>9} {:<40} {:>10} {:>11}",
        "INSTANCE",
        "INTERFACE",
        "VRID",
        "FAM",
        "STATE",
        "PRIO",
        "MASTER",
        "LAST ADV",
        "TRANSITIONS"
    );
    for instance in &report.instances {
        let priority = format!("{}/{}", instance.effective_priority, instance.base_priority);
        let age = instance
            .last_advert_age_ms
            .map_or_else(|| "-".to_owned(), |age| format!("{age}ms"));
        let _ = writeln!(
            text,
            "{:<16} {:<10} {:>4} {:<4} {:<6} {:>9} {:<40} {:>10} {:>11}",
            instance.name,
            instance.interface,
            instance.vrid,
            instance.family,
            instance.state,
            priority,
            instance.master_address.as_deref().unwrap_or("-"),
            age,
            instance.transitions
        );
        for tracked in &instance.tracked {
            let _ = writeln!(
                text,
                "    track {} {}: {} (weight {})",
                tracked.kind, tracked.name, tracked.status, tracked.weight
            );
        }
    }
    let counters: Vec<String> = report
        .counters
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let _ = writeln!(text, "datapath: {}", counters.join(" "));
    for (interface, counters) in &report.interfaces {
        let counters: Vec<String> = counters
            .iter()
            .filter(|(_, value)| **value != 0)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let counters = if counters.is_empty() {
            "(all zero)".to_owned()
        } else {
            counters.join(" ")
        };
        let _ = writeln!(text, "  {interface}: {counters}");
    }
    text
}
