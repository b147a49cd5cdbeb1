//! The daemon's lifecycle and control end to end: notify scripts and SMTP
//! alerts in transition order, SIGHUP reloads, startup refusals, `status
//! --json`, the TC egress guard on backups, and the kernel programs going
//! away with the process (SIGTERM and kill -9).
//!
//! Every test builds hosts `a` and `b` (and `c` where a client is needed) on
//! one switch, so taking one host's link down does not touch the others.
//! VRRPv3 with advert_int 0.1: Master_Down_Interval is about 0.33 s.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lab::{Host, Lab, Process, Switch};
use serde_json::Value;

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
const C_V4: &str = "192.0.2.3";
const VIP: &str = "192.0.2.100";
const VIP2: &str = "192.0.2.101";
const VRID: u8 = 51;
/// Generous bound for anything that normally takes well under a second.
const WAIT: Duration = Duration::from_secs(10);
/// A non-owner becomes master after ~0.33 s (advert_int 0.1); this bound only
/// catches real stalls such as an election waiting on SMTP.
const ELECTION_BOUND: Duration = Duration::from_secs(3);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

// ---------------------------------------------------------------- topology

/// Hosts a and b (and optionally client c) on one switch, each with its
/// interface address; interface names are what `lab.attach` returned.
struct Net {
    lab: Lab,
    _switch: Switch,
    a: Host,
    b: Host,
    a_if: String,
    b_if: String,
    client: Option<(Host, String)>,
}

impl Net {
    fn new(prefix: &str, with_client: bool) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let a_if = lab.attach(&a, &switch)?;
        let b_if = lab.attach(&b, &switch)?;
        a.add_address(&a_if, &format!("{A_V4}/24"))?;
        b.add_address(&b_if, &format!("{B_V4}/24"))?;
        let client = if with_client {
            let c = lab.add_host("c")?;
            let c_if = lab.attach(&c, &switch)?;
            c.add_address(&c_if, &format!("{C_V4}/24"))?;
            Some((c, c_if))
        } else {
            None
        };
        Ok(Self {
            lab,
            _switch: switch,
            a,
            b,
            a_if,
            b_if,
            client,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.lab.temp_dir().join(name)
    }
}

// ------------------------------------------------------------------ config

/// One `vrrp_instance` block.
#[derive(Clone)]
struct InstanceSpec {
    name: &'static str,
    interface: String,
    vrid: u8,
    priority: u8,
    vips: Vec<&'static str>,
    /// Extra lines inside the block (notify, track_script, ...).
    extra: String,
}

impl InstanceSpec {
    fn new(interface: &str, priority: u8) -> Self {
        Self {
            name: "VI_1",
            interface: interface.to_owned(),
            vrid: VRID,
            priority,
            vips: vec![VIP],
            extra: String::new(),
        }
    }

    fn render(&self) -> String {
        let vips: String = self
            .vips
            .iter()
            .map(|vip| format!("        {vip}/24\n"))
            .collect();
        format!(
            "vrrp_instance {name} {{\n\
             \x20   state BACKUP\n\
             \x20   interface {iface}\n\
             \x20   virtual_router_id {vrid}\n\
             \x20   priority {prio}\n\
             \x20   advert_int 0.1\n\
             \x20   virtual_ipaddress {{\n{vips}\x20   }}\n\
             {extra}}}\n",
            name = self.name,
            iface = self.interface,
            vrid = self.vrid,
            prio = self.priority,
            extra = self.extra,
        )
    }
}

/// A whole keepalived.conf: global_defs (router id, VRRPv3, scripts as
/// root because the lab temp dir is root's) plus `extra_global`, then
/// `blocks` (e.g. `vrrp_script`), then the instances.
fn config(router_id: &str, extra_global: &str, blocks: &str, instances: &[InstanceSpec]) -> String {
    let mut text = format!(
        "global_defs {{\n\
         \x20   router_id {router_id}\n\
         \x20   vrrp_version 3\n\
         \x20   script_user root\n\
         {extra_global}}}\n{blocks}"
    );
    for instance in instances {
        text.push_str(&instance.render());
    }
    text
}

// ------------------------------------------------------------------- agent

/// A running `vrrp-agent` in a lab host with its own config file and
/// control socket in the lab's temp dir.
struct Agent {
    host: Host,
    config: PathBuf,
    socket: PathBuf,
    /// `--pin-dir`, on a bpffs the lab mounted (as /sys/fs/bpf on a host).
    pins: PathBuf,
    process: Process,
}

impl Agent {
    /// Writes `config_text` and starts the agent; returns once it logged
    /// that it runs (programs attached, control socket bound).
    fn start(host: &Host, label: &str, config_text: &str) -> Result<Self> {
        let config = host.temp_dir().join(format!("{label}.conf"));
        let socket = host.temp_dir().join(format!("{label}.sock"));
        std::fs::write(&config, config_text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let bpffs = host.temp_dir().join(format!("{label}-bpf"));
        host.mount_bpffs(&bpffs)?;
        let pins = bpffs.join("vrrp-agent");
        let binary = lab::agent_binary()?;
        let process = host.spawn_env(
            &[
                path_str(&binary)?,
                "-f",
                path_str(&config)?,
                "--control-socket",
                path_str(&socket)?,
                "--pin-dir",
                path_str(&pins)?,
            ],
            &[("NO_COLOR", "1"), ("RUST_LOG", "info")],
        )?;
        // Room for notify_stop and the priority-0 adverts on the way down.
        process.set_grace(Duration::from_secs(5));
        process
            .stderr()
            .wait_for(WAIT, |line| line.contains("vrrp-agent running"))
            .with_context(|| format!("agent {label} did not start:\n{}", process.report()))?;
        Ok(Self {
            host: host.clone(),
            config,
            socket,
            pins,
            process,
        })
    }

    fn status(&self) -> Result<Value> {
        status_json(&self.host, &self.socket)
    }

    /// The status of instance `name`.
    fn instance(&self, name: &str) -> Result<Value> {
        let status = self.status()?;
        find_instance(&status, name)
            .cloned()
            .with_context(|| format!("status has no instance {name}: {status}"))
    }

    fn counter(&self, name: &str) -> Result<u64> {
        let status = self.status()?;
        status["counters"][name]
            .as_u64()
            .with_context(|| format!("status has no counter {name}: {status}"))
    }

    /// Polls status until instance `name` is in `state`; returns how long it took.
    fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let instance = self.instance(name)?;
            if instance["state"] == state {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "{name} on host {} is not {state} after {timeout:?}: {instance}\n{}",
                    self.host.name(),
                    self.process.report()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Replaces the config file and sends SIGHUP; returns the log line that
    /// tells how the reload ended (`configuration reloaded` or `reload rejected`).
    fn reload(&self, config_text: &str) -> Result<String> {
        std::fs::write(&self.config, config_text)
            .with_context(|| format!("cannot write {}", self.config.display()))?;
        self.process.signal(libc::SIGHUP)?;
        self.process.stderr().wait_for(WAIT, |line| {
            line.contains("configuration reloaded") || line.contains("reload rejected")
        })
    }

    /// SIGTERM and wait for the exit; fails unless it exits 0 in time.
    fn terminate(&self) -> Result<Duration> {
        let started = Instant::now();
        self.process.sigterm()?;
        let status = self.process.wait(Duration::from_secs(15))?;
        ensure!(
            status.success(),
            "agent exited with {status} after SIGTERM:\n{}",
            self.process.report()
        );
        Ok(started.elapsed())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

/// `vrrp-agent status --json` against `socket`, run in `host`.
fn status_json(host: &Host, socket: &Path) -> Result<Value> {
    let binary = lab::agent_binary()?;
    let out = host.exec_unchecked(
        &[
            path_str(&binary)?,
            "status",
            "--json",
            "--control-socket",
            path_str(socket)?,
        ],
        WAIT,
    )?;
    ensure!(
        out.success(),
        "`vrrp-agent status` failed ({}): {}",
        out.status,
        out.stderr
    );
    serde_json::from_str(&out.stdout)
        .with_context(|| format!("status --json printed no JSON: {}", out.stdout))
}

fn find_instance<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["instances"]
        .as_array()?
        .iter()
        .find(|instance| instance["name"] == name)
}

fn instance_names(status: &Value) -> Vec<String> {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|instance| instance["name"].as_str().map(str::to_owned))
        .collect()
}

// ------------------------------------------------------------ notify log

/// A notify script appending its arguments plus a timestamp to a log file.
struct NotifyLog {
    script: PathBuf,
    log: PathBuf,
}

impl NotifyLog {
    fn new(net: &Net, label: &str) -> Result<Self> {
        let script = net.path(&format!("{label}-notify.sh"));
        let log = net.path(&format!("{label}-notify.log"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$* $(date +%s.%N)\" >> {}\n",
                path_str(&log)?
            ),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { script, log })
    }

    /// The notify lines for an instance: each state script tags its lines
    /// with `specific <STATE>`, the generic script with `generic`.
    fn instance_lines(&self) -> Result<String> {
        let script = path_str(&self.script)?;
        Ok(format!(
            "    notify_master \"{script} specific MASTER\"\n\
             \x20   notify_backup \"{script} specific BACKUP\"\n\
             \x20   notify_fault \"{script} specific FAULT\"\n\
             \x20   notify_stop \"{script} specific STOP\"\n\
             \x20   notify \"{script} generic\"\n"
        ))
    }

    /// Lines so far without their timestamps; checks the timestamps never go back.
    fn entries(&self) -> Result<Vec<String>> {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err).context("cannot read the notify log"),
        };
        let mut entries = Vec::new();
        let mut last = 0.0_f64;
        for line in text.lines() {
            let (args, stamp) = line
                .rsplit_once(' ')
                .with_context(|| format!("notify log line without timestamp: {line:?}"))?;
            let stamp: f64 = stamp
                .parse()
                .with_context(|| format!("bad timestamp in {line:?}"))?;
            ensure!(
                stamp >= last,
                "notify lines out of time order at {line:?}:\n{text}"
            );
            last = stamp;
            entries.push(args.to_owned());
        }
        Ok(entries)
    }

    /// Waits until at least `count` lines are logged; returns all of them.
    fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<String>> {
        let started = Instant::now();
        loop {
            let entries = self.entries()?;
            if entries.len() >= count {
                return Ok(entries);
            }
            if started.elapsed() >= timeout {
                bail!(
                    "expected {count} notify lines within {timeout:?}, have {}: {entries:#?}",
                    entries.len()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

/// The two lines one transition of VI_1 to `state` logs, in run order.
fn notify_pair(state: &str, priority: u8) -> [String; 2] {
    [
        format!("specific {state}"),
        format!("generic INSTANCE VI_1 {state} {priority}"),
    ]
}

// -------------------------------------------------------------- smtp sink

/// One mail the sink accepted.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

impl Mail {
    fn subject(&self) -> Option<&str> {
        self.data
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
    }
}

/// A minimal SMTP server (220, EHLO/HELO 250, MAIL 250, RCPT 250, DATA 354,
/// `.` 250, QUIT 221) on a host's loopback, handing accepted mails to a channel.
struct SmtpSink {
    stop: Arc<AtomicBool>,
    worker: Option<thread::JoinHandle<()>>,
    mails: mpsc::Receiver<Mail>,
}

impl SmtpSink {
    fn start(host: &Host, addr: &str) -> Result<Self> {
        let addr: SocketAddr = addr.parse()?;
        // Bound on a thread inside the namespace: the socket belongs to the host.
        let listener = host.run(move || TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mails) = mpsc::channel();
        let stop_flag = Arc::clone(&stop);
        let worker = thread::Builder::new()
            .name("smtp-sink".into())
            .spawn(move || accept_loop(&listener, &stop_flag, &tx))?;
        Ok(Self {
            stop,
            worker: Some(worker),
            mails,
        })
    }

    fn next_mail(&self, timeout: Duration) -> Result<Mail> {
        self.mails
            .recv_timeout(timeout)
            .with_context(|| format!("no mail reached the SMTP sink within {timeout:?}"))
    }

    /// Mails that arrive within `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<Mail> {
        let mut extra = Vec::new();
        while let Ok(mail) = self.mails.recv_timeout(quiet) {
            extra.push(mail);
        }
        extra
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, tx: &mpsc::Sender<Mail>) {
    // Bounded even if the test forgets to drop the sink.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(err) = serve_smtp(stream, tx) {
                    eprintln!("smtp sink: session failed: {err:#}");
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(err) => {
                eprintln!("smtp sink: accept failed: {err}");
                return;
            }
        }
    }
}

fn serve_smtp(stream: TcpStream, tx: &mpsc::Sender<Mail>) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.example.com ESMTP test sink\r\n")?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.example.com\r\n",
            "MAIL" => {
                from = angle_address(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(angle_address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        bail!("connection closed inside DATA");
                    }
                    if line.trim_end_matches(['\r', '\n']) == "." {
                        break;
                    }
                    data.push_str(&line);
                }
                let _ = tx.send(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 OK queued\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        writer.write_all(reply)?;
    }
}

/// `MAIL FROM:<x@y>` → `x@y`.
fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

// ------------------------------------------------------------ bpf listing

/// XDP program ids `bpftool -j net show dev IFACE` lists in `host`. (The
/// installed bpftool 7.1 predates tcx, so its `tc` section never shows the
/// guard; the guard is found through the agent's link fds instead.)
fn bpftool_xdp_ids(host: &Host, iface: &str) -> Result<Vec<u64>> {
    let out = host.exec(&["bpftool", "-j", "net", "show", "dev", iface])?;
    let parsed: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("bpftool printed no JSON: {}", out.stdout))?;
    Ok(parsed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|section| section["xdp"].as_array())
        .flatten()
        .filter(|entry| entry["devname"] == iface)
        .filter_map(|entry| entry["id"].as_u64())
        .collect())
}

/// The BPF links process `pid` holds, as the `key: value` fields of their
/// fdinfo (`link_type`, `link_id`, `prog_id`, `ifindex`, `attach_type`).
fn bpf_links_of(pid: u32) -> Result<Vec<BTreeMap<String, String>>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut links = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        // An fd closed between listing and reading is simply skipped.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let fields: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        if fields.contains_key("link_type") {
            links.push(fields);
        }
    }
    Ok(links)
}

fn field_u64(fields: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    fields.get(key)?.split_whitespace().next()?.parse().ok()
}

/// Checks the agent has XDP `vrrp_rx` and tcx egress `vip_guard` attached
/// to `iface` (bpftool lists the XDP program; the agent's fds hold both
/// links); returns the link ids.
fn ensure_programs_attached(agent: &Agent, iface: &str) -> Result<Vec<u64>> {
    let host = &agent.host;
    let ifindex = u64::from(host.ifindex(iface)?);
    let listed = bpftool_xdp_ids(host, iface)?;
    let links = bpf_links_of(agent.process.pid())?;
    println!("bpftool xdp on {iface}: {listed:?}; agent links: {links:?}");
    let on_iface = |kind: &str| -> Vec<&BTreeMap<String, String>> {
        links
            .iter()
            .filter(|l| l.get("link_type").map(String::as_str) == Some(kind))
            .filter(|l| field_u64(l, "ifindex") == Some(ifindex))
            .collect()
    };
    let xdp = on_iface("xdp");
    ensure!(
        xdp.len() == 1 && listed.len() == 1 && field_u64(xdp[0], "prog_id") == Some(listed[0]),
        "expected one XDP program on {iface}, listed by bpftool ({listed:?}) and held by the agent ({xdp:?})"
    );
    let tcx = on_iface("tcx");
    ensure!(
        tcx.len() == 1
            && tcx[0]
                .get("attach_type")
                .is_some_and(|t| t.contains("egress")),
        "expected one tcx egress link on {iface} held by the agent: {tcx:?}"
    );
    let prog_id = field_u64(tcx[0], "prog_id").context("tcx link without prog_id")?;
    let prog = host.exec(&["bpftool", "-j", "prog", "show", "id", &prog_id.to_string()])?;
    let prog: Value = serde_json::from_str(&prog.stdout)?;
    ensure!(
        prog["name"] == "vip_guard",
        "tcx egress program is not vip_guard: {prog}"
    );
    let xdp_prog = host.exec(&[
        "bpftool",
        "-j",
        "prog",
        "show",
        "id",
        &listed[0].to_string(),
    ])?;
    let xdp_prog: Value = serde_json::from_str(&xdp_prog.stdout)?;
    ensure!(
        xdp_prog["name"] == "vrrp_rx",
        "XDP program is not vrrp_rx: {xdp_prog}"
    );
    Ok(xdp
        .iter()
        .chain(&tcx)
        .filter_map(|l| field_u64(l, "link_id"))
        .collect())
}

/// Polls until bpftool lists no XDP program on `iface` and none of
/// `link_ids` exists any more; returns how long it took.
fn wait_programs_gone(
    host: &Host,
    iface: &str,
    link_ids: &[u64],
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let xdp = bpftool_xdp_ids(host, iface)?;
        let mut alive = Vec::new();
        for id in link_ids {
            let out =
                host.exec_unchecked(&["bpftool", "link", "show", "id", &id.to_string()], WAIT)?;
            if out.success() {
                alive.push(*id);
            }
        }
        if xdp.is_empty() && alive.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            bail!(
                "after {timeout:?} bpftool still lists XDP {xdp:?} on {iface}; links still alive: {alive:?}"
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ================================================================== tests

/// Test 1: notify_* and generic `notify` run in transition order with the
/// trailing `INSTANCE VI_1 <STATE> <priority>` arguments.
#[test]
fn notify_scripts_run_in_transition_order_with_keepalived_arguments() -> Result<()> {
    let net = Net::new("lcnotify", false)?;
    let notify = NotifyLog::new(&net, "a")?;
    let mut a_spec = InstanceSpec::new(&net.a_if, 100);
    a_spec.extra = notify.instance_lines()?;
    let a = Agent::start(&net.a, "a", &config("nodeA", "", "", &[a_spec]))?;

    let mut expected: Vec<String> = Vec::new();
    // Alone on the link: BACKUP first, MASTER after Master_Down_Interval.
    a.wait_state("VI_1", "MASTER", WAIT)?;
    expected.extend(notify_pair("BACKUP", 100));
    expected.extend(notify_pair("MASTER", 100));
    assert_eq!(notify.wait_for(expected.len(), WAIT)?, expected);

    // A higher-priority peer appears and preempts.
    let b = Agent::start(
        &net.b,
        "b",
        &config("nodeB", "", "", &[InstanceSpec::new(&net.b_if, 200)]),
    )?;
    b.wait_state("VI_1", "MASTER", WAIT)?;
    a.wait_state("VI_1", "BACKUP", WAIT)?;
    expected.extend(notify_pair("BACKUP", 100));
    assert_eq!(notify.wait_for(expected.len(), WAIT)?, expected);

    // Link down: FAULT; link up: back to BACKUP under b's adverts.
    net.a.link_down(&net.a_if)?;
    a.wait_state("VI_1", "FAULT", WAIT)?;
    expected.extend(notify_pair("FAULT", 100));
    assert_eq!(notify.wait_for(expected.len(), WAIT)?, expected);
    net.a.link_up(&net.a_if)?;
    a.wait_state("VI_1", "BACKUP", WAIT)?;
    expected.extend(notify_pair("BACKUP", 100));
    assert_eq!(notify.wait_for(expected.len(), WAIT)?, expected);
    // b is master throughout, so a must stay BACKUP (no MASTER blip).
    thread::sleep(Duration::from_secs(1));
    assert_eq!(a.instance("VI_1")?["state"], "BACKUP");
    assert_eq!(b.instance("VI_1")?["state"], "MASTER");

    // SIGTERM: notify_stop, then the generic script with STOP.
    let took = a.terminate()?;
    println!("agent a exited {} ms after SIGTERM", took.as_millis());
    expected.extend(notify_pair("STOP", 100));
    assert_eq!(notify.wait_for(expected.len(), WAIT)?, expected);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(notify.entries()?, expected, "lines after the STOP pair");
    Ok(())
}

fn smtp_globals(server: &str) -> String {
    format!(
        "    notification_email {{\n\
         \x20       ops@example.com\n\
         \x20   }}\n\
         \x20   notification_email_from vrrp@example.com\n\
         \x20   smtp_server {server}\n\
         \x20   smtp_connect_timeout 5\n\
         \x20   smtp_alert\n"
    )
}

/// Test 2a: one mail per transition, keepalived's subject, envelope from
/// `notification_email_from` to each `notification_email`.
#[test]
fn smtp_alert_sends_one_mail_per_transition() -> Result<()> {
    let net = Net::new("lcsmtp", false)?;
    let sink = SmtpSink::start(&net.a, "127.0.0.1:2525")?;
    let a = Agent::start(
        &net.a,
        "a",
        &config(
            "nodeA",
            &smtp_globals("127.0.0.1 2525"),
            "",
            &[InstanceSpec::new(&net.a_if, 100)],
        ),
    )?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    let subject = |what: &str| format!("[nodeA] VRRP Instance VI_1 - {what}");
    let mut subjects = Vec::new();
    let mut take = |sink: &SmtpSink| -> Result<Mail> {
        let mail = sink.next_mail(WAIT)?;
        subjects.push(mail.subject().unwrap_or("<no subject>").to_owned());
        Ok(mail)
    };
    let first = take(&sink)?;
    take(&sink)?;
    ensure!(
        first.from == "vrrp@example.com" && first.to == ["ops@example.com"],
        "envelope should be vrrp@example.com -> ops@example.com: {first:?}"
    );
    ensure!(
        first.data.contains("From: ") && first.data.contains("ops@example.com"),
        "headers should name sender and recipient: {:?}",
        first.data
    );

    let b = Agent::start(
        &net.b,
        "b",
        &config("nodeB", "", "", &[InstanceSpec::new(&net.b_if, 200)]),
    )?;
    b.wait_state("VI_1", "MASTER", WAIT)?;
    a.wait_state("VI_1", "BACKUP", WAIT)?;
    take(&sink)?;
    a.terminate()?;
    take(&sink)?;
    let extra = sink.drain(Duration::from_millis(500));
    assert_eq!(
        subjects,
        [
            subject("Entering BACKUP state"),
            subject("Entering MASTER state"),
            subject("Entering BACKUP state"),
            subject("Stopping"),
        ]
    );
    ensure!(extra.is_empty(), "unexpected extra mails: {extra:?}");
    Ok(())
}

/// Test 2b: with the mail server down, the election does not wait for it.
#[test]
fn election_does_not_wait_for_an_unreachable_smtp_server() -> Result<()> {
    let net = Net::new("lcsmtpdn", false)?;
    // Nothing listens on 127.0.0.1:2525 (refused at once), and 192.0.2.99
    // does not exist on the switch (connect hangs for smtp_connect_timeout).
    for server in ["127.0.0.1 2525", "192.0.2.99 2525"] {
        let a = Agent::start(
            &net.a,
            "a",
            &config(
                "nodeA",
                &smtp_globals(server),
                "",
                &[InstanceSpec::new(&net.a_if, 100)],
            ),
        )?;
        let took = a.wait_state("VI_1", "MASTER", ELECTION_BOUND)?;
        net.a
            .wait_for_address(&net.a_if, ip(VIP), Duration::from_secs(1))?;
        println!(
            "smtp server {server} down: master {} ms after startup",
            took.as_millis()
        );
        // Losing mastership is just as prompt while mail is still pending.
        let b = Agent::start(
            &net.b,
            "b",
            &config("nodeB", "", "", &[InstanceSpec::new(&net.b_if, 200)]),
        )?;
        let handover = a.wait_state("VI_1", "BACKUP", ELECTION_BOUND)?;
        println!(
            "smtp server {server} down: backup {} ms after the peer started",
            handover.as_millis()
        );
        let stop = a.terminate()?;
        println!(
            "smtp server {server} down: exit {} ms after SIGTERM",
            stop.as_millis()
        );
        b.terminate()?;
    }
    Ok(())
}

/// Test 3a: SIGHUP with the same file changes nothing; SIGHUP with an
/// invalid file is rejected and the old config keeps running.
#[test]
fn sighup_unchanged_is_a_no_op_and_invalid_is_rejected() -> Result<()> {
    let net = Net::new("lchupsame", false)?;
    let notify = NotifyLog::new(&net, "a")?;
    let mut spec = InstanceSpec::new(&net.a_if, 100);
    spec.extra = notify.instance_lines()?;
    let text = config("nodeA", "", "", &[spec]);
    let a = Agent::start(&net.a, "a", &text)?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    net.a.wait_for_address(&net.a_if, ip(VIP), WAIT)?;
    let lines = notify.wait_for(4, WAIT)?;
    let before = a.instance("VI_1")?;

    let outcome = a.reload(&text)?;
    ensure!(
        outcome.contains("configuration reloaded"),
        "unchanged reload: {outcome}"
    );
    thread::sleep(Duration::from_secs(1));
    let after = a.instance("VI_1")?;
    assert_eq!(after["state"], "MASTER");
    assert_eq!(
        after["transitions"], before["transitions"],
        "an unchanged reload must not transition"
    );
    assert_eq!(
        notify.entries()?,
        lines,
        "an unchanged reload ran notify scripts"
    );
    ensure!(
        net.a.has_address(&net.a_if, ip(VIP))?,
        "VIP gone after reload"
    );

    let outcome = a.reload("vrrp_instance VI_1 {\n    priority banana\n")?;
    ensure!(
        outcome.contains("reload rejected"),
        "invalid reload: {outcome}"
    );
    thread::sleep(Duration::from_secs(1));
    let after = a.instance("VI_1")?;
    assert_eq!(after["state"], "MASTER");
    assert_eq!(after["transitions"], before["transitions"]);
    assert_eq!(after["base_priority"], 100);
    assert_eq!(
        notify.entries()?,
        lines,
        "a rejected reload ran notify scripts"
    );
    ensure!(
        net.a.has_address(&net.a_if, ip(VIP))?,
        "VIP gone after rejected reload"
    );
    ensure!(a.process.is_running(), "agent died on a bad reload");
    Ok(())
}

/// Test 3b: a priority-only change is applied in place and preempts.
#[test]
fn sighup_priority_change_applies_in_place_and_preempts() -> Result<()> {
    let net = Net::new("lchupprio", false)?;
    let a = Agent::start(
        &net.a,
        "a",
        &config("nodeA", "", "", &[InstanceSpec::new(&net.a_if, 150)]),
    )?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    let notify = NotifyLog::new(&net, "b")?;
    let mut b_spec = InstanceSpec::new(&net.b_if, 100);
    b_spec.extra = notify.instance_lines()?;
    let b = Agent::start(&net.b, "b", &config("nodeB", "", "", &[b_spec.clone()]))?;
    thread::sleep(Duration::from_secs(1));
    let before = b.instance("VI_1")?;
    assert_eq!(before["state"], "BACKUP");
    let lines = notify.wait_for(2, WAIT)?;
    assert_eq!(lines, notify_pair("BACKUP", 100));

    b_spec.priority = 200;
    let outcome = b.reload(&config("nodeB", "", "", &[b_spec]))?;
    ensure!(outcome.contains("configuration reloaded"), "{outcome}");
    let took = b.wait_state("VI_1", "MASTER", WAIT)?;
    println!("b preempted {} ms after the reload", took.as_millis());
    a.wait_state("VI_1", "BACKUP", WAIT)?;
    net.b.wait_for_address(&net.b_if, ip(VIP), WAIT)?;
    net.a.wait_for_address_gone(&net.a_if, ip(VIP), WAIT)?;
    let after = b.instance("VI_1")?;
    assert_eq!(after["base_priority"], 200);
    assert_eq!(
        after["transitions"].as_u64(),
        before["transitions"].as_u64().map(|t| t + 1),
        "only BACKUP -> MASTER may be added (no restart through INIT/BACKUP)"
    );
    let mut expected = lines;
    expected.extend(notify_pair("MASTER", 200));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(notify.entries()?, expected);
    Ok(())
}

/// Test 3c: removing an instance by SIGHUP releases its VIP, the other stays.
#[test]
fn sighup_removing_an_instance_releases_its_vip() -> Result<()> {
    let net = Net::new("lchuprm", false)?;
    let first = InstanceSpec::new(&net.a_if, 100);
    let second = InstanceSpec {
        name: "VI_2",
        vrid: VRID + 1,
        vips: vec![VIP2],
        ..first.clone()
    };
    let a = Agent::start(
        &net.a,
        "a",
        &config("nodeA", "", "", &[first.clone(), second]),
    )?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    a.wait_state("VI_2", "MASTER", WAIT)?;
    net.a.wait_for_address(&net.a_if, ip(VIP2), WAIT)?;
    let transitions = a.instance("VI_1")?["transitions"].clone();

    let outcome = a.reload(&config("nodeA", "", "", &[first]))?;
    ensure!(outcome.contains("configuration reloaded"), "{outcome}");
    let took = net.a.wait_for_address_gone(&net.a_if, ip(VIP2), WAIT)?;
    println!(
        "VI_2's VIP released {} ms after the reload",
        took.as_millis()
    );
    let status = a.status()?;
    assert_eq!(instance_names(&status), ["VI_1"]);
    let kept = find_instance(&status, "VI_1").context("VI_1 vanished")?;
    assert_eq!(kept["state"], "MASTER");
    assert_eq!(kept["transitions"], transitions);
    ensure!(
        net.a.has_address(&net.a_if, ip(VIP))?,
        "VI_1's VIP went too"
    );
    Ok(())
}

/// Runs the daemon in `host` with `config_text` expecting a startup refusal;
/// returns its stderr after checking exit 1 within a few seconds.
fn refused_startup(
    host: &Host,
    net: &Net,
    label: &str,
    config_text: &str,
) -> Result<(String, String)> {
    let config = net.path(&format!("{label}.conf"));
    std::fs::write(&config, config_text)?;
    let socket = net.path(&format!("{label}.sock"));
    let binary = lab::agent_binary()?;
    let started = Instant::now();
    let out = host.exec_unchecked(
        &[
            "env",
            "NO_COLOR=1",
            path_str(&binary)?,
            "-f",
            path_str(&config)?,
            "--control-socket",
            path_str(&socket)?,
        ],
        Duration::from_secs(20),
    )?;
    let took = started.elapsed();
    println!(
        "{label}: refused in {} ms: {}",
        took.as_millis(),
        out.stderr.trim()
    );
    ensure!(
        out.status.code() == Some(1),
        "{label}: expected exit 1, got {} (stderr: {})",
        out.status,
        out.stderr
    );
    ensure!(
        took < Duration::from_secs(5),
        "{label}: refusing took {took:?}"
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        lines.len() == 1 && lines[0].starts_with("vrrp-agent: "),
        "{label}: expected exactly one stderr line starting `vrrp-agent: `, got:\n{}",
        out.stderr
    );
    Ok((lines[0].to_owned(), path_str(&config)?.to_owned()))
}

/// Test 4a: an invalid config is refused at startup with exit 1 and one
/// `vrrp-agent:` line locating the error as file:line:col.
#[test]
fn startup_refuses_an_invalid_config_in_one_located_line() -> Result<()> {
    let net = Net::new("lcrefcfg", false)?;
    let mut bad = InstanceSpec::new(&net.a_if, 100);
    bad.vrid = 0;
    let text = config("nodeA", "", "", &[bad]);
    let vrid_line = text
        .lines()
        .position(|line| line.contains("virtual_router_id"))
        .context("no vrid line")?
        + 1;
    let (line, file) = refused_startup(&net.a, &net, "invalid", &text)?;
    let located = format!("{file}:{vrid_line}:");
    let column = line
        .split_once(&located)
        .and_then(|(_, rest)| rest.split(':').next())
        .unwrap_or_default();
    ensure!(
        !column.is_empty() && column.chars().all(|c| c.is_ascii_digit()),
        "the message should locate the error as {located}<col>: {line}"
    );
    ensure!(line.contains("virtual_router_id"), "{line}");
    Ok(())
}

/// Test 4b: a missing interface is refused at startup with exit 1 and one
/// `vrrp-agent:` line naming it. (Not running as root cannot be tested:
/// the lab itself needs root, and the not-root check is the first thing
/// the daemon does, covered by its own code path `DaemonError::NotRoot`.)
#[test]
fn startup_refuses_a_missing_interface_naming_it() -> Result<()> {
    let net = Net::new("lcrefif", false)?;
    let text = config("nodeA", "", "", &[InstanceSpec::new("nosuch0", 100)]);
    let (line, _) = refused_startup(&net.a, &net, "noiface", &text)?;
    ensure!(
        line.contains("nosuch0"),
        "should name the interface: {line}"
    );
    Ok(())
}

/// Test 5: `status --json` on master and backup, tracked-script weight,
/// socket mode, and a clear failure against a dead socket.
#[test]
fn status_reports_priorities_master_and_advert_age() -> Result<()> {
    let net = Net::new("lcstatus", false)?;
    let b = Agent::start(
        &net.b,
        "b",
        &config("nodeB", "", "", &[InstanceSpec::new(&net.b_if, 200)]),
    )?;
    b.wait_state("VI_1", "MASTER", WAIT)?;
    let track =
        "vrrp_script chk_ok {\n    script \"/bin/true\"\n    interval 1\n    weight 10\n}\n";
    let mut spec = InstanceSpec::new(&net.a_if, 100);
    spec.extra = "    track_script {\n        chk_ok\n    }\n".into();
    let a = Agent::start(&net.a, "a", &config("nodeA", "", track, &[spec]))?;

    // The script's first success raises the effective priority to 110.
    let started = Instant::now();
    let instance = loop {
        let instance = a.instance("VI_1")?;
        let settled =
            instance["effective_priority"] == 110 && !instance["master_address"].is_null();
        if settled || started.elapsed() > WAIT {
            break instance;
        }
        thread::sleep(Duration::from_millis(50));
    };
    println!("backup status: {instance:#}");
    assert_eq!(instance["state"], "BACKUP");
    assert_eq!(instance["base_priority"], 100);
    assert_eq!(instance["effective_priority"], 110);
    assert_eq!(instance["master_address"], B_V4);
    assert_eq!(instance["vrid"], VRID);
    assert_eq!(instance["interface"], net.a_if.as_str());
    assert_eq!(instance["version"], 3);
    assert_eq!(instance["advert_interval_ms"], 100);
    assert_eq!(
        instance["virtual_addresses"],
        serde_json::json!([format!("{VIP}/24")])
    );
    let age = instance["last_advert_age_ms"]
        .as_u64()
        .context("backup has no last_advert_age_ms")?;
    println!("last_advert_age_ms on the backup: {age}");
    ensure!(
        age < 1000,
        "adverts every 100 ms, yet the last is {age} ms old"
    );
    // INIT -> BACKUP at startup, nothing since.
    assert_eq!(instance["transitions"], 1, "backup transitions");
    let tracked = instance["tracked"].as_array().context("no tracked list")?;
    ensure!(
        tracked.len() == 1
            && tracked[0]["kind"] == "script"
            && tracked[0]["name"] == "chk_ok"
            && tracked[0]["weight"] == 10,
        "tracked: {tracked:?}"
    );

    let master = b.instance("VI_1")?;
    assert_eq!(master["state"], "MASTER");
    assert_eq!(master["effective_priority"], 200);
    assert_eq!(master["master_address"], B_V4);
    // INIT -> BACKUP -> MASTER.
    assert_eq!(master["transitions"], 2, "master transitions");
    let status = b.status()?;
    ensure!(
        status["router_id"] == "nodeB" && status["pid"].as_u64().is_some(),
        "{status}"
    );

    let meta = std::fs::metadata(&a.socket)?;
    ensure!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        a.socket.display()
    );
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "control socket mode"
    );

    // Dead socket: after kill -9 the file stays but nobody listens.
    a.process.kill9()?;
    a.process.wait(WAIT)?;
    let binary = lab::agent_binary()?;
    for socket in [a.socket.clone(), net.path("never-bound.sock")] {
        let out = net.a.exec_unchecked(
            &[
                "env",
                "NO_COLOR=1",
                path_str(&binary)?,
                "status",
                "--control-socket",
                path_str(&socket)?,
            ],
            WAIT,
        )?;
        println!("status on dead socket: {}", out.stderr.trim());
        ensure!(
            !out.success(),
            "status on a dead socket succeeded: {}",
            out.stdout
        );
        ensure!(
            out.stderr.starts_with("vrrp-agent: ") && out.stderr.contains(path_str(&socket)?),
            "the message should start with `vrrp-agent:` and name the socket: {}",
            out.stderr
        );
        ensure!(out.stdout.trim().is_empty(), "stdout: {}", out.stdout);
    }
    Ok(())
}

/// Sends one UDP datagram from `source` to `dest`:9 inside `host`.
fn send_udp(host: &Host, source: &str, dest: &str, payload: &'static [u8]) -> Result<()> {
    let source: SocketAddr = format!("{source}:0").parse()?;
    let dest: SocketAddr = format!("{dest}:9").parse()?;
    host.run(move || -> std::io::Result<()> {
        let socket = UdpSocket::bind(source)?;
        socket.send_to(payload, dest)?;
        Ok(())
    })??;
    Ok(())
}

/// Starts a TCP connection from `source` to `dest`:80 inside `host`: the
/// kernel sends the SYN during `connect`, which is all the test needs.
fn send_tcp_syn(host: &Host, source: &str, dest: &str) -> Result<()> {
    let source: Ipv4Addr = source.parse()?;
    let dest: Ipv4Addr = dest.parse()?;
    host.run(move || -> std::io::Result<()> {
        let sockaddr = |addr: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(addr).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: plain socket call; the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let local = sockaddr(source, 0);
        // SAFETY: `local` outlives the call and `len` is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&local).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(dest, 80);
        // SAFETY: as above.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                std::ptr::from_ref(&remote).cast::<libc::sockaddr>(),
                len,
            )
        };
        let err = std::io::Error::last_os_error();
        // Non-blocking: EINPROGRESS once the SYN is out (or dropped at egress).
        if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
        thread::sleep(Duration::from_millis(50));
        Ok(())
    })??;
    Ok(())
}

/// Fields of the frames a capture file holds:
/// `eth.src ip.src arp.src ip.dst udp.dstport tcp.dstport`.
fn capture_rows(file: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new("tshark")
        .args(["-r", path_str(file)?, "-T", "fields"])
        .args([
            "-e",
            "eth.src",
            "-e",
            "ip.src",
            "-e",
            "arp.src.proto_ipv4",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.dstport",
        ])
        .output()
        .context("cannot run tshark")?;
    ensure!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>().join(" "))
        .collect())
}

/// Test 6: the backup's egress guard drops frames sourced from the VIP
/// (counted in `vip_egress_blocked`) while the master's pass; bpftool shows
/// the XDP and tcx egress programs while running and nothing after SIGTERM.
#[test]
fn egress_guard_blocks_vip_sourced_frames_on_the_backup_only() -> Result<()> {
    let net = Net::new("lcguard", true)?;
    let (c, c_if) = net.client.clone().context("client host")?;
    let a = Agent::start(
        &net.a,
        "a",
        &config("nodeA", "", "", &[InstanceSpec::new(&net.a_if, 200)]),
    )?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    let b = Agent::start(
        &net.b,
        "b",
        &config("nodeB", "", "", &[InstanceSpec::new(&net.b_if, 100)]),
    )?;
    thread::sleep(Duration::from_millis(500));
    assert_eq!(b.instance("VI_1")?["state"], "BACKUP");
    let a_links = ensure_programs_attached(&a, &net.a_if)?;
    let b_links = ensure_programs_attached(&b, &net.b_if)?;

    // A VIP the backup has not removed yet; a static neighbour for the
    // client so the datagram itself, not an ARP query, reaches the guard.
    net.b
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", &net.b_if])?;
    let c_mac = c.mac(&c_if)?;
    let b_mac = net.b.mac(&net.b_if)?;
    let a_mac = net.a.mac(&net.a_if)?;
    net.b.ip(&[
        "neigh",
        "replace",
        C_V4,
        "lladdr",
        &c_mac,
        "dev",
        &net.b_if,
        "nud",
        "permanent",
    ])?;
    net.a.ip(&[
        "neigh",
        "replace",
        C_V4,
        "lladdr",
        &c_mac,
        "dev",
        &net.a_if,
        "nud",
        "permanent",
    ])?;
    let blocked_before = b.counter("vip_egress_blocked")?;
    let master_blocked_before = a.counter("vip_egress_blocked")?;
    let capture = c.capture(&c_if, "udp dst port 9 or tcp port 80 or arp or icmp", 1000)?;
    // On the master the VIP is a legitimate source.
    send_udp(&net.a, VIP, C_V4, b"from-master-vip")?;
    send_tcp_syn(&net.a, VIP, C_V4)?;
    for _ in 0..3 {
        send_udp(&net.b, VIP, C_V4, b"from-backup-vip")?;
    }
    send_tcp_syn(&net.b, VIP, C_V4)?;
    let ping = net.b.exec_unchecked(
        &[
            "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", VIP, C_V4,
        ],
        WAIT,
    )?;
    ensure!(
        !ping.success(),
        "ping from the VIP on the backup got answers:\n{}",
        ping.stdout
    );
    // Sent last, the backup's own address must get out: the path works and
    // the capture covered everything sent before it.
    send_udp(&net.b, B_V4, C_V4, b"from-backup-own")?;
    // tcpdump hands packets over in blocks (up to 1 s late); let it catch up.
    thread::sleep(Duration::from_secs(2));
    capture.stop()?;
    let rows = capture_rows(capture.file())?;
    println!("client saw:\n  {}", rows.join("\n  "));
    let from = |mac: &str, source: &str| {
        rows.iter()
            .filter(|row| {
                let fields: Vec<&str> = row.split(' ').collect();
                fields.first() == Some(&mac)
                    && (fields.get(1) == Some(&source) || fields.get(2) == Some(&source))
            })
            .count()
    };
    let blocked_after = b.counter("vip_egress_blocked")?;
    let master_blocked_after = a.counter("vip_egress_blocked")?;
    println!(
        "vip_egress_blocked: backup {blocked_before} -> {blocked_after}, master {master_blocked_before} -> {master_blocked_after}"
    );
    ensure!(
        from(&b_mac, VIP) == 0,
        "frames sourced from the VIP left the backup:\n{}",
        rows.join("\n")
    );
    ensure!(
        from(&b_mac, B_V4) >= 1,
        "the backup's own datagram did not arrive"
    );
    ensure!(
        from(&a_mac, VIP) >= 2,
        "the master's VIP datagram and SYN did not both arrive"
    );
    ensure!(
        rows.iter()
            .any(|row| row.starts_with(&format!("{a_mac} {VIP} ")) && row.ends_with(" 80")),
        "the master's SYN from the VIP did not arrive"
    );

    ensure!(
        blocked_after >= blocked_before + 6,
        "vip_egress_blocked on the backup grew {blocked_before} -> {blocked_after}; expected at least 6 (3 datagrams, a SYN, 2 echo requests)"
    );
    assert_eq!(
        master_blocked_after, master_blocked_before,
        "the master blocked its own VIP traffic"
    );

    for (agent, iface, links) in [(&a, &net.a_if, &a_links), (&b, &net.b_if, &b_links)] {
        agent.terminate()?;
        // Detached before exit, so gone at once (the bound is only for the kernel's bookkeeping).
        wait_programs_gone(&agent.host, iface, links, Duration::from_millis(500))?;
    }
    Ok(())
}

/// Test 7: kill -9 leaves nothing attached (the links die with the process).
#[test]
fn kill9_leaves_the_programs_attached_until_cleanup() -> Result<()> {
    let net = Net::new("lckill9", false)?;
    let a = Agent::start(
        &net.a,
        "a",
        &config("nodeA", "", "", &[InstanceSpec::new(&net.a_if, 100)]),
    )?;
    a.wait_state("VI_1", "MASTER", WAIT)?;
    let links = ensure_programs_attached(&a, &net.a_if)?;
    a.process.kill9()?;
    let status = a.process.wait(WAIT)?;
    ensure!(
        status.signal() == Some(libc::SIGKILL),
        "expected death by SIGKILL, got {status}"
    );
    // Pinned: the kernel keeps them, nothing was detached under rtnl.
    thread::sleep(Duration::from_millis(200));
    let listed = bpftool_xdp_ids(&net.a, &net.a_if)?;
    ensure!(
        !listed.is_empty(),
        "the killed agent's XDP program was detached"
    );
    let binary = lab::agent_binary()?;
    net.a.exec(&[
        path_str(&binary)?,
        "cleanup",
        "--control-socket",
        path_str(&a.socket)?,
        "--pin-dir",
        path_str(&a.pins)?,
    ])?;
    let took = wait_programs_gone(&net.a, &net.a_if, &links, WAIT)?;
    println!("programs gone {} ms after cleanup", took.as_millis());
    Ok(())
}
