//! RFC 5798 §6.4.3 in the kernel: a master in no-accept mode that is not the
//! address owner must not accept packets addressed to its virtual addresses.
//! keepalived installs nftables/iptables rules for this; here `vrrp_rx`
//! drops them with one map lookup. VRRP never reaches this check (it is
//! handled first), ARP is not IP, and neighbour solicitations and
//! advertisements pass so neighbours can still resolve and probe the address.
//!
//! The same lookup enforces the fence (`fence.rs`): packets to an owned
//! address of a fenced instance are dropped, neighbour discovery included,
//! so a hung or killed master does not act on requests a backup now serves.

use agent_common::{Counter, VIP_DROP_INGRESS, VIP_OWNED};
use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns, programs::XdpContext};

use crate::{
    count, fence,
    packet::{self, Located},
    slot_of,
    vip_guard::VIP_OWNERSHIP,
};

/// The verdict for an IP packet that is not VRRP. Traffic on a node with
/// no no-accept master and whose masters all advertised recently pays a
/// load and a compare (and a clock read while it owns addresses), not a
/// hash lookup.
#[inline(always)]
pub fn check(ctx: &XdpContext, located: &Located) -> u32 {
    let guard = fence::guard_state();
    let mut alive = true;
    if guard.owns != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        alive = now < guard.alive_until_ns;
    }
    if guard.no_accept == 0 && alive {
        return xdp_action::XDP_PASS;
    }
    let Some(destination) = packet::destination(ctx, located) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: the entry is copied out immediately.
    let entry = match unsafe { VIP_OWNERSHIP.get(destination) } {
        Some(entry) => *entry,
        None => return xdp_action::XDP_PASS,
    };
    if !alive && entry.flags & VIP_OWNED != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        if fence::is_fenced(&entry.instance, now) {
            count(slot_of(ctx.ingress_ifindex() as u32), Counter::VipFenced);
            return xdp_action::XDP_DROP;
        }
    }
    if entry.flags & VIP_DROP_INGRESS == 0 || packet::is_neighbour_discovery(ctx, located) {
        return xdp_action::XDP_PASS;
    }
    count(
        slot_of(ctx.ingress_ifindex() as u32),
        Counter::VipIngressBlocked,
    );
    xdp_action::XDP_DROP
}
