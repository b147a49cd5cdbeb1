//! Splices `include` files into the token stream, as keepalived does before
//! it parses anything: an include may appear anywhere, even inside a block.
//!
//! File access goes through [`SourceFiles`] so the splicing logic can be
//! exercised without a filesystem.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostic::{Diagnostics, Position};
use super::lexer::{Token, is_include_keyword, lex_file};

/// How deep includes may nest; keepalived has no documented limit, but a
/// finite one turns a runaway chain into an error instead of a hang.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Brace alternatives multiply; past this many patterns something is wrong.
const MAX_BRACE_EXPANSIONS: usize = 1024;

/// Where configuration text comes from.
pub trait SourceFiles {
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Paths matching a glob pattern (no brace alternatives), sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// A stable identity for cycle detection.
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The real filesystem.
pub struct RealFiles;

impl SourceFiles for RealFiles {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        let bytes = std::fs::read(path)?;
        // Comments are often in a local encoding; losing a character there
        // must not make the whole file unreadable.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        found.sort();
        Ok(found)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Lexes `text` (the content of `path`) and everything it includes into one
/// stream of lines; each token keeps the file it came from.
pub fn expand(
    files: &dyn SourceFiles,
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<Vec<Token>> {
    let mut out = Vec::new();
    let mut stack = vec![files.identity(path)];
    let name: Arc<str> = Arc::from(path.display().to_string());
    splice(files, path, &name, text, &mut stack, &mut out, diags);
    out
}

fn splice(
    files: &dyn SourceFiles,
    path: &Path,
    name: &Arc<str>,
    text: &str,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Vec<Token>>,
    diags: &mut Diagnostics,
) {
    let dir = path.parent().unwrap_or(Path::new(""));
    for line in lex_file(name, text, diags) {
        let Some(first) = line.first() else { continue };
        if !(first.is_word() && !first.quoted && is_include_keyword(&first.text)) {
            out.push(line);
            continue;
        }
        let keyword = first.text.as_str();
        let Some(pattern) = line.get(1) else {
            diags.error(
                &first.position,
                format!("{keyword} needs a file name or pattern; expected `{keyword} PATH`"),
            );
            continue;
        };
        if let Some(extra) = line.get(2) {
            diags.warning(
                &extra.position,
                format!(
                    "{keyword} takes one pattern; ignoring \"{}\" and what follows",
                    extra.text
                ),
            );
        }
        let matches = resolve(files, dir, &pattern.text, &pattern.position, diags);
        if matches.is_empty() {
            let message = format!(
                "{keyword} \"{}\" matched no files (looked relative to \"{}\")",
                pattern.text,
                dir.display()
            );
            // Plain `include` tolerates missing files in keepalived; the
            // checking variants exist to make that an error.
            if keyword == "include" || keyword == "includer" {
                diags.warning(&pattern.position, message);
            } else {
                diags.error(&pattern.position, message);
            }
            continue;
        }
        for included in matches {
            let identity = files.identity(&included);
            if stack.contains(&identity) {
                diags.error(
                    &pattern.position,
                    format!(
                        "{keyword} of \"{}\" would include it again while it is being read (include cycle); expected an include graph without loops",
                        included.display()
                    ),
                );
                continue;
            }
            if stack.len() > MAX_INCLUDE_DEPTH {
                diags.error(
                    &pattern.position,
                    format!(
                        "includes nest deeper than {MAX_INCLUDE_DEPTH} levels at \"{}\"; expected a shallower include chain",
                        included.display()
                    ),
                );
                continue;
            }
            let included_name: Arc<str> = Arc::from(included.display().to_string());
            match files.read_to_string(&included) {
                Ok(included_text) => {
                    stack.push(identity);
                    splice(
                        files,
                        &included,
                        &included_name,
                        &included_text,
                        stack,
                        out,
                        diags,
                    );
                    stack.pop();
                }
                Err(error) => diags.error(
                    &pattern.position,
                    format!(
                        "cannot read included file \"{}\": {error}; expected a readable file",
                        included.display()
                    ),
                ),
            }
        }
    }
}

fn resolve(
    files: &dyn SourceFiles,
    dir: &Path,
    pattern: &str,
    position: &Position,
    diags: &mut Diagnostics,
) -> Vec<PathBuf> {
    let Some(alternatives) = expand_braces(pattern) else {
        diags.error(
            position,
            format!(
                "include pattern \"{pattern}\" expands to more than {MAX_BRACE_EXPANSIONS} alternatives; expected a simpler pattern"
            ),
        );
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for alternative in alternatives {
        let full = if Path::new(&alternative).is_absolute() {
            PathBuf::from(&alternative)
        } else {
            dir.join(&alternative)
        };
        match files.glob(&full.to_string_lossy()) {
            Ok(paths) => {
                for p in paths {
                    if seen.insert(p.clone()) {
                        found.push(p);
                    }
                }
            }
            Err(error) => diags.error(
                position,
                format!(
                    "include pattern \"{alternative}\" is not a valid glob ({error}); expected shell wildcards * ? [..]"
                ),
            ),
        }
    }
    found
}

/// Expands csh-style `{a,b}` alternatives, left to right. Braces without a
/// top-level comma are kept literally. `None` when the result is too large.
pub fn expand_braces(pattern: &str) -> Option<Vec<String>> {
    let mut done = Vec::new();
    let mut work = vec![pattern.to_string()];
    while let Some(current) = work.pop() {
        match split_first_group(&current) {
            None => done.push(current),
            Some((prefix, options, suffix)) => {
                // Pushed in reverse so alternatives come out in written order.
                for option in options.iter().rev() {
                    work.push(format!("{prefix}{option}{suffix}"));
                }
            }
        }
        if done.len() + work.len() > MAX_BRACE_EXPANSIONS {
            return None;
        }
    }
    Some(done)
}

/// Finds the first `{...}` group with a top-level comma, returning the text
/// before it, its alternatives and the text after it.
fn split_first_group(text: &str) -> Option<(String, Vec<String>, String)> {
    let chars: Vec<char> = text.chars().collect();
    for (open, &c) in chars.iter().enumerate() {
        if c != '{' {
            continue;
        }
        let mut depth = 0usize;
        let mut options = Vec::new();
        let mut current = String::new();
        for (index, &inner) in chars.iter().enumerate().skip(open + 1) {
            match inner {
                '{' => {
                    depth += 1;
                    current.push(inner);
                }
                '}' if depth == 0 => {
                    if options.is_empty() {
                        break;
                    }
                    options.push(std::mem::take(&mut current));
                    let prefix: String = chars.iter().take(open).collect();
                    let suffix: String = chars.iter().skip(index + 1).collect();
                    return Some((prefix, options, suffix));
                }
                '}' => {
                    depth -= 1;
                    current.push(inner);
                }
                ',' if depth == 0 => options.push(std::mem::take(&mut current)),
                _ => current.push(inner),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Files in memory; glob supports exact names and a trailing `*`.
    struct MemoryFiles(BTreeMap<PathBuf, String>);

    impl SourceFiles for MemoryFiles {
        fn read_to_string(&self, path: &Path) -> io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
            let pattern = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
            Ok(self
                .0
                .keys()
                .filter(|p| pattern.matches_path(p))
                .cloned()
                .collect())
        }
        fn identity(&self, path: &Path) -> PathBuf {
            path.to_path_buf()
        }
    }

    fn memory(files: &[(&str, &str)]) -> MemoryFiles {
        MemoryFiles(
            files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        )
    }

    fn texts(lines: &[Vec<Token>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                l.iter()
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn braces_expand_in_written_order() {
        assert_eq!(
            expand_braces("a{b,c{d,e}}f").unwrap_or_default(),
            ["abf", "acdf", "acef"]
        );
        assert_eq!(expand_braces("{x}").unwrap_or_default(), ["{x}"]);
        assert_eq!(expand_braces("{,y}z").unwrap_or_default(), ["z", "yz"]);
        assert!(expand_braces(&"{a,b}".repeat(20)).is_none());
    }

    #[test]
    fn include_splices_in_place_and_keeps_positions() {
        let fs = memory(&[
            ("/etc/k/main.conf", "a\ninclude sub/*.conf\nz\n"),
            ("/etc/k/sub/1.conf", "b\n"),
            ("/etc/k/sub/2.conf", "\n\nc\n"),
        ]);
        let mut diags = Diagnostics::default();
        let text = fs.0[Path::new("/etc/k/main.conf")].clone();
        let lines = expand(&fs, Path::new("/etc/k/main.conf"), &text, &mut diags);
        assert_eq!(texts(&lines), ["a", "b", "c", "z"]);
        assert_eq!(lines[2][0].position.to_string(), "/etc/k/sub/2.conf:3:1");
        assert!(!diags.has_errors());
    }

    #[test]
    fn cycles_are_errors_not_hangs() {
        let fs = memory(&[
            ("/k/a.conf", "include b.conf\n"),
            ("/k/b.conf", "x\ninclude a.conf\n"),
        ]);
        let mut diags = Diagnostics::default();
        let lines = expand(&fs, Path::new("/k/a.conf"), "include b.conf\n", &mut diags);
        assert_eq!(texts(&lines), ["x"]);
        let (errors, _) = diags.split();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].position.to_string(), "/k/b.conf:2:9");
        assert!(errors[0].message.contains("include cycle"));
    }

    #[test]
    fn include_depth_is_bounded() {
        let chain: Vec<(String, String)> = (0..40)
            .map(|n| {
                (
                    format!("/k/{n}.conf"),
                    format!("x{n}\ninclude {}.conf\n", n + 1),
                )
            })
            .collect();
        let fs = MemoryFiles(
            chain
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.clone()))
                .collect(),
        );
        let mut diags = Diagnostics::default();
        let lines = expand(&fs, Path::new("/k/0.conf"), &chain[0].1, &mut diags);
        assert_eq!(lines.len(), MAX_INCLUDE_DEPTH + 1);
        let (errors, _) = diags.split();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("nest deeper"));
    }

    #[test]
    fn no_match_warns_for_include_and_errors_for_includem() {
        let fs = memory(&[]);
        let mut diags = Diagnostics::default();
        expand(
            &fs,
            Path::new("/k/a.conf"),
            "include none/*.conf\nincludem none.conf\n",
            &mut diags,
        );
        let (errors, warnings) = diags.split();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].position.to_string(), "/k/a.conf:1:9");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].position.to_string(), "/k/a.conf:2:10");
    }
}
