//! Subscribes to the kernel's address notifications (IPv4 and IPv6) and
//! reports which interface's addresses changed; the daemon then re-reads
//! what it needs (its own addresses, the advert source) off its election
//! task. Only the interface is reported: one re-read answers a burst.

use futures_util::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
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
    Interface(u32),
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
                    ) => AddressChange::Interface(address.header.index),
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
            assert_eq!(change, AddressChange::Interface(index));
        });
    }
}
