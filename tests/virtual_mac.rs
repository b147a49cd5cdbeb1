//! `use_vmac` without a macvlan (issue 11): while master, a router answers
//! for its VIP with the virtual router MAC 00:00:5e:00:01:VRID, so a client
//! (or an upstream router that ignores gratuitous ARP) keeps the same
//! neighbour entry across a failover and only the switch relearns where
//! the MAC lives.
//!
//! Hosts `a` and `b` route, `c` is the client, on one switch (VRID 51, so
//! the virtual MAC is 00:00:5e:00:01:33). Each router runs a UDP echo bound
//! to the VIP, so which one answers is known.
//!
//! - our agent on both routers: the client resolves the VIP to the virtual
//!   MAC (neighbour table and the ARP replies it captured), its probes are
//!   answered, and after a failover the entry has not changed while the new
//!   master answers;
//! - `vmac_xmit_base`: adverts leave from the interface's own MAC while the
//!   VIP still answers from the virtual one (and a reload switches it);
//! - interop with keepalived 2.2.7 running `use_vmac` (its macvlan), in both
//!   role orders: the same entry survives the handover either way.

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use lab::{AgentNode, Host, Keepalived, RouterPair};

const VIP: &str = "192.0.2.100";
const VMAC: &str = "00:00:5e:00:01:33";
const ECHO_PORT: u16 = 7131;
const WAIT: Duration = Duration::from_secs(15);

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

fn echo_target() -> SocketAddr {
    SocketAddr::new(vip(), ECHO_PORT)
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

/// keepalived.conf for VRID 51 with `use_vmac` and `extra` lines, starting
/// as backup (the priority decides the master).
fn config(interface: &str, priority: u8, extra: &str) -> String {
    format!(
        "global_defs {{\n    router_id n{priority}\n    vrrp_version 3\n    vrrp_garp_master_refresh 0\n}}\n\
         vrrp_instance VI_1 {{\n\
         \x20   state BACKUP\n\
         \x20   interface {interface}\n\
         \x20   virtual_router_id 51\n\
         \x20   priority {priority}\n\
         \x20   advert_int 0.2\n\
         \x20   use_vmac\n\
         {extra}\
         \x20   virtual_ipaddress {{\n\
         \x20       {VIP}/24\n\
         \x20   }}\n\
         }}\n"
    )
}

/// The MAC the client's neighbour entry for the VIP holds (None: no entry).
fn neighbour(client: &Host, iface: &str) -> Result<Option<String>> {
    let out = client.exec(&["ip", "-j", "neigh", "show", "to", VIP, "dev", iface])?;
    let entries: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(entries[0]["lladdr"].as_str().map(str::to_owned))
}

/// `bridge fdb show dev IF self`: the interface's unicast filter.
fn unicast_filter(host: &Host, iface: &str) -> Result<String> {
    Ok(host
        .exec(&["bridge", "fdb", "show", "dev", iface, "self"])?
        .stdout)
}

/// A router of the pair: our agent or keepalived.
enum Router {
    Agent(AgentNode),
    Keepalived(Keepalived),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Keepalived,
}

impl Router {
    fn start(kind: Kind, host: &Host, config: &str) -> Result<Self> {
        Ok(match kind {
            Kind::Agent => Router::Agent(AgentNode::start(host, config)?),
            Kind::Keepalived => Router::Keepalived(Keepalived::start(host, config)?),
        })
    }

    fn wait_for_state(&self, state: &str) -> Result<()> {
        match self {
            Router::Agent(agent) => {
                agent.wait_for_state("VI_1", state, WAIT)?;
            }
            Router::Keepalived(keepalived) => keepalived.wait_for_state("VI_1", state, WAIT)?,
        }
        Ok(())
    }

    /// A clean stop: priority 0, the other takes over.
    fn stop(&self) -> Result<()> {
        match self {
            Router::Agent(agent) => {
                agent.process().signal(libc::SIGTERM)?;
                agent.process().wait(Duration::from_secs(10))?;
            }
            Router::Keepalived(keepalived) => keepalived.stop()?,
        }
        Ok(())
    }
}

/// Starts `high` on `a` (priority 150) and `low` on `b` (priority 100),
/// checks the client sees the VIP at the virtual MAC and is answered by
/// `a`, stops `a` and checks the client's entry did not move while `b`
/// answers. Every frame from the VIP the client captured, and every ARP
/// reply for it, came from the virtual MAC.
fn failover_keeps_the_mac(prefix: &str, high: Kind, low: Kind) -> Result<()> {
    let net = RouterPair::new(prefix)?;
    // keepalived's replies from the VIP leave through the parent interface
    // (its route to the client's subnet came first), and the kernel's ARP
    // request for the client then names the VIP with the parent's MAC,
    // which the client believes. keepalived deployments that use a VMAC
    // set arp_announce=2 so those requests name the primary address; the
    // VIP's own frames keep the parent's source MAC, so only ARP is held
    // to the virtual MAC on a keepalived node.
    for (kind, host, iface) in [(high, &net.a, &net.a_if), (low, &net.b, &net.b_if)] {
        if kind == Kind::Keepalived {
            host.set_sysctl("net/ipv4/conf/all/arp_announce", "2")?;
            host.set_sysctl(&format!("net/ipv4/conf/{iface}/arp_announce"), "2")?;
        }
    }
    let only_agents = high == Kind::Agent && low == Kind::Agent;
    let echo_a = net.a.serve_udp_echo(echo_target())?;
    let echo_b = net.b.serve_udp_echo(echo_target())?;
    let capture = net
        .c
        .capture(&net.c_if, &format!("arp or udp port {ECHO_PORT}"), 100_000)?;
    let a = Router::start(high, &net.a, &config(&net.a_if, 150, ""))?;
    a.wait_for_state("MASTER")?;
    let b = Router::start(low, &net.b, &config(&net.b_if, 100, ""))?;
    b.wait_for_state("BACKUP")?;

    let probe = net.c.start_udp_probe(
        echo_target(),
        Duration::from_millis(10),
        Duration::from_secs(30),
    )?;
    probe.wait_for_first_answer(WAIT)?;
    // The entry may have come from a gratuitous ARP: ask again, so the
    // capture holds an ARP reply from the master.
    net.c.exec(&["ip", "neigh", "flush", "dev", &net.c_if])?;
    lab::wait_until("the client resolves the VIP again", WAIT, || {
        Ok(neighbour(&net.c, &net.c_if)?.is_some())
    })?;
    let before = neighbour(&net.c, &net.c_if)?;
    ensure!(
        before.as_deref() == Some(VMAC),
        "{high:?} master: the client resolved the VIP to {before:?}, not the virtual MAC {VMAC}"
    );
    ensure!(echo_a.answered() > 0, "a never answered");
    if let Router::Agent(agent) = &a {
        let pin = agent
            .pin_dir()
            .join("links")
            .join(&net.a_if)
            .join("tc-ingress");
        ensure!(pin.exists(), "vmac_rx is not pinned at {}", pin.display());
        ensure!(
            unicast_filter(&net.a, &net.a_if)?.contains(VMAC),
            "the master's interface does not list {VMAC} in its unicast filter"
        );
    }

    let answered_by_b = echo_b.answered();
    a.stop()?;
    b.wait_for_state("MASTER")?;
    let took_over = now_epoch();
    if high == Kind::Agent {
        ensure!(
            !unicast_filter(&net.a, &net.a_if)?.contains(VMAC),
            "the stopped agent left {VMAC} in its unicast filter"
        );
    }
    lab::wait_until("b answers the client's probes", WAIT, || {
        Ok(echo_b.answered() > answered_by_b + 20)
    })?;
    let after = neighbour(&net.c, &net.c_if)?;
    ensure!(
        after.as_deref() == Some(VMAC),
        "{low:?} took over: the client's entry for the VIP moved to {after:?}"
    );
    let trace = probe.finish()?;
    // tcpdump hands packets over in blocks retired after up to a second;
    // stopping it sooner loses the last ones.
    thread::sleep(Duration::from_millis(1500));
    capture.stop()?;

    let from_vip = capture.fields(
        &[
            "frame.time_epoch",
            "eth.src",
            "arp.opcode",
            "arp.src.hw_mac",
        ],
        &format!("(arp && arp.src.proto_ipv4 == {VIP}) || ip.src == {VIP}"),
    )?;
    let arp_replies: Vec<&Vec<String>> = from_vip
        .iter()
        .filter(|row| row.get(2).is_some_and(|op| op == "2"))
        .collect();
    ensure!(
        !arp_replies.is_empty(),
        "the client captured no ARP reply for the VIP"
    );
    let foreign: Vec<&Vec<String>> = from_vip
        .iter()
        .filter(|row| {
            let is_arp = row.get(3).is_some_and(|sender| !sender.is_empty());
            (is_arp || only_agents) && row.get(1).is_some_and(|source| source != VMAC)
                || is_arp && row.get(3).is_some_and(|sender| sender != VMAC)
        })
        .collect();
    ensure!(
        foreign.is_empty(),
        "frames for the VIP from another MAC than {VMAC}: {foreign:?}"
    );
    ensure!(
        from_vip.iter().any(|row| row
            .first()
            .and_then(|time| time.parse::<f64>().ok())
            .is_some_and(|time| time > took_over)),
        "nothing from the VIP reached the client after the takeover at {took_over}: {:?}",
        from_vip.last()
    );
    let end = trace.sent.last().copied().unwrap_or_default();
    let last = trace.window(end.saturating_sub(Duration::from_millis(500)), end);
    ensure!(last.answered > 0, "the new master does not answer: {last}");
    Ok(())
}

#[test]
fn the_client_keeps_the_virtual_mac_across_a_failover() -> Result<()> {
    failover_keeps_the_mac("vmacagent", Kind::Agent, Kind::Agent)
}

#[test]
fn keepalived_with_use_vmac_hands_over_to_the_agent() -> Result<()> {
    failover_keeps_the_mac("vmackafirst", Kind::Keepalived, Kind::Agent)
}

#[test]
fn the_agent_hands_over_to_keepalived_with_use_vmac() -> Result<()> {
    failover_keeps_the_mac("vmacagfirst", Kind::Agent, Kind::Keepalived)
}

/// The source MACs of the VRRP adverts the client captured.
fn advert_sources(host: &Host, iface: &str) -> Result<Vec<String>> {
    let capture = host.capture(iface, "ip proto 112", 10)?;
    capture.wait_for_packets(WAIT)?;
    thread::sleep(Duration::from_millis(700));
    capture.stop()?;
    let rows = capture.fields(&["eth.src"], "vrrp")?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect())
}

/// `vmac_xmit_base`: the adverts keep the interface's MAC while the VIP
/// answers from the virtual MAC; plain `use_vmac` sends them from the
/// virtual MAC. A reload switches between the two.
#[test]
fn vmac_xmit_base_keeps_adverts_on_the_interface_mac() -> Result<()> {
    let net = RouterPair::new("vmacxmit")?;
    let _echo = net.a.serve_udp_echo(echo_target())?;
    let a_mac = net.a.mac(&net.a_if)?;
    let agent = AgentNode::start(&net.a, &config(&net.a_if, 150, "    vmac_xmit_base\n"))?;
    agent.wait_for_state("VI_1", "MASTER", WAIT)?;
    let sources = advert_sources(&net.c, &net.c_if)?;
    ensure!(
        !sources.is_empty() && sources.iter().all(|source| source == &a_mac),
        "with vmac_xmit_base the adverts came from {sources:?}, not the interface's {a_mac}"
    );
    net.c
        .udp_echo_once(echo_target(), Duration::from_secs(2))
        .context("the VIP answers")?;
    let resolved = neighbour(&net.c, &net.c_if)?;
    ensure!(
        resolved.as_deref() == Some(VMAC),
        "with vmac_xmit_base the VIP resolved to {resolved:?}, not {VMAC}"
    );

    let said = agent.reload(&config(&net.a_if, 150, ""))?;
    eprintln!("reload: {said}");
    thread::sleep(Duration::from_millis(500));
    let sources = advert_sources(&net.c, &net.c_if)?;
    ensure!(
        !sources.is_empty() && sources.iter().all(|source| source == VMAC),
        "with use_vmac alone the adverts came from {sources:?}, not {VMAC}"
    );
    Ok(())
}

const VIP6: &str = "2001:db8::100";
const VMAC6: &str = "00:00:5e:00:02:33";

/// The MAC the client's IPv6 neighbour entry for the VIP holds.
fn neighbour6(client: &Host, iface: &str) -> Result<Option<String>> {
    let out = client.exec(&["ip", "-6", "-j", "neigh", "show", "to", VIP6, "dev", iface])?;
    let entries: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(entries[0]["lladdr"].as_str().map(str::to_owned))
}

/// The same over IPv6: the client resolves the VIP (neighbour solicitation
/// answered by the kernel, the target link-layer option rewritten) to
/// 00:00:5e:00:02:VRID and keeps it across a failover.
#[test]
fn ipv6_the_client_keeps_the_virtual_mac_across_a_failover() -> Result<()> {
    let net = RouterPair::new("vmacsix")?;
    for (host, iface, cidr) in [
        (&net.a, &net.a_if, "2001:db8::1/64"),
        (&net.b, &net.b_if, "2001:db8::2/64"),
        (&net.c, &net.c_if, "2001:db8::3/64"),
    ] {
        host.add_address(iface, cidr)?;
    }
    let target = SocketAddr::new(VIP6.parse().expect("literal"), ECHO_PORT);
    let _echo_a = net.a.serve_udp_echo(target)?;
    let echo_b = net.b.serve_udp_echo(target)?;
    let config6 = |interface: &str, priority: u8| {
        config(interface, priority, "").replace(&format!("{VIP}/24"), &format!("{VIP6}/64"))
    };
    let a = AgentNode::start(&net.a, &config6(&net.a_if, 150))?;
    a.wait_for_state("VI_1", "MASTER", WAIT)?;
    let b = AgentNode::start(&net.b, &config6(&net.b_if, 100))?;
    b.wait_for_state("VI_1", "BACKUP", WAIT)?;

    let probe =
        net.c
            .start_udp_probe(target, Duration::from_millis(10), Duration::from_secs(30))?;
    probe.wait_for_first_answer(WAIT)?;
    let before = neighbour6(&net.c, &net.c_if)?;
    ensure!(
        before.as_deref() == Some(VMAC6),
        "the client resolved the IPv6 VIP to {before:?}, not {VMAC6}"
    );
    let answered_by_b = echo_b.answered();
    a.process().signal(libc::SIGTERM)?;
    a.process().wait(Duration::from_secs(10))?;
    b.wait_for_state("VI_1", "MASTER", WAIT)?;
    lab::wait_until("b answers the client's probes", WAIT, || {
        Ok(echo_b.answered() > answered_by_b + 20)
    })?;
    let after = neighbour6(&net.c, &net.c_if)?;
    ensure!(
        after.as_deref() == Some(VMAC6),
        "after the failover the client's entry moved to {after:?}"
    );
    let trace = probe.finish()?;
    let end = trace.sent.last().copied().unwrap_or_default();
    let last = trace.window(end.saturating_sub(Duration::from_millis(500)), end);
    ensure!(last.answered > 0, "the new master does not answer: {last}");
    Ok(())
}
