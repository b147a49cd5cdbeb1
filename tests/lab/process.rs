//! Long-running processes started in a lab host: guarded (stopped on drop),
//! signalable, with stdout/stderr copied to files and readable line by line
//! while the process runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a process gets between SIGTERM and SIGKILL when it is stopped.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(500);

/// How many trailing lines error messages and failure dumps show.
const TAIL_LINES: usize = 20;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make cleanup panic too.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct StreamState {
    lines: Vec<String>,
    /// Index of the first line not yet returned by `next_line`/`wait_for`.
    cursor: usize,
    closed: bool,
}

/// One output stream (stdout or stderr) of a [`Process`]: every line is kept in
/// memory and appended to a file in the lab's temp dir as it arrives.
pub struct OutputStream {
    label: String,
    path: PathBuf,
    state: Mutex<StreamState>,
    changed: Condvar,
}

impl OutputStream {
    fn new(label: String, path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            label,
            path,
            state: Mutex::new(StreamState::default()),
            changed: Condvar::new(),
        })
    }

    /// Copies `pipe` into the file and the line buffer until end of file.
    fn pump(self: &Arc<Self>, pipe: impl Read + Send + 'static) -> Result<()> {
        let mut file = File::create(&self.path)
            .with_context(|| format!("cannot create log file {}", self.path.display()))?;
        let stream = Arc::clone(self);
        thread::Builder::new()
            .name(format!("log-{}", self.label))
            .spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            // The file is for humans after a failure; losing
                            // it must not stop line delivery to the test.
                            let _ = file.write_all(&raw).and_then(|()| file.flush());
                            let line = String::from_utf8_lossy(&raw)
                                .trim_end_matches(['\n', '\r'])
                                .to_owned();
                            lock(&stream.state).lines.push(line);
                            stream.changed.notify_all();
                        }
                    }
                }
                lock(&stream.state).closed = true;
                stream.changed.notify_all();
            })
            .context("cannot start log reader thread")?;
        Ok(())
    }

    /// File this stream is copied to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line received so far (without line terminators).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.state).lines.clone()
    }

    /// Everything received so far, newline-joined.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// The last `n` lines received so far.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let state = lock(&self.state);
        let start = state.lines.len().saturating_sub(n);
        state.lines[start..].to_vec()
    }

    /// The next unread line, waiting up to `timeout`; `Ok(None)` once the
    /// stream has ended and every line was read.
    pub fn next_line(&self, timeout: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            if let Some(line) = state.lines.get(state.cursor).cloned() {
                state.cursor += 1;
                return Ok(Some(line));
            }
            if state.closed {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("{}: no new line within {timeout:?}", self.label);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits up to `timeout` for an unread line matching `matches`, returns
    /// it and marks it (and the lines before it) read. Fails with the stream's
    /// recent lines if none appears or the stream ends first; the lines it
    /// examined count as read then too.
    pub fn wait_for(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        loop {
            let unread = state.lines.get(state.cursor..).unwrap_or_default();
            if let Some(offset) = unread.iter().position(|line| matches(line)) {
                let index = state.cursor + offset;
                state.cursor = index + 1;
                return Ok(state.lines[index].clone());
            }
            state.cursor = state.lines.len();
            let ended = state.closed;
            let now = Instant::now();
            if ended || now >= deadline {
                let start = state.lines.len().saturating_sub(TAIL_LINES);
                let tail = state.lines[start..].join("\n  ");
                let why = if ended {
                    "the stream ended".to_owned()
                } else {
                    format!("{timeout:?} passed")
                };
                bail!(
                    "{}: no matching line before {why}; last lines (full log in {}):\n  {tail}",
                    self.label,
                    self.path.display()
                );
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl OutputStream {
    /// Like [`wait_for`](Self::wait_for) for JSON-lines output (e.g.
    /// `vrrp-agent monitor --json`): waits for a line that parses as JSON and
    /// satisfies `matches`, and returns it parsed. Other lines are skipped.
    pub fn wait_for_json(
        &self,
        timeout: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let line = self.wait_for(timeout, |line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|value| matches(&value))
        })?;
        serde_json::from_str(&line)
            .with_context(|| format!("{}: line {line:?} is not JSON", self.label))
    }
}

/// Shared between a [`Process`] handle and the lab, which stops every process
/// it started when it is dropped.
pub(crate) struct ProcessCore {
    label: String,
    pid: u32,
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    grace: Mutex<Duration>,
    stdout: Arc<OutputStream>,
    stderr: Arc<OutputStream>,
}

impl ProcessCore {
    pub(crate) fn new(label: String, mut child: Child, log_dir: &Path) -> Result<Arc<Self>> {
        let pid = child.id();
        let stdout = OutputStream::new(
            format!("{label} stdout"),
            log_dir.join(format!("{label}.{pid}.stdout")),
        );
        let stderr = OutputStream::new(
            format!("{label} stderr"),
            log_dir.join(format!("{label}.{pid}.stderr")),
        );
        let core = Arc::new(Self {
            label,
            pid,
            stdout: Arc::clone(&stdout),
            stderr: Arc::clone(&stderr),
            grace: Mutex::new(DEFAULT_GRACE),
            exit: Mutex::new(None),
            child: Mutex::new({
                if let Some(pipe) = child.stdout.take() {
                    stdout.pump(pipe)?;
                }
                if let Some(pipe) = child.stderr.take() {
                    stderr.pump(pipe)?;
                }
                child
            }),
        });
        Ok(core)
    }

    /// Exit status if the process has exited (reaping it).
    fn poll_exit(&self) -> Option<ExitStatus> {
        let mut exit = lock(&self.exit);
        if exit.is_none() {
            *exit = lock(&self.child).try_wait().ok().flatten();
        }
        *exit
    }

    /// Signals the whole process group (the process was made a group leader
    /// at spawn, so helpers it forked get the signal too). Does nothing once
    /// the leader has been reaped, because its pid may then belong to someone else.
    fn signal(&self, signal: libc::c_int) -> Result<()> {
        if self.poll_exit().is_some() {
            return Ok(());
        }
        let pgid = i32::try_from(self.pid).context("pid does not fit in pid_t")?;
        // SAFETY: plain syscall; the group is ours and not yet reaped.
        let rc = unsafe { libc::kill(-pgid, signal) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).with_context(|| {
                    format!(
                        "cannot send signal {signal} to {} (pid {})",
                        self.label, self.pid
                    )
                });
            }
        }
        Ok(())
    }

    fn wait_until(&self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM to every process in `cores`, then SIGKILL to those still
    /// running after their grace period; all of them are reaped.
    pub(crate) fn stop_all(cores: &[Arc<ProcessCore>]) {
        for core in cores {
            let _ = core.signal(libc::SIGTERM);
        }
        let started = Instant::now();
        for core in cores {
            let grace = *lock(&core.grace);
            if core.wait_until(started + grace).is_none() {
                let _ = core.signal(libc::SIGKILL);
                if core
                    .wait_until(Instant::now() + Duration::from_secs(5))
                    .is_none()
                {
                    eprintln!(
                        "lab: {} (pid {}) survived SIGKILL for 5s; leaving it",
                        core.label, core.pid
                    );
                }
            }
        }
    }

    pub(crate) fn failure_report(&self) -> String {
        let mut report = format!("--- {} (pid {}) ", self.label, self.pid);
        match self.poll_exit() {
            Some(status) => report.push_str(&format!("exited: {status}\n")),
            None => report.push_str("still running\n"),
        }
        for stream in [&self.stdout, &self.stderr] {
            report.push_str(&format!(
                "  {} ({}):\n",
                stream.label,
                stream.path.display()
            ));
            for line in stream.tail(TAIL_LINES) {
                report.push_str(&format!("    {line}\n"));
            }
        }
        report
    }
}

/// A process running in a lab host. Dropping it stops it (SIGTERM, then
/// SIGKILL after the grace period); the lab also stops it when dropped.
pub struct Process {
    core: Arc<ProcessCore>,
}

impl Process {
    pub(crate) fn new(core: Arc<ProcessCore>) -> Self {
        Self { core }
    }

    /// Name used in logs and file names (`<program>-<host>`).
    pub fn label(&self) -> &str {
        &self.core.label
    }

    /// Process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.core.pid
    }

    /// Standard output, readable line by line while the process runs.
    pub fn stdout(&self) -> &OutputStream {
        &self.core.stdout
    }

    /// Standard error, readable line by line while the process runs.
    pub fn stderr(&self) -> &OutputStream {
        &self.core.stderr
    }

    /// Changes how long [`stop`](Self::stop) and drops wait between SIGTERM and SIGKILL.
    pub fn set_grace(&self, grace: Duration) {
        *lock(&self.core.grace) = grace;
    }

    /// True until the process has exited.
    pub fn is_running(&self) -> bool {
        self.core.poll_exit().is_none()
    }

    /// Exit status, if it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.core.poll_exit()
    }

    /// Sends SIGTERM to the process group (no waiting).
    pub fn sigterm(&self) -> Result<()> {
        self.core.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL to the process group (no waiting).
    pub fn kill9(&self) -> Result<()> {
        self.core.signal(libc::SIGKILL)
    }

    /// Sends an arbitrary signal (e.g. `libc::SIGHUP`) to the process group.
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        self.core.signal(signal)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait(&self, timeout: Duration) -> Result<ExitStatus> {
        self.core
            .wait_until(Instant::now() + timeout)
            .ok_or_else(|| {
                anyhow!(
                    "{} (pid {}) still running after {timeout:?}",
                    self.label(),
                    self.pid()
                )
            })
    }

    /// SIGTERM, SIGKILL after the grace period; returns the exit status.
    pub fn stop(&self) -> Result<ExitStatus> {
        ProcessCore::stop_all(std::slice::from_ref(&self.core));
        self.core
            .poll_exit()
            .ok_or_else(|| anyhow!("{} (pid {}) could not be stopped", self.label(), self.pid()))
    }

    /// Exit status and the last lines of both streams, for failure messages.
    pub fn report(&self) -> String {
        self.core.failure_report()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        ProcessCore::stop_all(std::slice::from_ref(&self.core));
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("label", &self.core.label)
            .field("pid", &self.core.pid)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    fn start(script: &str, dir: &Path) -> Process {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Process::new(ProcessCore::new("sh-test".into(), child, dir).unwrap())
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lab-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lines_arrive_while_running_and_land_in_file() {
        let dir = temp_dir("lines");
        let p = start("echo one; echo two; echo err >&2; sleep 10", &dir);
        let line = p
            .stdout()
            .wait_for(Duration::from_secs(5), |l| l.starts_with("tw"))
            .unwrap();
        assert_eq!(line, "two");
        assert_eq!(
            p.stderr()
                .next_line(Duration::from_secs(5))
                .unwrap()
                .as_deref(),
            Some("err")
        );
        assert!(p.is_running());
        let path = p.stdout().path().to_path_buf();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        let started = Instant::now();
        p.stop().unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(!p.is_running());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wait_for_json_skips_other_lines_and_parses_the_match() {
        let dir = temp_dir("json");
        let p = start(
            r#"echo 'starting'; echo '{"state":"BACKUP"}'; echo '{"state":"MASTER","vrid":51}'"#,
            &dir,
        );
        let value = p
            .stdout()
            .wait_for_json(Duration::from_secs(5), |v| v["state"] == "MASTER")
            .unwrap();
        assert_eq!(value["vrid"], 51);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wait_for_fails_with_tail_when_stream_ends() {
        let dir = temp_dir("ends");
        let p = start("echo only-line", &dir);
        let err = p
            .stdout()
            .wait_for(Duration::from_secs(5), |l| l == "never")
            .unwrap_err();
        let text = format!("{err}");
        assert!(
            text.contains("stream ended") && text.contains("only-line"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sigterm_ignoring_process_is_killed_after_grace() {
        let dir = temp_dir("grace");
        let p = start(
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
            &dir,
        );
        p.stdout()
            .wait_for(Duration::from_secs(5), |l| l == "ready")
            .unwrap();
        p.set_grace(Duration::from_millis(200));
        let status = p.stop().unwrap();
        assert!(!status.success());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
