//! The datapath outlives the daemon (issue 9): a killed agent leaves its
//! XDP and TC programs attached and its maps pinned; a restarted agent
//! adopts them and, within Master_Down_Interval, resumes as master without
//! a failover; `stop --keep-datapath` is the planned form of the same; a
//! clean stop leaves no pin; `cleanup` removes what a dead daemon left.
//!
//! Hosts `a` (priority 150) and `b` (priority 100) run the agent, `c` is the
//! client probing a UDP echo bound to the VIP on both nodes (replies come
//! from the VIP, so only the node holding it answers).

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lab::{AgentNode, Host, RouterPair, UdpProbeRun, agent_binary, single_vip_config};

const VIP: &str = "192.0.2.100";
const ECHO_PORT: u16 = 7101;
const PROBE_EVERY: Duration = Duration::from_millis(10);
const WAIT: Duration = Duration::from_secs(15);

fn config(interface: &str, priority: u8) -> String {
    single_vip_config(interface, priority, "1", VIP)
}

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

fn xdp_attached(host: &Host, iface: &str) -> Result<bool> {
    let out = host.exec(&["ip", "-d", "link", "show", "dev", iface])?;
    Ok(out.stdout.contains("prog/xdp"))
}

fn has_vip(host: &Host, iface: &str) -> Result<bool> {
    let out = host.exec(&["ip", "-4", "addr", "show", "dev", iface])?;
    Ok(out.stdout.contains(&format!("inet {VIP}/")))
}

fn transitions(node: &AgentNode) -> Result<u64> {
    node.instance("VI_1")?["transitions"]
        .as_u64()
        .context("status has no transitions count")
}

/// Both nodes running, `a` master, `b` backup, the client probing the VIP.
fn converge(net: &RouterPair) -> Result<(AgentNode, AgentNode, UdpProbeRun)> {
    let a = AgentNode::start(&net.a, &config(&net.a_if, 150))?;
    a.wait_for_state("VI_1", "MASTER", WAIT)?;
    let b = AgentNode::start(&net.b, &config(&net.b_if, 100))?;
    b.wait_for_state("VI_1", "BACKUP", WAIT)?;
    let probe = net.c.start_udp_probe(
        SocketAddr::new(vip(), ECHO_PORT),
        PROBE_EVERY,
        Duration::from_secs(60),
    )?;
    probe.wait_for_first_answer(WAIT)?;
    Ok((a, b, probe))
}

#[test]
fn a_killed_master_keeps_its_datapath_and_a_quick_restart_moves_nothing() -> Result<()> {
    let net = RouterPair::new("pinkill")?;
    let _echo_a = net.a.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let _echo_b = net.b.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let (mut a, b, probe) = converge(&net)?;
    let pins = a.pin_dir().to_path_buf();
    let link_pins = pins.join("links").join(&net.a_if);
    for pin in [
        link_pins.join("xdp-driver"),
        link_pins.join("tc-egress"),
        lab::pinned_maps_dir(&pins).join("PEERS"),
        lab::pinned_maps_dir(&pins).join("HEARTBEATS"),
    ] {
        ensure!(pin.exists(), "{} is not pinned", pin.display());
    }
    let b_transitions = transitions(&b)?;

    let killed_at = probe.now();
    a.process().kill9()?;
    a.process().wait(Duration::from_secs(5))?;
    ensure!(
        xdp_attached(&net.a, &net.a_if)?,
        "the killed agent's XDP program was detached"
    );
    ensure!(link_pins.join("tc-egress").exists(), "the TC pin is gone");
    thread::sleep(Duration::from_millis(300));

    a.restart()?;
    let log = a.process().stderr().text();
    ensure!(
        log.contains("adopted the pinned maps"),
        "the restarted agent did not adopt the maps:\n{log}"
    );
    ensure!(
        log.contains("adopted=true"),
        "the restarted agent attached new programs instead of adopting the links:\n{log}"
    );
    a.wait_for_state("VI_1", "MASTER", Duration::from_millis(500))
        .context("the restarted agent did not resume as master at once")?;
    // Several adverts later nothing has moved.
    thread::sleep(Duration::from_secs(2));
    ensure!(b.state("VI_1")? == "BACKUP", "the backup took over");
    ensure!(
        transitions(&b)? == b_transitions,
        "the backup changed state during the restart"
    );
    let trace = probe.finish()?;
    let window = trace.window(killed_at, killed_at + Duration::from_secs(2));
    ensure!(
        window.lost == 0,
        "the client lost probes across kill -9 and restart: {window}"
    );

    // A clean stop hands over and leaves nothing pinned or attached.
    a.process().sigterm()?;
    a.process().wait(Duration::from_secs(20))?;
    b.wait_for_state("VI_1", "MASTER", WAIT)?;
    ensure!(
        !pins.join("links").exists() && !lab::pinned_maps_dir(&pins).exists(),
        "a clean stop left pins under {}",
        pins.display()
    );
    ensure!(
        !xdp_attached(&net.a, &net.a_if)?,
        "a clean stop left XDP attached"
    );
    Ok(())
}

#[test]
fn stop_keep_datapath_is_a_restart_without_failover() -> Result<()> {
    let net = RouterPair::new("pinkeep")?;
    let _echo_a = net.a.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let _echo_b = net.b.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let (mut a, b, probe) = converge(&net)?;
    let b_transitions = transitions(&b)?;
    let binary = agent_binary()?;
    let binary = binary.to_str().context("binary path")?;
    let socket = a.socket().to_str().context("socket path")?.to_owned();

    let stopped_at = probe.now();
    let out = net.a.exec(&[
        binary,
        "stop",
        "--keep-datapath",
        "--control-socket",
        &socket,
    ])?;
    ensure!(out.success(), "stop --keep-datapath failed: {}", out.stderr);
    ensure!(
        !a.process().is_running(),
        "`stop` returned before the daemon exited"
    );
    ensure!(
        has_vip(&net.a, &net.a_if)?,
        "the VIP was released by a keep-datapath stop"
    );
    ensure!(xdp_attached(&net.a, &net.a_if)?, "XDP was detached");

    a.restart()?;
    a.wait_for_state("VI_1", "MASTER", Duration::from_millis(500))
        .context("the restarted agent did not resume as master at once")?;
    thread::sleep(Duration::from_secs(2));
    ensure!(
        transitions(&b)? == b_transitions,
        "the backup changed state during the planned restart"
    );
    let trace = probe.finish()?;
    let window = trace.window(stopped_at, stopped_at + Duration::from_secs(2));
    ensure!(
        window.lost == 0,
        "the client lost probes across the planned restart: {window}"
    );
    // The resumed daemon owns the address: a handover releases it.
    let out = net.a.exec(&[binary, "stop", "--control-socket", &socket])?;
    ensure!(out.success(), "stop failed: {}", out.stderr);
    ensure!(
        !has_vip(&net.a, &net.a_if)?,
        "the resumed daemon did not release the VIP it claimed"
    );
    b.wait_for_state("VI_1", "MASTER", WAIT)?;
    Ok(())
}

#[test]
fn cleanup_removes_what_a_killed_daemon_left_and_refuses_while_one_runs() -> Result<()> {
    let net = RouterPair::new("pinclean")?;
    let mut a = AgentNode::start(&net.a, &config(&net.a_if, 150))?;
    let pins = a.pin_dir().to_path_buf();
    let pin_arg = pins.to_str().context("pin path")?.to_owned();
    let binary = agent_binary()?;
    let binary = binary.to_str().context("binary path")?;
    let socket = a.socket().to_str().context("socket path")?.to_owned();

    let refused = net.a.exec_unchecked(
        &[
            binary,
            "cleanup",
            "--control-socket",
            &socket,
            "--pin-dir",
            &pin_arg,
        ],
        Duration::from_secs(10),
    )?;
    ensure!(
        !refused.success() && refused.stderr.contains("stop it first"),
        "cleanup ran beside a live daemon: {}{}",
        refused.stdout,
        refused.stderr
    );
    ensure!(
        lab::pinned_maps_dir(&pins).exists(),
        "cleanup removed live pins"
    );

    a.process().kill9()?;
    a.process().wait(Duration::from_secs(5))?;
    let out = net.a.exec(&[
        binary,
        "cleanup",
        "--interface",
        &net.a_if,
        "--control-socket",
        &socket,
        "--pin-dir",
        &pin_arg,
    ])?;
    ensure!(out.success(), "cleanup --interface failed: {}", out.stderr);
    ensure!(
        !xdp_attached(&net.a, &net.a_if)?,
        "cleanup --interface left XDP attached"
    );
    ensure!(
        lab::pinned_maps_dir(&pins).exists(),
        "cleanup --interface removed the maps too"
    );
    let out = net.a.exec(&[
        binary,
        "cleanup",
        "--control-socket",
        &socket,
        "--pin-dir",
        &pin_arg,
    ])?;
    ensure!(out.success(), "cleanup failed: {}", out.stderr);
    ensure!(
        !pins.exists(),
        "cleanup left {}: {}",
        pins.display(),
        out.stdout
    );

    // Nothing left to adopt: the next daemon starts from scratch.
    a.restart()?;
    ensure!(
        !a.process()
            .stderr()
            .text()
            .contains("adopted the pinned maps"),
        "a daemon adopted maps after cleanup"
    );
    Ok(())
}
