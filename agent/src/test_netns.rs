//! Throwaway network namespaces for the netlink tests.
//!
//! Each test gets its own namespace (unique per process and call) with
//! interfaces created inside it, so tests run in parallel and never see, let
//! alone touch, the host's interfaces. Async code runs on a dedicated thread
//! that first joins the namespace: netlink sockets opened on that thread stay
//! bound to it.

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Removes the namespace (and the interfaces in it) on drop, also when the
/// test panics.
pub(crate) struct TestNetns {
    name: String,
}

impl TestNetns {
    pub(crate) fn new(prefix: &str) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{id}", std::process::id());
        run_checked(Command::new("ip").args(["netns", "add", &name]));
        let namespace = TestNetns { name };
        namespace.ip(&["link", "set", "dev", "lo", "up"]);
        namespace
    }

    /// A namespace with a veth pair `v0` (MAC 02:00:5e:10:00:01) and `v0p`,
    /// both up and running, and IPv6 duplicate address detection off so
    /// addresses are usable at once.
    pub(crate) fn with_veth(prefix: &str) -> Self {
        let namespace = TestNetns::new(prefix);
        namespace.sysctl("net.ipv6.conf.default.accept_dad=0");
        namespace.sysctl("net.ipv6.conf.all.accept_dad=0");
        namespace.ip(&[
            "link",
            "add",
            "v0",
            "address",
            "02:00:5e:10:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "v0p",
        ]);
        namespace.ip(&["link", "set", "dev", "v0", "up"]);
        namespace.ip(&["link", "set", "dev", "v0p", "up"]);
        namespace.wait_until_running("v0");
        namespace
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <namespace> <args>`, which must succeed.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        ip_in(&self.name, args)
    }

    pub(crate) fn sysctl(&self, setting: &str) {
        run_checked(
            Command::new("ip")
                .args(["netns", "exec", &self.name, "sysctl", "-qw"])
                .arg(setting),
        );
    }

    /// Waits (at most 5 s) for the kernel to mark `device` RUNNING; carrier
    /// changes reach the flags asynchronously (linkwatch).
    pub(crate) fn wait_until_running(&self, device: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let flags = self.ip(&["-o", "link", "show", "dev", device]);
            if flags.contains("LOWER_UP") && flags.contains(",UP") && !flags.contains("NO-CARRIER")
            {
                return;
            }
            assert!(Instant::now() < deadline, "{device} never came up: {flags}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `body` on a new thread inside the namespace, with its own
    /// current-thread tokio runtime; panics propagate to the caller.
    pub(crate) fn run<F, Fut, T>(&self, body: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let thread = std::thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                let namespace =
                    File::open(&path).unwrap_or_else(|error| panic!("open {path}: {error}"));
                // SAFETY: setns only reads the descriptor, which stays open
                // for the call; it changes this thread's namespace alone.
                let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns into {path}: {}",
                    std::io::Error::last_os_error()
                );
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|error| panic!("tokio runtime: {error}"));
                runtime.block_on(body())
            })
            .unwrap_or_else(|error| panic!("spawn namespace thread: {error}"));
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ip -n <namespace> <args>`, which must succeed; returns stdout.
pub(crate) fn ip_in(namespace: &str, args: &[&str]) -> String {
    run_checked(Command::new("ip").args(["-n", namespace]).args(args))
}

fn run_checked(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_isolated_and_removed_on_drop() {
        let name;
        {
            let namespace = TestNetns::with_veth("vrrpnl-ns");
            name = namespace.name().to_owned();
            let inside = namespace.run(|| async {
                std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default()
            });
            assert!(inside.contains("v0p:"), "{inside}");
            let outside = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
            assert!(
                !outside.contains("v0p:"),
                "the test thread must stay in its own namespace"
            );
        }
        let listed = run_checked(Command::new("ip").args(["netns", "list"]));
        assert!(
            !listed
                .lines()
                .any(|line| line.split_whitespace().next() == Some(name.as_str()))
        );
    }
}
