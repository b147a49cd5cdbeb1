//! `vip_guard`: TC egress on each VRRP interface. While this node is not the
//! master of a virtual address, frames sourced from that address (IP packets,
//! ARP replies and announcements) are stopped, so a node that just lost
//! mastership cannot answer for the address while its removal is still in
//! flight. The daemon flips `VIP_OWNERSHIP` at the moment of a transition;
//! the fence (`fence.rs`) stops them too once the daemon stopped
//! advertising, so a hung or killed master stays silent as well.
//!
//! While this node owns an address of a `use_vmac` instance, the same pass
//! makes the node answer for it with the virtual router MAC (`vmac.rs`):
//! keepalived creates a macvlan for that; here the frames are rewritten on
//! their way out.

use agent_common::{AddressKey, Counter, FAMILY_IPV4, FAMILY_IPV6, VIP_OWNED, VipEntry};
use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map},
    maps::HashMap,
    programs::TcContext,
};

use crate::{count, fence, slot_of, vmac};

/// TCX verdicts: let the next program (or the stack) decide, or drop.
pub(crate) const TCX_NEXT: i32 = -1;
const TCX_DROP: i32 = 2;

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
pub(crate) const ETH_HEADER_LEN: usize = 14;
const IPV4_SOURCE_OFFSET: usize = ETH_HEADER_LEN + 12;
const IPV6_SOURCE_OFFSET: usize = ETH_HEADER_LEN + 8;
const ARP_SENDER_IP_OFFSET: usize = ETH_HEADER_LEN + 14;

/// `VIP_*` bits and owning instance per virtual address; `vip_ingress`
/// reads it too.
#[map]
pub(crate) static VIP_OWNERSHIP: HashMap<AddressKey, VipEntry> = HashMap::with_max_entries(4096, 0);

#[classifier]
pub fn vip_guard(ctx: TcContext) -> i32 {
    let Some(key) = source_address(&ctx) else {
        return TCX_NEXT;
    };
    // Adverts leave from the primary address and unsolicited NAs may leave
    // from a link-local one: neither is found by its source, so the
    // virtual MAC finds them by what they carry.
    vmac::rewrite_by_content(&ctx, ifindex(&ctx));
    // SAFETY: the entry is copied out immediately.
    let entry = match unsafe { VIP_OWNERSHIP.get(key) } {
        Some(entry) => *entry,
        None => return TCX_NEXT,
    };
    if entry.flags & VIP_OWNED == 0 {
        count(slot_of(ifindex(&ctx)), Counter::VipEgressBlocked);
        return TCX_DROP;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if now >= fence::guard_state().alive_until_ns && fence::is_fenced(&entry.instance, now) {
        count(slot_of(ifindex(&ctx)), Counter::VipFenced);
        return TCX_DROP;
    }
    vmac::rewrite_owned(&ctx, &entry, ifindex(&ctx));
    TCX_NEXT
}

/// The interface the frame leaves through, for its counters.
#[inline(always)]
fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: the context pointer is valid for the program's run.
    unsafe { (*ctx.skb.skb).ifindex }
}

#[inline(always)]
fn source_address(ctx: &TcContext) -> Option<AddressKey> {
    let ethertype = u16::from_be(ctx.load::<u16>(12).ok()?);
    let mut address = [0u8; 16];
    let family = match ethertype {
        ETHERTYPE_IPV4 => {
            address[..4].copy_from_slice(&ctx.load::<[u8; 4]>(IPV4_SOURCE_OFFSET).ok()?);
            FAMILY_IPV4
        }
        ETHERTYPE_ARP => {
            address[..4].copy_from_slice(&ctx.load::<[u8; 4]>(ARP_SENDER_IP_OFFSET).ok()?);
            FAMILY_IPV4
        }
        ETHERTYPE_IPV6 => {
            address = ctx.load::<[u8; 16]>(IPV6_SOURCE_OFFSET).ok()?;
            FAMILY_IPV6
        }
        _ => return None,
    };
    Some(AddressKey {
        family,
        _pad: [0; 3],
        address,
    })
}
