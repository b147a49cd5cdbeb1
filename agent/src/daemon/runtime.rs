//! The one task that owns every instance's election state. Everything else
//! (ring buffer, netlink, scripts, signals, the control socket) reaches it
//! through channels; it carries out the elections' actions.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use agent_common::{PEER_FLAG_PSEUDO_HEADER_CHECKSUM, PeerEvent, PeerKey, PeerState};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::{
    advert_socket::AdvertSocket,
    control::{InstanceStatus, StatusReport, TrackedStatus},
    datapath::{Datapath, VipState, kernel_now_ns, key_to_address},
    frame_socket::FrameSocket,
    notify::{NotifyQueue, NotifyState, Transition},
    vrrp::{
        ChecksumForm, Version,
        election::{Action, Advert, Input, MemberAction, Reason, State, SyncGroup, Timestamp},
    },
};

use super::{
    adverts::AdvertCache,
    announce,
    netops::{self, NetCommand, VirtualSet},
    plan::{GroupPlan, InstancePlan, TrackedSource},
};

/// One instance's runtime companions.
pub struct Member {
    pub plan: InstancePlan,
    adverts: AdvertCache,
    announcer: Option<JoinHandle<()>>,
    notify: NotifyQueue,
    /// Kernel receive time of the newest advert fed to the election.
    last_fed_ns: u64,
    last_transition_unix: Option<u64>,
    /// Current state of each tracked item, for status.
    tracked_up: Vec<bool>,
}

pub struct Group {
    pub name: Option<String>,
    pub sync: SyncGroup,
    pub members: Vec<Member>,
    notify: Option<NotifyQueue>,
}

/// What the owner needs to build a member.
pub struct MemberParts {
    pub plan: InstancePlan,
    pub notify: NotifyQueue,
}

/// An advert socket is per (ifindex, source address).
type SocketKey = (u32, IpAddr);
/// An encoded advert and its destination.
type Outgoing = (Vec<u8>, IpAddr);

pub struct Runtime {
    pub router_id: String,
    pub groups: Vec<Group>,
    by_key: HashMap<PeerKey, (usize, usize)>,
    timers: BinaryHeap<Reverse<(Timestamp, usize)>>,
    pub datapath: Datapath,
    sockets: HashMap<SocketKey, AdvertSocket>,
    frames: HashMap<u32, Arc<FrameSocket>>,
    /// Adverts to send at the end of this turn, batched per socket.
    outbox: HashMap<SocketKey, Vec<Outgoing>>,
    net: mpsc::UnboundedSender<NetCommand>,
    garp_spacing: Duration,
}

pub fn now() -> Timestamp {
    Timestamp::from_nanos(kernel_now_ns())
}

fn notify_state(state: State, reason: Reason) -> Option<NotifyState> {
    match (state, reason) {
        (State::Master, _) => Some(NotifyState::Master),
        (State::Backup, _) => Some(NotifyState::Backup),
        (State::Fault, _) => Some(NotifyState::Fault),
        (State::Initialize, Reason::Shutdown) => Some(NotifyState::Stop),
        (State::Initialize, _) => None,
    }
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

impl Runtime {
    pub fn new(
        router_id: String,
        datapath: Datapath,
        net: mpsc::UnboundedSender<NetCommand>,
        garp_spacing: Duration,
    ) -> Self {
        Self {
            router_id,
            groups: Vec::new(),
            by_key: HashMap::new(),
            timers: BinaryHeap::new(),
            datapath,
            sockets: HashMap::new(),
            frames: HashMap::new(),
            outbox: HashMap::new(),
            net,
            garp_spacing,
        }
    }

    pub fn add_socket(&mut self, ifindex: u32, source: IpAddr, socket: AdvertSocket) {
        self.sockets.insert((ifindex, source), socket);
    }

    pub fn has_socket(&self, ifindex: u32, source: IpAddr) -> bool {
        self.sockets.contains_key(&(ifindex, source))
    }

    pub fn add_frame_socket(&mut self, ifindex: u32, socket: FrameSocket) {
        self.frames.insert(ifindex, Arc::new(socket));
    }

    pub fn has_frame_socket(&self, ifindex: u32) -> bool {
        self.frames.contains_key(&ifindex)
    }

    /// Queues the removal of configured addresses a previous run left behind;
    /// the netlink task handles it before any later request.
    pub fn remove_stale_addresses(&mut self, plan: &super::plan::Plan) {
        let stale = plan
            .instances()
            .flat_map(|instance| {
                instance
                    .vips
                    .iter()
                    .map(|vip| netops::address(vip, &instance.interface, instance.ifindex))
            })
            .collect();
        let _ = self.net.send(NetCommand::RemoveStale(stale));
    }

    /// Adds a group (already validated by planning) and starts it.
    pub fn start_group(
        &mut self,
        plan: &GroupPlan,
        members: Vec<MemberParts>,
        group_notify: Option<NotifyQueue>,
    ) -> Result<(), String> {
        let instances = members
            .iter()
            .map(|parts| {
                crate::vrrp::election::Instance::new(&parts.plan.election)
                    .map_err(|error| format!("vrrp_instance {}: {error}", parts.plan.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sync = SyncGroup::new(instances).map_err(|error| error.to_string())?;
        let index = self.groups.len();
        let members: Vec<Member> = members
            .into_iter()
            .map(|parts| Member {
                tracked_up: parts
                    .plan
                    .election
                    .tracked
                    .iter()
                    .map(|item| item.initially_up)
                    .collect(),
                plan: parts.plan,
                adverts: AdvertCache::new(),
                announcer: None,
                notify: parts.notify,
                last_fed_ns: 0,
                last_transition_unix: None,
            })
            .collect();
        for (position, member) in members.iter().enumerate() {
            self.by_key
                .insert(member.plan.datapath_key(), (index, position));
        }
        self.groups.push(Group {
            name: plan.name.clone(),
            sync,
            members,
            notify: group_notify,
        });
        let actions = self.groups[index].sync.start(now());
        self.apply(index, actions);
        Ok(())
    }

    /// A ring-buffer event: something about a peer changed.
    pub fn on_peer_event(&mut self, event: &PeerEvent) {
        let Some(&(group, member)) = self.by_key.get(&event.key) else {
            debug!(
                vrid = event.key.vrid,
                "event for a virtual router we do not run"
            );
            return;
        };
        self.feed_advert(group, member, &event.key, &event.state);
    }

    fn feed_advert(&mut self, group: usize, member: usize, key: &PeerKey, state: &PeerState) {
        let advert = Advert {
            priority: state.priority,
            source: key_to_address(key.family, state.source),
            interval_cs: state.interval_cs,
            version: if state.version == 2 {
                Version::V2
            } else {
                Version::V3
            },
            checksum: if state.flags & PEER_FLAG_PSEUDO_HEADER_CHECKSUM != 0 {
                ChecksumForm::WithPseudoHeader
            } else {
                ChecksumForm::MessageOnly
            },
        };
        self.groups[group].members[member].last_fed_ns = state.last_seen_ns;
        self.input(
            group,
            member,
            Input::Advert(advert),
            Timestamp::from_nanos(state.last_seen_ns),
        );
    }

    pub fn input(&mut self, group: usize, member: usize, input: Input, at: Timestamp) {
        match self.groups[group].sync.handle(member, input, at) {
            Ok(actions) => self.apply(group, actions),
            Err(error) => warn!(%error, "election input rejected"),
        }
    }

    /// When the heap's next deadline is due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Delivers every due timer. Identical adverts raise no event, so
    /// before a backup's Master_Down_Timer is believed, the kernel's record
    /// of the last advert is fed first: if the master spoke after we last
    /// looked, the timer simply moves. The decision thus rests on when the
    /// advert arrived, never on when this task happened to wake.
    pub fn on_timers(&mut self) {
        let now = now();
        let mut due = Vec::new();
        while let Some(Reverse((deadline, group))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if !due.contains(&group) {
                due.push(group);
            }
        }
        for group in due {
            self.refresh_from_kernel(group);
            let actions = self.groups[group].sync.expire_timers(now);
            self.apply(group, actions);
        }
    }

    fn refresh_from_kernel(&mut self, group: usize) {
        for member in 0..self.groups[group].members.len() {
            let state = self.groups[group].sync.member(member).map(|i| i.state());
            if state != Some(State::Backup) {
                continue;
            }
            let key = self.groups[group].members[member].plan.datapath_key();
            match self.datapath.peer(&key) {
                Ok(Some(peer))
                    if peer.last_seen_ns > self.groups[group].members[member].last_fed_ns =>
                {
                    self.feed_advert(group, member, &key, &peer);
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "reading the kernel's peer record failed"),
            }
        }
    }

    fn rearm(&mut self, group: usize) {
        if let Some(deadline) = self.groups[group].sync.next_deadline() {
            self.timers.push(Reverse((deadline, group)));
        }
    }

    /// A tracked script, interface or file changed.
    pub fn on_tracked(&mut self, source: &TrackedSource, up: bool) {
        let now = now();
        let mut inputs = Vec::new();
        for (group_index, group) in self.groups.iter_mut().enumerate() {
            for (member_index, member) in group.members.iter_mut().enumerate() {
                for (item, tracked) in member.plan.tracked.iter().enumerate() {
                    if tracked == source && member.tracked_up[item] != up {
                        member.tracked_up[item] = up;
                        inputs.push((group_index, member_index, Input::Tracked { item, up }));
                    }
                }
            }
        }
        for (group, member, input) in inputs {
            self.input(group, member, input, now);
        }
    }

    /// The VRRP interface of some instances went up or down.
    pub fn on_interface(&mut self, name: &str, up: bool) {
        let now = now();
        let mut inputs = Vec::new();
        for (group_index, group) in self.groups.iter().enumerate() {
            for (member_index, member) in group.members.iter().enumerate() {
                if member.plan.interface == name {
                    let input = if up {
                        Input::InterfaceUp
                    } else {
                        Input::InterfaceDown
                    };
                    inputs.push((group_index, member_index, input));
                }
            }
        }
        for (group, member, input) in inputs {
            self.input(group, member, input, now);
        }
        self.on_tracked(&TrackedSource::Interface(name.to_owned()), up);
    }

    fn apply(&mut self, group: usize, actions: Vec<MemberAction>) {
        for MemberAction { member, action } in actions {
            self.apply_one(group, member, action);
        }
        self.rearm(group);
    }

    fn apply_one(&mut self, group: usize, member_index: usize, action: Action) {
        match action {
            Action::SendAdvert { priority, interval } => {
                let member = &mut self.groups[group].members[member_index];
                match member.adverts.messages(&member.plan, priority, interval) {
                    Ok(messages) => self
                        .outbox
                        .entry((member.plan.ifindex, member.plan.source))
                        .or_default()
                        .extend(messages.iter().cloned()),
                    Err(error) => {
                        warn!(instance = %member.plan.name, %error, "cannot encode advert")
                    }
                }
            }
            Action::AddVips { accept_traffic } => {
                // The guard opens first: from here on frames from the VIPs may
                // leave; in no-accept mode, packets to them are dropped.
                self.set_guard(group, member_index, VipState::master(accept_traffic));
                let plan = &self.groups[group].members[member_index].plan;
                debug!(instance = %plan.name, accept_traffic, "virtual addresses requested");
                let _ = self.net.send(NetCommand::Add(VirtualSet::of(plan)));
            }
            Action::RemoveVips => {
                if let Some(announcer) = self.groups[group].members[member_index].announcer.take() {
                    announcer.abort();
                }
                self.set_guard(group, member_index, VipState::NotOwned);
                let plan = &self.groups[group].members[member_index].plan;
                let _ = self.net.send(NetCommand::Remove(VirtualSet::of(plan)));
            }
            Action::SendGratuitous => {
                let spacing = self.garp_spacing;
                let member = &mut self.groups[group].members[member_index];
                if let Some(previous) = member.announcer.take() {
                    previous.abort();
                }
                if let Some(socket) = self.frames.get(&member.plan.ifindex) {
                    let schedule = announce::Schedule::from_settings(&member.plan.garp, spacing);
                    member.announcer = Some(announce::spawn(
                        Arc::clone(socket),
                        announce::frames(&member.plan),
                        schedule,
                    ));
                }
            }
            Action::StateChanged { from, to, reason } => {
                let priority = self.groups[group]
                    .sync
                    .member(member_index)
                    .map_or(0, |instance| instance.effective_priority());
                let member = &mut self.groups[group].members[member_index];
                member.last_transition_unix = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|elapsed| elapsed.as_secs());
                info!(
                    instance = %member.plan.name,
                    from = state_name(from),
                    to = state_name(to),
                    ?reason,
                    priority,
                    "state change"
                );
                let key = member.plan.datapath_key();
                if let Some(state) = notify_state(to, reason) {
                    member.notify.notify(Transition { state, priority });
                }
                if to == State::Master {
                    // So a returning peer whose adverts look as before still
                    // raises an event.
                    if let Err(error) = self.datapath.forget_peer(&key) {
                        warn!(%error, "clearing the kernel's peer record failed");
                    }
                }
                self.notify_group(group);
            }
            // `apply` re-arms the group from `next_deadline` after every batch.
            Action::ArmTimer(_) | Action::DisarmTimer => {}
            Action::MasterChanged(master) => {
                let member = &self.groups[group].members[member_index];
                debug!(instance = %member.plan.name, ?master, "master changed");
            }
            Action::PriorityChanged { from, to } => {
                let member = &self.groups[group].members[member_index];
                info!(instance = %member.plan.name, from, to, "effective priority changed");
            }
        }
    }

    /// Opens or closes the guard for every address of an instance.
    fn set_guard(&mut self, group: usize, member: usize, state: VipState) {
        for vip in &self.groups[group].members[member].plan.vips {
            if let Err(error) = self.datapath.set_vip_state(vip.address, state) {
                warn!(%error, ?state, "updating the VIP guard failed");
            }
        }
    }

    /// A sync group's own notify hooks fire once all members agree.
    fn notify_group(&mut self, group: usize) {
        let states: Vec<State> = self.groups[group]
            .sync
            .members()
            .iter()
            .map(|instance| instance.state())
            .collect();
        let Some(first) = states.first().copied() else {
            return;
        };
        if states.iter().any(|state| *state != first) {
            return;
        }
        if let Some(queue) = self.groups[group].notify.as_mut()
            && let Some(state) = notify_state(first, Reason::SyncGroup)
        {
            queue.notify(Transition { state, priority: 0 });
        }
    }

    /// Sends everything queued this turn, one `sendmmsg` per socket.
    pub fn flush(&mut self) {
        for (key, messages) in self.outbox.iter_mut() {
            if messages.is_empty() {
                continue;
            }
            let Some(socket) = self.sockets.get(key) else {
                messages.clear();
                continue;
            };
            let batch: Vec<(&[u8], IpAddr)> = messages
                .iter()
                .map(|(bytes, destination)| (bytes.as_slice(), *destination))
                .collect();
            let mut sent = 0;
            while sent < batch.len() {
                match socket.send_batch(&batch[sent..]) {
                    Ok(0) => break,
                    Ok(count) => sent += count,
                    Err(error) => {
                        warn!(interface = socket.interface(), %error, "sending adverts failed");
                        break;
                    }
                }
            }
            messages.clear();
        }
    }

    /// RFC 5798 shutdown for every instance: priority-0 adverts from
    /// masters, VIPs released, notify_stop queued.
    pub fn shutdown_all(&mut self) {
        let now = now();
        for group in 0..self.groups.len() {
            let actions = self.groups[group].sync.shutdown(now);
            self.apply(group, actions);
        }
        self.flush();
    }

    /// Stops one group (reload removed it): shutdown, then forget it.
    pub fn stop_group(&mut self, group: usize) -> Vec<NotifyQueue> {
        let actions = self.groups[group].sync.shutdown(now());
        self.apply(group, actions);
        self.flush();
        let removed = self.groups.remove(group);
        let mut queues = Vec::new();
        for member in removed.members {
            if let Some(announcer) = member.announcer {
                announcer.abort();
            }
            if let Err(error) = self
                .datapath
                .remove_instance_filter(&member.plan.datapath_key())
            {
                warn!(%error, "removing the kernel filter of a removed instance failed");
            }
            for vip in &member.plan.vips {
                let _ = self.datapath.forget_vip(vip.address);
            }
            queues.push(member.notify);
        }
        queues.extend(removed.notify);
        self.reindex();
        queues
    }

    /// Rebuilds the key index and the timer heap after groups moved.
    pub fn reindex(&mut self) {
        self.by_key.clear();
        self.timers.clear();
        for (group_index, group) in self.groups.iter().enumerate() {
            for (member_index, member) in group.members.iter().enumerate() {
                self.by_key
                    .insert(member.plan.datapath_key(), (group_index, member_index));
            }
            if let Some(deadline) = group.sync.next_deadline() {
                self.timers.push(Reverse((deadline, group_index)));
            }
        }
    }

    /// Drains every notify queue (scripts still queued run first).
    pub async fn close_notify_queues(&mut self) {
        let mut queues = Vec::new();
        for group in self.groups.drain(..) {
            queues.extend(group.notify);
            for member in group.members {
                if let Some(announcer) = member.announcer {
                    announcer.abort();
                }
                queues.push(member.notify);
            }
        }
        for queue in queues {
            queue.shutdown().await;
        }
    }

    pub fn status(&mut self) -> StatusReport {
        let now_ns = kernel_now_ns();
        let counters = self
            .datapath
            .counters()
            .map(|snapshot| {
                agent_common::Counter::ALL
                    .iter()
                    .map(|counter| (counter.name().to_owned(), snapshot.get(*counter)))
                    .collect()
            })
            .unwrap_or_default();
        let mut instances = Vec::new();
        for group in &self.groups {
            for (index, member) in group.members.iter().enumerate() {
                let Some(instance) = group.sync.member(index) else {
                    continue;
                };
                let plan = &member.plan;
                let peer = self.datapath.peer(&plan.datapath_key()).ok().flatten();
                let master_address = if instance.state() == State::Master {
                    Some(plan.source.to_string())
                } else {
                    instance.master_address().map(|address| address.to_string())
                };
                instances.push(InstanceStatus {
                    name: plan.name.clone(),
                    interface: plan.interface.clone(),
                    vrid: plan.election.vrid,
                    family: match plan.family {
                        crate::vrrp::wire::AddressFamily::Ipv4 => "ipv4".into(),
                        crate::vrrp::wire::AddressFamily::Ipv6 => "ipv6".into(),
                    },
                    version: if plan.version == Version::V2 { 2 } else { 3 },
                    state: state_name(instance.state()).into(),
                    base_priority: instance.base_priority(),
                    effective_priority: instance.effective_priority(),
                    master_address,
                    last_advert_age_ms: peer
                        .map(|peer| now_ns.saturating_sub(peer.last_seen_ns) / 1_000_000),
                    advert_interval_ms: u32::from(instance.advert_interval().centiseconds()) * 10,
                    virtual_addresses: plan
                        .vips
                        .iter()
                        .map(|vip| format!("{}/{}", vip.address, vip.prefix_len))
                        .collect(),
                    tracked: plan
                        .tracked
                        .iter()
                        .zip(&plan.election.tracked)
                        .zip(&member.tracked_up)
                        .map(|((source, item), up)| {
                            let (kind, name) = match source {
                                TrackedSource::Script(name) => ("script", name),
                                TrackedSource::Interface(name) => ("interface", name),
                                TrackedSource::File(name) => ("file", name),
                            };
                            TrackedStatus {
                                kind: kind.into(),
                                name: name.clone(),
                                status: if *up { "up".into() } else { "down".into() },
                                weight: item.weight,
                            }
                        })
                        .collect(),
                    transitions: instance.counters().transitions,
                    last_transition_unix: member.last_transition_unix,
                });
            }
        }
        StatusReport {
            router_id: self.router_id.clone(),
            pid: std::process::id(),
            instances,
            counters,
        }
    }
}
