//! A NIC drops unicast frames to a MAC that is not its own in hardware,
//! before any program sees them. While this node answers with a virtual
//! MAC (`use_vmac`), that MAC is added to the interface's unicast filter,
//! as `bridge fdb add MAC dev IF self` does (RTM_NEWNEIGH in AF_BRIDGE with
//! NTF_SELF: the kernel adds it to the device's unicast address list), and
//! removed when it stops. A device without a hardware filter goes
//! promiscuous instead, which the kernel handles; veth accepts everything.
//!
//! One synchronous request with its ack: the election task calls it at a
//! transition, and the kernel answers at once.

use std::{io, mem::size_of, os::fd::AsRawFd as _, os::fd::FromRawFd as _, os::fd::OwnedFd};

use thiserror::Error;

const NLMSG_HEADER_LEN: usize = 16;
const NDMSG_LEN: usize = 12;
const NDA_LLADDR: u16 = 2;
const NLA_HEADER_LEN: usize = 4;
const MAC_LEN: usize = 6;
/// `nlmsghdr` + `ndmsg` + one `NDA_LLADDR` attribute padded to 4 bytes.
pub const MESSAGE_LEN: usize = NLMSG_HEADER_LEN + NDMSG_LEN + 12;
const NUD_PERMANENT: u16 = 0x80;
const NTF_SELF: u8 = 0x02;

#[derive(Debug, Error)]
#[error("{operation} MAC {mac} on ifindex {ifindex} in the unicast filter failed: {source}")]
pub struct UnicastFilterError {
    operation: &'static str,
    mac: String,
    ifindex: u32,
    #[source]
    source: io::Error,
}

/// Add or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// The request for `change` of `mac` on `ifindex`. Adding without
/// NLM_F_EXCL makes an address already there a success, as the kernel's
/// default handler does; removing one not there answers ENOENT, which
/// [`apply`] takes as done.
pub fn message(change: Change, ifindex: u32, mac: [u8; 6], sequence: u32) -> [u8; MESSAGE_LEN] {
    let (message_type, flags) = match change {
        Change::Add => (
            libc::RTM_NEWNEIGH,
            libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE,
        ),
        Change::Remove => (libc::RTM_DELNEIGH, libc::NLM_F_REQUEST | libc::NLM_F_ACK),
    };
    let mut buffer = [0u8; MESSAGE_LEN];
    buffer[0..4].copy_from_slice(&(MESSAGE_LEN as u32).to_ne_bytes());
    buffer[4..6].copy_from_slice(&message_type.to_ne_bytes());
    buffer[6..8].copy_from_slice(&(flags as u16).to_ne_bytes());
    buffer[8..12].copy_from_slice(&sequence.to_ne_bytes());
    // nlmsg_pid 0: the kernel.
    let ndmsg = NLMSG_HEADER_LEN;
    buffer[ndmsg] = libc::AF_BRIDGE as u8;
    buffer[ndmsg + 4..ndmsg + 8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    buffer[ndmsg + 8..ndmsg + 10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
    buffer[ndmsg + 10] = NTF_SELF;
    let attribute = ndmsg + NDMSG_LEN;
    buffer[attribute..attribute + 2]
        .copy_from_slice(&((NLA_HEADER_LEN + MAC_LEN) as u16).to_ne_bytes());
    buffer[attribute + 2..attribute + 4].copy_from_slice(&NDA_LLADDR.to_ne_bytes());
    buffer[attribute + 4..attribute + 4 + MAC_LEN].copy_from_slice(&mac);
    buffer
}

/// Adds `mac` to, or removes it from, the unicast filter of `ifindex` in
/// this thread's network namespace.
pub fn apply(change: Change, ifindex: u32, mac: [u8; 6]) -> Result<(), UnicastFilterError> {
    let error = |source| UnicastFilterError {
        operation: match change {
            Change::Add => "adding",
            Change::Remove => "removing",
        },
        mac: format_mac(mac),
        ifindex,
        source,
    };
    match request(&message(change, ifindex, mac, 1)) {
        Ok(()) => Ok(()),
        Err(source) if change == Change::Remove && source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(())
        }
        Err(source) => Err(error(source)),
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sends one request and reads its ack.
fn request(message: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: the option value outlives the call and its size is passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: an all-zero sockaddr_nl addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: the buffer and address outlive the call; lengths match.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut answer = [0u8; 1024];
    // SAFETY: the buffer outlives the call and its length is passed.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            answer.as_mut_ptr().cast(),
            answer.len(),
            0,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    ack_status(&answer[..received as usize])
}

/// The status of an NLMSG_ERROR ack (0 is success).
fn ack_status(answer: &[u8]) -> io::Result<()> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed netlink ack");
    let message_type = answer
        .get(4..6)
        .map(|bytes| u16::from_ne_bytes([bytes[0], bytes[1]]))
        .ok_or_else(malformed)?;
    if i32::from(message_type) != libc::NLMSG_ERROR {
        return Err(malformed());
    }
    let code = answer
        .get(NLMSG_HEADER_LEN..NLMSG_HEADER_LEN + 4)
        .map(|bytes| i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .ok_or_else(malformed)?;
    match code {
        0 => Ok(()),
        negative => Err(io::Error::from_raw_os_error(-negative)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x33];

    /// The bytes `bridge fdb add 00:00:5e:00:01:33 dev IF self` sends
    /// (iproute2 adds NLM_F_EXCL; without it a repeat is no error).
    #[test]
    fn the_add_request_is_a_permanent_self_entry_in_af_bridge() {
        let message = message(Change::Add, 7, VMAC, 42);
        let mut expected = Vec::new();
        expected.extend((MESSAGE_LEN as u32).to_ne_bytes());
        expected.extend(28u16.to_ne_bytes()); // RTM_NEWNEIGH
        expected.extend((0x1u16 | 0x4 | 0x400).to_ne_bytes()); // REQUEST | ACK | CREATE
        expected.extend(42u32.to_ne_bytes());
        expected.extend(0u32.to_ne_bytes());
        expected.extend([7, 0, 0, 0]); // AF_BRIDGE, padding
        expected.extend(7i32.to_ne_bytes());
        expected.extend(0x80u16.to_ne_bytes()); // NUD_PERMANENT
        expected.extend([0x02, 0]); // NTF_SELF, type
        expected.extend(10u16.to_ne_bytes());
        expected.extend(2u16.to_ne_bytes()); // NDA_LLADDR
        expected.extend(VMAC);
        expected.extend([0, 0]);
        assert_eq!(message.as_slice(), expected.as_slice());
    }

    #[test]
    fn the_remove_request_differs_only_in_type_and_flags() {
        let add = message(Change::Add, 7, VMAC, 1);
        let remove = message(Change::Remove, 7, VMAC, 1);
        assert_eq!(u16::from_ne_bytes([remove[4], remove[5]]), 29); // RTM_DELNEIGH
        assert_eq!(u16::from_ne_bytes([remove[6], remove[7]]), 0x1 | 0x4);
        assert_eq!(add[8..], remove[8..]);
    }

    #[test]
    fn acks_carry_the_kernel_errno() {
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert!(ack_status(&ack).is_ok());
        ack[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(
            ack_status(&ack).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        assert!(ack_status(&ack[..10]).is_err());
    }

    /// In a namespace of its own: the entry appears in the device's
    /// unicast list (`bridge fdb show dev v0` lists it `self permanent`),
    /// a repeat is no error, and removal takes it away.
    #[test]
    fn a_veth_takes_the_virtual_mac_and_gives_it_back() {
        let namespace = crate::test_netns::TestNetns::with_veth("vrrp-ucf");
        let name = namespace.name().to_owned();
        let shown = || {
            let output = std::process::Command::new("bridge")
                .args(["-n", &name, "fdb", "show", "dev", "v0"])
                .output()
                .expect("bridge fdb show");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let result = namespace.run(|| async {
            let ifindex = crate::datapath::interface_index("v0").expect("v0");
            apply(Change::Add, ifindex, VMAC)?;
            apply(Change::Add, ifindex, VMAC)?;
            Ok::<u32, UnicastFilterError>(ifindex)
        });
        let ifindex = result.expect("add twice");
        assert!(
            shown().contains("00:00:5e:00:01:33 self permanent"),
            "{}",
            shown()
        );
        namespace
            .run(move || async move {
                apply(Change::Remove, ifindex, VMAC)?;
                apply(Change::Remove, ifindex, VMAC)
            })
            .expect("remove, and again");
        assert!(!shown().contains("00:00:5e:00:01:33"), "{}", shown());
    }
}
