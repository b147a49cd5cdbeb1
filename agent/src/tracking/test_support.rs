//! Helpers shared by the tests of everything that runs scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Writes an executable `#!/bin/sh` script and returns its path.
pub(crate) fn write_script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Asserts that process `pid` is gone (or a zombie) within two seconds.
pub(crate) async fn assert_process_gone(pid: i32) {
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("script {pid} survived cancellation");
}
