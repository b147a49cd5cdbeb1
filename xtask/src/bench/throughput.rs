//! Scenario 4: what the agent's XDP program costs non-VRRP traffic — small
//! UDP packets over a veth, with and without `vrrp-agent monitor` (which
//! attaches the same `vrrp_rx` program) on the receiving interface.
//! keepalived adds nothing to the packet path, so "no program" is its number.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lab::{Host, Lab, Process};

use super::interrupt;
use super::router::Implementation;

const PORT: u16 = 9009;
const PAYLOAD: usize = 64;
/// Hard bound on packets per measurement, whatever the duration.
const MAX_PACKETS: u64 = 200_000_000;

/// Packets per second received in one measurement.
pub struct Sample {
    pub implementation: Implementation,
    pub received_pps: f64,
    pub sent_pps: f64,
}

/// `reps` pairs of measurements, alternating without/with the program.
pub fn run(reps: usize, duration: Duration, agent_binary: &Path) -> Result<Vec<Sample>> {
    let lab = Lab::new("bthru")?;
    let tx = lab.add_host("tx")?;
    let rx = lab.add_host("rx")?;
    let link = lab.connect(&tx, &rx)?;
    tx.add_address(&link.a, "198.51.100.1/24")?;
    rx.add_address(&link.b, "198.51.100.2/24")?;
    let target: SocketAddr = format!("198.51.100.2:{PORT}").parse()?;
    let mut samples = Vec::new();
    for _ in 0..reps {
        for implementation in Implementation::BOTH {
            interrupt::check()?;
            let monitor = match implementation {
                Implementation::Keepalived => None,
                Implementation::Agent => Some(attach_monitor(&rx, &link.b, agent_binary)?),
            };
            let (sent, received) = measure(&tx, &rx, target, duration)?;
            if let Some(monitor) = monitor {
                monitor.stop()?;
            }
            samples.push(Sample {
                implementation,
                received_pps: received as f64 / duration.as_secs_f64(),
                sent_pps: sent as f64 / duration.as_secs_f64(),
            });
        }
    }
    Ok(samples)
}

fn attach_monitor(host: &Host, iface: &str, binary: &Path) -> Result<Process> {
    let binary = binary.to_str().context("agent path is not UTF-8")?;
    let process = host.spawn_env(
        &[binary, "monitor", "--interface", iface, "--json"],
        &[("RUST_LOG", "info")],
    )?;
    process
        .stdout()
        .wait_for_json(Duration::from_secs(15), |line| line["event"] == "attached")
        .with_context(|| format!("monitor never attached:\n{}", process.report()))?;
    Ok(process)
}

/// Blasts datagrams from `tx` for `duration`; returns (sent, received).
fn measure(tx: &Host, rx: &Host, target: SocketAddr, duration: Duration) -> Result<(u64, u64)> {
    let receiver = rx
        .run(move || UdpSocket::bind(target))?
        .with_context(|| format!("cannot bind {target} in host {}", rx.name()))?;
    receiver.set_read_timeout(Some(Duration::from_millis(20)))?;
    let sender = tx
        .run(|| UdpSocket::bind(("0.0.0.0", 0)))?
        .context("cannot open the sending socket")?;
    let payload = [0x5au8; PAYLOAD];
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
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration && sent < MAX_PACKETS {
        if sender.send_to(&payload, target).is_ok() {
            sent += 1;
        }
    }
    // Only packets received within the window count.
    let counted = received.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = counting.join();
    Ok((sent, counted))
}
