//! SIGHUP of a master under traffic. A pair of vrrp-agent nodes (a: priority
//! 200, the master; b: priority 100) on one switch, a UDP echo server bound to
//! every VIP on both nodes (`IP_FREEBIND`, so replies are sourced from the VIP
//! as a TCP server's are), and a client c probing the VIP every millisecond
//! and accepting only replies from the VIP. Each test reloads with one kind of
//! change and checks that:
//! - not one probe is lost from 0.5 s before the reload to its end (counting
//!   starts at the client's first answer, so server start-up is not counted);
//! - the master's interface holds exactly its primary address and the VIPs of
//!   the file in force, the backup's only its primary address;
//! - neither node changed state (status `transitions`), a stays MASTER and b
//!   BACKUP, so the peers keep electing;
//! - what the change is about took effect: the new priority, the added VIP
//!   answering, adverts reaching a new unicast peer.
//!
//! A reload that must fail (bad syntax, a script user that does not exist)
//! is rejected and changes nothing while the old configuration keeps serving.
//!
//! VRRPv3 at advert_int 0.05 (Master_Down_Interval ~170 ms: fast enough that
//! a blackout shows at once, slow enough that a loaded CI machine running
//! several pairs side by side causes no false failover; `cargo xtask bench
//! --only reload` measures 0.01), except for the
//! `auth_pass` change: authentication is VRRPv2 only, so that pair runs
//! VRRPv2 at advert_int 1 and is watched for longer than its
//! Master_Down_Interval (~3.6 s) after the reload.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lab::{AgentNode, Capture, Host, Lab, Switch, UdpEcho, UdpTrace};

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
const C_V4: &str = "192.0.2.3";
/// A host that becomes a unicast peer by reload, to see adverts reach it.
const D_V4: &str = "192.0.2.4";
const VIP: &str = "192.0.2.100";
const VIP2: &str = "192.0.2.101";
const ECHO_PORT: u16 = 7007;
const VRID: u8 = 51;
const MASTER_PRIORITY: u8 = 200;
const BACKUP_PRIORITY: u8 = 100;
/// Bound for anything that normally takes well under a second.
const WAIT: Duration = Duration::from_secs(10);
/// Probing counted before the reload.
const LEAD: Duration = Duration::from_millis(500);
/// The client probes this often.
const PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// A script user no system has.
const MISSING_USER: &str = "vrrplabnouser";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

fn echo_target(vip: &str) -> SocketAddr {
    SocketAddr::new(ip(vip), ECHO_PORT)
}

// ------------------------------------------------------------------ config

/// Advertisement timing and protocol version of a pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// VRRPv3, advert_int 0.05.
    V3Fast,
    /// VRRPv2, advert_int 1 (for authentication, which v3 does not have).
    V2Slow,
}

impl Pace {
    /// How long to keep probing after the reload: long enough for a backup
    /// that no longer accepts the master's adverts to take over.
    fn observe(self) -> Duration {
        match self {
            Self::V3Fast => Duration::from_millis(1500),
            Self::V2Slow => Duration::from_millis(5000),
        }
    }
}

/// One node's keepalived.conf.
#[derive(Clone)]
struct NodeConf {
    router_id: &'static str,
    pace: Pace,
    priority: u8,
    vips: Vec<&'static str>,
    auth_pass: Option<&'static str>,
    /// `(unicast_src_ip, unicast_peer list)`; multicast when `None`.
    unicast: Option<(&'static str, Vec<&'static str>)>,
    /// A tracked `vrrp_script` run as this user.
    script_user: Option<&'static str>,
}

impl NodeConf {
    fn master() -> Self {
        Self {
            router_id: "nodeA",
            pace: Pace::V3Fast,
            priority: MASTER_PRIORITY,
            vips: vec![VIP],
            auth_pass: None,
            unicast: None,
            script_user: None,
        }
    }

    fn backup() -> Self {
        Self {
            router_id: "nodeB",
            priority: BACKUP_PRIORITY,
            ..Self::master()
        }
    }

    fn render(&self, iface: &str) -> String {
        let (version, advert_int) = match self.pace {
            Pace::V3Fast => (3, "0.05"),
            Pace::V2Slow => (2, "1"),
        };
        let mut text = format!(
            "global_defs {{\n    router_id {}\n    vrrp_version {version}\n    script_user root\n}}\n",
            self.router_id
        );
        if let Some(user) = self.script_user {
            text.push_str(&format!(
                "vrrp_script chk_true {{\n    script \"/bin/true\"\n    interval 1\n    user {user}\n}}\n"
            ));
        }
        text.push_str(&format!(
            "vrrp_instance VI_1 {{\n    state BACKUP\n    interface {iface}\n    \
             virtual_router_id {VRID}\n    priority {}\n    advert_int {advert_int}\n",
            self.priority
        ));
        if let Some(pass) = self.auth_pass {
            text.push_str(&format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}\n"
            ));
        }
        if let Some((source, peers)) = &self.unicast {
            text.push_str(&format!(
                "    unicast_src_ip {source}\n    unicast_peer {{\n"
            ));
            for peer in peers {
                text.push_str(&format!("        {peer}\n"));
            }
            text.push_str("    }\n");
        }
        text.push_str("    virtual_ipaddress {\n");
        for vip in &self.vips {
            text.push_str(&format!("        {vip}/24\n"));
        }
        text.push_str("    }\n");
        if self.script_user.is_some() {
            text.push_str("    track_script {\n        chk_true\n    }\n");
        }
        text.push_str("}\n");
        text
    }
}

// ----------------------------------------------------------------- fixture

/// Master a, backup b and client c on one switch (and d, an idle host, for
/// the unicast case); an echo server on every VIP of either file on a and b.
struct Pair {
    lab: Lab,
    _switch: Switch,
    a_if: String,
    b_if: String,
    client: Host,
    c_if: String,
    observer: Option<(Host, String)>,
    master: AgentNode,
    backup: AgentNode,
    _servers: Vec<UdpEcho>,
}

impl Pair {
    fn start(prefix: &str, a: &NodeConf, b: &NodeConf, served: &[&str]) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let a_host = lab.add_host("a")?;
        let b_host = lab.add_host("b")?;
        let client = lab.add_host("c")?;
        let a_if = lab.attach(&a_host, &switch)?;
        let b_if = lab.attach(&b_host, &switch)?;
        let c_if = lab.attach(&client, &switch)?;
        a_host.add_address(&a_if, &format!("{A_V4}/24"))?;
        b_host.add_address(&b_if, &format!("{B_V4}/24"))?;
        client.add_address(&c_if, &format!("{C_V4}/24"))?;
        let observer = if a.unicast.is_some() {
            let d = lab.add_host("d")?;
            let d_if = lab.attach(&d, &switch)?;
            d.add_address(&d_if, &format!("{D_V4}/24"))?;
            Some((d, d_if))
        } else {
            None
        };
        let mut servers = Vec::new();
        for vip in served {
            servers.push(a_host.serve_udp_echo(echo_target(vip))?);
            servers.push(b_host.serve_udp_echo(echo_target(vip))?);
        }
        let master = AgentNode::start(&a_host, &a.render(&a_if))?;
        master
            .wait_for_state("VI_1", "MASTER", WAIT)
            .with_context(|| master.process().report())?;
        let backup = AgentNode::start(&b_host, &b.render(&b_if))?;
        backup
            .wait_for_state("VI_1", "BACKUP", WAIT)
            .with_context(|| backup.process().report())?;
        for vip in &a.vips {
            a_host.wait_for_address(&a_if, ip(vip), WAIT)?;
        }
        Ok(Self {
            lab,
            _switch: switch,
            a_if,
            b_if,
            client,
            c_if,
            observer,
            master,
            backup,
            _servers: servers,
        })
    }

    fn logs(&self) -> String {
        self.lab.process_report()
    }

    /// `[priority, auth string, addresses]` of the master's next multicast
    /// adverts, as the client's link sees them.
    fn master_adverts(&self) -> Result<Vec<Vec<String>>> {
        let capture =
            self.client
                .capture(&self.c_if, &format!("ip proto 112 and src host {A_V4}"), 2)?;
        capture.wait_for_packets(WAIT)?;
        capture.fields(&["vrrp.prio", "vrrp.auth_string", "vrrp.ip_addr"], "")
    }

    /// Fails unless every captured advert of the master has `column` equal to `value`.
    fn adverts_say(&self, what: &str, column: usize, value: &str) -> Result<()> {
        let adverts = self.master_adverts()?;
        ensure!(
            !adverts.is_empty()
                && adverts
                    .iter()
                    .all(|row| row.get(column).is_some_and(|v| v == value)),
            "the master's adverts after the reload should carry {what} {value}: {adverts:?}\n{}",
            self.logs()
        );
        Ok(())
    }
}

/// The IPv4 addresses on `iface` of `node`'s host.
fn ipv4_set(node: &AgentNode, iface: &str) -> Result<BTreeSet<IpAddr>> {
    Ok(node
        .host()
        .addresses(iface)?
        .into_iter()
        .map(|a| a.addr)
        .filter(IpAddr::is_ipv4)
        .collect())
}

fn expected_set(primary: &str, vips: &[&str]) -> BTreeSet<IpAddr> {
    std::iter::once(primary)
        .chain(vips.iter().copied())
        .map(ip)
        .collect()
}

/// `(state, transitions, base_priority)` of VI_1 on `node`.
fn election(node: &AgentNode) -> Result<(String, u64, u64)> {
    let instance = node.instance("VI_1")?;
    Ok((
        instance["state"].as_str().unwrap_or_default().to_owned(),
        instance["transitions"].as_u64().unwrap_or(u64::MAX),
        instance["base_priority"].as_u64().unwrap_or(u64::MAX),
    ))
}

// -------------------------------------------------------------------- case

/// How a reload must end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Rejected,
}

/// One reload scenario.
struct Case {
    prefix: &'static str,
    before: [NodeConf; 2],
    /// The new file of a and of b (`None`: b is not reloaded). a's is
    /// written as is, so a broken file can be given.
    after_a: String,
    after_b: Option<NodeConf>,
    outcome: Outcome,
    /// The VIPs and priority a must have once the reload ended.
    expect_vips: Vec<&'static str>,
    expect_priority: u8,
}

impl Case {
    /// A reload that only changes a.
    fn master_only(prefix: &'static str, before: NodeConf, after: &NodeConf) -> Self {
        Self {
            prefix,
            expect_vips: after.vips.clone(),
            expect_priority: after.priority,
            before: [before, NodeConf::backup()],
            after_a: String::new(),
            after_b: None,
            outcome: Outcome::Applied,
        }
        .with_after_a(after)
    }

    fn with_after_a(mut self, after: &NodeConf) -> Self {
        // The interface name is only known once the lab exists.
        self.after_a = after.render("{IFACE}");
        self
    }
}

/// What a case saw, for the tests' own extra checks.
struct Seen {
    pair: Pair,
    trace: UdpTrace,
}

/// Builds the pair, probes, reloads, and checks everything the module doc
/// lists; returns the running pair for case-specific checks.
fn run(case: Case) -> Result<Seen> {
    let [a_conf, b_conf] = &case.before;
    let served: BTreeSet<&str> = a_conf
        .vips
        .iter()
        .chain(&case.expect_vips)
        .copied()
        .collect();
    let served: Vec<&str> = served.into_iter().collect();
    let pair = Pair::start(case.prefix, a_conf, b_conf, &served)?;
    let (_, a_transitions, _) = election(&pair.master)?;
    let (_, b_transitions, _) = election(&pair.backup)?;

    let observe = a_conf.pace.observe();
    let limit = WAIT + LEAD + observe + WAIT;
    let probe = pair
        .client
        .start_udp_probe(echo_target(VIP), PROBE_INTERVAL, limit)?;
    probe
        .wait_for_first_answer(WAIT)
        .with_context(|| pair.logs())?;
    thread::sleep(LEAD);
    let reload_at = probe.now();
    let a_text = case.after_a.replace("{IFACE}", &pair.a_if);
    let a_line = pair.master.reload(&a_text)?;
    let b_line = match &case.after_b {
        Some(conf) => Some(pair.backup.reload(&conf.render(&pair.b_if))?),
        None => None,
    };
    let reloaded_at = probe.now();
    let until = reload_at + observe.max(reloaded_at - reload_at);
    thread::sleep(until.saturating_sub(probe.now()));
    let trace = probe.finish()?;

    let mut problems = Vec::new();
    let wanted = match case.outcome {
        Outcome::Applied => "configuration reloaded",
        Outcome::Rejected => "reload rejected",
    };
    for (node, line) in [("a", Some(&a_line)), ("b", b_line.as_ref())] {
        if let Some(line) = line
            && !line.contains(wanted)
        {
            problems.push(format!(
                "node {node}: expected `{wanted}`, the log says: {line}"
            ));
        }
    }

    let first = trace
        .first_answered()
        .context("the client never got an answer from the VIP")?;
    let window = trace.window(first.max(reload_at.saturating_sub(LEAD)), until);
    println!(
        "{}: reload took {:.1} ms; around it: {window}; {} replies from another source refused",
        case.prefix,
        (reloaded_at - reload_at).as_secs_f64() * 1000.0,
        trace.foreign_replies
    );
    if window.lost != 0 {
        problems.push(format!(
            "the client lost probes to {VIP} around the reload: {window} ({} replies from another source refused)",
            trace.foreign_replies
        ));
    }

    let a_addresses = ipv4_set(&pair.master, &pair.a_if)?;
    let a_expected = expected_set(A_V4, &case.expect_vips);
    if a_addresses != a_expected {
        problems.push(format!(
            "master interface holds {a_addresses:?}, the file in force says {a_expected:?}"
        ));
    }
    let b_addresses = ipv4_set(&pair.backup, &pair.b_if)?;
    if b_addresses != expected_set(B_V4, &[]) {
        problems.push(format!(
            "backup interface holds {b_addresses:?}, expected only {B_V4}"
        ));
    }

    let (a_state, a_after, a_priority) = election(&pair.master)?;
    let (b_state, b_after, _) = election(&pair.backup)?;
    if a_state != "MASTER" || a_after != a_transitions {
        problems.push(format!(
            "master: state {a_state} after {} transitions during the reload, expected MASTER and none",
            a_after.wrapping_sub(a_transitions)
        ));
    }
    if b_state != "BACKUP" || b_after != b_transitions {
        problems.push(format!(
            "backup: state {b_state} after {} transitions during the reload, expected BACKUP and none",
            b_after.wrapping_sub(b_transitions)
        ));
    }
    if a_priority != u64::from(case.expect_priority) {
        problems.push(format!(
            "master base priority {a_priority}, the file in force says {}",
            case.expect_priority
        ));
    }
    if !problems.is_empty() {
        bail!(
            "{}:\n- {}\n{}",
            case.prefix,
            problems.join("\n- "),
            pair.logs()
        );
    }
    Ok(Seen { pair, trace })
}

// ------------------------------------------------------------------- tests

#[test]
fn sighup_with_the_same_file_loses_no_probe() -> Result<()> {
    let conf = NodeConf::master();
    let seen = run(Case::master_only("rlsame", conf.clone(), &conf))?;
    ensure!(seen.trace.successes() > 0);
    Ok(())
}

#[test]
fn priority_change_applies_without_losing_a_probe() -> Result<()> {
    let after = NodeConf {
        priority: 150,
        ..NodeConf::master()
    };
    let seen = run(Case::master_only("rlprio", NodeConf::master(), &after))?;
    seen.pair.adverts_say("priority", 0, "150")
}

#[test]
fn added_vip_is_added_and_answers_without_losing_a_probe() -> Result<()> {
    let after = NodeConf {
        vips: vec![VIP, VIP2],
        ..NodeConf::master()
    };
    let seen = run(Case::master_only("rladd", NodeConf::master(), &after))?;
    answers(&seen.pair, VIP2)?;
    seen.pair
        .adverts_say("addresses", 2, &format!("{VIP},{VIP2}"))
}

#[test]
fn removed_vip_is_removed_without_losing_a_probe() -> Result<()> {
    let before = NodeConf {
        vips: vec![VIP, VIP2],
        ..NodeConf::master()
    };
    let seen = run(Case::master_only("rlremove", before, &NodeConf::master()))?;
    ensure!(
        seen.pair
            .client
            .udp_echo_once(echo_target(VIP2), Duration::from_millis(300))
            .is_err(),
        "{VIP2} still answers after its removal"
    );
    Ok(())
}

/// auth_pass changed on both nodes: the master must send the new password
/// and accept it, or the backup takes over once the reload is done.
#[test]
fn auth_pass_change_on_both_nodes_keeps_the_pair_electing() -> Result<()> {
    let with_pass = |conf: NodeConf, pass| NodeConf {
        pace: Pace::V2Slow,
        auth_pass: Some(pass),
        ..conf
    };
    let mut case = Case::master_only(
        "rlauth",
        with_pass(NodeConf::master(), "secret1"),
        &with_pass(NodeConf::master(), "secret2"),
    );
    case.before[1] = with_pass(NodeConf::backup(), "secret1");
    case.after_b = Some(with_pass(NodeConf::backup(), "secret2"));
    let seen = run(case)?;
    seen.pair.adverts_say("auth_pass", 1, "secret2")
}

/// Both nodes unicast to each other; the reload adds host d as a peer on
/// both. The master's adverts must then reach d, and the pair keep electing.
#[test]
fn unicast_peer_change_applies_without_losing_a_probe() -> Result<()> {
    let unicast = |conf: NodeConf, source, peers: &[&'static str]| NodeConf {
        unicast: Some((source, peers.to_vec())),
        ..conf
    };
    let mut case = Case::master_only(
        "rlpeer",
        unicast(NodeConf::master(), A_V4, &[B_V4]),
        &unicast(NodeConf::master(), A_V4, &[B_V4, D_V4]),
    );
    case.before[1] = unicast(NodeConf::backup(), B_V4, &[A_V4]);
    case.after_b = Some(unicast(NodeConf::backup(), B_V4, &[A_V4, D_V4]));
    let seen = run(case)?;
    let (d, d_if) = seen
        .pair
        .observer
        .as_ref()
        .context("the unicast pair has an observer")?;
    let capture: Capture = d.capture(d_if, &format!("ip proto 112 and src host {A_V4}"), 3)?;
    capture.wait_for_packets(WAIT).with_context(|| {
        format!(
            "the master's adverts never reached its new unicast peer {D_V4}\n{}",
            seen.pair.logs()
        )
    })
}

#[test]
fn reload_with_bad_syntax_changes_nothing() -> Result<()> {
    let mut case = Case::master_only("rlsyntax", NodeConf::master(), &NodeConf::master());
    // A priority change and a VIP before the error: none of it may apply.
    case.after_a = NodeConf {
        priority: 150,
        vips: vec![VIP, VIP2],
        ..NodeConf::master()
    }
    .render("{IFACE}")
    .replace(
        "    advert_int 0.05\n",
        "    advert_int 0.05\n    priority banana\n",
    );
    case.outcome = Outcome::Rejected;
    run(case)?;
    Ok(())
}

#[test]
fn reload_with_a_missing_script_user_changes_nothing() -> Result<()> {
    let mut case = Case::master_only("rluser", NodeConf::master(), &NodeConf::master());
    case.after_a = NodeConf {
        priority: 150,
        vips: vec![VIP, VIP2],
        script_user: Some(MISSING_USER),
        ..NodeConf::master()
    }
    .render("{IFACE}");
    case.outcome = Outcome::Rejected;
    let seen = run(case)?;
    let line = seen
        .pair
        .master
        .process()
        .stderr()
        .lines()
        .into_iter()
        .find(|line| line.contains("reload rejected"))
        .unwrap_or_default();
    ensure!(
        line.contains(MISSING_USER),
        "the rejection does not name the missing user {MISSING_USER}: {line}"
    );
    Ok(())
}

/// Polls a one-shot UDP echo to `vip` (from the VIP only) until it answers.
fn answers(pair: &Pair, vip: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        match pair
            .client
            .udp_echo_once(echo_target(vip), Duration::from_millis(200))
        {
            Ok(_) => return Ok(()),
            Err(err) if started.elapsed() >= WAIT => {
                bail!(
                    "{vip} never answered after the reload: {err:#}\n{}",
                    pair.logs()
                )
            }
            Err(_) => {}
        }
    }
}
