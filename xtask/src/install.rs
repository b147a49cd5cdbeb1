//! `cargo xtask install` (binary + systemd unit under a prefix) and
//! `cargo xtask package` (the same as a Debian package, built with
//! dpkg-deb from a staged tree).
//!
//! The eBPF object is embedded in the binary, so the binary and the unit
//! are all there is to install.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};

/// The unit as kept in the repository; its ExecStart names the path the
/// Debian package installs the binary to.
pub const UNIT: &str = include_str!("../../packaging/vrrp-agent.service");
const UNIT_NAME: &str = "vrrp-agent.service";
const PACKAGED_BINARY: &str = "/usr/sbin/vrrp-agent";
const CONTROL: &str = include_str!("../../packaging/debian/control");

/// What an installation wrote.
#[derive(Debug)]
pub struct Installed {
    pub binary: PathBuf,
    pub unit: PathBuf,
}

/// The unit with ExecStart pointing at `binary`.
pub fn render_unit(binary: &Path) -> Result<String> {
    let from = format!("ExecStart={PACKAGED_BINARY} ");
    ensure!(
        UNIT.matches(&from).count() == 1,
        "packaging/{UNIT_NAME} must have exactly one line starting with `{from}`"
    );
    let binary = binary
        .to_str()
        .with_context(|| format!("{} is not UTF-8", binary.display()))?;
    ensure!(
        !binary.contains(char::is_whitespace),
        "cannot install to {binary:?}: systemd's ExecStart would split the path at the space"
    );
    Ok(UNIT.replace(&from, &format!("ExecStart={binary} ")))
}

/// Copies `binary` to `PREFIX/sbin/vrrp-agent` and writes the unit, naming
/// that path, to `PREFIX/lib/systemd/system/`. Each file is written next
/// to its target and renamed over it, so a running daemon's binary can be
/// replaced ("text file busy" otherwise) and a reader never sees half a file.
pub fn install_into(binary: &Path, prefix: &Path, unit_binary: &Path) -> Result<Installed> {
    let sbin = prefix.join("sbin");
    let unit_dir = prefix.join("lib/systemd/system");
    for dir in [&sbin, &unit_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let installed_binary = sbin.join("vrrp-agent");
    let staged = sbin.join(".vrrp-agent.new");
    fs::copy(binary, &staged).with_context(|| {
        format!(
            "cannot copy {} to {} (was the agent built?)",
            binary.display(),
            staged.display()
        )
    })?;
    replace(&staged, &installed_binary, 0o755)?;

    let unit = unit_dir.join(UNIT_NAME);
    let staged = unit_dir.join(format!(".{UNIT_NAME}.new"));
    fs::write(&staged, render_unit(unit_binary)?)
        .with_context(|| format!("cannot write {}", staged.display()))?;
    replace(&staged, &unit, 0o644)?;
    Ok(Installed {
        binary: installed_binary,
        unit,
    })
}

fn replace(staged: &Path, target: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(staged, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", staged.display()))?;
    fs::rename(staged, target)
        .with_context(|| format!("cannot move {} to {}", staged.display(), target.display()))
}

/// `cargo xtask install --prefix DIR`: release build, then [`install_into`].
pub fn install(binary: &Path, prefix: &Path) -> Result<()> {
    let prefix = std::path::absolute(prefix)
        .with_context(|| format!("cannot resolve the prefix {}", prefix.display()))?;
    let target = prefix.join("sbin/vrrp-agent");
    let installed = install_into(binary, &prefix, &target)?;
    println!("installed {}", installed.binary.display());
    println!("installed {}", installed.unit.display());
    // systemd reads units from /usr/local/lib/systemd/system, not from an
    // arbitrary prefix.
    if !["/usr", "/usr/local"].contains(&prefix.to_str().unwrap_or_default()) {
        println!(
            "note: systemd does not look in {}; link the unit with `systemctl link {}`",
            installed.unit.parent().unwrap_or(&prefix).display(),
            installed.unit.display()
        );
    }
    println!("next: systemctl daemon-reload && systemctl enable --now vrrp-agent");
    Ok(())
}

/// Builds `OUT_DIR/vrrp-agent_VERSION_ARCH.deb` holding `binary` as
/// /usr/sbin/vrrp-agent and the unit under /usr/lib/systemd/system.
/// Needs dpkg-deb, and dpkg-shlibdeps (package dpkg-dev) for `Depends`.
pub fn build_deb(binary: &Path, out_dir: &Path) -> Result<PathBuf> {
    let arch = command_output(Command::new("dpkg").arg("--print-architecture"))?;
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("vrrp-agent_{version}_{arch}");
    let stage = out_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    let installed = install_into(binary, &stage.join("usr"), Path::new(PACKAGED_BINARY))?;
    let depends = shlib_depends(&installed.binary, out_dir)?;
    let size_kib = [&installed.binary, &installed.unit]
        .iter()
        .map(|path| fs::metadata(path).map(|meta| meta.len().div_ceil(1024)))
        .sum::<std::io::Result<u64>>()
        .context("cannot measure the staged files")?;
    let control = CONTROL
        .replace("@VERSION@", version)
        .replace("@ARCH@", &arch)
        .replace("@INSTALLED_SIZE@", &size_kib.to_string())
        .replace("@DEPENDS@", &depends);
    ensure!(
        !has_placeholder(&control),
        "packaging/debian/control has a placeholder build_deb does not fill: {control}"
    );
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian).with_context(|| format!("cannot create {}", debian.display()))?;
    fs::write(debian.join("control"), control).context("cannot write DEBIAN/control")?;
    let deb = out_dir.join(format!("{name}.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb)
        .status()
        .context("cannot run dpkg-deb (apt-get install dpkg)")?;
    ensure!(
        status.success(),
        "dpkg-deb --build {} failed ({status})",
        stage.display()
    );
    Ok(deb)
}

/// Whether `text` still holds an `@NAME@` placeholder.
fn has_placeholder(text: &str) -> bool {
    let parts: Vec<&str> = text.split('@').collect();
    parts.len() > 2
        && parts[1..parts.len() - 1].iter().any(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
}

/// `Depends` for the binary's shared libraries, as dpkg-shlibdeps computes
/// them (it wants a debian/control in its working directory; any will do).
fn shlib_depends(binary: &Path, out_dir: &Path) -> Result<String> {
    let work = out_dir.join("shlibdeps");
    fs::create_dir_all(work.join("debian"))
        .with_context(|| format!("cannot create {}", work.display()))?;
    fs::write(work.join("debian/control"), "").context("cannot write debian/control")?;
    let line = command_output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&work)
            .arg("-O")
            .arg(binary),
    )
    .context("computing Depends with dpkg-shlibdeps (apt-get install dpkg-dev)")?;
    match line.strip_prefix("shlibs:Depends=") {
        Some(depends) if !depends.is_empty() => Ok(depends.to_owned()),
        _ => bail!("dpkg-shlibdeps printed no shlibs:Depends line: {line:?}"),
    }
}

fn command_output(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    //! Installs the agent the test build made (`VRRP_AGENT_BIN`, set by
    //! `cargo xtask test`, or target/debug/vrrp-agent) into a temporary
    //! prefix, runs the installed binary and verifies the unit.

    use super::*;

    const CONFIG: &str = "vrrp_instance VI_1 {\n    state BACKUP\n    interface lo\n    virtual_router_id 51\n    priority 100\n    virtual_ipaddress {\n        192.0.2.100/24\n    }\n}\n";

    fn agent() -> PathBuf {
        lab::agent_binary().expect("the agent binary (cargo build -p vrrp-agent)")
    }

    fn run(binary: &Path, args: &[&str]) -> std::process::Output {
        Command::new(binary)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()))
    }

    #[test]
    fn the_installed_binary_runs_and_the_unit_names_it() {
        let prefix = tempfile::tempdir().unwrap();
        let target = prefix.path().join("sbin/vrrp-agent");
        let installed = install_into(&agent(), prefix.path(), &target).unwrap();
        assert_eq!(installed.binary, target);
        assert_eq!(
            installed.unit,
            prefix.path().join("lib/systemd/system/vrrp-agent.service")
        );
        let mode = fs::metadata(&installed.binary)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        let version = run(&installed.binary, &["--version"]);
        assert!(version.status.success(), "{version:?}");
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim(),
            format!("vrrp-agent {}", env!("CARGO_PKG_VERSION"))
        );
        let config = prefix.path().join("keepalived.conf");
        fs::write(&config, CONFIG).unwrap();
        let check = run(&installed.binary, &["-t", "-f", config.to_str().unwrap()]);
        assert!(check.status.success(), "{check:?}");

        let unit = fs::read_to_string(&installed.unit).unwrap();
        assert!(
            unit.contains(&format!(
                "\nExecStart={} -f /etc/keepalived/keepalived.conf\n",
                target.display()
            )),
            "{unit}"
        );
        // Installing again replaces both files in place.
        install_into(&agent(), prefix.path(), &target).unwrap();
    }

    #[test]
    fn the_unit_passes_systemd_analyze_verify() {
        let prefix = tempfile::tempdir().unwrap();
        let target = prefix.path().join("sbin/vrrp-agent");
        let installed = install_into(&agent(), prefix.path(), &target).unwrap();
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&installed.unit)
            .output()
            .expect("systemd-analyze (apt-get install systemd)");
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {}: {}\n{stderr}",
            installed.unit.display(),
            verify.status
        );
    }

    #[test]
    fn the_unit_keeps_what_operators_rely_on() {
        for line in [
            "Type=notify",
            "ExecStart=/usr/sbin/vrrp-agent -f /etc/keepalived/keepalived.conf",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=always",
            "NotifyAccess=main",
        ] {
            assert!(UNIT.lines().any(|l| l == line), "unit lacks {line:?}");
        }
        assert!(UNIT.lines().any(|l| l.starts_with("WatchdogSec=")));
        assert!(render_unit(Path::new("/opt/my agent/vrrp-agent")).is_err());
        assert!(has_placeholder(CONTROL));
        assert!(!has_placeholder("Maintainer: a <b@localhost>"));
    }

    /// The README shows the unit's directives; they must be the file's.
    #[test]
    fn the_readme_shows_the_unit_as_it_is() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("```ini\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README has an ```ini block with the unit");
        let directives: Vec<&str> = UNIT
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .collect();
        let shown: Vec<&str> = block.lines().filter(|line| !line.is_empty()).collect();
        assert_eq!(
            shown, directives,
            "README's unit differs from packaging/{UNIT_NAME}"
        );
    }

    #[test]
    fn the_debian_package_holds_the_binary_and_the_unit() {
        let out = tempfile::tempdir().unwrap();
        // Any executable shows the layout; the 100+ MB debug agent would
        // only make the test slow.
        let deb = build_deb(Path::new("/bin/true"), out.path()).unwrap();
        let field = |name: &str| {
            command_output(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name)).unwrap()
        };
        assert_eq!(field("Package"), "vrrp-agent");
        assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
        assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
        let contents =
            command_output(Command::new("dpkg-deb").arg("--contents").arg(&deb)).unwrap();
        for path in [
            "./usr/sbin/vrrp-agent",
            "./usr/lib/systemd/system/vrrp-agent.service",
        ] {
            assert!(
                contents
                    .lines()
                    .any(|line| line.ends_with(path) && line.contains("root/root")),
                "{path} not in the package (owned by root):\n{contents}"
            );
        }
        let unit = command_output(
            Command::new("sh")
                .arg("-c")
                .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - ./usr/lib/systemd/system/vrrp-agent.service")
                .arg("sh")
                .arg(&deb),
        )
        .unwrap();
        assert_eq!(unit.trim_end(), UNIT.trim_end());
    }
}
