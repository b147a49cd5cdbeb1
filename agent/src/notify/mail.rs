//! SMTP alerts on state transitions (`smtp_alert` + `notification_email`).
//!
//! Messages look like keepalived's: subject
//! `[<router_id>] VRRP Instance <name> - Entering MASTER state` (`VRRP Group`
//! for sync groups, `- Stopping` at shutdown), From `notification_email_from`,
//! To every `notification_email` recipient, and keepalived's one-line body.
//!
//! Sending never blocks the caller: [`Mailer::send`] puts the message in a
//! bounded queue served by one task. When the queue is full the *oldest*
//! message is dropped (with a warning): the newest one describes the current
//! state, which is what an operator reading mail after an outage needs. A
//! server that is down costs a bounded number of attempts with exponential
//! backoff, then the message is given up with an error log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use thiserror::Error;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::alert::Alert;

/// keepalived's default SMTP port.
pub const DEFAULT_SMTP_PORT: u16 = 25;
/// keepalived's default `smtp_connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default queue length before the oldest message is dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

/// Where and how to send, filled from `global_defs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub server: String,
    pub port: u16,
    pub connect_timeout: Duration,
    /// `smtp_helo_name`; `None` = the local host name, as keepalived.
    pub helo_name: Option<String>,
    /// `notification_email_from` (keepalived's default is
    /// `keepalived@<host name>`; the daemon fills that in).
    pub from: String,
    /// `notification_email`.
    pub recipients: Vec<String>,
}

impl SmtpConfig {
    pub fn new(
        server: impl Into<String>,
        from: impl Into<String>,
        recipients: Vec<String>,
    ) -> Self {
        Self {
            server: server.into(),
            port: DEFAULT_SMTP_PORT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            helo_name: None,
            from: from.into(),
            recipients,
        }
    }
}

/// How hard to try one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per message (at least 1).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (0-based): doubling
    /// from `initial_backoff`, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[derive(Debug, Error)]
pub enum MailError {
    #[error(
        "notification_email_from `{address}` is not a valid mail address: {reason} (expected e.g. keepalived@example.com)"
    )]
    BadFrom { address: String, reason: String },
    #[error(
        "notification_email recipient `{address}` is not a valid mail address: {reason} (expected e.g. ops@example.com)"
    )]
    BadRecipient { address: String, reason: String },
    #[error(
        "notification_email has no recipients: add at least one address or turn smtp_alert off"
    )]
    NoRecipients,
}

/// Totals reported when the mail task ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailStats {
    pub sent: u64,
    pub failed_attempts: u64,
    pub abandoned: u64,
    pub dropped: u64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Alert>>,
    wake: Notify,
    closed: AtomicBool,
    capacity: usize,
    dropped: AtomicU64,
    /// Live `Mailer` handles; the task finishes when the last one goes.
    handles: AtomicUsize,
}

/// Cheap to clone; all clones feed the same task. The task ends after
/// [`Mailer::close`] or when the last clone is dropped, once the queue is
/// empty.
#[derive(Debug)]
pub struct Mailer {
    shared: Arc<Shared>,
}

impl Clone for Mailer {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Mailer {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}

struct Envelope {
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    /// Validates the addresses and starts the sending task.
    pub fn spawn(
        config: SmtpConfig,
        retry: RetryPolicy,
        capacity: usize,
    ) -> Result<(Mailer, JoinHandle<MailStats>), MailError> {
        let envelope = envelope(&config)?;
        let helo = config.helo_name.clone().unwrap_or_else(local_host_name);
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.server.as_str())
                .port(config.port)
                .timeout(Some(config.connect_timeout))
                .hello_name(ClientId::Domain(helo))
                .build();
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            handles: AtomicUsize::new(1),
        });
        let worker = tokio::spawn(run_worker(
            Arc::clone(&shared),
            transport,
            envelope,
            config,
            retry,
        ));
        Ok((Mailer { shared }, worker))
    }

    /// Queues `alert`; never blocks.
    pub fn send(&self, alert: Alert) {
        if self.shared.closed.load(Ordering::Acquire) {
            tracing::warn!(subject = %alert.subject, "mailer closed; alert not sent");
            return;
        }
        let dropped = {
            let mut queue = match self.shared.queue.lock() {
                Ok(queue) => queue,
                Err(poisoned) => poisoned.into_inner(),
            };
            let dropped = if queue.len() >= self.shared.capacity {
                queue.pop_front()
            } else {
                None
            };
            queue.push_back(alert);
            dropped
        };
        if let Some(old) = dropped {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %old.subject, "mail queue full; dropped the oldest alert");
        }
        self.shared.wake.notify_one();
    }

    /// Lets the task send what is queued, then end.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

fn envelope(config: &SmtpConfig) -> Result<Envelope, MailError> {
    let from = config
        .from
        .parse::<Mailbox>()
        .map_err(|err| MailError::BadFrom {
            address: config.from.clone(),
            reason: err.to_string(),
        })?;
    if config.recipients.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let to = config
        .recipients
        .iter()
        .map(|address| {
            address
                .parse::<Mailbox>()
                .map_err(|err| MailError::BadRecipient {
                    address: address.clone(),
                    reason: err.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Envelope { from, to })
}

fn local_host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn build_message(envelope: &Envelope, alert: &Alert) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .subject(alert.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &envelope.to {
        builder = builder.to(to.clone());
    }
    builder.body(alert.body.clone())
}

async fn run_worker(
    shared: Arc<Shared>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    envelope: Envelope,
    config: SmtpConfig,
    retry: RetryPolicy,
) -> MailStats {
    let mut stats = MailStats::default();
    loop {
        let next = match shared.queue.lock() {
            Ok(mut queue) => queue.pop_front(),
            Err(poisoned) => poisoned.into_inner().pop_front(),
        };
        match next {
            Some(alert) => deliver(&transport, &envelope, &config, retry, &alert, &mut stats).await,
            None if shared.closed.load(Ordering::Acquire) => break,
            None => shared.wake.notified().await,
        }
    }
    stats.dropped = shared.dropped.load(Ordering::Relaxed);
    stats
}

async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    envelope: &Envelope,
    config: &SmtpConfig,
    retry: RetryPolicy,
    alert: &Alert,
    stats: &mut MailStats,
) {
    let message = match build_message(envelope, alert) {
        Ok(message) => message,
        Err(err) => {
            stats.abandoned += 1;
            tracing::error!(subject = %alert.subject, error = %err, "cannot build alert mail");
            return;
        }
    };
    // lettre's timeout covers each SMTP step; this bounds a whole attempt
    // against a server that trickles replies.
    let attempt_limit = config.connect_timeout.saturating_mul(4);
    let attempts = retry.attempts.max(1);
    for attempt in 0..attempts {
        let result = tokio::time::timeout(attempt_limit, transport.send(message.clone())).await;
        let error = match result {
            Ok(Ok(_)) => {
                stats.sent += 1;
                tracing::info!(subject = %alert.subject, server = %config.server, port = config.port, "SMTP alert sent");
                return;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} ms", attempt_limit.as_millis()),
        };
        stats.failed_attempts += 1;
        tracing::warn!(
            subject = %alert.subject,
            server = %config.server,
            port = config.port,
            attempt = attempt + 1,
            attempts,
            error = %error,
            "SMTP alert attempt failed"
        );
        if attempt + 1 < attempts {
            tokio::time::sleep(retry.backoff(attempt)).await;
        }
    }
    stats.abandoned += 1;
    tracing::error!(subject = %alert.subject, server = %config.server, port = config.port, attempts, "giving up on SMTP alert");
}

#[cfg(test)]
pub(crate) mod tests;
