//! A deliberately small VRRP advertisement builder and sender for tests:
//! enough to play a peer router (any version, VRID, priority, interval, TTL).
//! The agent's own codec will replace the builder; keep it in this one file.
//!
//! Layout (RFC 5798 §5.1, RFC 3768 §5.1):
//! ```text
//! v3: |ver=3|type=1| VRID | prio | count | rsvd(4) max_adver_int(12) | checksum | addrs...
//! v2: |ver=2|type=1| VRID | prio | count | auth type | adver int (s) | checksum | addrs | auth data (8)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::host::Host;
use crate::sock;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: libc::c_int = 112;
/// VRRP IPv4 multicast group.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// VRRP IPv6 multicast group.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// VRRP protocol version of an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpVersion {
    /// RFC 3768 (IPv4 only, interval in whole seconds, auth data trailer).
    V2,
    /// RFC 5798 (interval in centiseconds, pseudo-header checksum).
    V3,
}

/// One VRRP advertisement to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: VrrpVersion,
    /// Virtual router id (1..=255).
    pub vrid: u8,
    /// Priority (0 = master is leaving, 255 = address owner).
    pub priority: u8,
    /// Advertisement interval; v3 sends centiseconds (max 40.95 s), v2 whole seconds.
    pub interval: Duration,
    /// Virtual addresses, all of one family (IPv6 only with v3).
    pub addresses: Vec<IpAddr>,
}

impl Advert {
    /// A VRRPv3 advert.
    pub fn v3(vrid: u8, priority: u8, interval: Duration, addresses: Vec<IpAddr>) -> Self {
        Self {
            version: VrrpVersion::V3,
            vrid,
            priority,
            interval,
            addresses,
        }
    }

    /// A VRRPv2 advert (no authentication).
    pub fn v2(vrid: u8, priority: u8, interval: Duration, addresses: Vec<IpAddr>) -> Self {
        Self {
            version: VrrpVersion::V2,
            vrid,
            priority,
            interval,
            addresses,
        }
    }

    fn is_ipv6(&self) -> Result<bool> {
        let first = self
            .addresses
            .first()
            .context("a VRRP advert needs at least one virtual address")?;
        let ipv6 = first.is_ipv6();
        if self.addresses.iter().any(|a| a.is_ipv6() != ipv6) {
            bail!(
                "advert addresses {:?} mix IPv4 and IPv6; one advert carries one family",
                self.addresses
            );
        }
        if ipv6 && self.version == VrrpVersion::V2 {
            bail!("VRRPv2 is IPv4-only (RFC 3768); use VrrpVersion::V3 for IPv6 addresses");
        }
        Ok(ipv6)
    }

    /// Encodes the VRRP message (no IP header) with the checksum for an IP
    /// packet from `source` to `destination` (v3 covers the pseudo-header).
    pub fn encode(&self, source: IpAddr, destination: IpAddr) -> Result<Vec<u8>> {
        let ipv6 = self.is_ipv6()?;
        if source.is_ipv6() != ipv6 || destination.is_ipv6() != ipv6 {
            bail!(
                "advert of {} addresses cannot travel {source} -> {destination}",
                if ipv6 { "IPv6" } else { "IPv4" }
            );
        }
        let count = u8::try_from(self.addresses.len()).with_context(|| {
            format!(
                "{} addresses do not fit the 8-bit count field",
                self.addresses.len()
            )
        })?;
        let mut message = vec![0u8; 8];
        message[1] = self.vrid;
        message[2] = self.priority;
        message[3] = count;
        match self.version {
            VrrpVersion::V3 => {
                let centis = self.interval.as_millis() / 10;
                let centis = u16::try_from(centis)
                    .ok()
                    .filter(|c| *c <= 0x0fff)
                    .with_context(|| format!("v3 interval {:?} exceeds 40.95 s", self.interval))?;
                message[0] = 0x31;
                message[4..6].copy_from_slice(&centis.to_be_bytes());
            }
            VrrpVersion::V2 => {
                let secs = u8::try_from(self.interval.as_secs())
                    .with_context(|| format!("v2 interval {:?} exceeds 255 s", self.interval))?;
                message[0] = 0x21;
                message[4] = 0; // no authentication
                message[5] = secs;
            }
        }
        for address in &self.addresses {
            match address {
                IpAddr::V4(v4) => message.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => message.extend_from_slice(&v6.octets()),
            }
        }
        if self.version == VrrpVersion::V2 {
            message.extend_from_slice(&[0u8; 8]);
        }
        let checksum = match self.version {
            VrrpVersion::V2 => sock::internet_checksum(&[&message]),
            VrrpVersion::V3 => sock::internet_checksum(&[
                &pseudo_header(source, destination, message.len())?,
                &message,
            ]),
        };
        message[6..8].copy_from_slice(&checksum.to_be_bytes());
        Ok(message)
    }
}

fn pseudo_header(source: IpAddr, destination: IpAddr, length: usize) -> Result<Vec<u8>> {
    let mut header = Vec::with_capacity(40);
    match (source, destination) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            header.extend_from_slice(&src.octets());
            header.extend_from_slice(&dst.octets());
            header.extend_from_slice(&[0, IPPROTO_VRRP as u8]);
            header.extend_from_slice(
                &u16::try_from(length)
                    .context("advert too long")?
                    .to_be_bytes(),
            );
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            header.extend_from_slice(&src.octets());
            header.extend_from_slice(&dst.octets());
            header.extend_from_slice(
                &u32::try_from(length)
                    .context("advert too long")?
                    .to_be_bytes(),
            );
            header.extend_from_slice(&[0, 0, 0, IPPROTO_VRRP as u8]);
        }
        _ => bail!("source {source} and destination {destination} are of different families"),
    }
    Ok(header)
}

/// How many adverts to send, how often, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertBurst {
    /// Number of adverts (1..=100 000).
    pub count: u32,
    /// Pause between adverts.
    pub interval: Duration,
    /// IPv4 TTL / IPv6 hop limit; RFC-valid adverts use 255.
    pub ttl: u8,
    /// Where to send; `None` means the VRRP multicast group of the family.
    pub destination: Option<IpAddr>,
}

impl AdvertBurst {
    /// `count` adverts, `interval` apart, TTL 255, to the multicast group.
    pub fn new(count: u32, interval: Duration) -> Self {
        Self {
            count,
            interval,
            ttl: 255,
            destination: None,
        }
    }
}

impl Host {
    /// Sends `burst.count` copies of `advert` out of `iface` from this host's
    /// address on it (IPv4: first address; IPv6: link-local, as RFC 5798 requires).
    /// Returns once all are sent.
    pub fn send_adverts(&self, iface: &str, advert: &Advert, burst: AdvertBurst) -> Result<()> {
        if burst.count == 0 || burst.count > 100_000 {
            bail!("advert burst count {} must be 1..=100000", burst.count);
        }
        if burst.interval.saturating_mul(burst.count) > Duration::from_secs(600) {
            bail!(
                "advert burst of {} x {:?} would run over 10 minutes",
                burst.count,
                burst.interval
            );
        }
        let ipv6 = advert.is_ipv6()?;
        let source: IpAddr = if ipv6 {
            self.ipv6_link_local(iface)?.into()
        } else {
            self.ipv4_address(iface)?.into()
        };
        let destination = burst.destination.unwrap_or(if ipv6 {
            VRRP_GROUP_V6.into()
        } else {
            VRRP_GROUP_V4.into()
        });
        let message = advert.encode(source, destination)?;
        let ifindex = self.ifindex(iface)?;
        let iface = iface.to_owned();
        self.run(move || -> Result<()> {
            let socket = open_sender(&iface, ifindex, source, burst.ttl)?;
            let to = sock::SockAddr::new(destination, ifindex);
            for sent in 0..burst.count {
                if sent > 0 {
                    thread::sleep(burst.interval);
                }
                sock::send_to(&socket, &message, &to).with_context(|| {
                    format!(
                        "sending advert {} of {} to {destination}",
                        sent + 1,
                        burst.count
                    )
                })?;
            }
            Ok(())
        })?
        .with_context(|| format!("sending VRRP adverts from host {}", self.name()))
    }
}

impl Host {
    /// Sends each of `adverts` once, back to back from one socket, out of
    /// `iface` to the multicast group (source: as [`Host::send_adverts`]):
    /// many virtual routers changing at the same moment.
    pub fn send_advert_set(&self, iface: &str, adverts: &[Advert]) -> Result<()> {
        let Some(first) = adverts.first() else {
            bail!("an empty advert set sends nothing");
        };
        let ipv6 = first.is_ipv6()?;
        let source: IpAddr = if ipv6 {
            self.ipv6_link_local(iface)?.into()
        } else {
            self.ipv4_address(iface)?.into()
        };
        let destination: IpAddr = if ipv6 {
            VRRP_GROUP_V6.into()
        } else {
            VRRP_GROUP_V4.into()
        };
        let messages = adverts
            .iter()
            .map(|advert| advert.encode(source, destination))
            .collect::<Result<Vec<_>>>()?;
        let ifindex = self.ifindex(iface)?;
        let iface = iface.to_owned();
        self.run(move || -> Result<()> {
            let socket = open_sender(&iface, ifindex, source, 255)?;
            let to = sock::SockAddr::new(destination, ifindex);
            for message in &messages {
                sock::send_to(&socket, message, &to).context("sending an advert of the set")?;
            }
            Ok(())
        })?
        .with_context(|| format!("sending VRRP adverts from host {}", self.name()))
    }

    /// Waits until an IPv4 VRRP advert from `from` arrives on `iface`
    /// (a raw socket that joined 224.0.0.18 there); fails after `timeout`.
    /// Lets a test act right after a router advertised.
    pub fn wait_for_advert_v4(&self, iface: &str, from: Ipv4Addr, timeout: Duration) -> Result<()> {
        let ifindex = self.ifindex(iface)?;
        let iface = iface.to_owned();
        self.run(move || -> Result<()> {
            let socket = sock::raw_socket(false, IPPROTO_VRRP)?;
            sock::bind_to_device(&socket, &iface)?;
            let membership = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(VRRP_GROUP_V4.octets()),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: libc::c_int::try_from(ifindex).context("ifindex too large")?,
            };
            sock::set_raw(
                &socket,
                libc::IPPROTO_IP,
                libc::IP_ADD_MEMBERSHIP,
                &membership,
                "IP_ADD_MEMBERSHIP",
            )?;
            let deadline = std::time::Instant::now() + timeout;
            let mut buf = [0u8; 1500];
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    bail!("no VRRP advert from {from} on {iface} within {timeout:?}");
                }
                sock::set_recv_timeout(&socket, left)?;
                if let Some((_, source)) = sock::recv_from(&socket, &mut buf)?
                    && source == IpAddr::V4(from)
                {
                    return Ok(());
                }
            }
        })?
        .with_context(|| format!("waiting for an advert in host {}", self.name()))
    }
}

/// A raw VRRP socket bound to `iface` and `source`, sending with `ttl`.
pub(crate) fn open_sender(
    iface: &str,
    ifindex: u32,
    source: IpAddr,
    ttl: u8,
) -> Result<std::os::fd::OwnedFd> {
    let ipv6 = source.is_ipv6();
    let socket = sock::raw_socket(ipv6, IPPROTO_VRRP)?;
    sock::bind_to_device(&socket, iface)?;
    let ttl = libc::c_int::from(ttl);
    if ipv6 {
        sock::set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            ttl,
            "IPV6_MULTICAST_HOPS",
        )?;
        sock::set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            ttl,
            "IPV6_UNICAST_HOPS",
        )?;
        let index = libc::c_int::try_from(ifindex).context("ifindex too large")?;
        sock::set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF,
            index,
            "IPV6_MULTICAST_IF",
        )?;
        sock::set_int(
            &socket,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_LOOP,
            0,
            "IPV6_MULTICAST_LOOP",
        )?;
    } else {
        sock::set_int(
            &socket,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL,
            ttl,
            "IP_MULTICAST_TTL",
        )?;
        sock::set_int(&socket, libc::IPPROTO_IP, libc::IP_TTL, ttl, "IP_TTL")?;
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: libc::c_int::try_from(ifindex).context("ifindex too large")?,
        };
        sock::set_raw(
            &socket,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &mreq,
            "IP_MULTICAST_IF",
        )?;
        sock::set_int(
            &socket,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            0,
            "IP_MULTICAST_LOOP",
        )?;
    }
    // Binding pins the source address the checksum was computed over.
    sock::bind(&socket, &sock::SockAddr::new(source, ifindex))
        .with_context(|| format!("cannot use {source} on {iface} as advert source"))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn v3_ipv4_layout_and_pseudo_header_checksum() {
        let advert = Advert::v3(
            51,
            150,
            Duration::from_millis(100),
            vec![v4("198.51.100.10")],
        );
        let src = v4("192.0.2.1");
        let dst = IpAddr::V4(VRRP_GROUP_V4);
        let msg = advert.encode(src, dst).unwrap();
        assert_eq!(msg.len(), 12);
        assert_eq!(&msg[..6], &[0x31, 51, 150, 1, 0x00, 10]);
        assert_eq!(&msg[8..], &[198, 51, 100, 10]);
        let pseudo = pseudo_header(src, dst, msg.len()).unwrap();
        assert_eq!(sock::internet_checksum(&[&pseudo, &msg]), 0);
        // Without the pseudo-header the sum must not verify (it is really included).
        assert_ne!(sock::internet_checksum(&[&msg]), 0);
    }

    #[test]
    fn v3_ipv6_checksum_covers_ipv6_pseudo_header() {
        let vip: IpAddr = "2001:db8::10".parse().unwrap();
        let advert = Advert::v3(7, 100, Duration::from_secs(1), vec![vip]);
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(VRRP_GROUP_V6);
        let msg = advert.encode(src, dst).unwrap();
        assert_eq!(msg.len(), 8 + 16);
        assert_eq!(&msg[4..6], &100u16.to_be_bytes());
        let pseudo = pseudo_header(src, dst, msg.len()).unwrap();
        assert_eq!(pseudo.len(), 40);
        assert_eq!(sock::internet_checksum(&[&pseudo, &msg]), 0);
    }

    #[test]
    fn v2_has_seconds_auth_trailer_and_plain_checksum() {
        let advert = Advert::v2(1, 100, Duration::from_secs(1), vec![v4("203.0.113.5")]);
        let msg = advert
            .encode(v4("192.0.2.1"), IpAddr::V4(VRRP_GROUP_V4))
            .unwrap();
        assert_eq!(msg.len(), 8 + 4 + 8);
        assert_eq!(&msg[..6], &[0x21, 1, 100, 1, 0, 1]);
        assert_eq!(sock::internet_checksum(&[&msg]), 0);
    }

    #[test]
    fn invalid_adverts_are_refused_with_reason() {
        let six: IpAddr = "2001:db8::1".parse().unwrap();
        let src = v4("192.0.2.1");
        let dst = IpAddr::V4(VRRP_GROUP_V4);
        let err = Advert::v2(1, 1, Duration::from_secs(1), vec![six])
            .encode(src, dst)
            .unwrap_err();
        assert!(format!("{err}").contains("IPv4-only"));
        let err = Advert::v3(1, 1, Duration::from_secs(1), vec![])
            .encode(src, dst)
            .unwrap_err();
        assert!(format!("{err}").contains("at least one"));
        let err = Advert::v3(1, 1, Duration::from_secs(41), vec![v4("192.0.2.9")])
            .encode(src, dst)
            .unwrap_err();
        assert!(format!("{err}").contains("40.95"));
        let err = Advert::v3(1, 1, Duration::from_secs(1), vec![v4("192.0.2.9"), six])
            .encode(src, dst)
            .unwrap_err();
        assert!(format!("{err}").contains("mix"));
    }
}
