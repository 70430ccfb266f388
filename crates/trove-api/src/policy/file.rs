//! Reading the policy override file (`[oslo_policy] policy_file`).
//!
//! The file maps rule names to check strings, in YAML (`policy.yaml`, the
//! default name) or JSON (`policy.json`, the older form). As in oslo.policy,
//! JSON is tried first and YAML second, so either syntax works under either
//! name; the extension only decides which parser's error is reported. A rule
//! may also be given in the legacy list-of-lists form. An empty file, or one
//! holding only comments (like the generated sample), means "no overrides".
//!
//! YAML is read with `serde_norway`: it is the maintained continuation of
//! `serde_yaml` (deprecated upstream), keeps the same serde API, and its
//! YAML core is maintained alongside it. A policy file is a flat map of
//! strings, so nothing beyond a plain serde-compatible loader is needed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::parser::{parse_check_str, parse_list_rule, Check, ParseError};

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file exists but cannot be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON, not a mapping, or a rule's value is
    /// neither a string nor a list.
    #[error("policy file {}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the rule where there is one.
        message: String,
    },
    /// A rule's check string does not parse.
    #[error("policy file {}: {source}", path.display())]
    Rule {
        /// The file.
        path: PathBuf,
        /// The rule, column and problem.
        #[source]
        source: ParseError,
    },
    /// A check string given in code (not from a file) does not parse.
    #[error(transparent)]
    Check(#[from] ParseError),
}

/// Resolves `[oslo_policy] policy_file` as oslo.config does: an absolute
/// path is used as is, a relative one is looked up beside the configuration
/// file (`base_dir`), or in the working directory when there is none.
pub fn resolve_policy_path(policy_file: &Path, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(dir) if policy_file.is_relative() => dir.join(policy_file),
        _ => policy_file.to_path_buf(),
    }
}

/// Parses the text of a policy file into `(rule name, check)` pairs, in the
/// order of the file's keys (sorted). `path` is only used in errors and to
/// pick which syntax error to report.
pub fn parse_policy_file(path: &Path, data: &str) -> Result<Vec<(String, Check)>, PolicyError> {
    let format_err = |message: String| PolicyError::Format {
        path: path.to_path_buf(),
        message,
    };
    let parsed: Value = match serde_json::from_str::<Value>(data) {
        Ok(v) => v,
        Err(json_err) => match serde_norway::from_str::<Value>(data) {
            Ok(v) => v,
            Err(yaml_err) => {
                let is_json = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"));
                return Err(format_err(if is_json {
                    format!("not valid JSON: {json_err}")
                } else {
                    format!("not valid YAML: {yaml_err}")
                }));
            }
        },
    };
    let map = match parsed {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        other => {
            return Err(format_err(format!(
                "expected a mapping of rule names to check strings, found {}",
                kind_of(&other)
            )))
        }
    };
    let mut rules = Vec::with_capacity(map.len());
    for (name, value) in map {
        let check = rule_from_value(&name, &value).map_err(|e| match e {
            RuleValueError::Parse(source) => PolicyError::Rule {
                path: path.to_path_buf(),
                source,
            },
            RuleValueError::Shape(msg) => format_err(format!("rule \"{name}\": {msg}")),
        })?;
        rules.push((name, check));
    }
    Ok(rules)
}

enum RuleValueError {
    Parse(ParseError),
    Shape(String),
}

fn rule_from_value(name: &str, value: &Value) -> Result<Check, RuleValueError> {
    match value {
        Value::String(s) => parse_check_str(name, s).map_err(RuleValueError::Parse),
        // oslo.policy treats an empty value (`rule:` with nothing after it in
        // YAML) like an empty check string: always allowed.
        Value::Null => Ok(Check::Always),
        Value::Array(items) => {
            let mut alternatives = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => alternatives.push(vec![s.clone()]),
                    Value::Array(inner) => {
                        let mut ands = Vec::with_capacity(inner.len());
                        for v in inner {
                            let Value::String(s) = v else {
                                return Err(RuleValueError::Shape(format!(
                                    "list items must be strings, found {}",
                                    kind_of(v)
                                )));
                            };
                            ands.push(s.clone());
                        }
                        alternatives.push(ands);
                    }
                    other => {
                        return Err(RuleValueError::Shape(format!(
                            "list items must be strings or lists of strings, found {}",
                            kind_of(other)
                        )))
                    }
                }
            }
            parse_list_rule(name, &alternatives).map_err(RuleValueError::Parse)
        }
        other => Err(RuleValueError::Shape(format!(
            "expected a check string, found {}",
            kind_of(other)
        ))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Reads and parses the policy file at `path`. `Ok(None)` when it does not
/// exist (defaults only, as oslo.policy does).
pub fn read_policy_file(path: &Path) -> Result<Option<Vec<(String, Check)>>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(data) => parse_policy_file(path, &data).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
