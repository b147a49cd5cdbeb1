//! Running the agent as a production daemon: systemd's notification
//! protocol on a socket the test owns (under the unit's capability bounding
//! set), JSON log lines, and the Prometheus endpoint across a failover.
//!
//! Hosts `a` and `b` share one switch; VRRPv3 with advert_int 0.1, so
//! Master_Down_Interval is about 0.33 s.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lab::{Host, Lab, Process, Switch};
use serde_json::Value;

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
const VIP: &str = "192.0.2.100";
const VRID: u8 = 51;
const METRICS_PORT: u16 = 9650;
/// Generous bound for anything that normally takes well under a second.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- topology

struct Net {
    lab: Lab,
    _switch: Switch,
    a: Host,
    b: Host,
    a_if: String,
    b_if: String,
}

impl Net {
    fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let a_if = lab.attach(&a, &switch)?;
        let b_if = lab.attach(&b, &switch)?;
        a.add_address(&a_if, &format!("{A_V4}/24"))?;
        b.add_address(&b_if, &format!("{B_V4}/24"))?;
        Ok(Self {
            lab,
            _switch: switch,
            a,
            b,
            a_if,
            b_if,
        })
    }
}

fn config(interface: &str, priority: u8) -> String {
    format!(
        "global_defs {{\n    router_id node-{priority}\n    vrrp_version 3\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface {interface}\n    \
         virtual_router_id {VRID}\n    priority {priority}\n    advert_int 0.1\n    \
         virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
    )
}

// ------------------------------------------------------------------- agent

/// A `vrrp-agent` in a lab host, started with extra arguments and
/// environment (this file's options are what the shared `AgentNode` lacks).
struct Agent {
    host: Host,
    config: PathBuf,
    socket: PathBuf,
    process: Process,
}

impl Agent {
    /// Starts `prefix_argv` (e.g. setpriv) + the agent + `args`; returns
    /// once the control socket answers.
    fn start(
        host: &Host,
        label: &str,
        config_text: &str,
        prefix_argv: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let config = host.temp_dir().join(format!("{label}.conf"));
        let socket = host.temp_dir().join(format!("{label}.sock"));
        std::fs::write(&config, config_text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        // The pinned datapath on a bpffs the lab mounted, as systemd's
        // /sys/fs/bpf on a host (mounting one needs CAP_SYS_ADMIN, which
        // the unit does not grant).
        let bpffs = host.temp_dir().join(format!("{label}-bpf"));
        host.mount_bpffs(&bpffs)?;
        let pins = bpffs.join("vrrp-agent");
        let binary = lab::agent_binary()?;
        let mut argv: Vec<&str> = prefix_argv.to_vec();
        argv.extend([
            path_str(&binary)?,
            "-f",
            path_str(&config)?,
            "--control-socket",
            path_str(&socket)?,
            "--pin-dir",
            path_str(&pins)?,
        ]);
        argv.extend(args);
        let mut env = env.to_vec();
        env.push(("RUST_LOG", "info"));
        let process = host.spawn_env(&argv, &env)?;
        process.set_grace(Duration::from_secs(5));
        let agent = Self {
            host: host.clone(),
            config,
            socket,
            process,
        };
        let started = Instant::now();
        while agent.status().is_err() {
            if !agent.process.is_running() || started.elapsed() > WAIT {
                bail!(
                    "agent {label} never answered on its control socket:\n{}",
                    agent.process.report()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(agent)
    }

    fn status(&self) -> Result<Value> {
        let out = lab::run_agent_command(&[
            "status".as_ref(),
            "--json".as_ref(),
            "--control-socket".as_ref(),
            self.socket.as_os_str(),
        ])?;
        ensure!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn wait_for_state(&self, state: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let status = self.status()?;
            if status["instances"][0]["state"] == state {
                return Ok(());
            }
            if started.elapsed() > WAIT {
                bail!("{} not {state} within {WAIT:?}: {status}", self.host.name());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

// ------------------------------------------------------------------ notify

/// The unit's `CapabilityBoundingSet=` as setpriv's `--bounding-set`.
fn unit_bounding_set() -> Result<String> {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/vrrp-agent.service");
    let unit = std::fs::read_to_string(&unit_path)
        .with_context(|| format!("cannot read {}", unit_path.display()))?;
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("CapabilityBoundingSet="))
        .context("the unit has no CapabilityBoundingSet= line")?;
    let mut set = "-all".to_owned();
    for cap in line.split_whitespace() {
        let name = cap
            .strip_prefix("CAP_")
            .with_context(|| format!("{cap} is not a capability name"))?;
        set.push_str(&format!(",+{}", name.to_ascii_lowercase()));
    }
    Ok(set)
}

/// Datagrams systemd would receive, with their arrival time.
struct NotifySocket {
    path: PathBuf,
    messages: mpsc::Receiver<(Instant, String)>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Result<Self> {
        let path = dir.join("notify.sock");
        let socket =
            UnixDatagram::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
        let (tx, messages) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(len) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        Ok(Self { path, messages })
    }

    /// The next datagram that has a line `line` (earlier ones are skipped
    /// and returned alongside, in order).
    fn wait_for(&self, line: &str) -> Result<(String, Vec<String>)> {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, message) = self.messages.recv_timeout(left).with_context(|| {
                format!("no notify message with {line:?} within {WAIT:?}; got {skipped:?}")
            })?;
            if message.lines().any(|l| l == line) {
                return Ok((message, skipped));
            }
            skipped.push(message);
        }
    }

    /// Everything that arrives within `window` from now. Messages that
    /// queued up while the test was busy elsewhere arrived before the
    /// window and are left out, so a slow test does not inflate the count.
    fn collect(&self, window: Duration) -> Vec<String> {
        let start = Instant::now();
        let deadline = start + window;
        let mut seen = Vec::new();
        while let Ok((arrived, message)) = self
            .messages
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if arrived >= start && arrived < deadline {
                seen.push(message);
            }
        }
        seen
    }
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// READY once the instance runs, STATUS as it becomes master, WATCHDOG=1
/// at half of WATCHDOG_USEC, RELOADING=1 (stamped with CLOCK_MONOTONIC)
/// then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM; all of it from a
/// daemon confined to the unit's capability bounding set, which still
/// attaches its programs, becomes master, adds its address and runs
/// real-time. Its JSON log lines parse and the state change carries the
/// documented fields.
#[test]
fn systemd_notify_protocol_and_json_logs_under_the_units_capabilities() -> Result<()> {
    let net = Net::new("opsnotify")?;
    let notify = NotifySocket::bind(net.lab.temp_dir())?;
    let bounding = unit_bounding_set()?;
    let agent = Agent::start(
        &net.a,
        "a",
        &config(&net.a_if, 100),
        &["setpriv", "--bounding-set", &bounding, "--"],
        &["--log-format", "json"],
        &[
            ("NOTIFY_SOCKET", path_str(&notify.path)?),
            // 0.4 s: pings every 0.2 s.
            ("WATCHDOG_USEC", "400000"),
        ],
    )?;

    let (ready, before) = notify.wait_for("READY=1")?;
    ensure!(before.is_empty(), "messages before READY=1: {before:?}");
    ensure!(
        ready
            .lines()
            .any(|l| l == "STATUS=1 BACKUP" || l == "STATUS=1 INIT"),
        "READY=1 without the instance states: {ready:?}"
    );
    let (status, _) = notify.wait_for("STATUS=1 MASTER")?;
    ensure!(!status.contains("READY=1"), "{status:?}");
    agent.wait_for_state("MASTER")?;
    net.a.wait_for_address(&net.a_if, VIP.parse()?, WAIT)?;

    let window = Duration::from_millis(1500);
    let pings = notify
        .collect(window)
        .into_iter()
        .filter(|message| message == "WATCHDOG=1\n")
        .count();
    // 7 or 8 at 0.2 s; fewer than 4 would leave systemd's 0.4 s close to
    // firing.
    ensure!(
        (4..=10).contains(&pings),
        "{pings} WATCHDOG=1 in {window:?} (expected ~7 at WATCHDOG_USEC/2)"
    );

    let sent_after = monotonic_usec();
    agent.process.signal(libc::SIGHUP)?;
    let (reloading, _) = notify.wait_for("RELOADING=1")?;
    let stamp: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .with_context(|| format!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"))?
        .parse()?;
    ensure!(
        stamp >= sent_after && stamp < sent_after + 5_000_000,
        "MONOTONIC_USEC={stamp} is not the time of the reload ({sent_after})"
    );
    let (ready, _) = notify.wait_for("READY=1")?;
    ensure!(ready.lines().any(|l| l == "STATUS=1 MASTER"), "{ready:?}");

    // A rejected reload ends the reload too, and says so in the status
    // until a reload succeeds.
    std::fs::write(&agent.config, "vrrp_instance {\n")?;
    agent.process.signal(libc::SIGHUP)?;
    notify.wait_for("RELOADING=1")?;
    let (ready, _) = notify.wait_for("READY=1")?;
    ensure!(
        ready.lines().any(|l| l
            == "STATUS=1 MASTER; last reload rejected, running the previous configuration (see the log)"),
        "{ready:?}"
    );
    std::fs::write(&agent.config, config(&net.a_if, 100))?;
    agent.process.signal(libc::SIGHUP)?;
    notify.wait_for("RELOADING=1")?;
    let (ready, _) = notify.wait_for("READY=1")?;
    ensure!(ready.lines().any(|l| l == "STATUS=1 MASTER"), "{ready:?}");

    agent.process.sigterm()?;
    notify.wait_for("STOPPING=1")?;
    let exit = agent.process.wait(WAIT)?;
    ensure!(exit.success(), "agent exited with {exit}");
    // The log reader may still be taking in the last lines: wait for it.
    agent
        .process
        .stderr()
        .wait_for(WAIT, |line| line.contains("vrrp-agent stopped"))?;

    // The JSON log: every line an object, the state change as documented.
    let lines = agent.process.stderr().lines();
    let mut changes = Vec::new();
    for line in &lines {
        let object: Value = serde_json::from_str(line)
            .with_context(|| format!("log line is not JSON: {line:?}"))?;
        for key in ["timestamp", "level", "target", "message"] {
            ensure!(object.get(key).is_some(), "{key} missing in {line}");
        }
        ensure!(
            !object["message"]
                .as_str()
                .unwrap_or_default()
                .contains("real-time"),
            "real-time scheduling refused under the unit's capabilities: {line}"
        );
        if object["event"] == "state_change" {
            changes.push(object);
        }
    }
    let to_master = changes
        .iter()
        .find(|change| change["to"] == "MASTER")
        .with_context(|| format!("no state_change to MASTER in {changes:?}"))?;
    ensure!(to_master["message"] == "state change", "{to_master}");
    ensure!(to_master["level"] == "INFO", "{to_master}");
    ensure!(to_master["instance"] == "VI_1", "{to_master}");
    ensure!(to_master["from"] == "BACKUP", "{to_master}");
    ensure!(to_master["reason"] == "MasterDown", "{to_master}");
    ensure!(to_master["priority"] == 100, "{to_master}");
    Ok(())
}

// ----------------------------------------------------------------- metrics

/// `GET /metrics` from inside `host`.
fn scrape(host: &Host, address: SocketAddr) -> Result<String> {
    host.run(move || -> Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, WAIT)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("no end of the response head")?;
        ensure!(head.starts_with("HTTP/1.1 200 "), "{head}");
        ensure!(
            head.contains("Content-Type: application/openmetrics-text"),
            "{head}"
        );
        Ok(body.to_owned())
    })?
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, set) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let set: BTreeMap<&str, &str> = set
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key, value.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|(key, value)| set.get(key) == Some(value))
                .then(|| value.parse().ok())
                .flatten()
        })
}

fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    sample(text, name, labels).with_context(|| format!("no sample {name} {labels:?} in:\n{text}"))
}

/// Two agents; the backup's scrape before and after the master is killed:
/// its state gauge moves from BACKUP to MASTER, its transitions to MASTER
/// and adverts sent go up from 0, the master changes from 1 to 2, the
/// master's advert age is fresh while the master lives, and the datapath
/// counted the master's adverts.
#[test]
fn metrics_follow_a_failover() -> Result<()> {
    let net = Net::new("opsmetrics")?;
    let a_metrics: SocketAddr = format!("{A_V4}:{METRICS_PORT}").parse()?;
    let b_metrics: SocketAddr = format!("{B_V4}:{METRICS_PORT}").parse()?;
    let a_listen = a_metrics.to_string();
    let b_listen = b_metrics.to_string();
    let a = Agent::start(
        &net.a,
        "a",
        &config(&net.a_if, 200),
        &[],
        &["--metrics-listen", &a_listen],
        &[],
    )?;
    a.wait_for_state("MASTER")?;
    let b = Agent::start(
        &net.b,
        "b",
        &config(&net.b_if, 100),
        &[],
        &["--metrics-listen", &b_listen],
        &[],
    )?;
    b.wait_for_state("BACKUP")?;
    // A few adverts after b started, so its kernel has recorded some.
    thread::sleep(Duration::from_millis(500));

    let b_if = net.b_if.as_str();
    let id = [("instance", "VI_1"), ("interface", b_if), ("vrid", "51")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = id.to_vec();
        labels.push(extra);
        labels
    };
    let before = scrape(&net.b, b_metrics)?;
    eprintln!("backup's scrape before the failover:\n{before}");
    ensure!(
        must(
            &before,
            "vrrp_agent_instance_state",
            &with(("state", "BACKUP"))
        )? == 1.0,
        "{before}"
    );
    ensure!(
        must(
            &before,
            "vrrp_agent_instance_state",
            &with(("state", "MASTER"))
        )? == 0.0
    );
    ensure!(
        must(
            &before,
            "vrrp_agent_instance_transitions_total",
            &with(("to", "MASTER"))
        )? == 0.0
    );
    ensure!(must(&before, "vrrp_agent_instance_adverts_sent_total", &id)? == 0.0);
    // a's adverts: the first master b saw.
    ensure!(must(&before, "vrrp_agent_instance_master_changes_total", &id)? == 1.0);
    ensure!(must(&before, "vrrp_agent_instance_effective_priority", &id)? == 100.0);
    let age = must(
        &before,
        "vrrp_agent_instance_master_advert_age_seconds",
        &id,
    )?;
    ensure!(
        (0.0..0.5).contains(&age),
        "master advert age {age} s while the master advertises every 0.1 s"
    );
    ensure!(
        must(
            &before,
            "vrrp_agent_datapath_adverts_accepted_total",
            &[("interface", b_if)]
        )? > 0.0
    );
    ensure!(must(&before, "vrrp_agent_build_info", &[])? == 1.0);
    let a_before = scrape(&net.a, a_metrics)?;
    ensure!(
        must(
            &a_before,
            "vrrp_agent_instance_adverts_sent_total",
            &[("instance", "VI_1")]
        )? > 0.0
    );

    a.process.kill9()?;
    b.wait_for_state("MASTER")?;
    let after = scrape(&net.b, b_metrics)?;
    ensure!(
        must(
            &after,
            "vrrp_agent_instance_state",
            &with(("state", "MASTER"))
        )? == 1.0,
        "{after}"
    );
    ensure!(
        must(
            &after,
            "vrrp_agent_instance_state",
            &with(("state", "BACKUP"))
        )? == 0.0
    );
    ensure!(
        must(
            &after,
            "vrrp_agent_instance_transitions_total",
            &with(("to", "MASTER"))
        )? == 1.0
    );
    ensure!(
        must(
            &after,
            "vrrp_agent_instance_transitions_total",
            &with(("to", "BACKUP"))
        )? == must(
            &before,
            "vrrp_agent_instance_transitions_total",
            &with(("to", "BACKUP"))
        )?
    );
    ensure!(must(&after, "vrrp_agent_instance_adverts_sent_total", &id)? > 0.0);
    // b itself is the second.
    ensure!(must(&after, "vrrp_agent_instance_master_changes_total", &id)? == 2.0);
    Ok(())
}

/// A metrics address that cannot be bound refuses the start before any
/// program is attached, naming the option and the address.
#[test]
fn a_taken_metrics_port_refuses_the_start() -> Result<()> {
    let net = Net::new("opsport")?;
    let address: SocketAddr = format!("{A_V4}:{METRICS_PORT}").parse()?;
    let _taken = net.a.run(move || std::net::TcpListener::bind(address))??;
    let config_path = net.a.temp_dir().join("port.conf");
    std::fs::write(&config_path, config(&net.a_if, 100))?;
    let socket = net.a.temp_dir().join("port.sock");
    let binary = lab::agent_binary()?;
    let listen = address.to_string();
    let process = net.a.spawn(&[
        path_str(&binary)?,
        "-f",
        path_str(&config_path)?,
        "--control-socket",
        path_str(&socket)?,
        "--metrics-listen",
        &listen,
    ])?;
    let exit = process.wait(WAIT)?;
    ensure!(!exit.success(), "the agent started on a taken port");
    // The log reader may still be taking in the last lines: wait for it.
    let refusal = format!("--metrics-listen {listen}: cannot listen there");
    process
        .stderr()
        .wait_for(WAIT, |line| line.contains(&refusal))?;
    ensure!(
        net.a.xdp_attachment(&net.a_if)?.is_none(),
        "XDP attached although the start was refused"
    );
    Ok(())
}

/// `--metrics-listen` belongs to the daemon; with a subcommand it is an
/// error rather than silently ignored.
#[test]
fn metrics_listen_with_a_subcommand_is_refused() -> Result<()> {
    let out = lab::run_agent_command(&[
        "--metrics-listen".as_ref(),
        "127.0.0.1:9".as_ref(),
        "status".as_ref(),
    ])?;
    ensure!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        stderr.contains("`status` and `monitor` take no such option"),
        "{stderr}"
    );
    Ok(())
}
