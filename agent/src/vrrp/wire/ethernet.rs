//! Ethernet framing for VRRP: the virtual router MAC, multicast MACs, and a
//! header view (the XDP program and the lab see whole frames).

use std::fmt;
#[cfg(test)]
use std::net::Ipv4Addr;
use std::net::Ipv6Addr;

#[cfg(test)]
use super::ip::{self, IpAdvert};
#[cfg(test)]
use super::{AddressFamily, Endpoints, Error};

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// An Ethernet (EUI-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    #[cfg(test)]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The virtual router MAC of RFC 5798 §7.3: 00:00:5e:00:01:VRID for IPv4,
/// 00:00:5e:00:02:VRID for IPv6.
#[cfg(test)]
pub const fn virtual_router_mac(vrid: u8, family: AddressFamily) -> MacAddr {
    let kind = match family {
        AddressFamily::Ipv4 => 0x01,
        AddressFamily::Ipv6 => 0x02,
    };
    MacAddr([0x00, 0x00, 0x5e, 0x00, kind, vrid])
}

/// RFC 1112 §6.4: 01:00:5e followed by the group's low 23 bits.
#[cfg(test)]
pub const fn ipv4_multicast_mac(group: Ipv4Addr) -> MacAddr {
    let [_, b, c, d] = group.octets();
    MacAddr([0x01, 0x00, 0x5e, b & 0x7f, c, d])
}

/// RFC 2464 §7: 33:33 followed by the group's low 32 bits.
pub const fn ipv6_multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Destination MAC for an advert to `endpoints`' destination if it is a
/// multicast group; `None` for unicast, which needs neighbour resolution.
#[cfg(test)]
pub fn multicast_destination(endpoints: &Endpoints) -> Option<MacAddr> {
    match endpoints {
        Endpoints::V4 { dst, .. } if dst.is_multicast() => Some(ipv4_multicast_mac(*dst)),
        Endpoints::V6 { dst, .. } if dst.is_multicast() => Some(ipv6_multicast_mac(*dst)),
        _ => None,
    }
}

/// Zero-copy view of an Ethernet II frame (no VLAN tags).
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Accessors panic on a buffer shorter than 14 bytes; see `new_checked`.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    #[cfg(test)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    #[cfg(test)]
    pub fn check_len(&self) -> Result<(), Error> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(Error::Truncated {
                what: "Ethernet header",
                needed: HEADER_LEN,
                available,
            });
        }
        Ok(())
    }

    #[cfg(test)]
    fn mac_at(&self, start: usize) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[start..start + 6]);
        MacAddr(octets)
    }

    #[cfg(test)]
    pub fn dst_addr(&self) -> MacAddr {
        self.mac_at(0)
    }

    #[cfg(test)]
    pub fn src_addr(&self) -> MacAddr {
        self.mac_at(6)
    }

    #[cfg(test)]
    pub fn ethertype(&self) -> u16 {
        let buffer = self.buffer.as_ref();
        u16::from_be_bytes([buffer[12], buffer[13]])
    }

    #[cfg(test)]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&addr.0);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[12..14].copy_from_slice(&ethertype.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// Validates an Ethernet frame carrying a VRRP advert, as the XDP program
/// sees it: EtherType IPv4 or IPv6, then [`ip::parse`]. Trailing padding
/// (frames shorter than 60 bytes are padded) is ignored. Test-only, like
/// the whole-packet parse it wraps (the kernel validates real frames).
#[cfg(test)]
pub fn parse_advert(frame: &[u8]) -> Result<IpAdvert, Error> {
    let frame = Frame::new_checked(frame)?;
    match frame.ethertype() {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip::parse(frame.payload()),
        ethertype => Err(Error::NotIp { ethertype }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_router_macs_follow_rfc5798() {
        assert_eq!(
            virtual_router_mac(51, AddressFamily::Ipv4).to_string(),
            "00:00:5e:00:01:33"
        );
        assert_eq!(
            virtual_router_mac(255, AddressFamily::Ipv6).to_string(),
            "00:00:5e:00:02:ff"
        );
    }

    #[test]
    fn multicast_macs() {
        assert_eq!(
            ipv4_multicast_mac(super::super::IPV4_MULTICAST).to_string(),
            "01:00:5e:00:00:12"
        );
        // Only the low 23 bits of the group survive.
        assert_eq!(
            ipv4_multicast_mac(Ipv4Addr::new(239, 129, 2, 3)).to_string(),
            "01:00:5e:01:02:03"
        );
        assert_eq!(
            ipv6_multicast_mac(super::super::IPV6_MULTICAST).to_string(),
            "33:33:00:00:00:12"
        );
        let unicast = Endpoints::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
        };
        assert_eq!(multicast_destination(&unicast), None);
        assert!(
            multicast_destination(&Endpoints::ipv6_multicast(Ipv6Addr::LOCALHOST))
                .is_some_and(|mac| mac.is_multicast())
        );
    }

    #[test]
    fn non_ip_frames_are_not_vrrp() {
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        let err = parse_advert(&frame).unwrap_err();
        assert_eq!(
            err,
            Error::NotIp {
                ethertype: ETHERTYPE_ARP
            }
        );
        assert_eq!(err.reason(), super::super::RejectReason::NotVrrp);
    }
}
