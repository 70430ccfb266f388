//! Parser for oslo.policy check strings.
//!
//! A check string such as `rule:admin or (role:member and project_id:%(tenant)s)`
//! becomes a [`Check`] tree. The language is the one operators already write
//! in Trove's `policy.yaml`:
//!
//! - `@` (or the empty string) always passes, `!` never passes;
//! - `rule:NAME` evaluates another rule;
//! - `role:NAME` passes when the caller holds that role (compared without
//!   regard to case);
//! - `field:value` compares a credential field (`project_id`, `user_id`,
//!   `roles`, `is_admin`...) with `value`; the left side may instead be a
//!   literal (`'member'`, `True`, `42`) compared with the right side;
//! - values may contain target substitutions `%(key)s` (and `%%` for a
//!   percent sign);
//! - `not` binds tightest, then `and`, then `or`; parentheses group.
//!   Keywords are case-insensitive.
//!
//! Tokens are separated by whitespace; opening parentheses may lead a token
//! and closing parentheses may trail it, so `(role:a or role:b)` works.
//!
//! Where oslo.policy silently turns an unparsable rule into "deny", this
//! parser reports a [`ParseError`] naming the rule and the column, so that a
//! broken policy file is refused at load time instead of locking users out.
//! Remote `http:`/`https:` checks are refused as well: this service never
//! calls out to a policy server.

use std::borrow::Cow;
use std::fmt;

/// A parsed check string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `@` or the empty check string: always passes.
    Always,
    /// `!`: never passes.
    Never,
    /// `rule:NAME`: the result of another rule.
    Rule(String),
    /// `role:NAME`: the caller holds the role (case-insensitive).
    Role(Template),
    /// `field:value`: a credential field (or a literal) equals the value.
    Field {
        /// Left side of the colon.
        field: Field,
        /// Right side of the colon, after target substitution.
        value: Template,
    },
    /// `not CHECK`.
    Not(Box<Check>),
    /// `A and B and ...`: every check passes.
    And(Vec<Check>),
    /// `A or B or ...`: at least one check passes.
    Or(Vec<Check>),
}

/// The left side of a generic `field:value` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A literal (`'member'`, `"x"`, `True`, `False`, `None`, an integer),
    /// compared with the substituted value as text.
    Literal(String),
    /// A credential field name, possibly dotted (`project_id`, `roles`).
    Credential(String),
}

/// The right side of a check: text with `%(key)s` target substitutions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Key(String),
}

impl Template {
    /// A template without substitutions.
    pub fn literal(text: &str) -> Self {
        let pieces = if text.is_empty() {
            Vec::new()
        } else {
            vec![Piece::Text(text.to_owned())]
        };
        Self { pieces }
    }

    /// Parses `text`, reporting the byte offset of a malformed `%`.
    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut pieces = Vec::new();
        let mut buf = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(pct) = rest.find('%') {
            buf.push_str(&rest[..pct]);
            let after = &rest[pct + 1..];
            let at = offset + pct;
            if let Some(tail) = after.strip_prefix('%') {
                buf.push('%');
                offset = at + 2;
                rest = tail;
            } else if let Some(inner) = after.strip_prefix('(') {
                let Some(close) = inner.find(')') else {
                    return Err((at, "unterminated substitution, expected %(key)s".into()));
                };
                let key = &inner[..close];
                let Some(tail) = inner[close + 1..].strip_prefix('s') else {
                    return Err((at, format!("substitution %({key}) must end in \")s\"")));
                };
                if !buf.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut buf)));
                }
                pieces.push(Piece::Key(key.to_owned()));
                offset = at + 1 + 1 + close + 2;
                rest = tail;
            } else {
                return Err((
                    at,
                    "a '%' must start a substitution %(key)s or be doubled (%%)".into(),
                ));
            }
        }
        buf.push_str(rest);
        if !buf.is_empty() {
            pieces.push(Piece::Text(buf));
        }
        Ok(Self { pieces })
    }

    /// True when the template has no substitutions.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Substitutes target values; `None` when a key is missing from the
    /// target (the check then fails, as in oslo.policy). Borrows when the
    /// template is a single piece, so the common cases do not allocate.
    pub fn render<'a>(&'a self, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<Cow<'a, str>> {
        match self.pieces.as_slice() {
            [] => Some(Cow::Borrowed("")),
            [Piece::Text(t)] => Some(Cow::Borrowed(t)),
            [Piece::Key(k)] => lookup(k).map(Cow::Borrowed),
            pieces => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Key(k) => out.push_str(lookup(k)?),
                    }
                }
                Some(Cow::Owned(out))
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => f.write_str(&t.replace('%', "%%"))?,
                Piece::Key(k) => write!(f, "%({k})s")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Check {
    /// Writes a check string that parses back to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Always => f.write_str("@"),
            Check::Never => f.write_str("!"),
            Check::Rule(name) => write!(f, "rule:{name}"),
            Check::Role(t) => write!(f, "role:{t}"),
            Check::Field {
                field: Field::Credential(k),
                value,
            } => write!(f, "{k}:{value}"),
            Check::Field {
                field: Field::Literal(l),
                value,
            } => write!(f, "'{l}':{value}"),
            Check::Not(c) => write!(f, "not {c}"),
            Check::And(cs) | Check::Or(cs) => {
                let sep = if matches!(self, Check::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A check string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid check string for rule \"{rule}\" at column {column}: {message}")]
pub struct ParseError {
    /// The rule whose check string is wrong.
    pub rule: String,
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Quoted(&'a str),
    Atom(&'a str),
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    /// 1-based character column.
    column: usize,
}

/// Splits a check string into tokens the way oslo.policy does: on
/// whitespace, peeling leading `(` and trailing `)` off each word.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut column = 0;
    let mut start: Option<(usize, usize)> = None;
    // Words with their 1-based starting column.
    let mut words: Vec<(&str, usize)> = Vec::new();
    for (i, ch) in text.char_indices() {
        column += 1;
        if ch.is_whitespace() {
            if let Some((s, c)) = start.take() {
                words.push((&text[s..i], c));
            }
        } else if start.is_none() {
            start = Some((i, column));
        }
    }
    if let Some((s, c)) = start {
        words.push((&text[s..], c));
    }

    for (word, col) in words {
        let lead = word.len() - word.trim_start_matches('(').len();
        for i in 0..lead {
            tokens.push(Token {
                tok: Tok::LParen,
                column: col + i,
            });
        }
        let tok = &word[lead..];
        if tok.is_empty() {
            continue;
        }
        let clean = tok.trim_end_matches(')');
        let trail = tok.len() - clean.len();
        let clean_col = col + lead;
        let kind = match clean.to_ascii_lowercase().as_str() {
            "and" => Some(Tok::And),
            "or" => Some(Tok::Or),
            "not" => Some(Tok::Not),
            _ => None,
        };
        if let Some(k) = kind {
            tokens.push(Token {
                tok: k,
                column: clean_col,
            });
        } else if !clean.is_empty() {
            let quoted = tok.len() >= 2
                && ((tok.starts_with('"') && tok.ends_with('"'))
                    || (tok.starts_with('\'') && tok.ends_with('\'')));
            let t = if quoted {
                Tok::Quoted(&tok[1..tok.len() - 1])
            } else {
                Tok::Atom(clean)
            };
            tokens.push(Token {
                tok: t,
                column: clean_col,
            });
        }
        let rparen_col = clean_col + clean.chars().count();
        for i in 0..trail {
            tokens.push(Token {
                tok: Tok::RParen,
                column: rparen_col + i,
            });
        }
    }
    tokens
}

struct Parser<'a, 'r> {
    rule: &'r str,
    tokens: Vec<Token<'a>>,
    pos: usize,
    end_column: usize,
}

impl<'a> Parser<'a, '_> {
    fn error(&self, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            rule: self.rule.to_owned(),
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.pos).copied()
    }

    fn describe(tok: Tok<'_>) -> String {
        match tok {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::And => "'and'".into(),
            Tok::Or => "'or'".into(),
            Tok::Not => "'not'".into(),
            Tok::Quoted(s) => format!("quoted string \"{s}\""),
            Tok::Atom(s) => format!("check \"{s}\""),
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Check, ParseError> {
        let mut items = vec![self.and_expr(depth)?];
        while matches!(self.peek(), Some(Token { tok: Tok::Or, .. })) {
            self.pos += 1;
            items.push(self.and_expr(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Check::Or(items)
        })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Check, ParseError> {
        let mut items = vec![self.unary(depth)?];
        while matches!(self.peek(), Some(Token { tok: Tok::And, .. })) {
            self.pos += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Check::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Check, ParseError> {
        const MAX_NESTING: usize = 64;
        if depth > MAX_NESTING {
            let col = self.peek().map_or(self.end_column, |t| t.column);
            return Err(self.error(col, "expression nested too deeply"));
        }
        let Some(token) = self.peek() else {
            return Err(self.error(self.end_column, "unexpected end, expected a check"));
        };
        self.pos += 1;
        match token.tok {
            Tok::Not => Ok(Check::Not(Box::new(self.unary(depth + 1)?))),
            Tok::LParen => {
                let inner = self.or_expr(depth + 1)?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(t) => Err(self.error(
                        t.column,
                        format!(
                            "expected 'and', 'or' or ')', found {}",
                            Self::describe(t.tok)
                        ),
                    )),
                    None => Err(self.error(
                        token.column,
                        "unbalanced parenthesis: this '(' is never closed",
                    )),
                }
            }
            Tok::Atom(atom) => parse_atom(atom).map_err(|(off, msg)| {
                let col = token.column + atom[..off.min(atom.len())].chars().count();
                self.error(col, msg)
            }),
            Tok::Quoted(_) => Err(self.error(
                token.column,
                format!(
                    "{} is not a check (quote only the left side of kind:match)",
                    Self::describe(token.tok)
                ),
            )),
            other => Err(self.error(
                token.column,
                format!("expected a check, found {}", Self::describe(other)),
            )),
        }
    }
}

/// Parses one `kind:match` (or `@`, `!`), reporting the byte offset of a
/// problem inside `atom`.
fn parse_atom(atom: &str) -> Result<Check, (usize, String)> {
    match atom {
        "@" => return Ok(Check::Always),
        "!" => return Ok(Check::Never),
        _ => {}
    }
    let Some((kind, value)) = atom.split_once(':') else {
        return Err((
            0,
            format!("\"{atom}\" is not a check: expected kind:match, '@' or '!'"),
        ));
    };
    let value_off = kind.len() + 1;
    let template = |v: &str| Template::parse(v).map_err(|(o, m)| (value_off + o, m));
    match kind {
        "rule" => Ok(Check::Rule(value.to_owned())),
        "role" => Ok(Check::Role(template(value)?)),
        "http" | "https" => Err((
            0,
            "remote http/https checks are not supported: the policy engine never calls out".into(),
        )),
        _ => Ok(Check::Field {
            field: parse_field(kind),
            value: template(value)?,
        }),
    }
}

/// The left side of a generic check: a Python-style literal or a field.
fn parse_field(kind: &str) -> Field {
    let quoted = kind.len() >= 2
        && ((kind.starts_with('\'') && kind.ends_with('\''))
            || (kind.starts_with('"') && kind.ends_with('"')));
    if quoted {
        return Field::Literal(kind[1..kind.len() - 1].to_owned());
    }
    if matches!(kind, "True" | "False" | "None") {
        return Field::Literal(kind.to_owned());
    }
    let digits = kind.strip_prefix(['-', '+']).unwrap_or(kind);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Rendered as Python's str(int(...)) would.
        let text = kind
            .parse::<i128>()
            .map_or_else(|_| kind.to_owned(), |n| n.to_string());
        return Field::Literal(text);
    }
    Field::Credential(kind.to_owned())
}

/// Parses the check string `text` of rule `rule`.
///
/// The empty string means "always". Whitespace only, a dangling operator,
/// unbalanced parentheses, two checks without an operator between them, a
/// bare quoted string or an `http:` check are errors.
pub fn parse_check_str(rule: &str, text: &str) -> Result<Check, ParseError> {
    if text.is_empty() {
        return Ok(Check::Always);
    }
    let tokens = tokenize(text);
    let end_column = text.chars().count() + 1;
    let mut p = Parser {
        rule,
        tokens,
        pos: 0,
        end_column,
    };
    if p.tokens.is_empty() {
        return Err(p.error(
            1,
            "check string is only whitespace (use \"\" or \"@\" to allow all)",
        ));
    }
    let check = p.or_expr(0)?;
    if let Some(t) = p.peek() {
        let msg = match t.tok {
            Tok::RParen => "unbalanced parenthesis: unexpected ')'".to_owned(),
            other => format!("expected 'and' or 'or', found {}", Parser::describe(other)),
        };
        return Err(p.error(t.column, msg));
    }
    Ok(check)
}

/// Parses the legacy list-of-lists form: the outer list is an "or" of
/// inner lists, each inner list an "and" of single checks (a plain string
/// in the outer list counts as a one-element list). An empty outer list
/// always passes; when every inner list is empty, the rule never passes.
pub fn parse_list_rule(rule: &str, alternatives: &[Vec<String>]) -> Result<Check, ParseError> {
    if alternatives.is_empty() {
        return Ok(Check::Always);
    }
    let mut ors = Vec::new();
    for (i, inner) in alternatives.iter().enumerate() {
        if inner.is_empty() {
            continue;
        }
        let mut ands = Vec::with_capacity(inner.len());
        for (j, item) in inner.iter().enumerate() {
            let check = parse_atom(item).map_err(|(_, message)| ParseError {
                rule: rule.to_owned(),
                column: 1,
                message: format!("list item [{i}][{j}]: {message}"),
            })?;
            ands.push(check);
        }
        ors.push(if ands.len() == 1 {
            ands.pop().expect("one item")
        } else {
            Check::And(ands)
        });
    }
    Ok(match ors.len() {
        0 => Check::Never,
        1 => ors.pop().expect("one item"),
        _ => Check::Or(ors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_offsets() {
        assert_eq!(Template::parse("a%(b)sc").unwrap().to_string(), "a%(b)sc");
        assert_eq!(Template::parse("100%%").unwrap().to_string(), "100%%");
        assert_eq!(Template::parse("x%(y)d").unwrap_err().0, 1);
        assert_eq!(Template::parse("x%").unwrap_err().0, 1);
        assert_eq!(Template::parse("a%(b)s%%%(c)d").unwrap_err().0, 8);
        assert_eq!(Template::parse("%(a)s%(b").unwrap_err().0, 5);
        assert!(Template::parse("%(tenant)s")
            .unwrap()
            .render(|_| None)
            .is_none());
    }
}
