//! The compiled rule set and its evaluation.
//!
//! Parsed checks are compiled once per load: `rule:NAME` references become
//! indexes into the rule table and credential field names become an enum, so
//! evaluating a rule walks a tree without hashing or allocating (except for a
//! value with several substitutions, which is rendered into a string).
//!
//! Name resolution follows oslo.policy's rule store: a rule that is neither
//! registered nor in the policy file is looked up as `default`, and so is a
//! `rule:NAME` reference to an undefined rule. When `default` itself is
//! missing, both deny. Reference cycles cannot loop: an evaluation that follows more
//! than [`MAX_DEPTH`] rule references denies as a whole. [`RuleSet::check_references`]
//! reports undefined references, cycles and unregistered overrides so they
//! can be logged at load time.

use std::collections::HashMap;

use super::defaults::{find_default, DEFAULT_RULES};
use super::parser::{Check, Field, Template};
use super::{Credentials, Target};

/// How many `rule:` references one evaluation may follow before it denies.
pub const MAX_DEPTH: usize = 32;

/// The name of the fallback rule (`[oslo_policy] policy_default_rule`).
pub const DEFAULT_RULE: &str = "default";

/// Where a rule's effective check string comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// Trove's registered default.
    Default,
    /// The policy file (or overrides given in code).
    Override,
}

/// A problem in the rule set worth a warning; evaluation still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyWarning {
    /// `rule` references `missing`, which is not defined; the reference is
    /// evaluated as the `default` rule.
    UndefinedReference {
        /// The rule holding the reference.
        rule: String,
        /// The undefined rule name.
        missing: String,
    },
    /// `rule` takes part in a cycle of `rule:` references; it denies
    /// whenever evaluation goes round the cycle.
    Cycle {
        /// A rule on the cycle.
        rule: String,
    },
    /// The policy file sets `rule`, which Trove never checks (a typo, or a
    /// rule only referenced from other rules).
    UnregisteredOverride {
        /// The rule name.
        rule: String,
    },
}

impl std::fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyWarning::UndefinedReference { rule, missing } => write!(
                f,
                "policy rule \"{rule}\" references undefined rule \"{missing}\" (evaluated as \"{DEFAULT_RULE}\")"
            ),
            PolicyWarning::Cycle { rule } => {
                write!(f, "policy rule \"{rule}\" is part of a cyclical reference")
            }
            PolicyWarning::UnregisteredOverride { rule } => {
                write!(f, "policy file sets \"{rule}\", which is not a registered Trove rule")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredKey {
    ProjectId,
    UserId,
    Roles,
    IsAdmin,
    /// A field the request context does not have: never matches.
    Unknown,
}

impl CredKey {
    fn from_name(name: &str) -> Self {
        // The keys a Trove request context exposes to policy checks; `tenant`
        // and `user` are the older names of the project and user ids.
        match name {
            "project_id" | "tenant" | "tenant_id" => CredKey::ProjectId,
            "user_id" | "user" => CredKey::UserId,
            "roles" => CredKey::Roles,
            "is_admin" => CredKey::IsAdmin,
            _ => CredKey::Unknown,
        }
    }
}

#[derive(Debug)]
enum Node {
    Const(bool),
    Rule(usize),
    Role(Template),
    Literal { literal: Box<str>, value: Template },
    Cred { key: CredKey, value: Template },
    Not(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
}

#[derive(Debug)]
struct Entry {
    name: Box<str>,
    check: Check,
    source: RuleSource,
    node: Node,
}

/// An immutable, compiled set of rules: the defaults with the overrides
/// applied.
#[derive(Debug)]
pub struct RuleSet {
    index: HashMap<Box<str>, usize>,
    entries: Vec<Entry>,
    default_idx: Option<usize>,
}

impl RuleSet {
    /// Builds the rule set from Trove's defaults with `overrides` replacing
    /// (or adding to) them. Default check strings are part of the code and
    /// are known to parse.
    pub fn build(overrides: Vec<(String, Check)>) -> Self {
        let mut index: HashMap<Box<str>, usize> = HashMap::with_capacity(DEFAULT_RULES.len() + 8);
        let mut raw: Vec<(Box<str>, Check, RuleSource)> = Vec::with_capacity(DEFAULT_RULES.len());
        for d in DEFAULT_RULES {
            let check = super::parser::parse_check_str(d.name, d.check_str)
                .expect("registered default check strings parse");
            index.insert(d.name.into(), raw.len());
            raw.push((d.name.into(), check, RuleSource::Default));
        }
        for (name, check) in overrides {
            match index.get(name.as_str()) {
                Some(&i) => raw[i] = (name.into(), check, RuleSource::Override),
                None => {
                    index.insert(name.as_str().into(), raw.len());
                    raw.push((name.into(), check, RuleSource::Override));
                }
            }
        }
        let default_idx = index.get(DEFAULT_RULE).copied();
        let entries = raw
            .into_iter()
            .map(|(name, check, source)| {
                let node = compile(&check, &index, default_idx);
                Entry {
                    name,
                    check,
                    source,
                    node,
                }
            })
            .collect();
        RuleSet {
            index,
            entries,
            default_idx,
        }
    }

    /// Evaluates rule `name`, or `default` when no such rule exists.
    pub fn check(&self, name: &str, creds: &Credentials, target: &Target<'_>) -> bool {
        match self.index.get(name).copied().or(self.default_idx) {
            Some(i) => {
                eval(&self.entries, &self.entries[i].node, creds, target, 0).unwrap_or(false)
            }
            None => false,
        }
    }

    /// Evaluates an arbitrary parsed check against this rule set.
    pub fn check_expr(&self, check: &Check, creds: &Credentials, target: &Target<'_>) -> bool {
        let node = compile(check, &self.index, self.default_idx);
        eval(&self.entries, &node, creds, target, 0).unwrap_or(false)
    }

    /// The effective check of rule `name` and where it comes from.
    pub fn rule(&self, name: &str) -> Option<(&Check, RuleSource)> {
        self.index
            .get(name)
            .map(|&i| (&self.entries[i].check, self.entries[i].source))
    }

    /// Names of all rules, defaults first, then rules only in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.name)
    }

    /// Lists undefined `rule:` references, reference cycles and overrides
    /// of rules Trove does not register.
    pub fn check_references(&self) -> Vec<PolicyWarning> {
        let mut warnings = Vec::new();
        for e in &self.entries {
            let mut missing = Vec::new();
            collect_undefined(&e.check, &self.index, &mut missing);
            for m in missing {
                warnings.push(PolicyWarning::UndefinedReference {
                    rule: e.name.to_string(),
                    missing: m,
                });
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            let mut stack = vec![i];
            if self.reaches(i, &e.check, &mut stack) {
                warnings.push(PolicyWarning::Cycle {
                    rule: e.name.to_string(),
                });
            }
        }
        for e in &self.entries {
            if e.source == RuleSource::Override && find_default(&e.name).is_none() {
                warnings.push(PolicyWarning::UnregisteredOverride {
                    rule: e.name.to_string(),
                });
            }
        }
        warnings
    }

    /// True when following defined references from `check` leads back to
    /// rule `start`.
    fn reaches(&self, start: usize, check: &Check, stack: &mut Vec<usize>) -> bool {
        match check {
            Check::Rule(name) => match self.index.get(name.as_str()) {
                Some(&j) if j == start => true,
                Some(&j) if !stack.contains(&j) => {
                    stack.push(j);
                    let found = self.reaches(start, &self.entries[j].check, stack);
                    stack.pop();
                    found
                }
                _ => false,
            },
            Check::Not(c) => self.reaches(start, c, stack),
            Check::And(cs) | Check::Or(cs) => cs.iter().any(|c| self.reaches(start, c, stack)),
            _ => false,
        }
    }
}

fn collect_undefined(check: &Check, index: &HashMap<Box<str>, usize>, out: &mut Vec<String>) {
    match check {
        Check::Rule(name) if !index.contains_key(name.as_str()) && !out.contains(name) => {
            out.push(name.clone());
        }
        Check::Not(c) => collect_undefined(c, index, out),
        Check::And(cs) | Check::Or(cs) => cs.iter().for_each(|c| collect_undefined(c, index, out)),
        _ => {}
    }
}

fn compile(check: &Check, index: &HashMap<Box<str>, usize>, default_idx: Option<usize>) -> Node {
    match check {
        Check::Always => Node::Const(true),
        Check::Never => Node::Const(false),
        Check::Rule(name) => match index.get(name.as_str()).copied().or(default_idx) {
            Some(i) => Node::Rule(i),
            None => Node::Const(false),
        },
        Check::Role(t) => Node::Role(t.clone()),
        Check::Field {
            field: Field::Literal(l),
            value,
        } => Node::Literal {
            literal: l.as_str().into(),
            value: value.clone(),
        },
        Check::Field {
            field: Field::Credential(k),
            value,
        } => Node::Cred {
            key: CredKey::from_name(k),
            value: value.clone(),
        },
        Check::Not(c) => Node::Not(Box::new(compile(c, index, default_idx))),
        Check::And(cs) => Node::And(cs.iter().map(|c| compile(c, index, default_idx)).collect()),
        Check::Or(cs) => Node::Or(cs.iter().map(|c| compile(c, index, default_idx)).collect()),
    }
}

/// Case-insensitive comparison of role names, without allocating for ASCII.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// Evaluates `node`; `None` when evaluation follows more than [`MAX_DEPTH`]
/// rule references (a cycle), which makes the whole check deny even under
/// `not`.
fn eval(
    entries: &[Entry],
    node: &Node,
    creds: &Credentials,
    target: &Target<'_>,
    depth: usize,
) -> Option<bool> {
    let lookup = |k: &str| target.get(k);
    Some(match node {
        Node::Const(b) => *b,
        Node::Rule(i) => {
            if depth >= MAX_DEPTH {
                return None;
            }
            eval(entries, &entries[*i].node, creds, target, depth + 1)?
        }
        Node::Role(t) => match t.render(lookup) {
            Some(want) => creds.roles.iter().any(|r| eq_ignore_case(r, &want)),
            None => false,
        },
        Node::Literal { literal, value } => value.render(lookup).is_some_and(|v| *v == **literal),
        Node::Cred { key, value } => {
            let Some(want) = value.render(lookup) else {
                return Some(false);
            };
            match key {
                CredKey::ProjectId => creds.project_id == *want,
                CredKey::UserId => creds.user_id == *want,
                CredKey::Roles => creds.roles.iter().any(|r| *r == *want),
                CredKey::IsAdmin => (if creds.is_admin { "True" } else { "False" }) == want,
                CredKey::Unknown => false,
            }
        }
        Node::Not(n) => !eval(entries, n, creds, target, depth)?,
        Node::And(ns) => {
            for n in ns.iter() {
                if !eval(entries, n, creds, target, depth)? {
                    return Some(false);
                }
            }
            true
        }
        Node::Or(ns) => {
            for n in ns.iter() {
                if eval(entries, n, creds, target, depth)? {
                    return Some(true);
                }
            }
            false
        }
    })
}
