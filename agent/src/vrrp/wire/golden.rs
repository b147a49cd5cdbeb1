//! Golden vectors captured from Debian's keepalived 2.2.7 (see
//! `testdata/README.md`): we must parse what it sends, and send what it
//! sends for the same configuration, byte for byte.
//!
//! Compared exactly: the whole VRRP message and the whole IPv4 header.
//! keepalived writes the IPv4 header itself, including the identification
//! (1 for an instance's first advert); the kernel fills in the header
//! checksum, which we compute the same way. Not compared: the IPv6 flow
//! label, which the kernel picks (auto flow labels) when it builds the IPv6
//! header for keepalived's socket; we send 0.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::arp::GratuitousArp;
use super::ethernet::{self, MacAddr};
use super::ip::{self, Ipv4Packet};
use super::ndisc::UnsolicitedNa;
use super::{
    AdvertInterval, Auth, ChecksumForm, Endpoints, Error, Repr, Version, VirtualAddresses,
};

const KEEPALIVED_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const KEEPALIVED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const KEEPALIVED_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0a);
/// keepalived's first advert of an instance carries identification 1.
const FIRST_IPV4_IDENTIFICATION: u16 = 1;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks_exact(2)
        .map(|pair| {
            let nibble = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
            (nibble(pair[0]) << 4) | nibble(pair[1])
        })
        .collect()
}

struct Vector {
    name: &'static str,
    bytes: &'static str,
    repr: Repr,
    endpoints: Endpoints,
    form: ChecksumForm,
}

fn ipv4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn v2_pass() -> Vector {
    Vector {
        name: "v2_pass_ipv4",
        bytes: include_str!("testdata/v2_pass_ipv4.hex"),
        repr: Repr {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            advert_interval: AdvertInterval::ONE_SECOND,
            // keepalived truncates auth_pass "longpassword" to 8 bytes.
            auth: Auth::simple_password("longpassword"),
            addresses: VirtualAddresses::V4(vec![ipv4(192, 0, 2, 100), ipv4(192, 0, 2, 101)]),
        },
        endpoints: Endpoints::ipv4_multicast(KEEPALIVED_V4),
        form: ChecksumForm::MessageOnly,
    }
}

fn v3_ipv4_repr(vrid: u8, priority: u8, centis: u16, vip: Ipv4Addr) -> Repr {
    Repr {
        version: Version::V3,
        vrid,
        priority,
        advert_interval: AdvertInterval::checked(Version::V3, centis.into()),
        auth: Auth::None,
        addresses: VirtualAddresses::V4(vec![vip]),
    }
}

fn v3_ipv4() -> Vector {
    Vector {
        name: "v3_ipv4",
        bytes: include_str!("testdata/v3_ipv4.hex"),
        repr: v3_ipv4_repr(52, 200, 50, ipv4(192, 0, 2, 110)),
        endpoints: Endpoints::ipv4_multicast(KEEPALIVED_V4),
        form: ChecksumForm::WithPseudoHeader,
    }
}

/// Derived from `v3_ipv4` (keepalived 2.2.7 cannot send it), its checksum
/// confirmed by tshark's `vrrp.v3_checksum_as_in_v2`.
fn v3_ipv4_checksum_as_v2() -> Vector {
    Vector {
        name: "v3_ipv4_checksum_as_v2",
        bytes: include_str!("testdata/v3_ipv4_checksum_as_v2.hex"),
        form: ChecksumForm::MessageOnly,
        ..v3_ipv4()
    }
}

fn v3_ipv4_unicast() -> Vector {
    Vector {
        name: "v3_ipv4_unicast",
        bytes: include_str!("testdata/v3_ipv4_unicast.hex"),
        repr: v3_ipv4_repr(54, 100, 100, ipv4(192, 0, 2, 120)),
        endpoints: Endpoints::V4 {
            src: KEEPALIVED_V4,
            dst: PEER_V4,
        },
        form: ChecksumForm::WithPseudoHeader,
    }
}

fn v3_ipv6() -> Vector {
    Vector {
        name: "v3_ipv6",
        bytes: include_str!("testdata/v3_ipv6.hex"),
        repr: Repr {
            version: Version::V3,
            vrid: 53,
            priority: 120,
            advert_interval: AdvertInterval::checked(Version::V3, 100),
            auth: Auth::None,
            addresses: VirtualAddresses::V6(vec![
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x53),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53),
            ]),
        },
        endpoints: Endpoints::ipv6_multicast(KEEPALIVED_LINK_LOCAL),
        form: ChecksumForm::WithPseudoHeader,
    }
}

fn all_adverts() -> [Vector; 5] {
    [
        v2_pass(),
        v3_ipv4(),
        v3_ipv4_checksum_as_v2(),
        v3_ipv4_unicast(),
        v3_ipv6(),
    ]
}

#[test]
fn keepalived_adverts_parse_into_the_configured_repr() {
    for vector in all_adverts() {
        let parsed =
            ip::parse(&hex(vector.bytes)).unwrap_or_else(|err| panic!("{}: {err}", vector.name));
        assert_eq!(parsed.endpoints, vector.endpoints, "{}", vector.name);
        assert_eq!(parsed.hop_limit, 255, "{}", vector.name);
        assert_eq!(parsed.advert.repr, vector.repr, "{}", vector.name);
        assert_eq!(parsed.advert.checksum_form, vector.form, "{}", vector.name);
    }
}

#[test]
fn we_emit_what_keepalived_sends() {
    for vector in all_adverts() {
        let captured = hex(vector.bytes);
        let ours = ip::to_bytes(
            &vector.repr,
            &vector.endpoints,
            FIRST_IPV4_IDENTIFICATION,
            vector.form,
        )
        .unwrap_or_else(|err| panic!("{}: {err}", vector.name));
        assert_eq!(ours.len(), captured.len(), "{}", vector.name);
        match vector.endpoints {
            Endpoints::V4 { .. } => assert_eq!(ours, captured, "{}", vector.name),
            Endpoints::V6 { .. } => {
                let without_flow_label = |packet: &[u8]| {
                    let mut packet = packet.to_vec();
                    packet[1] &= 0xf0;
                    packet[2] = 0;
                    packet[3] = 0;
                    packet
                };
                assert_eq!(ours, without_flow_label(&captured), "{}", vector.name);
                assert_ne!(
                    captured[1..4],
                    [0xc0, 0, 0],
                    "capture should show the kernel's flow label"
                );
            }
        }
    }
}

#[test]
fn captured_ipv4_header_is_keepalived_s() {
    let captured = hex(v2_pass().bytes);
    let header = Ipv4Packet::new_checked(&captured[..]).expect("captured IPv4 packet");
    assert_eq!(header.tos(), 0xc0, "precedence internetwork control");
    assert_eq!(header.ttl(), 255);
    assert!(!header.dont_fragment());
    assert_eq!(header.identification(), FIRST_IPV4_IDENTIFICATION);
    assert_eq!(header.header_checksum(), header.expected_header_checksum());
}

#[test]
fn the_two_v3_ipv4_forms_differ_and_each_is_recognised() {
    let pseudo = hex(v3_ipv4().bytes);
    let message_only = hex(v3_ipv4_checksum_as_v2().bytes);
    assert_ne!(pseudo, message_only);
    assert_eq!(
        pseudo[..26],
        message_only[..26],
        "only the VRRP checksum differs"
    );
    assert_eq!(
        pseudo[28..],
        message_only[28..],
        "only the VRRP checksum differs"
    );
}

#[test]
fn padded_ethernet_frame_parses() {
    // A real NIC pads the 46-byte frame to 60 bytes; XDP sees the padding.
    let mut frame = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    frame.extend_from_slice(&KEEPALIVED_MAC.0);
    frame.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    frame.extend_from_slice(&hex(v3_ipv4().bytes));
    frame.resize(60, 0);
    let parsed = ethernet::parse_advert(&frame).expect("padded frame");
    assert_eq!(parsed.advert.repr, v3_ipv4().repr);
}

fn with_fixed_header_checksum(
    mut packet: Vec<u8>,
    edit: impl FnOnce(&mut Ipv4Packet<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut packet);
    edit(&mut ip);
    ip.fill_header_checksum();
    packet
}

#[test]
fn tampered_captures_are_rejected_for_the_right_reason() {
    let v2 = hex(v2_pass().bytes);
    let ttl = with_fixed_header_checksum(v2.clone(), |ip| ip.set_ttl(254));
    assert_eq!(ip::parse(&ttl), Err(Error::HopLimit { found: 254 }));

    let mut bad_ip_checksum = v2.clone();
    bad_ip_checksum[10] ^= 0xff;
    assert!(matches!(
        ip::parse(&bad_ip_checksum),
        Err(Error::Ipv4HeaderChecksum { .. })
    ));

    let mut wrong_password = v2.clone();
    let last = wrong_password.len() - 1;
    wrong_password[last] ^= 0x01;
    assert!(matches!(
        ip::parse(&wrong_password),
        Err(Error::Checksum {
            alternative: None,
            ..
        })
    ));

    let mut v3 = hex(v3_ipv4().bytes);
    v3[20 + 2] = 201; // priority, checksum left stale
    assert!(matches!(
        ip::parse(&v3),
        Err(Error::Checksum {
            alternative: Some(_),
            ..
        })
    ));

    let mut v6 = hex(v3_ipv6().bytes);
    v6[7] = 1;
    assert_eq!(ip::parse(&v6), Err(Error::HopLimit { found: 1 }));
}

#[test]
fn received_password_is_checked_against_the_configured_one() {
    let parsed = ip::parse(&hex(v2_pass().bytes)).expect("golden v2");
    assert_eq!(
        parsed
            .advert
            .repr
            .verify_auth(&Auth::simple_password("longpass")),
        Ok(())
    );
    assert_eq!(
        parsed
            .advert
            .repr
            .verify_auth(&Auth::simple_password("longpasX")),
        Err(Error::AuthDataMismatch)
    );
    assert_eq!(
        parsed.advert.repr.verify_auth(&Auth::None),
        Err(Error::AuthTypeMismatch {
            found: 1,
            expected: 0
        })
    );
    assert_eq!(
        parsed
            .advert
            .repr
            .verify_advert_interval(AdvertInterval::ONE_SECOND),
        Ok(())
    );
}

#[test]
fn keepalived_gratuitous_arp() {
    let captured = hex(include_str!("testdata/garp_ipv4.hex"));
    let garp = GratuitousArp {
        sender_mac: KEEPALIVED_MAC,
        address: ipv4(192, 0, 2, 100),
    };
    assert_eq!(GratuitousArp::parse_frame(&captured), Ok(garp));
    assert_eq!(garp.to_frame(), captured);
}

#[test]
fn keepalived_unsolicited_neighbour_advertisement() {
    let captured = hex(include_str!("testdata/unsolicited_na.hex"));
    let na = UnsolicitedNa {
        source_mac: KEEPALIVED_MAC,
        target: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x53),
        router: false,
    };
    assert_eq!(UnsolicitedNa::parse_frame(&captured), Ok(na));
    assert_eq!(na.to_frame(), captured);
}
