//! `cargo xtask bench`: vrrp-agent against keepalived, side by side, in the
//! same run on the same lab, so every number comes with its ratio.
//!
//! Scenarios: client-observed failover (kill -9, link down, SIGTERM at
//! VRRPv2 1 s and VRRPv3 10 ms), probes lost while the master reloads
//! (SIGHUP, unchanged file and one VIP added), false failovers under CPU stress, CPU and
//! RSS with 200 instances at 10 ms, and the XDP program's cost on other
//! traffic. Results: a table on stdout, `target/bench/bench-<stamp>.json`,
//! `target/bench/latest.json` and `target/bench/failover-timeline.png`.

mod alternate;
mod conf;
mod failover;
mod interrupt;
mod procfs;
mod reload;
mod report;
mod restart;
mod router;
mod scale;
mod soak;
mod stats;
mod throughput;
mod timeline;
mod topology;
mod wire;
mod xdp_pass;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::ValueEnum;

use alternate::Measure;
use conf::Advert;
use failover::Fault;
use report::{Machine, Report, Row};
use router::Implementation;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Runs per failover and reload case, alternating keepalived / vrrp-agent
    /// [default: 20, or 3 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: Option<u32>,
    /// A first look: 3 runs, 30 s soak, 10 s CPU window.
    #[arg(long)]
    quick: bool,
    /// Run only this scenario.
    #[arg(long, value_enum)]
    only: Option<Scenario>,
    /// Measure this vrrp-agent binary instead of building the workspace's
    /// (e.g. an earlier build, for a before/after comparison).
    #[arg(long, value_name = "PATH")]
    agent_binary: Option<std::path::PathBuf>,
    /// Failover scenario: only this fault.
    #[arg(long, value_enum)]
    fault: Option<Fault>,
    /// Failover scenario: only this advert timing.
    #[arg(long, value_enum)]
    advert: Option<Advert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Client-observed failover time.
    Failover,
    /// Probes lost while the master reloads (SIGHUP).
    Reload,
    /// VIP moves and probes lost when the master's daemon is killed and
    /// restarted at once (a crash under `Restart=always`, or an upgrade).
    Restart,
    /// False failovers with both CPUs saturated.
    FalseFailovers,
    /// CPU time and RSS with 200 instances at advert_int 0.01.
    Scale,
    /// MASTER entries of the backup when the master's daemon of 200
    /// instances at advert_int 0.01 hangs for 100 ms, a few times.
    Stall,
    /// Non-VRRP UDP throughput: no program, an XDP_PASS-only program,
    /// vrrp_rx.
    Throughput,
}

/// How much of everything to do.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    failover_runs: usize,
    soak_runs: usize,
    soak: Duration,
    scale_runs: usize,
    cpu_window: Duration,
    throughput_reps: usize,
    throughput_duration: Duration,
    /// Failover cases to run: `None` runs all.
    fault: Option<Fault>,
    advert: Option<Advert>,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Self {
        let runs = args
            .runs
            .map_or(if args.quick { 3 } else { 20 }, |r| r as usize);
        if args.quick {
            Self {
                failover_runs: runs,
                soak_runs: runs.min(1),
                soak: Duration::from_secs(30),
                scale_runs: runs.min(1),
                cpu_window: Duration::from_secs(10),
                throughput_reps: runs.min(3),
                throughput_duration: Duration::from_secs(1),
                fault: args.fault,
                advert: args.advert,
            }
        } else {
            Self {
                failover_runs: runs,
                soak_runs: runs.min(3),
                soak: Duration::from_secs(60),
                scale_runs: runs.min(3),
                cpu_window: Duration::from_secs(20),
                throughput_reps: runs.min(5),
                throughput_duration: Duration::from_secs(2),
                fault: args.fault,
                advert: args.advert,
            }
        }
    }
}

/// Results collected so far.
#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    details: Vec<Row>,
    errors: Vec<String>,
    timelines: Vec<failover::Timeline>,
    seconds_per_scenario: Vec<(String, f64)>,
}

impl Results {
    /// Records a failed run; Ctrl-C is not a failed run but the end.
    fn failed(&mut self, what: &str, err: &anyhow::Error) -> Result<()> {
        interrupt::check()?;
        eprintln!("bench: {what} FAILED: {err:#}");
        let short: String = format!("{err:#}")
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n");
        self.errors.push(format!("{what}: {short}"));
        Ok(())
    }
}

/// Builds the agent in release mode, runs the selected scenarios and writes
/// the results under `target/bench/`.
pub fn run(workspace: &Path, args: &BenchArgs) -> Result<()> {
    interrupt::install();
    lab::require_lab_support()?;
    let plan = Plan::from_args(args);
    let agent = match &args.agent_binary {
        Some(path) => path
            .canonicalize()
            .with_context(|| format!("--agent-binary {}", path.display()))?,
        None => crate::build_agent(workspace, true)?,
    };
    let started = Instant::now();
    let selected = |scenario| args.only.is_none_or(|only| only == scenario);
    let mut results = Results::default();
    type Runner = fn(&Plan, &Path, &mut Results) -> Result<()>;
    let scenarios: [(Scenario, Runner); 7] = [
        (Scenario::Failover, failovers),
        (Scenario::Reload, reloads),
        (Scenario::Restart, restarts),
        (Scenario::FalseFailovers, false_failovers),
        (Scenario::Scale, scale),
        (Scenario::Stall, stall),
        (Scenario::Throughput, throughput),
    ];
    for (scenario, runner) in scenarios {
        if selected(scenario) {
            let scenario_started = Instant::now();
            runner(&plan, &agent, &mut results)?;
            let name = scenario
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned());
            results
                .seconds_per_scenario
                .push((name, scenario_started.elapsed().as_secs_f64().round()));
        }
    }
    report::fill_ratios(&mut results.rows);
    report::fill_ratios(&mut results.details);
    let out_dir = workspace.join("target").join("bench");
    let report = Report {
        date: shell(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        machine: Machine {
            cores: shell(&["nproc"]),
            kernel: shell(&["uname", "-r"]),
        },
        command: format!(
            "cargo xtask {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        elapsed_s: started.elapsed().as_secs_f64(),
        seconds_per_scenario: results.seconds_per_scenario.clone(),
        rows: results.rows.clone(),
        details: results.details.clone(),
        errors: results.errors.clone(),
        notes: NOTES.iter().map(|n| n.to_string()).collect(),
    };
    print!("{}", report::table(&results.rows));
    let stamp = shell(&["date", "-u", "+%Y%m%dT%H%M%SZ"]);
    let json = report::write(&report, &out_dir, &stamp)?;
    eprintln!(
        "bench: {} and {} written ({:.0} s of measuring, {} failed runs)",
        json.display(),
        out_dir.join("latest.json").display(),
        report.elapsed_s,
        results.errors.len()
    );
    if !results.timelines.is_empty() {
        let png = out_dir.join("failover-timeline.png");
        timeline::draw(&results.timelines, &png)?;
        eprintln!("bench: {} written", png.display());
    }
    Ok(())
}

const NOTES: [&str; 12] = [
    "failover: fresh lab per run (switch, r1 priority 200, r2 priority 100, client); the client sends a UDP echo to the VIP every 1 ms to servers bound to the VIP on both routers (IP_FREEBIND), accepts only replies sourced from the VIP, and the value is the longest gap between replies after the fault (which comes at a random phase of the master's advert timer) until the client flushes its neighbour cache, 250 ms (v3) or 750 ms (v2) after the backup logged MASTER; what follows (the flush, a SIGSTOPped master continued) is not the failover",
    "failover (wire): tcpdump on the client's port times the old master's last advert, the backup's first advert, its first ARP for the VIP and its first echo reply; 'last advert to the backup's first reply' is the client's outage without the fault's phase (the wait RFC 5798 sets, Master_Down_Interval or Skew_Time after a priority-0 advert, plus the takeover path)",
    "failover kill -9: the old master's echo responder is muted at the kill (a crashed host), otherwise the old master keeps answering on the VIP it still holds; SIGSTOP: nothing is muted (a hung daemon on a live host)",
    "zombie replies: tcpdump on the client counts frames from the old master's MAC that are ARP replies or echo replies after the backup logged MASTER; halfway through, the client flushes its neighbour cache so it asks for the VIP again",
    "vrrp-agent pins its datapath on a bpffs the lab mounts (`--pin-dir`), as on a host with /sys/fs/bpf: a killed agent detaches nothing",
    "reload: fresh lab per run, as for failover; SIGHUP to the master's main process at a random phase of its advert timer, the client probing the VIP every 1 ms; probes lost and the longest time without a reply are counted over the 2 s from the SIGHUP",
    "false failovers: times the backup entered MASTER (its log) while stress-ng --cpu 2 ran, master healthy, advert_int 0.01",
    "scale: utime+stime from /proc/PID/stat over the window (keepalived: parent + VRRP child); time spent in softirq, including the XDP program, is not charged to any process",
    "stall: the scale lab (200 instances, v3 advert_int 0.01); the master's process group is stopped 3 times for 100 ms (SIGSTOP, SIGCONT) with 3 s between; the backup's MASTER entries are counted from its log (600 = one takeover per instance per pause) and its utime+stime from the first SIGSTOP to 3 s after the last SIGCONT",
    "throughput: the keepalived row is the packet path without any program (keepalived adds none); the vrrp-agent row has vrrp_rx attached by `vrrp-agent monitor`; on veth attaching any XDP program also switches the receive side to veth's NAPI path, so that ratio covers the switch as well as vrrp_rx itself",
    "throughput: `vrrp_rx / XDP_PASS-only` is vrrp_rx's own cost: per round, the three receivers (no program, a two-instruction XDP_PASS program attached in the same driver mode, vrrp_rx) are measured back to back and the row holds each round's ratio; counted as UDP InDatagrams + RcvbufErrors in the receiver's namespace (what the kernel delivered)",
    "both daemons run with default scheduling (SCHED_OTHER, nice 0) on a 2-core machine; other work on the machine adds noise, so compare ratios from the same run",
];

fn shell(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn failovers(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    let mut timelines = Vec::new();
    let mut recorded = [false, false];
    let adverts = [Advert::V3TenMillis, Advert::V2OneSecond]
        .into_iter()
        .filter(|advert| plan.advert.is_none_or(|only| only == *advert));
    for advert in adverts {
        for fault in Fault::ALL
            .into_iter()
            .filter(|fault| plan.fault.is_none_or(|only| only == *fault))
        {
            let case = format!("failover {}, {}", fault.label(), advert.label());
            eprintln!(
                "bench: {case}: RFC Master_Down_Interval of the backup is {:.1} ms",
                advert.master_down_ms(100)
            );
            let samples = alternate::run(
                &case,
                plan.failover_runs,
                results,
                |implementation| {
                    // The timeline of the first kill -9 at 0.01 of each.
                    let record = fault == Fault::Kill9
                        && advert == Advert::V3TenMillis
                        && !recorded[usize::from(implementation == Implementation::Agent)];
                    let outcome = failover::run_once(implementation, fault, advert, agent, record);
                    if let Ok(failover::FailoverRun {
                        timeline: Some(timeline),
                        ..
                    }) = &outcome
                    {
                        recorded[usize::from(implementation == Implementation::Agent)] = true;
                        timelines.push(timeline.clone());
                    }
                    outcome
                },
                |what, outcome| {
                    let wire = outcome.wire;
                    let values = [
                        Some(outcome.gap_ms),
                        wire.and_then(|wire| wire.restored_ms()),
                        outcome.zombie_replies,
                        Some(outcome.takeover_ms),
                        wire.map(|wire| wire.silence_ms()),
                        wire.and_then(|wire| wire.garp_after_advert_ms()),
                    ];
                    let show = |value: Option<f64>| {
                        value.map_or_else(|| "?".into(), |v| format!("{v:.2}"))
                    };
                    eprintln!(
                        "bench: {what}: client gap {:.1} ms (from {:.1} ms), backup MASTER after {:.1} ms; \
                         wire: adverts silent {} ms, GARP {} ms after the first new \
                         advert, first reply {} ms after the last old advert",
                        outcome.gap_ms,
                        outcome.gap_began_ms,
                        outcome.takeover_ms,
                        show(values[4]),
                        show(values[5]),
                        show(values[1]),
                    );
                    values
                },
            )?;
            samples.into_rows(
                [
                    Some(Measure::main(format!("{case}: client gap"), "ms")),
                    Some(Measure::main(
                        format!("{case}: old master's last advert to the backup's first reply (wire)"),
                        "ms",
                    )),
                    fault.leaves_a_zombie().then(|| {
                        Measure::main(
                            format!("{case}: zombie replies (old master's ARP and echo replies from the VIP after the takeover)"),
                            "frames",
                        )
                    }),
                    Some(Measure::detail(format!("{case}: backup logs MASTER"), "ms")),
                    Some(Measure::detail(
                        format!("{case}: old master's last advert to the backup's first (wire)"),
                        "ms",
                    )),
                    Some(Measure::detail(
                        format!("{case}: backup's first advert to its first ARP for the VIP (wire)"),
                        "ms",
                    )),
                ],
                results,
            );
        }
    }
    results.timelines.extend(timelines);
    Ok(())
}

fn restarts(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    let case = format!(
        "restart of the master's daemon (kill -9, started again after 200 ms), {}",
        restart::ADVERT.label()
    );
    let samples = alternate::run(
        &case,
        plan.failover_runs,
        results,
        |implementation| restart::run_once(implementation, agent),
        |what, outcome| {
            eprintln!(
                "bench: {what}: backup became MASTER {} times; {}",
                outcome.backup_took_over, outcome.window
            );
            [
                Some(outcome.backup_took_over as f64),
                Some(f64::from(outcome.window.lost)),
                Some(outcome.window.longest_gap.as_secs_f64() * 1000.0),
            ]
        },
    )?;
    let window = restart::WINDOW.as_secs();
    samples.into_rows(
        [
            Some(Measure::main(
                format!("{case}: times the backup became MASTER (the VIP moved)"),
                "count",
            )),
            Some(Measure::main(
                format!("{case}: probes lost in {window} s (1 per ms)"),
                "count",
            )),
            Some(Measure::detail(format!("{case}: longest gap"), "ms")),
        ],
        results,
    );
    Ok(())
}

fn reloads(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    for change in reload::Change::ALL {
        let case = format!(
            "reload (SIGHUP) of the master, {}, {}",
            change.label(),
            reload::ADVERT.label()
        );
        let samples = alternate::run(
            &case,
            plan.failover_runs,
            results,
            |implementation| reload::run_once(implementation, change, agent),
            |what, outcome| {
                let w = outcome.window;
                eprintln!(
                    "bench: {what}: {w}{}{}",
                    match outcome.added_vip_answers {
                        Some(true) => "; the added VIP answers",
                        Some(false) => "; the added VIP does NOT answer",
                        None => "",
                    },
                    if outcome.backup_took_over {
                        "; the backup took over"
                    } else {
                        ""
                    }
                );
                let yes = |flag: bool| if flag { 1.0 } else { 0.0 };
                [
                    Some(f64::from(w.lost)),
                    Some(w.longest_gap.as_secs_f64() * 1000.0),
                    outcome.added_vip_answers.map(yes),
                    Some(yes(outcome.backup_took_over)),
                ]
            },
        )?;
        let window = reload::WINDOW.as_secs();
        samples.into_rows(
            [
                Some(Measure::main(
                    format!("{case}: probes lost in {window} s (1 per ms)"),
                    "count",
                )),
                Some(Measure::main(format!("{case}: longest gap"), "ms")),
                (change == reload::Change::VipAdded).then(|| {
                    Measure::detail(format!("{case}: the added VIP answers (1 = yes)"), "count")
                        .higher_is_better()
                }),
                Some(Measure::detail(
                    format!("{case}: backup entered MASTER (1 = yes)"),
                    "count",
                )),
            ],
            results,
        );
    }
    Ok(())
}

fn false_failovers(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    let case = format!(
        "false failovers in {} s, stress-ng --cpu 2, v3 advert_int 0.01",
        plan.soak.as_secs()
    );
    let mut samples = alternate::run(
        &case,
        plan.soak_runs,
        results,
        |implementation| soak::run_once(implementation, plan.soak, agent),
        |what, outcome| {
            eprintln!("bench: {what}: {} false failovers", outcome.false_failovers);
            [
                Some(outcome.false_failovers as f64),
                outcome.status_transitions.map(|t| t as f64),
            ]
        },
    )?;
    // Only the agent reports its transitions over `status --json`.
    let (transitions, failed) = samples.take(Implementation::Agent, 1);
    results.details.push(Row::new(
        format!("{case}: backup state transitions per status --json"),
        Implementation::Agent,
        "count",
        true,
        transitions,
        failed,
    ));
    samples.into_rows([Some(Measure::main(case.clone(), "count")), None], results);
    Ok(())
}

fn scale(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    let case = format!("{} instances, v3 advert_int 0.01", scale::INSTANCES);
    let samples = alternate::run(
        &case,
        plan.scale_runs,
        results,
        |implementation| scale::run_once(implementation, plan.cpu_window, agent),
        |what, outcome| {
            eprintln!(
                "bench: {what}: backup {:.2} % CPU {:.1} MiB ({:.1} anonymous, {:.1} file-backed), master {:.2} % CPU {:.1} MiB ({:.1} anonymous, {:.1} file-backed), backup false MASTER entries {}",
                outcome.backup.cpu_percent,
                outcome.backup.rss_mib,
                outcome.backup.anon_mib,
                outcome.backup.file_mib,
                outcome.master.cpu_percent,
                outcome.master.rss_mib,
                outcome.master.anon_mib,
                outcome.master.file_mib,
                outcome.backup_false_masters
            );
            [
                outcome.backup.cpu_percent,
                outcome.master.cpu_percent,
                outcome.backup.rss_mib,
                outcome.master.rss_mib,
                outcome.backup_false_masters as f64,
                outcome.backup.anon_mib,
                outcome.backup.file_mib,
            ]
            .map(Some)
        },
    )?;
    let window = plan.cpu_window.as_secs();
    samples.into_rows(
        [
            (format!("{case}: backup CPU over {window} s"), "% of 1 CPU"),
            (format!("{case}: master CPU over {window} s"), "% of 1 CPU"),
            (format!("{case}: backup RSS"), "MiB"),
            (format!("{case}: master RSS"), "MiB"),
            (
                format!("{case}: backup entered MASTER during the CPU window"),
                "count",
            ),
            (
                format!("{case}: backup RSS, anonymous (heap, stacks)"),
                "MiB",
            ),
            (
                format!("{case}: backup RSS, file-backed (binary, libraries, BPF rings)"),
                "MiB",
            ),
        ]
        .map(|(name, unit)| Some(Measure::main(name, unit))),
        results,
    );
    Ok(())
}

fn stall(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    let case = format!(
        "master daemon stopped {} x {} ms, {} instances, v3 advert_int 0.01",
        scale::STALL_PAUSES,
        scale::STALL.as_millis(),
        scale::INSTANCES
    );
    let samples = alternate::run(
        &case,
        plan.scale_runs,
        results,
        |implementation| scale::stall_once(implementation, agent),
        |what, outcome| {
            eprintln!(
                "bench: {what}: backup entered MASTER {} times, holds {} MASTER instances at the end, used {:.0} ms of CPU",
                outcome.backup_master_entries, outcome.backup_masters_after, outcome.backup_cpu_ms
            );
            [
                Some(outcome.backup_master_entries as f64),
                Some(outcome.backup_masters_after as f64),
                Some(outcome.backup_cpu_ms),
            ]
        },
    )?;
    samples.into_rows(
        [
            Some(Measure::main(
                format!(
                    "{case}: backup MASTER entries (one takeover per pause is {})",
                    scale::STALL_PAUSES * usize::from(scale::INSTANCES)
                ),
                "count",
            )),
            Some(Measure::detail(
                format!("{case}: backup MASTER instances 3 s after the last pause"),
                "count",
            )),
            Some(Measure::main(
                format!("{case}: backup CPU from the first pause to 3 s after the last"),
                "ms",
            )),
        ],
        results,
    );
    Ok(())
}

fn throughput(plan: &Plan, agent: &Path, results: &mut Results) -> Result<()> {
    use throughput::Receiver;
    let case = "UDP throughput over veth";
    let samples = match throughput::run(plan.throughput_reps, plan.throughput_duration, agent) {
        Ok(samples) => samples,
        Err(err) => return results.failed(case, &err.context("throughput scenario")),
    };
    for payload in throughput::PAYLOADS {
        let kpps = |receiver: Receiver| -> Vec<f64> {
            samples
                .iter()
                .filter(|s| s.payload == payload && s.receiver == receiver)
                .map(|s| s.delivered_pps / 1000.0)
                .collect()
        };
        for s in samples.iter().filter(|s| s.payload == payload) {
            eprintln!(
                "bench: {case}, {payload}-byte payloads, round {}: {:?}: delivered {:.0} pps (sent {:.0} pps)",
                s.round + 1,
                s.receiver,
                s.delivered_pps,
                s.sent_pps
            );
        }
        let versus_none =
            format!("UDP {payload}-byte payloads over veth, receiver without / with XDP vrrp_rx");
        results.rows.push(Row::new(
            versus_none.clone(),
            Implementation::Keepalived,
            "kpps delivered",
            false,
            kpps(Receiver::NoProgram),
            0,
        ));
        results.rows.push(Row::new(
            versus_none,
            Implementation::Agent,
            "kpps delivered",
            false,
            kpps(Receiver::VrrpRx),
            0,
        ));
        // Each round's vrrp_rx over the XDP_PASS-only program measured
        // right before it: the machine's load drifts less within a round.
        let paired: Vec<f64> = samples
            .iter()
            .filter(|s| s.payload == payload && s.receiver == Receiver::VrrpRx)
            .filter_map(|mine| {
                let pass = samples.iter().find(|s| {
                    s.payload == payload
                        && s.round == mine.round
                        && s.receiver == Receiver::PassOnly
                })?;
                (pass.delivered_pps > 0.0).then(|| mine.delivered_pps / pass.delivered_pps)
            })
            .collect();
        results.rows.push(Row::new(
            format!(
                "UDP {payload}-byte payloads over veth, vrrp_rx / XDP_PASS-only program (per round)"
            ),
            Implementation::Agent,
            "ratio",
            false,
            paired,
            0,
        ));
        results.details.push(Row::new(
            format!(
                "UDP {payload}-byte payloads over veth, receiver with an XDP_PASS-only program"
            ),
            Implementation::Agent,
            "kpps delivered",
            false,
            kpps(Receiver::PassOnly),
            0,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(runs: Option<u32>, quick: bool) -> BenchArgs {
        BenchArgs {
            runs,
            quick,
            only: None,
            agent_binary: None,
            fault: None,
            advert: None,
        }
    }

    #[test]
    fn default_plan_is_twenty_runs_and_a_minute_of_soak() {
        let plan = Plan::from_args(&args(None, false));
        assert_eq!(plan.failover_runs, 20);
        assert_eq!(plan.soak, Duration::from_secs(60));
        assert_eq!(plan.cpu_window, Duration::from_secs(20));
    }

    #[test]
    fn quick_plan_is_short_but_runs_override() {
        let quick = Plan::from_args(&args(None, true));
        assert_eq!(quick.failover_runs, 3);
        assert_eq!(quick.soak, Duration::from_secs(30));
        assert_eq!(quick.cpu_window, Duration::from_secs(10));
        assert_eq!(Plan::from_args(&args(Some(5), true)).failover_runs, 5);
        assert_eq!(Plan::from_args(&args(Some(1), false)).soak_runs, 1);
    }
}
