//! vrrp-agent: a keepalived-compatible VRRP agent with an XDP datapath.

pub mod config;
pub mod datapath;
pub mod monitor;
pub mod netlink;
pub mod vrrp;
