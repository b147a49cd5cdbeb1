//! The network-namespace test lab: every end-to-end test builds its own hosts
//! as network namespaces, wires them with veth pairs or a bridge, runs
//! programs (keepalived, our agent, nginx, tcpdump) in them, and tears it all
//! down when the [`Lab`] guard drops — also when the test panics.
//!
//! ```no_run
//! use std::time::Duration;
//! # fn main() -> anyhow::Result<()> {
//! let lab = lab::Lab::new("demo")?;                  // fails clearly unless root + `ip netns`
//! let (a, b) = (lab.add_host("a")?, lab.add_host("b")?);
//! let link = lab.connect(&a, &b)?;                   // veth pair, both ends up
//! a.add_address(&link.a, "192.0.2.1/24")?;
//! b.add_address(&link.b, "192.0.2.2/24")?;
//! let _listener = b.run(|| std::net::TcpListener::bind("192.0.2.2:8080"))??;
//! a.tcp_connect("192.0.2.2:8080".parse()?, Duration::from_secs(2))?;
//! let tail = b.spawn(&["ip", "monitor", "address"])?; // stopped when dropped
//! println!("{}", a.exec(&["ip", "addr"])?.stdout);
//! # drop(tail); Ok(()) }
//! ```
//!
//! What a host offers, beyond [`Host::exec`] / [`Host::spawn`]:
//! [`Host::run`] (Rust code inside the namespace), [`Host::link_down`] /
//! [`Host::link_up`], [`Host::wait_for_address`], [`Host::send_adverts`]
//! (raw VRRP peer, see [`advert`]), [`Host::capture`] (tcpdump + tshark),
//! [`Host::serve_tcp`], [`Host::tcp_connect`], [`Host::icmp_echo`] and
//! [`Host::start_probe`] (outage measurement), [`Host::serve_udp_echo`] /
//! [`Host::start_udp_probe`] (a server on the VIP, a 1 ms client accepting
//! only VIP-sourced replies) and [`Host::xdp_attachment`].
//! [`Keepalived::start`] runs the interop peer, [`Monitor::start`] runs
//! `vrrp-agent monitor --json` (the binary is found by [`agent_binary`]); a
//! [`Process`]'s output can be awaited line by line
//! ([`OutputStream::wait_for`], [`OutputStream::wait_for_json`]).
//!
//! Names are unique per lab (`vlab-<prefix>-<pid>-<n><rand>-<host>`), so tests
//! run in parallel. Only documentation addresses are accepted. Set
//! `LAB_KEEP=1` to keep the temp dir (process logs, captures) after a run.

mod addr;
pub mod advert;
mod advert_checksum;
mod agent;
mod agent_node;
mod capture;
mod cmd;
mod host;
mod http;
mod keepalived;
mod monitor;
mod names;
mod netns;
mod nginx;
mod pair;
mod preflight;
mod probe;
mod process;
mod raw_frame;
mod service;
mod sock;
mod udp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use addr::Cidr;
pub use advert::{Advert, AdvertBurst, VrrpVersion};
pub use agent::{AGENT_BIN_VAR, agent_binary, run_agent_command};
pub use agent_node::{AgentNode, pinned_maps_dir};
pub use capture::Capture;
pub use cmd::ExecOutput;
pub use host::{Host, IfAddr};
pub use http::{HttpProbeReport, HttpProbeRun, HttpSample};
pub use keepalived::Keepalived;
pub use monitor::{Monitor, stats_router};
pub use nginx::Nginx;
pub use pair::{RouterPair, single_vip_config};
pub use preflight::{require_lab_support, require_tool};
pub use probe::{Outage, ProbeKind, ProbePlan, ProbeReport, ProbeRun};
pub use process::{OutputStream, Process};
pub use raw_frame::{HeardAdvert, VrrpListener, ipv4_advert_frame};
pub use service::TcpService;
pub use udp::{UdpEcho, UdpProbeRun, UdpTrace, UdpWindow};

/// Name of the bridge inside every switch host.
pub const BRIDGE: &str = "br0";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The interfaces at the two ends of a veth pair made by [`Lab::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name inside the first host.
    pub a: String,
    /// Interface name inside the second host.
    pub b: String,
}

/// A host holding a bridge ([`BRIDGE`]) that other hosts attach to.
#[derive(Debug, Clone)]
pub struct Switch {
    host: Host,
}

impl Switch {
    /// The namespace the bridge lives in (to run tcpdump on the bridge, etc).
    pub fn host(&self) -> &Host {
        &self.host
    }
}

/// Guard owning every namespace, process and temp file of one test.
/// Dropping it stops processes (SIGTERM, SIGKILL after a grace period),
/// kills anything else left in its namespaces, deletes the namespaces (and
/// with them the veths) and removes the temp dir. [`Host`] handles may
/// outlive it, but then fail: the lab, not the handles, owns the namespaces.
pub struct Lab {
    shared: Arc<LabShared>,
}

/// State shared by a lab and its host handles.
pub(crate) struct LabShared {
    id: String,
    temp_dir: PathBuf,
    namespaces: Mutex<Vec<String>>,
    processes: Mutex<Vec<Arc<process::ProcessCore>>>,
    iface_counters: Mutex<HashMap<(String, &'static str), u32>>,
    /// bpf filesystems mounted for agents' pins, unmounted at teardown.
    bpffs: Mutex<Vec<PathBuf>>,
    torn_down: AtomicBool,
}

impl LabShared {
    /// Mounts a bpf filesystem at `dir` (created) for an agent's pinned
    /// datapath. `ip netns exec` gives each process a fresh /sys without
    /// bpffs, so pins under /sys/fs/bpf would die with the process; a
    /// mount here is the host's and outlives it. Unmounting it at teardown
    /// releases everything a killed agent left pinned.
    pub(crate) fn mount_bpffs(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let target = dir.to_str().context("bpffs path is not UTF-8")?;
        cmd::run(&["mount", "-t", "bpf", "bpf", target])
            .with_context(|| format!("cannot mount a bpf filesystem at {target}"))?;
        lock(&self.bpffs).push(dir.to_path_buf());
        Ok(())
    }

    pub(crate) fn register_process(&self, core: &Arc<process::ProcessCore>) {
        lock(&self.processes).push(Arc::clone(core));
    }

    /// Fails once the lab has been dropped, so nothing new starts in it.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.torn_down.load(Ordering::SeqCst) {
            anyhow::bail!(
                "lab {} was already dropped; keep the Lab alive while using its hosts",
                self.id
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.shared.id)
            .field("temp_dir", &self.shared.temp_dir)
            .finish()
    }
}

impl Lab {
    /// Creates an empty lab; `prefix` (1..=12 of `[a-z0-9]`) shows up in
    /// namespace names. Fails with instructions unless root with `ip netns`.
    /// Also removes namespaces left by lab runs whose process no longer exists.
    pub fn new(prefix: &str) -> Result<Self> {
        preflight::require_lab_support()?;
        let id = names::new_lab_id(prefix)?;
        sweep_stale_namespaces();
        let temp_dir = std::env::temp_dir().join(&id);
        std::fs::create_dir(&temp_dir)
            .with_context(|| format!("cannot create lab temp dir {}", temp_dir.display()))?;
        Ok(Self {
            shared: Arc::new(LabShared {
                id,
                temp_dir,
                namespaces: Mutex::new(Vec::new()),
                processes: Mutex::new(Vec::new()),
                iface_counters: Mutex::new(HashMap::new()),
                bpffs: Mutex::new(Vec::new()),
                torn_down: AtomicBool::new(false),
            }),
        })
    }

    /// Unique id of this lab; every namespace name starts with it.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Directory for this lab's files (process logs, configs, captures).
    pub fn temp_dir(&self) -> &Path {
        &self.shared.temp_dir
    }

    /// Names of the namespaces created so far.
    pub fn netns_names(&self) -> Vec<String> {
        lock(&self.shared.namespaces).clone()
    }

    /// Creates host `name` (1..=10 of `[a-z0-9]`): a namespace with `lo` up
    /// and IPv6 DAD off, so addresses are usable as soon as links are up.
    pub fn add_host(&self, name: &str) -> Result<Host> {
        let netns = names::netns_name(&self.shared.id, name)?;
        cmd::run(&["ip", "netns", "add", &netns])
            .with_context(|| format!("cannot create host {name}"))?;
        lock(&self.shared.namespaces).push(netns.clone());
        let host = Host::new(Arc::clone(&self.shared), name.to_owned(), netns);
        host.link_up("lo")?;
        for scope in ["all", "default"] {
            host.set_sysctl(&format!("net/ipv6/conf/{scope}/accept_dad"), "0")?;
        }
        Ok(host)
    }

    /// Creates a switch host `name` with a bridge (no STP, no forwarding
    /// delay, no multicast snooping so VRRP multicast floods to every port).
    pub fn add_switch(&self, name: &str) -> Result<Switch> {
        let host = self.add_host(name)?;
        host.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        host.link_up(BRIDGE)?;
        Ok(Switch { host })
    }

    /// Next free interface name with `stem` in `host` (`veth0`, `veth1`, ...).
    fn next_ifname(&self, host: &Host, stem: &'static str) -> Result<String> {
        let mut counters = lock(&self.shared.iface_counters);
        let counter = counters.entry((host.netns().to_owned(), stem)).or_insert(0);
        let name = format!("{stem}{counter}");
        *counter += 1;
        names::check_ifname(&name)?;
        Ok(name)
    }

    /// Joins two hosts with a veth pair (created directly inside the two
    /// namespaces, never in the test machine's own), both ends up.
    pub fn connect(&self, a: &Host, b: &Host) -> Result<Link> {
        let a_if = self.next_ifname(a, "veth")?;
        let b_if = self.next_ifname(b, "veth")?;
        a.ip(&[
            "link",
            "add",
            &a_if,
            "type",
            "veth",
            "peer",
            "name",
            &b_if,
            "netns",
            b.netns(),
        ])
        .with_context(|| format!("cannot connect host {} to host {}", a.name(), b.name()))?;
        a.link_up(&a_if)?;
        b.link_up(&b_if)?;
        Ok(Link { a: a_if, b: b_if })
    }

    /// Plugs `host` into `switch` with a veth pair; returns the interface
    /// name inside `host` (the switch side is a bridge port named `portN`).
    pub fn attach(&self, host: &Host, switch: &Switch) -> Result<String> {
        let sw = switch.host();
        let host_if = self.next_ifname(host, "veth")?;
        let port = self.next_ifname(sw, "port")?;
        sw.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            &host_if,
            "netns",
            host.netns(),
        ])
        .with_context(|| format!("cannot attach host {} to switch {}", host.name(), sw.name()))?;
        sw.ip(&["link", "set", "dev", &port, "master", BRIDGE, "up"])?;
        host.link_up(&host_if)?;
        Ok(host_if)
    }

    /// Exit status and recent output of every process this lab started —
    /// print it when a test fails. (Also printed automatically when the lab
    /// is dropped during a panic.)
    pub fn process_report(&self) -> String {
        lock(&self.shared.processes)
            .iter()
            .map(|p| p.failure_report())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.torn_down.store(true, Ordering::SeqCst);
        if thread::panicking() {
            eprintln!(
                "lab {}: test failed; processes (logs in {}):\n{}",
                shared.id,
                shared.temp_dir.display(),
                self.process_report()
            );
        }
        let processes = std::mem::take(&mut *lock(&shared.processes));
        process::ProcessCore::stop_all(&processes);
        let namespaces = std::mem::take(&mut *lock(&shared.namespaces));
        for netns in namespaces {
            if let Err(err) = remove_namespace(&netns) {
                eprintln!("lab {}: {err:#}", shared.id);
            }
        }
        for mount in std::mem::take(&mut *lock(&shared.bpffs)) {
            let target = mount.to_string_lossy().into_owned();
            if let Err(err) = cmd::run(&["umount", "-l", &target]) {
                eprintln!("lab {}: cannot unmount {target}: {err:#}", shared.id);
            }
        }
        if std::env::var_os("LAB_KEEP").is_some() {
            eprintln!(
                "lab {}: LAB_KEEP set, keeping {}",
                shared.id,
                shared.temp_dir.display()
            );
        } else if let Err(err) = std::fs::remove_dir_all(&shared.temp_dir) {
            eprintln!(
                "lab {}: cannot remove {}: {err}",
                shared.id,
                shared.temp_dir.display()
            );
        }
    }
}

/// Processes whose network namespace is `netns`, except this test process.
fn namespace_pids(netns: &str) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    cmd::run(&["ip", "netns", "pids", netns])
        .map(|out| {
            out.stdout
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|pid| *pid != me)
        .collect()
}

/// Kills whatever still runs in `netns` (TERM, then KILL), then deletes it.
fn remove_namespace(netns: &str) -> Result<()> {
    if !signal_until_empty(netns, libc::SIGTERM, Duration::from_millis(300)) {
        signal_until_empty(netns, libc::SIGKILL, Duration::from_secs(3));
    }
    cmd::run(&["ip", "netns", "del", netns])
        .with_context(|| format!("cannot delete namespace {netns}"))?;
    Ok(())
}

/// Sends `signal` to every process in `netns` until none is left or
/// `patience` runs out; true if the namespace is empty.
fn signal_until_empty(netns: &str, signal: libc::c_int, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let pids = namespace_pids(netns);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for pid in pids {
            // SAFETY: plain syscall on a pid living in one of our lab namespaces.
            unsafe { libc::kill(pid, signal) };
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Lists namespaces by name (first word of each `ip netns list` line).
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = cmd::run(&["ip", "netns", "list"])?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Removes lab namespaces whose creating process has exited (a test run
/// killed before its guards could drop). Best effort: errors are printed.
fn sweep_stale_namespaces() {
    let Ok(all) = list_namespaces() else { return };
    for netns in all {
        let Some(owner) = names::owner_pid(&netns) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        eprintln!("lab: removing stale namespace {netns} (its test process {owner} is gone)");
        if let Err(err) = remove_namespace(&netns) {
            eprintln!("lab: {err:#}");
        }
    }
}

/// Polls `check` every 20 ms until it holds, and says how long that took;
/// fails naming `what` after `timeout`.
pub fn wait_until(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<std::time::Duration> {
    let started = std::time::Instant::now();
    loop {
        if check()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
