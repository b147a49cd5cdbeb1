//! keepalived's script security: a script that runs with root's powers must
//! not be replaceable by anyone but root.
//!
//! keepalived (`check_script_secure`) protects a script when it runs as uid
//! 0 or gid 0, or when the file is set-uid / set-gid root. Such a script is
//! unsafe when any component of its path — `/`, every directory, the file
//! itself, and the same again for the symlink's target when the path leads
//! through a symlink — is owned by someone other than root, or is writable
//! by a group other than root or by everyone (a directory with the sticky
//! bit, like `/tmp`, is fine as long as root owns it). With
//! `enable_script_security` keepalived refuses an unsafe script; without it
//! it logs and runs it anyway. This module only answers "is it safe"; the
//! configuration layer turns the answer into an error or a warning.
//!
//! One deviation: keepalived refuses a written path that goes through a
//! symlinked *directory* (`/bin/true` on a merged-/usr system) as "wrong
//! file type"; we check the symlink's owner and then the resolved path,
//! which covers what the symlink could redirect.

use std::fmt;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::command::{CommandLine, Invocation};
use super::user::RunAs;

/// Used to find a bare program name when the daemon has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why one path component makes a script unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    NotOwnedByRoot { uid: u32 },
    GroupWritable { gid: u32 },
    WorldWritable,
}

/// The first unsafe component found on a script's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    /// The script as it will be executed.
    pub script: PathBuf,
    /// The component at fault (the script itself, or a directory above it).
    pub component: PathBuf,
    pub weakness: Weakness,
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.component == self.script {
            "it".to_owned()
        } else {
            format!("'{}'", self.component.display())
        };
        match &self.weakness {
            Weakness::NotOwnedByRoot { uid } => write!(f, "{what} is owned by uid {uid}, not root"),
            Weakness::GroupWritable { gid } => write!(f, "{what} is writable by group {gid}"),
            Weakness::WorldWritable => write!(f, "{what} is writable by everyone"),
        }
    }
}

/// What checking one command found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Runs as root (or set-uid/gid root) and only root can change it.
    Safe,
    /// Runs unprivileged and is not set-uid/gid root: nothing to protect.
    Unprivileged,
    /// Not a file we can check: a `<`/`>` redirection keepalived hands to
    /// the shell, or a program that does not exist (reported elsewhere).
    NotChecked,
    Unsafe(Unsafe),
}

/// Checks the program `command` starts when run as `run_as`.
pub fn check_command(command: &CommandLine, run_as: &RunAs) -> Verdict {
    let Invocation::Direct { argv } = command.invocation() else {
        return Verdict::NotChecked;
    };
    let Some(program) = argv.first() else {
        return Verdict::NotChecked;
    };
    let Some(program) = locate(Path::new(program)) else {
        return Verdict::NotChecked;
    };
    let (uid, gid) = identity(run_as);
    check_program(&program, uid, gid)
}

/// Checks `program`, an existing path, run with `uid`/`gid`.
pub fn check_program(program: &Path, uid: u32, gid: u32) -> Verdict {
    let Ok(target) = std::fs::metadata(program) else {
        return Verdict::NotChecked;
    };
    if !needs_protection(&target, uid, gid) {
        return Verdict::Unprivileged;
    }
    let absolute = if program.is_absolute() {
        program.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(program),
            Err(_) => return Verdict::NotChecked,
        }
    };
    let mut paths = vec![absolute.clone()];
    if let Ok(resolved) = std::fs::canonicalize(&absolute)
        && resolved != absolute
    {
        paths.push(resolved);
    }
    for path in &paths {
        if let Some((component, weakness)) = first_weak_component(path) {
            return Verdict::Unsafe(Unsafe {
                script: absolute,
                component,
                weakness,
            });
        }
    }
    Verdict::Safe
}

/// keepalived protects what runs as root (uid or gid 0) and what would
/// gain root through a set-uid/set-gid root file.
fn needs_protection(target: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = target.permissions().mode();
    uid == 0
        || gid == 0
        || (target.uid() == 0 && mode & 0o4100 == 0o4100)
        || (target.gid() == 0 && mode & 0o2010 == 0o2010)
}

/// Walks `/`, each directory, then the last component, without following
/// symlinks, and returns the first that someone other than root could
/// change.
fn first_weak_component(path: &Path) -> Option<(PathBuf, Weakness)> {
    let mut prefixes: Vec<&Path> = path.ancestors().collect();
    prefixes.reverse();
    for prefix in prefixes.into_iter().filter(|p| !p.as_os_str().is_empty()) {
        // A component that vanished is the existence check's business.
        let meta = std::fs::symlink_metadata(prefix).ok()?;
        if let Some(weakness) = weakness(&meta) {
            return Some((prefix.to_path_buf(), weakness));
        }
    }
    None
}

fn weakness(meta: &std::fs::Metadata) -> Option<Weakness> {
    if meta.uid() != 0 {
        return Some(Weakness::NotOwnedByRoot { uid: meta.uid() });
    }
    let mode = meta.permissions().mode();
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    // A symlink's own mode bits mean nothing; only its owner matters.
    let writable_kind = meta.is_file() || (meta.is_dir() && !sticky_dir);
    if !writable_kind {
        return None;
    }
    if meta.gid() != 0 && mode & 0o020 != 0 {
        return Some(Weakness::GroupWritable { gid: meta.gid() });
    }
    if mode & 0o002 != 0 {
        return Some(Weakness::WorldWritable);
    }
    None
}

/// The path `execvp` would run: as written when it has a `/`, else the
/// first executable match on `PATH`.
fn locate(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return program.exists().then(|| program.to_path_buf());
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// The uid/gid a child with `run_as` gets.
fn identity(run_as: &RunAs) -> (u32, u32) {
    match run_as {
        RunAs::Account { uid, gid, .. } => (*uid, *gid),
        RunAs::Inherit => (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt as _, chown, symlink};

    use super::*;

    /// A root-owned 0755 directory under /tmp (root-owned and sticky, so
    /// itself safe), removed on drop. The tests run as root.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("vrrp-agent-security-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            chown(&dir, Some(0), Some(0)).unwrap();
            set_mode(&dir, 0o755);
            Self(dir)
        }

        fn script(&self, relative: &str, mode: u32) -> PathBuf {
            let path = self.0.join(relative);
            fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            chown(&path, Some(0), Some(0)).unwrap();
            set_mode(&path, mode);
            path
        }

        fn dir(&self, relative: &str, mode: u32) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir(&path).unwrap();
            chown(&path, Some(0), Some(0)).unwrap();
            set_mode(&path, mode);
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn root() -> RunAs {
        RunAs::Account {
            name: "root".into(),
            uid: 0,
            gid: 0,
        }
    }

    fn nobody() -> RunAs {
        let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        RunAs::Account {
            name: "nobody".into(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    fn verdict(path: &Path, run_as: &RunAs) -> Verdict {
        let line = CommandLine::parse(&format!("{} arg", path.display())).unwrap();
        check_command(&line, run_as)
    }

    fn weakness_of(verdict: Verdict) -> (PathBuf, Weakness) {
        match verdict {
            Verdict::Unsafe(found) => (found.component, found.weakness),
            other => panic!("expected unsafe, got {other:?}"),
        }
    }

    #[test]
    fn a_root_owned_0755_script_in_root_owned_directories_is_safe() {
        let scratch = Scratch::new("safe");
        let script = scratch.script("check.sh", 0o755);
        assert_eq!(verdict(&script, &root()), Verdict::Safe);
    }

    #[test]
    fn a_world_writable_script_run_as_root_is_unsafe() {
        let scratch = Scratch::new("world-file");
        let script = scratch.script("check.sh", 0o757);
        assert_eq!(
            weakness_of(verdict(&script, &root())),
            (script, Weakness::WorldWritable)
        );
    }

    #[test]
    fn a_group_writable_script_is_unsafe_unless_the_group_is_root() {
        let scratch = Scratch::new("group-file");
        let script = scratch.script("check.sh", 0o775);
        assert_eq!(verdict(&script, &root()), Verdict::Safe);
        chown(&script, None, Some(65534)).unwrap();
        set_mode(&script, 0o775);
        assert_eq!(
            weakness_of(verdict(&script, &root())),
            (script, Weakness::GroupWritable { gid: 65534 })
        );
    }

    #[test]
    fn a_script_owned_by_another_user_is_unsafe() {
        let scratch = Scratch::new("owner");
        let script = scratch.script("check.sh", 0o755);
        chown(&script, Some(65534), None).unwrap();
        assert_eq!(
            weakness_of(verdict(&script, &root())),
            (script, Weakness::NotOwnedByRoot { uid: 65534 })
        );
    }

    #[test]
    fn a_world_writable_directory_on_the_path_is_unsafe() {
        let scratch = Scratch::new("world-dir");
        let dir = scratch.dir("open", 0o777);
        let script = scratch.script("open/check.sh", 0o755);
        assert_eq!(
            weakness_of(verdict(&script, &root())),
            (dir, Weakness::WorldWritable)
        );
    }

    #[test]
    fn a_sticky_root_owned_directory_is_fine() {
        let scratch = Scratch::new("sticky");
        scratch.dir("shared", 0o1777);
        let script = scratch.script("shared/check.sh", 0o755);
        assert_eq!(verdict(&script, &root()), Verdict::Safe);
    }

    #[test]
    fn a_symlink_to_an_unsafe_script_is_unsafe() {
        let scratch = Scratch::new("symlink");
        let dir = scratch.dir("open", 0o777);
        let target = scratch.script("open/real.sh", 0o755);
        let link = scratch.0.join("check.sh");
        symlink(&target, &link).unwrap();
        assert_eq!(
            weakness_of(verdict(&link, &root())),
            (dir, Weakness::WorldWritable)
        );
    }

    #[test]
    fn a_symlink_to_a_safe_script_is_safe() {
        let scratch = Scratch::new("symlink-safe");
        let target = scratch.script("real.sh", 0o755);
        let link = scratch.0.join("check.sh");
        symlink(&target, &link).unwrap();
        assert_eq!(verdict(&link, &root()), Verdict::Safe);
    }

    #[test]
    fn an_unprivileged_user_needs_no_protection() {
        let scratch = Scratch::new("nobody");
        let script = scratch.script("check.sh", 0o777);
        assert_eq!(verdict(&script, &nobody()), Verdict::Unprivileged);
    }

    #[test]
    fn a_setuid_root_script_is_protected_even_for_an_unprivileged_user() {
        let scratch = Scratch::new("setuid");
        let script = scratch.script("check.sh", 0o4757);
        assert_eq!(
            weakness_of(verdict(&script, &nobody())),
            (script, Weakness::WorldWritable)
        );
    }

    #[test]
    fn a_bare_name_is_found_on_path_and_a_shell_redirect_is_not_checked() {
        let line = CommandLine::parse("sh -c true").unwrap();
        assert_ne!(check_command(&line, &root()), Verdict::NotChecked);
        let line = CommandLine::parse("</dev/null").unwrap();
        assert_eq!(check_command(&line, &root()), Verdict::NotChecked);
        let line = CommandLine::parse("/no/such/vrrp-agent-script").unwrap();
        assert_eq!(check_command(&line, &root()), Verdict::NotChecked);
    }
}
