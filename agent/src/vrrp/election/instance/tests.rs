//! Each test names the RFC section (or keepalived behaviour) it checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::vrrp::election::tracking::TrackedItem;

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn ms(n: u64) -> Timestamp {
    Timestamp::from_nanos(n * 1_000_000)
}

fn interval(version: Version, centiseconds: u32) -> AdvertInterval {
    match AdvertInterval::from_centiseconds(version, centiseconds) {
        Ok(i) => i,
        Err(e) => panic!("bad test interval: {e}"),
    }
}

fn config(version: Version, priority: u8, address: IpAddr) -> InstanceConfig {
    let mut c = InstanceConfig::new(56, address);
    c.version = version;
    c.priority = priority;
    c
}

fn instance(c: &InstanceConfig) -> Instance {
    match Instance::new(c) {
        Ok(i) => i,
        Err(e) => panic!("bad test config: {e}"),
    }
}

fn run(inst: &mut Instance, input: Input, now: Timestamp) -> Vec<Action> {
    match inst.handle(input, now) {
        Ok(actions) => actions,
        Err(e) => panic!("unexpected input error: {e}"),
    }
}

fn advert(version: Version, priority: u8, source: IpAddr, interval_cs: u16) -> Input {
    Input::Advert(Advert {
        priority,
        source,
        interval_cs,
        version,
        checksum: ChecksumForm::WithPseudoHeader,
    })
}

fn mdi(version: Version, priority: u8, interval_cs: u32) -> Duration {
    master_down_interval(version, priority, interval(version, interval_cs))
}

/// Starts at t=0 and lets Master_Down_Timer fire: a master with no peers.
fn lone_master(c: &InstanceConfig) -> (Instance, Timestamp) {
    let mut inst = instance(c);
    run(&mut inst, Input::Start, ms(0));
    let due = match inst.next_deadline() {
        Some(d) => d,
        None => panic!("backup without a deadline"),
    };
    run(&mut inst, Input::TimerExpired, due);
    assert_eq!(inst.state(), State::Master);
    (inst, due)
}

fn transitions(actions: &[Action]) -> Vec<(State, State, Reason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to, reason } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

// RFC 5798 §6.4.1: "If the Priority = 255 ... Send an ADVERTISEMENT, ...
// broadcast a gratuitous ARP ..., Set the Adver_Timer to
// Advertisement_Interval, Transition to the {Master} state".
#[test]
fn rfc5798_6_4_1_address_owner_becomes_master_at_startup() {
    let mut inst = instance(&config(Version::V3, 255, v4(1)));
    let actions = run(&mut inst, Input::Start, ms(5));
    let one_s = interval(Version::V3, 100);
    assert_eq!(
        actions,
        vec![
            Action::AddVips {
                accept_traffic: true
            },
            Action::SendAdvert {
                priority: 255,
                interval: one_s
            },
            Action::SendGratuitous,
            Action::StateChanged {
                from: State::Initialize,
                to: State::Master,
                reason: Reason::AddressOwner
            },
        ]
    );
    assert_eq!(inst.next_deadline(), Some(ms(1005)));
    assert_eq!(inst.master_address(), Some(v4(1)));
    assert_eq!(inst.counters().became_master, 1);
}

// RFC 5798 §6.4.1 else-branch: "Set Master_Adver_Interval to
// Advertisement_Interval, Set the Master_Down_Timer to Master_Down_Interval,
// Transition to the {Backup} state". keepalived 2.2.7 does the same for
// `state MASTER` below priority 255 (measured: 3.6 s to master either way).
#[test]
fn rfc5798_6_4_1_non_owner_starts_in_backup_even_with_state_master() {
    for wish in [InitialState::Backup, InitialState::Master] {
        let mut c = config(Version::V3, 100, v4(1));
        c.initial_state = wish;
        let mut inst = instance(&c);
        let actions = run(&mut inst, Input::Start, ms(0));
        assert_eq!(
            actions,
            vec![Action::StateChanged {
                from: State::Initialize,
                to: State::Backup,
                reason: Reason::Startup
            },]
        );
        assert_eq!(
            inst.next_deadline(),
            Some(Timestamp::from_nanos(3_609_375_000))
        );
        assert_eq!(inst.initial_state(), wish);
        assert_eq!(inst.master_address(), None);
    }
}

// RFC 5798 §6.4.2: "If the Master_Down_Timer fires, then: Send an
// ADVERTISEMENT, broadcast gratuitous ARP ..., Set the Adver_Timer ...,
// Transition to the {Master} state".
#[test]
fn rfc5798_6_4_2_backup_becomes_master_when_master_down_timer_fires() {
    let mut inst = instance(&config(Version::V2, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let due = Timestamp::from_nanos(3_609_375_000);
    assert_eq!(inst.next_deadline(), Some(due));

    // Early or stale wake-ups change nothing.
    assert_eq!(run(&mut inst, Input::TimerExpired, ms(3_609)), vec![]);
    assert_eq!(inst.counters().spurious_timers, 1);
    assert_eq!(inst.state(), State::Backup);

    let actions = run(&mut inst, Input::TimerExpired, due);
    assert_eq!(
        actions,
        vec![
            Action::AddVips {
                accept_traffic: true
            },
            Action::SendAdvert {
                priority: 100,
                interval: AdvertInterval::ONE_SECOND
            },
            Action::SendGratuitous,
            Action::StateChanged {
                from: State::Backup,
                to: State::Master,
                reason: Reason::MasterDown
            },
        ]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(due.saturating_add(Duration::from_secs(1)))
    );
}

// RFC 5798 §6.4.3: "If the Adver_Timer fires, then: Send an ADVERTISEMENT,
// Reset the Adver_Timer to Advertisement_Interval".
#[test]
fn rfc5798_6_4_3_master_advertises_every_interval_even_when_woken_late() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(1)));
    let first = became.saturating_add(Duration::from_secs(1));
    assert_eq!(inst.next_deadline(), Some(first));
    // Woken 30 ms late: the next advert stays on the original cadence.
    let actions = run(
        &mut inst,
        Input::TimerExpired,
        first.saturating_add(Duration::from_millis(30)),
    );
    assert_eq!(
        actions,
        vec![Action::SendAdvert {
            priority: 100,
            interval: interval(Version::V3, 100)
        },]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(first.saturating_add(Duration::from_secs(1)))
    );
    // Woken more than a whole period late: restart from now.
    let late = first.saturating_add(Duration::from_millis(2_500));
    let actions = run(&mut inst, Input::TimerExpired, late);
    assert!(matches!(
        actions.as_slice(),
        [Action::SendAdvert { priority: 100, .. }]
    ));
    assert_eq!(
        inst.next_deadline(),
        Some(late.saturating_add(Duration::from_secs(1)))
    );
}

// RFC 5798 §6.4.2: "If the Priority in the ADVERTISEMENT is greater than or
// equal to the local Priority, then: ... Reset the Master_Down_Timer to
// Master_Down_Interval".
#[test]
fn rfc5798_6_4_2_backup_follows_a_higher_priority_master() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let actions = run(&mut inst, advert(Version::V3, 200, v4(2), 100), ms(1_000));
    let master = MasterInfo {
        address: v4(2),
        priority: 200,
        interval: interval(Version::V3, 100),
    };
    assert_eq!(actions, vec![Action::MasterChanged(Some(master))]);
    assert_eq!(
        inst.next_deadline(),
        Some(ms(1_000).saturating_add(mdi(Version::V3, 100, 100)))
    );
    assert_eq!(inst.master_address(), Some(v4(2)));
    // The next advert from the same master only moves the timer.
    let actions = run(&mut inst, advert(Version::V3, 200, v4(2), 100), ms(2_000));
    assert_eq!(actions, vec![]);
    assert_eq!(
        inst.next_deadline(),
        Some(ms(2_000).saturating_add(mdi(Version::V3, 100, 100)))
    );
    // An equal-priority master is followed too, whatever its address.
    run(&mut inst, advert(Version::V3, 100, v4(0), 100), ms(3_000));
    assert_eq!(inst.master_address(), Some(v4(0)));
    assert_eq!(inst.state(), State::Backup);
}

// RFC 5798 §6.4.2 + §6.1: the backup sets Master_Adver_Interval to the
// advertised interval and recomputes Skew_Time and Master_Down_Interval.
#[test]
fn rfc5798_6_4_2_v3_backup_adopts_the_masters_interval() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let actions = run(&mut inst, advert(Version::V3, 200, v4(2), 50), ms(100));
    // 3 * 0.5 s + 156 * 50 cs / 256 = 1.5 s + 0.3046875 s.
    assert_eq!(
        actions.last(),
        Some(&Action::MasterChanged(Some(MasterInfo {
            address: v4(2),
            priority: 200,
            interval: interval(Version::V3, 50)
        })))
    );
    assert_eq!(
        inst.next_deadline(),
        Some(Timestamp::from_nanos(100_000_000 + 1_804_687_500))
    );
    assert_eq!(inst.master_adver_interval().centiseconds(), 50);
    assert_eq!(inst.advert_interval().centiseconds(), 100);
}

// RFC 3768 §7.1: "MUST verify that the Adver Interval in the packet is the
// same as the locally configured for this virtual router. If the above check
// fails, the receiver MUST discard the packet".
#[test]
fn rfc3768_7_1_v2_advert_with_other_interval_is_discarded() {
    let mut inst = instance(&config(Version::V2, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    assert_eq!(
        run(&mut inst, advert(Version::V2, 200, v4(2), 200), ms(10)),
        vec![]
    );
    assert_eq!(inst.counters().adverts_discarded, 1);
    assert_eq!(inst.master_address(), None);
    // Matching interval: followed; v2 never adopts another interval.
    run(&mut inst, advert(Version::V2, 200, v4(2), 100), ms(20));
    assert_eq!(inst.master_address(), Some(v4(2)));
    assert_eq!(
        inst.next_deadline(),
        Some(ms(20).saturating_add(Duration::from_nanos(3_609_375_000)))
    );
}

// RFC 5798 §7.1 (version check) and our own adverts looping back: discarded.
#[test]
fn rfc5798_7_1_wrong_version_family_or_own_source_is_discarded() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let deadline = inst.next_deadline();
    for input in [
        advert(Version::V2, 200, v4(2), 100),
        advert(Version::V3, 200, v6(2), 100),
        advert(Version::V3, 200, v4(1), 100),
        advert(Version::V3, 200, v4(2), 0),
    ] {
        assert_eq!(run(&mut inst, input, ms(10)), vec![]);
    }
    assert_eq!(inst.counters().adverts_discarded, 4);
    assert_eq!(inst.next_deadline(), deadline);
}

// RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is greater than the
// local Priority ... Cancel Adver_Timer, Set Master_Adver_Interval to Adver
// Interval contained in the ADVERTISEMENT, Recompute the Skew_Time, Recompute
// the Master_Down_Interval, Set Master_Down_Timer to Master_Down_Interval,
// Transition to the {Backup} state".
#[test]
fn rfc5798_6_4_3_master_yields_to_a_higher_priority_advert() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(1)));
    let now = became.saturating_add(Duration::from_millis(400));
    let actions = run(&mut inst, advert(Version::V3, 150, v4(9), 200), now);
    assert_eq!(
        actions,
        vec![
            Action::RemoveVips,
            Action::StateChanged {
                from: State::Master,
                to: State::Backup,
                reason: Reason::HigherPriorityAdvert
            },
            Action::MasterChanged(Some(MasterInfo {
                address: v4(9),
                priority: 150,
                interval: interval(Version::V3, 200)
            })),
        ]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(now.saturating_add(mdi(Version::V3, 100, 200)))
    );
    assert_eq!(inst.counters().released_master, 1);
}

// RFC 5798 §6.4.3: "... or if the Priority in the ADVERTISEMENT is equal to
// the local Priority and the primary IPvX Address of the sender is greater
// than the local primary IPvX Address" (compared as unsigned integers).
#[test]
fn rfc5798_6_4_3_equal_priority_higher_address_wins_ipv4() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(10)));
    // Lower address, same priority: loses (answered as a lower-priority
    // master, RFC-silently by default).
    assert_eq!(
        run(&mut inst, advert(Version::V3, 100, v4(9), 100), became),
        vec![Action::RefreshNeighbours]
    );
    assert_eq!(inst.state(), State::Master);
    let actions = run(&mut inst, advert(Version::V3, 100, v4(11), 100), became);
    assert_eq!(
        transitions(&actions),
        vec![(
            State::Master,
            State::Backup,
            Reason::EqualPriorityHigherAddress
        )]
    );
}

#[test]
fn rfc5798_6_4_3_equal_priority_higher_address_wins_ipv6() {
    let mut c = config(Version::V3, 100, v6(0x00ff));
    c.primary_address = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0));
    let (mut inst, became) = lone_master(&c);
    // ::ffff sorts below ::1:0 as a 128-bit unsigned integer.
    assert_eq!(
        run(&mut inst, advert(Version::V3, 100, v6(0xffff), 100), became),
        vec![Action::RefreshNeighbours]
    );
    let higher = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1));
    let actions = run(&mut inst, advert(Version::V3, 100, higher, 100), became);
    assert_eq!(
        transitions(&actions),
        vec![(
            State::Master,
            State::Backup,
            Reason::EqualPriorityHigherAddress
        )]
    );
}

// RFC 5798 §6.4.3 last else: a lower-priority advert is discarded; the
// master keeps its timer and keeps advertising. Only the caller's
// lower-priority GARPs (keepalived's `garp_lower_prio_repeat`, which
// strict mode zeroes) are asked for.
#[test]
fn rfc5798_6_4_3_master_ignores_lower_priority_adverts() {
    let (mut inst, became) = lone_master(&config(Version::V3, 200, v4(1)));
    let deadline = inst.next_deadline();
    assert_eq!(
        run(&mut inst, advert(Version::V3, 100, v4(2), 100), became),
        vec![Action::RefreshNeighbours]
    );
    assert_eq!(inst.next_deadline(), deadline);
    assert_eq!(inst.counters().lower_priority_ignored, 1);
    let due = deadline.unwrap_or(Timestamp::ZERO);
    assert!(matches!(
        run(&mut inst, Input::TimerExpired, due).first(),
        Some(Action::SendAdvert { priority: 200, .. })
    ));
}

// keepalived without `lower_prio_no_advert`: the master answers a
// lower-priority advert at once, restarts its Adver_Timer and asks for the
// lower-priority GARPs; an equal-priority advert from a lower address is
// answered the same way (keepalived's vrrp_state_master_rx).
#[test]
fn keepalived_master_answers_lower_priority_advert_when_configured() {
    let mut c = config(Version::V3, 200, v4(5));
    c.advert_on_lower_priority = true;
    let (mut inst, became) = lone_master(&c);
    let answer = vec![
        Action::SendAdvert {
            priority: 200,
            interval: interval(Version::V3, 100),
        },
        Action::RefreshNeighbours,
    ];
    let now = became.saturating_add(Duration::from_millis(300));
    let sent = inst.counters().adverts_sent;
    assert_eq!(
        run(&mut inst, advert(Version::V3, 100, v4(2), 100), now),
        answer
    );
    assert_eq!(
        inst.next_deadline(),
        Some(now.saturating_add(Duration::from_secs(1)))
    );
    assert_eq!(inst.counters().adverts_sent, sent + 1);
    let later = now.saturating_add(Duration::from_millis(200));
    assert_eq!(
        run(&mut inst, advert(Version::V3, 200, v4(4), 100), later),
        answer
    );
    assert_eq!(
        inst.next_deadline(),
        Some(later.saturating_add(Duration::from_secs(1)))
    );
    assert_eq!(inst.state(), State::Master);
    // A router that wins is not answered: the master yields silently.
    let actions = run(&mut inst, advert(Version::V3, 200, v4(6), 100), later);
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::SendAdvert { .. }
                | Action::SendYieldingAdvert { .. }
                | Action::RefreshNeighbours
        )),
        "{actions:?}"
    );
    assert_eq!(inst.state(), State::Backup);
}

// keepalived's `higher_prio_send_advert`: a master yielding to a higher
// priority, or to an equal one from a higher address, first sends one
// advert with its own priority (so the winner, seeing a lower-priority
// advert, re-sends its GARPs); it is counted, and not a master advert.
#[test]
fn keepalived_higher_prio_send_advert_advertises_once_before_yielding() {
    for (priority, source, reason) in [
        (150, v4(2), Reason::HigherPriorityAdvert),
        (100, v4(9), Reason::EqualPriorityHigherAddress),
    ] {
        let mut c = config(Version::V3, 100, v4(5));
        c.advert_before_yielding = true;
        let (mut inst, became) = lone_master(&c);
        let sent = inst.counters().adverts_sent;
        let actions = run(
            &mut inst,
            advert(Version::V3, priority, source, 100),
            became,
        );
        assert_eq!(
            actions.first(),
            Some(&Action::SendYieldingAdvert {
                priority: 100,
                interval: interval(Version::V3, 100)
            }),
            "{actions:?}"
        );
        assert_eq!(
            transitions(&actions),
            vec![(State::Master, State::Backup, reason)]
        );
        assert_eq!(inst.counters().adverts_sent, sent + 1);
        // Lower-priority adverts are not "higher": no yielding advert.
        let (mut inst, became) = lone_master(&c);
        let lower = run(&mut inst, advert(Version::V3, 50, v4(2), 100), became);
        assert!(
            !lower
                .iter()
                .any(|a| matches!(a, Action::SendYieldingAdvert { .. })),
            "{lower:?}"
        );
    }
    // Off (the default): the master yields without a word.
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(5)));
    let actions = run(&mut inst, advert(Version::V3, 150, v4(2), 100), became);
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::SendYieldingAdvert { .. } | Action::SendAdvert { .. }
        )),
        "{actions:?}"
    );
}

// RFC 5798 §6.4.2: with Preempt_Mode True a lower-priority advert is
// discarded, so the backup takes over when Master_Down_Timer fires.
#[test]
fn rfc5798_6_4_2_preempting_backup_takes_over_from_a_lower_master() {
    let mut inst = instance(&config(Version::V3, 200, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let deadline = inst.next_deadline();
    for second in 1..=3 {
        assert_eq!(
            run(
                &mut inst,
                advert(Version::V3, 100, v4(2), 100),
                ms(second * 1_000)
            ),
            vec![]
        );
    }
    assert_eq!(inst.next_deadline(), deadline);
    let actions = run(
        &mut inst,
        Input::TimerExpired,
        deadline.unwrap_or(Timestamp::ZERO),
    );
    assert_eq!(
        transitions(&actions),
        vec![(State::Backup, State::Master, Reason::Preempted)]
    );
}

// RFC 5798 §6.4.2: "If Preempt_Mode is False, or if the Priority in the
// ADVERTISEMENT is greater than or equal to the local Priority, then: ...
// Reset the Master_Down_Timer" — nopreempt follows a lower-priority master.
#[test]
fn rfc5798_6_4_2_nopreempt_backup_accepts_a_lower_priority_master() {
    let mut c = config(Version::V3, 200, v4(1));
    c.preempt = false;
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    for second in 1..=20 {
        let now = ms(second * 1_000);
        run(&mut inst, advert(Version::V3, 100, v4(2), 100), now);
        run(&mut inst, Input::TimerExpired, now);
        assert_eq!(inst.state(), State::Backup);
    }
    assert_eq!(inst.master_address(), Some(v4(2)));
    assert_eq!(inst.counters().became_master, 0);
}

// RFC 5798 §6.4.2: "If the Priority in the ADVERTISEMENT is zero, then: Set
// the Master_Down_Timer to Skew_Time".
#[test]
fn rfc5798_6_4_2_backup_receiving_priority_zero_waits_only_skew_time() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, advert(Version::V3, 200, v4(2), 100), ms(1_000));
    let actions = run(&mut inst, advert(Version::V3, 0, v4(2), 100), ms(1_500));
    let due = ms(1_500).saturating_add(Duration::from_nanos(609_375_000));
    assert_eq!(actions, vec![Action::MasterChanged(None)]);
    assert_eq!(inst.next_deadline(), Some(due));
    assert_eq!(inst.counters().priority_zero_received, 1);
    let actions = run(&mut inst, Input::TimerExpired, due);
    assert_eq!(
        transitions(&actions),
        vec![(State::Backup, State::Master, Reason::MasterReleased)]
    );
}

// RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is zero, then: Send
// an ADVERTISEMENT, Reset the Adver_Timer to Advertisement_Interval".
#[test]
fn rfc5798_6_4_3_master_receiving_priority_zero_advertises_at_once() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(1)));
    let now = became.saturating_add(Duration::from_millis(700));
    let actions = run(&mut inst, advert(Version::V3, 0, v4(2), 100), now);
    assert_eq!(
        actions,
        vec![Action::SendAdvert {
            priority: 100,
            interval: interval(Version::V3, 100)
        },]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(now.saturating_add(Duration::from_secs(1)))
    );
    assert_eq!(inst.state(), State::Master);
}

// keepalived preempt_delay: a backup of higher priority keeps following a
// lower-priority master for preempt_delay after first seeing it, then
// ignores it and takes over when Master_Down_Timer fires.
#[test]
fn keepalived_preempt_delay_defers_taking_over_from_a_lower_master() {
    let mut c = config(Version::V3, 200, v4(1));
    c.preempt_delay = Duration::from_secs(10);
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    let mut last_accepted = None;
    for tenth in 0..30 {
        let now = ms(500 + tenth * 1_000);
        if let Some(due) = inst.next_deadline().filter(|due| *due <= now) {
            run(&mut inst, Input::TimerExpired, due);
        }
        if inst.state() == State::Master {
            break;
        }
        let before = inst.counters().lower_priority_ignored;
        run(&mut inst, advert(Version::V3, 100, v4(2), 100), now);
        if inst.counters().lower_priority_ignored == before {
            last_accepted = Some(now);
        }
    }
    // Window: 0.5 s .. 10.5 s; the advert at 9.5 s is the last followed.
    assert_eq!(last_accepted, Some(ms(9_500)));
    assert_eq!(inst.state(), State::Master);
    assert_eq!(
        inst.last_transition(),
        Some(ms(9_500).saturating_add(mdi(Version::V3, 200, 100)))
    );
}

#[test]
fn keepalived_preempt_delay_restarts_after_a_higher_priority_master() {
    let mut c = config(Version::V3, 200, v4(1));
    c.preempt_delay = Duration::from_secs(5);
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, advert(Version::V3, 100, v4(2), 100), ms(1_000));
    // A higher-priority master clears the window ...
    run(&mut inst, advert(Version::V3, 250, v4(3), 100), ms(5_000));
    // ... so the lower one is followed again for a fresh 5 s from 7 s.
    let before = inst.counters().lower_priority_ignored;
    for second in 7..=11 {
        run(
            &mut inst,
            advert(Version::V3, 100, v4(2), 100),
            ms(second * 1_000),
        );
    }
    assert_eq!(inst.counters().lower_priority_ignored, before);
    run(&mut inst, advert(Version::V3, 100, v4(2), 100), ms(12_000));
    assert_eq!(inst.counters().lower_priority_ignored, before + 1);
}

// RFC 5798 §6.4.3 Accept_Mode: a non-owner master accepts packets to the
// VIPs only with Accept_Mode; the owner always does.
#[test]
fn rfc5798_6_4_3_accept_mode_is_reported_with_the_vips() {
    let mut c = config(Version::V3, 100, v4(1));
    c.accept = false;
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    let due = inst.next_deadline().unwrap_or(Timestamp::ZERO);
    let actions = run(&mut inst, Input::TimerExpired, due);
    assert_eq!(
        actions.first(),
        Some(&Action::AddVips {
            accept_traffic: false
        })
    );
    assert!(!inst.accepts_vip_traffic());

    let mut owner = config(Version::V3, 255, v4(1));
    owner.accept = false;
    let mut inst = instance(&owner);
    let actions = run(&mut inst, Input::Start, ms(0));
    assert_eq!(
        actions.first(),
        Some(&Action::AddVips {
            accept_traffic: true
        })
    );
    assert!(inst.accepts_vip_traffic());
}

// keepalived FAULT (interface down): a master announces priority 0, drops the
// VIPs and stops its timer; on recovery it starts over as a backup.
#[test]
fn keepalived_interface_down_moves_master_to_fault_and_back_to_backup() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(1)));
    let actions = run(&mut inst, Input::InterfaceDown, became);
    assert_eq!(
        actions,
        vec![
            Action::SendAdvert {
                priority: 0,
                interval: interval(Version::V3, 100)
            },
            Action::RemoveVips,
            Action::StateChanged {
                from: State::Master,
                to: State::Fault,
                reason: Reason::InterfaceDown
            },
        ]
    );
    assert_eq!(inst.counters().priority_zero_sent, 1);
    assert_eq!(inst.next_deadline(), None);
    // Nothing moves it while in fault.
    assert_eq!(
        run(&mut inst, advert(Version::V3, 200, v4(2), 100), became),
        vec![]
    );
    assert_eq!(run(&mut inst, Input::TimerExpired, became), vec![]);

    let now = became.saturating_add(Duration::from_secs(5));
    let actions = run(&mut inst, Input::InterfaceUp, now);
    assert_eq!(
        actions,
        vec![Action::StateChanged {
            from: State::Fault,
            to: State::Backup,
            reason: Reason::InterfaceUp
        },]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(now.saturating_add(mdi(Version::V3, 100, 100)))
    );
}

// keepalived: a failing weight-0 tracked item means FAULT; recovery → BACKUP.
#[test]
fn keepalived_weight_zero_tracking_fault_and_recovery() {
    let mut c = config(Version::V3, 100, v4(1));
    c.tracked = vec![TrackedItem {
        weight: 0,
        reverse: false,
        initially_up: true,
    }];
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    let actions = run(&mut inst, Input::Tracked { item: 0, up: false }, ms(100));
    assert_eq!(
        transitions(&actions),
        vec![(State::Backup, State::Fault, Reason::TrackedFault)]
    );
    assert_eq!(inst.next_deadline(), None);
    let actions = run(&mut inst, Input::Tracked { item: 0, up: true }, ms(200));
    assert_eq!(
        transitions(&actions),
        vec![(State::Fault, State::Backup, Reason::TrackedRecovered)]
    );
}

#[test]
fn keepalived_fault_at_startup_when_interface_is_down() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    assert_eq!(run(&mut inst, Input::InterfaceDown, ms(0)), vec![]);
    let actions = run(&mut inst, Input::Start, ms(1));
    assert_eq!(
        actions,
        vec![Action::StateChanged {
            from: State::Initialize,
            to: State::Fault,
            reason: Reason::InterfaceDown
        }]
    );
}

// RFC 5798 §6.4.1 again when leaving FAULT: the owner goes straight to master.
#[test]
fn rfc5798_6_4_1_owner_leaving_fault_becomes_master_at_once() {
    let mut inst = instance(&config(Version::V3, 255, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, Input::InterfaceDown, ms(10));
    let actions = run(&mut inst, Input::InterfaceUp, ms(20));
    assert_eq!(
        transitions(&actions),
        vec![(State::Fault, State::Master, Reason::InterfaceUp)]
    );
}

// keepalived effective priority: base + weights that apply, clamped 1..=254,
// advertised from the next advert on; the owner is never adjusted.
#[test]
fn keepalived_effective_priority_follows_tracked_weights() {
    let mut c = config(Version::V3, 100, v4(1));
    c.tracked = vec![
        TrackedItem {
            weight: 2,
            reverse: false,
            initially_up: true,
        },
        TrackedItem {
            weight: -150,
            reverse: false,
            initially_up: true,
        },
    ];
    let (mut inst, became) = lone_master(&c);
    assert_eq!(inst.effective_priority(), 102);
    let actions = run(&mut inst, Input::Tracked { item: 1, up: false }, became);
    assert_eq!(actions, vec![Action::PriorityChanged { from: 102, to: 1 }]);
    let due = inst.next_deadline().unwrap_or(Timestamp::ZERO);
    assert!(matches!(
        run(&mut inst, Input::TimerExpired, due).first(),
        Some(Action::SendAdvert { priority: 1, .. })
    ));
    // Unknown index: an error value, no state change.
    assert_eq!(
        inst.handle(Input::Tracked { item: 7, up: true }, due),
        Err(InputError::UnknownTrackedItem {
            vrid: 56,
            source: UnknownTrackedItem { index: 7, count: 2 }
        })
    );

    let mut owner = c.clone();
    owner.priority = 255;
    let mut inst = instance(&owner);
    assert_eq!(
        run(&mut inst, Input::Tracked { item: 1, up: false }, ms(0)),
        vec![]
    );
    assert_eq!(inst.effective_priority(), 255);
}

// RFC 5798 §6.4.3: "If a Shutdown event is received, then: Cancel the
// Adver_Timer, Send an ADVERTISEMENT with Priority = 0, Transition to the
// {Initialize} state" — the VIPs are released after that advert.
#[test]
fn rfc5798_6_4_3_master_shutdown_sends_priority_zero_then_releases_vips() {
    let (mut inst, became) = lone_master(&config(Version::V3, 100, v4(1)));
    let actions = run(&mut inst, Input::Shutdown, became);
    assert_eq!(
        actions,
        vec![
            Action::SendAdvert {
                priority: 0,
                interval: interval(Version::V3, 100)
            },
            Action::RemoveVips,
            Action::StateChanged {
                from: State::Master,
                to: State::Initialize,
                reason: Reason::Shutdown
            },
        ]
    );
    assert_eq!(inst.next_deadline(), None);
    // A second shutdown has nothing left to do; a restart works.
    assert_eq!(run(&mut inst, Input::Shutdown, became), vec![]);
    run(&mut inst, Input::Start, became);
    assert_eq!(inst.state(), State::Backup);
}

// RFC 5798 §6.4.2: "If a Shutdown event is received, then: Cancel the
// Master_Down_Timer, Transition to the {Initialize} state".
#[test]
fn rfc5798_6_4_2_backup_shutdown_only_stops() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    run(&mut inst, Input::Start, ms(0));
    let actions = run(&mut inst, Input::Shutdown, ms(1));
    assert_eq!(
        actions,
        vec![Action::StateChanged {
            from: State::Backup,
            to: State::Initialize,
            reason: Reason::Shutdown
        },]
    );
    assert_eq!(inst.next_deadline(), None);
}

#[test]
fn adverts_before_start_are_ignored() {
    let mut inst = instance(&config(Version::V3, 100, v4(1)));
    assert_eq!(
        run(&mut inst, advert(Version::V3, 200, v4(2), 100), ms(0)),
        vec![]
    );
    assert_eq!(run(&mut inst, Input::TimerExpired, ms(0)), vec![]);
    assert_eq!(inst.state(), State::Initialize);
    assert_eq!(inst.counters().adverts_received, 1);
}

// ---- reload (Instance::reconfigure) ----

fn reconfigure(inst: &mut Instance, c: &InstanceConfig, now: Timestamp) -> Vec<Action> {
    match inst.reconfigure(c, now) {
        Ok(actions) => actions,
        Err(e) => panic!("reconfigure refused: {e}"),
    }
}

fn tracked(weight: i32, up: bool) -> TrackedItem {
    TrackedItem {
        weight,
        reverse: false,
        initially_up: up,
    }
}

fn touches_vips(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::AddVips { .. } | Action::RemoveVips | Action::SendGratuitous
        )
    })
}

// Reload of an unchanged file: a master keeps answering, so nothing at all
// may happen — no advert, no VIP churn, same timer, same counters.
#[test]
fn reconfigure_unchanged_master_does_nothing() {
    let c = config(Version::V3, 100, v4(1));
    let (mut inst, became) = lone_master(&c);
    let deadline = inst.next_deadline();
    let counters = *inst.counters();
    let now = became.saturating_add(Duration::from_millis(300));
    assert_eq!(reconfigure(&mut inst, &c, now), vec![]);
    assert_eq!(inst.state(), State::Master);
    assert_eq!(inst.next_deadline(), deadline);
    assert_eq!(*inst.counters(), counters);
    assert_eq!(inst.last_transition(), Some(became));
}

// A priority change is announced by the next scheduled advert; the master
// stays master and its VIPs stay untouched.
#[test]
fn reconfigure_priority_only_keeps_master_without_vip_actions() {
    let mut c = config(Version::V3, 100, v4(1));
    let (mut inst, became) = lone_master(&c);
    let deadline = inst.next_deadline();
    c.priority = 150;
    let actions = reconfigure(&mut inst, &c, became);
    assert_eq!(
        actions,
        vec![Action::PriorityChanged { from: 100, to: 150 }]
    );
    assert!(!touches_vips(&actions));
    assert_eq!(inst.state(), State::Master);
    assert_eq!(inst.base_priority(), 150);
    assert_eq!(inst.next_deadline(), deadline);
    let due = deadline.unwrap_or(Timestamp::ZERO);
    assert!(matches!(
        run(&mut inst, Input::TimerExpired, due).as_slice(),
        [Action::SendAdvert { priority: 150, .. }]
    ));

    // Owner → non-owner while master: stays master, only the priority moves.
    let mut owner = config(Version::V3, 255, v4(1));
    let mut inst = instance(&owner);
    run(&mut inst, Input::Start, ms(0));
    owner.priority = 100;
    let actions = reconfigure(&mut inst, &owner, ms(10));
    assert_eq!(
        actions,
        vec![Action::PriorityChanged { from: 255, to: 100 }]
    );
    assert_eq!(inst.state(), State::Master);
    assert!(!inst.is_address_owner());
}

// RFC 5798 §6.4.3 Adver_Timer: a shorter interval applies from the next
// advert (due one new interval from the reload at the latest); a longer one
// leaves the advert already due in place, then the cadence follows it.
#[test]
fn reconfigure_interval_change_moves_the_next_advert() {
    let mut c = config(Version::V3, 100, v4(1));
    let (mut inst, became) = lone_master(&c);
    let now = became.saturating_add(Duration::from_millis(100));
    c.advert_interval_cs = 50;
    assert_eq!(reconfigure(&mut inst, &c, now), vec![]);
    let due = now.saturating_add(Duration::from_millis(500));
    assert_eq!(inst.next_deadline(), Some(due));
    assert_eq!(inst.master_adver_interval(), interval(Version::V3, 50));
    assert_eq!(
        run(&mut inst, Input::TimerExpired, due),
        vec![Action::SendAdvert {
            priority: 100,
            interval: interval(Version::V3, 50)
        }]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(due.saturating_add(Duration::from_millis(500)))
    );

    c.advert_interval_cs = 200;
    let next = inst.next_deadline();
    assert_eq!(reconfigure(&mut inst, &c, due), vec![]);
    assert_eq!(inst.next_deadline(), next);
    let next = next.unwrap_or(Timestamp::ZERO);
    run(&mut inst, Input::TimerExpired, next);
    assert_eq!(
        inst.next_deadline(),
        Some(next.saturating_add(Duration::from_secs(2)))
    );
}

// Tracking is rebuilt from the new list with each item's live status
// (passed as initially_up); later reports use the new indices.
#[test]
fn reconfigure_tracked_items_added_and_removed_keep_live_status() {
    let mut c = config(Version::V3, 100, v4(1));
    c.tracked = vec![tracked(-50, true)];
    let (mut inst, became) = lone_master(&c);
    run(&mut inst, Input::Tracked { item: 0, up: false }, became);
    assert_eq!(inst.effective_priority(), 50);

    // An item added in front; the old one still down.
    c.tracked = vec![tracked(10, true), tracked(-50, false)];
    let actions = reconfigure(&mut inst, &c, became);
    assert_eq!(actions, vec![Action::PriorityChanged { from: 50, to: 60 }]);
    run(&mut inst, Input::Tracked { item: 1, up: true }, became);
    assert_eq!(inst.effective_priority(), 110);

    // The failing item removed: only the remaining weight applies.
    c.tracked = vec![tracked(10, true)];
    assert_eq!(reconfigure(&mut inst, &c, became), vec![]);
    assert_eq!(inst.effective_priority(), 110);
    assert_eq!(
        inst.handle(Input::Tracked { item: 1, up: true }, became),
        Err(InputError::UnknownTrackedItem {
            vrid: 56,
            source: UnknownTrackedItem { index: 1, count: 1 }
        })
    );
    assert_eq!(inst.state(), State::Master);
}

// keepalived: a weight-0 tracked item that is down means FAULT, whether it
// reports down or arrives down with a reload; removing it recovers.
#[test]
fn reconfigure_new_weight_zero_item_down_moves_master_to_fault() {
    let mut c = config(Version::V3, 100, v4(1));
    let (mut inst, became) = lone_master(&c);
    c.tracked = vec![tracked(0, false)];
    let actions = reconfigure(&mut inst, &c, became);
    assert_eq!(
        actions,
        vec![
            Action::SendAdvert {
                priority: 0,
                interval: interval(Version::V3, 100)
            },
            Action::RemoveVips,
            Action::StateChanged {
                from: State::Master,
                to: State::Fault,
                reason: Reason::TrackedFault
            },
        ]
    );
    assert_eq!(inst.next_deadline(), None);

    c.tracked = Vec::new();
    let now = became.saturating_add(Duration::from_secs(1));
    let actions = reconfigure(&mut inst, &c, now);
    assert_eq!(
        transitions(&actions),
        vec![(State::Fault, State::Backup, Reason::TrackedRecovered)]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(now.saturating_add(mdi(Version::V3, 100, 100)))
    );
}

// RFC 5798 §6.4.1: the address owner is master; a backup reloaded to
// priority 255 takes over at once.
#[test]
fn reconfigure_backup_to_priority_255_becomes_master() {
    let mut c = config(Version::V3, 100, v4(1));
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, advert(Version::V3, 200, v4(2), 100), ms(500));
    c.priority = 255;
    let actions = reconfigure(&mut inst, &c, ms(700));
    assert_eq!(
        actions,
        vec![
            Action::PriorityChanged { from: 100, to: 255 },
            Action::AddVips {
                accept_traffic: true
            },
            Action::SendAdvert {
                priority: 255,
                interval: interval(Version::V3, 100)
            },
            Action::SendGratuitous,
            Action::MasterChanged(None),
            Action::StateChanged {
                from: State::Backup,
                to: State::Master,
                reason: Reason::AddressOwner
            },
        ]
    );
    assert_eq!(inst.next_deadline(), Some(ms(1_700)));
}

// A backup keeps following its master across a reload: same timer; VRRPv3
// keeps the master's advertised interval, VRRPv2 takes the new own one.
#[test]
fn reconfigure_backup_keeps_master_and_timer() {
    let mut c = config(Version::V3, 100, v4(1));
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, advert(Version::V3, 200, v4(2), 50), ms(500));
    let deadline = inst.next_deadline();
    c.advert_interval_cs = 200;
    c.priority = 90;
    let actions = reconfigure(&mut inst, &c, ms(600));
    assert_eq!(actions, vec![Action::PriorityChanged { from: 100, to: 90 }]);
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.master_address(), Some(v4(2)));
    assert_eq!(inst.next_deadline(), deadline);
    assert_eq!(inst.master_adver_interval(), interval(Version::V3, 50));

    let mut c = config(Version::V2, 100, v4(1));
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, advert(Version::V2, 200, v4(2), 100), ms(500));
    let deadline = inst.next_deadline();
    c.advert_interval_cs = 200;
    assert_eq!(reconfigure(&mut inst, &c, ms(600)), vec![]);
    assert_eq!(inst.next_deadline(), deadline);
    assert_eq!(inst.master_adver_interval(), interval(Version::V2, 200));
    assert_eq!(inst.master_address(), Some(v4(2)));
}

// Initialize and Fault only take the new configuration; leaving Fault uses
// it, and Start uses it.
#[test]
fn reconfigure_in_initialize_and_fault_applies_at_the_next_start_or_recovery() {
    let mut c = config(Version::V3, 100, v4(1));
    let mut inst = instance(&c);
    c.priority = 255;
    assert_eq!(
        reconfigure(&mut inst, &c, ms(0)),
        vec![Action::PriorityChanged { from: 100, to: 255 }]
    );
    assert_eq!(inst.state(), State::Initialize);
    let actions = run(&mut inst, Input::Start, ms(1));
    assert_eq!(
        transitions(&actions),
        vec![(State::Initialize, State::Master, Reason::AddressOwner)]
    );

    let mut c = config(Version::V3, 100, v4(1));
    let mut inst = instance(&c);
    run(&mut inst, Input::Start, ms(0));
    run(&mut inst, Input::InterfaceDown, ms(1));
    c.advert_interval_cs = 50;
    assert_eq!(reconfigure(&mut inst, &c, ms(2)), vec![]);
    assert_eq!(inst.state(), State::Fault);
    assert_eq!(inst.next_deadline(), None);
    let actions = run(&mut inst, Input::InterfaceUp, ms(3));
    assert_eq!(
        transitions(&actions),
        vec![(State::Fault, State::Backup, Reason::InterfaceUp)]
    );
    assert_eq!(
        inst.next_deadline(),
        Some(ms(3).saturating_add(mdi(Version::V3, 100, 50)))
    );
}

// A different VRID or version is another virtual router: refused (the
// caller restarts the instance); an invalid file is refused too. Either
// way the running instance is untouched.
#[test]
fn reconfigure_refuses_identity_changes_and_invalid_config() {
    let c = config(Version::V3, 100, v4(1));
    let (mut inst, became) = lone_master(&c);
    let deadline = inst.next_deadline();

    let mut other = c.clone();
    other.vrid = 57;
    let err = inst.reconfigure(&other, became).err();
    assert_eq!(
        err,
        Some(ReconfigureError::Identity {
            vrid: 56,
            version: Version::V3,
            new_vrid: 57,
            new_version: Version::V3
        })
    );
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(
            "virtual router 56 (VRRP V3) cannot be reloaded as virtual router 57 (VRRP V3): \
             a changed virtual_router_id or version needs the instance restarted"
                .to_string()
        )
    );

    let mut other = c.clone();
    other.version = Version::V2;
    assert!(matches!(
        inst.reconfigure(&other, became),
        Err(ReconfigureError::Identity {
            new_version: Version::V2,
            ..
        })
    ));

    let mut bad = c.clone();
    bad.priority = 0;
    bad.tracked = vec![tracked(0, false)];
    let err = inst.reconfigure(&bad, became).err();
    assert_eq!(
        err,
        Some(ReconfigureError::Config(ConfigError::PriorityZero))
    );
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(ConfigError::PriorityZero.to_string())
    );

    assert_eq!(inst.state(), State::Master);
    assert_eq!(inst.base_priority(), 100);
    assert_eq!(inst.effective_priority(), 100);
    assert_eq!(inst.next_deadline(), deadline);
}
