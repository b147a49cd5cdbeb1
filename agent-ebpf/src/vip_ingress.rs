//! RFC 5798 §6.4.3 in the kernel: a master in no-accept mode that is not the
//! address owner must not accept packets addressed to its virtual addresses.
//! keepalived installs nftables/iptables rules for this; here `vrrp_rx`
//! drops them with one map lookup. VRRP never reaches this check (it is
//! handled first), ARP is not IP, and neighbour solicitations and
//! advertisements pass so neighbours can still resolve and probe the address.

use agent_common::{Counter, INGRESS_GUARD_SLOT, VIP_DROP_INGRESS};
use aya_ebpf::{bindings::xdp_action, macros::map, maps::Array, programs::XdpContext};

use crate::{
    count,
    packet::{self, Located},
    vip_guard::VIP_OWNERSHIP,
};

/// Non-zero while some address carries `VIP_DROP_INGRESS`. An array lookup
/// is inlined by the kernel, so traffic on a node without no-accept masters
/// pays a load and a compare, not a hash lookup.
#[map]
static INGRESS_GUARD: Array<u32> = Array::with_max_entries(1, 0);

/// The verdict for an IP packet that is not VRRP.
#[inline(always)]
pub fn check(ctx: &XdpContext, located: &Located) -> u32 {
    match INGRESS_GUARD.get(INGRESS_GUARD_SLOT) {
        Some(&active) if active != 0 => {}
        _ => return xdp_action::XDP_PASS,
    }
    let Some(destination) = packet::destination(ctx, located) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a u8 copied out immediately.
    match unsafe { VIP_OWNERSHIP.get(destination) } {
        Some(&flags) if flags & VIP_DROP_INGRESS != 0 => {}
        _ => return xdp_action::XDP_PASS,
    }
    if packet::is_neighbour_discovery(ctx, located) {
        return xdp_action::XDP_PASS;
    }
    count(Counter::VipIngressBlocked);
    xdp_action::XDP_DROP
}
