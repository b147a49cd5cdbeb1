//! Gratuitous ARP for an IPv4 virtual address, as keepalived 2.2.7 sends it
//! on becoming master: an ARP *request* broadcast from the interface MAC
//! (or the virtual MAC with `use_vmac`), sender and target protocol address
//! both the VIP, and target hardware address ff:ff:ff:ff:ff:ff (not zero).
//! The frame is 42 bytes; the NIC pads it to the 60-byte minimum.

use std::net::Ipv4Addr;

#[cfg(test)]
use super::AnnouncementError;
use super::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, MacAddr};

/// ARP payload for Ethernet / IPv4.
pub const PACKET_LEN: usize = 28;
/// Ethernet header plus ARP payload, before padding.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;
pub const HARDWARE_ETHERNET: u16 = 1;
pub const OPERATION_REQUEST: u16 = 1;

/// A gratuitous ARP announcing that `address` is at `sender_mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GratuitousArp {
    pub sender_mac: MacAddr,
    pub address: Ipv4Addr,
}

impl GratuitousArp {
    /// Writes the whole Ethernet frame, returning its length ([`FRAME_LEN`]).
    pub fn emit_frame(&self, buffer: &mut [u8]) -> Result<usize, super::EmitError> {
        let available = buffer.len();
        let Some(buffer) = buffer.get_mut(..FRAME_LEN) else {
            return Err(super::EmitError::BufferTooSmall {
                needed: FRAME_LEN,
                available,
            });
        };
        let mut frame = ethernet::Frame::new_unchecked(buffer);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr(self.sender_mac);
        frame.set_ethertype(ETHERTYPE_ARP);
        let arp = frame.payload_mut();
        let fields: [&[u8]; 8] = [
            &HARDWARE_ETHERNET.to_be_bytes(),
            &ETHERTYPE_IPV4.to_be_bytes(),
            &[6, 4],
            &OPERATION_REQUEST.to_be_bytes(),
            &self.sender_mac.0,
            &self.address.octets(),
            &MacAddr::BROADCAST.0,
            &self.address.octets(),
        ];
        let mut at = 0;
        for field in fields {
            if let Some(slot) = arp.get_mut(at..at + field.len()) {
                slot.copy_from_slice(field);
            }
            at += field.len();
        }
        Ok(FRAME_LEN)
    }

    pub fn to_frame(self) -> Vec<u8> {
        let mut frame = vec![0; FRAME_LEN];
        // The buffer is exactly FRAME_LEN, so emitting cannot fail.
        let _ = self.emit_frame(&mut frame);
        frame
    }

    /// Checks `frame` is a gratuitous ARP in keepalived's format (padding
    /// after the ARP payload is ignored) and says what it announces.
    #[cfg(test)]
    pub fn parse_frame(frame: &[u8]) -> Result<Self, AnnouncementError> {
        let arp = frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
        if frame.len() < FRAME_LEN {
            return Err(AnnouncementError::Truncated {
                what: "gratuitous ARP frame",
                needed: FRAME_LEN,
                available: frame.len(),
            });
        }
        let word = |at: usize| u16::from_be_bytes([arp[at], arp[at + 1]]);
        let mac = |at: usize| {
            let mut octets = [0u8; 6];
            octets.copy_from_slice(&arp[at..at + 6]);
            MacAddr(octets)
        };
        let ip = |at: usize| Ipv4Addr::new(arp[at], arp[at + 1], arp[at + 2], arp[at + 3]);
        let ethernet = ethernet::Frame::new_unchecked(frame);
        let sender_mac = mac(8);
        let address = ip(14);
        let checks: [(&'static str, u128, u128); 10] = [
            (
                "Ethernet destination",
                mac_value(ethernet.dst_addr()),
                mac_value(MacAddr::BROADCAST),
            ),
            (
                "EtherType",
                ethernet.ethertype().into(),
                ETHERTYPE_ARP.into(),
            ),
            (
                "ARP hardware type",
                word(0).into(),
                HARDWARE_ETHERNET.into(),
            ),
            ("ARP protocol type", word(2).into(), ETHERTYPE_IPV4.into()),
            ("ARP address lengths", word(4).into(), 0x0604),
            ("ARP operation", word(6).into(), OPERATION_REQUEST.into()),
            (
                "ARP sender hardware address",
                mac_value(sender_mac),
                mac_value(ethernet.src_addr()),
            ),
            (
                "ARP target hardware address",
                mac_value(mac(18)),
                mac_value(MacAddr::BROADCAST),
            ),
            (
                "ARP target protocol address",
                u32::from(ip(24)).into(),
                u32::from(address).into(),
            ),
            (
                "Ethernet source multicast bit",
                u128::from(ethernet.src_addr().is_multicast()),
                0,
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
        Ok(GratuitousArp {
            sender_mac,
            address,
        })
    }
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

    fn example() -> GratuitousArp {
        GratuitousArp {
            sender_mac: MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x33]),
            address: Ipv4Addr::new(192, 0, 2, 100),
        }
    }

    #[test]
    fn round_trips_and_ignores_padding() {
        let mut frame = example().to_frame();
        assert_eq!(frame.len(), FRAME_LEN);
        frame.resize(60, 0);
        assert_eq!(GratuitousArp::parse_frame(&frame), Ok(example()));
    }

    #[test]
    fn an_arp_reply_is_rejected_by_field() {
        let mut frame = example().to_frame();
        frame[ethernet::HEADER_LEN + 7] = 2;
        assert_eq!(
            GratuitousArp::parse_frame(&frame),
            Err(AnnouncementError::Field {
                field: "ARP operation",
                found: 2,
                expected: 1
            })
        );
    }

    #[test]
    fn short_frames_are_truncated() {
        let frame = example().to_frame();
        assert!(matches!(
            GratuitousArp::parse_frame(&frame[..FRAME_LEN - 1]),
            Err(AnnouncementError::Truncated {
                needed: FRAME_LEN,
                ..
            })
        ));
    }

    #[test]
    fn small_buffer_is_an_error() {
        assert!(example().emit_frame(&mut [0u8; FRAME_LEN - 1]).is_err());
    }
}
