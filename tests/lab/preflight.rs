//! Checks that the machine can run lab tests, failing loudly (never skipping)
//! with what is missing and how to fix it.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cmd;

/// Fails unless running as root with a working `ip netns`.
pub fn require_lab_support() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "network-namespace lab tests need root (euid is {euid}): they create namespaces, \
             veth pairs and raw sockets. Run them as root, e.g. \
             `sudo -E cargo test -p vrrp-agent-tests`; they are not skipped on purpose"
        );
    }
    require_tool("ip")?;
    let listed = cmd::run_unchecked(&["ip", "netns", "list"], cmd::DEFAULT_TIMEOUT)?;
    if !listed.success() {
        bail!(
            "`ip netns list` failed ({}): {}; the lab needs iproute2 with netns support \
             (Debian package `iproute2`) and a writable /run/netns",
            listed.status,
            listed.stderr.trim()
        );
    }
    Ok(())
}

/// Finds `program` on PATH (plus the sbin directories root usually has),
/// or fails naming the Debian package to install.
pub fn require_tool(program: &str) -> Result<PathBuf> {
    if let Some(found) = find_program(program) {
        return Ok(found);
    }
    let package = match program {
        "ip" => "iproute2",
        "tshark" => "tshark",
        "tcpdump" => "tcpdump",
        "keepalived" => "keepalived",
        "nginx" => "nginx",
        _ => program,
    };
    bail!(
        "`{program}` is not installed (not on PATH nor in /usr/sbin, /sbin); install the Debian package `{package}`"
    )
}

fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return path.is_file().then(|| path.to_path_buf());
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_package_of_missing_tool() {
        assert!(require_tool("sh").is_ok());
        let err = require_tool("no-such-tool-abc").unwrap_err();
        assert!(format!("{err}").contains("install the Debian package"));
    }
}
