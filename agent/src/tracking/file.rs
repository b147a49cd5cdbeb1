//! `track_file` (`vrrp_track_file`): an integer in a file adjusts priority.
//!
//! Reading follows keepalived: the first 127 bytes are parsed like C's
//! `strtol(buf, NULL, 0)` (leading blanks, optional sign, `0x` hex or
//! leading-`0` octal, trailing text ignored); a missing, unreadable, empty or
//! unparsable file reads as 0; the value is clamped to -254..=254. What the
//! value does to an instance is decided by the election (see `vrrp::election`).
//!
//! We poll instead of using inotify as keepalived does: a stat+read of a tiny
//! file every `poll_interval` is negligible, needs no extra dependency, and
//! sees every way a file can change (in-place write, rename over it,
//! deletion, a directory that appears later, network file systems) where an
//! inotify watch has to be re-armed for several of those. The price is up to
//! one poll interval of latency, which is small next to advert intervals.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// keepalived reads at most this much of the file.
const READ_LIMIT: u64 = 127;
const VALUE_LIMIT: i64 = 254;

/// Default polling period.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Floor for the polling period (a zero period would spin).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `init_file [VALUE] [overwrite]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitFile {
    /// keepalived's default is 0.
    pub value: i64,
    /// Also replace an existing file's contents.
    pub overwrite: bool,
}

/// One `track_file` block, filled from the parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFileSpec {
    pub name: String,
    pub path: PathBuf,
    /// Default weight for trackers that do not set their own (keepalived: 1).
    pub weight: i32,
    pub reverse: bool,
    pub init: Option<InitFile>,
}

impl TrackFileSpec {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            weight: 1,
            reverse: false,
            init: None,
        }
    }
}

/// A tracked file's value changed (the first reading is always reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    pub name: String,
    pub value: i64,
}

#[derive(Debug, Error)]
pub enum TrackFileError {
    #[error(
        "cannot initialise track file `{name}` at {path}: {source} (check the directory exists and is writable, or drop `init_file`)"
    )]
    Init {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// Parses a track file's contents the way keepalived does (see module doc).
pub fn parse_value(contents: &[u8]) -> i64 {
    let mut rest = contents;
    while let [b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest {
        [b'-', tail @ ..] => {
            rest = tail;
            true
        }
        [b'+', tail @ ..] => {
            rest = tail;
            false
        }
        _ => false,
    };
    let radix = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => {
            rest = &rest[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let mut magnitude: i64 = 0;
    for &b in rest {
        let Some(digit) = char::from(b).to_digit(radix) else {
            break;
        };
        magnitude = magnitude
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(digit));
    }
    let value = if negative { -magnitude } else { magnitude };
    value.clamp(-VALUE_LIMIT, VALUE_LIMIT)
}

/// Reads the current value; every failure to read counts as 0.
pub fn read_value(path: &Path) -> (i64, Option<io::Error>) {
    let mut buf = Vec::with_capacity(READ_LIMIT as usize);
    match std::fs::File::open(path).and_then(|f| f.take(READ_LIMIT).read_to_end(&mut buf)) {
        Ok(_) => (parse_value(&buf), None),
        Err(err) => (0, Some(err)),
    }
}

/// Applies `init_file`: writes the value when the file is missing, or always
/// with `overwrite`.
pub fn init_file(spec: &TrackFileSpec) -> Result<(), TrackFileError> {
    let Some(init) = spec.init else {
        return Ok(());
    };
    if !init.overwrite && spec.path.exists() {
        return Ok(());
    }
    std::fs::write(&spec.path, format!("{}\n", init.value)).map_err(|source| TrackFileError::Init {
        name: spec.name.clone(),
        path: spec.path.clone(),
        source,
    })
}

/// Starts polling `spec.path`, after applying `init_file`. The first value is
/// sent right away, then every change.
pub fn spawn_file_tracker(
    spec: TrackFileSpec,
    poll_interval: Duration,
    events: mpsc::Sender<FileEvent>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, TrackFileError> {
    init_file(&spec)?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = poll(&spec, poll_interval, &events) => {}
        }
        tracing::debug!(track_file = %spec.name, "file tracker stopped");
    }))
}

async fn poll(spec: &TrackFileSpec, poll_interval: Duration, events: &mpsc::Sender<FileEvent>) {
    let mut last: Option<i64> = None;
    let mut last_error_kind: Option<io::ErrorKind> = None;
    let mut ticker = tokio::time::interval(poll_interval.max(MIN_POLL_INTERVAL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let path = spec.path.clone();
        let (value, error) = tokio::task::spawn_blocking(move || read_value(&path))
            .await
            .unwrap_or((0, None));
        let error_kind = error.as_ref().map(io::Error::kind);
        if error_kind != last_error_kind {
            if let Some(err) = &error {
                tracing::warn!(track_file = %spec.name, path = %spec.path.display(), error = %err, "cannot read track file; using value 0");
            }
            last_error_kind = error_kind;
        }
        if last == Some(value) {
            continue;
        }
        tracing::info!(track_file = %spec.name, value, "track file value changed");
        last = Some(value);
        let event = FileEvent {
            name: spec.name.clone(),
            value,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_strtol() {
        assert_eq!(parse_value(b"42\n"), 42);
        assert_eq!(parse_value(b"  -17 trailing"), -17);
        assert_eq!(parse_value(b"+5"), 5);
        assert_eq!(parse_value(b"0x1f"), 31);
        assert_eq!(parse_value(b"010"), 8);
        assert_eq!(parse_value(b"0x"), 0);
        assert_eq!(parse_value(b"abc"), 0);
        assert_eq!(parse_value(b""), 0);
        assert_eq!(parse_value(b"-"), 0);
        assert_eq!(parse_value(b"1000"), 254);
        assert_eq!(parse_value(b"-99999999999999999999999"), -254);
        assert_eq!(parse_value("\u{e9}12".as_bytes()), 0);
    }

    #[test]
    fn missing_file_reads_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (value, err) = read_value(&dir.path().join("absent"));
        assert_eq!(value, 0);
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn only_the_first_127_bytes_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long");
        let mut text = " ".repeat(126);
        text.push_str("99");
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_value(&path).0, 9);
    }

    #[test]
    fn init_file_creates_or_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = TrackFileSpec::new("tf", dir.path().join("v"));
        spec.init = Some(InitFile {
            value: 0,
            overwrite: false,
        });
        init_file(&spec).unwrap();
        assert_eq!(std::fs::read_to_string(&spec.path).unwrap(), "0\n");

        std::fs::write(&spec.path, "7\n").unwrap();
        spec.init = Some(InitFile {
            value: 3,
            overwrite: false,
        });
        init_file(&spec).unwrap();
        assert_eq!(std::fs::read_to_string(&spec.path).unwrap(), "7\n");

        spec.init = Some(InitFile {
            value: -3,
            overwrite: true,
        });
        init_file(&spec).unwrap();
        assert_eq!(std::fs::read_to_string(&spec.path).unwrap(), "-3\n");

        let bad = TrackFileSpec {
            init: Some(InitFile {
                value: 1,
                overwrite: true,
            }),
            ..TrackFileSpec::new("bad", dir.path().join("no-dir/v"))
        };
        let err = init_file(&bad).unwrap_err();
        assert!(err.to_string().contains("bad"));
    }

    #[tokio::test]
    async fn reports_initial_value_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = TrackFileSpec::new("tf", dir.path().join("v"));
        spec.init = Some(InitFile {
            value: 5,
            overwrite: false,
        });
        let path = spec.path.clone();
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_file_tracker(spec, Duration::from_millis(20), tx, cancel.clone()).unwrap();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap()
                .value
        };
        assert_eq!(next().await, 5);
        // Replace atomically, as tools usually do.
        let tmp = dir.path().join("v.tmp");
        std::fs::write(&tmp, "-20\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(next().await, -20);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(next().await, 0);
        std::fs::write(&path, "12").unwrap();
        assert_eq!(next().await, 12);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn zero_poll_interval_does_not_panic_or_spin() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TrackFileSpec::new("tf", dir.path().join("absent"));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_file_tracker(spec, Duration::ZERO, tx, cancel.clone()).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            first,
            FileEvent {
                name: "tf".into(),
                value: 0
            }
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
