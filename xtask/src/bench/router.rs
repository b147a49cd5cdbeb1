//! One VRRP router under test — keepalived or vrrp-agent — behind one
//! interface: start it with a config, ask its instance states, count how
//! often it became master, signal it, find its pids.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lab::{Host, Keepalived, OutputStream, Process};
use serde::Serialize;
use serde_json::Value;

use super::interrupt;

/// Which VRRP implementation a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Implementation {
    #[serde(rename = "keepalived")]
    Keepalived,
    #[serde(rename = "vrrp-agent")]
    Agent,
}

impl Implementation {
    pub const BOTH: [Self; 2] = [Self::Keepalived, Self::Agent];

    pub fn label(self) -> &'static str {
        match self {
            Self::Keepalived => "keepalived",
            Self::Agent => "vrrp-agent",
        }
    }
}

/// How long a daemon may take to come up (load eBPF, open sockets).
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Router {
    Keepalived(Keepalived),
    Agent { process: Process, socket: PathBuf },
}

impl Router {
    /// Starts `implementation` in `host` with keepalived.conf text `config`.
    pub fn start(
        implementation: Implementation,
        host: &Host,
        config: &str,
        agent_binary: &Path,
    ) -> Result<Self> {
        match implementation {
            Implementation::Keepalived => {
                let keepalived = Keepalived::start(host, config)?;
                keepalived.vrrp_pid(START_TIMEOUT)?;
                Ok(Self::Keepalived(keepalived))
            }
            Implementation::Agent => start_agent(host, config, agent_binary),
        }
    }

    pub fn implementation(&self) -> Implementation {
        match self {
            Self::Keepalived(_) => Implementation::Keepalived,
            Self::Agent { .. } => Implementation::Agent,
        }
    }

    pub fn process(&self) -> &Process {
        match self {
            Self::Keepalived(keepalived) => keepalived.process(),
            Self::Agent { process, .. } => process,
        }
    }

    /// The stream where it logs its state changes.
    pub fn log(&self) -> &OutputStream {
        self.process().stderr()
    }

    /// Every process of the implementation (keepalived: parent and VRRP child).
    pub fn pids(&self) -> Result<Vec<u32>> {
        match self {
            Self::Keepalived(keepalived) => Ok(vec![
                keepalived.process().pid(),
                keepalived.vrrp_pid(Duration::from_secs(5))?,
            ]),
            Self::Agent { process, .. } => Ok(vec![process.pid()]),
        }
    }

    /// How many instances are MASTER now. The agent is asked over its
    /// control socket; keepalived's state is the last one its log announced
    /// per instance.
    pub fn masters(&self) -> Result<usize> {
        match self {
            Self::Keepalived(keepalived) => {
                let lines = keepalived.log().lines();
                Ok(last_states(&lines)
                    .iter()
                    .filter(|(_, state)| state == "MASTER")
                    .count())
            }
            Self::Agent { socket, .. } => {
                let status = agent_status(socket)?;
                Ok(instances(&status)
                    .iter()
                    .filter(|i| i["state"] == "MASTER")
                    .count())
            }
        }
    }

    /// How many times any instance entered MASTER, according to its log.
    pub fn master_entries(&self) -> usize {
        self.log()
            .lines()
            .iter()
            .filter(|line| entered_state(line).is_some_and(|(_, s)| s == "MASTER"))
            .count()
    }

    /// The agent's own count of state transitions over all instances
    /// (`status --json`); None for keepalived, which keeps no such count.
    pub fn status_transitions(&self) -> Result<Option<u64>> {
        match self {
            Self::Keepalived(_) => Ok(None),
            Self::Agent { socket, .. } => Ok(Some(
                instances(&agent_status(socket)?)
                    .iter()
                    .filter_map(|i| i["transitions"].as_u64())
                    .sum(),
            )),
        }
    }

    /// Replaces the config file with `config` and sends SIGHUP to the main
    /// process only (keepalived's parent passes it on to its VRRP child; a
    /// signal to the whole group would reach that child twice).
    pub fn reload(&self, config: &str) -> Result<()> {
        let file = match self {
            Self::Keepalived(keepalived) => keepalived.dir().join("keepalived.conf"),
            Self::Agent { socket, .. } => socket
                .parent()
                .context("the agent's control socket has no directory")?
                .join("keepalived.conf"),
        };
        std::fs::write(&file, config)
            .with_context(|| format!("cannot write {}", file.display()))?;
        let pid = libc::pid_t::try_from(self.process().pid()).context("pid out of range")?;
        // SAFETY: plain syscall on the pid of a process this run started and has not reaped.
        if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot send SIGHUP to pid {pid}"));
        }
        Ok(())
    }

    /// Control socket of an agent (None for keepalived).
    pub fn control_socket(&self) -> Option<&Path> {
        match self {
            Self::Keepalived(_) => None,
            Self::Agent { socket, .. } => Some(socket),
        }
    }

    /// Waits until `count` instances are MASTER.
    pub fn wait_masters(&self, count: usize, timeout: Duration) -> Result<()> {
        interrupt::wait_until(
            &format!(
                "{} with {count} MASTER instance(s)",
                self.implementation().label()
            ),
            timeout,
            Duration::from_millis(20),
            || {
                if !self.process().is_running() {
                    bail!(
                        "{} exited early:\n{}",
                        self.implementation().label(),
                        self.process().report()
                    );
                }
                Ok(self.masters()? >= count)
            },
        )
        .with_context(|| self.process().report())?;
        Ok(())
    }
}

fn start_agent(host: &Host, config: &str, binary: &Path) -> Result<Router> {
    let dir = fresh_dir(host.temp_dir(), &format!("agent-{}", host.name()))?;
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, config).with_context(|| format!("cannot write {}", conf.display()))?;
    let socket = dir.join("control.sock");
    // As on a real host, the pinned datapath outlives the daemon: a killed
    // agent detaches nothing, and one started again on the same host adopts
    // it (see the lab's `mount_bpffs`).
    let bpffs = host.temp_dir().join(format!("bpf-{}", host.name()));
    if !bpffs.exists() {
        host.mount_bpffs(&bpffs)?;
    }
    let pins = bpffs.join("vrrp-agent");
    let argv = [
        binary.to_str().context("agent path is not UTF-8")?,
        "-f",
        conf.to_str().context("lab path is not UTF-8")?,
        "--control-socket",
        socket.to_str().context("lab path is not UTF-8")?,
        "--pin-dir",
        pins.to_str().context("lab path is not UTF-8")?,
    ];
    let process = host.spawn_env(&argv, &[("RUST_LOG", "info"), ("NO_COLOR", "1")])?;
    // The agent withdraws VIPs and sends priority-0 adverts on SIGTERM.
    process.set_grace(Duration::from_secs(3));
    interrupt::wait_until(
        "vrrp-agent control socket answering",
        START_TIMEOUT,
        Duration::from_millis(20),
        || {
            if !process.is_running() {
                bail!("vrrp-agent exited during start:\n{}", process.report());
            }
            Ok(agent_status(&socket).is_ok())
        },
    )?;
    Ok(Router::Agent { process, socket })
}

fn fresh_dir(parent: &Path, stem: &str) -> Result<PathBuf> {
    for n in 0..1000 {
        let dir = parent.join(format!("{stem}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    bail!("more than 1000 {stem} directories in {}", parent.display())
}

/// `vrrp-agent status --json`, spoken directly on the control socket so
/// sampling it does not fork a process every few milliseconds.
pub fn agent_status(socket: &Path) -> Result<Value> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"{\"command\":\"status\"}\n")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let value: Value = serde_json::from_str(&line)
        .with_context(|| format!("status reply is not JSON: {line:?}"))?;
    if let Some(error) = value.get("error") {
        bail!("status request failed: {error}");
    }
    Ok(value)
}

pub fn instances(status: &Value) -> Vec<Value> {
    status["instances"].as_array().cloned().unwrap_or_default()
}

/// `(instance, state)` when `line` announces a state change — keepalived's
/// `(VI_1) Entering MASTER STATE` or the agent's tracing line
/// `state change instance=VI_1 from="BACKUP" to="MASTER"`.
pub fn entered_state(line: &str) -> Option<(String, String)> {
    let plain = strip_ansi(line);
    let line = plain.as_str();
    if let Some(end) = line.find(" STATE")
        && let Some(start) = line[..end].rfind(") Entering ")
    {
        let state = &line[start + ") Entering ".len()..end];
        let open = line[..start].rfind('(')?;
        return Some((line[open + 1..start].to_owned(), state.to_owned()));
    }
    if line.contains("state change") {
        let field = |name: &str| -> Option<String> {
            let at = line.find(&format!(" {name}="))? + name.len() + 2;
            let value = line[at..].split_whitespace().next()?;
            Some(value.trim_matches('"').to_owned())
        };
        return Some((field("instance")?, field("to")?));
    }
    None
}

/// `line` without terminal colour sequences (`ESC [ ... m`), which the
/// agent's log may carry even when it is not writing to a terminal.
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The last announced state of every instance found in `lines`.
fn last_states(lines: &[String]) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = Vec::new();
    for (instance, state) in lines.iter().filter_map(|l| entered_state(l)) {
        match states.iter_mut().find(|(name, _)| *name == instance) {
            Some(entry) => entry.1 = state,
            None => states.push((instance, state)),
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keepalived_state_lines() {
        let line = "Thu Nov 26 19:30:01 2026: (VI_1) Entering MASTER STATE";
        assert_eq!(
            entered_state(line),
            Some(("VI_1".to_owned(), "MASTER".to_owned()))
        );
        assert_eq!(entered_state("(VI_1) sent 0 priority"), None);
    }

    #[test]
    fn parses_agent_state_lines() {
        let line = "2026-11-26T19:30:01.5Z  INFO vrrp_agent::daemon::runtime: state change \
                    instance=VI_7 from=\"BACKUP\" to=\"MASTER\" reason=MasterDown priority=100";
        assert_eq!(
            entered_state(line),
            Some(("VI_7".to_owned(), "MASTER".to_owned()))
        );
    }

    #[test]
    fn parses_coloured_agent_state_lines() {
        let line = "\u{1b}[2m2026-11-26T19:24:24Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m state change \
                    \u{1b}[3minstance\u{1b}[0m\u{1b}[2m=\u{1b}[0mVI_1 \u{1b}[3mto\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"MASTER\"";
        assert_eq!(
            entered_state(line),
            Some(("VI_1".to_owned(), "MASTER".to_owned()))
        );
    }

    #[test]
    fn last_state_wins_per_instance() {
        let lines: Vec<String> = [
            "(A) Entering BACKUP STATE",
            "(B) Entering BACKUP STATE",
            "(A) Entering MASTER STATE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            last_states(&lines),
            vec![
                ("A".to_owned(), "MASTER".to_owned()),
                ("B".to_owned(), "BACKUP".to_owned())
            ]
        );
    }
}
