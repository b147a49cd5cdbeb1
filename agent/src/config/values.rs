//! Reading typed values out of statement arguments, with diagnostics that
//! say where the value is, what it was and what would have been right.

use std::net::IpAddr;
use std::time::Duration;

use super::diagnostic::Diagnostics;
use super::lexer::Token;
use super::model::{Command, Notify, RunAs, Scope};
use super::parser::{Block, Statement};
use crate::tracking::CommandLine;

pub fn int_in(token: &Token, what: &str, lo: i64, hi: i64, diags: &mut Diagnostics) -> Option<i64> {
    let expected = format!("expected an integer {lo}-{hi}");
    match token.text.parse::<i64>() {
        Ok(value) if (lo..=hi).contains(&value) => Some(value),
        Ok(_) => {
            diags.error(
                &token.position,
                format!("{what} \"{}\" is out of range; {expected}", token.text),
            );
            None
        }
        Err(_) => {
            diags.error(
                &token.position,
                format!("{what} \"{}\" is not an integer; {expected}", token.text),
            );
            None
        }
    }
}

/// An unsigned count or whole-second value that fits in `u32`.
pub fn u32_in(token: &Token, what: &str, lo: u32, hi: u32, diags: &mut Diagnostics) -> Option<u32> {
    int_in(token, what, i64::from(lo), i64::from(hi), diags).and_then(|v| u32::try_from(v).ok())
}

pub fn i32_in(token: &Token, what: &str, lo: i32, hi: i32, diags: &mut Diagnostics) -> Option<i32> {
    int_in(token, what, i64::from(lo), i64::from(hi), diags).and_then(|v| i32::try_from(v).ok())
}

pub fn u8_in(token: &Token, what: &str, lo: u8, hi: u8, diags: &mut Diagnostics) -> Option<u8> {
    int_in(token, what, i64::from(lo), i64::from(hi), diags).and_then(|v| u8::try_from(v).ok())
}

/// A (fractional) number of seconds within `lo..=hi`.
pub fn seconds_in(
    token: &Token,
    what: &str,
    lo: f64,
    hi: f64,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let expected = format!("expected a number of seconds {lo}-{hi}");
    match token.text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= lo && value <= hi => {
            Duration::try_from_secs_f64(value).ok()
        }
        Ok(value) if value.is_finite() => {
            diags.error(
                &token.position,
                format!("{what} \"{}\" is out of range; {expected}", token.text),
            );
            None
        }
        _ => {
            diags.error(
                &token.position,
                format!("{what} \"{}\" is not a number; {expected}", token.text),
            );
            None
        }
    }
}

/// A keepalived decimal number of seconds with millisecond resolution
/// (`read_decimal_unsigned_strvec(.., 3)`: `0.5`, `2`, `0.001`) up to
/// `max_ms`. More than three decimals are rounded to the millisecond with a
/// warning, as keepalived does.
pub fn decimal_millis(
    token: &Token,
    what: &str,
    max_ms: u64,
    diags: &mut Diagnostics,
) -> Option<u64> {
    let text = token.text.as_str();
    let expected = format!(
        "expected seconds with at most three decimals, 0.001-{}.{:03}",
        max_ms / 1000,
        max_ms % 1000
    );
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if text.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || (whole.is_empty() && fraction.is_empty())
    {
        diags.error(
            &token.position,
            format!("{what} \"{text}\" is not a number; {expected}"),
        );
        return None;
    }
    let mut millis_text: String = fraction.chars().take(3).collect();
    while millis_text.len() < 3 {
        millis_text.push('0');
    }
    let round_up = fraction.as_bytes().get(3).is_some_and(|d| *d >= b'5');
    if fraction.len() > 3 {
        diags.warning(
            &token.position,
            format!("{what} \"{text}\" has more than three decimals; rounded to the millisecond as keepalived does"),
        );
    }
    let value = whole
        .parse::<u64>()
        .ok()
        .or(whole.is_empty().then_some(0))
        .and_then(|w| w.checked_mul(1000))
        .and_then(|w| w.checked_add(millis_text.parse::<u64>().ok()?))
        .map(|v| v + u64::from(round_up));
    match value {
        Some(v) if v <= max_ms => Some(v),
        _ => {
            diags.error(
                &token.position,
                format!("{what} \"{text}\" is out of range; {expected}"),
            );
            None
        }
    }
}

pub fn whole_seconds(
    token: &Token,
    what: &str,
    hi: u32,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    u32_in(token, what, 0, hi, diags).map(|s| Duration::from_secs(u64::from(s)))
}

pub fn ip(token: &Token, what: &str, diags: &mut Diagnostics) -> Option<IpAddr> {
    match token.text.parse::<IpAddr>() {
        Ok(address) => Some(address),
        Err(_) => {
            diags.error(
                &token.position,
                format!(
                    "{what} \"{}\" is not an IP address; expected an IPv4 or IPv6 address",
                    token.text
                ),
            );
            None
        }
    }
}

/// `ADDR[/LEN]`; without a length the prefix is a single host.
pub fn prefix(token: &Token, what: &str, diags: &mut Diagnostics) -> Option<(IpAddr, u8)> {
    let (address_text, length_text) = match token.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (token.text.as_str(), None),
    };
    let Ok(address) = address_text.parse::<IpAddr>() else {
        diags.error(
            &token.position,
            format!(
                "{what} \"{}\" is not an IP address; expected ADDRESS[/PREFIX_LENGTH]",
                token.text
            ),
        );
        return None;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let Some(length_text) = length_text else {
        return Some((address, max));
    };
    match length_text.parse::<u8>() {
        Ok(length) if length <= max => Some((address, length)),
        _ => {
            diags.error(
                &token.position,
                format!(
                    "{what} \"{}\" has an invalid prefix length; expected /0-/{max}",
                    token.text
                ),
            );
            None
        }
    }
}

/// keepalived's `<BOOL>`.
pub fn boolean(token: &Token, what: &str, diags: &mut Diagnostics) -> Option<bool> {
    match token.text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => {
            diags.error(
                &token.position,
                format!(
                    "{what} \"{}\" is not a boolean; expected on|off|true|false|yes|no",
                    token.text
                ),
            );
            None
        }
    }
}

/// A keyword that is on by itself and takes an optional `<BOOL>`.
pub fn flag(statement: &Statement, diags: &mut Diagnostics) -> Option<bool> {
    match statement.args.first() {
        None => Some(true),
        Some(token) => {
            warn_extra(statement, 1, diags);
            boolean(token, statement.name(), diags)
        }
    }
}

pub fn scope(token: &Token, diags: &mut Diagnostics) -> Option<Scope> {
    match token.text.as_str() {
        "global" => Some(Scope::Global),
        "site" => Some(Scope::Site),
        "link" => Some(Scope::Link),
        "host" => Some(Scope::Host),
        "nowhere" => Some(Scope::Nowhere),
        other => {
            diags.error(
                &token.position,
                format!("scope \"{other}\" is not known; expected site|link|host|nowhere|global"),
            );
            None
        }
    }
}

/// Linux interface names are at most 15 bytes and have no `/` or spaces.
pub fn interface_name(token: &Token, diags: &mut Diagnostics) -> Option<String> {
    let name = token.text.as_str();
    let valid = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_whitespace());
    if valid {
        Some(name.to_string())
    } else {
        diags.error(
            &token.position,
            format!("interface name \"{name}\" is not valid; expected 1-15 characters without '/' or spaces"),
        );
        None
    }
}

/// The first argument, or an error naming the expected form.
pub fn first_arg<'a>(
    statement: &'a Statement,
    usage: &str,
    diags: &mut Diagnostics,
) -> Option<&'a Token> {
    let found = statement.args.first();
    if found.is_none() {
        diags.error(
            statement.position(),
            format!("{} needs a value; expected `{usage}`", statement.name()),
        );
    }
    found
}

/// The only argument: like [`first_arg`], warning about any extra words.
pub fn single_arg<'a>(
    statement: &'a Statement,
    usage: &str,
    diags: &mut Diagnostics,
) -> Option<&'a Token> {
    warn_extra(statement, 1, diags);
    no_block(statement, diags);
    first_arg(statement, usage, diags)
}

pub fn warn_extra(statement: &Statement, allowed: usize, diags: &mut Diagnostics) {
    if let Some(extra) = statement.args.get(allowed) {
        diags.warning(
            &extra.position,
            format!(
                "{} takes at most {allowed} value{}; ignoring \"{}\" and what follows",
                statement.name(),
                if allowed == 1 { "" } else { "s" },
                extra.text
            ),
        );
    }
}

pub fn no_args(statement: &Statement, diags: &mut Diagnostics) {
    if let Some(extra) = statement.args.first() {
        diags.warning(
            &extra.position,
            format!(
                "{} takes no value; ignoring \"{}\" and what follows",
                statement.name(),
                extra.text
            ),
        );
    }
}

/// A keyword that stands alone: no value, no block.
pub fn bare(statement: &Statement, diags: &mut Diagnostics) {
    no_args(statement, diags);
    no_block(statement, diags);
}

pub fn no_block(statement: &Statement, diags: &mut Diagnostics) {
    if let Some(block) = &statement.block {
        diags.warning(
            &block.open,
            format!(
                "{} does not take a {{ }} block; block ignored",
                statement.name()
            ),
        );
    }
}

pub fn block<'a>(statement: &'a Statement, diags: &mut Diagnostics) -> Option<&'a Block> {
    if statement.block.is_none() {
        diags.error(
            statement.position(),
            format!(
                "{} needs a block; expected `{} {{` followed by one entry per line and `}}`",
                statement.name(),
                statement.name()
            ),
        );
    }
    statement.block.as_ref()
}

/// Every word of every line of a list block (`notification_email { .. }`).
pub fn list_words<'a>(statement: &'a Statement, diags: &mut Diagnostics) -> Vec<&'a Token> {
    let mut words = Vec::new();
    if let Some(block) = block(statement, diags) {
        for entry in &block.statements {
            no_block(entry, diags);
            words.push(&entry.keyword);
            words.extend(entry.args.iter());
        }
    }
    words
}

pub fn unknown_keyword(statement: &Statement, section: &str, diags: &mut Diagnostics) {
    let tail = if statement.block.is_some() {
        " and its block"
    } else {
        ""
    };
    diags.warning(
        statement.position(),
        format!(
            "unknown or unsupported keyword \"{}\" in {section}; ignored{tail}",
            statement.name()
        ),
    );
}

/// The command of a `script` / `notify*` statement, split once into what the
/// daemon runs. A single (usually quoted) value is a whole command line,
/// split as keepalived splits it; several values are one argument each.
/// `owner` names the block in the error (`vrrp_script chk`).
pub fn command(words: &[Token], owner: &str, diags: &mut Diagnostics) -> Option<Command> {
    let first = words.first()?;
    let line = match words {
        [only] => only.text.clone(),
        _ => words
            .iter()
            .map(|w| quote_argument(&w.text))
            .collect::<Vec<_>>()
            .join(" "),
    };
    match CommandLine::parse(&line) {
        Ok(run) => Some(Command {
            run,
            position: first.position.clone(),
        }),
        Err(error) => {
            diags.error(&first.position, format!("{owner}: {error}"));
            None
        }
    }
}

/// Quotes one argument of a multi-word command so that splitting the joined
/// line gives it back unchanged: the lexer has already resolved its quotes
/// and escapes.
fn quote_argument(word: &str) -> String {
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'));
    if plain {
        return word.to_owned();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        match c {
            '\'' => quoted.push_str("'\\''"),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// `notify_* COMMAND [USER [GROUP]]` in the block `owner`.
pub fn notify(statement: &Statement, owner: &str, diags: &mut Diagnostics) -> Option<Notify> {
    no_block(statement, diags);
    let usage = format!("{} \"/path/script args\" [USER [GROUP]]", statement.name());
    let script = first_arg(statement, &usage, diags)?;
    if script.text.trim().is_empty() {
        diags.error(
            &script.position,
            format!(
                "{} has an empty command; expected `{usage}`",
                statement.name()
            ),
        );
        return None;
    }
    warn_extra(statement, 3, diags);
    let run_as = statement.args.get(1).map(|user| RunAs {
        user: user.text.clone(),
        group: statement.args.get(2).map(|g| g.text.clone()),
        position: user.position.clone(),
    });
    Some(Notify {
        command: command(std::slice::from_ref(script), owner, diags)?,
        run_as,
        position: statement.position().clone(),
    })
}

/// `USER [GROUP]`.
pub fn run_as(statement: &Statement, diags: &mut Diagnostics) -> Option<RunAs> {
    no_block(statement, diags);
    warn_extra(statement, 2, diags);
    let user = first_arg(
        statement,
        &format!("{} USER [GROUP]", statement.name()),
        diags,
    )?;
    Some(RunAs {
        user: user.text.clone(),
        group: statement.args.get(1).map(|g| g.text.clone()),
        position: user.position.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostic::Position;
    use crate::config::lexer::TokenKind;

    fn word(text: &str) -> Token {
        Token {
            kind: TokenKind::Word,
            text: text.to_string(),
            quoted: false,
            position: Position::new("v.conf".into(), 3, 7),
        }
    }

    #[test]
    fn integers_report_range_and_garbage() {
        let mut diags = Diagnostics::default();
        assert_eq!(
            int_in(&word("255"), "priority", 1, 255, &mut diags),
            Some(255)
        );
        assert_eq!(int_in(&word("300"), "priority", 1, 255, &mut diags), None);
        assert_eq!(int_in(&word("x"), "priority", 1, 255, &mut diags), None);
        let (errors, _) = diags.split();
        assert_eq!(
            errors[0].to_string(),
            "v.conf:3:7: priority \"300\" is out of range; expected an integer 1-255"
        );
        assert!(errors[1].message.contains("not an integer"));
    }

    #[test]
    fn seconds_reject_nan_and_out_of_range() {
        let mut diags = Diagnostics::default();
        assert_eq!(
            seconds_in(&word("0.5"), "t", 0.0, 1.0, &mut diags),
            Some(Duration::from_millis(500))
        );
        assert_eq!(seconds_in(&word("NaN"), "t", 0.0, 1.0, &mut diags), None);
        assert_eq!(seconds_in(&word("inf"), "t", 0.0, 1.0, &mut diags), None);
        assert_eq!(seconds_in(&word("2"), "t", 0.0, 1.0, &mut diags), None);
        assert_eq!(diags.split().0.len(), 3);
    }

    #[test]
    fn prefixes_default_to_host_length() {
        let mut diags = Diagnostics::default();
        assert_eq!(
            prefix(&word("192.0.2.1"), "a", &mut diags).map(|p| p.1),
            Some(32)
        );
        assert_eq!(
            prefix(&word("2001:db8::1/64"), "a", &mut diags).map(|p| p.1),
            Some(64)
        );
        assert_eq!(prefix(&word("192.0.2.1/33"), "a", &mut diags), None);
        assert_eq!(prefix(&word("192.0.2/24"), "a", &mut diags), None);
        assert_eq!(diags.split().0.len(), 2);
    }

    fn parsed(words: &[Token]) -> Command {
        let mut diags = Diagnostics::default();
        let command = command(words, "vrrp_script chk", &mut diags);
        let (errors, warnings) = diags.split();
        assert!(
            errors.is_empty() && warnings.is_empty(),
            "{errors:?} {warnings:?}"
        );
        match command {
            Some(command) => command,
            None => panic!("no command from {words:?}"),
        }
    }

    #[test]
    fn one_value_is_a_command_line_split_like_keepalived() {
        let c = parsed(&[word("/bin/x master 'a b'  \"c d\"e")]);
        assert_eq!(c.line(), "/bin/x master 'a b'  \"c d\"e");
        assert_eq!(c.argv(), ["/bin/x", "master", "a b", "c de"]);
        assert_eq!(
            parsed(&[word("</dev/tcp/192.0.2.1/80")]).argv(),
            ["/bin/sh", "-c", "</dev/tcp/192.0.2.1/80"]
        );
    }

    #[test]
    fn several_values_are_one_argument_each() {
        let c = parsed(&[word("/bin/chk"), word("two words")]);
        assert_eq!(c.line(), "/bin/chk 'two words'");
        assert_eq!(c.argv(), ["/bin/chk", "two words"]);
        let awkward = ["it's", "a\\b", "\"", ""];
        let mut words = vec![word("/bin/chk")];
        words.extend(awkward.iter().map(|w| word(w)));
        assert_eq!(parsed(&words).argv()[1..], awkward);
    }

    #[test]
    fn a_line_that_does_not_split_is_an_error_where_it_was_written() {
        let mut diags = Diagnostics::default();
        assert!(command(&[word("/bin/x 'open")], "vrrp_script chk", &mut diags).is_none());
        let (errors, _) = diags.split();
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(text.starts_with("v.conf:3:7: vrrp_script chk: "), "{text}");
        assert!(text.contains("unterminated ' quote"), "{text}");
    }

    #[test]
    fn equal_commands_written_elsewhere_are_equal() {
        let mut moved = word("/bin/chk a");
        moved.position = Position::new("other.conf".into(), 40, 2);
        assert_eq!(parsed(&[word("/bin/chk a")]), parsed(&[moved]));
        assert_ne!(parsed(&[word("/bin/chk a")]), parsed(&[word("/bin/chk b")]));
    }
}
