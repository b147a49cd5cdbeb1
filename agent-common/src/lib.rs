//! Types shared by the kernel programs (`agent-ebpf`) and the daemon (`agent`).
//!
//! Everything here crosses the user/kernel boundary through BPF maps or the
//! ring buffer, so every struct is `#[repr(C)]` with explicit padding: the
//! layout must be identical on both sides and contain no uninitialised bytes.
#![no_std]

/// `PeerKey::family` / `InstanceKey::family` for IPv4.
pub const FAMILY_IPV4: u8 = 4;
/// `PeerKey::family` / `InstanceKey::family` for IPv6.
pub const FAMILY_IPV6: u8 = 6;

/// Identifies one virtual router as seen on one link.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PeerKey {
    pub ifindex: u32,
    pub vrid: u8,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    pub _pad: [u8; 2],
}

impl PeerKey {
    pub const fn new(ifindex: u32, vrid: u8, family: u8) -> Self {
        Self {
            ifindex,
            vrid,
            family,
            _pad: [0; 2],
        }
    }
}

/// The receive filter for one configured instance is keyed like a peer.
pub type InstanceKey = PeerKey;

/// `PeerState::flags`: the last advert's VRRPv3-over-IPv4 checksum covered the
/// pseudo-header (keepalived's default) rather than the message alone.
pub const PEER_FLAG_PSEUDO_HEADER_CHECKSUM: u8 = 1;

/// What the kernel last saw from the master of a virtual router.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerState {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the last valid advert arrived.
    pub last_seen_ns: u64,
    /// Valid adverts accepted for this key since the program was loaded.
    pub adverts: u64,
    /// Source address of the last advert; IPv4 uses the first 4 bytes.
    pub source: [u8; 16],
    /// Advertised interval in centiseconds (VRRPv2 seconds are converted).
    pub interval_cs: u16,
    pub priority: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// `PEER_FLAG_*` bits.
    pub flags: u8,
    pub _pad: [u8; 3],
}

/// `PeerEvent::changes` bits: why the kernel woke userspace up.
pub const CHANGE_FIRST: u8 = 1 << 0;
pub const CHANGE_SOURCE: u8 = 1 << 1;
pub const CHANGE_PRIORITY: u8 = 1 << 2;
pub const CHANGE_PRIORITY_ZERO: u8 = 1 << 3;
pub const CHANGE_INTERVAL: u8 = 1 << 4;
pub const CHANGE_VERSION: u8 = 1 << 5;
/// The router spoke again after more than [`PEER_SILENCE_INTERVALS`] of
/// its advert intervals: a router that was backup (or cut off) now claims
/// the virtual router, which a master must hear at once even when the
/// advert looks like the last one recorded (a split brain healing).
pub const CHANGE_RESUMED: u8 = 1 << 6;
/// The advert's VRRPv3-over-IPv4 checksum form
/// ([`PEER_FLAG_PSEUDO_HEADER_CHECKSUM`]) differs from the last one: the
/// daemon reads a router's full record only once a second, so a change the
/// election answers (keepalived's checksum-form fallback) must wake it.
pub const CHANGE_CHECKSUM: u8 = 1 << 7;

/// How many of its own advert intervals a live router is never silent
/// for; an advert after a longer silence raises [`CHANGE_RESUMED`].
pub const PEER_SILENCE_INTERVALS: u64 = 2;

/// Ring-buffer record pushed when something an election cares about changed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerEvent {
    pub key: PeerKey,
    /// `CHANGE_*` bits.
    pub changes: u8,
    pub _pad: [u8; 7],
    pub state: PeerState,
}

/// `InterfaceConfig::flags`: accept adverts for every VRID without checking
/// instance filters, and pass everything on (the `monitor` command).
pub const IFACE_OBSERVE_ONLY: u8 = 1 << 0;
/// `InterfaceConfig::flags`: pass valid adverts to the network stack after
/// recording them (so tcpdump and raw sockets still see them) instead of
/// dropping them.
pub const IFACE_PASS_CONSUMED: u8 = 1 << 1;

/// Per-interface behaviour, keyed by ifindex. An interface without an entry
/// is not ours: every packet passes untouched.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InterfaceConfig {
    /// `IFACE_*` bits.
    pub flags: u8,
    pub _pad: u8,
    /// Which `COUNTERS` block this interface counts into (1 ..=
    /// [`MAX_INTERFACE_SLOTS`]); the daemon assigns it and keeps it while
    /// the interface is configured.
    pub slot: u16,
}

/// How many interfaces can have their own counters. Slot 0 collects what
/// happens on an interface without a slot (not configured, or a test run).
pub const MAX_INTERFACE_SLOTS: u32 = 256;

/// One interface's counters, indexed by [`Counter`]: the value of one slot
/// of the per-CPU `COUNTERS` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterBlock {
    pub values: [u64; Counter::COUNT as usize],
}

impl Default for CounterBlock {
    fn default() -> Self {
        Self {
            values: [0; Counter::COUNT as usize],
        }
    }
}

/// `InstanceFilter::flags`: the instance talks to unicast peers, so its
/// adverts may have crossed routers: no TTL / hop-limit 255 check (as
/// keepalived, which checks it only for multicast).
pub const INSTANCE_UNICAST: u8 = 1 << 0;
/// `InstanceFilter::flags`: adverts must come from a configured unicast
/// peer (`UNICAST_SOURCES`), within that peer's TTL range
/// (`check_unicast_src`, `vrrp_check_unicast_src`, `min_ttl`/`max_ttl`).
pub const INSTANCE_CHECK_UNICAST_SOURCE: u8 = 1 << 1;

/// `InstanceFilter::auth_type` values (VRRPv2 only).
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;

/// What a configured instance accepts; VRRPv3 ignores the auth fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InstanceFilter {
    /// 2 or 3: adverts of the other version are dropped, as keepalived does.
    pub version: u8,
    pub auth_type: u8,
    /// VRRPv2 only: the advert interval in seconds must match (RFC 3768 §7.1).
    pub advert_int_s: u8,
    /// `INSTANCE_*` bits.
    pub flags: u8,
    /// NUL-padded PASS data, compared byte for byte.
    pub auth_pass: [u8; 8],
    /// Where `vrrp_rx` writes the receive time of this instance's accepted
    /// adverts in `LAST_SEEN` (1 ..= [`MAX_INSTANCES`]; 0 is a slot nobody
    /// reads). The daemon assigns it and keeps it while the instance runs.
    pub last_seen_slot: u32,
}

/// `UNICAST_SOURCES` key: one configured unicast peer of one instance.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct UnicastSourceKey {
    pub instance: InstanceKey,
    /// The peer's address; IPv4 uses the first 4 bytes.
    pub address: [u8; 16],
}

/// `UNICAST_SOURCES` value: the TTL / hop limit range the peer's adverts
/// must arrive with (keepalived's `min_ttl` / `max_ttl`, 0 and 255 unless
/// configured).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnicastSource {
    pub min_ttl: u8,
    pub max_ttl: u8,
    pub _pad: [u8; 2],
}

/// How many unicast peers, over all instances, the kernel checks sources
/// against.
pub const MAX_UNICAST_SOURCES: u32 = 4 * MAX_INSTANCES;

/// An address as a map key: the node's own addresses (whose adverts are
/// ignored) and the virtual addresses guarded on egress.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AddressKey {
    pub family: u8,
    pub _pad: [u8; 3],
    pub address: [u8; 16],
}

/// Indices into a [`CounterBlock`]. `Accepted` counts valid adverts,
/// `PassedUnknown` VRRP frames passed on because no instance here owns
/// them; the advert drop reasons follow ([`Counter::is_advert_drop`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Accepted = 0,
    /// TTL / hop limit not 255 (RFC 5798 §7.1) for a multicast instance,
    /// or outside the sending peer's `min_ttl`..`max_ttl` for a unicast one.
    Ttl = 1,
    /// VRRP version neither 2 nor 3, or not the instance's version.
    Version = 2,
    /// Type other than 1 (advertisement).
    Type = 3,
    /// Truncated, or length inconsistent with the address count.
    Length = 4,
    /// Checksum matches none of the accepted forms.
    Checksum = 5,
    /// A VRRP frame no instance on this interface owns, passed on to the
    /// stack untouched: its VRID and family run nowhere on this interface,
    /// it carries a VLAN tag (it belongs to a VLAN device, not to the
    /// interface it arrived on), or it is too malformed to name a VRID.
    PassedUnknown = 6,
    /// VRRPv2 authentication type differs from the instance's.
    AuthType = 7,
    /// VRRPv2 PASS data differs from the instance's.
    AuthData = 8,
    /// VRRPv2 advert interval differs from the instance's.
    AdvertInterval = 9,
    /// Sent from one of this node's own addresses.
    OwnAddress = 10,
    /// A ring-buffer event could not be queued (userspace too slow).
    EventLost = 11,
    /// An outgoing frame sourced from a virtual address this node does not
    /// own (it is not master) was stopped by `vip_guard`.
    VipEgressBlocked = 12,
    /// An incoming packet addressed to a virtual address this node is master
    /// of in no-accept mode (RFC 5798 §6.4.3) was dropped by `vrrp_rx`.
    VipIngressBlocked = 13,
    /// A frame to or from a virtual address of an instance that is fenced
    /// (its daemon stopped advertising for longer than the hold, or the
    /// kernel saw a router that wins the election) was stopped.
    VipFenced = 14,
    /// `vrrp_rx` validated an advert that wins against an instance this
    /// node is master of, and fenced that instance before the daemon heard
    /// of it.
    FenceClosed = 15,
    /// A unicast instance that checks sources (`check_unicast_src`)
    /// received an advert from an address that is none of its peers.
    UnicastSource = 16,
}

impl Counter {
    pub const COUNT: u32 = 17;

    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::Accepted,
        Counter::Ttl,
        Counter::Version,
        Counter::Type,
        Counter::Length,
        Counter::Checksum,
        Counter::PassedUnknown,
        Counter::AuthType,
        Counter::AuthData,
        Counter::AdvertInterval,
        Counter::OwnAddress,
        Counter::EventLost,
        Counter::VipEgressBlocked,
        Counter::VipIngressBlocked,
        Counter::VipFenced,
        Counter::FenceClosed,
        Counter::UnicastSource,
    ];

    /// Stable snake_case name, used in metrics, JSON and status output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Accepted => "accepted",
            Counter::Ttl => "ttl",
            Counter::Version => "version",
            Counter::Type => "type",
            Counter::Length => "length",
            Counter::Checksum => "checksum",
            Counter::PassedUnknown => "passed_unknown",
            Counter::AuthType => "auth_type",
            Counter::AuthData => "auth_data",
            Counter::AdvertInterval => "advert_interval",
            Counter::OwnAddress => "own_address",
            Counter::EventLost => "event_lost",
            Counter::VipEgressBlocked => "vip_egress_blocked",
            Counter::VipIngressBlocked => "vip_ingress_blocked",
            Counter::VipFenced => "vip_fenced",
            Counter::FenceClosed => "fence_closed",
            Counter::UnicastSource => "unicast_source",
        }
    }

    /// Whether this counter records an invalid, dropped advert.
    pub const fn is_advert_drop(self) -> bool {
        !matches!(
            self,
            Counter::Accepted
                | Counter::PassedUnknown
                | Counter::EventLost
                | Counter::VipEgressBlocked
                | Counter::VipIngressBlocked
                | Counter::VipFenced
                | Counter::FenceClosed
        )
    }
}

/// Map names, shared so loader and programs cannot drift apart.
pub mod map_names {
    pub const PEERS: &str = "PEERS";
    pub const EVENTS: &str = "EVENTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const INTERFACES: &str = "INTERFACES";
    pub const INSTANCES: &str = "INSTANCES";
    pub const LOCAL_ADDRESSES: &str = "LOCAL_ADDRESSES";
    pub const VIP_OWNERSHIP: &str = "VIP_OWNERSHIP";
    pub const GUARD: &str = "GUARD";
    pub const HEARTBEATS: &str = "HEARTBEATS";
    pub const UNICAST_SOURCES: &str = "UNICAST_SOURCES";
    pub const LAST_SEEN: &str = "LAST_SEEN";

    /// The maps a daemon pins so that they outlive it: the kernel programs
    /// keep using them while no daemon runs, and the next daemon adopts
    /// them. The event and log rings are not among them: each daemon reads
    /// its own, and the kernel's records (`PEERS`) hold what a ring missed.
    pub const PINNED: [&str; 10] = [
        PEERS,
        COUNTERS,
        INTERFACES,
        INSTANCES,
        LOCAL_ADDRESSES,
        VIP_OWNERSHIP,
        GUARD,
        HEARTBEATS,
        UNICAST_SOURCES,
        LAST_SEEN,
    ];
}

/// Program names, as the loader finds them in the object.
pub mod program_names {
    pub const VRRP_RX: &str = "vrrp_rx";
    pub const VIP_GUARD: &str = "vip_guard";
    pub const VMAC_RX: &str = "vmac_rx";
}

/// `VIP_OWNERSHIP` values are bit sets. No bit: this node is not master of
/// the address, and frames sourced from it are stopped on egress.
pub const VIP_NOT_OWNED: u8 = 0;
/// This node is master of the address: frames sourced from it may leave.
pub const VIP_OWNED: u8 = 1 << 0;
/// Master in no-accept mode and not the address owner (RFC 5798 §6.4.3):
/// packets addressed to it are dropped on ingress, except VRRP and IPv6
/// neighbour discovery. Only ever set together with [`VIP_OWNED`].
pub const VIP_DROP_INGRESS: u8 = 1 << 1;
/// `use_vmac`: while owned, the address answers with its instance's
/// virtual MAC ([`virtual_mac`] of `VipEntry::instance`): `vip_guard`
/// rewrites the source MAC of frames from it, the sender address of its
/// ARP and the target link-layer address of its neighbour advertisements,
/// and the instance's VRRP adverts leave from the virtual MAC too.
pub const VIP_VMAC: u8 = 1 << 2;
/// `vmac_xmit_base`, only with [`VIP_VMAC`]: the instance's VRRP adverts
/// keep the interface's own MAC.
pub const VIP_VMAC_XMIT_BASE: u8 = 1 << 3;

/// The virtual router MAC of RFC 5798 §7.3: 00:00:5e:00:01:VRID for IPv4,
/// 00:00:5e:00:02:VRID for IPv6.
#[inline(always)]
pub const fn virtual_mac(vrid: u8, family: u8) -> [u8; 6] {
    let kind = if family == FAMILY_IPV6 { 2 } else { 1 };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}

/// A `VIP_OWNERSHIP` value: what the kernel does with one virtual address,
/// and which instance it belongs to (whose heartbeat fences it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipEntry {
    /// `VIP_*` bits.
    pub flags: u8,
    pub _pad: [u8; 3],
    pub instance: InstanceKey,
}

/// `GUARD` has one slot, read by every frame the programs see, so that
/// ordinary traffic pays for an address lookup only while it can matter.
pub const GUARD_SLOT: u32 = 0;

/// The `GUARD` slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GuardState {
    /// Until when (CLOCK_MONOTONIC ns) every master instance is known to be
    /// alive: the daemon's last advert plus the shortest hold among its
    /// masters. Before it, no heartbeat needs reading; `vrrp_rx` sets it to
    /// 0 when it fences an instance.
    pub alive_until_ns: u64,
    /// Non-zero while some address carries [`VIP_DROP_INGRESS`].
    pub no_accept: u32,
    /// Non-zero while some address is [`VIP_OWNED`]: only then can an
    /// incoming packet be addressed to a fenced address.
    pub owns: u32,
}

/// `HEARTBEATS` value, keyed by [`InstanceKey`]: present while the daemon
/// says this node is master of the instance, rewritten at every advert it
/// sends. The instance is fenced (frames to and from its owned addresses
/// stopped) once `vrrp_rx` sees another router take over while this
/// heartbeat is stale (the daemon hung or died: from then on the node is a
/// zombie), sees a router that wins the election, or the heartbeat is older
/// than `hold_ns` (the backstop when the new master's adverts do not reach
/// this node).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// CLOCK_MONOTONIC ns when the daemon last sent an advert.
    pub last_advert_ns: u64,
    /// The advert interval: a master that is alive is never two of them
    /// late, so another master's advert after that means a takeover.
    pub interval_ns: u64,
    /// The earliest any backup can take over: the Master_Down_Interval at
    /// this node's own priority (a lower-priority backup waits longer). A
    /// restarted daemon resumes as master only within it.
    pub takeover_ns: u64,
    /// The latest any backup takes over: the Master_Down_Interval at
    /// priority 1. Past it the instance is fenced even if no advert of the
    /// new master reached this node.
    pub hold_ns: u64,
    /// The advert's source address (IPv4 in the first 4 bytes): an equal
    /// priority from a higher address wins against it.
    pub primary: [u8; 16],
    /// The priority the daemon advertises.
    pub priority: u8,
    /// Non-zero once `vrrp_rx` fenced the instance; only a new write by the
    /// daemon clears it.
    pub fenced: u8,
    pub _pad: [u8; 6],
}

/// How many advert intervals a live master's heartbeat can lag: another
/// router's master advert after that is a takeover, not a race.
pub const HEARTBEAT_STALE_INTERVALS: u64 = 2;

/// Whether an advert from `source` at `priority` wins the election against
/// a master advertising `own_priority` from `own_primary` (RFC 5798
/// §6.4.3: higher priority, or equal priority and higher address). Both
/// addresses in map encoding, so bytes compare as numbers.
#[inline(always)]
pub fn advert_wins(
    priority: u8,
    source: &[u8; 16],
    own_priority: u8,
    own_primary: &[u8; 16],
) -> bool {
    if priority != own_priority {
        return priority > own_priority;
    }
    let mut index = 0;
    while index < 16 {
        if source[index] != own_primary[index] {
            return source[index] > own_primary[index];
        }
        index += 1;
    }
    false
}

/// How many VRRP instances (virtual router × interface × family) one node
/// runs, and so how many records the kernel's per-router maps hold: an
/// instance beyond that would find no room for its master's record and
/// become a second master, so `-t` refuses more. keepalived allows 255
/// VRIDs per interface and family.
pub const MAX_INSTANCES: u32 = 4096;

/// `LAST_SEEN` entries: one per instance, plus slot 0 that a filter without
/// a slot writes to and nobody reads.
pub const LAST_SEEN_ENTRIES: u32 = MAX_INSTANCES + 1;

/// Map layout generation: bumped whenever a pinned map's meaning changes
/// without its sizes changing, so a daemon does not adopt maps written by
/// an incompatible one. Pinned maps live under `maps-v<N>`. 2: counters
/// per interface slot (`InterfaceConfig::slot`, `CounterBlock`), and
/// `passed_unknown` where `unknown_vrid` was. 3: `InstanceFilter::flags`
/// (unicast, source check) and `UNICAST_SOURCES`; `LAST_SEEN`, indexed by
/// `InstanceFilter::last_seen_slot` (the filter grew from 12 to 16 bytes).
pub const MAP_LAYOUT_VERSION: u32 = 3;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C) with explicit padding and only integer
    // fields, so every bit pattern is valid and there are no hidden bytes.
    unsafe impl aya::Pod for PeerKey {}
    unsafe impl aya::Pod for PeerState {}
    unsafe impl aya::Pod for PeerEvent {}
    unsafe impl aya::Pod for InterfaceConfig {}
    unsafe impl aya::Pod for InstanceFilter {}
    unsafe impl aya::Pod for AddressKey {}
    unsafe impl aya::Pod for VipEntry {}
    unsafe impl aya::Pod for GuardState {}
    unsafe impl aya::Pod for Heartbeat {}
    unsafe impl aya::Pod for CounterBlock {}
    unsafe impl aya::Pod for UnicastSourceKey {}
    unsafe impl aya::Pod for UnicastSource {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<PeerKey>(), 8);
        assert_eq!(size_of::<PeerState>(), 8 + 8 + 16 + 2 + 1 + 1 + 1 + 3);
        assert_eq!(size_of::<PeerEvent>(), 8 + 1 + 7 + size_of::<PeerState>());
        assert_eq!(size_of::<InterfaceConfig>(), 4);
        assert_eq!(size_of::<CounterBlock>(), 8 * Counter::COUNT as usize);
        assert_eq!(size_of::<InstanceFilter>(), 4 + 8 + 4);
        assert_eq!(size_of::<AddressKey>(), 20);
        assert_eq!(size_of::<UnicastSourceKey>(), size_of::<InstanceKey>() + 16);
        assert_eq!(size_of::<UnicastSource>(), 4);
        assert_eq!(size_of::<VipEntry>(), 4 + size_of::<InstanceKey>());
        assert_eq!(size_of::<GuardState>(), 16);
        assert_eq!(size_of::<Heartbeat>(), 4 * 8 + 16 + 1 + 1 + 6);
    }

    #[test]
    fn higher_priority_or_equal_priority_and_higher_address_wins() {
        let low = [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let high = [192, 0, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(advert_wins(101, &low, 100, &high));
        assert!(!advert_wins(99, &high, 100, &low));
        assert!(advert_wins(100, &high, 100, &low));
        assert!(!advert_wins(100, &low, 100, &high));
        assert!(!advert_wins(100, &low, 100, &low));
    }

    #[test]
    fn counter_table_is_indexed_by_discriminant() {
        for (index, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, index, "{}", counter.name());
        }
    }
}
