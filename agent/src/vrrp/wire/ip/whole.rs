//! Whole IPv4 / IPv6 packets carrying an advert: the XDP mirror parse and
//! keepalived's IP header build. Test-only; see the parent module.

use std::net::Ipv4Addr;

use super::super::advert::{self, Parsed, Repr};
use super::super::checksum::Sum;
use super::super::{
    AddressFamily, ChecksumForm, EmitError, Endpoints, Error, HOP_LIMIT, IP_PROTOCOL, TRAFFIC_CLASS,
};
use super::{IPV6_HEADER_LEN, Ipv6Packet};

pub const IPV4_HEADER_LEN: usize = 20;

/// Zero-copy view of an IPv4 packet (header, options skipped, payload).
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Accessors panic on a buffer shorter than 20 bytes; see `new_checked`.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Checks version 4, a sane header length, and that the buffer holds the
    /// total length (anything after it, such as Ethernet padding, is ignored).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let available = self.buffer.as_ref().len();
        if available < IPV4_HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv4 header",
                needed: IPV4_HEADER_LEN,
                available,
            });
        }
        if self.version() != 4 {
            return Err(Error::IpVersion {
                found: self.version(),
                expected: "4",
            });
        }
        let total_len = usize::from(self.total_len());
        if available < total_len {
            return Err(Error::Truncated {
                what: "IPv4 packet",
                needed: total_len,
                available,
            });
        }
        let header_len = self.header_len();
        if header_len < IPV4_HEADER_LEN || header_len > total_len {
            return Err(Error::Ipv4HeaderLength {
                header_len,
                total_len,
            });
        }
        Ok(())
    }

    fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref()[index]
    }

    fn word(&self, index: usize) -> u16 {
        u16::from_be_bytes([self.byte(index), self.byte(index + 1)])
    }

    fn addr(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            self.byte(index),
            self.byte(index + 1),
            self.byte(index + 2),
            self.byte(index + 3),
        )
    }

    pub fn version(&self) -> u8 {
        self.byte(0) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(0) & 0x0f) * 4
    }

    /// The whole TOS byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        self.byte(1)
    }

    pub fn total_len(&self) -> u16 {
        self.word(2)
    }

    pub fn identification(&self) -> u16 {
        self.word(4)
    }

    pub fn dont_fragment(&self) -> bool {
        self.byte(6) & 0x40 != 0
    }

    pub fn more_fragments(&self) -> bool {
        self.byte(6) & 0x20 != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn fragment_offset(&self) -> u16 {
        self.word(6) & 0x1fff
    }

    pub fn ttl(&self) -> u8 {
        self.byte(8)
    }

    pub fn protocol(&self) -> u8 {
        self.byte(9)
    }

    pub fn header_checksum(&self) -> u16 {
        self.word(10)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr(12)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr(16)
    }

    /// Checksum the header should carry (its own checksum field as zero).
    pub fn expected_header_checksum(&self) -> u16 {
        let header = self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[]);
        let before = header.get(..10).unwrap_or(header);
        let after = header.get(12..).unwrap_or(&[]);
        Sum::new().add_bytes(before).add_bytes(after).checksum()
    }

    /// Bytes between the header and the total length.
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buffer.as_ref().get(range).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_byte(&mut self, index: usize, value: u8) {
        self.buffer.as_mut()[index] = value;
    }

    fn set_word(&mut self, index: usize, value: u16) {
        let [hi, lo] = value.to_be_bytes();
        self.set_byte(index, hi);
        self.set_byte(index + 1, lo);
    }

    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = u8::try_from(header_len / 4).unwrap_or(0x0f) & 0x0f;
        self.set_byte(0, 0x40 | ihl);
    }

    pub fn set_tos(&mut self, tos: u8) {
        self.set_byte(1, tos);
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.set_word(2, len);
    }

    pub fn set_identification(&mut self, ident: u16) {
        self.set_word(4, ident);
    }

    /// Clears DF, MF and the fragment offset.
    pub fn clear_flags_and_fragment_offset(&mut self) {
        self.set_word(6, 0);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.set_byte(8, ttl);
    }

    pub fn set_protocol(&mut self, protocol: u8) {
        self.set_byte(9, protocol);
    }

    pub fn set_header_checksum(&mut self, sum: u16) {
        self.set_word(10, sum);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        for (i, byte) in addr.octets().into_iter().enumerate() {
            self.set_byte(12 + i, byte);
        }
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        for (i, byte) in addr.octets().into_iter().enumerate() {
            self.set_byte(16 + i, byte);
        }
    }

    pub fn fill_header_checksum(&mut self) {
        let sum = self.expected_header_checksum();
        self.set_header_checksum(sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// A valid advert with what the IP layer said about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpAdvert {
    pub endpoints: Endpoints,
    /// Always 255: anything else is rejected.
    pub hop_limit: u8,
    pub advert: Parsed,
}

/// Validates an IP packet carrying a VRRP advert, in the order the XDP
/// program does: IP header, protocol 112, not a fragment, IPv4 header
/// checksum, TTL / hop limit 255, then the advert itself ([`Repr::parse`]).
/// Bytes after the IP packet's own length (Ethernet padding) are ignored.
pub fn parse(bytes: &[u8]) -> Result<IpAdvert, Error> {
    match bytes.first().map(|byte| byte >> 4) {
        Some(4) => parse_ipv4(bytes),
        Some(6) => parse_ipv6(bytes),
        Some(found) => Err(Error::IpVersion {
            found,
            expected: "4 or 6",
        }),
        None => Err(Error::Truncated {
            what: "IP header",
            needed: IPV4_HEADER_LEN,
            available: 0,
        }),
    }
}

fn parse_ipv4(bytes: &[u8]) -> Result<IpAdvert, Error> {
    let ip = Ipv4Packet::new_checked(bytes)?;
    if ip.protocol() != IP_PROTOCOL {
        return Err(Error::NotVrrp {
            protocol: ip.protocol(),
        });
    }
    if ip.more_fragments() || ip.fragment_offset() != 0 {
        return Err(Error::Fragmented {
            offset: ip.fragment_offset(),
            more: ip.more_fragments(),
        });
    }
    let expected = ip.expected_header_checksum();
    if ip.header_checksum() != expected {
        return Err(Error::Ipv4HeaderChecksum {
            found: ip.header_checksum(),
            expected,
        });
    }
    if ip.ttl() != HOP_LIMIT {
        return Err(Error::HopLimit { found: ip.ttl() });
    }
    let endpoints = Endpoints::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let packet = advert::Packet::new_checked(ip.payload(), AddressFamily::Ipv4)?;
    Ok(IpAdvert {
        endpoints,
        hop_limit: ip.ttl(),
        advert: Repr::parse(&packet, &endpoints)?,
    })
}

fn parse_ipv6(bytes: &[u8]) -> Result<IpAdvert, Error> {
    let ip = Ipv6Packet::new_checked(bytes)?;
    if ip.next_header() != IP_PROTOCOL {
        return Err(Error::NotVrrp {
            protocol: ip.next_header(),
        });
    }
    if ip.hop_limit() != HOP_LIMIT {
        return Err(Error::HopLimit {
            found: ip.hop_limit(),
        });
    }
    let endpoints = Endpoints::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let packet = advert::Packet::new_checked(ip.payload(), AddressFamily::Ipv6)?;
    Ok(IpAdvert {
        endpoints,
        hop_limit: ip.hop_limit(),
        advert: Repr::parse(&packet, &endpoints)?,
    })
}

/// The IPv4 identification for the advert after one sent with `previous`
/// (start from 0 to get keepalived's first value, 1). Zero is skipped: with
/// `IP_HDRINCL` the kernel replaces a zero identification with its own.
pub const fn next_ipv4_identification(previous: u16) -> u16 {
    match previous.checked_add(1) {
        Some(next) => next,
        None => 1,
    }
}

/// Bytes [`emit`] writes for `repr` over its family.
pub fn buffer_len(repr: &Repr) -> usize {
    let header = match repr.family() {
        AddressFamily::Ipv4 => IPV4_HEADER_LEN,
        AddressFamily::Ipv6 => IPV6_HEADER_LEN,
    };
    header + repr.buffer_len()
}

/// Writes a whole IP packet carrying `repr` as keepalived 2.2.7 does (see
/// the module docs), returning its length. `ipv4_identification` is the
/// IPv4 identification (keepalived counts up from 1); IPv6 ignores it and
/// gets flow label 0 (the kernel picks one when it builds the header).
pub fn emit(
    repr: &Repr,
    endpoints: &Endpoints,
    ipv4_identification: u16,
    form: ChecksumForm,
    buffer: &mut [u8],
) -> Result<usize, EmitError> {
    repr.check_emittable(endpoints)?;
    let needed = buffer_len(repr);
    let available = buffer.len();
    let Some(buffer) = buffer.get_mut(..needed) else {
        return Err(EmitError::BufferTooSmall { needed, available });
    };
    let payload_len = repr.buffer_len();
    // check_emittable bounds the address count, so this always fits.
    let wire_len = |len: usize| {
        u16::try_from(len).map_err(|_| EmitError::TooManyAddresses {
            count: repr.addresses.len(),
        })
    };
    match *endpoints {
        Endpoints::V4 { src, dst } => {
            let mut ip = Ipv4Packet::new_unchecked(buffer);
            ip.set_version_and_header_len(IPV4_HEADER_LEN);
            ip.set_tos(TRAFFIC_CLASS);
            ip.set_total_len(wire_len(needed)?);
            ip.set_identification(ipv4_identification);
            ip.clear_flags_and_fragment_offset();
            ip.set_ttl(HOP_LIMIT);
            ip.set_protocol(IP_PROTOCOL);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.set_header_checksum(0);
            ip.fill_header_checksum();
            let mut packet = advert::Packet::new_unchecked(ip.payload_mut(), AddressFamily::Ipv4);
            repr.emit(&mut packet, endpoints, form)?;
        }
        Endpoints::V6 { src, dst } => {
            let mut ip = Ipv6Packet::new_unchecked(buffer);
            ip.set_version_class_and_flow(TRAFFIC_CLASS, 0);
            ip.set_payload_len(wire_len(payload_len)?);
            ip.set_next_header(IP_PROTOCOL);
            ip.set_hop_limit(HOP_LIMIT);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            let mut packet = advert::Packet::new_unchecked(ip.payload_mut(), AddressFamily::Ipv6);
            repr.emit(&mut packet, endpoints, form)?;
        }
    }
    Ok(needed)
}

/// [`emit`] into a new buffer of exactly [`buffer_len`] bytes.
pub fn to_bytes(
    repr: &Repr,
    endpoints: &Endpoints,
    ipv4_identification: u16,
    form: ChecksumForm,
) -> Result<Vec<u8>, EmitError> {
    let mut buffer = vec![0; buffer_len(repr)];
    emit(repr, endpoints, ipv4_identification, form, &mut buffer)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_counts_up_and_skips_zero() {
        assert_eq!(next_ipv4_identification(0), 1);
        assert_eq!(next_ipv4_identification(41), 42);
        assert_eq!(next_ipv4_identification(u16::MAX), 1);
    }

    #[test]
    fn ip_layer_faults_are_named() {
        assert_eq!(
            parse(&[]),
            Err(Error::Truncated {
                what: "IP header",
                needed: IPV4_HEADER_LEN,
                available: 0
            })
        );
        assert_eq!(
            parse(&[0x55; 40]),
            Err(Error::IpVersion {
                found: 5,
                expected: "4 or 6"
            })
        );
        let mut udp = [0u8; 28];
        udp[0] = 0x45;
        udp[3] = 28;
        udp[9] = 17;
        assert_eq!(parse(&udp), Err(Error::NotVrrp { protocol: 17 }));
        let mut fragment = udp;
        fragment[9] = IP_PROTOCOL;
        fragment[6] = 0x20;
        assert_eq!(
            parse(&fragment),
            Err(Error::Fragmented {
                offset: 0,
                more: true
            })
        );
        let mut short_ihl = udp;
        short_ihl[0] = 0x44;
        assert_eq!(
            parse(&short_ihl),
            Err(Error::Ipv4HeaderLength {
                header_len: 16,
                total_len: 28
            })
        );
        let mut truncated = udp;
        truncated[3] = 60;
        assert_eq!(
            parse(&truncated),
            Err(Error::Truncated {
                what: "IPv4 packet",
                needed: 60,
                available: 28
            })
        );
    }
}
