//! keepalived.conf parsing (owned by the config work).
pub mod cli {
    pub fn config_test(_path: &std::path::Path) -> std::process::ExitCode {
        std::process::ExitCode::FAILURE
    }
    pub fn dump_config(_path: &std::path::Path) -> std::process::ExitCode {
        std::process::ExitCode::FAILURE
    }
}
