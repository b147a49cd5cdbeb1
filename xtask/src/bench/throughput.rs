//! Scenario 4: what the agent's XDP program costs non-VRRP traffic — UDP
//! over a veth (64-byte and 1,400-byte payloads), measured in the same run
//! with no program on the receiving interface, with an XDP program that
//! only passes ([`PassOnly`]), and with `vrrp-agent monitor` (which attaches
//! the same `vrrp_rx` program). keepalived adds nothing to the packet path,
//! so "no program" is its number; `vrrp_rx`'s own cost is its throughput
//! over the XDP_PASS-only program's, since on veth any XDP program changes
//! the receive path.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lab::{Host, Lab, Process};

use super::interrupt;
use super::xdp_pass::PassOnly;

const PORT: u16 = 9009;
/// UDP payload sizes: the smallest packets (per-packet cost dominates) and
/// near-MTU ones.
pub const PAYLOADS: [usize; 2] = [64, 1400];
/// Hard bound on packets per measurement, whatever the duration.
const MAX_PACKETS: u64 = 200_000_000;

/// What the receiving interface runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    NoProgram,
    PassOnly,
    VrrpRx,
}

impl Receiver {
    pub const ALL: [Self; 3] = [Self::NoProgram, Self::PassOnly, Self::VrrpRx];
}

/// Packets per second in one measurement.
pub struct Sample {
    pub receiver: Receiver,
    pub payload: usize,
    /// Which alternation it belongs to: samples of one round were taken
    /// back to back, so their ratio is the least noisy.
    pub round: usize,
    /// Datagrams the receiver's kernel delivered to UDP (queued, or dropped
    /// for a full socket buffer): the packet path's capacity, independent
    /// of how fast the reading thread is.
    pub delivered_pps: f64,
    pub sent_pps: f64,
}

/// `reps` rounds; in each, for each payload size, the three receivers back
/// to back.
pub fn run(reps: usize, duration: Duration, agent_binary: &Path) -> Result<Vec<Sample>> {
    let lab = Lab::new("bthru")?;
    let tx = lab.add_host("tx")?;
    let rx = lab.add_host("rx")?;
    let link = lab.connect(&tx, &rx)?;
    tx.add_address(&link.a, "198.51.100.1/24")?;
    rx.add_address(&link.b, "198.51.100.2/24")?;
    let target: SocketAddr = format!("198.51.100.2:{PORT}").parse()?;
    let ifindex = rx.ifindex(&link.b)?;
    let mut samples = Vec::new();
    for round in 0..reps {
        for payload in PAYLOADS {
            for receiver in Receiver::ALL {
                interrupt::check()?;
                let (mut pass, mut monitor) = (None, None);
                match receiver {
                    Receiver::NoProgram => {}
                    Receiver::PassOnly => {
                        pass = Some(rx.run(move || PassOnly::attach(ifindex))?.with_context(
                            || format!("attaching an XDP_PASS program to {}", link.b),
                        )?);
                    }
                    Receiver::VrrpRx => {
                        monitor = Some(attach_monitor(&rx, &link.b, agent_binary)?);
                    }
                }
                let (sent, delivered) = measure(&tx, &rx, target, payload, duration)?;
                drop(pass);
                if let Some(monitor) = monitor {
                    monitor.stop()?;
                }
                samples.push(Sample {
                    receiver,
                    payload,
                    round,
                    delivered_pps: delivered as f64 / duration.as_secs_f64(),
                    sent_pps: sent as f64 / duration.as_secs_f64(),
                });
            }
        }
    }
    Ok(samples)
}

fn attach_monitor(host: &Host, iface: &str, binary: &Path) -> Result<Process> {
    let binary = binary.to_str().context("agent path is not UTF-8")?;
    let process = host.spawn_env(
        &[binary, "monitor", "--interface", iface, "--json"],
        &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
    )?;
    process
        .stdout()
        .wait_for_json(Duration::from_secs(15), |line| line["event"] == "attached")
        .with_context(|| format!("monitor never attached:\n{}", process.report()))?;
    Ok(process)
}

/// Blasts datagrams from `tx` for `duration`; returns (sent, delivered).
fn measure(
    tx: &Host,
    rx: &Host,
    target: SocketAddr,
    payload: usize,
    duration: Duration,
) -> Result<(u64, u64)> {
    let receiver = rx
        .run(move || UdpSocket::bind(target))?
        .with_context(|| format!("cannot bind {target} in host {}", rx.name()))?;
    receiver.set_read_timeout(Some(Duration::from_millis(20)))?;
    let sender = tx
        .run(|| UdpSocket::bind(("0.0.0.0", 0)))?
        .context("cannot open the sending socket")?;
    let payload = vec![0x5au8; payload];
    // Resolve the neighbour before timing anything.
    for _ in 0..10 {
        let _ = sender.send_to(&payload, target);
    }
    interrupt::sleep(Duration::from_millis(200))?;
    let mut buf = [0u8; 2048];
    while receiver.recv_from(&mut buf).is_ok() {}

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let (stop_flag, counter) = (Arc::clone(&stop), Arc::clone(&received));
    let counting = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop_flag.load(Ordering::Relaxed) {
            if receiver.recv_from(&mut buf).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let before = udp_delivered(rx)?;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration && sent < MAX_PACKETS {
        if sender.send_to(&payload, target).is_ok() {
            sent += 1;
        }
    }
    let after = udp_delivered(rx)?;
    stop.store(true, Ordering::Relaxed);
    let _ = counting.join();
    Ok((sent, after.saturating_sub(before)))
}

/// InDatagrams + RcvbufErrors of `host`'s UDP counters.
fn udp_delivered(host: &Host) -> Result<u64> {
    // /proc/net follows the process's namespace; thread-self follows the
    // thread that `run` moved into the host.
    let snmp = host
        .run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))?
        .with_context(|| format!("cannot read UDP counters of host {}", host.name()))?;
    let counter = |name| snmp_counter(&snmp, "Udp", name);
    Ok(counter("InDatagrams")? + counter("RcvbufErrors")?)
}

/// Counter `name` of protocol `proto` in /proc/net/snmp, where each protocol
/// has a header line of names followed by a line of values.
fn snmp_counter(snmp: &str, proto: &str, name: &str) -> Result<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|line| line.starts_with(&prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        anyhow::bail!("/proc/net/snmp has no {proto} header and value lines");
    };
    let position = names
        .split_whitespace()
        .position(|n| n == name)
        .with_context(|| format!("/proc/net/snmp has no {proto} counter {name}"))?;
    values
        .split_whitespace()
        .nth(position)
        .with_context(|| format!("/proc/net/snmp {proto} values line is short"))?
        .parse()
        .with_context(|| format!("/proc/net/snmp {proto} {name} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_udp_counters_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n\
                    Udp: 1000 3 0 7 25\n";
        assert_eq!(snmp_counter(snmp, "Udp", "InDatagrams").unwrap(), 1000);
        assert_eq!(snmp_counter(snmp, "Udp", "RcvbufErrors").unwrap(), 25);
        assert!(snmp_counter(snmp, "Udp", "Missing").is_err());
        assert!(snmp_counter(snmp, "UdpLite", "InDatagrams").is_err());
    }
}
