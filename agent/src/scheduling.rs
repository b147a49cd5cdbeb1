//! Real-time scheduling for the daemon's threads. A master starved of CPU
//! sends its adverts late and its backups take over: a false failover that
//! no amount of care on the receiving side can prevent. SCHED_RR at a low
//! real-time priority keeps the (tiny) advert work on time when the node's
//! CPUs are saturated; SCHED_RESET_ON_FORK keeps scripts and notify hooks
//! out of it.

use std::io;

/// Default real-time priority: above every normal task, below the kernel's
/// own real-time threads (which use 50 and up).
pub const DEFAULT_PRIORITY: i32 = 10;

/// Moves the calling thread to SCHED_RR at `priority`.
pub fn make_current_thread_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` is valid for the call.
    let result =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's SCHED_RR priority, if it runs under SCHED_RR: a
/// thread it starts (which SCHED_RESET_ON_FORK puts back to SCHED_OTHER)
/// and that belongs with it can take the same.
pub fn current_thread_realtime_priority() -> Option<i32> {
    // SAFETY: pid 0 is the calling thread; both calls only read its policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 || policy & !libc::SCHED_RESET_ON_FORK != libc::SCHED_RR {
        return None;
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above; `param` is valid for the call.
    (unsafe { libc::sched_getparam(0, &mut param) } == 0).then_some(param.sched_priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realtime_priority_of_a_thread_is_read_back() {
        let handle = std::thread::spawn(|| {
            let before = current_thread_realtime_priority();
            make_current_thread_realtime(DEFAULT_PRIORITY).expect("root may use SCHED_RR");
            (before, current_thread_realtime_priority())
        });
        assert_eq!(
            handle.join().expect("thread"),
            (None, Some(DEFAULT_PRIORITY))
        );
    }

    #[test]
    fn a_thread_becomes_round_robin_and_its_children_do_not() {
        let handle = std::thread::spawn(|| {
            make_current_thread_realtime(DEFAULT_PRIORITY).expect("root may use SCHED_RR");
            // SAFETY: querying the calling thread's policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy & !libc::SCHED_RESET_ON_FORK, libc::SCHED_RR);
            let child = std::process::Command::new("sh")
                .args(["-c", "chrt -p $$"])
                .output()
                .expect("run chrt");
            String::from_utf8_lossy(&child.stdout).into_owned()
        });
        let child_policy = handle.join().expect("thread");
        assert!(child_policy.contains("SCHED_OTHER"), "{child_policy}");
    }
}
