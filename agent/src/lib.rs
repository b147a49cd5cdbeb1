//! vrrp-agent: a keepalived-compatible VRRP agent with an XDP datapath.
//!
//! The library exists for the `vrrp-agent` binary only (the end-to-end tests
//! and xtask run the binary, they do not link this crate). Its public surface
//! is exactly what `main.rs` calls, re-exported below; every module is
//! crate-private so the compiler reports code nothing runs.

mod advert_socket;
mod config;
mod control;
mod daemon;
mod datapath;
mod frame_socket;
mod memory;
mod metrics;
mod monitor;
mod netlink;
mod notify;
mod scheduling;
#[cfg(test)]
mod test_netns;
mod tracking;
mod vrrp;

pub use config::cli::{config_test, dump_config};
pub use config::default_config_id;
pub use control::{
    DEFAULT_SOCKET as DEFAULT_CONTROL_SOCKET, query_status, render_status, request_stop,
};
pub use daemon::{DaemonOptions, run as run_daemon};
pub use datapath::pin::{DEFAULT_PIN_ROOT, cleanup as cleanup_pins};
pub use memory::limit_allocator_arenas;
pub use monitor::{MonitorOptions, run as run_monitor};
pub use scheduling::{DEFAULT_PRIORITY as DEFAULT_REALTIME_PRIORITY, make_current_thread_realtime};
