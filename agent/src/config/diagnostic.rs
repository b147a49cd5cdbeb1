//! Where something is in the configuration, and what was said about it.

use std::fmt;
use std::sync::Arc;

/// A place in a configuration file. Lines and columns are 1-based; columns
/// count characters, not bytes, so positions in UTF-8 comments stay right.
/// Line 0 means "the file as a whole" (it could not be read, for example).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Position {
    pub fn new(file: Arc<str>, line: u32, column: u32) -> Self {
        Self { file, line, column }
    }

    /// The whole file rather than a place in it.
    pub fn file_only(file: Arc<str>) -> Self {
        Self {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// keepalived would carry on (possibly after adjusting a value).
    Warning,
    /// The configuration cannot be used.
    Error,
}

/// One finding about the configuration. Displays as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub position: Position,
    pub message: String,
}

impl Diagnostic {
    pub fn error(position: Position, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            position,
            message: message.into(),
        }
    }

    pub fn warning(position: Position, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.message)
    }
}

/// Collects findings while a configuration is read, so that every problem is
/// reported at once instead of only the first.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, position: &Position, message: impl Into<String>) {
        self.items
            .push(Diagnostic::error(position.clone(), message.into()));
    }

    pub fn warning(&mut self, position: &Position, message: impl Into<String>) {
        self.items
            .push(Diagnostic::warning(position.clone(), message.into()));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Splits into (errors, warnings), each in the order they were found.
    pub fn split(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        self.items
            .into_iter()
            .partition(|d| d.severity == Severity::Error)
    }
}

/// The configuration could not be used; carries every error found, and the
/// warnings too so a caller can show the complete picture.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", summarize(.errors))]
pub struct ConfigErrors {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

fn summarize(errors: &[Diagnostic]) -> String {
    let mut text = format!(
        "configuration has {} error{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for error in errors {
        text.push_str("\n  ");
        text.push_str(&error.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_then_message() {
        let d = Diagnostic::error(Position::new("k.conf".into(), 12, 19), "bad");
        assert_eq!(d.to_string(), "k.conf:12:19: bad");
        let whole = Diagnostic::error(Position::file_only("k.conf".into()), "unreadable");
        assert_eq!(whole.to_string(), "k.conf: unreadable");
    }

    #[test]
    fn config_errors_lists_every_error() {
        let e = ConfigErrors {
            errors: vec![
                Diagnostic::error(Position::new("a".into(), 1, 2), "x"),
                Diagnostic::error(Position::new("a".into(), 3, 4), "y"),
            ],
            warnings: vec![],
        };
        assert_eq!(
            e.to_string(),
            "configuration has 2 errors\n  a:1:2: x\n  a:3:4: y"
        );
    }
}
