//! The VRRP wire codec: zero-copy views over packet buffers and owned,
//! validated representations, in the style of smoltcp's `wire` module.
//!
//! Layers, each usable alone:
//! - [`advert`]: the VRRP advertisement itself (RFC 3768 v2, RFC 5798 v3), as
//!   a [`advert::Packet`] view and a high-level [`advert::Repr`].
//! - [`ip`]: IP headers; production builds only IPv6 ones (for unsolicited
//!   NAs), the whole-packet parse (XDP mirror) and keepalived-identical build
//!   exist for the tests (see its docs).
//! - [`ethernet`]: Ethernet header view, virtual router MACs, multicast MACs.
//! - [`arp`]: gratuitous ARP for IPv4 virtual addresses.
//! - [`ndisc`]: unsolicited neighbour advertisements for IPv6 virtual addresses.
//!
//! Production only emits (adverts, gratuitous ARPs, unsolicited NAs):
//! received adverts are validated in the kernel by the XDP program in
//! agent-ebpf. The parse side (`Repr::parse`, the views' `new_checked` and
//! read accessors, `parse_frame`, `Error`, `RejectReason`) is therefore
//! compiled for the tests only. It is kept as the userspace mirror of the XDP
//! checks, which the keepalived golden vectors and the property tests pin
//! down: parsing never panics and reports the first violated rule as an
//! `Error` whose `Error::reason` maps one-to-one onto the XDP program's drop
//! counters (`RejectReason`). Emitting checks that the representation fits
//! on the wire and reports an [`EmitError`] otherwise.
//!
//! # The two VRRPv3-over-IPv4 checksums
//!
//! RFC 5798 §5.2.8 says the VRRPv3 checksum covers "the entire VRRP message"
//! and adds the pseudo-header for IPv6 (RFC 8200 §8.1); it was read in two
//! ways for IPv4. keepalived (2.2.7, the version our users run, as the
//! golden vectors show) also prepends the *IPv4* pseudo-header (source,
//! destination, zero, protocol 112, VRRP length), while other stacks sum the
//! message alone, as for VRRPv2. RFC 9568 (which obsoletes RFC 5798)
//! settled on the message-only form, and later keepalived releases can send
//! it (`v3_checksum_as_v2`). Both are therefore seen on real networks, and a
//! checksum valid in one form is almost never valid in the other. So:
//! - parsing a VRRPv3 IPv4 advert accepts either form and reports which one
//!   matched as a [`ChecksumForm`] (the pseudo-header form is tried first,
//!   being what keepalived sends by default);
//! - emitting takes the form to use; it only matters for VRRPv3 over IPv4,
//!   because VRRPv2 is always message-only and VRRPv3 over IPv6 always
//!   includes the pseudo-header.
//!
//! A unicast advert's pseudo-header uses the unicast destination address
//! (keepalived before 1.3.6 did not; its `old_unicast_checksum` form is not
//! accepted).

pub mod advert;
pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ip;
pub mod ndisc;

mod error;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod proptests;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub use self::advert::{Auth, Repr, VirtualAddresses};
#[cfg(test)]
pub use self::advert::{Packet, Parsed, SimplePassword};
pub use self::error::EmitError;
#[cfg(test)]
pub use self::error::{AnnouncementError, Error, RejectReason};
pub use super::{AdvertInterval, ChecksumForm, Version};

/// IP protocol number (IPv4) / next header (IPv6) of VRRP.
pub const IP_PROTOCOL: u8 = 112;
/// The only TTL / hop limit a VRRP advert may be sent or accepted with.
pub const HOP_LIMIT: u8 = 255;
/// IPv4 TOS / IPv6 traffic class keepalived 2.2.7 sends adverts with:
/// precedence "internetwork control" (DSCP CS6), ECN not set.
pub const TRAFFIC_CLASS: u8 = 0xc0;
/// VRRP's IPv4 multicast group (RFC 3768 / 5798).
pub const IPV4_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// VRRP's IPv6 multicast group (RFC 5798).
pub const IPV6_MULTICAST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The IP family an advert travels over; it fixes the size of each address
/// the advert carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

impl AddressFamily {
    /// Size in bytes of one address of this family.
    pub const fn address_len(self) -> usize {
        match self {
            AddressFamily::Ipv4 => 4,
            AddressFamily::Ipv6 => 16,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::Ipv4 => "IPv4",
            AddressFamily::Ipv6 => "IPv6",
        })
    }
}

/// Source and destination of the IP packet carrying an advert: needed for
/// the pseudo-header checksum, and by the sender for the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoints {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Endpoints {
    /// Multicast to 224.0.0.18 from `src`.
    pub const fn ipv4_multicast(src: Ipv4Addr) -> Self {
        Endpoints::V4 {
            src,
            dst: IPV4_MULTICAST,
        }
    }

    /// Multicast to ff02::12 from `src` (RFC 5798: the link-local address).
    pub const fn ipv6_multicast(src: Ipv6Addr) -> Self {
        Endpoints::V6 {
            src,
            dst: IPV6_MULTICAST,
        }
    }

    pub const fn family(&self) -> AddressFamily {
        match self {
            Endpoints::V4 { .. } => AddressFamily::Ipv4,
            Endpoints::V6 { .. } => AddressFamily::Ipv6,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V2 => "VRRPv2",
            Version::V3 => "VRRPv3",
        })
    }
}

impl Version {
    /// The value of the 4-bit version field.
    pub const fn wire_value(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl fmt::Display for ChecksumForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumForm::MessageOnly => "message only",
            ChecksumForm::WithPseudoHeader => "with pseudo-header",
        })
    }
}
