//! Link-layer socket for frames the kernel would not build for us:
//! gratuitous ARP and unsolicited neighbour advertisements for virtual
//! addresses.

use std::{io, mem::size_of, os::fd::AsRawFd};

use socket2::{Domain, Socket, Type};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("opening a packet socket on ifindex {ifindex} failed (needs CAP_NET_RAW): {source}")]
pub struct FrameSocketError {
    ifindex: u32,
    #[source]
    source: io::Error,
}

pub struct FrameSocket {
    socket: Socket,
    ifindex: u32,
}

impl FrameSocket {
    /// A send-only `AF_PACKET` socket on `ifindex`. Protocol 0 means the
    /// kernel delivers it no incoming frames at all.
    pub fn open(ifindex: u32) -> Result<Self, FrameSocketError> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)
            .map_err(|source| FrameSocketError { ifindex, source })?;
        Ok(Self { socket, ifindex })
    }

    /// Sends one complete Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter
        // are set below.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = self.ifindex as i32;
        address.sll_halen = 6;
        if let Some(destination) = frame.get(..6) {
            address.sll_addr[..6].copy_from_slice(destination);
        }
        // SAFETY: the frame and the address outlive the call and the lengths
        // passed match them.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&address as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
