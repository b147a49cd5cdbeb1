//! The VRRP election state machine (RFC 5798 §6, RFC 3768 §6), sans-IO.
//!
//! One [`Instance`] per virtual router. The caller feeds it [`Input`]s together
//! with the time they happened (`now`, a [`Timestamp`] on a monotonic clock it
//! owns) and carries out the [`Action`]s it returns: send adverts, add or
//! remove VIPs, send gratuitous ARP / unsolicited NA, run notify scripts.
//! The instance's single timer is not an action: after each call the caller
//! reads [`Instance::next_deadline`] and wakes it then with
//! [`Input::TimerExpired`]. Nothing in here reads a clock, opens a socket or
//! spawns a task, so every timing rule is tested with exact, injected time.
//! A reload goes through [`Instance::reconfigure_into`], which keeps the state.
//!
//! Driving many instances from one task: each instance has at most one
//! pending deadline, so the daemon keeps one min-heap of `(deadline,
//! instance id)`, pushes an entry whenever an instance's `next_deadline`
//! changes after a batch, and sleeps until the head. Entries made stale by
//! a later deadline need not be removed: feeding [`Input::TimerExpired`]
//! before the instance's real deadline is a no-op.
//! `now` may be the kernel's receive timestamp of an advert (the PEERS map's
//! `last_seen_ns`), so a daemon that wakes late still computes the
//! Master_Down_Timer from when the advert really arrived.
//!
//! [`SyncGroup`] moves several instances together like keepalived's
//! `vrrp_sync_group`, still without IO.
//!
//! Where RFC 5798 and keepalived 2.2 differ, these are the choices made:
//! - Startup: priority 255 goes to Master at once (RFC §6.4.1); everyone
//!   else starts in Backup, `state MASTER` included — keepalived 2.2.7 does
//!   the same for non-owners (measured), see [`InitialState`].
//! - `preempt_delay` follows keepalived's code: the window starts at the
//!   first lower-priority advert a backup sees, that master is followed
//!   until the window ends, and a higher-or-equal advert cancels it.
//! - FAULT (interface down, failing weight-0 tracked item): a master sends
//!   a priority-0 advert and drops its VIPs, as keepalived; no timers run
//!   in FAULT; recovery goes to Backup (the owner: straight to Master).
//! - A master discards lower-priority adverts (RFC §6.4.3) unless
//!   [`InstanceConfig::advert_on_lower_priority`] asks for keepalived's reply.
//! - VRRPv2 adverts with an interval other than ours are discarded (RFC 3768
//!   §7.1); VRRPv3 backups adopt the master's interval (RFC 5798 §6.4.2).

mod instance;
mod instance_config;
mod sync_group;
mod time;
mod timing;
mod tracking;

#[cfg(test)]
mod sim;

pub use instance::{Action, Advert, Input, Instance, Reason, State};
pub use instance_config::{InitialState, InstanceConfig};
pub use sync_group::{MemberAction, SyncGroup};
pub use time::Timestamp;
pub use timing::master_down_interval;
pub use tracking::TrackedItem;
