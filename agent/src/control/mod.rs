//! The control socket: `vrrp-agent status` asks the running daemon over a
//! unix socket (mode 0600, so only root reads it) for its state.
//!
//! Protocol: one JSON request line, one JSON response line, then close.

mod client;
mod server;
mod status;

pub use client::{query_status, request_stop};
pub use server::{ControlRequest, ControlServer};
pub use status::{InstanceStatus, StatusReport, TrackedStatus, render_status};

use std::path::PathBuf;

use thiserror::Error;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vrrp-agent.sock";

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("control socket {path}: {action} failed: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: another vrrp-agent is already listening there")]
    InUse { path: PathBuf },
    #[error(
        "control socket {path}: cannot reach the daemon ({source}); is vrrp-agent running, and are you root?"
    )]
    Unreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: the daemon's answer is not valid: {detail}")]
    BadResponse { path: PathBuf, detail: String },
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tokio::sync::mpsc;

    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            router_id: "node1".into(),
            pid: 42,
            instances: vec![InstanceStatus {
                name: "master1".into(),
                interface: "eth1".into(),
                vrid: 56,
                family: "ipv4".into(),
                version: 2,
                state: "MASTER".into(),
                base_priority: 100,
                effective_priority: 102,
                master_address: Some("192.0.2.1".into()),
                last_advert_age_ms: None,
                advert_interval_ms: 1000,
                virtual_addresses: vec!["203.0.113.10/32".into()],
                tracked: vec![TrackedStatus {
                    kind: "script".into(),
                    name: "chk_alive".into(),
                    status: "ok".into(),
                    weight: 2,
                }],
                transitions: 1,
                last_transition_unix: Some(1_700_000_000),
            }],
            counters: [("accepted".to_owned(), 7)].into_iter().collect(),
            interfaces: [(
                "eth1".to_owned(),
                [("accepted".to_owned(), 7), ("ttl".to_owned(), 0)]
                    .into_iter()
                    .collect(),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[tokio::test]
    async fn status_round_trips_over_a_private_socket() {
        let dir = std::env::temp_dir().join(format!("vrrp-control-{}", std::process::id()));
        let path = dir.join("agent.sock");
        let server = ControlServer::bind(&path).await.expect("bind");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            ControlServer::bind(&path).await,
            Err(ControlError::InUse { .. })
        ));

        let (requests, mut incoming) = mpsc::channel(4);
        tokio::spawn(server.serve(requests));
        tokio::spawn(async move {
            while let Some(ControlRequest::Status(reply)) = incoming.recv().await {
                let _ = reply.send(report());
            }
        });
        let answer = query_status(&path).await.expect("status");
        assert_eq!(answer, report());
        let text = render_status(&answer);
        assert!(
            text.contains("master1") && text.contains("102/100"),
            "{text}"
        );
        assert!(
            text.contains("track script chk_alive: ok (weight 2)"),
            "{text}"
        );
        // Per interface, only what moved.
        assert!(
            text.lines().any(|line| line == "  eth1: accepted=7"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_missing_daemon_is_reported_as_unreachable() {
        let path = std::env::temp_dir().join(format!("vrrp-absent-{}.sock", std::process::id()));
        assert!(matches!(
            query_status(&path).await,
            Err(ControlError::Unreachable { .. })
        ));
    }
}
