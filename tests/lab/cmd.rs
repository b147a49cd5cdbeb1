//! Runs external commands (`ip`, `tshark`, ...) to completion with a time bound,
//! and turns failures into errors that quote the command line and what it printed.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Longest a lab helper command may run before it is killed; `ip` and friends
/// finish in milliseconds, so hitting this means something hung.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The command line as run (for error messages).
    pub command: String,
    /// Exit status of the command.
    pub status: ExitStatus,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
}

impl ExecOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Fails (quoting the command, status and output) unless it exited 0.
    pub fn check(self) -> Result<Self> {
        if self.success() {
            return Ok(self);
        }
        bail!(
            "`{}` failed ({}); stderr: {}; stdout: {}",
            self.command,
            self.status,
            quote_output(&self.stderr),
            quote_output(&self.stdout)
        )
    }
}

/// Shows the last part of a command's output, or `<empty>`.
fn quote_output(text: &str) -> String {
    const KEEP: usize = 2000;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "<empty>".to_owned();
    }
    if trimmed.len() <= KEEP {
        return format!("{trimmed:?}");
    }
    let mut start = trimmed.len() - KEEP;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    format!("...{:?}", &trimmed[start..])
}

/// Renders an argv the way a person would type it, for error messages.
pub fn describe(argv: &[&str]) -> String {
    argv.iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("{arg:?}")
            } else {
                (*arg).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` and returns its output whatever the exit status; fails only if
/// it cannot be started or exceeds `timeout` (it is then killed).
pub fn run_unchecked(argv: &[&str], timeout: Duration) -> Result<ExecOutput> {
    let command = describe(argv);
    let (program, args) = argv
        .split_first()
        .context("cannot run an empty command line; pass at least the program name")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{command}` (is `{program}` installed?)"))?;

    // Both pipes are drained on their own threads so a chatty command cannot
    // block on a full pipe while we wait for it to exit.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("cannot wait for `{command}`"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            // Best effort: the error below is what matters to the caller.
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{command}` did not finish within {timeout:?} and was killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(ExecOutput {
        command,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `argv`, failing with its stderr unless it exits 0 within [`DEFAULT_TIMEOUT`].
pub fn run(argv: &[&str]) -> Result<ExecOutput> {
    run_unchecked(argv, DEFAULT_TIMEOUT)?.check()
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        assert_eq!(describe(&["sh", "-c", "echo hi"]), "sh -c \"echo hi\"");
        assert_eq!(describe(&["ip", "addr"]), "ip addr");
    }

    #[test]
    fn failing_command_error_names_command_and_stderr() {
        let err = run(&["sh", "-c", "echo boom >&2; exit 3"]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert!(text.contains("3"), "{text}");
    }

    #[test]
    fn slow_command_is_killed_at_timeout() {
        let started = Instant::now();
        let err = run_unchecked(&["sleep", "5"], Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
    }

    #[test]
    fn missing_program_is_reported() {
        let err = run(&["definitely-not-a-program-xyz"]).unwrap_err();
        assert!(format!("{err:#}").contains("is `definitely-not-a-program-xyz` installed"));
    }
}
