//! Errors of the netlink side, each naming what was being done to which
//! interface/address and, where the kernel's errno has a usual cause, what to fix.

use std::io;

use rtnetlink::packet_core::ErrorMessage;

/// Something the kernel (or the netlink transport) refused.
///
/// `action` is a sentence fragment such as `adding virtual address
/// 192.0.2.10/32 on eth1`, so every message reads "<action>: <what went wrong>".
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error(
        "cannot open a NETLINK_ROUTE socket: {source}; the agent needs a Linux kernel with rtnetlink"
    )]
    Socket {
        #[source]
        source: io::Error,
    },

    #[error(
        "{action}: permission denied; the agent needs CAP_NET_ADMIN (run it as root or grant the capability)"
    )]
    PermissionDenied { action: String },

    #[error(
        "{action}: interface {device} does not exist; check the interface name in the configuration and that the device exists before the agent uses it"
    )]
    NoSuchInterface { action: String, device: String },

    #[error("{action}: the kernel refused the request: {reason} (errno {errno})")]
    Kernel {
        action: String,
        errno: i32,
        reason: String,
    },

    #[error("{action}: netlink request failed: {detail}")]
    Transport { action: String, detail: String },

    #[error("invalid {what}: {problem}; expected {expected}")]
    InvalidSpec {
        what: String,
        problem: String,
        expected: String,
    },
}

/// The kernel's answer to a request, reduced to what callers branch on.
#[derive(Debug)]
pub(crate) enum KernelReply {
    /// `EEXIST`: the object is already there (someone else's, or ours from before).
    AlreadyExists,
    /// `ESRCH`/`ENOENT`/`EADDRNOTAVAIL` (the errno): the object to delete is
    /// not there.
    NotFound(i32),
    /// Anything else, already turned into a user-facing error.
    Failed(NetlinkError),
}

/// Positive errno carried by a netlink error message, if any.
fn errno_of(message: &ErrorMessage) -> Option<i32> {
    message.code.map(|code| code.get().saturating_abs())
}

/// Classifies an rtnetlink error for `action` on `device`.
pub(crate) fn classify(error: rtnetlink::Error, action: &str, device: &str) -> KernelReply {
    let rtnetlink::Error::NetlinkError(message) = &error else {
        return KernelReply::Failed(NetlinkError::Transport {
            action: action.to_owned(),
            detail: error.to_string(),
        });
    };
    match errno_of(message) {
        Some(libc::EEXIST) => KernelReply::AlreadyExists,
        Some(errno @ (libc::ESRCH | libc::ENOENT | libc::EADDRNOTAVAIL)) => {
            KernelReply::NotFound(errno)
        }
        Some(errno) => KernelReply::Failed(
            match (
                from_errno(errno, action, device),
                kernel_explanation(message),
            ) {
                (
                    NetlinkError::Kernel {
                        action,
                        errno,
                        reason,
                    },
                    Some(explanation),
                ) => NetlinkError::Kernel {
                    action,
                    errno,
                    reason: format!("{reason} ({explanation})"),
                },
                (error, _) => error,
            },
        ),
        None => KernelReply::Failed(NetlinkError::Transport {
            action: action.to_owned(),
            detail: "the kernel sent an error message without an error code".to_owned(),
        }),
    }
}

/// Turns any rtnetlink error into a user-facing error, with no errno treated
/// as success.
pub(crate) fn failure(error: rtnetlink::Error, action: &str, device: &str) -> NetlinkError {
    match classify(error, action, device) {
        KernelReply::Failed(error) => error,
        KernelReply::AlreadyExists => from_errno(libc::EEXIST, action, device),
        KernelReply::NotFound(errno) => from_errno(errno, action, device),
    }
}

/// `NLMSGERR_ATTR_MSG`: the kernel's own explanation of an error.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Attribute type bits (the top two are the nested/byte-order flags).
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(length: usize) -> usize {
    length.saturating_add(3) & !3
}

/// The kernel's explanation of an error (extended ack, such as "ipv4:
/// Invalid scope value"), present when the socket enabled `NETLINK_EXT_ACK`.
/// The error carries the echoed request and then the attributes.
pub(crate) fn kernel_explanation(message: &ErrorMessage) -> Option<String> {
    let echoed = message.header.as_slice();
    let request_len = u32::from_ne_bytes(echoed.get(0..4)?.try_into().ok()?);
    let mut attributes = echoed.get(align4(usize::try_from(request_len).ok()?)..)?;
    while let (Some(length), Some(kind)) = (attributes.get(0..2), attributes.get(2..4)) {
        let length = usize::from(u16::from_ne_bytes([length[0], length[1]]));
        let kind = u16::from_ne_bytes([kind[0], kind[1]]) & NLA_TYPE_MASK;
        let value = attributes.get(4..length)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = String::from_utf8_lossy(value);
            let text = text.trim_end_matches('\0').trim();
            return (!text.is_empty()).then(|| text.to_owned());
        }
        attributes = attributes.get(align4(length).max(4)..).unwrap_or_default();
    }
    None
}

pub(crate) fn from_errno(errno: i32, action: &str, device: &str) -> NetlinkError {
    match errno {
        libc::EPERM | libc::EACCES => NetlinkError::PermissionDenied {
            action: action.to_owned(),
        },
        libc::ENODEV => NetlinkError::NoSuchInterface {
            action: action.to_owned(),
            device: device.to_owned(),
        },
        _ => NetlinkError::Kernel {
            action: action.to_owned(),
            errno,
            reason: io::Error::from_raw_os_error(errno).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(errno: i32) -> rtnetlink::Error {
        let mut message = ErrorMessage::default();
        message.code = std::num::NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(message)
    }

    #[test]
    fn eperm_names_the_capability_and_the_action() {
        let error = failure(
            nack(libc::EPERM),
            "adding virtual address 192.0.2.1/32 on v0",
            "v0",
        );
        let text = error.to_string();
        assert!(matches!(error, NetlinkError::PermissionDenied { .. }));
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");
        assert!(text.contains("192.0.2.1/32 on v0"), "{text}");
    }

    #[test]
    fn enodev_names_the_interface() {
        let error = failure(nack(libc::ENODEV), "adding route", "eth9");
        assert!(
            matches!(&error, NetlinkError::NoSuchInterface { device, .. } if device == "eth9"),
            "{error:?}"
        );
        assert!(error.to_string().contains("interface eth9 does not exist"));
    }

    #[test]
    fn eexist_and_missing_objects_are_told_apart_from_failures() {
        assert!(matches!(
            classify(nack(libc::EEXIST), "a", "d"),
            KernelReply::AlreadyExists
        ));
        for errno in [libc::ESRCH, libc::ENOENT, libc::EADDRNOTAVAIL] {
            assert!(matches!(
                classify(nack(errno), "a", "d"),
                KernelReply::NotFound(found) if found == errno
            ));
        }
        let KernelReply::Failed(NetlinkError::Kernel { errno, reason, .. }) =
            classify(nack(libc::EINVAL), "a", "d")
        else {
            panic!("EINVAL must be a kernel failure");
        };
        assert_eq!(errno, libc::EINVAL);
        assert!(
            reason.to_lowercase().contains("invalid argument"),
            "{reason}"
        );
    }

    #[test]
    fn the_kernels_explanation_is_appended() {
        let mut echoed = Vec::new();
        echoed.extend_from_slice(&20u32.to_ne_bytes());
        echoed.extend_from_slice(&[0; 16]);
        let text = b"ipv4: Invalid scope value\0";
        let length = u16::try_from(4 + text.len()).unwrap();
        // An unrelated attribute first (NLMSGERR_ATTR_OFFS = 2, a u32).
        echoed.extend_from_slice(&8u16.to_ne_bytes());
        echoed.extend_from_slice(&2u16.to_ne_bytes());
        echoed.extend_from_slice(&0u32.to_ne_bytes());
        echoed.extend_from_slice(&length.to_ne_bytes());
        echoed.extend_from_slice(&1u16.to_ne_bytes());
        echoed.extend_from_slice(text);
        let mut message = ErrorMessage::default();
        message.code = std::num::NonZeroI32::new(-libc::EINVAL);
        message.header = echoed;
        let error = failure(rtnetlink::Error::NetlinkError(message), "adding x", "v0").to_string();
        assert!(
            error.ends_with("(ipv4: Invalid scope value) (errno 22)"),
            "{error}"
        );
    }

    #[test]
    fn malformed_explanations_are_ignored() {
        let mut message = ErrorMessage::default();
        for header in [
            vec![],
            vec![1, 0],
            vec![4, 0, 0, 0, 200, 0, 1, 0, b'x'],
            vec![4, 0, 0, 0, 0, 0, 1, 0],
        ] {
            message.header = header;
            assert_eq!(kernel_explanation(&message), None, "{:?}", message.header);
        }
    }

    #[test]
    fn transport_errors_keep_the_action() {
        let error = failure(rtnetlink::Error::RequestFailed, "listing interfaces", "");
        assert!(matches!(error, NetlinkError::Transport { .. }));
        assert!(error.to_string().starts_with("listing interfaces: "));
    }
}
