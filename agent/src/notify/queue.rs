//! An ordered executor of notify actions for one instance or group.
//!
//! keepalived forks notify scripts and does not wait for them, so with a slow
//! script a later transition's script can run before (or alongside) an
//! earlier one's. Operators' scripts (mail, DNS, service restarts) assume
//! they see transitions in order, so we run them strictly one after the
//! other: one queue and one worker per instance. A script that hangs is
//! killed (with its process group) after `script_timeout` so the queue moves
//! on. The queue is unbounded because transitions are produced by the
//! election, at most a few per advert interval, and dropping one would break
//! the ordering guarantee scripts rely on.
//!
//! SMTP alerts, when configured, are handed to the [`Mailer`] at enqueue
//! time (not after the scripts), so a slow script never delays a mail.
//!
//! `notify_master_rx_lower_pri` runs in the same order, but is not a
//! transition: a split brain can raise it at every advert interval, so one
//! waiting run stands for any number of events that arrive before it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::action::{NotifyTarget, PlannedRun, Scope, Transition, plan, plan_master_rx_lower_pri};
use super::alert::{AlertGate, vrrp_alert};
use super::mail::Mailer;
use crate::tracking::exec::{self, DEFAULT_TERM_GRACE, RunLimits, RunOutcome};

/// Default time a notify script may run before it is killed. keepalived has
/// no limit for notify scripts (1 s for notify_stop at shutdown); an
/// unbounded wait would stall every later notification of the instance.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub script_timeout: Duration,
    pub term_grace: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            script_timeout: DEFAULT_SCRIPT_TIMEOUT,
            term_grace: DEFAULT_TERM_GRACE,
        }
    }
}

/// Mail settings of one instance: where alerts go and keepalived's rules for
/// when to send one.
#[derive(Debug, Clone)]
pub struct MailHook {
    pub mailer: Mailer,
    pub router_id: String,
    pub gate: AlertGate,
}

/// Counts of what the worker did, returned by [`NotifyQueue::shutdown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub transitions: u64,
    pub scripts_run: u64,
    pub scripts_failed: u64,
    pub scripts_timed_out: u64,
}

/// Scripts run by every queue of the daemon, by outcome, for the metrics.
/// Atomics rather than a message back: the workers only add, and the
/// election task reads them when a scrape asks.
#[derive(Debug, Default)]
pub struct ScriptTotals {
    ok: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

impl ScriptTotals {
    /// (ok, failed, timed out) so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.timed_out.load(Ordering::Relaxed),
        )
    }
}

/// What the worker is asked to run, in order.
#[derive(Debug)]
enum Job {
    Transition(Transition),
    MasterRxLowerPri,
}

/// Handle to one instance's notify worker.
#[derive(Debug)]
pub struct NotifyQueue {
    name: String,
    scope: Scope,
    tx: mpsc::UnboundedSender<Job>,
    worker: JoinHandle<QueueStats>,
    mail: Option<MailHook>,
    has_lower_pri_script: bool,
    /// A `MasterRxLowerPri` job is queued and not started yet.
    lower_pri_waiting: Arc<AtomicBool>,
}

impl NotifyQueue {
    /// Starts the worker for `target`.
    #[cfg(test)]
    pub fn spawn(target: NotifyTarget, limits: QueueLimits, mail: Option<MailHook>) -> Self {
        Self::spawn_counted(target, limits, mail, Arc::default())
    }

    /// [`spawn`](Self::spawn), adding each script's outcome to `totals`.
    pub fn spawn_counted(
        target: NotifyTarget,
        limits: QueueLimits,
        mail: Option<MailHook>,
        totals: Arc<ScriptTotals>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = target.name.clone();
        let scope = target.scope;
        let has_lower_pri_script = target.master_rx_lower_pri.is_some();
        let lower_pri_waiting = Arc::new(AtomicBool::new(false));
        let worker = tokio::spawn(run_worker(
            target,
            limits,
            rx,
            totals,
            Arc::clone(&lower_pri_waiting),
        ));
        Self {
            name,
            scope,
            tx,
            worker,
            mail,
            has_lower_pri_script,
            lower_pri_waiting,
        }
    }

    /// This master heard a lower-priority advert: queues one run of
    /// `notify_master_rx_lower_pri` unless one is already waiting. Returns
    /// false if the worker is gone.
    pub fn master_rx_lower_pri(&mut self) -> bool {
        if !self.has_lower_pri_script || self.lower_pri_waiting.swap(true, Ordering::AcqRel) {
            return true;
        }
        self.tx.send(Job::MasterRxLowerPri).is_ok()
    }

    /// Queues `transition`; never blocks. Returns false if the worker is gone.
    pub fn notify(&mut self, transition: Transition) -> bool {
        if let Some(hook) = &mut self.mail
            && hook.gate.admit(transition.state)
        {
            let alert = vrrp_alert(&hook.router_id, self.scope, &self.name, transition.state);
            hook.mailer.send(alert);
        }
        self.tx.send(Job::Transition(transition)).is_ok()
    }

    /// Stops accepting transitions, runs the ones already queued, and waits
    /// for the worker to finish.
    pub async fn shutdown(self) -> QueueStats {
        drop(self.tx);
        self.worker.await.unwrap_or_default()
    }
}

async fn run_worker(
    target: NotifyTarget,
    limits: QueueLimits,
    mut rx: mpsc::UnboundedReceiver<Job>,
    totals: Arc<ScriptTotals>,
    lower_pri_waiting: Arc<AtomicBool>,
) -> QueueStats {
    let mut stats = QueueStats::default();
    let run_limits = RunLimits {
        timeout: limits.script_timeout,
        term_grace: limits.term_grace,
    };
    while let Some(job) = rx.recv().await {
        let (runs, event) = match job {
            Job::Transition(transition) => {
                stats.transitions += 1;
                (plan(&target, transition), transition.state.keyword())
            }
            Job::MasterRxLowerPri => {
                // Cleared before the run, so an advert heard while it runs
                // queues the next one.
                lower_pri_waiting.store(false, Ordering::Release);
                (
                    plan_master_rx_lower_pri(&target).into_iter().collect(),
                    "MASTER_RX_LOWER_PRI",
                )
            }
        };
        for run in runs {
            run_one(&target.name, &run, event, run_limits, &totals, &mut stats).await;
        }
    }
    stats
}

async fn run_one(
    instance: &str,
    run: &PlannedRun,
    event: &str,
    limits: RunLimits,
    totals: &ScriptTotals,
    stats: &mut QueueStats,
) {
    stats.scripts_run += 1;
    let outcome = exec::run(&run.argv, &run.run_as, limits).await;
    let counter = match &outcome {
        RunOutcome::Exited(0) => &totals.ok,
        RunOutcome::TimedOut => &totals.timed_out,
        _ => &totals.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match &outcome {
        RunOutcome::Exited(0) => {
            tracing::debug!(instance, keyword = run.keyword, event, "notify script done")
        }
        RunOutcome::TimedOut => {
            stats.scripts_timed_out += 1;
            tracing::warn!(
                instance,
                keyword = run.keyword,
                event,
                timeout_ms = limits.timeout.as_millis() as u64,
                "notify script hung; killed its process group and moved on"
            );
        }
        other => {
            stats.scripts_failed += 1;
            tracing::warn!(
                instance,
                keyword = run.keyword,
                event,
                outcome = %other,
                "notify script failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::action::{NotifyScript, NotifyState, Scope};
    use crate::notify::mail::tests::smtp_sink;
    use crate::notify::mail::{RetryPolicy, SmtpConfig};
    use crate::tracking::test_support::write_script;
    use crate::tracking::{CommandLine, RunAs};

    fn script(line: &str) -> Option<NotifyScript> {
        Some(NotifyScript {
            command: CommandLine::parse(line).unwrap(),
            run_as: RunAs::Inherit,
        })
    }

    fn transition(state: NotifyState, priority: u8) -> Transition {
        Transition { state, priority }
    }

    #[tokio::test]
    async fn order_and_arguments_survive_rapid_transitions() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // The state scripts sleep a varying time so that any concurrency
        // would reorder the log lines.
        let state_script = write_script(
            dir.path(),
            "state.sh",
            &format!(
                "case \"$1\" in master) sleep 0.15;; backup) sleep 0.05;; esac\necho \"state $*\" >> {}",
                log.display()
            ),
        );
        let generic = write_script(
            dir.path(),
            "generic.sh",
            &format!("echo \"generic $#:$*\" >> {}", log.display()),
        );
        let mut target = NotifyTarget::new(Scope::Instance, "VI_1");
        target.master = script(&format!("{state_script} master"));
        target.backup = script(&format!("{state_script} backup"));
        target.fault = script(&format!("{state_script} fault"));
        target.generic = script(&format!("{generic} 'two words'"));
        let mut queue = NotifyQueue::spawn(target, QueueLimits::default(), None);
        let sequence = [
            transition(NotifyState::Backup, 100),
            transition(NotifyState::Master, 102),
            transition(NotifyState::Fault, 100),
            transition(NotifyState::Backup, 90),
            transition(NotifyState::Master, 254),
            transition(NotifyState::Stop, 254),
        ];
        for t in sequence {
            assert!(queue.notify(t));
        }
        let stats = tokio::time::timeout(Duration::from_secs(30), queue.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.transitions, 6);
        assert_eq!(stats.scripts_run, 11);
        assert_eq!(stats.scripts_failed, 0);
        let text = std::fs::read_to_string(&log).unwrap();
        let expected = [
            "state backup",
            "generic 5:two words INSTANCE VI_1 BACKUP 100",
            "state master",
            "generic 5:two words INSTANCE VI_1 MASTER 102",
            "state fault",
            "generic 5:two words INSTANCE VI_1 FAULT 100",
            "state backup",
            "generic 5:two words INSTANCE VI_1 BACKUP 90",
            "state master",
            "generic 5:two words INSTANCE VI_1 MASTER 254",
            "generic 5:two words INSTANCE VI_1 STOP 254",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }

    #[tokio::test]
    async fn a_hung_script_is_killed_and_the_queue_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hang = write_script(dir.path(), "hang.sh", "exec sleep 30");
        let ok = write_script(
            dir.path(),
            "ok.sh",
            &format!("echo \"$1\" >> {}", log.display()),
        );
        let mut target = NotifyTarget::new(Scope::Instance, "VI_1");
        target.master = script(&hang);
        target.backup = script(&format!("{ok} backup"));
        let limits = QueueLimits {
            script_timeout: Duration::from_millis(200),
            term_grace: Duration::from_millis(100),
        };
        let mut queue = NotifyQueue::spawn(target, limits, None);
        let started = std::time::Instant::now();
        queue.notify(transition(NotifyState::Master, 100));
        queue.notify(transition(NotifyState::Backup, 100));
        let stats = tokio::time::timeout(Duration::from_secs(10), queue.shutdown())
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(stats.scripts_timed_out, 1);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "backup\n");
    }

    #[tokio::test]
    async fn failing_and_missing_scripts_do_not_stop_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let ok = write_script(
            dir.path(),
            "ok.sh",
            &format!("echo \"$1\" >> {}", log.display()),
        );
        let mut target = NotifyTarget::new(Scope::Instance, "VI_1");
        target.master = script("/bin/false");
        target.fault = script(&dir.path().join("missing.sh").display().to_string());
        target.backup = script(&format!("{ok} backup"));
        let totals = Arc::new(ScriptTotals::default());
        let mut queue =
            NotifyQueue::spawn_counted(target, QueueLimits::default(), None, Arc::clone(&totals));
        queue.notify(transition(NotifyState::Master, 100));
        queue.notify(transition(NotifyState::Fault, 100));
        queue.notify(transition(NotifyState::Backup, 100));
        let stats = tokio::time::timeout(Duration::from_secs(10), queue.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.scripts_failed, 2);
        // The metrics' totals: (ok, failed, timed out).
        assert_eq!(totals.get(), (1, 2, 0));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "backup\n");
    }

    #[tokio::test]
    async fn transitions_send_gated_mail_without_waiting_for_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let slow = write_script(dir.path(), "slow.sh", "sleep 1");
        let (port, mut received) = smtp_sink().await;
        let mut smtp = SmtpConfig::new(
            "127.0.0.1",
            "root@localhost",
            vec!["ops@example.com".into()],
        );
        smtp.port = port;
        smtp.connect_timeout = Duration::from_secs(2);
        smtp.helo_name = Some("test".into());
        let (mailer, mail_worker) =
            crate::notify::mail::Mailer::spawn(smtp, RetryPolicy::default(), 8).unwrap();
        let mut target = NotifyTarget::new(Scope::Instance, "master1");
        target.master = script(&slow);
        let hook = MailHook {
            mailer: mailer.clone(),
            router_id: "KEEPALIVED_TEST".into(),
            gate: AlertGate::new(true, false),
        };
        let mut queue = NotifyQueue::spawn(target, QueueLimits::default(), Some(hook));
        queue.notify(transition(NotifyState::Master, 100));
        queue.notify(transition(NotifyState::Master, 100));
        queue.notify(transition(NotifyState::Backup, 90));
        let first = tokio::time::timeout(Duration::from_millis(900), received.recv())
            .await
            .expect("mail waited for the slow script")
            .unwrap();
        assert_eq!(
            first.subject().as_deref(),
            Some("[KEEPALIVED_TEST] VRRP Instance master1 - Entering MASTER state")
        );
        queue.shutdown().await;
        mailer.close();
        let stats = mail_worker.await.unwrap();
        assert_eq!(stats.sent, 2, "repeated MASTER is not mailed twice");
        let second = received.recv().await.unwrap();
        assert_eq!(
            second.subject().as_deref(),
            Some("[KEEPALIVED_TEST] VRRP Instance master1 - Entering BACKUP state")
        );
    }

    /// A split brain raises the event at every advert interval: while one
    /// run waits, more events add nothing; the script gets exactly what was
    /// configured, and neither the generic `notify` nor a transition count
    /// moves.
    #[tokio::test]
    async fn master_rx_lower_pri_runs_alone_and_coalesces_while_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let lower = write_script(
            dir.path(),
            "lower.sh",
            &format!("echo \"lower $#:$*\" >> {}\nsleep 0.2", log.display()),
        );
        let generic = write_script(
            dir.path(),
            "generic.sh",
            &format!("echo \"generic $*\" >> {}", log.display()),
        );
        let mut target = NotifyTarget::new(Scope::Instance, "VI_1");
        target.master_rx_lower_pri = script(&format!("{lower} 'one arg'"));
        target.generic = script(&generic);
        let mut queue = NotifyQueue::spawn(target, QueueLimits::default(), None);
        // A transition first keeps the worker busy, so all ten events
        // arrive while the first of them still waits: one run.
        assert!(queue.notify(transition(NotifyState::Master, 200)));
        for _ in 0..10 {
            assert!(queue.master_rx_lower_pri());
        }
        let stats = tokio::time::timeout(Duration::from_secs(30), queue.shutdown())
            .await
            .unwrap();
        assert_eq!(stats.transitions, 1);
        assert_eq!(stats.scripts_run, 2);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["generic INSTANCE VI_1 MASTER 200", "lower 1:one arg"]
        );
    }

    #[tokio::test]
    async fn master_rx_lower_pri_without_a_script_queues_nothing() {
        let mut queue = NotifyQueue::spawn(
            NotifyTarget::new(Scope::Instance, "VI_1"),
            QueueLimits::default(),
            None,
        );
        assert!(queue.master_rx_lower_pri());
        let stats = queue.shutdown().await;
        assert_eq!(stats.scripts_run, 0);
    }
}
