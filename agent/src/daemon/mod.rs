//! The failover daemon: runs the instances of a keepalived.conf.

pub mod plan;
