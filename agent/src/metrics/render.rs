//! A [`Snapshot`] in the OpenMetrics text format (which Prometheus reads).

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

use super::Snapshot;

type Labels = Vec<(&'static str, String)>;

/// The states an instance can be in; each gets a 0/1 sample so a query
/// never depends on a state having been seen before.
const STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/// Renders `snapshot` with every metric's `# HELP` and `# TYPE`; counters
/// get the `_total` suffix from the encoder.
pub fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("vrrp_agent");

    let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_owned())]);
    registry.register("build", "vrrp-agent build information", build);

    let state = Family::<Labels, Gauge>::default();
    let base_priority = Family::<Labels, Gauge>::default();
    let effective_priority = Family::<Labels, Gauge>::default();
    let transitions = Family::<Labels, Counter>::default();
    let advert_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let adverts_sent = Family::<Labels, Counter>::default();
    let master_changes = Family::<Labels, Counter>::default();
    let tracked_up = Family::<Labels, Gauge>::default();
    for instance in &snapshot.instances {
        let status = &instance.status;
        let labels: Labels = vec![
            ("instance", status.name.clone()),
            ("interface", status.interface.clone()),
            ("vrid", status.vrid.to_string()),
            ("family", status.family.clone()),
        ];
        let with = |key: &'static str, value: &str| {
            let mut labels = labels.clone();
            labels.push((key, value.to_owned()));
            labels
        };
        for name in STATES {
            state
                .get_or_create(&with("state", name))
                .set(i64::from(status.state == name));
        }
        base_priority
            .get_or_create(&labels)
            .set(i64::from(status.base_priority));
        effective_priority
            .get_or_create(&labels)
            .set(i64::from(status.effective_priority));
        for name in STATES {
            let count = instance.transitions_to.get(name).copied().unwrap_or(0);
            transitions.get_or_create(&with("to", name)).inc_by(count);
        }
        // No sample until the kernel recorded an advert from a master.
        if let Some(age_ms) = status.last_advert_age_ms {
            advert_age
                .get_or_create(&labels)
                .set(age_ms as f64 / 1000.0);
        }
        adverts_sent
            .get_or_create(&labels)
            .inc_by(instance.adverts_sent);
        master_changes
            .get_or_create(&labels)
            .inc_by(instance.master_changes);
        for item in &status.tracked {
            let mut labels = with("kind", &item.kind);
            labels.push(("name", item.name.clone()));
            tracked_up
                .get_or_create(&labels)
                .set(i64::from(item.status == "up"));
        }
    }
    registry.register(
        "instance_state",
        "1 for the state the VRRP instance is in, 0 for the others",
        state,
    );
    registry.register(
        "instance_base_priority",
        "Configured priority of the instance",
        base_priority,
    );
    registry.register(
        "instance_effective_priority",
        "Priority after tracked scripts, interfaces and files adjusted it",
        effective_priority,
    );
    registry.register(
        "instance_transitions",
        "State changes of the instance since the daemon started, by the state entered",
        transitions,
    );
    registry.register(
        "instance_master_advert_age_seconds",
        "Seconds since the kernel received the master's last advert (absent until one arrived)",
        advert_age,
    );
    registry.register(
        "instance_adverts_sent",
        "Adverts the instance sent, priority 0 included",
        adverts_sent,
    );
    registry.register(
        "instance_master_changes",
        "Times the master changed as this node saw it: adverts from a new source address, or this node becoming master",
        master_changes,
    );
    registry.register(
        "tracked_up",
        "1 while a tracked script, interface or file of the instance is healthy, 0 otherwise",
        tracked_up,
    );

    // Per VRRP interface (the kernel keeps one counter block per
    // interface), so a sick link shows which it is.
    let accepted = Family::<Labels, Counter>::default();
    let passed_unknown = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let event_lost = Family::<Labels, Counter>::default();
    let egress_blocked = Family::<Labels, Counter>::default();
    let ingress_blocked = Family::<Labels, Counter>::default();
    let fenced = Family::<Labels, Counter>::default();
    let fence_closed = Family::<Labels, Counter>::default();
    for (interface, counters) in &snapshot.interfaces {
        let labels: Labels = vec![("interface", interface.clone())];
        for counter in agent_common::Counter::ALL {
            let value = counters.get(counter.name()).copied().unwrap_or(0);
            let family = match counter {
                agent_common::Counter::Accepted => &accepted,
                agent_common::Counter::PassedUnknown => &passed_unknown,
                agent_common::Counter::EventLost => &event_lost,
                agent_common::Counter::VipEgressBlocked => &egress_blocked,
                agent_common::Counter::VipIngressBlocked => &ingress_blocked,
                agent_common::Counter::VipFenced => &fenced,
                agent_common::Counter::FenceClosed => &fence_closed,
                reason => {
                    let mut labels = labels.clone();
                    labels.push(("reason", reason.name().to_owned()));
                    dropped.get_or_create(&labels).inc_by(value);
                    continue;
                }
            };
            family.get_or_create(&labels).inc_by(value);
        }
    }
    registry.register(
        "datapath_adverts_accepted",
        "Valid VRRP adverts the XDP program recorded",
        accepted,
    );
    registry.register(
        "datapath_vrrp_passed_unknown",
        "VRRP frames passed on untouched because no instance on the interface owns them (another VRID or family, VLAN-tagged, or naming no VRID)",
        passed_unknown,
    );
    registry.register(
        "datapath_adverts_dropped",
        "Invalid VRRP adverts for a configured instance the XDP program dropped, by reason",
        dropped,
    );
    registry.register(
        "datapath_events_lost",
        "Ring-buffer events the daemon could not take in time",
        event_lost,
    );
    registry.register(
        "datapath_vip_egress_blocked",
        "Frames sourced from a virtual address the TC guard stopped while not master",
        egress_blocked,
    );
    registry.register(
        "datapath_vip_ingress_blocked",
        "Packets to a virtual address dropped because this no_accept master owns it",
        ingress_blocked,
    );
    registry.register(
        "datapath_vip_fenced",
        "Frames to or from a virtual address of a fenced master that were stopped",
        fenced,
    );
    registry.register(
        "datapath_fence_closed",
        "Times the XDP program fenced a master instance on a winning advert",
        fence_closed,
    );

    let notify = Family::<Labels, Counter>::default();
    for (result, value) in [
        ("ok", snapshot.notify.ok),
        ("failed", snapshot.notify.failed),
        ("timed_out", snapshot.notify.timed_out),
    ] {
        notify
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(value);
    }
    registry.register(
        "notify_scripts",
        "Notify scripts run since the daemon started, by result",
        notify,
    );

    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        control::{InstanceStatus, TrackedStatus},
        metrics::{InstanceMetrics, NotifyTotals},
    };

    fn snapshot() -> Snapshot {
        let status = InstanceStatus {
            name: "VI_1".into(),
            interface: "eth1".into(),
            vrid: 51,
            family: "ipv4".into(),
            version: 3,
            state: "BACKUP".into(),
            base_priority: 100,
            effective_priority: 98,
            master_address: Some("192.0.2.1".into()),
            last_advert_age_ms: Some(250),
            advert_interval_ms: 1000,
            virtual_addresses: vec!["192.0.2.100/24".into()],
            tracked: vec![TrackedStatus {
                kind: "script".into(),
                name: "chk_nginx".into(),
                status: "down".into(),
                weight: -2,
            }],
            transitions: 3,
            last_transition_unix: None,
        };
        Snapshot {
            instances: vec![InstanceMetrics {
                status,
                transitions_to: [("BACKUP", 2), ("MASTER", 1)].into_iter().collect(),
                master_changes: 2,
                adverts_sent: 40,
            }],
            interfaces: [
                (
                    "eth1",
                    vec![
                        ("accepted", 7),
                        ("passed_unknown", 3),
                        ("ttl", 2),
                        ("event_lost", 0),
                        ("vip_egress_blocked", 5),
                        ("vip_ingress_blocked", 1),
                        ("vip_fenced", 4),
                    ],
                ),
                ("eth2", vec![("accepted", 9)]),
            ]
            .into_iter()
            .map(|(interface, counters)| {
                (
                    interface.to_owned(),
                    counters
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect::<BTreeMap<_, _>>(),
                )
            })
            .collect(),
            notify: NotifyTotals {
                ok: 4,
                failed: 1,
                timed_out: 0,
            },
        }
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn instance_metrics_carry_the_instance_labels() {
        let text = render(&snapshot());
        let labels = r#"instance="VI_1",interface="eth1",vrid="51",family="ipv4""#;
        has(
            &text,
            &format!(r#"vrrp_agent_instance_state{{{labels},state="BACKUP"}} 1"#),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_instance_state{{{labels},state="MASTER"}} 0"#),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_instance_state{{{labels},state="FAULT"}} 0"#),
        );
        has(
            &text,
            &format!("vrrp_agent_instance_base_priority{{{labels}}} 100"),
        );
        has(
            &text,
            &format!("vrrp_agent_instance_effective_priority{{{labels}}} 98"),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_instance_transitions_total{{{labels},to="MASTER"}} 1"#),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_instance_transitions_total{{{labels},to="FAULT"}} 0"#),
        );
        has(
            &text,
            &format!("vrrp_agent_instance_master_advert_age_seconds{{{labels}}} 0.25"),
        );
        has(
            &text,
            &format!("vrrp_agent_instance_adverts_sent_total{{{labels}}} 40"),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_tracked_up{{{labels},kind="script",name="chk_nginx"}} 0"#),
        );
    }

    #[test]
    fn families_have_help_and_type() {
        let text = render(&snapshot());
        has(&text, "# TYPE vrrp_agent_instance_transitions counter");
        has(
            &text,
            "# HELP vrrp_agent_instance_state 1 for the state the VRRP instance is in, 0 for the others.",
        );
        has(&text, "# TYPE vrrp_agent_instance_state gauge");
        has(
            &text,
            &format!(
                r#"vrrp_agent_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn datapath_counters_are_per_interface_and_split_drops_from_the_rest() {
        let text = render(&snapshot());
        let eth1 = r#"interface="eth1""#;
        has(
            &text,
            &format!("vrrp_agent_datapath_adverts_accepted_total{{{eth1}}} 7"),
        );
        has(
            &text,
            r#"vrrp_agent_datapath_adverts_accepted_total{interface="eth2"} 9"#,
        );
        has(
            &text,
            &format!("vrrp_agent_datapath_vrrp_passed_unknown_total{{{eth1}}} 3"),
        );
        has(
            &text,
            &format!(r#"vrrp_agent_datapath_adverts_dropped_total{{{eth1},reason="ttl"}} 2"#),
        );
        has(
            &text,
            r#"vrrp_agent_datapath_adverts_dropped_total{interface="eth2",reason="ttl"} 0"#,
        );
        has(
            &text,
            &format!("vrrp_agent_datapath_events_lost_total{{{eth1}}} 0"),
        );
        has(
            &text,
            &format!("vrrp_agent_datapath_vip_egress_blocked_total{{{eth1}}} 5"),
        );
        has(
            &text,
            &format!("vrrp_agent_datapath_vip_ingress_blocked_total{{{eth1}}} 1"),
        );
        has(
            &text,
            &format!("vrrp_agent_datapath_vip_fenced_total{{{eth1}}} 4"),
        );
        for not_a_reason in ["accepted", "passed_unknown", "vip_fenced", "fence_closed"] {
            assert!(
                !text.contains(&format!(r#"reason="{not_a_reason}""#)),
                "{text}"
            );
        }
        has(&text, r#"vrrp_agent_notify_scripts_total{result="ok"} 4"#);
        has(
            &text,
            r#"vrrp_agent_notify_scripts_total{result="failed"} 1"#,
        );
    }

    #[test]
    fn no_advert_yet_means_no_age_sample() {
        let mut snapshot = snapshot();
        snapshot.instances[0].status.last_advert_age_ms = None;
        let text = render(&snapshot);
        assert!(
            !text.contains("vrrp_agent_instance_master_advert_age_seconds{"),
            "{text}"
        );
    }
}
