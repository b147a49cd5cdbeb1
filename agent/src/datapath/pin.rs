//! Where the datapath lives while no daemon runs: a directory on bpffs
//! holding the maps (`maps-v<N>/<MAP>`) and, per interface, the links that
//! keep the programs attached (`links/<ifname>/xdp-driver|xdp-generic`,
//! `links/<ifname>/tc-egress`, `links/<ifname>/tc-ingress`). A daemon that dies leaves all of it in
//! place; the next one adopts it; a clean stop and `vrrp-agent cleanup`
//! remove it.

use std::{
    ffi::CString,
    io,
    os::{fd::FromRawFd as _, fd::OwnedFd, unix::ffi::OsStrExt as _},
    path::{Path, PathBuf},
};

use agent_common::MAP_LAYOUT_VERSION;
use tracing::info;

/// bpffs is mounted here on every systemd system; pins must live on it.
const BPFFS: &str = "/sys/fs/bpf";
/// The pin directory of a daemon in the host's network namespace.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/vrrp-agent";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How an XDP link was attached; part of its pin's name, so an adopted
/// link still reports its mode.
pub const XDP_DRIVER: &str = "xdp-driver";
pub const XDP_GENERIC: &str = "xdp-generic";
pub const TC_EGRESS: &str = "tc-egress";
pub const TC_INGRESS: &str = "tc-ingress";

/// One daemon's pin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default for the network namespace this process runs in: the
    /// host's daemon uses [`DEFAULT_PIN_ROOT`]; a daemon in another
    /// namespace (bpffs is shared by every network namespace of a mount
    /// namespace, interface names are not) gets `netns-<inode>` below it.
    pub fn for_this_namespace() -> Self {
        let root = PathBuf::from(DEFAULT_PIN_ROOT);
        match (
            namespace_inode("/proc/self/ns/net"),
            namespace_inode("/proc/1/ns/net"),
        ) {
            (Some(own), Some(init)) if own != init => Self::new(root.join(format!("netns-{own}"))),
            _ => Self::new(root),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The maps of the current layout generation.
    pub fn maps(&self) -> PathBuf {
        self.root.join(format!("maps-v{MAP_LAYOUT_VERSION}"))
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    pub fn interface(&self, name: &str) -> PathBuf {
        self.links().join(name)
    }

    /// Makes sure the directories exist on a mounted bpffs (mounting it at
    /// `/sys/fs/bpf` when the root lies below it and nothing is mounted).
    pub fn prepare(&self) -> io::Result<()> {
        if self.root.starts_with(BPFFS) && !is_bpffs(Path::new(BPFFS)) {
            if namespace_inode("/proc/self/ns/mnt") != namespace_inode("/proc/1/ns/mnt") {
                tracing::warn!(
                    "no bpffs at /sys/fs/bpf in this private mount namespace (`ip netns exec` makes one): the one mounted now goes away with the process, and the datapath with it; pass --pin-dir on a bpffs the host keeps"
                );
            }
            mount_bpffs()?;
        }
        std::fs::create_dir_all(self.maps())?;
        std::fs::create_dir_all(self.links())?;
        if !is_bpffs(&self.root) {
            return Err(io::Error::other(format!(
                "{} is not on a bpf filesystem (mount one with `mount -t bpf bpf {BPFFS}`)",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Interfaces that have pinned links, by name.
    pub fn pinned_interfaces(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.links()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// Map directories of other layout generations: their maps cannot be
    /// adopted.
    pub fn other_generations(&self) -> Vec<PathBuf> {
        let current = self.maps();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path != &current
                    && path
                        .file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("maps-v"))
            })
            .collect()
    }

    /// Unpins an interface's links (which detaches the programs unless a
    /// process still holds them). Returns the pins removed.
    pub fn remove_interface(&self, name: &str) -> io::Result<Vec<PathBuf>> {
        remove_tree(&self.interface(name))
    }

    /// Unpins everything: links first (the programs detach), then the maps.
    pub fn remove_all(&self) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for name in self.pinned_interfaces() {
            removed.extend(self.remove_interface(&name)?);
        }
        removed.extend(remove_tree(&self.links())?);
        for generation in self.other_generations() {
            removed.extend(remove_tree(&generation)?);
        }
        removed.extend(remove_tree(&self.maps())?);
        // Other namespaces' directories may live below the root: keep it then.
        let _ = std::fs::remove_dir(&self.root);
        Ok(removed)
    }
}

/// `vrrp-agent cleanup`: removes what a daemon that cannot stop cleanly
/// any more (killed, crashed, its host repurposed) left pinned: the links
/// of `interface`, or everything. Returns the directory and the pins
/// removed.
pub fn cleanup(
    pin_dir: Option<PathBuf>,
    interface: Option<&str>,
) -> io::Result<(PathBuf, Vec<PathBuf>)> {
    let pins = pin_dir.map_or_else(PinDir::for_this_namespace, PinDir::new);
    let removed = match interface {
        Some(name) => pins.remove_interface(name)?,
        None => pins.remove_all()?,
    };
    Ok((pins.root().to_path_buf(), removed))
}

/// Removes a directory of pins (or one pin), depth first. Returns the pins
/// (files) removed; a path that does not exist is not an error.
pub fn remove_tree(path: &Path) -> io::Result<Vec<PathBuf>> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut removed = Vec::new();
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            removed.extend(remove_tree(&entry?.path())?);
        }
        std::fs::remove_dir(path)?;
    } else {
        std::fs::remove_file(path)?;
        info!(pin = %path.display(), "unpinned");
        removed.push(path.to_path_buf());
    }
    Ok(removed)
}

fn namespace_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|metadata| metadata.ino())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs only writes into the zeroed struct we pass.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and outlives the call.
    let result = unsafe { libc::statfs(c_path.as_ptr(), &mut stats) };
    result == 0 && stats.f_type as i64 == BPF_FS_MAGIC
}

fn mount_bpffs() -> io::Result<()> {
    std::fs::create_dir_all(BPFFS)?;
    let source = c"bpf";
    let target = CString::new(BPFFS).expect("no NUL in a constant");
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let result = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if result != 0 {
        return Err(io::Error::other(format!(
            "mounting bpffs at {BPFFS} failed: {}",
            io::Error::last_os_error()
        )));
    }
    info!(path = BPFFS, "mounted the bpf filesystem");
    Ok(())
}

/// `bpf_link_info.type` values the datapath pins.
pub const LINK_TYPE_XDP: u32 = 6;
pub const LINK_TYPE_TCX: u32 = 11;
/// `bpf_attach_type::BPF_TCX_EGRESS`.
pub const ATTACH_TCX_EGRESS: u32 = 47;
/// `bpf_attach_type::BPF_TCX_INGRESS`.
pub const ATTACH_TCX_INGRESS: u32 = 46;

/// What the kernel says about a pinned link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTarget {
    pub link_type: u32,
    /// 0 once the interface it was attached to is gone.
    pub ifindex: u32,
    /// TCX links only: ingress or egress.
    pub attach_type: u32,
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Reads a pinned link's type and target. aya's `LinkInfo` does not expose
/// the interface, and adopting a link that points at a deleted (or
/// re-created) interface would leave the new one without programs.
pub fn link_target(path: &Path) -> io::Result<LinkTarget> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("pin path contains a NUL byte"))?;
    let attr = ObjGetAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    // SAFETY: attr is a valid BPF_OBJ_GET argument that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjGetAttr,
            std::mem::size_of::<ObjGetAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // bpf_link_info: type, id, prog_id, then a union aligned to 8 whose
    // xdp and tcx members start with the ifindex. The buffer is larger than
    // any kernel's struct; the tail stays zero, which the kernel accepts.
    let mut info = [0u8; 256];
    let attr = InfoAttr {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: attr points at a buffer of info_len bytes that outlives the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    let word =
        |offset: usize| u32::from_ne_bytes(info[offset..offset + 4].try_into().expect("4 bytes"));
    Ok(LinkTarget {
        link_type: word(0),
        ifindex: word(16),
        attach_type: word(20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_generation_and_interfaces_have_their_own_places() {
        let pins = PinDir::new("/sys/fs/bpf/x");
        assert_eq!(
            pins.map("PEERS"),
            PathBuf::from(format!("/sys/fs/bpf/x/maps-v{MAP_LAYOUT_VERSION}/PEERS"))
        );
        assert_eq!(
            pins.interface("eth1"),
            PathBuf::from("/sys/fs/bpf/x/links/eth1")
        );
    }

    #[test]
    fn removing_what_is_not_there_is_not_an_error() {
        let removed = remove_tree(Path::new("/nonexistent/vrrp-agent-pins")).expect("no error");
        assert!(removed.is_empty());
    }
}
