//! The election task's one timer, on a timerfd armed at the core's next
//! deadline to the nanosecond.
//!
//! tokio's timer wheel rounds every sleep up to the next millisecond tick,
//! so a backup's Skew_Time after a priority-0 advert, or its
//! Master_Down_Interval after the master died, ran up to a millisecond
//! late: at advert_int 0.01 that is a tenth of an interval added to every
//! failover. A timerfd on CLOCK_MONOTONIC (the clock `bpf_ktime_get_ns`
//! reads, the one deadlines are computed in) fires within the kernel's
//! timer slack instead. It costs one `timerfd_settime` when the deadline
//! changes and one `read` per expiry; the core already coalesces the
//! deadlines of backups whose masters advertise together, so expiries stay
//! rare.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::{Interest, unix::AsyncFd};

use crate::vrrp::election::Timestamp;

pub struct DeadlineTimer {
    fd: AsyncFd<OwnedFd>,
    armed: Option<Timestamp>,
}

impl DeadlineTimer {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd keeps the descriptor open, and refers to the
        // same timer, for as long as the AsyncFd that owns it exists.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd, armed: None })
    }

    /// Points the timer at `deadline` (or disarms it). Costs a syscall only
    /// when the deadline moved.
    pub fn arm(&mut self, deadline: Option<Timestamp>) -> io::Result<()> {
        if deadline == self.armed {
            return Ok(());
        }
        // A zero it_value disarms; a deadline at 0 ns (never in practice)
        // is moved to 1 ns so it still fires.
        let nanos = deadline.map_or(0, |deadline| deadline.as_nanos().max(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (nanos / 1_000_000_000) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and itimerspec; the old value is not wanted.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            // Unknown state: the next arm must retry.
            self.armed = None;
            return Err(io::Error::last_os_error());
        }
        self.armed = deadline;
        Ok(())
    }

    /// Resolves when the armed deadline has passed; pending forever while
    /// disarmed. Cancel-safe: an expiry not yet read stays readable.
    pub async fn expired(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            let read = guard.try_io(|fd| {
                // SAFETY: reads at most 8 bytes into a buffer of 8.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(Ok(())) => {
                    // The read took every expiry, so the fd is not readable
                    // now: without this, the next wait would cost a second
                    // read just to learn that.
                    guard.clear_ready();
                    // Fired: whatever comes next must be armed again.
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(error)) => return Err(error),
                // Spurious readiness (already consumed): wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::datapath::kernel_now_ns;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Precision is the bench's to show (failover rows); a test can only
    /// say the timer never fires early, whatever the sub-millisecond offset.
    #[test]
    fn fires_at_sub_millisecond_deadlines_never_before() {
        runtime().block_on(async {
            let mut timer = DeadlineTimer::new().unwrap();
            for offset_us in [300u64, 1_300, 2_700, 4_100] {
                let deadline = Timestamp::from_nanos(kernel_now_ns() + offset_us * 1_000);
                timer.arm(Some(deadline)).unwrap();
                timer.expired().await.unwrap();
                assert!(
                    kernel_now_ns() >= deadline.as_nanos(),
                    "fired before its deadline ({offset_us} µs)"
                );
            }
        });
    }

    #[test]
    fn disarmed_never_fires_and_a_past_deadline_fires_at_once() {
        runtime().block_on(async {
            let mut timer = DeadlineTimer::new().unwrap();
            timer.arm(None).unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(20), timer.expired()).await;
            assert!(waited.is_err(), "a disarmed timer fired");

            let past = Timestamp::from_nanos(kernel_now_ns().saturating_sub(1_000_000));
            timer.arm(Some(past)).unwrap();
            tokio::time::timeout(Duration::from_millis(100), timer.expired())
                .await
                .expect("a deadline in the past fires immediately")
                .unwrap();
        });
    }

    #[test]
    fn rearming_to_a_later_deadline_moves_the_expiry() {
        runtime().block_on(async {
            let mut timer = DeadlineTimer::new().unwrap();
            let soon = Timestamp::from_nanos(kernel_now_ns() + 2_000_000);
            timer.arm(Some(soon)).unwrap();
            let later = Timestamp::from_nanos(kernel_now_ns() + 30_000_000);
            timer.arm(Some(later)).unwrap();
            timer.expired().await.unwrap();
            assert!(kernel_now_ns() >= later.as_nanos());
        });
    }
}
