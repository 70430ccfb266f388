//! The INI dialect of oslo.config.
//!
//! * `[group]` starts a section; `[DEFAULT]` is matched case-insensitively, other group
//!   names are case-sensitive. A group may appear several times; its sections merge.
//! * `key = value` or `key: value` (whichever separator comes first); key and value are
//!   trimmed, and one pair of matching surrounding quotes (`"..."` or `'...'`) is removed.
//! * Lines starting with `#` or `;` are comments; blank lines end a value.
//! * A line starting with a space or tab continues the previous value (joined with a
//!   newline); without a previous value it is an error.
//! * A repeated key: the last occurrence wins.
//!
//! Values are kept as text here; interpolation and typing happen in the loader.

use crate::error::ConfigError;

/// One `key = value` assignment.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// All assignments of one group within one file, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// A parsed file.
#[derive(Debug, Clone)]
pub(crate) struct IniFile {
    /// Path or source name, used in messages.
    pub source: String,
    pub sections: Vec<Section>,
}

/// Canonical group name: `DEFAULT` in any case becomes `DEFAULT`.
pub(crate) fn normalize_group(name: &str) -> String {
    if name.eq_ignore_ascii_case("DEFAULT") {
        "DEFAULT".to_string()
    } else {
        name.to_string()
    }
}

impl IniFile {
    /// Parses `text`; `source` names it in errors.
    pub(crate) fn parse(source: &str, text: &str) -> Result<IniFile, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut file = IniFile {
            source: source.to_string(),
            sections: Vec::new(),
        };
        let mut current: Option<usize> = None;
        // Key being assembled: (key, value lines, line number).
        let mut pending: Option<(String, Vec<String>, usize)> = None;
        let err = |line: usize, message: &str| ConfigError::Parse {
            file: source.to_string(),
            line,
            message: message.to_string(),
        };

        for (idx, raw_line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let line = raw_line.trim_end();
            if line.is_empty() {
                file.flush(current, &mut pending);
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match pending.as_mut() {
                    Some((_, value, _)) => value.push(line.trim_start().to_string()),
                    None => return Err(err(
                        lineno,
                        "unexpected continuation line (indented line without an option above it)",
                    )),
                }
                continue;
            }
            file.flush(current, &mut pending);
            if line.starts_with('[') {
                if !line.ends_with(']') {
                    return Err(err(lineno, "section header without closing ']'"));
                }
                if line.len() <= 2 {
                    return Err(err(lineno, "empty section name"));
                }
                let name = normalize_group(&line[1..line.len() - 1]);
                current = Some(match file.sections.iter().position(|s| s.name == name) {
                    Some(i) => i,
                    None => {
                        file.sections.push(Section {
                            name,
                            line: lineno,
                            entries: Vec::new(),
                        });
                        file.sections.len() - 1
                    }
                });
            } else if line.starts_with(['#', ';']) {
                // Comment.
            } else {
                let colon = line.find(':');
                let equal = line.find('=');
                let split = match (equal, colon) {
                    (None, None) => {
                        return Err(err(lineno, "expected 'option = value' or a [group] header"))
                    }
                    (Some(e), Some(c)) => e.min(c),
                    (Some(e), None) => e,
                    (None, Some(c)) => c,
                };
                let key = line[..split].trim();
                if key.is_empty() {
                    return Err(err(lineno, "option name is empty"));
                }
                if current.is_none() {
                    return Err(err(lineno, "option outside of any [group] section"));
                }
                let mut value = line[split + 1..].trim();
                if (value.starts_with('"') || value.starts_with('\''))
                    && value.ends_with(&value[..1])
                {
                    // As oslo.config: a lone quote character becomes the empty string.
                    value = value.get(1..value.len() - 1).unwrap_or("");
                }
                pending = Some((key.to_string(), vec![value.to_string()], lineno));
            }
        }
        file.flush(current, &mut pending);
        Ok(file)
    }

    fn flush(
        &mut self,
        current: Option<usize>,
        pending: &mut Option<(String, Vec<String>, usize)>,
    ) {
        if let (Some(i), Some((key, value, line))) = (current, pending.take()) {
            self.sections[i].entries.push(Entry {
                key,
                value: value.join("\n"),
                line,
            });
        }
    }

    /// The section of `group`, if the file has one.
    pub(crate) fn section(&self, group: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == group)
    }

    /// The last assignment of `key` in `group`.
    pub(crate) fn get(&self, group: &str, key: &str) -> Option<&Entry> {
        self.section(group)?
            .entries
            .iter()
            .rev()
            .find(|e| e.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> IniFile {
        IniFile::parse("t.conf", text).unwrap()
    }

    #[test]
    fn separators_quotes_comments() {
        let f = parse(
            "# comment\n[DEFAULT]\na = 1\nb: two\n; other comment\nc = \"quoted value \"\nd='x'\ne = \"\nf = a=b:c\ng: h=i\n",
        );
        let v = |k: &str| f.get("DEFAULT", k).unwrap().value.clone();
        assert_eq!(v("a"), "1");
        assert_eq!(v("b"), "two");
        assert_eq!(v("c"), "quoted value ");
        assert_eq!(v("d"), "x");
        assert_eq!(v("e"), "");
        assert_eq!(v("f"), "a=b:c");
        assert_eq!(v("g"), "h=i");
    }

    #[test]
    fn continuation_duplicates_and_merged_sections() {
        let f = parse("[default]\nlist = a,\n  b,\n\tc\nx = 1\n[g]\ny = 1\n[DEFAULT]\nx = 2\n");
        assert_eq!(f.get("DEFAULT", "list").unwrap().value, "a,\nb,\nc");
        assert_eq!(f.get("DEFAULT", "x").unwrap().value, "2");
        assert_eq!(f.get("DEFAULT", "x").unwrap().line, 9);
        assert_eq!(f.sections.len(), 2);
        assert!(f.get("G", "y").is_none(), "group names are case-sensitive");
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = |t: &str| IniFile::parse("t.conf", t).unwrap_err().to_string();
        assert_eq!(
            e("[DEFAULT]\nfoo\n"),
            "t.conf:2: expected 'option = value' or a [group] header"
        );
        assert_eq!(
            e("[DEFAULT\n"),
            "t.conf:1: section header without closing ']'"
        );
        assert_eq!(e("[]\n"), "t.conf:1: empty section name");
        assert_eq!(
            e("a = 1\n"),
            "t.conf:1: option outside of any [group] section"
        );
        assert_eq!(e("[x]\n= 1\n"), "t.conf:2: option name is empty");
        assert!(e("[x]\n\n  a = 1\n").starts_with("t.conf:3: unexpected continuation"));
    }
}
