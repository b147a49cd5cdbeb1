//! vrrp-agent: a keepalived-compatible VRRP agent with an XDP datapath.

pub mod advert_socket;
pub mod config;
pub mod datapath;
pub mod monitor;
pub mod vrrp;
