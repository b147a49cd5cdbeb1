//! The client's view of the VIP: a UDP echo responder on each router and a
//! client probing every millisecond, recording when each reply came back.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lab::Host;

/// Port the echo responders listen on.
pub const ECHO_PORT: u16 = 7007;

/// Answers every datagram on [`ECHO_PORT`] with itself, until dropped; can
/// be muted to play a crashed host.
pub struct Responder {
    stop: Arc<AtomicBool>,
    mute: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    pub fn start(host: &Host) -> Result<Self> {
        let socket = host
            .run(|| UdpSocket::bind(("0.0.0.0", ECHO_PORT)))?
            .with_context(|| format!("cannot bind UDP {ECHO_PORT} in host {}", host.name()))?;
        // A short timeout keeps the loop responsive to `stop`.
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mute = Arc::new(AtomicBool::new(false));
        let (stop_flag, mute_flag) = (Arc::clone(&stop), Arc::clone(&mute));
        let thread = thread::Builder::new()
            .name(format!("echo-{}", host.name()))
            .spawn(move || {
                let mut buf = [0u8; 256];
                while !stop_flag.load(Ordering::Relaxed) {
                    if let Ok((len, peer)) = socket.recv_from(&mut buf)
                        && !mute_flag.load(Ordering::Relaxed)
                    {
                        let _ = socket.send_to(&buf[..len], peer);
                    }
                }
            })?;
        Ok(Self {
            stop,
            mute,
            thread: Some(thread),
        })
    }

    /// Stops answering (the service died with its host).
    pub fn mute(&self) {
        self.mute.store(true, Ordering::Relaxed);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a probe run saw; times are from the start of the run.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Send time of probe `seq`.
    pub sent: Vec<Duration>,
    /// Arrival time of the reply to probe `seq`, if one came.
    pub replied: Vec<Option<Duration>>,
}

impl Trace {
    /// Longest time between two consecutive replies, for gaps ending after
    /// `from` — the outage a client saw. `None` if no reply came after `from`
    /// (the VIP never came back).
    pub fn longest_gap_after(&self, from: Duration) -> Option<Duration> {
        let mut arrivals: Vec<Duration> = self.replied.iter().flatten().copied().collect();
        arrivals.sort();
        if !arrivals.iter().any(|t| *t > from) {
            return None;
        }
        let longest = arrivals
            .windows(2)
            .filter(|pair| pair[1] > from)
            .map(|pair| pair[1] - pair[0])
            .max();
        // The first reply after `from` with none before still counts as a gap.
        Some(longest.unwrap_or_else(|| arrivals[0].saturating_sub(from)))
    }

    /// Replies received.
    pub fn successes(&self) -> usize {
        self.replied.iter().flatten().count()
    }
}

/// A probe loop running in a client host.
pub struct Prober {
    stop: Arc<AtomicBool>,
    started: Instant,
    sender: thread::JoinHandle<Vec<Duration>>,
    receiver: thread::JoinHandle<Vec<(u64, Duration)>>,
}

impl Prober {
    /// Sends a probe to `target` every `interval`, for at most `max_duration`.
    pub fn start(
        host: &Host,
        target: SocketAddr,
        interval: Duration,
        max_duration: Duration,
    ) -> Result<Self> {
        let socket = host
            .run(|| UdpSocket::bind(("0.0.0.0", 0)))?
            .with_context(|| format!("cannot open a UDP socket in host {}", host.name()))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let receive_socket = socket.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let max_probes = (max_duration.as_micros() / interval.as_micros().max(1)) as u64 + 1;

        let stop_flag = Arc::clone(&stop);
        let sender = thread::Builder::new()
            .name("probe-send".into())
            .spawn(move || {
                let mut sent = Vec::new();
                let mut payload = [0u8; 32];
                let mut next = started;
                for seq in 0..max_probes {
                    if stop_flag.load(Ordering::Relaxed) || started.elapsed() >= max_duration {
                        break;
                    }
                    let now = Instant::now();
                    if next > now {
                        thread::sleep(next - now);
                    }
                    // Never burst to catch up after a late wake-up.
                    next = next.max(Instant::now()) + interval;
                    payload[..8].copy_from_slice(&seq.to_be_bytes());
                    sent.push(started.elapsed());
                    // Unreachable-VIP errors are what is being measured.
                    let _ = socket.send_to(&payload, target);
                }
                sent
            })?;

        let stop_flag = Arc::clone(&stop);
        let receiver = thread::Builder::new()
            .name("probe-recv".into())
            .spawn(move || {
                let mut replies = Vec::new();
                let mut buf = [0u8; 64];
                while !stop_flag.load(Ordering::Relaxed) && started.elapsed() < max_duration {
                    if let Ok((len, _)) = receive_socket.recv_from(&mut buf)
                        && len >= 8
                    {
                        let mut seq = [0u8; 8];
                        seq.copy_from_slice(&buf[..8]);
                        replies.push((u64::from_be_bytes(seq), started.elapsed()));
                    }
                }
                replies
            })?;
        Ok(Self {
            stop,
            started,
            sender,
            receiver,
        })
    }

    /// Time since the probe loop started (to timestamp events on its clock).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops probing (after a last moment for replies in flight) and returns the trace.
    pub fn finish(self) -> Trace {
        thread::sleep(Duration::from_millis(30));
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().unwrap_or_default();
        let replies = self.receiver.join().unwrap_or_default();
        let mut replied = vec![None; sent.len()];
        for (seq, at) in replies {
            if let Some(slot) = usize::try_from(seq).ok().and_then(|s| replied.get_mut(s)) {
                slot.get_or_insert(at);
            }
        }
        Trace { sent, replied }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn trace(replies: &[Option<u64>]) -> Trace {
        Trace {
            sent: (0..replies.len() as u64).map(ms).collect(),
            replied: replies.iter().map(|r| r.map(ms)).collect(),
        }
    }

    #[test]
    fn gap_spans_the_outage_after_the_fault() {
        let t = trace(&[Some(0), Some(1), None, None, None, Some(5), Some(6)]);
        assert_eq!(t.longest_gap_after(ms(1)), Some(ms(4)));
        assert_eq!(t.successes(), 4);
    }

    #[test]
    fn gaps_before_the_fault_are_ignored() {
        let t = trace(&[Some(0), None, None, Some(3), Some(4), None, Some(6)]);
        assert_eq!(t.longest_gap_after(ms(4)), Some(ms(2)));
    }

    #[test]
    fn no_reply_after_the_fault_is_none() {
        let t = trace(&[Some(0), Some(1), None, None]);
        assert_eq!(t.longest_gap_after(ms(1)), None);
    }
}
