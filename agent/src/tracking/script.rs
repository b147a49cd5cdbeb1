//! `vrrp_script`: run a check periodically and report OK/FAILED changes.
//!
//! One tokio task per script. Runs never overlap: the next run starts
//! `interval` after the previous one *started*, or right away when a run took
//! longer than that (keepalived instead skips a tick while a run is still in
//! progress; the effect is the same, a slow script delays the next check).
//! The first run starts immediately, as in keepalived. A run longer than
//! `timeout` (default: `interval`, as keepalived) is killed with its whole
//! process group and counts as a failure.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::CommandLine;
use super::exec::{self, DEFAULT_TERM_GRACE, RunLimits, RunOutcome};
use super::hysteresis::{Hysteresis, ScriptStatus};
use super::user::RunAs;

/// keepalived's default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Floor for the interval: keepalived's resolution (`interval 0.001`), and
/// what keeps a zero that reached a spec some other way from becoming a
/// fork loop (the config layer turns `interval 0` into 1 s as keepalived).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One `vrrp_script` block, filled from the parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    pub name: String,
    pub command: CommandLine,
    pub interval: Duration,
    /// `None` = keepalived's default, the interval.
    pub timeout: Option<Duration>,
    /// Default weight for trackers that do not set their own (keepalived: 0,
    /// i.e. a failure puts tracking instances in FAULT).
    pub weight: i32,
    /// Apply the weight on success instead of on failure (see `weight`).
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub run_as: RunAs,
    pub init_fail: bool,
}

impl ScriptSpec {
    /// A spec with keepalived's defaults: interval 1 s, weight 0, rise/fall 1.
    pub fn new(name: impl Into<String>, command: CommandLine, run_as: RunAs) -> Self {
        Self {
            name: name.into(),
            command,
            interval: DEFAULT_INTERVAL,
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            run_as,
            init_fail: false,
        }
    }

    /// `timeout`, or the interval when unset or 0 (keepalived).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout
            .filter(|timeout| !timeout.is_zero())
            .unwrap_or_else(|| self.effective_interval())
    }

    pub fn effective_interval(&self) -> Duration {
        self.interval.max(MIN_INTERVAL)
    }

    /// The status before the first run (the daemon derives the instance's
    /// starting point from `init_fail` itself; the tests pin the default).
    #[cfg(test)]
    pub fn initial_status(&self) -> ScriptStatus {
        Hysteresis::new(self.rise, self.fall, self.init_fail).status()
    }
}

/// A script's status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEvent {
    pub name: String,
    pub status: ScriptStatus,
}

/// Starts the task for `spec`. It stops (killing a running child) when
/// `cancel` fires or the receiver of `events` is gone.
pub fn spawn_script_tracker(
    spec: ScriptSpec,
    events: mpsc::Sender<ScriptEvent>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = track(&spec, &events) => {}
        }
        tracing::debug!(script = %spec.name, "script tracker stopped");
    })
}

async fn track(spec: &ScriptSpec, events: &mpsc::Sender<ScriptEvent>) {
    let mut hysteresis = Hysteresis::new(spec.rise, spec.fall, spec.init_fail);
    let limits = RunLimits {
        timeout: spec.effective_timeout(),
        term_grace: DEFAULT_TERM_GRACE,
    };
    let argv = spec.command.argv_with(&[]);
    let mut last_outcome: Option<RunOutcome> = None;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = exec::run(&argv, &spec.run_as, limits).await;
        log_outcome(spec, &outcome, last_outcome.as_ref());
        let changed = hysteresis.record(outcome.is_success());
        last_outcome = Some(outcome);
        if let Some(status) = changed {
            tracing::info!(script = %spec.name, ?status, "VRRP script status changed");
            let event = ScriptEvent {
                name: spec.name.clone(),
                status,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
        tokio::time::sleep_until(started + spec.effective_interval()).await;
    }
}

/// Logs a run; repeats of the same outcome only at debug level so a broken
/// script checked every second does not flood the log.
fn log_outcome(spec: &ScriptSpec, outcome: &RunOutcome, previous: Option<&RunOutcome>) {
    if previous == Some(outcome) {
        tracing::debug!(script = %spec.name, %outcome, "VRRP script ran");
        return;
    }
    match outcome {
        RunOutcome::Exited(0) => {
            tracing::info!(script = %spec.name, command = spec.command.source(), %outcome, "VRRP script now succeeding")
        }
        RunOutcome::TimedOut => tracing::warn!(
            script = %spec.name,
            command = spec.command.source(),
            timeout_ms = spec.effective_timeout().as_millis() as u64,
            "VRRP script timed out; killed its process group, counting a failure"
        ),
        _ => {
            tracing::warn!(script = %spec.name, command = spec.command.source(), %outcome, "VRRP script failing")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::test_support::write_script;

    fn spec(name: &str, line: &str) -> ScriptSpec {
        let mut spec = ScriptSpec::new(name, CommandLine::parse(line).unwrap(), RunAs::Inherit);
        spec.interval = Duration::from_millis(50);
        spec
    }

    async fn next(rx: &mut mpsc::Receiver<ScriptEvent>) -> ScriptEvent {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no event in time")
            .expect("tracker ended")
    }

    #[test]
    fn defaults_mirror_keepalived() {
        let s = ScriptSpec::new(
            "chk",
            CommandLine::parse("/bin/true").unwrap(),
            RunAs::Inherit,
        );
        assert_eq!(s.interval, Duration::from_secs(1));
        assert_eq!(s.effective_timeout(), Duration::from_secs(1));
        assert_eq!((s.weight, s.rise, s.fall, s.reverse), (0, 1, 1, false));
        assert_eq!(s.initial_status(), ScriptStatus::Init);
    }

    #[test]
    fn zero_interval_and_timeout_are_safe() {
        let mut s = ScriptSpec::new(
            "chk",
            CommandLine::parse("/bin/true").unwrap(),
            RunAs::Inherit,
        );
        s.interval = Duration::ZERO;
        s.timeout = Some(Duration::ZERO);
        assert_eq!(s.effective_interval(), MIN_INTERVAL);
        assert_eq!(s.effective_timeout(), MIN_INTERVAL);
        s.interval = Duration::from_secs(5);
        assert_eq!(s.effective_timeout(), Duration::from_secs(5));
        s.timeout = Some(Duration::from_secs(2));
        assert_eq!(s.effective_timeout(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn reports_status_flips_with_rise_and_fall() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("healthy");
        let script = write_script(dir.path(), "chk.sh", &format!("test -e {}", flag.display()));
        let mut s = spec("chk", &script);
        s.rise = 2;
        s.fall = 2;
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(s, tx, cancel.clone());

        assert_eq!(next(&mut rx).await.status, ScriptStatus::Failed);
        std::fs::write(&flag, "").unwrap();
        let event = next(&mut rx).await;
        assert_eq!(
            event,
            ScriptEvent {
                name: "chk".into(),
                status: ScriptStatus::Ok
            }
        );
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(next(&mut rx).await.status, ScriptStatus::Failed);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn arguments_reach_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(
            dir.path(),
            "args.sh",
            r#"test "$1" = "a b" && test "$2" = c"#,
        );
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(
            spec("args", &format!("{script} 'a b' c")),
            tx,
            cancel.clone(),
        );
        assert_eq!(next(&mut rx).await.status, ScriptStatus::Ok);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn timeout_counts_as_failure() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_script(dir.path(), "slow.sh", "exec sleep 30");
        let mut s = spec("slow", &script);
        s.timeout = Some(Duration::from_millis(100));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(s, tx, cancel.clone());
        assert_eq!(next(&mut rx).await.status, ScriptStatus::Failed);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn runs_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock");
        let log = dir.path().join("log");
        // Fails (and records it) if another run holds the lock.
        let body = format!(
            "mkdir {l} 2>/dev/null || {{ echo overlap >> {g}; exit 1; }}\necho run >> {g}\nsleep 0.2\nrmdir {l}",
            l = lock.display(),
            g = log.display()
        );
        let script = write_script(dir.path(), "slow.sh", &body);
        let mut s = spec("slow", &script);
        s.interval = Duration::from_millis(20);
        s.timeout = Some(Duration::from_secs(5));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(s, tx, cancel.clone());
        assert_eq!(next(&mut rx).await.status, ScriptStatus::Ok);
        tokio::time::sleep(Duration::from_millis(900)).await;
        cancel.cancel();
        task.await.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("overlap"), "{text}");
        let runs = text.lines().count();
        assert!(
            (2..=7).contains(&runs),
            "{runs} runs in ~1.1 s of 0.2 s runs"
        );
    }

    #[tokio::test]
    async fn cancellation_kills_a_running_child() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = write_script(
            dir.path(),
            "hang.sh",
            &format!("echo $$ > {}\nexec sleep 30", pidfile.display()),
        );
        let mut s = spec("hang", &script);
        s.timeout = Some(Duration::from_secs(60));
        let (tx, _rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(s, tx, cancel.clone());
        let mut pid = None;
        for _ in 0..200 {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                pid = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pid = pid.expect("script never started");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        crate::tracking::test_support::assert_process_gone(pid).await;
    }

    #[tokio::test]
    async fn missing_script_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sh").display().to_string();
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_script_tracker(spec("nope", &missing), tx, cancel.clone());
        assert_eq!(next(&mut rx).await.status, ScriptStatus::Failed);
        cancel.cancel();
        task.await.unwrap();
    }
}
