//! Subscribes to the kernel's link notifications (`RTNLGRP_LINK`) and turns
//! them into [`LinkEvent`]s on a channel; see [`super::link_tracker`] for what
//! counts as up and down.

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use super::error::{NetlinkError, failure};
use super::interface::InterfaceInfo;
use super::link_tracker::{LinkEvent, LinkSnapshot, LinkTracker, WatchSet};

/// Room for a burst of notifications (many interfaces flapping at once)
/// before the kernel drops them and we fall back to a full resync.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

/// A running subscription. Dropping it stops the background tasks.
pub struct LinkWatcher {
    events: mpsc::UnboundedReceiver<LinkEvent>,
    tasks: [JoinHandle<()>; 2],
}

impl LinkWatcher {
    /// Subscribes, then reads the current links, so no change falls between
    /// the two; the current state of every watched interface is the first
    /// batch of events. Must be called inside a tokio runtime; the netlink
    /// socket belongs to the calling thread's network namespace.
    pub async fn start(watch: WatchSet) -> Result<Self, NetlinkError> {
        let (mut connection, handle, mut notifications) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(|source| NetlinkError::Socket { source })?;
        if let Err(error) = connection
            .socket_mut()
            .socket_mut()
            .set_rx_buf_sz(RECEIVE_BUFFER_BYTES)
        {
            debug!(%error, "could not enlarge the netlink receive buffer; keeping the default");
        }
        let connection_task = tokio::spawn(connection);

        let mut tracker = LinkTracker::new(watch);
        let (sender, events) = mpsc::unbounded_channel();
        let links = match snapshot(&handle).await {
            Ok(links) => links,
            Err(error) => {
                connection_task.abort();
                return Err(error);
            }
        };
        for event in tracker.reconcile(&links, true) {
            // The receiver is in our hands until we return.
            let _ = sender.send(event);
        }

        let watch_task = tokio::spawn(async move {
            while let Some((message, _)) = notifications.next().await {
                let events = match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        link_snapshot(&link)
                            .map(|link| tracker.changed(&link))
                            .unwrap_or_default()
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))
                        if !is_bridge_port_message(&link) =>
                    {
                        tracker.removed(link.header.index)
                    }
                    NetlinkPayload::Overrun(_) => {
                        warn!(
                            "link notifications were lost (netlink receive buffer overrun); re-reading all links"
                        );
                        match snapshot(&handle).await {
                            Ok(links) => tracker.reconcile(&links, false),
                            Err(error) => {
                                error!(%error, "could not re-read links after lost notifications; link state may be stale until the next change");
                                Vec::new()
                            }
                        }
                    }
                    _ => Vec::new(),
                };
                for event in events {
                    debug!(name = %event.name, ifindex = ?event.ifindex, state = ?event.state, "link state changed");
                    if sender.send(event).is_err() {
                        return;
                    }
                }
            }
            error!("the netlink link notification socket closed; link changes are no longer seen");
        });
        Ok(LinkWatcher {
            events,
            tasks: [connection_task, watch_task],
        })
    }

    /// The next change; `None` once the subscription has died (logged).
    pub async fn next(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `RTM_DELLINK` with family `AF_BRIDGE` means "no longer a bridge port",
/// not "deleted"; `RTM_NEWLINK` with it repeats bridge-port details.
fn is_bridge_port_message(link: &LinkMessage) -> bool {
    link.header.interface_family == AddressFamily::Bridge
}

fn link_snapshot(link: &LinkMessage) -> Option<LinkSnapshot> {
    if is_bridge_port_message(link) {
        return None;
    }
    let info = InterfaceInfo::from_message(link);
    // The kernel always names links in these messages; a nameless one
    // cannot be matched against a watch list anyway.
    if info.name.is_empty() {
        return None;
    }
    Some(LinkSnapshot {
        ifindex: info.index,
        name: info.name,
        admin_up: info.admin_up,
        running: info.running,
    })
}

async fn snapshot(handle: &Handle) -> Result<Vec<LinkSnapshot>, NetlinkError> {
    let messages: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|error| failure(error, "listing interfaces for the link watcher", ""))?;
    Ok(messages.iter().filter_map(link_snapshot).collect())
}
