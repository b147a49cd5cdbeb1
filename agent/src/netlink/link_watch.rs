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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::netlink::link_tracker::LinkState;
    use crate::test_netns::{TestNetns, ip_in};

    /// The next event, failing the test after 5 s.
    async fn next_event(watcher: &mut LinkWatcher) -> LinkEvent {
        tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("no link event within 5 s")
            .expect("the watcher stopped")
    }

    /// Skips intermediate states (bringing a link up passes through "no
    /// carrier" while the kernel's linkwatch catches up) until `state`.
    async fn wait_for(watcher: &mut LinkWatcher, name: &str, state: LinkState) -> LinkEvent {
        loop {
            let event = next_event(watcher).await;
            assert_eq!(event.name, name, "only {name} changes: {event:?}");
            if event.state == state {
                return event;
            }
            assert!(!event.up, "an intermediate state is never up: {event:?}");
        }
    }

    #[test]
    fn reports_current_state_then_down_and_up_changes() {
        let namespace = TestNetns::with_veth("vrrpnl-lw");
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let mut watcher = LinkWatcher::start(WatchSet::names(["v0", "v9"]))
                .await
                .unwrap();
            let v0_index = {
                let first = next_event(&mut watcher).await;
                let second = next_event(&mut watcher).await;
                assert_eq!(
                    (first.name.as_str(), first.state, first.up),
                    ("v0", LinkState::Up, true)
                );
                assert_eq!(
                    second,
                    LinkEvent {
                        ifindex: None,
                        name: "v9".to_owned(),
                        up: false,
                        state: LinkState::Absent
                    }
                );
                first.ifindex.unwrap()
            };

            ip_in(&name, &["link", "set", "dev", "v0", "down"]);
            let down = wait_for(&mut watcher, "v0", LinkState::AdminDown).await;
            assert_eq!((down.ifindex, down.up), (Some(v0_index), false));
            ip_in(&name, &["link", "set", "dev", "v0", "up"]);
            assert!(wait_for(&mut watcher, "v0", LinkState::Up).await.up);

            // A veth loses IFF_RUNNING when its peer goes down.
            ip_in(&name, &["link", "set", "dev", "v0p", "down"]);
            let no_carrier = wait_for(&mut watcher, "v0", LinkState::NoCarrier).await;
            assert!(!no_carrier.up);
            ip_in(&name, &["link", "set", "dev", "v0p", "up"]);
            wait_for(&mut watcher, "v0", LinkState::Up).await;

            // Changes that leave the state alone are not reported.
            ip_in(&name, &["link", "set", "dev", "v0", "mtu", "1400"]);
            // Deleting closes the link first, so "down" may come before "absent".
            ip_in(&name, &["link", "del", "v0"]);
            let deleted = wait_for(&mut watcher, "v0", LinkState::Absent).await;
            assert_eq!(
                deleted,
                LinkEvent {
                    ifindex: Some(v0_index),
                    name: "v0".to_owned(),
                    up: false,
                    state: LinkState::Absent
                }
            );

            ip_in(
                &name,
                &["link", "add", "v9", "type", "veth", "peer", "name", "v9p"],
            );
            let created = next_event(&mut watcher).await;
            assert_eq!(
                (created.name.as_str(), created.state),
                ("v9", LinkState::AdminDown)
            );
            assert!(created.ifindex.is_some());
        });
    }

    #[test]
    fn watching_everything_reports_every_link() {
        let namespace = TestNetns::with_veth("vrrpnl-lwa");
        namespace.run(|| async move {
            let mut watcher = LinkWatcher::start(WatchSet::All).await.unwrap();
            let mut names = Vec::new();
            for _ in 0..3 {
                let event = next_event(&mut watcher).await;
                assert!(event.up, "{event:?}");
                names.push(event.name);
            }
            names.sort();
            assert_eq!(names, ["lo", "v0", "v0p"]);
        });
    }
}
