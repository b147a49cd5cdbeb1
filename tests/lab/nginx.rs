//! Runs Debian's nginx in a lab host as a one-line HTTP service, with every
//! file it writes (pid, error log, temp dirs) kept in the lab temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::host::Host;
use crate::process::Process;

/// Where Debian installs nginx.
pub const NGINX: &str = "/usr/sbin/nginx";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// An nginx (master + one worker, `daemon off`) in a lab host answering
/// every `GET` on port 80 (all addresses, so also on VIPs that arrive
/// later) with `200` and a fixed body. Stopped when dropped.
pub struct Nginx {
    process: Process,
    dir: PathBuf,
    body: String,
}

impl Nginx {
    /// Starts nginx in `host` answering with `body` plus a newline, and waits
    /// until it accepts connections on 127.0.0.1:80 in that host. `body` must
    /// be plain (letters, digits, `-`, `_`, `.`).
    pub fn start(host: &Host, body: &str) -> Result<Self> {
        if body.is_empty()
            || !body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("nginx body {body:?} must be non-empty letters, digits, '-', '_' or '.'");
        }
        let dir = fresh_dir(host)?;
        let config = dir.join("nginx.conf");
        std::fs::write(&config, render_config(&dir, body)?)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let (conf_arg, prefix_arg, error_log) = (
            path_arg(&config)?,
            format!("{}/", path_arg(&dir)?),
            path_arg(&dir.join("error.log"))?,
        );
        // `-e` keeps even the errors logged before the config is read in
        // our dir; `-p` makes relative paths resolve there too.
        let process = host.spawn(&[NGINX, "-c", &conf_arg, "-p", &prefix_arg, "-e", &error_log])?;
        let nginx = Self {
            process,
            dir,
            body: body.to_owned(),
        };
        nginx.wait_until_listening(host)?;
        Ok(nginx)
    }

    /// The nginx master process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// This run's directory (config, pid file, error log, temp dirs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The body it answers with (without the newline).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Stops nginx now (SIGTERM: fast shutdown of master and worker).
    pub fn stop(&self) -> Result<()> {
        self.process.stop()?;
        Ok(())
    }

    fn wait_until_listening(&self, host: &Host) -> Result<()> {
        let target: SocketAddr = ([127, 0, 0, 1], 80).into();
        let started = Instant::now();
        loop {
            if host.tcp_connect(target, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if !self.process.is_running() || started.elapsed() >= STARTUP_TIMEOUT {
                let errors =
                    std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                bail!(
                    "nginx in host {} never listened on {target}; error.log:\n{errors}\n{}",
                    host.name(),
                    self.process.report()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The config: foreground, one worker, and every path nginx may write
/// (pid, lock, logs, the five temp dirs compiled into Debian's build) under
/// `dir`, so it never touches /var or /run of the machine.
fn render_config(dir: &Path, body: &str) -> Result<String> {
    let d = path_arg(dir)?;
    Ok(format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    server {{
        listen 80;
        location / {{ return 200 \"{body}\\n\"; }}
    }}
}}
"
    ))
}

fn path_arg(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

fn fresh_dir(host: &Host) -> Result<PathBuf> {
    for n in 0..1000 {
        let dir = host.temp_dir().join(format!("nginx-{}-{n}", host.name()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    bail!("more than 1000 nginx runs in host {}", host.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_written_path_in_the_run_dir() {
        let text = render_config(Path::new("/tmp/lab-x/nginx-a-0"), "node1").unwrap();
        for directive in [
            "pid ",
            "lock_file ",
            "error_log ",
            "client_body_temp_path ",
            "proxy_temp_path ",
            "fastcgi_temp_path ",
            "uwsgi_temp_path ",
            "scgi_temp_path ",
        ] {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(directive))
                .unwrap_or_else(|| panic!("{directive} missing from\n{text}"));
            assert!(line.contains("/tmp/lab-x/nginx-a-0/"), "{line}");
        }
        assert!(text.contains("return 200 \"node1\\n\";"), "{text}");
        assert!(text.contains("access_log off;"), "{text}");
    }
}
