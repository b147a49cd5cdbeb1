//! The election owner without IO: every instance and sync group, their
//! timers and tracked state, and a reload as the difference between two
//! plans. Inputs go in with the time they happened; what the daemon must do
//! comes out as an ordered list of [`Effect`]s, so every rule is tested with
//! injected time and without root (the conformance cases in `cases/`).

mod effect;
mod reload;
mod resume;

#[cfg(test)]
mod cases;

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    sync::Arc,
};

use agent_common::{Heartbeat, PeerKey};
use tracing::{debug, warn};

pub use self::effect::{Effect, GroupId, HookOwner, MemberId};

use super::plan::{
    GroupPlan, HooksContext, InstancePlan, NotifyPlan, Plan, TrackedSource, TrackerConfig,
};
use crate::{
    datapath::{PeerRecord, VipState},
    notify::NotifyState,
    vrrp::election::{
        Action, Advert, Input, Instance, MemberAction, Reason, State, SyncGroup, Timestamp,
    },
};

/// The kernel's per-router record of the last valid advert, and the
/// heartbeat this node's daemon (this one or the one before it) left as
/// master of the router.
pub trait PeerTable {
    /// The whole record: a map lookup (or a read of the whole map).
    fn peer(&mut self, key: &PeerKey) -> Option<PeerRecord>;
    /// Only the record's receive time (`PeerRecord::last_seen_ns`, 0
    /// before the first advert), read from memory the kernel shares;
    /// `None` when it cannot be read that way (then [`PeerTable::peer`]
    /// is asked).
    fn last_seen(&mut self, key: &PeerKey) -> Option<u64>;
    fn heartbeat(&mut self, key: &PeerKey) -> Option<Heartbeat>;
}

/// How often every running instance's full record is read even though no
/// event said it changed: the backstop for a change whose event was lost
/// while the kernel's `event_lost` counter could not be read.
const FULL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How a refresh reads the kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// The receive time only; the rest of the record is the last one fed
    /// (events bring every change of it).
    Times,
    /// Every record, fed where it is newer or differs from the last one
    /// fed (a lost event, or a resync).
    Records,
}

/// One instance as the owner keeps it.
pub struct Member {
    pub id: MemberId,
    pub plan: Arc<InstancePlan>,
    /// `plan.datapath_key()`, kept beside the hot fields: a backup's timer
    /// wake-up looks up every member's kernel record, and reading the key
    /// from the plan touched three more cache lines per member (about a
    /// tenth of a 200-instance backup's CPU). Set with the plan
    /// ([`Member::set_plan`]).
    key: PeerKey,
    /// Kernel receive time of the newest advert fed to the election.
    last_fed_ns: u64,
    /// The kernel's record last fed (from an event or a full read): what
    /// an advert that raised no event carried, so a refresh that finds a
    /// newer receive time feeds it again at that time. `None` until the
    /// first, and once the record was forgotten (this node became master).
    record: Option<PeerRecord>,
    /// Live status of each tracked item, index-aligned with `plan.tracked`.
    pub tracked_up: Vec<bool>,
}

impl Member {
    /// A reload's new settings for this instance.
    pub fn set_plan(&mut self, plan: Arc<InstancePlan>) {
        let key = plan.datapath_key();
        if key != self.key {
            // Another interface's router: nothing heard yet.
            self.record = None;
        }
        self.key = key;
        self.plan = plan;
    }
}

pub struct Group {
    pub id: GroupId,
    pub name: Option<String>,
    pub notify: NotifyPlan,
    pub sync: SyncGroup,
    pub members: Vec<Member>,
    /// The state the group's own hooks last announced.
    notified: Option<State>,
}

#[derive(Default)]
pub struct Core {
    groups: Vec<Group>,
    by_key: HashMap<PeerKey, (usize, usize)>,
    /// Per group: its next deadline, from when a wake-up may refresh it
    /// early (see [`Core::rearm`]), the group.
    timers: BinaryHeap<Reverse<(Timestamp, Timestamp, usize)>>,
    /// When the timers last read every full record ([`FULL_READ_EVERY`]).
    last_full_read: Option<Timestamp>,
    trackers: BTreeMap<TrackedSource, TrackerConfig>,
    hooks: HooksContext,
    next_id: u32,
}

/// keepalived's notify state for a transition (none for leaving Initialize
/// other than by shutdown).
pub fn notify_state(state: State, reason: Reason) -> Option<NotifyState> {
    match (state, reason) {
        (State::Master, _) => Some(NotifyState::Master),
        (State::Backup, _) => Some(NotifyState::Backup),
        (State::Fault, _) => Some(NotifyState::Fault),
        (State::Initialize, Reason::Shutdown) => Some(NotifyState::Stop),
        (State::Initialize, _) => None,
    }
}

impl Core {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// A start: stale addresses cleared, filters and guards set, hooks and
    /// trackers created, then every group started. An instance the pinned
    /// datapath shows this node was master of moments ago (a daemon
    /// restart, see [`resume::may_resume`]) resumes as master: its addresses
    /// stay, its guard stays open, and it advertises at once, so no backup
    /// takes over.
    pub fn start(
        &mut self,
        plan: &Plan,
        now: Timestamp,
        previous: &mut dyn PeerTable,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        self.hooks = plan.hooks.clone();
        let resuming: std::collections::HashSet<PeerKey> = plan
            .instances()
            .map(|instance| instance.datapath_key())
            .filter(|key| {
                resume::may_resume(previous.heartbeat(key), previous.peer(key), now.as_nanos())
            })
            .collect();
        for instance in plan.instances() {
            let plan = Arc::new(instance.clone());
            if resuming.contains(&instance.datapath_key()) {
                out.push(Effect::Claim { plan });
            } else {
                out.push(Effect::RemoveStale { plan });
            }
        }
        for (source, tracker) in &plan.trackers {
            out.push(Effect::StartTracker {
                source: source.clone(),
                tracker: Box::new(tracker.clone()),
            });
        }
        self.trackers = plan.trackers.clone();
        for group_plan in &plan.groups {
            if let Some(group) = self.start_group(group_plan, now, &resuming, &mut out) {
                self.groups.push(group);
            }
        }
        self.reindex();
        out
    }

    fn fresh_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Builds and starts one group. Planning validated every member, so a
    /// refusal here is a bug: reported, and the group does not run.
    fn start_group(
        &mut self,
        plan: &GroupPlan,
        now: Timestamp,
        resuming: &std::collections::HashSet<PeerKey>,
        out: &mut Vec<Effect>,
    ) -> Option<Group> {
        let instances = plan
            .members
            .iter()
            .map(|member| Instance::new(&member.election))
            .collect::<Result<Vec<_>, _>>();
        let sync = match instances.map(SyncGroup::new) {
            Ok(Ok(sync)) => sync,
            Ok(Err(error)) => {
                warn!(%error, "a sync group could not be built");
                return None;
            }
            Err(error) => {
                warn!(%error, "an instance could not be built");
                return None;
            }
        };
        let group_id = GroupId(self.fresh_id());
        let mut members = Vec::new();
        for member_plan in &plan.members {
            let id = MemberId(self.fresh_id());
            // The peers first: a filter that checks sources finds them.
            if !member_plan.unicast_sources.is_empty() {
                out.push(Effect::UnicastSources {
                    key: member_plan.datapath_key(),
                    sources: member_plan.unicast_sources.clone(),
                });
            }
            out.push(Effect::Filter {
                key: member_plan.datapath_key(),
                filter: member_plan.filter,
            });
            // A resuming master's guard stays open: closing it for the
            // moment until it opens again would drop its traffic.
            if !resuming.contains(&member_plan.datapath_key()) {
                guard(member_plan, VipState::NotOwned, out);
            }
            out.push(Effect::Hooks {
                owner: HookOwner::Instance(id),
                name: member_plan.name.clone(),
                notify: Box::new(member_plan.notify.clone()),
            });
            members.push(Member {
                id,
                tracked_up: member_plan
                    .election
                    .tracked
                    .iter()
                    .map(|item| item.initially_up)
                    .collect(),
                key: member_plan.datapath_key(),
                plan: Arc::new(member_plan.clone()),
                last_fed_ns: 0,
                record: None,
            });
        }
        if let Some(name) = &plan.name {
            out.push(Effect::Hooks {
                owner: HookOwner::Group(group_id),
                name: name.clone(),
                notify: Box::new(plan.notify.clone()),
            });
        }
        let mut group = Group {
            id: group_id,
            name: plan.name.clone(),
            notify: plan.notify.clone(),
            sync,
            members,
            notified: None,
        };
        let resume: Vec<bool> = plan
            .members
            .iter()
            .map(|member| resuming.contains(&member.datapath_key()))
            .collect();
        let actions = if resume.contains(&true) {
            group.sync.start_resuming(now, &resume)
        } else {
            group.sync.start(now)
        };
        apply(&mut group, actions, out);
        // A resume candidate that did not end as master (a fault, say) lets
        // go of what the previous daemon held, as a fresh start would.
        for (index, member) in group.members.iter().enumerate() {
            let is_master = group.sync.member(index).map(Instance::state) == Some(State::Master);
            if resume[index] && !is_master {
                guard(&member.plan, VipState::NotOwned, out);
                out.push(Effect::RemoveStale {
                    plan: Arc::clone(&member.plan),
                });
            }
        }
        Some(group)
    }

    /// A ring-buffer event: something about a peer changed.
    pub fn on_peer_event(&mut self, key: &PeerKey, peer: &PeerRecord) -> Vec<Effect> {
        let mut out = Vec::new();
        match self.by_key.get(key) {
            Some(&(group, member)) => self.feed_advert(group, member, peer, &mut out),
            None => debug!(vrid = key.vrid, "event for a virtual router we do not run"),
        }
        self.rearm_all();
        out
    }

    /// Events of the kernel were lost (its ring was full): every running
    /// instance is fed its router's record where it is newer than the last
    /// advert it got. An instance whose event went through gets nothing.
    pub fn resync(&mut self, peers: &mut dyn PeerTable) -> Vec<Effect> {
        let mut out = Vec::new();
        for group in 0..self.groups.len() {
            self.refresh_from_kernel(group, peers, Refresh::Records, &mut out);
        }
        self.rearm_all();
        out
    }

    fn feed_advert(
        &mut self,
        group: usize,
        member: usize,
        peer: &PeerRecord,
        out: &mut Vec<Effect>,
    ) {
        let advert = Advert {
            priority: peer.priority,
            source: peer.source,
            interval_cs: peer.interval_cs,
            version: peer.version,
            checksum: peer.checksum_form,
        };
        let group = &mut self.groups[group];
        let fed = &mut group.members[member];
        // Not the newest of the times fed: an event drained late carries
        // an older time than a refresh fed before it, and sets the
        // deadline from it; the next refresh must see the kernel's newer
        // time as new and move the deadline back.
        fed.last_fed_ns = peer.last_seen_ns;
        fed.record = Some(*peer);
        input(
            group,
            member,
            Input::Advert(advert),
            Timestamp::from_nanos(peer.last_seen_ns),
            out,
        );
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers
            .peek()
            .map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Delivers every due timer. Identical adverts raise no event, so
    /// before a backup's Master_Down_Timer is believed, the kernel's record
    /// of the last advert is fed first: if the master spoke after we last
    /// looked, the timer simply moves. The decision thus rests on when the
    /// advert arrived, never on when this task happened to wake.
    ///
    /// A master reads the receive time at every advert it sends, too: if
    /// the ring-buffer event of a router that beats it was lost (the ring
    /// was full), the time moved and the record shows that router, and the
    /// master yields one advert interval later instead of staying a second
    /// master.
    ///
    /// The refresh reads only each router's receive time, from memory the
    /// kernel shares ([`PeerTable::last_seen`]): the rest of the record
    /// arrives as events. Once per [`FULL_READ_EVERY`] every full record is
    /// read instead, for a change whose event was lost unnoticed.
    pub fn on_timers(&mut self, now: Timestamp, peers: &mut dyn PeerTable) -> Vec<Effect> {
        let mut out = Vec::new();
        let full_read_due = self
            .last_full_read
            .is_none_or(|last| now >= last.saturating_add(FULL_READ_EVERY));
        if full_read_due && !self.groups.is_empty() {
            self.last_full_read = Some(now);
            for group in 0..self.groups.len() {
                self.refresh_from_kernel(group, peers, Refresh::Records, &mut out);
            }
        }
        let mut due = Vec::new();
        while let Some(Reverse((deadline, refresh_from, group))) = self.timers.peek().copied() {
            if deadline > now && refresh_from > now {
                break;
            }
            self.timers.pop();
            due.push((deadline, group));
        }
        // A group is served once, at its earliest due entry (the heap gives
        // them in order). Not `contains` per entry: a backup of 200
        // instances has them all due at once.
        let mut seen = vec![false; self.groups.len()];
        due.retain(|&(_, group)| !std::mem::replace(&mut seen[group], true));
        for (_, group) in due {
            self.refresh_from_kernel(group, peers, Refresh::Times, &mut out);
            let actions = self.groups[group].sync.expire_timers(now);
            apply(&mut self.groups[group], actions, &mut out);
            self.rearm(group);
        }
        if full_read_due {
            // The full read moved deadlines of groups that were not due.
            self.rearm_all();
        }
        out
    }

    /// From when a wake-up refreshes `group` from the kernel although its
    /// deadline is later: when all its members are backups, half a
    /// Master_Down_Interval before the deadline. This only feeds adverts
    /// the kernel already recorded (no timer expires early:
    /// `expire_timers` gets the real `now`), and it keeps the deadlines of
    /// backups whose masters advertise together in one wake-up: without
    /// it, a wake-up that happened to read the records in the middle of a
    /// master's burst of adverts splits the backups into groups one advert
    /// interval apart, each waking on its own, for good. Kept in the timer
    /// entry, so a wake-up decides without reading every group's state.
    fn refresh_from(&self, group: usize, deadline: Timestamp) -> Timestamp {
        let sync = &self.groups[group].sync;
        let mut horizon: Option<std::time::Duration> = None;
        for instance in sync.members() {
            if instance.state() != State::Backup {
                return deadline;
            }
            let half = instance.master_down_interval() / 2;
            horizon = Some(horizon.map_or(half, |shortest| shortest.min(half)));
        }
        match horizon {
            Some(horizon) => Timestamp::from_nanos(
                deadline
                    .as_nanos()
                    .saturating_sub(u64::try_from(horizon.as_nanos()).unwrap_or(u64::MAX)),
            ),
            None => deadline,
        }
    }

    fn refresh_from_kernel(
        &mut self,
        group: usize,
        peers: &mut dyn PeerTable,
        how: Refresh,
        out: &mut Vec<Effect>,
    ) {
        for member in 0..self.groups[group].members.len() {
            let state = self.groups[group].sync.member(member).map(Instance::state);
            if !matches!(state, Some(State::Backup | State::Master)) {
                continue;
            }
            let fed = &self.groups[group].members[member];
            let (key, last_fed_ns, record) = (fed.key, fed.last_fed_ns, fed.record);
            if how == Refresh::Times {
                match (peers.last_seen(&key), record) {
                    // Nothing since the last advert fed.
                    (Some(seen), _) if seen <= last_fed_ns => continue,
                    // The same advert again, later: no event was raised,
                    // so nothing but the time changed. Not for a master:
                    // a router heard while it is master may be one whose
                    // event was lost, so it reads the whole record below.
                    (Some(seen), Some(record)) if state == Some(State::Backup) => {
                        let again = PeerRecord {
                            last_seen_ns: seen,
                            ..record
                        };
                        self.feed_advert(group, member, &again, out);
                        continue;
                    }
                    // Nothing to repeat: the whole record is read below.
                    _ => {}
                }
            }
            let Some(peer) = peers.peer(&key) else {
                continue;
            };
            let differs = record.is_none_or(|record| !same_advert(&record, &peer));
            if peer.last_seen_ns > last_fed_ns || (how == Refresh::Records && differs) {
                self.feed_advert(group, member, &peer, out);
            }
        }
    }

    /// A tracked script, interface or file changed.
    pub fn on_tracked(&mut self, source: &TrackedSource, up: bool, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        self.tracked(source, up, now, &mut out);
        self.rearm_all();
        out
    }

    fn tracked(&mut self, source: &TrackedSource, up: bool, now: Timestamp, out: &mut Vec<Effect>) {
        for group in &mut self.groups {
            for member in 0..group.members.len() {
                let items: Vec<usize> = group.members[member]
                    .plan
                    .tracked
                    .iter()
                    .enumerate()
                    .filter(|(item, tracked)| {
                        *tracked == source && group.members[member].tracked_up[*item] != up
                    })
                    .map(|(item, _)| item)
                    .collect();
                for item in items {
                    group.members[member].tracked_up[item] = up;
                    input(group, member, Input::Tracked { item, up }, now, out);
                }
            }
        }
    }

    /// The VRRP interface of some instances (and any tracker of it) went
    /// up or down.
    pub fn on_interface(&mut self, name: &str, up: bool, now: Timestamp) -> Vec<Effect> {
        let mut out = self.on_instance_interface(name, up, now);
        out.extend(self.on_tracked_interface(name, up, now));
        out
    }

    /// The link state of `name`, for `track_interface` only.
    pub fn on_tracked_interface(&mut self, name: &str, up: bool, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        self.tracked(
            &TrackedSource::Interface(name.to_owned()),
            up,
            now,
            &mut out,
        );
        self.rearm_all();
        out
    }

    /// Whether the instances running on `name` can use it: an interface
    /// with no address to advertise from cannot carry VRRP, yet its link is
    /// up, so a `track_interface` on it (keepalived: link state only) does
    /// not hear about it.
    pub fn on_instance_interface(&mut self, name: &str, up: bool, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        for group in &mut self.groups {
            for member in 0..group.members.len() {
                if group.members[member].plan.interface == name {
                    let event = if up {
                        Input::InterfaceUp
                    } else {
                        Input::InterfaceDown
                    };
                    input(group, member, event, now, &mut out);
                }
            }
        }
        self.rearm_all();
        out
    }

    /// The virtual routers this node is master of, with how long a backup
    /// may take to succeed it (Master_Down_Interval) and the advert
    /// interval: what a graceful stop waits on before it lets go of the
    /// datapath.
    pub fn masters(&self) -> Vec<(PeerKey, std::time::Duration, std::time::Duration)> {
        self.groups
            .iter()
            .flat_map(|group| {
                group
                    .members
                    .iter()
                    .enumerate()
                    .filter_map(|(index, member)| {
                        let instance = group.sync.member(index)?;
                        (instance.state() == State::Master).then(|| {
                            (
                                member.plan.datapath_key(),
                                instance.master_down_interval(),
                                instance.advert_interval().as_duration(),
                            )
                        })
                    })
            })
            .collect()
    }

    /// RFC 5798 shutdown for every instance: priority-0 adverts from
    /// masters, VIPs released, notify_stop queued.
    pub fn shutdown(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        for group in &mut self.groups {
            let actions = group.sync.shutdown(now);
            apply(group, actions, &mut out);
        }
        self.timers.clear();
        out
    }

    fn rearm(&mut self, group: usize) {
        if let Some(deadline) = self.groups[group].sync.next_deadline() {
            let refresh_from = self.refresh_from(group, deadline);
            self.timers.push(Reverse((deadline, refresh_from, group)));
        }
    }

    /// Stale heap entries are harmless (the election checks against its own
    /// deadline), but one per input would grow the heap without bound.
    fn rearm_all(&mut self) {
        self.timers.clear();
        for group in 0..self.groups.len() {
            self.rearm(group);
        }
    }

    /// Rebuilds the key index and the timer heap after groups moved.
    fn reindex(&mut self) {
        self.by_key.clear();
        for (group_index, group) in self.groups.iter().enumerate() {
            for (member_index, member) in group.members.iter().enumerate() {
                debug_assert_eq!(member.key, member.plan.datapath_key(), "stale member key");
                self.by_key.insert(member.key, (group_index, member_index));
            }
        }
        self.rearm_all();
    }
}

/// Whether two records describe the same advert (they may differ in when
/// it arrived and how many came).
fn same_advert(a: &PeerRecord, b: &PeerRecord) -> bool {
    (
        a.source,
        a.version,
        a.checksum_form,
        a.interval_cs,
        a.priority,
    ) == (
        b.source,
        b.version,
        b.checksum_form,
        b.interval_cs,
        b.priority,
    )
}

fn input(group: &mut Group, member: usize, event: Input, at: Timestamp, out: &mut Vec<Effect>) {
    match group.sync.handle(member, event, at) {
        Ok(actions) => apply(group, actions, out),
        Err(error) => warn!(%error, "election input rejected"),
    }
}

/// Tells the kernel the same state for every address of an instance.
fn guard(plan: &InstancePlan, state: VipState, out: &mut Vec<Effect>) {
    out.extend(plan.vips.iter().map(|vip| Effect::Vip {
        address: vip.address,
        instance: plan.datapath_key(),
        state,
        vmac: plan.vmac,
    }));
}

/// Turns the elections' actions into effects, in order.
fn apply(group: &mut Group, actions: Vec<MemberAction>, out: &mut Vec<Effect>) {
    for MemberAction { member, action } in actions {
        apply_one(group, member, action, out);
    }
    notify_group(group, out);
}

fn apply_one(group: &mut Group, index: usize, action: Action, out: &mut Vec<Effect>) {
    let member = &group.members[index];
    let plan = &member.plan;
    match action {
        Action::SendAdvert { priority, interval } => out.push(Effect::SendAdvert {
            member: member.id,
            plan: Arc::clone(plan),
            priority,
            interval,
        }),
        Action::SendYieldingAdvert { priority, interval } => {
            out.push(Effect::SendYieldingAdvert {
                member: member.id,
                plan: Arc::clone(plan),
                priority,
                interval,
            });
        }
        Action::RefreshNeighbours => {
            if plan.notify.master_rx_lower_pri.is_some() {
                out.push(Effect::MasterRxLowerPri {
                    owner: HookOwner::Instance(member.id),
                    name: plan.name.clone(),
                });
            }
            refresh_neighbours(group, out);
        }
        Action::AddVips { accept_traffic } => {
            // The guard opens first: from here on frames from the VIPs may leave.
            guard(plan, VipState::master(accept_traffic), out);
            out.push(Effect::AddAddresses {
                plan: Arc::clone(plan),
                addresses: plan.vips.clone(),
                routes: plan.routes.clone(),
            });
        }
        Action::RemoveVips => {
            out.push(Effect::StopAnnounce {
                member: member.id,
                name: plan.name.clone(),
            });
            guard(plan, VipState::NotOwned, out);
            out.push(Effect::RemoveAddresses {
                plan: Arc::clone(plan),
                addresses: plan.vips.clone(),
                routes: plan.routes.clone(),
            });
        }
        Action::SendGratuitous => out.push(Effect::Announce {
            member: member.id,
            plan: Arc::clone(plan),
            addresses: plan.vips.iter().map(|vip| vip.address).collect(),
        }),
        Action::StateChanged { from, to, reason } => {
            let priority = group
                .sync
                .member(index)
                .map_or(0, Instance::effective_priority);
            out.push(Effect::StateChanged {
                member: member.id,
                key: plan.datapath_key(),
                name: plan.name.clone(),
                from,
                to,
                reason,
                priority,
            });
            if let Some(state) = notify_state(to, reason) {
                out.push(Effect::Notify {
                    owner: HookOwner::Instance(member.id),
                    name: plan.name.clone(),
                    state,
                    priority,
                });
            }
            if to == State::Master {
                out.push(Effect::ForgetPeer {
                    key: plan.datapath_key(),
                });
                // The kernel forgets it: the next advert's record is read
                // whole, not repeated from this one.
                group.members[index].record = None;
            }
        }
        Action::MasterChanged(master) => {
            debug!(instance = %plan.name, ?master, "master changed");
        }
        Action::PriorityChanged { from, to } => out.push(Effect::PriorityChanged {
            name: plan.name.clone(),
            from,
            to,
        }),
    }
}

/// keepalived's answer to a lower-priority master: the
/// `garp_lower_prio_repeat` bursts of every master of the group that has
/// them, not only of the member that heard the advert. The other router's
/// members all yield on our adverts, so the rest of the group hears no
/// lower-priority advert of its own, yet the neighbours followed the other
/// router for those addresses too.
fn refresh_neighbours(group: &Group, out: &mut Vec<Effect>) {
    for (index, member) in group.members.iter().enumerate() {
        let is_master = group.sync.member(index).map(Instance::state) == Some(State::Master);
        if is_master && member.plan.garp.lower_prio_repeat > 0 {
            out.push(Effect::AnnounceLowerPriority {
                member: member.id,
                plan: Arc::clone(&member.plan),
                addresses: member.plan.vips.iter().map(|vip| vip.address).collect(),
            });
        }
    }
}

/// A sync group's own notify hooks fire once all members agree on a state
/// other than the one last announced; the states are read after a whole
/// batch, so a group passing through several states in one input announces
/// only where it ended.
fn notify_group(group: &mut Group, out: &mut Vec<Effect>) {
    let Some(name) = group.name.clone() else {
        return;
    };
    let mut states = group.sync.members().iter().map(Instance::state);
    let Some(first) = states.next() else {
        return;
    };
    if states.any(|state| state != first) || group.notified == Some(first) {
        return;
    }
    group.notified = Some(first);
    if let Some(state) = notify_state(first, Reason::SyncGroup) {
        out.push(Effect::Notify {
            owner: HookOwner::Group(group.id),
            name: name.clone(),
            state,
            priority: 0,
        });
    }
}
