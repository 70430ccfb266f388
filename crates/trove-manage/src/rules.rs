//! Parsing and checking a validation-rules file (`validation-rules.json`).
//!
//! Format: `{"configuration-parameters": [{"name", "restart_required", "type", "min"?, "max"?}]}`.
//! Other keys are ignored. `min`/`max` are read from the raw JSON text as decimals of any
//! size (bounds such as `18446744073709551615` do not fit `i64`, and `f64` would round them)
//! and stored as canonical decimal text. The whole file is checked before anything is
//! written.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;
use trove_db::ConfigParamRule;

use crate::ManageError;

/// Data types a rule may declare (`list` appears in Trove's own files).
pub const DATA_TYPES: &[&str] = &["integer", "string", "float", "boolean", "list"];

/// Longest bound text the `min_size`/`max_size` columns (VARCHAR(40)) hold.
pub const MAX_BOUND_LEN: usize = 40;

#[derive(Deserialize)]
struct File<'a> {
    #[serde(rename = "configuration-parameters", borrow)]
    parameters: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawRule<'a> {
    name: Option<serde_json::Value>,
    restart_required: Option<serde_json::Value>,
    #[serde(rename = "type")]
    data_type: Option<serde_json::Value>,
    #[serde(borrow)]
    min: Option<&'a RawValue>,
    #[serde(borrow)]
    max: Option<&'a RawValue>,
}

fn invalid(msg: String) -> ManageError {
    ManageError::Invalid(msg)
}

/// Parses and checks a rules file; returns one rule per entry, in file order.
pub fn parse_rules(text: &str) -> Result<Vec<ConfigParamRule>, ManageError> {
    let file: File<'_> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("malformed validation rules JSON: {e}")))?;
    let entries = file.parameters.ok_or_else(|| {
        invalid("validation rules file has no 'configuration-parameters' list".into())
    })?;
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(entries.len());
    for (i, raw) in entries.iter().enumerate() {
        let r: RawRule<'_> = serde_json::from_str(raw.get()).map_err(|e| {
            invalid(format!(
                "configuration parameter #{}: not an object: {e}",
                i + 1
            ))
        })?;
        let name = match &r.name {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "configuration parameter #{}: 'name' must be a non-empty string",
                    i + 1
                )))
            }
            None => {
                return Err(invalid(format!(
                    "configuration parameter #{}: missing 'name'",
                    i + 1
                )))
            }
        };
        let at = |what: &str| format!("configuration parameter '{name}': {what}");
        let restart_required = match &r.restart_required {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(invalid(at("'restart_required' must be true or false"))),
            None => return Err(invalid(at("missing 'restart_required'"))),
        };
        let data_type = match &r.data_type {
            Some(serde_json::Value::String(s)) if DATA_TYPES.contains(&s.as_str()) => s.clone(),
            Some(serde_json::Value::String(s)) => {
                return Err(invalid(at(&format!(
                    "unknown type '{s}' (expected one of {})",
                    DATA_TYPES.join(", ")
                ))))
            }
            Some(_) => return Err(invalid(at("'type' must be a string"))),
            None => return Err(invalid(at("missing 'type'"))),
        };
        let numeric = data_type == "integer" || data_type == "float";
        let bound = |raw: Option<&RawValue>, key: &str| -> Result<Option<Decimal>, ManageError> {
            let Some(raw) = raw else { return Ok(None) };
            let text = raw.get().trim();
            if text == "null" {
                return Ok(None);
            }
            let d = Decimal::parse(text)
                .ok_or_else(|| invalid(at(&format!("'{key}' must be a number, got {text}"))))?;
            if !numeric {
                return Err(invalid(at(&format!(
                    "'{key}' is only allowed for integer and float parameters, not {data_type}"
                ))));
            }
            if data_type == "integer" && !d.is_integral() {
                return Err(invalid(at(&format!(
                    "'{key}' of an integer parameter must be an integer, got {text}"
                ))));
            }
            if d.to_string().len() > MAX_BOUND_LEN {
                return Err(invalid(at(&format!(
                    "'{key}' {text} has more than {MAX_BOUND_LEN} digits"
                ))));
            }
            Ok(Some(d))
        };
        let min = bound(r.min, "min")?;
        let max = bound(r.max, "max")?;
        if let (Some(lo), Some(hi)) = (&min, &max) {
            if lo.cmp(hi) == Ordering::Greater {
                return Err(invalid(at(&format!("min {lo} is greater than max {hi}"))));
            }
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(at("listed more than once")));
        }
        rules.push(ConfigParamRule {
            name,
            restart_required,
            data_type,
            min: min.map(|d| d.to_string()),
            max: max.map(|d| d.to_string()),
        });
    }
    Ok(rules)
}

/// A decimal number of any size: sign, integer digits and fraction digits, without
/// leading/trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

impl Decimal {
    /// Parses JSON number syntax (`-12`, `0.5`, `1e3`, `2.5E-2`). Returns `None` otherwise.
    pub fn parse(s: &str) -> Option<Decimal> {
        let (negative, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => {
                let e = &rest[i + 1..];
                let e = e.strip_prefix('+').unwrap_or(e);
                (&rest[..i], e.parse::<i64>().ok()?)
            }
            None => (rest, 0),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if mantissa.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        if exp.abs() > 400 {
            return None;
        }
        let mut digits = format!("{int}{frac}");
        let mut point = int.len() as i64 + exp;
        if point < 0 {
            digits = "0".repeat((-point) as usize) + &digits;
            point = 0;
        }
        if point as usize > digits.len() {
            digits.push_str(&"0".repeat(point as usize - digits.len()));
        }
        let (i, f) = digits.split_at(point as usize);
        let int = i.trim_start_matches('0').to_string();
        let frac = f.trim_end_matches('0').to_string();
        let zero = int.is_empty() && frac.is_empty();
        Some(Decimal {
            negative: negative && !zero,
            int,
            frac,
        })
    }

    /// True when the number has no fractional part.
    pub fn is_integral(&self) -> bool {
        self.frac.is_empty()
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(if self.int.is_empty() { "0" } else { &self.int })?;
        if !self.frac.is_empty() {
            write!(f, ".{}", self.frac)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn decimals_parse_compare_and_print() {
        assert_eq!(
            d("18446744073709551615").to_string(),
            "18446744073709551615"
        );
        assert_eq!(d("-0").to_string(), "0");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("2.50E-2").to_string(), "0.025");
        assert_eq!(d("0.000").to_string(), "0");
        assert!(d("18446744073709551615") > d("9223372036854775807"));
        assert!(d("-5") < d("-1"));
        assert!(d("-1") < d("0"));
        assert!(d("0.5") < d("1"));
        assert!(d("10") > d("9.99"));
        assert!(!d("1.5").is_integral());
        for bad in ["", "-", "1.", ".5", "01x", "\"1\"", "true", "1e"] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn rules_are_checked() {
        let ok = r#"{"configuration-parameters": [
            {"name": "innodb_buffer_pool_size", "restart_required": true, "type": "integer", "min": 5242880, "max": 18446744073709551615, "extra": 1},
            {"name": "long_query_time", "restart_required": false, "type": "float", "min": 0}
        ]}"#;
        let rules = parse_rules(ok).unwrap();
        assert_eq!(rules[0].max.as_deref(), Some("18446744073709551615"));
        assert_eq!(rules[1].min.as_deref(), Some("0"));
        assert_eq!(rules[1].max, None);
        let cases = [
            ("{", "malformed"),
            ("[]", "malformed"),
            ("{}", "configuration-parameters"),
            (
                r#"{"configuration-parameters": [{"restart_required": true, "type": "integer"}]}"#,
                "missing 'name'",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "type": "integer"}]}"#,
                "restart_required",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": "yes", "type": "integer"}]}"#,
                "restart_required",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "int"}]}"#,
                "unknown type 'int'",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "integer", "min": 10, "max": 1}]}"#,
                "min 10 is greater than max 1",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "integer", "min": "1"}]}"#,
                "'min' must be a number",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "integer", "max": 1.5}]}"#,
                "must be an integer",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "string", "max": 1}]}"#,
                "only allowed",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "float", "max": 1.79769e+308}]}"#,
                "more than 40 digits",
            ),
            (
                r#"{"configuration-parameters": [{"name": "a", "restart_required": true, "type": "string"}, {"name": "a", "restart_required": true, "type": "string"}]}"#,
                "more than once",
            ),
        ];
        for (text, want) in cases {
            let e = parse_rules(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
