//! One virtual router: the RFC 5798 §6.4 state machine with keepalived's
//! extensions (preempt_delay, tracking, fault state).

use std::net::IpAddr;

#[cfg(test)]
use super::instance_config::InitialState;
use super::instance_config::{CheckedConfig, ConfigError, InstanceConfig};
use super::time::Timestamp;
use super::timing::{master_down_interval, skew_time};
use super::tracking::{Tracking, UnknownTrackedItem};
use crate::vrrp::{AdvertInterval, ChecksumForm, Version};

#[cfg(test)]
mod tests;

/// Protocol state of an instance (RFC 5798 §6.4 plus keepalived's FAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum State {
    /// Not started, or stopped by [`Input::Shutdown`].
    Initialize,
    /// Watching the master; takes over when Master_Down_Timer fires.
    Backup,
    /// Owns the VIPs and advertises.
    Master,
    /// The VRRP interface is down or a weight-0 tracked item fails: no
    /// adverts, no timers, no VIPs.
    Fault,
}

/// Why a state change happened (for notify scripts, logs and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Reason {
    /// [`Input::Start`].
    Startup,
    /// [`Input::Resume`]: the daemon restarted while this node was master.
    Resumed,
    /// Priority 255 goes to master without waiting (RFC 5798 §6.4.1).
    AddressOwner,
    /// Master_Down_Timer fired: no advert from the master in time.
    MasterDown,
    /// Master_Down_Timer fired after the master sent priority 0.
    MasterReleased,
    /// Master_Down_Timer fired while a lower-priority master was ignored.
    Preempted,
    /// A master saw an advert of higher priority.
    HigherPriorityAdvert,
    /// A master saw equal priority from a higher primary address.
    EqualPriorityHigherAddress,
    /// The VRRP interface went down.
    InterfaceDown,
    /// The VRRP interface came back.
    InterfaceUp,
    /// A weight-0 tracked item failed.
    TrackedFault,
    /// The last failing weight-0 tracked item recovered.
    TrackedRecovered,
    /// A `vrrp_sync_group` member moved this instance along.
    SyncGroup,
    /// [`Input::Shutdown`]: the daemon is stopping this instance.
    Shutdown,
}

/// A received advertisement, already validated by the wire codec / XDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// Advertised priority (0: the master is stopping).
    pub priority: u8,
    /// IP source address of the packet (the sender's primary address).
    pub source: IpAddr,
    /// Advertised interval in centiseconds (VRRPv2: seconds × 100).
    pub interval_cs: u16,
    /// Version of the packet.
    pub version: Version,
    /// Which checksum form the packet carried.
    pub checksum: ChecksumForm,
}

/// Something that happened to an instance at time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// RFC 5798 "Startup event": leave Initialize.
    Start,
    /// Leave Initialize straight for Master: the kernel shows this node was
    /// master moments ago (its heartbeat is younger than Master_Down_Interval)
    /// and no router has beaten it since, so a backup has not taken over.
    /// A daemon restarted within that time thus resumes without a failover.
    /// A fault still wins, as on a normal start.
    Resume,
    /// An advert for this VRID arrived; `now` is when it was received.
    Advert(Advert),
    /// The deadline last armed has (per the caller) passed. Harmless if it
    /// has not, or if it was superseded: the instance checks against `now`.
    TimerExpired,
    /// The VRRP interface is up (carrier and admin state).
    InterfaceUp,
    /// The VRRP interface is down.
    InterfaceDown,
    /// Tracked item number `item` (index into
    /// [`InstanceConfig::tracked`]) is now up or down.
    Tracked {
        /// Index of the item.
        item: usize,
        /// Its new state.
        up: bool,
    },
    /// RFC 5798 "Shutdown event".
    Shutdown,
}

/// A daemon-side mistake in an [`Input`] (protocol-level oddities in adverts
/// are not errors: they are discarded and counted, as the RFC says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The tracked-item index is not configured.
    #[error("virtual router {vrid}: {source}")]
    UnknownTrackedItem {
        /// The instance's VRID.
        vrid: u8,
        /// Which index and how many exist.
        source: UnknownTrackedItem,
    },
}

/// Why [`Instance::reconfigure_into`] refused a configuration; the instance is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The virtual router id or version differ: that is another virtual
    /// router, so the caller stops this instance and starts a new one.
    #[error(
        "virtual router {vrid} (VRRP {version:?}) cannot be reloaded as virtual router {new_vrid} (VRRP {new_version:?}): a changed virtual_router_id or version needs the instance restarted"
    )]
    Identity {
        /// The running instance's VRID.
        vrid: u8,
        /// The running instance's version.
        version: Version,
        /// The VRID in the new configuration.
        new_vrid: u8,
        /// The version in the new configuration.
        new_version: Version,
    },
}

/// The master as a backup knows it from its adverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MasterInfo {
    /// The master's primary address.
    pub address: IpAddr,
    /// Its advertised priority.
    pub priority: u8,
    /// Its advertised interval (adopted as Master_Adver_Interval in v3).
    pub interval: AdvertInterval,
}

/// What the caller must do, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority (0: "I am stopping") and interval.
    SendAdvert {
        /// Priority to put in the advert.
        priority: u8,
        /// Interval to put in the advert.
        interval: AdvertInterval,
    },
    /// Add the VIPs (and, if `accept_traffic`, accept packets addressed to
    /// them; otherwise only forward, RFC 5798 §6.4.3 Accept_Mode).
    AddVips {
        /// Accept_Mode, or true for the address owner.
        accept_traffic: bool,
    },
    /// Remove the VIPs.
    RemoveVips,
    /// Send the gratuitous ARP / unsolicited NA burst for all VIPs
    /// (keepalived's `garp_master_*` settings shape it).
    SendGratuitous,
    /// Notify: run notify scripts, send mail, update metrics. `to:
    /// Initialize` with [`Reason::Shutdown`] is keepalived's `notify_stop`.
    StateChanged {
        /// State left.
        from: State,
        /// State entered.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// The master this backup follows changed (None: no known master).
    MasterChanged(Option<MasterInfo>),
    /// keepalived's `higher_prio_send_advert`: one advert with our own
    /// priority, sent as this master yields to a better router, so that
    /// router sees a lower-priority advert and repeats its gratuitous ARPs
    /// (ours were the last the neighbours heard). Not a master advert:
    /// nothing this node holds is refreshed by it.
    SendYieldingAdvert {
        /// Priority to put in the advert (ours, below the winner's).
        priority: u8,
        /// Interval to put in the advert.
        interval: AdvertInterval,
    },
    /// A router that loses against this master advertised: two masters
    /// overlapped (a healed partition, a late daemon), and the neighbours
    /// may have learnt the other router's MAC for the VIPs. The caller
    /// sends keepalived's `garp_lower_prio_repeat` / `_delay` bursts (none
    /// when the repeat is 0), for every master of the sync group.
    RefreshNeighbours,
    /// The effective priority changed (tracking or a new base priority).
    PriorityChanged {
        /// Previous effective priority.
        from: u8,
        /// New effective priority.
        to: u8,
    },
}

/// Event counters, for metrics and the status socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counters {
    /// State changes of any kind.
    pub transitions: u64,
    /// Transitions into Master.
    pub became_master: u64,
    /// Transitions out of Master (to Backup, Fault or Initialize).
    pub released_master: u64,
    /// Adverts handed to the instance.
    pub adverts_received: u64,
    /// Adverts the caller was asked to send (priority 0 included).
    pub adverts_sent: u64,
    /// Priority-0 adverts received.
    pub priority_zero_received: u64,
    /// Priority-0 adverts the caller was asked to send.
    pub priority_zero_sent: u64,
    /// Adverts discarded: wrong version, address family or interval, or
    /// our own address as source.
    pub adverts_discarded: u64,
    /// Lower-priority adverts that changed nothing: heard by a master (which
    /// may answer them, see [`Action::RefreshNeighbours`]) or ignored by a
    /// preempting backup.
    pub lower_priority_ignored: u64,
    /// [`Input::TimerExpired`] that arrived early or with no timer armed.
    pub spurious_timers: u64,
}

/// One VRRP virtual router instance. See the module docs for how to drive it.
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: CheckedConfig,
    tracking: Tracking,
    state: State,
    interface_up: bool,
    effective_priority: u8,
    master_adver_interval: AdvertInterval,
    deadline: Option<Timestamp>,
    master: Option<MasterInfo>,
    master_released: bool,
    ignoring_lower_master: bool,
    preempt_until: Option<Timestamp>,
    wants_master: bool,
    sync_hold: bool,
    group_fault: bool,
    counters: Counters,
    /// Only the tests ask when the state last changed (the daemon timestamps
    /// transitions itself).
    last_transition: Option<Timestamp>,
}

impl Instance {
    /// An instance in [`State::Initialize`], interface assumed up and
    /// tracked items in their configured initial state. Send
    /// [`Input::Start`] to begin.
    pub fn new(config: &InstanceConfig) -> Result<Self, ConfigError> {
        let cfg = config.check()?;
        let tracking = Tracking::new(&config.tracked);
        let effective_priority = tracking.effective_priority(cfg.base_priority);
        Ok(Instance {
            master_adver_interval: cfg.advert_interval,
            cfg,
            tracking,
            state: State::Initialize,
            interface_up: true,
            effective_priority,
            deadline: None,
            master: None,
            master_released: false,
            ignoring_lower_master: false,
            preempt_until: None,
            wants_master: false,
            sync_hold: false,
            group_fault: false,
            counters: Counters::default(),
            last_transition: None,
        })
    }

    /// Handles one input that happened at `now`; returns the actions to take.
    /// The daemon drives instances through [`super::SyncGroup`], which uses
    /// [`Instance::handle_into`]; this allocating form is for the tests.
    #[cfg(test)]
    pub fn handle(&mut self, input: Input, now: Timestamp) -> Result<Vec<Action>, InputError> {
        let mut out = Vec::new();
        self.handle_into(input, now, &mut out)?;
        Ok(out)
    }

    /// Handles one input that happened at `now`, appending the actions to
    /// take to a caller-owned buffer so a daemon driving many instances
    /// reuses one allocation.
    pub fn handle_into(
        &mut self,
        input: Input,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), InputError> {
        match input {
            Input::Start => self.start(now, out),
            Input::Resume => self.resume(now, out),
            Input::Advert(advert) => self.on_advert(&advert, now, out),
            Input::TimerExpired => self.on_timer(now, out),
            Input::InterfaceUp => {
                self.interface_up = true;
                self.reevaluate_fault(now, Reason::InterfaceUp, out);
            }
            Input::InterfaceDown => {
                self.interface_up = false;
                self.reevaluate_fault(now, Reason::InterfaceDown, out);
            }
            Input::Tracked { item, up } => self.on_tracked(item, up, now, out)?,
            Input::Shutdown => self.shutdown(now, out),
        }
        Ok(())
    }

    /// Reload: applies a new configuration to a running instance, keeping its
    /// state, master knowledge and counters.
    ///
    /// Tracking is rebuilt from `config.tracked`, each item's `initially_up`
    /// taken as its current state (the caller passes the live status);
    /// indices in later [`Input::Tracked`] refer to the new list. Then, as
    /// for a tracked-item report: [`Action::PriorityChanged`] if the
    /// effective priority moved, and FAULT entered or left. Otherwise:
    /// - Master stays Master without adverts or VIP actions; a new advert
    ///   interval applies from the next advert, which is due no later than
    ///   one new interval from `now`. An owner that stops being the owner
    ///   stays Master until an election says otherwise.
    /// - Backup keeps its Master_Down_Timer; VRRPv2 takes the new interval
    ///   as Master_Adver_Interval, VRRPv3 keeps the followed master's. A
    ///   backup that becomes the address owner (priority 255) becomes Master
    ///   at once (RFC 5798 §6.4.1), unless its sync group holds it.
    /// - Initialize and Fault only take the new configuration (and Fault
    ///   is left if its cause went away).
    ///
    /// On an error nothing changes. Like `handle`, the allocating form is for
    /// the tests; [`super::SyncGroup`] calls [`Instance::reconfigure_into`].
    #[cfg(test)]
    pub fn reconfigure(
        &mut self,
        config: &InstanceConfig,
        now: Timestamp,
    ) -> Result<Vec<Action>, ReconfigureError> {
        let mut out = Vec::new();
        self.reconfigure_into(config, now, &mut out)?;
        Ok(out)
    }

    /// Reload (see `reconfigure`), appending to a caller-owned buffer.
    pub(super) fn reconfigure_into(
        &mut self,
        config: &InstanceConfig,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), ReconfigureError> {
        // Validity first, so an Identity error means "restart with it".
        let cfg = config.check()?;
        if cfg.vrid != self.cfg.vrid || cfg.version != self.cfg.version {
            return Err(ReconfigureError::Identity {
                vrid: self.cfg.vrid,
                version: self.cfg.version,
                new_vrid: cfg.vrid,
                new_version: cfg.version,
            });
        }
        let was_tracked_fault = self.tracking.in_fault();
        self.cfg = cfg;
        self.tracking = Tracking::new(&config.tracked);
        tracing::debug!(vrid = self.cfg.vrid, state = ?self.state, "configuration replaced");
        self.update_effective_priority(out);
        let tracked_fault = self.tracking.in_fault();
        if was_tracked_fault != tracked_fault {
            let reason = if tracked_fault {
                Reason::TrackedFault
            } else {
                Reason::TrackedRecovered
            };
            self.reevaluate_fault(now, reason, out);
        }
        let interval = self.cfg.advert_interval;
        match self.state {
            State::Master => {
                self.master_adver_interval = interval;
                let next = now.saturating_add(interval.as_duration());
                self.deadline = Some(self.deadline.map_or(next, |due| due.min(next)));
            }
            State::Backup => {
                // VRRPv3 keeps the interval the followed master advertises.
                if self.cfg.version == Version::V2 || self.master.is_none() {
                    self.master_adver_interval = interval;
                }
                if self.is_address_owner() {
                    if self.sync_hold {
                        // As at startup: held, but wanting master so the
                        // group can follow.
                        self.wants_master = true;
                    } else {
                        self.become_master(now, Reason::AddressOwner, out);
                    }
                }
            }
            State::Initialize | State::Fault => {
                self.master_adver_interval = interval;
            }
        }
        Ok(())
    }

    /// Current protocol state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Configured base priority.
    pub fn base_priority(&self) -> u8 {
        self.cfg.base_priority
    }

    /// Priority advertised now: base plus applying tracking weights.
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// Whether this router owns the VIPs (priority 255).
    pub fn is_address_owner(&self) -> bool {
        self.cfg.base_priority == 255
    }

    /// The configured `state MASTER|BACKUP` wish; the election does not act
    /// on it (see [`InitialState`]), the tests show that.
    #[cfg(test)]
    pub fn initial_state(&self) -> InitialState {
        self.cfg.initial_state
    }

    /// This router's primary address.
    #[cfg(test)]
    pub fn primary_address(&self) -> IpAddr {
        self.cfg.primary_address
    }

    /// Address of the current master: our own when master, the followed
    /// master's when backup, None otherwise.
    pub fn master_address(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.cfg.primary_address),
            State::Backup => self.master.map(|m| m.address),
            State::Initialize | State::Fault => None,
        }
    }

    /// Own Advertisement_Interval.
    pub fn advert_interval(&self) -> AdvertInterval {
        self.cfg.advert_interval
    }

    /// Master_Adver_Interval (the master's interval in v3, own in v2).
    #[cfg(test)]
    pub fn master_adver_interval(&self) -> AdvertInterval {
        self.master_adver_interval
    }

    /// Master_Down_Interval with the current priority and interval.
    pub fn master_down_interval(&self) -> std::time::Duration {
        master_down_interval(
            self.cfg.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }

    /// When the instance needs [`Input::TimerExpired`] next, if at all: the
    /// only place its timer is reported. Read it after every
    /// [`Instance::handle_into`] or [`Instance::reconfigure_into`]; a new value
    /// replaces any earlier one.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadline
    }

    /// Whether packets to the VIPs are to be accepted now (master, and
    /// Accept_Mode or address owner).
    pub fn accepts_vip_traffic(&self) -> bool {
        self.state == State::Master && (self.cfg.accept || self.is_address_owner())
    }

    /// Event counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// When the last state change happened.
    #[cfg(test)]
    pub fn last_transition(&self) -> Option<Timestamp> {
        self.last_transition
    }

    // ---- hooks for the sync-group coordinator ----

    /// With `hold`, a Master_Down_Timer expiry leaves this instance in
    /// Backup, wanting master, because other sync-group members still
    /// follow a live master (keepalived's `vrrp_sync_can_goto_master`).
    pub(super) fn set_sync_hold(&mut self, hold: bool) {
        self.sync_hold = hold;
    }

    /// keepalived's `wantstate == MASTER`: master, or a backup whose own
    /// election says master but which is held by its group.
    pub(super) fn wants_master(&self) -> bool {
        self.state == State::Master || (self.state == State::Backup && self.wants_master)
    }

    /// Whether this instance's own interface/tracking puts it in fault.
    pub(super) fn has_own_fault(&self) -> bool {
        !self.interface_up || self.tracking.in_fault()
    }

    /// Sets or clears a fault imposed by the group.
    pub(super) fn set_group_fault(&mut self, fault: bool, now: Timestamp, out: &mut Vec<Action>) {
        if self.group_fault != fault {
            self.group_fault = fault;
            self.reevaluate_fault(now, Reason::SyncGroup, out);
        }
    }

    /// Pulled to master by the group.
    pub(super) fn force_master(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state == State::Backup {
            self.become_master(now, Reason::SyncGroup, out);
        }
    }

    /// Pushed to backup by the group.
    pub(super) fn force_backup(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state == State::Master {
            self.become_backup(now, Reason::SyncGroup, out);
        }
    }

    // ---- state machine ----

    fn start(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            tracing::debug!(vrid = self.cfg.vrid, state = ?self.state, "start ignored: already running");
            return;
        }
        self.master_adver_interval = self.cfg.advert_interval;
        self.enter_running(now, Reason::Startup, out);
    }

    fn resume(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            tracing::debug!(vrid = self.cfg.vrid, state = ?self.state, "resume ignored: already running");
            return;
        }
        self.master_adver_interval = self.cfg.advert_interval;
        // The group was master with this member, so its hold does not apply.
        if self.fault_condition() {
            self.enter_running(now, Reason::Startup, out);
        } else {
            self.become_master(now, Reason::Resumed, out);
        }
    }

    /// RFC 5798 §6.4.1, also used when leaving Fault.
    fn enter_running(&mut self, now: Timestamp, reason: Reason, out: &mut Vec<Action>) {
        if self.fault_condition() {
            let reason = self.fault_reason();
            self.enter_fault(now, reason, out);
        } else if self.is_address_owner() && !self.sync_hold {
            let reason = if reason == Reason::Startup {
                Reason::AddressOwner
            } else {
                reason
            };
            self.become_master(now, reason, out);
        } else {
            self.master_adver_interval = self.cfg.advert_interval;
            self.become_backup(now, reason, out);
            // A held owner still wants master, so its group can follow it.
            self.wants_master = self.is_address_owner();
        }
    }

    fn fault_condition(&self) -> bool {
        self.has_own_fault() || self.group_fault
    }

    fn fault_reason(&self) -> Reason {
        if !self.interface_up {
            Reason::InterfaceDown
        } else if self.tracking.in_fault() {
            Reason::TrackedFault
        } else {
            Reason::SyncGroup
        }
    }

    fn reevaluate_fault(&mut self, now: Timestamp, reason: Reason, out: &mut Vec<Action>) {
        match (self.state, self.fault_condition()) {
            (State::Master | State::Backup, true) => self.enter_fault(now, reason, out),
            (State::Fault, false) => self.enter_running(now, reason, out),
            _ => {}
        }
    }

    fn become_master(&mut self, now: Timestamp, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = State::Master;
        self.reset_backup_memory();
        self.master_adver_interval = self.cfg.advert_interval;
        self.counters.became_master += 1;
        out.push(Action::AddVips {
            accept_traffic: self.cfg.accept || self.is_address_owner(),
        });
        self.send_advert(self.effective_priority, out);
        out.push(Action::SendGratuitous);
        self.set_master(None, out);
        self.note_transition(from, reason, now, out);
        self.deadline = Some(now.saturating_add(self.cfg.advert_interval.as_duration()));
    }

    fn become_backup(&mut self, now: Timestamp, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == State::Master {
            self.counters.released_master += 1;
            out.push(Action::RemoveVips);
        }
        self.state = State::Backup;
        self.reset_backup_memory();
        self.note_transition(from, reason, now, out);
        let deadline = now.saturating_add(self.master_down_interval());
        self.deadline = Some(deadline);
    }

    fn enter_fault(&mut self, now: Timestamp, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == State::Master {
            // keepalived announces priority 0 on the way into FAULT so backups
            // take over after Skew_Time instead of Master_Down_Interval.
            self.send_priority_zero(out);
            self.counters.released_master += 1;
            out.push(Action::RemoveVips);
        }
        self.state = State::Fault;
        self.reset_backup_memory();
        self.set_master(None, out);
        self.note_transition(from, reason, now, out);
        self.deadline = None;
    }

    fn shutdown(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let from = self.state;
        match from {
            State::Initialize => return,
            State::Master => {
                // RFC 5798 §6.4.3: priority 0 lets a backup take over after
                // Skew_Time; VIPs go only after that advert is out.
                self.send_priority_zero(out);
                self.counters.released_master += 1;
                out.push(Action::RemoveVips);
            }
            State::Backup | State::Fault => {}
        }
        self.state = State::Initialize;
        self.reset_backup_memory();
        self.set_master(None, out);
        self.note_transition(from, Reason::Shutdown, now, out);
        self.deadline = None;
    }

    fn on_timer(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let due = match self.deadline {
            Some(deadline) if now >= deadline => deadline,
            _ => {
                self.counters.spurious_timers += 1;
                return;
            }
        };
        match self.state {
            State::Backup => {
                if self.sync_hold {
                    // keepalived re-arms a full Master_Down_Interval and waits
                    // for the rest of the group to want master too.
                    self.wants_master = true;
                    let deadline = now.saturating_add(self.master_down_interval());
                    self.deadline = Some(deadline);
                    return;
                }
                let reason = if self.master_released {
                    Reason::MasterReleased
                } else if self.ignoring_lower_master {
                    Reason::Preempted
                } else {
                    Reason::MasterDown
                };
                self.become_master(now, reason, out);
            }
            State::Master => {
                self.send_advert(self.effective_priority, out);
                // Keep the advert cadence anchored to the schedule; restart it
                // from `now` only if the caller woke more than a period late.
                let interval = self.cfg.advert_interval.as_duration();
                let mut next = due.saturating_add(interval);
                if next <= now {
                    next = now.saturating_add(interval);
                }
                self.deadline = Some(next);
            }
            State::Initialize | State::Fault => {
                self.counters.spurious_timers += 1;
            }
        }
    }

    fn on_advert(&mut self, advert: &Advert, now: Timestamp, out: &mut Vec<Action>) {
        self.counters.adverts_received += 1;
        if !matches!(self.state, State::Backup | State::Master) {
            return;
        }
        let Some(interval) = self.acceptable_interval(advert) else {
            self.counters.adverts_discarded += 1;
            tracing::debug!(
                vrid = self.cfg.vrid,
                source = %advert.source,
                version = ?advert.version,
                interval_cs = advert.interval_cs,
                "advert discarded"
            );
            return;
        };
        if self.state == State::Backup {
            self.backup_receives(advert, interval, now, out);
        } else {
            self.master_receives(advert, interval, now, out);
        }
    }

    /// RFC 5798 §7.1 / RFC 3768 §7.1 receive checks that need instance
    /// state; returns the advertised interval if the advert is usable.
    fn acceptable_interval(&self, advert: &Advert) -> Option<AdvertInterval> {
        if advert.version != self.cfg.version
            || advert.source == self.cfg.primary_address
            || advert.source.is_ipv4() != self.cfg.primary_address.is_ipv4()
        {
            return None;
        }
        match self.cfg.version {
            // RFC 3768 §7.1: an interval differing from ours is discarded.
            Version::V2 => (advert.interval_cs == self.cfg.advert_interval.centiseconds())
                .then_some(self.cfg.advert_interval),
            Version::V3 => {
                AdvertInterval::from_centiseconds(Version::V3, advert.interval_cs.into()).ok()
            }
        }
    }

    /// RFC 5798 §6.4.2 (Backup), with keepalived's preempt_delay.
    fn backup_receives(
        &mut self,
        advert: &Advert,
        interval: AdvertInterval,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if advert.priority == 0 {
            self.counters.priority_zero_received += 1;
            self.master_released = true;
            self.set_master(None, out);
            let skew = skew_time(
                self.cfg.version,
                self.effective_priority,
                self.master_adver_interval,
            );
            self.deadline = Some(now.saturating_add(skew));
            return;
        }
        let lower = advert.priority < self.effective_priority;
        let delay = self.cfg.preempt_delay;
        let delaying = !delay.is_zero() && self.preempt_until.is_none_or(|until| now < until);
        if self.cfg.preempt && lower && !delaying {
            self.counters.lower_priority_ignored += 1;
            self.ignoring_lower_master = true;
            return;
        }
        if !delay.is_zero() {
            if !lower {
                self.preempt_until = None;
            } else if self.preempt_until.is_none() {
                self.preempt_until = Some(now.saturating_add(delay));
            }
        }
        if self.cfg.version == Version::V3 {
            self.master_adver_interval = interval;
        }
        self.master_released = false;
        self.ignoring_lower_master = false;
        self.wants_master = false;
        self.set_master(
            Some(MasterInfo {
                address: advert.source,
                priority: advert.priority,
                interval,
            }),
            out,
        );
        let deadline = now.saturating_add(self.master_down_interval());
        self.deadline = Some(deadline);
    }

    /// RFC 5798 §6.4.3 (Master), with keepalived's answers to a second
    /// master (`vrrp_state_master_rx`): equal priority counts as lower or
    /// higher by address, as in the election itself.
    fn master_receives(
        &mut self,
        advert: &Advert,
        interval: AdvertInterval,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if advert.priority == 0 {
            self.counters.priority_zero_received += 1;
            self.send_advert(self.effective_priority, out);
            let next = now.saturating_add(self.cfg.advert_interval.as_duration());
            self.deadline = Some(next);
            return;
        }
        let ours = self.effective_priority;
        let reason = if advert.priority > ours {
            Reason::HigherPriorityAdvert
        } else if advert.priority == ours
            && address_greater(advert.source, self.cfg.primary_address)
        {
            Reason::EqualPriorityHigherAddress
        } else {
            self.lower_priority_master(ours, now, out);
            return;
        };
        if self.cfg.advert_before_yielding {
            self.counters.adverts_sent += 1;
            out.push(Action::SendYieldingAdvert {
                priority: ours,
                interval: self.cfg.advert_interval,
            });
        }
        if self.cfg.version == Version::V3 {
            self.master_adver_interval = interval;
        }
        self.become_backup(now, reason, out);
        self.set_master(
            Some(MasterInfo {
                address: advert.source,
                priority: advert.priority,
                interval,
            }),
            out,
        );
    }

    /// A router that loses against us claims to be master. RFC 5798 (before
    /// RFC 9568) discards its advert; keepalived answers at once with an
    /// advert of its own (unless `lower_prio_no_advert`), so the other
    /// router yields now rather than at our next scheduled advert, and
    /// re-announces the VIPs, since the neighbours may have followed the
    /// other router's gratuitous ARPs.
    ///
    /// keepalived does this for every such advert. The daemon is woken for
    /// the first one after a change or a silence (the kernel raises an
    /// event), and otherwise reads the kernel's record at each advert it
    /// sends: a steady stream of them (the other router does not hear us)
    /// is answered once per advert interval of ours, not once per advert of
    /// theirs. That is enough: our scheduled adverts already reach every
    /// router that can hear us, so a reply per advert would only repeat
    /// them, and the answer's gratuitous ARPs still follow the other
    /// router's within an interval.
    fn lower_priority_master(&mut self, ours: u8, now: Timestamp, out: &mut Vec<Action>) {
        self.counters.lower_priority_ignored += 1;
        if self.cfg.advert_on_lower_priority {
            self.send_advert(ours, out);
            let next = now.saturating_add(self.cfg.advert_interval.as_duration());
            self.deadline = Some(next);
        }
        out.push(Action::RefreshNeighbours);
    }

    fn on_tracked(
        &mut self,
        item: usize,
        up: bool,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), InputError> {
        let was_fault = self.tracking.in_fault();
        self.tracking
            .set(item, up)
            .map_err(|source| InputError::UnknownTrackedItem {
                vrid: self.cfg.vrid,
                source,
            })?;
        self.update_effective_priority(out);
        let fault = self.tracking.in_fault();
        if was_fault != fault {
            let reason = if fault {
                Reason::TrackedFault
            } else {
                Reason::TrackedRecovered
            };
            self.reevaluate_fault(now, reason, out);
        }
        Ok(())
    }

    fn update_effective_priority(&mut self, out: &mut Vec<Action>) {
        let new = self.tracking.effective_priority(self.cfg.base_priority);
        if new != self.effective_priority {
            out.push(Action::PriorityChanged {
                from: self.effective_priority,
                to: new,
            });
            tracing::debug!(
                vrid = self.cfg.vrid,
                from = self.effective_priority,
                to = new,
                "effective priority changed"
            );
            self.effective_priority = new;
        }
    }

    fn reset_backup_memory(&mut self) {
        self.preempt_until = None;
        self.master_released = false;
        self.ignoring_lower_master = false;
        self.wants_master = false;
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.adverts_sent += 1;
        out.push(Action::SendAdvert {
            priority,
            interval: self.cfg.advert_interval,
        });
    }

    fn send_priority_zero(&mut self, out: &mut Vec<Action>) {
        self.counters.priority_zero_sent += 1;
        self.send_advert(0, out);
    }

    fn set_master(&mut self, master: Option<MasterInfo>, out: &mut Vec<Action>) {
        if self.master != master {
            self.master = master;
            out.push(Action::MasterChanged(master));
        }
    }

    fn note_transition(
        &mut self,
        from: State,
        reason: Reason,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let to = self.state;
        self.counters.transitions += 1;
        self.last_transition = Some(now);
        tracing::debug!(
            vrid = self.cfg.vrid,
            ?from,
            ?to,
            ?reason,
            "VRRP state change"
        );
        out.push(Action::StateChanged { from, to, reason });
    }
}

/// RFC 5798 §6.4.3: primary addresses compared as unsigned integers in
/// network byte order. Different families never compare greater (such
/// adverts are discarded before this point).
fn address_greater(theirs: IpAddr, ours: IpAddr) -> bool {
    match (theirs, ours) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.to_bits() > b.to_bits(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.to_bits() > b.to_bits(),
        _ => false,
    }
}
