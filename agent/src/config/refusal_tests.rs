//! `-t` tells the truth: every refusal of daemon startup, the advert encoder
//! or the XDP datapath is a configuration error with its position, and the
//! host checks (users, script programs) run on every `load`.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::model::{AddressFamily, Version};
use super::test_support;
use super::validate::max_advertised_addresses;
use super::{TEST_CONFIG_ID, load, parse_str};
use crate::daemon::plan::{InterfaceInfo, plan};

/// Lines `N` of a file whose first line is 1, as `keepalived.conf:N:C`.
fn errors_of(text: &str) -> Vec<String> {
    test_support::refusal_lines(text, "keepalived.conf")
}

fn vips(addresses: impl Iterator<Item = String>) -> String {
    addresses.map(|a| format!("  {a}\n")).collect()
}

/// One instance with `n` addresses of `family`, the VIPs starting on line 6.
fn many_vips(family: AddressFamily, n: usize) -> String {
    let list = match family {
        AddressFamily::Ipv4 => vips((0..n).map(|i| format!("10.{}.{}.1", i / 256, i % 256))),
        AddressFamily::Ipv6 => vips((0..n).map(|i| format!("2001:db8::{:x}", i + 1))),
    };
    format!(
        "vrrp_instance BIG {{\n interface eth0\n virtual_router_id 7\n version 3\n virtual_ipaddress {{\n{list} }}\n}}\n"
    )
}

#[test]
fn advert_address_limits_follow_the_wire_keepalived_and_xdp() {
    assert_eq!(
        max_advertised_addresses(AddressFamily::Ipv4, Version::V2),
        255
    );
    assert_eq!(
        max_advertised_addresses(AddressFamily::Ipv4, Version::V3),
        255
    );
    // keepalived: (1500 - 14 - 40 - 8) / 16; XDP alone would allow 92.
    assert_eq!(
        max_advertised_addresses(AddressFamily::Ipv6, Version::V3),
        89
    );
}

#[test]
fn the_xdp_length_limit_here_is_the_kernel_programs() {
    let packet = include_str!("../../../agent-ebpf/src/packet.rs");
    let expected = format!(
        "pub const MAX_VRRP_LEN: usize = {};",
        super::validate::XDP_MAX_VRRP_LEN
    );
    assert!(
        packet.contains(&expected),
        "agent-ebpf changed MAX_VRRP_LEN"
    );
}

#[test]
fn too_many_advertised_addresses_are_refused_at_the_first_one_past_the_limit() {
    // (family, count, expected error at line 6 + limit, or None)
    let cases = [
        (AddressFamily::Ipv4, 255, None),
        (
            AddressFamily::Ipv4,
            300,
            Some((255, "advertises 300 IPv4 addresses; at most 255")),
        ),
        (AddressFamily::Ipv6, 89, None),
        (
            AddressFamily::Ipv6,
            90,
            Some((89, "advertises 90 IPv6 addresses; at most 89")),
        ),
    ];
    for (family, count, expected) in cases {
        let text = many_vips(family, count);
        match expected {
            None => {
                if let Err(e) = parse_str(&text, "keepalived.conf") {
                    panic!("{count} {family:?} addresses should pass: {e}");
                }
            }
            Some((index, fragment)) => {
                let errors = errors_of(&text);
                assert_eq!(errors.len(), 1, "{errors:?}");
                let at = format!("keepalived.conf:{}:3: ", 6 + index);
                assert!(errors[0].starts_with(&at), "{} not at {at}", errors[0]);
                assert!(errors[0].contains(fragment), "{}", errors[0]);
                assert!(
                    errors[0].contains("virtual_ipaddress_excluded"),
                    "{}",
                    errors[0]
                );
            }
        }
    }
    // Excluded addresses are not advertised, so they do not count.
    let mut text = many_vips(AddressFamily::Ipv4, 255);
    text = text.replace(
        " }\n}\n",
        " }\n virtual_ipaddress_excluded {\n  192.0.2.200\n }\n}\n",
    );
    assert!(parse_str(&text, "keepalived.conf").is_ok());
}

/// (what, configuration, the one expected error: position and fragments)
const REFUSALS: &[(&str, &str, &str, &[&str])] = &[
    (
        "the same VIP in two instances",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n\
         vrrp_instance B {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  192.0.2.9\n  192.0.2.1/32\n }\n}\n",
        "keepalived.conf:13:3: ",
        &[
            "virtual address 192.0.2.1 of vrrp_instance B",
            "vrrp_instance A (at keepalived.conf:5:3)",
        ],
    ),
    (
        "a VIP of one instance excluded in another",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n\
         vrrp_instance B {\n interface eth1\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.2\n }\n virtual_ipaddress_excluded {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:15:3: ",
        &[
            "virtual address 192.0.2.1 of vrrp_instance B",
            "(at keepalived.conf:5:3)",
        ],
    ),
    (
        "two unicast instances on one interface, VRID and family with different peers",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 5\n unicast_peer {\n  192.0.2.10\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n\
         vrrp_instance B {\n interface eth0\n virtual_router_id 5\n unicast_peer {\n  192.0.2.11\n }\n virtual_ipaddress {\n  192.0.2.2\n }\n}\n",
        "keepalived.conf:13:20: ",
        &[
            "vrrp_instance B uses virtual_router_id 5 with IPv4 on eth0, as vrrp_instance A does (at keepalived.conf:3:20)",
            "one filter and peer table per interface, VRID and family",
        ],
    ),
    (
        "CR LF in notification_email",
        "global_defs {\n notification_email {\n  \"ops@example.com\\r\\nRCPT TO:<x@example.org>\"\n }\n}\n",
        "keepalived.conf:3:3: ",
        &["notification_email", "\\r\\n", "control character \\u{d}"],
    ),
    (
        "LF in notification_email_from",
        "global_defs {\n notification_email_from \"a@example.com\\nBcc: x@example.org\"\n}\n",
        "keepalived.conf:2:26: ",
        &["notification_email_from", "control character \\u{a}"],
    ),
    (
        "a control character in smtp_server",
        "global_defs {\n smtp_server \"192.0.2.25\\r\"\n}\n",
        "keepalived.conf:2:14: ",
        &["smtp_server", "control character \\u{d}"],
    ),
    (
        "auth_type AH, which planning refuses",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n authentication {\n  auth_type AH\n  auth_pass secret\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:4:2: ",
        &["auth_type AH is not supported", "expected auth_type PASS"],
    ),
    (
        "an unspecified unicast_src_ip, which the election refuses",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n unicast_src_ip 0.0.0.0\n unicast_peer {\n  192.0.2.10\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:1:15: ",
        &["unicast_src_ip 0.0.0.0 is unspecified"],
    ),
    (
        "a track_file weight of 254, which the election refuses",
        "vrrp_track_file f {\n file /tmp/vrrp-agent-never-read\n}\n\
         vrrp_instance A {\n interface eth0\n virtual_router_id 1\n track_file {\n  f weight 254\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:8:3: ",
        &[
            "track_file \"f\" in vrrp_instance A has weight 254",
            "expected -253..253",
        ],
    ),
    (
        "a vrrp_track_file weight the election refuses",
        "vrrp_track_file f {\n file /tmp/vrrp-agent-never-read\n weight 1000\n}\n\
         vrrp_instance A {\n interface eth0\n virtual_router_id 1\n track_file {\n  f\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:9:3: ",
        &["has weight 1000 (the weight of vrrp_track_file f)"],
    ),
    (
        "a script command that does not split",
        "vrrp_script s {\n script \"/bin/check 'unclosed\"\n}\n",
        "keepalived.conf:2:9: ",
        &["vrrp_script s: script command", "unterminated ' quote"],
    ),
    (
        "a notify command that does not split",
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n notify_master \"/bin/notify \\\\\"\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n",
        "keepalived.conf:4:16: ",
        &["vrrp_instance A: script command", "lone backslash"],
    ),
];

#[test]
fn startup_refusals_are_configuration_errors_with_positions() {
    for (what, text, at, fragments) in REFUSALS {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{what}: {errors:#?}");
        assert!(
            errors[0].starts_with(at),
            "{what}: {} is not at {at}",
            errors[0]
        );
        for fragment in *fragments {
            assert!(
                errors[0].contains(fragment),
                "{what}: {} lacks {fragment:?}",
                errors[0]
            );
        }
    }
}

fn eth(name: &str) -> Option<InterfaceInfo> {
    Some(InterfaceInfo {
        ifindex: if name == "eth0" { 2 } else { 3 },
        mac: [2, 0, 0, 0, 0, 1],
        ipv4: vec![Ipv4Addr::new(192, 0, 2, 100)],
        ipv6_link_local: Some("fe80::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST)),
        up: true,
    })
}

/// The configurations refused above for what planning refuses are really
/// refused there: once validation lets them through (here: by taking the
/// checked value out of the parsed model), `plan` fails.
#[test]
fn what_validation_refuses_for_planning_planning_refuses() {
    let base = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    let mut config = match parse_str(base, "keepalived.conf") {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("{e}"),
    };
    assert!(plan(&config, &eth, "h").is_ok());
    let instance = &mut config.vrrp_instances[0];
    instance.authentication = Some(super::model::Authentication {
        auth_type: super::model::AuthType::Ah,
        auth_pass: "secret".into(),
    });
    assert!(plan(&config, &eth, "h").is_err(), "AH");
    config.vrrp_instances[0].authentication = None;
    config.vrrp_instances[0].unicast_src_ip = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert!(plan(&config, &eth, "h").is_err(), "0.0.0.0 source");
    config.vrrp_instances[0].unicast_src_ip = None;
    config.vrrp_instances[0]
        .track_file
        .push(super::model::TrackRef {
            name: "f".into(),
            weight: Some(254),
            reverse: false,
            position: super::Position::new("keepalived.conf".into(), 1, 1),
        });
    assert!(plan(&config, &eth, "h").is_err(), "weight 254");
}

#[test]
fn an_address_list_the_encoder_refuses_is_the_one_validation_refuses() {
    use crate::vrrp::{
        AdvertInterval,
        wire::{Auth, Endpoints, Repr, VirtualAddresses},
    };
    let addresses: Vec<Ipv4Addr> = (0..256u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
        .collect();
    let advert = |n: usize| Repr {
        version: Version::V3,
        vrid: 1,
        priority: 100,
        advert_interval: AdvertInterval::ONE_SECOND,
        auth: Auth::None,
        addresses: VirtualAddresses::V4(addresses[..n].to_vec()),
    };
    let endpoints = Endpoints::ipv4_multicast(Ipv4Addr::new(192, 0, 2, 100));
    let limit = max_advertised_addresses(AddressFamily::Ipv4, Version::V3);
    assert!(advert(limit).check_emittable(&endpoints).is_ok());
    assert!(advert(limit + 1).check_emittable(&endpoints).is_err());
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vrrp-agent-refusals-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("create {}: {e}", dir.display());
        }
        Self(dir)
    }

    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            panic!("write {}: {e}", path.display());
        }
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)) {
            panic!("chmod {}: {e}", path.display());
        }
        path
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration tracking script `script` (line 2 holds the script, line
/// 3 `extra`), with `notify` as notify_master on line 9.
fn tracked(script: &str, extra: &str, notify: &str) -> String {
    format!(
        "vrrp_script chk {{\n script \"{script}\"\n {extra}\n}}\n\
         vrrp_instance A {{\n interface eth0\n virtual_router_id 1\n track_script {{\n  chk\n }}\n notify_master \"{notify}\"\n virtual_ipaddress {{\n  192.0.2.1\n }}\n}}\n"
    )
}

/// (what, script, extra line, notify, expected errors by position and fragment,
/// expected warnings likewise)
type HostCase<'a> = (
    &'a str,
    String,
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
);

#[test]
fn host_checks_refuse_what_the_daemon_could_not_run() {
    let dir = Scratch::new("host");
    let good = dir.file("ok.sh", "#!/bin/sh\nexit 0\n", 0o755);
    let good = good.display().to_string();
    dir.file("plain.sh", "#!/bin/sh\nexit 0\n", 0o644);
    let root_only = dir
        .file("root-only.sh", "#!/bin/sh\nexit 0\n", 0o700)
        .display()
        .to_string();
    let missing = dir.path("missing.sh");
    let plain = dir.path("plain.sh");
    let cases: Vec<HostCase> = vec![
        (
            "all present",
            good.clone(),
            "interval 1",
            good.clone(),
            vec![],
            vec![],
        ),
        (
            "a bare name found in PATH",
            "true".into(),
            "interval 1",
            "true".into(),
            vec![],
            vec![],
        ),
        (
            "a tracked script that does not exist",
            missing.clone(),
            "interval 1",
            good.clone(),
            vec![(":2:9: ", "vrrp_script chk: program")],
            vec![],
        ),
        (
            "a tracked script that is not executable",
            format!("{plain} arg"),
            "interval 1",
            good.clone(),
            vec![(":2:9: ", "is not executable (mode 644)")],
            vec![],
        ),
        (
            "a script only its owner (root) may run, for user nobody",
            root_only.clone(),
            "user nobody",
            good.clone(),
            vec![(":2:9: ", "is not executable (mode 700)")],
            vec![],
        ),
        (
            "a script anyone may run, for user nobody",
            good.clone(),
            "user nobody",
            good.clone(),
            vec![],
            vec![],
        ),
        (
            "a bare name not in PATH",
            "vrrp-agent-no-such-program".into(),
            "interval 1",
            good.clone(),
            vec![(":2:9: ", "\"vrrp-agent-no-such-program\" is not in PATH")],
            vec![],
        ),
        (
            "a script user that does not exist",
            good.clone(),
            "user vrrp-agent-no-such-user",
            good.clone(),
            vec![(
                ":3:7: ",
                "vrrp_script chk: script user `vrrp-agent-no-such-user` does not exist",
            )],
            vec![],
        ),
        (
            "a script group that does not exist",
            good.clone(),
            "user root vrrp-agent-no-such-group",
            good.clone(),
            vec![(":3:7: ", "script group `vrrp-agent-no-such-group`")],
            vec![],
        ),
        (
            "a notify program that does not exist",
            good.clone(),
            "interval 1",
            format!("{missing} master"),
            vec![],
            vec![(":11:16: ", "vrrp_instance A: program")],
        ),
    ];
    for (what, script, extra, notify, errors, warnings) in cases {
        let file = dir.file("keepalived.conf", &tracked(&script, extra, &notify), 0o644);
        let name = file.display().to_string();
        let (found_errors, found_warnings) = match load(&file, TEST_CONFIG_ID) {
            Ok(loaded) => (Vec::new(), loaded.warnings),
            Err(e) => (e.errors, e.warnings),
        };
        assert_eq!(
            found_errors.len(),
            errors.len(),
            "{what}: {found_errors:#?}"
        );
        for (found, (at, fragment)) in found_errors.iter().zip(&errors) {
            let text = found.to_string();
            assert!(
                text.starts_with(&format!("{name}{at}")),
                "{what}: {text} not at {at}"
            );
            assert!(text.contains(fragment), "{what}: {text} lacks {fragment:?}");
        }
        let found_warnings: Vec<String> = found_warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            found_warnings.len(),
            warnings.len(),
            "{what}: {found_warnings:#?}"
        );
        for (text, (at, fragment)) in found_warnings.iter().zip(&warnings) {
            assert!(
                text.starts_with(&format!("{name}{at}")),
                "{what}: {text} not at {at}"
            );
            assert!(text.contains(fragment), "{what}: {text} lacks {fragment:?}");
        }
    }
}

#[test]
fn a_missing_global_script_user_is_reported_once_where_it_is_written() {
    let dir = Scratch::new("global-user");
    let good = dir
        .file("ok.sh", "#!/bin/sh\nexit 0\n", 0o755)
        .display()
        .to_string();
    let text = format!(
        "global_defs {{\n script_user vrrp-agent-no-such-user\n}}\n{}",
        tracked(&good, "interval 1", &good)
    );
    let file = dir.file("keepalived.conf", &text, 0o644);
    let errors = match load(&file, TEST_CONFIG_ID) {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => e.errors,
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:2:14: global_defs script_user: script user `vrrp-agent-no-such-user` does not exist: create the account or name an existing one in `user`/`script_user`",
            file.display()
        )
    );
}

#[test]
fn scripts_no_instance_tracks_are_not_checked_as_they_never_run() {
    let dir = Scratch::new("untracked");
    let text = format!(
        "vrrp_script idle {{\n script \"{}\"\n user vrrp-agent-no-such-user\n}}\n",
        dir.path("missing.sh")
    );
    let file = dir.file("keepalived.conf", &text, 0o644);
    if let Err(e) = load(&file, TEST_CONFIG_ID) {
        panic!("{e}");
    }
}

#[test]
fn an_init_file_in_a_missing_directory_is_refused() {
    let dir = Scratch::new("init-file");
    let text = format!(
        "vrrp_track_file f {{\n file {}\n init_file 0\n}}\n\
         vrrp_instance A {{\n interface eth0\n virtual_router_id 1\n track_file {{\n  f\n }}\n virtual_ipaddress {{\n  192.0.2.1\n }}\n}}\n",
        dir.path("no-such-dir/state")
    );
    let file = dir.file("keepalived.conf", &text, 0o644);
    let errors = match load(&file, TEST_CONFIG_ID) {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => e.errors,
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let text = errors[0].to_string();
    assert!(
        text.starts_with(&format!("{}:1:1: ", file.display())),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");
}

#[test]
fn an_invalid_mail_address_warns_that_mail_is_off() {
    let text = "global_defs {\n notification_email {\n  root\n }\n smtp_server 192.0.2.25\n}\n";
    let loaded = match parse_str(text, "keepalived.conf") {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = loaded.warnings[0].to_string();
    assert!(
        warning.starts_with("keepalived.conf:3:3: notification_email \"root\""),
        "{warning}"
    );
    assert!(warning.contains("no mail alerts"), "{warning}");
    // Without an SMTP server nothing is sent, so nothing to say.
    let quiet = "global_defs {\n notification_email {\n  root\n }\n}\n";
    assert!(parse_str(quiet, "keepalived.conf").is_ok_and(|l| l.warnings.is_empty()));
}

#[test]
fn the_seed_with_its_scripts_present_loads() {
    let dir = Scratch::new("seed");
    let script = dir.file("chk_alive.sh", "#!/bin/sh\nexit 0\n", 0o755);
    let notify = dir.file("notification.sh", "#!/bin/sh\nexit 0\n", 0o755);
    let text = include_str!("testdata/keepalived.conf")
        .replace(
            "/etc/keepalived/chk_alive.sh",
            &script.display().to_string(),
        )
        .replace(
            "/etc/keepalived/notification.sh",
            &notify.display().to_string(),
        );
    let file = dir.file("keepalived.conf", &text, 0o644);
    match load(&file, TEST_CONFIG_ID) {
        Ok(loaded) => assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings),
        Err(e) => panic!("{e}"),
    }
    assert!(Path::new(&file).exists());
}

/// `use_vmac` is implemented (the kernel programs use the virtual MAC), so
/// the plain keyword loads silently; what shapes keepalived's macvlan is
/// named in a warning, in the config test as at startup.
#[test]
fn use_vmac_loads_silently_and_warns_only_for_macvlan_options() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n use_vmac\n vmac_xmit_base\n virtual_ipaddress {\n  192.0.2.1\n }\n}\n";
    let loaded = match parse_str(text, "keepalived.conf") {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    };
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let instance = &loaded.config.vrrp_instances[0];
    assert_eq!(instance.use_vmac.as_deref(), Some("vrrp.1"));
    assert!(instance.vmac_xmit_base);

    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n use_vmac vrrp.one 00:00:5e:00:01 netlink_notify_msg group 3\n virtual_ipaddress {\n  192.0.2.1\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 2\n vmac_xmit_base\n use_vmac_addr\n virtual_ipaddress {\n  192.0.2.2\n }\n}\n";
    let loaded = match parse_str(text, "keepalived.conf") {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    };
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "keepalived.conf:4:20: use_vmac MAC address 00:00:5e:00:01 is read and ignored: vrrp-agent uses the RFC 5798 virtual MAC 00:00:5e:00:01|02:VRID",
            "keepalived.conf:4:35: use_vmac netlink_notify_msg is read and ignored: vrrp-agent creates no macvlan interface",
            "keepalived.conf:4:54: use_vmac group is read and ignored: vrrp-agent creates no macvlan interface",
            "keepalived.conf:4:2: use_vmac: no macvlan interface \"vrrp.one\" is created; vrrp-agent answers with the virtual MAC on the instance's own interface",
            "keepalived.conf:13:2: use_vmac_addr is read and ignored: vrrp-agent creates no macvlan interfaces; addresses on other interfaces keep those interfaces' MAC",
            "keepalived.conf:12:2: vrrp_instance B: vmac_xmit_base is only valid with use_vmac; ignored",
        ]
    );
    assert_eq!(
        loaded.config.vrrp_instances[0].use_vmac.as_deref(),
        Some("vrrp.one")
    );
    assert!(!loaded.config.vrrp_instances[1].vmac_xmit_base);
}

/// keepalived sets vmac_xmit_base itself for unicast instances, and
/// clears it in strict mode.
#[test]
fn vmac_xmit_base_follows_keepalived_with_unicast_and_strict_mode() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n use_vmac\n unicast_peer {\n  192.0.2.9\n }\n virtual_ipaddress {\n  192.0.2.1\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 2\n strict_mode\n use_vmac\n vmac_xmit_base\n virtual_ipaddress {\n  192.0.2.2\n }\n}\n";
    let loaded = match parse_str(text, "keepalived.conf") {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    };
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.starts_with("keepalived.conf:2:12: vrrp_instance A: unicast with use_vmac requires vmac_xmit_base; setting it")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("keepalived.conf:17:2: vrrp_instance B: vmac_xmit_base is incompatible with strict mode; ignored")),
        "{warnings:?}"
    );
    assert!(loaded.config.vrrp_instances[0].vmac_xmit_base);
    assert!(!loaded.config.vrrp_instances[1].vmac_xmit_base);
}

/// `n` instances on five interfaces (VRIDs 1–255 each), one VIP each.
fn many_instances(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "vrrp_instance VI_{i} {{\n interface eth{}\n virtual_router_id {}\n virtual_ipaddress {{\n  10.{}.{}.1\n }}\n}}\n",
                i / 255,
                i % 255 + 1,
                i / 256,
                i % 256
            )
        })
        .collect()
}

#[test]
fn more_instances_than_the_kernel_maps_hold_are_refused_at_the_first_excess() {
    let limit = agent_common::MAX_INSTANCES as usize;
    assert!(parse_str(&many_instances(limit), "keepalived.conf").is_ok());
    let errors = errors_of(&many_instances(limit + 1));
    // Seven lines per instance: the excess one starts on line 7 × limit + 1.
    let line = 7 * limit + 1;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("keepalived.conf:{line}:"))
            && errors[0].contains(&format!("at most {limit} VRRP instances")),
        "{errors:?}"
    );
}
