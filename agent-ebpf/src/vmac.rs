//! The virtual router MAC (`use_vmac`, RFC 5798 §7.3) without a macvlan.
//! keepalived gives each such instance a macvlan interface carrying
//! 00:00:5e:00:01:VRID; here the node keeps its own interface, and:
//! - on egress (`vip_guard` calls in here), while it owns an address
//!   flagged [`VIP_VMAC`], frames sourced from the address leave with the
//!   virtual MAC as Ethernet source, its ARP carries it as sender hardware
//!   address, its neighbour solicitations as source link-layer address,
//!   neighbour advertisements for it carry it as target link-layer
//!   address, and the instance's adverts leave from it (unless
//!   [`VIP_VMAC_XMIT_BASE`]);
//! - on ingress (`vmac_rx`), frames addressed to the virtual MAC of an
//!   instance this node is master of are handed to the stack as its own:
//!   the stack marks a unicast frame to a MAC that is not the interface's
//!   PACKET_OTHERHOST and IPv4, IPv6 and ARP drop those. A real NIC also
//!   needs the MAC in its unicast filter, which the daemon adds while
//!   master (`netlink/unicast_filter.rs`).

use agent_common::{
    AddressKey, FAMILY_IPV4, FAMILY_IPV6, InstanceKey, VIP_OWNED, VIP_VMAC, VIP_VMAC_XMIT_BASE,
    VipEntry, virtual_mac,
};
use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::classifier, programs::TcContext};

use crate::{
    fence::HEARTBEATS,
    vip_guard::{
        ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, TCX_NEXT, VIP_OWNERSHIP,
    },
};

/// TCX verdict: deliver to the stack now, without further programs.
const TCX_PASS: i32 = 0;
/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;

const ETH_SOURCE_OFFSET: usize = 6;
const ARP_SENDER_MAC_OFFSET: usize = ETH_HEADER_LEN + 8;
const IPV4_PROTOCOL_OFFSET: usize = ETH_HEADER_LEN + 9;
const IPV6_NEXT_HEADER_OFFSET: usize = ETH_HEADER_LEN + 6;
const IPV6_HEADER_LEN: usize = 40;
const ICMPV6_OFFSET: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN;
const ICMPV6_CHECKSUM_OFFSET: usize = ICMPV6_OFFSET + 2;
const NA_TARGET_OFFSET: usize = ICMPV6_OFFSET + 8;
/// The first option of a neighbour solicitation or advertisement; the
/// kernel and keepalived put the link-layer address there, alone.
const NA_OPTION_OFFSET: usize = ICMPV6_OFFSET + 24;
const NA_OPTION_MAC_OFFSET: usize = NA_OPTION_OFFSET + 2;
const IPPROTO_VRRP: u8 = 112;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
const OPTION_SOURCE_LINK_LAYER_ADDRESS: u8 = 1;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
const VRRP_HEADER_LEN: usize = 8;
/// Adverts are matched to their instance through the addresses they
/// carry; the first that is a virtual address of this node decides, and
/// only so many are looked at.
const MAX_ADVERT_ADDRESSES: usize = 8;
/// `bpf_l4_csum_replace` flag: the replaced field is 2 bytes.
const CSUM_FIELD_2_BYTES: u64 = 2;

/// Whether frames for an address in this entry leave with the virtual MAC
/// on `ifindex`: owned, flagged, and this is its instance's interface.
#[inline(always)]
fn wants_vmac(entry: &VipEntry, ifindex: u32) -> bool {
    entry.flags & (VIP_OWNED | VIP_VMAC) == (VIP_OWNED | VIP_VMAC)
        && entry.instance.ifindex == ifindex
}

/// A frame sourced from an owned, unfenced virtual address (the guard
/// already let it through): Ethernet source, and ARP sender, become the
/// virtual MAC.
#[inline(always)]
pub(crate) fn rewrite_owned(ctx: &TcContext, entry: &VipEntry, ifindex: u32) {
    if !wants_vmac(entry, ifindex) {
        return;
    }
    let ethertype = ctx.load::<u16>(12).map(u16::from_be);
    // An address owner advertises from its virtual address: with
    // `vmac_xmit_base` its adverts keep the interface's MAC too.
    if entry.flags & VIP_VMAC_XMIT_BASE != 0 && is_vrrp(ctx, ethertype) {
        return;
    }
    let mac = virtual_mac(entry.instance.vrid, entry.instance.family);
    let _ = ctx.store(ETH_SOURCE_OFFSET, &mac, 0);
    match ethertype {
        Ok(ETHERTYPE_ARP) => {
            let _ = ctx.store(ARP_SENDER_MAC_OFFSET, &mac, 0);
        }
        // A solicitation from the address (the kernel resolving a client
        // to answer it) names its sender's MAC, which the client learns.
        Ok(ETHERTYPE_IPV6)
            if matches!(ctx.load::<u8>(IPV6_NEXT_HEADER_OFFSET), Ok(IPPROTO_ICMPV6))
                && matches!(ctx.load::<u8>(ICMPV6_OFFSET), Ok(ICMPV6_NEIGHBOR_SOLICIT)) =>
        {
            rewrite_link_layer_option(ctx, OPTION_SOURCE_LINK_LAYER_ADDRESS, &mac);
        }
        _ => {}
    }
}

#[inline(always)]
fn is_vrrp(ctx: &TcContext, ethertype: Result<u16, i64>) -> bool {
    match ethertype {
        Ok(ETHERTYPE_IPV4) => matches!(ctx.load::<u8>(IPV4_PROTOCOL_OFFSET), Ok(IPPROTO_VRRP)),
        Ok(ETHERTYPE_IPV6) => matches!(ctx.load::<u8>(IPV6_NEXT_HEADER_OFFSET), Ok(IPPROTO_VRRP)),
        _ => false,
    }
}

/// Frames whose virtual address is not their source: VRRP adverts (from
/// the primary address; the addresses they carry name the instance) and
/// neighbour advertisements (from any address; the target names it).
#[inline(always)]
pub(crate) fn rewrite_by_content(ctx: &TcContext, ifindex: u32) {
    let Ok(ethertype) = ctx.load::<u16>(12) else {
        return;
    };
    match u16::from_be(ethertype) {
        ETHERTYPE_IPV4 => {
            if matches!(ctx.load::<u8>(IPV4_PROTOCOL_OFFSET), Ok(IPPROTO_VRRP)) {
                let header_len = match ctx.load::<u8>(ETH_HEADER_LEN) {
                    Ok(first) => usize::from(first & 0x0f) * 4,
                    Err(_) => return,
                };
                rewrite_advert(ctx, ETH_HEADER_LEN + header_len, FAMILY_IPV4, ifindex);
            }
        }
        ETHERTYPE_IPV6 => match ctx.load::<u8>(IPV6_NEXT_HEADER_OFFSET) {
            Ok(IPPROTO_VRRP) => rewrite_advert(ctx, ICMPV6_OFFSET, FAMILY_IPV6, ifindex),
            Ok(IPPROTO_ICMPV6) => rewrite_neighbour_advert(ctx, ifindex),
            _ => {}
        },
        _ => {}
    }
}

#[inline(always)]
fn rewrite_advert(ctx: &TcContext, vrrp_offset: usize, family: u8, ifindex: u32) {
    let Ok(header) = ctx.load::<[u8; 4]>(vrrp_offset) else {
        return;
    };
    let vrid = header[1];
    let count = usize::from(header[3]);
    let first = vrrp_offset + VRRP_HEADER_LEN;
    let mut index = 0;
    while index < MAX_ADVERT_ADDRESSES {
        if index >= count {
            return;
        }
        let mut address = [0u8; 16];
        if family == FAMILY_IPV4 {
            match ctx.load::<[u8; 4]>(first + index * 4) {
                Ok(bytes) => address[..4].copy_from_slice(&bytes),
                Err(_) => return,
            }
        } else {
            match ctx.load::<[u8; 16]>(first + index * 16) {
                Ok(bytes) => address = bytes,
                Err(_) => return,
            }
        }
        let key = AddressKey {
            family,
            _pad: [0; 3],
            address,
        };
        // SAFETY: the entry is copied out immediately.
        if let Some(entry) = unsafe { VIP_OWNERSHIP.get(key) } {
            let entry = *entry;
            if entry.instance.vrid == vrid && entry.instance.family == family {
                if wants_vmac(&entry, ifindex) && entry.flags & VIP_VMAC_XMIT_BASE == 0 {
                    let _ = ctx.store(ETH_SOURCE_OFFSET, &virtual_mac(vrid, family), 0);
                }
                return;
            }
        }
        index += 1;
    }
}

#[inline(always)]
fn rewrite_neighbour_advert(ctx: &TcContext, ifindex: u32) {
    if !matches!(ctx.load::<u8>(ICMPV6_OFFSET), Ok(ICMPV6_NEIGHBOR_ADVERT)) {
        return;
    }
    let Ok(target) = ctx.load::<[u8; 16]>(NA_TARGET_OFFSET) else {
        return;
    };
    let key = AddressKey {
        family: FAMILY_IPV6,
        _pad: [0; 3],
        address: target,
    };
    // SAFETY: the entry is copied out immediately.
    let entry = match unsafe { VIP_OWNERSHIP.get(key) } {
        Some(entry) => *entry,
        None => return,
    };
    if !wants_vmac(&entry, ifindex) {
        return;
    }
    let mac = virtual_mac(entry.instance.vrid, entry.instance.family);
    let _ = ctx.store(ETH_SOURCE_OFFSET, &mac, 0);
    rewrite_link_layer_option(ctx, OPTION_TARGET_LINK_LAYER_ADDRESS, &mac);
}

/// Puts `mac` into the neighbour discovery message's first option when it
/// is a link-layer address option of `kind`, fixing the ICMPv6 checksum.
/// Neighbour solicitations and advertisements carry it right after the
/// target address.
#[inline(always)]
fn rewrite_link_layer_option(ctx: &TcContext, kind: u8, mac: &[u8; 6]) {
    let Ok(option) = ctx.load::<[u8; 2]>(NA_OPTION_OFFSET) else {
        return;
    };
    if option != [kind, 1] {
        return;
    }
    let Ok(old) = ctx.load::<[u16; 3]>(NA_OPTION_MAC_OFFSET) else {
        return;
    };
    let new = [
        u16::from_ne_bytes([mac[0], mac[1]]),
        u16::from_ne_bytes([mac[2], mac[3]]),
        u16::from_ne_bytes([mac[4], mac[5]]),
    ];
    let mut word = 0;
    while word < 3 {
        if ctx
            .l4_csum_replace(
                ICMPV6_CHECKSUM_OFFSET,
                u64::from(old[word]),
                u64::from(new[word]),
                CSUM_FIELD_2_BYTES,
            )
            .is_err()
        {
            return;
        }
        word += 1;
    }
    let _ = ctx.store(NA_OPTION_MAC_OFFSET, mac, 0);
}

/// TC ingress on each VRRP interface: a frame addressed to the virtual MAC
/// of an instance this node is master of (its heartbeat is present and
/// neither fenced nor stale) is this host's, and goes to the stack as such.
/// Anything else goes on untouched; a frame to the virtual MAC of a router
/// this node is not master of stays PACKET_OTHERHOST, so a backup neither
/// answers nor forwards what the master serves.
#[classifier]
pub fn vmac_rx(ctx: TcContext) -> i32 {
    let Ok(destination) = ctx.load::<[u8; 6]>(0) else {
        return TCX_NEXT;
    };
    if destination[..4] != [0x00, 0x00, 0x5e, 0x00] {
        return TCX_NEXT;
    }
    let family = match destination[4] {
        1 => FAMILY_IPV4,
        2 => FAMILY_IPV6,
        _ => return TCX_NEXT,
    };
    // SAFETY: the context pointer is valid for the program's run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let key = InstanceKey::new(ifindex, destination[5], family);
    // SAFETY: the value is copied out before use.
    let heartbeat = match unsafe { HEARTBEATS.get(key) } {
        Some(heartbeat) => *heartbeat,
        None => return TCX_NEXT,
    };
    let now = unsafe { bpf_ktime_get_ns() };
    if heartbeat.fenced != 0 || now.saturating_sub(heartbeat.last_advert_ns) > heartbeat.hold_ns {
        return TCX_NEXT;
    }
    if ctx.change_type(PACKET_HOST).is_err() {
        return TCX_NEXT;
    }
    TCX_PASS
}
