//! Layer-2 tools for datapath tests: send a hand-built Ethernet frame
//! (e.g. one with an 802.1Q tag, which no IP socket can produce) and
//! listen for the VRRP adverts that reach a host's IP stack.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::advert::{Advert, IPPROTO_VRRP, VRRP_GROUP_V4};
use crate::host::Host;
use crate::sock;

/// An IPv4 VRRP advert as an Ethernet frame from `source` to 224.0.0.18,
/// TTL 255, behind one 802.1Q tag with `vlan_id` when given.
pub fn ipv4_advert_frame(
    advert: &Advert,
    source: Ipv4Addr,
    vlan_id: Option<u16>,
) -> Result<Vec<u8>> {
    let message = advert.encode(source.into(), VRRP_GROUP_V4.into())?;
    let mut frame = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    frame.extend([0x00, 0x00, 0x5e, 0x00, 0x01, advert.vrid]);
    if let Some(id) = vlan_id {
        if id == 0 || id > 4094 {
            bail!("VLAN ID {id} is not 1..=4094");
        }
        frame.extend([0x81, 0x00]);
        frame.extend(id.to_be_bytes());
    }
    frame.extend([0x08, 0x00]);
    let total = u16::try_from(20 + message.len()).context("advert too long")?;
    let mut header = vec![0x45, 0xc0];
    header.extend(total.to_be_bytes());
    header.extend([0, 0, 0, 0, 255, IPPROTO_VRRP as u8, 0, 0]);
    header.extend(source.octets());
    header.extend(VRRP_GROUP_V4.octets());
    let checksum = sock::internet_checksum(&[&header]);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend(header);
    frame.extend(message);
    Ok(frame)
}

/// One VRRP message a [`VrrpListener`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardAdvert {
    pub source: IpAddr,
    pub vrid: u8,
    pub priority: u8,
}

/// A raw IPv4 socket for IP protocol 112 in a host, bound to one
/// interface: it hears what the host's IP stack delivers, i.e. what XDP
/// passed.
pub struct VrrpListener {
    socket: OwnedFd,
}

impl VrrpListener {
    /// Everything heard until `window` has passed.
    pub fn heard(&self, window: Duration) -> Result<Vec<HeardAdvert>> {
        let deadline = Instant::now() + window;
        let mut heard = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            sock::set_recv_timeout(&self.socket, left.max(Duration::from_millis(1)))?;
            let Some((len, source)) = sock::recv_from(&self.socket, &mut buf)? else {
                break;
            };
            let header_len = usize::from(buf[0] & 0x0f) * 4;
            if len < header_len + 3 {
                continue;
            }
            heard.push(HeardAdvert {
                source,
                vrid: buf[header_len + 1],
                priority: buf[header_len + 2],
            });
        }
        Ok(heard)
    }
}

impl Host {
    /// Opens a [`VrrpListener`] on `iface`. The host's stack only delivers
    /// adverts to 224.0.0.18 while something joined that group on `iface`
    /// (the agent does).
    pub fn vrrp_listener(&self, iface: &str) -> Result<VrrpListener> {
        let name = iface.to_owned();
        let socket = self.run(move || -> Result<OwnedFd> {
            let socket = sock::raw_socket(false, IPPROTO_VRRP)?;
            sock::bind_to_device(&socket, &name)?;
            Ok(socket)
        })??;
        Ok(VrrpListener { socket })
    }

    /// Sends `frame` (a whole Ethernet frame) out of `iface` through a
    /// packet socket, as many times as `count`.
    pub fn send_frames(&self, iface: &str, frame: &[u8], count: u32) -> Result<()> {
        if count == 0 || count > 1000 {
            bail!("frame count {count} must be 1..=1000");
        }
        let ifindex = self.ifindex(iface)?;
        let frame = frame.to_vec();
        self.run(move || -> Result<()> {
            // SAFETY: plain syscall; the result is checked before being wrapped.
            let fd =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(io::Error::last_os_error()).context("cannot open a packet socket");
            }
            // SAFETY: fd is fresh and owned by nothing else.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_ifindex = i32::try_from(ifindex).context("ifindex too large")?;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&frame[..6]);
            for _ in 0..count {
                // SAFETY: frame and to are valid for the call's duration.
                let sent = unsafe {
                    libc::sendto(
                        socket.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&to as *const libc::sockaddr_ll).cast(),
                        size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if sent < 0 {
                    return Err(io::Error::last_os_error()).context("sending a frame failed");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })?
        .with_context(|| format!("sending frames from host {} on {iface}", self.name()))
    }
}
