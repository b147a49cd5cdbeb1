//! `enable_script_security` as an operator meets it: `vrrp-agent -t`
//! refuses a root script that anyone may rewrite, names the script and the
//! `file:line:col` of its definition, and only warns when the option is off.
//! Builds its scripts in a fresh root-owned directory under /tmp (needs
//! root to chown them; no namespaces).

use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, ensure};

/// A directory of this test run (scripts and config), removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vrrp-agent-script-security-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let scratch = Self { dir };
        scratch.own(&scratch.dir, 0o755)?;
        Ok(scratch)
    }

    /// Root-owned with `mode`, whoever runs the test.
    fn own(&self, path: &Path, mode: u32) -> Result<()> {
        chown(path, Some(0), Some(0))
            .with_context(|| format!("cannot chown {} (run as root)", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn script(&self, name: &str, mode: u32) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n")?;
        self.own(&path, mode)?;
        Ok(path)
    }

    /// A config whose vrrp_script (line 5) and notify_master (line 15) run
    /// `script` and `notify`.
    fn config(&self, global: &str, script: &Path, notify: &Path) -> Result<PathBuf> {
        let path = self.dir.join("keepalived.conf");
        let text = format!(
            "global_defs {{\n script_user root\n{global}\n}}\n\
             vrrp_script chk {{\n script \"{} arg\"\n}}\n\
             vrrp_instance VI_1 {{\n interface eth1\n virtual_router_id 51\n virtual_ipaddress {{ 192.0.2.100 }}\n track_script {{\n  chk\n }}\n notify_master \"{} master\"\n}}\n",
            script.display(),
            notify.display()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `vrrp-agent -t -f CONFIG`, killed if it hangs (a config check is instant).
fn config_test(config: &Path) -> Result<Output> {
    lab::run_agent_command(&["-t".as_ref(), "-f".as_ref(), config.as_os_str()])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_world_writable_root_script_is_refused_under_enable_script_security() -> Result<()> {
    let scratch = Scratch::new()?;
    let unsafe_script = scratch.script("check.sh", 0o777)?;
    let notify = scratch.script("notify.sh", 0o755)?;
    let config = scratch.config(" enable_script_security", &unsafe_script, &notify)?;
    let output = config_test(&config)?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "-t accepted it:\n{err}");
    let expected = format!(
        "{}:5:1: error: vrrp_script chk: unsafe permissions found for script '{}' (it is writable by everyone) - disabling",
        config.display(),
        unsafe_script.display()
    );
    ensure!(err.contains(&expected), "expected `{expected}` in:\n{err}");
    ensure!(
        err.contains("configuration is invalid (1 error"),
        "expected exactly one error:\n{err}"
    );
    Ok(())
}

#[test]
fn a_notify_script_in_a_world_writable_directory_is_refused() -> Result<()> {
    let scratch = Scratch::new()?;
    let check = scratch.script("check.sh", 0o755)?;
    let open_dir = scratch.dir.join("drop-box");
    std::fs::create_dir(&open_dir)?;
    scratch.own(&open_dir, 0o777)?;
    let notify = open_dir.join("notify.sh");
    std::fs::write(&notify, "#!/bin/sh\nexit 0\n")?;
    scratch.own(&notify, 0o755)?;
    let config = scratch.config(" enable_script_security", &check, &notify)?;
    let output = config_test(&config)?;
    let err = stderr(&output);
    ensure!(!output.status.success(), "-t accepted it:\n{err}");
    let expected = format!(
        "{}:15:2: error: vrrp_instance VI_1 notify_master: unsafe permissions found for script '{}' ('{}' is writable by everyone)",
        config.display(),
        notify.display(),
        open_dir.display()
    );
    ensure!(err.contains(&expected), "expected `{expected}` in:\n{err}");
    Ok(())
}

#[test]
fn without_enable_script_security_the_same_script_is_a_warning() -> Result<()> {
    let scratch = Scratch::new()?;
    let unsafe_script = scratch.script("check.sh", 0o777)?;
    let notify = scratch.script("notify.sh", 0o755)?;
    let config = scratch.config("", &unsafe_script, &notify)?;
    let output = config_test(&config)?;
    let err = stderr(&output);
    ensure!(output.status.success(), "-t refused it:\n{err}");
    let expected = format!(
        "{}:5:1: warning: vrrp_script chk: unsafe permissions found for script '{}' (it is writable by everyone); it runs as root anyway",
        config.display(),
        unsafe_script.display()
    );
    ensure!(err.contains(&expected), "expected `{expected}` in:\n{err}");
    Ok(())
}

#[test]
fn root_owned_scripts_pass_under_enable_script_security() -> Result<()> {
    let scratch = Scratch::new()?;
    let check = scratch.script("check.sh", 0o755)?;
    let notify = scratch.script("notify.sh", 0o700)?;
    let config = scratch.config(" enable_script_security", &check, &notify)?;
    let output = config_test(&config)?;
    let err = stderr(&output);
    ensure!(output.status.success(), "-t refused it:\n{err}");
    ensure!(
        !err.contains("unsafe permissions"),
        "unexpected finding:\n{err}"
    );
    Ok(())
}
