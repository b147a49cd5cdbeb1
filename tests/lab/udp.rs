//! A client's view of a VIP over UDP: an echo server bound to the VIP itself
//! (`IP_FREEBIND`, so it binds before the VIP exists and its replies are
//! sourced from the VIP, as a TCP server's are) and a pipelined client that
//! probes every interval and accepts only replies from the VIP carrying its
//! own run tag and a sequence number it sent. A reply from the node's
//! primary address, or one the egress guard dropped, counts as lost.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::host::Host;
use crate::sock;

/// The longest a probe run may be asked to last.
const MAX_PROBE_DURATION: Duration = Duration::from_secs(600);
/// How long [`UdpProbeRun::finish`] waits for replies still in flight.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(200);
/// Tag (8 bytes) + sequence number (8 bytes).
const PAYLOAD_LEN: usize = 16;

/// Answers every datagram on its address with the same bytes, from that
/// address, until dropped. [`mute`](Self::mute) plays a crashed host.
pub struct UdpEcho {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    mute: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Host {
    /// Starts a [`UdpEcho`] bound to `address` (typically `VIP:port`) with
    /// `IP_FREEBIND`: it binds whether or not the VIP is on this host yet.
    pub fn serve_udp_echo(&self, address: SocketAddr) -> Result<UdpEcho> {
        let socket = self
            .run(move || sock::udp_freebind(address))?
            .with_context(|| format!("UDP echo server in host {}", self.name()))?;
        // A short timeout keeps the loop responsive to `stop`.
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mute = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (stop_flag, mute_flag, counter) =
            (Arc::clone(&stop), Arc::clone(&mute), Arc::clone(&answered));
        let thread = thread::Builder::new()
            .name(format!("udp-echo-{}", self.name()))
            .spawn(move || {
                let mut buf = [0u8; 256];
                while !stop_flag.load(Ordering::Relaxed) {
                    if let Ok((len, peer)) = socket.recv_from(&mut buf)
                        && !mute_flag.load(Ordering::Relaxed)
                    {
                        // Counted before the echo leaves: a client that holds
                        // the reply must already see the count move.
                        counter.fetch_add(1, Ordering::SeqCst);
                        // Fails while the VIP is not local (a backup): nothing was answered then.
                        if socket.send_to(&buf[..len], peer).is_err() {
                            counter.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                }
            })
            .context("cannot start the UDP echo thread")?;
        Ok(UdpEcho {
            address,
            stop,
            mute,
            answered,
            thread: Some(thread),
        })
    }

    /// Sends one probe to `target` and waits up to `timeout` for its echo
    /// from `target` itself; returns the round-trip time.
    pub fn udp_echo_once(&self, target: SocketAddr, timeout: Duration) -> Result<Duration> {
        self.run(move || {
            let socket = UdpSocket::bind(unspecified(target))?;
            echo_once(&socket, target, next_tag(), 0, timeout)
        })?
        .with_context(|| format!("UDP echo from host {} to {target}", self.name()))
    }

    /// Starts a pipelined probe loop in this host: one datagram to `target`
    /// every `interval` (never bursting to catch up) for at most
    /// `max_duration`, replies collected on a second thread.
    pub fn start_udp_probe(
        &self,
        target: SocketAddr,
        interval: Duration,
        max_duration: Duration,
    ) -> Result<UdpProbeRun> {
        if interval.is_zero() || max_duration > MAX_PROBE_DURATION {
            bail!(
                "UDP probe every {interval:?} for {max_duration:?}: the interval must be > 0 and the duration at most {MAX_PROBE_DURATION:?}"
            );
        }
        let socket = self
            .run(move || UdpSocket::bind(unspecified(target)))?
            .with_context(|| format!("cannot open a UDP socket in host {}", self.name()))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let receive_socket = socket.try_clone()?;
        let tag = next_tag();
        let shared = Arc::new(ProbeShared {
            stop_sending: AtomicBool::new(false),
            stop_receiving: AtomicBool::new(false),
            answered: AtomicU64::new(0),
        });
        let started = Instant::now();
        let max_probes = (max_duration.as_micros() / interval.as_micros().max(1)) as u64 + 1;

        let flags = Arc::clone(&shared);
        let sender = thread::Builder::new()
            .name("udp-probe-send".into())
            .spawn(move || {
                let mut sent = Vec::new();
                let mut next = started;
                for seq in 0..max_probes {
                    if flags.stop_sending.load(Ordering::Relaxed)
                        || started.elapsed() >= max_duration
                    {
                        break;
                    }
                    let now = Instant::now();
                    if next > now {
                        thread::sleep(next - now);
                    }
                    next = next.max(Instant::now()) + interval;
                    sent.push(started.elapsed());
                    // A send error (no route to the VIP) is a lost probe, which is what is measured.
                    let _ = socket.send_to(&payload(tag, seq), target);
                }
                sent
            })
            .context("cannot start the UDP probe sender")?;

        let flags = Arc::clone(&shared);
        let receiver = thread::Builder::new()
            .name("udp-probe-recv".into())
            .spawn(move || {
                let mut replies = Vec::new();
                let mut foreign = 0u64;
                let mut buf = [0u8; 64];
                let limit = max_duration + IN_FLIGHT_GRACE;
                while !flags.stop_receiving.load(Ordering::Relaxed) && started.elapsed() < limit {
                    let Ok((len, source)) = receive_socket.recv_from(&mut buf) else {
                        continue;
                    };
                    match parse_reply(&buf[..len], tag) {
                        Some(seq) if source == target => {
                            flags.answered.fetch_add(1, Ordering::Relaxed);
                            replies.push((seq, started.elapsed()));
                        }
                        _ => foreign += 1,
                    }
                }
                (replies, foreign)
            })
            .context("cannot start the UDP probe receiver")?;
        Ok(UdpProbeRun {
            target,
            shared,
            started,
            sender,
            receiver,
        })
    }
}

impl UdpEcho {
    /// The address it is bound to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Datagrams answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// Stops answering (the service died with its host).
    pub fn mute(&self) {
        self.mute.store(true, Ordering::Relaxed);
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct ProbeShared {
    stop_sending: AtomicBool,
    stop_receiving: AtomicBool,
    answered: AtomicU64,
}

/// A UDP probe loop running in a client host (see [`Host::start_udp_probe`]).
pub struct UdpProbeRun {
    target: SocketAddr,
    shared: Arc<ProbeShared>,
    started: Instant,
    sender: thread::JoinHandle<Vec<Duration>>,
    receiver: thread::JoinHandle<(Vec<(u64, Duration)>, u64)>,
}

impl UdpProbeRun {
    /// Time since the loop started: events stamped with it line up with the trace.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Accepted replies so far.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// Waits (polling every ms) until the first accepted reply; returns when
    /// it came on the loop's clock. Fails after `timeout`.
    pub fn wait_for_first_answer(&self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        while self.answered() == 0 {
            if Instant::now() >= deadline {
                bail!(
                    "no reply from {} within {timeout:?} of probing",
                    self.target
                );
            }
            thread::sleep(Duration::from_millis(1));
        }
        Ok(self.now())
    }

    /// Stops sending, gives replies in flight [`IN_FLIGHT_GRACE`], and
    /// returns the trace.
    pub fn finish(self) -> Result<UdpTrace> {
        self.shared.stop_sending.store(true, Ordering::Relaxed);
        let sent = join(self.sender)?;
        thread::sleep(IN_FLIGHT_GRACE);
        self.shared.stop_receiving.store(true, Ordering::Relaxed);
        let (replies, foreign_replies) = join(self.receiver)?;
        let mut replied = vec![None; sent.len()];
        for (seq, at) in replies {
            if let Some(slot) = usize::try_from(seq).ok().and_then(|s| replied.get_mut(s)) {
                slot.get_or_insert(at);
            }
        }
        Ok(UdpTrace {
            sent,
            replied,
            foreign_replies,
        })
    }
}

fn join<T>(handle: thread::JoinHandle<T>) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow!("a UDP probe thread panicked"))
}

/// What a UDP probe loop saw; times are on the loop's clock.
#[derive(Debug, Clone, Default)]
pub struct UdpTrace {
    /// Send time of probe `seq`.
    pub sent: Vec<Duration>,
    /// Arrival of the accepted reply to probe `seq`, if one came.
    pub replied: Vec<Option<Duration>>,
    /// Datagrams received but refused: from another source than the target
    /// (e.g. the node's primary address) or not one of this run's probes.
    pub foreign_replies: u64,
}

/// Probes sent in a window of a [`UdpTrace`] and what became of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpWindow {
    /// Probes sent in the window.
    pub sent: u32,
    /// Of those, answered by the target.
    pub answered: u32,
    /// Of those, never answered.
    pub lost: u32,
    /// Longest time without an accepted reply to a probe of the window,
    /// counting from the window's start and up to its end.
    pub longest_gap: Duration,
}

impl UdpTrace {
    /// Accepted replies.
    pub fn successes(&self) -> usize {
        self.replied.iter().flatten().count()
    }

    /// Send time of the first probe that was answered.
    pub fn first_answered(&self) -> Option<Duration> {
        self.sent
            .iter()
            .zip(&self.replied)
            .find_map(|(sent, reply)| reply.map(|_| *sent))
    }

    /// The probes sent in `[from, to)`.
    pub fn window(&self, from: Duration, to: Duration) -> UdpWindow {
        let mut sent = 0u32;
        let mut arrivals = Vec::new();
        for (at, reply) in self.sent.iter().zip(&self.replied) {
            if *at >= from && *at < to {
                sent += 1;
                arrivals.extend(*reply);
            }
        }
        arrivals.sort();
        let answered = u32::try_from(arrivals.len()).unwrap_or(u32::MAX);
        // The window's edges count: a blackout that lasts to its end is a gap.
        let mut edges = vec![from];
        edges.extend(&arrivals);
        edges.push(to);
        let longest_gap = edges
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .max()
            .unwrap_or_default();
        UdpWindow {
            sent,
            answered,
            lost: sent - answered,
            longest_gap,
        }
    }

    /// Longest time between two consecutive replies, for gaps ending after
    /// `from` — the outage a client saw after an event at `from`. `None` if
    /// no reply came after `from` (the VIP never came back).
    pub fn longest_gap_after(&self, from: Duration) -> Option<Duration> {
        self.longest_gap_span(from, Duration::MAX)
            .map(|(_, length)| length)
    }

    /// The longest time without a reply that ended after `from` and began
    /// before `until`, cut at `until` (what came later is another event's),
    /// as `(last reply before it, length)`. `None` if no reply came after
    /// `from`.
    pub fn longest_gap_span(
        &self,
        from: Duration,
        until: Duration,
    ) -> Option<(Duration, Duration)> {
        let mut arrivals: Vec<Duration> = self.replied.iter().flatten().copied().collect();
        arrivals.sort();
        if !arrivals.iter().any(|t| *t > from) {
            return None;
        }
        let longest = arrivals
            .windows(2)
            .filter(|pair| pair[1] > from && pair[0] < until)
            .map(|pair| (pair[0], pair[1].min(until) - pair[0]))
            .max_by_key(|(_, length)| *length);
        // The first reply after `from` with none before still counts as a gap.
        Some(longest.unwrap_or_else(|| (from, arrivals[0].saturating_sub(from))))
    }
}

impl std::fmt::Display for UdpWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} probes sent, {} answered, {} lost, longest gap {:.1} ms",
            self.sent,
            self.answered,
            self.lost,
            self.longest_gap.as_secs_f64() * 1000.0
        )
    }
}

/// One probe on `socket`, waiting for its echo from `target` only.
pub(crate) fn echo_once(
    socket: &UdpSocket,
    target: SocketAddr,
    tag: u64,
    seq: u64,
    timeout: Duration,
) -> std::io::Result<Duration> {
    let sent_at = Instant::now();
    socket.send_to(&payload(tag, seq), target)?;
    let deadline = sent_at + timeout;
    let mut buf = [0u8; 64];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no echo from {target} within {timeout:?}"),
            ));
        }
        socket.set_read_timeout(Some(deadline - now))?;
        match socket.recv_from(&mut buf) {
            Ok((len, source)) if source == target && parse_reply(&buf[..len], tag) == Some(seq) => {
                return Ok(sent_at.elapsed());
            }
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err),
        }
    }
}

/// A tag no other probe run of this process uses, so concurrent runs never
/// take each other's replies.
pub(crate) fn next_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (u64::from(std::process::id()) << 32) | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The wildcard address of `target`'s family, any port.
pub(crate) fn unspecified(target: SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

fn payload(tag: u64, seq: u64) -> [u8; PAYLOAD_LEN] {
    let mut bytes = [0u8; PAYLOAD_LEN];
    bytes[..8].copy_from_slice(&tag.to_be_bytes());
    bytes[8..].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// The sequence number of an echo of one of `tag`'s probes.
fn parse_reply(datagram: &[u8], tag: u64) -> Option<u64> {
    let (tag_bytes, seq_bytes) = datagram.split_first_chunk::<8>()?;
    let seq_bytes: &[u8; 8] = seq_bytes.try_into().ok()?;
    (u64::from_be_bytes(*tag_bytes) == tag).then(|| u64::from_be_bytes(*seq_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn trace(replies: &[Option<u64>]) -> UdpTrace {
        UdpTrace {
            sent: (0..replies.len() as u64).map(ms).collect(),
            replied: replies.iter().map(|r| r.map(ms)).collect(),
            foreign_replies: 0,
        }
    }

    #[test]
    fn replies_of_another_run_or_malformed_are_refused() {
        assert_eq!(parse_reply(&payload(7, 42), 7), Some(42));
        assert_eq!(parse_reply(&payload(8, 42), 7), None);
        assert_eq!(parse_reply(&payload(7, 42)[..15], 7), None);
        let mut longer = payload(7, 42).to_vec();
        longer.push(0);
        assert_eq!(parse_reply(&longer, 7), None);
    }

    #[test]
    fn window_counts_only_probes_sent_inside_it() {
        let t = trace(&[Some(0), None, Some(2), None, None, Some(5), Some(6)]);
        let w = t.window(ms(1), ms(6));
        assert_eq!((w.sent, w.answered, w.lost), (5, 2, 3));
        assert_eq!(w.longest_gap, ms(3));
        assert_eq!(t.first_answered(), Some(ms(0)));
        assert_eq!(trace(&[None, None]).window(ms(0), ms(2)).longest_gap, ms(2));
        // A blackout lasting to the end of the window is a gap too.
        let tail = trace(&[Some(0), Some(1), None, None, None, None]);
        assert_eq!(tail.window(ms(0), ms(6)).longest_gap, ms(5));
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
    fn gaps_after_the_end_of_the_event_are_ignored_and_one_across_it_is_cut() {
        // The event's own outage (1 → 3), then a longer one after it ends
        // at 6 (a failback, say).
        let t = trace(&[
            Some(0),
            Some(1),
            None,
            Some(3),
            Some(4),
            Some(5),
            None,
            None,
            None,
            None,
            Some(10),
        ]);
        assert_eq!(t.longest_gap_span(ms(1), ms(6)), Some((ms(1), ms(2))));
        assert_eq!(t.longest_gap_span(ms(1), ms(7)), Some((ms(5), ms(2))));
        assert_eq!(
            t.longest_gap_span(ms(1), Duration::MAX),
            Some((ms(5), ms(5)))
        );
    }

    #[test]
    fn no_reply_after_the_fault_is_none() {
        let t = trace(&[Some(0), Some(1), None, None]);
        assert_eq!(t.longest_gap_after(ms(1)), None);
    }
}
