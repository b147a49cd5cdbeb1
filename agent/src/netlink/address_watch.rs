//! Subscribes to the kernel's address notifications (IPv4 and IPv6) and
//! reports which interface's addresses changed, and which address; the
//! daemon then re-reads what it needs (its own addresses, the advert
//! source) off its election task. The address lets it skip changes that
//! are its own virtual addresses coming and going, which cannot change
//! what it reads.

use std::net::IpAddr;

use futures_util::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::sys::AsyncSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use super::error::NetlinkError;

/// Room for a burst (many addresses added at once) before the kernel
/// drops notifications and every interface is reported changed.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

/// Which interface's addresses changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChange {
    Interface {
        ifindex: u32,
        /// The address added or removed; `None` if the message carried
        /// none (then anything on the interface may have changed).
        address: Option<IpAddr>,
    },
    /// Notifications were lost: any interface may have changed.
    Unknown,
}

/// A running subscription. Dropping it stops the background tasks.
pub struct AddressWatcher {
    changes: mpsc::UnboundedReceiver<AddressChange>,
    tasks: [JoinHandle<()>; 2],
}

impl AddressWatcher {
    /// Must be called inside a tokio runtime; the socket belongs to the
    /// calling thread's network namespace.
    pub fn start() -> Result<Self, NetlinkError> {
        let (mut connection, _handle, mut notifications) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(|source| NetlinkError::Socket { source })?;
        if let Err(error) = connection
            .socket_mut()
            .socket_mut()
            .set_rx_buf_sz(RECEIVE_BUFFER_BYTES)
        {
            debug!(%error, "could not enlarge the netlink receive buffer; keeping the default");
        }
        let connection_task = tokio::spawn(connection);
        let (sender, changes) = mpsc::unbounded_channel();
        let watch_task = tokio::spawn(async move {
            while let Some((message, _)) = notifications.next().await {
                let change = match message.payload {
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewAddress(address)
                        | RouteNetlinkMessage::DelAddress(address),
                    ) => AddressChange::Interface {
                        ifindex: address.header.index,
                        address: changed_address(&address),
                    },
                    NetlinkPayload::Overrun(_) => {
                        warn!(
                            "address notifications were lost (netlink receive buffer overrun); re-reading every interface"
                        );
                        AddressChange::Unknown
                    }
                    _ => continue,
                };
                if sender.send(change).is_err() {
                    return;
                }
            }
            error!(
                "the netlink address notification socket closed; address changes are no longer seen"
            );
        });
        Ok(Self {
            changes,
            tasks: [connection_task, watch_task],
        })
    }

    /// The next change; `None` once the subscription has died (logged).
    pub async fn next(&mut self) -> Option<AddressChange> {
        self.changes.recv().await
    }
}

/// The interface address a notification is about: IFA_LOCAL where present
/// (on a point-to-point IPv4 link IFA_ADDRESS is the peer), else
/// IFA_ADDRESS (IPv6 sends only that).
fn changed_address(message: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(local) => return Some(*local),
            AddressAttribute::Address(other) => address = Some(*other),
            _ => {}
        }
    }
    address
}

impl Drop for AddressWatcher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_netns::TestNetns;

    fn message(attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.attributes = attributes;
        message
    }

    #[test]
    fn the_changed_address_is_the_local_one_else_the_address() {
        let local: IpAddr = "192.0.2.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let cases: [(Vec<AddressAttribute>, Option<IpAddr>); 5] = [
            (
                vec![
                    AddressAttribute::Address(local),
                    AddressAttribute::Local(local),
                ],
                Some(local),
            ),
            // Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
            (
                vec![
                    AddressAttribute::Address(peer),
                    AddressAttribute::Local(local),
                ],
                Some(local),
            ),
            (
                vec![
                    AddressAttribute::Local(local),
                    AddressAttribute::Address(peer),
                ],
                Some(local),
            ),
            (vec![AddressAttribute::Address(v6)], Some(v6)),
            (vec![AddressAttribute::Label("v0".into())], None),
        ];
        for (attributes, expected) in cases {
            assert_eq!(
                changed_address(&message(attributes.clone())),
                expected,
                "{attributes:?}"
            );
        }
    }

    #[test]
    fn reports_the_interface_whose_addresses_changed() {
        let namespace = TestNetns::with_veth("vrrpnl-aw");
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let mut watcher = AddressWatcher::start().unwrap();
            let index = crate::datapath::interface_index("v0").unwrap();
            crate::test_netns::ip_in(&name, &["addr", "add", "192.0.2.10/24", "dev", "v0"]);
            let change = tokio::time::timeout(Duration::from_secs(5), watcher.next())
                .await
                .expect("no address change within 5 s")
                .expect("the watcher stopped");
            assert_eq!(
                change,
                AddressChange::Interface {
                    ifindex: index,
                    address: Some("192.0.2.10".parse().unwrap()),
                }
            );
        });
    }
}
