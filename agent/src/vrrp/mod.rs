//! The VRRP protocol core, free of IO: wire codec and election state machine,
//! and the types both speak ([`Version`], [`AdvertInterval`], [`ChecksumForm`]).

pub mod election;
mod interval;
pub mod wire;

pub use interval::{AdvertInterval, IntervalError};

/// Protocol version on the wire: RFC 3768 (v2) or RFC 5798 (v3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Version {
    V2,
    V3,
}

/// Which VRRPv3-over-IPv4 checksum a packet carries. keepalived sends the
/// checksum over the IPv4 pseudo-header by default, RFC 9568 and keepalived's
/// `v3_checksum_as_v2` compute it over the VRRP message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ChecksumForm {
    /// Over the VRRP message only (VRRPv2, and VRRPv3 IPv4 per RFC 9568).
    MessageOnly,
    /// Over the IP pseudo-header plus the VRRP message (VRRPv3 IPv6 always).
    WithPseudoHeader,
}
