//! Conformance cases for the election owner, kept as files in `cases/`:
//! a starting configuration, a sequence of inputs (adverts, timers,
//! reloads, links, trackers) and the exact effects each must produce. A new
//! case is a new file; the format is described in `cases/README.md`.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use agent_common::{FAMILY_IPV4, FAMILY_IPV6, Heartbeat, PeerKey, PeerState};

use super::{Core, PeerTable};
use crate::{
    daemon::plan::{self, InterfaceInfo, Plan, TrackedSource},
    datapath::{PeerRecord, address_to_key},
    vrrp::election::Timestamp,
};

/// The kernel's records as a case sets them: peers, and heartbeats a
/// previous daemon left; and how many full records were read (`reads`).
#[derive(Default)]
struct Peers(
    HashMap<PeerKey, PeerState>,
    HashMap<PeerKey, Heartbeat>,
    usize,
);

impl PeerTable for Peers {
    fn peer(&mut self, key: &PeerKey) -> Option<PeerRecord> {
        self.2 += 1;
        self.0
            .get(key)
            .map(|state| PeerRecord::from_kernel(key, state))
    }

    /// As the kernel's `LAST_SEEN`: every configured instance has a slot,
    /// 0 until an advert arrived.
    fn last_seen(&mut self, key: &PeerKey) -> Option<u64> {
        Some(self.0.get(key).map_or(0, |state| state.last_seen_ns))
    }

    fn heartbeat(&mut self, key: &PeerKey) -> Option<Heartbeat> {
        self.1.get(key).copied()
    }
}

struct Case {
    name: String,
    interfaces: HashMap<String, InterfaceInfo>,
    config: Option<String>,
    core: Core,
    peers: Peers,
    now_ms: u64,
    pending: Vec<String>,
    /// With `CASES_BLESS=1`, expectations are rewritten from what happened
    /// instead of checked (review the diff before committing it).
    bless: Option<String>,
}

/// A step's words as `key=value` pairs after the positional ones.
fn options(words: &[&str]) -> HashMap<String, String> {
    words
        .iter()
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn parse_key(text: &str) -> PeerKey {
    // if2/56/v4
    let mut parts = text.trim_start_matches("if").split('/');
    let ifindex = parts.next().and_then(|p| p.parse().ok()).expect("ifindex");
    let vrid = parts.next().and_then(|p| p.parse().ok()).expect("vrid");
    let family = match parts.next() {
        Some("v6") => FAMILY_IPV6,
        _ => FAMILY_IPV4,
    };
    PeerKey::new(ifindex, vrid, family)
}

impl Case {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.now_ms * 1_000_000)
    }

    fn plan(&self) -> Plan {
        let text = self
            .config
            .as_ref()
            .expect("a `config` block before this step");
        let config = crate::config::parse_str(text, "case.conf")
            .unwrap_or_else(|errors| panic!("{}: config does not parse: {errors:?}", self.name))
            .config;
        plan::plan(
            &config,
            &|name| self.interfaces.get(name).cloned(),
            "case-host",
        )
        .unwrap_or_else(|errors| panic!("{}: config does not plan: {errors:?}", self.name))
    }

    fn record(&mut self, effects: Vec<super::Effect>) {
        for effect in &effects {
            // As the daemon does: the kernel forgets the record.
            if let super::Effect::ForgetPeer { key } = effect {
                self.peers.0.remove(key);
            }
        }
        self.pending.extend(effects.iter().map(ToString::to_string));
    }

    fn step(&mut self, line: &str, body: &[String]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let now = self.now();
        match words[0] {
            "interface" => {
                let opts = options(&words[2..]);
                let info = InterfaceInfo {
                    ifindex: opts["index"].parse().expect("index"),
                    mac: [2, 0, 0, 0, 0, opts["index"].parse().expect("index")],
                    ipv4: opts
                        .get("ipv4")
                        .map(|a| vec![a.parse::<Ipv4Addr>().expect("ipv4")])
                        .unwrap_or_default(),
                    ipv6_link_local: opts
                        .get("ipv6")
                        .map(|a| a.parse::<Ipv6Addr>().expect("ipv6")),
                    up: !words.contains(&"down"),
                };
                self.interfaces.insert(words[1].to_owned(), info);
            }
            "config" => self.config = Some(body.join("\n")),
            "at" => self.now_ms = words[1].parse().expect("at <ms>"),
            "start" => {
                let plan = self.plan();
                let effects = self.core.start(&plan, now, &mut self.peers);
                self.record(effects);
            }
            "reload" => {
                let plan = self.plan();
                let effects = self.core.reload(&plan, now);
                self.record(effects);
            }
            "timers" => {
                let effects = self.core.on_timers(now, &mut self.peers);
                self.record(effects);
            }
            "advert" | "peer" => {
                let key = parse_key(words[1]);
                let opts = options(&words[2..]);
                let source: IpAddr = opts["src"].parse().expect("src");
                let version: u8 = opts.get("v").map_or(3, |v| v.parse().expect("v"));
                let state = PeerState {
                    last_seen_ns: now.as_nanos(),
                    adverts: 1,
                    source: address_to_key(source).1,
                    interval_cs: opts.get("int").map_or(100, |i| i.parse().expect("int")),
                    priority: opts["prio"].parse().expect("prio"),
                    version,
                    flags: if words.contains(&"pseudo-header") {
                        agent_common::PEER_FLAG_PSEUDO_HEADER_CHECKSUM
                    } else {
                        0
                    },
                    _pad: [0; 3],
                };
                // `late=MS`: an event the daemon drains MS after the advert
                // it reports, while the kernel's record (and receive time)
                // already holds a newer advert.
                let late_ns = opts
                    .get("late")
                    .map_or(0, |ms| ms.parse::<u64>().expect("late") * 1_000_000);
                let event = PeerState {
                    last_seen_ns: state.last_seen_ns.saturating_sub(late_ns),
                    ..state
                };
                if late_ns == 0 || !self.peers.0.contains_key(&key) {
                    self.peers.0.insert(key, state);
                }
                if words[0] == "advert" {
                    let effects = self
                        .core
                        .on_peer_event(&key, &PeerRecord::from_kernel(&key, &event));
                    self.record(effects);
                }
            }
            "heartbeat" => {
                let key = parse_key(words[1]);
                let opts = options(&words[2..]);
                let age_ms: u64 = opts["age"].parse().expect("age");
                let source: IpAddr = opts["src"].parse().expect("src");
                let takeover_ms: u64 = opts["takeover"].parse().expect("takeover");
                let interval_ms: u64 = opts.get("int").map_or(1000, |i| i.parse().expect("int"));
                let heartbeat = Heartbeat {
                    last_advert_ns: now.as_nanos().saturating_sub(age_ms * 1_000_000),
                    interval_ns: interval_ms * 1_000_000,
                    takeover_ns: takeover_ms * 1_000_000,
                    hold_ns: (takeover_ms + interval_ms) * 1_000_000,
                    primary: address_to_key(source).1,
                    priority: opts["prio"].parse().expect("prio"),
                    fenced: u8::from(words.contains(&"fenced")),
                    _pad: [0; 6],
                };
                self.peers.1.insert(key, heartbeat);
            }
            "resync" => {
                let effects = self.core.resync(&mut self.peers);
                self.record(effects);
            }
            "link" => {
                let effects = self.core.on_interface(words[1], words[2] == "up", now);
                self.record(effects);
            }
            "tracked" => {
                let source = match words[1] {
                    "script" => TrackedSource::Script(words[2].to_owned()),
                    "file" => TrackedSource::File(words[2].to_owned()),
                    "process" => TrackedSource::Process(words[2].to_owned()),
                    _ => TrackedSource::Interface(words[2].to_owned()),
                };
                let effects = self.core.on_tracked(&source, words[3] == "up", now);
                self.record(effects);
            }
            "shutdown" => {
                let effects = self.core.shutdown(now);
                self.record(effects);
            }
            "expect" => {
                let actual = std::mem::take(&mut self.pending);
                if let Some(out) = &mut self.bless {
                    out.push_str("expect\n");
                    for effect in &actual {
                        let _ = writeln!(out, "  {effect}");
                    }
                    return;
                }
                let expected: Vec<String> =
                    body.iter().map(|line| line.trim().to_owned()).collect();
                if actual != expected {
                    let mut report = String::new();
                    let _ = writeln!(report, "{}: effects differ before line `{line}`", self.name);
                    let _ = writeln!(report, "expected:\n  {}", expected.join("\n  "));
                    let _ = writeln!(report, "actual:\n  {}", actual.join("\n  "));
                    panic!("{report}");
                }
            }
            "ignore" => self.pending.clear(),
            "state" => {
                let wanted = words[2];
                let found = self.core.groups().iter().find_map(|group| {
                    group
                        .members
                        .iter()
                        .enumerate()
                        .find_map(|(index, member)| {
                            (member.plan.name == words[1])
                                .then(|| group.sync.member(index).map(|i| i.state()))
                                .flatten()
                        })
                });
                let name = found.map(crate::daemon::runtime::state_name);
                assert_eq!(name, Some(wanted), "{}: state of {}", self.name, words[1]);
            }
            "no-deadline" => assert_eq!(self.core.next_deadline(), None, "{}", self.name),
            "reads" => {
                let reads = std::mem::take(&mut self.peers.2);
                if let Some(out) = &mut self.bless {
                    let _ = writeln!(out, "reads {reads}");
                    return;
                }
                let wanted: usize = words[1].parse().expect("reads <count>");
                assert_eq!(
                    reads, wanted,
                    "{}: full records read since the previous `reads`",
                    self.name
                );
            }
            other => panic!("{}: unknown step `{other}`", self.name),
        }
    }
}

fn run_case(path: &Path) {
    let text = std::fs::read_to_string(path).expect("case file");
    let mut case = Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        interfaces: HashMap::new(),
        config: None,
        core: Core::new(),
        peers: Peers::default(),
        now_ms: 0,
        pending: Vec::new(),
        bless: std::env::var_os("CASES_BLESS").map(|_| String::new()),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            if let Some(out) = &mut case.bless {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let mut body = Vec::new();
        while index < lines.len()
            && (lines[index].starts_with("  ") || lines[index].trim().is_empty())
        {
            if !lines[index].trim().is_empty() {
                body.push(lines[index][2..].to_owned());
            }
            index += 1;
        }
        if let Some(out) = &mut case.bless
            && !line.starts_with("expect")
            && !line.starts_with("reads")
        {
            out.push_str(line);
            out.push('\n');
            for body_line in &body {
                let _ = writeln!(out, "  {body_line}");
            }
        }
        case.step(line, &body);
    }
    if let Some(out) = case.bless.take() {
        std::fs::write(path, out).expect("rewriting the case");
    }
    assert!(
        case.pending.is_empty(),
        "{}: effects never checked:\n  {}",
        case.name,
        case.pending.join("\n  ")
    );
}

#[test]
fn conformance_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon/core/cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases directory")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "case"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {}", dir.display());
    for path in &paths {
        run_case(path);
    }
}
