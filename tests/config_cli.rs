//! `vrrp-agent -t -f FILE` and `--dump-config` as a user runs them: exit
//! codes, `file:line:col:` diagnostics on stderr, and the JSON dump.
//! Needs no namespaces (and no root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// The seed configurations our first users run (copied from the project brief).
const SEEDS: [&str; 2] = ["keepalived.conf", "keepalived-node2.conf"];

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Runs the agent with `args`, killing it if it hangs (a config check is instant).
fn agent(args: &[&str]) -> Result<Output> {
    let binary = lab::agent_binary()?;
    let mut child = Command::new(&binary)
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
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output()?;
    bail!(
        "vrrp-agent {args:?} did not exit within 10 s; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A config file of this test run, removed on drop.
struct TempConfig {
    path: PathBuf,
}

impl TempConfig {
    fn new(text: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "vrrp-agent-config-cli-{}-{}.conf",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { path })
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn both_seed_configs_pass_the_config_test() -> Result<()> {
    for name in SEEDS {
        let path = seed(name);
        let file = path.to_str().context("seed path is not UTF-8")?;
        let output = agent(&["-t", "-f", file])?;
        ensure!(
            output.status.success(),
            "seed {name} was rejected ({}):\n{}",
            output.status,
            stderr(&output)
        );
        let text = stderr(&output);
        ensure!(
            !text.contains(": error:"),
            "seed {name} passed but printed errors:\n{text}"
        );
        ensure!(
            text.contains("configuration is valid") && text.contains("2 vrrp_instances"),
            "seed {name}: expected a summary naming 2 vrrp_instances:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn out_of_range_vrid_fails_with_file_line_and_expected_range() -> Result<()> {
    let config = TempConfig::new(
        "vrrp_instance VI_1 {\n\
         \x20   interface veth0\n\
         \x20   virtual_router_id 300\n\
         \x20   priority 100\n\
         \x20   advert_int 1\n\
         \x20   virtual_ipaddress {\n\
         \x20       192.0.2.10\n\
         \x20   }\n\
         }\n",
    )?;
    let output = agent(&["-t", "-f", config.arg()])?;
    let text = stderr(&output);
    ensure!(
        output.status.code() == Some(1),
        "expected exit 1 for virtual_router_id 300, got {}:\n{text}",
        output.status
    );
    let line = text
        .lines()
        .find(|line| line.contains(": error:"))
        .with_context(|| format!("no error diagnostic printed:\n{text}"))?;
    ensure!(
        line.starts_with(&format!("{}:3:", config.arg())),
        "error not located at {}:3: — {line}",
        config.arg()
    );
    ensure!(
        line.contains("virtual_router_id") && line.contains("300") && line.contains("1-255"),
        "error should name the keyword, the bad value and the range 1-255: {line}"
    );
    ensure!(
        text.contains("configuration is invalid"),
        "missing summary:\n{text}"
    );
    Ok(())
}

#[test]
fn unknown_keyword_is_a_located_warning_not_an_error() -> Result<()> {
    let config = TempConfig::new(
        "vrrp_instance VI_1 {\n\
         \x20   interface veth0\n\
         \x20   virtual_router_id 51\n\
         \x20   priority 100\n\
         \x20   frobnicate_the_router yes\n\
         \x20   virtual_ipaddress {\n\
         \x20       192.0.2.10\n\
         \x20   }\n\
         }\n",
    )?;
    let output = agent(&["-t", "-f", config.arg()])?;
    let text = stderr(&output);
    ensure!(
        output.status.success(),
        "an unknown keyword must only warn, but exit was {}:\n{text}",
        output.status
    );
    let warning = text
        .lines()
        .find(|line| line.contains("frobnicate_the_router"))
        .with_context(|| format!("the unknown keyword was not reported:\n{text}"))?;
    ensure!(
        warning.starts_with(&format!("{}:5:", config.arg())) && warning.contains(": warning:"),
        "expected a warning at {}:5: — {warning}",
        config.arg()
    );
    ensure!(
        !text.contains(": error:"),
        "unexpected error diagnostics:\n{text}"
    );
    Ok(())
}

#[test]
fn missing_file_fails_and_names_it() -> Result<()> {
    let missing = std::env::temp_dir().join(format!(
        "vrrp-agent-config-cli-{}-missing.conf",
        std::process::id()
    ));
    let file = missing.to_str().context("temp path is not UTF-8")?;
    let output = agent(&["-t", "-f", file])?;
    ensure!(
        output.status.code() == Some(1),
        "expected exit 1 for a missing file, got {}",
        output.status
    );
    ensure!(
        stderr(&output).contains(file),
        "stderr should name {file}:\n{}",
        stderr(&output)
    );
    Ok(())
}

#[test]
fn dump_config_prints_the_seed_as_json() -> Result<()> {
    let path = seed("keepalived.conf");
    let file = path.to_str().context("seed path is not UTF-8")?;
    let output = agent(&["--dump-config", "-f", file])?;
    ensure!(
        output.status.success(),
        "--dump-config failed ({}):\n{}",
        output.status,
        stderr(&output)
    );
    let dump: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "--dump-config stdout is not JSON:\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let instances = dump["vrrp_instances"]
        .as_array()
        .with_context(|| format!("no vrrp_instances array in {dump}"))?;
    ensure!(instances.len() == 2, "expected 2 instances in {dump}");
    ensure!(
        instances[0]["virtual_router_id"] == 56 && instances[1]["virtual_router_id"] == 58,
        "VRIDs should be 56 and 58: {}, {}",
        instances[0]["virtual_router_id"],
        instances[1]["virtual_router_id"]
    );
    ensure!(
        instances[0]["priority"] == 100,
        "master1 priority should be 100: {}",
        instances[0]["priority"]
    );
    Ok(())
}

#[test]
fn dump_config_of_a_broken_file_prints_no_json_and_fails() -> Result<()> {
    let config = TempConfig::new("vrrp_instance VI_1 {\n    virtual_router_id 0\n}\n")?;
    let output = agent(&["--dump-config", "-f", config.arg()])?;
    ensure!(
        output.status.code() == Some(1),
        "expected exit 1, got {}:\n{}",
        output.status,
        stderr(&output)
    );
    ensure!(
        output.stdout.is_empty(),
        "nothing should be dumped for an invalid config: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(())
}
