//! Splices `include` files into the token stream, as keepalived does before
//! it parses anything: an include may appear anywhere, even inside a block.
//!
//! keepalived reads a file again each time it is included, so one file may
//! be spliced in several places (a shared `track_script` block in every
//! instance, say); we do the same. What keepalived lacks and we add: each
//! file is read and lexed once however often it is included, an include
//! that would re-enter a file being read is an error (a cycle), and nesting
//! depth, the number of inclusions and the number of spliced lines are
//! capped, so a pathological include tree is an error after bounded work
//! instead of exponential time.
//!
//! File access goes through [`SourceFiles`] so the splicing logic can be
//! exercised without a filesystem.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::diagnostic::{Diagnostics, Position};
use super::lexer::{Token, is_include_keyword, lex_mapped};
use super::preprocess::{Logical, Preprocessor, Source};

/// How far include expansion may go before it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How deep includes may nest; keepalived has no limit, but a finite one
    /// turns a runaway chain into an error instead of a hang.
    pub depth: usize,
    /// How many files may be spliced in, counting a file included from two
    /// places twice. Real configurations include tens to a few thousand
    /// (a file per instance); this bounds the work of a tree whose every
    /// file includes the next one twice, which doubles at each level.
    pub inclusions: usize,
    /// How many lines the expanded configuration may have (a big file
    /// included many times).
    pub lines: usize,
}

impl Limits {
    pub const DEFAULT: Self = Self {
        depth: 16,
        inclusions: 10_000,
        lines: 1_000_000,
    };
}

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
/// stream of lines; each token keeps the file it came from. Tests only:
/// production names its config id ([`expand_with_limits`]).
#[cfg(test)]
pub fn expand(
    files: &dyn SourceFiles,
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<Vec<Token>> {
    expand_with_limits(files, path, text, "", Limits::DEFAULT, diags)
}

/// [`expand`] for the config id `config_id` (what `@ID` lines and
/// `${_INSTANCE}` compare with), with other limits.
pub fn expand_with_limits(
    files: &dyn SourceFiles,
    path: &Path,
    text: &str,
    config_id: &str,
    limits: Limits,
    diags: &mut Diagnostics,
) -> Vec<Vec<Token>> {
    let root: Text = Rc::from(text);
    let mut expander = Expander {
        files,
        diags,
        limits,
        preprocessor: Preprocessor::new(config_id, limits.lines),
        lexed: HashMap::new(),
        identities: HashMap::new(),
        resolved: HashMap::new(),
        reported: HashSet::new(),
        too_deep: HashSet::new(),
        stack: vec![files.identity(path)],
        inclusions: 0,
        no_more_includes: false,
        full: false,
        out: Vec::new(),
    };
    expander.splice(path, &root);
    expander.out
}

/// A file's text: each splice preprocesses and lexes it again, since
/// definitions and `@` conditions may read it differently each time.
type Text = Rc<str>;

struct Expander<'a> {
    files: &'a dyn SourceFiles,
    diags: &'a mut Diagnostics,
    limits: Limits,
    /// Conditions, definitions and sequences, across all files.
    preprocessor: Preprocessor,
    /// Every file read at most once, by identity (`Err`: why it could not
    /// be read).
    lexed: HashMap<PathBuf, Result<Text, String>>,
    /// [`SourceFiles::identity`] of every path met (a syscall per path
    /// component on a real filesystem), asked once per path.
    identities: HashMap<PathBuf, PathBuf>,
    /// Every include statement resolved once, keyed by the directory it is
    /// resolved in and where its pattern is.
    resolved: HashMap<(PathBuf, Position), Rc<Vec<PathBuf>>>,
    /// A statement spliced many times reports each problem once.
    reported: HashSet<(Position, String)>,
    /// Include statements already found nested too deep.
    too_deep: HashSet<Position>,
    /// Identities of the files being read, outermost first.
    stack: Vec<PathBuf>,
    inclusions: usize,
    /// `limits.inclusions` was reached: further includes are skipped.
    no_more_includes: bool,
    /// `limits.lines` was reached: nothing more is spliced.
    full: bool,
    out: Vec<Vec<Token>>,
}

impl Expander<'_> {
    fn error_once(&mut self, at: &Position, message: String) {
        if self.reported.insert((at.clone(), message.clone())) {
            self.diags.error(at, message);
        }
    }

    fn warning_once(&mut self, at: &Position, message: String) {
        if self.reported.insert((at.clone(), message.clone())) {
            self.diags.warning(at, message);
        }
    }

    /// Preprocesses and lexes one raw line; lexer findings are reported
    /// once however often the file is spliced.
    fn logical_lines(
        &mut self,
        file: &Arc<str>,
        dir: &Path,
        line: u32,
        raw: &str,
    ) -> Vec<Vec<Token>> {
        let mut found = Diagnostics::default();
        let mut logical: Vec<Logical> = Vec::new();
        let source = Source { file, dir, line };
        // One more than fits, so an ordinary file that is too long gets the
        // expander's error; a runaway ~SEQ stops in the preprocessor.
        let room = self.limits.lines.saturating_sub(self.out.len());
        self.preprocessor.set_budget(room.saturating_add(1));
        self.preprocessor
            .feed(&source, raw, &mut found, &mut logical);
        let mut lines = Vec::with_capacity(logical.len());
        for Logical {
            line,
            text,
            columns,
        } in logical
        {
            let mut tokens = lex_mapped(file, line, &text, &columns, true, &mut found);
            let starts_include = tokens
                .first()
                .is_some_and(|t| t.is_word() && !t.quoted && is_include_keyword(&t.text));
            if starts_include {
                // Re-lex so `{a,b}` in the pattern stays part of the word;
                // the first pass already reported any quoting problems.
                let mut quiet = Diagnostics::default();
                tokens = lex_mapped(file, line, &text, &columns, false, &mut quiet);
            }
            if !tokens.is_empty() {
                lines.push(tokens);
            }
        }
        let (errors, warnings) = found.split();
        for d in errors {
            self.error_once(&d.position, d.message);
        }
        for d in warnings {
            self.warning_once(&d.position, d.message);
        }
        lines
    }

    fn splice(&mut self, path: &Path, text: &Text) {
        let dir = path.parent().unwrap_or(Path::new(""));
        let file: Arc<str> = Arc::from(path.display().to_string());
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            if self.full {
                return;
            }
            let line_no = u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX);
            for line in self.logical_lines(&file, dir, line_no, raw) {
                if self.full {
                    return;
                }
                self.splice_line(dir, line);
            }
        }
    }

    fn splice_line(&mut self, dir: &Path, line: Vec<Token>) {
        {
            let Some(first) = line.first() else { return };
            if !(first.is_word() && !first.quoted && is_include_keyword(&first.text)) {
                if self.out.len() >= self.limits.lines {
                    self.full = true;
                    self.error_once(
                        &first.position,
                        format!(
                            "the configuration expands to more than {} lines with its includes; expected a smaller configuration (or fewer repeated includes)",
                            self.limits.lines
                        ),
                    );
                    return;
                }
                self.out.push(line);
                return;
            }
            if self.no_more_includes {
                return;
            }
            self.include(dir, &line);
        }
    }

    fn include(&mut self, dir: &Path, line: &[Token]) {
        let Some(first) = line.first() else { return };
        let keyword = first.text.as_str();
        let Some(pattern) = line.get(1) else {
            self.error_once(
                &first.position,
                format!("{keyword} needs a file name or pattern; expected `{keyword} PATH`"),
            );
            return;
        };
        if let Some(extra) = line.get(2) {
            self.warning_once(
                &extra.position,
                format!(
                    "{keyword} takes one pattern; ignoring \"{}\" and what follows",
                    extra.text
                ),
            );
        }
        let key = (dir.to_path_buf(), pattern.position.clone());
        let matches = match self.resolved.get(&key) {
            Some(matches) => Rc::clone(matches),
            None => {
                let found = Rc::new(resolve(
                    self.files,
                    dir,
                    &pattern.text,
                    &pattern.position,
                    self.diags,
                ));
                self.resolved.insert(key, Rc::clone(&found));
                found
            }
        };
        if matches.is_empty() {
            let message = format!(
                "{keyword} \"{}\" matched no files (looked relative to \"{}\")",
                pattern.text,
                dir.display()
            );
            // Plain `include` tolerates missing files in keepalived; the
            // checking variants exist to make that an error.
            if keyword == "include" || keyword == "includer" {
                self.warning_once(&pattern.position, message);
            } else {
                self.error_once(&pattern.position, message);
            }
            return;
        }
        for included in matches.iter() {
            let identity = match self.identities.get(included) {
                Some(identity) => identity.clone(),
                None => {
                    let identity = self.files.identity(included);
                    self.identities.insert(included.clone(), identity.clone());
                    identity
                }
            };
            if let Some(start) = self.stack.iter().position(|open| *open == identity) {
                let chain: Vec<String> = self.stack[start..]
                    .iter()
                    .chain(std::iter::once(&identity))
                    .map(|p| format!("\"{}\"", p.display()))
                    .collect();
                self.error_once(
                    &pattern.position,
                    format!(
                        "{keyword} of \"{}\" would include it again while it is being read (include cycle: {}); expected an include graph without loops",
                        included.display(),
                        chain.join(" -> ")
                    ),
                );
                continue;
            }
            if self.stack.len() > self.limits.depth {
                // Reached once per splice of the including file: format the
                // message only the first time.
                if !self.too_deep.insert(pattern.position.clone()) {
                    continue;
                }
                self.error_once(
                    &pattern.position,
                    format!(
                        "includes nest deeper than {} levels at \"{}\"; expected a shallower include chain",
                        self.limits.depth,
                        included.display()
                    ),
                );
                continue;
            }
            if self.inclusions >= self.limits.inclusions {
                self.no_more_includes = true;
                self.error_once(
                    &pattern.position,
                    format!(
                        "{keyword} of \"{}\" goes past {} inclusions in total (a file included from several places counts each time); expected a smaller include tree",
                        included.display(),
                        self.limits.inclusions
                    ),
                );
                return;
            }
            self.inclusions += 1;
            let text = match self.lexed(&identity, included) {
                Ok(text) => text,
                Err(error) => {
                    self.error_once(
                        &pattern.position,
                        format!(
                            "cannot read included file \"{}\": {error}; expected a readable file",
                            included.display()
                        ),
                    );
                    continue;
                }
            };
            self.stack.push(identity);
            self.splice(included, &text);
            self.stack.pop();
        }
    }

    /// The text of `path`, read from the source only the first time.
    fn lexed(&mut self, identity: &Path, path: &Path) -> Result<Text, String> {
        if let Some(known) = self.lexed.get(identity) {
            return known.clone();
        }
        let result = match self.files.read_to_string(path) {
            Ok(text) => Ok(Rc::from(text)),
            Err(error) => Err(error.to_string()),
        };
        self.lexed.insert(identity.to_path_buf(), result.clone());
        result
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
    /// Counts reads, so tests can prove each file is read once.
    struct MemoryFiles(BTreeMap<PathBuf, String>, std::cell::Cell<usize>);

    impl SourceFiles for MemoryFiles {
        fn read_to_string(&self, path: &Path) -> io::Result<String> {
            self.1.set(self.1.get() + 1);
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
            std::cell::Cell::new(0),
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
        assert!(
            errors[0]
                .message
                .contains("include cycle: \"/k/a.conf\" -> \"/k/b.conf\" -> \"/k/a.conf\""),
            "{}",
            errors[0].message
        );
    }

    /// Every file of a chain `0.conf` … `{levels}.conf` includes the next one
    /// twice, from two places; the last holds one line.
    fn doubling_tree(levels: usize) -> MemoryFiles {
        let mut files = BTreeMap::new();
        for n in 0..levels {
            files.insert(
                PathBuf::from(format!("/k/{n}.conf")),
                format!(
                    "a{n}\ninclude {next}.conf\nb{n}\ninclude {next}.conf\n",
                    next = n + 1
                ),
            );
        }
        files.insert(PathBuf::from(format!("/k/{levels}.conf")), "leaf\n".into());
        MemoryFiles(files, std::cell::Cell::new(0))
    }

    fn expand_root(fs: &MemoryFiles, limits: Limits) -> (Vec<Vec<Token>>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let text = fs.0[Path::new("/k/0.conf")].clone();
        let lines = expand_with_limits(fs, Path::new("/k/0.conf"), &text, "", limits, &mut diags);
        (lines, diags)
    }

    #[test]
    fn a_file_included_from_two_places_is_spliced_twice_but_read_once() {
        let fs = memory(&[
            (
                "/k/0.conf",
                "A {\ninclude common.conf\n}\nB {\ninclude common.conf\n}\n",
            ),
            ("/k/common.conf", "track\n"),
        ]);
        let (lines, diags) = expand_root(&fs, Limits::DEFAULT);
        assert_eq!(texts(&lines), ["A {", "track", "}", "B {", "track", "}"]);
        assert!(!diags.has_errors());
        assert_eq!(fs.1.get(), 1, "common.conf is read once");
    }

    #[test]
    fn a_doubling_tree_within_the_limits_expands_fully_reading_each_file_once() {
        let fs = doubling_tree(6);
        let (lines, diags) = expand_root(&fs, Limits::DEFAULT);
        // Level n contributes 2 lines per copy, 2^n copies; the leaf 2^6.
        assert_eq!(lines.len(), 2 * ((1 << 6) - 1) + (1 << 6));
        assert!(!diags.has_errors());
        assert_eq!(fs.1.get(), 6, "the 6 included files are each read once");
    }

    #[test]
    fn a_doubling_tree_past_the_inclusion_cap_stops_with_one_error() {
        // 2^31 inclusions if expanded: only the cap's worth of work is done.
        let fs = doubling_tree(30);
        let (lines, diags) = expand_root(&fs, Limits::DEFAULT);
        assert!(fs.1.get() <= 30, "read {} files", fs.1.get());
        assert!(
            lines.len() < 3 * Limits::DEFAULT.inclusions,
            "{}",
            lines.len()
        );
        let (errors, _) = diags.split();
        let caps: Vec<_> = errors
            .iter()
            .filter(|e| {
                e.message
                    .contains(&format!("past {} inclusions", Limits::DEFAULT.inclusions))
            })
            .collect();
        assert_eq!(caps.len(), 1, "{errors:?}");
        assert!(
            caps[0].position.to_string().starts_with("/k/"),
            "{}",
            caps[0].position
        );
        // The depth limit is reached too, and reported once per statement.
        assert!(errors.len() <= 3, "{errors:?}");
    }

    #[test]
    fn the_line_cap_bounds_a_big_file_included_many_times() {
        let big = "x\n".repeat(100);
        let root = "include big.conf\n".repeat(20);
        let fs = memory(&[("/k/0.conf", root.as_str()), ("/k/big.conf", big.as_str())]);
        let limits = Limits {
            lines: 1000,
            ..Limits::DEFAULT
        };
        let (lines, diags) = expand_root(&fs, limits);
        assert_eq!(lines.len(), 1000);
        let (errors, _) = diags.split();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].position.to_string(), "/k/big.conf:1:1");
        assert!(errors[0].message.contains("more than 1000 lines"));
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
            std::cell::Cell::new(0),
        );
        let mut diags = Diagnostics::default();
        let lines = expand(&fs, Path::new("/k/0.conf"), &chain[0].1, &mut diags);
        assert_eq!(lines.len(), Limits::DEFAULT.depth + 1);
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

    #[test]
    fn definitions_and_conditions_reach_across_includes() {
        // keepalived substitutes before it looks for `include`, and a
        // definition made in an included file holds after it.
        let fs = memory(&[
            (
                "/k/main.conf",
                "$DIR=parts\ninclude ${DIR}/a.conf\nafter $X\n",
            ),
            (
                "/k/parts/a.conf",
                "@n1 $X=one\n@^n1 $X=other\nin_a ${_INSTANCE}\n",
            ),
        ]);
        let mut diags = Diagnostics::default();
        let text =
            fs.0.get(Path::new("/k/main.conf"))
                .cloned()
                .unwrap_or_default();
        let lines = expand_with_limits(
            &fs,
            Path::new("/k/main.conf"),
            &text,
            "n1",
            Limits::DEFAULT,
            &mut diags,
        );
        assert!(!diags.has_errors(), "{diags:?}");
        assert_eq!(texts(&lines), ["in_a n1", "after one"]);
        let lines = expand_with_limits(
            &fs,
            Path::new("/k/main.conf"),
            &text,
            "n2",
            Limits::DEFAULT,
            &mut diags,
        );
        assert_eq!(texts(&lines), ["in_a n2", "after other"]);
        // Tokens from a definition point at the reference.
        assert_eq!(lines[1][1].position.to_string(), "/k/main.conf:3:7");
    }
}
