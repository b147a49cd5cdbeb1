//! `enable_script_security` / `script_user`: every `vrrp_script` and
//! `notify*` command is checked against the files on this host, as
//! keepalived checks them when it loads a configuration.
//!
//! A script that would run as root and that someone other than root could
//! replace is an error with `enable_script_security` (keepalived disables
//! it) and a warning without (keepalived runs it and logs). With
//! `enable_script_security`, a script with no `user`, no `script_user` and
//! no `keepalived_script` account is an error too: keepalived will not fall
//! back to root then. Scripts and users that do not exist are left to the
//! checks that report those.

use super::diagnostic::{Diagnostic, Position};
use super::model::{Command, Config, GlobalDefs, Notify, RunAs as ConfiguredUser};
use crate::tracking::{
    RunAs, UserSpec, resolve_run_as,
    security::{Verdict, check_command},
    user::DEFAULT_SCRIPT_USER,
};

/// Findings for every script and notify command of `config`.
pub fn check(config: &Config) -> Vec<Diagnostic> {
    let global = &config.global_defs;
    let mut findings = Vec::new();
    for script in &config.vrrp_scripts {
        check_one(
            &format!("vrrp_script {}", script.name),
            &script.script,
            script.user.as_ref(),
            &script.position,
            global,
            &mut findings,
        );
    }
    let notifies = config
        .vrrp_instances
        .iter()
        .map(|i| {
            (
                format!("vrrp_instance {}", i.name),
                vec![
                    ("notify_master", &i.notify_master),
                    ("notify_backup", &i.notify_backup),
                    ("notify_fault", &i.notify_fault),
                    ("notify_stop", &i.notify_stop),
                    ("notify", &i.notify),
                    ("notify_master_rx_lower_pri", &i.notify_master_rx_lower_pri),
                ],
            )
        })
        .chain(config.vrrp_sync_groups.iter().map(|g| {
            (
                format!("vrrp_sync_group {}", g.name),
                vec![
                    ("notify_master", &g.notify_master),
                    ("notify_backup", &g.notify_backup),
                    ("notify_fault", &g.notify_fault),
                    ("notify_stop", &g.notify_stop),
                    ("notify", &g.notify),
                ],
            )
        }));
    for (owner, hooks) in notifies {
        for (keyword, notify) in hooks {
            if let Some(Notify {
                command,
                run_as,
                position,
            }) = notify
            {
                check_one(
                    &format!("{owner} {keyword}"),
                    command,
                    run_as.as_ref(),
                    position,
                    global,
                    &mut findings,
                );
            }
        }
    }
    findings
}

fn spec(user: &ConfiguredUser) -> UserSpec {
    UserSpec::new(user.user.clone(), user.group.clone())
}

fn check_one(
    owner: &str,
    command: &Command,
    own: Option<&ConfiguredUser>,
    at: &Position,
    global: &GlobalDefs,
    findings: &mut Vec<Diagnostic>,
) {
    let line = command.line();
    let own = own.map(spec);
    let script_user = global.script_user.as_ref().map(spec);
    let Ok(run_as) = resolve_run_as(own.as_ref(), script_user.as_ref()) else {
        return;
    };
    let secure = global.enable_script_security;
    if secure && own.is_none() && script_user.is_none() && run_as == RunAs::Inherit {
        findings.push(Diagnostic::error(
            at.clone(),
            format!(
                "{owner}: unable to set default user {DEFAULT_SCRIPT_USER} for script `{line}` - disabling: \
                 with enable_script_security the script does not fall back to root; \
                 create the {DEFAULT_SCRIPT_USER} account, or set `script_user` in global_defs or a user on the script"
            ),
        ));
        return;
    }
    let Verdict::Unsafe(found) = check_command(&command.run, &run_as) else {
        return;
    };
    let fix = "make the script and every directory above it owned by root and writable only by root, or run it as an unprivileged user";
    let script = found.script.display();
    findings.push(if secure {
        Diagnostic::error(
            at.clone(),
            format!(
                "{owner}: unsafe permissions found for script '{script}' ({found}) - disabling: \
                 enable_script_security refuses a script that runs as {} and that a non-root user can change; {fix}",
                run_as.name()
            ),
        )
    } else {
        Diagnostic::warning(
            at.clone(),
            format!(
                "{owner}: unsafe permissions found for script '{script}' ({found}); \
                 it runs as {} anyway because enable_script_security is not set; {fix}",
                run_as.name()
            ),
        )
    });
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt as _, chown};
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::{Severity, parse_str};

    /// A root-owned directory of scripts under /tmp, removed on drop.
    struct Scripts(PathBuf);

    impl Scripts {
        fn new(tag: &str, dir_mode: u32) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "vrrp-agent-script-security-{tag}-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            chown(&dir, Some(0), Some(0)).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).unwrap();
            Self(dir)
        }

        fn add(&self, name: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            chown(&path, Some(0), Some(0)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for Scripts {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config(global: &str, script: &Path, notify: &Path) -> Config {
        let text = format!(
            "global_defs {{\n{global}\n}}\n\
             vrrp_script chk {{\n script \"{} arg\"\n}}\n\
             vrrp_instance a {{\n interface eth1\n virtual_router_id 1\n virtual_ipaddress {{ 192.0.2.1 }}\n track_script {{\n  chk\n }}\n notify_master \"{} master\"\n}}\n",
            script.display(),
            notify.display()
        );
        parse_str(&text, "k.conf").expect("parses").config
    }

    fn lines(findings: &[Diagnostic], severity: Severity) -> Vec<String> {
        findings
            .iter()
            .filter(|d| d.severity == severity)
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_world_writable_root_script_is_refused_under_enable_script_security() {
        let scripts = Scripts::new("refused", 0o755);
        let bad = scripts.add("check.sh", 0o777);
        let good = scripts.add("notify.sh", 0o755);
        let findings = check(&config(
            " script_user root\n enable_script_security",
            &bad,
            &good,
        ));
        let errors = lines(&findings, Severity::Error);
        assert_eq!(errors.len(), 1, "{findings:?}");
        assert!(
            errors[0].starts_with(&format!(
                "k.conf:5:1: vrrp_script chk: unsafe permissions found for script '{}' (it is writable by everyone) - disabling",
                bad.display()
            )),
            "{errors:?}"
        );
        assert!(lines(&findings, Severity::Warning).is_empty());
    }

    #[test]
    fn a_notify_script_in_a_world_writable_directory_is_refused() {
        let scripts = Scripts::new("notify-dir", 0o777);
        let notify = scripts.add("notify.sh", 0o755);
        let safe_dir = Scripts::new("notify-safe", 0o755);
        let check_script = safe_dir.add("check.sh", 0o755);
        let findings = check(&config(
            " script_user root\n enable_script_security",
            &check_script,
            &notify,
        ));
        let errors = lines(&findings, Severity::Error);
        assert_eq!(errors.len(), 1, "{findings:?}");
        assert!(
            errors[0].starts_with("k.conf:15:2: vrrp_instance a notify_master: unsafe permissions"),
            "{errors:?}"
        );
        assert!(
            errors[0].contains(&format!(
                "('{}' is writable by everyone)",
                scripts.0.display()
            )),
            "{errors:?}"
        );
    }

    #[test]
    fn without_enable_script_security_an_unsafe_script_is_a_warning() {
        let scripts = Scripts::new("warned", 0o755);
        let bad = scripts.add("check.sh", 0o777);
        let findings = check(&config(" script_user root", &bad, &bad));
        assert!(lines(&findings, Severity::Error).is_empty());
        let warnings = lines(&findings, Severity::Warning);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().all(
                |w| w.contains("runs as root anyway because enable_script_security is not set")
            )
        );
    }

    #[test]
    fn root_owned_0755_scripts_pass() {
        let scripts = Scripts::new("safe", 0o755);
        let script = scripts.add("check.sh", 0o755);
        let findings = check(&config(
            " script_user root\n enable_script_security",
            &script,
            &script,
        ));
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn an_unprivileged_script_user_needs_no_protection() {
        let scripts = Scripts::new("nobody", 0o777);
        let script = scripts.add("check.sh", 0o777);
        let findings = check(&config(
            " script_user nobody\n enable_script_security",
            &script,
            &script,
        ));
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn enable_script_security_does_not_fall_back_to_root() {
        let scripts = Scripts::new("default-user", 0o755);
        let script = scripts.add("check.sh", 0o755);
        let findings = check(&config(" enable_script_security", &script, &script));
        let errors = lines(&findings, Severity::Error);
        let account = nix::unistd::User::from_name(DEFAULT_SCRIPT_USER).unwrap();
        if account.is_some() {
            assert!(errors.is_empty(), "{errors:?}");
        } else {
            assert_eq!(errors.len(), 2, "{errors:?}");
            assert!(
                errors[0].contains("unable to set default user keepalived_script"),
                "{errors:?}"
            );
        }
    }
}
