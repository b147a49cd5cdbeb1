//! A lab host: one network namespace, with ways to run commands and
//! processes in it, run Rust code in it, and manage its links and addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::LabShared;
use crate::addr::{self, Cidr};
use crate::cmd::{self, ExecOutput};
use crate::names;
use crate::netns;
use crate::preflight;
use crate::process::{Process, ProcessCore};

/// One address of an interface, as `ip -j addr` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `global`, `link` or `host`.
    pub scope: String,
}

/// A host of a [`Lab`](crate::Lab): a network namespace. A cheap handle
/// (clone it freely, keep it in fixtures); once the lab is dropped its
/// operations fail because the namespace is gone.
#[derive(Clone)]
pub struct Host {
    lab: Arc<LabShared>,
    name: String,
    netns: String,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .finish()
    }
}

impl Host {
    pub(crate) fn new(lab: Arc<LabShared>, name: String, netns: String) -> Self {
        Self { lab, name, netns }
    }

    /// Short name given to [`Lab::add_host`](crate::Lab::add_host).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Full, unique network namespace name (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The lab's temp dir, where this host's process logs and captures go.
    pub fn temp_dir(&self) -> &Path {
        &self.lab.temp_dir
    }

    fn netns_argv<'a>(&'a self, argv: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["ip", "netns", "exec", self.netns.as_str()];
        full.extend_from_slice(argv);
        full
    }

    /// The MAC address of `iface` in this host.
    pub fn mac(&self, iface: &str) -> Result<String> {
        let out = self.exec(&["cat", &format!("/sys/class/net/{iface}/address")])?;
        Ok(out.stdout.trim().to_owned())
    }

    /// Runs a command to completion in this host (`ip netns exec`); fails
    /// with its stderr unless it exits 0 within 30 s.
    pub fn exec(&self, argv: &[&str]) -> Result<ExecOutput> {
        cmd::run(&self.netns_argv(argv)).with_context(|| format!("in host {}", self.name))
    }

    /// Like [`exec`](Self::exec) but returns the output whatever the exit status.
    pub fn exec_unchecked(&self, argv: &[&str], timeout: Duration) -> Result<ExecOutput> {
        cmd::run_unchecked(&self.netns_argv(argv), timeout)
            .with_context(|| format!("in host {}", self.name))
    }

    /// Mounts a bpf filesystem at `dir` that lives until the lab is dropped
    /// (see `LabShared::mount_bpffs`).
    pub fn mount_bpffs(&self, dir: &Path) -> Result<()> {
        self.lab.ensure_open()?;
        self.lab.mount_bpffs(dir)
    }

    /// Starts a long-running process in this host. It is stopped when the
    /// returned guard or the lab is dropped; its output is captured (see
    /// [`Process::stdout`]) into files in the lab's temp dir.
    pub fn spawn(&self, argv: &[&str]) -> Result<Process> {
        self.spawn_env(argv, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables (e.g. `RUST_LOG`).
    pub fn spawn_env(&self, argv: &[&str], env: &[(&str, &str)]) -> Result<Process> {
        self.lab.ensure_open()?;
        let program = argv
            .first()
            .context("cannot spawn an empty command line; pass at least the program name")?;
        preflight::require_tool(program)?;
        let basename = program.rsplit('/').next().unwrap_or(program);
        let label = format!("{basename}-{}", self.name);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group, so signals also reach anything it forks.
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start `{}` in host {}",
                    cmd::describe(argv),
                    self.name
                )
            })?;
        let core = ProcessCore::new(label, child, &self.lab.temp_dir)?;
        self.lab.register_process(&core);
        Ok(Process::new(core))
    }

    /// Runs `f` on a thread inside this host's namespace and returns its
    /// result; sockets it creates belong to this host. Panics propagate.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        netns::run_in(&self.netns, f)
    }

    /// Starts `f` on a background thread inside this host's namespace.
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<thread::JoinHandle<T>> {
        netns::spawn_in(&self.netns, f)
    }

    /// Sets a sysctl inside this host, e.g. `("net/ipv4/ip_forward", "1")`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        if key.contains("..") || key.starts_with('/') {
            bail!("sysctl key {key:?} must be relative to /proc/sys, like net/ipv4/ip_forward");
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec(&[
            "sh",
            "-c",
            "printf '%s\\n' \"$1\" > \"$2\"",
            "sh",
            value,
            &path,
        ])
        .with_context(|| format!("cannot set sysctl {key}={value}"))?;
        Ok(())
    }

    /// Brings interface `iface` up.
    pub fn link_up(&self, iface: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", iface, "up"])
    }

    /// Takes interface `iface` down (its peer sees carrier loss).
    pub fn link_down(&self, iface: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", iface, "down"])
    }

    /// Adds `cidr` (e.g. `"192.0.2.1/24"`, `"2001:db8::1/64"`) to `iface`;
    /// only documentation ranges are accepted. IPv6 skips DAD so it is usable at once.
    pub fn add_address(&self, iface: &str, cidr: &str) -> Result<Cidr> {
        let parsed = addr::parse_lab_cidr(cidr)?;
        let text = parsed.to_string();
        if parsed.addr.is_ipv6() {
            self.ip(&["-6", "addr", "add", &text, "dev", iface, "nodad"])?;
        } else {
            self.ip(&["addr", "add", &text, "dev", iface])?;
        }
        Ok(parsed)
    }

    /// Removes `cidr` from `iface`.
    pub fn del_address(&self, iface: &str, cidr: &str) -> Result<()> {
        let parsed = addr::parse_lab_cidr(cidr)?;
        self.ip(&["addr", "del", &parsed.to_string(), "dev", iface])
    }

    /// Runs `ip -n <netns> ARGS` (fails with ip's message).
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut argv = vec!["ip", "-n", self.netns.as_str()];
        argv.extend_from_slice(args);
        cmd::run(&argv).with_context(|| format!("in host {}", self.name))?;
        Ok(())
    }

    /// Addresses currently on `iface` (excluding tentative/dadfailed ones is
    /// left to the caller; lab addresses skip DAD).
    pub fn addresses(&self, iface: &str) -> Result<Vec<IfAddr>> {
        names::check_ifname(iface)?;
        let out = cmd::run(&["ip", "-n", &self.netns, "-j", "addr", "show", "dev", iface])
            .with_context(|| format!("in host {}", self.name))?;
        parse_ip_addr_json(&out.stdout)
            .with_context(|| format!("cannot read addresses of {iface} in host {}", self.name))
    }

    /// True if `addr` is currently on `iface`.
    pub fn has_address(&self, iface: &str, addr: IpAddr) -> Result<bool> {
        Ok(self.addresses(iface)?.iter().any(|a| a.addr == addr))
    }

    /// Waits (polling every 20 ms) until `addr` is on `iface`; returns how long it took.
    pub fn wait_for_address(
        &self,
        iface: &str,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<Duration> {
        self.wait_address_state(iface, addr, true, timeout)
    }

    /// Waits (polling every 20 ms) until `addr` is no longer on `iface`.
    pub fn wait_for_address_gone(
        &self,
        iface: &str,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<Duration> {
        self.wait_address_state(iface, addr, false, timeout)
    }

    fn wait_address_state(
        &self,
        iface: &str,
        addr: IpAddr,
        present: bool,
        timeout: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let current = self.addresses(iface)?;
            if current.iter().any(|a| a.addr == addr) == present {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                let listed: Vec<String> = current
                    .iter()
                    .map(|a| format!("{}/{}", a.addr, a.prefix_len))
                    .collect();
                bail!(
                    "{addr} did not {} {iface} in host {} within {timeout:?}; it has [{}]",
                    if present { "appear on" } else { "leave" },
                    self.name,
                    listed.join(", ")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// First global IPv4 address of `iface`.
    pub fn ipv4_address(&self, iface: &str) -> Result<Ipv4Addr> {
        self.addresses(iface)?
            .into_iter()
            .find_map(|a| match a.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                anyhow!(
                    "{iface} in host {} has no IPv4 address; add one first",
                    self.name
                )
            })
    }

    /// The IPv6 link-local address of `iface` (present once the link is up).
    pub fn ipv6_link_local(&self, iface: &str) -> Result<Ipv6Addr> {
        self.addresses(iface)?
            .into_iter()
            .find_map(|a| match a.addr {
                IpAddr::V6(v6) if addr::is_link_local_v6(v6) => Some(v6),
                _ => None,
            })
            .ok_or_else(|| {
                anyhow!(
                    "{iface} in host {} has no IPv6 link-local address; is it up?",
                    self.name
                )
            })
    }

    /// Interface index of `iface` inside this host.
    pub fn ifindex(&self, iface: &str) -> Result<u32> {
        names::check_ifname(iface)?;
        let c_name = std::ffi::CString::new(iface).context("interface name contains a NUL byte")?;
        // if_nametoindex asks the kernel through a socket it opens, so running
        // it on a thread inside the namespace answers for this host.
        let index = self.run(move || {
            // SAFETY: c_name is a valid NUL-terminated string for the call.
            unsafe { libc::if_nametoindex(c_name.as_ptr()) }
        })?;
        if index == 0 {
            bail!("host {} has no interface {iface:?}", self.name);
        }
        Ok(index)
    }
}

/// Reads the output of `ip -j addr show dev IF`.
fn parse_ip_addr_json(json: &str) -> Result<Vec<IfAddr>> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("`ip -j addr` did not print JSON")?;
    let mut found = Vec::new();
    for link in value.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(prefix_len)) =
                (info["local"].as_str(), info["prefixlen"].as_u64())
            else {
                continue;
            };
            found.push(IfAddr {
                addr: local
                    .parse()
                    .with_context(|| format!("`ip -j addr` printed bad address {local:?}"))?,
                prefix_len: u8::try_from(prefix_len).context("prefix length over 255")?,
                scope: info["scope"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json_addresses() {
        let json = r#"[{"ifindex":2,"ifname":"veth0","addr_info":[
            {"family":"inet","local":"192.0.2.1","prefixlen":24,"scope":"global"},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;
        let addrs = parse_ip_addr_json(json).unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[0].addr, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(addrs[1].scope, "link");
        assert!(parse_ip_addr_json("not json").is_err());
    }
}
