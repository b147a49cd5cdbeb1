//! Fencing in the kernel: an instance this node is master of keeps its
//! addresses only while its daemon keeps advertising. The daemon writes a
//! heartbeat at every advert. When its daemon hung, was stopped or died,
//! the node keeps answering (its service may well be fine) until another
//! router takes over: `vrrp_rx` sees that router's first advert and fences
//! the instance at once, before its gratuitous ARP reaches anyone; a router
//! that wins the election fences it too; and a heartbeat older than the
//! longest Master_Down_Interval any backup can have fences it even if no
//! advert reaches this node. Fenced, `vip_guard` and `vrrp_rx` treat the
//! node as not master, without the daemon: no split brain from a zombie.

use agent_common::{
    Counter, GUARD_SLOT, GuardState, HEARTBEAT_STALE_INTERVALS, Heartbeat, InstanceKey, PeerKey,
    advert_wins,
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};

use crate::{MAX_ROUTERS, count};

#[map]
pub(crate) static HEARTBEATS: HashMap<InstanceKey, Heartbeat> =
    HashMap::with_max_entries(MAX_ROUTERS, 0);

/// One slot: see [`GuardState`]. An array lookup is inlined by the kernel,
/// so reading it costs a load, not a hash lookup.
#[map]
pub(crate) static GUARD: Array<GuardState> = Array::with_max_entries(1, 0);

/// The guard switches, or all off when the slot cannot be read.
#[inline(always)]
pub(crate) fn guard_state() -> GuardState {
    match GUARD.get(GUARD_SLOT) {
        Some(state) => *state,
        None => GuardState::default(),
    }
}

/// Whether the owned addresses of `instance` must be stopped at `now`:
/// its heartbeat is missing, old or fenced. Only read after the
/// `alive_until_ns` shortcut failed.
#[inline(always)]
pub(crate) fn is_fenced(instance: &InstanceKey, now: u64) -> bool {
    // SAFETY: the value is copied out before use.
    match unsafe { HEARTBEATS.get(instance) } {
        Some(heartbeat) => {
            heartbeat.fenced != 0
                || now.saturating_sub(heartbeat.last_advert_ns) > heartbeat.hold_ns
        }
        None => true,
    }
}

/// A valid advert for `key` at `now`: if this node is master of it (a
/// heartbeat is present), fence the instance now, rather than when the
/// daemon hears of it, when the sender wins the election, or when our
/// daemon is overdue (the sender took over from a zombie). A live master's
/// heartbeat is never that old, so a lower-priority router that speaks up
/// while we are alive does not close anything.
#[inline(always)]
pub(crate) fn on_advert(key: &PeerKey, priority: u8, source: &[u8; 16], now: u64, slot: u32) {
    if priority == 0 {
        return;
    }
    let Some(heartbeat) = HEARTBEATS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: the pointer comes from a successful lookup; the daemon only
    // replaces the value whole.
    let heartbeat = unsafe { &mut *heartbeat };
    if heartbeat.fenced != 0 {
        return;
    }
    let overdue = now.saturating_sub(heartbeat.last_advert_ns)
        > heartbeat
            .interval_ns
            .saturating_mul(HEARTBEAT_STALE_INTERVALS);
    if !overdue && !advert_wins(priority, source, heartbeat.priority, &heartbeat.primary) {
        return;
    }
    heartbeat.fenced = 1;
    if let Some(guard) = GUARD.get_ptr_mut(GUARD_SLOT) {
        // SAFETY: a u64 store into the array's only slot.
        unsafe { (*guard).alive_until_ns = 0 };
    }
    count(slot, Counter::FenceClosed);
}
