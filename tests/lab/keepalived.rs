//! Runs Debian's keepalived (VRRP only) in a lab host with its own config,
//! pid files and console log, so several can run side by side.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::host::Host;
use crate::process::{OutputStream, Process};

/// Where Debian installs keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// A keepalived running in a lab host; stopped (SIGTERM, so it releases its
/// VIPs, then SIGKILL) when dropped or when the lab drops.
pub struct Keepalived {
    process: Process,
    dir: PathBuf,
}

impl Keepalived {
    /// Writes `config` (keepalived.conf syntax) into a fresh directory in the
    /// lab temp dir, checks it with `keepalived --config-test`, and starts
    /// `keepalived --vrrp --dont-fork --log-console` in `host`.
    pub fn start(host: &Host, config: &str) -> Result<Self> {
        let dir = fresh_dir(host)?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, config)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let (conf_arg, pid, vrrp_pid, checkers_pid, bfd_pid) = (
            path("keepalived.conf"),
            path("keepalived.pid"),
            path("vrrp.pid"),
            path("checkers.pid"),
            path("bfd.pid"),
        );

        let checked = host.exec_unchecked(
            &[KEEPALIVED, "--config-test", "--use-file", &conf_arg],
            Duration::from_secs(10),
        )?;
        if !checked.success() {
            bail!(
                "keepalived rejected the config {} ({}):\n{}{}",
                conf.display(),
                checked.status,
                checked.stderr,
                checked.stdout
            );
        }

        let process = host.spawn(&[
            KEEPALIVED,
            "--use-file",
            &conf_arg,
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            // A crashed VRRP child should end the run, not be quietly replaced.
            "--dont-respawn",
            "--pid",
            &pid,
            "--vrrp_pid",
            &vrrp_pid,
            "--checkers_pid",
            &checkers_pid,
            "--bfd_pid",
            &bfd_pid,
        ])?;
        // keepalived needs time to withdraw VIPs and send priority-0 adverts.
        process.set_grace(Duration::from_secs(3));
        Ok(Self { process, dir })
    }

    /// The keepalived parent process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// keepalived's console log (it logs to stderr; stdout is included by
    /// [`log_text`](Self::log_text) too).
    pub fn log(&self) -> &OutputStream {
        self.process.stderr()
    }

    /// Everything keepalived printed so far.
    pub fn log_text(&self) -> String {
        format!(
            "{}\n{}",
            self.process.stdout().text(),
            self.process.stderr().text()
        )
    }

    /// Waits until keepalived logs that VRRP instance `instance` (the name
    /// after `vrrp_instance`) enters `state` (`MASTER`, `BACKUP`, `FAULT`).
    pub fn wait_for_state(&self, instance: &str, state: &str, timeout: Duration) -> Result<()> {
        let needle = format!("({instance}) Entering {state} STATE");
        self.log()
            .wait_for(timeout, |line| line.contains(&needle))
            .with_context(|| format!("keepalived never logged {needle:?}"))?;
        Ok(())
    }

    /// This run's directory (config, pid files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pid of the VRRP child process, once it has written its pid file.
    pub fn vrrp_pid(&self, timeout: Duration) -> Result<u32> {
        let file = self.dir.join("vrrp.pid");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(pid) = text.trim().parse()
            {
                return Ok(pid);
            }
            if !self.process.is_running() || Instant::now() >= deadline {
                bail!(
                    "keepalived wrote no VRRP pid to {} within {timeout:?}; log:\n{}",
                    file.display(),
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops keepalived now (SIGTERM, SIGKILL after 3 s).
    pub fn stop(&self) -> Result<()> {
        self.process.stop()?;
        Ok(())
    }
}

fn fresh_dir(host: &Host) -> Result<PathBuf> {
    for n in 0..1000 {
        let dir = host
            .temp_dir()
            .join(format!("keepalived-{}-{n}", host.name()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    bail!("more than 1000 keepalived runs in host {}", host.name())
}
