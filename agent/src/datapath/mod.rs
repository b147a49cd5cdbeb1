//! Loads the kernel programs, attaches them, fills their configuration maps
//! and reads back what they saw.
//!
//! A daemon's datapath is pinned ([`Datapath::load_pinned`]): its maps and
//! links live in bpffs ([`PinDir`]), so a daemon that dies leaves the
//! programs attached and guarding, and the next one adopts them (links are
//! updated to the new program atomically, maps are reused when their layout
//! matches). Dropping a pinned datapath leaves everything in place;
//! [`Datapath::release`] removes it. An ephemeral datapath (`monitor`,
//! tests) detaches when dropped.

mod events;
mod kernel_log;
pub mod last_seen;
mod peer;
pub mod pin;
#[cfg(test)]
mod test_frames;
#[cfg(test)]
mod tests;
mod unicast;

use std::{
    collections::{BTreeMap, HashMap as StdHashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

pub use agent_common::Heartbeat;
use agent_common::{
    AddressKey, CounterBlock, GUARD_SLOT, GuardState, IFACE_OBSERVE_ONLY, IFACE_PASS_CONSUMED,
    InterfaceConfig, LAST_SEEN_ENTRIES, MAX_INTERFACE_SLOTS, VIP_DROP_INGRESS, VIP_NOT_OWNED,
    VIP_OWNED, VIP_VMAC, VIP_VMAC_XMIT_BASE, VipEntry, map_names, program_names,
};
pub use agent_common::{
    Counter, FAMILY_IPV4, FAMILY_IPV6, InstanceFilter, InstanceKey, PeerKey, PeerState,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, MapInfo, PerCpuArray, PerCpuValues},
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};
pub use events::EventStream;
pub use kernel_log::KernelLog;
use last_seen::{Assigned, LastSeenMap, Slots};
pub use peer::PeerRecord;
pub use pin::PinDir;
use thiserror::Error;
use tracing::{info, warn};
pub use unicast::UnicastPeerFilter;

/// The compiled `agent-ebpf` object, built by this crate's build script.
static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vrrp-agent-ebpf"));

#[derive(Debug, Error)]
pub enum DatapathError {
    #[error("loading the eBPF object failed (are you root, with CAP_BPF and CAP_NET_ADMIN?): {0}")]
    Load(#[from] aya::EbpfError),
    #[error(
        "the eBPF object has no {kind} named `{name}`; the agent and its kernel object are out of step (rebuild with `cargo xtask run`)"
    )]
    Missing {
        kind: &'static str,
        name: &'static str,
    },
    #[error("eBPF program `{program}`: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("eBPF map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("interface `{name}` does not exist (check `ip link`)")]
    UnknownInterface { name: String },
    #[error("attaching the TC program {program} to `{interface}` failed: {source}")]
    AttachGuard {
        interface: String,
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching XDP to `{interface}` failed in driver and in generic mode: {source}")]
    Attach {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error(
        "no counter slot left for interface index {ifindex}: at most {MAX_INTERFACE_SLOTS} VRRP interfaces per node"
    )]
    NoCounterSlot { ifindex: u32 },
    #[error(
        "no receive-time slot left for instance {key:?}: at most {} instances per node",
        agent_common::MAX_INSTANCES
    )]
    NoLastSeenSlot { key: InstanceKey },
    #[error("mapping the `LAST_SEEN` map into memory failed: {0}")]
    MapLastSeen(std::io::Error),
    #[error("reading the possible CPUs for the per-CPU counters: {0}")]
    Cpus(String),
    #[error("forwarding kernel log records: {0}")]
    KernelLog(String),
    #[error(
        "pinning the datapath under {path} failed: {message} (is bpffs mounted? `vrrp-agent cleanup` removes stale pins)"
    )]
    Pin { path: PathBuf, message: String },
}

/// How `vrrp_rx` treats VRRP adverts on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceMode {
    /// Record every virtual router, check nothing configuration-specific, pass
    /// every packet on: what `vrrp-agent monitor` uses.
    ObserveOnly,
    /// Apply the configured instance filters and drop invalid adverts.
    /// `pass_consumed` lets valid adverts continue to the stack too (tcpdump).
    Enforce { pass_consumed: bool },
}

/// What the kernel does with one virtual address. The daemon sets it at
/// every transition of the address's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipState {
    /// Not master: frames sourced from the address are stopped on egress
    /// (`vip_guard`), so a node that just lost mastership stays silent.
    NotOwned,
    /// Master in accept mode, or the address owner: frames from the address
    /// leave and packets to it are delivered, while the instance's
    /// heartbeat is fresh.
    Owned,
    /// Master in no-accept mode and not the address owner (RFC 5798
    /// §6.4.3): frames from the address leave, packets addressed to it are
    /// dropped in XDP and counted as `vip_ingress_blocked`, except VRRP,
    /// ARP and IPv6 neighbour solicitations / advertisements.
    OwnedNoAccept,
}

impl VipState {
    /// The state of a master's addresses; `accept_traffic` is what the
    /// election reports with them (Accept_Mode, or true for the owner).
    pub fn master(accept_traffic: bool) -> Self {
        if accept_traffic {
            Self::Owned
        } else {
            Self::OwnedNoAccept
        }
    }

    fn flags(self) -> u8 {
        match self {
            Self::NotOwned => VIP_NOT_OWNED,
            Self::Owned => VIP_OWNED,
            Self::OwnedNoAccept => VIP_OWNED | VIP_DROP_INGRESS,
        }
    }
}

/// Whether an instance's addresses answer with its virtual router MAC
/// (`use_vmac`), and whether its adverts do too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vmac {
    /// The interface's own MAC (keepalived's default).
    #[default]
    Off,
    /// `use_vmac`: addresses and adverts use 00:00:5e:00:01|02:VRID.
    On,
    /// `use_vmac` with `vmac_xmit_base`: adverts keep the interface's MAC.
    XmitBase,
}

impl Vmac {
    fn flags(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::On => VIP_VMAC,
            Self::XmitBase => VIP_VMAC | VIP_VMAC_XMIT_BASE,
        }
    }

    pub fn is_on(self) -> bool {
        self != Self::Off
    }
}

/// Which XDP mode an attachment ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    Driver,
    Generic,
}

impl AttachMode {
    fn pin_name(self) -> &'static str {
        match self {
            Self::Driver => pin::XDP_DRIVER,
            Self::Generic => pin::XDP_GENERIC,
        }
    }
}

#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    /// Whether the link was adopted from an earlier daemon's pin.
    pub adopted: bool,
    /// Held, not used: dropping it closes our handle, and the program
    /// detaches unless the link is pinned.
    _link: XdpLink,
}

/// Sum over CPUs (and interfaces, for a total) of every counter, in
/// `Counter::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterSnapshot {
    values: [u64; Counter::COUNT as usize],
}

impl CounterSnapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }

    /// Adds what every CPU counted in `slot`.
    fn add_slot(
        &mut self,
        array: &PerCpuArray<&mut MapData, CounterBlock>,
        slot: u16,
    ) -> Result<(), DatapathError> {
        let per_cpu = array
            .get(&u32::from(slot), 0)
            .map_err(map_error(map_names::COUNTERS))?;
        for block in per_cpu.iter() {
            for (total, value) in self.values.iter_mut().zip(block.values) {
                *total += value;
            }
        }
        Ok(())
    }

    /// `(name, value)` of every counter.
    pub fn named(&self) -> BTreeMap<String, u64> {
        Counter::ALL
            .iter()
            .map(|counter| (counter.name().to_owned(), self.get(*counter)))
            .collect()
    }

    /// `(name, value)` of every drop reason.
    pub fn drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL
            .iter()
            .filter(|counter| counter.is_advert_drop())
            .map(|counter| (counter.name(), self.get(*counter)))
    }

    pub fn to_json(self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = Counter::ALL
            .iter()
            .map(|counter| (counter.name().to_owned(), self.get(*counter).into()))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// A `vip_guard` or `vmac_rx` attachment (TCX; no qdisc is created on 6.6+ kernels).
#[derive(Debug)]
struct GuardAttachment {
    interface: String,
    /// Held like [`Attachment`]'s link.
    _link: SchedClassifierLink,
}

/// Keys an adopted map held before this daemon wrote anything: what is
/// still there after startup belongs to no configured instance and is
/// removed by [`Datapath::prune_inherited`].
#[derive(Debug, Default)]
struct Inherited {
    /// With the counter slot each had.
    interfaces: StdHashMap<u32, u16>,
    instances: HashSet<InstanceKey>,
    local_addresses: HashSet<AddressKey>,
    vips: HashSet<AddressKey>,
    heartbeats: HashSet<InstanceKey>,
    unicast_sources: HashSet<agent_common::UnicastSourceKey>,
}

/// The heartbeats this daemon keeps fresh, for the fast-path window.
#[derive(Debug, Default)]
struct Masters {
    /// Hold and advert interval per master instance.
    timing: StdHashMap<InstanceKey, (Duration, Duration)>,
    /// How long after any advert every master is still known alive.
    window: Duration,
}

impl Masters {
    /// Returns whether the window changed.
    fn insert(&mut self, key: InstanceKey, hold: Duration, interval: Duration) -> bool {
        if self.timing.insert(key, (hold, interval)) == Some((hold, interval)) {
            return false;
        }
        self.recompute();
        true
    }

    fn remove(&mut self, key: &InstanceKey) {
        if self.timing.remove(key).is_some() {
            self.recompute();
        }
    }

    /// A daemon on schedule sends every master's advert at least once per
    /// the longest interval, so after any advert every heartbeat is at most
    /// that old: all of them stay valid for the shortest hold minus it.
    fn recompute(&mut self) {
        let shortest_hold = self.timing.values().map(|(hold, _)| *hold).min();
        let longest_interval = self.timing.values().map(|(_, interval)| *interval).max();
        self.window = match (shortest_hold, longest_interval) {
            (Some(hold), Some(interval)) => hold.saturating_sub(interval),
            _ => Duration::ZERO,
        };
    }
}

pub struct Datapath {
    ebpf: Ebpf,
    attachments: Vec<Attachment>,
    guards: Vec<GuardAttachment>,
    /// `vmac_rx` attachments, on interfaces where an instance uses `use_vmac`.
    vmac_links: Vec<GuardAttachment>,
    pins: Option<PinDir>,
    inherited: Inherited,
    /// Addresses in [`VipState::OwnedNoAccept`] and in any owned state:
    /// they decide the `GUARD` switches.
    drop_ingress: HashSet<IpAddr>,
    owned: HashSet<IpAddr>,
    masters: Masters,
    /// What `GUARD` last held; `None` until written or after a failed
    /// write, so the next change retries it.
    guard: Option<GuardState>,
    /// The `COUNTERS` slot of every interface configured by this daemon.
    slots: StdHashMap<u32, u16>,
    /// The `LAST_SEEN` slot of every instance filter, and the mapping the
    /// receive times are read through.
    last_seen_slots: Slots,
    last_seen: LastSeenMap,
}

impl Datapath {
    /// Loads the object and both programs into the kernel, attached nowhere
    /// yet, with fresh maps that go away with this datapath (`monitor`,
    /// tests). Returns the datapath, the stream of peer-change events and
    /// the kernel log forwarder. Must run inside a tokio runtime, with which
    /// the rings register.
    pub fn load() -> Result<(Self, EventStream, KernelLog), DatapathError> {
        let ebpf = Ebpf::load(EBPF_OBJECT)?;
        Self::finish_load(ebpf, None)
    }

    /// Like [`Datapath::load`], for the daemon: the maps listed in
    /// `map_names::PINNED` are adopted from `pins` when an earlier daemon
    /// left them there with the same layout (else created and pinned), and
    /// [`attach`](Self::attach) adopts pinned links.
    ///
    /// `event_ring_bytes` replaces the size of the `EVENTS` ring (a power
    /// of two, at least a page): tests shrink it to make it overflow. The
    /// ring is not pinned, so its size does not decide adoption.
    pub fn load_pinned(
        pins: PinDir,
        event_ring_bytes: Option<u32>,
    ) -> Result<(Self, EventStream, KernelLog), DatapathError> {
        let pin_error = |message: String| DatapathError::Pin {
            path: pins.root().to_path_buf(),
            message,
        };
        pins.prepare()
            .map_err(|error| pin_error(error.to_string()))?;
        for generation in pins.other_generations() {
            warn!(
                maps = %generation.display(),
                "pinned maps of another layout generation: not adopted, removed"
            );
            pin::remove_tree(&generation).map_err(|error| pin_error(error.to_string()))?;
        }
        let adopted = adoptable_maps(&pins).map_err(pin_error)?;
        let mut loader = EbpfLoader::new();
        for name in map_names::PINNED {
            loader.map_pin_path(name, pins.map(name));
        }
        if let Some(bytes) = event_ring_bytes {
            loader.map_max_entries(map_names::EVENTS, bytes);
        }
        let ebpf = loader.load(EBPF_OBJECT)?;
        let (mut datapath, events, log) = Self::finish_load(ebpf, Some(pins.clone()))?;
        if adopted > 0 {
            info!(maps = adopted, root = %pins.root().display(), "adopted the pinned maps of an earlier daemon");
            datapath.inherited = datapath.snapshot_keys()?;
            datapath.guard = datapath.read_guard().ok();
            let filters = datapath
                .hash_map::<InstanceKey, InstanceFilter>(map_names::INSTANCES)?
                .iter()
                .collect::<Result<Vec<_>, MapError>>()
                .map_err(map_error(map_names::INSTANCES))?;
            datapath.last_seen_slots.inherit(
                filters
                    .into_iter()
                    .map(|(key, filter)| (key, filter.last_seen_slot)),
            );
        }
        Ok((datapath, events, log))
    }

    fn finish_load(
        mut ebpf: Ebpf,
        pins: Option<PinDir>,
    ) -> Result<(Self, EventStream, KernelLog), DatapathError> {
        // The log ring must be taken before the program loads and outlive it.
        let kernel_log = KernelLog::take(&mut ebpf)?;
        let events = EventStream::take(&mut ebpf)?;
        let program = xdp_program(&mut ebpf)?;
        program.load().map_err(|source| DatapathError::Program {
            program: program_names::VRRP_RX,
            source,
        })?;
        let guard = tc_program(&mut ebpf, TcSide::Egress)?;
        guard.load().map_err(|source| DatapathError::Program {
            program: program_names::VIP_GUARD,
            source,
        })?;
        let vmac = tc_program(&mut ebpf, TcSide::Ingress)?;
        vmac.load().map_err(|source| DatapathError::Program {
            program: program_names::VMAC_RX,
            source,
        })?;
        let last_seen = match ebpf.map(map_names::LAST_SEEN) {
            Some(Map::Array(data)) => {
                use std::os::fd::AsFd as _;
                LastSeenMap::map(data.fd().as_fd(), LAST_SEEN_ENTRIES)
                    .map_err(DatapathError::MapLastSeen)?
            }
            _ => {
                return Err(DatapathError::Missing {
                    kind: "array map",
                    name: map_names::LAST_SEEN,
                });
            }
        };
        Ok((
            Self {
                ebpf,
                attachments: Vec::new(),
                guards: Vec::new(),
                vmac_links: Vec::new(),
                pins,
                inherited: Inherited::default(),
                drop_ingress: HashSet::new(),
                owned: HashSet::new(),
                masters: Masters::default(),
                guard: None,
                slots: StdHashMap::new(),
                last_seen_slots: Slots::default(),
                last_seen,
            },
            events,
            kernel_log,
        ))
    }

    /// Attaches `vrrp_rx` to `interface` in driver mode, or in generic mode
    /// when the driver has no XDP support, and configures its mode. A
    /// pinned datapath first adopts the link an earlier daemon pinned for
    /// this interface, replacing its program atomically (no moment without
    /// a program), and pins what it attaches.
    ///
    /// An instance on a VLAN device (`eth1.100`) gets the program on that
    /// device, not on its parent. The 8021q driver has no native XDP, so
    /// this ends in generic mode, which the kernel runs after it untagged
    /// the frame and handed it to the VLAN device: the advert arrives
    /// untagged with the VLAN device as ingress interface, and the key
    /// every map uses (ifindex, VRID, family) names the right virtual
    /// router with no tag parsing, as keepalived's socket bound to
    /// `eth1.100` would. Attached to the parent instead, the program would
    /// have to find the VLAN ID in the frame, and it is not always there:
    /// NICs with rx VLAN offload move the tag out of the data before XDP
    /// runs. So on any interface, a VRRP frame still tagged in
    /// its data passes as `passed_unknown`, for the stack to deliver to its
    /// VLAN device. The one case this cannot separate: when the parent's
    /// driver strips tags, an advert of a VLAN router looks untagged to
    /// the parent's program, and if an instance on the parent has the same
    /// VRID and family it is taken as that instance's (README: VLANs).
    pub fn attach(
        &mut self,
        interface: &str,
        mode: InterfaceMode,
    ) -> Result<&Attachment, DatapathError> {
        let ifindex = interface_index(interface)?;
        // Configure before attaching so the first packet already sees it.
        self.configure_interface(ifindex, mode)?;
        let attachment = match self.adopt_xdp(interface, ifindex) {
            Some(attachment) => attachment,
            None => self.attach_xdp(interface, ifindex)?,
        };
        info!(
            interface,
            ifindex,
            mode = ?attachment.mode,
            adopted = attachment.adopted,
            "XDP program attached"
        );
        self.attachments.push(attachment);
        Ok(self.attachments.last().expect("just pushed"))
    }

    fn adopt_xdp(&mut self, interface: &str, ifindex: u32) -> Option<Attachment> {
        let pins = self.pins.clone()?;
        for mode in [AttachMode::Driver, AttachMode::Generic] {
            let path = pins.interface(interface).join(mode.pin_name());
            if !path.exists() {
                continue;
            }
            let adopted = open_pinned_link(&path, pin::LINK_TYPE_XDP, ifindex, None)
                .and_then(|link| XdpLink::try_from(link).map_err(|error| error.to_string()))
                .and_then(|link| {
                    let program = xdp_program(&mut self.ebpf).map_err(|error| error.to_string())?;
                    let id = program
                        .attach_to_link(link)
                        .map_err(|error| error.to_string())?;
                    program.take_link(id).map_err(|error| error.to_string())
                });
            match adopted {
                Ok(link) => {
                    return Some(Attachment {
                        interface: interface.to_owned(),
                        ifindex,
                        mode,
                        adopted: true,
                        _link: link,
                    });
                }
                Err(error) => {
                    warn!(interface, pin = %path.display(), %error, "pinned XDP link not adoptable; attaching afresh");
                    let _ = pin::remove_tree(&path);
                }
            }
        }
        None
    }

    fn attach_xdp(&mut self, interface: &str, ifindex: u32) -> Result<Attachment, DatapathError> {
        let program = xdp_program(&mut self.ebpf)?;
        let (id, mode) = match program.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(id) => (id, AttachMode::Driver),
            Err(driver_error) => {
                warn!(
                    interface,
                    error = %driver_error,
                    "driver-mode XDP unavailable, falling back to generic mode (slower)"
                );
                let id = program
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|source| DatapathError::Attach {
                        interface: interface.to_owned(),
                        source,
                    })?;
                (id, AttachMode::Generic)
            }
        };
        let link = program
            .take_link(id)
            .map_err(|source| DatapathError::Program {
                program: program_names::VRRP_RX,
                source,
            })?;
        let link = match &self.pins {
            Some(pins) => {
                let path = pins.interface(interface).join(mode.pin_name());
                pin_link(link, &path)?
            }
            None => link,
        };
        Ok(Attachment {
            interface: interface.to_owned(),
            ifindex,
            mode,
            adopted: false,
            _link: link,
        })
    }

    /// Attaches the `vip_guard` egress program to `interface` (adopting a
    /// pinned one, as [`attach`](Self::attach) does).
    pub fn attach_vip_guard(&mut self, interface: &str) -> Result<(), DatapathError> {
        let link = self.attach_tc(TcSide::Egress, interface)?;
        self.guards.push(GuardAttachment {
            interface: interface.to_owned(),
            _link: link,
        });
        Ok(())
    }

    /// Attaches the `vmac_rx` ingress program to `interface`, where an
    /// instance uses `use_vmac` (adopting a pinned one); nothing when it is
    /// attached already. It stays until the interface is detached: frames
    /// to a virtual MAC are only taken in while its router is master here.
    pub fn attach_vmac_rx(&mut self, interface: &str) -> Result<(), DatapathError> {
        if self
            .vmac_links
            .iter()
            .any(|link| link.interface == interface)
        {
            return Ok(());
        }
        let link = self.attach_tc(TcSide::Ingress, interface)?;
        self.vmac_links.push(GuardAttachment {
            interface: interface.to_owned(),
            _link: link,
        });
        Ok(())
    }

    /// No instance on `interface` uses `use_vmac`: a `vmac_rx` link an
    /// earlier daemon pinned there is unpinned (the program detaches), so
    /// an interface without virtual MACs pays nothing on ingress.
    pub fn unpin_unused_vmac_rx(&mut self, interface: &str) {
        if self
            .vmac_links
            .iter()
            .any(|link| link.interface == interface)
        {
            return;
        }
        if let Some(pins) = &self.pins {
            let path = pins.interface(interface).join(TcSide::Ingress.pin_name());
            if path.exists() {
                info!(
                    interface,
                    "no instance uses use_vmac here: unpinning vmac_rx"
                );
                if let Err(error) = pin::remove_tree(&path) {
                    warn!(interface, %error, "unpinning vmac_rx failed");
                }
            }
        }
    }

    fn attach_tc(
        &mut self,
        side: TcSide,
        interface: &str,
    ) -> Result<SchedClassifierLink, DatapathError> {
        let ifindex = interface_index(interface)?;
        let (link, adopted) = match self.adopt_tc(side, interface, ifindex) {
            Some(link) => (link, true),
            None => {
                let program = tc_program(&mut self.ebpf, side)?;
                let attach_error = |source| DatapathError::AttachGuard {
                    interface: interface.to_owned(),
                    program: side.program(),
                    source,
                };
                let id = program
                    .attach(interface, side.attach_type())
                    .map_err(attach_error)?;
                let link = program.take_link(id).map_err(attach_error)?;
                let link = match &self.pins {
                    Some(pins) => pin_link(link, &pins.interface(interface).join(side.pin_name()))?,
                    None => link,
                };
                (link, false)
            }
        };
        info!(
            interface,
            adopted,
            program = side.program(),
            "TC program attached"
        );
        Ok(link)
    }

    fn adopt_tc(
        &mut self,
        side: TcSide,
        interface: &str,
        ifindex: u32,
    ) -> Option<SchedClassifierLink> {
        let pins = self.pins.clone()?;
        let path = pins.interface(interface).join(side.pin_name());
        if !path.exists() {
            return None;
        }
        let adopted = open_pinned_link(
            &path,
            pin::LINK_TYPE_TCX,
            ifindex,
            Some(side.pinned_attach_type()),
        )
        .and_then(|link| SchedClassifierLink::try_from(link).map_err(|error| error.to_string()))
        .and_then(|link| {
            let program = tc_program(&mut self.ebpf, side).map_err(|error| error.to_string())?;
            let id = program
                .attach_to_link(link)
                .map_err(|error| error.to_string())?;
            program.take_link(id).map_err(|error| error.to_string())
        });
        match adopted {
            Ok(link) => Some(link),
            Err(error) => {
                warn!(interface, pin = %path.display(), %error, "pinned TC link not adoptable; attaching afresh");
                let _ = pin::remove_tree(&path);
                None
            }
        }
    }

    /// Removes pinned links of interfaces this daemon does not run (an
    /// earlier daemon's configuration had them): their programs detach.
    pub fn unpin_interfaces_except(&mut self, running: &HashSet<String>) {
        let Some(pins) = &self.pins else {
            return;
        };
        for name in pins.pinned_interfaces() {
            if !running.contains(&name) {
                info!(interface = %name, "removing the pinned datapath of an interface no instance uses");
                if let Err(error) = pins.remove_interface(&name) {
                    warn!(interface = %name, %error, "unpinning failed");
                }
            }
        }
    }

    /// Sets what the kernel does with a virtual address of `instance`.
    /// Called at the moment of a transition: before the address is added and
    /// GARP goes out when becoming master, and first thing when leaving it.
    pub fn set_vip_state(
        &mut self,
        address: IpAddr,
        instance: InstanceKey,
        state: VipState,
        vmac: Vmac,
    ) -> Result<(), DatapathError> {
        let key = address_key(address);
        let mut map = self.hash_map::<AddressKey, VipEntry>(map_names::VIP_OWNERSHIP)?;
        let entry = VipEntry {
            flags: state.flags() | vmac.flags(),
            _pad: [0; 3],
            instance,
        };
        map.insert(key, entry, 0)
            .map_err(map_error(map_names::VIP_OWNERSHIP))?;
        self.inherited.vips.remove(&key);
        if state == VipState::OwnedNoAccept {
            self.drop_ingress.insert(address);
        } else {
            self.drop_ingress.remove(&address);
        }
        if state == VipState::NotOwned {
            self.owned.remove(&address);
        } else {
            self.owned.insert(address);
        }
        self.sync_guard(None)
    }

    /// Stops guarding a virtual address (its instance was removed).
    pub fn forget_vip(&mut self, address: IpAddr) -> Result<(), DatapathError> {
        self.remove_key::<AddressKey, VipEntry>(map_names::VIP_OWNERSHIP, &address_key(address))?;
        self.drop_ingress.remove(&address);
        self.owned.remove(&address);
        self.sync_guard(None)
    }

    /// The master's heartbeat for `key`, written at every advert it sends
    /// (`hold` is its Master_Down_Interval, `interval` its advert interval).
    pub fn write_heartbeat(
        &mut self,
        key: InstanceKey,
        heartbeat: Heartbeat,
        interval: Duration,
    ) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<InstanceKey, Heartbeat>(map_names::HEARTBEATS)?;
        map.insert(key, heartbeat, 0)
            .map_err(map_error(map_names::HEARTBEATS))?;
        self.inherited.heartbeats.remove(&key);
        self.masters
            .insert(key, Duration::from_nanos(heartbeat.hold_ns), interval);
        Ok(())
    }

    /// This node is no longer master of `key`.
    pub fn remove_heartbeat(&mut self, key: &InstanceKey) -> Result<(), DatapathError> {
        self.masters.remove(key);
        self.remove_key::<InstanceKey, Heartbeat>(map_names::HEARTBEATS, key)
    }

    pub fn heartbeat(&mut self, key: &InstanceKey) -> Result<Option<Heartbeat>, DatapathError> {
        let map = self.hash_map::<InstanceKey, Heartbeat>(map_names::HEARTBEATS)?;
        match map.get(key, 0) {
            Ok(heartbeat) => Ok(Some(heartbeat)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DatapathError::Map {
                map: map_names::HEARTBEATS,
                source,
            }),
        }
    }

    /// The daemon just advertised at `now_ns`: every master's heartbeat is
    /// known fresh for the window, so until then the programs need not
    /// read them.
    pub fn mark_alive(&mut self, now_ns: u64) -> Result<(), DatapathError> {
        let window = self.masters.window.as_nanos() as u64;
        let until = now_ns.saturating_add(window);
        // A write per advert would cost a syscall each; a mark at most a
        // quarter window old only makes the programs read heartbeats a
        // little sooner.
        if let Some(guard) = self.guard
            && guard.alive_until_ns <= until
            && guard.alive_until_ns >= until.saturating_sub(window / 4)
        {
            return Ok(());
        }
        self.sync_guard(Some(until))
    }

    /// Writes `GUARD` when its switches (or `alive_until`) change.
    fn sync_guard(&mut self, alive_until_ns: Option<u64>) -> Result<(), DatapathError> {
        let previous = self.guard;
        let wanted = GuardState {
            alive_until_ns: alive_until_ns
                .or(previous.map(|guard| guard.alive_until_ns))
                .unwrap_or(0),
            no_accept: u32::from(!self.drop_ingress.is_empty()),
            owns: u32::from(!self.owned.is_empty()),
        };
        if previous == Some(wanted) {
            return Ok(());
        }
        self.guard = None;
        let map = self
            .ebpf
            .map_mut(map_names::GUARD)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::GUARD,
            })?;
        let mut array = Array::<&mut MapData, GuardState>::try_from(map)
            .map_err(map_error(map_names::GUARD))?;
        array
            .set(GUARD_SLOT, wanted, 0)
            .map_err(map_error(map_names::GUARD))?;
        self.guard = Some(wanted);
        Ok(())
    }

    fn read_guard(&mut self) -> Result<GuardState, DatapathError> {
        let map = self
            .ebpf
            .map_mut(map_names::GUARD)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::GUARD,
            })?;
        let array = Array::<&mut MapData, GuardState>::try_from(map)
            .map_err(map_error(map_names::GUARD))?;
        array
            .get(&GUARD_SLOT, 0)
            .map_err(map_error(map_names::GUARD))
    }

    /// Detaches both programs from `interface` (a reload removed its last
    /// instance, or a failed reload rolls back what it attached), removing
    /// their pins.
    pub fn detach(&mut self, interface: &str) {
        if let Some(pins) = &self.pins
            && let Err(error) = pins.remove_interface(interface)
        {
            warn!(interface, %error, "unpinning the interface's links failed");
        }
        let before = self.guards.len() + self.attachments.len();
        self.guards.retain(|guard| guard.interface != interface);
        self.vmac_links.retain(|link| link.interface != interface);
        self.attachments
            .retain(|attachment| attachment.interface != interface);
        if self.guards.len() + self.attachments.len() != before {
            info!(interface, "XDP and TC programs detached");
        }
    }

    /// A clean stop: removes every pin (links first), then detaches. The
    /// next daemon starts from nothing.
    pub fn release(&mut self) {
        if let Some(pins) = self.pins.take() {
            match pins.remove_all() {
                Ok(removed) => info!(pins = removed.len(), "datapath unpinned"),
                Err(error) => {
                    warn!(%error, "unpinning the datapath failed; `vrrp-agent cleanup` removes what is left")
                }
            }
        }
        self.guards.clear();
        self.vmac_links.clear();
        self.attachments.clear();
        info!("XDP and TC programs detached");
    }

    /// Removes map entries an earlier daemon left for addresses, instances
    /// and interfaces this one has not written since it started: they
    /// belong to no configured instance.
    pub fn prune_inherited(&mut self) -> Result<(), DatapathError> {
        let inherited = std::mem::take(&mut self.inherited);
        for key in inherited.interfaces.keys() {
            self.remove_key::<u32, InterfaceConfig>(map_names::INTERFACES, key)?;
        }
        for key in &inherited.instances {
            self.remove_key::<InstanceKey, InstanceFilter>(map_names::INSTANCES, key)?;
        }
        for key in &inherited.local_addresses {
            self.remove_key::<AddressKey, u8>(map_names::LOCAL_ADDRESSES, key)?;
        }
        for key in &inherited.vips {
            self.remove_key::<AddressKey, VipEntry>(map_names::VIP_OWNERSHIP, key)?;
        }
        for key in &inherited.heartbeats {
            self.remove_key::<InstanceKey, Heartbeat>(map_names::HEARTBEATS, key)?;
        }
        for key in &inherited.unicast_sources {
            self.remove_key::<agent_common::UnicastSourceKey, agent_common::UnicastSource>(
                map_names::UNICAST_SOURCES,
                key,
            )?;
        }
        // Their filters are gone, so the kernel writes their slots no more.
        self.last_seen_slots.release_inherited();
        let removed = inherited.interfaces.len()
            + inherited.instances.len()
            + inherited.local_addresses.len()
            + inherited.vips.len()
            + inherited.heartbeats.len()
            + inherited.unicast_sources.len();
        if removed > 0 {
            info!(
                entries = removed,
                "removed what an earlier daemon left for instances no longer configured"
            );
        }
        Ok(())
    }

    fn snapshot_keys(&mut self) -> Result<Inherited, DatapathError> {
        Ok(Inherited {
            interfaces: {
                let map = self.hash_map::<u32, InterfaceConfig>(map_names::INTERFACES)?;
                map.iter()
                    .map(|entry| entry.map(|(ifindex, config)| (ifindex, config.slot)))
                    .collect::<Result<_, MapError>>()
                    .map_err(map_error(map_names::INTERFACES))?
            },
            instances: self.keys::<InstanceKey, InstanceFilter>(map_names::INSTANCES)?,
            local_addresses: self.keys::<AddressKey, u8>(map_names::LOCAL_ADDRESSES)?,
            vips: self.keys::<AddressKey, VipEntry>(map_names::VIP_OWNERSHIP)?,
            heartbeats: self.keys::<InstanceKey, Heartbeat>(map_names::HEARTBEATS)?,
            unicast_sources: self.unicast_source_keys()?,
        })
    }

    fn keys<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashSet<K>, DatapathError> {
        let map = self.hash_map::<K, V>(name)?;
        map.keys()
            .collect::<Result<HashSet<K>, MapError>>()
            .map_err(map_error(name))
    }

    /// Sets how adverts on `ifindex` are treated, and gives it its own
    /// counters; also usable without an attachment (tests drive the
    /// program through `BPF_PROG_TEST_RUN`).
    pub fn configure_interface(
        &mut self,
        ifindex: u32,
        mode: InterfaceMode,
    ) -> Result<(), DatapathError> {
        let slot = self.counter_slot(ifindex)?;
        let flags = match mode {
            InterfaceMode::ObserveOnly => IFACE_OBSERVE_ONLY,
            InterfaceMode::Enforce {
                pass_consumed: true,
            } => IFACE_PASS_CONSUMED,
            InterfaceMode::Enforce {
                pass_consumed: false,
            } => 0,
        };
        let config = InterfaceConfig {
            flags,
            _pad: 0,
            slot,
        };
        let mut map = self.hash_map::<u32, InterfaceConfig>(map_names::INTERFACES)?;
        map.insert(ifindex, config, 0)
            .map_err(map_error(map_names::INTERFACES))?;
        self.inherited.interfaces.remove(&ifindex);
        self.slots.insert(ifindex, slot);
        Ok(())
    }

    /// The slot `ifindex` counts into: the one it has, the one an earlier
    /// daemon gave it (its counters carry on), or a free one, zeroed so
    /// the interface does not start with another's counts.
    fn counter_slot(&mut self, ifindex: u32) -> Result<u16, DatapathError> {
        if let Some(slot) = self.slots.get(&ifindex) {
            return Ok(*slot);
        }
        if let Some(slot) = self.inherited.interfaces.get(&ifindex)
            && *slot != 0
            && !self.slots.values().any(|taken| taken == slot)
        {
            return Ok(*slot);
        }
        let slot = match self.free_slot() {
            Some(slot) => slot,
            None => {
                self.reclaim_vanished_slots()?;
                self.free_slot()
                    .ok_or(DatapathError::NoCounterSlot { ifindex })?
            }
        };
        let cpus = aya::util::nr_cpus()
            .map_err(|(what, error)| DatapathError::Cpus(format!("{what}: {error}")))?;
        let zeros = PerCpuValues::try_from(vec![CounterBlock::default(); cpus])
            .map_err(|error| DatapathError::Cpus(error.to_string()))?;
        let mut array = self.counter_array()?;
        array
            .set(u32::from(slot), zeros, 0)
            .map_err(map_error(map_names::COUNTERS))?;
        Ok(slot)
    }

    /// Installs (or replaces) the receive filter of one configured
    /// instance, with the instance's `LAST_SEEN` slot (assigned here: the
    /// one it has, the one an earlier daemon gave it, or a free one,
    /// zeroed first so it does not start with another instance's time).
    pub fn set_instance_filter(
        &mut self,
        key: InstanceKey,
        mut filter: InstanceFilter,
    ) -> Result<(), DatapathError> {
        let assigned = self
            .last_seen_slots
            .assign(key)
            .ok_or(DatapathError::NoLastSeenSlot { key })?;
        if let Assigned::Fresh(slot) = assigned
            && let Err(error) = self.zero_last_seen(slot)
        {
            self.last_seen_slots.release(&key);
            return Err(error);
        }
        filter.last_seen_slot = assigned.slot();
        let mut map = self.hash_map::<InstanceKey, InstanceFilter>(map_names::INSTANCES)?;
        map.insert(key, filter, 0)
            .map_err(map_error(map_names::INSTANCES))?;
        self.inherited.instances.remove(&key);
        Ok(())
    }

    fn zero_last_seen(&mut self, slot: u32) -> Result<(), DatapathError> {
        let map = self
            .ebpf
            .map_mut(map_names::LAST_SEEN)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::LAST_SEEN,
            })?;
        let mut array =
            Array::<&mut MapData, u64>::try_from(map).map_err(map_error(map_names::LAST_SEEN))?;
        array
            .set(slot, 0, 0)
            .map_err(map_error(map_names::LAST_SEEN))
    }

    /// Removes the receive filter of one instance, its unicast sources and
    /// its receive-time slot.
    pub fn remove_instance_filter(&mut self, key: &InstanceKey) -> Result<(), DatapathError> {
        self.remove_key::<InstanceKey, InstanceFilter>(map_names::INSTANCES, key)?;
        self.last_seen_slots.release(key);
        self.set_unicast_sources(*key, &[])
    }

    /// The kernel's receive time (CLOCK_MONOTONIC ns) of the last advert
    /// accepted for `key`'s instance, read from memory without a syscall:
    /// 0 before the first, `None` when the instance has no filter here.
    pub fn last_seen(&self, key: &InstanceKey) -> Option<u64> {
        self.last_seen.get(self.last_seen_slots.get(key)?)
    }

    /// Marks an address as this node's own: adverts from it are dropped.
    pub fn add_local_address(&mut self, address: IpAddr) -> Result<(), DatapathError> {
        let key = address_key(address);
        let mut map = self.hash_map::<AddressKey, u8>(map_names::LOCAL_ADDRESSES)?;
        map.insert(key, 1, 0)
            .map_err(map_error(map_names::LOCAL_ADDRESSES))?;
        self.inherited.local_addresses.remove(&key);
        Ok(())
    }

    /// The address is no longer this node's (removed from its interface).
    pub fn remove_local_address(&mut self, address: IpAddr) -> Result<(), DatapathError> {
        self.remove_key::<AddressKey, u8>(map_names::LOCAL_ADDRESSES, &address_key(address))
    }

    /// Forgets how adverts on `ifindex` are treated: the interface is gone
    /// (deleted, or renamed away), and a later one may reuse the index.
    pub fn forget_interface(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        self.remove_key::<u32, InterfaceConfig>(map_names::INTERFACES, &ifindex)
    }

    /// What the kernel currently holds for every virtual router it has
    /// seen, keyed by (ifindex, family, vrid).
    pub fn peers(&mut self) -> Result<BTreeMap<(u32, u8, u8), PeerRecord>, DatapathError> {
        let map = self.hash_map::<PeerKey, PeerState>(map_names::PEERS)?;
        map.iter()
            .map(|entry| {
                entry
                    .map(|(key, state)| {
                        (
                            (key.ifindex, key.family, key.vrid),
                            PeerRecord::from_kernel(&key, &state),
                        )
                    })
                    .map_err(map_error(map_names::PEERS))
            })
            .collect()
    }

    pub fn peer(&mut self, key: &PeerKey) -> Result<Option<PeerState>, DatapathError> {
        let map = self.hash_map::<PeerKey, PeerState>(map_names::PEERS)?;
        match map.get(key, 0) {
            Ok(state) => Ok(Some(state)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DatapathError::Map {
                map: map_names::PEERS,
                source,
            }),
        }
    }

    /// Forgets what the kernel knew about a virtual router, so the next
    /// advert for it raises a `first` event even if it repeats the old one:
    /// a new master must hear a returning peer whose adverts look exactly as
    /// they did before it went away.
    pub fn forget_peer(&mut self, key: &PeerKey) -> Result<(), DatapathError> {
        self.remove_key::<PeerKey, PeerState>(map_names::PEERS, key)
    }

    fn free_slot(&self) -> Option<u16> {
        let taken: HashSet<u16> = self
            .slots
            .values()
            .chain(self.inherited.interfaces.values())
            .copied()
            .collect();
        (1..=MAX_INTERFACE_SLOTS as u16).find(|slot| !taken.contains(slot))
    }

    /// Gives back the slots (and `INTERFACES` entries) of interfaces that
    /// no longer exist: interfaces deleted and re-created come back with a
    /// new ifindex, and must not use up the slots over a long run.
    fn reclaim_vanished_slots(&mut self) -> Result<(), DatapathError> {
        let vanished: Vec<u32> = self
            .slots
            .keys()
            .chain(self.inherited.interfaces.keys())
            .copied()
            .filter(|ifindex| !interface_exists(*ifindex))
            .collect();
        for ifindex in vanished {
            self.remove_key::<u32, InterfaceConfig>(map_names::INTERFACES, &ifindex)?;
            self.slots.remove(&ifindex);
            self.inherited.interfaces.remove(&ifindex);
        }
        Ok(())
    }

    /// `event_lost` summed over CPUs and interface slots: one lookup per
    /// slot (each returns every CPU's block), where
    /// [`counters`](Self::counters) also builds every snapshot.
    pub fn events_lost(&mut self) -> Result<u64, DatapathError> {
        let slots = self.counted_slots();
        let array = self.counter_array()?;
        let mut lost = 0;
        for slot in slots {
            let per_cpu = array
                .get(&u32::from(slot), 0)
                .map_err(map_error(map_names::COUNTERS))?;
            lost += per_cpu
                .iter()
                .map(|block| block.values[Counter::EventLost as usize])
                .sum::<u64>();
        }
        Ok(lost)
    }

    /// The shared slot 0 and the slot of every interface configured now or
    /// by an earlier daemon.
    fn counted_slots(&self) -> HashSet<u16> {
        std::iter::once(0)
            .chain(self.slots.values().copied())
            .chain(self.inherited.interfaces.values().copied())
            .collect()
    }

    /// Every counter summed over all interfaces: the shared slot 0 and
    /// the slot of every interface configured now or by an earlier daemon.
    pub fn counters(&mut self) -> Result<CounterSnapshot, DatapathError> {
        let slots = self.counted_slots();
        let array = self.counter_array()?;
        let mut total = CounterSnapshot::default();
        for slot in slots {
            total.add_slot(&array, slot)?;
        }
        Ok(total)
    }

    /// The counters of every interface this daemon configured, by ifindex.
    pub fn interface_counters(&mut self) -> Result<BTreeMap<u32, CounterSnapshot>, DatapathError> {
        let slots: Vec<(u32, u16)> = self.slots.iter().map(|(i, s)| (*i, *s)).collect();
        let array = self.counter_array()?;
        let mut counters = BTreeMap::new();
        for (ifindex, slot) in slots {
            let mut snapshot = CounterSnapshot::default();
            snapshot.add_slot(&array, slot)?;
            counters.insert(ifindex, snapshot);
        }
        Ok(counters)
    }

    fn counter_array(&mut self) -> Result<PerCpuArray<&mut MapData, CounterBlock>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(map_names::COUNTERS)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::COUNTERS,
            })?;
        PerCpuArray::try_from(map).map_err(map_error(map_names::COUNTERS))
    }

    /// The loaded XDP program, for `BPF_PROG_TEST_RUN` in tests.
    #[cfg(test)]
    pub fn rx_program(&mut self) -> Result<&mut Xdp, DatapathError> {
        xdp_program(&mut self.ebpf)
    }

    /// The loaded `vmac_rx`, for `BPF_PROG_TEST_RUN` in tests.
    #[cfg(test)]
    pub fn vmac_program(&mut self) -> Result<&mut SchedClassifier, DatapathError> {
        tc_program(&mut self.ebpf, TcSide::Ingress)
    }

    /// The loaded egress guard, for `BPF_PROG_TEST_RUN` in tests.
    #[cfg(test)]
    pub fn guard_program(&mut self) -> Result<&mut SchedClassifier, DatapathError> {
        tc_program(&mut self.ebpf, TcSide::Egress)
    }

    /// Removes `key`; a key that is not there is already what was wanted.
    fn remove_key<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        key: &K,
    ) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<K, V>(name)?;
        match map.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(error))
                if error.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(source) => Err(DatapathError::Map { map: name, source }),
        }
    }

    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(DatapathError::Missing { kind: "map", name })?;
        HashMap::try_from(map).map_err(map_error(name))
    }
}

/// Opens the link pinned at `path` if it is of `link_type` and still
/// attached to `ifindex` (and, for TCX, on the `attach_type` side): a link
/// whose interface was deleted or re-created would leave the new one
/// without programs.
fn open_pinned_link(
    path: &std::path::Path,
    link_type: u32,
    ifindex: u32,
    attach_type: Option<u32>,
) -> Result<FdLink, String> {
    let target = pin::link_target(path).map_err(|error| error.to_string())?;
    if target.link_type != link_type
        || target.ifindex != ifindex
        || attach_type.is_some_and(|wanted| wanted != target.attach_type)
    {
        return Err(format!(
            "the pinned link is of type {} on ifindex {} (wanted type {link_type} on ifindex {ifindex})",
            target.link_type, target.ifindex
        ));
    }
    let link = PinnedLink::from_pin(path).map_err(|error| error.to_string())?;
    Ok(FdLink::from(link))
}

/// Pins a freshly attached link at `path`: from then on the program stays
/// attached when this process exits, until the pin is removed.
fn pin_link<L>(link: L, path: &std::path::Path) -> Result<L, DatapathError>
where
    FdLink: TryFrom<L, Error = aya::programs::links::LinkError>,
    L: TryFrom<FdLink, Error = aya::programs::links::LinkError>,
{
    let pin_error = |message: String| DatapathError::Pin {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| pin_error(error.to_string()))?;
    }
    let fd_link = FdLink::try_from(link).map_err(|error| {
        pin_error(format!(
            "the kernel attached it without a BPF link ({error}); links need Linux ≥ 6.6"
        ))
    })?;
    let pinned = fd_link
        .pin(path)
        .map_err(|error| pin_error(error.to_string()))?;
    L::try_from(FdLink::from(pinned)).map_err(|error| pin_error(error.to_string()))
}

/// Checks every pinned map against the object's definition of it. Returns
/// how many can be adopted; when one cannot (another type, key, value or
/// size: a daemon of another build left it), all of them are removed so
/// the programs start from fresh, consistent maps.
fn adoptable_maps(pins: &PinDir) -> Result<usize, String> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).map_err(|error| error.to_string())?;
    let mut adoptable = 0;
    let mut mismatch = None;
    for name in map_names::PINNED {
        let path = pins.map(name);
        if !path.exists() {
            continue;
        }
        let Some(wanted) = object.maps.get(name) else {
            return Err(format!("the eBPF object has no map `{name}`"));
        };
        match MapInfo::from_pin(&path) {
            Ok(found)
                if found.map_type().map(|kind| kind as u32).ok() == Some(wanted.map_type())
                    && found.key_size() == wanted.key_size()
                    && found.value_size() == wanted.value_size()
                    && found.max_entries() == wanted.max_entries() =>
            {
                adoptable += 1;
            }
            Ok(_) => mismatch = Some(format!("map `{name}` has another layout")),
            Err(error) => mismatch = Some(format!("map `{name}`: {error}")),
        }
    }
    if let Some(reason) = mismatch {
        warn!(%reason, "the pinned maps cannot be adopted; starting with fresh maps (no state carried over)");
        pin::remove_tree(&pins.maps()).map_err(|error| error.to_string())?;
        std::fs::create_dir_all(pins.maps()).map_err(|error| error.to_string())?;
        return Ok(0);
    }
    Ok(adoptable)
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DatapathError> {
    program(ebpf, program_names::VRRP_RX)
}

fn tc_program(ebpf: &mut Ebpf, side: TcSide) -> Result<&mut SchedClassifier, DatapathError> {
    program(ebpf, side.program())
}

/// The two TC programs on every VRRP interface.
#[derive(Debug, Clone, Copy)]
enum TcSide {
    /// `vip_guard`.
    Egress,
    /// `vmac_rx`.
    Ingress,
}

impl TcSide {
    fn program(self) -> &'static str {
        match self {
            Self::Egress => program_names::VIP_GUARD,
            Self::Ingress => program_names::VMAC_RX,
        }
    }

    fn attach_type(self) -> TcAttachType {
        match self {
            Self::Egress => TcAttachType::Egress,
            Self::Ingress => TcAttachType::Ingress,
        }
    }

    fn pin_name(self) -> &'static str {
        match self {
            Self::Egress => pin::TC_EGRESS,
            Self::Ingress => pin::TC_INGRESS,
        }
    }

    fn pinned_attach_type(self) -> u32 {
        match self {
            Self::Egress => pin::ATTACH_TCX_EGRESS,
            Self::Ingress => pin::ATTACH_TCX_INGRESS,
        }
    }
}

fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, DatapathError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DatapathError::Missing {
            kind: "program",
            name,
        })?
        .try_into()
        .map_err(|source| DatapathError::Program {
            program: name,
            source,
        })
}

fn map_error(map: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |source| DatapathError::Map { map, source }
}

pub fn interface_index(name: &str) -> Result<u32, DatapathError> {
    let unknown = || DatapathError::UnknownInterface {
        name: name.to_owned(),
    };
    let c_name = std::ffi::CString::new(name).map_err(|_| unknown())?;
    // SAFETY: c_name is a valid NUL-terminated string for the call's duration.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(unknown()),
        index => Ok(index),
    }
}

fn interface_exists(ifindex: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes the call may write.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
}

fn address_key(address: IpAddr) -> AddressKey {
    let (family, address) = address_to_key(address);
    AddressKey {
        family,
        _pad: [0; 3],
        address,
    }
}

/// Map encoding of an address: family and 16 bytes, IPv4 in the first four.
pub fn address_to_key(address: IpAddr) -> (u8, [u8; 16]) {
    match address {
        IpAddr::V4(v4) => {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&v4.octets());
            (FAMILY_IPV4, bytes)
        }
        IpAddr::V6(v6) => (FAMILY_IPV6, v6.octets()),
    }
}

/// Inverse of [`address_to_key`] for a peer's source address.
pub fn key_to_address(family: u8, bytes: [u8; 16]) -> IpAddr {
    if family == FAMILY_IPV4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads, so
/// ages computed against `PeerState::last_seen_ns` are exact.
pub fn kernel_now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
