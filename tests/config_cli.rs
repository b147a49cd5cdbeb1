//! `vrrp-agent -t -f FILE` and `--dump-config` as a user runs them: exit
//! codes, `file:line:col:` diagnostics on stderr, and the JSON dump.
//! Needs no namespaces (and no root).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, ensure};

/// The seed configurations our first users run (copied from the project brief).
const SEEDS: [&str; 2] = ["keepalived.conf", "keepalived-node2.conf"];

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Runs the agent with `args`, killing it if it hangs (a config check is instant).
fn agent(args: &[&str]) -> Result<Output> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    lab::run_agent_command(&args)
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

/// A seed with its scripts (`/etc/keepalived/*.sh`) replaced by executable
/// ones in the temp dir: `-t` checks that the scripts a config runs exist.
struct SeedWithScripts {
    config: TempConfig,
    scripts: Vec<PathBuf>,
}

impl SeedWithScripts {
    fn new(name: &str) -> Result<Self> {
        let mut text = std::fs::read_to_string(seed(name))?;
        let mut scripts = Vec::new();
        for script in ["chk_alive.sh", "notification.sh"] {
            let path = std::env::temp_dir().join(format!(
                "vrrp-agent-config-cli-{}-{name}-{script}",
                std::process::id()
            ));
            std::fs::write(&path, "#!/bin/sh\nexit 0\n")?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            text = text.replace(
                &format!("/etc/keepalived/{script}"),
                path.to_str().context("temp path is not UTF-8")?,
            );
            scripts.push(path);
        }
        Ok(Self {
            config: TempConfig::new(&text)?,
            scripts,
        })
    }
}

impl Drop for SeedWithScripts {
    fn drop(&mut self) {
        for script in &self.scripts {
            let _ = std::fs::remove_file(script);
        }
    }
}

#[test]
fn both_seed_configs_pass_the_config_test() -> Result<()> {
    for name in SEEDS {
        let seeded = SeedWithScripts::new(name)?;
        let file = seeded.config.arg();
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
    let seeded = SeedWithScripts::new("keepalived.conf")?;
    let output = agent(&["--dump-config", "-f", seeded.config.arg()])?;
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

/// Writes a script in the temp dir, removed on drop.
struct TempScript {
    path: PathBuf,
}

impl TempScript {
    fn new(tag: &str, mode: u32) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "vrrp-agent-config-cli-{}-{tag}.sh",
            std::process::id()
        ));
        std::fs::write(&path, "#!/bin/sh\nexit 0\n")?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(Self { path })
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn instance(name: &str, vrid: u8, body: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n    interface veth0\n    virtual_router_id {vrid}\n{body}}}\n"
    )
}

fn vip_block(addresses: impl Iterator<Item = String>) -> String {
    let mut text = String::from("    virtual_ipaddress {\n");
    for address in addresses {
        text.push_str(&format!("        {address}\n"));
    }
    text.push_str("    }\n");
    text
}

/// Runs `-t` on `text` and checks it fails with exit 1 and an error at
/// `line:col` containing every fragment.
fn refused(what: &str, text: &str, at: &str, fragments: &[&str]) -> Result<()> {
    let config = TempConfig::new(text)?;
    let output = agent(&["-t", "-f", config.arg()])?;
    let stderr = stderr(&output);
    ensure!(
        output.status.code() == Some(1),
        "{what}: expected exit 1, got {}:\n{stderr}",
        output.status
    );
    let prefix = format!("{}:{at}: error: ", config.arg());
    let line = stderr
        .lines()
        .find(|line| line.starts_with(&prefix))
        .with_context(|| format!("{what}: no error at {prefix}:\n{stderr}"))?;
    for fragment in fragments {
        ensure!(
            line.contains(fragment),
            "{what}: the error lacks {fragment:?}: {line}"
        );
    }
    ensure!(
        stderr.contains("configuration is invalid"),
        "{what}: missing summary:\n{stderr}"
    );
    Ok(())
}

#[test]
fn config_test_refuses_what_startup_the_encoder_or_xdp_would_refuse() -> Result<()> {
    let missing = std::env::temp_dir().join(format!(
        "vrrp-agent-config-cli-{}-no-such-script.sh",
        std::process::id()
    ));
    let missing = missing.to_str().context("temp path is not UTF-8")?;
    let plain = TempScript::new("not-executable", 0o644)?;
    let good = TempScript::new("good", 0o755)?;
    let track = |script: &str, extra: &str| {
        format!("vrrp_script chk {{\n    script \"{script}\"\n{extra}}}\n")
            + &instance(
                "A",
                1,
                &format!(
                    "    track_script {{\n        chk\n    }}\n{}",
                    vip_block(std::iter::once("192.0.2.1".to_string()))
                ),
            )
    };
    // (what, configuration, line:col of the error, fragments of its message)
    let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "256 IPv4 virtual addresses",
            instance(
                "A",
                1,
                &vip_block((0..256).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))),
            ),
            "260:9",
            vec!["advertises 256 IPv4 addresses", "at most 255"],
        ),
        (
            "90 IPv6 virtual addresses",
            instance(
                "A",
                1,
                &vip_block((1..=90).map(|i| format!("2001:db8::{i:x}"))),
            ),
            "94:9",
            vec!["advertises 90 IPv6 addresses", "at most 89"],
        ),
        (
            "a tracked script that does not exist",
            track(missing, ""),
            "2:12",
            vec!["vrrp_script chk", "does not exist", missing],
        ),
        (
            "a tracked script that is not executable",
            track(plain.arg(), ""),
            "2:12",
            vec!["vrrp_script chk", "is not executable"],
        ),
        (
            "a script user that does not exist",
            track(good.arg(), "    user vrrp-agent-no-such-user\n"),
            "3:10",
            vec!["script user `vrrp-agent-no-such-user` does not exist"],
        ),
        (
            "a global script_user that does not exist",
            format!(
                "global_defs {{\n    script_user vrrp-agent-no-such-user\n}}\n{}",
                track(good.arg(), "")
            ),
            "2:17",
            vec!["global_defs script_user", "does not exist"],
        ),
        (
            "the same VIP in two instances",
            instance("A", 1, &vip_block(std::iter::once("192.0.2.1".into())))
                + &instance("B", 2, &vip_block(std::iter::once("192.0.2.1/24".into()))),
            "12:9",
            vec![
                "192.0.2.1 of vrrp_instance B",
                "vrrp_instance A (at ",
                ":5:9)",
            ],
        ),
        (
            "CR LF in notification_email",
            "global_defs {\n    notification_email {\n        \"ops@example.com\\r\\nDATA\"\n    }\n}\n".into(),
            "3:9",
            vec!["notification_email", "control character"],
        ),
        (
            "LF in notification_email_from",
            "global_defs {\n    notification_email_from \"a@example.com\\nBcc: b@example.org\"\n}\n".into(),
            "2:29",
            vec!["notification_email_from", "control character"],
        ),
        (
            "two unicast instances with different peers on one interface + VRID + family",
            instance(
                "A",
                5,
                &format!(
                    "    unicast_peer {{\n        192.0.2.10\n    }}\n{}",
                    vip_block(std::iter::once("192.0.2.1".into()))
                ),
            ) + &instance(
                "B",
                5,
                &format!(
                    "    unicast_peer {{\n        192.0.2.11\n    }}\n{}",
                    vip_block(std::iter::once("192.0.2.2".into()))
                ),
            ),
            "13:23",
            vec![
                "vrrp_instance B uses virtual_router_id 5",
                "as vrrp_instance A does (at ",
                "per interface, VRID and family",
            ],
        ),
        (
            "auth_type AH",
            instance(
                "A",
                1,
                &format!(
                    "    authentication {{\n        auth_type AH\n        auth_pass secret\n    }}\n{}",
                    vip_block(std::iter::once("192.0.2.1".into()))
                ),
            ),
            "4:5",
            vec!["auth_type AH is not supported"],
        ),
    ];
    for (what, text, at, fragments) in &cases {
        refused(what, text, at, fragments)?;
    }
    Ok(())
}

#[test]
fn a_tracked_script_that_exists_passes_and_a_missing_notify_program_only_warns() -> Result<()> {
    let good = TempScript::new("present", 0o755)?;
    let text = format!("vrrp_script chk {{\n    script \"{}\"\n}}\n", good.arg())
        + &instance(
            "A",
            1,
            "    track_script {\n        chk\n    }\n    notify_master \"/nonexistent/vrrp-agent/notify.sh master\"\n    virtual_ipaddress {\n        192.0.2.1\n    }\n",
        );
    let config = TempConfig::new(&text)?;
    let output = agent(&["-t", "-f", config.arg()])?;
    let text = stderr(&output);
    ensure!(output.status.success(), "expected exit 0:\n{text}");
    let warning = format!("{}:10:19: warning: vrrp_instance A: program", config.arg());
    ensure!(
        text.lines().any(|line| line.starts_with(&warning)),
        "expected a warning starting {warning}:\n{text}"
    );
    Ok(())
}

/// Every file includes the next one twice: 2^24 inclusions if expanded
/// naively. `-t` stops at the inclusion cap with one located error (the
/// agent() helper fails the test if it does not exit within 10 s).
#[test]
fn a_doubling_include_tree_is_refused_with_a_located_error() -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "vrrp-agent-config-cli-{}-includes",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _guard = RemoveDir(dir.clone());
    let levels = 24;
    for n in 0..levels {
        std::fs::write(
            dir.join(format!("{n}.conf")),
            format!("include {next}.conf\ninclude {next}.conf\n", next = n + 1),
        )?;
    }
    std::fs::write(dir.join(format!("{levels}.conf")), "! leaf\n")?;
    let root = dir.join("0.conf");
    let output = agent(&["-t", "-f", root.to_str().context("temp path is not UTF-8")?])?;
    let text = stderr(&output);
    ensure!(output.status.code() == Some(1), "expected exit 1:\n{text}");
    let cap: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("past 10000 inclusions"))
        .collect();
    ensure!(cap.len() == 1, "expected one inclusion-cap error:\n{text}");
    ensure!(
        cap[0].starts_with(dir.to_str().unwrap_or_default()) && cap[0].contains(".conf:"),
        "the error should name the including file and line: {}",
        cap[0]
    );
    Ok(())
}

#[test]
fn an_include_cycle_names_the_include_that_closes_it() -> Result<()> {
    let a = TempConfig::new("")?;
    let b = TempConfig::new("")?;
    std::fs::write(&a.path, format!("include {}\n", b.arg()))?;
    std::fs::write(&b.path, format!("! comment\ninclude {}\n", a.arg()))?;
    let output = agent(&["-t", "-f", a.arg()])?;
    let text = stderr(&output);
    ensure!(output.status.code() == Some(1), "expected exit 1:\n{text}");
    let at = format!("{}:2:9: error: ", b.arg());
    let line = text
        .lines()
        .find(|line| line.starts_with(&at))
        .with_context(|| format!("no error at {at}:\n{text}"))?;
    ensure!(line.contains("include cycle"), "{line}");
    Ok(())
}

/// `-t` reads the file as the node `-i` names: `@ID` lines and the
/// definitions they make differ per node, and a definition one node lacks
/// is a located error for that node only.
#[test]
fn config_test_reads_the_file_as_the_config_id_given() -> Result<()> {
    let config = TempConfig::new(
        "@node1 $PRIO=150\n\
         vrrp_instance VI_1 {\n\
         \x20   interface veth0\n\
         \x20   virtual_router_id 51\n\
         \x20   priority $PRIO\n\
         \x20   virtual_ipaddress {\n\
         \x20       ~SEQ(N, 10, 11) 192.0.2.${N}\n\
         \x20   }\n\
         }\n",
    )?;
    let output = agent(&["-t", "-f", config.arg(), "-i", "node1"])?;
    ensure!(
        output.status.success(),
        "-i node1 should pass ({}):\n{}",
        output.status,
        stderr(&output)
    );
    let output = agent(&["-t", "-f", config.arg(), "--config-id", "node2"])?;
    let text = stderr(&output);
    ensure!(
        output.status.code() == Some(1),
        "--config-id node2 should fail with 1 ({}):\n{text}",
        output.status
    );
    let expected = format!("{}:5:14: error: $PRIO is not defined", config.arg());
    ensure!(
        text.contains(&expected),
        "expected {expected:?} in:\n{text}"
    );
    Ok(())
}
