//! Reachability as a client sees it: one-shot TCP connect / ICMP echo checks
//! and a bounded probe loop (TCP, ICMP or UDP echo, each accepting only
//! answers from the probed address) that records every outage (used to measure how
//! long a VIP was unreachable during failover). Plain sockets, no `ping`.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::host::Host;
use crate::sock;
use crate::udp;

/// What one probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP connect (then close) to this address succeeds.
    Tcp(SocketAddr),
    /// An ICMP/ICMPv6 echo to this address is answered.
    Icmp(IpAddr),
    /// A datagram to this address is echoed back from this very address
    /// (a [`UdpEcho`](crate::UdpEcho) bound to the VIP); replies from any
    /// other source do not count. For 1 ms pipelined probing use
    /// [`Host::start_udp_probe`].
    Udp(SocketAddr),
}

/// How a probe loop runs. Always bounded by `max_duration`.
#[derive(Debug, Clone, Copy)]
pub struct ProbePlan {
    /// What to probe.
    pub kind: ProbeKind,
    /// Time between probe starts (10 ms by default).
    pub interval: Duration,
    /// How long one probe may wait for an answer (100 ms by default).
    pub timeout: Duration,
    /// The loop ends by itself after this long (30 s by default).
    pub max_duration: Duration,
}

impl ProbePlan {
    /// Probe by TCP connect.
    pub fn tcp(target: SocketAddr) -> Self {
        Self::new(ProbeKind::Tcp(target))
    }

    /// Probe by ICMP echo.
    pub fn icmp(target: IpAddr) -> Self {
        Self::new(ProbeKind::Icmp(target))
    }

    /// Probe by UDP echo, accepting only replies from `target`.
    pub fn udp(target: SocketAddr) -> Self {
        Self::new(ProbeKind::Udp(target))
    }

    fn new(kind: ProbeKind) -> Self {
        Self {
            kind,
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(100),
            max_duration: Duration::from_secs(30),
        }
    }

    /// Sets the time between probe starts.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the per-probe answer timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the upper bound on the loop's run time.
    pub fn max_duration(mut self, max_duration: Duration) -> Self {
        self.max_duration = max_duration;
        self
    }
}

/// A stretch of consecutive failed probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the first failed probe started, from the start of the loop.
    pub start: Duration,
    /// From the start of the first failed probe to the start of the next
    /// successful one (or to the end of the loop if none succeeded).
    pub length: Duration,
    /// How many probes failed in a row.
    pub failed_probes: u32,
}

/// Result of a probe loop.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// Probes started.
    pub attempts: u32,
    /// Probes that succeeded.
    pub successes: u32,
    /// Every outage, in order.
    pub outages: Vec<Outage>,
    /// True if the last probe failed (the last outage was still going on).
    pub ended_in_outage: bool,
    /// How long the loop ran.
    pub elapsed: Duration,
}

impl ProbeReport {
    /// Length of the longest outage (zero if there was none).
    pub fn longest_outage(&self) -> Duration {
        self.outages
            .iter()
            .map(|o| o.length)
            .max()
            .unwrap_or_default()
    }
}

/// A probe loop running on a background thread in a host.
pub struct ProbeRun {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<ProbeReport>>,
}

impl ProbeRun {
    /// Stops the loop now and returns its report.
    pub fn finish(self) -> Result<ProbeReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the loop to reach its `max_duration`, then returns its report.
    pub fn wait(self) -> Result<ProbeReport> {
        self.join()
    }

    fn join(self) -> Result<ProbeReport> {
        match self.handle.join() {
            Ok(report) => report,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Host {
    /// Opens a TCP connection from this host to `target` within `timeout`.
    pub fn tcp_connect(&self, target: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        self.run(move || TcpStream::connect_timeout(&target, timeout))?
            .with_context(|| format!("TCP connect from host {} to {target} failed", self.name()))
    }

    /// Sends one ICMP(v6) echo from this host to `target`; returns the round-trip time.
    pub fn icmp_echo(&self, target: IpAddr, timeout: Duration) -> Result<Duration> {
        self.run(move || {
            let mut pinger = Pinger::new(target)?;
            pinger.echo(timeout)
        })?
        .with_context(|| format!("ICMP echo from host {} to {target}", self.name()))
    }

    /// Starts a probe loop in this host; call [`ProbeRun::finish`] to stop it
    /// and get the outages it saw.
    pub fn start_probe(&self, plan: ProbePlan) -> Result<ProbeRun> {
        if plan.interval.is_zero() || plan.max_duration > Duration::from_secs(600) {
            bail!("probe plan {plan:?}: interval must be > 0 and max_duration at most 600 s");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = self.spawn_thread(move || probe_loop(plan, &stop_flag))?;
        Ok(ProbeRun { stop, handle })
    }
}

fn probe_loop(plan: ProbePlan, stop: &AtomicBool) -> Result<ProbeReport> {
    let mut pinger = match plan.kind {
        ProbeKind::Icmp(target) => Some(Pinger::new(target)?),
        ProbeKind::Tcp(_) | ProbeKind::Udp(_) => None,
    };
    let udp = match plan.kind {
        ProbeKind::Udp(target) => Some((
            UdpSocket::bind(udp::unspecified(target)).context("cannot open a UDP socket")?,
            udp::next_tag(),
        )),
        _ => None,
    };
    let started = Instant::now();
    let mut report = ProbeReport::default();
    let mut current: Option<Outage> = None;
    let mut next_start = started;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < plan.max_duration {
        let now = Instant::now();
        if now < next_start {
            thread::sleep(next_start - now);
            continue;
        }
        let probe_start = Instant::now();
        next_start += plan.interval;
        // Never try to catch up on missed slots: one late probe, not a burst.
        next_start = next_start.max(probe_start);
        let ok = match (plan.kind, pinger.as_mut()) {
            (ProbeKind::Tcp(target), _) => {
                TcpStream::connect_timeout(&target, plan.timeout).is_ok()
            }
            (ProbeKind::Icmp(_), Some(pinger)) => pinger.echo(plan.timeout).is_ok(),
            (ProbeKind::Icmp(_), None) => false,
            (ProbeKind::Udp(target), _) => udp.as_ref().is_some_and(|(socket, tag)| {
                udp::echo_once(
                    socket,
                    target,
                    *tag,
                    u64::from(report.attempts),
                    plan.timeout,
                )
                .is_ok()
            }),
        };
        report.attempts += 1;
        let offset = probe_start - started;
        if ok {
            report.successes += 1;
            if let Some(mut outage) = current.take() {
                outage.length = offset - outage.start;
                report.outages.push(outage);
            }
        } else {
            current
                .get_or_insert(Outage {
                    start: offset,
                    length: Duration::ZERO,
                    failed_probes: 0,
                })
                .failed_probes += 1;
        }
    }
    report.elapsed = started.elapsed();
    if let Some(mut outage) = current {
        outage.length = report.elapsed - outage.start;
        report.outages.push(outage);
        report.ended_in_outage = true;
    }
    Ok(report)
}

/// ICMP echo over a raw socket (the unprivileged ping socket is disabled by
/// default in new namespaces).
struct Pinger {
    target: IpAddr,
    socket: std::os::fd::OwnedFd,
    id: u16,
    seq: u16,
}

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

impl Pinger {
    fn new(target: IpAddr) -> Result<Self> {
        let socket = match target {
            IpAddr::V4(_) => sock::raw_socket(false, libc::IPPROTO_ICMP)?,
            IpAddr::V6(_) => sock::raw_socket(true, libc::IPPROTO_ICMPV6)?,
        };
        // Distinct ids keep concurrent pingers from taking each other's replies.
        static NEXT_ID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
        let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(0x0101, Ordering::Relaxed);
        Ok(Self {
            target,
            socket,
            id,
            seq: 0,
        })
    }

    fn echo(&mut self, timeout: Duration) -> Result<Duration> {
        self.seq = self.seq.wrapping_add(1);
        let request_type = if self.target.is_ipv4() {
            ICMP_ECHO_REQUEST
        } else {
            ICMPV6_ECHO_REQUEST
        };
        let mut packet = vec![request_type, 0, 0, 0];
        packet.extend_from_slice(&self.id.to_be_bytes());
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(b"vrrplab!");
        if self.target.is_ipv4() {
            // The kernel fills in the ICMPv6 checksum itself, not the ICMPv4 one.
            let checksum = sock::internet_checksum(&[&packet]);
            packet[2..4].copy_from_slice(&checksum.to_be_bytes());
        }
        let sent_at = Instant::now();
        sock::send_to(&self.socket, &packet, &sock::SockAddr::new(self.target, 0))?;
        let deadline = sent_at + timeout;
        let mut buf = [0u8; 1500];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(anyhow!(
                    "no echo reply from {} within {timeout:?}",
                    self.target
                ));
            }
            sock::set_recv_timeout(&self.socket, deadline - now)?;
            let Some((len, source)) = sock::recv_from(&self.socket, &mut buf)? else {
                continue;
            };
            if source == self.target && self.is_our_reply(buf.get(..len).unwrap_or_default()) {
                return Ok(sent_at.elapsed());
            }
        }
    }

    fn is_our_reply(&self, datagram: &[u8]) -> bool {
        // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
        let icmp = if self.target.is_ipv4() {
            let header_len = datagram.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
            datagram.get(header_len..).unwrap_or_default()
        } else {
            datagram
        };
        let reply_type = if self.target.is_ipv4() {
            ICMP_ECHO_REPLY
        } else {
            ICMPV6_ECHO_REPLY
        };
        icmp.len() >= 8
            && icmp[0] == reply_type
            && icmp[4..6] == self.id.to_be_bytes()
            && icmp[6..8] == self.seq.to_be_bytes()
    }
}
