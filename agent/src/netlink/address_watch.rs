//! Subscribes to address notifications (`RTNLGRP_IPV4_IFADDR`,
//! `RTNLGRP_IPV6_IFADDR`), so the daemon learns when an advert source address
//! changes (a primary IPv4 address removed, an IPv6 link-local address
//! finishing duplicate address detection) or when someone else removes a
//! virtual address.

use futures_util::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use super::error::NetlinkError;
use super::interface::InterfaceAddress;

const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressEvent {
    /// Added, or changed (flags such as tentative, or lifetimes).
    Changed(InterfaceAddress),
    Removed(InterfaceAddress),
    /// Notifications were lost: re-read the addresses you care about.
    Resync,
}

/// A running subscription. Dropping it stops the background tasks.
pub struct AddressWatcher {
    events: mpsc::UnboundedReceiver<AddressEvent>,
    tasks: [JoinHandle<()>; 2],
}

impl AddressWatcher {
    /// Must be called inside a tokio runtime; the socket belongs to the
    /// calling thread's network namespace. Only changes after this call are
    /// reported: list the addresses after starting the watcher, so none is
    /// missed in between.
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
        let (sender, events) = mpsc::unbounded_channel();
        let watch_task = tokio::spawn(async move {
            while let Some((message, _)) = notifications.next().await {
                let event = match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(address)) => {
                        InterfaceAddress::from_message(&address).map(AddressEvent::Changed)
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(address)) => {
                        InterfaceAddress::from_message(&address).map(AddressEvent::Removed)
                    }
                    NetlinkPayload::Overrun(_) => {
                        warn!("address notifications were lost (netlink receive buffer overrun)");
                        Some(AddressEvent::Resync)
                    }
                    _ => None,
                };
                if let Some(event) = event
                    && sender.send(event).is_err()
                {
                    return;
                }
            }
            error!(
                "the netlink address notification socket closed; address changes are no longer seen"
            );
        });
        Ok(AddressWatcher {
            events,
            tasks: [connection_task, watch_task],
        })
    }

    /// The next change; `None` once the subscription has died (logged).
    pub async fn next(&mut self) -> Option<AddressEvent> {
        self.events.recv().await
    }
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
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::test_netns::{TestNetns, ip_in};

    async fn next_event(watcher: &mut AddressWatcher) -> AddressEvent {
        tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("no address event within 5 s")
            .expect("the watcher stopped")
    }

    #[test]
    fn additions_flag_changes_and_removals_are_reported() {
        let namespace = TestNetns::with_veth("vrrpnl-aw");
        // DAD on, so the new IPv6 address changes from tentative to usable.
        namespace.sysctl("net.ipv6.conf.v0.accept_dad=1");
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let mut watcher = AddressWatcher::start().unwrap();
            ip_in(&name, &["addr", "add", "192.0.2.1/24", "dev", "v0"]);
            let AddressEvent::Changed(added) = next_event(&mut watcher).await else {
                panic!("expected the new address first");
            };
            assert_eq!(
                (added.address, added.prefix_len),
                ("192.0.2.1".parse::<IpAddr>().unwrap(), 24)
            );

            ip_in(&name, &["addr", "add", "2001:db8::1/64", "dev", "v0"]);
            let v6: IpAddr = "2001:db8::1".parse().unwrap();
            let mut saw_tentative = false;
            loop {
                match next_event(&mut watcher).await {
                    AddressEvent::Changed(entry) if entry.address == v6 => {
                        if !entry.tentative {
                            break;
                        }
                        saw_tentative = true;
                    }
                    other => assert!(matches!(other, AddressEvent::Changed(_)), "{other:?}"),
                }
            }
            assert!(saw_tentative, "the address is tentative until DAD ends");

            ip_in(&name, &["addr", "del", "192.0.2.1/24", "dev", "v0"]);
            loop {
                match next_event(&mut watcher).await {
                    AddressEvent::Removed(entry) => {
                        assert_eq!(entry.address, "192.0.2.1".parse::<IpAddr>().unwrap());
                        break;
                    }
                    other => assert!(matches!(other, AddressEvent::Changed(_)), "{other:?}"),
                }
            }
        });
    }
}
