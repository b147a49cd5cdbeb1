//! The failover daemon: runs the instances of a keepalived.conf.

pub mod adverts;
pub mod announce;
pub mod hooks;
pub mod netops;
pub mod plan;
