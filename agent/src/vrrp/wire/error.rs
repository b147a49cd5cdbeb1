//! Why a packet was rejected, or could not be built.

#[cfg(test)]
use super::AdvertInterval;
use super::{AddressFamily, Version};

/// The XDP program's drop counters, one per rule an advert can break (plus
/// the packets that are not VRRP at all). Every parse [`Error`] maps to one.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not an IPv4/IPv6 packet carrying VRRP: the datapath passes it on.
    NotVrrp,
    /// The IP or Ethernet layer is malformed (bad header length, fragment,
    /// bad IPv4 header checksum).
    Malformed,
    /// TTL / hop limit is not 255.
    HopLimit,
    /// VRRP version is not 2 or 3, or v2 over IPv6.
    Version,
    /// VRRP type is not 1 (advertisement).
    Type,
    /// Too short, or the length disagrees with the address count.
    Length,
    /// VRRP checksum wrong in every form that applies.
    Checksum,
    /// VRRPv2 authentication type unknown, unsupported or not the configured one.
    AuthType,
    /// VRRPv2 simple-text password differs from the configured one.
    AuthData,
    /// Advertisement interval zero, or (VRRPv2) not the configured one.
    AdvertInterval,
}

#[cfg(test)]
impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::NotVrrp,
        RejectReason::Malformed,
        RejectReason::HopLimit,
        RejectReason::Version,
        RejectReason::Type,
        RejectReason::Length,
        RejectReason::Checksum,
        RejectReason::AuthType,
        RejectReason::AuthData,
        RejectReason::AdvertInterval,
    ];

    /// Stable snake_case name, for metric labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            RejectReason::NotVrrp => "not_vrrp",
            RejectReason::Malformed => "malformed",
            RejectReason::HopLimit => "hop_limit",
            RejectReason::Version => "version",
            RejectReason::Type => "type",
            RejectReason::Length => "length",
            RejectReason::Checksum => "checksum",
            RejectReason::AuthType => "auth_type",
            RejectReason::AuthData => "auth_data",
            RejectReason::AdvertInterval => "advert_interval",
        }
    }
}

/// A packet that is not a valid VRRP advert, and exactly why.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{what} is truncated: {available} bytes available, at least {needed} needed")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("Ethernet type 0x{ethertype:04x} is neither IPv4 (0x0800) nor IPv6 (0x86dd)")]
    NotIp { ethertype: u16 },
    #[error("IP version {found} in the IP header, expected {expected}")]
    IpVersion { found: u8, expected: &'static str },
    #[error(
        "IPv4 header length {header_len} bytes is invalid: must be 20..=60 and within the {total_len}-byte total length"
    )]
    Ipv4HeaderLength { header_len: usize, total_len: usize },
    #[error("IPv4 header checksum 0x{found:04x} is wrong, expected 0x{expected:04x}")]
    Ipv4HeaderChecksum { found: u16, expected: u16 },
    #[error(
        "IP packet is a fragment (offset {offset}, more fragments: {more}); VRRP adverts are never fragmented"
    )]
    Fragmented { offset: u16, more: bool },
    #[error("IP protocol / next header {protocol} is not VRRP (112)")]
    NotVrrp { protocol: u8 },
    #[error(
        "TTL / hop limit {found} is wrong: VRRP requires 255 (the advert may have crossed a router)"
    )]
    HopLimit { found: u8 },
    #[error("VRRP version {found} is not supported: expected 2 (RFC 3768) or 3 (RFC 5798)")]
    Version { found: u8 },
    #[error("{version} over {family} does not exist: IPv6 adverts must be VRRPv3")]
    VersionFamily {
        version: Version,
        family: AddressFamily,
    },
    #[error("VRRP type {found} is not an advertisement (1)")]
    Type { found: u8 },
    #[error(
        "VRRP message is {found} bytes, but {address_count} {family} addresses need exactly {expected}"
    )]
    Length {
        address_count: u8,
        family: AddressFamily,
        expected: usize,
        found: usize,
    },
    #[error("VRRP checksum 0x{found:04x} is wrong: expected 0x{expected:04x}{}", alternative_text(.alternative))]
    Checksum {
        found: u16,
        /// The checksum in the form tried first (the only one for v2/IPv6).
        expected: u16,
        /// VRRPv3 over IPv4 only: the checksum in the other form.
        alternative: Option<u16>,
    },
    #[error(
        "VRRPv2 authentication type 2 (IP Authentication Header) is not supported: use none (0) or simple text (1)"
    )]
    AuthTypeUnsupported,
    #[error(
        "VRRPv2 authentication type {found} is unknown: expected 0 (none), 1 (simple text) or 2 (IP AH)"
    )]
    AuthTypeUnknown { found: u8 },
    #[error("VRRPv2 authentication type {found} differs from the configured type {expected}")]
    AuthTypeMismatch { found: u8, expected: u8 },
    #[error("VRRPv2 simple-text password differs from the configured one")]
    AuthDataMismatch,
    #[error("advertisement interval is zero: it must be at least 1 {unit}")]
    AdvertIntervalZero { unit: &'static str },
    #[error(
        "VRRPv2 advertisement interval {found} differs from the configured {expected} (RFC 3768 §7.1)"
    )]
    AdvertIntervalMismatch {
        found: AdvertInterval,
        expected: AdvertInterval,
    },
    #[error("addresses are {found}, but the packet is {expected}")]
    FamilyMismatch {
        found: AddressFamily,
        expected: AddressFamily,
    },
}

#[cfg(test)]
fn alternative_text(alternative: &Option<u16>) -> String {
    match alternative {
        Some(sum) => format!(
            " with the IPv4 pseudo-header (keepalived) or 0x{sum:04x} over the message only (RFC 9568)"
        ),
        None => String::new(),
    }
}

#[cfg(test)]
impl Error {
    /// The drop counter this error is counted under.
    pub const fn reason(&self) -> RejectReason {
        match self {
            Error::NotIp { .. } | Error::NotVrrp { .. } => RejectReason::NotVrrp,
            Error::IpVersion { .. }
            | Error::Ipv4HeaderLength { .. }
            | Error::Ipv4HeaderChecksum { .. }
            | Error::Fragmented { .. }
            | Error::FamilyMismatch { .. } => RejectReason::Malformed,
            Error::HopLimit { .. } => RejectReason::HopLimit,
            Error::Version { .. } | Error::VersionFamily { .. } => RejectReason::Version,
            Error::Type { .. } => RejectReason::Type,
            Error::Truncated { .. } | Error::Length { .. } => RejectReason::Length,
            Error::Checksum { .. } => RejectReason::Checksum,
            Error::AuthTypeUnsupported
            | Error::AuthTypeUnknown { .. }
            | Error::AuthTypeMismatch { .. } => RejectReason::AuthType,
            Error::AuthDataMismatch => RejectReason::AuthData,
            Error::AdvertIntervalZero { .. } | Error::AdvertIntervalMismatch { .. } => {
                RejectReason::AdvertInterval
            }
        }
    }
}

/// A representation that cannot be put on the wire, or a buffer too small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("buffer of {available} bytes is too small: {needed} needed")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("{count} virtual addresses do not fit the 8-bit address count: at most 255")]
    TooManyAddresses { count: usize },
    #[error("advertisement interval {centis} cs cannot be sent in {version}: {allowed}")]
    AdvertInterval {
        centis: u16,
        version: Version,
        allowed: &'static str,
    },
    #[error("VRRPv3 has no authentication; only VRRPv2 can carry a password")]
    AuthInV3,
    #[error("{version} over {family} does not exist: IPv6 adverts must be VRRPv3")]
    VersionFamily {
        version: Version,
        family: AddressFamily,
    },
    #[error("virtual addresses are {addresses}, but the IP endpoints are {endpoints}")]
    FamilyMismatch {
        addresses: AddressFamily,
        endpoints: AddressFamily,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_error_names_both_forms_for_v3_ipv4() {
        let err = Error::Checksum {
            found: 0x1234,
            expected: 0xa198,
            alternative: Some(0x4429),
        };
        let text = err.to_string();
        assert!(text.contains("0x1234") && text.contains("0xa198") && text.contains("0x4429"));
        assert!(text.contains("pseudo-header") && text.contains("RFC 9568"));
        assert_eq!(err.reason(), RejectReason::Checksum);
    }

    #[test]
    fn reason_names_are_distinct() {
        let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectReason::ALL.len());
    }

    #[test]
    fn auth_errors_map_to_auth_reasons() {
        assert_eq!(Error::AuthTypeUnsupported.reason(), RejectReason::AuthType);
        assert_eq!(
            Error::AuthTypeUnknown { found: 7 }.reason(),
            RejectReason::AuthType
        );
        assert_eq!(Error::AuthDataMismatch.reason(), RejectReason::AuthData);
    }
}

/// A gratuitous ARP or unsolicited neighbour advertisement frame that is not
/// what keepalived sends.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    #[error("{what} is truncated: {available} bytes available, {needed} needed")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field} is 0x{found:x}, expected 0x{expected:x}")]
    Field {
        field: &'static str,
        found: u128,
        expected: u128,
    },
    #[error("ICMPv6 checksum 0x{found:04x} is wrong, expected 0x{expected:04x}")]
    Checksum { found: u16, expected: u16 },
}
