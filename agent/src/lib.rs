//! vrrp-agent: a keepalived-compatible VRRP agent with an XDP datapath.

pub mod advert_socket;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod frame_socket;
pub mod monitor;
pub mod netlink;
pub mod notify;
pub mod scheduling;
#[cfg(test)]
pub(crate) mod test_netns;
pub mod tracking;
pub mod vrrp;
