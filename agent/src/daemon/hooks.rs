//! Maps the configuration's scripts, notify hooks and mail settings onto the
//! tracking and notify machinery. Commands were split when the file was
//! read; users are resolved here, once, so a mistake is a startup error and
//! not a silent skip.

use thiserror::Error;

use crate::{
    config::model::{GlobalDefs, Notify, RunAs as ConfiguredUser, VrrpScript},
    notify::{self, Mailer, NotifyScript, NotifyTarget, RetryPolicy, Scope, SmtpConfig},
    tracking::{RunAs, ScriptSpec, UserError, UserSpec, resolve_run_as},
};

use super::plan::NotifyPlan;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("{owner}: {source}")]
    User {
        owner: String,
        #[source]
        source: UserError,
    },
}

fn user_spec(user: &ConfiguredUser) -> UserSpec {
    UserSpec::new(user.user.clone(), user.group.clone())
}

fn run_as(
    owner: &str,
    own: Option<&ConfiguredUser>,
    global: &GlobalDefs,
) -> Result<RunAs, HookError> {
    let own = own.map(user_spec);
    let global = global.script_user.as_ref().map(user_spec);
    resolve_run_as(own.as_ref(), global.as_ref()).map_err(|source| HookError::User {
        owner: owner.to_owned(),
        source,
    })
}

pub fn script_spec(script: &VrrpScript, global: &GlobalDefs) -> Result<ScriptSpec, HookError> {
    let owner = format!("vrrp_script {}", script.name);
    let mut spec = ScriptSpec::new(
        script.name.clone(),
        script.script.run.clone(),
        run_as(&owner, script.user.as_ref(), global)?,
    );
    spec.interval = script.interval;
    spec.timeout = Some(script.timeout);
    spec.weight = script.weight;
    spec.reverse = script.weight_reverse;
    spec.rise = script.rise;
    spec.fall = script.fall;
    spec.init_fail = script.init_fail;
    Ok(spec)
}

pub fn notify_target(
    scope: Scope,
    name: &str,
    hooks: &NotifyPlan,
    global: &GlobalDefs,
) -> Result<NotifyTarget, HookError> {
    let owner = format!("{} {name}", scope.keyword().to_lowercase());
    let script = |notify: &Option<Notify>| -> Result<Option<NotifyScript>, HookError> {
        notify
            .as_ref()
            .map(|notify| {
                Ok(NotifyScript {
                    command: notify.command.run.clone(),
                    run_as: run_as(&owner, notify.run_as.as_ref(), global)?,
                })
            })
            .transpose()
    };
    let mut target = NotifyTarget::new(scope, name);
    target.master = script(&hooks.master)?;
    target.backup = script(&hooks.backup)?;
    target.fault = script(&hooks.fault)?;
    target.stop = script(&hooks.stop)?;
    target.generic = script(&hooks.generic)?;
    target.master_rx_lower_pri = script(&hooks.master_rx_lower_pri)?;
    Ok(target)
}

/// The mailer and its sending task, when `notification_email` and
/// `smtp_server` are configured.
pub fn mailer(
    global: &GlobalDefs,
    hostname: &str,
) -> Option<(Mailer, tokio::task::JoinHandle<notify::mail::MailStats>)> {
    let server = global.smtp_server.as_ref()?;
    if global.notification_email.is_empty() {
        return None;
    }
    let from = global
        .notification_email_from
        .clone()
        .unwrap_or_else(|| format!("keepalived@{hostname}"));
    let mut config = SmtpConfig::new(server.host.clone(), from, global.notification_email.clone());
    config.port = server.port;
    config.connect_timeout = global.smtp_connect_timeout;
    match Mailer::spawn(
        config,
        RetryPolicy::default(),
        notify::mail::DEFAULT_QUEUE_CAPACITY,
    ) {
        Ok((mailer, worker)) => Some((mailer, worker)),
        Err(error) => {
            tracing::warn!(%error, "mail alerts disabled: the SMTP settings are not usable");
            None
        }
    }
}
