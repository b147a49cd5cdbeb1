//! The Internet checksum (RFC 1071) and the IP pseudo-headers it is
//! extended with for VRRPv3 and ICMPv6.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Running one's-complement sum. A `u64` accumulator cannot overflow for
/// any buffer that fits in an IP packet, so folding is done once, at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    pub const fn new() -> Self {
        Sum(0)
    }

    /// Adds `data` as big-endian 16-bit words; an odd trailing byte is
    /// padded with zero, as RFC 1071 specifies. Only valid as the last
    /// chunk when `data` has odd length.
    pub fn add_bytes(mut self, data: &[u8]) -> Self {
        let mut words = data.chunks_exact(2);
        for word in &mut words {
            if let [hi, lo] = word {
                self.0 += u64::from(u16::from_be_bytes([*hi, *lo]));
            }
        }
        if let [last] = words.remainder() {
            self.0 += u64::from(u16::from_be_bytes([*last, 0]));
        }
        self
    }

    pub fn add_u16(mut self, word: u16) -> Self {
        self.0 += u64::from(word);
        self
    }

    pub fn add_u32(self, value: u32) -> Self {
        self.add_u16((value >> 16) as u16).add_u16(value as u16)
    }

    /// The one's-complement of the folded sum: the value to store in a
    /// checksum field (computed with that field zeroed), or zero when
    /// verifying data that includes a correct checksum.
    pub fn checksum(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// IPv4 pseudo-header (RFC 768 layout): source, destination, zero,
    /// protocol, upper-layer length.
    pub fn ipv4_pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> Self {
        Sum::new()
            .add_bytes(&src.octets())
            .add_bytes(&dst.octets())
            .add_u16(u16::from(protocol))
            .add_u16(len)
    }

    /// IPv6 pseudo-header (RFC 8200 §8.1): source, destination, 32-bit
    /// upper-layer length, three zero bytes, next header.
    pub fn ipv6_pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> Self {
        Sum::new()
            .add_bytes(&src.octets())
            .add_bytes(&dst.octets())
            .add_u32(len)
            .add_u16(u16::from(next_header))
    }
}

/// The checksum of `data` alone.
#[cfg(test)]
pub fn checksum(data: &[u8]) -> u16 {
    Sum::new().add_bytes(data).checksum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn data_with_its_checksum_verifies_to_zero() {
        let mut data = [0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0x00, 0x00, 0x40, 0x11];
        let sum = checksum(&data);
        data[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }

    #[test]
    fn carries_fold_more_than_once() {
        // 0xffff * 0x10001 words produce carries that need repeated folding.
        let data = vec![0xff; 2 * 0x10001];
        assert_eq!(checksum(&data), 0);
    }
}
