//! Which commands a state transition runs, with which arguments.
//!
//! keepalived, per transition: first the state's own script
//! (`notify_master`/`notify_backup`/`notify_fault`/`notify_stop`) exactly as
//! configured, then the generic `notify` script with four arguments appended:
//! `INSTANCE|GROUP <name> <MASTER|BACKUP|FAULT|STOP> <priority>` (a group's
//! priority is always 0).

use std::ffi::OsString;
use std::fmt;

use crate::tracking::{CommandLine, RunAs};

/// The state an instance or group enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    /// The word keepalived passes to scripts (always upper case).
    pub fn keyword(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Whether notifications are about a `vrrp_instance` or a `vrrp_sync_group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Instance,
    Group,
}

impl Scope {
    pub fn keyword(self) -> &'static str {
        match self {
            Scope::Instance => "INSTANCE",
            Scope::Group => "GROUP",
        }
    }
}

/// A configured notify command and who runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyScript {
    pub command: CommandLine,
    pub run_as: RunAs,
}

/// The notify settings of one instance or group, filled from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub scope: Scope,
    pub name: String,
    pub master: Option<NotifyScript>,
    pub backup: Option<NotifyScript>,
    pub fault: Option<NotifyScript>,
    pub stop: Option<NotifyScript>,
    /// The generic `notify` script.
    pub generic: Option<NotifyScript>,
    /// `notify_master_rx_lower_pri`: run as configured, no arguments added.
    pub master_rx_lower_pri: Option<NotifyScript>,
}

impl NotifyTarget {
    pub fn new(scope: Scope, name: impl Into<String>) -> Self {
        Self {
            scope,
            name: name.into(),
            master: None,
            backup: None,
            fault: None,
            stop: None,
            generic: None,
            master_rx_lower_pri: None,
        }
    }

    fn for_state(&self, state: NotifyState) -> Option<&NotifyScript> {
        match state {
            NotifyState::Master => self.master.as_ref(),
            NotifyState::Backup => self.backup.as_ref(),
            NotifyState::Fault => self.fault.as_ref(),
            NotifyState::Stop => self.stop.as_ref(),
        }
    }
}

/// One state change to announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub state: NotifyState,
    /// The effective priority at the time of the change.
    pub priority: u8,
}

/// One command to run for a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    /// The config keyword it came from, for logs.
    pub keyword: &'static str,
    pub argv: Vec<OsString>,
    pub run_as: RunAs,
}

/// The trailing arguments of the generic `notify` script.
pub fn generic_arguments(scope: Scope, name: &str, transition: Transition) -> [String; 4] {
    let priority = match scope {
        Scope::Instance => transition.priority,
        Scope::Group => 0,
    };
    [
        scope.keyword().to_owned(),
        name.to_owned(),
        transition.state.keyword().to_owned(),
        priority.to_string(),
    ]
}

/// The commands for `transition`, in the order keepalived runs them.
pub fn plan(target: &NotifyTarget, transition: Transition) -> Vec<PlannedRun> {
    let mut runs = Vec::with_capacity(2);
    if let Some(script) = target.for_state(transition.state) {
        runs.push(PlannedRun {
            keyword: state_keyword(transition.state),
            argv: script.command.argv_with(&[]),
            run_as: script.run_as.clone(),
        });
    }
    if let Some(script) = &target.generic {
        let extra = generic_arguments(target.scope, &target.name, transition);
        runs.push(PlannedRun {
            keyword: "notify",
            argv: script.command.argv_with(&extra),
            run_as: script.run_as.clone(),
        });
    }
    runs
}

/// The command for a lower-priority advert heard as master: keepalived runs
/// the `notify_master_rx_lower_pri` script alone, exactly as configured (no
/// generic `notify`, no mail).
pub fn plan_master_rx_lower_pri(target: &NotifyTarget) -> Option<PlannedRun> {
    target
        .master_rx_lower_pri
        .as_ref()
        .map(|script| PlannedRun {
            keyword: "notify_master_rx_lower_pri",
            argv: script.command.argv_with(&[]),
            run_as: script.run_as.clone(),
        })
}

fn state_keyword(state: NotifyState) -> &'static str {
    match state {
        NotifyState::Master => "notify_master",
        NotifyState::Backup => "notify_backup",
        NotifyState::Fault => "notify_fault",
        NotifyState::Stop => "notify_stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(line: &str) -> Option<NotifyScript> {
        Some(NotifyScript {
            command: CommandLine::parse(line).unwrap(),
            run_as: RunAs::Inherit,
        })
    }

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn state_script_then_generic_with_trailing_arguments() {
        let mut target = NotifyTarget::new(Scope::Instance, "master1");
        target.master = script("/etc/keepalived/notification.sh master");
        target.generic = script("/etc/keepalived/all.sh 'first arg'");
        let runs = plan(
            &target,
            Transition {
                state: NotifyState::Master,
                priority: 102,
            },
        );
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].keyword, "notify_master");
        assert_eq!(
            strings(&runs[0].argv),
            ["/etc/keepalived/notification.sh", "master"]
        );
        assert_eq!(runs[1].keyword, "notify");
        assert_eq!(
            strings(&runs[1].argv),
            [
                "/etc/keepalived/all.sh",
                "first arg",
                "INSTANCE",
                "master1",
                "MASTER",
                "102"
            ]
        );
    }

    #[test]
    fn only_the_matching_state_script_runs() {
        let mut target = NotifyTarget::new(Scope::Instance, "vi");
        target.master = script("/m");
        target.backup = script("/b");
        target.fault = script("/f");
        target.stop = script("/s");
        for (state, program) in [
            (NotifyState::Master, "/m"),
            (NotifyState::Backup, "/b"),
            (NotifyState::Fault, "/f"),
            (NotifyState::Stop, "/s"),
        ] {
            let runs = plan(&target, Transition { state, priority: 1 });
            assert_eq!(runs.len(), 1);
            assert_eq!(strings(&runs[0].argv), [program]);
        }
        let none = NotifyTarget::new(Scope::Instance, "vi");
        assert!(
            plan(
                &none,
                Transition {
                    state: NotifyState::Fault,
                    priority: 1
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn groups_report_priority_zero() {
        let args = generic_arguments(
            Scope::Group,
            "G1",
            Transition {
                state: NotifyState::Fault,
                priority: 200,
            },
        );
        assert_eq!(args, ["GROUP", "G1", "FAULT", "0"]);
        let args = generic_arguments(
            Scope::Instance,
            "VI_1",
            Transition {
                state: NotifyState::Stop,
                priority: 255,
            },
        );
        assert_eq!(args, ["INSTANCE", "VI_1", "STOP", "255"]);
    }
}
