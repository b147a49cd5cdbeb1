//! `vrrp_track_process`: which processes match a tracker, how many run, and
//! whether that is a quorum, as keepalived's track_process.c counts them.
//!
//! Sans-IO: the caller (see [`super::proc_events`]) reads `/proc` and the
//! kernel's process events and feeds them here with the time; what comes
//! back is the trackers whose quorum changed. Timers (`fork_delay`,
//! `terminate_delay`) are deadlines the caller sleeps until.
//!
//! keepalived's rules, kept here:
//! - a process is matched by its name (`/proc/PID/comm`) or, with
//!   `full_command`, by the first word of its command line; parameters are
//!   compared with the rest of the command line, NUL-separated, exactly,
//!   as a prefix (`partial`) or with the last one a prefix (`initial`);
//! - zombies found by a scan do not count;
//! - the quorum is `quorum ..= quorum_max` matching processes;
//! - a change that crosses a quorum boundary takes effect at once, except
//!   that one caused by a fork waits `fork_delay` and one caused by an exit
//!   waits `terminate_delay`; a crossing back while such a wait runs cancels
//!   it (so a process that restarts within the delay never shows);
//! - a child forked by a counted process counts for the same trackers until
//!   it execs something else or changes its name.
//!
//! One deliberate difference: keepalived counts a process a second time when
//! it execs the same program again; here a process counts once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// keepalived's `param_match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMatch {
    None,
    Exact,
    Partial,
    Initial,
}

/// What one tracker looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub name: String,
    /// Compared with the process name, or with argv\[0\] under `full_command`.
    pub process: Vec<u8>,
    /// The parameters, each followed by a NUL, as `/proc/PID/cmdline` has
    /// them; `None` when none were written.
    pub params: Option<Vec<u8>>,
    pub param_match: ParamMatch,
    pub full_command: bool,
    pub quorum: u32,
    pub quorum_max: u32,
    pub fork_delay: Duration,
    pub terminate_delay: Duration,
}

impl ProcessSpec {
    /// A tracker of the process named `process`, quorum 1, no delays.
    pub fn new(name: impl Into<String>, process: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            process: process.into(),
            params: None,
            param_match: ParamMatch::None,
            full_command: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }

    /// Sets the parameters as written (each a word of the command line).
    pub fn with_params<S: AsRef<[u8]>>(mut self, params: &[S]) -> Self {
        if params.is_empty() {
            self.params = None;
        } else {
            let mut joined = Vec::new();
            for param in params {
                joined.extend_from_slice(param.as_ref());
                joined.push(0);
            }
            self.params = Some(joined);
        }
        self
    }

    /// Whether a process with this name and command line is one of ours.
    pub fn matches(&self, comm: &[u8], cmdline: &[u8]) -> bool {
        let (name, rest) = if self.full_command {
            match cmdline.iter().position(|&b| b == 0) {
                Some(end) => (&cmdline[..end], &cmdline[end + 1..]),
                None => (cmdline, &[][..]),
            }
        } else {
            (comm, &[][..])
        };
        name == self.process.as_slice()
            && (self.param_match == ParamMatch::None || self.params_match(rest))
    }

    fn params_match(&self, rest: &[u8]) -> bool {
        let wanted = self.params.as_deref().unwrap_or_default();
        match self.param_match {
            ParamMatch::None => true,
            ParamMatch::Exact => rest == wanted,
            _ if self.params.is_none() => true,
            ParamMatch::Partial => rest.starts_with(wanted),
            // The last parameter may continue: compare without its NUL.
            ParamMatch::Initial => rest.starts_with(&wanted[..wanted.len() - 1]),
        }
    }

    fn in_quorum(&self, count: u32) -> bool {
        (self.quorum..=self.quorum_max).contains(&count)
    }
}

/// A process as read from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: i32,
    /// `/proc/PID/comm` without its newline.
    pub comm: Vec<u8>,
    /// `/proc/PID/cmdline` (empty when no tracker needs it).
    pub cmdline: Vec<u8>,
}

/// A tracker's quorum changed (or, from [`ProcessTable::add`], its first
/// status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    pub name: String,
    pub up: bool,
    /// Matching processes now.
    pub count: u32,
}

#[derive(Debug, Clone)]
struct Tracker {
    spec: ProcessSpec,
    count: u32,
    up: bool,
    fork_timer: Option<Instant>,
    terminate_timer: Option<Instant>,
}

/// What moved a tracker's count: decides which delay applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Fork,
    Exit,
    /// An exec or a name change: applied at once.
    Change,
}

impl Tracker {
    /// Applies the quorum the count now gives.
    fn settle(&mut self, out: &mut Vec<QuorumChange>) {
        let up = self.spec.in_quorum(self.count);
        if up != self.up {
            self.up = up;
            out.push(QuorumChange {
                name: self.spec.name.clone(),
                up,
                count: self.count,
            });
        }
    }

    fn change(&mut self, increase: bool, cause: Cause, now: Instant, out: &mut Vec<QuorumChange>) {
        let before = self.spec.in_quorum(self.count);
        self.count = if increase {
            self.count.saturating_add(1)
        } else {
            self.count.saturating_sub(1)
        };
        if self.spec.in_quorum(self.count) == before {
            return;
        }
        match cause {
            Cause::Fork => {
                if self.terminate_timer.take().is_none() && !self.spec.fork_delay.is_zero() {
                    self.fork_timer = Some(now + self.spec.fork_delay);
                    return;
                }
            }
            Cause::Exit => {
                if self.fork_timer.take().is_none() && !self.spec.terminate_delay.is_zero() {
                    self.terminate_timer = Some(now + self.spec.terminate_delay);
                    return;
                }
            }
            Cause::Change if increase => self.terminate_timer = None,
            Cause::Change => self.fork_timer = None,
        }
        self.settle(out);
    }
}

/// Every tracker and the processes each counts.
#[derive(Debug, Default)]
pub struct ProcessTable {
    trackers: BTreeMap<String, Tracker>,
    /// The trackers counting each process.
    pids: HashMap<i32, BTreeSet<String>>,
}

impl ProcessTable {
    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// Whether some tracker matches command lines (so they must be read).
    pub fn needs_cmdline(&self) -> bool {
        self.trackers.values().any(|t| t.spec.full_command)
    }

    /// Starts a tracker (replacing one of the same name), counting the
    /// processes of a fresh scan; returns its first status.
    pub fn add(&mut self, spec: ProcessSpec, scan: &[ProcEntry]) -> QuorumChange {
        self.remove(&spec.name);
        let mut count = 0u32;
        for entry in scan.iter().filter(|e| spec.matches(&e.comm, &e.cmdline)) {
            if self
                .pids
                .entry(entry.pid)
                .or_default()
                .insert(spec.name.clone())
            {
                count = count.saturating_add(1);
            }
        }
        let up = spec.in_quorum(count);
        let name = spec.name.clone();
        self.trackers.insert(
            name.clone(),
            Tracker {
                spec,
                count,
                up,
                fork_timer: None,
                terminate_timer: None,
            },
        );
        QuorumChange { name, up, count }
    }

    pub fn remove(&mut self, name: &str) {
        if self.trackers.remove(name).is_none() {
            return;
        }
        self.pids.retain(|_, names| {
            names.remove(name);
            !names.is_empty()
        });
    }

    /// The status of a tracker: quorum and matching processes.
    #[cfg(test)]
    pub fn status(&self, name: &str) -> Option<(bool, u32)> {
        self.trackers.get(name).map(|t| (t.up, t.count))
    }

    /// A process forked: a child of a counted process counts too.
    pub fn fork(&mut self, parent: i32, child: i32, now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        let Some(names) = self.pids.get(&parent).cloned() else {
            return out;
        };
        let counted = self.pids.entry(child).or_default();
        let added: Vec<String> = names
            .into_iter()
            .filter(|name| counted.insert(name.clone()))
            .collect();
        for name in added {
            if let Some(tracker) = self.trackers.get_mut(&name) {
                tracker.change(true, Cause::Fork, now, &mut out);
            }
        }
        out
    }

    /// A process ran a new program (`entry` is what `/proc` says now;
    /// `None` when it is already gone, and its exit will follow).
    pub fn exec(&mut self, pid: i32, entry: Option<&ProcEntry>, now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        let Some(entry) = entry else {
            return out;
        };
        let names: Vec<String> = self.trackers.keys().cloned().collect();
        for name in names {
            let matches = self.trackers[&name]
                .spec
                .matches(&entry.comm, &entry.cmdline);
            self.recount(pid, &name, matches, now, &mut out);
        }
        out
    }

    /// A process changed its name (`prctl(PR_SET_NAME)`): only trackers of
    /// names are concerned, command lines do not change with it.
    pub fn comm(&mut self, pid: i32, comm: &[u8], now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        let names: Vec<String> = self
            .trackers
            .iter()
            .filter(|(_, t)| !t.spec.full_command)
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            let matches = self.trackers[&name].spec.matches(comm, &[]);
            self.recount(pid, &name, matches, now, &mut out);
        }
        out
    }

    fn recount(
        &mut self,
        pid: i32,
        name: &str,
        matches: bool,
        now: Instant,
        out: &mut Vec<QuorumChange>,
    ) {
        let counted = self
            .pids
            .get(&pid)
            .is_some_and(|names| names.contains(name));
        if counted == matches {
            return;
        }
        if matches {
            self.pids.entry(pid).or_default().insert(name.to_owned());
        } else if let Some(names) = self.pids.get_mut(&pid) {
            names.remove(name);
            if names.is_empty() {
                self.pids.remove(&pid);
            }
        }
        if let Some(tracker) = self.trackers.get_mut(name) {
            tracker.change(matches, Cause::Change, now, out);
        }
    }

    /// A process ended.
    pub fn exit(&mut self, pid: i32, now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        for name in self.pids.remove(&pid).unwrap_or_default() {
            if let Some(tracker) = self.trackers.get_mut(&name) {
                tracker.change(false, Cause::Exit, now, &mut out);
            }
        }
        out
    }

    /// Events were lost: count again from a fresh scan. A quorum that
    /// changed meanwhile takes the delay of its direction (`fork_delay`
    /// when gained, `terminate_delay` when lost), as keepalived does.
    pub fn rescan(&mut self, scan: &[ProcEntry], now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        self.pids.clear();
        for tracker in self.trackers.values_mut() {
            tracker.count = 0;
            tracker.fork_timer = None;
            tracker.terminate_timer = None;
            for entry in scan
                .iter()
                .filter(|e| tracker.spec.matches(&e.comm, &e.cmdline))
            {
                if self
                    .pids
                    .entry(entry.pid)
                    .or_default()
                    .insert(tracker.spec.name.clone())
                {
                    tracker.count = tracker.count.saturating_add(1);
                }
            }
            let up = tracker.spec.in_quorum(tracker.count);
            if up == tracker.up {
                continue;
            }
            let delay = if up {
                tracker.spec.fork_delay
            } else {
                tracker.spec.terminate_delay
            };
            if delay.is_zero() {
                tracker.settle(&mut out);
            } else if up {
                tracker.fork_timer = Some(now + delay);
            } else {
                tracker.terminate_timer = Some(now + delay);
            }
        }
        out
    }

    /// When the next delay ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.trackers
            .values()
            .flat_map(|t| [t.fork_timer, t.terminate_timer])
            .flatten()
            .min()
    }

    /// Applies the delays that ended by `now`.
    pub fn on_timers(&mut self, now: Instant) -> Vec<QuorumChange> {
        let mut out = Vec::new();
        for tracker in self.trackers.values_mut() {
            let due = |timer: &mut Option<Instant>| timer.take_if(|at| *at <= now).is_some();
            let fork = due(&mut tracker.fork_timer);
            let terminate = due(&mut tracker.terminate_timer);
            if fork || terminate {
                tracker.settle(&mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i32, comm: &str, cmdline: &[&str]) -> ProcEntry {
        let mut line = Vec::new();
        for word in cmdline {
            line.extend_from_slice(word.as_bytes());
            line.push(0);
        }
        ProcEntry {
            pid,
            comm: comm.as_bytes().to_vec(),
            cmdline: line,
        }
    }

    fn full(spec: ProcessSpec) -> ProcessSpec {
        ProcessSpec {
            full_command: true,
            ..spec
        }
    }

    fn ups(changes: &[QuorumChange]) -> Vec<(&str, bool)> {
        changes.iter().map(|c| (c.name.as_str(), c.up)).collect()
    }

    #[test]
    fn a_name_matches_the_process_name_exactly() {
        let spec = ProcessSpec::new("t", "nginx");
        assert!(spec.matches(b"nginx", b""));
        assert!(!spec.matches(b"nginx2", b""));
        assert!(!spec.matches(b"ngin", b""));
        // Not a pattern, not the command line.
        assert!(!spec.matches(b"sshd", b"nginx\0"));
    }

    #[test]
    fn full_command_matches_the_first_word_of_the_command_line() {
        let spec = full(ProcessSpec::new("t", "/usr/sbin/nginx"));
        assert!(spec.matches(b"nginx", b"/usr/sbin/nginx\0-g\0daemon off;\0"));
        assert!(!spec.matches(b"/usr/sbin/nginx", b"nginx\0"));
        // A kernel thread has no command line.
        assert!(!spec.matches(b"kworker", b""));
    }

    fn with(params: &[&str], how: ParamMatch) -> ProcessSpec {
        ProcessSpec {
            param_match: how,
            ..full(ProcessSpec::new("t", "sleep").with_params(params))
        }
    }

    #[test]
    fn exact_parameters_must_all_match_and_nothing_more() {
        let spec = with(&["10", "x"], ParamMatch::Exact);
        assert!(spec.matches(b"", b"sleep\x0010\0x\0"));
        assert!(!spec.matches(b"", b"sleep\x0010\0"));
        assert!(!spec.matches(b"", b"sleep\x0010\0x\0y\0"));
        assert!(!spec.matches(b"", b"sleep\x0010\0xy\0"));
        // `param_match` without parameters: no parameters at all.
        let bare = with(&[], ParamMatch::Exact);
        assert!(bare.matches(b"", b"sleep\0"));
        assert!(!bare.matches(b"", b"sleep\x0010\0"));
    }

    #[test]
    fn partial_parameters_are_the_first_ones() {
        let spec = with(&["10"], ParamMatch::Partial);
        assert!(spec.matches(b"", b"sleep\x0010\0"));
        assert!(spec.matches(b"", b"sleep\x0010\0x\0"));
        assert!(!spec.matches(b"", b"sleep\x00100\0"));
        assert!(!spec.matches(b"", b"sleep\0"));
        assert!(with(&[], ParamMatch::Partial).matches(b"", b"sleep\x005\0"));
    }

    #[test]
    fn initial_parameters_let_the_last_one_continue() {
        let spec = with(&["-c", "/etc/ng"], ParamMatch::Initial);
        assert!(spec.matches(b"", b"sleep\0-c\0/etc/nginx.conf\0"));
        assert!(spec.matches(b"", b"sleep\0-c\0/etc/ng\0more\0"));
        assert!(!spec.matches(b"", b"sleep\0-c\0/etc/n\0"));
        assert!(!spec.matches(b"", b"sleep\0-cx\0/etc/ng\0"));
    }

    #[test]
    fn the_first_status_counts_a_scan_against_the_quorum() {
        let mut table = ProcessTable::default();
        let scan = [
            entry(10, "nginx", &[]),
            entry(11, "nginx", &[]),
            entry(12, "sshd", &[]),
        ];
        let first = table.add(ProcessSpec::new("ng", "nginx"), &scan);
        assert_eq!((first.up, first.count), (true, 2));
        let three = ProcessSpec {
            quorum: 3,
            ..ProcessSpec::new("three", "nginx")
        };
        assert!(!table.add(three, &scan).up);
        let none = ProcessSpec {
            quorum: 0,
            quorum_max: 0,
            ..ProcessSpec::new("none", "sshd")
        };
        assert!(!table.add(none, &scan).up);
        let absent = ProcessSpec {
            quorum: 0,
            quorum_max: 0,
            ..ProcessSpec::new("absent", "haproxy")
        };
        assert!(table.add(absent, &scan).up);
    }

    #[test]
    fn exit_and_exec_move_the_count_across_the_quorum() {
        let now = Instant::now();
        let mut table = ProcessTable::default();
        table.add(ProcessSpec::new("ng", "nginx"), &[entry(10, "nginx", &[])]);
        assert_eq!(ups(&table.exit(99, now)), []);
        assert_eq!(ups(&table.exit(10, now)), [("ng", false)]);
        let again = entry(20, "nginx", &[]);
        assert_eq!(ups(&table.exec(20, Some(&again), now)), [("ng", true)]);
        // Exec of the same program again does not count twice.
        assert_eq!(ups(&table.exec(20, Some(&again), now)), []);
        assert_eq!(table.status("ng"), Some((true, 1)));
        // Exec of something else loses it.
        let other = entry(20, "bash", &[]);
        assert_eq!(ups(&table.exec(20, Some(&other), now)), [("ng", false)]);
        // A process gone before it was read changes nothing.
        assert_eq!(ups(&table.exec(21, None, now)), []);
    }

    #[test]
    fn quorum_max_fails_on_too_many() {
        let now = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            quorum: 1,
            quorum_max: 2,
            ..ProcessSpec::new("w", "worker")
        };
        assert!(table.add(spec, &[entry(1, "worker", &[])]).up);
        let w = |pid| entry(pid, "worker", &[]);
        assert_eq!(ups(&table.exec(2, Some(&w(2)), now)), []);
        assert_eq!(ups(&table.exec(3, Some(&w(3)), now)), [("w", false)]);
        assert_eq!(ups(&table.exit(3, now)), [("w", true)]);
        assert_eq!(ups(&table.exit(2, now)), []);
        assert_eq!(ups(&table.exit(1, now)), [("w", false)]);
    }

    #[test]
    fn a_forked_child_counts_until_it_execs_something_else() {
        let now = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            quorum: 2,
            ..ProcessSpec::new("ng", "nginx")
        };
        assert!(!table.add(spec, &[entry(10, "nginx", &[])]).up);
        // Forks of processes nobody counts are ignored.
        assert_eq!(ups(&table.fork(5, 6, now)), []);
        assert_eq!(ups(&table.fork(10, 11, now)), [("ng", true)]);
        assert_eq!(
            ups(&table.exec(11, Some(&entry(11, "sh", &[])), now)),
            [("ng", false)]
        );
    }

    #[test]
    fn terminate_delay_hides_a_restart_within_it() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            terminate_delay: Duration::from_secs(2),
            ..ProcessSpec::new("ng", "nginx")
        };
        table.add(spec, &[entry(10, "nginx", &[])]);
        assert_eq!(ups(&table.exit(10, t0)), []);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(2)));
        // The restarted process is back before the delay ends.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(ups(&table.exec(20, Some(&entry(20, "nginx", &[])), t1)), []);
        assert_eq!(table.next_deadline(), None);
        assert_eq!(table.status("ng"), Some((true, 1)));
        // Gone for longer than the delay: down when it ends, not before.
        assert_eq!(ups(&table.exit(20, t1)), []);
        assert_eq!(ups(&table.on_timers(t1 + Duration::from_millis(1999))), []);
        assert_eq!(
            ups(&table.on_timers(t1 + Duration::from_secs(2))),
            [("ng", false)]
        );
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn fork_delay_waits_before_a_fork_gains_the_quorum() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            quorum: 2,
            fork_delay: Duration::from_millis(500),
            ..ProcessSpec::new("ng", "nginx")
        };
        table.add(spec, &[entry(10, "nginx", &[])]);
        assert_eq!(ups(&table.fork(10, 11, t0)), []);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_millis(500)));
        // The child exits within the delay: the fork never counted.
        assert_eq!(ups(&table.exit(11, t0)), []);
        assert_eq!(table.next_deadline(), None);
        assert_eq!(ups(&table.fork(10, 12, t0)), []);
        assert_eq!(
            ups(&table.on_timers(t0 + Duration::from_millis(500))),
            [("ng", true)]
        );
    }

    #[test]
    fn an_exec_applies_at_once_whatever_the_delays() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            fork_delay: Duration::from_secs(5),
            terminate_delay: Duration::from_secs(5),
            ..ProcessSpec::new("ng", "nginx")
        };
        assert!(!table.add(spec, &[]).up);
        assert_eq!(
            ups(&table.exec(3, Some(&entry(3, "nginx", &[])), t0)),
            [("ng", true)]
        );
        assert_eq!(
            ups(&table.exec(3, Some(&entry(3, "bash", &[])), t0)),
            [("ng", false)]
        );
    }

    #[test]
    fn a_name_change_concerns_name_trackers_only() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        table.add(ProcessSpec::new("byname", "worker"), &[]);
        let by_line = full(ProcessSpec::new("byline", "/bin/app"));
        assert!(table.add(by_line, &[entry(7, "app", &["/bin/app"])]).up);
        assert_eq!(ups(&table.comm(7, b"worker", t0)), [("byname", true)]);
        assert_eq!(ups(&table.comm(7, b"idle", t0)), [("byname", false)]);
        assert_eq!(table.status("byline"), Some((true, 1)));
    }

    #[test]
    fn a_rescan_after_lost_events_applies_the_direction_s_delay() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        let spec = ProcessSpec {
            terminate_delay: Duration::from_secs(1),
            ..ProcessSpec::new("ng", "nginx")
        };
        table.add(spec, &[entry(10, "nginx", &[])]);
        table.add(ProcessSpec::new("sh", "sh"), &[]);
        let changes = table.rescan(&[entry(30, "sh", &[])], t0);
        assert_eq!(ups(&changes), [("sh", true)]);
        assert_eq!(
            ups(&table.on_timers(t0 + Duration::from_secs(1))),
            [("ng", false)]
        );
        // The rescan rebuilt who is counted: pid 10 is nobody now.
        assert_eq!(ups(&table.exit(10, t0)), []);
        assert_eq!(ups(&table.exit(30, t0)), [("sh", false)]);
    }

    #[test]
    fn removing_a_tracker_forgets_its_processes() {
        let t0 = Instant::now();
        let mut table = ProcessTable::default();
        table.add(ProcessSpec::new("a", "nginx"), &[entry(1, "nginx", &[])]);
        table.add(ProcessSpec::new("b", "nginx"), &[entry(1, "nginx", &[])]);
        table.remove("a");
        assert_eq!(table.status("a"), None);
        assert_eq!(ups(&table.exit(1, t0)), [("b", false)]);
        table.remove("b");
        assert!(table.is_empty());
        assert!(table.pids.is_empty());
    }

    #[test]
    fn cmdline_is_needed_only_for_full_command_trackers() {
        let mut table = ProcessTable::default();
        table.add(ProcessSpec::new("a", "nginx"), &[]);
        assert!(!table.needs_cmdline());
        table.add(full(ProcessSpec::new("b", "nginx")), &[]);
        assert!(table.needs_cmdline());
    }
}
