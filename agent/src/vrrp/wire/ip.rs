//! IP headers around VRRP messages.
//!
//! Production uses only the IPv6 header view, to build unsolicited neighbour
//! advertisements ([`super::ndisc`]): adverts leave through raw sockets whose
//! IP header the kernel builds from socket options (TOS / traffic class
//! [`super::TRAFFIC_CLASS`], TTL / hop limit [`super::HOP_LIMIT`]), and
//! arrive through XDP, which validates them in the kernel.
//!
//! The whole-packet parse and build in the test-only `whole` submodule are
//! kept for the tests: the parse is the userspace mirror of the XDP
//! program's checks (IP header, protocol 112, no fragment, IPv4 header
//! checksum, TTL 255, then the advert), which the property tests and the
//! keepalived golden vectors pin down; the build reproduces keepalived
//! 2.2.7's IPv4 header byte for byte (it uses `IP_HDRINCL`: TOS 0xc0,
//! identification counting up from 1 per instance, no DF, TTL 255) so the
//! golden vectors can compare whole packets.

use std::net::Ipv6Addr;

#[cfg(test)]
use super::Error;

#[cfg(test)]
mod whole;

#[cfg(test)]
pub use whole::{IpAdvert, Ipv4Packet, parse, to_bytes};

pub const IPV6_HEADER_LEN: usize = 40;

/// Zero-copy view of an IPv6 packet (fixed header and payload; extension
/// headers are not walked: VRRP adverts carry none).
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Accessors panic on a buffer shorter than 40 bytes; see `new_checked`.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Checks version 6 and that the buffer holds the payload length
    /// (anything after it, such as Ethernet padding, is ignored).
    #[cfg(test)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    #[cfg(test)]
    pub fn check_len(&self) -> Result<(), Error> {
        let available = self.buffer.as_ref().len();
        if available < IPV6_HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv6 header",
                needed: IPV6_HEADER_LEN,
                available,
            });
        }
        if self.version() != 6 {
            return Err(Error::IpVersion {
                found: self.version(),
                expected: "6",
            });
        }
        let needed = IPV6_HEADER_LEN + usize::from(self.payload_len());
        if available < needed {
            return Err(Error::Truncated {
                what: "IPv6 packet",
                needed,
                available,
            });
        }
        Ok(())
    }

    fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref()[index]
    }

    #[cfg(test)]
    fn addr(&self, index: usize) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        for (i, slot) in octets.iter_mut().enumerate() {
            *slot = self.byte(index + i);
        }
        Ipv6Addr::from(octets)
    }

    #[cfg(test)]
    pub fn version(&self) -> u8 {
        self.byte(0) >> 4
    }

    #[cfg(test)]
    pub fn traffic_class(&self) -> u8 {
        (self.byte(0) << 4) | (self.byte(1) >> 4)
    }

    #[cfg(test)]
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.byte(1) & 0x0f, self.byte(2), self.byte(3)])
    }

    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.byte(4), self.byte(5)])
    }

    #[cfg(test)]
    pub fn next_header(&self) -> u8 {
        self.byte(6)
    }

    #[cfg(test)]
    pub fn hop_limit(&self) -> u8 {
        self.byte(7)
    }

    #[cfg(test)]
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr(8)
    }

    #[cfg(test)]
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr(24)
    }

    #[cfg(test)]
    pub fn payload(&self) -> &[u8] {
        let range = IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(range).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the 20-bit flow label.
    pub fn set_version_class_and_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[..4].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[6] = next_header;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[7] = hop_limit;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}
