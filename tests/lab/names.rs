//! Unique, parseable names for lab namespaces, so parallel tests never collide
//! and namespaces left behind by a killed test run can be recognised later.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Result, bail};

/// Every lab namespace starts with this, which is how stale ones are found.
pub const NETNS_MARKER: &str = "vlab";

/// Linux limit for interface names (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest host name accepted; keeps derived names short and readable.
const MAX_HOST_NAME_LEN: usize = 10;
const MAX_PREFIX_LEN: usize = 12;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// `vlab-<prefix>-<pid>-<counter><random>`: pid and counter make it unique in
/// this machine right now, the random part guards against pid reuse across runs.
pub fn new_lab_id(prefix: &str) -> Result<String> {
    check_word("lab prefix", prefix, MAX_PREFIX_LEN)?;
    let counter = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(format!(
        "{NETNS_MARKER}-{prefix}-{}-{counter}{:04x}",
        std::process::id(),
        random_u16()
    ))
}

/// The namespace name of host `host` in lab `lab_id`.
pub fn netns_name(lab_id: &str, host: &str) -> Result<String> {
    check_word("host name", host, MAX_HOST_NAME_LEN)?;
    Ok(format!("{lab_id}-{host}"))
}

/// The pid of the test process that created a lab namespace, if `name` is one.
pub fn owner_pid(netns: &str) -> Option<u32> {
    let mut parts = netns.split('-');
    if parts.next()? != NETNS_MARKER {
        return None;
    }
    let _prefix = parts.next()?;
    parts.next()?.parse().ok()
}

/// Rejects interface names the kernel would refuse, with the reason.
pub fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        bail!(
            "interface name {name:?} is {} bytes; Linux needs 1..={MAX_IFNAME_LEN}",
            name.len()
        );
    }
    if name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace()) {
        bail!("interface name {name:?} contains '/', ':' or whitespace, which Linux refuses");
    }
    Ok(())
}

fn check_word(what: &str, word: &str, max_len: usize) -> Result<()> {
    let valid = !word.is_empty()
        && word.len() <= max_len
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid {
        bail!("{what} {word:?} must be 1..={max_len} characters of [a-z0-9]");
    }
    Ok(())
}

fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let from_kernel = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_kernel.is_ok() {
        return u16::from_ne_bytes(bytes);
    }
    // Without /dev/urandom the clock's low bits still differ between runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_ids_are_unique_and_carry_the_pid() {
        let a = new_lab_id("t").unwrap();
        let b = new_lab_id("t").unwrap();
        assert_ne!(a, b);
        let ns = netns_name(&a, "host1").unwrap();
        assert_eq!(owner_pid(&ns), Some(std::process::id()));
    }

    #[test]
    fn foreign_namespaces_have_no_owner() {
        assert_eq!(owner_pid("blue"), None);
        assert_eq!(owner_pid("vlab-x-notapid-1-a"), None);
    }

    #[test]
    fn bad_names_are_rejected_with_reason() {
        assert!(new_lab_id("Has-Dash").is_err());
        assert!(netns_name("vlab-x-1-1", "averyverylonghost").is_err());
        let err = check_ifname("sixteen-chars-xx").unwrap_err();
        assert!(format!("{err}").contains("1..=15"));
        assert!(check_ifname("veth0").is_ok());
    }
}
