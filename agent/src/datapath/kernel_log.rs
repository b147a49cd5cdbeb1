//! Forwards aya-log records written by the kernel programs to `tracing`.

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::io::unix::AsyncFd;

use super::DatapathError;

/// Bridges the `log` records aya-log produces into `tracing` events.
struct TracingBridge;

impl log::Log for TracingBridge {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        match record.level() {
            log::Level::Error => tracing::error!(source = "ebpf", "{message}"),
            log::Level::Warn => tracing::warn!(source = "ebpf", "{message}"),
            log::Level::Info => tracing::info!(source = "ebpf", "{message}"),
            log::Level::Debug => tracing::debug!(source = "ebpf", "{message}"),
            log::Level::Trace => tracing::trace!(source = "ebpf", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// The kernel log ring; keep it alive as long as the programs are loaded.
pub struct KernelLog {
    logger: EbpfLogger<TracingBridge>,
}

impl KernelLog {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let logger = EbpfLogger::init_with_logger(ebpf, TracingBridge)
            .map_err(|error| DatapathError::KernelLog(error.to_string()))?;
        Ok(Self { logger })
    }

    /// Forwards records until the ring goes away. Run it as a task.
    pub async fn forward(self) -> Result<(), DatapathError> {
        // SAFETY: the logger owns the log ring's fd and keeps it open for as
        // long as the AsyncFd that owns the logger exists.
        let mut ring = unsafe { AsyncFd::register(self.logger) }
            .map_err(|error| DatapathError::KernelLog(std::io::Error::from(error).to_string()))?;
        loop {
            let mut guard = ring
                .readable_mut()
                .await
                .map_err(|error| DatapathError::KernelLog(error.to_string()))?;
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }
}
