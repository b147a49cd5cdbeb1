//! What the config test modules share: parse a text that must load or must
//! fail, and the errors and warnings as the operator reads them
//! (`file:line:col: ...`).

use super::{ConfigErrors, Loaded, parse_str};

/// `text` as file `file`, which must load.
pub(super) fn loads(text: &str, file: &str) -> Loaded {
    match parse_str(text, file) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected a valid configuration, got {errors}"),
    }
}

/// `text` as file `file`, which must be refused.
pub(super) fn refused(text: &str, file: &str) -> ConfigErrors {
    match parse_str(text, file) {
        Ok(loaded) => panic!(
            "expected errors, got a valid configuration:\n{text}\nwarnings: {:?}",
            loaded.warnings
        ),
        Err(errors) => errors,
    }
}

/// The refusal's errors, one line each.
pub(super) fn refusal_lines(text: &str, file: &str) -> Vec<String> {
    refused(text, file)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The warnings of a loaded configuration, one line each.
pub(super) fn warning_lines(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}
