//! Unsolicited neighbour advertisement (RFC 4861 §7.2.6) for an IPv6
//! virtual address, as keepalived 2.2.7 sends it on becoming master: a
//! whole Ethernet frame to 33:33:00:00:00:01, IPv6 from the VIP itself to
//! ff02::1 with hop limit 255, ICMPv6 type 136 with the override flag (and
//! the router flag when the interface forwards), solicited flag clear, and
//! a target link-layer address option carrying the MAC.

use std::net::Ipv6Addr;

#[cfg(test)]
use super::AnnouncementError;
use super::checksum::Sum;
use super::ethernet::{self, ETHERTYPE_IPV6, MacAddr};
use super::ip::{IPV6_HEADER_LEN, Ipv6Packet};
use super::{EmitError, HOP_LIMIT};

pub const ICMPV6_NEXT_HEADER: u8 = 58;
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
pub const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// ICMPv6 header, flags, target, one 8-byte link-layer address option.
pub const ICMP_LEN: usize = 4 + 4 + 16 + 8;
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + IPV6_HEADER_LEN + ICMP_LEN;
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const FLAG_ROUTER: u8 = 0x80;
#[cfg(test)]
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// An unsolicited NA announcing that `target` is at `source_mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnsolicitedNa {
    pub source_mac: MacAddr,
    pub target: Ipv6Addr,
    /// The R flag: set when the sender is a router (forwarding enabled).
    pub router: bool,
}

impl UnsolicitedNa {
    /// Writes the whole Ethernet frame, returning its length ([`FRAME_LEN`]).
    pub fn emit_frame(&self, buffer: &mut [u8]) -> Result<usize, EmitError> {
        let available = buffer.len();
        let Some(buffer) = buffer.get_mut(..FRAME_LEN) else {
            return Err(EmitError::BufferTooSmall {
                needed: FRAME_LEN,
                available,
            });
        };
        let mut frame = ethernet::Frame::new_unchecked(buffer);
        frame.set_dst_addr(ethernet::ipv6_multicast_mac(ALL_NODES));
        frame.set_src_addr(self.source_mac);
        frame.set_ethertype(ETHERTYPE_IPV6);
        let mut ip = Ipv6Packet::new_unchecked(frame.payload_mut());
        ip.set_version_class_and_flow(0, 0);
        ip.set_payload_len(ICMP_LEN as u16);
        ip.set_next_header(ICMPV6_NEXT_HEADER);
        ip.set_hop_limit(HOP_LIMIT);
        ip.set_src_addr(self.target);
        ip.set_dst_addr(ALL_NODES);
        let icmp = ip.payload_mut();
        let flags = FLAG_OVERRIDE | if self.router { FLAG_ROUTER } else { 0 };
        let mut message = [0u8; ICMP_LEN];
        message[0] = TYPE_NEIGHBOR_ADVERTISEMENT;
        message[4] = flags;
        message[8..24].copy_from_slice(&self.target.octets());
        message[24] = OPTION_TARGET_LINK_LAYER_ADDRESS;
        message[25] = 1; // option length in units of 8 bytes
        message[26..32].copy_from_slice(&self.source_mac.0);
        let sum = icmp_checksum(self.target, ALL_NODES, &message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        if let Some(slot) = icmp.get_mut(..ICMP_LEN) {
            slot.copy_from_slice(&message);
        }
        Ok(FRAME_LEN)
    }

    pub fn to_frame(self) -> Vec<u8> {
        let mut frame = vec![0; FRAME_LEN];
        // The buffer is exactly FRAME_LEN, so emitting cannot fail.
        let _ = self.emit_frame(&mut frame);
        frame
    }

    /// Checks `frame` is an unsolicited NA in keepalived's format (padding
    /// after the IPv6 payload is ignored) and says what it announces.
    #[cfg(test)]
    pub fn parse_frame(frame: &[u8]) -> Result<Self, AnnouncementError> {
        if frame.len() < FRAME_LEN {
            return Err(AnnouncementError::Truncated {
                what: "unsolicited neighbour advertisement frame",
                needed: FRAME_LEN,
                available: frame.len(),
            });
        }
        let ethernet = ethernet::Frame::new_unchecked(frame);
        let ip = Ipv6Packet::new_unchecked(ethernet.payload());
        let icmp = ethernet
            .payload()
            .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + ICMP_LEN)
            .unwrap_or(&[]);
        let Ok(message) = <[u8; ICMP_LEN]>::try_from(icmp) else {
            return Err(AnnouncementError::Truncated {
                what: "neighbour advertisement",
                needed: ICMP_LEN,
                available: icmp.len(),
            });
        };
        let mut target = [0u8; 16];
        target.copy_from_slice(&message[8..24]);
        let target = Ipv6Addr::from(target);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&message[26..32]);
        let source_mac = MacAddr(mac);
        let flags = message[4];
        let all_nodes_mac = ethernet::ipv6_multicast_mac(ALL_NODES);
        let checks: [(&'static str, u128, u128); 13] = [
            (
                "Ethernet destination",
                mac_value(ethernet.dst_addr()),
                mac_value(all_nodes_mac),
            ),
            (
                "EtherType",
                ethernet.ethertype().into(),
                ETHERTYPE_IPV6.into(),
            ),
            ("IP version", ip.version().into(), 6),
            (
                "IPv6 payload length",
                ip.payload_len().into(),
                ICMP_LEN as u128,
            ),
            (
                "IPv6 next header",
                ip.next_header().into(),
                ICMPV6_NEXT_HEADER.into(),
            ),
            ("IPv6 hop limit", ip.hop_limit().into(), HOP_LIMIT.into()),
            (
                "IPv6 destination",
                u128::from(ip.dst_addr()),
                u128::from(ALL_NODES),
            ),
            (
                "ICMPv6 type",
                message[0].into(),
                TYPE_NEIGHBOR_ADVERTISEMENT.into(),
            ),
            ("ICMPv6 code", message[1].into(), 0),
            (
                "NA solicited and override flags",
                (flags & (FLAG_SOLICITED | FLAG_OVERRIDE)).into(),
                FLAG_OVERRIDE.into(),
            ),
            (
                "NA option type",
                message[24].into(),
                OPTION_TARGET_LINK_LAYER_ADDRESS.into(),
            ),
            ("NA option length", message[25].into(), 1),
            (
                "NA target link-layer address",
                mac_value(source_mac),
                mac_value(ethernet.src_addr()),
            ),
        ];
        for (field, found, expected) in checks {
            if found != expected {
                return Err(AnnouncementError::Field {
                    field,
                    found,
                    expected,
                });
            }
        }
        let found = u16::from_be_bytes([message[2], message[3]]);
        let mut zeroed = message;
        zeroed[2..4].fill(0);
        let expected = icmp_checksum(ip.src_addr(), ip.dst_addr(), &zeroed);
        if found != expected {
            return Err(AnnouncementError::Checksum { found, expected });
        }
        Ok(UnsolicitedNa {
            source_mac,
            target,
            router: flags & FLAG_ROUTER != 0,
        })
    }
}

fn icmp_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8; ICMP_LEN]) -> u16 {
    Sum::ipv6_pseudo_header(src, dst, ICMPV6_NEXT_HEADER, ICMP_LEN as u32)
        .add_bytes(message)
        .checksum()
}

#[cfg(test)]
fn mac_value(mac: MacAddr) -> u128 {
    mac.0
        .iter()
        .fold(0, |acc, byte| (acc << 8) | u128::from(*byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(router: bool) -> UnsolicitedNa {
        UnsolicitedNa {
            source_mac: MacAddr([0x00, 0x00, 0x5e, 0x00, 0x02, 0x35]),
            target: "2001:db8::53".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            router,
        }
    }

    #[test]
    fn round_trips_with_and_without_router_flag() {
        for router in [false, true] {
            let mut frame = example(router).to_frame();
            frame.extend_from_slice(&[0; 4]);
            assert_eq!(UnsolicitedNa::parse_frame(&frame), Ok(example(router)));
        }
    }

    #[test]
    fn corrupted_checksum_is_reported() {
        let mut frame = example(false).to_frame();
        frame[FRAME_LEN - 1] ^= 0x01;
        assert!(matches!(
            UnsolicitedNa::parse_frame(&frame),
            Err(AnnouncementError::Field {
                field: "NA target link-layer address",
                ..
            })
        ));
        let mut frame = example(false).to_frame();
        frame[ethernet::HEADER_LEN + IPV6_HEADER_LEN + 10] ^= 0x01;
        assert!(matches!(
            UnsolicitedNa::parse_frame(&frame),
            Err(AnnouncementError::Checksum { .. })
        ));
    }

    #[test]
    fn solicited_flag_is_rejected() {
        let mut frame = example(false).to_frame();
        frame[ethernet::HEADER_LEN + IPV6_HEADER_LEN + 4] |= FLAG_SOLICITED;
        assert!(matches!(
            UnsolicitedNa::parse_frame(&frame),
            Err(AnnouncementError::Field {
                field: "NA solicited and override flags",
                ..
            })
        ));
    }
}
