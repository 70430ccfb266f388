//! Values of configuration groups: validation against a datastore version's rules
//! (internals-config.md §5, api.md §10.4), the text stored per value, and the JSON value
//! shown back from that text.
//!
//! Rules are matched by name without regard to case. Type checks follow the JSON type of
//! each value: `string` needs a string, `integer` an integer (a boolean passes too and is
//! not range-checked), `float` a number written with a fraction or exponent, `boolean` a
//! boolean. Bounds are decimal text of any size and are compared as decimals, never
//! through `i64`/`f64`.

use std::cmp::Ordering;
use std::str::FromStr;

use serde_json::{Map, Number, Value};
use trove_db::ConfigParam;

use crate::error::{ApiError, ApiResult};

/// Longest value text the `configuration_parameters` table holds.
pub const VALUE_MAX: usize = 128;

/// A decimal number: sign, significant digits without leading or trailing zeros, and the
/// exponent such that the value is `0.d1d2d3... * 10^exp`. Zero has no digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl FromStr for Decimal {
    type Err = ();

    /// Parses `[-+]digits[.digits][(e|E)[-+]digits]` (a JSON number or a bound's text).
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        let (neg, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, e) = match rest.find(['e', 'E']) {
            Some(i) => {
                let e: i64 = rest[i + 1..].parse().map_err(|_| ())?;
                (&rest[..i], e)
            }
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(());
        }
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let mut exp = (int.len() as i64).checked_add(e).ok_or(())?;
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        exp -= lead as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Decimal {
                neg: false,
                digits,
                exp: 0,
            });
        }
        Ok(Decimal { neg, digits, exp })
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |d: &Decimal| match (d.digits.is_empty(), d.neg) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = self
            .exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits));
        if a < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A bound of a rule, if it is set and readable as a decimal.
fn bound(text: &Option<String>) -> Option<(Decimal, &str)> {
    let t = text.as_deref()?.trim();
    Decimal::from_str(t).ok().map(|d| (d, t))
}

/// The rule named `key` (case-insensitive).
pub fn find_rule<'a>(rules: &'a [ConfigParam], key: &str) -> Option<&'a ConfigParam> {
    let lower = key.to_lowercase();
    rules.iter().find(|r| r.name.to_lowercase() == lower)
}

/// Whether `v` is of the rule type `data_type`; `None` when the type is not one the API
/// can check (`list`, anything unknown).
fn type_matches(data_type: &str, v: &Value) -> Option<bool> {
    Some(match data_type {
        "string" => v.is_string(),
        "integer" => v.is_boolean() || v.is_i64() || v.is_u64(),
        "float" => v.is_f64(),
        "boolean" => v.is_boolean(),
        _ => return None,
    })
}

/// The text stored for a value: strings as given, booleans as `1`/`0`, numbers as
/// written.
pub fn stored_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        other => other.to_string(),
    }
}

/// Checks `values` against the rules of a version (`ds_name` and `version_name` name it
/// in messages) and returns the `(key, stored text)` pairs to save, keys as given.
///
/// Errors: 422 when the version has no rules, a key is unknown, a value has the wrong
/// JSON type, a number is out of bounds, or a value's text is longer than
/// [`VALUE_MAX`]; 400 when a rule has a type the API cannot check.
pub fn validate(
    values: &Map<String, Value>,
    rules: &[ConfigParam],
    ds_name: &str,
    version_name: &str,
) -> ApiResult<Vec<(String, String)>> {
    if rules.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "Configuration groups are not supported for this datastore: {ds_name} {version_name}"
        )));
    }
    let mut out = Vec::with_capacity(values.len());
    for (k, v) in values {
        let Some(rule) = find_rule(rules, k) else {
            return Err(ApiError::unprocessable(format!(
                "The configuration parameter {k} is not supported for this datastore: \
                 {ds_name} {version_name}."
            )));
        };
        match type_matches(&rule.data_type, v) {
            None => {
                return Err(ApiError::bad_request(
                    "Invalid or unsupported type defined in the configuration-parameters \
                     configuration file.",
                ))
            }
            Some(false) => {
                return Err(ApiError::unprocessable(format!(
                    "The value provided for the configuration parameter {k} is not of type {}.",
                    rule.data_type
                )))
            }
            Some(true) => {}
        }
        if let Value::Number(n) = v {
            check_bounds(k, n, rule)?;
        }
        let text = stored_text(v);
        if text.chars().count() > VALUE_MAX {
            return Err(ApiError::unprocessable(format!(
                "The value provided for the configuration parameter {k} is too long \
                 (at most {VALUE_MAX} characters)."
            )));
        }
        out.push((k.clone(), text));
    }
    Ok(out)
}

fn check_bounds(key: &str, n: &Number, rule: &ConfigParam) -> ApiResult<()> {
    let Ok(value) = Decimal::from_str(&n.to_string()) else {
        return Ok(());
    };
    if let Some((min, text)) = bound(&rule.min_size) {
        if value < min {
            return Err(ApiError::unprocessable(format!(
                "The value for the configuration parameter {key} is less than the minimum \
                 allowed: {text}"
            )));
        }
    }
    if let Some((max, text)) = bound(&rule.max_size) {
        if value > max {
            return Err(ApiError::unprocessable(format!(
                "The value for the configuration parameter {key} is greater than the maximum \
                 allowed: {text}"
            )));
        }
    }
    Ok(())
}

/// The JSON value shown for stored `text` of a parameter with rule type `data_type`
/// (`None`: no rule, shown as text). Text that does not read as the type is shown as is.
pub fn typed_value(data_type: Option<&str>, text: &str) -> Value {
    let t = text.trim();
    let as_text = || Value::String(text.to_string());
    match data_type {
        Some("integer") => {
            if let Ok(n) = Number::from_str(t).map(Value::Number) {
                if n.is_i64() || n.is_u64() {
                    return n;
                }
            }
            match t.to_ascii_lowercase().as_str() {
                "true" => Value::from(1),
                "false" => Value::from(0),
                _ => as_text(),
            }
        }
        Some("float") => t
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(as_text),
        Some("boolean") => match t.to_ascii_lowercase().as_str() {
            "1" | "true" => Value::Bool(true),
            "0" | "false" => Value::Bool(false),
            _ => as_text(),
        },
        _ => as_text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decimals_compare_by_value() {
        assert!(d("18446744073709551615") > d("18446744073709551614"));
        assert!(d("18446744073709551616") > d("18446744073709551615"));
        assert!(d("-1") < d("0"));
        assert!(d("-2") < d("-1"));
        assert_eq!(d("0.0").cmp(&d("-0")), Ordering::Equal);
        assert_eq!(d("1e3").cmp(&d("1000")), Ordering::Equal);
        assert_eq!(d("001.500").cmp(&d("1.5")), Ordering::Equal);
        assert!(d("0.5") < d("1"));
        assert!(d("2.5E-1") < d("0.3"));
        assert!(d("99") < d("100"));
        assert!(Decimal::from_str("abc").is_err());
        assert!(Decimal::from_str("").is_err());
        assert!(Decimal::from_str("1e").is_err());
    }

    fn rule(name: &str, t: &str, min: Option<&str>, max: Option<&str>) -> ConfigParam {
        ConfigParam {
            id: "x".into(),
            name: name.into(),
            datastore_version_id: "v".into(),
            restart_required: false,
            max_size: max.map(Into::into),
            min_size: min.map(Into::into),
            data_type: t.into(),
        }
    }

    #[test]
    fn types_and_bounds() {
        let rules = [
            rule("max_connections", "integer", Some("1"), Some("100")),
            rule("long_query_time", "float", Some("0"), None),
            rule("autocommit", "boolean", None, None),
            rule("character_set_server", "string", None, None),
            rule("big", "integer", Some("0"), Some("18446744073709551615")),
            rule("listy", "list", None, None),
        ];
        let check = |v: Value| {
            validate(v.as_object().unwrap(), &rules, "mariadb", "10.11")
                .map_err(|e| (e.status().as_u16(), e.message().to_string()))
        };
        assert_eq!(
            check(
                json!({"MAX_Connections": 5, "long_query_time": 0.5, "autocommit": true,
                         "character_set_server": "utf8mb4", "big": 18446744073709551615u64})
            )
            .unwrap(),
            vec![
                ("MAX_Connections".to_string(), "5".to_string()),
                ("autocommit".into(), "1".into()),
                ("big".into(), "18446744073709551615".into()),
                ("character_set_server".into(), "utf8mb4".into()),
                ("long_query_time".into(), "0.5".into()),
            ]
        );
        // A boolean passes as an integer and skips the bounds.
        assert_eq!(
            check(json!({"max_connections": false})).unwrap(),
            vec![("max_connections".to_string(), "0".to_string())]
        );
        assert_eq!(
            check(json!({"long_query_time": 5})).unwrap_err(),
            (
                422,
                "The value provided for the configuration parameter long_query_time is not of type float."
                    .into()
            )
        );
        assert_eq!(check(json!({"max_connections": 5.0})).unwrap_err().0, 422);
        assert_eq!(check(json!({"max_connections": "5"})).unwrap_err().0, 422);
        assert_eq!(check(json!({"autocommit": 1})).unwrap_err().0, 422);
        assert_eq!(
            check(json!({"character_set_server": 1})).unwrap_err().0,
            422
        );
        assert_eq!(
            check(json!({"max_connections": 0})).unwrap_err().1,
            "The value for the configuration parameter max_connections is less than the minimum allowed: 1"
        );
        assert_eq!(
            check(json!({"max_connections": 101})).unwrap_err().1,
            "The value for the configuration parameter max_connections is greater than the maximum allowed: 100"
        );
        assert_eq!(check(json!({"long_query_time": -0.1})).unwrap_err().0, 422);
        assert_eq!(
            check(json!({"long_query_time": 1e300})).unwrap(),
            vec![("long_query_time".to_string(), "1e+300".to_string())]
        );
        assert_eq!(
            check(json!({"nosuch": 1})).unwrap_err().1,
            "The configuration parameter nosuch is not supported for this datastore: mariadb 10.11."
        );
        assert_eq!(check(json!({"listy": "a"})).unwrap_err().0, 400);
        assert!(check(json!({"character_set_server": "x".repeat(128)})).is_ok());
        assert_eq!(
            check(json!({"character_set_server": "x".repeat(129)}))
                .unwrap_err()
                .0,
            422
        );
        assert_eq!(
            validate(&Map::new(), &[], "mariadb", "10.6")
                .unwrap_err()
                .message(),
            "Configuration groups are not supported for this datastore: mariadb 10.6"
        );
    }

    #[test]
    fn typed_back_from_text() {
        assert_eq!(typed_value(Some("integer"), "400"), json!(400));
        assert_eq!(
            typed_value(Some("integer"), "18446744073709551615"),
            json!(18446744073709551615u64)
        );
        assert_eq!(typed_value(Some("float"), "0.5"), json!(0.5));
        assert_eq!(typed_value(Some("boolean"), "1"), json!(true));
        assert_eq!(typed_value(Some("boolean"), "0"), json!(false));
        assert_eq!(typed_value(Some("string"), "utf8"), json!("utf8"));
        assert_eq!(typed_value(None, "12"), json!("12"));
        assert_eq!(typed_value(Some("integer"), "abc"), json!("abc"));
    }
}
