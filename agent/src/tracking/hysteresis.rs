//! rise/fall hysteresis of a `vrrp_script`, as keepalived counts it.
//!
//! keepalived keeps one counter `result` in `0 ..= rise+fall-1`: below `rise`
//! the script is failed, from `rise` up it is OK. A success while failed
//! counts up and flips to OK on reaching `rise` (jumping to the top); a
//! failure while OK counts down and flips to failed once it would drop below
//! `rise` (jumping to 0). So OK needs `rise` consecutive successes and
//! failed needs `fall` consecutive failures.
//!
//! Start: without `init_fail` the script is in an "init" state where the
//! first result decides either way (keepalived starts the counter at
//! `rise-1`: "one success is enough", and reports the first failure at
//! once). With `init_fail` it starts failed and needs `rise` successes.

/// What the tracked script currently says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptStatus {
    /// No result yet (keepalived's INIT): neither adds weight nor faults,
    /// but keeps weight-0 trackers' instances from starting.
    Init,
    Ok,
    Failed,
}

/// The counter; feed it each run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    result: u32,
    status: ScriptStatus,
}

impl Hysteresis {
    /// `rise`/`fall` of 0 are treated as 1 (keepalived rejects them).
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Self {
        let rise = rise.max(1);
        let fall = fall.max(1);
        if init_fail {
            Self {
                rise,
                fall,
                result: 0,
                status: ScriptStatus::Failed,
            }
        } else {
            Self {
                rise,
                fall,
                result: rise - 1,
                status: ScriptStatus::Init,
            }
        }
    }

    /// The tracker task acts on the changes [`Hysteresis::record`] returns;
    /// only the tests read the status in between.
    #[cfg(test)]
    pub fn status(&self) -> ScriptStatus {
        self.status
    }

    /// Records one run; returns the new status when it changed.
    pub fn record(&mut self, success: bool) -> Option<ScriptStatus> {
        let top = self.rise.saturating_add(self.fall).saturating_sub(1);
        let next = if success {
            if self.result < self.rise - 1 {
                self.result += 1;
                return None;
            }
            self.result = top;
            ScriptStatus::Ok
        } else {
            if self.result > self.rise {
                self.result -= 1;
                return None;
            }
            self.result = 0;
            ScriptStatus::Failed
        };
        if next == self.status {
            return None;
        }
        self.status = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScriptStatus::*;

    fn feed(h: &mut Hysteresis, runs: &str) -> Vec<Option<ScriptStatus>> {
        runs.chars().map(|c| h.record(c == '+')).collect()
    }

    #[test]
    fn init_decides_on_first_result() {
        let mut h = Hysteresis::new(3, 3, false);
        assert_eq!(h.status(), Init);
        assert_eq!(h.record(true), Some(Ok));

        let mut h = Hysteresis::new(3, 3, false);
        assert_eq!(h.record(false), Some(Failed));
    }

    #[test]
    fn init_fail_needs_rise_successes() {
        let mut h = Hysteresis::new(3, 2, true);
        assert_eq!(h.status(), Failed);
        assert_eq!(feed(&mut h, "++"), [None, None]);
        assert_eq!(h.record(true), Some(Ok));
    }

    #[test]
    fn fall_consecutive_failures_flip_to_failed() {
        let mut h = Hysteresis::new(2, 3, false);
        h.record(true);
        assert_eq!(feed(&mut h, "--"), [None, None]);
        assert_eq!(h.record(false), Some(Failed));
        assert_eq!(h.record(false), None);
    }

    #[test]
    fn a_success_resets_a_partial_fall() {
        let mut h = Hysteresis::new(1, 3, false);
        h.record(true);
        assert_eq!(feed(&mut h, "--+--+--"), [None; 8]);
        assert_eq!(h.status(), Ok);
        assert_eq!(h.record(false), Some(Failed));
    }

    #[test]
    fn a_failure_resets_a_partial_rise() {
        let mut h = Hysteresis::new(3, 1, true);
        assert_eq!(feed(&mut h, "++-++-"), [None; 6]);
        assert_eq!(feed(&mut h, "++"), [None, None]);
        assert_eq!(h.record(true), Some(Ok));
    }

    #[test]
    fn zero_rise_and_fall_act_as_one() {
        let mut h = Hysteresis::new(0, 0, true);
        assert_eq!(h.record(true), Some(Ok));
        assert_eq!(h.record(false), Some(Failed));
    }

    #[test]
    fn huge_rise_and_fall_do_not_overflow() {
        let mut h = Hysteresis::new(u32::MAX, u32::MAX, false);
        assert_eq!(h.record(true), Some(Ok));
        h.record(false);
        assert_ne!(h.status(), Init);
    }
}
