//! Fencing in the kernel (issue 9): a master whose daemon is stopped
//! (SIGSTOP) or killed (kill -9, its VIP left on the interface) stops
//! answering for the VIP the moment the backup takes over. Its kernel would
//! still answer ARP for the address and the service bound to it would still
//! reply; the pinned XDP program sees the new master's first advert while
//! the daemon's heartbeat is overdue and fences the instance, so a client
//! never sees the zombie's MAC again.
//!
//! Hosts `a` (priority 150, the master) and `b` (priority 100) run the agent
//! and a UDP echo bound to the VIP; `c` probes the VIP and, once `b` is
//! master, forgets its neighbour entry so that it asks again by ARP, which
//! both nodes receive.

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use lab::{AgentNode, RouterPair, single_vip_config};

const VIP: &str = "192.0.2.100";
const ECHO_PORT: u16 = 7102;
const WAIT: Duration = Duration::from_secs(15);

fn config(interface: &str, priority: u8) -> String {
    single_vip_config(interface, priority, "0.1", VIP)
}

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

/// How the master fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Stop,
    Kill,
}

/// Fails the master, waits for the backup to take over, makes the client
/// resolve the VIP again, and checks that every frame sourced from the VIP
/// (ARP replies and echo replies) after the takeover came from `b`.
fn zombie_stays_silent(failure: Failure) -> Result<()> {
    let net = RouterPair::new(match failure {
        Failure::Stop => "fencestop",
        Failure::Kill => "fencekill",
    })?;
    let echo = SocketAddr::new(vip(), ECHO_PORT);
    let _echo_a = net.a.serve_udp_echo(echo)?;
    let _echo_b = net.b.serve_udp_echo(echo)?;
    let mut a = AgentNode::start(&net.a, &config(&net.a_if, 150))?;
    a.wait_for_state("VI_1", "MASTER", WAIT)?;
    let b = AgentNode::start(&net.b, &config(&net.b_if, 100))?;
    b.wait_for_state("VI_1", "BACKUP", WAIT)?;
    let (a_mac, b_mac) = (net.a.mac(&net.a_if)?, net.b.mac(&net.b_if)?);
    let probe = net
        .c
        .start_udp_probe(echo, Duration::from_millis(5), Duration::from_secs(30))?;
    probe.wait_for_first_answer(WAIT)?;
    let capture = net
        .c
        .capture(&net.c_if, &format!("arp or udp port {ECHO_PORT}"), 100_000)?;

    match failure {
        Failure::Stop => a.process().signal(libc::SIGSTOP)?,
        Failure::Kill => {
            a.process().kill9()?;
            a.process().wait(Duration::from_secs(5))?;
        }
    }
    b.wait_for_state("VI_1", "MASTER", WAIT)?;
    let took_over = now_epoch();
    // The client forgets whose MAC the VIP had and asks everyone again,
    // twice, while it keeps probing.
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(300));
        net.c.exec(&["ip", "neigh", "flush", "dev", &net.c_if])?;
    }
    thread::sleep(Duration::from_millis(500));
    let trace = probe.finish()?;
    capture.stop()?;

    let from_vip = capture.fields(
        &["frame.time_epoch", "eth.src", "arp.opcode", "udp.srcport"],
        &format!("(arp.opcode == 2 && arp.src.proto_ipv4 == {VIP}) || ip.src == {VIP}"),
    )?;
    let after: Vec<&Vec<String>> = from_vip
        .iter()
        .filter(|row| {
            row.first()
                .and_then(|time| time.parse::<f64>().ok())
                .is_some_and(|time| time > took_over)
        })
        .collect();
    let zombie: Vec<&&Vec<String>> = after
        .iter()
        .filter(|row| row.get(1).is_some_and(|source| source == &a_mac))
        .collect();
    ensure!(
        zombie.is_empty(),
        "{failure:?}: the failed master ({a_mac}) still answered for the VIP after the takeover: {zombie:?}"
    );
    let arp_from_b = after
        .iter()
        .filter(|row| row.get(1) == Some(&b_mac) && row.get(2).is_some_and(|op| op == "2"))
        .count();
    ensure!(
        arp_from_b > 0,
        "{failure:?}: the new master never answered the client's ARP: {after:?}"
    );
    ensure!(
        trace.successes() > 0,
        "{failure:?}: the client got no echo at all"
    );
    let last_second = trace.window(
        probe_end(&trace).saturating_sub(Duration::from_millis(400)),
        probe_end(&trace),
    );
    ensure!(
        last_second.answered > 0,
        "{failure:?}: the new master does not answer: {last_second}"
    );

    // The fence counted what it stopped; the counters live in the pinned
    // maps, so the daemon reads them after it wakes up or restarts.
    match failure {
        Failure::Stop => a.process().signal(libc::SIGCONT)?,
        Failure::Kill => a.restart()?,
    }
    let counters = &a.status()?["counters"];
    let fenced = counters["vip_fenced"].as_u64().unwrap_or(0);
    ensure!(
        fenced > 0,
        "{failure:?}: the fence stopped nothing: {counters}"
    );
    Ok(())
}

fn probe_end(trace: &lab::UdpTrace) -> Duration {
    trace.sent.last().copied().unwrap_or_default()
}

#[test]
fn a_stopped_master_goes_silent_for_its_vip_when_the_backup_takes_over() -> Result<()> {
    zombie_stays_silent(Failure::Stop)
}

#[test]
fn a_killed_master_with_its_vip_left_behind_stays_silent() -> Result<()> {
    zombie_stays_silent(Failure::Kill)
}
