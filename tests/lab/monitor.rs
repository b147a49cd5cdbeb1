//! Runs `vrrp-agent monitor --json` in a lab host and reads its JSON lines;
//! also tells whether an XDP program is attached to an interface.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::agent::agent_binary;
use crate::host::Host;
use crate::process::Process;

/// Loading and attaching the eBPF object takes well under a second; this
/// bound only matters on a starved CI machine.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `vrrp-agent monitor --interface IF --json ...`, already attached.
/// Its lines are read without consuming them, so waits may look back.
pub struct Monitor {
    process: Process,
    attached: Value,
}

impl Monitor {
    /// Starts the monitor on `iface` in `host` with `--json` plus `extra`
    /// arguments (e.g. `["--refresh-ms", "200"]`) and waits for its
    /// `attached` line. Fails with the monitor's output if it never attaches.
    pub fn start(host: &Host, iface: &str, extra: &[&str]) -> Result<Self> {
        let binary = agent_binary()?;
        let binary = binary
            .to_str()
            .context("vrrp-agent path is not UTF-8")?
            .to_owned();
        let mut argv = vec![binary.as_str(), "monitor", "--interface", iface, "--json"];
        argv.extend_from_slice(extra);
        let process = host.spawn_env(&argv, &[("RUST_LOG", "info")])?;
        let monitor = Self {
            process,
            attached: Value::Null,
        };
        let attached = monitor
            .wait_for(0, ATTACH_TIMEOUT, |line| line["event"] == "attached")
            .with_context(|| format!("monitor on {iface} never attached"))?;
        Ok(Self {
            attached,
            ..monitor
        })
    }

    /// The monitor process (to signal it or read its stderr).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The `attached` line.
    pub fn attached(&self) -> &Value {
        &self.attached
    }

    /// Every stdout line so far that parses as JSON, in order.
    pub fn lines(&self) -> Vec<Value> {
        self.process
            .stdout()
            .lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// How many JSON lines arrived so far: a mark for [`wait_for`](Self::wait_for).
    pub fn mark(&self) -> usize {
        self.lines().len()
    }

    /// Lines with `"event": event` so far.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["event"] == event)
            .collect()
    }

    /// `router` events for `vrid` so far.
    pub fn router_events(&self, vrid: u8) -> Vec<Value> {
        self.events("router")
            .into_iter()
            .filter(|line| line["vrid"] == vrid)
            .collect()
    }

    /// Waits (polling every 20 ms) for the first JSON line at index `since`
    /// or later (see [`mark`](Self::mark)) that satisfies `matches`.
    pub fn wait_for(
        &self,
        since: usize,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if let Some(found) = lines.iter().skip(since).find(|line| matches(line)) {
                return Ok(found.clone());
            }
            if !self.process.is_running() || Instant::now() >= deadline {
                let start = lines.len().saturating_sub(10).max(since.min(lines.len()));
                let recent: Vec<String> = lines[start..].iter().map(Value::to_string).collect();
                bail!(
                    "monitor printed no matching line within {timeout:?}; recent lines:\n  {}\n{}",
                    recent.join("\n  "),
                    self.process.report()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a `stats` line (from index `since` on) whose entry for
    /// `vrid`/`family` satisfies `matches`; returns that router entry and
    /// the whole line.
    pub fn wait_for_router_stats(
        &self,
        since: usize,
        timeout: Duration,
        vrid: u8,
        family: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Value)> {
        let line = self
            .wait_for(since, timeout, |line| {
                line["event"] == "stats" && stats_router(line, vrid, family).is_some_and(&matches)
            })
            .with_context(|| format!("no matching stats for vrid {vrid} ({family})"))?;
        let router = stats_router(&line, vrid, family)
            .cloned()
            .context("router vanished from the stats line")?;
        Ok((router, line))
    }
}

/// The entry for `vrid`/`family` in a `stats` line's `routers`.
pub fn stats_router<'a>(stats: &'a Value, vrid: u8, family: &str) -> Option<&'a Value> {
    stats["routers"]
        .as_array()?
        .iter()
        .find(|router| router["vrid"] == vrid && router["family"] == family)
}

impl Host {
    /// Describes the XDP program attached to `iface`, if any, as both
    /// iproute2 (`ip -d link show`) and bpftool (`bpftool net show`) see it;
    /// `None` only when neither reports one.
    pub fn xdp_attachment(&self, iface: &str) -> Result<Option<String>> {
        let link = self
            .exec(&["ip", "-d", "link", "show", "dev", iface])?
            .stdout;
        let bpftool = self
            .exec(&["bpftool", "-j", "net", "show", "dev", iface])?
            .stdout;
        let parsed: Value = serde_json::from_str(&bpftool)
            .with_context(|| format!("`bpftool -j net show` printed no JSON: {bpftool}"))?;
        let listed_by_bpftool = parsed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|section| section["xdp"].as_array())
            .flatten()
            .any(|entry| entry["devname"] == iface);
        // `ip -d link` shows `xdp`, `xdpgeneric`, `xdpdrv` or `prog/xdp id N`.
        let listed_by_ip = link.contains("xdp");
        Ok((listed_by_ip || listed_by_bpftool)
            .then(|| format!("ip -d link show:\n{link}\nbpftool -j net show:\n{bpftool}")))
    }
}
