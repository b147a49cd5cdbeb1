//! `vrrp_track_process` end to end (issue 11): the natural check for the
//! seed's nginx is "is the master process alive", and the agent follows
//! the kernel's process events for it as keepalived does.
//!
//! Routers `a` (priority 200) and `b` (priority 100) and client `c` on one
//! switch; each router runs a UDP echo bound to the VIP, so which router
//! answers the client is known. The tracked process is a copy of `sleep`
//! under a name unique to the run (the kernel names a process after its
//! program file), so tests running side by side never count each other's.
//!
//! The daemons run in the lab's network namespaces, where the kernel
//! refuses process-event subscriptions; `--process-events-netns` names
//! this test process's own (the initial) namespace, and every test checks
//! the agent says it listens to the kernel's events rather than reading
//! `/proc` every second.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lab::{AgentNode, Host, Process, RouterPair, UdpEcho};

const VIP: &str = "192.0.2.100";
const ECHO_PORT: u16 = 7112;
const WAIT: Duration = Duration::from_secs(15);
const INSTANCE: &str = "VI_1";

/// A program file named uniquely for this run: processes started from it
/// carry that name.
struct Program {
    name: String,
    path: PathBuf,
}

impl Program {
    fn new(host: &Host) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // At most 15 bytes: the kernel keeps that much of a process name.
        let name = format!(
            "tp{}x{}",
            std::process::id() % 1_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = host.temp_dir().join(&name);
        std::fs::copy("/bin/sleep", &path).context("copying /bin/sleep")?;
        Ok(Self { name, path })
    }

    /// One running process (stopped when dropped).
    fn start(&self, host: &Host) -> Result<Process> {
        let path = self.path.to_str().context("temp path is not UTF-8")?;
        host.spawn(&[path, "600"])
    }
}

/// `count` processes of `program` are alive (running or not yet reaped:
/// the kernel reports an exit before the parent reaps).
fn running(program: &Program) -> Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat.contains(&format!("({}) ", program.name)) && !stat.contains(") Z") {
            count += 1;
        }
    }
    Ok(count)
}

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

/// Which router's echo answered one probe from the client.
fn answered_by(pair: &RouterPair, echoes: &(UdpEcho, UdpEcho)) -> Result<&'static str> {
    let target = SocketAddr::new(vip(), ECHO_PORT);
    let (before_a, before_b) = (echoes.0.answered(), echoes.1.answered());
    pair.c.udp_echo_once(target, Duration::from_secs(1))?;
    match (
        echoes.0.answered() > before_a,
        echoes.1.answered() > before_b,
    ) {
        (true, false) => Ok("a"),
        (false, true) => Ok("b"),
        other => bail!("probe answered by (a, b) = {other:?}"),
    }
}

/// The client reaches `router` through the VIP (retrying while its ARP
/// entry follows the gratuitous ARPs).
fn wait_answered_by(pair: &RouterPair, echoes: &(UdpEcho, UdpEcho), router: &str) -> Result<()> {
    lab::wait_until(&format!("client answered by {router}"), WAIT, || {
        Ok(answered_by(pair, echoes).ok() == Some(router))
    })
    .map(|_| ())
}

/// `vrrp_instance VI_1` on `interface`, with `tracking` inside it and
/// `definitions` before it.
fn config(interface: &str, priority: u8, definitions: &str, tracking: &str) -> String {
    format!(
        "global_defs {{\n router_id r{priority}\n vrrp_version 3\n}}\n{definitions}\
         vrrp_instance {INSTANCE} {{\n state BACKUP\n interface {interface}\n virtual_router_id 61\n\
         \x20priority {priority}\n advert_int 0.5\n{tracking} virtual_ipaddress {{\n  {VIP}/24\n }}\n}}\n"
    )
}

fn tracker(program: &Program, extra: &str) -> String {
    format!(
        "vrrp_track_process proc {{\n process {}\n{extra}}}\n",
        program.name
    )
}

const TRACKED: &str = " track_process {\n  proc\n }\n";

/// The initial network namespace: this test's own.
fn events_netns() -> String {
    format!("/proc/{}/ns/net", std::process::id())
}

struct Setup {
    pair: RouterPair,
    echoes: (UdpEcho, UdpEcho),
    b: AgentNode,
}

/// The pair, the echoes, and the backup `b` running (untracked).
fn setup(prefix: &str) -> Result<Setup> {
    lab::require_lab_support()?;
    let pair = RouterPair::new(prefix)?;
    let target = SocketAddr::new(vip(), ECHO_PORT);
    let echoes = (
        pair.a.serve_udp_echo(target)?,
        pair.b.serve_udp_echo(target)?,
    );
    let b = agent(&pair.b, &config(&pair.b_if, 100, "", ""))?;
    Ok(Setup { pair, echoes, b })
}

/// [`setup`], and one copy of the tracked program running on `a`'s host.
fn setup_running(prefix: &str) -> Result<(Setup, Program, Process)> {
    let setup = setup(prefix)?;
    let program = Program::new(&setup.pair.a)?;
    let process = program.start(&setup.pair.a)?;
    wait_running(&program, 1, "tracked process running")?;
    Ok((setup, program, process))
}

fn agent(host: &Host, config: &str) -> Result<AgentNode> {
    let netns = events_netns();
    AgentNode::start_with_args(host, config, &["--process-events-netns", netns.as_str()])
}

/// `a` (priority 200) tracking `program` with `extra` in its definition,
/// listening to the kernel's process events.
fn tracking_agent(pair: &RouterPair, program: &Program, extra: &str) -> Result<AgentNode> {
    let a = agent(
        &pair.a,
        &config(&pair.a_if, 200, &tracker(program, extra), TRACKED),
    )?;
    check_listening(&a)?;
    Ok(a)
}

fn wait_running(program: &Program, count: usize, what: &str) -> Result<()> {
    lab::wait_until(what, WAIT, || Ok(running(program)? == count))?;
    Ok(())
}

/// The agent listens to the kernel's events (not the once-a-second /proc
/// fallback) and its status lists the tracked process.
fn check_listening(node: &AgentNode) -> Result<()> {
    node.process()
        .stderr()
        .wait_for(WAIT, |line| {
            line.contains("listening to the kernel's process events")
        })
        .context("the agent never listened to the kernel's process events")?;
    tracked_status(node).map(|_| ())
}

/// The tracked process's entry in `vrrp-agent status`: up or down.
fn tracked_status(node: &AgentNode) -> Result<String> {
    let instance = node.instance(INSTANCE)?;
    instance["tracked"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|t| t["kind"] == "process" && t["name"] == "proc")
        })
        .and_then(|t| t["status"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no tracked process in {instance}"))
}

fn effective_priority(node: &AgentNode) -> Result<u64> {
    node.instance(INSTANCE)?["effective_priority"]
        .as_u64()
        .context("status has no effective_priority")
}

/// Weight 0: the process dies → the master goes FAULT and the backup takes
/// over, the client following; the process starts again → `a` is master
/// again (it preempts).
#[test]
fn the_process_dying_faults_the_master_and_its_return_restores_it() -> Result<()> {
    let (Setup { pair, echoes, b }, program, process) = setup_running("tpfault")?;
    let a = tracking_agent(&pair, &program, "")?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    b.wait_for_state(INSTANCE, "BACKUP", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;

    process.kill9()?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    ensure!(
        tracked_status(&a)? == "down",
        "status still shows the process up"
    );
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;

    let _again = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    b.wait_for_state(INSTANCE, "BACKUP", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;
    ensure!(
        tracked_status(&a)? == "up",
        "status does not show the process back"
    );
    Ok(())
}

/// A weight lowers the priority below the backup's instead: `a` stays
/// BACKUP at 200 - 150 = 50 while the process is gone.
#[test]
fn a_weighted_process_lowers_the_priority_and_the_backup_takes_over() -> Result<()> {
    let (Setup { pair, echoes, b }, program, process) = setup_running("tpweight")?;
    let a = tracking_agent(&pair, &program, " weight -150\n")?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    ensure!(
        effective_priority(&a)? == 200,
        "priority moved with the process running"
    );
    let shown = a.instance(INSTANCE)?["tracked"][0].clone();
    ensure!(
        shown["kind"] == "process" && shown["weight"] == -150 && shown["status"] == "up",
        "status shows {shown}"
    );
    wait_answered_by(&pair, &echoes, "a")?;

    process.kill9()?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    a.wait_for_state(INSTANCE, "BACKUP", WAIT)?;
    ensure!(
        effective_priority(&a)? == 50,
        "priority not lowered by the weight"
    );
    wait_answered_by(&pair, &echoes, "b")?;

    let _again = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    ensure!(effective_priority(&a)? == 200, "priority not restored");
    wait_answered_by(&pair, &echoes, "a")?;
    Ok(())
}

/// `quorum 2`: one process is not enough (the instance starts in FAULT,
/// from the scan of /proc), the second brings it up, losing one faults it
/// again; `quorum_max 2`: a third is too many.
#[test]
fn the_quorum_counts_processes() -> Result<()> {
    let (Setup { pair, echoes, b }, program, first) = setup_running("tpquorum")?;
    let a = tracking_agent(&pair, &program, " quorum 2\n quorum_max 2\n")?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    ensure!(
        a.instance(INSTANCE)?["transitions"].as_u64() <= Some(1),
        "a was something else before FAULT: {}",
        a.instance(INSTANCE)?
    );

    let second = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;

    let third = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    third.kill9()?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;

    first.kill9()?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    drop(second);
    Ok(())
}

/// A reload that adds a tracker of a process that is not running faults
/// the master at once; starting the process brings it back. A reload that
/// removes the tracker again leaves it master when the process dies.
#[test]
fn a_reload_adds_and_removes_a_tracker() -> Result<()> {
    let Setup { pair, echoes, b } = setup("tpreload")?;
    let program = Program::new(&pair.a)?;
    let plain = config(&pair.a_if, 200, "", "");
    let a = agent(&pair.a, &plain)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;

    let tracked = config(&pair.a_if, 200, &tracker(&program, ""), TRACKED);
    let outcome = a.reload(&tracked)?;
    ensure!(outcome.contains("configuration reloaded"), "{outcome}");
    check_listening(&a)?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;

    let process = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;

    let outcome = a.reload(&plain)?;
    ensure!(outcome.contains("configuration reloaded"), "{outcome}");
    process.kill9()?;
    lab::wait_until("tracked process gone", WAIT, || Ok(running(&program)? == 0))?;
    // Two advert intervals and more: a FAULT would show by now.
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        a.state(INSTANCE)? == "MASTER",
        "a left MASTER without a tracker"
    );
    wait_answered_by(&pair, &echoes, "a")?;
    Ok(())
}

/// A sync group's track_process applies to its members: `a` is the only
/// member, so the group's process dying faults it.
#[test]
fn a_sync_group_s_process_faults_its_members() -> Result<()> {
    let (Setup { pair, echoes, b }, program, process) = setup_running("tpgroup")?;
    let group = format!(
        "{}vrrp_sync_group G {{\n group {{\n  {INSTANCE}\n }}\n track_process {{\n  proc\n }}\n}}\n",
        tracker(&program, "")
    );
    let a = agent(&pair.a, &config(&pair.a_if, 200, &group, ""))?;
    check_listening(&a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;
    process.kill9()?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    Ok(())
}

/// Without `--process-events-netns`, a daemon in a namespace cannot listen
/// to the kernel's process events: it says so and reads `/proc` every
/// second instead, and still follows the process.
#[test]
fn outside_the_initial_namespace_the_agent_falls_back_to_reading_proc() -> Result<()> {
    let (Setup { pair, echoes, b }, program, process) = setup_running("tppoll")?;
    let a = AgentNode::start(
        &pair.a,
        &config(&pair.a_if, 200, &tracker(&program, ""), TRACKED),
    )?;
    a.process()
        .stderr()
        .wait_for(WAIT, |line| {
            line.contains("reading /proc every second instead")
        })
        .context("the agent did not fall back to reading /proc")?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;
    process.kill9()?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    let _again = program.start(&pair.a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    Ok(())
}

/// `-t` accepts the keywords without a warning and `--dump-config` shows
/// the effective tracker.
#[test]
fn config_test_and_dump_show_the_tracker() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("track-process-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("keepalived.conf");
    let text = "global_defs {\n process_monitor_rcv_bufs 500000\n}\n\
        vrrp_track_process ng {\n process nginx\n quorum 1\n quorum_max 8\n delay 0.5\n weight -20\n}\n\
        vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 61\n priority 150\n\
        \x20track_process {\n  ng weight -30\n }\n virtual_ipaddress {\n  192.0.2.100/24\n }\n}\n";
    std::fs::write(&path, text)?;
    let run = |args: &[&str]| {
        let args: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(std::ffi::OsStr::new)
            .chain([std::ffi::OsStr::new("-f"), path.as_os_str()])
            .collect();
        lab::run_agent_command(&args)
    };
    let checked = run(&["-t"])?;
    let stderr = String::from_utf8_lossy(&checked.stderr);
    ensure!(checked.status.success(), "-t refused it: {stderr}");
    ensure!(!stderr.contains("warning:"), "-t warned: {stderr}");
    let dumped = run(&["--dump-config"])?;
    ensure!(
        dumped.status.success(),
        "--dump-config failed: {}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&dumped.stdout)?;
    let tracker = &json["track_processes"][0];
    ensure!(
        tracker["process"] == "nginx"
            && tracker["quorum_max"] == 8
            && tracker["terminate_delay"] == 0.5
            && json["global_defs"]["process_monitor_rcv_bufs"] == 500000
            && json["vrrp_instances"][0]["track_process"][0]["weight"] == -30,
        "unexpected dump: {json}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Lost events: with the smallest receive buffer and the daemon stopped
/// (SIGSTOP), a burst of processes overflows the socket and the tracked
/// process's exit, which comes after the burst, is dropped by the kernel.
/// Resumed, the daemon reads ENOBUFS, doubles the buffer and reads /proc
/// again, which finds the process gone: FAULT.
#[test]
fn lost_events_are_recovered_by_reading_proc_again() -> Result<()> {
    let (Setup { pair, echoes, b }, program, process) = setup_running("tplost")?;
    let a = agent(
        &pair.a,
        &config(
            &pair.a_if,
            200,
            &format!(
                "global_defs {{\n process_monitor_rcv_bufs 1\n}}\n{}",
                tracker(&program, "")
            ),
            TRACKED,
        ),
    )?;
    check_listening(&a)?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "a")?;

    a.process().signal(libc::SIGSTOP)?;
    for _ in 0..300 {
        std::process::Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
    }
    process.kill9()?;
    lab::wait_until("tracked process gone", WAIT, || Ok(running(&program)? == 0))?;
    a.process().signal(libc::SIGCONT)?;
    a.process()
        .stderr()
        .wait_for(WAIT, |line| {
            line.contains("the kernel dropped process events")
        })
        .context("the agent never noticed the lost events")?;
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    Ok(())
}

/// `terminate_delay 3`: a process that is back within the delay (a service
/// restart) never shows, the master stays; one that stays away faults it
/// once the delay is over.
#[test]
fn terminate_delay_hides_a_quick_restart() -> Result<()> {
    let (Setup { pair, echoes, b }, program, first) = setup_running("tpdelay")?;
    let a = tracking_agent(&pair, &program, " terminate_delay 3\n")?;
    a.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    let transitions = a.instance(INSTANCE)?["transitions"].clone();

    first.kill9()?;
    let second = program.start(&pair.a)?;
    wait_running(&program, 1, "restarted process running")?;
    // Past the delay: nothing happened.
    std::thread::sleep(Duration::from_secs(4));
    let now = a.instance(INSTANCE)?;
    ensure!(
        now["state"] == "MASTER" && now["transitions"] == transitions,
        "a quick restart showed: {now}"
    );
    ensure!(tracked_status(&a)? == "up", "status shows the process down");
    wait_answered_by(&pair, &echoes, "a")?;

    second.kill9()?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        a.state(INSTANCE)? == "MASTER",
        "a faulted before terminate_delay ended"
    );
    a.wait_for_state(INSTANCE, "FAULT", WAIT)?;
    b.wait_for_state(INSTANCE, "MASTER", WAIT)?;
    wait_answered_by(&pair, &echoes, "b")?;
    Ok(())
}
