//! Facts about interfaces: index, MAC, MTU, up/running state and addresses,
//! and the choice of the source addresses VRRP adverts are sent from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

use super::device::check_interface_name;
use super::error::{NetlinkError, failure};
use super::scope::Scope;

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

impl From<State> for OperState {
    fn from(state: State) -> Self {
        match state {
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub index: u32,
    pub name: String,
    /// Link-layer address as the kernel reports it (6 bytes on Ethernet).
    pub hardware_address: Vec<u8>,
    pub mtu: Option<u32>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_RUNNING`: the kernel considers the link operational (carrier and
    /// an operational state of up or unknown).
    pub running: bool,
    pub oper_state: OperState,
}

impl InterfaceInfo {
    /// keepalived's test: a link is usable only when both `IFF_UP` and
    /// `IFF_RUNNING` are set; an interface that is up without carrier
    /// (`NO-CARRIER`, or a veth whose peer is down) counts as down.
    pub fn is_up(&self) -> bool {
        self.admin_up && self.running
    }

    /// The Ethernet MAC address, if the link has one.
    pub fn mac(&self) -> Option<[u8; 6]> {
        <[u8; 6]>::try_from(self.hardware_address.as_slice()).ok()
    }

    pub(crate) fn from_message(message: &LinkMessage) -> Self {
        let mut info = InterfaceInfo {
            index: message.header.index,
            name: String::new(),
            hardware_address: Vec::new(),
            mtu: None,
            admin_up: message.header.flags.contains(LinkFlags::Up),
            running: message.header.flags.contains(LinkFlags::Running),
            oper_state: OperState::Unknown,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => info.name.clone_from(name),
                LinkAttribute::Address(address) => info.hardware_address.clone_from(address),
                LinkAttribute::Mtu(mtu) => info.mtu = Some(*mtu),
                LinkAttribute::OperState(state) => info.oper_state = (*state).into(),
                _ => {}
            }
        }
        info
    }
}

/// One address on an interface, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ifindex: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub scope: Scope,
    pub label: Option<String>,
    pub broadcast: Option<Ipv4Addr>,
    /// IPv4: not the first address of its subnet on this interface.
    pub secondary: bool,
    /// IPv6: duplicate address detection has not finished; the address
    /// cannot be bound yet.
    pub tentative: bool,
    pub dad_failed: bool,
    /// Preferred lifetime over; never picked as a source by the kernel.
    pub deprecated: bool,
}

impl InterfaceAddress {
    /// `None` for messages without an address (which the kernel does not send
    /// for IPv4/IPv6, but the type allows).
    pub(crate) fn from_message(message: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut peer = None;
        let mut label = None;
        let mut broadcast = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(message.header.flags.bits()));
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Local(address) => local = Some(*address),
                AddressAttribute::Address(address) => peer = Some(*address),
                AddressAttribute::Label(text) => label = Some(text.clone()),
                AddressAttribute::Broadcast(address) => broadcast = Some(*address),
                // IFA_FLAGS carries all 32 bits; the header only the low 8.
                AddressAttribute::Flags(all) => flags = *all,
                _ => {}
            }
        }
        // IFA_LOCAL is the interface's own address when present (it differs
        // from IFA_ADDRESS on point-to-point links); IPv6 sends only IFA_ADDRESS.
        let address = local.or(peer)?;
        Some(InterfaceAddress {
            ifindex: message.header.index,
            address,
            prefix_len: message.header.prefix_len,
            scope: message.header.scope.into(),
            label,
            broadcast,
            secondary: flags.contains(AddressFlags::Secondary),
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
            deprecated: flags.contains(AddressFlags::Deprecated),
        })
    }
}

/// The address keepalived sends IPv4 adverts from: the interface's primary
/// address, that is the first non-secondary IPv4 address (the kernel lists
/// primaries first, broadest scope first). `exclude` holds addresses that
/// must not be used (the virtual addresses, which become primaries when they
/// are alone in their subnet).
pub fn primary_ipv4(addresses: &[InterfaceAddress], exclude: &[IpAddr]) -> Option<Ipv4Addr> {
    let candidates = addresses.iter().filter_map(|entry| match entry.address {
        IpAddr::V4(v4) if !entry.secondary && !exclude.contains(&entry.address) => {
            Some((entry.scope.as_u8(), v4))
        }
        _ => None,
    });
    // min_by_key keeps the first of equal scopes, preserving kernel order.
    candidates.min_by_key(|(scope, _)| *scope).map(|(_, v4)| v4)
}

/// The link-local address VRRPv3 IPv6 adverts must be sent from (RFC 5798
/// 5.1.2.1): the first fe80::/10 address that can be bound, that is neither
/// tentative nor failed duplicate address detection.
pub fn ipv6_link_local(addresses: &[InterfaceAddress]) -> Option<Ipv6Addr> {
    addresses.iter().find_map(|entry| match entry.address {
        IpAddr::V6(v6) if v6.is_unicast_link_local() && !entry.tentative && !entry.dad_failed => {
            Some(v6)
        }
        _ => None,
    })
}

/// Queries about interfaces in the namespace the handle's socket lives in.
#[derive(Clone)]
pub struct Interfaces {
    handle: Handle,
}

impl Interfaces {
    pub fn new(handle: Handle) -> Self {
        Interfaces { handle }
    }

    pub async fn by_name(&self, name: &str) -> Result<InterfaceInfo, NetlinkError> {
        check_interface_name(name)?;
        let action = format!("looking up interface {name}");
        let request = self.handle.link().get().match_name(name).execute();
        first_link(request, &action, name).await
    }

    // The daemon looks interfaces up by name and lists one interface's
    // addresses; the other lookups exist for the tests' cross-checks.
    #[cfg(test)]
    pub async fn by_index(&self, index: u32) -> Result<InterfaceInfo, NetlinkError> {
        let action = format!("looking up interface with ifindex {index}");
        let request = self.handle.link().get().match_index(index).execute();
        first_link(request, &action, &format!("ifindex {index}")).await
    }

    #[cfg(test)]
    pub async fn index_of(&self, name: &str) -> Result<u32, NetlinkError> {
        super::device::index_of(&self.handle, name).await
    }

    pub async fn all(&self) -> Result<Vec<InterfaceInfo>, NetlinkError> {
        let action = "listing interfaces";
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|error| failure(error, action, ""))?;
        Ok(messages.iter().map(InterfaceInfo::from_message).collect())
    }

    /// Addresses of one interface, in kernel order.
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<InterfaceAddress>, NetlinkError> {
        let action = format!("listing addresses of ifindex {ifindex}");
        let request = self.handle.address().get().set_link_index_filter(ifindex);
        let messages: Vec<AddressMessage> = request
            .execute()
            .try_collect()
            .await
            .map_err(|error| failure(error, &action, &format!("ifindex {ifindex}")))?;
        Ok(messages
            .iter()
            .filter_map(InterfaceAddress::from_message)
            .collect())
    }

    /// Every address in the namespace.
    pub async fn all_addresses(&self) -> Result<Vec<InterfaceAddress>, NetlinkError> {
        let action = "listing addresses";
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|error| failure(error, action, ""))?;
        Ok(messages
            .iter()
            .filter_map(InterfaceAddress::from_message)
            .collect())
    }
}

async fn first_link(
    request: impl futures_util::Stream<Item = Result<LinkMessage, rtnetlink::Error>>,
    action: &str,
    device: &str,
) -> Result<InterfaceInfo, NetlinkError> {
    let mut request = std::pin::pin!(request);
    match request.try_next().await {
        Ok(Some(message)) => Ok(InterfaceInfo::from_message(&message)),
        Ok(None) => Err(NetlinkError::NoSuchInterface {
            action: action.to_owned(),
            device: device.to_owned(),
        }),
        Err(error) => Err(failure(error, action, device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, prefix_len: u8) -> InterfaceAddress {
        InterfaceAddress {
            ifindex: 2,
            address: address.parse().unwrap(),
            prefix_len,
            scope: Scope::Global,
            label: None,
            broadcast: None,
            secondary: false,
            tentative: false,
            dad_failed: false,
            deprecated: false,
        }
    }

    #[test]
    fn primary_ipv4_skips_secondaries_excluded_and_narrow_scopes() {
        let host = InterfaceAddress {
            scope: Scope::Host,
            ..entry("192.0.2.99", 32)
        };
        let secondary = InterfaceAddress {
            secondary: true,
            ..entry("198.51.100.2", 24)
        };
        let addresses = vec![
            entry("2001:db8::1", 64),
            host,
            secondary,
            entry("192.0.2.10", 32),
            entry("198.51.100.1", 24),
        ];
        assert_eq!(
            primary_ipv4(&addresses, &[]),
            Some(Ipv4Addr::new(192, 0, 2, 10))
        );
        let vip: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            primary_ipv4(&addresses, &[vip]),
            Some(Ipv4Addr::new(198, 51, 100, 1))
        );
        assert_eq!(
            primary_ipv4(&addresses[..2], &[]),
            Some(Ipv4Addr::new(192, 0, 2, 99))
        );
        assert_eq!(primary_ipv4(&addresses[..1], &[]), None);
    }

    #[test]
    fn link_local_must_be_bindable() {
        let tentative = InterfaceAddress {
            tentative: true,
            scope: Scope::Link,
            ..entry("fe80::1", 64)
        };
        let failed = InterfaceAddress {
            dad_failed: true,
            ..tentative.clone()
        };
        let usable = InterfaceAddress {
            scope: Scope::Link,
            ..entry("fe80::2", 64)
        };
        assert_eq!(
            ipv6_link_local(&[entry("2001:db8::1", 64), tentative.clone(), failed.clone()]),
            None
        );
        assert_eq!(
            ipv6_link_local(&[entry("2001:db8::1", 64), tentative, failed, usable]),
            Some("fe80::2".parse().unwrap())
        );
    }

    #[test]
    fn up_needs_admin_up_and_running() {
        let mut info = InterfaceInfo {
            index: 2,
            name: "v0".to_owned(),
            hardware_address: vec![2, 0, 0x5e, 0, 0, 1],
            mtu: Some(1500),
            admin_up: true,
            running: false,
            oper_state: OperState::LowerLayerDown,
        };
        assert!(!info.is_up());
        info.running = true;
        assert!(info.is_up());
        info.admin_up = false;
        assert!(!info.is_up());
        assert_eq!(info.mac(), Some([2, 0, 0x5e, 0, 0, 1]));
        info.hardware_address.clear();
        assert_eq!(info.mac(), None);
    }

    #[test]
    fn address_messages_prefer_local_and_read_the_full_flags() {
        let mut message = AddressMessage::default();
        message.header.index = 4;
        message.header.prefix_len = 30;
        message
            .attributes
            .push(AddressAttribute::Address("192.0.2.2".parse().unwrap()));
        message
            .attributes
            .push(AddressAttribute::Local("192.0.2.1".parse().unwrap()));
        message
            .attributes
            .push(AddressAttribute::Label("v0:x".to_owned()));
        message.attributes.push(AddressAttribute::Flags(
            AddressFlags::Secondary | AddressFlags::Deprecated,
        ));
        let parsed = InterfaceAddress::from_message(&message).unwrap();
        assert_eq!(parsed.address, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(parsed.ifindex, 4);
        assert_eq!(parsed.label.as_deref(), Some("v0:x"));
        assert!(parsed.secondary && parsed.deprecated && !parsed.tentative);
        assert_eq!(
            InterfaceAddress::from_message(&AddressMessage::default()),
            None
        );
    }

    mod in_a_namespace {
        use super::*;
        use crate::test_netns::TestNetns;

        #[test]
        fn facts_and_advert_source_addresses_of_a_veth() {
            let namespace = TestNetns::with_veth("vrrpnl-if");
            namespace.ip(&["link", "set", "dev", "v0", "mtu", "1400"]);
            namespace.ip(&["addr", "add", "198.51.100.1/24", "dev", "v0"]);
            namespace.ip(&["addr", "add", "198.51.100.2/24", "dev", "v0"]);
            namespace.ip(&["addr", "add", "192.0.2.10/32", "dev", "v0"]);
            namespace.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "v0"]);
            namespace.run(|| async move {
                let interfaces = Interfaces::new(crate::netlink::connect().unwrap());
                let v0 = interfaces.by_name("v0").await.unwrap();
                assert_eq!(interfaces.index_of("v0").await.unwrap(), v0.index);
                assert_eq!(interfaces.by_index(v0.index).await.unwrap(), v0);
                assert_eq!(v0.mac(), Some([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]));
                assert_eq!(v0.mtu, Some(1400));
                assert!(v0.is_up(), "{v0:?}");
                assert_eq!(v0.oper_state, OperState::Up);

                let addresses = interfaces.addresses(v0.index).await.unwrap();
                assert!(addresses.iter().all(|entry| entry.ifindex == v0.index));
                let secondary = addresses
                    .iter()
                    .find(|e| e.address == IpAddr::from([198, 51, 100, 2]))
                    .unwrap();
                assert!(secondary.secondary);
                assert_eq!(
                    primary_ipv4(&addresses, &[]),
                    Some(Ipv4Addr::new(198, 51, 100, 1))
                );
                // EUI-64 from 02:00:5e:10:00:01.
                assert_eq!(
                    ipv6_link_local(&addresses),
                    Some("fe80::5eff:fe10:1".parse().unwrap())
                );

                let everything = interfaces.all_addresses().await.unwrap();
                assert!(
                    everything
                        .iter()
                        .any(|e| e.address == IpAddr::from([127, 0, 0, 1]))
                );
                assert!(
                    everything
                        .iter()
                        .any(|e| e.address == "2001:db8:1::1".parse::<IpAddr>().unwrap())
                );
                let names: Vec<String> = interfaces
                    .all()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|i| i.name)
                    .collect();
                assert!(
                    names.contains(&"lo".to_owned()) && names.contains(&"v0p".to_owned()),
                    "{names:?}"
                );
            });
        }

        #[test]
        fn a_veth_without_its_peer_is_up_but_not_running() {
            let namespace = TestNetns::with_veth("vrrpnl-ifd");
            namespace.ip(&["link", "set", "dev", "v0p", "down"]);
            namespace.run(|| async move {
                let interfaces = Interfaces::new(crate::netlink::connect().unwrap());
                // Carrier loss reaches the flags through the kernel's
                // linkwatch, which may lag by up to a second.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                let v0 = loop {
                    let v0 = interfaces.by_name("v0").await.unwrap();
                    if !v0.running || tokio::time::Instant::now() > deadline {
                        break v0;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                };
                assert!(v0.admin_up && !v0.running && !v0.is_up(), "{v0:?}");
                assert_eq!(v0.oper_state, OperState::LowerLayerDown);
                let error = interfaces.by_name("nosuch0").await.unwrap_err();
                assert!(matches!(&error, NetlinkError::NoSuchInterface { device, .. } if device == "nosuch0"), "{error:?}");
                assert!(error.to_string().contains("looking up interface nosuch0"), "{error}");
                assert!(interfaces.by_name("much-too-long-name0").await.is_err());
            });
        }
    }
}
