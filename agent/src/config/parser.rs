//! Builds the statement tree from lexed lines.
//!
//! One statement per line; a `{` at the end of a line (or alone at the start
//! of the next one) opens a block owned by that statement, and `}` closes it.
//! Several statements may share a line only through braces, e.g.
//! `virtual_ipaddress { 192.0.2.1 }`.

use super::diagnostic::{Diagnostics, Position};
use super::lexer::{Token, TokenKind};

/// Blocks nested deeper than this cannot be meaningful keepalived syntax;
/// their contents are dropped so hostile input cannot grow the tree (or the
/// stack when it is dropped) without bound.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub keyword: Token,
    pub args: Vec<Token>,
    pub block: Option<Block>,
}

impl Statement {
    pub fn position(&self) -> &Position {
        &self.keyword.position
    }

    pub fn name(&self) -> &str {
        &self.keyword.text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub open: Position,
    pub statements: Vec<Statement>,
}

struct Frame {
    /// `None` for the top level and for blocks nobody owns.
    owner: Option<Statement>,
    open: Option<Position>,
    statements: Vec<Statement>,
    /// The last statement ended with its line, so a `{` starting the next
    /// line belongs to it.
    last_may_take_block: bool,
    /// Contents are dropped: nesting too deep, or nobody owns the block.
    discard: bool,
}

impl Frame {
    fn new(owner: Option<Statement>, open: Option<Position>, discard: bool) -> Self {
        Self {
            owner,
            open,
            statements: Vec::new(),
            last_may_take_block: false,
            discard,
        }
    }

    fn push(&mut self, statement: Statement) {
        if !self.discard {
            self.statements.push(statement);
        }
    }
}

/// Parses lines into top-level statements, reporting brace mismatches.
pub fn parse(lines: Vec<Vec<Token>>, diags: &mut Diagnostics) -> Vec<Statement> {
    let mut frames = vec![Frame::new(None, None, false)];
    let mut reported_depth = false;
    for line in lines {
        let mut words: Vec<Token> = Vec::new();
        for (index, token) in line.into_iter().enumerate() {
            match token.kind {
                TokenKind::Word => words.push(token),
                TokenKind::OpenBrace => {
                    let Some(top) = frames.last_mut() else { break };
                    let owner = if let Some(statement) = statement_from(&mut words) {
                        Some(statement)
                    } else if index == 0 && top.last_may_take_block {
                        top.statements.pop()
                    } else {
                        None
                    };
                    top.last_may_take_block = false;
                    if owner.is_none() && !top.discard {
                        diags.error(
                            &token.position,
                            "unexpected '{'; expected it after a keyword (e.g. `virtual_ipaddress {`)",
                        );
                    }
                    let too_deep = frames.len() > MAX_NESTING;
                    if too_deep && !reported_depth {
                        reported_depth = true;
                        diags.error(
                            &token.position,
                            format!(
                                "blocks nested deeper than {MAX_NESTING} levels; expected keepalived's block structure"
                            ),
                        );
                    }
                    let parent_discards = frames.last().is_some_and(|f| f.discard);
                    let discard = too_deep || owner.is_none() || parent_discards;
                    frames.push(Frame::new(owner, Some(token.position), discard));
                }
                TokenKind::CloseBrace => {
                    if let Some(statement) = statement_from(&mut words)
                        && let Some(top) = frames.last_mut()
                    {
                        top.push(statement);
                    }
                    if frames.len() <= 1 {
                        diags.error(&token.position, "unexpected '}'; no block is open here");
                        continue;
                    }
                    close_frame(&mut frames);
                }
            }
        }
        if let Some(statement) = statement_from(&mut words)
            && let Some(top) = frames.last_mut()
        {
            top.push(statement);
            top.last_may_take_block = true;
        } else if let Some(top) = frames.last_mut() {
            top.last_may_take_block = false;
        }
    }
    while frames.len() > 1 {
        if let Some(open) = frames.last().and_then(|f| f.open.clone()) {
            diags.error(
                &open,
                "block opened here is never closed; expected a matching '}'",
            );
        }
        close_frame(&mut frames);
    }
    frames.pop().map(|f| f.statements).unwrap_or_default()
}

fn statement_from(words: &mut Vec<Token>) -> Option<Statement> {
    if words.is_empty() {
        return None;
    }
    let mut drained = std::mem::take(words).into_iter();
    let keyword = drained.next()?;
    Some(Statement {
        keyword,
        args: drained.collect(),
        block: None,
    })
}

fn close_frame(frames: &mut Vec<Frame>) {
    let Some(frame) = frames.pop() else { return };
    let Some(parent) = frames.last_mut() else {
        return;
    };
    parent.last_may_take_block = false;
    if let Some(mut owner) = frame.owner {
        owner.block = Some(Block {
            open: frame.open.unwrap_or_else(|| owner.keyword.position.clone()),
            statements: frame.statements,
        });
        parent.push(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lexer::lex_file;
    use std::sync::Arc;

    fn parse_text(text: &str) -> (Vec<Statement>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let lines = lex_file(&Arc::from("p.conf"), text, &mut diags);
        let tree = parse(lines, &mut diags);
        (tree, diags)
    }

    #[test]
    fn block_opened_on_same_or_next_line() {
        let (tree, diags) = parse_text("a x {\n b 1\n}\nc\n{\n d\n}\n");
        assert!(!diags.has_errors());
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].args[0].text, "x");
        let a = tree[0].block.as_ref().map(|b| b.statements.len());
        assert_eq!(a, Some(1));
        let c = tree[1]
            .block
            .as_ref()
            .map(|b| b.statements[0].name().to_string());
        assert_eq!(c.as_deref(), Some("d"));
    }

    #[test]
    fn one_line_blocks_and_nesting() {
        let (tree, diags) = parse_text("v { 1.2.3.4 }\nw {\n x { y }\n z\n}\n");
        assert!(!diags.has_errors());
        let v = tree[0]
            .block
            .as_ref()
            .map(|b| b.statements[0].name().to_string());
        assert_eq!(v.as_deref(), Some("1.2.3.4"));
        let w = tree[1].block.as_ref().map(|b| b.statements.len());
        assert_eq!(w, Some(2));
    }

    #[test]
    fn brace_mismatches_are_reported_where_they_are() {
        let (_, diags) = parse_text("a {\n b\n");
        let (errors, _) = diags.split();
        assert_eq!(errors[0].position.to_string(), "p.conf:1:3");
        let (_, diags) = parse_text("a\n}\n");
        let (errors, _) = diags.split();
        assert_eq!(errors[0].position.to_string(), "p.conf:2:1");
        let (_, diags) = parse_text("x\n\ny 1 }\n{\n");
        let (errors, _) = diags.split();
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn deep_nesting_is_cut_off() {
        let text = "a {\n".repeat(1000);
        let (tree, diags) = parse_text(&text);
        assert!(diags.has_errors());
        assert_eq!(tree.len(), 1);
    }
}
