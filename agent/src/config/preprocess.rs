//! keepalived's line preprocessing (keepalived.conf(5), "ADVANCED
//! CONFIGURATION"), applied to each raw line before it is lexed and before
//! `include` is looked at, in the order keepalived applies it:
//!
//! 1. `@ID line` keeps `line` only when ID is the config id (`-i`, else the
//!    host name up to its first dot); `@^ID line` only when it is not.
//! 2. `$NAME=value` defines NAME (a value ending in `\` continues on the
//!    following lines: a multi-line definition). Definitions are global and
//!    may be redefined; a later file sees those of earlier ones.
//! 3. `~SEQ(VAR, [[start,] step,] end) text` (and `~SEQx`, hexadecimal)
//!    processes `text` once per value with `$VAR` set to it; `~LST(VAR, v1,
//!    v2, ...)` and `~LST({VAR1, VAR2}, {v1, v2}, ...)` once per listed value
//!    (set).
//! 4. `$NAME` (ended by whitespace, `,`, `)` or the line) and `${NAME}` are
//!    replaced by their value, again and again until none is left; a
//!    multi-line definition must end its line and its further lines follow
//!    it. keepalived's predefined `${_PWD}`, `${_INSTANCE}`,
//!    `${_RANDOM [MIN [MAX]]}`, `${_ENV NAME}`, `${_HASH}`, `${_BANG}` exist.
//!
//! Where we are stricter than keepalived: keepalived leaves a `$NAME` it does
//! not know in the text, so a typo becomes a value like `$PRIORTY`. Outside
//! quotes that is an error here (located at the `$`); inside quotes (a script
//! command with shell variables) it stays literal, as keepalived keeps it.
//!
//! Every output character remembers the column it came from (text from a
//! definition: the column of its `$`), so later errors still point into the
//! file.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::Path;
use std::sync::Arc;

use super::diagnostic::{Diagnostics, Position};

/// How deep `~SEQ` and multi-line expansions may nest (keepalived has no
/// limit; a finite one turns a definition that expands itself into an error).
const MAX_DEPTH: usize = 32;
/// How many substitutions one line may take.
const MAX_SUBSTITUTIONS: usize = 1_000;
/// How long a line may grow through substitution, in characters.
const MAX_LINE_CHARS: usize = 64 * 1024;

/// One line ready for the lexer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logical {
    pub line: u32,
    pub text: String,
    /// The 1-based source column of each character of `text`.
    pub columns: Vec<u32>,
}

#[derive(Debug, Clone)]
enum Value {
    Line(String),
    Lines(Vec<String>),
}

/// Where the line being processed comes from.
pub struct Source<'a> {
    pub file: &'a Arc<str>,
    /// The directory of `file` (`${_PWD}`).
    pub dir: &'a Path,
    pub line: u32,
}

impl Source<'_> {
    fn at(&self, column: u32) -> Position {
        Position::new(self.file.clone(), self.line, column)
    }
}

pub struct Preprocessor {
    config_id: String,
    definitions: HashMap<String, Value>,
    /// The multi-line definition whose further lines are being read.
    collecting: Option<String>,
    /// Output lines left before the configuration is too large.
    budget: usize,
    exhausted: bool,
    random: std::collections::hash_map::RandomState,
    random_draws: u64,
}

/// Text with the source column of each character.
#[derive(Debug, Clone, Default)]
struct Mapped {
    chars: Vec<char>,
    columns: Vec<u32>,
}

impl Mapped {
    fn starts_with(&self, prefix: &str) -> bool {
        let mut it = self.chars.iter();
        prefix.chars().all(|p| it.next() == Some(&p))
    }

    fn slice(&self, from: usize) -> Mapped {
        Mapped {
            chars: self.chars.get(from..).unwrap_or_default().to_vec(),
            columns: self.columns.get(from..).unwrap_or_default().to_vec(),
        }
    }

    fn trim_start(&self) -> Mapped {
        let skip = self.chars.iter().take_while(|c| is_blank(**c)).count();
        self.slice(skip)
    }

    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn column(&self, index: usize) -> u32 {
        self.columns
            .get(index)
            .or(self.columns.last())
            .copied()
            .unwrap_or(1)
    }

    fn uniform(text: &str, column: u32) -> Mapped {
        let chars: Vec<char> = text.chars().collect();
        let columns = vec![column; chars.len()];
        Mapped { chars, columns }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The line without its comment (`!` or `#` outside quotes) and without
/// surrounding whitespace; quotes and escapes as the lexer reads them.
fn decomment(raw: &str) -> Mapped {
    let mut out = Mapped::default();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in raw.chars().enumerate() {
        if c == '\r' || c == '\n' {
            continue;
        }
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == '!' || c == '#' {
                    break;
                }
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
        out.chars.push(c);
        out.columns
            .push(u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX));
    }
    let end = out.chars.iter().rposition(|c| !c.is_whitespace());
    let keep = end.map_or(0, |e| e + 1);
    out.chars.truncate(keep);
    out.columns.truncate(keep);
    let start = out.chars.iter().take_while(|c| c.is_whitespace()).count();
    out.slice(start)
}

/// A `$` reference found in text.
struct Reference {
    name: String,
    params: Vec<String>,
    /// Index just after the reference.
    end: usize,
}

enum Scan {
    /// Not a reference at all (`$1`, a lone `$`).
    None,
    Found(Reference),
    /// `$NAME` followed by something other than whitespace, `,`, `)` or the
    /// end of the line (keepalived does not replace it).
    Unterminated(String),
    /// `${` without a well-formed closing `}`.
    Malformed,
}

fn scan_reference(chars: &[char], at: usize) -> Scan {
    let braced = chars.get(at + 1) == Some(&'{');
    let start = at + if braced { 2 } else { 1 };
    if !chars.get(start).is_some_and(|c| is_name_start(*c)) {
        return if braced { Scan::Malformed } else { Scan::None };
    }
    let mut i = start;
    while chars.get(i).is_some_and(|c| is_name_char(*c)) {
        i += 1;
    }
    let name: String = chars.get(start..i).unwrap_or_default().iter().collect();
    if !braced {
        return match chars.get(i) {
            None | Some(' ' | '\t' | ',' | ')') => Scan::Found(Reference {
                name,
                params: Vec::new(),
                end: i,
            }),
            Some(_) => Scan::Unterminated(name),
        };
    }
    let params_start = i;
    while chars
        .get(i)
        .is_some_and(|c| is_blank(*c) || is_name_char(*c))
    {
        i += 1;
    }
    if chars.get(i) != Some(&'}') {
        return Scan::Malformed;
    }
    let params_text: String = chars
        .get(params_start..i)
        .unwrap_or_default()
        .iter()
        .collect();
    // keepalived: parameters follow the name after whitespace and do not
    // end with whitespace.
    if params_text.ends_with(is_blank) && !params_text.trim().is_empty()
        || (!params_text.is_empty() && !params_text.starts_with(is_blank))
    {
        return Scan::Malformed;
    }
    Scan::Found(Reference {
        name,
        params: params_text.split_whitespace().map(str::to_owned).collect(),
        end: i + 1,
    })
}

/// What a reference resolves to.
enum Resolved {
    Text(String),
    Lines(Vec<String>),
    Undefined,
    /// Known, but not usable like this; the message says why.
    Misused(String),
}

/// keepalived's `strtol(s, _, 0)` on a whole field: sign, `0x` hex, leading
/// `0` octal, else decimal.
fn parse_c_long(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -value } else { value })
}

/// A parsed `~SEQ(...)`.
struct Sequence {
    var: String,
    start: i64,
    step: i64,
    end: i64,
    hex: bool,
    /// Index of the text after `)`.
    rest: usize,
}

impl Preprocessor {
    pub fn new(config_id: &str, max_lines: usize) -> Self {
        Self {
            config_id: config_id.to_owned(),
            definitions: HashMap::new(),
            collecting: None,
            budget: max_lines,
            exhausted: false,
            random: std::collections::hash_map::RandomState::new(),
            random_draws: 0,
        }
    }

    /// How many more lines [`Self::feed`] may produce before the
    /// configuration is too large.
    pub fn set_budget(&mut self, lines: usize) {
        self.budget = lines;
    }

    /// Processes one raw line of a file, appending what the lexer should
    /// read (none, one or many lines) to `out`.
    pub fn feed(
        &mut self,
        source: &Source<'_>,
        raw: &str,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        if self.exhausted {
            return;
        }
        // The common line has nothing for us: lex it as it is.
        if self.collecting.is_none()
            && !raw.contains('$')
            && !matches!(raw.trim_start().chars().next(), Some('@' | '~'))
        {
            self.emit_raw(source, raw, diags, out);
            return;
        }
        let text = decomment(raw);
        if let Some(name) = self.collecting.clone() {
            self.continue_definition(&name, raw, &text);
            return;
        }
        self.process(source, text, 0, diags, out);
    }

    fn emit_raw(
        &mut self,
        source: &Source<'_>,
        raw: &str,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        let chars = raw.chars().count();
        let columns = (1..=u32::try_from(chars).unwrap_or(u32::MAX)).collect();
        self.emit(
            source,
            Logical {
                line: source.line,
                text: raw.to_owned(),
                columns,
            },
            diags,
            out,
        );
    }

    fn emit(
        &mut self,
        source: &Source<'_>,
        line: Logical,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        if self.exhausted {
            return;
        }
        if self.budget == 0 {
            self.exhausted = true;
            diags.error(
                &source.at(line.columns.first().copied().unwrap_or(1)),
                "the configuration expands (~SEQ, definitions, includes) to too many lines; expected a smaller configuration",
            );
            return;
        }
        self.budget -= 1;
        out.push(line);
    }

    fn continue_definition(&mut self, name: &str, raw: &str, text: &Mapped) {
        if raw.trim().is_empty() {
            // A blank line ends a multi-line definition, as in keepalived.
            self.collecting = None;
            return;
        }
        if text.chars.is_empty() {
            // A comment-only line inside a definition is skipped.
            return;
        }
        let mut line = text.text();
        let continues = line.ends_with('\\');
        if continues {
            line.pop();
            line.truncate(line.trim_end_matches(is_blank).len());
        } else {
            self.collecting = None;
        }
        if !line.is_empty()
            && let Some(Value::Lines(lines)) = self.definitions.get_mut(name)
        {
            lines.push(line);
        }
    }

    fn process(
        &mut self,
        source: &Source<'_>,
        mut text: Mapped,
        depth: usize,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        if text.chars.is_empty() || self.exhausted {
            return;
        }
        if depth > MAX_DEPTH {
            diags.error(
                &source.at(text.column(0)),
                format!(
                    "~SEQ and multi-line definitions nest deeper than {MAX_DEPTH} levels here; expected a definition that does not expand itself"
                ),
            );
            return;
        }
        if text.starts_with("@") {
            match self.condition(&text) {
                Some(rest) => text = rest,
                None => return,
            }
        }
        if text.starts_with("$") && self.define(&text) {
            return;
        }
        if text.starts_with("~SEQ") {
            self.sequence(source, &text, depth, diags, out);
            return;
        }
        if text.starts_with("~LST") {
            self.list(source, &text, depth, diags, out);
            return;
        }
        if text.starts_with("~") {
            // keepalived substitutes nothing in other `~` lines either.
            self.emit_mapped(source, &text, diags, out);
            return;
        }
        let Some((line, pending)) = self.substitute(source, &text, diags) else {
            return;
        };
        let changed = line.chars != text.chars;
        // A definition may produce a conditional or a sequence line
        // (keepalived.conf(5): `$IF_MAIN=@main`).
        if changed && (line.starts_with("@") || line.starts_with("~SEQ")) {
            self.process(source, line, depth + 1, diags, out);
        } else {
            self.emit_mapped(source, &line, diags, out);
        }
        for (pending_line, column) in pending {
            let mapped = Mapped::uniform(&pending_line, column);
            self.process(source, mapped.trim_start(), depth + 1, diags, out);
        }
    }

    fn emit_mapped(
        &mut self,
        source: &Source<'_>,
        text: &Mapped,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        if text.chars.is_empty() {
            return;
        }
        self.emit(
            source,
            Logical {
                line: source.line,
                text: text.text(),
                columns: text.columns.clone(),
            },
            diags,
            out,
        );
    }

    /// The line after its `@ID` / `@^ID` prefix when it applies here.
    fn condition(&self, text: &Mapped) -> Option<Mapped> {
        let negated = text.chars.get(1) == Some(&'^');
        let id_start = if negated { 2 } else { 1 };
        // A condition with nothing after it is dropped, as keepalived does.
        let id_end = id_start
            + text
                .chars
                .get(id_start..)?
                .iter()
                .position(|c| is_blank(*c))?;
        let id: String = text.chars.get(id_start..id_end)?.iter().collect();
        if (id == self.config_id) == negated {
            return None;
        }
        Some(text.slice(id_end).trim_start())
    }

    /// Records `$NAME=value`; false when the line is not a definition.
    fn define(&mut self, text: &Mapped) -> bool {
        let chars = &text.chars;
        if !chars.get(1).is_some_and(|c| is_name_start(*c)) {
            return false;
        }
        let mut i = 2;
        while chars.get(i).is_some_and(|c| is_name_char(*c)) {
            i += 1;
        }
        // keepalived: no space before `=`.
        if chars.get(i) != Some(&'=') {
            return false;
        }
        let name: String = chars.get(1..i).unwrap_or_default().iter().collect();
        let mut value = text.slice(i + 1).trim_start().text();
        if value.ends_with('\\') {
            value.pop();
            value.truncate(value.trim_end_matches(is_blank).len());
            let lines = if value.is_empty() {
                Vec::new()
            } else {
                vec![value]
            };
            self.definitions.insert(name.clone(), Value::Lines(lines));
            self.collecting = Some(name);
        } else {
            self.definitions.insert(name, Value::Line(value));
        }
        true
    }

    fn resolve(&mut self, source: &Source<'_>, reference: &Reference, ends_line: bool) -> Resolved {
        let name = reference.name.as_str();
        if let Some(value) = self.definitions.get(name) {
            if !reference.params.is_empty() {
                return Resolved::Misused(format!(
                    "definition ${name} takes no parameters; expected ${{{name}}}"
                ));
            }
            return match value {
                Value::Line(text) => Resolved::Text(text.clone()),
                // A multi-line definition whose lines all were empty is
                // an empty one-line definition in keepalived.
                Value::Lines(lines) if lines.is_empty() => Resolved::Text(String::new()),
                Value::Lines(lines) if ends_line => Resolved::Lines(lines.clone()),
                Value::Lines(_) => Resolved::Misused(format!(
                    "${name} is a multi-line definition, which must end its line; expected nothing after it"
                )),
            };
        }
        let params = &reference.params;
        let no_params = |value: String| {
            if params.is_empty() {
                Resolved::Text(value)
            } else {
                Resolved::Misused(format!("${{{name}}} takes no parameters"))
            }
        };
        match name {
            "_PWD" => no_params(
                std::path::absolute(source.dir)
                    .unwrap_or_else(|_| source.dir.to_path_buf())
                    .display()
                    .to_string(),
            ),
            "_INSTANCE" => no_params(self.config_id.clone()),
            "_HASH" => no_params("#".to_owned()),
            "_BANG" => no_params("!".to_owned()),
            "_ENV" => match params.as_slice() {
                [variable] => Resolved::Text(std::env::var(variable).unwrap_or_default()),
                _ => Resolved::Misused(
                    "${_ENV} takes one parameter; expected ${_ENV NAME}".to_owned(),
                ),
            },
            "_RANDOM" => self.random(params),
            _ => Resolved::Undefined,
        }
    }

    fn random(&mut self, params: &[String]) -> Resolved {
        let numbers: Option<Vec<u64>> = params
            .iter()
            .map(|p| {
                p.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| p.parse::<u64>().ok())
                    .flatten()
            })
            .collect();
        let (min, max) = match numbers.as_deref() {
            Some([]) => (0, 32_767),
            Some([min]) => (*min, 32_767),
            Some([min, max]) => (*min, *max),
            _ => {
                return Resolved::Misused(
                    "${_RANDOM} takes up to two non-negative integers; expected ${_RANDOM [MIN [MAX]]}"
                        .to_owned(),
                );
            }
        };
        if min > max {
            return Resolved::Misused(format!(
                "${{_RANDOM {min} {max}}}: MIN is larger than MAX; expected MIN <= MAX"
            ));
        }
        self.random_draws = self.random_draws.wrapping_add(1);
        let mut hasher = self.random.build_hasher();
        hasher.write_u64(self.random_draws);
        let span = max - min;
        let value = if span == u64::MAX {
            hasher.finish()
        } else {
            min + hasher.finish() % (span + 1)
        };
        Resolved::Text(value.to_string())
    }

    /// Replaces every reference in `text`. Returns the line and the further
    /// lines of a multi-line definition that ended it (with the column of
    /// its `$`), or `None` after an error that leaves no usable line.
    #[allow(clippy::type_complexity)]
    fn substitute(
        &mut self,
        source: &Source<'_>,
        text: &Mapped,
        diags: &mut Diagnostics,
    ) -> Option<(Mapped, Vec<(String, u32)>)> {
        let mut line = text.clone();
        let mut pending: Vec<(String, u32)> = Vec::new();
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut substitutions = 0usize;
        let mut i = 0usize;
        while let Some(&c) = line.chars.get(i) {
            if let Some(q) = quote {
                let was_escaped = escaped;
                escaped = false;
                if was_escaped {
                    // `\$` in quotes is a literal dollar for the lexer.
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                if c != '$' || was_escaped {
                    i += 1;
                    continue;
                }
            } else if c == '"' || c == '\'' {
                quote = Some(c);
                i += 1;
                continue;
            } else if c != '$' {
                i += 1;
                continue;
            }
            let at = source.at(line.column(i));
            let quoted = quote.is_some();
            let reference = match scan_reference(&line.chars, i) {
                Scan::None => {
                    i += 1;
                    continue;
                }
                Scan::Found(reference) => reference,
                Scan::Unterminated(name) => {
                    let known = self.definitions.contains_key(&name);
                    if known || !quoted {
                        diags.error(
                            &at,
                            format!(
                                "${name} is followed by text; expected ${{{name}}} (a bare $NAME ends at whitespace, ',', ')' or the line)"
                            ),
                        );
                    }
                    i += 1;
                    continue;
                }
                Scan::Malformed => {
                    if !quoted {
                        diags.error(
                            &at,
                            "malformed ${...} reference; expected ${NAME} or ${NAME PARAM...}",
                        );
                    }
                    i += 1;
                    continue;
                }
            };
            let ends_line = reference.end == line.chars.len();
            let replacement = match self.resolve(source, &reference, ends_line) {
                Resolved::Text(value) => value,
                Resolved::Lines(lines) => {
                    let mut rest = lines.into_iter();
                    let first = rest.next().unwrap_or_default();
                    // Lines of a definition nested in this one come before
                    // the rest of this one.
                    let column = line.column(i);
                    let mut more: Vec<(String, u32)> = rest.map(|l| (l, column)).collect();
                    more.append(&mut pending);
                    pending = more;
                    first
                }
                Resolved::Undefined => {
                    if !quoted {
                        diags.error(
                            &at,
                            format!(
                                "${} is not defined; expected a definition `${}=VALUE` on an earlier line",
                                reference.name, reference.name
                            ),
                        );
                    }
                    i += 1;
                    continue;
                }
                Resolved::Misused(message) => {
                    diags.error(&at, message);
                    i += 1;
                    continue;
                }
            };
            substitutions += 1;
            let column = line.column(i);
            let inserted: Vec<char> = replacement.chars().collect();
            let count = inserted.len();
            line.chars.splice(i..reference.end, inserted);
            line.columns
                .splice(i..reference.end, std::iter::repeat_n(column, count));
            if substitutions > MAX_SUBSTITUTIONS || line.chars.len() > MAX_LINE_CHARS {
                diags.error(
                    &at,
                    format!(
                        "definitions keep expanding on this line (more than {MAX_SUBSTITUTIONS} substitutions or {MAX_LINE_CHARS} characters); expected a definition that does not contain itself"
                    ),
                );
                return None;
            }
            // The value is read again: it may hold further references.
        }
        Some((line, pending))
    }

    fn sequence(
        &mut self,
        source: &Source<'_>,
        text: &Mapped,
        depth: usize,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        let at = source.at(text.column(0));
        let sequence = match self.parse_sequence(source, text, diags) {
            Ok(sequence) => sequence,
            Err(message) => {
                diags.error(
                    &at,
                    format!(
                        "{message}; expected ~SEQ(VAR, END), ~SEQ(VAR, START, END) or ~SEQ(VAR, START, STEP, END) followed by the line to repeat"
                    ),
                );
                return;
            }
        };
        let body = text.slice(sequence.rest).trim_start();
        let mut value = sequence.start;
        loop {
            if self.exhausted {
                return;
            }
            let rendered = if sequence.hex {
                format!("{value:x}")
            } else {
                value.to_string()
            };
            self.definitions
                .insert(sequence.var.clone(), Value::Line(rendered));
            self.process(source, body.clone(), depth + 1, diags, out);
            let Some(next) = value.checked_add(sequence.step) else {
                return;
            };
            value = next;
            if (sequence.step > 0 && value > sequence.end)
                || (sequence.step < 0 && value < sequence.end)
            {
                return;
            }
        }
    }

    fn list(
        &mut self,
        source: &Source<'_>,
        text: &Mapped,
        depth: usize,
        diags: &mut Diagnostics,
        out: &mut Vec<Logical>,
    ) {
        let (names, sets, rest) = match parse_list(&text.chars) {
            Ok(parsed) => parsed,
            Err(message) => {
                diags.error(
                    &source.at(text.column(0)),
                    format!(
                        "{message}; expected ~LST(VAR, V1, V2, ...) or ~LST({{VAR1, VAR2}}, {{V1, V2}}, ...) followed by the line to repeat"
                    ),
                );
                return;
            }
        };
        let body = text.slice(rest).trim_start();
        for set in sets {
            if self.exhausted {
                return;
            }
            for (name, value) in names.iter().zip(set) {
                self.definitions.insert(name.clone(), Value::Line(value));
            }
            self.process(source, body.clone(), depth + 1, diags, out);
        }
    }

    fn parse_sequence(
        &mut self,
        source: &Source<'_>,
        text: &Mapped,
        diags: &mut Diagnostics,
    ) -> Result<Sequence, String> {
        let chars = &text.chars;
        let mut i = 4;
        let hex = chars.get(i) == Some(&'x');
        if hex {
            i += 1;
        }
        while chars.get(i).is_some_and(|c| is_blank(*c)) {
            i += 1;
        }
        if chars.get(i) != Some(&'(') {
            return Err("~SEQ needs '(' after it".to_owned());
        }
        let close = chars
            .iter()
            .skip(i)
            .position(|c| *c == ')')
            .map(|p| p + i)
            .ok_or_else(|| "~SEQ is missing its closing ')'".to_owned())?;
        let inside = text.slice(i + 1);
        let inside = Mapped {
            chars: inside
                .chars
                .get(..close - i - 1)
                .unwrap_or_default()
                .to_vec(),
            columns: inside
                .columns
                .get(..close - i - 1)
                .unwrap_or_default()
                .to_vec(),
        };
        let inside_text = inside.text();
        let comma = inside_text
            .find(',')
            .ok_or_else(|| "~SEQ needs a variable and at least an end value".to_owned())?;
        let var = inside_text[..comma].trim().to_owned();
        if !var.starts_with(is_name_start) || !var.chars().all(is_name_char) {
            return Err(format!(
                "~SEQ variable \"{var}\" is not a name (letters, digits, '_', not starting with a digit)"
            ));
        }
        // The numbers may be definitions themselves.
        let numbers_mapped = inside.slice(inside_text[..=comma].chars().count());
        let (numbers_line, pending) = self
            .substitute(source, &numbers_mapped, diags)
            .ok_or_else(|| "~SEQ parameters do not expand".to_owned())?;
        if !pending.is_empty() {
            return Err("~SEQ parameter is a multi-line definition".to_owned());
        }
        let numbers_text = numbers_line.text();
        let values: Vec<i64> = numbers_text
            .split(',')
            .map(|n| {
                parse_c_long(n).ok_or_else(|| {
                    format!(
                        "~SEQ value \"{}\" is not an integer (decimal, 0x hex or 0 octal)",
                        n.trim()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let (start, step, end) = match values.as_slice() {
            [end] => (
                if *end < 0 { -1 } else { 1 },
                if *end < 1 { -1 } else { 1 },
                *end,
            ),
            [start, end] => (*start, if start <= end { 1 } else { -1 }, *end),
            [start, step, end] => {
                if *step == 0 || (start < end && *step < 0) || (start > end && *step > 0) {
                    return Err(format!("~SEQ step {step} never gets from {start} to {end}"));
                }
                (*start, *step, *end)
            }
            _ => return Err("~SEQ takes one to three values after the variable".to_owned()),
        };
        if hex && (start < 0 || end < 0) {
            return Err("~SEQx takes only non-negative values".to_owned());
        }
        Ok(Sequence {
            var,
            start,
            step,
            end,
            hex,
            rest: close + 1,
        })
    }
}

/// Variables, value sets (missing values blank) and the index of the text
/// after `)` of a `~LST(...)` line.
#[allow(clippy::type_complexity)]
fn parse_list(chars: &[char]) -> Result<(Vec<String>, Vec<Vec<String>>, usize), String> {
    let mut i = 4;
    let skip_blanks = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| is_blank(*c)) {
            *i += 1;
        }
    };
    // One item, or a `{a, b}` group of them.
    let group = |i: &mut usize| -> Result<Vec<String>, String> {
        skip_blanks(i);
        let braced = chars.get(*i) == Some(&'{');
        if braced {
            *i += 1;
        }
        let mut items = Vec::new();
        loop {
            skip_blanks(i);
            let start = *i;
            while chars
                .get(*i)
                .is_some_and(|c| !is_blank(*c) && !matches!(c, ',' | '}' | ')' | '{'))
            {
                *i += 1;
            }
            items.push(chars.get(start..*i).unwrap_or_default().iter().collect());
            skip_blanks(i);
            match chars.get(*i) {
                Some(',') if braced => *i += 1,
                Some('}') if braced => {
                    *i += 1;
                    return Ok(items);
                }
                _ if braced => return Err("~LST group is missing its closing '}'".to_owned()),
                _ => return Ok(items),
            }
        }
    };
    skip_blanks(&mut i);
    if chars.get(i) != Some(&'(') {
        return Err("~LST needs '(' after it".to_owned());
    }
    i += 1;
    let names = group(&mut i)?;
    if let Some(bad) = names
        .iter()
        .find(|n| !n.starts_with(is_name_start) || !n.chars().all(is_name_char))
    {
        return Err(format!("~LST variable \"{bad}\" is not a name"));
    }
    let mut sets = Vec::new();
    loop {
        skip_blanks(&mut i);
        match chars.get(i) {
            Some(',') => i += 1,
            Some(')') if !sets.is_empty() => return Ok((names, sets, i + 1)),
            Some(')') => return Err("~LST has no values".to_owned()),
            _ => return Err("~LST is missing ',' or its closing ')'".to_owned()),
        }
        let mut set = group(&mut i)?;
        if set.len() > names.len() {
            return Err(format!(
                "~LST value set {{{}}} has more values than the {} variables",
                set.join(", "),
                names.len()
            ));
        }
        set.resize(names.len(), String::new());
        sets.push(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_as(id: &str, text: &str) -> (Vec<String>, Vec<String>) {
        let file: Arc<str> = Arc::from("pp.conf");
        let mut pre = Preprocessor::new(id, 1000);
        let mut diags = Diagnostics::default();
        let mut out = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let source = Source {
                file: &file,
                dir: Path::new("/etc/keepalived"),
                line: u32::try_from(index + 1).unwrap_or(0),
            };
            pre.feed(&source, raw, &mut diags, &mut out);
        }
        let (errors, _) = diags.split();
        (
            out.into_iter().map(|l| l.text).collect(),
            errors.iter().map(ToString::to_string).collect(),
        )
    }

    fn run(text: &str) -> Vec<String> {
        let (lines, errors) = run_as("main", text);
        assert!(errors.is_empty(), "{errors:?}");
        lines
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@main router_id a\n@backup router_id b\n@^main priority 1\n@^backup priority 2\n@main\n";
        assert_eq!(run_as("main", text).0, ["router_id a", "priority 2"]);
        assert_eq!(run_as("backup", text).0, ["router_id b", "priority 1"]);
        assert_eq!(run_as("other", text).0, ["priority 1", "priority 2"]);
    }

    #[test]
    fn definitions_are_replaced_when_used_not_when_defined() {
        let text =
            "$BASE=10.2.${SUB}\n$SUB=0\n${BASE}.100/32\n$SUB=10\n${BASE}.100/32\npriority $P\n";
        let (lines, errors) = run_as("main", &format!("$P=5\n{text}"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(lines, ["10.2.0.100/32", "10.2.10.100/32", "priority 5"]);
    }

    #[test]
    fn conditional_definitions_and_a_definition_that_is_a_condition() {
        let text = "@main $PRIO=240\n@backup $PRIO=200\npriority $PRIO\n$IF_MAIN=@main\n$IF_MAIN advert_int 2\n";
        assert_eq!(run_as("main", text).0, ["priority 240", "advert_int 2"]);
        assert_eq!(run_as("backup", text).0, ["priority 200"]);
    }

    #[test]
    fn multi_line_definitions_expand_to_their_lines_with_conditions_applied() {
        let text = "$INST= \\\nvrrp_instance VI_${NUM} { \\\n  @high priority 130 \\\n  @low priority 120 \\\n}\n$NUM=0\n$INST\n$NUM=1\nx $INST\n";
        let (lines, errors) = run_as("high", text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            lines,
            [
                "vrrp_instance VI_0 {",
                "priority 130",
                "}",
                "x vrrp_instance VI_1 {",
                "priority 130",
                "}"
            ]
        );
    }

    #[test]
    fn a_blank_line_ends_a_multi_line_definition() {
        let text = "$D=a \\\n\nb\n$D\n";
        assert_eq!(run(text), ["b", "a"]);
    }

    #[test]
    fn multi_line_definitions_nest() {
        let text = "$IN=x \\\ny\n$OUT=a \\\n$IN \\\nb\n$OUT\n";
        assert_eq!(run(text), ["a", "x", "y", "b"]);
    }

    #[test]
    fn undefined_names_outside_quotes_are_located_errors() {
        let (_, errors) = run_as("main", "priority 1\n  priority $PRIORTY\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("pp.conf:2:12: $PRIORTY is not defined"),
            "{errors:?}"
        );
        // A shell variable in a quoted command stays for the shell.
        let (lines, errors) = run_as("main", "script \"/bin/sh -c 'test -n $HOME'\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(lines, ["script \"/bin/sh -c 'test -n $HOME'\""]);
    }

    #[test]
    fn a_multi_line_definition_in_the_middle_of_a_line_is_an_error() {
        let (_, errors) = run_as("main", "$M=a \\\nb\nx $M y\n");
        assert!(errors[0].contains("must end its line"), "{errors:?}");
        let (_, errors) = run_as("main", "$N=1\nx $N.0\n");
        assert!(errors[0].contains("expected ${N}"), "{errors:?}");
    }

    #[test]
    fn self_referencing_definitions_stop_with_an_error() {
        let (lines, errors) = run_as("main", "$A=x$A \nv $A\n");
        assert!(lines.is_empty());
        assert!(errors[0].contains("keep expanding"), "{errors:?}");
    }

    #[test]
    fn predefined_definitions() {
        let (lines, errors) = run_as(
            "node1",
            "a ${_INSTANCE} ${_PWD}\nb \"${_HASH}${_BANG}\"\nc ${_RANDOM 5 5}\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(lines, ["a node1 /etc/keepalived", "b \"#!\"", "c 5"]);
    }

    #[test]
    fn sequences_in_all_their_forms() {
        assert_eq!(run("~SEQ(S, 0, 3) ip 10.0.${S}.1\n").len(), 4);
        assert_eq!(run("~SEQ(S, 0, 3) ip 10.0.${S}.1\n")[3], "ip 10.0.3.1");
        assert_eq!(run("~SEQ(S, 3) v $S\n"), ["v 1", "v 2", "v 3"]);
        assert_eq!(run("~SEQ(S, 3, 1) v $S\n"), ["v 3", "v 2", "v 1"]);
        assert_eq!(run("~SEQ(S, 1, 2, 6) v $S\n"), ["v 1", "v 3", "v 5"]);
        assert_eq!(
            run("~SEQx(S, 0x90, 0x10, 0xc0) fe80::${S}:1\n"),
            ["fe80::90:1", "fe80::a0:1", "fe80::b0:1", "fe80::c0:1"]
        );
        assert_eq!(
            run("$N=2\n~SEQ(A, 1, $N) ~SEQ(B, 0, 1) ${A}.${B}\n"),
            ["1.0", "1.1", "2.0", "2.1"]
        );
    }

    #[test]
    fn lists_in_keepalived_s_forms() {
        assert_eq!(run("~LST(IP, 1, 2, 3) v ${IP}\n"), ["v 1", "v 2", "v 3"]);
        assert_eq!(
            run("~LST({IP, IP1}, {10,1},{20,4}, {5}) 192.168.${IP}.${IP1}x\n"),
            ["192.168.10.1x", "192.168.20.4x", "192.168.5.x"]
        );
        assert_eq!(
            run("~LST(A, 1, 2) ~SEQ(B, 7, 8) ${A}.${B}\n"),
            ["1.7", "1.8", "2.7", "2.8"]
        );
        for bad in [
            "~LST(A) x",
            "~LST({A, B}, {1, 2, 3}) x",
            "~LST(A, 1 x",
            "~LST(1A, 2) x",
        ] {
            let (lines, errors) = run_as("main", &format!("{bad}\n"));
            assert!(lines.is_empty(), "{bad}");
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert!(
                errors[0].starts_with("pp.conf:1:1: ~LST"),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn bad_sequences_are_located_errors() {
        for bad in [
            "~SEQ(S, 1, -1, 5) x",
            "~SEQ(S) x",
            "~SEQ S, 1) x",
            "~SEQ(S, 1, 2",
            "~SEQx(S, -1, 2) x",
            "~SEQ(S, one) x",
        ] {
            let (lines, errors) = run_as("main", &format!("  {bad}\n"));
            assert!(lines.is_empty(), "{bad}");
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert!(errors[0].starts_with("pp.conf:1:3: "), "{errors:?}");
        }
    }

    #[test]
    fn a_huge_sequence_stops_at_the_line_budget() {
        let (lines, errors) = run_as("main", "~SEQ(S, 1, 100000000) v $S\n");
        assert_eq!(lines.len(), 1000);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn columns_point_into_the_source_line() {
        let file: Arc<str> = Arc::from("pp.conf");
        let mut pre = Preprocessor::new("main", 10);
        let mut diags = Diagnostics::default();
        let mut out = Vec::new();
        let source = Source {
            file: &file,
            dir: Path::new("."),
            line: 3,
        };
        pre.feed(&source, "$V=abc", &mut diags, &mut out);
        pre.feed(&source, "  @main x ${V} y # c", &mut diags, &mut out);
        assert_eq!(out[0].text, "x abc y");
        assert_eq!(out[0].columns, [9, 10, 11, 11, 11, 15, 16]);
    }
}
