//! Restart of the master's daemon: it is killed (a crash, or an upgrade
//! that does not hand over) and started again 200 ms later, as a service
//! manager with `Restart=always` does, at advert_int 1 (Master_Down_Interval
//! 3.6 s for the backup). Counted: how often the backup became MASTER (each
//! time the VIP moves away and, with preemption, back) and the probes the
//! client lost meanwhile.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::conf::Advert;
use super::failover;
use super::interrupt;
use super::router::{Implementation, Router};
use super::topology::{ECHO_PORT, PairLab, VIP};

pub const ADVERT: Advert = Advert::V2OneSecond;
/// From the kill: long enough for a backup's takeover and the preemption back.
pub const WINDOW: Duration = Duration::from_secs(10);
const DOWN_FOR: Duration = Duration::from_millis(200);

pub struct RestartRun {
    pub backup_took_over: usize,
    pub window: lab::UdpWindow,
}

pub fn run_once(implementation: Implementation, agent_binary: &Path) -> Result<RestartRun> {
    let lab = PairLab::build("brestart")?;
    let target: SocketAddr = format!("{VIP}:{ECHO_PORT}").parse()?;
    let _responders = [
        lab.routers[0].serve_udp_echo(target)?,
        lab.routers[1].serve_udp_echo(target)?,
    ];
    let [conf1, conf2] = failover::configs(&lab, ADVERT);
    let master = Router::start(implementation, &lab.routers[0], &conf1, agent_binary)?;
    master.wait_masters(1, Duration::from_secs(15))?;
    let backup = Router::start(implementation, &lab.routers[1], &conf2, agent_binary)?;
    interrupt::sleep(Duration::from_millis(1500))?;
    let entries_before = backup.master_entries();
    let prober = lab.client.start_udp_probe(
        target,
        Duration::from_millis(1),
        WINDOW + Duration::from_secs(3),
    )?;
    prober.wait_for_first_answer(Duration::from_secs(5))?;
    interrupt::sleep(Duration::from_millis(500) + failover::random_below(ADVERT.interval()))?;
    let killed_at = prober.now();
    master.process().kill9()?;
    master
        .process()
        .wait(Duration::from_secs(5))
        .context("the killed master did not exit")?;
    interrupt::sleep(DOWN_FOR)?;
    let _restarted = Router::start(implementation, &lab.routers[0], &conf1, agent_binary)?;
    let end = killed_at + WINDOW;
    interrupt::sleep(end.saturating_sub(prober.now()))?;
    let backup_took_over = backup.master_entries() - entries_before;
    let trace = prober.finish()?;
    Ok(RestartRun {
        backup_took_over,
        window: trace.window(killed_at, end),
    })
}
