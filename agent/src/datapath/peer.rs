//! The kernel's record of a virtual router's last valid advert, decoded once
//! for every reader (the election owner and `monitor`).

use std::net::IpAddr;

use agent_common::{PEER_FLAG_PSEUDO_HEADER_CHECKSUM, PeerKey, PeerState};

use super::key_to_address;
use crate::vrrp::{ChecksumForm, Version};

/// What the kernel last saw from the master of one virtual router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord {
    /// Source address of the last advert (the master's primary address).
    pub source: IpAddr,
    pub version: Version,
    /// Which VRRPv3-over-IPv4 checksum the last advert carried.
    pub checksum_form: ChecksumForm,
    /// Advertised interval in centiseconds (VRRPv2 seconds × 100), as
    /// received: the election decides whether it is acceptable.
    pub interval_cs: u16,
    pub priority: u8,
    /// CLOCK_MONOTONIC nanoseconds when the last valid advert arrived.
    pub last_seen_ns: u64,
    /// Valid adverts accepted for this router since the program was loaded.
    pub adverts: u64,
}

impl PeerRecord {
    /// Decodes the PEERS map value (or a ring-buffer event's state) stored
    /// under `key`. XDP records only adverts it validated, so the version is
    /// 2 or 3; anything but 2 reads as VRRPv3.
    pub fn from_kernel(key: &PeerKey, state: &PeerState) -> Self {
        Self {
            source: key_to_address(key.family, state.source),
            version: if state.version == 2 {
                Version::V2
            } else {
                Version::V3
            },
            checksum_form: if state.flags & PEER_FLAG_PSEUDO_HEADER_CHECKSUM != 0 {
                ChecksumForm::WithPseudoHeader
            } else {
                ChecksumForm::MessageOnly
            },
            interval_cs: state.interval_cs,
            priority: state.priority,
            last_seen_ns: state.last_seen_ns,
            adverts: state.adverts,
        }
    }
}

#[cfg(test)]
mod tests {
    use agent_common::{FAMILY_IPV4, FAMILY_IPV6};

    use super::*;
    use crate::datapath::address_to_key;

    fn state(source: IpAddr, version: u8, flags: u8) -> PeerState {
        PeerState {
            last_seen_ns: 7_000,
            adverts: 3,
            source: address_to_key(source).1,
            interval_cs: 50,
            priority: 150,
            version,
            flags,
            _pad: [0; 3],
        }
    }

    #[test]
    fn ipv4_v3_with_the_pseudo_header_checksum() {
        let source: IpAddr = "192.0.2.7".parse().unwrap();
        let key = PeerKey::new(3, 51, FAMILY_IPV4);
        let record =
            PeerRecord::from_kernel(&key, &state(source, 3, PEER_FLAG_PSEUDO_HEADER_CHECKSUM));
        assert_eq!(
            record,
            PeerRecord {
                source,
                version: Version::V3,
                checksum_form: ChecksumForm::WithPseudoHeader,
                interval_cs: 50,
                priority: 150,
                last_seen_ns: 7_000,
                adverts: 3,
            }
        );
    }

    #[test]
    fn ipv4_v2_is_message_only() {
        let source: IpAddr = "198.51.100.9".parse().unwrap();
        let key = PeerKey::new(3, 9, FAMILY_IPV4);
        let record = PeerRecord::from_kernel(&key, &state(source, 2, 0));
        assert_eq!(
            (record.source, record.version, record.checksum_form),
            (source, Version::V2, ChecksumForm::MessageOnly)
        );
    }

    #[test]
    fn ipv6_source_uses_all_sixteen_bytes() {
        let source: IpAddr = "2001:db8::53".parse().unwrap();
        let key = PeerKey::new(4, 53, FAMILY_IPV6);
        let record =
            PeerRecord::from_kernel(&key, &state(source, 3, PEER_FLAG_PSEUDO_HEADER_CHECKSUM));
        assert_eq!(record.source, source);
    }
}
