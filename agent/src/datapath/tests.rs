//! `vrrp_rx` driven through `BPF_PROG_TEST_RUN` with crafted frames: every
//! drop reason, every valid form, and non-VRRP traffic passing untouched.
//! Needs root (CAP_BPF); nothing is attached to any interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::{
    AUTH_NONE, AUTH_PASS, CHANGE_CHECKSUM, CHANGE_FIRST, CHANGE_PRIORITY, CHANGE_PRIORITY_ZERO,
    CHANGE_RESUMED, PEER_FLAG_PSEUDO_HEADER_CHECKSUM, PeerEvent,
};
use aya::programs::{TestRun, TestRunOptions};

use super::*;
use crate::datapath::test_frames::{Checksum, FrameSpec};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

struct Harness {
    // Field order matters: the datapath goes before the runtime it registered with.
    datapath: Datapath,
    events: EventStream,
    _log: KernelLog,
    /// BPF_PROG_TEST_RUN reports the test netns loopback as ingress device.
    ifindex: u32,
    _runtime: tokio::runtime::Runtime,
}

/// `Datapath::load` registers its rings with the current tokio reactor.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime")
}

impl Harness {
    fn new(mode: InterfaceMode) -> Self {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the datapath tests load eBPF programs and must run as root (CI does)"
        );
        let runtime = runtime();
        let _entered = runtime.enter();
        let (mut datapath, events, log) = Datapath::load().expect("load eBPF object");
        let ifindex = interface_index("lo").expect("lo exists");
        datapath
            .configure_interface(ifindex, mode)
            .expect("configure");
        Self {
            datapath,
            events,
            _log: log,
            ifindex,
            _runtime: runtime,
        }
    }

    fn enforcing() -> Self {
        let mut harness = Self::new(InterfaceMode::Enforce {
            pass_consumed: false,
        });
        harness.configure(51, FAMILY_IPV4, 3, AUTH_NONE, b"", 1);
        harness.configure(52, FAMILY_IPV6, 3, AUTH_NONE, b"", 1);
        harness.configure(56, FAMILY_IPV4, 2, AUTH_PASS, b"1234", 1);
        harness
    }

    fn configure(&mut self, vrid: u8, family: u8, version: u8, auth: u8, pass: &[u8], int_s: u8) {
        let mut auth_pass = [0u8; 8];
        auth_pass[..pass.len()].copy_from_slice(pass);
        self.datapath
            .set_instance_filter(
                InstanceKey::new(self.ifindex, vrid, family),
                InstanceFilter {
                    version,
                    auth_type: auth,
                    advert_int_s: int_s,
                    flags: 0,
                    auth_pass,
                    last_seen_slot: 0,
                },
            )
            .expect("set filter");
    }

    /// Runs the program on `frame`; asserts the frame came back unmodified.
    fn run(&mut self, frame: &[u8]) -> u32 {
        let mut out = vec![0u8; frame.len() + 64];
        let program = self.datapath.rx_program().expect("program");
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(
            &out[..result.data_size_out as usize],
            frame,
            "frame modified"
        );
        result.return_value
    }

    /// The instance every test address belongs to.
    fn instance(&self) -> InstanceKey {
        InstanceKey::new(self.ifindex, 51, FAMILY_IPV4)
    }

    /// Sets an address's state; an owned one gets a fresh heartbeat (10 s
    /// hold, priority 200: the test adverts never win against it), as the
    /// daemon writes with every advert.
    fn set_vip(&mut self, address: IpAddr, state: VipState) -> Result<(), DatapathError> {
        if state != VipState::NotOwned {
            self.heartbeat(0, 10_000, 200)?;
        }
        let instance = self.instance();
        self.datapath
            .set_vip_state(address, instance, state, Vmac::Off)
    }

    /// Writes the instance's heartbeat as if its last advert was `age_ms`
    /// ago, with `hold_ms`, our `priority` (primary 192.0.2.1) and an
    /// advert interval of 1 s (overdue after 2 s).
    fn heartbeat(&mut self, age_ms: u64, hold_ms: u64, priority: u8) -> Result<(), DatapathError> {
        let heartbeat = Heartbeat {
            last_advert_ns: kernel_now_ns().saturating_sub(age_ms * 1_000_000),
            interval_ns: 1_000_000_000,
            takeover_ns: hold_ms * 1_000_000,
            hold_ns: hold_ms * 1_000_000,
            primary: address_to_key(Ipv4Addr::new(192, 0, 2, 1).into()).1,
            priority,
            fenced: 0,
            _pad: [0; 6],
        };
        let instance = self.instance();
        self.datapath
            .write_heartbeat(instance, heartbeat, Duration::from_millis(10))
    }

    fn counter(&mut self, counter: Counter) -> u64 {
        self.datapath.counters().expect("counters").get(counter)
    }

    fn peer(&mut self, vrid: u8, family: u8) -> Option<PeerState> {
        let key = PeerKey::new(self.ifindex, vrid, family);
        self.datapath.peer(&key).expect("peer lookup")
    }

    fn drain_events(&mut self) -> Vec<PeerEvent> {
        std::iter::from_fn(|| self.events.try_next()).collect()
    }

    /// The frame must be dropped, counted under `reason` and nowhere else.
    fn assert_dropped(&mut self, frame: &[u8], reason: Counter) {
        let before = self.datapath.counters().expect("counters");
        assert_eq!(
            self.run(frame),
            XDP_DROP,
            "expected a drop for {}",
            reason.name()
        );
        let after = self.datapath.counters().expect("counters");
        for counter in Counter::ALL {
            let expected = before.get(counter) + u64::from(counter == reason);
            assert_eq!(after.get(counter), expected, "counter {}", counter.name());
        }
        assert!(
            self.drain_events().is_empty(),
            "a dropped advert raised an event"
        );
    }
}

fn v3_ipv4() -> FrameSpec {
    FrameSpec::v3_ipv4(PEER_V4, 51, 100, 100)
}

#[test]
fn non_vrrp_traffic_passes_untouched_and_uncounted() {
    let mut harness = Harness::enforcing();
    for frame in [
        FrameSpec::udp_ipv4(),
        FrameSpec::udp_ipv6(),
        FrameSpec::arp(),
        FrameSpec::truncated_ipv4(),
    ] {
        assert_eq!(harness.run(&frame), XDP_PASS);
    }
    assert_eq!(
        harness.datapath.counters().unwrap(),
        CounterSnapshot::default()
    );
}

#[test]
fn valid_v3_ipv4_with_pseudo_header_checksum_is_recorded_and_consumed() {
    let mut harness = Harness::enforcing();
    assert_eq!(harness.run(&v3_ipv4().build()), XDP_DROP);
    assert_eq!(harness.counter(Counter::Accepted), 1);
    let peer = harness.peer(51, FAMILY_IPV4).expect("peer recorded");
    assert_eq!(peer.priority, 100);
    assert_eq!(peer.interval_cs, 100);
    assert_eq!(peer.version, 3);
    assert_eq!(peer.adverts, 1);
    assert_eq!(
        key_to_address(FAMILY_IPV4, peer.source),
        IpAddr::V4(PEER_V4)
    );
    assert_eq!(
        peer.flags & PEER_FLAG_PSEUDO_HEADER_CHECKSUM,
        PEER_FLAG_PSEUDO_HEADER_CHECKSUM
    );
    let now = kernel_now_ns();
    assert!(peer.last_seen_ns <= now && now - peer.last_seen_ns < 5_000_000_000);
    let events = harness.drain_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].changes & CHANGE_FIRST, CHANGE_FIRST);
    assert_eq!(events[0].state, peer);
}

#[test]
fn valid_v3_ipv4_without_pseudo_header_checksum_is_accepted() {
    let mut harness = Harness::enforcing();
    let frame = v3_ipv4().checksum(Checksum::MessageOnly).build();
    assert_eq!(harness.run(&frame), XDP_DROP);
    assert_eq!(harness.counter(Counter::Accepted), 1);
    let peer = harness.peer(51, FAMILY_IPV4).expect("peer recorded");
    assert_eq!(peer.flags & PEER_FLAG_PSEUDO_HEADER_CHECKSUM, 0);
}

#[test]
fn keepalived_old_unicast_checksum_is_accepted() {
    let mut harness = Harness::enforcing();
    let unicast = v3_ipv4().unicast_to(Ipv4Addr::new(192, 0, 2, 1));
    let frame = unicast
        .clone()
        .checksum(Checksum::GroupPseudoHeader)
        .build();
    assert_eq!(harness.run(&frame), XDP_DROP);
    assert_eq!(harness.counter(Counter::Accepted), 1);
    assert_eq!(harness.counter(Counter::Checksum), 0);
    harness.drain_events();
    harness.assert_dropped(
        &unicast.checksum(Checksum::Corrupt).build(),
        Counter::Checksum,
    );
}

#[test]
fn valid_v3_ipv6_is_accepted() {
    let mut harness = Harness::enforcing();
    let frame = FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).build();
    assert_eq!(harness.run(&frame), XDP_DROP);
    let peer = harness.peer(52, FAMILY_IPV6).expect("peer recorded");
    assert_eq!(peer.priority, 200);
    assert_eq!(peer.interval_cs, 5);
    assert_eq!(
        key_to_address(FAMILY_IPV6, peer.source),
        IpAddr::V6(PEER_V6)
    );
}

#[test]
fn valid_v2_with_pass_authentication_is_accepted() {
    let mut harness = Harness::enforcing();
    let frame = FrameSpec::v2_pass(PEER_V4, 56, 90, 1, b"1234").build();
    assert_eq!(harness.run(&frame), XDP_DROP);
    let peer = harness.peer(56, FAMILY_IPV4).expect("peer recorded");
    assert_eq!(
        (peer.version, peer.priority, peer.interval_cs),
        (2, 90, 100)
    );
}

impl Harness {
    /// The frame must pass, counted as `passed_unknown` and nothing else,
    /// recording no peer and raising no event.
    fn assert_passed_unknown(&mut self, frame: &[u8], what: &str) {
        let before = self.datapath.counters().expect("counters");
        let peers = self.datapath.peers().expect("peers");
        assert_eq!(self.run(frame), XDP_PASS, "{what} must pass");
        let after = self.datapath.counters().expect("counters");
        for counter in Counter::ALL {
            let expected = before.get(counter) + u64::from(counter == Counter::PassedUnknown);
            assert_eq!(
                after.get(counter),
                expected,
                "{what}: counter {}",
                counter.name()
            );
        }
        assert_eq!(self.datapath.peers().expect("peers"), peers, "{what}");
        assert!(self.drain_events().is_empty(), "{what} raised an event");
    }
}

/// An advert tagged in the frame's data belongs to a VLAN device (where the
/// stack delivers it after untagging), never to an instance of the
/// interface it arrived on, even with the same VRID: valid or not, it
/// passes.
#[test]
fn vlan_tagged_adverts_pass_for_the_vlan_device_and_are_counted() {
    let mut harness = Harness::enforcing();
    harness.assert_passed_unknown(&v3_ipv4().vlan(42).build(), "a tagged advert, VRID 51");
    harness.assert_passed_unknown(
        &v3_ipv4().vlan(42).checksum(Checksum::Corrupt).build(),
        "a tagged broken advert",
    );
    harness.assert_passed_unknown(
        &FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).vlan(7).build(),
        "a tagged IPv6 advert",
    );
    // The same advert untagged is the instance's.
    assert_eq!(harness.run(&v3_ipv4().build()), XDP_DROP);
    assert_eq!(harness.counter(Counter::Accepted), 1);
}

/// QinQ (an 802.1ad S-tag, or two 802.1Q tags) is never located as IP:
/// it passes before any VRRP check, uncounted.
#[test]
fn qinq_and_service_tagged_frames_pass_uncounted() {
    let mut harness = Harness::enforcing();
    for (frame, what) in [
        (v3_ipv4().tag(0x88a8, 100).vlan(42).build(), "802.1ad QinQ"),
        (v3_ipv4().vlan(100).vlan(42).build(), "double 802.1Q"),
        (v3_ipv4().tag(0x88a8, 100).build(), "an S-tag alone"),
    ] {
        assert_eq!(harness.run(&frame), XDP_PASS, "{what}");
    }
    assert_eq!(
        harness.datapath.counters().unwrap(),
        CounterSnapshot::default()
    );
    assert!(harness.peer(51, FAMILY_IPV4).is_none());
}

/// VRRP this node runs no instance for is not ours to judge: valid or
/// broken, it passes to the stack (other routers, a second daemon,
/// tcpdump) and is counted as `passed_unknown`.
#[test]
fn adverts_no_instance_owns_pass_and_are_counted() {
    let mut harness = Harness::enforcing();
    harness
        .datapath
        .add_local_address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        .unwrap();
    let unknown = || FrameSpec::v3_ipv4(PEER_V4, 77, 100, 100);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (unknown().build(), "a valid advert for VRID 77"),
        // VRID 51 is configured for IPv4 only, 52 for IPv6 only.
        (
            FrameSpec::v3_ipv6(PEER_V6, 51, 100, 100).build(),
            "IPv6 for an IPv4 instance",
        ),
        (unknown().ttl(64).build(), "TTL 64 for VRID 77"),
        (unknown().version(4).build(), "version 4 for VRID 77"),
        (
            unknown().checksum(Checksum::Corrupt).build(),
            "bad checksum for VRID 77",
        ),
        (
            unknown().declared_count(3).build(),
            "bad length for VRID 77",
        ),
        (
            FrameSpec::v2_pass(PEER_V4, 77, 90, 1, b"x").build(),
            "VRRPv2 for VRID 77",
        ),
        (
            FrameSpec::v3_ipv4(Ipv4Addr::new(192, 0, 2, 1), 77, 100, 100).build(),
            "our own address, VRID 77",
        ),
        (FrameSpec::vrrp_without_message(), "VRRP naming no VRID"),
    ];
    for (frame, what) in cases {
        harness.assert_passed_unknown(&frame, what);
    }
    assert_eq!(harness.counter(Counter::PassedUnknown), 9);
}

/// Counts land in the block of the interface they happened on.
#[test]
fn counters_are_kept_per_interface() {
    let mut harness = Harness::enforcing();
    harness.run(&v3_ipv4().build());
    harness.run(&FrameSpec::v3_ipv4(PEER_V4, 77, 100, 100).build());
    harness.run(&v3_ipv4().ttl(1).build());
    let per_interface = harness.datapath.interface_counters().unwrap();
    assert_eq!(
        per_interface.keys().copied().collect::<Vec<_>>(),
        [harness.ifindex]
    );
    let lo = per_interface[&harness.ifindex];
    assert_eq!(
        (
            lo.get(Counter::Accepted),
            lo.get(Counter::PassedUnknown),
            lo.get(Counter::Ttl)
        ),
        (1, 1, 1)
    );
    assert_eq!(lo, harness.datapath.counters().unwrap());
}

#[test]
fn each_invalid_advert_is_dropped_under_its_own_reason() {
    let mut harness = Harness::enforcing();
    harness
        .datapath
        .add_local_address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        .unwrap();
    let cases: Vec<(FrameSpec, Counter)> = vec![
        (v3_ipv4().ttl(64), Counter::Ttl),
        (v3_ipv4().version(4), Counter::Version),
        // The instance for VRID 51 runs v3: a v2 advert for it is a mismatch.
        (
            FrameSpec::v2_pass(PEER_V4, 51, 90, 1, b""),
            Counter::Version,
        ),
        (v3_ipv4().advert_type(2), Counter::Type),
        (v3_ipv4().declared_count(2), Counter::Length),
        (v3_ipv4().truncate_ip_payload(4), Counter::Length),
        (v3_ipv4().checksum(Checksum::Corrupt), Counter::Checksum),
        (
            FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).checksum(Checksum::MessageOnly),
            Counter::Checksum,
        ),
        (
            FrameSpec::v2_pass(PEER_V4, 56, 90, 1, b"1234").auth_type(0),
            Counter::AuthType,
        ),
        (
            FrameSpec::v2_pass(PEER_V4, 56, 90, 1, b"4321"),
            Counter::AuthData,
        ),
        (
            FrameSpec::v2_pass(PEER_V4, 56, 90, 2, b"1234"),
            Counter::AdvertInterval,
        ),
        (
            FrameSpec::v3_ipv4(Ipv4Addr::new(192, 0, 2, 1), 51, 100, 100),
            Counter::OwnAddress,
        ),
    ];
    for (spec, reason) in cases {
        harness.assert_dropped(&spec.build(), reason);
    }
    assert!(harness.peer(51, FAMILY_IPV4).is_none());
}

#[test]
fn identical_adverts_raise_one_event_and_changes_raise_more() {
    let mut harness = Harness::enforcing();
    for _ in 0..5 {
        harness.run(&v3_ipv4().build());
    }
    assert_eq!(
        harness.drain_events().len(),
        1,
        "identical adverts must not wake userspace"
    );
    assert_eq!(harness.peer(51, FAMILY_IPV4).unwrap().adverts, 5);

    harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 120, 100).build());
    let events = harness.drain_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].changes, CHANGE_PRIORITY);
    assert_eq!(events[0].state.priority, 120);

    harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 0, 100).build());
    harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 0, 100).build());
    let events = harness.drain_events();
    assert_eq!(events.len(), 2, "every priority-0 advert is reported");
    assert_eq!(events[0].changes, CHANGE_PRIORITY | CHANGE_PRIORITY_ZERO);
    assert_eq!(events[1].changes, CHANGE_PRIORITY_ZERO);
}

/// A router silent for more than two of its intervals that speaks again
/// (a backup turned master behind a partition) wakes userspace even though
/// its advert looks like the last one: the master it contests must answer
/// at once.
#[test]
fn an_advert_after_a_silence_raises_an_event() {
    let mut harness = Harness::enforcing();
    // 10 ms adverts: silent for more than 20 ms means gone.
    let frame = FrameSpec::v3_ipv4(PEER_V4, 51, 100, 1).build();
    harness.run(&frame);
    assert_eq!(harness.drain_events()[0].changes, CHANGE_FIRST);
    harness.run(&frame);
    assert!(harness.drain_events().is_empty(), "back to back: no event");
    std::thread::sleep(std::time::Duration::from_millis(60));
    harness.run(&frame);
    let events = harness.drain_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].changes, CHANGE_RESUMED);
    harness.run(&frame);
    assert!(harness.drain_events().is_empty());
}

#[test]
fn pass_consumed_mode_passes_valid_adverts_but_still_drops_invalid_ones() {
    let mut harness = Harness::new(InterfaceMode::Enforce {
        pass_consumed: true,
    });
    harness.configure(51, FAMILY_IPV4, 3, AUTH_NONE, b"", 1);
    assert_eq!(harness.run(&v3_ipv4().build()), XDP_PASS);
    assert_eq!(harness.counter(Counter::Accepted), 1);
    assert_eq!(harness.drain_events().len(), 1);
    harness.assert_dropped(&v3_ipv4().ttl(1).build(), Counter::Ttl);
}

#[test]
fn observe_only_mode_records_every_vrid_and_drops_nothing() {
    let mut harness = Harness::new(InterfaceMode::ObserveOnly);
    assert_eq!(
        harness.run(&FrameSpec::v3_ipv4(PEER_V4, 200, 50, 100).build()),
        XDP_PASS
    );
    assert_eq!(harness.peer(200, FAMILY_IPV4).unwrap().priority, 50);
    assert_eq!(
        harness.run(&v3_ipv4().checksum(Checksum::Corrupt).build()),
        XDP_PASS
    );
    assert_eq!(harness.counter(Counter::Checksum), 1);
}

#[test]
fn adverts_on_an_unconfigured_interface_pass_uncounted() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let (mut datapath, _events, _log) = Datapath::load().expect("load eBPF object");
    let mut out = vec![0u8; 256];
    let frame = v3_ipv4().build();
    let result = datapath
        .rx_program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })
        .unwrap();
    assert_eq!(result.return_value, XDP_PASS);
    assert_eq!(datapath.counters().unwrap(), CounterSnapshot::default());
}

mod vip_guard {
    use super::*;

    const TCX_NEXT: u32 = -1i32 as u32;
    const TCX_DROP: u32 = 2;
    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

    fn run(harness: &mut Harness, frame: &[u8]) -> u32 {
        let program = harness.datapath.guard_program().expect("program");
        program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }

    #[test]
    fn frames_from_a_vip_leave_only_while_this_node_owns_it() {
        let mut harness = Harness::enforcing();
        let from_vip = FrameSpec::udp_ipv4_from(VIP_V4);
        assert_eq!(
            run(&mut harness, &from_vip),
            TCX_NEXT,
            "unknown address passes"
        );

        harness.set_vip(VIP_V4.into(), VipState::NotOwned).unwrap();
        assert_eq!(run(&mut harness, &from_vip), TCX_DROP);
        assert_eq!(run(&mut harness, &FrameSpec::arp_from(VIP_V4)), TCX_DROP);
        assert_eq!(
            run(&mut harness, &FrameSpec::udp_ipv4()),
            TCX_NEXT,
            "other sources pass"
        );
        assert_eq!(harness.counter(Counter::VipEgressBlocked), 2);

        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        assert_eq!(run(&mut harness, &from_vip), TCX_NEXT);
        // No-accept limits what comes in, not what the master sends.
        harness
            .set_vip(VIP_V4.into(), VipState::OwnedNoAccept)
            .unwrap();
        assert_eq!(run(&mut harness, &from_vip), TCX_NEXT);
        assert_eq!(run(&mut harness, &FrameSpec::arp_from(VIP_V4)), TCX_NEXT);
        assert_eq!(harness.counter(Counter::VipEgressBlocked), 2);
        harness.set_vip(VIP_V4.into(), VipState::NotOwned).unwrap();
        harness.datapath.forget_vip(VIP_V4.into()).unwrap();
        assert_eq!(
            run(&mut harness, &from_vip),
            TCX_NEXT,
            "forgotten address passes"
        );
    }

    #[test]
    fn ipv6_frames_from_a_vip_are_guarded_too() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V6.into(), VipState::NotOwned).unwrap();
        assert_eq!(
            run(&mut harness, &FrameSpec::udp_ipv6_from(VIP_V6)),
            TCX_DROP
        );
        assert_eq!(run(&mut harness, &FrameSpec::udp_ipv6()), TCX_NEXT);
    }
}

/// RFC 5798 §6.4.3: a no-accept master that is not the address owner drops
/// packets addressed to its virtual addresses in XDP.
mod vip_ingress {
    use super::*;

    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP_V4_OTHER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
    const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const UDP: u8 = 17;
    const TCP: u8 = 6;
    const ICMP: u8 = 1;
    const ICMPV6: u8 = 58;

    fn udp(destination: IpAddr) -> Vec<u8> {
        FrameSpec::ip_to(
            destination,
            UDP,
            &[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'p', b'i', b'n', b'g'],
            None,
        )
    }

    fn tcp_syn(destination: IpAddr) -> Vec<u8> {
        let mut header = vec![0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
        header.extend([0xff, 0xff, 0, 0, 0, 0]);
        FrameSpec::ip_to(destination, TCP, &header, None)
    }

    fn icmp_echo(destination: IpAddr) -> Vec<u8> {
        let protocol = if destination.is_ipv6() { ICMPV6 } else { ICMP };
        let echo_type = if destination.is_ipv6() { 128 } else { 8 };
        FrameSpec::ip_to(
            destination,
            protocol,
            &[echo_type, 0, 0, 0, 0, 1, 0, 1],
            None,
        )
    }

    /// A neighbour solicitation (135) or advertisement (136) about `target`,
    /// sent to it (unicast NUD probe, or an answer to our solicitation).
    fn neighbour_discovery(icmp_type: u8, target: Ipv6Addr) -> Vec<u8> {
        let mut message = vec![icmp_type, 0, 0, 0, 0, 0, 0, 0];
        message.extend(target.octets());
        FrameSpec::ip_to(target.into(), ICMPV6, &message, None)
    }

    /// The frame must pass and leave every counter as it was.
    fn assert_passes(harness: &mut Harness, frame: &[u8], what: &str) {
        let before = harness.datapath.counters().unwrap();
        assert_eq!(harness.run(frame), XDP_PASS, "{what} must pass");
        assert_eq!(harness.datapath.counters().unwrap(), before, "{what}");
    }

    #[test]
    fn traffic_to_a_no_accept_vip_is_dropped_and_counted() {
        let mut harness = Harness::enforcing();
        harness
            .set_vip(VIP_V4.into(), VipState::OwnedNoAccept)
            .unwrap();
        for frame in [
            udp(VIP_V4.into()),
            tcp_syn(VIP_V4.into()),
            icmp_echo(VIP_V4.into()),
        ] {
            harness.assert_dropped(&frame, Counter::VipIngressBlocked);
        }
        assert_eq!(harness.counter(Counter::VipIngressBlocked), 3);

        assert_passes(&mut harness, &udp(VIP_V4_OTHER.into()), "another address");
        assert_passes(
            &mut harness,
            &FrameSpec::udp_ipv4(),
            "the node's own traffic",
        );
        assert_passes(
            &mut harness,
            &FrameSpec::arp_request_for(VIP_V4),
            "ARP for the VIP",
        );
        assert_passes(
            &mut harness,
            &FrameSpec::arp_from(VIP_V4),
            "a GARP for the VIP",
        );
    }

    #[test]
    fn traffic_to_a_vip_passes_in_accept_mode_and_when_not_master() {
        let mut harness = Harness::enforcing();
        let frames = [
            udp(VIP_V4.into()),
            tcp_syn(VIP_V4.into()),
            icmp_echo(VIP_V4.into()),
        ];
        for state in [VipState::Owned, VipState::NotOwned] {
            harness.set_vip(VIP_V4.into(), state).unwrap();
            for frame in &frames {
                assert_passes(&mut harness, frame, &format!("{state:?}"));
            }
        }

        // Back from no-accept to accept: the guard lets everything in again,
        // while another address still held in no-accept stays closed.
        for address in [VIP_V4, VIP_V4_OTHER] {
            harness
                .set_vip(address.into(), VipState::OwnedNoAccept)
                .unwrap();
        }
        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        assert_passes(&mut harness, &frames[0], "accept after no-accept");
        harness.assert_dropped(&udp(VIP_V4_OTHER.into()), Counter::VipIngressBlocked);
        harness.datapath.forget_vip(VIP_V4_OTHER.into()).unwrap();
        assert_passes(
            &mut harness,
            &udp(VIP_V4_OTHER.into()),
            "a forgotten address",
        );
    }

    #[test]
    fn vrrp_and_neighbour_discovery_to_a_no_accept_vip_pass_the_guard() {
        let mut harness = Harness::enforcing();
        harness
            .set_vip(VIP_V4.into(), VipState::OwnedNoAccept)
            .unwrap();
        harness
            .set_vip(VIP_V6.into(), VipState::OwnedNoAccept)
            .unwrap();

        // A unicast advert addressed to the VIP is judged as an advert.
        let advert = v3_ipv4().unicast_to(VIP_V4).build();
        assert_eq!(harness.run(&advert), XDP_DROP, "valid adverts are consumed");
        assert_eq!(harness.counter(Counter::Accepted), 1);
        assert_eq!(harness.counter(Counter::VipIngressBlocked), 0);
        harness.drain_events();

        for icmp_type in [135, 136] {
            assert_passes(
                &mut harness,
                &neighbour_discovery(icmp_type, VIP_V6),
                &format!("ICMPv6 type {icmp_type}"),
            );
        }
        harness.assert_dropped(&icmp_echo(VIP_V6.into()), Counter::VipIngressBlocked);
    }

    #[test]
    fn ipv6_and_vlan_tagged_traffic_to_a_no_accept_vip_is_dropped() {
        let mut harness = Harness::enforcing();
        for address in [IpAddr::V4(VIP_V4), IpAddr::V6(VIP_V6)] {
            harness.set_vip(address, VipState::OwnedNoAccept).unwrap();
        }
        harness.assert_dropped(&udp(VIP_V6.into()), Counter::VipIngressBlocked);
        harness.assert_dropped(&tcp_syn(VIP_V6.into()), Counter::VipIngressBlocked);
        let payload = [0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0];
        for address in [IpAddr::V4(VIP_V4), IpAddr::V6(VIP_V6)] {
            harness.assert_dropped(
                &FrameSpec::ip_to(address, UDP, &payload, Some(42)),
                Counter::VipIngressBlocked,
            );
        }
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend(VIP_V6.octets());
        assert_passes(
            &mut harness,
            &FrameSpec::ip_to(VIP_V6.into(), ICMPV6, &ns, Some(42)),
            "a VLAN-tagged neighbour solicitation",
        );
        assert_eq!(harness.counter(Counter::VipIngressBlocked), 4);
    }
}

/// The fence: owned addresses of an instance whose heartbeat is old, or
/// that lost the election in the kernel, neither send nor receive.
mod fence {
    use super::*;

    const TCX_NEXT: u32 = -1i32 as u32;
    const TCX_DROP: u32 = 2;
    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const UDP: u8 = 17;

    fn egress(harness: &mut Harness, frame: &[u8]) -> u32 {
        let program = harness.datapath.guard_program().expect("program");
        program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }

    fn to_vip() -> Vec<u8> {
        FrameSpec::ip_to(
            VIP_V4.into(),
            UDP,
            &[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0],
            None,
        )
    }

    #[test]
    fn an_old_heartbeat_closes_the_address_both_ways() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );
        assert_eq!(harness.run(&to_vip()), XDP_PASS);

        // The daemon stopped advertising 50 ms ago; its hold is 40 ms.
        harness.heartbeat(50, 40, 100).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_DROP
        );
        assert_eq!(egress(&mut harness, &FrameSpec::arp_from(VIP_V4)), TCX_DROP);
        harness.assert_dropped(&to_vip(), Counter::VipFenced);
        assert_eq!(harness.counter(Counter::VipFenced), 3);
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4()),
            TCX_NEXT,
            "other sources pass"
        );

        // It advertises again: open.
        harness.heartbeat(0, 40, 100).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );
        assert_eq!(harness.run(&to_vip()), XDP_PASS);
    }

    #[test]
    fn the_alive_window_spares_the_lookup_but_not_past_its_end() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        // Hold 40 ms, interval 10 ms: every heartbeat is good for 30 ms
        // after any advert.
        harness.heartbeat(0, 40, 100).unwrap();
        harness.datapath.mark_alive(kernel_now_ns()).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );
        // Past the window and the hold, the heartbeat decides again.
        harness
            .datapath
            .mark_alive(kernel_now_ns() - 100_000_000)
            .unwrap();
        harness.heartbeat(60, 40, 100).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_DROP
        );
    }

    #[test]
    fn a_winning_advert_fences_in_the_kernel_and_a_losing_one_does_not() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        // We advertise priority 150: a peer at 100 loses.
        harness.heartbeat(0, 10_000, 150).unwrap();
        harness.datapath.mark_alive(kernel_now_ns()).unwrap();
        assert_eq!(
            harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 100, 100).build()),
            XDP_DROP
        );
        assert_eq!(harness.counter(Counter::FenceClosed), 0);
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );

        // Equal priority from a higher address (192.0.2.2 > 192.0.2.1) wins.
        assert_eq!(
            harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 150, 100).build()),
            XDP_DROP
        );
        assert_eq!(harness.counter(Counter::FenceClosed), 1);
        let instance = harness.instance();
        let heartbeat = harness.datapath.heartbeat(&instance).unwrap().unwrap();
        assert_eq!(heartbeat.fenced, 1);
        harness.drain_events();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_DROP
        );
        harness.assert_dropped(&to_vip(), Counter::VipFenced);
    }

    #[test]
    fn another_master_fences_a_zombie_at_once_but_not_a_live_master() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V4.into(), VipState::Owned).unwrap();
        // Our daemon last advertised 3 s ago at a 1 s interval (a zombie);
        // the hold (10 s) has not run out, so the address still answers.
        harness.heartbeat(3_000, 10_000, 150).unwrap();
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );
        // A lower-priority backup took over: its first advert fences us.
        assert_eq!(
            harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 100, 100).build()),
            XDP_DROP
        );
        assert_eq!(harness.counter(Counter::FenceClosed), 1);
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_DROP
        );
        harness.drain_events();

        // The same advert while our daemon is on time changes nothing.
        harness.heartbeat(0, 10_000, 150).unwrap();
        assert_eq!(
            harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 101, 100).build()),
            XDP_DROP
        );
        assert_eq!(harness.counter(Counter::FenceClosed), 1);
        assert_eq!(
            egress(&mut harness, &FrameSpec::udp_ipv4_from(VIP_V4)),
            TCX_NEXT
        );
    }

    #[test]
    fn without_a_heartbeat_nothing_is_fenced_in_the_kernel() {
        let mut harness = Harness::enforcing();
        harness.set_vip(VIP_V4.into(), VipState::NotOwned).unwrap();
        assert_eq!(
            harness.run(&FrameSpec::v3_ipv4(PEER_V4, 51, 200, 100).build()),
            XDP_DROP
        );
        assert_eq!(harness.counter(Counter::FenceClosed), 0);
    }
}

/// A bpffs mounted for one test; unmounting it releases every pin.
struct TempBpffs {
    dir: tempfile::TempDir,
}

impl TempBpffs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = std::ffi::CString::new(dir.path().to_str().expect("utf-8")).expect("no NUL");
        // SAFETY: valid NUL-terminated strings for the call's duration.
        let result = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            result,
            0,
            "mount bpffs: {}",
            std::io::Error::last_os_error()
        );
        Self { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TempBpffs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.dir.path().to_str().unwrap_or_default())
            .unwrap_or_default();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn pinned_maps_are_adopted_pruned_and_refused_when_their_layout_changed() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let fs = TempBpffs::new();
    let pins = PinDir::new(fs.path().join("vrrp-agent"));
    let ours = InstanceKey::new(7, 51, FAMILY_IPV4);
    let gone = InstanceKey::new(7, 52, FAMILY_IPV4);
    let heartbeat = Heartbeat {
        last_advert_ns: 42,
        interval_ns: 1_000_000_000,
        takeover_ns: 3_000_000_000,
        hold_ns: 4_000_000_000,
        primary: [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        priority: 150,
        fenced: 0,
        _pad: [0; 6],
    };
    {
        let (mut datapath, _events, _log) =
            Datapath::load_pinned(pins.clone(), None).expect("load");
        for key in [ours, gone] {
            datapath
                .write_heartbeat(key, heartbeat, Duration::from_secs(1))
                .unwrap();
        }
        // Dropped without release: a daemon that died.
    }
    {
        let (mut datapath, _events, _log) =
            Datapath::load_pinned(pins.clone(), None).expect("load");
        assert_eq!(
            datapath.heartbeat(&ours).unwrap(),
            Some(heartbeat),
            "adopted"
        );
        datapath
            .write_heartbeat(ours, heartbeat, Duration::from_secs(1))
            .unwrap();
        datapath.prune_inherited().unwrap();
        assert_eq!(datapath.heartbeat(&ours).unwrap(), Some(heartbeat));
        assert_eq!(
            datapath.heartbeat(&gone).unwrap(),
            None,
            "what this daemon did not write again is pruned"
        );
    }
    // Another build's map under a pinned name, and a directory of another
    // layout generation: nothing is adopted, both are gone afterwards.
    std::fs::remove_file(pins.map("PEERS")).unwrap();
    std::fs::rename(pins.map("LOCAL_ADDRESSES"), pins.map("PEERS")).unwrap();
    // maps-v1: the layout before per-interface counter slots.
    let old_generation = pins.root().join("maps-v1");
    std::fs::create_dir(&old_generation).unwrap();
    let (mut datapath, _events, _log) = Datapath::load_pinned(pins.clone(), None).expect("load");
    assert_eq!(
        datapath.heartbeat(&ours).unwrap(),
        None,
        "maps were adopted beside one of another layout"
    );
    assert!(!old_generation.exists());
    datapath.release();
    assert!(!pins.root().exists(), "release left pins");
}

#[test]
fn the_alive_window_is_the_shortest_hold_minus_the_longest_interval() {
    let mut masters = Masters::default();
    let key = |vrid| InstanceKey::new(1, vrid, FAMILY_IPV4);
    assert!(masters.insert(
        key(1),
        Duration::from_millis(340),
        Duration::from_millis(100)
    ));
    assert_eq!(masters.window, Duration::from_millis(240));
    assert!(!masters.insert(
        key(1),
        Duration::from_millis(340),
        Duration::from_millis(100)
    ));
    masters.insert(key(2), Duration::from_secs(3), Duration::from_secs(1));
    assert_eq!(
        masters.window,
        Duration::ZERO,
        "a slow master shares the window"
    );
    masters.remove(&key(2));
    assert_eq!(masters.window, Duration::from_millis(240));
    masters.remove(&key(1));
    assert_eq!(masters.window, Duration::ZERO);
}

/// A restarted daemon finds its interfaces' counter slots in the adopted
/// `INTERFACES` map: their counters carry on, and a new interface gets a
/// free slot, zeroed.
#[test]
fn an_adopting_daemon_keeps_each_interface_its_counters() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let fs = TempBpffs::new();
    let pins = PinDir::new(fs.path().join("vrrp-agent"));
    let lo = interface_index("lo").expect("lo exists");
    let enforce = InterfaceMode::Enforce {
        pass_consumed: false,
    };
    let unknown = FrameSpec::v3_ipv4(PEER_V4, 77, 100, 100).build();
    let run = |datapath: &mut Datapath| {
        let mut out = vec![0u8; unknown.len() + 64];
        datapath
            .rx_program()
            .unwrap()
            .test_run(TestRunOptions {
                data_in: Some(&unknown),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .unwrap()
            .return_value
    };
    {
        let (mut datapath, _events, _log) =
            Datapath::load_pinned(pins.clone(), None).expect("load");
        // Another interface takes slot 1 first, so lo's slot is not the
        // one a fresh daemon would pick for it.
        datapath.configure_interface(lo + 1000, enforce).unwrap();
        datapath.configure_interface(lo, enforce).unwrap();
        assert_eq!(run(&mut datapath), XDP_PASS);
        assert_eq!(run(&mut datapath), XDP_PASS);
    }
    let (mut datapath, _events, _log) = Datapath::load_pinned(pins.clone(), None).expect("load");
    datapath.configure_interface(lo, enforce).unwrap();
    let fresh = lo + 2000;
    datapath.configure_interface(fresh, enforce).unwrap();
    let counters = datapath.interface_counters().unwrap();
    assert_eq!(counters[&lo].get(Counter::PassedUnknown), 2, "adopted slot");
    assert_eq!(counters[&fresh], CounterSnapshot::default());
    assert_eq!(run(&mut datapath), XDP_PASS);
    let counters = datapath.interface_counters().unwrap();
    assert_eq!(counters[&lo].get(Counter::PassedUnknown), 3);
    datapath.release();
}

/// Interfaces deleted and re-created come back with new indexes: once
/// every slot is taken, those of vanished interfaces are given back, while
/// an existing interface keeps its own.
#[test]
fn slots_of_vanished_interfaces_are_reused() {
    let mut harness = Harness::enforcing();
    harness.run(&v3_ipv4().build());
    let enforce = InterfaceMode::Enforce {
        pass_consumed: false,
    };
    // No interface has these indexes: they stand for deleted ones.
    let gone = 4_000_000..4_000_000 + MAX_INTERFACE_SLOTS - 1;
    for ifindex in gone.clone() {
        harness
            .datapath
            .configure_interface(ifindex, enforce)
            .expect("a free slot");
    }
    harness
        .datapath
        .configure_interface(gone.end, enforce)
        .expect("a vanished interface's slot");
    let counters = harness.datapath.interface_counters().unwrap();
    assert_eq!(counters.len(), 2, "only lo and the newest remain");
    assert_eq!(counters[&harness.ifindex].get(Counter::Accepted), 1);
    assert_eq!(counters[&gone.end], CounterSnapshot::default());
}

impl Harness {
    /// Turns instance `vrid` into a unicast one with `flags`.
    fn make_unicast(&mut self, vrid: u8, family: u8, flags: u8) {
        let key = InstanceKey::new(self.ifindex, vrid, family);
        let filter = InstanceFilter {
            version: 3,
            auth_type: AUTH_NONE,
            advert_int_s: 1,
            flags,
            auth_pass: [0; 8],
            last_seen_slot: 0,
        };
        self.datapath
            .set_instance_filter(key, filter)
            .expect("set filter");
    }

    fn unicast_peers(&mut self, vrid: u8, family: u8, peers: &[(IpAddr, u8, u8)]) {
        let key = InstanceKey::new(self.ifindex, vrid, family);
        let peers: Vec<UnicastPeerFilter> = peers
            .iter()
            .map(|(address, min_ttl, max_ttl)| UnicastPeerFilter {
                address: *address,
                min_ttl: *min_ttl,
                max_ttl: *max_ttl,
            })
            .collect();
        self.datapath
            .set_unicast_sources(key, &peers)
            .expect("set unicast sources");
    }
}

/// RFC 5798's TTL 255 holds for multicast only: keepalived takes unicast
/// adverts that crossed routers.
#[test]
fn unicast_instances_accept_forwarded_adverts_multicast_ones_do_not() {
    let mut harness = Harness::enforcing();
    harness.assert_dropped(&v3_ipv4().ttl(63).build(), Counter::Ttl);
    harness.assert_dropped(
        &FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).ttl(64).build(),
        Counter::Ttl,
    );
    harness.make_unicast(51, FAMILY_IPV4, agent_common::INSTANCE_UNICAST);
    harness.make_unicast(52, FAMILY_IPV6, agent_common::INSTANCE_UNICAST);
    let routed = v3_ipv4().unicast_to(Ipv4Addr::new(192, 0, 2, 1)).ttl(63);
    assert_eq!(harness.run(&routed.build()), XDP_DROP);
    assert_eq!(harness.run(&v3_ipv4().ttl(1).build()), XDP_DROP);
    assert_eq!(
        harness.run(&FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).ttl(64).build()),
        XDP_DROP
    );
    assert_eq!(harness.counter(Counter::Accepted), 3);
    assert_eq!(harness.counter(Counter::Ttl), 2);
    assert!(harness.peer(51, FAMILY_IPV4).is_some());
    assert!(harness.peer(52, FAMILY_IPV6).is_some());
    // Everything else is still checked.
    harness.drain_events();
    harness.assert_dropped(
        &routed.checksum(Checksum::Corrupt).build(),
        Counter::Checksum,
    );
}

#[test]
fn check_unicast_src_drops_adverts_from_other_sources() {
    let mut harness = Harness::enforcing();
    let flags = agent_common::INSTANCE_UNICAST | agent_common::INSTANCE_CHECK_UNICAST_SOURCE;
    harness.unicast_peers(51, FAMILY_IPV4, &[(IpAddr::V4(PEER_V4), 0, 255)]);
    harness.unicast_peers(52, FAMILY_IPV6, &[(IpAddr::V6(PEER_V6), 0, 255)]);
    harness.make_unicast(51, FAMILY_IPV4, flags);
    harness.make_unicast(52, FAMILY_IPV6, flags);
    let stranger = Ipv4Addr::new(198, 51, 100, 9);
    harness.assert_dropped(
        &FrameSpec::v3_ipv4(stranger, 51, 100, 100).ttl(60).build(),
        Counter::UnicastSource,
    );
    harness.assert_dropped(
        &FrameSpec::v3_ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9), 52, 200, 5).build(),
        Counter::UnicastSource,
    );
    assert!(harness.peer(51, FAMILY_IPV4).is_none());
    assert_eq!(harness.run(&v3_ipv4().ttl(60).build()), XDP_DROP);
    assert_eq!(
        harness.run(&FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).ttl(1).build()),
        XDP_DROP
    );
    assert_eq!(harness.counter(Counter::Accepted), 2);
    // The same peer under another instance is a stranger there.
    harness.drain_events();
    harness.unicast_peers(51, FAMILY_IPV4, &[(IpAddr::V4(stranger), 0, 255)]);
    harness.assert_dropped(&v3_ipv4().build(), Counter::UnicastSource);
    assert_eq!(
        harness
            .datapath
            .unicast_sources(InstanceKey::new(harness.ifindex, 51, FAMILY_IPV4))
            .unwrap()
            .len(),
        1,
        "a replaced peer list keeps only the new peers"
    );
    // Without the check flag, any source is taken again.
    harness.make_unicast(51, FAMILY_IPV4, agent_common::INSTANCE_UNICAST);
    assert_eq!(harness.run(&v3_ipv4().build()), XDP_DROP);
    assert_eq!(harness.counter(Counter::Accepted), 3);
}

#[test]
fn a_unicast_peer_ttl_range_is_enforced() {
    let mut harness = Harness::enforcing();
    let flags = agent_common::INSTANCE_UNICAST | agent_common::INSTANCE_CHECK_UNICAST_SOURCE;
    harness.unicast_peers(51, FAMILY_IPV4, &[(IpAddr::V4(PEER_V4), 250, 254)]);
    harness.unicast_peers(52, FAMILY_IPV6, &[(IpAddr::V6(PEER_V6), 64, 64)]);
    harness.make_unicast(51, FAMILY_IPV4, flags);
    harness.make_unicast(52, FAMILY_IPV6, flags);
    harness.assert_dropped(&v3_ipv4().ttl(249).build(), Counter::Ttl);
    harness.assert_dropped(&v3_ipv4().build(), Counter::Ttl);
    harness.assert_dropped(
        &FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).ttl(63).build(),
        Counter::Ttl,
    );
    for ttl in [250, 254] {
        assert_eq!(harness.run(&v3_ipv4().ttl(ttl).build()), XDP_DROP);
    }
    assert_eq!(
        harness.run(&FrameSpec::v3_ipv6(PEER_V6, 52, 200, 5).ttl(64).build()),
        XDP_DROP
    );
    assert_eq!(harness.counter(Counter::Accepted), 3);
}

/// Removing an instance's filter takes its unicast sources with it.
#[test]
fn removing_a_filter_removes_its_unicast_sources() {
    let mut harness = Harness::enforcing();
    let key = InstanceKey::new(harness.ifindex, 51, FAMILY_IPV4);
    harness.unicast_peers(51, FAMILY_IPV4, &[(IpAddr::V4(PEER_V4), 0, 255)]);
    assert_eq!(harness.datapath.unicast_sources(key).unwrap().len(), 1);
    harness.datapath.remove_instance_filter(&key).unwrap();
    assert!(harness.datapath.unicast_sources(key).unwrap().is_empty());
}

/// A restarted daemon adopts the pinned unicast sources (the kernel keeps
/// checking them while no daemon runs) and prunes those of instances it
/// no longer checks.
#[test]
fn pinned_unicast_sources_are_adopted_and_pruned() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let fs = TempBpffs::new();
    let pins = PinDir::new(fs.path().join("vrrp-agent"));
    let ours = InstanceKey::new(7, 51, FAMILY_IPV4);
    let gone = InstanceKey::new(7, 52, FAMILY_IPV4);
    let peer = UnicastPeerFilter {
        address: IpAddr::V4(PEER_V4),
        min_ttl: 250,
        max_ttl: 254,
    };
    {
        let (mut datapath, _events, _log) =
            Datapath::load_pinned(pins.clone(), None).expect("load");
        for key in [ours, gone] {
            datapath.set_unicast_sources(key, &[peer]).unwrap();
        }
    }
    let (mut datapath, _events, _log) = Datapath::load_pinned(pins.clone(), None).expect("load");
    assert_eq!(
        datapath.unicast_sources(ours).unwrap(),
        vec![(peer.key(ours), peer.value())],
        "adopted"
    );
    datapath.set_unicast_sources(ours, &[peer]).unwrap();
    datapath.prune_inherited().unwrap();
    assert_eq!(datapath.unicast_sources(ours).unwrap().len(), 1);
    assert!(
        datapath.unicast_sources(gone).unwrap().is_empty(),
        "what this daemon did not write again is pruned"
    );
    datapath.release();
}

/// `use_vmac` in the kernel: what `vip_guard` rewrites on the way out and
/// what `vmac_rx` takes in.
mod vmac {
    use super::*;
    use crate::vrrp::wire::{arp::GratuitousArp, ethernet::MacAddr, ndisc::UnsolicitedNa};

    const TCX_PASS: u32 = 0;
    const TCX_NEXT: u32 = -1i32 as u32;
    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const BASE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    /// The harness instance is VRID 51 over IPv4.
    const VMAC_51: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
    const VMAC_52_V6: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x02, 52];

    /// Runs `program` on `frame`: the verdict and the frame as it leaves.
    fn run_tc(program: &mut SchedClassifier, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 64];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    fn egress(harness: &mut Harness, frame: &[u8]) -> Vec<u8> {
        let program = harness.datapath.guard_program().expect("program");
        let (verdict, out) = run_tc(program, frame);
        assert_eq!(verdict, TCX_NEXT);
        out
    }

    fn own(harness: &mut Harness, address: IpAddr, vmac: Vmac) {
        harness.heartbeat(0, 10_000, 200).unwrap();
        let instance = harness.instance();
        harness
            .datapath
            .set_vip_state(address, instance, VipState::Owned, vmac)
            .unwrap();
    }

    /// A fresh heartbeat: this node is master of `instance`.
    fn master_of(harness: &mut Harness, instance: InstanceKey) {
        let heartbeat = Heartbeat {
            last_advert_ns: kernel_now_ns(),
            interval_ns: 1_000_000_000,
            takeover_ns: 10_000_000_000,
            hold_ns: 10_000_000_000,
            primary: [0; 16],
            priority: 200,
            fenced: 0,
            _pad: [0; 6],
        };
        harness
            .datapath
            .write_heartbeat(instance, heartbeat, Duration::from_secs(1))
            .unwrap();
    }

    fn with_source_mac(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
        frame[6..12].copy_from_slice(&mac);
        frame
    }

    #[test]
    fn frames_from_an_owned_vmac_address_leave_from_the_virtual_mac() {
        let mut harness = Harness::enforcing();
        let from_vip = FrameSpec::udp_ipv4_from(VIP_V4);
        own(&mut harness, VIP_V4.into(), Vmac::Off);
        assert_eq!(egress(&mut harness, &from_vip), from_vip, "no use_vmac");

        own(&mut harness, VIP_V4.into(), Vmac::On);
        let out = egress(&mut harness, &from_vip);
        assert_eq!(out[6..12], VMAC_51);
        assert_eq!(out, with_source_mac(from_vip.clone(), VMAC_51));
        let other = FrameSpec::udp_ipv4();
        assert_eq!(egress(&mut harness, &other), other, "other sources");

        // Not owned: the guard stops it; nothing is rewritten on the way.
        let instance = harness.instance();
        harness
            .datapath
            .set_vip_state(VIP_V4.into(), instance, VipState::NotOwned, Vmac::On)
            .unwrap();
        let program = harness.datapath.guard_program().expect("program");
        assert_eq!(run_tc(program, &from_vip).0, 2, "dropped");
    }

    #[test]
    fn arp_for_an_owned_vmac_address_names_the_virtual_mac() {
        let mut harness = Harness::enforcing();
        own(&mut harness, VIP_V4.into(), Vmac::XmitBase);
        let garp = GratuitousArp {
            sender_mac: MacAddr(BASE_MAC),
            address: VIP_V4,
        }
        .to_frame();
        let out = egress(&mut harness, &garp);
        let parsed = GratuitousArp::parse_frame(&out).expect("still a gratuitous ARP");
        assert_eq!(parsed.sender_mac, MacAddr(VMAC_51));
        assert_eq!(out[6..12], VMAC_51);
    }

    #[test]
    fn adverts_leave_from_the_virtual_mac_unless_vmac_xmit_base() {
        let mut harness = Harness::enforcing();
        // The advert carries VIP_V4 for VRID 51, from the primary address.
        let advert = with_source_mac(
            FrameSpec::v3_ipv4(Ipv4Addr::new(192, 0, 2, 1), 51, 200, 100).build(),
            BASE_MAC,
        );
        own(&mut harness, VIP_V4.into(), Vmac::Off);
        assert_eq!(egress(&mut harness, &advert), advert);
        own(&mut harness, VIP_V4.into(), Vmac::On);
        assert_eq!(
            egress(&mut harness, &advert),
            with_source_mac(advert.clone(), VMAC_51)
        );
        own(&mut harness, VIP_V4.into(), Vmac::XmitBase);
        assert_eq!(egress(&mut harness, &advert), advert, "vmac_xmit_base");
        // Another VRID carrying the same address is not this instance.
        let other = with_source_mac(
            FrameSpec::v3_ipv4(Ipv4Addr::new(192, 0, 2, 1), 50, 200, 100).build(),
            BASE_MAC,
        );
        own(&mut harness, VIP_V4.into(), Vmac::On);
        assert_eq!(egress(&mut harness, &other), other);
    }

    /// An address owner advertises from the virtual address itself.
    #[test]
    fn an_address_owner_s_adverts_follow_vmac_xmit_base_too() {
        let mut harness = Harness::enforcing();
        let advert = with_source_mac(FrameSpec::v3_ipv4(VIP_V4, 51, 255, 100).build(), BASE_MAC);
        own(&mut harness, VIP_V4.into(), Vmac::XmitBase);
        assert_eq!(egress(&mut harness, &advert), advert, "vmac_xmit_base");
        own(&mut harness, VIP_V4.into(), Vmac::On);
        assert_eq!(
            egress(&mut harness, &advert),
            with_source_mac(advert.clone(), VMAC_51)
        );
    }

    #[test]
    fn neighbour_adverts_carry_the_virtual_mac_with_a_valid_checksum() {
        let mut harness = Harness::enforcing();
        let instance = InstanceKey::new(harness.ifindex, 52, FAMILY_IPV6);
        master_of(&mut harness, instance);
        let na = UnsolicitedNa {
            source_mac: MacAddr(BASE_MAC),
            target: VIP_V6,
            router: false,
        }
        .to_frame();
        harness
            .datapath
            .set_vip_state(VIP_V6.into(), instance, VipState::Owned, Vmac::Off)
            .unwrap();
        assert_eq!(egress(&mut harness, &na), na);
        harness
            .datapath
            .set_vip_state(VIP_V6.into(), instance, VipState::Owned, Vmac::On)
            .unwrap();
        let out = egress(&mut harness, &na);
        let parsed = UnsolicitedNa::parse_frame(&out).expect("valid NA, checksum included");
        assert_eq!(parsed.source_mac, MacAddr(VMAC_52_V6));
        assert_eq!(parsed.target, VIP_V6);
    }

    /// One's-complement checksum of an ICMPv6 message over its pseudo-header.
    fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend(source.octets());
        bytes.extend(destination.octets());
        bytes.extend((message.len() as u32).to_be_bytes());
        bytes.extend([0, 0, 0, 58]);
        bytes.extend(message);
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// A neighbour solicitation from `source` for `target`, to its
    /// solicited-node group, naming `mac` as source link-layer address.
    fn solicitation(source: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 3);
        let mut message = vec![135, 0, 0, 0, 0, 0, 0, 0];
        message.extend(target.octets());
        message.extend([1, 1]);
        message.extend(mac);
        let sum = icmpv6_checksum(source, group, &message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0x33, 0x33, 0xff, 0, 0, 3];
        frame.extend(mac);
        frame.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        frame.extend((message.len() as u16).to_be_bytes());
        frame.extend([58, 255]);
        frame.extend(source.octets());
        frame.extend(group.octets());
        frame.extend(message);
        frame
    }

    /// The kernel resolving a client to answer it from the VIP: the client
    /// learns the VIP's MAC from the solicitation's source option.
    #[test]
    fn solicitations_from_a_vmac_address_name_the_virtual_mac() {
        let mut harness = Harness::enforcing();
        let instance = InstanceKey::new(harness.ifindex, 52, FAMILY_IPV6);
        master_of(&mut harness, instance);
        harness
            .datapath
            .set_vip_state(VIP_V6.into(), instance, VipState::Owned, Vmac::On)
            .unwrap();
        let client = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
        let out = egress(&mut harness, &solicitation(VIP_V6, client, BASE_MAC));
        assert_eq!(out, solicitation(VIP_V6, client, VMAC_52_V6));
    }

    /// To the virtual MAC of an instance this node is master of (fresh,
    /// unfenced heartbeat): the frame is taken in; otherwise it goes on
    /// as it came (the stack drops it as another host's).
    #[test]
    fn frames_to_the_virtual_mac_are_taken_in_only_while_master() {
        let mut harness = Harness::enforcing();
        let mut to_vmac = FrameSpec::udp_ipv4();
        to_vmac[..6].copy_from_slice(&VMAC_51);
        let mut to_other_vrid = to_vmac.clone();
        to_other_vrid[5] = 50;
        let run = |harness: &mut Harness, frame: &[u8]| {
            let program = harness.datapath.vmac_program().expect("program");
            let (verdict, out) = run_tc(program, frame);
            assert_eq!(out, frame, "vmac_rx changes no bytes");
            verdict
        };
        assert_eq!(run(&mut harness, &to_vmac), TCX_NEXT, "not master");
        harness.heartbeat(0, 10_000, 200).unwrap();
        assert_eq!(run(&mut harness, &to_vmac), TCX_PASS);
        assert_eq!(run(&mut harness, &to_other_vrid), TCX_NEXT);
        assert_eq!(run(&mut harness, &FrameSpec::udp_ipv4()), TCX_NEXT);
        harness.heartbeat(20_000, 10_000, 200).unwrap();
        assert_eq!(run(&mut harness, &to_vmac), TCX_NEXT, "stale heartbeat");
        harness
            .datapath
            .remove_heartbeat(&harness.instance())
            .unwrap();
        assert_eq!(run(&mut harness, &to_vmac), TCX_NEXT, "no longer master");
    }
}

/// Runs `vrrp_rx` on `frame` outside a [`Harness`]; returns its verdict.
fn run_frame(datapath: &mut Datapath, frame: &[u8]) -> u32 {
    let mut out = vec![0u8; frame.len() + 64];
    datapath
        .rx_program()
        .expect("program")
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN")
        .return_value
}

#[test]
fn an_accepted_advert_writes_its_receive_time_to_the_instance_slot() {
    let mut harness = Harness::enforcing();
    let v4 = InstanceKey::new(harness.ifindex, 51, FAMILY_IPV4);
    let v6 = InstanceKey::new(harness.ifindex, 52, FAMILY_IPV6);
    assert_eq!(
        harness.datapath.last_seen(&v4),
        Some(0),
        "nothing heard yet"
    );
    assert_eq!(
        harness
            .datapath
            .last_seen(&InstanceKey::new(harness.ifindex, 99, FAMILY_IPV4)),
        None,
        "no filter, no slot"
    );
    harness.run(&v3_ipv4().build());
    let first = harness
        .peer(51, FAMILY_IPV4)
        .expect("recorded")
        .last_seen_ns;
    assert_eq!(harness.datapath.last_seen(&v4), Some(first));
    assert_eq!(harness.datapath.last_seen(&v6), Some(0), "another slot");

    // An identical advert raises no event; only the time moves.
    harness.drain_events();
    harness.run(&v3_ipv4().build());
    assert!(harness.drain_events().is_empty());
    let second = harness
        .peer(51, FAMILY_IPV4)
        .expect("recorded")
        .last_seen_ns;
    assert!(second >= first);
    assert_eq!(harness.datapath.last_seen(&v4), Some(second));

    // A dropped advert (a VRRPv2 one for this v3 instance) leaves it.
    harness.assert_dropped(
        &FrameSpec::v2_pass(PEER_V4, 51, 90, 1, b"").build(),
        Counter::Version,
    );
    assert_eq!(harness.datapath.last_seen(&v4), Some(second));

    // A reloaded filter keeps its slot; a removed instance frees it.
    harness.configure(51, FAMILY_IPV4, 3, AUTH_NONE, b"", 2);
    assert_eq!(harness.datapath.last_seen(&v4), Some(second));
    harness.datapath.remove_instance_filter(&v4).unwrap();
    assert_eq!(harness.datapath.last_seen(&v4), None);
}

/// The daemon reads the full record only once a second: a change of the
/// checksum form (which the election answers) must raise an event.
#[test]
fn a_change_of_checksum_form_raises_an_event() {
    let mut harness = Harness::enforcing();
    harness.run(&v3_ipv4().build());
    harness.drain_events();
    harness.run(&v3_ipv4().checksum(Checksum::MessageOnly).build());
    let events = harness.drain_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].changes, CHANGE_CHECKSUM);
    assert_eq!(events[0].state.flags & PEER_FLAG_PSEUDO_HEADER_CHECKSUM, 0);
    harness.run(&v3_ipv4().checksum(Checksum::MessageOnly).build());
    assert!(harness.drain_events().is_empty());
}

/// A restarted daemon gives each instance the slot the filter it adopts
/// names, so the receive time there stays that instance's; a new instance
/// gets a zeroed slot no kept filter uses.
#[test]
fn an_adopting_daemon_keeps_each_instance_its_receive_time_slot() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let fs = TempBpffs::new();
    let pins = PinDir::new(fs.path().join("vrrp-agent"));
    let ifindex = interface_index("lo").expect("lo exists");
    let enforce = InterfaceMode::Enforce {
        pass_consumed: false,
    };
    let filter = InstanceFilter {
        version: 3,
        ..InstanceFilter::default()
    };
    let heard = InstanceKey::new(ifindex, 51, FAMILY_IPV4);
    let gone = InstanceKey::new(ifindex, 52, FAMILY_IPV4);
    let added = InstanceKey::new(ifindex, 53, FAMILY_IPV4);
    let seen = {
        let (mut datapath, _events, _log) =
            Datapath::load_pinned(pins.clone(), None).expect("load");
        datapath.configure_interface(ifindex, enforce).unwrap();
        datapath.set_instance_filter(gone, filter).unwrap();
        datapath.set_instance_filter(heard, filter).unwrap();
        assert_eq!(run_frame(&mut datapath, &v3_ipv4().build()), XDP_DROP);
        let seen = datapath.last_seen(&heard).unwrap();
        assert!(seen > 0);
        seen
        // Dropped without release: a daemon that died.
    };
    let (mut datapath, _events, _log) = Datapath::load_pinned(pins.clone(), None).expect("load");
    datapath.configure_interface(ifindex, enforce).unwrap();
    datapath.set_instance_filter(added, filter).unwrap();
    datapath.set_instance_filter(heard, filter).unwrap();
    assert_eq!(
        datapath.last_seen(&heard),
        Some(seen),
        "adopted with its time"
    );
    assert_eq!(datapath.last_seen(&added), Some(0), "a fresh slot");
    let slot = |datapath: &mut Datapath, key: &InstanceKey| {
        datapath
            .hash_map::<InstanceKey, InstanceFilter>(map_names::INSTANCES)
            .unwrap()
            .get(key, 0)
            .unwrap()
            .last_seen_slot
    };
    let slots = [slot(&mut datapath, &heard), slot(&mut datapath, &added)];
    assert_eq!(slots, [2, 3], "slot 1 is still the kept filter's of `gone`");
    datapath.prune_inherited().unwrap();
    assert_eq!(datapath.last_seen(&gone), None);
    assert_eq!(run_frame(&mut datapath, &v3_ipv4().build()), XDP_DROP);
    assert!(datapath.last_seen(&heard).unwrap() > seen);
    datapath.release();
}
