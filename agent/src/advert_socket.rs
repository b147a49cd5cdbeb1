//! Raw VRRP sockets for sending adverts on one interface.
//!
//! Reception happens in XDP, but each socket still joins the VRRP multicast
//! group: a physical NIC filters multicast in hardware, and without the
//! membership the adverts would never reach the XDP program at all. The
//! socket itself never reads: a classic BPF filter that accepts nothing keeps
//! the kernel from queueing every advert on it.

use std::{
    io,
    mem::size_of,
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use crate::vrrp::wire;

const IPPROTO_VRRP: i32 = wire::IP_PROTOCOL as i32;
/// RFC 5798 §5.1.1.3 / §5.1.2.3: adverts leave with TTL / hop limit 255 so
/// receivers can tell they were not forwarded. Unicast adverts too, unless
/// `unicast_ttl` says otherwise (per message). keepalived leaves IPv6
/// unicast adverts at the kernel's default hop limit; 255 is what the RFC
/// asks, and what earlier agents, which checked it on unicast too, accept.
const VRRP_TTL: u32 = wire::HOP_LIMIT as u32;
/// DSCP CS6 (network control), what keepalived marks adverts with.
const TOS_NETWORK_CONTROL: u32 = wire::TRAFFIC_CLASS as u32;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("opening a raw VRRP socket on {interface} failed (needs CAP_NET_RAW): {source}")]
    Open {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("setting {option} on the VRRP socket of {interface} failed: {source}")]
    Option {
        interface: String,
        option: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "binding the VRRP socket of {interface} to source {source_address} failed (is the address on the interface?): {source}"
    )]
    Bind {
        interface: String,
        source_address: IpAddr,
        #[source]
        source: io::Error,
    },
}

pub struct AdvertSocket {
    socket: Socket,
    interface: String,
    ifindex: u32,
}

impl AdvertSocket {
    /// Opens a socket that sends from `source` out of `interface` and joins
    /// `group` there (the VRRP group unless configured otherwise).
    pub fn open(
        interface: &str,
        ifindex: u32,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<Self, SocketError> {
        let ipv6 = source.is_ipv6();
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP))).map_err(
            |source| SocketError::Open {
                interface: interface.to_owned(),
                source,
            },
        )?;
        let this = Self {
            socket,
            interface: interface.to_owned(),
            ifindex,
        };
        this.option("SO_BINDTODEVICE", |socket| {
            socket.bind_device(Some(interface.as_bytes()))
        })?;
        this.option("SO_ATTACH_FILTER (drop all)", attach_drop_all_filter)?;
        this.option("SO_RCVBUF", |socket| socket.set_recv_buffer_size(0))?;
        match (source, group) {
            (IpAddr::V4(_), IpAddr::V4(group)) => {
                this.option("IP_MULTICAST_TTL", |socket| {
                    socket.set_multicast_ttl_v4(VRRP_TTL)
                })?;
                this.option("IP_TTL", |socket| socket.set_ttl_v4(VRRP_TTL))?;
                this.option("IP_MULTICAST_LOOP", |socket| {
                    socket.set_multicast_loop_v4(false)
                })?;
                this.option("IP_TOS", |socket| socket.set_tos_v4(TOS_NETWORK_CONTROL))?;
                this.option("IP_ADD_MEMBERSHIP", |socket| {
                    socket.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
                })?;
            }
            (IpAddr::V6(_), IpAddr::V6(group)) => {
                this.option("IPV6_MULTICAST_HOPS", |socket| {
                    socket.set_multicast_hops_v6(VRRP_TTL)
                })?;
                this.option("IPV6_UNICAST_HOPS", |socket| {
                    socket.set_unicast_hops_v6(VRRP_TTL)
                })?;
                this.option("IPV6_MULTICAST_LOOP", |socket| {
                    socket.set_multicast_loop_v6(false)
                })?;
                this.option("IPV6_MULTICAST_IF", |socket| {
                    socket.set_multicast_if_v6(ifindex)
                })?;
                this.option("IPV6_TCLASS", |socket| {
                    socket.set_tclass_v6(TOS_NETWORK_CONTROL)
                })?;
                this.option("IPV6_ADD_MEMBERSHIP", |socket| {
                    socket.join_multicast_v6(&group, ifindex)
                })?;
            }
            _ => {
                return Err(SocketError::Option {
                    interface: interface.to_owned(),
                    option: "multicast group",
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("group {group} is not of the same family as source {source}"),
                    ),
                });
            }
        }
        let bind_to = match source {
            IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, 0)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope_for(&v6, ifindex))),
        };
        this.socket
            .bind(&bind_to.into())
            .map_err(|error| SocketError::Bind {
                interface: interface.to_owned(),
                source_address: source,
                source: error,
            })?;
        Ok(this)
    }

    fn option(
        &self,
        option: &'static str,
        apply: impl FnOnce(&Socket) -> io::Result<()>,
    ) -> Result<(), SocketError> {
        apply(&self.socket).map_err(|source| SocketError::Option {
            interface: self.interface.clone(),
            option,
            source,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Sends several messages with one `sendmmsg` call: a master of hundreds
    /// of instances at 10 ms would otherwise spend its time in syscalls.
    /// Each message may carry its own TTL / hop limit (`unicast_ttl`).
    /// Returns how many were sent; the caller retries the rest.
    pub fn send_batch(&self, messages: &[(&[u8], IpAddr, Option<u8>)]) -> io::Result<usize> {
        if messages.is_empty() {
            return Ok(0);
        }
        let addresses: Vec<SockAddr> = messages
            .iter()
            .map(|(_, destination, _)| self.sock_addr(*destination))
            .collect();
        let mut iovecs: Vec<libc::iovec> = messages
            .iter()
            .map(|(message, _, _)| libc::iovec {
                iov_base: message.as_ptr() as *mut libc::c_void,
                iov_len: message.len(),
            })
            .collect();
        let mut controls: Vec<HopsControl> = messages
            .iter()
            .map(|(_, destination, hops)| HopsControl::new(*destination, *hops))
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(&addresses)
            .zip(controls.iter_mut())
            .map(|((iovec, address), control)| {
                // SAFETY: an all-zero msghdr is a valid empty header.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
                header.msg_hdr.msg_namelen = address.len();
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
                control.attach(&mut header.msg_hdr);
                header
            })
            .collect();
        // SAFETY: every header points at an iovec and an address that outlive
        // the call; the length matches the vector.
        let sent = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                0,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    fn sock_addr(&self, destination: IpAddr) -> SockAddr {
        match destination {
            IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, 0)).into(),
            IpAddr::V6(v6) => {
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope_for(&v6, self.ifindex))).into()
            }
        }
    }
}

/// One `IP_TTL` / `IPV6_HOPLIMIT` control message, or none.
struct HopsControl {
    /// u64 words keep the cmsghdr aligned.
    buffer: [u64; 4],
    len: usize,
}

impl HopsControl {
    fn new(destination: IpAddr, hops: Option<u8>) -> Self {
        let mut this = Self {
            buffer: [0; 4],
            len: 0,
        };
        let Some(hops) = hops else {
            return this;
        };
        let (level, kind) = match destination {
            IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_TTL),
            IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT),
        };
        let value = libc::c_int::from(hops);
        // SAFETY: CMSG_SPACE of an int (24 bytes on 64-bit) fits the 32-byte
        // buffer, which is aligned for cmsghdr; the header and the data
        // are written inside it.
        unsafe {
            let space = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize;
            assert!(space <= size_of::<[u64; 4]>());
            let header = this.buffer.as_mut_ptr().cast::<libc::cmsghdr>();
            (*header).cmsg_level = level;
            (*header).cmsg_type = kind;
            (*header).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
            libc::CMSG_DATA(header)
                .cast::<libc::c_int>()
                .write_unaligned(value);
            this.len = space;
        }
        this
    }

    fn attach(&mut self, header: &mut libc::msghdr) {
        if self.len > 0 {
            header.msg_control = self.buffer.as_mut_ptr().cast();
            header.msg_controllen = self.len as _;
        }
    }
}

/// Link-local and link-scope multicast addresses need the interface as scope.
fn scope_for(address: &Ipv6Addr, ifindex: u32) -> u32 {
    let link_scoped = address.is_unicast_link_local()
        || (address.is_multicast() && (address.segments()[0] & 0x000f) == 2);
    if link_scoped { ifindex } else { 0 }
}

/// Classic BPF program `ret #0`: accept no packet.
fn attach_drop_all_filter(socket: &Socket) -> io::Result<()> {
    let mut reject_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: reject_all.len() as u16,
        filter: reject_all.as_mut_ptr(),
    };
    // SAFETY: the program and its instructions live across the call; the
    // kernel copies them.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::test_netns::TestNetns;

    /// A physical NIC only hands multicast to XDP when the group is joined:
    /// veth accepts everything, so only the membership itself can be checked.
    #[test]
    fn opening_joins_the_vrrp_groups_and_sets_ttl_255() {
        let namespace = TestNetns::with_veth("advsock");
        namespace.ip(&["addr", "add", "192.0.2.1/24", "dev", "v0"]);
        let link_local: Ipv6Addr = namespace
            .ip(&["-6", "-o", "addr", "show", "dev", "v0", "scope", "link"])
            .split_whitespace()
            .find_map(|word| word.split('/').next()?.parse().ok())
            .expect("v0 has a link-local address");
        let name = namespace.name().to_owned();
        namespace.run(move || async move {
            let ifindex = crate::datapath::interface_index("v0").expect("v0 exists");
            let v4 = AdvertSocket::open(
                "v0",
                ifindex,
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                IpAddr::V4(wire::IPV4_MULTICAST),
            )
            .expect("IPv4 socket");
            let v6 = AdvertSocket::open(
                "v0",
                ifindex,
                IpAddr::V6(link_local),
                IpAddr::V6(wire::IPV6_MULTICAST),
            )
            .expect("IPv6 socket");
            assert_eq!(v4.socket.multicast_ttl_v4().unwrap(), VRRP_TTL);
            assert_eq!(v4.socket.ttl_v4().unwrap(), VRRP_TTL);
            assert!(!v4.socket.multicast_loop_v4().unwrap());
            assert_eq!(v6.socket.multicast_hops_v6().unwrap(), VRRP_TTL);
            assert_eq!(v6.socket.unicast_hops_v6().unwrap(), VRRP_TTL);
            let groups = crate::test_netns::ip_in(&name, &["maddr", "show", "dev", "v0"]);
            assert!(groups.contains("224.0.0.18"), "{groups}");
            assert!(groups.contains("ff02::12"), "{groups}");
            drop((v4, v6));
            let groups = crate::test_netns::ip_in(&name, &["maddr", "show", "dev", "v0"]);
            assert!(
                !groups.contains("224.0.0.18"),
                "membership outlived the socket: {groups}"
            );
        });
    }

    #[test]
    fn link_scoped_ipv6_destinations_carry_the_interface() {
        assert_eq!(scope_for(&wire::IPV6_MULTICAST, 7), 7);
        assert_eq!(scope_for(&"fe80::1".parse().unwrap(), 7), 7);
        assert_eq!(scope_for(&"2001:db8::1".parse().unwrap(), 7), 0);
        assert_eq!(scope_for(&"ff05::12".parse().unwrap(), 7), 0);
    }
}
