//! A full event ring leaves no second master. The agent runs 100 virtual
//! routers on one link with its peer event ring shrunk to one page (64
//! records; hidden `--test-event-ring-bytes`), and is master of them all.
//! Right after the agent advertised, a peer raises every router to priority
//! 200 in one burst while the daemon is stopped: the ring overflows and
//! `event_lost` moves. The kernel's
//! records still show the peer, and the daemon, which checks the counter
//! each time it empties the ring, re-reads them all: every instance is
//! BACKUP well before the agent's next advert (3 s later), which is when a
//! master would otherwise notice on its own.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lab::{Advert, AgentNode, Lab};
use serde_json::Value;

const AGENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROUTERS: u8 = 100;
/// The agent's advert interval: without a resync, a master whose event was
/// lost keeps its addresses until its next advert, this long after the burst.
const ADVERT_INT: Duration = Duration::from_secs(3);
/// One page: the kernel's smallest ring, 64 events of 64 bytes.
const RING_BYTES: &str = "4096";
/// How long after the burst an instance may still be master: half an
/// advert interval, so only a resync meets it.
const BOUND: Duration = Duration::from_millis(1500);
/// How often the peer repeats its adverts (identical ones raise no event).
const PEER_REPEAT: Duration = Duration::from_millis(500);

fn config(interface: &str) -> String {
    let mut text = String::from("global_defs {\n    router_id agent\n}\n");
    for vrid in 1..=ROUTERS {
        text.push_str(&format!(
            "vrrp_instance VI_{vrid} {{\n    interface {interface}\n    virtual_router_id {vrid}\n    \
             version 3\n    priority 100\n    advert_int {}\n    \
             virtual_ipaddress {{\n        203.0.113.{vrid}/32\n    }}\n}}\n",
            ADVERT_INT.as_secs()
        ));
    }
    text
}

/// The names of the instances in `state`.
fn instances_in(status: &Value, state: &str) -> Vec<String> {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|instance| instance["state"] == state)
        .filter_map(|instance| instance["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_full_event_ring_leaves_no_second_master() -> Result<()> {
    let lab = Lab::new("lostev")?;
    let agent_host = lab.add_host("agent")?;
    let peer = lab.add_host("peer")?;
    let link = lab.connect(&agent_host, &peer)?;
    agent_host.add_address(&link.a, &format!("{AGENT_V4}/24"))?;
    peer.add_address(&link.b, "192.0.2.2/24")?;
    let agent = AgentNode::start_with_args(
        &agent_host,
        &config(&link.a),
        &["--test-event-ring-bytes", RING_BYTES],
    )?;

    // Master_Down_Interval is about 3 × 3 s + 1.8 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = agent.status()?;
        if instances_in(&status, "MASTER").len() == usize::from(ROUTERS) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent is not master of all {ROUTERS} routers: {status}");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let lost_before = agent.status()?["counters"]["event_lost"]
        .as_u64()
        .context("status has no event_lost counter")?;

    let adverts: Vec<Advert> = (1..=ROUTERS)
        .map(|vrid| {
            let vip = Ipv4Addr::new(203, 0, 113, vrid).into();
            Advert::v3(vrid, 200, ADVERT_INT, vec![vip])
        })
        .collect();
    // Right after an advert of the agent: its next is a whole interval away.
    peer.wait_for_advert_v4(&link.b, AGENT_V4, ADVERT_INT * 2)?;
    // The daemon is stopped during the burst, as one starved of CPU would
    // be: otherwise it may read events as fast as the peer sends them
    // (it runs SCHED_RR) and the ring never fills. XDP records every advert
    // meanwhile; 64 events fit in the ring, the other 36 are lost.
    let daemon = agent.process();
    daemon.signal(libc::SIGSTOP)?;
    let sent = peer.send_advert_set(&link.b, &adverts);
    daemon.signal(libc::SIGCONT)?;
    sent?;
    let burst = Instant::now();

    // The peer keeps advertising (bounded: at most 40 repeats, 20 s).
    let stop = Arc::new(AtomicBool::new(false));
    let repeater = {
        let (stop, peer, iface, adverts) = (
            Arc::clone(&stop),
            peer.clone(),
            link.b.clone(),
            adverts.clone(),
        );
        thread::spawn(move || -> Result<()> {
            for _ in 0..40 {
                thread::sleep(PEER_REPEAT);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                peer.send_advert_set(&iface, &adverts)?;
            }
            Ok(())
        })
    };

    // Watch until no instance is master (or twice the advert interval, so
    // a failure says how long the second masters lasted).
    let mut masters;
    let mut status;
    loop {
        status = agent.status()?;
        masters = instances_in(&status, "MASTER");
        if masters.is_empty() || burst.elapsed() > ADVERT_INT * 2 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let settled = burst.elapsed();
    stop.store(true, Ordering::Relaxed);
    repeater.join().expect("the repeating peer panicked")?;

    let lost = status["counters"]["event_lost"].as_u64().unwrap_or(0);
    ensure!(
        lost > lost_before,
        "the burst of {ROUTERS} changes did not overflow a ring of {RING_BYTES} bytes \
         (event_lost {lost_before} -> {lost}); the test proves nothing: {}",
        status["counters"]
    );
    ensure!(
        masters.is_empty(),
        "{} instances still MASTER {settled:?} after a priority-200 router announced itself \
         ({} events lost): {masters:?}",
        masters.len(),
        lost - lost_before
    );
    ensure!(
        settled <= BOUND,
        "a second master lasted {settled:?} after the burst (bound {BOUND:?}, {} events lost)",
        lost - lost_before
    );
    // Every instance follows the peer.
    let backups = instances_in(&status, "BACKUP").len();
    ensure!(
        backups == usize::from(ROUTERS),
        "{backups} of {ROUTERS} instances are BACKUP: {status}"
    );
    Ok(())
}
