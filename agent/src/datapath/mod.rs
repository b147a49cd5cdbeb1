//! Loads the kernel programs, attaches them, fills their configuration maps
//! and reads back what they saw. Dropping a [`Datapath`] detaches everything.

mod events;
mod kernel_log;
mod peer;
#[cfg(test)]
mod test_frames;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use agent_common::{
    AddressKey, IFACE_OBSERVE_ONLY, IFACE_PASS_CONSUMED, INGRESS_GUARD_SLOT, InterfaceConfig,
    VIP_DROP_INGRESS, VIP_NOT_OWNED, VIP_OWNED, map_names, program_names,
};
pub use agent_common::{
    Counter, FAMILY_IPV4, FAMILY_IPV6, InstanceFilter, InstanceKey, PeerKey, PeerState,
};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode, tc::SchedClassifierLinkId,
        xdp::XdpLinkId,
    },
};
pub use events::EventStream;
pub use kernel_log::KernelLog;
pub use peer::PeerRecord;
use thiserror::Error;
use tracing::{info, warn};

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
    #[error("attaching the TC egress guard to `{interface}` failed: {source}")]
    AttachGuard {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("attaching XDP to `{interface}` failed in driver and in generic mode: {source}")]
    Attach {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("forwarding kernel log records: {0}")]
    KernelLog(String),
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
    /// leave and packets to it are delivered.
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

/// Which XDP mode an attachment ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    Driver,
    Generic,
}

#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    link: XdpLinkId,
}

/// Sum over CPUs of every counter, in `Counter::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterSnapshot {
    values: [u64; Counter::COUNT as usize],
}

impl CounterSnapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
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

/// A `vip_guard` attachment (TCX egress; no qdisc is created on 6.6+ kernels).
#[derive(Debug)]
struct GuardAttachment {
    interface: String,
    link: SchedClassifierLinkId,
}

pub struct Datapath {
    ebpf: Ebpf,
    attachments: Vec<Attachment>,
    guards: Vec<GuardAttachment>,
    /// Addresses in [`VipState::OwnedNoAccept`]: while there are any,
    /// `INGRESS_GUARD` tells `vrrp_rx` to look destinations up.
    drop_ingress: HashSet<IpAddr>,
    /// What `INGRESS_GUARD` last held; `None` until written or after a
    /// failed write, so the next change retries it.
    ingress_guard: Option<bool>,
}

impl Datapath {
    /// Loads the object and the `vrrp_rx` program into the kernel, attached
    /// nowhere yet. Returns the datapath, the stream of peer-change events
    /// and the kernel log forwarder. Must run inside a tokio runtime, with
    /// which the rings register.
    pub fn load() -> Result<(Self, EventStream, KernelLog), DatapathError> {
        let mut ebpf = Ebpf::load(EBPF_OBJECT)?;
        // The log ring must be taken before the program loads and outlive it.
        let kernel_log = KernelLog::take(&mut ebpf)?;
        let events = EventStream::take(&mut ebpf)?;
        let program = xdp_program(&mut ebpf)?;
        program.load().map_err(|source| DatapathError::Program {
            program: program_names::VRRP_RX,
            source,
        })?;
        let guard = guard_program(&mut ebpf)?;
        guard.load().map_err(|source| DatapathError::Program {
            program: program_names::VIP_GUARD,
            source,
        })?;
        Ok((
            Self {
                ebpf,
                attachments: Vec::new(),
                guards: Vec::new(),
                drop_ingress: HashSet::new(),
                ingress_guard: None,
            },
            events,
            kernel_log,
        ))
    }

    /// Attaches `vrrp_rx` to `interface` in driver mode, or in generic mode
    /// when the driver has no XDP support, and configures its mode.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: InterfaceMode,
    ) -> Result<&Attachment, DatapathError> {
        let ifindex = interface_index(interface)?;
        // Configure before attaching so the first packet already sees it.
        self.configure_interface(ifindex, mode)?;
        let program = xdp_program(&mut self.ebpf)?;
        let (link, attach_mode) = match program.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(link) => (link, AttachMode::Driver),
            Err(driver_error) => {
                warn!(
                    interface,
                    error = %driver_error,
                    "driver-mode XDP unavailable, falling back to generic mode (slower)"
                );
                let link = program
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|source| DatapathError::Attach {
                        interface: interface.to_owned(),
                        source,
                    })?;
                (link, AttachMode::Generic)
            }
        };
        info!(interface, ifindex, mode = ?attach_mode, "XDP program attached");
        self.attachments.push(Attachment {
            interface: interface.to_owned(),
            ifindex,
            mode: attach_mode,
            link,
        });
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Attaches the `vip_guard` egress program to `interface`.
    pub fn attach_vip_guard(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = guard_program(&mut self.ebpf)?;
        let link = program
            .attach(interface, TcAttachType::Egress)
            .map_err(|source| DatapathError::AttachGuard {
                interface: interface.to_owned(),
                source,
            })?;
        info!(interface, "TC egress guard attached");
        self.guards.push(GuardAttachment {
            interface: interface.to_owned(),
            link,
        });
        Ok(())
    }

    /// Sets what the kernel does with a virtual address. Called at the
    /// moment of a transition: before the address is added and GARP goes out
    /// when becoming master, and first thing when leaving it.
    pub fn set_vip_state(&mut self, address: IpAddr, state: VipState) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<AddressKey, u8>(map_names::VIP_OWNERSHIP)?;
        map.insert(address_key(address), state.flags(), 0)
            .map_err(map_error(map_names::VIP_OWNERSHIP))?;
        if state == VipState::OwnedNoAccept {
            self.drop_ingress.insert(address);
        } else {
            self.drop_ingress.remove(&address);
        }
        self.sync_ingress_guard()
    }

    /// Stops guarding a virtual address (its instance was removed).
    pub fn forget_vip(&mut self, address: IpAddr) -> Result<(), DatapathError> {
        self.remove_key::<AddressKey, u8>(map_names::VIP_OWNERSHIP, &address_key(address))?;
        self.drop_ingress.remove(&address);
        self.sync_ingress_guard()
    }

    /// Turns the destination lookup in `vrrp_rx` on while some address is
    /// held in no-accept mode, and off again, so ordinary traffic costs no
    /// hash lookup on nodes that do not use no-accept.
    fn sync_ingress_guard(&mut self) -> Result<(), DatapathError> {
        let wanted = !self.drop_ingress.is_empty();
        if self.ingress_guard == Some(wanted) {
            return Ok(());
        }
        self.ingress_guard = None;
        let map = self
            .ebpf
            .map_mut(map_names::INGRESS_GUARD)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::INGRESS_GUARD,
            })?;
        let mut array = Array::<&mut MapData, u32>::try_from(map)
            .map_err(map_error(map_names::INGRESS_GUARD))?;
        array
            .set(INGRESS_GUARD_SLOT, u32::from(wanted), 0)
            .map_err(map_error(map_names::INGRESS_GUARD))?;
        self.ingress_guard = Some(wanted);
        Ok(())
    }

    /// Detaches both programs from `interface` (a reload removed its last
    /// instance, or a failed reload rolls back what it attached).
    pub fn detach(&mut self, interface: &str) {
        let (guards, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.guards)
            .into_iter()
            .partition(|guard| guard.interface == interface);
        self.guards = kept;
        if let Ok(program) = guard_program(&mut self.ebpf) {
            for guard in guards {
                if let Err(error) = program.detach(guard.link) {
                    warn!(interface, %error, "detaching the TC egress guard failed");
                }
            }
        }
        let (attachments, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.attachments)
            .into_iter()
            .partition(|attachment| attachment.interface == interface);
        self.attachments = kept;
        if let Ok(program) = xdp_program(&mut self.ebpf) {
            for attachment in attachments {
                match program.detach(attachment.link) {
                    Ok(()) => info!(interface, "XDP program detached"),
                    Err(error) => warn!(interface, %error, "detaching XDP failed"),
                }
            }
        }
    }

    /// Sets how adverts on `ifindex` are treated; also usable without an
    /// attachment (tests drive the program through `BPF_PROG_TEST_RUN`).
    pub fn configure_interface(
        &mut self,
        ifindex: u32,
        mode: InterfaceMode,
    ) -> Result<(), DatapathError> {
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
            _pad: [0; 3],
        };
        let mut map = self.hash_map::<u32, InterfaceConfig>(map_names::INTERFACES)?;
        map.insert(ifindex, config, 0)
            .map_err(map_error(map_names::INTERFACES))
    }

    /// Installs (or replaces) the receive filter of one configured instance.
    pub fn set_instance_filter(
        &mut self,
        key: InstanceKey,
        filter: InstanceFilter,
    ) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<InstanceKey, InstanceFilter>(map_names::INSTANCES)?;
        map.insert(key, filter, 0)
            .map_err(map_error(map_names::INSTANCES))
    }

    pub fn remove_instance_filter(&mut self, key: &InstanceKey) -> Result<(), DatapathError> {
        self.remove_key::<InstanceKey, InstanceFilter>(map_names::INSTANCES, key)
    }

    /// Marks an address as this node's own: adverts from it are dropped.
    pub fn add_local_address(&mut self, address: IpAddr) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<AddressKey, u8>(map_names::LOCAL_ADDRESSES)?;
        map.insert(address_key(address), 1, 0)
            .map_err(map_error(map_names::LOCAL_ADDRESSES))
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

    pub fn counters(&mut self) -> Result<CounterSnapshot, DatapathError> {
        let map = self
            .ebpf
            .map_mut(map_names::COUNTERS)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::COUNTERS,
            })?;
        let array = PerCpuArray::<&mut MapData, u64>::try_from(map)
            .map_err(map_error(map_names::COUNTERS))?;
        let mut snapshot = CounterSnapshot::default();
        for counter in Counter::ALL {
            let per_cpu = array
                .get(&(counter as u32), 0)
                .map_err(map_error(map_names::COUNTERS))?;
            snapshot.values[counter as usize] = per_cpu.iter().sum();
        }
        Ok(snapshot)
    }

    /// The loaded XDP program, for `BPF_PROG_TEST_RUN` in tests.
    #[cfg(test)]
    pub fn rx_program(&mut self) -> Result<&mut Xdp, DatapathError> {
        xdp_program(&mut self.ebpf)
    }

    /// The loaded egress guard, for `BPF_PROG_TEST_RUN` in tests.
    #[cfg(test)]
    pub fn guard_program(&mut self) -> Result<&mut SchedClassifier, DatapathError> {
        guard_program(&mut self.ebpf)
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

impl Drop for Datapath {
    fn drop(&mut self) {
        let guards = std::mem::take(&mut self.guards);
        if let Ok(program) = guard_program(&mut self.ebpf) {
            for guard in guards {
                match program.detach(guard.link) {
                    Ok(()) => info!(interface = %guard.interface, "TC egress guard detached"),
                    Err(error) => warn!(
                        interface = %guard.interface,
                        %error,
                        "detaching the TC egress guard failed; it goes away when this process exits"
                    ),
                }
            }
        }
        let attachments = std::mem::take(&mut self.attachments);
        if let Ok(program) = xdp_program(&mut self.ebpf) {
            for attachment in attachments {
                match program.detach(attachment.link) {
                    Ok(()) => info!(interface = %attachment.interface, "XDP program detached"),
                    Err(error) => warn!(
                        interface = %attachment.interface,
                        %error,
                        "detaching XDP failed; it goes away when this process exits"
                    ),
                }
            }
        }
    }
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DatapathError> {
    program(ebpf, program_names::VRRP_RX)
}

fn guard_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, DatapathError> {
    program(ebpf, program_names::VIP_GUARD)
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
