//! Property tests across the codec: emit-then-parse round-trips for every
//! version, family and checksum form, and no panic on arbitrary bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::advert::{self, effective_form};
use super::arp::GratuitousArp;
use super::ethernet::{self, MacAddr};
use super::ip;
use super::ndisc::UnsolicitedNa;
use super::{
    AddressFamily, AdvertInterval, Auth, ChecksumForm, Endpoints, Packet, Repr, SimplePassword,
    Version, VirtualAddresses,
};

fn form() -> impl Strategy<Value = ChecksumForm> {
    prop_oneof![
        Just(ChecksumForm::MessageOnly),
        Just(ChecksumForm::WithPseudoHeader)
    ]
}

fn ipv4_endpoints() -> impl Strategy<Value = Endpoints> {
    (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(src, dst)| Endpoints::V4 {
        src: Ipv4Addr::from(src),
        dst: Ipv4Addr::from(dst),
    })
}

fn ipv6_endpoints() -> impl Strategy<Value = Endpoints> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(src, dst)| Endpoints::V6 {
        src: Ipv6Addr::from(src),
        dst: Ipv6Addr::from(dst),
    })
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        any::<[u8; 8]>().prop_map(|bytes| Auth::SimplePassword(SimplePassword::from_wire(bytes))),
    ]
}

/// A valid advert with the endpoints it travels between.
fn advert() -> impl Strategy<Value = (Repr, Endpoints)> {
    let v2 = (
        any::<u8>(),
        any::<u8>(),
        1..=255u8,
        auth(),
        prop::collection::vec(any::<[u8; 4]>(), 0..40),
        ipv4_endpoints(),
    )
        .prop_map(|(vrid, priority, secs, auth, addrs, endpoints)| {
            let repr = Repr {
                version: Version::V2,
                vrid,
                priority,
                advert_interval: AdvertInterval::checked(Version::V2, u32::from(secs) * 100),
                auth,
                addresses: VirtualAddresses::V4(addrs.into_iter().map(Ipv4Addr::from).collect()),
            };
            (repr, endpoints)
        });
    let v3_ipv4 = (
        any::<u8>(),
        any::<u8>(),
        1..=4095u16,
        prop::collection::vec(any::<[u8; 4]>(), 0..40),
        ipv4_endpoints(),
    )
        .prop_map(|(vrid, priority, centis, addrs, endpoints)| {
            let repr = Repr {
                version: Version::V3,
                vrid,
                priority,
                advert_interval: AdvertInterval::checked(Version::V3, centis.into()),
                auth: Auth::None,
                addresses: VirtualAddresses::V4(addrs.into_iter().map(Ipv4Addr::from).collect()),
            };
            (repr, endpoints)
        });
    let v3_ipv6 = (
        any::<u8>(),
        any::<u8>(),
        1..=4095u16,
        prop::collection::vec(any::<[u8; 16]>(), 0..20),
        ipv6_endpoints(),
    )
        .prop_map(|(vrid, priority, centis, addrs, endpoints)| {
            let repr = Repr {
                version: Version::V3,
                vrid,
                priority,
                advert_interval: AdvertInterval::checked(Version::V3, centis.into()),
                auth: Auth::None,
                addresses: VirtualAddresses::V6(addrs.into_iter().map(Ipv6Addr::from).collect()),
            };
            (repr, endpoints)
        });
    prop_oneof![v2, v3_ipv4, v3_ipv6]
}

/// Valid IP adverts with a few bytes overwritten: reaches the deep checks
/// that random bytes almost never get past.
fn corrupted_ip_advert() -> impl Strategy<Value = Vec<u8>> {
    (
        advert(),
        form(),
        any::<u16>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|((repr, endpoints), form, ident, edits)| {
            let mut bytes = ip::to_bytes(&repr, &endpoints, ident, form).unwrap_or_default();
            for (index, value) in edits {
                if !bytes.is_empty() {
                    let at = index.index(bytes.len());
                    bytes[at] = value;
                }
            }
            bytes
        })
}

fn exercise_view<T: AsRef<[u8]>>(packet: &Packet<T>) {
    let _ = (
        packet.version_field(),
        packet.msg_type(),
        packet.vrid(),
        packet.priority(),
        packet.address_count(),
        packet.v2_auth_type(),
        packet.v2_advert_interval_secs(),
        packet.v3_max_advert_interval_centis(),
        packet.v3_reserved(),
        packet.checksum(),
        packet.address_bytes(),
        packet.v2_auth_data(),
        packet.message_len(),
    );
    for i in 0..=usize::from(packet.address_count()) {
        let _ = (packet.ipv4_address(i), packet.ipv6_address(i));
    }
}

fn parse_everything(bytes: &[u8], endpoints: &Endpoints) {
    for family in [AddressFamily::Ipv4, AddressFamily::Ipv6] {
        if let Ok(packet) = Packet::new_checked(bytes, family) {
            exercise_view(&packet);
            for version in [Version::V2, Version::V3] {
                let _ = packet.verify_checksum(version, endpoints);
            }
            if let Ok(parsed) = Repr::parse(&packet, endpoints) {
                // Whatever parses must emit again and parse back the same
                // (not byte-identical: reserved bits and unused v2 auth data
                // are normalised to zero).
                let again = parsed
                    .repr
                    .to_bytes(endpoints, parsed.checksum_form)
                    .unwrap_or_default();
                let reparsed = Packet::new_checked(&again[..], family)
                    .and_then(|p| Repr::parse(&p, endpoints));
                assert_eq!(reparsed, Ok(parsed));
            }
        }
    }
    let _ = ip::parse(bytes);
    let _ = ethernet::parse_advert(bytes);
    let _ = GratuitousArp::parse_frame(bytes);
    let _ = UnsolicitedNa::parse_frame(bytes);
    if let Ok(ipv4) = ip::Ipv4Packet::new_checked(bytes) {
        let _ = (
            ipv4.payload(),
            ipv4.expected_header_checksum(),
            ipv4.src_addr(),
            ipv4.dst_addr(),
        );
    }
    if let Ok(ipv6) = ip::Ipv6Packet::new_checked(bytes) {
        let _ = (ipv6.payload(), ipv6.flow_label(), ipv6.traffic_class());
    }
}

proptest! {
    #[test]
    fn advert_round_trips((repr, endpoints) in advert(), form in form()) {
        let bytes = repr.to_bytes(&endpoints, form).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let packet = Packet::new_checked(&bytes[..], repr.family()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed = Repr::parse(&packet, &endpoints).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.checksum_form, effective_form(repr.version, repr.family(), form));
        prop_assert_eq!(parsed.repr, repr);
    }

    #[test]
    fn ip_advert_round_trips((repr, endpoints) in advert(), form in form(), ident in any::<u16>(), padding in 0..20usize) {
        let mut bytes = ip::to_bytes(&repr, &endpoints, ident, form).map_err(|e| TestCaseError::fail(e.to_string()))?;
        bytes.resize(bytes.len() + padding, 0);
        let parsed = ip::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.endpoints, endpoints);
        prop_assert_eq!(parsed.hop_limit, 255);
        prop_assert_eq!(parsed.advert.checksum_form, effective_form(repr.version, repr.family(), form));
        prop_assert_eq!(parsed.advert.repr, repr);
    }

    #[test]
    fn ethernet_advert_round_trips((repr, endpoints) in advert(), form in form()) {
        let packet = ip::to_bytes(&repr, &endpoints, 1, form).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut frame = vec![0u8; ethernet::HEADER_LEN + packet.len()];
        let mut eth = ethernet::Frame::new_unchecked(&mut frame);
        eth.set_dst_addr(ethernet::multicast_destination(&endpoints).unwrap_or(MacAddr::BROADCAST));
        eth.set_src_addr(ethernet::virtual_router_mac(repr.vrid, repr.family()));
        eth.set_ethertype(match repr.family() {
            AddressFamily::Ipv4 => ethernet::ETHERTYPE_IPV4,
            AddressFamily::Ipv6 => ethernet::ETHERTYPE_IPV6,
        });
        eth.payload_mut().copy_from_slice(&packet);
        let parsed = ethernet::parse_advert(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.advert.repr, repr);
    }

    #[test]
    fn announcements_round_trip(mac in any::<[u8; 6]>(), v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(), router in any::<bool>()) {
        let mac = MacAddr([mac[0] & 0xfe, mac[1], mac[2], mac[3], mac[4], mac[5]]);
        let garp = GratuitousArp { sender_mac: mac, address: Ipv4Addr::from(v4) };
        prop_assert_eq!(GratuitousArp::parse_frame(&garp.to_frame()), Ok(garp));
        let na = UnsolicitedNa { source_mac: mac, target: Ipv6Addr::from(v6), router };
        prop_assert_eq!(UnsolicitedNa::parse_frame(&na.to_frame()), Ok(na));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..160), v4 in ipv4_endpoints(), v6 in ipv6_endpoints()) {
        parse_everything(&bytes, &v4);
        parse_everything(&bytes, &v6);
    }

    #[test]
    fn corrupted_adverts_never_panic(bytes in corrupted_ip_advert(), v4 in ipv4_endpoints()) {
        parse_everything(&bytes, &v4);
        if let Some(vrrp) = bytes.get(20..) {
            parse_everything(vrrp, &v4);
        }
    }
}

#[test]
fn view_setters_stay_in_bounds_for_the_announced_layout() {
    // The setters that touch variable parts must not write past the buffer.
    let mut packet = advert::Packet::new_unchecked([0u8; 8], AddressFamily::Ipv6);
    packet.set_version_and_type(2, 1);
    packet.set_address_count(3);
    assert!(packet.address_bytes_mut().is_empty());
    packet.set_v2_auth_data(&[1; 8]);
    assert_eq!(packet.into_inner(), [0x21, 0, 0, 3, 0, 0, 0, 0]);
}
