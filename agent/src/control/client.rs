//! `vrrp-agent status`: the client side of the control socket.

use std::path::Path;

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{ControlError, StatusReport};

pub async fn query_status(path: &Path) -> Result<StatusReport, ControlError> {
    let value = request(path, &serde_json::json!({"command": "status"})).await?;
    serde_json::from_value(value).map_err(|error| ControlError::BadResponse {
        path: path.to_owned(),
        detail: error.to_string(),
    })
}

/// Asks the daemon to stop (see `ControlRequest::Stop`); returns its pid,
/// so the caller can wait for it to exit.
pub async fn request_stop(path: &Path, keep_datapath: bool) -> Result<u32, ControlError> {
    let request_value = serde_json::json!({"command": "stop", "keep_datapath": keep_datapath});
    let value = request(path, &request_value).await?;
    value["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| ControlError::BadResponse {
            path: path.to_owned(),
            detail: format!("no pid in {value}"),
        })
}

/// One request line, one response line; an `error` answer is an error.
async fn request(
    path: &Path,
    request: &serde_json::Value,
) -> Result<serde_json::Value, ControlError> {
    let unreachable = |source| ControlError::Unreachable {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).await.map_err(unreachable)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(unreachable)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .map_err(unreachable)?;
    let bad = |detail: String| ControlError::BadResponse {
        path: path.to_owned(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(&line).map_err(|error| bad(error.to_string()))?;
    if let Some(error) = value.get("error").and_then(|error| error.as_str()) {
        return Err(bad(error.to_owned()));
    }
    Ok(value)
}
