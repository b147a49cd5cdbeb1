//! End-to-end tests of the config module: seed files, every validation rule
//! with its exact position, includes on a real filesystem, and fuzzing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::*;
use super::test_support::{self, warning_lines};
use super::{ConfigErrors, Loaded, TEST_CONFIG_ID, load};

const SEED_NODE1: &str = include_str!("testdata/keepalived.conf");
const SEED_NODE2: &str = include_str!("testdata/keepalived-node2.conf");

const FILE: &str = "keepalived.conf";

fn ok(text: &str) -> Loaded {
    test_support::loads(text, FILE)
}

fn errors(text: &str) -> ConfigErrors {
    test_support::refused(text, FILE)
}

fn error_lines(text: &str) -> Vec<String> {
    test_support::refusal_lines(text, FILE)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn instance<'a>(config: &'a Config, name: &str) -> &'a VrrpInstance {
    match config.instance(name) {
        Some(i) => i,
        None => panic!("no instance {name}"),
    }
}

fn notify_line(n: &Option<Notify>) -> Option<&str> {
    n.as_ref().map(|n| n.command.line())
}

/// Everything both seed nodes share.
fn assert_seed_common(config: &Config) {
    let g = &config.global_defs;
    assert_eq!(g.router_id.as_deref(), Some("KEEPALIVED_TEST"));
    assert_eq!(g.notification_email, ["ops@example.com"]);
    assert_eq!(g.notification_email_from.as_deref(), Some("root@localhost"));
    assert_eq!(
        g.smtp_server,
        Some(SmtpServer {
            host: "127.0.0.1".into(),
            port: 25
        })
    );
    assert_eq!(g.smtp_connect_timeout, Duration::from_secs(30));
    assert_eq!(g.vrrp_version, Version::V2);

    assert_eq!(config.vrrp_scripts.len(), 2);
    let notification = config.script("notification");
    assert_eq!(
        notification.map(|s| s.script.line()),
        Some("/etc/keepalived/notification.sh")
    );
    let chk = match config.script("chk_alive") {
        Some(s) => s,
        None => panic!("chk_alive missing"),
    };
    assert_eq!(chk.script.argv(), ["/etc/keepalived/chk_alive.sh"]);
    assert_eq!(chk.interval, Duration::from_secs(1));
    assert_eq!(chk.weight, 2);
    assert_eq!((chk.rise, chk.fall), (1, 1));
    assert_eq!(
        notification.map(|s| (s.interval, s.weight)),
        Some((Duration::from_secs(1), 2))
    );

    assert_eq!(config.vrrp_instances.len(), 2);
    for i in &config.vrrp_instances {
        assert_eq!(i.interface, "eth1");
        assert_eq!(i.advert_int, Duration::from_secs(1));
        assert_eq!(i.version, Version::V2);
        assert_eq!(i.family, AddressFamily::Ipv4);
        assert!(i.preempt);
        assert_eq!(i.track_script.len(), 1);
        assert_eq!(i.track_script[0].name, "chk_alive");
        assert_eq!(i.track_script[0].weight, None);
    }
    let m1 = instance(config, "master1");
    assert_eq!(m1.virtual_router_id, 56);
    assert_eq!(m1.garp.master_delay, Duration::from_secs(1));
    assert_eq!(m1.garp.master_repeat, 5);
    assert_eq!(
        m1.authentication,
        Some(Authentication {
            auth_type: AuthType::Pass,
            auth_pass: "1234".into()
        })
    );
    assert_eq!(m1.virtual_ipaddress.len(), 1);
    assert_eq!(m1.virtual_ipaddress[0].address, v4(192, 168, 2, 10));
    assert_eq!(m1.virtual_ipaddress[0].prefix_len, 32);
    assert_eq!(
        notify_line(&m1.notify_master),
        Some("/etc/keepalived/notification.sh master")
    );
    assert_eq!(
        notify_line(&m1.notify_backup),
        Some("/etc/keepalived/notification.sh backup")
    );
    assert_eq!(
        notify_line(&m1.notify_fault),
        Some("/etc/keepalived/notification.sh fault")
    );
    assert_eq!(
        m1.notify_master.as_ref().map(|n| n.command.argv()),
        Some(vec![
            "/etc/keepalived/notification.sh".to_string(),
            "master".to_string()
        ])
    );
    assert_eq!(m1.notify_stop, None);

    let m2 = instance(config, "master2");
    assert_eq!(m2.virtual_router_id, 58);
    assert_eq!(m2.garp.master_delay, Duration::from_secs(5));
    assert_eq!(
        m2.authentication,
        Some(Authentication {
            auth_type: AuthType::Pass,
            auth_pass: "4321".into()
        })
    );
    assert_eq!(m2.virtual_ipaddress[0].address, v4(192, 168, 2, 9));
    assert_eq!(m2.notify_master, None);
}

#[test]
fn seed_node1_parses_unchanged_into_the_expected_model() {
    let loaded = ok(SEED_NODE1);
    assert!(loaded.warnings.is_empty(), "{:?}", warning_lines(&loaded));
    assert_seed_common(&loaded.config);
    let m1 = instance(&loaded.config, "master1");
    assert_eq!((m1.state, m1.priority), (InitialState::Master, 100));
    let m2 = instance(&loaded.config, "master2");
    assert_eq!((m2.state, m2.priority), (InitialState::Backup, 90));
}

#[test]
fn seed_node2_mirrors_state_and_priority() {
    let loaded = ok(SEED_NODE2);
    assert!(loaded.warnings.is_empty(), "{:?}", warning_lines(&loaded));
    assert_seed_common(&loaded.config);
    let m1 = instance(&loaded.config, "master1");
    assert_eq!((m1.state, m1.priority), (InitialState::Backup, 90));
    let m2 = instance(&loaded.config, "master2");
    assert_eq!((m2.state, m2.priority), (InitialState::Master, 100));
}

#[test]
fn seed_dump_is_json_with_defaults() {
    let loaded = ok(SEED_NODE1);
    let json = match serde_json::to_value(&loaded.config) {
        Ok(j) => j,
        Err(e) => panic!("serialize: {e}"),
    };
    let m2 = &json["vrrp_instances"][1];
    assert_eq!(m2["name"], "master2");
    assert_eq!(m2["advert_int"], 1.0);
    assert_eq!(m2["version"], "V2");
    assert_eq!(m2["state"], "BACKUP");
    assert_eq!(m2["garp"]["master_delay"], 5.0);
    assert_eq!(m2["accept"], true);
    assert_eq!(m2["family"], "inet");
    assert_eq!(json["global_defs"]["vrrp_mcast_group4"], "224.0.0.18");
    assert_eq!(json["global_defs"]["smtp_connect_timeout"], 30.0);
    // A command shows as written and as it runs; its position is not dumped.
    assert_eq!(
        json["vrrp_scripts"][1]["script"],
        serde_json::json!({
            "line": "/etc/keepalived/chk_alive.sh",
            "argv": ["/etc/keepalived/chk_alive.sh"],
        })
    );
    assert_eq!(
        json["vrrp_instances"][0]["notify_master"]["command"],
        serde_json::json!({
            "line": "/etc/keepalived/notification.sh master",
            "argv": ["/etc/keepalived/notification.sh", "master"],
        })
    );
}

#[test]
fn defaults_follow_keepalived() {
    let loaded = ok(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
    );
    let a = instance(&loaded.config, "A");
    assert_eq!(a.priority, 100);
    assert_eq!(a.state, InitialState::Backup);
    assert_eq!(a.advert_int, Duration::from_secs(1));
    assert_eq!(a.version, Version::V2);
    assert!(a.preempt);
    assert!(a.accept);
    assert_eq!(a.preempt_delay, Duration::ZERO);
    assert_eq!(a.garp, GarpSettings::default());
    assert_eq!(a.authentication, None);
    assert_eq!(a.old_unicast_checksum, UnicastChecksumCompat::Auto);
    assert!(!a.smtp_alert);
}

#[test]
fn global_defaults_flow_into_instances() {
    let text = "\
vrrp_instance A {
 interface eth0
 virtual_router_id 1
 garp_master_repeat 2
 virtual_ipaddress {
  192.0.2.1
 }
}
global_defs {
 vrrp_version 3
 vrrp_strict
 smtp_alert true
 vrrp_garp_master_delay 7
 vrrp_garp_lower_prio_repeat 9
 vrrp_garp_interval 0.001
 vrrp_gna_interval 0.000001
 smtp_server mail.example.com 2525
 script_user nobody nogroup
 enable_script_security
}
";
    let loaded = ok(text);
    let g = &loaded.config.global_defs;
    assert_eq!(g.garp.lower_prio_delay, Duration::from_secs(7));
    assert_eq!(g.vrrp_garp_interval, Duration::from_millis(1));
    assert_eq!(g.vrrp_gna_interval, Duration::from_micros(1));
    assert_eq!(g.smtp_server.as_ref().map(|s| s.port), Some(2525));
    assert_eq!(
        g.script_user,
        Some(RunAs {
            user: "nobody".into(),
            group: Some("nogroup".into()),
            position: super::Position::new("keepalived.conf".into(), 0, 0),
        })
    );
    assert!(g.enable_script_security);
    let a = instance(&loaded.config, "A");
    assert_eq!(a.version, Version::V3);
    assert!(a.strict_mode);
    assert!(!a.accept);
    assert!(a.smtp_alert);
    assert_eq!(a.garp.master_delay, Duration::from_secs(7));
    assert_eq!(a.garp.master_repeat, 2);
    // Strict mode sends no lower-priority GARPs, whatever global_defs says.
    assert_eq!(a.garp.lower_prio_delay, Duration::ZERO);
    assert_eq!(a.garp.lower_prio_repeat, 0);
}

#[test]
fn instance_keywords_are_read() {
    let text = r#"
vrrp_script chk {
 script /usr/bin/check "with space" plain
 interval 2
 timeout 5
 weight -20 reverse
 rise 3
 fall 4
 user nobody
 init_fail
}
vrrp_track_file tf {
 file "/run/tf"
 weight -3
 init_file 7 overwrite
}
vrrp_instance V6 {
 interface eth0
 virtual_router_id 9
 priority 254
 advert_int 0.25
 nopreempt
 preempt_delay 2.5
 no_accept
 use_vmac
 old_unicast_checksum never
 virtual_ipaddress {
  2001:db8::10/64 dev eth0 scope global label eth0:v6
 }
 virtual_ipaddress_excluded {
  192.0.2.1/24 brd 192.0.2.255 dev eth1
  198.51.100.1 brd + no_track
 }
 virtual_routes {
  src 2001:db8::10 to 2001:db8:1::/48 via 2001:db8::1 dev eth0 metric 10 table 100
  blackhole 2001:db8:2::/48
 }
 track_script {
  chk weight 10
 }
 track_interface {
  eth1 weight -5 reverse
  eth2
 }
 track_file {
  tf weight 2
 }
 unicast_src_ip 2001:db8::2
 unicast_peer {
  2001:db8::3 min_ttl 250
  2001:db8::4
 }
 notify /usr/local/bin/notify.sh keepalived_script
 notify_stop "/bin/stop 'a b'"
 smtp_alert off
}
"#;
    let loaded = ok(text);
    let c = &loaded.config;
    let chk = match c.script("chk") {
        Some(s) => s,
        None => panic!("chk missing"),
    };
    assert_eq!(chk.script.argv(), ["/usr/bin/check", "with space", "plain"]);
    assert_eq!(chk.script.line(), "/usr/bin/check 'with space' plain");
    assert_eq!(
        (chk.interval, chk.timeout, chk.weight, chk.weight_reverse),
        (Duration::from_secs(2), Duration::from_secs(5), -20, true)
    );
    assert_eq!((chk.rise, chk.fall, chk.init_fail), (3, 4, true));
    let tf = match c.track_file("tf") {
        Some(t) => t,
        None => panic!("tf missing"),
    };
    assert_eq!(tf.file, "/run/tf");
    assert_eq!(tf.weight, -3);
    assert_eq!(
        tf.init_file,
        Some(InitFile {
            value: 7,
            overwrite: true
        })
    );

    let i = instance(c, "V6");
    assert_eq!(i.family, AddressFamily::Ipv6);
    // IPv6 needs VRRPv3, whose intervals are centiseconds.
    assert_eq!(i.version, Version::V3);
    assert_eq!(i.advert_int, Duration::from_millis(250));
    assert_eq!(i.priority, 254);
    assert!(!i.preempt);
    assert_eq!(i.preempt_delay, Duration::from_millis(2500));
    assert!(!i.accept);
    assert_eq!(i.use_vmac.as_deref(), Some("vrrp.9"));
    assert_eq!(i.old_unicast_checksum, UnicastChecksumCompat::Never);
    let vip = &i.virtual_ipaddress[0];
    assert_eq!(vip.prefix_len, 64);
    assert_eq!(vip.dev.as_deref(), Some("eth0"));
    assert_eq!(vip.scope, Some(Scope::Global));
    assert_eq!(vip.label.as_deref(), Some("eth0:v6"));
    let excluded = &i.virtual_ipaddress_excluded;
    assert_eq!(
        excluded[0].brd,
        Some(Broadcast::Address(v4(192, 0, 2, 255)))
    );
    assert_eq!(excluded[1].brd, Some(Broadcast::HostBitsSet));
    assert!(excluded[1].no_track);
    let route = &i.virtual_routes[0];
    assert_eq!(route.prefix_len, 48);
    assert!(route.src.is_some() && route.via.is_some());
    assert_eq!((route.metric, route.table), (Some(10), Some(100)));
    assert_eq!(i.virtual_routes[1].route_type, RouteType::Blackhole);
    assert_eq!(i.track_script[0].weight, Some(10));
    assert_eq!(
        (i.track_interface[0].weight, i.track_interface[0].reverse),
        (Some(-5), true)
    );
    assert_eq!(i.track_interface[1].name, "eth2");
    assert_eq!(i.track_file[0].weight, Some(2));
    assert_eq!(i.unicast_peer.len(), 2);
    assert_eq!(i.unicast_peer[0].min_ttl, Some(250));
    let notify = match &i.notify {
        Some(n) => n,
        None => panic!("notify missing"),
    };
    assert_eq!(notify.command.line(), "/usr/local/bin/notify.sh");
    assert_eq!(
        notify.run_as.as_ref().map(|r| r.user.as_str()),
        Some("keepalived_script")
    );
    assert_eq!(
        i.notify_stop.as_ref().map(|n| n.command.argv()),
        Some(vec!["/bin/stop".to_string(), "a b".to_string()])
    );
    assert!(!i.smtp_alert);
}

#[test]
fn sync_groups_are_read() {
    let text = "\
vrrp_instance A {
 interface eth0
 virtual_router_id 1
 virtual_ipaddress {
  192.0.2.1
 }
}
vrrp_instance B {
 interface eth1
 virtual_router_id 1
 virtual_ipaddress {
  192.0.2.2
 }
}
vrrp_sync_group G {
 group {
  A
  B
 }
 notify_master \"/bin/g master\"
 smtp_alert
}
";
    let loaded = ok(text);
    let g = &loaded.config.vrrp_sync_groups[0];
    assert_eq!(g.group, ["A", "B"]);
    assert_eq!(notify_line(&g.notify_master), Some("/bin/g master"));
    assert!(g.smtp_alert);
}

// ---- validation rules, each with its exact position ----

const HEAD: &str = "vrrp_instance A {\n interface eth0\n";
const TAIL: &str = " virtual_ipaddress {\n  192.0.2.1\n }\n}\n";

fn with_instance_lines(lines: &str) -> String {
    format!("{HEAD}{lines}{TAIL}")
}

#[test]
fn vrid_out_of_range() {
    let e = error_lines(&with_instance_lines(" virtual_router_id 256\n"));
    assert_eq!(
        e,
        [
            "keepalived.conf:3:20: virtual_router_id \"256\" is out of range; expected an integer 1-255"
        ]
    );
    let e = error_lines(&with_instance_lines(" virtual_router_id 0\n"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("keepalived.conf:3:20: "));
}

#[test]
fn vrid_missing() {
    let e = error_lines(&with_instance_lines(""));
    assert_eq!(
        e,
        [
            "keepalived.conf:1:15: vrrp_instance A has no virtual_router_id; expected `virtual_router_id 1-255` in its block"
        ]
    );
}

#[test]
fn priority_out_of_range() {
    let e = error_lines(&with_instance_lines(
        " virtual_router_id 5\n priority 300\n",
    ));
    assert_eq!(
        e,
        ["keepalived.conf:4:11: priority \"300\" is out of range; expected an integer 1-255"]
    );
    let e = error_lines(&with_instance_lines(
        " virtual_router_id 5\n priority high\n",
    ));
    assert_eq!(
        e,
        ["keepalived.conf:4:11: priority \"high\" is not an integer; expected an integer 1-255"]
    );
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n priority 255\n",
    ));
    assert_eq!(instance(&loaded.config, "A").priority, 255);
}

#[test]
fn advert_int_limits_per_version() {
    // Outside what keepalived accepts at all.
    let e = error_lines(&with_instance_lines(
        " virtual_router_id 5\n advert_int 300\n",
    ));
    assert_eq!(
        e,
        [
            "keepalived.conf:4:13: advert_int \"300\" is out of range; expected a number of seconds 0.01-255"
        ]
    );
    let e = error_lines(&with_instance_lines(
        " virtual_router_id 5\n advert_int 0.001\n",
    ));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("keepalived.conf:4:13: "));

    // v2: fractional seconds are rounded to the nearest whole second.
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n advert_int 1.5\n",
    ));
    assert_eq!(
        instance(&loaded.config, "A").advert_int,
        Duration::from_secs(2)
    );
    assert_eq!(
        warning_lines(&loaded),
        [
            "keepalived.conf:4:13: vrrp_instance A: VRRPv2 advert_int 1.5s must be a whole number of seconds; rounded to 2s as keepalived does"
        ]
    );
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n advert_int 0.4\n",
    ));
    assert_eq!(
        instance(&loaded.config, "A").advert_int,
        Duration::from_secs(1)
    );

    // v3: centiseconds, at most 40.95 s.
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n version 3\n advert_int 0.015\n",
    ));
    assert_eq!(
        instance(&loaded.config, "A").advert_int,
        Duration::from_millis(20)
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0]
            .to_string()
            .starts_with("keepalived.conf:5:13: ")
    );
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n version 3\n advert_int 41\n",
    ));
    assert_eq!(
        instance(&loaded.config, "A").advert_int,
        Duration::from_millis(40950)
    );
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n version 3\n advert_int 0.01\n",
    ));
    assert!(loaded.warnings.is_empty());
    assert_eq!(
        instance(&loaded.config, "A").advert_int,
        Duration::from_millis(10)
    );
}

#[test]
fn one_address_family_per_instance() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n  192.0.2.1\n  2001:db8::1\n }\n virtual_ipaddress_excluded {\n  2001:db8::2\n }\n}\n";
    let e = error_lines(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "keepalived.conf:6:3: virtual address 2001:db8::1 is IPv6 but vrrp_instance A is IPv4"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn referenced_scripts_and_track_files_must_exist() {
    let text = "vrrp_script s1 {\n script /bin/true\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 5\n track_script {\n  s1\n  missing weight 3\n }\n track_file {\n   nofile\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    let e = error_lines(text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(
        e[0],
        "keepalived.conf:9:3: track_script \"missing\" in vrrp_instance A names no vrrp_script; expected the name of a vrrp_script (defined: s1)"
    );
    assert!(e[1].starts_with("keepalived.conf:12:4: track_file \"nofile\""));
}

#[test]
fn duplicate_interface_vrid_family_is_an_error() {
    let text = "\
vrrp_instance A {
 interface eth0
 virtual_router_id 5
 virtual_ipaddress {
  192.0.2.1
 }
}
vrrp_instance B {
 interface eth0
 virtual_router_id 5
 virtual_ipaddress {
  192.0.2.2
 }
}
vrrp_instance C {
 interface eth0
 virtual_router_id 5
 virtual_ipaddress {
  2001:db8::1
 }
}
";
    let e = error_lines(text);
    assert_eq!(
        e,
        [
            "keepalived.conf:10:20: vrrp_instance B uses virtual_router_id 5 with IPv4 on eth0, as vrrp_instance A does (at keepalived.conf:3:20); expected a VRID unique per interface and family"
        ]
    );
}

/// keepalived allows this; our kernel maps are keyed by interface, VRID and
/// family, so the second instance would replace the first there.
#[test]
fn unicast_instances_with_disjoint_peers_may_not_share_a_vrid() {
    let text = "\
vrrp_instance A {
 interface eth0
 virtual_router_id 5
 unicast_peer {
  192.0.2.10
 }
 virtual_ipaddress {
  192.0.2.1
 }
}
vrrp_instance B {
 interface eth0
 virtual_router_id 5
 unicast_peer {
  192.0.2.11
 }
 virtual_ipaddress {
  192.0.2.2
 }
}
";
    let e = error_lines(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("keepalived.conf:13:20: vrrp_instance B uses virtual_router_id 5"));
}

#[test]
fn sync_group_members_must_exist_once() {
    let text = "\
vrrp_instance A {
 interface eth0
 virtual_router_id 5
 virtual_ipaddress {
  192.0.2.1
 }
}
vrrp_sync_group G {
 group {
  A ghost
 }
}
vrrp_sync_group H {
 group {
  A
 }
}
";
    let err = errors(text);
    let e: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with(
        "keepalived.conf:10:5: vrrp_sync_group G member \"ghost\" names no vrrp_instance"
    ));
    assert_eq!(
        e[1],
        "keepalived.conf:15:3: vrrp_instance A is already in vrrp_sync_group G; expected each instance in at most one sync group"
    );
}

#[test]
fn auth_pass_over_eight_characters_is_truncated_with_a_warning() {
    let loaded = ok(&with_instance_lines(
        " virtual_router_id 5\n authentication {\n  auth_type PASS\n  auth_pass 123456789abc\n }\n",
    ));
    let a = instance(&loaded.config, "A");
    assert_eq!(
        a.authentication.as_ref().map(|x| x.auth_pass.as_str()),
        Some("12345678")
    );
    assert_eq!(
        warning_lines(&loaded),
        [
            "keepalived.conf:6:13: auth_pass is longer than 8 characters; only \"12345678\" is used, as keepalived does"
        ]
    );
}

#[test]
fn an_invalid_interface_is_reported_once() {
    let e = error_lines(&with_instance_lines(
        " interface this-name-is-far-too-long\n virtual_router_id 5\n",
    ));
    assert_eq!(
        e,
        [
            "keepalived.conf:3:12: interface name \"this-name-is-far-too-long\" is not valid; expected 1-15 characters without '/' or spaces"
        ]
    );
}

#[test]
fn interface_is_required() {
    let text =
        "vrrp_instance A {\n virtual_router_id 5\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    assert_eq!(
        error_lines(text),
        [
            "keepalived.conf:1:15: vrrp_instance A has no interface; expected `interface NAME` in its block"
        ]
    );
}

#[test]
fn unknown_keywords_warn_and_skip_their_block() {
    let text = "\
global_defs {
 lvs_flush
}
vrrp_instance A {
 interface eth0
 virtual_router_id 5
 frobnicate 1 {
  priority 300
  nested {
   x
  }
 }
 priority 50
 virtual_ipaddress {
  192.0.2.1
 }
}
virtual_server 192.0.2.1 80 {
 delay_loop 6
}
";
    let loaded = ok(text);
    assert_eq!(instance(&loaded.config, "A").priority, 50);
    assert_eq!(
        warning_lines(&loaded),
        [
            "keepalived.conf:2:2: unknown or unsupported keyword \"lvs_flush\" in global_defs; ignored",
            "keepalived.conf:7:2: unknown or unsupported keyword \"frobnicate\" in vrrp_instance; ignored and its block",
            "keepalived.conf:18:1: virtual_server is not supported by vrrp-agent; section ignored",
        ]
    );
}

#[test]
fn v3_checksum_as_v2_is_keepaliveds_optional_boolean_global_default_instance_wins() {
    // keepalived >= 2.2.8: global_defs sets every instance's default, an
    // instance's own `v3_checksum_as_v2 [<BOOL>]` overrides it either way.
    let states = |global: &str, instance: &str| {
        let text = format!(
            "global_defs {{\n{global}\n}}\nvrrp_instance A {{\n interface eth0\n virtual_router_id 5\n{instance}\n virtual_ipaddress {{ 192.0.2.1 }}\n}}\n"
        );
        let loaded = ok(&text);
        (
            loaded.config.global_defs.v3_checksum_as_v2,
            loaded.config.vrrp_instances[0].v3_checksum_as_v2,
        )
    };
    assert_eq!(states("", ""), (false, false));
    assert_eq!(states("", " v3_checksum_as_v2"), (false, true));
    assert_eq!(states("", " v3_checksum_as_v2 true"), (false, true));
    assert_eq!(states("", " v3_checksum_as_v2 off"), (false, false));
    assert_eq!(states(" v3_checksum_as_v2", ""), (true, true));
    assert_eq!(
        states(" v3_checksum_as_v2 yes", " v3_checksum_as_v2 false"),
        (true, false)
    );
    assert_eq!(
        states(" v3_checksum_as_v2 on", " v3_checksum_as_v2"),
        (true, true)
    );
    // No argument and true are silent; keepalived ignores the global
    // argument, so an explicit off there is worth a warning.
    let quiet = ok(&with_instance_lines(
        " virtual_router_id 5\n v3_checksum_as_v2 true\n",
    ));
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
    let loaded = ok("global_defs {\n v3_checksum_as_v2 no\n}\n");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0]
            .to_string()
            .starts_with("keepalived.conf:2:20: keepalived")
    );
    let bad = errors(&with_instance_lines(
        " virtual_router_id 5\n v3_checksum_as_v2 maybe\n",
    ));
    assert!(bad.errors[0].to_string().contains("not a boolean"), "{bad}");
}

#[test]
fn script_interval_and_timeout_take_keepalived_decimals_to_the_millisecond() {
    let script = |interval: &str, timeout: &str| {
        format!(
            "vrrp_script chk {{\n script /bin/true\n interval {interval}\n timeout {timeout}\n}}\n"
        )
    };
    let loaded = ok(&script("0.5", "0.25"));
    assert_eq!(
        loaded.config.vrrp_scripts[0].interval,
        Duration::from_millis(500)
    );
    assert_eq!(
        loaded.config.vrrp_scripts[0].timeout,
        Duration::from_millis(250)
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let loaded = ok(&script("2", ".001"));
    assert_eq!(
        loaded.config.vrrp_scripts[0].interval,
        Duration::from_secs(2)
    );
    assert_eq!(
        loaded.config.vrrp_scripts[0].timeout,
        Duration::from_millis(1)
    );
    // More decimals round to the millisecond, with a warning.
    let loaded = ok(&script("0.0005", "1.2344"));
    assert_eq!(
        loaded.config.vrrp_scripts[0].interval,
        Duration::from_millis(1)
    );
    assert_eq!(
        loaded.config.vrrp_scripts[0].timeout,
        Duration::from_millis(1234)
    );
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    // 0 is kept for old configurations: 1 second, with a warning.
    let loaded = ok(&script("0", "0.000"));
    assert_eq!(
        loaded.config.vrrp_scripts[0].interval,
        Duration::from_secs(1)
    );
    assert_eq!(
        loaded.config.vrrp_scripts[0].timeout,
        Duration::from_secs(1)
    );
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    for bad in ["-1", "1.2.3", "4294.001", "1s", "."] {
        let e = error_lines(&script(bad, "1"));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with("keepalived.conf:3:11: interval"),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(
        ok(&script("4294", "4294.000")).config.vrrp_scripts[0].timeout,
        Duration::from_secs(4294)
    );
}

/// One file for both nodes of a pair, told apart by the config id (`-i`).
const SHARED: &str = "\
global_defs {
 @node-a router_id edge-a
 @node-b router_id edge-b
}
$VIP=192.0.2.10
@node-a $PRIO=150
@node-b $PRIO=100
vrrp_instance VI_1 {
 @node-a state MASTER
 @^node-a state BACKUP
 interface eth0
 virtual_router_id 51
 priority $PRIO
 unicast_peer {
  @^node-a 198.51.100.1
  @^node-b 198.51.100.2
 }
 virtual_ipaddress {
  ~SEQ(N, 10, 12) 192.0.2.${N}/24
 }
}
";

#[test]
fn one_file_serves_both_nodes_by_config_id() {
    let node = |id: &str| match super::parse_str_as(SHARED, "keepalived.conf", id) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{id}: {e}"),
    };
    let a = node("node-a");
    let b = node("node-b");
    assert_eq!(a.config.global_defs.router_id.as_deref(), Some("edge-a"));
    assert_eq!(b.config.global_defs.router_id.as_deref(), Some("edge-b"));
    let (ia, ib) = (&a.config.vrrp_instances[0], &b.config.vrrp_instances[0]);
    assert_eq!((ia.priority, ib.priority), (150, 100));
    assert_eq!(ia.state, InitialState::Master);
    assert_eq!(ib.state, InitialState::Backup);
    assert_eq!(ia.unicast_peer.len(), 1);
    assert_eq!(ia.unicast_peer[0].address.to_string(), "198.51.100.2");
    assert_eq!(ib.unicast_peer[0].address.to_string(), "198.51.100.1");
    assert_eq!(ia.virtual_ipaddress.len(), 3);
    // A node the file does not name gets neither priority: `$PRIO` is
    // undefined there, an error at its use.
    let other = errors(&SHARED.replace("@node-a $PRIO=150\n", ""));
    assert!(
        other.errors[0]
            .to_string()
            .starts_with("keepalived.conf:12:11: $PRIO is not defined"),
        "{other}"
    );
}

#[test]
fn every_error_is_collected() {
    let text = "\
vrrp_instance A {
 virtual_router_id 999
 priority 0
 state LEADER
 advert_int soon
 virtual_ipaddress {
  192.0.2.300
  192.0.2.1 colour blue
 }
}
";
    let e = error_lines(text);
    assert_eq!(
        e,
        [
            "keepalived.conf:2:20: virtual_router_id \"999\" is out of range; expected an integer 1-255",
            "keepalived.conf:3:11: priority \"0\" is out of range; expected an integer 1-255",
            "keepalived.conf:4:8: state \"LEADER\" is not known; expected MASTER or BACKUP",
            "keepalived.conf:5:13: advert_int \"soon\" is not a number; expected a number of seconds 0.01-255",
            "keepalived.conf:7:3: virtual address \"192.0.2.300\" is not an IP address; expected ADDRESS[/PREFIX_LENGTH]",
            "keepalived.conf:8:13: virtual address option \"colour\" is not known; expected brd, dev, scope, label or no_track",
            "keepalived.conf:1:15: vrrp_instance A has no interface; expected `interface NAME` in its block",
        ]
    );
}

#[test]
fn positions_after_utf8_comments_count_characters() {
    let text = "vrrp_instance A { #实例\n interface eth0 #网卡\n virtual_router_id 5\n priority 通知 #权重\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    assert_eq!(
        error_lines(text),
        ["keepalived.conf:4:11: priority \"通知\" is not an integer; expected an integer 1-255"]
    );
}

// ---- includes on a real filesystem ----

/// A scratch directory removed on drop, also when a test fails.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "vrrp-agent-config-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("create {}: {e}", dir.display());
        }
        Self(dir)
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            panic!("mkdir {}: {e}", parent.display());
        }
        if let Err(e) = std::fs::write(&path, text) {
            panic!("write {}: {e}", path.display());
        }
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn instance_text(name: &str, vrid: u8, vip: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n virtual_ipaddress {{\n  {vip}\n }}\n}}\n"
    )
}

#[test]
fn includes_with_globs_relative_to_the_including_file() {
    let dir = ScratchDir::new("glob");
    let main = dir.write(
        "keepalived.conf",
        "global_defs {\n include conf.d/globals/*.conf\n}\ninclude conf.d/*.conf\ninclude extra/{x,y}.conf\n",
    );
    dir.write("conf.d/globals/id.conf", "router_id FROM_INCLUDE\n");
    dir.write("conf.d/10-a.conf", &instance_text("A", 1, "192.0.2.1"));
    dir.write(
        "conf.d/20-b.conf",
        &format!(
            "{}include ../nested/c.conf\n",
            instance_text("B", 2, "192.0.2.2")
        ),
    );
    dir.write("conf.d/not-matched.txt", "garbage {{{\n");
    dir.write("nested/c.conf", &instance_text("C", 3, "192.0.2.3"));
    dir.write("extra/y.conf", &instance_text("Y", 4, "192.0.2.4"));
    let loaded = match load(&main, TEST_CONFIG_ID) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&str> = loaded
        .config
        .vrrp_instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["A", "B", "C", "Y"]);
    assert_eq!(
        loaded.config.global_defs.router_id.as_deref(),
        Some("FROM_INCLUDE")
    );
    assert!(loaded.warnings.is_empty(), "{:?}", warning_lines(&loaded));
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = ScratchDir::new("errpos");
    let main = dir.write("keepalived.conf", "include sub/*.conf\n");
    let sub = dir.write(
        "sub/bad.conf",
        "\nvrrp_instance A {\n interface eth0\n virtual_router_id 300\n}\n",
    );
    let err = match load(&main, TEST_CONFIG_ID) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    assert_eq!(
        err.errors[0].to_string(),
        format!(
            "{}:4:20: virtual_router_id \"300\" is out of range; expected an integer 1-255",
            sub.display()
        )
    );
}

#[test]
fn include_cycles_are_reported() {
    let dir = ScratchDir::new("cycle");
    let main = dir.write("a.conf", "include b.conf\n");
    let b = dir.write("b.conf", "include a.conf\n");
    let err = match load(&main, TEST_CONFIG_ID) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    assert_eq!(err.errors.len(), 1);
    assert!(
        err.errors[0]
            .to_string()
            .starts_with(&format!("{}:1:9: ", b.display()))
    );
    assert!(err.errors[0].message.contains("include cycle"));
}

#[test]
fn missing_main_file_is_an_error_not_a_panic() {
    let err = match load(
        Path::new("/nonexistent/vrrp-agent/keepalived.conf"),
        TEST_CONFIG_ID,
    ) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    assert!(
        err.errors[0]
            .to_string()
            .starts_with("/nonexistent/vrrp-agent/keepalived.conf: cannot read configuration file")
    );
}

#[test]
fn config_test_exit_codes() {
    let dir = ScratchDir::new("cli");
    // `load` checks the host: the seed's scripts must exist and run.
    let script = dir.write("chk_alive.sh", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let good = dir.write(
        "good.conf",
        &SEED_NODE1.replace(
            "/etc/keepalived/chk_alive.sh",
            &script.display().to_string(),
        ),
    );
    let bad = dir.write("bad.conf", "vrrp_instance A {\n priority 300\n}\n");
    assert_eq!(
        super::cli::config_test(&good, TEST_CONFIG_ID),
        std::process::ExitCode::SUCCESS
    );
    assert_eq!(
        super::cli::config_test(&bad, TEST_CONFIG_ID),
        std::process::ExitCode::FAILURE
    );
    assert_eq!(
        super::cli::dump_config(&bad, TEST_CONFIG_ID),
        std::process::ExitCode::FAILURE
    );
    assert_eq!(
        super::cli::dump_config(&good, TEST_CONFIG_ID),
        std::process::ExitCode::SUCCESS
    );
}

#[test]
fn brace_on_next_line_and_one_line_blocks() {
    let text = "vrrp_instance B\n{\n interface eth0\n virtual_router_id 52\n virtual_ipaddress { 192.0.2.8/24 dev eth0 }\n track_interface { eth1 weight 5 }\n}\n";
    let loaded = ok(text);
    let b = instance(&loaded.config, "B");
    assert_eq!(b.virtual_ipaddress[0].prefix_len, 24);
    assert_eq!(b.track_interface[0].weight, Some(5));
}

// ---- the parser never panics ----

mod fuzz {
    use super::super::parse_str;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "global_defs",
        "vrrp_instance",
        "vrrp_script",
        "vrrp_sync_group",
        "vrrp_track_file",
        "track_file",
        "group",
        "interface",
        "eth0",
        "state",
        "MASTER",
        "BACKUP",
        "virtual_router_id",
        "priority",
        "advert_int",
        "version",
        "authentication",
        "auth_type",
        "auth_pass",
        "PASS",
        "AH",
        "virtual_ipaddress",
        "virtual_ipaddress_excluded",
        "virtual_routes",
        "track_script",
        "track_interface",
        "unicast_peer",
        "unicast_src_ip",
        "notify_master",
        "notify",
        "weight",
        "reverse",
        "script",
        "interval",
        "rise",
        "fall",
        "use_vmac",
        "nopreempt",
        "preempt_delay",
        "garp_master_delay",
        "smtp_server",
        "router_id",
        "vrrp_version",
        "include",
        "includem",
        "src",
        "to",
        "via",
        "dev",
        "scope",
        "brd",
        "label",
        "table",
        "metric",
        "min_ttl",
        "192.0.2.1",
        "192.0.2.0/24",
        "2001:db8::1/64",
        "0",
        "1",
        "255",
        "256",
        "-1",
        "0.015",
        "41",
        "1e309",
        "NaN",
        "\"",
        "'",
        "\"a b\"",
        "{",
        "}",
        "{ }",
        "!",
        "#",
        "\\",
        "通知",
        "\t",
        "/nonexistent/*",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (prop::sample::select(WORDS), prop::bool::weighted(0.2)),
            0..200,
        )
        .prop_map(|items| {
            let mut text = String::new();
            for (word, newline) in items {
                text.push_str(word);
                text.push(if newline { '\n' } else { ' ' });
            }
            text
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_str(&text, "/nonexistent/fuzz.conf");
        }

        #[test]
        fn never_panics_on_keyword_soup(text in soup()) {
            let _ = parse_str(&text, "/nonexistent/fuzz.conf");
        }

        #[test]
        fn errors_always_carry_a_position(text in soup()) {
            if let Err(e) = parse_str(&text, "/nonexistent/fuzz.conf") {
                prop_assert!(!e.errors.is_empty());
                for d in &e.errors {
                    prop_assert!(d.position.line >= 1);
                    prop_assert!(d.position.column >= 1);
                }
            }
        }
    }
}

/// keepalived starts with `rise 0` / `fall 0` (read as 1, with a config
/// error it does not stop on): a warning here, not a refusal.
#[test]
fn rise_and_fall_of_zero_are_read_as_one_with_a_warning() {
    let text = "vrrp_script chk {\n script /bin/true\n rise 0\n fall 0\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 1\n track_script {\n  chk\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    let loaded = ok(text);
    let chk = loaded.config.script("chk").expect("chk");
    assert_eq!((chk.rise, chk.fall), (1, 1));
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "keepalived.conf:3:7: rise 0 is read as rise 1, as keepalived does; expected rise 1 or more",
            "keepalived.conf:4:7: fall 0 is read as fall 1, as keepalived does; expected fall 1 or more"
        ]
    );
}
