//! keepalived.conf: lexing, include splicing, parsing into a typed model,
//! and validation with keepalived 2.2's limits and defaults.
//!
//! [`load`] (and the tests' `parse_str`) return every error at once, each with
//! `file:line:col`, the offending text and what was expected; warnings
//! (unknown keywords, values adjusted as keepalived adjusts them) travel
//! with the result.

pub mod cli;
pub mod diagnostic;
mod host;
pub mod include;
mod interpret;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod preprocess;
pub mod script_security;
mod strict;
mod sync_tracking;
mod track_process;
#[cfg(test)]
mod track_process_tests;
pub mod unicast;
mod validate;
mod values;

#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unicast_tests;

use std::path::Path;
use std::sync::Arc;

pub use diagnostic::{ConfigErrors, Diagnostic, Position, Severity};
pub use host::check_host;
pub use model::Config;

use diagnostic::Diagnostics;
use include::{RealFiles, SourceFiles};

/// A configuration that can be used, and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// keepalived's config id when `-i` is not given: the host name up to its
/// first dot. `@ID` lines and `${_INSTANCE}` compare with it.
pub fn default_config_id() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_owned()
}

/// Reads, parses and validates the configuration at `path` as the node
/// `config_id` (`-i`, else [`default_config_id`]), following its
/// includes relative to each including file's directory, then runs the
/// host checks ([`check_host`]: script users, script programs, init_file
/// directories). This is what `vrrp-agent -t`, daemon startup and reload
/// all call, so they accept and refuse the same files.
pub fn load(path: &Path, config_id: &str) -> Result<Loaded, ConfigErrors> {
    let files = RealFiles;
    match files.read_to_string(path) {
        Ok(text) => parse_with(&files, path, &text, config_id).and_then(with_host_checks),
        Err(error) => Err(ConfigErrors {
            errors: vec![Diagnostic::error(
                Position::file_only(Arc::from(path.display().to_string())),
                format!(
                    "cannot read configuration file: {error}; expected a readable keepalived.conf"
                ),
            )],
            warnings: Vec::new(),
        }),
    }
}

/// Adds the findings that look at this host's files and accounts rather
/// than at the text ([`check_host`], and script security for
/// `enable_script_security`) to a configuration that parsed. [`load`] runs
/// them, so startup, reload and `-t` report the same findings.
pub fn with_host_checks(loaded: Loaded) -> Result<Loaded, ConfigErrors> {
    let Loaded {
        config,
        mut warnings,
    } = loaded;
    let mut errors = Vec::new();
    for finding in check_host(&config)
        .into_iter()
        .chain(script_security::check(&config))
    {
        match finding.severity {
            Severity::Error => errors.push(finding),
            Severity::Warning => warnings.push(finding),
        }
    }
    if errors.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        Err(ConfigErrors { errors, warnings })
    }
}

/// Parses configuration text as if it were the file `virtual_file_name`
/// (used in diagnostics, and as the base for relative includes). Production
/// always reads a file ([`load`]); the tests feed text.
#[cfg(test)]
pub fn parse_str(text: &str, virtual_file_name: &str) -> Result<Loaded, ConfigErrors> {
    parse_with(
        &RealFiles,
        Path::new(virtual_file_name),
        text,
        TEST_CONFIG_ID,
    )
}

/// The config id [`parse_str`] parses as.
#[cfg(test)]
pub const TEST_CONFIG_ID: &str = "test-node";

/// [`parse_str`] as the node `config_id`.
#[cfg(test)]
pub fn parse_str_as(
    text: &str,
    virtual_file_name: &str,
    config_id: &str,
) -> Result<Loaded, ConfigErrors> {
    parse_with(&RealFiles, Path::new(virtual_file_name), text, config_id)
}

/// The whole pipeline over any source of files.
pub fn parse_with(
    files: &dyn SourceFiles,
    path: &Path,
    text: &str,
    config_id: &str,
) -> Result<Loaded, ConfigErrors> {
    let mut diags = Diagnostics::default();
    let lines = include::expand_with_limits(
        files,
        path,
        text,
        config_id,
        include::Limits::DEFAULT,
        &mut diags,
    );
    let tree = parser::parse(lines, &mut diags);
    let mut config = interpret::interpret(&tree, &mut diags);
    validate::validate(&mut config, &mut diags);
    let has_errors = diags.has_errors();
    let (errors, warnings) = diags.split();
    if has_errors {
        Err(ConfigErrors { errors, warnings })
    } else {
        Ok(Loaded { config, warnings })
    }
}
