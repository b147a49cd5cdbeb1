//! systemd's notification protocol (`Type=notify`): readiness, reloads,
//! a status line and the watchdog, sent with the `sd-notify` crate.
//!
//! Nothing is sent when `NOTIFY_SOCKET` is unset (the daemon was not started
//! by systemd, or by a test that does not listen). A failed send is logged
//! and otherwise ignored: systemd going away must not stop the elections.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::datapath::kernel_now_ns;

/// Sends the daemon's lifecycle to the service manager.
#[derive(Debug)]
pub struct Notifier {
    /// `WATCHDOG_USEC` as systemd set it, read once at startup.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// `watchdog` is what `sd_notify::watchdog_enabled` returned at startup
    /// (read in `main` before any thread exists, so the variables can be
    /// removed from the environment scripts inherit).
    pub fn new(watchdog: Option<Duration>) -> Self {
        Self { watchdog }
    }

    /// How often the election loop must send `WATCHDOG=1`: half the
    /// interval systemd waits, as sd_watchdog_enabled(3) recommends, so one
    /// late turn of the loop does not get the daemon killed.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
            .filter(|interval| !interval.is_zero())
            .map(|interval| interval / 2)
    }

    /// Datapath attached and every instance started.
    pub fn ready(&self, status: &str) {
        self.send("READY", &ready_message(status));
    }

    /// A reload begins: systemd shows the unit as reloading until READY=1
    /// (and from 253 on expects MONOTONIC_USEC alongside RELOADING=1).
    pub fn reloading(&self) {
        // CLOCK_MONOTONIC, the clock systemd compares MONOTONIC_USEC with.
        let usec = i128::from(kernel_now_ns() / 1_000);
        self.send("RELOADING", &reloading_message(usec));
    }

    /// The instance states changed.
    pub fn status(&self, status: &str) {
        self.send("STATUS", &[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        if let Err(error) = sd_notify::notify(&[NotifyState::Watchdog]) {
            debug!(%error, "sending WATCHDOG=1 to the service manager failed");
        }
    }

    pub fn stopping(&self) {
        self.send("STOPPING", &[NotifyState::Stopping]);
    }

    fn send(&self, what: &'static str, message: &[NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(message) {
            warn!(%error, notification = what, "notifying the service manager failed");
        }
    }
}

/// READY=1 with the first status line.
pub fn ready_message(status: &str) -> [NotifyState<'_>; 2] {
    [NotifyState::Ready, NotifyState::Status(status)]
}

/// RELOADING=1 stamped with the CLOCK_MONOTONIC time it was sent.
pub fn reloading_message(monotonic_usec: i128) -> [NotifyState<'static>; 3] {
    [
        NotifyState::Reloading,
        NotifyState::MonotonicUsec(monotonic_usec),
        NotifyState::Status("reloading the configuration"),
    ]
}

/// "2 MASTER, 1 BACKUP": how many instances are in each state, in a fixed
/// order so the line only changes when a count does.
pub fn state_summary<'a>(states: impl IntoIterator<Item = &'a str>) -> String {
    const ORDER: [&str; 4] = ["MASTER", "BACKUP", "FAULT", "INIT"];
    let mut counts = [0usize; ORDER.len()];
    let mut other = 0usize;
    for state in states {
        match ORDER.iter().position(|known| *known == state) {
            Some(index) => counts[index] += 1,
            None => other += 1,
        }
    }
    let mut parts: Vec<String> = ORDER
        .iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    if other > 0 {
        parts.push(format!("{other} other"));
    }
    if parts.is_empty() {
        "no instances".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The datagram as the crate writes it: one `KEY=value` per line.
    fn datagram(message: &[NotifyState<'_>]) -> String {
        message.iter().map(|state| format!("{state}\n")).collect()
    }

    #[test]
    fn ready_carries_the_status_line() {
        assert_eq!(
            datagram(&ready_message("1 MASTER, 2 BACKUP")),
            "READY=1\nSTATUS=1 MASTER, 2 BACKUP\n"
        );
    }

    #[test]
    fn reloading_is_stamped_with_the_monotonic_clock() {
        assert_eq!(
            datagram(&reloading_message(123_456_789)),
            "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading the configuration\n"
        );
    }

    #[test]
    fn summary_counts_states_in_a_fixed_order() {
        assert_eq!(
            state_summary(["BACKUP", "MASTER", "BACKUP", "MASTER", "MASTER", "FAULT"]),
            "3 MASTER, 2 BACKUP, 1 FAULT"
        );
        assert_eq!(state_summary(["INIT"]), "1 INIT");
        assert_eq!(state_summary([]), "no instances");
    }

    #[test]
    fn watchdog_pings_at_half_the_interval() {
        let notifier = Notifier::new(Some(Duration::from_secs(10)));
        assert_eq!(notifier.watchdog_period(), Some(Duration::from_secs(5)));
        assert_eq!(Notifier::new(None).watchdog_period(), None);
        assert_eq!(Notifier::new(Some(Duration::ZERO)).watchdog_period(), None);
    }
}
