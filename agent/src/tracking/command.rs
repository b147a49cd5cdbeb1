//! Splitting a script command line the way keepalived does.
//!
//! keepalived never hands a `script`/`notify*` string to a shell: it splits the
//! string into words itself and `execve`s the first one (searching `PATH` when
//! it has no `/`). Words are separated by unquoted whitespace; `'…'` and `"…"`
//! group text (the quote characters are removed and may join with adjacent
//! text, so `ab"c d"e` is the single word `abc de`); backslash escapes work as
//! in keepalived.conf (`\n`, `\t`, `\x41`, `\101`, `\cA`, `\\`, `\"`…). A shell
//! is only involved when the operator asks for one (`/bin/sh -c '…'`), or for
//! keepalived's special case of a command starting with `<` or `>` (a bare
//! redirection such as `</dev/tcp/…` used to test that a file opens), which
//! keepalived runs through `system()`; we run it through `/bin/sh -c`.
//!
//! The config parses each command once, when the file is read
//! (`config::model::Command` holds the result); the daemon runs that value.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use thiserror::Error;

/// What was wrong with a command line, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandLineError {
    #[error(
        "script command is empty: expected a program path, e.g. \"/etc/keepalived/check.sh arg\""
    )]
    Empty,
    #[error(
        "script command `{line}` has an unterminated {quote} quote starting at byte {offset}: close it with a matching {quote}"
    )]
    UnterminatedQuote {
        line: String,
        quote: char,
        offset: usize,
    },
    #[error("script command `{line}` ends with a lone backslash: escape it as \\\\ or remove it")]
    TrailingBackslash { line: String },
}

/// How a command is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `execve(argv[0], argv)`: the normal case.
    Direct { argv: Vec<OsString> },
    /// keepalived's `system()` special case for commands starting with `<`/`>`:
    /// the original text, run as `/bin/sh -c TEXT`.
    Shell { text: String },
}

/// A parsed `script`/`notify*` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    source: String,
    invocation: Invocation,
}

impl CommandLine {
    /// Parses the value of a `script`/`notify*` keyword as the config tokenizer
    /// delivers it: the outer quotes of a quoted value already removed
    /// (`/etc/keepalived/notification.sh master`), any `username [groupname]`
    /// that followed it passed separately.
    pub fn parse(line: &str) -> Result<Self, CommandLineError> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Err(CommandLineError::Empty);
        }
        if trimmed.starts_with('<') || trimmed.starts_with('>') {
            return Ok(Self {
                source: line.to_owned(),
                invocation: Invocation::Shell {
                    text: trimmed.to_owned(),
                },
            });
        }
        let argv = split_words(line)?;
        if argv.is_empty() {
            return Err(CommandLineError::Empty);
        }
        Ok(Self {
            source: line.to_owned(),
            invocation: Invocation::Direct { argv },
        })
    }

    /// The text this was parsed from, for logs.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// The program and arguments to run, with `extra` appended (the generic
    /// `notify` script's trailing arguments).
    pub fn argv_with(&self, extra: &[String]) -> Vec<OsString> {
        match &self.invocation {
            Invocation::Direct { argv } => argv
                .iter()
                .cloned()
                .chain(extra.iter().map(OsString::from))
                .collect(),
            Invocation::Shell { text } => {
                let mut script = text.clone();
                for arg in extra {
                    script.push(' ');
                    script.push_str(&shell_quote(arg));
                }
                vec!["/bin/sh".into(), "-c".into(), script.into()]
            }
        }
    }
}

/// Single-quotes `arg` for `/bin/sh`, so an appended argument is one word.
fn shell_quote(arg: &str) -> String {
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

fn split_words(line: &str) -> Result<Vec<OsString>, CommandLineError> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quote: Option<(u8, usize)> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (quote, b) {
            (Some((q, _)), _) if b == q => {
                quote = None;
                i += 1;
            }
            (None, b'\'' | b'"') => {
                quote = Some((b, i));
                in_word = true;
                i += 1;
            }
            (None, b' ' | b'\t' | b'\n' | b'\r') => {
                if in_word {
                    words.push(OsString::from_vec(std::mem::take(&mut current)));
                    in_word = false;
                }
                i += 1;
            }
            (_, b'\\') => {
                let (decoded, used) = decode_escape(&bytes[i + 1..]).ok_or_else(|| {
                    CommandLineError::TrailingBackslash {
                        line: line.to_owned(),
                    }
                })?;
                current.extend_from_slice(&decoded);
                in_word = true;
                i += 1 + used;
            }
            _ => {
                current.push(b);
                in_word = true;
                i += 1;
            }
        }
    }
    if let Some((q, offset)) = quote {
        return Err(CommandLineError::UnterminatedQuote {
            line: line.to_owned(),
            quote: char::from(q),
            offset,
        });
    }
    if in_word {
        words.push(OsString::from_vec(current));
    }
    Ok(words)
}

/// Decodes the escape after a backslash; returns the bytes it stands for and
/// how many input bytes it used, or `None` when nothing follows the backslash.
fn decode_escape(rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    let first = *rest.first()?;
    let simple = |b: u8| Some((vec![b], 1));
    match first {
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'E' => simple(0x1b),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(0x0b),
        b'0'..=b'7' => {
            let digits = rest
                .iter()
                .take(3)
                .take_while(|d| (b'0'..=b'7').contains(*d))
                .count();
            let value = rest[..digits]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            Some((vec![(value & 0xff) as u8], digits))
        }
        b'x' => {
            let digits = rest[1..]
                .iter()
                .take(2)
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            if digits == 0 {
                return simple(b'x');
            }
            let text = std::str::from_utf8(&rest[1..1 + digits]).ok()?;
            let value = u8::from_str_radix(text, 16).ok()?;
            Some((vec![value], 1 + digits))
        }
        b'c' => match rest.get(1) {
            Some(c) => Some((vec![c.to_ascii_uppercase() ^ 0x40], 2)),
            None => simple(b'c'),
        },
        other => {
            // Keep multi-byte UTF-8 characters whole after a backslash.
            let len = utf8_len(other).min(rest.len());
            Some((rest[..len].to_vec(), len))
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        match CommandLine::parse(line).unwrap().invocation {
            Invocation::Direct { argv } => {
                argv.into_iter().map(|a| a.into_string().unwrap()).collect()
            }
            Invocation::Shell { text } => panic!("unexpected shell: {text}"),
        }
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            argv("/etc/keepalived/notification.sh   master"),
            ["/etc/keepalived/notification.sh", "master"]
        );
        assert_eq!(argv("  chk\targ1 arg2 "), ["chk", "arg1", "arg2"]);
    }

    #[test]
    fn quotes_group_and_join_adjacent_text() {
        assert_eq!(
            argv("/bin/sh -c 'pidof nginx || exit 1'"),
            ["/bin/sh", "-c", "pidof nginx || exit 1"]
        );
        assert_eq!(argv(r#"abcd" efg h jkl "mnop"#), ["abcd efg h jkl mnop"]);
        assert_eq!(argv(r#"a "it's" ''"#), ["a", "it's", ""]);
    }

    #[test]
    fn escapes_decode_like_keepalived() {
        assert_eq!(argv(r"a\ b"), ["a b"]);
        assert_eq!(argv(r"x\x41\101\cA\\\q"), ["xAA\u{1}\\q"]);
        assert_eq!(argv(r#""say \"hi\"""#), ["say \"hi\""]);
        assert_eq!(argv(r"t\tn\n"), ["t\tn\n"]);
    }

    #[test]
    fn redirection_runs_through_the_shell() {
        let cmd = CommandLine::parse("</dev/tcp/127.0.0.1/80").unwrap();
        assert_eq!(
            cmd.argv_with(&["x y".into(), "it's".into()]),
            [
                OsString::from("/bin/sh"),
                "-c".into(),
                "</dev/tcp/127.0.0.1/80 'x y' 'it'\\''s'".into()
            ]
        );
    }

    #[test]
    fn extra_arguments_are_appended() {
        let cmd = CommandLine::parse("/n.sh a").unwrap();
        assert_eq!(
            cmd.argv_with(&["INSTANCE".into(), "VI 1".into()]),
            [
                OsString::from("/n.sh"),
                "a".into(),
                "INSTANCE".into(),
                "VI 1".into()
            ]
        );
    }

    #[test]
    fn bad_lines_are_clear_errors() {
        assert_eq!(CommandLine::parse("   "), Err(CommandLineError::Empty));
        assert_eq!(CommandLine::parse("''x").map(|_| ()), Ok(()));
        let err = CommandLine::parse("/a 'b c").unwrap_err();
        assert!(matches!(
            err,
            CommandLineError::UnterminatedQuote {
                quote: '\'',
                offset: 3,
                ..
            }
        ));
        assert!(err.to_string().contains("unterminated ' quote"));
        assert!(matches!(
            CommandLine::parse("/a b\\"),
            Err(CommandLineError::TrailingBackslash { .. })
        ));
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        for line in [
            "\\",
            "\\x",
            "\\c",
            "\\0",
            "\"",
            "'\\'",
            "\\é",
            "é\\\u{1F600}",
        ] {
            let _ = CommandLine::parse(line);
        }
    }
}
