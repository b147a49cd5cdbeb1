//! Scenario: what a client probing the VIP every millisecond loses while
//! the master reloads its configuration (SIGHUP), with the file unchanged
//! and with one VIP added. An operator's config management sends SIGHUP
//! after every change, so a reload should cost nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use lab::UdpWindow;

use super::conf::{self, Advert, Instance};
use super::failover::random_below;
use super::interrupt;
use super::router::{Implementation, Router};
use super::topology::{ECHO_PORT, PairLab, VIP, VIP_CIDR, VIP2};

/// What the reloaded file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same file again.
    Unchanged,
    /// One more address in `virtual_ipaddress`.
    VipAdded,
}

impl Change {
    pub const ALL: [Self; 2] = [Self::Unchanged, Self::VipAdded];

    pub fn label(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged file",
            Self::VipAdded => "one VIP added",
        }
    }
}

/// The advert timing the scenario runs at.
pub const ADVERT: Advert = Advert::V3TenMillis;
/// Probes counted from the SIGHUP on.
pub const WINDOW: Duration = Duration::from_secs(2);

const MASTER_PRIORITY: u8 = 200;
const BACKUP_PRIORITY: u8 = 100;

/// The outcome of one reload run.
pub struct ReloadRun {
    /// Probes sent in the [`WINDOW`] from the SIGHUP, and what became of them.
    pub window: UdpWindow,
    /// For [`Change::VipAdded`]: whether the new VIP answered once the
    /// window was over.
    pub added_vip_answers: Option<bool>,
    /// The backup entered MASTER during the run.
    pub backup_took_over: bool,
}

fn config(lab: &PairLab, router: usize, vips: &[&str]) -> String {
    let (name, priority) = if router == 0 {
        ("r1", MASTER_PRIORITY)
    } else {
        ("r2", BACKUP_PRIORITY)
    };
    let instance = Instance {
        name: "VI_1".into(),
        interface: lab.ifaces[router].clone(),
        vrid: 51,
        priority,
        vips: vips.iter().map(|vip| (*vip).to_owned()).collect(),
    };
    conf::render(name, ADVERT, &[instance])
}

/// One run: fresh lab, elect r1, probe, SIGHUP r1 with the changed file.
pub fn run_once(
    implementation: Implementation,
    change: Change,
    agent_binary: &Path,
) -> Result<ReloadRun> {
    let lab = PairLab::build("breload")?;
    let target: SocketAddr = format!("{VIP}:{ECHO_PORT}").parse()?;
    let target2: SocketAddr = format!("{VIP2}:{ECHO_PORT}").parse()?;
    // Bound to the VIPs themselves: replies come from the VIP, as a TCP server's do.
    let _servers = [
        lab.routers[0].serve_udp_echo(target)?,
        lab.routers[1].serve_udp_echo(target)?,
        lab.routers[0].serve_udp_echo(target2)?,
        lab.routers[1].serve_udp_echo(target2)?,
    ];
    let vip2_cidr = format!("{VIP2}/24");
    let master = Router::start(
        implementation,
        &lab.routers[0],
        &config(&lab, 0, &[VIP_CIDR]),
        agent_binary,
    )?;
    master.wait_masters(1, Duration::from_secs(10))?;
    let backup = Router::start(
        implementation,
        &lab.routers[1],
        &config(&lab, 1, &[VIP_CIDR]),
        agent_binary,
    )?;
    interrupt::sleep(Duration::from_millis(250))?;
    if backup.masters()? != 0 {
        bail!("the backup (priority {BACKUP_PRIORITY}) became MASTER before the reload");
    }
    let entries_before = backup.master_entries();

    let limit = Duration::from_secs(15);
    let prober = lab
        .client
        .start_udp_probe(target, Duration::from_millis(1), limit)?;
    prober.wait_for_first_answer(Duration::from_secs(5))?;
    // A random phase against the master's advert timer, as for failovers.
    interrupt::sleep(Duration::from_millis(500) + random_below(ADVERT.interval()))?;
    let new_config = match change {
        Change::Unchanged => config(&lab, 0, &[VIP_CIDR]),
        Change::VipAdded => config(&lab, 0, &[VIP_CIDR, &vip2_cidr]),
    };
    let reload_at = prober.now();
    master.reload(&new_config)?;
    interrupt::sleep(WINDOW.saturating_sub(prober.now() - reload_at))?;
    let trace = prober.finish()?;
    let window = trace.window(reload_at, reload_at + WINDOW);
    let added_vip_answers = (change == Change::VipAdded).then(|| {
        (0..10).any(|_| {
            lab.client
                .udp_echo_once(target2, Duration::from_millis(200))
                .is_ok()
        })
    });
    if !master.process().is_running() {
        bail!(
            "{} exited after SIGHUP:\n{}",
            implementation.label(),
            master.process().report()
        );
    }
    Ok(ReloadRun {
        window,
        added_vip_answers,
        backup_took_over: backup.master_entries() > entries_before,
    })
}
