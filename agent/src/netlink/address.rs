//! Virtual addresses (`virtual_ipaddress`) and the netlink messages that add
//! and delete them, built the way keepalived 2.2.7 builds them.
//!
//! keepalived's choices, checked against keepalived 2.2.7 on Linux 6.x:
//! - no prefix length means a host prefix: /32 for IPv4, /128 for IPv6;
//! - no broadcast address unless `brd` is given (unlike `ip addr add`, which
//!   derives one from the prefix);
//! - scope global unless `scope` is given;
//! - IPv6 addresses are added with `IFA_F_NODAD`, so a new master can answer
//!   for the address at once instead of after duplicate address detection;
//! - IPv6 /128 addresses get a preferred lifetime of 0 (shown as
//!   `deprecated`), so the kernel never picks a virtual address as the source
//!   of the node's own connections; other prefixes are preferred forever.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};

use super::device::{Device, MAX_INTERFACE_NAME_LEN};
use super::error::NetlinkError;
use super::scope::Scope;

/// `INFINITY_LIFE_TIME`: an address lifetime that never runs out.
pub const FOREVER: u32 = u32::MAX;

/// One `virtual_ipaddress` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// IPv4 only; `None` adds no broadcast address, as keepalived does.
    pub broadcast: Option<Ipv4Addr>,
    pub device: Device,
    /// `None` means global.
    pub scope: Option<Scope>,
    /// IPv4 only (`eth1:1` style); must start with the interface name.
    pub label: Option<String>,
    /// Seconds; `None` means keepalived's default (see the module docs).
    pub preferred_lifetime: Option<u32>,
}

impl VirtualAddress {
    /// An address with keepalived's defaults: host prefix, no broadcast,
    /// global scope, no label.
    pub fn new(address: IpAddr, device: impl Into<Device>) -> Self {
        VirtualAddress {
            address,
            prefix_len: host_prefix_len(address),
            broadcast: None,
            device: device.into(),
            scope: None,
            label: None,
            preferred_lifetime: None,
        }
    }

    /// The preferred lifetime actually requested from the kernel.
    pub fn effective_preferred_lifetime(&self) -> u32 {
        match (self.preferred_lifetime, self.address) {
            (Some(seconds), _) => seconds,
            (None, IpAddr::V6(_)) if self.prefix_len == 128 => 0,
            (None, _) => FOREVER,
        }
    }

    /// Rejects what the kernel would reject with a bare `EINVAL`, saying why.
    pub fn validate(&self) -> Result<(), NetlinkError> {
        let invalid = |problem: String, expected: &str| NetlinkError::InvalidSpec {
            what: format!("virtual address {self}"),
            problem,
            expected: expected.to_owned(),
        };
        let max_prefix = host_prefix_len(self.address);
        if self.prefix_len > max_prefix {
            return Err(invalid(
                format!("prefix length {} is too long", self.prefix_len),
                &format!("a prefix length of 0 to {max_prefix}"),
            ));
        }
        if self.address.is_unspecified() || self.address.is_multicast() {
            return Err(invalid(
                "the address is unspecified or multicast".to_owned(),
                "a unicast address",
            ));
        }
        if self.address.is_ipv6() && self.broadcast.is_some() {
            return Err(invalid(
                "IPv6 has no broadcast address".to_owned(),
                "brd only on IPv4 addresses",
            ));
        }
        if let Some(label) = &self.label {
            if self.address.is_ipv6() {
                return Err(invalid(
                    format!("label {label:?} given for an IPv6 address"),
                    "labels only on IPv4 addresses",
                ));
            }
            if label.is_empty() || label.len() > MAX_INTERFACE_NAME_LEN {
                return Err(invalid(
                    format!("label {label:?} is empty or longer than 15 bytes"),
                    "a label of 1 to 15 bytes such as eth1:vip",
                ));
            }
            if let Device::Name(name) = &self.device
                && !label.starts_with(name.as_str())
            {
                return Err(invalid(
                    format!("label {label:?} does not start with the interface name {name}"),
                    &format!("a label such as {name}:1"),
                ));
            }
        }
        Ok(())
    }

    /// The `RTM_NEWADDR` body for this address on interface `ifindex`.
    pub(crate) fn add_message(&self, ifindex: u32) -> AddressMessage {
        let mut message = self.identity_message(ifindex);
        message.header.scope = self.scope.unwrap_or(Scope::Global).into();
        if let Some(broadcast) = self.broadcast {
            message
                .attributes
                .push(AddressAttribute::Broadcast(broadcast));
        }
        if let Some(label) = &self.label {
            message
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        if self.address.is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let preferred = self.effective_preferred_lifetime();
        if preferred != FOREVER {
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = preferred;
            lifetimes.ifa_valid = FOREVER;
            message
                .attributes
                .push(AddressAttribute::CacheInfo(lifetimes));
        }
        message
    }

    /// The `RTM_DELADDR` body: only what identifies the address, so the
    /// kernel deletes exactly this address (family, interface, prefix, local).
    pub(crate) fn delete_message(&self, ifindex: u32) -> AddressMessage {
        self.identity_message(ifindex)
    }

    fn identity_message(&self, ifindex: u32) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = match self.address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.header.prefix_len = self.prefix_len;
        message.header.index = ifindex;
        message
            .attributes
            .push(AddressAttribute::Address(self.address));
        // IFA_LOCAL is the interface's own address for IPv4 (IFA_ADDRESS
        // would be a point-to-point peer); IPv6 only uses IFA_ADDRESS.
        if self.address.is_ipv4() {
            message
                .attributes
                .push(AddressAttribute::Local(self.address));
        }
        message
    }
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} dev {}",
            self.address, self.prefix_len, self.device
        )
    }
}

/// /32 or /128: the prefix keepalived assumes when none is written.
pub fn host_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use rtnetlink::packet_route::address::AddressScope;

    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn defaults_follow_keepalived() {
        let vip = VirtualAddress::new(v4("192.0.2.10"), "eth1");
        assert_eq!(vip.prefix_len, 32);
        assert_eq!(vip.effective_preferred_lifetime(), FOREVER);
        let message = vip.add_message(3);
        assert_eq!(message.header.index, 3);
        assert_eq!(message.header.prefix_len, 32);
        assert_eq!(message.header.scope, AddressScope::Universe);
        assert!(
            !message
                .attributes
                .iter()
                .any(|attribute| matches!(attribute, AddressAttribute::Broadcast(_))),
            "no broadcast unless brd is configured"
        );
        assert!(
            message
                .attributes
                .contains(&AddressAttribute::Local(v4("192.0.2.10")))
        );

        let vip6 = VirtualAddress::new(v6("2001:db8::10"), "eth1");
        assert_eq!(vip6.prefix_len, 128);
        assert_eq!(vip6.effective_preferred_lifetime(), 0);
        let message = vip6.add_message(3);
        assert_eq!(message.header.family, AddressFamily::Inet6);
        assert!(
            message
                .attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Nodad))
        );
        assert!(message.attributes.iter().any(|attribute| matches!(
            attribute,
            AddressAttribute::CacheInfo(info) if info.ifa_preferred == 0 && info.ifa_valid == FOREVER
        )));
        assert!(
            !message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Local(_)))
        );
    }

    #[test]
    fn ipv6_with_a_shorter_prefix_stays_preferred() {
        let vip = VirtualAddress {
            prefix_len: 64,
            ..VirtualAddress::new(v6("2001:db8::20"), "eth1")
        };
        assert_eq!(vip.effective_preferred_lifetime(), FOREVER);
        assert!(
            !vip.add_message(1)
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::CacheInfo(_)))
        );
    }

    #[test]
    fn options_reach_the_message() {
        let vip = VirtualAddress {
            prefix_len: 24,
            broadcast: Some("192.0.2.255".parse().unwrap()),
            scope: Some(Scope::Link),
            label: Some("eth1:vip".to_owned()),
            ..VirtualAddress::new(v4("192.0.2.30"), "eth1")
        };
        vip.validate().unwrap();
        let message = vip.add_message(4);
        assert_eq!(message.header.scope, AddressScope::Link);
        assert!(
            message
                .attributes
                .contains(&AddressAttribute::Broadcast("192.0.2.255".parse().unwrap()))
        );
        assert!(
            message
                .attributes
                .contains(&AddressAttribute::Label("eth1:vip".to_owned()))
        );
        let delete = vip.delete_message(4);
        assert_eq!(delete.header.prefix_len, 24);
        assert_eq!(
            delete.attributes.len(),
            2,
            "delete names only the address: {delete:?}"
        );
    }

    #[test]
    fn invalid_specs_say_what_is_wrong() {
        let base = VirtualAddress::new(v4("192.0.2.10"), "eth1");
        let cases = [
            (
                VirtualAddress {
                    prefix_len: 33,
                    ..base.clone()
                },
                "0 to 32",
            ),
            (
                VirtualAddress::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), "eth1"),
                "unicast",
            ),
            (VirtualAddress::new(v4("224.0.0.18"), "eth1"), "unicast"),
            (
                VirtualAddress {
                    broadcast: Some(Ipv4Addr::BROADCAST),
                    ..VirtualAddress::new(v6("2001:db8::1"), "eth1")
                },
                "brd only on IPv4",
            ),
            (
                VirtualAddress {
                    label: Some("eth1:x".into()),
                    ..VirtualAddress::new(v6("2001:db8::1"), "eth1")
                },
                "only on IPv4",
            ),
            (
                VirtualAddress {
                    label: Some("eth2:x".into()),
                    ..base.clone()
                },
                "eth1:1",
            ),
            (
                VirtualAddress {
                    label: Some("eth1:0123456789ab".into()),
                    ..base.clone()
                },
                "1 to 15 bytes",
            ),
        ];
        for (vip, expected) in cases {
            let error = vip.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{vip}: {error}");
            assert!(error.contains(&vip.address.to_string()), "{error}");
        }
        assert!(
            VirtualAddress {
                label: Some("anything:1".into()),
                device: Device::Index(2),
                ..base
            }
            .validate()
            .is_ok()
        );
    }
}
