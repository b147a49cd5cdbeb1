//! Packet access and the receiver checks of RFC 5798 §7.1 / RFC 3768 §7.1
//! that need nothing but the packet itself.

use core::mem::size_of;

use agent_common::{AddressKey, Counter, FAMILY_IPV4, FAMILY_IPV6};
use aya_ebpf::programs::XdpContext;

use crate::checksum;

const ETH_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_VRRP: u8 = 112;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const VRRP_HEADER_LEN: usize = 8;
const VRRP_V2_AUTH_LEN: usize = 8;
const IPV4_VRRP_GROUP: [u8; 4] = [224, 0, 0, 18];
const IPV6_VRRP_GROUP: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];
/// Longest advert checked: a full 1500-byte MTU frame. Anything longer
/// cannot be a well-formed advert on the links keepalived runs on.
pub const MAX_VRRP_LEN: usize = 1480;

/// Where an IP packet starts and what it carries; the result of the cheap
/// test every packet on the interface goes through.
pub struct Located {
    /// Where the IP header starts: [`ETH_HEADER_LEN`], or 4 bytes later
    /// behind one 802.1Q tag.
    pub l3: usize,
    pub family: u8,
    /// IPv4 protocol, or the IPv6 next header (extension headers are not
    /// followed: VRRP and neighbour discovery never carry them).
    pub protocol: u8,
}

impl Located {
    #[inline(always)]
    pub fn is_vrrp(&self) -> bool {
        self.protocol == IPPROTO_VRRP
    }

    /// Whether the frame still carries an 802.1Q tag in its data: it
    /// belongs to a VLAN device, not to the interface it arrived on.
    #[inline(always)]
    pub fn is_tagged(&self) -> bool {
        self.l3 != ETH_HEADER_LEN
    }
}

pub enum Verdict {
    Drop(Counter),
}

/// A validated advertisement.
pub struct Advert {
    pub family: u8,
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// VRRPv2: seconds. VRRPv3: centiseconds (Max Adver Int).
    pub interval_field: u16,
    pub auth_type: u8,
    pub auth_data: [u8; 8],
    pub source: [u8; 16],
    /// TTL / hop limit it arrived with.
    pub ttl: u8,
    pub pseudo_header_checksum: bool,
}

/// Bounds-checked pointer to a `T` at `offset` from the start of the frame.
/// The check sits right before every access so the verifier sees it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let ptr = ctx.data() + offset;
    // Compare the very pointer that is returned: with variable offsets the
    // verifier only trusts a range proven on the same register.
    if ptr + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some(ptr as *const T)
}

#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    // SAFETY: ptr_at checked the bounds; packet data may be unaligned.
    ptr_at::<T>(ctx, offset).map(|ptr| unsafe { ptr.read_unaligned() })
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    read::<u16>(ctx, offset).map(u16::from_be)
}

/// The fast path: as few loads as possible before a non-IP packet passes.
#[inline(always)]
pub fn locate_ip(ctx: &XdpContext) -> Option<Located> {
    let mut l3 = ETH_HEADER_LEN;
    let mut ethertype = read_be16(ctx, 12)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = read_be16(ctx, 16)?;
        l3 += VLAN_TAG_LEN;
    }
    match ethertype {
        ETHERTYPE_IPV4 => Some(Located {
            protocol: read::<u8>(ctx, l3 + 9)?,
            l3,
            family: FAMILY_IPV4,
        }),
        ETHERTYPE_IPV6 => Some(Located {
            protocol: read::<u8>(ctx, l3 + 6)?,
            l3,
            family: FAMILY_IPV6,
        }),
        _ => None,
    }
}

/// The destination address of a located IP packet, as a map key.
#[inline(always)]
pub fn destination(ctx: &XdpContext, located: &Located) -> Option<AddressKey> {
    let mut address = [0u8; 16];
    if located.family == FAMILY_IPV4 {
        address[..4].copy_from_slice(&read::<[u8; 4]>(ctx, located.l3 + 16)?);
    } else {
        address = read::<[u8; 16]>(ctx, located.l3 + 24)?;
    }
    Some(AddressKey {
        family: located.family,
        _pad: [0; 3],
        address,
    })
}

/// Whether a located IPv6 packet is a neighbour solicitation or
/// advertisement, which RFC 5798 §6.4.3 lets through to a no-accept master.
#[inline(always)]
pub fn is_neighbour_discovery(ctx: &XdpContext, located: &Located) -> bool {
    located.family == FAMILY_IPV6
        && located.protocol == IPPROTO_ICMPV6
        && matches!(
            read::<u8>(ctx, located.l3 + IPV6_HEADER_LEN),
            Some(ICMPV6_NEIGHBOR_SOLICIT | ICMPV6_NEIGHBOR_ADVERT)
        )
}

/// IP-level facts the VRRP checks need.
struct IpFacts {
    vrrp_offset: usize,
    vrrp_len: usize,
    ttl: u8,
    source: [u8; 16],
    pseudo_header_sum: u64,
    /// The pseudo-header with the VRRP multicast group as destination:
    /// keepalived's `old_unicast_checksum` (before 1.3.6) computed unicast
    /// adverts' checksums this way, and keepalived still accepts it.
    group_pseudo_header_sum: u64,
}

// Headers are copied out whole: one bounds check each, and no single-byte
// reads at variable offsets, whose checks the verifier cannot use.
#[inline(always)]
fn ipv4_facts(ctx: &XdpContext, l3: usize) -> Result<IpFacts, Verdict> {
    let truncated = Verdict::Drop(Counter::Length);
    let header =
        read::<[u8; IPV4_MIN_HEADER_LEN]>(ctx, l3).ok_or(Verdict::Drop(Counter::Length))?;
    let header_len = ((header[0] & 0x0f) as usize) * 4;
    if header[0] >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN {
        return Err(truncated);
    }
    let total_len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if total_len < header_len + VRRP_HEADER_LEN {
        return Err(truncated);
    }
    let vrrp_len = total_len - header_len;
    let source = [header[12], header[13], header[14], header[15]];
    let destination = [header[16], header[17], header[18], header[19]];
    let mut source16 = [0u8; 16];
    source16[..4].copy_from_slice(&source);
    Ok(IpFacts {
        vrrp_offset: l3 + header_len,
        vrrp_len,
        ttl: header[8],
        source: source16,
        pseudo_header_sum: checksum::ipv4_pseudo_header(source, destination, vrrp_len as u16),
        group_pseudo_header_sum: checksum::ipv4_pseudo_header(
            source,
            IPV4_VRRP_GROUP,
            vrrp_len as u16,
        ),
    })
}

#[inline(always)]
fn ipv6_facts(ctx: &XdpContext, l3: usize) -> Result<IpFacts, Verdict> {
    let header = read::<[u8; IPV6_HEADER_LEN]>(ctx, l3).ok_or(Verdict::Drop(Counter::Length))?;
    let payload_len = u16::from_be_bytes([header[4], header[5]]) as usize;
    let mut source = [0u8; 16];
    source.copy_from_slice(&header[8..24]);
    let mut destination = [0u8; 16];
    destination.copy_from_slice(&header[24..40]);
    Ok(IpFacts {
        vrrp_offset: l3 + IPV6_HEADER_LEN,
        vrrp_len: payload_len,
        ttl: header[7],
        source,
        pseudo_header_sum: checksum::ipv6_pseudo_header(&source, &destination, payload_len as u32),
        group_pseudo_header_sum: checksum::ipv6_pseudo_header(
            &source,
            &IPV6_VRRP_GROUP,
            payload_len as u32,
        ),
    })
}

/// A VRRP message whose IP header is sound enough to name its VRID: what
/// decides whether the frame is ours to judge at all.
pub struct Addressed {
    ip: IpFacts,
    header: [u8; VRRP_HEADER_LEN],
}

impl Addressed {
    #[inline(always)]
    pub fn vrid(&self) -> u8 {
        self.header[1]
    }
}

/// The IP header and the fixed VRRP header of a located VRRP packet, or
/// `None` when they cannot be read: such a frame names no VRID.
#[inline(always)]
pub fn address_advert(ctx: &XdpContext, located: &Located) -> Option<Addressed> {
    let ip = if located.family == FAMILY_IPV4 {
        ipv4_facts(ctx, located.l3).ok()?
    } else {
        ipv6_facts(ctx, located.l3).ok()?
    };
    let header = read::<[u8; VRRP_HEADER_LEN]>(ctx, ip.vrrp_offset)?;
    Some(Addressed { ip, header })
}

/// Every packet-only receiver check, in the order the RFCs list them;
/// the TTL / hop limit must be 255 only when `check_ttl` (multicast).
#[inline(always)]
pub fn parse_advert(
    ctx: &XdpContext,
    located: &Located,
    addressed: &Addressed,
    check_ttl: bool,
) -> Result<Advert, Verdict> {
    let ip = &addressed.ip;
    if check_ttl && ip.ttl != 255 {
        return Err(Verdict::Drop(Counter::Ttl));
    }
    let offset = ip.vrrp_offset;
    let header = addressed.header;
    let version = header[0] >> 4;
    // VRRPv2 exists only over IPv4.
    if !(version == 3 || (version == 2 && located.family == FAMILY_IPV4)) {
        return Err(Verdict::Drop(Counter::Version));
    }
    if header[0] & 0x0f != 1 {
        return Err(Verdict::Drop(Counter::Type));
    }
    let address_count = header[3] as usize;
    let address_len = if located.family == FAMILY_IPV4 { 4 } else { 16 };
    let auth_len = if version == 2 { VRRP_V2_AUTH_LEN } else { 0 };
    let expected_len = VRRP_HEADER_LEN + address_count * address_len + auth_len;
    if ip.vrrp_len != expected_len || expected_len > MAX_VRRP_LEN {
        return Err(Verdict::Drop(Counter::Length));
    }

    let message_sum =
        checksum::sum_words(ctx, offset, expected_len).ok_or(Verdict::Drop(Counter::Length))?;
    let message_only_valid = checksum::is_valid(message_sum);
    let with_pseudo_valid = checksum::is_valid(message_sum + ip.pseudo_header_sum);
    let pseudo_header_checksum = match (version, located.family) {
        (2, _) if message_only_valid => false,
        (3, FAMILY_IPV6) if with_pseudo_valid => true,
        // keepalived's default first: both are legal for v3 over IPv4.
        (3, FAMILY_IPV4) if with_pseudo_valid => true,
        (3, FAMILY_IPV4) if message_only_valid => false,
        (3, _) if checksum::is_valid(message_sum + ip.group_pseudo_header_sum) => true,
        _ => return Err(Verdict::Drop(Counter::Checksum)),
    };

    let (interval_field, auth_type) = if version == 2 {
        (header[5] as u16, header[4])
    } else {
        ((((header[4] & 0x0f) as u16) << 8) | header[5] as u16, 0)
    };
    let auth_data = if version == 2 {
        read::<[u8; 8]>(ctx, offset + VRRP_HEADER_LEN + address_count * 4)
            .ok_or(Verdict::Drop(Counter::Length))?
    } else {
        [0; 8]
    };
    Ok(Advert {
        family: located.family,
        version,
        vrid: header[1],
        priority: header[2],
        interval_field,
        auth_type,
        auth_data,
        source: ip.source,
        ttl: ip.ttl,
        pseudo_header_checksum,
    })
}
