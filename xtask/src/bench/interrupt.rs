//! Ctrl-C handling: the first SIGINT/SIGTERM only raises a flag, so the
//! running scenario returns an error, its lab guard drops and every
//! namespace and process goes away; a second one ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: restoring the default action and re-raising are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic (and re-raises).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Fails once Ctrl-C was pressed.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted (Ctrl-C); cleaning up the lab");
    }
    Ok(())
}

/// Sleeps `duration` in short steps, failing early on Ctrl-C.
pub fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Polls `done` every `step` until it returns true (Ok), `timeout` passes
/// or Ctrl-C is pressed (Err with `what`).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    step: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        check()?;
        if done()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            bail!("{what}: not reached within {timeout:?}");
        }
        thread::sleep(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_times_out_with_the_reason() {
        let err = wait_until(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(false),
        )
        .unwrap_err();
        assert!(format!("{err}").contains("never: not reached"));
        let mut calls = 0;
        wait_until("third call", Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            Ok(calls == 3)
        })
        .unwrap();
        assert_eq!(calls, 3);
    }
}
