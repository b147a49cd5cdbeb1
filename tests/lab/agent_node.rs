//! Runs the `vrrp-agent` daemon in a lab host with its own config file and
//! control socket, and reads its state through `vrrp-agent status --json`,
//! so several agents (and keepalived peers) can run side by side.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::agent::agent_binary;
use crate::host::Host;
use crate::process::Process;

/// Attaching the eBPF programs and opening the control socket takes well
/// under a second; this bound only matters on a starved machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// A reload reads and applies one file; this bound only matters on a starved machine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A `vrrp-agent -f CONFIG --control-socket SOCKET` running in a lab host.
/// Stopped (SIGTERM, so it releases its VIPs, then SIGKILL) when dropped or
/// when the lab drops. [`restart`](Self::restart) runs it again with the
/// same config and socket, as a service manager would.
pub struct AgentNode {
    host: Host,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    binary: String,
    pins: PathBuf,
    /// Arguments added to every run (see [`AgentNode::start_with_args`]).
    extra_args: Vec<String>,
    process: Process,
}

impl AgentNode {
    /// Writes `config` (keepalived.conf syntax) into a fresh directory in the
    /// lab temp dir, checks it with `vrrp-agent -t`, starts the daemon in
    /// `host` (`RUST_LOG=info`) and waits until its control socket answers.
    pub fn start(host: &Host, config: &str) -> Result<Self> {
        Self::start_with_args(host, config, &[])
    }

    /// [`start`](Self::start) with `extra_args` added to the daemon's
    /// command line, on this run and on every [`restart`](Self::restart)
    /// (e.g. the hidden test-only `--test-event-ring-bytes`).
    pub fn start_with_args(host: &Host, config: &str, extra_args: &[&str]) -> Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        let binary = agent_binary()?
            .to_str()
            .context("vrrp-agent path is not UTF-8")?
            .to_owned();
        let dir = fresh_dir(host)?;
        let config_path = dir.join("keepalived.conf");
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let conf_arg = path_arg(&config_path)?;
        let checked =
            host.exec_unchecked(&[&binary, "-t", "-f", &conf_arg], Duration::from_secs(10))?;
        if !checked.success() {
            bail!(
                "vrrp-agent rejected the config {} ({}):\n{}{}",
                config_path.display(),
                checked.status,
                checked.stderr,
                checked.stdout
            );
        }
        let socket = dir.join("control.sock");
        // The pinned datapath outlives the daemon, as on a real host.
        let pins = dir.join("bpf");
        host.mount_bpffs(&pins)?;
        let pins = pins.join("vrrp-agent");
        let process = spawn(host, &binary, &config_path, &socket, &pins, &extra_args)?;
        let node = Self {
            host: host.clone(),
            dir,
            config: config_path,
            socket,
            binary,
            pins,
            extra_args,
            process,
        };
        node.wait_until_serving()?;
        Ok(node)
    }

    /// Starts the daemon again with the same config and control socket once
    /// the previous run has exited (after [`Process::kill9`] or SIGTERM);
    /// fails if it is still running.
    pub fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            bail!(
                "{} (pid {}) is still running; stop it before restarting",
                self.process.label(),
                self.process.pid()
            );
        }
        self.process = spawn(
            &self.host,
            &self.binary,
            &self.config,
            &self.socket,
            &self.pins,
            &self.extra_args,
        )?;
        self.wait_until_serving()
    }

    /// Replaces the config file with `config` and sends SIGHUP; returns the
    /// log line telling how the reload ended (`configuration reloaded` or
    /// `reload rejected ...`). Nothing checks the new text first: a reload
    /// the daemon must refuse is a valid thing to test.
    pub fn reload(&self, config: &str) -> Result<String> {
        std::fs::write(&self.config, config)
            .with_context(|| format!("cannot write {}", self.config.display()))?;
        self.process.signal(libc::SIGHUP)?;
        self.process
            .stderr()
            .wait_for(RELOAD_TIMEOUT, |line| {
                line.contains("configuration reloaded") || line.contains("reload rejected")
            })
            .with_context(|| {
                format!(
                    "vrrp-agent in host {} logged no reload outcome after SIGHUP",
                    self.host.name()
                )
            })
    }

    /// The current daemon process (signal it, read its log on stderr).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The host it runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// This node's directory (config, control socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file it runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Where it pins its datapath (`--pin-dir`), on a bpffs the lab mounted.
    pub fn pin_dir(&self) -> &Path {
        &self.pins
    }

    /// `vrrp-agent status --json`, parsed.
    pub fn status(&self) -> Result<Value> {
        let socket = path_arg(&self.socket)?;
        let out = self.host.exec_unchecked(
            &[
                &self.binary,
                "status",
                "--json",
                "--control-socket",
                &socket,
            ],
            Duration::from_secs(5),
        )?;
        if !out.success() {
            bail!(
                "`vrrp-agent status --json` in host {} failed ({}): {}",
                self.host.name(),
                out.status,
                out.stderr.trim()
            );
        }
        serde_json::from_str(&out.stdout).with_context(|| {
            format!(
                "`vrrp-agent status --json` in host {} printed no JSON: {:?}",
                self.host.name(),
                out.stdout
            )
        })
    }

    /// The status entry of instance `name`.
    pub fn instance(&self, name: &str) -> Result<Value> {
        let status = self.status()?;
        status["instances"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["name"] == name))
            .cloned()
            .with_context(|| {
                format!(
                    "host {} has no instance {name:?} in its status: {status}",
                    self.host.name()
                )
            })
    }

    /// State of instance `name` (`INIT`, `BACKUP`, `MASTER`, `FAULT`).
    pub fn state(&self, name: &str) -> Result<String> {
        let instance = self.instance(name)?;
        instance["state"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("instance {name:?} has no state: {instance}"))
    }

    /// Polls the status every 50 ms until instance `name` is in `state`;
    /// returns how long it took. Fails with the last status seen.
    pub fn wait_for_state(&self, name: &str, state: &str, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let seen = self.instance(name);
            if let Ok(instance) = &seen
                && instance["state"] == state
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                let last = match seen {
                    Ok(instance) => instance.to_string(),
                    Err(err) => format!("{err:#}"),
                };
                bail!(
                    "instance {name} in host {} not {state} within {timeout:?}; last status: {last}",
                    self.host.name()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the control socket answers; fails with the daemon's
    /// output if it exits first or never answers.
    fn wait_until_serving(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let attempt = self.status();
            if attempt.is_ok() {
                return Ok(());
            }
            if !self.process.is_running() || started.elapsed() >= STARTUP_TIMEOUT {
                let why = attempt.err().map(|e| format!("{e:#}")).unwrap_or_default();
                bail!(
                    "vrrp-agent in host {} never answered on {} ({why}):\n{}",
                    self.host.name(),
                    self.socket.display(),
                    self.process.report()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn(
    host: &Host,
    binary: &str,
    config: &Path,
    socket: &Path,
    pins: &Path,
    extra_args: &[String],
) -> Result<Process> {
    let (config, socket, pins) = (path_arg(config)?, path_arg(socket)?, path_arg(pins)?);
    let mut argv = vec![
        binary,
        "-f",
        &config,
        "--control-socket",
        &socket,
        "--pin-dir",
        &pins,
    ];
    argv.extend(extra_args.iter().map(String::as_str));
    let process = host.spawn_env(&argv, &[("RUST_LOG", "info")])?;
    // The daemon needs time for priority-0 adverts, VIP removal and notify_stop.
    process.set_grace(Duration::from_secs(3));
    Ok(process)
}

fn path_arg(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

fn fresh_dir(host: &Host) -> Result<PathBuf> {
    for n in 0..1000 {
        let dir = host.temp_dir().join(format!("agent-{}-{n}", host.name()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    bail!("more than 1000 agent runs in host {}", host.name())
}
