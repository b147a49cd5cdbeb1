//! Runs Rust code inside a lab namespace: a dedicated thread joins the
//! namespace with `setns(CLONE_NEWNET)`, so sockets it creates live there for
//! their whole life, while the rest of the test process stays where it was.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};

/// The bind-mount `ip netns add` creates for a namespace.
pub fn netns_path(netns: &str) -> String {
    format!("/run/netns/{netns}")
}

/// Moves the calling thread into network namespace `netns`.
fn enter(netns: &str) -> Result<()> {
    let path = netns_path(netns);
    let file = File::open(&path)
        .with_context(|| format!("cannot open {path}: namespace {netns:?} does not exist"))?;
    // SAFETY: `file` is an open namespace fd for the duration of the call;
    // CLONE_NEWNET only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setns(CLONE_NEWNET) into {path} failed (needs root)"));
    }
    Ok(())
}

/// Runs `f` on a fresh thread inside `netns` and returns its result; a panic
/// in `f` is re-raised in the caller so test assertions work inside it.
pub fn run_in<T, F>(netns: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    thread::scope(|scope| {
        let worker = scope.spawn(|| -> Result<T> {
            enter(netns)?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Starts `f` on a named background thread inside `netns`; returns once the
/// thread has entered the namespace (or failed to).
pub fn spawn_in<T, F>(netns: &str, f: F) -> Result<thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (entered_tx, entered_rx) = mpsc::sync_channel::<Result<()>>(1);
    let target = netns.to_owned();
    let handle = thread::Builder::new()
        .name(format!("in-{netns}"))
        .spawn(move || {
            let entered = enter(&target);
            let ok = entered.is_ok();
            let _ = entered_tx.send(entered);
            if !ok {
                // The caller gets the error from the channel; this thread's
                // result is never observed because no handle is returned.
                std::panic::resume_unwind(Box::new("setns failed"));
            }
            f()
        })
        .with_context(|| format!("cannot start a thread for namespace {netns:?}"))?;
    entered_rx
        .recv()
        .map_err(|_| anyhow!("thread for namespace {netns:?} died before entering it"))??;
    Ok(handle)
}
