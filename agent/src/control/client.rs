//! `vrrp-agent status`: the client side of the control socket.

use std::path::Path;

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{ControlError, StatusReport};

pub async fn query_status(path: &Path) -> Result<StatusReport, ControlError> {
    let unreachable = |source| ControlError::Unreachable {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).await.map_err(unreachable)?;
    stream
        .write_all(b"{\"command\":\"status\"}\n")
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
    serde_json::from_value(value).map_err(|error| bad(error.to_string()))
}
