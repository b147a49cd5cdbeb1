//! CPU time and resident memory of processes, read from /proc.

use anyhow::{Context, Result, bail};

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_cpu_ticks(&text).with_context(|| format!("unexpected format of {path}"))
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_rss_kib(&text).with_context(|| format!("unexpected format of {path}"))
}

/// Where the resident memory of a process is, in KiB (from
/// /proc/PID/status): anonymous (heap, stacks), file-backed (the binary,
/// shared libraries, and BPF maps mapped into the process such as ring
/// buffers), shared memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RssParts {
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
}

pub fn rss_parts(pid: u32) -> Result<RssParts> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_rss_parts(&text).with_context(|| format!("unexpected format of {path}"))
}

fn parse_status_rss_parts(status: &str) -> Result<RssParts> {
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("no {name} line"))?;
        line[name.len()..]
            .split_whitespace()
            .next()
            .with_context(|| format!("{name} line has no value"))?
            .parse()
            .with_context(|| format!("{name} value in {line:?} is not a number"))
    };
    Ok(RssParts {
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
        shmem_kib: field("RssShmem:")?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime (field 14) + stime (field 15). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let Some(close) = stat.rfind(')') else {
        bail!("no `)` closing the command name in {stat:?}");
    };
    // After the name: field 3 (state) is index 0, so utime (14) is index 11.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |index: usize, name: &str| -> Result<u64> {
        fields
            .get(index)
            .with_context(|| {
                format!(
                    "{name} missing: only {} fields after the name",
                    fields.len()
                )
            })?
            .parse()
            .with_context(|| format!("{name} is not a number"))
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

fn parse_status_rss_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line (kernel thread or zombie?)")?;
    line.trim_start_matches("VmRSS:")
        .split_whitespace()
        .next()
        .context("VmRSS line has no value")?
        .parse()
        .with_context(|| format!("VmRSS value in {line:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parenthesised_name() {
        let stat = "1234 (keep (alive) d) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 100 1000 200";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 22);
    }

    #[test]
    fn short_stat_is_an_error() {
        let err = parse_stat_cpu_ticks("1 (x) S 1 2").unwrap_err();
        assert!(format!("{err:#}").contains("utime missing"));
        assert!(parse_stat_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    5120 kB\nThreads: 1\n";
        assert_eq!(parse_status_rss_kib(status).unwrap(), 5120);
        assert!(parse_status_rss_kib("Name: kthreadd\n").is_err());
    }

    #[test]
    fn rss_parts_from_status() {
        let status = "VmRSS:\t   12680 kB\nRssAnon:\t    3376 kB\nRssFile:\t    9304 kB\nRssShmem:\t       0 kB\n";
        assert_eq!(
            parse_status_rss_parts(status).unwrap(),
            RssParts {
                anon_kib: 3376,
                file_kib: 9304,
                shmem_kib: 0
            }
        );
        assert!(parse_status_rss_parts("VmRSS:\t 1 kB\n").is_err());
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        cpu_ticks(me).unwrap();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(rss_parts(me).unwrap().anon_kib > 0);
    }
}
