//! The one task that owns every instance's election state. Everything else
//! (ring buffer, netlink, scripts, signals, the control socket) reaches it
//! through channels. The decisions live in [`Core`]; this side carries out
//! its effects: sockets, kernel maps, netlink requests, hooks, trackers.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use agent_common::{Heartbeat, PeerKey, PeerState};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    advert_socket::AdvertSocket,
    config::model::GlobalDefs,
    control::{InstanceStatus, StatusReport, TrackedStatus},
    daemon::peer_batch::PeerBatch,
    datapath::{Datapath, PeerRecord, VipState, address_to_key, kernel_now_ns},
    frame_socket::FrameSocket,
    metrics::{self, InstanceMetrics, NotifyTotals},
    netlink::unicast_filter::{self, Change},
    notify::{
        MailHook, Mailer, NotifyQueue, QueueLimits, Scope, ScriptTotals, Transition,
        mail::MailStats,
    },
    tracking::{
        FileEvent, InitFile, MonitorOptions, ProcessMonitor, QuorumChange, ScriptEvent,
        TrackFileSpec, file::DEFAULT_POLL_INTERVAL, spawn_file_tracker, spawn_script_tracker,
    },
    vrrp::{
        Version,
        election::{Instance, State, Timestamp, master_down_interval},
    },
};

use super::{
    Event,
    adverts::AdvertCache,
    announce,
    core::{Core, Effect, HookOwner, MemberId, PeerTable},
    hooks,
    netops::{self, NetCommand, VirtualSet},
    plan::{InstancePlan, NotifyPlan, Plan, TrackedSource, TrackerConfig},
    script_up,
};

/// An advert socket is per (ifindex, source address).
type SocketKey = (u32, IpAddr);
/// An encoded advert and its destination.
/// Bytes, destination, and the TTL / hop limit when the instance sets
/// one for its unicast peers.
type Outgoing = (Vec<u8>, IpAddr, Option<u8>);

pub fn now() -> Timestamp {
    Timestamp::from_nanos(kernel_now_ns())
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

/// Settings hooks and announcements are built from; replaced on reload.
pub struct HookEnv {
    pub global: GlobalDefs,
    pub hostname: String,
    pub mailer: Option<Mailer>,
    /// The mailer's sending task: a stop waits (bounded) for it to deliver
    /// what is queued, notify_stop's mail included. The daemon runs on one
    /// thread, so nothing sends while the stop does not wait for it.
    mail_worker: Option<JoinHandle<MailStats>>,
}

/// The settings the mailer is built from.
fn mail_settings(
    global: &GlobalDefs,
) -> (
    &Option<crate::config::model::SmtpServer>,
    &Vec<String>,
    &Option<String>,
    Duration,
) {
    (
        &global.smtp_server,
        &global.notification_email,
        &global.notification_email_from,
        global.smtp_connect_timeout,
    )
}

impl HookEnv {
    /// A reload's `global_defs`; the mailer is rebuilt only when its own
    /// settings changed (the hooks that use it are rebuilt with it).
    pub fn replace_globals(&mut self, global: GlobalDefs) {
        if mail_settings(&self.global) != mail_settings(&global) {
            // The old mailer still sends what it has queued, then ends.
            (self.mailer, self.mail_worker) = hooks::mailer(&global, &self.hostname).unzip();
        }
        self.global = global;
    }

    /// `router_id` from `global_defs`, else the host name, as keepalived.
    pub fn router_id(&self) -> String {
        self.global
            .router_id
            .clone()
            .unwrap_or_else(|| self.hostname.clone())
    }

    pub fn new(global: GlobalDefs, hostname: String) -> Self {
        let (mailer, mail_worker) = hooks::mailer(&global, &hostname).unzip();
        Self {
            global,
            hostname,
            mailer,
            mail_worker,
        }
    }
}

pub struct Runtime {
    pub core: Core,
    pub datapath: Datapath,
    /// Interfaces the programs are attached to, with their index.
    attached: HashMap<String, u32>,
    sockets: HashMap<SocketKey, AdvertSocket>,
    frames: HashMap<u32, Arc<FrameSocket>>,
    /// Adverts to send at the end of this turn, batched per socket.
    outbox: HashMap<SocketKey, Vec<Outgoing>>,
    adverts: HashMap<MemberId, AdvertCache>,
    announcers: HashMap<MemberId, JoinHandle<()>>,
    /// Answers to this turn's address adds, by instance: the announcement
    /// that follows an add waits for its answer.
    addresses_added: HashMap<String, oneshot::Receiver<()>>,
    lower_priority_bursts: announce::LowerPriorityBursts<MemberId>,
    hooks: HashMap<HookOwner, NotifyQueue>,
    trackers: HashMap<TrackedSource, CancellationToken>,
    tracker_root: CancellationToken,
    script_events: mpsc::Sender<ScriptEvent>,
    file_events: mpsc::Sender<FileEvent>,
    process_events: mpsc::Sender<QuorumChange>,
    /// Started with the first `track_process`; one for every tracker.
    process_monitor: Option<ProcessMonitor>,
    /// `--process-events-netns`.
    process_events_netns: Option<std::path::PathBuf>,
    last_transition_unix: HashMap<MemberId, u64>,
    /// Transitions by the state entered, for the metrics.
    transitions_to: HashMap<MemberId, BTreeMap<&'static str, u64>>,
    /// Per virtual router: the master last seen (another router's advert
    /// source, or ours once we became master) and how often it changed.
    masters_seen: HashMap<PeerKey, (IpAddr, u64)>,
    /// State changes performed since start: the daemon re-sends its status
    /// line to systemd when this moves.
    state_changes: u64,
    /// Notify scripts of every queue, by outcome.
    notify_totals: Arc<ScriptTotals>,
    net: mpsc::UnboundedSender<NetCommand>,
    pub env: HookEnv,
    /// A heartbeat was written this turn: the fence window moves at flush.
    advertised: bool,
    peer_batch: BatchState,
    /// What this daemon wrote to `LOCAL_ADDRESSES`.
    local_addresses: HashSet<IpAddr>,
    /// The kernel's `event_lost` counter when last read: when it moves,
    /// events were lost and every instance is resynced (see
    /// [`Runtime::on_events_drained`]).
    events_lost: u64,
    /// Virtual MACs this daemon put in an interface's unicast filter
    /// (`use_vmac`), with the owned addresses that answer with each.
    vmac_filters: HashMap<(u32, [u8; 6]), HashSet<IpAddr>>,
}

/// What a graceful stop waits on: the routers this node resigned from, when.
pub struct Successors {
    resigned_ns: u64,
    masters: Vec<(PeerKey, Duration, Duration)>,
}

/// Lookups of one turn read one at a time before the rest are served from
/// a snapshot of the whole map: a few due timers cost a few small syscalls,
/// 200 due timers one batch read.
const SINGLE_LOOKUPS: usize = 2;

/// The kernel's peer records, as the core reads them during one turn.
struct KernelPeers<'a> {
    datapath: &'a mut Datapath,
    batch: &'a mut BatchState,
    /// Lookups served one at a time before the snapshot is read.
    single_lookups: usize,
    lookups: usize,
    /// The batch holds a read taken during this turn.
    snapshot: bool,
}

/// Whether the batch reader is open, not tried yet, or not usable (then
/// every lookup is a single one).
enum BatchState {
    Untried,
    Ready(PeerBatch),
    Unavailable,
}

impl<'a> KernelPeers<'a> {
    /// A reader for one turn: the batch is read at most once in it.
    fn new(datapath: &'a mut Datapath, batch: &'a mut BatchState) -> Self {
        Self {
            datapath,
            batch,
            single_lookups: SINGLE_LOOKUPS,
            lookups: 0,
            snapshot: false,
        }
    }

    /// A reader that serves every lookup from one read of the whole map:
    /// a resync asks for every instance's record.
    fn whole_map(datapath: &'a mut Datapath, batch: &'a mut BatchState) -> Self {
        Self {
            single_lookups: 0,
            ..Self::new(datapath, batch)
        }
    }

    fn snapshot_lookup(&mut self, key: &PeerKey) -> Option<Option<PeerState>> {
        if matches!(self.batch, BatchState::Untried) {
            *self.batch = match PeerBatch::open() {
                Ok(batch) => BatchState::Ready(batch),
                Err(error) => {
                    warn!(%error, "batch reads of the kernel's peer records unavailable; reading one at a time");
                    BatchState::Unavailable
                }
            };
        }
        let BatchState::Ready(batch) = self.batch else {
            return None;
        };
        if !self.snapshot {
            if let Err(error) = batch.read() {
                warn!(%error, "batch read of the kernel's peer records failed; reading one at a time");
                *self.batch = BatchState::Unavailable;
                return None;
            }
            self.snapshot = true;
        }
        Some(batch.get(key))
    }
}

impl PeerTable for KernelPeers<'_> {
    fn peer(&mut self, key: &PeerKey) -> Option<PeerRecord> {
        self.lookups += 1;
        let state = if self.lookups > self.single_lookups
            && let Some(state) = self.snapshot_lookup(key)
        {
            state
        } else {
            self.datapath.peer(key).unwrap_or_else(|error| {
                warn!(%error, "reading the kernel's peer record failed");
                None
            })
        }?;
        Some(PeerRecord::from_kernel(key, &state))
    }

    fn last_seen(&mut self, key: &PeerKey) -> Option<u64> {
        self.datapath.last_seen(key)
    }

    fn heartbeat(&mut self, key: &PeerKey) -> Option<Heartbeat> {
        self.datapath.heartbeat(key).unwrap_or_else(|error| {
            warn!(%error, "reading the kernel's heartbeat record failed");
            None
        })
    }
}

impl Runtime {
    pub(crate) fn new(
        datapath: Datapath,
        net: mpsc::UnboundedSender<NetCommand>,
        events: mpsc::Sender<Event>,
        env: HookEnv,
    ) -> Self {
        let (script_events, mut script_rx) = mpsc::channel::<ScriptEvent>(64);
        let forward = events.clone();
        tokio::spawn(async move {
            while let Some(event) = script_rx.recv().await {
                if let Some(up) = script_up(event.status) {
                    info!(script = %event.name, up, "tracked script status");
                    let source = TrackedSource::Script(event.name);
                    let _ = forward.send(Event::Tracked(source, up)).await;
                }
            }
        });
        let (process_events, mut process_rx) = mpsc::channel::<QuorumChange>(64);
        let forward = events.clone();
        tokio::spawn(async move {
            while let Some(change) = process_rx.recv().await {
                let source = TrackedSource::Process(change.name);
                let _ = forward.send(Event::Tracked(source, change.up)).await;
            }
        });
        let (file_events, mut file_rx) = mpsc::channel::<FileEvent>(64);
        tokio::spawn(async move {
            while let Some(event) = file_rx.recv().await {
                // The election tracks up/down: a file reading 0 is healthy.
                let up = event.value == 0;
                let _ = events
                    .send(Event::Tracked(TrackedSource::File(event.name), up))
                    .await;
            }
        });
        Self {
            core: Core::new(),
            datapath,
            attached: HashMap::new(),
            sockets: HashMap::new(),
            frames: HashMap::new(),
            outbox: HashMap::new(),
            adverts: HashMap::new(),
            announcers: HashMap::new(),
            addresses_added: HashMap::new(),
            lower_priority_bursts: announce::LowerPriorityBursts::default(),
            hooks: HashMap::new(),
            trackers: HashMap::new(),
            tracker_root: CancellationToken::new(),
            script_events,
            file_events,
            process_events,
            process_monitor: None,
            process_events_netns: None,
            last_transition_unix: HashMap::new(),
            transitions_to: HashMap::new(),
            masters_seen: HashMap::new(),
            state_changes: 0,
            notify_totals: Arc::default(),
            net,
            env,
            advertised: false,
            peer_batch: BatchState::Untried,
            local_addresses: HashSet::new(),
            events_lost: 0,
            vmac_filters: HashMap::new(),
        }
    }

    /// `--process-events-netns`: where the process monitor listens.
    pub fn set_process_events_netns(&mut self, netns: Option<std::path::PathBuf>) {
        self.process_events_netns = netns;
    }

    pub fn attached(&self) -> &HashMap<String, u32> {
        &self.attached
    }

    pub fn note_attached(&mut self, interface: String, ifindex: u32) {
        self.attached.insert(interface, ifindex);
    }

    pub fn forget_attached(&mut self, interface: &str) {
        if let Some(ifindex) = self.attached.remove(interface) {
            self.datapath.detach(interface);
            if let Err(error) = self.datapath.forget_interface(ifindex) {
                warn!(%error, interface, ifindex, "forgetting the interface's kernel settings failed");
            }
        }
    }

    /// `interface` is gone (deleted, or renamed away): its programs, pins,
    /// kernel settings and sockets go with it; a later one under the name
    /// is attached afresh.
    pub fn drop_interface(&mut self, interface: &str) {
        let Some(&ifindex) = self.attached.get(interface) else {
            return;
        };
        self.forget_attached(interface);
        self.sockets.retain(|(index, _), _| *index != ifindex);
        self.frames.remove(&ifindex);
        info!(
            interface,
            ifindex, "interface gone: datapath and sockets released"
        );
    }

    pub fn add_local_address(
        &mut self,
        address: IpAddr,
    ) -> Result<(), crate::datapath::DatapathError> {
        self.datapath.add_local_address(address)?;
        self.local_addresses.insert(address);
        Ok(())
    }

    /// Makes `LOCAL_ADDRESSES` hold exactly `wanted` (of what this daemon
    /// manages): the node's own addresses follow the interfaces.
    pub fn set_local_addresses(&mut self, wanted: &HashSet<IpAddr>) {
        let stale: Vec<IpAddr> = self.local_addresses.difference(wanted).copied().collect();
        for address in stale {
            match self.datapath.remove_local_address(address) {
                Ok(()) => {
                    self.local_addresses.remove(&address);
                }
                Err(error) => warn!(%error, %address, "forgetting an own address failed"),
            }
        }
        for address in wanted.difference(&self.local_addresses.clone()) {
            if let Err(error) = self.add_local_address(*address) {
                warn!(%error, %address, "recording an own address failed");
            }
        }
    }

    /// The plans of the running instances, in order.
    pub fn instance_plans(&self) -> impl Iterator<Item = &Arc<InstancePlan>> {
        self.core
            .groups()
            .iter()
            .flat_map(|group| group.members.iter().map(|member| &member.plan))
    }

    pub fn add_socket(&mut self, ifindex: u32, source: IpAddr, socket: AdvertSocket) {
        self.sockets.insert((ifindex, source), socket);
    }

    pub fn has_socket(&self, ifindex: u32, source: IpAddr) -> bool {
        self.sockets.contains_key(&(ifindex, source))
    }

    pub fn remove_socket(&mut self, ifindex: u32, source: IpAddr) {
        self.sockets.remove(&(ifindex, source));
    }

    pub fn add_frame_socket(&mut self, ifindex: u32, socket: FrameSocket) {
        self.frames.insert(ifindex, Arc::new(socket));
    }

    pub fn has_frame_socket(&self, ifindex: u32) -> bool {
        self.frames.contains_key(&ifindex)
    }

    pub fn remove_frame_socket(&mut self, ifindex: u32) {
        self.frames.remove(&ifindex);
    }

    /// Closes sockets and detaches interfaces no instance of `plan` uses.
    pub fn release_unused(&mut self, plan: &Plan) {
        let used_sockets: Vec<SocketKey> = plan
            .instances()
            .map(|instance| (instance.ifindex, instance.source))
            .collect();
        self.sockets.retain(|key, _| used_sockets.contains(key));
        self.frames.retain(|ifindex, _| {
            plan.instances()
                .any(|instance| instance.ifindex == *ifindex)
        });
        let unused: Vec<String> = self
            .attached
            .keys()
            .filter(|name| {
                !plan
                    .instances()
                    .any(|instance| &instance.interface == *name)
            })
            .cloned()
            .collect();
        for name in unused {
            self.forget_attached(&name);
        }
    }

    /// Starts every instance; those the pinned datapath shows were master
    /// moments ago resume as master. What an earlier daemon left in the
    /// kernel for anything this configuration does not run is removed.
    pub fn start(&mut self, plan: &Plan) {
        // Losses before this daemon's ring existed (the counters are pinned
        // and outlive a daemon) are not ours: the start reads the records.
        self.events_lost = self.datapath.events_lost().unwrap_or_else(|error| {
            warn!(%error, "reading the event_lost counter failed");
            0
        });
        let effects = self.core.start(
            plan,
            now(),
            &mut KernelPeers::new(&mut self.datapath, &mut self.peer_batch),
        );
        self.perform(effects);
        if let Err(error) = self.datapath.prune_inherited() {
            warn!(%error, "removing an earlier daemon's leftover kernel entries failed");
        }
        let running = plan
            .instances()
            .map(|instance| instance.interface.clone())
            .collect();
        self.datapath.unpin_interfaces_except(&running);
    }

    /// Commits a validated plan (the transaction's last step).
    pub fn reload(&mut self, plan: &Plan, global: GlobalDefs) {
        self.env.replace_globals(global);
        let effects = self.core.reload(plan, now());
        self.perform(effects);
        self.flush();
        self.release_unused(plan);
    }

    pub fn on_peer_event(&mut self, key: &PeerKey, state: &PeerState) {
        let record = PeerRecord::from_kernel(key, state);
        self.saw_master(*key, record.source);
        let effects = self.core.on_peer_event(key, &record);
        self.perform(effects);
    }

    /// The event ring was just emptied: if the kernel lost events since the
    /// last look (the ring was full), every instance is fed its router's
    /// record from `PEERS`, read in one batch, so whatever the lost events
    /// said (a router that beats a master, a master resigning, a new
    /// interval) reaches the election now.
    ///
    /// Why here and only here: the counter is read with one syscall (one
    /// slot of a per-CPU array), after a burst of events, not per event
    /// nor per advert. An event is lost only while the ring is full, so a
    /// loss always leaves events queued behind it, and reading them ends
    /// in this check: a loss is noticed within one drain of the ring.
    /// Reading it at every wake-up of a master's advert timer would add a
    /// syscall per wake-up (200 masters at 10 ms) for nothing more. What
    /// still slips past (a read of the counter that fails) is bounded by
    /// the per-advert read of a master's own record ([`Core::on_timers`])
    /// and by a backup's read at its Master_Down timer.
    pub fn on_events_drained(&mut self) {
        let lost = match self.datapath.events_lost() {
            Ok(lost) => lost,
            Err(error) => {
                warn!(%error, "reading the event_lost counter failed");
                return;
            }
        };
        if lost == self.events_lost {
            return;
        }
        warn!(
            lost = lost.wrapping_sub(self.events_lost),
            "the kernel lost peer events (ring full); re-reading every virtual router's record"
        );
        self.events_lost = lost;
        let effects = self.core.resync(&mut KernelPeers::whole_map(
            &mut self.datapath,
            &mut self.peer_batch,
        ));
        self.perform(effects);
    }

    /// Counts a change of the master of `key`'s virtual router. The kernel
    /// raises an event when the advert source changes, and never for our
    /// own adverts, so this is called for each new master another router
    /// announces and by us when we become master.
    fn saw_master(&mut self, key: PeerKey, master: IpAddr) {
        let seen = self.masters_seen.entry(key).or_insert((master, 0));
        if seen.1 == 0 || seen.0 != master {
            *seen = (master, seen.1 + 1);
        }
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.core.next_deadline()
    }

    pub fn on_timers(&mut self) {
        let effects = self.core.on_timers(
            now(),
            &mut KernelPeers::new(&mut self.datapath, &mut self.peer_batch),
        );
        self.perform(effects);
    }

    pub fn on_tracked(&mut self, source: &TrackedSource, up: bool) {
        let effects = self.core.on_tracked(source, up, now());
        self.perform(effects);
    }

    pub fn on_interface(&mut self, name: &str, up: bool) {
        let effects = self.core.on_interface(name, up, now());
        self.perform(effects);
    }

    /// The instances on `name` can (not) use it; its link state, which
    /// `track_interface` follows, is unchanged.
    pub fn on_instance_interface(&mut self, name: &str, usable: bool) {
        let effects = self.core.on_instance_interface(name, usable, now());
        self.perform(effects);
    }

    /// The link state of `name`, for `track_interface` only.
    pub fn on_tracked_interface(&mut self, name: &str, up: bool) {
        let effects = self.core.on_tracked_interface(name, up, now());
        self.perform(effects);
    }

    /// RFC 5798 shutdown for every instance, sent at once. Returns what a
    /// graceful stop waits on: see [`Runtime::wait_for_successors`].
    pub fn shutdown_all(&mut self) -> Successors {
        let resigned_ns = kernel_now_ns();
        let masters = self.core.masters();
        let effects = self.core.shutdown(now());
        self.perform(effects);
        self.flush();
        Successors {
            resigned_ns,
            masters,
        }
    }

    /// Keeps the datapath until a backup has taken over every router this
    /// node resigned from, bounded by Master_Down_Interval plus one advert
    /// interval. Detaching XDP and TC holds the kernel's rtnl lock for
    /// 10–15 ms; done while the successor adds its addresses, it would delay
    /// them on this host (and on a lab sharing one kernel). Waiting for an
    /// advert sent one interval after the successor took over means its
    /// addresses are in place.
    pub async fn wait_for_successors(&mut self, successors: Successors) {
        let Successors {
            resigned_ns,
            masters,
        } = successors;
        let bound = masters
            .iter()
            .map(|(_, down, interval)| *down + *interval)
            .max()
            .unwrap_or_default()
            .min(Duration::from_secs(10));
        let deadline = tokio::time::Instant::now() + bound;
        let mut waiting = masters;
        while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
            waiting.retain(|(key, _, interval)| {
                let settled_ns = resigned_ns + interval.as_nanos() as u64;
                !matches!(
                    self.datapath.peer(key),
                    Ok(Some(peer)) if peer.priority > 0 && peer.last_seen_ns > settled_ns
                )
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !waiting.is_empty() {
            info!(
                routers = waiting.len(),
                "no successor heard before the bound; releasing the datapath anyway"
            );
        }
    }

    /// Keeps a virtual MAC in its interface's unicast filter while some
    /// owned address answers with it: `address` now needs `wanted` (or
    /// nothing).
    fn filter_vmac(&mut self, address: IpAddr, wanted: Option<(u32, [u8; 6])>) {
        let mut released = Vec::new();
        for (key, addresses) in &mut self.vmac_filters {
            if Some(*key) != wanted && addresses.remove(&address) && addresses.is_empty() {
                released.push(*key);
            }
        }
        for key in released {
            self.vmac_filters.remove(&key);
            if let Err(error) = unicast_filter::apply(Change::Remove, key.0, key.1) {
                warn!(%error, "releasing a virtual MAC failed");
            }
        }
        if let Some(key) = wanted {
            let addresses = self.vmac_filters.entry(key).or_default();
            if addresses.is_empty()
                && let Err(error) = unicast_filter::apply(Change::Add, key.0, key.1)
            {
                warn!(%error, "the interface may drop frames to its virtual MAC");
            }
            addresses.insert(address);
        }
    }

    /// Takes every virtual MAC this daemon added out of the unicast filters.
    pub fn release_vmac_filters(&mut self) {
        for (ifindex, mac) in std::mem::take(&mut self.vmac_filters).into_keys() {
            if let Err(error) = unicast_filter::apply(Change::Remove, ifindex, mac) {
                warn!(%error, "releasing a virtual MAC failed");
            }
        }
    }

    pub fn stop_trackers(&mut self) {
        self.tracker_root.cancel();
        self.process_monitor = None;
    }

    pub fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.perform_one(effect);
        }
        // An add no announcement followed needs no answer.
        self.addresses_added.clear();
    }

    fn perform_one(&mut self, effect: Effect) {
        match effect {
            Effect::RemoveStale { plan } => {
                let stale = plan
                    .vips
                    .iter()
                    .map(|vip| netops::address(vip, &plan.interface, plan.ifindex))
                    .collect();
                let _ = self.net.send(NetCommand::RemoveStale(stale));
            }
            Effect::Claim { plan } => {
                let set = VirtualSet::of(&plan, &plan.vips, &plan.routes);
                let _ = self.net.send(NetCommand::Claim(set));
            }
            Effect::Filter { key, filter } => {
                if let Err(error) = self.datapath.set_instance_filter(key, filter) {
                    warn!(%error, vrid = key.vrid, "installing the kernel filter failed");
                }
            }
            Effect::RemoveFilter { key } => {
                if let Err(error) = self.datapath.remove_instance_filter(&key) {
                    warn!(%error, vrid = key.vrid, "removing the kernel filter failed");
                }
            }
            Effect::UnicastSources { key, sources } => {
                if let Err(error) = self.datapath.set_unicast_sources(key, &sources) {
                    warn!(%error, vrid = key.vrid, "installing the unicast sources failed");
                }
            }
            Effect::Vip {
                address,
                instance,
                state,
                vmac,
            } => {
                if let Err(error) = self.datapath.set_vip_state(address, instance, state, vmac) {
                    warn!(%error, %address, ?state, "updating the address guard failed");
                }
                let filter = (state != VipState::NotOwned && vmac.is_on()).then(|| {
                    (
                        instance.ifindex,
                        agent_common::virtual_mac(instance.vrid, instance.family),
                    )
                });
                self.filter_vmac(address, filter);
            }
            Effect::ForgetVip { address } => {
                if let Err(error) = self.datapath.forget_vip(address) {
                    warn!(%error, %address, "forgetting a guarded address failed");
                }
                self.filter_vmac(address, None);
            }
            Effect::AddAddresses {
                plan,
                addresses,
                routes,
            } => {
                let set = VirtualSet::of(&plan, &addresses, &routes);
                let (added, answer) = oneshot::channel();
                self.addresses_added.insert(plan.name.clone(), answer);
                let _ = self.net.send(NetCommand::Add { set, added });
            }
            Effect::RemoveAddresses {
                plan,
                addresses,
                routes,
            } => {
                let set = VirtualSet::of(&plan, &addresses, &routes);
                let _ = self.net.send(NetCommand::Remove(set));
            }
            Effect::SendAdvert {
                member,
                plan,
                priority,
                interval,
            } => {
                self.heartbeat(&plan, priority, interval);
                self.queue_advert(member, &plan, priority, interval);
            }
            Effect::Announce {
                member,
                plan,
                addresses,
            } => {
                if let Some(previous) = self.announcers.remove(&member) {
                    previous.abort();
                }
                if let Some(socket) = self.frames.get(&plan.ifindex) {
                    let schedule = announce::Schedule::for_plan(&plan);
                    let handle = announce::spawn(
                        Arc::clone(socket),
                        announce::frames(&plan, &addresses),
                        schedule,
                        self.addresses_added.remove(&plan.name),
                    );
                    self.announcers.insert(member, handle);
                }
            }
            Effect::StopAnnounce { member, .. } => {
                if let Some(announcer) = self.announcers.remove(&member) {
                    announcer.abort();
                }
                self.lower_priority_bursts.stop(&member);
            }
            Effect::SendYieldingAdvert {
                member,
                plan,
                priority,
                interval,
            } => self.queue_advert(member, &plan, priority, interval),
            Effect::AnnounceLowerPriority {
                member,
                plan,
                addresses,
            } => self.announce_lower_priority(member, &plan, &addresses),
            Effect::ForgetPeer { key } => {
                if let Err(error) = self.datapath.forget_peer(&key) {
                    warn!(%error, "clearing the kernel's peer record failed");
                }
            }
            Effect::StateChanged {
                member,
                key,
                name,
                from,
                to,
                reason,
                priority,
            } => {
                if from == State::Master
                    && let Err(error) = self.datapath.remove_heartbeat(&key)
                {
                    warn!(%error, instance = %name, "removing the heartbeat failed");
                }
                if let Ok(elapsed) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
                    self.last_transition_unix.insert(member, elapsed.as_secs());
                }
                *self
                    .transitions_to
                    .entry(member)
                    .or_default()
                    .entry(state_name(to))
                    .or_default() += 1;
                self.state_changes += 1;
                if to == State::Master
                    && let Some(plan) = self.member_plan(member)
                {
                    self.saw_master(plan.datapath_key(), plan.source);
                }
                // `event` and the field names are a stable interface (README,
                // "Logs"): tests and log pipelines select on them.
                info!(
                    event = "state_change",
                    instance = %name,
                    from = state_name(from),
                    to = state_name(to),
                    ?reason,
                    priority,
                    "state change"
                );
            }
            Effect::PriorityChanged { name, from, to } => {
                info!(instance = %name, from, to, "effective priority changed");
            }
            Effect::Hooks {
                owner,
                name,
                notify,
            } => {
                let queue = self.notify_queue(owner, &name, &notify);
                if let Some(old) = queue.and_then(|queue| self.hooks.insert(owner, queue)) {
                    tokio::spawn(old.shutdown());
                }
            }
            Effect::DropHooks { owner, .. } => {
                if let Some(old) = self.hooks.remove(&owner) {
                    tokio::spawn(old.shutdown());
                }
            }
            Effect::Notify {
                owner,
                state,
                priority,
                ..
            } => {
                if let Some(queue) = self.hooks.get_mut(&owner) {
                    queue.notify(Transition { state, priority });
                }
            }
            Effect::MasterRxLowerPri { owner, .. } => {
                if let Some(queue) = self.hooks.get_mut(&owner) {
                    queue.master_rx_lower_pri();
                }
            }
            Effect::StartTracker { source, tracker } => self.start_tracker(source, &tracker),
            Effect::StopTracker { source } => {
                if let Some(token) = self.trackers.remove(&source) {
                    token.cancel();
                }
                if let (TrackedSource::Process(name), Some(monitor)) =
                    (&source, &self.process_monitor)
                {
                    monitor.remove(name);
                }
            }
        }
    }

    /// A master's advert refreshes its heartbeat, so the kernel keeps its
    /// addresses open; priority 0 (resigning) removes it.
    fn heartbeat(
        &mut self,
        plan: &InstancePlan,
        priority: u8,
        interval: crate::vrrp::AdvertInterval,
    ) {
        let key = plan.datapath_key();
        let result = if priority == 0 {
            self.datapath.remove_heartbeat(&key)
        } else {
            let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            let heartbeat = Heartbeat {
                last_advert_ns: kernel_now_ns(),
                interval_ns: nanos(interval.as_duration()),
                takeover_ns: nanos(master_down_interval(plan.version, priority, interval)),
                hold_ns: nanos(master_down_interval(plan.version, 1, interval)),
                primary: address_to_key(plan.source).1,
                priority,
                fenced: 0,
                _pad: [0; 6],
            };
            self.advertised = true;
            self.datapath
                .write_heartbeat(key, heartbeat, interval.as_duration())
        };
        if let Err(error) = result {
            warn!(%error, instance = %plan.name, "writing the heartbeat failed");
        }
    }

    fn announce_lower_priority(
        &mut self,
        member: MemberId,
        plan: &InstancePlan,
        addresses: &[IpAddr],
    ) {
        if let Some(socket) = self.frames.get(&plan.ifindex) {
            info!(instance = %plan.name, repeat = plan.garp.lower_prio_repeat, "lower-priority master heard: announcing the virtual addresses again");
            self.lower_priority_bursts.start(
                member,
                Arc::clone(socket),
                announce::frames(plan, addresses),
                plan,
            );
        }
    }

    fn queue_advert(
        &mut self,
        member: MemberId,
        plan: &Arc<InstancePlan>,
        priority: u8,
        interval: crate::vrrp::AdvertInterval,
    ) {
        match self
            .adverts
            .entry(member)
            .or_default()
            .messages(plan, priority, interval)
        {
            Ok(messages) => {
                self.outbox
                    .entry((plan.ifindex, plan.source))
                    .or_default()
                    .extend(messages.iter().map(|(bytes, destination)| {
                        (bytes.clone(), *destination, plan.unicast_ttl)
                    }))
            }
            Err(error) => warn!(instance = %plan.name, %error, "cannot encode advert"),
        }
    }

    fn notify_queue(&self, owner: HookOwner, name: &str, plan: &NotifyPlan) -> Option<NotifyQueue> {
        let scope = match owner {
            HookOwner::Instance(_) => Scope::Instance,
            HookOwner::Group(_) => Scope::Group,
        };
        // The transaction validated every hook before committing.
        let target = match hooks::notify_target(scope, name, plan, &self.env.global) {
            Ok(target) => target,
            Err(error) => {
                warn!(%error, "notify hooks not usable");
                return None;
            }
        };
        let mail = self
            .env
            .mailer
            .as_ref()
            .filter(|_| plan.smtp_alert)
            .map(|mailer| MailHook {
                mailer: mailer.clone(),
                router_id: self.env.router_id(),
                gate: crate::notify::AlertGate::new(true, false),
            });
        Some(NotifyQueue::spawn_counted(
            target,
            QueueLimits::default(),
            mail,
            Arc::clone(&self.notify_totals),
        ))
    }

    fn start_tracker(&mut self, source: TrackedSource, tracker: &TrackerConfig) {
        let token = self.tracker_root.child_token();
        match tracker {
            TrackerConfig::Script(script) => match hooks::script_spec(script, &self.env.global) {
                Ok(spec) => {
                    spawn_script_tracker(spec, self.script_events.clone(), token.clone());
                }
                Err(error) => {
                    warn!(%error, "tracked script not usable");
                    return;
                }
            },
            TrackerConfig::File(file) => {
                let mut spec = TrackFileSpec::new(file.name.clone(), file.file.clone());
                spec.weight = file.weight;
                spec.reverse = file.weight_reverse;
                spec.init = file.init_file.as_ref().map(|init| InitFile {
                    value: init.value,
                    overwrite: init.overwrite,
                });
                if let Err(error) = spawn_file_tracker(
                    spec,
                    DEFAULT_POLL_INTERVAL,
                    self.file_events.clone(),
                    token.clone(),
                ) {
                    warn!(%error, "tracked file not usable");
                    return;
                }
            }
            TrackerConfig::Process(process) => {
                if self.process_monitor.is_none() {
                    let options = MonitorOptions {
                        netns: self.process_events_netns.clone(),
                        rcv_buf: self.env.global.process_monitor_rcv_bufs,
                        rcv_buf_force: self.env.global.process_monitor_rcv_bufs_force,
                    };
                    match ProcessMonitor::spawn(options, self.process_events.clone()) {
                        Ok(monitor) => self.process_monitor = Some(monitor),
                        Err(error) => {
                            warn!(%error, "process monitor not started; track_process not usable");
                            return;
                        }
                    }
                }
                if let Some(monitor) = &self.process_monitor {
                    monitor.add(super::plan::process_spec(process));
                }
            }
        }
        if let Some(previous) = self.trackers.insert(source, token) {
            previous.cancel();
        }
    }

    /// Sends everything queued this turn, one `sendmmsg` per socket.
    pub fn flush(&mut self) {
        if std::mem::take(&mut self.advertised)
            && let Err(error) = self.datapath.mark_alive(kernel_now_ns())
        {
            warn!(%error, "refreshing the fence window failed");
        }
        for (key, messages) in self.outbox.iter_mut() {
            if messages.is_empty() {
                continue;
            }
            let Some(socket) = self.sockets.get(key) else {
                messages.clear();
                continue;
            };
            let batch: Vec<(&[u8], IpAddr, Option<u8>)> = messages
                .iter()
                .map(|(bytes, destination, hops)| (bytes.as_slice(), *destination, *hops))
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

    /// Drains every notify queue (scripts still queued run first), within
    /// `limit`.
    pub async fn close_notify_queues(&mut self, limit: Duration) {
        for (_, announcer) in self.announcers.drain() {
            announcer.abort();
        }
        self.lower_priority_bursts.stop_all();
        let queues: Vec<NotifyQueue> = self.hooks.drain().map(|(_, queue)| queue).collect();
        let drain = async {
            for queue in queues {
                queue.shutdown().await;
            }
        };
        let _ = tokio::time::timeout(limit, drain).await;
    }

    /// Closes the mailer (after the notify queues, which hold the other
    /// handles) and lets it deliver what is queued, within `limit`.
    pub async fn close_mailer(&mut self, limit: Duration) {
        self.env.mailer = None;
        if let Some(worker) = self.env.mail_worker.take() {
            let _ = tokio::time::timeout(limit, worker).await;
        }
    }

    pub fn status(&mut self) -> StatusReport {
        let instances = self
            .instance_rows()
            .into_iter()
            .map(|(_, _, status, _)| status)
            .collect();
        StatusReport {
            router_id: self.env.router_id(),
            pid: std::process::id(),
            instances,
            counters: self.datapath_counters(),
            interfaces: self.interface_counters(),
        }
    }

    /// What a metrics scrape reports (see [`metrics::Snapshot`]).
    pub fn metrics(&mut self) -> metrics::Snapshot {
        let instances = self
            .instance_rows()
            .into_iter()
            .map(|(id, key, status, adverts_sent)| InstanceMetrics {
                status,
                transitions_to: self.transitions_to.get(&id).cloned().unwrap_or_default(),
                master_changes: self.masters_seen.get(&key).map_or(0, |seen| seen.1),
                adverts_sent,
            })
            .collect();
        let (ok, failed, timed_out) = self.notify_totals.get();
        metrics::Snapshot {
            instances,
            interfaces: self.interface_counters(),
            notify: NotifyTotals {
                ok,
                failed,
                timed_out,
            },
        }
    }

    fn member_plan(&self, id: MemberId) -> Option<Arc<InstancePlan>> {
        self.core
            .groups()
            .iter()
            .flat_map(|group| &group.members)
            .find(|member| member.id == id)
            .map(|member| Arc::clone(&member.plan))
    }

    /// State changes performed since start.
    pub fn state_changes(&self) -> u64 {
        self.state_changes
    }

    /// The instances' states, for systemd's status line.
    pub fn states(&self) -> Vec<&'static str> {
        self.core
            .groups()
            .iter()
            .flat_map(|group| (0..group.members.len()).filter_map(|index| group.sync.member(index)))
            .map(|instance| state_name(instance.state()))
            .collect()
    }

    fn datapath_counters(&mut self) -> BTreeMap<String, u64> {
        self.datapath
            .counters()
            .map(|snapshot| snapshot.named())
            .unwrap_or_default()
    }

    /// The datapath counters of every attached interface, by its name.
    fn interface_counters(&mut self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let Ok(by_index) = self.datapath.interface_counters() else {
            return BTreeMap::new();
        };
        self.attached
            .iter()
            .filter_map(|(name, ifindex)| {
                by_index
                    .get(ifindex)
                    .map(|snapshot| (name.clone(), snapshot.named()))
            })
            .collect()
    }

    /// Every instance's status line, with its id, its virtual router's key
    /// and the adverts it sent.
    fn instance_rows(&mut self) -> Vec<(MemberId, PeerKey, InstanceStatus, u64)> {
        let now_ns = kernel_now_ns();
        let mut rows = Vec::new();
        for group in self.core.groups() {
            for (index, member) in group.members.iter().enumerate() {
                let Some(instance) = group.sync.member(index) else {
                    continue;
                };
                let peer = self
                    .datapath
                    .peer(&member.plan.datapath_key())
                    .ok()
                    .flatten();
                let status = instance_status(
                    member,
                    instance,
                    peer.map(|peer| now_ns.saturating_sub(peer.last_seen_ns) / 1_000_000),
                    self.last_transition_unix.get(&member.id).copied(),
                );
                rows.push((
                    member.id,
                    member.plan.datapath_key(),
                    status,
                    instance.counters().adverts_sent,
                ));
            }
        }
        rows
    }
}

fn instance_status(
    member: &super::core::Member,
    instance: &Instance,
    last_advert_age_ms: Option<u64>,
    last_transition_unix: Option<u64>,
) -> InstanceStatus {
    let plan = &member.plan;
    let master_address = if instance.state() == State::Master {
        Some(plan.source.to_string())
    } else {
        instance.master_address().map(|address| address.to_string())
    };
    InstanceStatus {
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
        last_advert_age_ms,
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
                    TrackedSource::Config(name) => ("config", name),
                    TrackedSource::Process(name) => ("process", name),
                };
                // A process's weight is negated under `reverse` for the
                // election (see `plan::process_item`); show it as written.
                let weight = match source {
                    TrackedSource::Process(_) if item.reverse => -item.weight,
                    _ => item.weight,
                };
                TrackedStatus {
                    kind: kind.into(),
                    name: name.clone(),
                    status: if *up { "up".into() } else { "down".into() },
                    weight,
                }
            })
            .collect(),
        transitions: instance.counters().transitions,
        last_transition_unix,
    }
}
