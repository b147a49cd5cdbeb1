//! The IO side of `vrrp_track_process`: the kernel's process events (the
//! proc connector: NETLINK_CONNECTOR, CN_IDX_PROC) and `/proc`, feeding the
//! counting in [`super::process`].
//!
//! One monitor serves every tracker, on its own thread: each exec on the
//! host means reading `/proc/PID/comm` (and `cmdline` for `full_command`
//! trackers), and a read of another process's command line can wait on
//! that process, which the election task must never do. The socket is
//! opened when the first tracker starts, so a configuration without
//! `track_process` never opens it.
//!
//! Order at start: subscribe first, then scan `/proc`, so a process that
//! starts during the scan is seen by one or the other. When the kernel
//! drops events (ENOBUFS: the receive buffer was full), the receive buffer
//! is doubled and `/proc` is scanned again after a second, as keepalived
//! does.
//!
//! The kernel accepts the subscription only from the initial network
//! namespace. A daemon in another namespace (the tests run every daemon in
//! one) names the initial one with `--process-events-netns`: the socket is
//! created there, by this thread, which then returns to its own namespace.
//! Where the subscription fails (no `CONFIG_PROC_EVENTS`, no flag), the
//! monitor says so and reads `/proc` every second instead.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::process::{ProcEntry, ProcessSpec, ProcessTable, QuorumChange};

const NETLINK_CONNECTOR: libc::c_int = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// `what`, `cpu`, `timestamp_ns`.
const PROC_EVENT_HEADER: usize = 16;
const EVENT_DATA: usize = NLMSG_HDRLEN + CN_MSG_LEN + PROC_EVENT_HEADER;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// How long after lost events `/proc` is read again (keepalived: 1 s).
const RESCAN_AFTER_LOSS: Duration = Duration::from_secs(1);

/// How often `/proc` is read when the kernel's events are not available.
const POLL_WITHOUT_EVENTS: Duration = Duration::from_secs(1);

/// A process event the trackers care about (threads are filtered out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEvent {
    /// The kernel confirmed the subscription.
    Ack,
    Fork {
        parent: i32,
        child: i32,
    },
    Exec {
        pid: i32,
    },
    Comm {
        pid: i32,
        comm: Vec<u8>,
    },
    Exit {
        pid: i32,
    },
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// Reads one datagram from the proc connector; `None` for anything that
/// is not a process event of a whole process.
pub fn parse_event(buf: &[u8]) -> Option<ProcEvent> {
    let length = usize::try_from(u32_at(buf, 0)?).ok()?;
    if length < EVENT_DATA || length > buf.len() {
        return None;
    }
    let buf = &buf[..length];
    let kind = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
    if kind == libc::NLMSG_ERROR as u16 || kind == libc::NLMSG_NOOP as u16 {
        return None;
    }
    if u32_at(buf, NLMSG_HDRLEN)? != CN_IDX_PROC || u32_at(buf, NLMSG_HDRLEN + 4)? != CN_VAL_PROC {
        return None;
    }
    let what = u32_at(buf, NLMSG_HDRLEN + CN_MSG_LEN)?;
    let data = EVENT_DATA;
    // A thread's pid differs from its process's (tgid): only processes
    // start, end, exec or are renamed here, as keepalived counts them.
    let whole_process = |pid: i32, tgid: i32| (pid == tgid).then_some(tgid);
    match what {
        PROC_EVENT_NONE => Some(ProcEvent::Ack),
        PROC_EVENT_FORK => {
            let parent = i32_at(buf, data + 4)?;
            let child = whole_process(i32_at(buf, data + 8)?, i32_at(buf, data + 12)?)?;
            Some(ProcEvent::Fork { parent, child })
        }
        PROC_EVENT_EXEC => {
            let pid = whole_process(i32_at(buf, data)?, i32_at(buf, data + 4)?)?;
            Some(ProcEvent::Exec { pid })
        }
        PROC_EVENT_COMM => {
            let pid = whole_process(i32_at(buf, data)?, i32_at(buf, data + 4)?)?;
            let raw = buf.get(data + 8..data + 24)?;
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            Some(ProcEvent::Comm {
                pid,
                comm: raw[..end].to_vec(),
            })
        }
        PROC_EVENT_EXIT => {
            let pid = whole_process(i32_at(buf, data)?, i32_at(buf, data + 4)?)?;
            Some(ProcEvent::Exit { pid })
        }
        _ => None,
    }
}

/// Reads `/proc/PID/comm` and, when asked, `/proc/PID/cmdline`.
pub fn read_process(proc_root: &Path, pid: i32, cmdline: bool) -> Option<ProcEntry> {
    let dir = proc_root.join(pid.to_string());
    let mut comm = std::fs::read(dir.join("comm")).ok()?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    let cmdline = if cmdline {
        std::fs::read(dir.join("cmdline")).ok()?
    } else {
        Vec::new()
    };
    Some(ProcEntry { pid, comm, cmdline })
}

/// Every running process: name and state from `/proc/PID/stat` (zombies
/// left out, as keepalived does), command lines only when needed.
pub fn scan(proc_root: &Path, cmdline: bool) -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for item in dir.flatten() {
        let Some(pid) = pid_of(&item.file_name()) else {
            continue;
        };
        let Ok(stat) = std::fs::read(item.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE ...`; the name may itself hold ')'.
        let (Some(open), Some(close)) = (
            stat.iter().position(|&b| b == b'('),
            stat.iter().rposition(|&b| b == b')'),
        ) else {
            continue;
        };
        if close < open || stat.get(close + 2) == Some(&b'Z') {
            continue;
        }
        let comm = stat[open + 1..close].to_vec();
        let cmdline = if cmdline {
            match std::fs::read(item.path().join("cmdline")) {
                Ok(line) => line,
                Err(_) => continue,
            }
        } else {
            Vec::new()
        };
        entries.push(ProcEntry { pid, comm, cmdline });
    }
    entries
}

fn pid_of(name: &OsStr) -> Option<i32> {
    let bytes = name.as_bytes();
    if bytes.first().is_none_or(|b| !(b'1'..=b'9').contains(b)) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Settings of the monitor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Network namespace to open the connector in (`--process-events-netns`).
    pub netns: Option<PathBuf>,
    /// `process_monitor_rcv_bufs` / `_force`.
    pub rcv_buf: Option<u32>,
    pub rcv_buf_force: bool,
}

enum Command {
    Add(ProcessSpec),
    Remove(String),
    Stop,
}

/// The handle the runtime keeps; dropping it stops the thread.
pub struct ProcessMonitor {
    commands: std_mpsc::Sender<Command>,
    wake: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProcessMonitor {
    /// Starts the monitor thread; every quorum change goes to `events`.
    pub fn spawn(options: MonitorOptions, events: mpsc::Sender<QuorumChange>) -> io::Result<Self> {
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let thread_wake = wake.try_clone()?;
        let (commands, receiver) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("proc-events".into())
            .spawn(move || {
                Monitor {
                    options,
                    table: ProcessTable::default(),
                    socket: None,
                    rescan_at: None,
                    events,
                    proc_root: PathBuf::from("/proc"),
                }
                .run(&receiver, &thread_wake);
            })?;
        Ok(Self {
            commands,
            wake,
            thread: Some(thread),
        })
    }

    pub fn add(&self, spec: ProcessSpec) {
        self.send(Command::Add(spec));
    }

    pub fn remove(&self, name: &str) {
        self.send(Command::Remove(name.to_owned()));
    }

    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            unsafe {
                libc::write(
                    self.wake.as_raw_fd(),
                    (&raw const one).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

impl Drop for ProcessMonitor {
    /// Not joined: the thread may be waiting to hand over a change that
    /// nobody reads any more during a stop; it ends after that.
    fn drop(&mut self) {
        self.send(Command::Stop);
        drop(self.thread.take());
    }
}

struct Monitor {
    options: MonitorOptions,
    table: ProcessTable,
    /// `None` until the first tracker, or when it could not be opened.
    socket: Option<OwnedFd>,
    rescan_at: Option<Instant>,
    events: mpsc::Sender<QuorumChange>,
    proc_root: PathBuf,
}

impl Monitor {
    fn run(mut self, commands: &std_mpsc::Receiver<Command>, wake: &OwnedFd) {
        let mut tried = false;
        loop {
            let deadline = [self.table.next_deadline(), self.rescan_at]
                .into_iter()
                .flatten()
                .min();
            let timeout = deadline.map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                // Round up: waking a little late is fine, early would spin.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            });
            let mut fds = vec![libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(socket) = &self.socket {
                fds.push(libc::pollfd {
                    fd: socket.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a live array of `fds.len()` pollfds.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                warn!(error = %io::Error::last_os_error(), "process monitor: poll failed");
                std::thread::sleep(Duration::from_millis(100));
            }
            if fds[0].revents != 0 {
                let mut counter = [0u8; 8];
                // SAFETY: reads at most 8 bytes into a live 8-byte buffer.
                unsafe { libc::read(wake.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
            }
            loop {
                match commands.try_recv() {
                    Ok(Command::Add(spec)) => {
                        if !tried {
                            tried = true;
                            self.open();
                        }
                        let scan = scan(
                            &self.proc_root,
                            spec.full_command || self.table.needs_cmdline(),
                        );
                        let name = spec.name.clone();
                        let first = self.table.add(spec, &scan);
                        info!(track_process = %name, up = first.up, processes = first.count, "tracking process");
                        self.report(vec![first]);
                    }
                    Ok(Command::Remove(name)) => {
                        debug!(track_process = %name, "no longer tracking process");
                        self.table.remove(&name);
                    }
                    Ok(Command::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => return,
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            if fds.get(1).is_some_and(|fd| fd.revents != 0) {
                self.receive();
            }
            let now = Instant::now();
            if self.rescan_at.is_some_and(|at| at <= now) {
                self.rescan_at = None;
                let scan = scan(&self.proc_root, self.table.needs_cmdline());
                let changes = self.table.rescan(&scan, now);
                if self.socket.is_some() {
                    info!(
                        changes = changes.len(),
                        "process monitor: /proc read again after lost events"
                    );
                }
                for change in &changes {
                    info!(track_process = %change.name, up = change.up, processes = change.count, "tracked process quorum {}", if change.up { "gained" } else { "lost" });
                }
                self.report(changes);
            }
            let changes = self.table.on_timers(now);
            self.report(changes);
            if self.socket.is_none() && self.rescan_at.is_none() && !self.table.is_empty() {
                // No events: read /proc every second instead.
                self.rescan_at = Some(now + POLL_WITHOUT_EVENTS);
            }
        }
    }

    fn report(&self, changes: Vec<QuorumChange>) {
        for change in changes {
            if self.events.blocking_send(change).is_err() {
                return;
            }
        }
    }

    fn open(&mut self) {
        let result = match self.options.netns.clone() {
            Some(netns) => in_netns(&netns, open_connector),
            None => open_connector(),
        };
        match result.and_then(|socket| {
            self.set_rcv_buf(&socket, self.options.rcv_buf);
            subscribe(&socket)?;
            Ok(socket)
        }) {
            Ok(socket) => {
                info!(netns = ?self.options.netns, "process monitor: listening to the kernel's process events");
                self.socket = Some(socket);
            }
            Err(error) => warn!(
                %error,
                "process monitor: cannot listen to the kernel's process events (CONFIG_PROC_EVENTS, or a daemon outside the initial network namespace: see --process-events-netns); reading /proc every second instead"
            ),
        }
    }

    fn set_rcv_buf(&self, socket: &OwnedFd, bytes: Option<u32>) {
        if let Some(bytes) = bytes
            && let Err(error) = set_rcv_buf(socket, bytes, self.options.rcv_buf_force)
        {
            warn!(%error, bytes, "process monitor: cannot set the receive buffer");
        }
    }

    fn receive(&mut self) {
        let Some(fd) = self.socket.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let mut buf = [0u8; 1024];
        loop {
            match recv_from_kernel(fd, &mut buf) {
                Ok(Some(length)) => {
                    if let Some(event) = parse_event(&buf[..length]) {
                        self.apply(event);
                    }
                }
                Ok(None) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    let doubled = current_rcv_buf(fd).map(|b| b.saturating_mul(2));
                    warn!(
                        receive_buffer = ?doubled,
                        "process monitor: the kernel dropped process events; reading /proc again shortly with a larger buffer (set process_monitor_rcv_bufs to keep it)"
                    );
                    if let Some(socket) = self.socket.take() {
                        self.set_rcv_buf(&socket, doubled);
                        self.socket = Some(socket);
                    }
                    self.rescan_at = Some(Instant::now() + RESCAN_AFTER_LOSS);
                }
                Err(error) => {
                    warn!(%error, "process monitor: receiving process events failed");
                    return;
                }
            }
        }
    }

    fn apply(&mut self, event: ProcEvent) {
        // While a rescan is due the counts are being rebuilt anyway.
        if self.table.is_empty() || self.rescan_at.is_some() {
            return;
        }
        let now = Instant::now();
        let changes = match event {
            ProcEvent::Ack => {
                debug!("process monitor: the kernel confirmed the subscription");
                Vec::new()
            }
            ProcEvent::Fork { parent, child } => self.table.fork(parent, child, now),
            ProcEvent::Exec { pid } => {
                let entry = read_process(&self.proc_root, pid, self.table.needs_cmdline());
                self.table.exec(pid, entry.as_ref(), now)
            }
            ProcEvent::Comm { pid, comm } => self.table.comm(pid, &comm, now),
            ProcEvent::Exit { pid } => self.table.exit(pid, now),
        };
        for change in &changes {
            info!(track_process = %change.name, up = change.up, processes = change.count, "tracked process quorum {}", if change.up { "gained" } else { "lost" });
        }
        self.report(changes);
    }
}

/// SO_RCVBUF, or SO_RCVBUFFORCE (past `net.core.rmem_max`, needs
/// CAP_NET_ADMIN).
fn set_rcv_buf(socket: &OwnedFd, bytes: u32, force: bool) -> io::Result<()> {
    let option = if force {
        libc::SO_RCVBUFFORCE
    } else {
        libc::SO_RCVBUF
    };
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: passes a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn current_rcv_buf(fd: RawFd) -> Option<u32> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a live c_int and its length.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut value).cast(),
            &raw mut length,
        )
    };
    (rc == 0).then(|| u32::try_from(value).ok()).flatten()
}

/// One datagram; `None` when it did not come from the kernel.
fn recv_from_kernel(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are live and their sizes are passed.
    let received = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&raw mut from).cast(),
            &raw mut from_len,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    if from.nl_pid != 0 {
        return Ok(None);
    }
    Ok(Some(received.unsigned_abs()))
}

fn open_connector() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_CONNECTOR,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = CN_IDX_PROC;
    // SAFETY: passes a live sockaddr_nl and its size.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// The listen request: netlink header, connector header, operation.
fn listen_message() -> Vec<u8> {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_ne_bytes());
    message.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    message.extend_from_slice(&0u16.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    message.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&4u16.to_ne_bytes());
    message.extend_from_slice(&0u16.to_ne_bytes());
    message.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    message
}

fn subscribe(socket: &OwnedFd) -> io::Result<()> {
    let message = listen_message();
    // SAFETY: sends from a live buffer of the length given.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `open` with this thread in the network namespace at `path`, then
/// returns the thread to the namespace it was in.
fn in_netns(path: &Path, open: impl FnOnce() -> io::Result<OwnedFd>) -> io::Result<OwnedFd> {
    let own = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(path).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("--process-events-netns {}: {error}", path.display()),
        )
    })?;
    // SAFETY: setns only reads the descriptor, which stays open.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = open();
    // SAFETY: as above.
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        // The thread only reads /proc and this socket from now on, neither
        // of which depends on its network namespace.
        warn!(error = %io::Error::last_os_error(), "process monitor: cannot return to the daemon's network namespace");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(what: u32, data: &[i32], extra: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        body.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        body.extend_from_slice(&[0; 12]);
        body.extend_from_slice(&what.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        body.extend_from_slice(&0u64.to_ne_bytes());
        for value in data {
            body.extend_from_slice(&value.to_ne_bytes());
        }
        body.extend_from_slice(extra);
        let mut message = Vec::new();
        message.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        message.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        message.extend_from_slice(&[0; 10]);
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn events_of_whole_processes_are_read() {
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_FORK, &[10, 10, 11, 11], &[])),
            Some(ProcEvent::Fork {
                parent: 10,
                child: 11
            })
        );
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_EXEC, &[12, 12], &[])),
            Some(ProcEvent::Exec { pid: 12 })
        );
        let mut name = *b"worker\0\0\0\0\0\0\0\0\0\0";
        name[15] = 0;
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_COMM, &[13, 13], &name)),
            Some(ProcEvent::Comm {
                pid: 13,
                comm: b"worker".to_vec()
            })
        );
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_EXIT, &[14, 14, 0, 17], &[])),
            Some(ProcEvent::Exit { pid: 14 })
        );
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_NONE, &[0, 0], &[])),
            Some(ProcEvent::Ack)
        );
    }

    #[test]
    fn threads_other_events_and_garbage_are_skipped() {
        // A new thread (child pid != tgid), a thread's exit.
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_FORK, &[10, 10, 12, 11], &[])),
            None
        );
        assert_eq!(
            parse_event(&datagram(PROC_EVENT_EXIT, &[15, 14, 0, 0], &[])),
            None
        );
        // PROC_EVENT_UID.
        assert_eq!(parse_event(&datagram(4, &[1, 1, 0, 0], &[])), None);
        let event = datagram(PROC_EVENT_EXEC, &[12, 12], &[]);
        assert_eq!(parse_event(&event[..20]), None);
        assert_eq!(parse_event(&[]), None);
        let mut other = event.clone();
        other[NLMSG_HDRLEN] = 9;
        assert_eq!(parse_event(&other), None);
    }

    #[test]
    fn the_listen_request_is_forty_bytes() {
        let message = listen_message();
        assert_eq!(message.len(), 40);
        assert_eq!(u32_at(&message, 0), Some(40));
        assert_eq!(u32_at(&message, 36), Some(PROC_CN_MCAST_LISTEN));
    }

    #[test]
    fn a_scan_finds_this_process_and_reads_command_lines_on_request() {
        let me = i32::try_from(std::process::id()).unwrap();
        let root = Path::new("/proc");
        let without = scan(root, false);
        let mine = without.iter().find(|e| e.pid == me).expect("own process");
        assert!(mine.cmdline.is_empty() && !mine.comm.is_empty());
        let with = scan(root, true);
        let mine = with.iter().find(|e| e.pid == me).expect("own process");
        assert!(!mine.cmdline.is_empty());
        let read = read_process(root, me, true).expect("own process");
        assert_eq!(read.comm, mine.comm);
        assert!(read_process(root, -1, false).is_none());
    }

    /// The kernel's proc connector, for real (root, in the initial network
    /// namespace, as the namespace tests' runner is): a child's fork, exec
    /// and exit arrive, and the forced receive buffer is what was asked
    /// (the kernel reports it doubled).
    #[test]
    fn the_connector_reports_a_child_s_fork_exec_and_exit() {
        let socket = open_connector().expect("proc connector socket (root needed)");
        set_rcv_buf(&socket, 300_000, true).expect("SO_RCVBUFFORCE");
        assert_eq!(current_rcv_buf(socket.as_raw_fd()), Some(600_000));
        subscribe(&socket).expect("subscribe");
        let child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn /bin/true");
        let pid = i32::try_from(child.id()).unwrap();
        let (mut forked, mut execed, mut exited) = (false, false, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1024];
        while !(forked && execed && exited) && Instant::now() < deadline {
            let mut fd = libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&raw mut fd, 1, 100) };
            while let Ok(Some(length)) = recv_from_kernel(socket.as_raw_fd(), &mut buf) {
                match parse_event(&buf[..length]) {
                    Some(ProcEvent::Fork { child, .. }) if child == pid => forked = true,
                    Some(ProcEvent::Exec { pid: p }) if p == pid => execed = true,
                    Some(ProcEvent::Exit { pid: p }) if p == pid => exited = true,
                    _ => {}
                }
            }
        }
        let mut child = child;
        let _ = child.wait();
        assert!(
            forked && execed && exited,
            "fork {forked}, exec {execed}, exit {exited}"
        );
    }

    #[test]
    fn pids_are_positive_numbers() {
        assert_eq!(pid_of(OsStr::new("42")), Some(42));
        assert_eq!(pid_of(OsStr::new("self")), None);
        assert_eq!(pid_of(OsStr::new("0")), None);
        assert_eq!(pid_of(OsStr::new("4x")), None);
    }
}
