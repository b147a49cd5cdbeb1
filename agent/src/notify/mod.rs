//! Notifications on state transitions: notify scripts and SMTP alerts.
//!
//! Per instance (or sync group) one [`NotifyQueue`] runs the configured
//! `notify_*` and `notify` scripts strictly in transition order, and hands
//! SMTP alerts to a shared [`Mailer`]. Inputs are plain structs the daemon
//! fills from the parsed config.

pub mod action;
pub mod alert;
pub mod mail;
pub mod queue;

pub use action::{NotifyScript, NotifyState, NotifyTarget, Scope, Transition};
pub use alert::AlertGate;
pub use mail::{Mailer, RetryPolicy, SmtpConfig};
pub use queue::{MailHook, NotifyQueue, QueueLimits, ScriptTotals};
