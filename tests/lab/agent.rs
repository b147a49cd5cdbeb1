//! Locates the `vrrp-agent` binary the end-to-end tests run, and runs its instant commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Environment variable `cargo xtask test` sets to the freshly built agent.
pub const AGENT_BIN_VAR: &str = "VRRP_AGENT_BIN";

/// The `vrrp-agent` binary: `$VRRP_AGENT_BIN` if set, else the workspace's
/// `target/debug/vrrp-agent`. Fails saying how to build it when absent.
pub fn agent_binary() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")));
    let fallback = workspace.join("target").join("debug").join("vrrp-agent");
    resolve(std::env::var_os(AGENT_BIN_VAR).map(PathBuf::from), fallback)
}

/// Runs the agent binary with `args` as a user would at a shell (no
/// namespace), killing it if it has not exited within 10 s: for commands
/// that are instant, such as `-t` and `--dump-config`.
pub fn run_agent_command(args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let binary = agent_binary()?;
    let mut child = std::process::Command::new(&binary)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    for _ in 0..200 {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output()?;
    bail!(
        "vrrp-agent {args:?} did not exit within 10 s; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    )
}

fn resolve(from_env: Option<PathBuf>, fallback: PathBuf) -> Result<PathBuf> {
    let (candidate, origin) = match from_env {
        Some(path) if !path.as_os_str().is_empty() => (path, format!("${AGENT_BIN_VAR}")),
        _ => (fallback, "the default location".to_owned()),
    };
    if !candidate.is_file() {
        bail!(
            "vrrp-agent binary not found at {} ({origin}); build it with `cargo build -p vrrp-agent` or run `cargo xtask test`",
            candidate.display()
        );
    }
    Ok(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_reported_with_build_instructions() {
        let err = resolve(
            Some(PathBuf::from("/nonexistent/vrrp-agent")),
            PathBuf::from("/also/missing"),
        )
        .unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("/nonexistent/vrrp-agent"), "{text}");
        assert!(text.contains("VRRP_AGENT_BIN"), "{text}");
        assert!(text.contains("cargo build -p vrrp-agent"), "{text}");
    }

    #[test]
    fn env_wins_and_empty_env_falls_back() {
        let sh = PathBuf::from("/bin/sh");
        assert_eq!(
            resolve(Some(sh.clone()), PathBuf::from("/missing")).unwrap(),
            sh
        );
        assert_eq!(resolve(Some(PathBuf::new()), sh.clone()).unwrap(), sh);
        let err = resolve(None, PathBuf::from("/missing/vrrp-agent")).unwrap_err();
        assert!(format!("{err}").contains("default location"));
    }
}
