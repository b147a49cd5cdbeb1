//! The text of SMTP alerts and keepalived's rules for when one is sent.
//!
//! Subject `[<router_id>] VRRP Instance <name> - Entering MASTER state`
//! (`VRRP Group` for sync groups, `- Stopping` at shutdown) and keepalived's
//! one-line body, e.g. `=> VRRP Instance is now owning VRRP VIPs <=`.

use super::action::{NotifyState, Scope};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: String,
    pub body: String,
}

/// keepalived's alert for `name` entering `state`.
pub fn vrrp_alert(router_id: &str, scope: Scope, name: &str, state: NotifyState) -> Alert {
    let kind = match scope {
        Scope::Instance => "Instance",
        Scope::Group => "Group",
    };
    let what = match state {
        NotifyState::Master => "Entering MASTER state",
        NotifyState::Backup => "Entering BACKUP state",
        NotifyState::Fault => "Entering FAULT state",
        NotifyState::Stop => "Stopping",
    };
    let body = match (scope, state) {
        (Scope::Instance, NotifyState::Master) => "=> VRRP Instance is now owning VRRP VIPs <=",
        (Scope::Instance, NotifyState::Backup | NotifyState::Fault) => {
            "=> VRRP Instance is no longer owning VRRP VIPs <="
        }
        (Scope::Instance, NotifyState::Stop) => "=> VRRP Instance stopping <=",
        (Scope::Group, NotifyState::Master) => {
            "=> All VRRP group instances are now in MASTER state <="
        }
        (Scope::Group, NotifyState::Backup) => {
            "=> All VRRP group instances are now in BACKUP state <="
        }
        (Scope::Group, NotifyState::Fault) => {
            "=> All VRRP group instances are now in FAULT state <="
        }
        (Scope::Group, NotifyState::Stop) => "=> All VRRP group instances are now stopping <=",
    };
    Alert {
        subject: format!("[{router_id}] VRRP {kind} {name} - {what}"),
        body: format!("{body}\n"),
    }
}

/// keepalived's rules for whether a transition gets a mail: `smtp_alert` on,
/// not a FAULT under `no_email_faults`, and not the same state as the last
/// mail sent for this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertGate {
    pub enabled: bool,
    pub no_email_faults: bool,
    last_mailed: Option<NotifyState>,
}

impl AlertGate {
    pub fn new(enabled: bool, no_email_faults: bool) -> Self {
        Self {
            enabled,
            no_email_faults,
            last_mailed: None,
        }
    }

    /// Decides for `state` and remembers it when admitted.
    pub fn admit(&mut self, state: NotifyState) -> bool {
        if !self.enabled
            || (self.no_email_faults && state == NotifyState::Fault)
            || self.last_mailed == Some(state)
        {
            return false;
        }
        self.last_mailed = Some(state);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_bodies_match_keepalived() {
        let alert = vrrp_alert(
            "KEEPALIVED_TEST",
            Scope::Instance,
            "master1",
            NotifyState::Master,
        );
        assert_eq!(
            alert.subject,
            "[KEEPALIVED_TEST] VRRP Instance master1 - Entering MASTER state"
        );
        assert_eq!(alert.body, "=> VRRP Instance is now owning VRRP VIPs <=\n");
        let alert = vrrp_alert("r", Scope::Instance, "VI_1", NotifyState::Fault);
        assert_eq!(
            alert.subject,
            "[r] VRRP Instance VI_1 - Entering FAULT state"
        );
        assert_eq!(
            alert.body,
            "=> VRRP Instance is no longer owning VRRP VIPs <=\n"
        );
        let alert = vrrp_alert("r", Scope::Instance, "VI_1", NotifyState::Stop);
        assert_eq!(alert.subject, "[r] VRRP Instance VI_1 - Stopping");
        let alert = vrrp_alert("r", Scope::Group, "G", NotifyState::Backup);
        assert_eq!(alert.subject, "[r] VRRP Group G - Entering BACKUP state");
        assert_eq!(
            alert.body,
            "=> All VRRP group instances are now in BACKUP state <=\n"
        );
    }

    #[test]
    fn gate_follows_keepalived_rules() {
        let mut gate = AlertGate::new(false, false);
        assert!(!gate.admit(NotifyState::Master));

        let mut gate = AlertGate::new(true, false);
        assert!(gate.admit(NotifyState::Backup));
        assert!(!gate.admit(NotifyState::Backup));
        assert!(gate.admit(NotifyState::Master));
        assert!(gate.admit(NotifyState::Fault));

        let mut gate = AlertGate::new(true, true);
        assert!(gate.admit(NotifyState::Master));
        assert!(!gate.admit(NotifyState::Fault));
        // The last mail was MASTER, so coming back from the fault sends none.
        assert!(!gate.admit(NotifyState::Master));
        assert!(gate.admit(NotifyState::Backup));
    }
}
