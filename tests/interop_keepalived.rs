//! Migration interop: one node runs vrrp-agent, the other Debian's keepalived
//! 2.2.7, on one switch with a client (on-link in the VIP's subnet) and a
//! capture point on the agent's switch port. Every variant runs both role
//! assignments (agent higher priority, keepalived higher priority) in one
//! lab and checks, per assignment:
//! 1. one master after start, the right one (VIP, `status --json`, keepalived's log);
//! 2. kill -9 of the master: the other takes over, the client reaches the VIP there;
//! 3. SIGTERM of the master: takeover after about Skew_Time (priority-0 advert);
//! 4. the returning higher-priority node preempts, but not with `nopreempt`;
//! 5. no two masters after convergence except at handover instants (capture).
//!
//! VRRPv3 with the message-only checksum cannot be played by keepalived
//! 2.2.7 (see `v3_ipv4_message_only_checksum_adverts_are_accepted`), and
//! mismatched settings get their own test (`v2_mismatched_settings...`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use lab::{Advert, AdvertBurst, Capture, Host, Keepalived, Lab, Process, TcpService};
use serde_json::Value;

const VRID: u8 = 51;
const INSTANCE: &str = "VI_1";
const PORT: u16 = 8080;
const HIGH: u8 = 200;
const LOW: u8 = 100;
/// The agent is attached to the switch first, so its switch port is `port0`:
/// every advert to or from the agent passes there exactly once, unicast too.
const AGENT_PORT: &str = "port0";
const AGENT_V4: &str = "192.0.2.1";
const KEEPALIVED_V4: &str = "192.0.2.2";

/// One VRRP setting both implementations run with.
#[derive(Debug, Clone, Copy)]
struct Variant {
    name: &'static str,
    version: u8,
    advert_int: Duration,
    ipv6: bool,
    unicast: bool,
    auth_pass: Option<&'static str>,
}

impl Variant {
    fn vip(&self) -> IpAddr {
        if self.ipv6 {
            "2001:db8::10".parse().expect("literal")
        } else {
            "203.0.113.10".parse().expect("literal")
        }
    }

    fn vip_cidr(&self) -> String {
        format!("{}/{}", self.vip(), if self.ipv6 { 64 } else { 24 })
    }

    fn client_cidr(&self) -> &'static str {
        if self.ipv6 {
            "2001:db8::100/64"
        } else {
            "203.0.113.100/24"
        }
    }

    fn service(&self) -> SocketAddr {
        SocketAddr::new(self.vip(), PORT)
    }

    fn listen(&self) -> SocketAddr {
        if self.ipv6 {
            "[::]:8080".parse().expect("literal")
        } else {
            "0.0.0.0:8080".parse().expect("literal")
        }
    }

    /// RFC 3768/5798 Skew_Time for `priority`.
    fn skew(&self, priority: u8) -> Duration {
        self.advert_int
            .mul_f64(f64::from(256 - u16::from(priority)) / 256.0)
    }

    fn master_down(&self, priority: u8) -> Duration {
        self.advert_int * 3 + self.skew(priority)
    }

    /// Generous bound for anything that needs a master-down interval plus
    /// process start-up on a loaded 2-core machine.
    fn settle(&self) -> Duration {
        self.master_down(LOW) * 2 + Duration::from_secs(8)
    }

    /// keepalived.conf text, read by both keepalived and the agent.
    fn config(&self, node: &str, iface: &str, priority: u8, nopreempt: bool) -> String {
        self.config_with(
            node,
            iface,
            priority,
            nopreempt,
            self.advert_int,
            self.auth_pass,
        )
    }

    fn config_with(
        &self,
        node: &str,
        iface: &str,
        priority: u8,
        nopreempt: bool,
        advert_int: Duration,
        auth_pass: Option<&str>,
    ) -> String {
        let mut extra = String::new();
        if nopreempt {
            extra.push_str("    nopreempt\n");
        }
        if let Some(pass) = auth_pass {
            extra.push_str(&format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}\n"
            ));
        }
        if self.unicast {
            let (own, peer) = if node == "agent" {
                (AGENT_V4, KEEPALIVED_V4)
            } else {
                (KEEPALIVED_V4, AGENT_V4)
            };
            extra.push_str(&format!(
                "    unicast_src_ip {own}\n    unicast_peer {{\n        {peer}\n    }}\n"
            ));
        }
        format!(
            "global_defs {{
    router_id lab_{node}
}}
vrrp_instance {INSTANCE} {{
    state BACKUP
    interface {iface}
    version {version}
    virtual_router_id {VRID}
    priority {priority}
    advert_int {int}
{extra}    virtual_ipaddress {{
        {vip}
    }}
}}
",
            version = self.version,
            int = advert_int.as_secs_f64(),
            vip = self.vip_cidr(),
        )
    }
}

const V2_PASS: Variant = Variant {
    name: "v2-pass",
    version: 2,
    advert_int: Duration::from_secs(1),
    ipv6: false,
    unicast: false,
    auth_pass: Some("s3cret"),
};

const V3_IPV4: Variant = Variant {
    name: "v3-ipv4",
    version: 3,
    advert_int: Duration::from_millis(500),
    ipv6: false,
    unicast: false,
    auth_pass: None,
};

const V3_IPV6: Variant = Variant {
    name: "v3-ipv6",
    version: 3,
    advert_int: Duration::from_millis(500),
    ipv6: true,
    unicast: false,
    auth_pass: None,
};

const V3_UNICAST: Variant = Variant {
    name: "v3-unicast",
    version: 3,
    advert_int: Duration::from_millis(500),
    ipv6: false,
    unicast: true,
    auth_pass: None,
};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Which implementation a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Keepalived,
}

enum Running {
    Agent { process: Process, socket: PathBuf },
    Keepalived(Keepalived),
}

/// One VRRP router of the pair; its daemon can be stopped and started again.
struct Node {
    kind: Kind,
    host: Host,
    iface: String,
    running: Option<Running>,
    /// Output of daemons that ended, for failure reports.
    history: String,
    starts: u32,
}

impl Node {
    fn new(kind: Kind, host: Host, iface: String) -> Self {
        Self {
            kind,
            host,
            iface,
            running: None,
            history: String::new(),
            starts: 0,
        }
    }

    fn label(&self) -> &'static str {
        match self.kind {
            Kind::Agent => "agent",
            Kind::Keepalived => "keepalived",
        }
    }

    fn start(&mut self, config: &str) -> Result<()> {
        self.retire();
        self.starts += 1;
        self.running = Some(match self.kind {
            Kind::Keepalived => Running::Keepalived(Keepalived::start(&self.host, config)?),
            Kind::Agent => {
                let dir = self.host.temp_dir();
                let conf = dir.join(format!("agent-{}.conf", self.starts));
                let socket = dir.join(format!("agent-{}.sock", self.starts));
                std::fs::write(&conf, config)
                    .with_context(|| format!("cannot write {}", conf.display()))?;
                // One pinned datapath per host, kept across restarts as on
                // a host with /sys/fs/bpf.
                let bpffs = dir.join(format!("bpf-{}", self.host.name()));
                if !bpffs.exists() {
                    self.host.mount_bpffs(&bpffs)?;
                }
                let pins = bpffs.join("vrrp-agent");
                let binary = lab::agent_binary()?;
                let process = self.host.spawn_env(
                    &[
                        binary.to_str().context("agent path is not UTF-8")?,
                        "-f",
                        conf.to_str().context("temp path is not UTF-8")?,
                        "--control-socket",
                        socket.to_str().context("temp path is not UTF-8")?,
                        "--pin-dir",
                        pins.to_str().context("temp path is not UTF-8")?,
                    ],
                    &[("RUST_LOG", "info")],
                )?;
                process.set_grace(Duration::from_secs(3));
                Running::Agent { process, socket }
            }
        });
        if self.kind == Kind::Agent {
            lab::wait_until(
                "agent control socket answers",
                Duration::from_secs(20),
                || {
                    if let Some(Running::Agent { process, .. }) = &self.running
                        && !process.is_running()
                    {
                        bail!("the agent exited at start:\n{}", process.report());
                    }
                    Ok(self.agent_status().is_ok())
                },
            )?;
        }
        Ok(())
    }

    fn process(&self) -> Option<&Process> {
        match self.running.as_ref()? {
            Running::Agent { process, .. } => Some(process),
            Running::Keepalived(keepalived) => Some(keepalived.process()),
        }
    }

    /// Keeps the log of the finished daemon, then forgets it.
    fn retire(&mut self) {
        if let Some(process) = self.process() {
            let text = format!(
                "--- {} run {}:\n{}\n{}\n",
                self.label(),
                self.starts,
                process.stdout().text(),
                process.stderr().text()
            );
            self.history.push_str(&text);
        }
        self.running = None;
    }

    fn kill9(&mut self) -> Result<()> {
        let process = self
            .process()
            .context("kill -9 of a node that is not running")?;
        process.kill9()?;
        process.wait(Duration::from_secs(5))?;
        self.retire();
        Ok(())
    }

    /// SIGTERM; returns when the signal was sent.
    fn sigterm(&self) -> Result<Instant> {
        let process = self
            .process()
            .context("SIGTERM to a node that is not running")?;
        let sent = Instant::now();
        process.sigterm()?;
        Ok(sent)
    }

    fn wait_exit(&mut self) -> Result<()> {
        if let Some(process) = self.process() {
            let status = process.wait(Duration::from_secs(10))?;
            ensure!(
                status.success() || self.kind == Kind::Keepalived,
                "{} exited with {status} after SIGTERM:\n{}",
                self.label(),
                process.report()
            );
        }
        self.retire();
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        if self.running.is_some() {
            self.sigterm()?;
            self.wait_exit()?;
        }
        Ok(())
    }

    fn agent_status(&self) -> Result<Value> {
        let Some(Running::Agent { socket, .. }) = &self.running else {
            bail!("no agent running on host {}", self.host.name());
        };
        let binary = lab::agent_binary()?;
        let out = self.host.exec(&[
            binary.to_str().context("agent path is not UTF-8")?,
            "status",
            "--json",
            "--control-socket",
            socket.to_str().context("temp path is not UTF-8")?,
        ])?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("`vrrp-agent status --json` printed {:?}", out.stdout))
    }

    fn agent_counter(&self, name: &str) -> Result<u64> {
        let status = self.agent_status()?;
        status["counters"][name]
            .as_u64()
            .with_context(|| format!("status has no counter {name:?}: {status}"))
    }

    /// MASTER/BACKUP/... as the daemon itself says (agent: `status --json`;
    /// keepalived: its last "Entering ... STATE" log line), DOWN when stopped.
    fn state(&self) -> Result<String> {
        match &self.running {
            None => Ok("DOWN".to_owned()),
            Some(Running::Agent { .. }) => {
                let status = self.agent_status()?;
                let instance = status["instances"]
                    .as_array()
                    .and_then(|all| all.iter().find(|i| i["name"] == INSTANCE))
                    .with_context(|| format!("status lists no instance {INSTANCE}: {status}"))?;
                Ok(instance["state"].as_str().unwrap_or("?").to_owned())
            }
            Some(Running::Keepalived(keepalived)) => {
                let needle = format!("({INSTANCE}) Entering ");
                Ok(keepalived
                    .log()
                    .lines()
                    .iter()
                    .rev()
                    .find_map(|line| {
                        let rest = &line[line.find(&needle)? + needle.len()..];
                        rest.split_whitespace().next().map(str::to_owned)
                    })
                    .unwrap_or_else(|| "INIT".to_owned()))
            }
        }
    }

    fn has_vip(&self, variant: &Variant) -> Result<bool> {
        self.host.has_address(&self.iface, variant.vip())
    }

    fn report(&self) -> String {
        let mut text = self.history.clone();
        if let Some(process) = self.process() {
            text.push_str(&format!(
                "--- {} (running):\n{}\n{}\n",
                self.label(),
                process.stdout().text(),
                process.stderr().text()
            ));
        }
        text
    }
}

/// The lab of one variant: agent, keepalived and client on one switch.
struct Pair {
    variant: Variant,
    agent: Node,
    keepalived: Node,
    client: Host,
    switch_host: Host,
    /// Failed checks that did not stop the run (see [`check_stale_vip_released`]).
    findings: Vec<String>,
    _services: Vec<TcpService>,
    /// Last, so the daemons above are stopped before the namespaces go.
    _lab: Lab,
}

impl Pair {
    fn new(variant: Variant, prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let agent_host = lab.add_host("agent")?;
        let keepalived_host = lab.add_host("ka")?;
        let client = lab.add_host("client")?;
        let agent_if = lab.attach(&agent_host, &switch)?;
        let keepalived_if = lab.attach(&keepalived_host, &switch)?;
        let client_if = lab.attach(&client, &switch)?;
        agent_host.add_address(&agent_if, &format!("{AGENT_V4}/24"))?;
        keepalived_host.add_address(&keepalived_if, &format!("{KEEPALIVED_V4}/24"))?;
        client.add_address(&client_if, "192.0.2.100/24")?;
        client.add_address(&client_if, variant.client_cidr())?;
        let services = vec![
            agent_host.serve_tcp(variant.listen())?,
            keepalived_host.serve_tcp(variant.listen())?,
        ];
        if variant.ipv6 {
            // Link-locals appear once the links are up; adverts need them.
            for (host, iface) in [(&agent_host, &agent_if), (&keepalived_host, &keepalived_if)] {
                lab::wait_until("IPv6 link-local address", Duration::from_secs(5), || {
                    Ok(host.ipv6_link_local(iface).is_ok())
                })?;
            }
        }
        Ok(Self {
            switch_host: switch.host().clone(),
            agent: Node::new(Kind::Agent, agent_host, agent_if),
            keepalived: Node::new(Kind::Keepalived, keepalived_host, keepalived_if),
            client,
            variant,
            _lab: lab,
            findings: Vec::new(),
            _services: services,
        })
    }

    fn node(&mut self, kind: Kind) -> &mut Node {
        match kind {
            Kind::Agent => &mut self.agent,
            Kind::Keepalived => &mut self.keepalived,
        }
    }

    fn pair(&self, kind: Kind) -> (&Node, &Node) {
        match kind {
            Kind::Agent => (&self.agent, &self.keepalived),
            Kind::Keepalived => (&self.keepalived, &self.agent),
        }
    }

    fn start(&mut self, kind: Kind, priority: u8, nopreempt: bool) -> Result<()> {
        let variant = self.variant;
        let node = self.node(kind);
        let config = variant.config(node.label(), &node.iface, priority, nopreempt);
        node.start(&config)
            .with_context(|| format!("starting {} with priority {priority}", node.label()))
    }

    /// Which host answers on the VIP (a [`TcpService`] names its host).
    fn vip_answer(&self) -> Option<String> {
        self.client
            .tcp_request(self.variant.service(), Duration::from_millis(300))
            .ok()
    }

    /// Waits until `master` holds the VIP and says MASTER, the other node
    /// (if running) is BACKUP without the VIP, and the client reaches the VIP
    /// on `master`. Returns how long that took.
    fn wait_master(&self, master: Kind, timeout: Duration) -> Result<Duration> {
        let (m, b) = self.pair(master);
        let waited = lab::wait_until("convergence", timeout, || {
            Ok(m.state()? == "MASTER"
                && m.has_vip(&self.variant)?
                // A node killed with -9 keeps its VIP until it runs again (like
                // a crashed host); only a running backup must have let go.
                && (b.running.is_none()
                    || (b.state()? == "BACKUP" && !b.has_vip(&self.variant)?))
                && self.vip_answer().as_deref() == Some(m.host.name()))
        });
        if let Err(err) = waited {
            bail!(
                "{err}: expected {} MASTER with the VIP and {} BACKUP without; now {} is {} (VIP {:?}), {} is {} (VIP {:?}), client reaches {:?}\n{}",
                m.label(),
                b.label(),
                m.label(),
                m.state().unwrap_or_else(|e| format!("{e:#}")),
                m.has_vip(&self.variant).ok(),
                b.label(),
                b.state().unwrap_or_else(|e| format!("{e:#}")),
                b.has_vip(&self.variant).ok(),
                self.vip_answer(),
                self.logs()
            );
        }
        waited
    }

    /// Time until the client is answered by `kind`'s host on the VIP.
    fn wait_answer_from(&self, kind: Kind, since: Instant, timeout: Duration) -> Result<Duration> {
        let name = self.pair(kind).0.host.name().to_owned();
        lab::wait_until(&format!("VIP answered by {name}"), timeout, || {
            Ok(self.vip_answer().as_deref() == Some(name.as_str()))
        })
        .with_context(|| self.logs())?;
        Ok(since.elapsed())
    }

    fn capture(&self) -> Result<Capture> {
        self.switch_host
            .capture(AGENT_PORT, "ip proto 112 or ip6 proto 112", 100_000)
    }

    fn logs(&self) -> String {
        format!(
            "agent log:\n{}\nkeepalived log:\n{}",
            tail(&self.agent.report(), 60),
            tail(&self.keepalived.report(), 60)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A period around a planned change of master during which two senders may
/// overlap (the old master's last advert crossing the new one's first).
#[derive(Debug, Clone, Copy)]
struct Handover {
    from: f64,
    to: f64,
}

/// A node killed with -9 left the VIP on its interface. keepalived removes
/// its VIPs when it initialises ("removing VIPs.") and so must a restarted
/// agent before it sits in BACKUP; otherwise the address stays on two hosts
/// once it is not master. A failure is recorded and the stale address removed
/// by hand so the rest of the matrix still tests something.
fn check_stale_vip_released(pair: &mut Pair, kind: Kind, tag: &str) -> Result<()> {
    let variant = pair.variant;
    let node = pair.node(kind);
    lab::wait_until(
        "restarted node reports a state",
        Duration::from_secs(10),
        || Ok(node.state()? != "INIT"),
    )
    .with_context(|| node.report())?;
    // Give keepalived's or the agent's init a moment to finish its cleanup.
    thread::sleep(variant.advert_int / 2);
    let state = node.state()?;
    if state == "BACKUP" && node.has_vip(&variant)? {
        let finding = format!(
            "{tag} {} restarted after kill -9 is BACKUP but keeps the stale VIP {} on {} (keepalived removes VIPs at init); removed by hand to go on",
            node.label(),
            variant.vip(),
            node.iface
        );
        println!("{finding}");
        node.host.del_address(&node.iface, &variant.vip_cidr())?;
        pair.findings.push(finding);
    }
    Ok(())
}

/// Runs the five checks with `high` as the higher-priority node.
fn run_role_assignment(pair: &mut Pair, high: Kind) -> Result<()> {
    let variant = pair.variant;
    let low = match high {
        Kind::Agent => Kind::Keepalived,
        Kind::Keepalived => Kind::Agent,
    };
    let (high_label, low_label) = (pair.node(high).label(), pair.node(low).label());
    let tag = format!("[{} high={high_label}]", variant.name);
    let settle = variant.settle();
    let mut handovers = Vec::new();

    // 1. Start together: exactly one master, the higher-priority one.
    pair.start(low, LOW, false)?;
    pair.start(high, HIGH, false)?;
    let took = pair.wait_master(high, settle)?;
    println!("{tag} converged {took:?} after start: {high_label} MASTER");
    let capture = pair.capture()?;
    let capture_started = unix_now();
    // Still one master a few intervals later.
    thread::sleep(variant.advert_int * 3);
    pair.wait_master(high, Duration::ZERO)?;

    // 2. kill -9 of the master: the backup takes over, the VIP answers from it.
    let from = unix_now();
    let killed = Instant::now();
    pair.node(high).kill9()?;
    let answered = pair.wait_answer_from(low, killed, settle)?;
    pair.wait_master(low, settle)?;
    println!(
        "{tag} kill -9 {high_label}: VIP answered by {low_label} after {answered:?} (master down {:?})",
        variant.master_down(LOW)
    );
    handovers.push(Handover {
        from,
        to: unix_now(),
    });

    // 4a. The killed higher-priority node returns and preempts.
    let from = unix_now();
    let restarted = Instant::now();
    pair.start(high, HIGH, false)?;
    check_stale_vip_released(pair, high, &tag)?;
    pair.wait_master(high, settle)?;
    println!(
        "{tag} {high_label} back: preempted after {:?}",
        restarted.elapsed()
    );
    handovers.push(Handover {
        from,
        to: unix_now(),
    });

    // 3. SIGTERM of the master: priority 0 makes the backup take over after Skew_Time.
    let from = unix_now();
    let sent = pair.node(high).sigterm()?;
    let (l, iface) = {
        let node = pair.node(low);
        (node.host.clone(), node.iface.clone())
    };
    l.wait_for_address(&iface, variant.vip(), settle)
        .with_context(|| pair.logs())?;
    let takeover = sent.elapsed();
    pair.node(high).wait_exit()?;
    pair.wait_master(low, settle)?;
    let skew = variant.skew(LOW);
    println!(
        "{tag} SIGTERM {high_label}: {low_label} holds the VIP after {takeover:?} (Skew_Time {skew:?}, master down {:?})",
        variant.master_down(LOW)
    );
    ensure!(
        takeover < variant.advert_int * 2 + skew,
        "{tag} takeover after SIGTERM took {takeover:?}, about a master-down interval ({:?}) rather than Skew_Time {skew:?}: the priority-0 advert was not honoured\n{}",
        variant.master_down(LOW),
        pair.logs()
    );
    handovers.push(Handover {
        from,
        to: unix_now(),
    });

    // 4b. Back with nopreempt (keepalived wants state BACKUP, which we use):
    // the higher-priority node stays BACKUP.
    pair.start(high, HIGH, true)?;
    let hold = variant.master_down(HIGH) * 3 + Duration::from_secs(1);
    let deadline = Instant::now() + hold;
    let mut high_backup_seen = false;
    while Instant::now() < deadline {
        let (h, _) = pair.pair(high);
        let state = h.state()?;
        ensure!(
            state != "MASTER" && !h.has_vip(&variant)?,
            "{tag} {high_label} with nopreempt took over (state {state})\n{}",
            pair.logs()
        );
        high_backup_seen |= state == "BACKUP";
        thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        high_backup_seen,
        "{tag} {high_label} with nopreempt never reported BACKUP\n{}",
        pair.logs()
    );
    pair.wait_master(low, Duration::ZERO)?;
    println!("{tag} {high_label} with nopreempt stayed BACKUP for {hold:?}");

    // 5. Adverts on the wire: never two senders after convergence, except
    // around the handovers made on purpose.
    let capture_ended = unix_now();
    capture.stop()?;
    check_single_master(
        &capture,
        &variant,
        &tag,
        capture_started,
        capture_ended,
        &handovers,
    )
    .with_context(|| pair.logs())?;

    pair.node(high).stop()?;
    pair.node(low).stop()?;
    for kind in [high, low] {
        let node = pair.node(kind);
        ensure!(
            !node.has_vip(&variant)?,
            "{tag} {} left the VIP behind after SIGTERM",
            node.label()
        );
    }
    Ok(())
}

/// Bins the captured priority>0 adverts of [`VRID`] into advert-interval
/// windows; a window with two senders outside a handover is a dual master.
fn check_single_master(
    capture: &Capture,
    variant: &Variant,
    tag: &str,
    started: f64,
    ended: f64,
    handovers: &[Handover],
) -> Result<()> {
    let rows = capture.fields(
        &["frame.time_epoch", "ip.src", "ipv6.src", "vrrp.prio"],
        &format!("vrrp.virt_rtr_id == {VRID}"),
    )?;
    let mut adverts: Vec<(f64, String)> = Vec::new();
    let mut senders = BTreeSet::new();
    for row in &rows {
        let (Some(time), Some(v4), Some(v6), Some(prio)) =
            (row.first(), row.get(1), row.get(2), row.get(3))
        else {
            bail!("tshark row {row:?} lacks fields");
        };
        let time: f64 = time
            .parse()
            .with_context(|| format!("bad time in {row:?}"))?;
        let prio: u32 = prio
            .parse()
            .with_context(|| format!("bad priority in {row:?}"))?;
        let source = if v4.is_empty() { v6 } else { v4 };
        senders.insert(source.clone());
        if prio > 0 && time >= started && time <= ended {
            adverts.push((time, source.clone()));
        }
    }
    ensure!(
        senders.len() == 2,
        "{tag} expected adverts from both nodes on the agent's port, saw {senders:?}"
    );
    let width = variant.advert_int.as_secs_f64();
    let margin = width * 2.0;
    let mut dual = Vec::new();
    let mut excused = 0;
    let bins = ((ended - started) / width).ceil() as usize;
    for bin in 0..bins {
        let lo = started + width * bin as f64;
        let hi = lo + width;
        let sources: BTreeSet<&str> = adverts
            .iter()
            .filter(|(t, _)| *t >= lo && *t < hi)
            .map(|(_, s)| s.as_str())
            .collect();
        if sources.len() < 2 {
            continue;
        }
        if handovers
            .iter()
            .any(|h| hi >= h.from - width && lo <= h.to + margin)
        {
            excused += 1;
        } else {
            dual.push(format!(
                "{:.3}..{:.3}: {sources:?}",
                lo - started,
                hi - started
            ));
        }
    }
    println!(
        "{tag} capture: {} adverts over {:.1}s, {bins} windows of {width}s, {excused} with two senders at handovers, {} elsewhere",
        adverts.len(),
        ended - started,
        dual.len()
    );
    ensure!(
        dual.is_empty(),
        "{tag} two masters advertised VRID {VRID} at the same time outside handovers (s after capture start): {dual:#?}"
    );
    Ok(())
}

fn run_variant(variant: Variant, prefix: &str) -> Result<()> {
    let mut pair = Pair::new(variant, prefix)?;
    run_role_assignment(&mut pair, Kind::Agent)?;
    run_role_assignment(&mut pair, Kind::Keepalived)?;
    ensure!(
        pair.findings.is_empty(),
        "{} failed checks:\n{}",
        variant.name,
        pair.findings.join("\n")
    );
    Ok(())
}

#[test]
fn v2_pass_auth_interop() -> Result<()> {
    run_variant(V2_PASS, "iopv2")
}

#[test]
fn v3_ipv4_default_checksum_interop() -> Result<()> {
    run_variant(V3_IPV4, "iopv3")
}

#[test]
fn v3_ipv6_interop() -> Result<()> {
    run_variant(V3_IPV6, "iopv6")
}

#[test]
fn v3_unicast_peers_interop() -> Result<()> {
    run_variant(V3_UNICAST, "iopuc")
}

/// Variant (c). keepalived 2.2.7 has no `v3_checksum_as_v2` (`keepalived
/// --config-test` rejects it as an unknown keyword), and its
/// `old_unicast_checksum` does not produce the message-only form either: it
/// keeps the pseudo-header but puts 224.0.0.18 in it instead of the unicast
/// peer (checked below on the wire). So the message-only peer is played by a
/// raw sender, and the test checks that the agent *accepts* such adverts:
/// a higher-priority message-only master keeps it BACKUP, the adverts count
/// as accepted and not as checksum drops, and it takes over once they stop.
/// A corrupted checksum (neither form) is the control: counted and ignored.
#[test]
fn v3_ipv4_message_only_checksum_adverts_are_accepted() -> Result<()> {
    let variant = V3_IPV4;
    let mut pair = Pair::new(variant, "iopmo")?;
    let peer = pair.keepalived.host.clone();
    let peer_if = pair.keepalived.iface.clone();
    let advert = Advert::v3(VRID, HIGH, variant.advert_int, vec![variant.vip()]);
    let source: IpAddr = KEEPALIVED_V4.parse()?;
    let group: IpAddr = lab::advert::VRRP_GROUP_V4.into();
    let message = advert.encode_message_only_checksum(source, group)?;
    let count = 16;
    let sending = {
        let (peer, peer_if, message) = (peer.clone(), peer_if.clone(), message.clone());
        thread::spawn(move || {
            peer.send_vrrp_message_v4(
                &peer_if,
                &message,
                AdvertBurst::new(count, variant.advert_int),
            )
        })
    };
    pair.start(Kind::Agent, LOW, false)?;
    let checksum_before = pair.agent.agent_counter("checksum")?;
    let accepted_before = pair.agent.agent_counter("accepted")?;
    // Well past the agent's master-down interval while the peer still sends.
    thread::sleep(variant.master_down(LOW) * 2);
    let status = pair.agent.agent_status()?;
    let instance = &status["instances"][0];
    ensure!(
        instance["state"] == "BACKUP"
            && instance["master_address"] == KEEPALIVED_V4
            && !pair.agent.has_vip(&variant)?,
        "a priority-{HIGH} master sending message-only checksums should keep the agent BACKUP: {status}\n{}",
        pair.logs()
    );
    let accepted = pair.agent.agent_counter("accepted")? - accepted_before;
    let checksum = pair.agent.agent_counter("checksum")? - checksum_before;
    println!(
        "[message-only] agent BACKUP under message-only master: accepted +{accepted}, checksum drops +{checksum}"
    );
    ensure!(
        accepted >= 3 && checksum == 0,
        "message-only adverts: accepted +{accepted}, checksum drops +{checksum}; expected them accepted: {status}"
    );
    sending
        .join()
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    let took = pair.wait_master(Kind::Agent, variant.settle())?;
    println!("[message-only] adverts stopped: agent MASTER after {took:?}");

    // Control: a checksum valid in neither form is dropped as `checksum`.
    let mut corrupt = message;
    corrupt[6] ^= 0x5a;
    let checksum_before = pair.agent.agent_counter("checksum")?;
    peer.send_vrrp_message_v4(&peer_if, &corrupt, AdvertBurst::new(6, variant.advert_int))?;
    thread::sleep(Duration::from_millis(200));
    let dropped = pair.agent.agent_counter("checksum")? - checksum_before;
    ensure!(
        dropped == 6 && pair.agent.state()? == "MASTER",
        "6 adverts with a bad checksum: checksum drops +{dropped}, agent {}; expected +6 and still MASTER",
        pair.agent.state()?
    );
    Ok(())
}

/// keepalived 2.2.7's `old_unicast_checksum`, as a migrating operator may
/// have it: keepalived sends unicast VRRPv3 adverts whose checksum covers a
/// pseudo-header with the multicast group as destination. On the wire this
/// is neither the RFC 5798 form nor the message-only one (tshark flags it
/// bad both ways), and the agent, which reads the same keyword, must still
/// accept its keepalived peer: BACKUP under the higher-priority keepalived.
#[test]
fn v3_unicast_old_checksum_keepalived_peer_is_accepted() -> Result<()> {
    let variant = V3_UNICAST;
    let mut pair = Pair::new(variant, "iopoc")?;
    let with_old = |node: &Node, priority: u8| {
        variant
            .config(node.label(), &node.iface, priority, false)
            .replace(
                "    virtual_ipaddress",
                "    old_unicast_checksum\n    virtual_ipaddress",
            )
    };
    let capture = pair.capture()?;
    let config = with_old(&pair.keepalived, HIGH);
    pair.keepalived.start(&config)?;
    let config = with_old(&pair.agent, LOW);
    pair.agent.start(&config)?;
    // Converged once is not enough here: a peer that drops keepalived's
    // adverts only shows itself a master-down interval later.
    let outcome = pair
        .wait_master(Kind::Keepalived, variant.settle())
        .and_then(|_| {
            thread::sleep(variant.master_down(LOW) * 2);
            pair.wait_master(Kind::Keepalived, Duration::ZERO)
        });
    if let Err(err) = &outcome {
        println!("[old_unicast_checksum] {err:#}");
    }
    capture.stop()?;
    let from_keepalived = format!("ip.src == {KEEPALIVED_V4} && vrrp.prio == {HIGH}");
    let default_view = capture.fields(&["vrrp.checksum.status"], &from_keepalived)?;
    let good = |rows: &[Vec<String>]| {
        rows.iter()
            .filter(|r| r.first().is_some_and(|s| s == "1"))
            .count()
    };
    let as_v2 = message_only_checksum_status(&capture, &from_keepalived)?;
    println!(
        "[old_unicast_checksum] keepalived adverts: {} captured, pseudo-header checksum good in {}, message-only good in {}",
        default_view.len(),
        good(&default_view),
        as_v2
    );
    ensure!(
        !default_view.is_empty() && good(&default_view) == 0 && as_v2 == 0,
        "expected keepalived's old_unicast_checksum adverts to be neither RFC 5798 nor message-only on the wire"
    );
    let checksum_drops = pair.agent.agent_counter("checksum")?;
    let mut findings = Vec::new();
    if let Err(err) = outcome {
        // The full error carries both logs; they are appended once below.
        let first_line = err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        findings.push(format!(
            "the agent drops keepalived's old_unicast_checksum adverts ({checksum_drops} checksum drops) and becomes a second MASTER: {first_line}"
        ));
    }
    let keepalived_log = pair.keepalived.report();
    if keepalived_log.contains("Invalid VRRPv3 checksum") {
        findings.push(
            "keepalived logs \"Invalid VRRPv3 checksum\" for the agent's adverts: the agent does not send the old unicast checksum although configured with old_unicast_checksum".to_owned(),
        );
    }
    ensure!(
        findings.is_empty(),
        "old_unicast_checksum interop failed:\n{}\n{}",
        findings.join("\n"),
        pair.logs()
    );
    Ok(())
}

/// Number of rows matching `filter` whose checksum verifies when tshark
/// reads VRRPv3 checksums as in VRRPv2 (message only).
fn message_only_checksum_status(capture: &Capture, filter: &str) -> Result<usize> {
    let file = capture.file().to_string_lossy().into_owned();
    let out = std::process::Command::new("tshark")
        .args([
            "-n",
            "-r",
            &file,
            "-o",
            "vrrp.v3_checksum_as_in_v2:TRUE",
            "-T",
            "fields",
        ])
        .args(["-e", "vrrp.checksum.status", "-Y", filter])
        .output()
        .context("cannot run tshark")?;
    ensure!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.trim() == "1")
        .count())
}

/// Waits until the agent has counted `counter` drops at least once and as
/// often as keepalived sent adverts past the capture point; returns both
/// numbers. keepalived as MASTER re-arms its advert timer on every packet it
/// receives, even one it rejects, so it sends far less than advert_int (with
/// a faster peer, nothing after its first advert): hence counting against the
/// wire rather than against time.
fn drops_match_wire(pair: &Pair, capture: &Capture, counter: &str) -> Result<(u64, u64)> {
    let from_keepalived = format!("ip.src == {KEEPALIVED_V4} && vrrp.virt_rtr_id == {VRID}");
    let mut seen = (0, 0);
    let matched = lab::wait_until(counter, Duration::from_secs(10), || {
        let sent = capture.fields(&["frame.number"], &from_keepalived)?.len() as u64;
        let dropped = pair.agent.agent_counter(counter)?;
        seen = (dropped, sent);
        Ok(dropped >= 1 && dropped == sent)
    });
    if matched.is_err() {
        bail!(
            "the agent counted {} `{counter}` drops while keepalived sent {} adverts past its port\n{}",
            seen.0,
            seen.1,
            pair.agent.agent_status()?
        );
    }
    Ok(seen)
}

#[test]
fn v2_mismatched_settings_drop_like_keepalived() -> Result<()> {
    let variant = V2_PASS;
    let mut pair = Pair::new(variant, "iopmm")?;
    let settle = variant.settle();

    // Wrong auth_pass: no one accepts the other, so both end up MASTER.
    let config = |node: &Node, priority: u8, int: Duration, pass: &str| {
        variant.config_with(node.label(), &node.iface, priority, false, int, Some(pass))
    };
    let capture = pair.capture()?;
    let ka_config = config(&pair.keepalived, HIGH, variant.advert_int, "0ther");
    pair.keepalived.start(&ka_config)?;
    let agent_config = config(&pair.agent, LOW, variant.advert_int, "s3cret");
    pair.agent.start(&agent_config)?;
    lab::wait_until("both MASTER with mismatched auth_pass", settle, || {
        Ok(pair.agent.state()? == "MASTER"
            && pair.keepalived.state()? == "MASTER"
            && pair.agent.has_vip(&variant)?
            && pair.keepalived.has_vip(&variant)?)
    })
    .with_context(|| pair.logs())?;
    let (dropped, sent) = drops_match_wire(&pair, &capture, "auth_data")?;
    println!(
        "[mismatch auth_pass] both MASTER; agent auth_data drops {dropped}, keepalived adverts {sent}"
    );
    let keepalived_log = pair.keepalived.report();
    ensure!(
        keepalived_log.contains("received an invalid passwd")
            && !keepalived_log.contains("higher priority"),
        "keepalived should ignore the agent's adverts with the wrong password\n{keepalived_log}"
    );
    pair.agent.stop()?;
    pair.keepalived.stop()?;
    capture.stop()?;

    // Different advert_int in v2: RFC 3768 and keepalived discard the advert.
    let capture = pair.capture()?;
    let ka_config = config(&pair.keepalived, HIGH, Duration::from_secs(2), "s3cret");
    pair.keepalived.start(&ka_config)?;
    let agent_config = config(&pair.agent, LOW, variant.advert_int, "s3cret");
    pair.agent.start(&agent_config)?;
    // keepalived's master-down interval is ~7 s at 2 s; give it time to show.
    thread::sleep(Duration::from_secs(8));
    let (dropped, sent) = drops_match_wire(&pair, &capture, "advert_interval")?;
    let (agent_state, keepalived_state) = (pair.agent.state()?, pair.keepalived.state()?);
    println!(
        "[mismatch advert_int] agent {agent_state} (VIP {}), keepalived {keepalived_state} (VIP {}); agent advert_interval drops {dropped}, keepalived adverts {sent}",
        pair.agent.has_vip(&variant)?,
        pair.keepalived.has_vip(&variant)?
    );
    ensure!(
        agent_state == "MASTER" && pair.agent.has_vip(&variant)?,
        "the agent drops keepalived's adverts, so it should be MASTER, is {agent_state}\n{}",
        pair.logs()
    );
    // keepalived discards the agent's 1 s adverts the same way, so it is a
    // master too (nothing else stops it: the agent has the lower priority).
    let keepalived_log = pair.keepalived.report();
    ensure!(
        keepalived_state == "MASTER"
            && pair.keepalived.has_vip(&variant)?
            && keepalived_log.contains("advertisement interval mismatch"),
        "keepalived should log the interval mismatch and stay MASTER, is {keepalived_state}\n{keepalived_log}"
    );
    Ok(())
}
