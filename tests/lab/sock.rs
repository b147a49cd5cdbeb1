//! Thin, checked wrappers over the libc raw-socket calls the lab needs
//! (std has no raw sockets). Call them on a thread inside the host's namespace.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};

/// Opens a raw socket of `family` (`AF_INET`/`AF_INET6`) for IP protocol `protocol`.
pub fn raw_socket(ipv6: bool, protocol: libc::c_int) -> Result<OwnedFd> {
    let family = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall; the result is checked before being wrapped.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| {
            format!("cannot open raw socket for IP protocol {protocol} (needs root)")
        });
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with a C int value.
pub fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) -> Result<()> {
    set_raw(fd, level, name, &value, what)
}

/// `setsockopt` with any plain-old-data value.
pub fn set_raw<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> Result<()> {
    // SAFETY: value points to size_of::<T>() readable bytes for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("setsockopt {what} failed"));
    }
    Ok(())
}

/// Binds the socket to interface `iface` (SO_BINDTODEVICE).
pub fn bind_to_device(fd: &OwnedFd, iface: &str) -> Result<()> {
    // SAFETY: the pointer/length pair describes iface's bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            iface.as_ptr().cast(),
            iface.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot bind socket to interface {iface}"));
    }
    Ok(())
}

/// Sets how long `recv` may block.
pub fn set_recv_timeout(fd: &OwnedFd, timeout: Duration) -> Result<()> {
    // A zero timeval would mean "block forever"; keep at least 1 µs.
    let micros = timeout.as_micros().max(1);
    let tv = libc::timeval {
        tv_sec: (micros / 1_000_000) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    };
    set_raw(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO")
}

/// A socket address in the C layout, for bind/sendto.
pub enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    /// `addr` with port 0 (raw sockets ignore ports) and IPv6 scope `scope_id`.
    pub fn new(addr: IpAddr, scope_id: u32) -> Self {
        match addr {
            IpAddr::V4(v4) => Self::V4(v4_sockaddr(v4)),
            IpAddr::V6(v6) => Self::V6(v6_sockaddr(v6, scope_id)),
        }
    }

    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            Self::V4(sa) => (
                (sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            Self::V6(sa) => (
                (sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

fn v4_sockaddr(addr: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from_ne_bytes(addr.octets());
    sa
}

fn v6_sockaddr(addr: Ipv6Addr, scope_id: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = addr.octets();
    sa.sin6_scope_id = scope_id;
    sa
}

/// Binds the socket to a local address.
pub fn bind(fd: &OwnedFd, addr: &SockAddr) -> Result<()> {
    let (ptr, len) = addr.as_ptr();
    // SAFETY: ptr/len describe a valid sockaddr owned by `addr`.
    if unsafe { libc::bind(fd.as_raw_fd(), ptr, len) } != 0 {
        return Err(io::Error::last_os_error()).context("bind failed");
    }
    Ok(())
}

/// A UDP socket bound to `addr` with `IP_FREEBIND`/`IPV6_FREEBIND`, so it
/// binds before the address is on any interface (a VIP the host may take
/// over later) and its replies are sourced from `addr`.
pub fn udp_freebind(addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
    let ipv6 = addr.is_ipv6();
    let family = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall; the result is checked before being wrapped.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("cannot open a UDP socket");
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if ipv6 {
        set_int(&fd, libc::SOL_IPV6, libc::IPV6_FREEBIND, 1, "IPV6_FREEBIND")?;
    } else {
        set_int(&fd, libc::SOL_IP, libc::IP_FREEBIND, 1, "IP_FREEBIND")?;
    }
    let mut sockaddr = SockAddr::new(addr.ip(), 0);
    match &mut sockaddr {
        SockAddr::V4(sa) => sa.sin_port = addr.port().to_be(),
        SockAddr::V6(sa) => sa.sin6_port = addr.port().to_be(),
    }
    bind(&fd, &sockaddr).with_context(|| format!("cannot bind UDP {addr} (IP_FREEBIND)"))?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Sends one datagram to `to`.
pub fn send_to(fd: &OwnedFd, payload: &[u8], to: &SockAddr) -> Result<()> {
    let (ptr, len) = to.as_ptr();
    // SAFETY: payload and the sockaddr are valid for the duration of the call.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            ptr,
            len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error()).context("sendto failed");
    }
    Ok(())
}

/// Receives one datagram and its source; `Ok(None)` when the receive timeout expires.
pub fn recv_from(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, IpAddr)>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut from_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: buf and from are valid, writable and sized as passed.
    let got = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_storage).cast(),
            &mut from_len,
        )
    };
    if got < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(None)
            }
            _ => Err(err).context("recvfrom failed"),
        };
    }
    let source = match i32::from(from.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sa =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes()))
        }
        _ => {
            // SAFETY: the only other family our sockets use is AF_INET6.
            let sa =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr))
        }
    };
    Ok(Some((got as usize, source)))
}

/// RFC 1071 Internet checksum over the concatenation of `parts`.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut pending: Option<u8> = None;
    for byte in parts.iter().flat_map(|part| part.iter().copied()) {
        match pending.take() {
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
            None => pending = Some(byte),
        }
    }
    if let Some(high) = pending {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example bytes sum to 0xddf2 before complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&[&data]), !0xddf2);
        // Splitting at an odd offset must not change the result.
        assert_eq!(internet_checksum(&[&data[..3], &data[3..]]), !0xddf2);
    }

    #[test]
    fn checksum_of_data_with_its_checksum_is_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00];
        let sum = internet_checksum(&[&data]);
        data.extend_from_slice(&sum.to_be_bytes());
        assert_eq!(internet_checksum(&[&data]), 0);
    }
}
