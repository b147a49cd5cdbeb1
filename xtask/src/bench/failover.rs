//! Scenario 1: how long a client probing the VIP every millisecond loses
//! it when the master dies (kill -9), loses its link, or stops gracefully.
//! The client accepts only replies sourced from the VIP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lab::{UdpProbeRun, UdpTrace};
use serde::Serialize;

use super::conf::{self, Advert, Instance};
use super::interrupt;
use super::router::{self, Implementation, Router};
use super::topology::{ECHO_PORT, PairLab, ROUTER_IPS, VIP, VIP_CIDR};
use super::wire::{self, Frame, WireMoments};

/// How the master is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL to the daemon; its host's service is muted at the same moment
    /// (a crashed host), since a surviving old master would keep answering.
    Kill9,
    /// `ip link set dev IF down` on the master's interface.
    LinkDown,
    /// SIGTERM: the daemon resigns with a priority-0 advert.
    Sigterm,
    /// SIGSTOP: the daemon hangs; its host, kernel and service live on
    /// (a zombie master), and it is continued after the measurement.
    Sigstop,
}

impl Fault {
    pub const ALL: [Self; 4] = [Self::Kill9, Self::LinkDown, Self::Sigterm, Self::Sigstop];

    pub fn label(self) -> &'static str {
        match self {
            Self::Kill9 => "master kill -9",
            Self::LinkDown => "master link down",
            Self::Sigterm => "master SIGTERM",
            Self::Sigstop => "master SIGSTOP",
        }
    }

    /// Whether the old master's host stays up, so it could still answer for
    /// the VIP after the backup took over.
    pub fn leaves_a_zombie(self) -> bool {
        matches!(self, Self::Kill9 | Self::Sigstop)
    }
}

/// A router's state at a moment of a run, for the timeline plot.
#[derive(Debug, Clone, Serialize)]
pub struct StateSample {
    pub at_ms: f64,
    /// MASTER, BACKUP, FAULT, INIT, or DOWN when the daemon is gone.
    pub state: String,
}

/// Everything seen during one run, on the probe clock.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub implementation: Implementation,
    pub fault: Fault,
    pub advert: Advert,
    pub fault_at_ms: f64,
    /// `(send time ms, answered)` per probe.
    pub probes: Vec<(f64, bool)>,
    /// States of the old master (0) and the backup (1).
    pub states: [Vec<StateSample>; 2],
}

/// The outcome of one failover run.
pub struct FailoverRun {
    /// Longest gap between replies the client saw after the fault, until
    /// half the after-takeover probing (when the client flushes its
    /// neighbour cache).
    pub gap_ms: f64,
    /// Where that gap began, from the fault (negative: the last reply came
    /// before the fault): a gap far from the takeover is noise, not the
    /// failover.
    pub gap_began_ms: f64,
    /// From the fault to the backup logging that it is MASTER.
    pub takeover_ms: f64,
    /// Frames the old master sent from the VIP (ARP replies, echo replies)
    /// that reached the client after the backup took over; measured for
    /// the faults that leave a zombie.
    pub zombie_replies: Option<f64>,
    /// Adverts and announcements on the client's wire.
    pub wire: Option<WireMoments>,
    pub timeline: Option<Timeline>,
}

const MASTER_PRIORITY: u8 = 200;
const BACKUP_PRIORITY: u8 = 100;

/// Times that scale with the advert interval.
struct Pace {
    /// Until the first master is elected.
    elect: Duration,
    /// Steady probing before the fault.
    before: Duration,
    /// Until the backup must have taken over.
    takeover: Duration,
    /// Probing after the takeover, so the client's recovery is in the trace.
    after: Duration,
}

fn pace(advert: Advert) -> Pace {
    match advert {
        Advert::V2OneSecond => Pace {
            elect: Duration::from_secs(15),
            before: Duration::from_millis(1500),
            takeover: Duration::from_secs(12),
            after: Duration::from_millis(1500),
        },
        Advert::V3TenMillis => Pace {
            elect: Duration::from_secs(10),
            before: Duration::from_millis(500),
            takeover: Duration::from_secs(5),
            after: Duration::from_millis(500),
        },
    }
}

pub fn configs(lab: &PairLab, advert: Advert) -> [String; 2] {
    let instance = |iface: &str, priority| Instance {
        name: "VI_1".into(),
        interface: iface.to_owned(),
        vrid: 51,
        priority,
        vips: vec![VIP_CIDR.into()],
    };
    [
        conf::render("r1", advert, &[instance(&lab.ifaces[0], MASTER_PRIORITY)]),
        conf::render("r2", advert, &[instance(&lab.ifaces[1], BACKUP_PRIORITY)]),
    ]
}

/// When things happened in one run: on the probe clock, or as epoch
/// seconds to compare with captured frames.
struct RunMoments {
    fault_at: Duration,
    fault_epoch: f64,
    took_over_epoch: f64,
    /// From the fault to the backup logging MASTER.
    takeover: Duration,
    /// Just before the client flushes its neighbour cache.
    observed_until: Duration,
}

/// One run: fresh lab, elect r1, probe, take r1 away, measure.
pub fn run_once(
    implementation: Implementation,
    fault: Fault,
    advert: Advert,
    agent_binary: &Path,
    record_timeline: bool,
) -> Result<FailoverRun> {
    let pace = pace(advert);
    let lab = PairLab::build("bfail")?;
    let target: SocketAddr = format!("{VIP}:{ECHO_PORT}").parse()?;
    // Bound to the VIP itself: replies come from the VIP, as a TCP server's do.
    let responders = [
        lab.routers[0].serve_udp_echo(target)?,
        lab.routers[1].serve_udp_echo(target)?,
    ];
    let [conf1, conf2] = configs(&lab, advert);
    let master = Router::start(implementation, &lab.routers[0], &conf1, agent_binary)?;
    master.wait_masters(1, pace.elect)?;
    let backup = Router::start(implementation, &lab.routers[1], &conf2, agent_binary)?;
    interrupt::sleep(pace.before / 2)?;
    if backup.masters()? != 0 {
        bail!("the backup (priority {BACKUP_PRIORITY}) became MASTER before any fault");
    }
    let entries_before = backup.master_entries();

    // Only the old master's frames sourced from the VIP, so the capture
    // stays small.
    let zombie_capture = if fault.leaves_a_zombie() {
        let mac = lab.routers[0].mac(&lab.ifaces[0])?;
        let filter =
            format!("ether src {mac} and ((arp and arp[7] = 2) or (udp and src port {ECHO_PORT}))");
        Some(lab.client.capture(&lab.client_if, &filter, 1_000_000)?)
    } else {
        None
    };
    // Every advert, ARP frame and echo reply the client sees: a few
    // thousand per run.
    let wire_capture = lab.client.capture(
        &lab.client_if,
        &format!("ip proto 112 or arp or (udp and src port {ECHO_PORT})"),
        100_000,
    )?;
    let backup_mac = lab.routers[1].mac(&lab.ifaces[1])?;
    let probe_limit = pace.before + pace.takeover + pace.after + Duration::from_secs(5);
    let prober = lab
        .client
        .start_udp_probe(target, Duration::from_millis(1), probe_limit)?;
    let sampling = AtomicBool::new(record_timeline);
    let routers = [&master, &backup];

    let (moments, states) = thread::scope(|scope| -> Result<_> {
        // One sampler per router: a query to a dying daemon can block until
        // the kernel has torn it down, and must not hold up the other's.
        let samplers = routers.map(|router| {
            let (prober, sampling) = (&prober, &sampling);
            scope.spawn(move || sample_states(router, prober, sampling))
        });
        let outcome = (|| -> Result<_> {
            // A random phase against the master's advert timer: otherwise the
            // fixed start-up sequence decides how long before the fault the
            // last advert went out, and that differs per implementation.
            interrupt::sleep(pace.before + random_below(advert.interval()))?;
            let fault_at = prober.now();
            let fault_epoch = epoch_seconds();
            match fault {
                Fault::Kill9 => {
                    responders[0].mute();
                    master.process().kill9()?;
                }
                Fault::LinkDown => lab.routers[0].link_down(&lab.ifaces[0])?,
                Fault::Sigterm => master.process().sigterm()?,
                Fault::Sigstop => master.process().signal(libc::SIGSTOP)?,
            }
            interrupt::wait_until(
                "the backup entering MASTER after the fault",
                pace.takeover,
                Duration::from_millis(1),
                || Ok(backup.master_entries() > entries_before),
            )
            .with_context(|| backup.process().report())?;
            let takeover = prober.now().saturating_sub(fault_at);
            let took_over_epoch = epoch_seconds();
            // The client asks for the VIP again: a zombie that answers ARP
            // shows here, as it would to any client whose entry expired.
            interrupt::sleep(pace.after / 2)?;
            // The client's own ARP round after the flush, and what the old
            // master does once it runs again (a failback), are not this
            // failover's gap.
            let observed_until = prober.now();
            lab.client
                .exec(&["ip", "neigh", "flush", "dev", &lab.client_if])?;
            interrupt::sleep(pace.after / 2)?;
            if fault == Fault::Sigstop {
                master.process().signal(libc::SIGCONT)?;
            }
            Ok(RunMoments {
                fault_at,
                fault_epoch,
                took_over_epoch,
                takeover,
                observed_until,
            })
        })();
        sampling.store(false, Ordering::Relaxed);
        let states = samplers.map(|sampler| sampler.join().unwrap_or_default());
        Ok((outcome?, states))
    })?;
    let RunMoments {
        fault_at,
        fault_epoch,
        took_over_epoch,
        takeover,
        observed_until,
    } = moments;
    wire_capture.stop()?;
    let wire = wire::moments(&wire_frames(&wire_capture, &backup_mac)?, fault_epoch);
    let zombie_replies = match zombie_capture {
        Some(capture) => {
            capture.stop()?;
            let frames = capture.fields(&["frame.time_epoch"], "")?;
            let after = frames
                .iter()
                .filter_map(|row| row.first()?.parse::<f64>().ok())
                .filter(|time| *time > took_over_epoch)
                .count();
            Some(after as f64)
        }
        None => None,
    };
    let trace = prober.finish()?;
    // A VIP that answers again only after the flush would make its gap
    // look cut at the flush.
    if trace.window(fault_at, observed_until).answered == 0 {
        bail!(
            "the VIP answered no probe between the fault and the client's neighbour flush ({:.0} ms later)",
            ms(observed_until.saturating_sub(fault_at))
        );
    }
    let (gap_start, gap) = trace.longest_gap_span(fault_at, observed_until).with_context(|| {
        format!(
            "the client never got an answer from the VIP after the fault ({} of {} probes answered)",
            trace.successes(),
            trace.sent.len()
        )
    })?;
    let timeline = record_timeline.then(|| Timeline {
        implementation,
        fault,
        advert,
        fault_at_ms: ms(fault_at),
        probes: probe_points(&trace),
        states,
    });
    Ok(FailoverRun {
        gap_ms: ms(gap),
        gap_began_ms: ms(gap_start) - ms(fault_at),
        takeover_ms: ms(takeover),
        zombie_replies,
        wire,
        timeline,
    })
}

/// The adverts of both routers, the backup's ARP frames for the VIP and
/// its echo replies.
fn wire_frames(capture: &lab::Capture, backup_mac: &str) -> Result<Vec<Frame>> {
    let rows = capture.fields(
        &[
            "frame.time_epoch",
            "vrrp.prio",
            "ip.src",
            "arp.src.proto_ipv4",
            "eth.src",
        ],
        &format!("vrrp or arp or udp.srcport == {ECHO_PORT}"),
    )?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let at = row.first()?.parse::<f64>().ok()?;
            let field = |i: usize| row.get(i).map_or("", String::as_str);
            let from_backup = field(4).eq_ignore_ascii_case(backup_mac);
            if !field(1).is_empty() {
                Some(Frame::Advert {
                    at,
                    from_old_master: field(2) == ROUTER_IPS[0],
                })
            } else if !field(3).is_empty() {
                (field(3) == VIP && from_backup).then_some(Frame::BackupGarp { at })
            } else {
                (field(2) == VIP && from_backup).then_some(Frame::BackupReply { at })
            }
        })
        .collect())
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

/// A uniformly distributed duration in `[0, bound)`.
pub fn random_below(bound: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; good enough for a phase offset.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(random % nanos)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn probe_points(trace: &UdpTrace) -> Vec<(f64, bool)> {
    trace
        .sent
        .iter()
        .zip(&trace.replied)
        .map(|(sent, reply)| (ms(*sent), reply.is_some()))
        .collect()
}

/// Samples a router's state every 5 ms while `running`: the agent over its
/// control socket (`status --json`), keepalived from its log. A sample is
/// stamped when its query started, so a query that hangs on a dying daemon
/// reports DOWN from the moment the daemon stopped answering.
fn sample_states(router: &Router, prober: &UdpProbeRun, running: &AtomicBool) -> Vec<StateSample> {
    let mut samples: Vec<StateSample> = Vec::new();
    // Bounded by the probe run's own limit.
    for _ in 0..20_000 {
        if !running.load(Ordering::Relaxed) {
            break;
        }
        let at_ms = ms(prober.now());
        let state = current_state(router);
        if samples.last().is_none_or(|last| last.state != state) {
            samples.push(StateSample { at_ms, state });
        }
        thread::sleep(Duration::from_millis(5));
    }
    samples
}

fn current_state(router: &Router) -> String {
    if !router.process().is_running() {
        return "DOWN".into();
    }
    match router.control_socket() {
        Some(socket) => router::agent_status(socket)
            .ok()
            .and_then(|status| {
                router::instances(&status)
                    .first()
                    .and_then(|i| i["state"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "DOWN".into()),
        None => router
            .log()
            .lines()
            .iter()
            .rev()
            .find_map(|line| router::entered_state(line).map(|(_, state)| state))
            .unwrap_or_else(|| "INIT".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_phase_stays_below_its_bound() {
        let bound = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..200).map(|_| random_below(bound)).collect();
        assert!(draws.iter().all(|d| *d < bound));
        // Not all the same: the offsets really vary from run to run.
        assert!(draws.iter().any(|d| *d != draws[0]));
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    }
}
