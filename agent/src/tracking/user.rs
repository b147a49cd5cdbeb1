//! Which user a script runs as, resolved like keepalived.
//!
//! Order: the script's own `user USERNAME [GROUPNAME]` (or the
//! `username [groupname]` after a `notify*` command), else the global
//! `script_user`, else `keepalived_script` if that account exists, else the
//! daemon's own uid/gid (root in production). The group defaults to the
//! user's primary group. Unlike keepalived, which logs and drops a script
//! whose user is missing, a named user or group that does not exist is an
//! error the daemon reports at startup/reload so the operator sees it.

use nix::unistd::{Gid, Group, Uid, User};
use thiserror::Error;

/// keepalived's default script account, used when it exists.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// `USERNAME [GROUPNAME]` as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

impl UserSpec {
    pub fn new(user: impl Into<String>, group: Option<String>) -> Self {
        Self {
            user: user.into(),
            group,
        }
    }
}

/// The identity a child process gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunAs {
    /// Keep the daemon's own uid/gid.
    #[default]
    Inherit,
    /// Switch to this uid/gid in the child before exec (supplementary groups
    /// are cleared, as keepalived does unless told otherwise).
    Account { name: String, uid: u32, gid: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserError {
    #[error(
        "script user `{user}` does not exist: create the account or name an existing one in `user`/`script_user`"
    )]
    NoSuchUser { user: String },
    #[error(
        "script group `{group}` (for user `{user}`) does not exist: create the group or name an existing one"
    )]
    NoSuchGroup { user: String, group: String },
    #[error("looking up script user `{name}` failed: {reason}")]
    Lookup { name: String, reason: String },
}

/// Resolves the identity for one script.
///
/// `own` is the script's own user setting, `global` the `script_user` from
/// `global_defs`.
pub fn resolve_run_as(
    own: Option<&UserSpec>,
    global: Option<&UserSpec>,
) -> Result<RunAs, UserError> {
    if let Some(spec) = own.or(global) {
        return account(spec);
    }
    match User::from_name(DEFAULT_SCRIPT_USER) {
        Ok(Some(user)) => Ok(RunAs::Account {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }),
        Ok(None) => Ok(RunAs::Inherit),
        Err(err) => Err(UserError::Lookup {
            name: DEFAULT_SCRIPT_USER.to_owned(),
            reason: err.to_string(),
        }),
    }
}

fn account(spec: &UserSpec) -> Result<RunAs, UserError> {
    let user = User::from_name(&spec.user)
        .map_err(|err| UserError::Lookup {
            name: spec.user.clone(),
            reason: err.to_string(),
        })?
        .ok_or_else(|| UserError::NoSuchUser {
            user: spec.user.clone(),
        })?;
    let gid = match &spec.group {
        None => user.gid,
        Some(group) => {
            Group::from_name(group)
                .map_err(|err| UserError::Lookup {
                    name: group.clone(),
                    reason: err.to_string(),
                })?
                .ok_or_else(|| UserError::NoSuchGroup {
                    user: spec.user.clone(),
                    group: group.clone(),
                })?
                .gid
        }
    };
    Ok(RunAs::Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
    })
}

impl RunAs {
    /// The uid/gid to switch to, or `None` when the child keeps ours (also when
    /// the account *is* ours, so an unprivileged daemon can still run scripts).
    pub fn switch_to(&self) -> Option<(u32, u32)> {
        match self {
            RunAs::Inherit => None,
            RunAs::Account { uid, gid, .. } => {
                let same = Uid::effective().as_raw() == *uid && Gid::effective().as_raw() == *gid;
                (!same).then_some((*uid, *gid))
            }
        }
    }

    pub fn name(&self) -> &str {
        match self {
            RunAs::Inherit => "(daemon user)",
            RunAs::Account { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_user_wins_over_global() {
        let own = UserSpec::new("root", None);
        let global = UserSpec::new("nobody", None);
        let run_as = resolve_run_as(Some(&own), Some(&global)).unwrap();
        assert!(matches!(run_as, RunAs::Account { uid: 0, gid: 0, .. }));
    }

    #[test]
    fn global_used_when_script_has_none() {
        let global = UserSpec::new("nobody", None);
        let run_as = resolve_run_as(None, Some(&global)).unwrap();
        let nobody = User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            run_as,
            RunAs::Account {
                name: "nobody".into(),
                uid: nobody.uid.as_raw(),
                gid: nobody.gid.as_raw()
            }
        );
    }

    #[test]
    fn group_overrides_primary_group() {
        let spec = UserSpec::new("root", Some("nogroup".into()));
        let nogroup = Group::from_name("nogroup").unwrap().unwrap();
        let run_as = resolve_run_as(Some(&spec), None).unwrap();
        assert!(
            matches!(run_as, RunAs::Account { uid: 0, gid, .. } if gid == nogroup.gid.as_raw())
        );
    }

    #[test]
    fn default_is_keepalived_script_or_inherit() {
        let run_as = resolve_run_as(None, None).unwrap();
        match User::from_name(DEFAULT_SCRIPT_USER).unwrap() {
            Some(user) => {
                assert!(matches!(run_as, RunAs::Account { uid, .. } if uid == user.uid.as_raw()))
            }
            None => assert_eq!(run_as, RunAs::Inherit),
        }
    }

    #[test]
    fn missing_user_or_group_is_a_clear_error() {
        let spec = UserSpec::new("no-such-user-vrrp-agent", None);
        let err = resolve_run_as(Some(&spec), None).unwrap_err();
        assert!(matches!(err, UserError::NoSuchUser { .. }));
        assert!(err.to_string().contains("no-such-user-vrrp-agent"));

        let spec = UserSpec::new("root", Some("no-such-group-vrrp-agent".into()));
        let err = resolve_run_as(Some(&spec), None).unwrap_err();
        assert!(matches!(err, UserError::NoSuchGroup { .. }));
    }

    #[test]
    fn own_identity_needs_no_switch() {
        let me = RunAs::Account {
            name: "me".into(),
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
        };
        assert_eq!(me.switch_to(), None);
        assert_eq!(RunAs::Inherit.switch_to(), None);
    }
}
