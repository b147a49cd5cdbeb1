//! The daemon's view of, and hands on, the kernel's network configuration
//! (rtnetlink): virtual addresses and routes it adds and removes, facts about
//! interfaces (and the advert source addresses chosen from them), and a
//! watcher of link up/down and one of address changes.
//!
//! Ownership is the rule everything here follows: the agent only removes
//! addresses and routes it added itself ([`AddressManager`], [`RouteManager`]
//! keep the registry). An address that was already present when the agent
//! wanted to add it stays the operator's.
//!
//! All sockets belong to the network namespace of the thread that opened
//! them, which is what the tests rely on (see `test_netns`).

mod address;
mod address_manager;
mod address_watch;
mod device;
mod error;
mod interface;
pub(crate) mod link_tracker;
mod link_watch;
mod route;
mod route_manager;
mod scope;
pub mod unicast_filter;

pub use address::VirtualAddress;
pub use address_manager::AddressManager;
pub use address_watch::{AddressChange, AddressWatcher};
pub use device::Device;
pub use error::NetlinkError;
pub use interface::{Interfaces, ipv6_link_local, primary_ipv4};
pub use link_tracker::{LinkEvent, LinkState, WatchSet};
pub use link_watch::LinkWatcher;
pub use route::{RouteKind, VirtualRoute};
pub use route_manager::RouteManager;
pub use rtnetlink::Handle;
pub use scope::Scope;

use rtnetlink::sys::AsyncSocket;

/// Opens a request socket and runs its connection on the current tokio
/// runtime; the handle can be cloned and shared by the managers.
pub fn connect() -> Result<Handle, NetlinkError> {
    let (mut connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| NetlinkError::Socket { source })?;
    // Extended acks carry the kernel's reason for EINVAL and friends, which
    // the errors then quote.
    if let Err(error) = connection.socket_mut().socket_mut().set_ext_ack(true) {
        tracing::debug!(%error, "kernel does not support extended netlink acks");
    }
    tokio::spawn(connection);
    Ok(handle)
}
