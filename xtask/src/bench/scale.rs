//! Scenario 3: CPU time and RSS of a master sending, and a backup
//! receiving, 200 instances at advert_int 0.01 on one interface.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::conf::{self, Advert, Instance};
use super::interrupt;
use super::procfs;
use super::router::{Implementation, Router};
use super::topology::PairLab;

pub const INSTANCES: u8 = 200;

/// Cost of one role over the measuring window.
#[derive(Debug, Clone, Copy)]
pub struct RoleCost {
    /// utime + stime over the window, as a percentage of one CPU.
    pub cpu_percent: f64,
    /// Sum of VmRSS at the end of the window.
    pub rss_mib: f64,
    /// The anonymous part of it (heap, stacks).
    pub anon_mib: f64,
    /// The file-backed part (binary, libraries, mapped BPF rings).
    pub file_mib: f64,
}

pub struct ScaleRun {
    pub master: RoleCost,
    pub backup: RoleCost,
    /// Times the backup entered MASTER during the window (should be 0).
    pub backup_false_masters: usize,
}

fn instances(iface: &str, priority: u8) -> Vec<Instance> {
    (1..=INSTANCES)
        .map(|vrid| Instance {
            name: format!("VI_{vrid}"),
            interface: iface.to_owned(),
            vrid,
            priority,
            vips: vec![format!("203.0.113.{vrid}/32")],
        })
        .collect()
}

/// The 200-instance pair at v3 advert_int 0.01: `r1` master of every
/// instance, `r2` backup, start-up work (config parsing, program loading)
/// done and no instance held by the backup.
fn settled_pair(
    prefix: &str,
    implementation: Implementation,
    agent_binary: &Path,
) -> Result<(PairLab, Router, Router)> {
    let lab = PairLab::build(prefix)?;
    let advert = Advert::V3TenMillis;
    let master = Router::start(
        implementation,
        &lab.routers[0],
        &conf::render("r1", advert, &instances(&lab.ifaces[0], 200)),
        agent_binary,
    )?;
    master.wait_masters(usize::from(INSTANCES), Duration::from_secs(60))?;
    let backup = Router::start(
        implementation,
        &lab.routers[1],
        &conf::render("r2", advert, &instances(&lab.ifaces[1], 100)),
        agent_binary,
    )?;
    interrupt::sleep(Duration::from_secs(3))?;
    if backup.masters()? != 0 {
        bail!("the backup holds MASTER instances before the measurement");
    }
    Ok((lab, master, backup))
}

pub fn run_once(
    implementation: Implementation,
    window: Duration,
    agent_binary: &Path,
) -> Result<ScaleRun> {
    let (_lab, master, backup) = settled_pair("bscale", implementation, agent_binary)?;
    let entries_before = backup.master_entries();
    let pids = [master.pids()?, backup.pids()?];
    let ticks_before = [total_ticks(&pids[0])?, total_ticks(&pids[1])?];
    interrupt::sleep(window)?;
    let ticks_after = [total_ticks(&pids[0])?, total_ticks(&pids[1])?];
    let cost = |role: usize| -> Result<RoleCost> {
        let ticks = ticks_after[role].saturating_sub(ticks_before[role]) as f64;
        let rss: u64 = pids[role]
            .iter()
            .map(|pid| procfs::rss_kib(*pid))
            .sum::<Result<u64>>()?;
        let mut parts = procfs::RssParts::default();
        for pid in &pids[role] {
            let one = procfs::rss_parts(*pid)?;
            parts.anon_kib += one.anon_kib;
            parts.file_kib += one.file_kib;
            parts.shmem_kib += one.shmem_kib;
        }
        Ok(RoleCost {
            cpu_percent: 100.0 * ticks / procfs::ticks_per_second() / window.as_secs_f64(),
            rss_mib: rss as f64 / 1024.0,
            anon_mib: parts.anon_kib as f64 / 1024.0,
            file_mib: parts.file_kib as f64 / 1024.0,
        })
    };
    Ok(ScaleRun {
        master: cost(0)?,
        backup: cost(1)?,
        backup_false_masters: backup.master_entries().saturating_sub(entries_before),
    })
}

fn total_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|pid| procfs::cpu_ticks(*pid)).sum()
}

/// Pauses of the master's daemon in the stall scenario.
pub const STALL_PAUSES: usize = 3;
/// How long each pause lasts (SIGSTOP ... SIGCONT).
pub const STALL: Duration = Duration::from_millis(100);
/// Time after each SIGCONT for the backup to settle before counting.
const STALL_SETTLE: Duration = Duration::from_secs(3);

pub struct StallRun {
    /// Times the backup entered MASTER over all pauses and their settling
    /// time (ideally `INSTANCES` per pause: one takeover of each instance).
    pub backup_master_entries: usize,
    /// Instances the backup still held as MASTER after the last settling
    /// time (should be 0: the master is back).
    pub backup_masters_after: usize,
    /// The backup's utime + stime from the first pause to the end.
    pub backup_cpu_ms: f64,
}

/// The master's daemon hangs for `STALL`, `STALL_PAUSES` times, with 200
/// instances at advert_int 0.01: the backup takes every instance over once
/// per pause and gives each back once when the adverts return.
pub fn stall_once(implementation: Implementation, agent_binary: &Path) -> Result<StallRun> {
    let (_lab, master, backup) = settled_pair("bstall", implementation, agent_binary)?;
    let entries_before = backup.master_entries();
    let backup_pids = backup.pids()?;
    let ticks_before = total_ticks(&backup_pids)?;
    for pause in 1..=STALL_PAUSES {
        master.process().signal(libc::SIGSTOP)?;
        let stalled = interrupt::sleep(STALL);
        // Never leave the master stopped, whatever happened meanwhile.
        master.process().signal(libc::SIGCONT)?;
        stalled?;
        interrupt::sleep(STALL_SETTLE)?;
        eprintln!(
            "bench: stall {pause}/{STALL_PAUSES} {}: backup MASTER entries so far {}",
            implementation.label(),
            backup.master_entries().saturating_sub(entries_before)
        );
    }
    let ticks = total_ticks(&backup_pids)?.saturating_sub(ticks_before) as f64;
    Ok(StallRun {
        backup_master_entries: backup.master_entries().saturating_sub(entries_before),
        backup_masters_after: backup.masters()?,
        backup_cpu_ms: 1000.0 * ticks / procfs::ticks_per_second(),
    })
}
