//! HTTP as a client sees it: one-shot `GET /` returning the body, and a
//! bounded probe loop recording which server answered each probe, to measure
//! both outages and when a virtual IP's answers switched to another host.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::host::Host;

/// The longest a probe loop may be asked to run.
const MAX_PROBE_DURATION: Duration = Duration::from_secs(120);

/// One probe of an [`HttpProbeRun`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSample {
    /// When the probe started, from the start of the loop.
    pub at: Duration,
    /// The trimmed body of a `200` answer, `None` if the probe failed.
    pub body: Option<String>,
}

/// Everything a probe loop saw.
#[derive(Debug, Clone, Default)]
pub struct HttpProbeReport {
    /// Every probe, in order.
    pub samples: Vec<HttpSample>,
    /// How long the loop ran.
    pub elapsed: Duration,
}

impl HttpProbeReport {
    /// The longest stretch without any successful answer: from the start of
    /// the first failed probe to the start of the next successful one (or
    /// the end of the loop). Zero if no probe failed.
    pub fn longest_outage(&self) -> Duration {
        let mut longest = Duration::ZERO;
        let mut failing_since = None;
        for sample in &self.samples {
            match (&sample.body, failing_since) {
                (None, None) => failing_since = Some(sample.at),
                (Some(_), Some(since)) => {
                    longest = longest.max(sample.at - since);
                    failing_since = None;
                }
                _ => {}
            }
        }
        if let Some(since) = failing_since {
            longest = longest.max(self.elapsed.saturating_sub(since));
        }
        longest
    }

    /// Start of the final run of probes all answered with `body`: from then
    /// on, every probe got `body`. `None` if the last probe did not.
    pub fn steady_from(&self, body: &str) -> Option<Duration> {
        let last_other = self
            .samples
            .iter()
            .rposition(|s| s.body.as_deref() != Some(body));
        let first_steady = last_other.map_or(0, |index| index + 1);
        self.samples.get(first_steady).map(|s| s.at)
    }

    /// How many probes got `body`.
    pub fn count(&self, body: &str) -> usize {
        self.samples
            .iter()
            .filter(|s| s.body.as_deref() == Some(body))
            .count()
    }

    /// The answers as runs, e.g. `node1 x120 @0ms, fail x31 @1210ms, node2 x400 @1520ms`.
    pub fn summary(&self) -> String {
        let mut runs: Vec<(String, usize, Duration)> = Vec::new();
        for sample in &self.samples {
            let label = sample.body.clone().unwrap_or_else(|| "fail".to_owned());
            match runs.last_mut() {
                Some((last, count, _)) if *last == label => *count += 1,
                _ => runs.push((label, 1, sample.at)),
            }
        }
        runs.iter()
            .map(|(label, count, at)| format!("{label} x{count} @{}ms", at.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An HTTP probe loop running on a background thread in a host.
pub struct HttpProbeRun {
    stop: Arc<AtomicBool>,
    started: Instant,
    handle: thread::JoinHandle<HttpProbeReport>,
}

impl HttpProbeRun {
    /// Time since the loop started (to relate test events to sample times).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the loop now and returns what it saw.
    pub fn finish(self) -> Result<HttpProbeReport> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok(report) => Ok(report),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Host {
    /// `GET /` from this host to `target` (HTTP/1.0); returns the trimmed
    /// body of a `200` answer, fails on anything else.
    pub fn http_get(&self, target: SocketAddr, timeout: Duration) -> Result<String> {
        self.run(move || get(target, timeout))?
            .with_context(|| format!("HTTP GET from host {} to {target}", self.name()))
    }

    /// Starts a loop in this host sending `GET /` to `target` every
    /// `interval` (each probe given `timeout` to connect and `timeout` to
    /// answer) for at most `max_duration`.
    pub fn start_http_probe(
        &self,
        target: SocketAddr,
        interval: Duration,
        timeout: Duration,
        max_duration: Duration,
    ) -> Result<HttpProbeRun> {
        if interval.is_zero() || max_duration > MAX_PROBE_DURATION {
            bail!(
                "HTTP probe every {interval:?} for {max_duration:?}: the interval must be > 0 and the duration at most {MAX_PROBE_DURATION:?}"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let started = Instant::now();
        let handle = self.spawn_thread(move || {
            probe_loop(target, interval, timeout, max_duration, started, &stop_flag)
        })?;
        Ok(HttpProbeRun {
            stop,
            started,
            handle,
        })
    }
}

fn probe_loop(
    target: SocketAddr,
    interval: Duration,
    timeout: Duration,
    max_duration: Duration,
    started: Instant,
    stop: &AtomicBool,
) -> HttpProbeReport {
    let mut report = HttpProbeReport::default();
    let mut next_start = started;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < max_duration {
        let now = Instant::now();
        if now < next_start {
            thread::sleep(next_start - now);
            continue;
        }
        // Never catch up on missed slots: one late probe, not a burst.
        next_start = (next_start + interval).max(now);
        let body = get(target, timeout).ok();
        report.samples.push(HttpSample {
            at: now - started,
            body,
        });
    }
    report.elapsed = started.elapsed();
    report
}

fn get(target: SocketAddr, timeout: Duration) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("cannot connect to {target}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    // HTTP/1.0: the server closes after the answer; bounded by the deadline.
    loop {
        if Instant::now() >= deadline {
            bail!("{target} did not finish its answer within {timeout:?}");
        }
        match stream.read(&mut chunk)? {
            0 => break,
            n => answer.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
        if answer.len() > 64 * 1024 {
            bail!("{target} answered with more than 64 KiB");
        }
    }
    parse_answer(&answer).with_context(|| format!("answer of {target}"))
}

/// The trimmed body of a `200` answer.
fn parse_answer(answer: &[u8]) -> Result<String> {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("not an HTTP answer (no end of headers): {text:?}");
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("status {status:?}, expected 200");
    }
    Ok(body.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, body: Option<&str>) -> HttpSample {
        HttpSample {
            at: Duration::from_millis(ms),
            body: body.map(str::to_owned),
        }
    }

    fn report(samples: Vec<HttpSample>, elapsed_ms: u64) -> HttpProbeReport {
        HttpProbeReport {
            samples,
            elapsed: Duration::from_millis(elapsed_ms),
        }
    }

    #[test]
    fn parses_the_body_of_a_200_answer_only() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nnode1\n";
        assert_eq!(parse_answer(ok).unwrap(), "node1");
        let not_found = b"HTTP/1.1 404 Not Found\r\n\r\nnope";
        assert!(format!("{:#}", parse_answer(not_found).unwrap_err()).contains("404"));
        assert!(parse_answer(b"garbage").is_err());
    }

    #[test]
    fn outage_spans_failed_probes_up_to_the_next_answer() {
        let r = report(
            vec![
                sample(0, Some("a")),
                sample(10, None),
                sample(20, None),
                sample(50, Some("b")),
                sample(60, None),
            ],
            80,
        );
        assert_eq!(r.longest_outage(), Duration::from_millis(40));
        assert_eq!(r.steady_from("b"), None);
        assert_eq!(r.count("b"), 1);
        assert_eq!(
            r.summary(),
            "a x1 @0ms, fail x2 @10ms, b x1 @50ms, fail x1 @60ms"
        );
    }

    #[test]
    fn steady_from_is_the_start_of_the_final_run() {
        let r = report(
            vec![
                sample(0, Some("a")),
                sample(10, Some("b")),
                sample(20, Some("a")),
                sample(30, Some("b")),
                sample(40, Some("b")),
            ],
            50,
        );
        assert_eq!(r.steady_from("b"), Some(Duration::from_millis(30)));
        assert_eq!(r.steady_from("a"), None);
        assert_eq!(r.longest_outage(), Duration::ZERO);
        let all_b = report(vec![sample(0, Some("b"))], 10);
        assert_eq!(all_b.steady_from("b"), Some(Duration::ZERO));
    }
}
