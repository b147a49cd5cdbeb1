//! `vrrp-agent --config-test` and `--dump-config`: the only place in the
//! config module that prints.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::{ConfigErrors, Diagnostic, Loaded, Severity};

fn print_diagnostic(diagnostic: &Diagnostic) {
    let label = match diagnostic.severity {
        Severity::Warning => "warning",
        Severity::Error => "error",
    };
    eprintln!("{}: {label}: {}", diagnostic.position, diagnostic.message);
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Prints the findings of `result` to stderr, then a one-line summary.
fn report(path: &Path, result: &Result<Loaded, ConfigErrors>) {
    match result {
        Ok(loaded) => {
            loaded.warnings.iter().for_each(print_diagnostic);
            eprintln!(
                "{}: configuration is valid ({}, {})",
                path.display(),
                plural(loaded.config.vrrp_instances.len(), "vrrp_instance"),
                plural(loaded.warnings.len(), "warning")
            );
        }
        Err(failure) => {
            let mut all: Vec<&Diagnostic> =
                failure.errors.iter().chain(&failure.warnings).collect();
            all.sort_by(|a, b| {
                (&a.position.file, a.position.line, a.position.column).cmp(&(
                    &b.position.file,
                    b.position.line,
                    b.position.column,
                ))
            });
            all.into_iter().for_each(print_diagnostic);
            eprintln!(
                "{}: configuration is invalid ({}, {})",
                path.display(),
                plural(failure.errors.len(), "error"),
                plural(failure.warnings.len(), "warning")
            );
        }
    }
}

/// `vrrp-agent -t -f FILE [-i ID]`: exit 0 when the configuration is usable.
pub fn config_test(path: &Path, config_id: &str) -> ExitCode {
    let result = super::load(path, config_id);
    report(path, &result);
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the effective configuration, defaults included, as pretty JSON.
pub fn dump_config(path: &Path, config_id: &str) -> ExitCode {
    let result = super::load(path, config_id);
    report(path, &result);
    let Ok(loaded) = result else {
        return ExitCode::FAILURE;
    };
    match serde_json::to_string_pretty(&loaded.config) {
        Ok(json) => {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "{}: cannot render configuration as JSON: {error}",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}
