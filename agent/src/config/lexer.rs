//! Splits keepalived.conf text into tokens, one line at a time.
//!
//! keepalived's syntax is line-oriented: a statement never spans lines, so
//! the lexer hands back each non-empty line as its own token list. Comments
//! (`!` or `#`) start anywhere outside quotes and run to the end of the line.
//! Quoting follows the shell: `"` or `'` group text including whitespace, and
//! quoted and unquoted parts touching each other form one word.

use std::sync::Arc;

use super::diagnostic::{Diagnostics, Position};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Word,
    OpenBrace,
    CloseBrace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// The word with quotes removed and escapes resolved.
    pub text: String,
    /// Whether any part of the word was quoted: a quoted `{` is a word, and
    /// a quoted command line is kept whole.
    pub quoted: bool,
    pub position: Position,
}

impl Token {
    pub fn is_word(&self) -> bool {
        self.kind == TokenKind::Word
    }
}

/// Keywords whose argument is a path pattern: braces in it are csh-style
/// alternatives, not blocks.
pub fn is_include_keyword(word: &str) -> bool {
    matches!(
        word,
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
}

/// Lexes a whole file into its non-empty lines, without preprocessing
/// (the include expander lexes line by line after [`super::preprocess`]).
#[cfg(test)]
pub fn lex_file(file: &Arc<str>, text: &str, diags: &mut Diagnostics) -> Vec<Vec<Token>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX);
        let mut tokens = lex_line(file, line_no, raw, true, diags);
        let starts_include = tokens
            .first()
            .is_some_and(|t| t.is_word() && !t.quoted && is_include_keyword(&t.text));
        if starts_include {
            // Re-lex so `{a,b}` in the pattern stays part of the word; the
            // first pass already reported any quoting problems.
            let mut quiet = Diagnostics::default();
            tokens = lex_line(file, line_no, raw, false, &mut quiet);
        }
        if !tokens.is_empty() {
            lines.push(tokens);
        }
    }
    lines
}

/// Lexes one line. `split_braces` makes unquoted `{` and `}` tokens of their
/// own even when they touch other text (`vrrp_instance X{`).
#[cfg(test)]
pub fn lex_line(
    file: &Arc<str>,
    line_no: u32,
    line: &str,
    split_braces: bool,
    diags: &mut Diagnostics,
) -> Vec<Token> {
    lex_mapped(file, line_no, line, &[], split_braces, diags)
}

/// [`lex_line`] for a line that preprocessing rewrote: `columns[i]` is the
/// source column of the line's `i`th character (missing entries count on
/// from the character index).
pub fn lex_mapped(
    file: &Arc<str>,
    line_no: u32,
    line: &str,
    columns: &[u32],
    split_braces: bool,
    diags: &mut Diagnostics,
) -> Vec<Token> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0usize;
    let pos_at = |index: usize| {
        let column = columns
            .get(index)
            .copied()
            .unwrap_or_else(|| u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX));
        Position::new(file.clone(), line_no, column)
    };
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '!' || c == '#' {
            break;
        }
        if split_braces && (c == '{' || c == '}') {
            tokens.push(Token {
                kind: if c == '{' {
                    TokenKind::OpenBrace
                } else {
                    TokenKind::CloseBrace
                },
                text: c.to_string(),
                quoted: false,
                position: pos_at(i),
            });
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.get(i) {
            if c.is_whitespace() || c == '!' || c == '#' {
                break;
            }
            if split_braces && (c == '{' || c == '}') {
                break;
            }
            if c == '"' || c == '\'' {
                quoted = true;
                let open = i;
                i += 1;
                let mut closed = false;
                while let Some(&q) = chars.get(i) {
                    if q == c {
                        closed = true;
                        i += 1;
                        break;
                    }
                    if q == '\\' {
                        i = read_escape(&chars, i + 1, &mut text);
                    } else {
                        text.push(q);
                        i += 1;
                    }
                }
                if !closed {
                    diags.error(
                        &pos_at(open),
                        format!(
                            "unterminated quoted string; expected a closing {c} on the same line"
                        ),
                    );
                }
                continue;
            }
            text.push(c);
            i += 1;
        }
        tokens.push(Token {
            kind: TokenKind::Word,
            text,
            quoted,
            position: pos_at(start),
        });
    }
    tokens
}

/// Resolves the escape whose first character is at `i` (just after the
/// backslash), appends it to `out` and returns the index after it.
fn read_escape(chars: &[char], i: usize, out: &mut String) -> usize {
    let Some(&c) = chars.get(i) else {
        // A lone backslash at the end of the line stays literal.
        out.push('\\');
        return i;
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'E' => Some('\u{1b}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        _ => None,
    };
    if let Some(resolved) = simple {
        out.push(resolved);
        return i + 1;
    }
    match c {
        '0'..='7' => {
            let digits: String = chars
                .iter()
                .skip(i)
                .take(3)
                .take_while(|d| d.is_digit(8))
                .collect();
            let value = u32::from_str_radix(&digits, 8).unwrap_or(0);
            out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
            i + digits.chars().count()
        }
        'x' => {
            let digits: String = chars
                .iter()
                .skip(i + 1)
                .take_while(|d| d.is_ascii_hexdigit())
                .collect();
            if digits.is_empty() {
                out.push('x');
                return i + 1;
            }
            // keepalived reads "any sequence of hex digits" but a byte is all
            // that fits; keep the low byte as it would.
            let tail: String = digits
                .chars()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let value = u32::from_str_radix(&tail, 16).unwrap_or(0);
            out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
            i + 1 + digits.chars().count()
        }
        'c' => match chars.get(i + 1) {
            Some(&ctl) if ctl.is_ascii() => {
                let value = u32::from(ctl.to_ascii_uppercase()) ^ 0x40;
                out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
                i + 2
            }
            _ => {
                out.push('c');
                i + 1
            }
        },
        other => {
            out.push(other);
            i + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> (Vec<Vec<Token>>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let lines = lex_file(&Arc::from("t.conf"), text, &mut diags);
        (lines, diags)
    }

    fn words(line: &[Token]) -> Vec<&str> {
        line.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn comments_end_the_line_anywhere_outside_quotes() {
        let (lines, diags) = lex("! header\npriority 10#0\nrouter_id a # 通知\nx \"a#b\" !c\n");
        assert!(!diags.has_errors());
        assert_eq!(lines.len(), 3);
        assert_eq!(words(&lines[0]), ["priority", "10"]);
        assert_eq!(words(&lines[1]), ["router_id", "a"]);
        assert_eq!(words(&lines[2]), ["x", "a#b"]);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (lines, _) = lex("通知 value\n");
        assert_eq!(lines[0][1].position.column, 4);
        assert_eq!(lines[0][1].position.line, 1);
    }

    #[test]
    fn quotes_join_with_touching_text_like_the_shell() {
        let (lines, _) = lex("a abcd\" efg h jkl \"mnop 'x y' z\n");
        assert_eq!(words(&lines[0]), ["a", "abcd efg h jkl mnop", "x y", "z"]);
        assert!(lines[0][1].quoted);
        assert!(!lines[0][3].quoted);
    }

    #[test]
    fn escapes_inside_quotes() {
        let (lines, _) = lex(r#"a "t\tx\"y\\z\101\x41\cA""#);
        assert_eq!(lines[0][1].text, "t\tx\"y\\zAA\u{1}");
    }

    #[test]
    fn braces_are_tokens_even_when_touching() {
        let (lines, _) = lex("vrrp_instance X{\n}}\n\"{\"\n");
        assert_eq!(lines[0][2].kind, TokenKind::OpenBrace);
        assert_eq!(lines[0][2].position.column, 16);
        assert_eq!(lines[1].len(), 2);
        assert_eq!(lines[2][0].kind, TokenKind::Word);
    }

    #[test]
    fn include_patterns_keep_their_braces() {
        let (lines, _) = lex("include conf.d/{a,b}.conf\n");
        assert_eq!(words(&lines[0]), ["include", "conf.d/{a,b}.conf"]);
    }

    #[test]
    fn unterminated_quote_is_an_error_at_the_quote() {
        let (lines, diags) = lex("script \"/bin/x\n");
        assert_eq!(lines[0][1].text, "/bin/x");
        let (errors, _) = diags.split();
        assert_eq!(errors[0].position.column, 8);
    }

    #[test]
    fn crlf_and_bom_are_tolerated() {
        let (lines, _) = lex("\u{feff}a b\r\nc\r\n");
        assert_eq!(words(&lines[0]), ["a", "b"]);
        assert_eq!(lines[0][0].position.column, 1);
        assert_eq!(words(&lines[1]), ["c"]);
    }
}
