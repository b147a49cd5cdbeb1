//! Checks that depend on the host the configuration runs on: script users
//! and groups, the programs scripts run, the directories `init_file` writes
//! into. `vrrp-agent -t`, daemon startup and reload all run them (through
//! [`super::load`], or [`check_host`] directly), so what `-t` accepts is
//! what the daemon starts with.
//!
//! keepalived disables a `vrrp_script` whose program is missing or not
//! executable (and removes it from the instances that track it), reporting
//! a configuration error. vrrp-agent refuses such a configuration instead:
//! a script that would fail on every run moves priorities for no reason.
//! A missing notify program only loses a side effect, so it is a warning,
//! as keepalived's "disabling" log line is.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Position};
use super::model::{Command, Config, RunAs as ConfiguredUser};
use crate::tracking::{RunAs, UserSpec, command::Invocation, resolve_run_as};

/// Where a bare program name is looked up when the daemon has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every refusal (and warning) the host would cause when this configuration
/// is started. Errors here make `config::load` fail.
pub fn check_host(config: &Config) -> Vec<Diagnostic> {
    let mut check = HostCheck {
        config,
        out: Vec::new(),
        seen: HashSet::new(),
        path: std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_else(|| std::env::split_paths(DEFAULT_PATH).collect()),
    };
    check.run();
    check.out
}

struct HostCheck<'a> {
    config: &'a Config,
    out: Vec<Diagnostic>,
    /// A user named in several places is reported where it was written, once.
    seen: HashSet<(Position, String)>,
    path: Vec<PathBuf>,
}

/// How bad a missing or unusable program is.
#[derive(Clone, Copy)]
enum Need {
    /// The daemon would run it on every interval: refuse.
    Tracked,
    /// A notify hook: warn.
    Notify,
}

impl HostCheck<'_> {
    fn error(&mut self, at: &Position, message: String) {
        if self.seen.insert((at.clone(), message.clone())) {
            self.out.push(Diagnostic::error(at.clone(), message));
        }
    }

    fn warning(&mut self, at: &Position, message: String) {
        if self.seen.insert((at.clone(), message.clone())) {
            self.out.push(Diagnostic::warning(at.clone(), message));
        }
    }

    fn run(&mut self) {
        let config = self.config;
        let global = config.global_defs.script_user.as_ref();
        // keepalived resolves script_user when it reads it, scripts or not.
        if let Some(user) = global {
            self.user("global_defs script_user", Some(user));
        }
        let tracked: HashSet<&str> = config
            .vrrp_instances
            .iter()
            .flat_map(|instance| instance.track_script.iter())
            .map(|reference| reference.name.as_str())
            .collect();
        // Scripts no instance tracks are never run, as in keepalived.
        for script in config
            .vrrp_scripts
            .iter()
            .filter(|script| tracked.contains(script.name.as_str()))
        {
            let owner = format!("vrrp_script {}", script.name);
            let run_as = match &script.user {
                Some(user) => self.user(&owner, Some(user)),
                None => self.user("global_defs script_user", global),
            };
            if let Some(run_as) = run_as {
                self.program(&owner, &script.script, &run_as, Need::Tracked);
            }
        }
        let instance_hooks = config.vrrp_instances.iter().flat_map(|instance| {
            instance
                .notifies()
                .map(move |notify| (format!("vrrp_instance {}", instance.name), notify))
        });
        let group_hooks = config.vrrp_sync_groups.iter().flat_map(|group| {
            group
                .notifies()
                .map(move |notify| (format!("vrrp_sync_group {}", group.name), notify))
        });
        for (owner, notify) in instance_hooks.chain(group_hooks) {
            let run_as = match &notify.run_as {
                Some(user) => self.user(&owner, Some(user)),
                None => self.user("global_defs script_user", global),
            };
            if let Some(run_as) = run_as {
                self.program(&owner, &notify.command, &run_as, Need::Notify);
            }
        }
        self.init_files();
    }

    /// Resolves a script's user as the daemon does; `None` when it cannot
    /// (reported where the user was written).
    fn user(&mut self, owner: &str, user: Option<&ConfiguredUser>) -> Option<RunAs> {
        let spec = user.map(|user| UserSpec::new(user.user.clone(), user.group.clone()));
        match resolve_run_as(spec.as_ref(), None) {
            Ok(run_as) => Some(run_as),
            Err(error) => {
                let at = user.map_or_else(
                    || Position::file_only("(default script user)".into()),
                    |user| user.position.clone(),
                );
                self.error(&at, format!("{owner}: {error}"));
                None
            }
        }
    }

    fn program(&mut self, owner: &str, command: &Command, run_as: &RunAs, need: Need) {
        let Invocation::Direct { argv } = command.run.invocation() else {
            // `<`/`>` commands run through /bin/sh, as in keepalived.
            return;
        };
        let Some(program) = argv.first() else { return };
        let program = Path::new(program);
        let (uid, gid) = ids(run_as);
        let problem = if program.components().count() > 1 || program.is_absolute() {
            usable(program, uid, gid).err()
        } else {
            self.search(program, uid, gid).err()
        };
        let Some(problem) = problem else { return };
        let who = match run_as {
            RunAs::Inherit => "root, the daemon's user",
            RunAs::Account { name, .. } => name.as_str(),
        };
        match need {
            Need::Tracked => self.error(
                &command.position,
                format!(
                    "{owner}: {problem}; the script would fail on every run (keepalived disables such a script); expected an existing program executable by {who} (uid {uid}, gid {gid})"
                ),
            ),
            Need::Notify => self.warning(
                &command.position,
                format!(
                    "{owner}: {problem}; this notify hook will fail each time it runs (keepalived disables it); expected an existing program executable by {who} (uid {uid}, gid {gid})"
                ),
            ),
        }
    }

    /// A bare program name is found through `PATH`, as `execvp` does.
    fn search(&self, program: &Path, uid: u32, gid: u32) -> Result<(), String> {
        let mut first_problem = None;
        for dir in &self.path {
            let candidate = dir.join(program);
            match usable(&candidate, uid, gid) {
                Ok(()) => return Ok(()),
                Err(problem) if candidate.exists() => {
                    first_problem.get_or_insert(problem);
                }
                Err(_) => {}
            }
        }
        Err(first_problem.unwrap_or_else(|| {
            format!(
                "program \"{}\" is not in PATH ({})",
                program.display(),
                std::env::join_paths(&self.path)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        }))
    }

    /// `init_file` writes the track file before the daemon starts tracking
    /// it; the daemon refuses to start when it cannot.
    fn init_files(&mut self) {
        let config = self.config;
        let tracked: HashSet<&str> = config
            .vrrp_instances
            .iter()
            .flat_map(|instance| instance.track_file.iter())
            .map(|reference| reference.name.as_str())
            .collect();
        for file in &config.track_files {
            let Some(init) = &file.init_file else {
                continue;
            };
            if !tracked.contains(file.name.as_str()) {
                continue;
            }
            let path = Path::new(&file.file);
            if !init.overwrite && path.exists() {
                continue;
            }
            let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
                continue;
            };
            if !dir.is_dir() {
                self.error(
                    &file.position,
                    format!(
                        "vrrp_track_file {}: init_file would write \"{}\", but directory \"{}\" does not exist; expected an existing directory (or no init_file)",
                        file.name,
                        file.file,
                        dir.display()
                    ),
                );
            }
        }
    }
}

/// The ids a script runs with. `Inherit` means the daemon's own, and the
/// daemon runs as root (it refuses to start otherwise), also when `-t` is
/// run by someone else.
fn ids(run_as: &RunAs) -> (u32, u32) {
    match run_as {
        RunAs::Account { uid, gid, .. } => (*uid, *gid),
        RunAs::Inherit => (0, 0),
    }
}

/// Whether `path` is a regular file that `uid`/`gid` may execute, judged by
/// its mode bits as keepalived judges it.
fn usable(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("program \"{}\" does not exist", path.display()),
        _ => format!("program \"{}\" cannot be accessed: {error}", path.display()),
    })?;
    if !metadata.is_file() {
        return Err(format!(
            "program \"{}\" is not a regular file",
            path.display()
        ));
    }
    let mode = metadata.permissions().mode();
    let allowed = if uid == 0 {
        mode & 0o111 != 0
    } else if metadata.uid() == uid {
        mode & 0o100 != 0
    } else if metadata.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "program \"{}\" is not executable (mode {:o})",
            path.display(),
            mode & 0o7777
        ))
    }
}
