//! Kernel half of vrrp-agent: `vrrp_rx` validates VRRP adverts at XDP and
//! records each virtual router's master in `PEERS`, waking userspace through
//! `EVENTS` only when something an election cares about changed. Other IP
//! traffic passes, unless it is addressed to a virtual address held in
//! no-accept mode (`vip_ingress`).
#![no_std]
#![no_main]

mod checksum;
mod fence;
mod packet;
mod vip_guard;
mod vip_ingress;
mod vmac;

use agent_common::{
    AddressKey, CHANGE_CHECKSUM, CHANGE_FIRST, CHANGE_INTERVAL, CHANGE_PRIORITY,
    CHANGE_PRIORITY_ZERO, CHANGE_RESUMED, CHANGE_SOURCE, CHANGE_VERSION, Counter, CounterBlock,
    IFACE_OBSERVE_ONLY, IFACE_PASS_CONSUMED, INSTANCE_CHECK_UNICAST_SOURCE, INSTANCE_UNICAST,
    InstanceFilter, InstanceKey, InterfaceConfig, LAST_SEEN_ENTRIES, MAX_INTERFACE_SLOTS,
    MAX_UNICAST_SOURCES, PEER_FLAG_PSEUDO_HEADER_CHECKSUM, PEER_SILENCE_INTERVALS, PeerEvent,
    PeerKey, PeerState, UnicastSource, UnicastSourceKey,
};
use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, xdp_action},
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use aya_log_ebpf::info;

use crate::packet::{Advert, Verdict, parse_advert};

pub(crate) const MAX_ROUTERS: u32 = agent_common::MAX_INSTANCES;

#[map]
static PEERS: HashMap<PeerKey, PeerState> = HashMap::with_max_entries(MAX_ROUTERS, 0);

/// The receive time of each configured instance's last accepted advert, at
/// `InstanceFilter::last_seen_slot`: the daemon maps this array and reads a
/// backup's Master_Down deadlines from it without a syscall.
#[map]
static LAST_SEEN: Array<u64> = Array::with_max_entries(LAST_SEEN_ENTRIES, BPF_F_MMAPABLE as u32);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

#[map]
static COUNTERS: PerCpuArray<CounterBlock> =
    PerCpuArray::with_max_entries(MAX_INTERFACE_SLOTS + 1, 0);

#[map]
static INTERFACES: HashMap<u32, InterfaceConfig> = HashMap::with_max_entries(256, 0);

#[map]
static INSTANCES: HashMap<InstanceKey, InstanceFilter> = HashMap::with_max_entries(MAX_ROUTERS, 0);

/// The peers of unicast instances that check where adverts come from.
#[map]
static UNICAST_SOURCES: HashMap<UnicastSourceKey, UnicastSource> =
    HashMap::with_max_entries(MAX_UNICAST_SOURCES, 0);

#[map]
static LOCAL_ADDRESSES: HashMap<AddressKey, u8> = HashMap::with_max_entries(1024, 0);

#[xdp]
pub fn vrrp_rx(ctx: XdpContext) -> u32 {
    let located = match packet::locate_ip(&ctx) {
        Some(located) => located,
        None => return xdp_action::XDP_PASS,
    };
    if !located.is_vrrp() {
        return vip_ingress::check(&ctx, &located);
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: the value is plain data copied out before any update.
    let interface = match unsafe { INTERFACES.get(ifindex) } {
        Some(interface) => *interface,
        None => return xdp_action::XDP_PASS,
    };
    let slot = u32::from(interface.slot);
    // What this program takes away from the stack is only ever the adverts
    // of an instance configured on this very interface: keepalived takes
    // nothing from anyone, and a bridge port or a VLAN parent carries other
    // routers' adverts (VMs, containers, a second daemon, tcpdump).
    // - A frame tagged in its data belongs to a VLAN device: the stack
    //   untags it after XDP and delivers it there, where this program, when
    //   an instance runs on that device, judges it keyed by that device
    //   (see `Datapath::attach`). QinQ (0x88a8, or a second 0x8100) is not
    //   located as IP at all and passed before this point.
    // - A frame that names no VRID (IP header or VRRP header unreadable)
    //   or names a VRID and family no instance runs on this interface is
    //   not ours to judge, valid or not.
    // All of these pass untouched and count as `passed_unknown`. Only a
    // frame aimed at a configured instance is judged: valid, it is
    // recorded and consumed (passed too with `--pass-adverts`); invalid,
    // it is dropped and counted by reason, since a forged or broken advert
    // for one of our routers must reach no one who could act on it.
    if located.is_tagged() {
        return pass_unknown(slot);
    }
    let Some(addressed) = packet::address_advert(&ctx, &located) else {
        return pass_unknown(slot);
    };
    let observe_only = interface.flags & IFACE_OBSERVE_ONLY != 0;
    let key = InstanceKey::new(ifindex, addressed.vrid(), located.family);
    let filter = if observe_only {
        None
    } else {
        // SAFETY: the filter is copied before use; userspace only replaces it whole.
        match unsafe { INSTANCES.get(key) } {
            Some(filter) => Some(*filter),
            None => return pass_unknown(slot),
        }
    };
    // RFC 5798 §7.1's TTL 255 proves a multicast advert was not
    // forwarded; unicast peers may sit behind routers, and keepalived
    // checks their TTL only against a peer's own min_ttl / max_ttl.
    let unicast = filter.is_some_and(|filter| filter.flags & INSTANCE_UNICAST != 0);

    let outcome = parse_advert(&ctx, &located, &addressed, !unicast).and_then(|advert| {
        check_against_config(&advert, &key, filter.as_ref())?;
        Ok(advert)
    });
    match outcome {
        Ok(advert) => {
            count(slot, Counter::Accepted);
            let last_seen_slot = filter.map(|filter| filter.last_seen_slot);
            record(&ctx, &advert, ifindex, slot, last_seen_slot);
            if observe_only || interface.flags & IFACE_PASS_CONSUMED != 0 {
                xdp_action::XDP_PASS
            } else {
                xdp_action::XDP_DROP
            }
        }
        Err(Verdict::Drop(reason)) => {
            count(slot, reason);
            if observe_only {
                xdp_action::XDP_PASS
            } else {
                xdp_action::XDP_DROP
            }
        }
    }
}

#[inline(always)]
fn pass_unknown(slot: u32) -> u32 {
    count(slot, Counter::PassedUnknown);
    xdp_action::XDP_PASS
}

/// The checks that depend on what this node is configured for. The monitor
/// (observe-only, no `filter`) wants to see every virtual router, so it
/// skips the instance's.
#[inline(always)]
fn check_against_config(
    advert: &Advert,
    key: &InstanceKey,
    filter: Option<&InstanceFilter>,
) -> Result<(), Verdict> {
    if let Some(filter) = filter {
        if filter.version != advert.version {
            return Err(Verdict::Drop(Counter::Version));
        }
        if advert.version == 2 {
            if advert.auth_type != filter.auth_type {
                return Err(Verdict::Drop(Counter::AuthType));
            }
            if filter.auth_type == agent_common::AUTH_PASS && advert.auth_data != filter.auth_pass {
                return Err(Verdict::Drop(Counter::AuthData));
            }
            if advert.interval_field as u8 != filter.advert_int_s {
                return Err(Verdict::Drop(Counter::AdvertInterval));
            }
        }
    }
    let own = AddressKey {
        family: advert.family,
        _pad: [0; 3],
        address: advert.source,
    };
    // SAFETY: only presence is checked.
    if unsafe { LOCAL_ADDRESSES.get(own) }.is_some() {
        return Err(Verdict::Drop(Counter::OwnAddress));
    }
    if let Some(filter) = filter
        && filter.flags & INSTANCE_CHECK_UNICAST_SOURCE != 0
    {
        check_unicast_source(advert, key)?;
    }
    Ok(())
}

/// keepalived's `check_unicast_src`: only a configured peer may speak for
/// the virtual router, and only with a TTL in that peer's range.
#[inline(always)]
fn check_unicast_source(advert: &Advert, key: &InstanceKey) -> Result<(), Verdict> {
    let source = UnicastSourceKey {
        instance: *key,
        address: advert.source,
    };
    // SAFETY: the value is copied out.
    match unsafe { UNICAST_SOURCES.get(source) } {
        None => Err(Verdict::Drop(Counter::UnicastSource)),
        Some(peer) if advert.ttl < peer.min_ttl || advert.ttl > peer.max_ttl => {
            Err(Verdict::Drop(Counter::Ttl))
        }
        Some(_) => Ok(()),
    }
}

#[inline(always)]
fn record(ctx: &XdpContext, advert: &Advert, ifindex: u32, slot: u32, last_seen_slot: Option<u32>) {
    let key = PeerKey::new(ifindex, advert.vrid, advert.family);
    let now = unsafe { bpf_ktime_get_ns() };
    let interval_cs = if advert.version == 2 {
        advert.interval_field.saturating_mul(100)
    } else {
        advert.interval_field
    };
    let flags = if advert.pseudo_header_checksum {
        PEER_FLAG_PSEUDO_HEADER_CHECKSUM
    } else {
        0
    };

    let mut changes = 0u8;
    let state = match PEERS.get_ptr_mut(key) {
        Some(existing) => {
            // SAFETY: the pointer comes from a successful lookup of a preallocated hash map.
            let existing = unsafe { &mut *existing };
            if existing.source != advert.source {
                changes |= CHANGE_SOURCE;
            }
            if existing.priority != advert.priority {
                changes |= CHANGE_PRIORITY;
            }
            if existing.interval_cs != interval_cs {
                changes |= CHANGE_INTERVAL;
            }
            if existing.version != advert.version {
                changes |= CHANGE_VERSION;
            }
            if existing.flags != flags {
                changes |= CHANGE_CHECKSUM;
            }
            let silence_ns = u64::from(existing.interval_cs)
                .saturating_mul(10_000_000)
                .saturating_mul(PEER_SILENCE_INTERVALS);
            if now.saturating_sub(existing.last_seen_ns) > silence_ns {
                changes |= CHANGE_RESUMED;
            }
            existing.last_seen_ns = now;
            existing.adverts += 1;
            existing.source = advert.source;
            existing.priority = advert.priority;
            existing.interval_cs = interval_cs;
            existing.version = advert.version;
            existing.flags = flags;
            *existing
        }
        None => {
            changes |= CHANGE_FIRST;
            let fresh = PeerState {
                last_seen_ns: now,
                adverts: 1,
                source: advert.source,
                interval_cs,
                priority: advert.priority,
                version: advert.version,
                flags,
                _pad: [0; 3],
            };
            // A full map only costs the record; the event below still reaches userspace.
            let _ = PEERS.insert(key, fresh, 0);
            info!(
                ctx,
                "new virtual router: vrid {} family {} priority {}",
                advert.vrid,
                advert.family,
                advert.priority
            );
            fresh
        }
    };
    // After the record: a reader that sees this time finds the record
    // holding the advert it belongs to.
    if let Some(last_seen_slot) = last_seen_slot
        && let Some(last_seen) = LAST_SEEN.get_ptr_mut(last_seen_slot)
    {
        // SAFETY: an aligned u64 in an array map; the store is one
        // instruction, so the daemon's atomic load never sees half of it.
        unsafe { core::ptr::write_volatile(last_seen, now) };
    }
    if advert.priority == 0 {
        changes |= CHANGE_PRIORITY_ZERO;
    }
    fence::on_advert(&key, advert.priority, &advert.source, now, slot);
    if changes == 0 {
        return;
    }
    let event = PeerEvent {
        key,
        changes,
        _pad: [0; 7],
        state,
    };
    if EVENTS.output::<PeerEvent>(&event, 0).is_err() {
        count(slot, Counter::EventLost);
    }
}

/// Adds one to `counter` in the counter block of interface `slot`.
#[inline(always)]
pub(crate) fn count(slot: u32, counter: Counter) {
    if let Some(block) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        if let Some(value) = unsafe { (*block).values.get_mut(counter as usize) } {
            *value += 1;
        }
    }
}

/// The counter slot of `ifindex`, or 0 (shared) when it has none. Only the
/// paths that count something rare (a drop) pay for this lookup.
#[inline(always)]
pub(crate) fn slot_of(ifindex: u32) -> u32 {
    // SAFETY: the value is copied out.
    match unsafe { INTERFACES.get(ifindex) } {
        Some(interface) => u32::from(interface.slot),
        None => 0,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
