//! A tiny TCP service for reachability tests: accepts connections in a host
//! and answers each with one line naming the host, so a client can tell
//! which host holds a virtual IP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::host::Host;

/// A TCP listener in a host answering every connection with `<host name>\n`.
/// Stops listening when dropped.
pub struct TcpService {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Host {
    /// Starts a [`TcpService`] on `address`. Bind a wildcard (`0.0.0.0:8080`,
    /// `[::]:8080`) to answer on a VIP that moves to this host later.
    pub fn serve_tcp(&self, address: SocketAddr) -> Result<TcpService> {
        let listener = self
            .run(move || TcpListener::bind(address))?
            .with_context(|| format!("cannot listen on {address} in host {}", self.name()))?;
        listener
            .set_nonblocking(true)
            .context("cannot make listener non-blocking")?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let greeting = format!("{}\n", self.name());
        let (stop_flag, counter) = (Arc::clone(&stop), Arc::clone(&served));
        let thread = thread::Builder::new()
            .name(format!("tcp-service-{}", self.name()))
            .spawn(move || accept_loop(&listener, &greeting, &stop_flag, &counter))
            .context("cannot start TCP service thread")?;
        Ok(TcpService {
            address,
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// Connects from this host to `target` and returns the first line the
    /// server sends (a [`TcpService`] answers with its host's name).
    pub fn tcp_request(&self, target: SocketAddr, timeout: Duration) -> Result<String> {
        let mut stream = self.tcp_connect(target, timeout)?;
        stream
            .set_read_timeout(Some(timeout))
            .context("cannot set read timeout")?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .with_context(|| format!("reading the answer of {target} from host {}", self.name()))?;
        Ok(answer.trim_end().to_owned())
    }
}

fn accept_loop(listener: &TcpListener, greeting: &str, stop: &AtomicBool, served: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                answer(stream, greeting);
                served.fetch_add(1, Ordering::Relaxed);
            }
            // Polling keeps the loop stoppable without a wake-up connection.
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn answer(mut stream: TcpStream, greeting: &str) {
    // A client that vanished mid-answer is not the service's problem.
    let _ = stream.set_nonblocking(false);
    let _ = stream.write_all(greeting.as_bytes());
}

impl TcpService {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
