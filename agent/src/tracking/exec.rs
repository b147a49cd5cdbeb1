//! Running one script to completion, with a deadline, as a given user.
//!
//! Every child gets its own process group (keepalived does `setpgid(0, 0)`),
//! so a timeout or a cancellation can kill whatever the script started, not
//! just the script. On timeout the group gets SIGTERM, then SIGKILL after a
//! grace period (keepalived's scripts are told to handle SIGTERM). If the
//! future running a script is dropped (task cancelled or aborted), the group
//! is killed with SIGKILL by a guard. stdin/stdout/stderr go to /dev/null, as
//! in keepalived.
//!
//! A file without a `#!` line fails `execve` with ENOEXEC; keepalived then
//! runs it through `system()`, so we retry it as `/bin/sh FILE ARGS…`.

use std::ffi::OsString;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::user::RunAs;

/// How long a timed-out script gets between SIGTERM and SIGKILL (keepalived
/// waits 2 s before its SIGKILL).
pub const DEFAULT_TERM_GRACE: Duration = Duration::from_secs(2);

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub timeout: Duration,
    pub term_grace: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Exited(i32),
    /// Killed by a signal we did not send.
    Signalled(i32),
    /// Ran past its timeout and was killed.
    TimedOut,
    /// Could not be started (missing, not executable, bad user…).
    SpawnFailed(String),
}

impl RunOutcome {
    /// keepalived: exit code 0 is success, everything else failure.
    pub fn is_success(&self) -> bool {
        matches!(self, RunOutcome::Exited(0))
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::Exited(code) => write!(f, "exited with status {code}"),
            RunOutcome::Signalled(sig) => write!(f, "killed by signal {sig}"),
            RunOutcome::TimedOut => write!(f, "timed out and was killed"),
            RunOutcome::SpawnFailed(why) => write!(f, "could not be started: {why}"),
        }
    }
}

/// Kills the child's process group if dropped while armed.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH just means everyone in the group is already gone.
            let _ = killpg(pgid, signal);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Runs `argv` as `run_as` within `limits`.
pub async fn run(argv: &[OsString], run_as: &RunAs, limits: RunLimits) -> RunOutcome {
    let Some((program, args)) = argv.split_first() else {
        return RunOutcome::SpawnFailed("empty command".into());
    };
    let child = match spawn(program, args, run_as) {
        Ok(child) => child,
        Err(err) if err.raw_os_error() == Some(libc::ENOEXEC) => {
            let mut sh_args = Vec::with_capacity(argv.len());
            sh_args.extend(argv.iter().cloned());
            match spawn(&OsString::from("/bin/sh"), &sh_args, run_as) {
                Ok(child) => child,
                Err(err) => {
                    return RunOutcome::SpawnFailed(describe_spawn_error(program, run_as, &err));
                }
            }
        }
        Err(err) => return RunOutcome::SpawnFailed(describe_spawn_error(program, run_as, &err)),
    };
    supervise(child, limits).await
}

fn spawn(program: &OsString, args: &[OsString], run_as: &RunAs) -> io::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = run_as.switch_to() {
        // std sets the gid, clears supplementary groups (when root) and then
        // the uid in the child between fork and exec.
        command.uid(uid).gid(gid);
    }
    command.spawn()
}

fn describe_spawn_error(program: &OsString, run_as: &RunAs, err: &io::Error) -> String {
    let path = program.to_string_lossy();
    match err.raw_os_error() {
        Some(libc::ENOENT) => format!(
            "`{path}` does not exist, or its #! interpreter does not (give the full path of an existing script)"
        ),
        Some(libc::EACCES) => format!(
            "`{path}` is not executable by user {} (chmod +x it, or check the directories' permissions and the `user` setting)",
            run_as.name()
        ),
        Some(libc::EPERM) => format!(
            "cannot switch to user {} to run `{path}` (the daemon must run as root to use `user`/`script_user`)",
            run_as.name()
        ),
        _ => format!("`{path}`: {err}"),
    }
}

async fn supervise(mut child: Child, limits: RunLimits) -> RunOutcome {
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    match tokio::time::timeout(limits.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            guard.disarm();
            outcome_of(status)
        }
        Ok(Err(err)) => RunOutcome::SpawnFailed(format!("waiting for the script failed: {err}")),
        Err(_) => {
            guard.signal(Signal::SIGTERM);
            let _ = tokio::time::timeout(limits.term_grace, child.wait()).await;
            // Also reaps helpers the script left behind in its group.
            guard.signal(Signal::SIGKILL);
            let _ = child.wait().await;
            guard.disarm();
            RunOutcome::TimedOut
        }
    }
}

fn outcome_of(status: ExitStatus) -> RunOutcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => RunOutcome::Exited(code),
        (None, Some(sig)) => RunOutcome::Signalled(sig),
        (None, None) => RunOutcome::Exited(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    fn limits(timeout_ms: u64) -> RunLimits {
        RunLimits {
            timeout: Duration::from_millis(timeout_ms),
            term_grace: Duration::from_millis(200),
        }
    }

    fn sh(script: &str) -> Vec<OsString> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn exit_codes_are_reported() {
        assert_eq!(
            run(&sh("exit 0"), &RunAs::Inherit, limits(5000)).await,
            RunOutcome::Exited(0)
        );
        assert_eq!(
            run(&sh("exit 3"), &RunAs::Inherit, limits(5000)).await,
            RunOutcome::Exited(3)
        );
        assert!(matches!(
            run(&sh("kill -9 $$"), &RunAs::Inherit, limits(5000)).await,
            RunOutcome::Signalled(9)
        ));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        // The grandchild ignores SIGTERM; only the group SIGKILL stops it.
        let script = format!(
            "sh -c 'trap \"\" TERM; echo $$ > {p}; exec sleep 30' & wait",
            p = pidfile.display()
        );
        let started = Instant::now();
        let outcome = run(&sh(&script), &RunAs::Inherit, limits(300)).await;
        assert_eq!(outcome, RunOutcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Give the kernel a moment to reap it (its parent is gone, init reaps).
        let mut alive = true;
        for _ in 0..50 {
            alive = nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true);
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let argv = sh(&script);
        let task = tokio::spawn(async move { run(&argv, &RunAs::Inherit, limits(60_000)).await });
        let mut pid = None;
        for _ in 0..100 {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
            {
                pid = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = pid.expect("script never started");
        task.abort();
        let _ = task.await;
        crate::tracking::test_support::assert_process_gone(pid).await;
    }

    #[tokio::test]
    async fn missing_and_non_executable_scripts_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sh");
        let outcome = run(&[missing.clone().into()], &RunAs::Inherit, limits(1000)).await;
        match outcome {
            RunOutcome::SpawnFailed(why) => assert!(why.contains("does not exist"), "{why}"),
            other => panic!("unexpected {other:?}"),
        }

        let plain = dir.path().join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outcome = run(&[plain.into()], &RunAs::Inherit, limits(1000)).await;
        match outcome {
            RunOutcome::SpawnFailed(why) => assert!(why.contains("not executable"), "{why}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn script_without_shebang_runs_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("noshebang");
        std::fs::write(&script, "exit 7\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            run(&[script.into()], &RunAs::Inherit, limits(5000)).await,
            RunOutcome::Exited(7)
        );
    }

    #[tokio::test]
    async fn runs_as_the_requested_user() {
        if !Uid::effective().is_root() {
            return;
        }
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let run_as = RunAs::Account {
            name: "nobody".into(),
            uid: nobody.uid.as_raw(),
            gid: nobody.gid.as_raw(),
        };
        let check = format!(
            "test \"$(id -u)\" = {} && test \"$(id -g)\" = {}",
            nobody.uid, nobody.gid
        );
        assert_eq!(
            run(&sh(&check), &run_as, limits(5000)).await,
            RunOutcome::Exited(0)
        );
    }

    use nix::unistd::Uid;
}
