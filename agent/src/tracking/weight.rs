//! Effective priority from tracked scripts, interfaces and files.
//!
//! keepalived's rules, per tracked item with weight `w`:
//! - `w == 0`: no priority change; a failed item puts the instance in FAULT
//!   (`reverse`: an *OK* item does). A script that has not reported yet
//!   (init) holds the instance in its initial state instead.
//! - `w > 0`: `+w` while the item is OK, nothing while failed.
//! - `w < 0`: `w` (i.e. `-|w|`) while the item is failed, nothing while OK.
//! - `reverse` negates the adjustment: `-w` while OK for `w > 0`, `+|w|`
//!   while failed for `w < 0`.
//! - Files: the value read (clamped to ±254) × `w` (× -1 with `reverse`) is
//!   the adjustment, capped at 253; at -254 or below the instance is in
//!   FAULT. With `w == 0` a non-zero value is a fault (`reverse`: zero is).
//!
//! The total is added to the configured priority and the result clamped to
//! 1..=254; priority 255 (address owner) is never adjusted, though weight-0
//! faults still apply to it.

use super::hysteresis::ScriptStatus;

/// Priority of the address owner: never adjusted.
pub const OWNER_PRIORITY: u8 = 255;

/// A file value at or below this (after weighting) means FAULT.
const FILE_FAULT: i64 = -254;
const FILE_MAX_ADJUSTMENT: i64 = 253;
const FILE_VALUE_LIMIT: i64 = 254;

/// The current state of one tracked thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackedState {
    Script(ScriptStatus),
    Interface {
        up: bool,
    },
    /// The integer last read from a `track_file`.
    File {
        value: i64,
    },
}

/// One entry of an instance's `track_script` / `track_interface` /
/// `track_file`, with the weight that entry uses (its own, or the default of
/// the script/file it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedItem {
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
    pub state: TrackedState,
}

/// What one item does to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contribution {
    /// Adds this much to the priority (may be 0 or negative).
    Adjust(i64),
    /// Forces the instance into FAULT.
    Fault,
    /// A weight-0 script with no result yet: the instance waits in INIT.
    Pending,
}

pub fn contribution(item: &TrackedItem) -> Contribution {
    let weight = i64::from(item.weight);
    let sign = if item.reverse { -1 } else { 1 };
    let up = match item.state {
        TrackedState::Script(ScriptStatus::Init) => {
            return if weight == 0 {
                Contribution::Pending
            } else {
                Contribution::Adjust(0)
            };
        }
        TrackedState::Script(status) => status == ScriptStatus::Ok,
        TrackedState::Interface { up } => up,
        TrackedState::File { value } => return file_contribution(value, weight, sign),
    };
    if weight == 0 {
        // Down faults; with reverse, up faults.
        return if up == item.reverse {
            Contribution::Fault
        } else {
            Contribution::Adjust(0)
        };
    }
    let applies = if weight > 0 { up } else { !up };
    Contribution::Adjust(if applies { weight * sign } else { 0 })
}

fn file_contribution(value: i64, weight: i64, sign: i64) -> Contribution {
    let value = value.clamp(-FILE_VALUE_LIMIT, FILE_VALUE_LIMIT);
    if weight == 0 {
        return if (value != 0) == (sign == 1) {
            Contribution::Fault
        } else {
            Contribution::Adjust(0)
        };
    }
    let status = value.saturating_mul(weight).saturating_mul(sign);
    if status <= FILE_FAULT {
        Contribution::Fault
    } else {
        Contribution::Adjust(status.min(FILE_MAX_ADJUSTMENT))
    }
}

/// The verdict for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityVerdict {
    /// Sum of all adjustments (before clamping).
    pub total_adjustment: i64,
    /// The priority to advertise.
    pub effective_priority: u8,
    /// Items forcing FAULT, in input order.
    pub faulted_by: Vec<String>,
    /// Weight-0 scripts without a first result, in input order.
    pub pending: Vec<String>,
}

impl PriorityVerdict {
    pub fn is_fault(&self) -> bool {
        !self.faulted_by.is_empty()
    }

    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Applies all tracked items to `base_priority`.
pub fn evaluate(base_priority: u8, items: &[TrackedItem]) -> PriorityVerdict {
    let mut verdict = PriorityVerdict {
        total_adjustment: 0,
        effective_priority: base_priority,
        faulted_by: Vec::new(),
        pending: Vec::new(),
    };
    for item in items {
        match contribution(item) {
            Contribution::Adjust(delta) => {
                verdict.total_adjustment = verdict.total_adjustment.saturating_add(delta)
            }
            Contribution::Fault => verdict.faulted_by.push(item.name.clone()),
            Contribution::Pending => verdict.pending.push(item.name.clone()),
        }
    }
    verdict.effective_priority = effective_priority(base_priority, verdict.total_adjustment);
    verdict
}

/// `base + adjustment` clamped to 1..=254; the owner's 255 stays.
pub fn effective_priority(base_priority: u8, adjustment: i64) -> u8 {
    if base_priority == OWNER_PRIORITY {
        return OWNER_PRIORITY;
    }
    let total = i64::from(base_priority).saturating_add(adjustment);
    u8::try_from(total.clamp(1, 254)).unwrap_or(254)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScriptStatus::*;

    fn item(weight: i32, reverse: bool, state: TrackedState) -> TrackedItem {
        TrackedItem {
            name: "x".into(),
            weight,
            reverse,
            state,
        }
    }

    fn script(weight: i32, reverse: bool, status: ScriptStatus) -> Contribution {
        contribution(&item(weight, reverse, TrackedState::Script(status)))
    }

    #[test]
    fn positive_weight_added_while_ok() {
        assert_eq!(script(2, false, Ok), Contribution::Adjust(2));
        assert_eq!(script(2, false, Failed), Contribution::Adjust(0));
    }

    #[test]
    fn negative_weight_applied_while_failed() {
        assert_eq!(script(-20, false, Ok), Contribution::Adjust(0));
        assert_eq!(script(-20, false, Failed), Contribution::Adjust(-20));
    }

    #[test]
    fn reverse_inverts_the_adjustment() {
        assert_eq!(script(10, true, Ok), Contribution::Adjust(-10));
        assert_eq!(script(10, true, Failed), Contribution::Adjust(0));
        assert_eq!(script(-10, true, Failed), Contribution::Adjust(10));
        assert_eq!(script(-10, true, Ok), Contribution::Adjust(0));
    }

    #[test]
    fn weight_zero_faults() {
        assert_eq!(script(0, false, Failed), Contribution::Fault);
        assert_eq!(script(0, false, Ok), Contribution::Adjust(0));
        assert_eq!(script(0, true, Ok), Contribution::Fault);
        assert_eq!(script(0, true, Failed), Contribution::Adjust(0));
    }

    #[test]
    fn init_scripts_wait_or_add_nothing() {
        assert_eq!(script(0, false, Init), Contribution::Pending);
        assert_eq!(script(5, false, Init), Contribution::Adjust(0));
        assert_eq!(script(-5, false, Init), Contribution::Adjust(0));
    }

    #[test]
    fn interfaces_follow_the_same_rules() {
        let iface = |w, r, up| contribution(&item(w, r, TrackedState::Interface { up }));
        assert_eq!(iface(0, false, false), Contribution::Fault);
        assert_eq!(iface(0, true, true), Contribution::Fault);
        assert_eq!(iface(-30, false, false), Contribution::Adjust(-30));
        assert_eq!(iface(30, false, true), Contribution::Adjust(30));
    }

    #[test]
    fn files_multiply_value_by_weight() {
        let file = |w, r, value| contribution(&item(w, r, TrackedState::File { value }));
        assert_eq!(file(1, false, 10), Contribution::Adjust(10));
        assert_eq!(file(-3, false, 10), Contribution::Adjust(-30));
        assert_eq!(file(3, true, 10), Contribution::Adjust(-30));
        assert_eq!(file(10, false, 100), Contribution::Adjust(253));
        assert_eq!(file(1, false, -254), Contribution::Fault);
        assert_eq!(file(2, false, -127), Contribution::Fault);
        assert_eq!(file(1, false, -253), Contribution::Adjust(-253));
        assert_eq!(file(i32::MAX, false, i64::MIN), Contribution::Fault);
    }

    #[test]
    fn file_weight_zero_faults_on_non_zero() {
        let file = |r, value| contribution(&item(0, r, TrackedState::File { value }));
        assert_eq!(file(false, 0), Contribution::Adjust(0));
        assert_eq!(file(false, 7), Contribution::Fault);
        assert_eq!(file(false, -1), Contribution::Fault);
        assert_eq!(file(true, 0), Contribution::Fault);
        assert_eq!(file(true, 7), Contribution::Adjust(0));
    }

    #[test]
    fn evaluate_sums_and_clamps() {
        let items = [
            TrackedItem {
                name: "a".into(),
                weight: 2,
                reverse: false,
                state: TrackedState::Script(Ok),
            },
            TrackedItem {
                name: "b".into(),
                weight: -50,
                reverse: false,
                state: TrackedState::Script(Failed),
            },
            TrackedItem {
                name: "f".into(),
                weight: 1,
                reverse: false,
                state: TrackedState::File { value: 5 },
            },
        ];
        let verdict = evaluate(100, &items);
        assert_eq!(verdict.total_adjustment, -43);
        assert_eq!(verdict.effective_priority, 57);
        assert!(!verdict.is_fault() && !verdict.is_pending());

        assert_eq!(evaluate(40, &items[1..2]).effective_priority, 1);
        let up = [TrackedItem {
            name: "u".into(),
            weight: 253,
            reverse: false,
            state: TrackedState::Script(Ok),
        }];
        assert_eq!(evaluate(100, &up).effective_priority, 254);
    }

    #[test]
    fn owner_priority_is_never_adjusted_but_can_fault() {
        let items = [
            TrackedItem {
                name: "neg".into(),
                weight: -50,
                reverse: false,
                state: TrackedState::Script(Failed),
            },
            TrackedItem {
                name: "eth1".into(),
                weight: 0,
                reverse: false,
                state: TrackedState::Interface { up: false },
            },
            TrackedItem {
                name: "chk".into(),
                weight: 0,
                reverse: false,
                state: TrackedState::Script(Init),
            },
        ];
        let verdict = evaluate(255, &items);
        assert_eq!(verdict.effective_priority, 255);
        assert_eq!(verdict.faulted_by, ["eth1"]);
        assert_eq!(verdict.pending, ["chk"]);
    }

    #[test]
    fn effective_priority_edges() {
        assert_eq!(effective_priority(1, -1000), 1);
        assert_eq!(effective_priority(254, 1), 254);
        assert_eq!(effective_priority(0, 0), 1);
        assert_eq!(effective_priority(100, i64::MIN), 1);
        assert_eq!(effective_priority(100, i64::MAX), 254);
    }
}
