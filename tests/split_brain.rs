//! Split-brain recovery (issue 11): two agents that cannot hear each other
//! both become master; when the link heals, the higher-priority master
//! answers the other's (lower-priority) advert with its own and announces
//! the VIP again, as keepalived does by default. So within about one advert
//! interval there is one master again, and the client that followed the
//! lower router's gratuitous ARPs during the partition points at the
//! survivor again instead of at a node that dropped the address.
//!
//! Hosts `a` (priority 200) and `b` (priority 100) and client `c` hang off
//! one switch; the partition disables `a`'s bridge port (in the switch's
//! namespace: `a` keeps its carrier, and its XDP program sees nothing). Each router runs a UDP echo bound to the VIP,
//! so the router that answers a probe is known.
//!
//! Which router hears the other first after the heal is a race. When the
//! lower router hears the master first, it yields without a word and the
//! master never learns there were two: keepalived's remedy is
//! `higher_prio_send_advert` on the yielding router (one advert with its
//! own, lower, priority as it yields), which both routers run here, so the
//! master re-announces the VIP in either order.
//!
//! The same runs with Debian's keepalived 2.2.7 on one of the routers, in
//! both role orders: each implementation heals the other.
//!
//! An agent on `a` also runs keepalived's `notify_master_rx_lower_pri`
//! script: once or more per heal, never before the first partition.
//!
//! Run twice in a row: the second partition heals with adverts identical to
//! the ones `a` recorded the first time, which only the kernel's "router
//! resumed after a silence" event reports at once.

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lab::{AgentNode, Host, Keepalived, Lab, UdpEcho, single_vip_config};

const VIP: &str = "192.0.2.100";
const ECHO_PORT: u16 = 7111;
const WAIT: Duration = Duration::from_secs(15);
/// The routers' advert interval (`advert_int 1`).
const INTERVAL: Duration = Duration::from_secs(1);
/// Slack for the status polls and a loaded test machine.
const SLACK: Duration = Duration::from_millis(500);

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

/// The MAC the client's neighbour entry for the VIP holds (None: no entry).
fn neighbour(client: &Host, iface: &str) -> Result<Option<String>> {
    let out = client.exec(&["ip", "-j", "neigh", "show", "to", VIP, "dev", iface])?;
    let entries: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(entries[0]["lladdr"].as_str().map(str::to_owned))
}

/// Stops the bridge forwarding anything to or from a port (STP state
/// "disabled"), without touching any carrier.
fn cut(switch: &Host, port: &str) -> Result<()> {
    switch.exec(&["bridge", "link", "set", "dev", port, "state", "0"])?;
    Ok(())
}

/// The port forwards again.
fn heal(switch: &Host, port: &str) -> Result<()> {
    switch.exec(&["bridge", "link", "set", "dev", port, "state", "3"])?;
    Ok(())
}

struct Net {
    lab: Lab,
    switch: Host,
    a: Host,
    b: Host,
    c: Host,
    a_if: String,
    b_if: String,
    c_if: String,
    /// `a`'s port on the switch.
    a_port: String,
}

impl Net {
    fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let (a, b, c) = (lab.add_host("a")?, lab.add_host("b")?, lab.add_host("c")?);
        // Ports are named in the order hosts attach: `a` gets port0.
        let a_if = lab.attach(&a, &switch)?;
        let b_if = lab.attach(&b, &switch)?;
        let c_if = lab.attach(&c, &switch)?;
        let a_port = "port0".to_owned();
        let switch = switch.host().clone();
        switch
            .exec(&["ip", "link", "show", "dev", &a_port])
            .context("a's switch port")?;
        a.add_address(&a_if, "192.0.2.1/24")?;
        b.add_address(&b_if, "192.0.2.2/24")?;
        c.add_address(&c_if, "192.0.2.3/24")?;
        Ok(Self {
            lab,
            switch,
            a,
            b,
            c,
            a_if,
            b_if,
            c_if,
            a_port,
        })
    }
}

/// Which echo answered one probe from the client.
fn answered_by(net: &Net, echo_a: &UdpEcho, echo_b: &UdpEcho) -> Result<&'static str> {
    let target = SocketAddr::new(vip(), ECHO_PORT);
    let (before_a, before_b) = (echo_a.answered(), echo_b.answered());
    net.c.udp_echo_once(target, Duration::from_secs(1))?;
    match (echo_a.answered() > before_a, echo_b.answered() > before_b) {
        (true, false) => Ok("a"),
        (false, true) => Ok("b"),
        other => bail!("probe answered by (a, b) = {other:?}"),
    }
}

/// A router of the pair: our agent or keepalived.
enum Router {
    Agent(AgentNode),
    Keepalived(Keepalived),
}

impl Router {
    fn start(kind: Kind, host: &Host, config: &str) -> Result<Self> {
        Ok(match kind {
            Kind::Agent => Router::Agent(AgentNode::start(host, config)?),
            Kind::Keepalived => Router::Keepalived(Keepalived::start(host, config)?),
        })
    }

    /// MASTER, BACKUP, … as the daemon says (keepalived: its last
    /// "Entering … STATE" log line).
    fn state(&self) -> Result<String> {
        match self {
            Router::Agent(agent) => agent.state("VI_1"),
            Router::Keepalived(keepalived) => {
                let needle = "(VI_1) Entering ";
                Ok(keepalived
                    .log()
                    .lines()
                    .iter()
                    .rev()
                    .find_map(|line| {
                        let rest = &line[line.find(needle)? + needle.len()..];
                        rest.split_whitespace().next().map(str::to_owned)
                    })
                    .unwrap_or_else(|| "INIT".to_owned()))
            }
        }
    }

    /// State changes so far (agent: its counter; keepalived: its log).
    fn transitions(&self) -> Result<u64> {
        match self {
            Router::Agent(agent) => agent.instance("VI_1")?["transitions"]
                .as_u64()
                .context("status has no transitions"),
            Router::Keepalived(keepalived) => Ok(keepalived
                .log()
                .lines()
                .iter()
                .filter(|line| line.contains("(VI_1) Entering "))
                .count() as u64),
        }
    }

    fn wait_for_state(&self, state: &str) -> Result<()> {
        lab::wait_until(&format!("router {state}"), WAIT, || {
            Ok(self.state()? == state)
        })?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Agent,
    Keepalived,
}

/// One partition and heal; `a` is master before and after.
fn partition_and_heal(
    net: &Net,
    a: &Router,
    b: &Router,
    echoes: (&UdpEcho, &UdpEcho),
    lower_heard: Option<&LowerHeardLog>,
    round: u32,
) -> Result<()> {
    let (a_mac, b_mac) = (net.a.mac(&net.a_if)?, net.b.mac(&net.b_if)?);
    let heard_before = lower_heard.map(LowerHeardLog::runs).transpose()?;
    cut(&net.switch, &net.a_port)?;
    b.wait_for_state("MASTER")
        .with_context(|| format!("round {round}: b takes over behind the partition"))?;
    ensure!(
        a.state()? == "MASTER",
        "round {round}: a is still master on its side"
    );
    // The client followed b's gratuitous ARPs: the scenario the heal must undo.
    lab::wait_until(
        &format!("round {round}: client follows b ({b_mac}) during the partition"),
        WAIT,
        || Ok(neighbour(&net.c, &net.c_if)?.as_deref() == Some(b_mac.as_str())),
    )?;
    ensure!(
        answered_by(net, echoes.0, echoes.1)? == "b",
        "round {round}: b answers for the VIP during the partition"
    );
    let a_transitions = a.transitions()?;
    // Let b's own announcements age past the neighbour table's lock time.
    thread::sleep(Duration::from_millis(1500));

    heal(&net.switch, &net.a_port)?;
    let one_master = lab::wait_until(
        &format!("round {round}: a MASTER and b BACKUP after the heal"),
        WAIT,
        || Ok(b.state()? == "BACKUP" && a.state()? == "MASTER"),
    )?;
    let follows_a = lab::wait_until(
        &format!("round {round}: client's neighbour entry for the VIP back at a ({a_mac})"),
        WAIT,
        || Ok(neighbour(&net.c, &net.c_if)?.as_deref() == Some(a_mac.as_str())),
    )?;
    eprintln!(
        "round {round}: one master {one_master:?}, client back at a {follows_a:?} after the heal"
    );
    ensure!(
        one_master <= INTERVAL + SLACK,
        "round {round}: two masters for {one_master:?} after the heal (advert interval {INTERVAL:?})"
    );
    ensure!(
        follows_a <= INTERVAL + SLACK,
        "round {round}: the client pointed at b for {follows_a:?} after the heal"
    );
    ensure!(
        a.transitions()? == a_transitions,
        "round {round}: a left MASTER"
    );
    ensure!(
        answered_by(net, echoes.0, echoes.1)? == "a",
        "round {round}: a answers for the VIP after the heal"
    );
    ensure!(
        !net.b.has_address(&net.b_if, vip())?,
        "round {round}: b kept the VIP"
    );
    if let (Some(log), Some(before)) = (lower_heard, heard_before) {
        lab::wait_until(
            &format!("round {round}: a ran notify_master_rx_lower_pri after the heal"),
            WAIT,
            || Ok(log.runs()? > before),
        )?;
    }
    Ok(())
}

/// Lines written by a's `notify_master_rx_lower_pri` script, one per run,
/// each the number of arguments it got (keepalived adds none).
struct LowerHeardLog {
    script: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl LowerHeardLog {
    fn new(dir: &std::path::Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("lower-heard.sh");
        let log = dir.join("lower-heard.log");
        let log_text = log.to_str().context("temp path not UTF-8")?;
        std::fs::write(&script, format!("#!/bin/sh\necho \"$#\" >> {log_text}\n"))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { script, log })
    }

    fn config_line(&self) -> Result<String> {
        let script = self.script.to_str().context("temp path not UTF-8")?;
        Ok(format!("    notify_master_rx_lower_pri {script}\n"))
    }

    fn runs(&self) -> Result<usize> {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).context("reading the notify_master_rx_lower_pri log"),
        };
        ensure!(
            text.lines().all(|line| line == "0"),
            "notify_master_rx_lower_pri got arguments: {text:?}"
        );
        Ok(text.lines().count())
    }
}

/// The pair's configuration, with keepalived's `higher_prio_send_advert`.
fn config(interface: &str, priority: u8) -> String {
    let plain = single_vip_config(interface, priority, "1", VIP);
    let with = plain.replace(
        "    advert_int 1\n",
        "    advert_int 1\n    higher_prio_send_advert\n",
    );
    assert_ne!(plain, with, "advert_int line not found in {plain}");
    with
}

/// `high` runs on `a` (priority 200), `low` on `b` (priority 100).
fn split_brain_heals(prefix: &str, high: Kind, low: Kind) -> Result<()> {
    let net = Net::new(prefix)?;
    let echo = SocketAddr::new(vip(), ECHO_PORT);
    let echo_a = net.a.serve_udp_echo(echo)?;
    let echo_b = net.b.serve_udp_echo(echo)?;
    let lower_heard = match high {
        Kind::Agent => Some(LowerHeardLog::new(net.lab.temp_dir())?),
        Kind::Keepalived => None,
    };
    let mut a_config = config(&net.a_if, 200);
    if let Some(log) = &lower_heard {
        a_config = a_config.replace(
            "    advert_int 1\n",
            &format!("    advert_int 1\n{}", log.config_line()?),
        );
    }
    let a = Router::start(high, &net.a, &a_config)?;
    a.wait_for_state("MASTER")?;
    let b = Router::start(low, &net.b, &config(&net.b_if, 100))?;
    b.wait_for_state("BACKUP")?;
    if let Some(log) = &lower_heard {
        ensure!(
            log.runs()? == 0,
            "notify_master_rx_lower_pri ran before any split brain"
        );
    }
    // The client has an entry for the VIP, at a.
    ensure!(
        answered_by(&net, &echo_a, &echo_b)? == "a",
        "a answers first"
    );
    let result = (1..=2).try_for_each(|round| {
        partition_and_heal(
            &net,
            &a,
            &b,
            (&echo_a, &echo_b),
            lower_heard.as_ref(),
            round,
        )
    });
    if result.is_err() {
        eprintln!("{}", net.lab.process_report());
    }
    result
}

#[test]
fn healed_partition_leaves_one_master_and_the_client_at_it() -> Result<()> {
    split_brain_heals("splitbrain", Kind::Agent, Kind::Agent)
}

#[test]
fn keepalived_lower_priority_master_yields_to_the_agent_and_the_client_follows() -> Result<()> {
    split_brain_heals("splitagtka", Kind::Agent, Kind::Keepalived)
}

#[test]
fn agent_lower_priority_master_yields_to_keepalived_and_the_client_follows() -> Result<()> {
    split_brain_heals("splitkaagt", Kind::Keepalived, Kind::Agent)
}
