//! The daemon side of the control socket.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tracing::{debug, warn};

use super::{ControlError, StatusReport};

/// A question for the task that owns the election state.
#[derive(Debug)]
pub enum ControlRequest {
    Status(oneshot::Sender<StatusReport>),
    /// `vrrp-agent stop`: hand over like SIGTERM, or (`keep_datapath`) exit
    /// at once leaving addresses, guard and pinned datapath to the next
    /// daemon. Answered with the daemon's pid before it stops.
    Stop {
        keep_datapath: bool,
        reply: oneshot::Sender<u32>,
    },
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds `path` with mode 0600. A stale socket left by a crashed agent is
    /// replaced; a live one means another agent runs, which is refused.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        let io = |action| {
            move |source| ControlError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating the directory"))?;
        }
        let listener = UnixListener::bind(path).map_err(io("bind"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod 0600"))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// Answers clients until the request channel closes.
    pub async fn serve(self, requests: mpsc::Sender<ControlRequest>) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(path = %self.path.display(), %error, "control socket accept failed");
                    continue;
                }
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                if let Err(error) = answer(stream, requests).await {
                    debug!(%error, "control client went away");
                }
            });
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<ControlRequest>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).await?;
    let response = match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(request) if request["command"] == "status" => {
            let (reply, answer) = oneshot::channel();
            if requests.send(ControlRequest::Status(reply)).await.is_err() {
                serde_json::json!({"error": "the daemon is shutting down"})
            } else {
                match answer.await {
                    Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                    Err(_) => serde_json::json!({"error": "the daemon is shutting down"}),
                }
            }
        }
        Ok(request) if request["command"] == "stop" => {
            let keep_datapath = request["keep_datapath"].as_bool().unwrap_or(false);
            let (reply, answer) = oneshot::channel();
            let request = ControlRequest::Stop {
                keep_datapath,
                reply,
            };
            if requests.send(request).await.is_err() {
                serde_json::json!({"error": "the daemon is shutting down"})
            } else {
                match answer.await {
                    Ok(pid) => {
                        serde_json::json!({"stopping": true, "pid": pid, "keep_datapath": keep_datapath})
                    }
                    Err(_) => serde_json::json!({"error": "the daemon is shutting down"}),
                }
            }
        }
        _ => {
            serde_json::json!({"error": "unknown request; expected {\"command\":\"status\"} or {\"command\":\"stop\",\"keep_datapath\":BOOL}"})
        }
    };
    writer.write_all(format!("{response}\n").as_bytes()).await?;
    writer.shutdown().await
}
