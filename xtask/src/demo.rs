//! `cargo xtask run` without agent arguments: the seed scenario as a live
//! demo in network namespaces on this machine. Two nodes run vrrp-agent with
//! the seed's dual-master configuration (documentation addresses), each
//! serving HTTP; a client watches both virtual addresses while one node
//! fails and comes back. Everything it makes is removed at the end.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use lab::{Host, Lab, ProbePlan, Process};
use serde_json::Value;

const VIP1: &str = "203.0.113.10";
const VIP2: &str = "203.0.113.9";

struct Node {
    host: Host,
    name: &'static str,
    interface: String,
    config: PathBuf,
    socket: PathBuf,
    agent: Option<Process>,
}

pub fn run(agent: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo builds network namespaces and loads eBPF: run it as root");
    }
    println!("vrrp-agent demo: the seed's dual-master pair, in network namespaces");
    let lab = Lab::new("demo")?;
    let switch = lab.add_switch("sw")?;
    let client = lab.add_host("client")?;
    let client_if = lab.attach(&client, &switch)?;
    client.add_address(&client_if, "192.0.2.100/24")?;
    client.add_address(&client_if, "203.0.113.100/24")?;

    let mut nodes = Vec::new();
    for (index, name) in ["node1", "node2"].into_iter().enumerate() {
        let host = lab.add_host(name)?;
        let interface = lab.attach(&host, &switch)?;
        host.add_address(&interface, &format!("192.0.2.{}/24", 11 + index))?;
        let config = lab.temp_dir().join(format!("{name}.conf"));
        std::fs::write(&config, seed_config(index == 0, &interface, lab.temp_dir()))?;
        let socket = lab.temp_dir().join(format!("{name}.sock"));
        nodes.push(Node {
            host,
            name,
            interface,
            config,
            socket,
            agent: None,
        });
    }
    std::fs::write(lab.temp_dir().join("chk_alive.sh"), "#!/bin/sh\nexit 0\n")?;
    set_executable(&lab.temp_dir().join("chk_alive.sh"))?;

    let web = if which("nginx") {
        "nginx"
    } else {
        "built-in responder"
    };
    let _servers = start_web_servers(&lab, &nodes, web == "nginx")?;
    println!("  node1 192.0.2.11: MASTER for {VIP1} (VRID 56), BACKUP for {VIP2} (VRID 58)");
    println!("  node2 192.0.2.12: the mirror; client 192.0.2.100; web server: {web}");
    println!();

    for node in nodes.iter_mut() {
        start_agent(agent, node)?;
    }
    println!("starting both agents (backups first, masters after Master_Down_Interval):");
    watch(agent, &nodes, Duration::from_secs(8), |states| {
        states[0].get("master1") == Some(&"MASTER".to_owned())
            && states[1].get("master2") == Some(&"MASTER".to_owned())
    })?;
    show_answers(&client);

    println!();
    println!("failing node1 (its agent is killed and its link goes down, as when the node dies):");
    let probes = start_probes(&client)?;
    if let Some(process) = nodes[0].agent.take() {
        process.kill9()?;
    }
    nodes[0].host.link_down(&nodes[0].interface)?;
    watch(agent, &nodes[1..], Duration::from_secs(10), |states| {
        states[0].get("master1") == Some(&"MASTER".to_owned())
    })?;
    report_outages(probes)?;
    show_answers(&client);

    println!();
    println!("bringing node1 back (it preempts: priority 120 > 110):");
    let probes = start_probes(&client)?;
    nodes[0].host.link_up(&nodes[0].interface)?;
    start_agent(agent, &mut nodes[0])?;
    watch(agent, &nodes, Duration::from_secs(10), |states| {
        states[0].get("master1") == Some(&"MASTER".to_owned())
            && states[1].get("master1") == Some(&"BACKUP".to_owned())
    })?;
    report_outages(probes)?;

    println!();
    println!(
        "stopping node2 gracefully (SIGTERM: priority-0 advert, node1 takes over after Skew_Time):"
    );
    let probes = start_probes(&client)?;
    if let Some(process) = nodes[1].agent.take() {
        process.sigterm()?;
        let _ = process.wait(Duration::from_secs(10));
    }
    watch(agent, &nodes[..1], Duration::from_secs(10), |states| {
        states[0].get("master2") == Some(&"MASTER".to_owned())
    })?;
    report_outages(probes)?;
    show_answers(&client);
    println!();
    println!("done; removing the namespaces");
    Ok(())
}

fn seed_config(first: bool, interface: &str, dir: &Path) -> String {
    // The seed's weights (2) would not move a VIP when nginx fails; 20 would.
    let (state1, prio1, state2, prio2) = if first {
        ("MASTER", 100, "BACKUP", 90)
    } else {
        ("BACKUP", 90, "MASTER", 100)
    };
    let check = dir.join("chk_alive.sh");
    format!(
        "global_defs {{\n  router_id {router}\n}}\n\
         vrrp_script chk_alive {{\n  script \"{check}\"\n  interval 1\n  weight 20\n}}\n\
         vrrp_instance master1 {{\n  state {state1}\n  interface {interface}\n  virtual_router_id 56\n  priority {prio1}\n  advert_int 1\n  garp_master_delay 1\n  authentication {{\n    auth_type PASS\n    auth_pass 1234\n  }}\n  virtual_ipaddress {{\n    {VIP1}/24\n  }}\n  track_script {{\n    chk_alive\n  }}\n}}\n\
         vrrp_instance master2 {{\n  state {state2}\n  interface {interface}\n  virtual_router_id 58\n  priority {prio2}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass 4321\n  }}\n  virtual_ipaddress {{\n    {VIP2}/24\n  }}\n  track_script {{\n    chk_alive\n  }}\n}}\n",
        router = if first { "node1" } else { "node2" },
        check = check.display(),
    )
}

fn start_agent(agent: &Path, node: &mut Node) -> Result<()> {
    let agent = agent.display().to_string();
    let config = node.config.display().to_string();
    let socket = node.socket.display().to_string();
    // The node's pinned datapath, on a bpffs that outlives the agent (as
    // /sys/fs/bpf on a host): the one killed in the demo leaves it guarding.
    let bpffs = node
        .host
        .temp_dir()
        .join(format!("bpf-{}", node.host.name()));
    if !bpffs.exists() {
        node.host.mount_bpffs(&bpffs)?;
    }
    let pins = bpffs.join("vrrp-agent").display().to_string();
    node.agent = Some(node.host.spawn(&[
        &agent,
        "-f",
        &config,
        "--control-socket",
        &socket,
        "--pin-dir",
        &pins,
    ])?);
    Ok(())
}

/// Prints both nodes' instance states whenever they change, until `done`.
fn watch(
    agent: &Path,
    nodes: &[Node],
    limit: Duration,
    done: impl Fn(&[std::collections::BTreeMap<String, String>]) -> bool,
) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        let states: Vec<_> = nodes.iter().map(|node| states_of(agent, node)).collect();
        let line = nodes
            .iter()
            .zip(&states)
            .map(|(node, states)| {
                let parts: Vec<String> = states.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!(
                    "{}: {}",
                    node.name,
                    if parts.is_empty() {
                        "starting".into()
                    } else {
                        parts.join(", ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("  |  ");
        if line != last {
            println!("  [{:>5.2}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if done(&states) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("the nodes did not reach the expected states within {limit:?}")
}

fn states_of(agent: &Path, node: &Node) -> std::collections::BTreeMap<String, String> {
    let socket = node.socket.display().to_string();
    if node.agent.is_none() {
        return [("agent".to_owned(), "down".to_owned())]
            .into_iter()
            .collect();
    }
    let agent = agent.display().to_string();
    let status = node
        .host
        .exec_unchecked(
            &[&agent, "status", "--json", "--control-socket", &socket],
            Duration::from_secs(2),
        )
        .ok()
        .and_then(|out| serde_json::from_str::<Value>(&out.stdout).ok());
    let mut states = std::collections::BTreeMap::new();
    if let Some(instances) = status.as_ref().and_then(|s| s["instances"].as_array()) {
        for instance in instances {
            if let (Some(name), Some(state)) =
                (instance["name"].as_str(), instance["state"].as_str())
            {
                states.insert(name.to_owned(), state.to_owned());
            }
        }
    }
    states
}

/// Asks each virtual address who serves it.
fn show_answers(client: &Host) {
    for vip in [VIP1, VIP2] {
        let answer = client
            .run(move || http_get(web_address(vip)))
            .map_err(|error| error.to_string())
            .and_then(|result| result.map_err(|error| error.to_string()));
        match answer {
            Ok(body) => println!("  client → http://{vip}/ answered by {}", body.trim()),
            Err(error) => println!("  client → http://{vip}/ failed: {error}"),
        }
    }
}

fn http_get(address: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or(&response)
        .to_owned())
}

fn web_address(vip: &str) -> SocketAddr {
    SocketAddr::new(vip.parse().expect("constant address"), 80)
}

struct Probes {
    runs: Vec<(&'static str, lab::ProbeRun)>,
}

fn start_probes(client: &Host) -> Result<Probes> {
    let mut runs = Vec::new();
    for vip in [VIP1, VIP2] {
        let plan = ProbePlan::tcp(web_address(vip))
            .interval(Duration::from_millis(10))
            .timeout(Duration::from_millis(100))
            .max_duration(Duration::from_secs(20));
        runs.push((vip, client.start_probe(plan)?));
    }
    Ok(Probes { runs })
}

fn report_outages(probes: Probes) -> Result<()> {
    thread::sleep(Duration::from_millis(500));
    for (vip, run) in probes.runs {
        let report = run.finish()?;
        println!(
            "  client-observed outage on {vip}: {} ms ({} of {} probes failed)",
            report.longest_outage().as_millis(),
            report.attempts - report.successes,
            report.attempts
        );
    }
    Ok(())
}

fn start_web_servers(
    lab: &Lab,
    nodes: &[Node],
    nginx: bool,
) -> Result<Vec<Box<dyn std::any::Any>>> {
    let mut servers: Vec<Box<dyn std::any::Any>> = Vec::new();
    for node in nodes {
        if nginx {
            let prefix = lab.temp_dir().join(format!("nginx-{}", node.name));
            std::fs::create_dir_all(&prefix)?;
            let conf = prefix.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "daemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  server {{ listen 80; location / {{ return 200 \"{name}\\n\"; }} }}\n}}\n",
                    p = prefix.display(),
                    name = node.name
                ),
            )?;
            let conf = conf.display().to_string();
            let prefix = prefix.display().to_string();
            servers.push(Box::new(
                node.host.spawn(&["nginx", "-c", &conf, "-p", &prefix])?,
            ));
        } else {
            servers.push(Box::new(node.host.serve_tcp("0.0.0.0:80".parse()?)?));
        }
    }
    Ok(servers)
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}
