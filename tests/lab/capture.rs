//! Packet capture in a lab host: `tcpdump` writes a pcap file in the lab's
//! temp dir; `tshark` reads it back as fields or a verbose decode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd;
use crate::host::Host;
use crate::preflight;
use crate::process::Process;

/// A running (or finished) tcpdump. Stopped when dropped.
pub struct Capture {
    process: Process,
    file: PathBuf,
}

impl Host {
    /// Starts `tcpdump -i IFACE -w FILE -c MAX_PACKETS FILTER` in this host
    /// and returns once it is capturing. `filter` is a pcap filter such as
    /// `"vrrp"` or `"ip proto 112"` (may be empty).
    pub fn capture(&self, iface: &str, filter: &str, max_packets: u32) -> Result<Capture> {
        preflight::require_tool("tcpdump")?;
        let count = max_packets.to_string();
        let file = self.temp_dir().join(format!(
            "{}-{iface}-{}.pcap",
            self.name(),
            capture_counter()
        ));
        let file_arg = file.to_string_lossy().into_owned();
        let mut argv = vec![
            "tcpdump", "-i", iface, "-n", "-U", // write each packet at once
            "-Z", "root", // keep privileges: the lab temp dir is root's
            "-c", &count, "-w", &file_arg,
        ];
        argv.extend(filter.split_whitespace());
        let process = self.spawn(&argv)?;
        process
            .stderr()
            .wait_for(Duration::from_secs(10), |line| {
                line.contains("listening on")
            })
            .with_context(|| format!("tcpdump on {iface} in host {} did not start", self.name()))?;
        Ok(Capture { process, file })
    }
}

fn capture_counter() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Capture {
    /// The pcap file being written.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The tcpdump process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Waits up to `timeout` for tcpdump to exit after `max_packets` packets.
    pub fn wait_for_packets(&self, timeout: Duration) -> Result<()> {
        self.process.wait(timeout).with_context(|| {
            format!(
                "capture {} did not reach its packet count",
                self.file.display()
            )
        })?;
        Ok(())
    }

    /// Stops tcpdump (it flushes the file on SIGTERM).
    pub fn stop(&self) -> Result<()> {
        self.process.stop()?;
        Ok(())
    }

    /// One row per packet matching the tshark display filter `display_filter`
    /// (may be empty), with the requested tshark `fields` in order, e.g.
    /// `&["ip.src", "vrrp.prio"]`. Multi-valued fields are comma-joined.
    pub fn fields(&self, fields: &[&str], display_filter: &str) -> Result<Vec<Vec<String>>> {
        let file = self.file.to_string_lossy().into_owned();
        let mut argv = vec![
            "tshark",
            "-n",
            "-r",
            &file,
            "-T",
            "fields",
            "-E",
            "separator=\t",
        ];
        for field in fields {
            argv.extend(["-e", field]);
        }
        if !display_filter.is_empty() {
            argv.extend(["-Y", display_filter]);
        }
        let out = run_tshark(&argv)?;
        Ok(out
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// tshark's full protocol tree (`-V`) of every captured packet.
    pub fn decode_verbose(&self) -> Result<String> {
        let file = self.file.to_string_lossy().into_owned();
        run_tshark(&["tshark", "-n", "-r", &file, "-V"])
    }
}

fn run_tshark(argv: &[&str]) -> Result<String> {
    preflight::require_tool("tshark")?;
    // tshark reads a file here; no network is involved, so it runs in place.
    Ok(cmd::run(argv)
        .context("tshark could not decode the capture")?
        .stdout)
}
