//! Quoting for MariaDB and PostgreSQL: the only place where tenant-supplied names and passwords
//! are turned into SQL text.
//!
//! Values go through bound parameters whenever the server accepts a placeholder there. Account
//! management statements (`CREATE USER ... IDENTIFIED BY`, `ALTER ROLE ... PASSWORD`) take no
//! placeholders, so passwords are written as string literals escaped for the session's rules:
//! * MariaDB: with the default `sql_mode`, backslash is an escape character inside `'...'`, so
//!   `\`, `'`, NUL, newline, carriage return and Ctrl-Z are escaped with backslashes; when the
//!   session has `NO_BACKSLASH_ESCAPES`, only `'` is special and is doubled. The caller asks the
//!   session which rule applies ([`MysqlEscaping`]).
//! * PostgreSQL: with `standard_conforming_strings = on` (the default since 9.1 and checked by
//!   the manager) only `'` is special inside `'...'` and is doubled.
//!
//! Identifiers are always quoted: backticks with doubling for MariaDB, double quotes with
//! doubling for PostgreSQL. NUL bytes are refused everywhere (no server accepts them in names).

use crate::error::{GuestError, Result};

/// How string literals must be escaped in a MariaDB session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlEscaping {
    /// Default `sql_mode`: backslash escapes are active.
    Backslash,
    /// `NO_BACKSLASH_ESCAPES` is set: only quote doubling.
    NoBackslash,
}

impl MysqlEscaping {
    /// Picks the rule from the value of `@@SESSION.sql_mode`.
    pub fn from_sql_mode(sql_mode: &str) -> Self {
        if sql_mode
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
        {
            MysqlEscaping::NoBackslash
        } else {
            MysqlEscaping::Backslash
        }
    }
}

fn refuse_nul(s: &str, what: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(GuestError::InvalidValue(format!(
            "{what} must not contain a NUL character."
        )));
    }
    Ok(())
}

/// Quotes a MariaDB identifier (database, table, column): `` `name` `` with backticks doubled.
pub fn mysql_ident(name: &str) -> Result<String> {
    refuse_nul(name, "A name")?;
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// Writes a MariaDB string literal `'...'` for `value` under the session's escaping rule.
pub fn mysql_literal(value: &str, escaping: MysqlEscaping) -> Result<String> {
    refuse_nul(value, "A value")?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match (escaping, c) {
            (_, '\'') => out.push_str("''"),
            (MysqlEscaping::Backslash, '\\') => out.push_str("\\\\"),
            (MysqlEscaping::Backslash, '\n') => out.push_str("\\n"),
            (MysqlEscaping::Backslash, '\r') => out.push_str("\\r"),
            (MysqlEscaping::Backslash, '\u{1a}') => out.push_str("\\Z"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// Writes a MariaDB account name `'user'@'host'` with both parts as literals.
pub fn mysql_account(user: &str, host: &str, escaping: MysqlEscaping) -> Result<String> {
    Ok(format!(
        "{}@{}",
        mysql_literal(user, escaping)?,
        mysql_literal(host, escaping)?
    ))
}

/// Quotes a PostgreSQL identifier: `"name"` with double quotes doubled.
pub fn pg_ident(name: &str) -> Result<String> {
    refuse_nul(name, "A name")?;
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Writes a PostgreSQL string literal `'...'` (requires `standard_conforming_strings = on`).
pub fn pg_literal(value: &str) -> Result<String> {
    refuse_nul(value, "A value")?;
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_identifiers_double_backticks() {
        assert_eq!(mysql_ident("a`b").unwrap(), "`a``b`");
        assert_eq!(
            mysql_ident("x; DROP DATABASE y").unwrap(),
            "`x; DROP DATABASE y`"
        );
        assert!(mysql_ident("a\0b").is_err());
    }

    #[test]
    fn mysql_literals_escape_per_mode() {
        let pw = "it's \\ a; \"pw\"\n\u{1a}é";
        assert_eq!(
            mysql_literal(pw, MysqlEscaping::Backslash).unwrap(),
            "'it''s \\\\ a; \"pw\"\\n\\Zé'"
        );
        assert_eq!(
            mysql_literal(pw, MysqlEscaping::NoBackslash).unwrap(),
            "'it''s \\ a; \"pw\"\n\u{1a}é'"
        );
        assert_eq!(
            mysql_account("u'", "%", MysqlEscaping::Backslash).unwrap(),
            "'u'''@'%'"
        );
    }

    #[test]
    fn sql_mode_detection() {
        assert_eq!(
            MysqlEscaping::from_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"),
            MysqlEscaping::NoBackslash
        );
        assert_eq!(MysqlEscaping::from_sql_mode(""), MysqlEscaping::Backslash);
    }

    #[test]
    fn pg_quoting() {
        assert_eq!(pg_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(pg_literal("it's \\x").unwrap(), "'it''s \\x'");
        assert!(pg_literal("\0").is_err());
    }
}
