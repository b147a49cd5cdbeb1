//! Health tracking: `vrrp_script`, `track_file`, `vrrp_track_process` and
//! the priority they yield.
//!
//! The IO side (tasks running scripts, polling files) reports changes on
//! channels; the decisions (rise/fall hysteresis, weights, effective
//! priority) are plain functions the election owner calls. Inputs are small
//! plain structs the daemon fills from the parsed keepalived.conf, so this
//! module does not depend on the config parser.

pub mod command;
pub mod exec;
pub mod file;
pub mod hysteresis;
pub mod proc_events;
pub mod process;
pub mod script;
pub mod security;
#[cfg(test)]
pub(crate) mod test_support;
pub mod user;

pub use command::CommandLine;
pub use file::{FileEvent, InitFile, TrackFileSpec, spawn_file_tracker};
pub use hysteresis::ScriptStatus;
pub use proc_events::{MonitorOptions, ProcessMonitor};
pub use process::{ProcessSpec, QuorumChange};
pub use script::{ScriptEvent, ScriptSpec, spawn_script_tracker};
pub use user::{RunAs, UserError, UserSpec, resolve_run_as};
