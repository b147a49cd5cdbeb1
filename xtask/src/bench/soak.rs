//! Scenario 2: false failovers of a backup at advert_int 0.01 while
//! `stress-ng` keeps both CPUs busy.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::conf::{self, Advert, Instance};
use super::interrupt;
use super::router::{Implementation, Router};
use super::topology::{PairLab, VIP_CIDR};

/// One soak: how often the backup entered MASTER while the master was fine.
pub struct SoakRun {
    pub false_failovers: usize,
    /// The agent's `status --json` transition count over the soak (every
    /// change, so about twice the false failovers); None for keepalived.
    pub status_transitions: Option<u64>,
}

pub fn run_once(
    implementation: Implementation,
    soak: Duration,
    agent_binary: &Path,
) -> Result<SoakRun> {
    lab::require_tool("stress-ng")
        .context("scenario false-failovers needs stress-ng (Debian package `stress-ng`)")?;
    let lab = PairLab::build("bsoak")?;
    let advert = Advert::V3TenMillis;
    let config = |name: &str, iface: &str, priority| {
        conf::render(
            name,
            advert,
            &[Instance {
                name: "VI_1".into(),
                interface: iface.to_owned(),
                vrid: 51,
                priority,
                vips: vec![VIP_CIDR.into()],
            }],
        )
    };
    let master = Router::start(
        implementation,
        &lab.routers[0],
        &config("r1", &lab.ifaces[0], 200),
        agent_binary,
    )?;
    master.wait_masters(1, Duration::from_secs(10))?;
    let backup = Router::start(
        implementation,
        &lab.routers[1],
        &config("r2", &lab.ifaces[1], 100),
        agent_binary,
    )?;
    interrupt::sleep(Duration::from_secs(1))?;
    if backup.masters()? != 0 {
        bail!("the backup became MASTER before the stress started");
    }
    let before = backup.master_entries();
    let transitions_before = backup.status_transitions()?;
    let seconds = soak.as_secs().max(1).to_string();
    let stress =
        lab.routers[0].spawn(&["stress-ng", "--cpu", "2", "--timeout", &seconds, "--quiet"])?;
    interrupt::sleep(soak)?;
    let status = stress.wait(Duration::from_secs(10))?;
    if !status.success() {
        bail!("stress-ng failed ({status}):\n{}", stress.report());
    }
    let transitions_after = backup.status_transitions()?;
    Ok(SoakRun {
        false_failovers: backup.master_entries().saturating_sub(before),
        status_transitions: transitions_before
            .zip(transitions_after)
            .map(|(before, after)| after.saturating_sub(before)),
    })
}
