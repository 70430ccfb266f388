//! Value types of options and how a raw string from a file becomes one.
//!
//! Every Rust type used for an option field implements [`OptValue`], which names the type
//! in the sample file and parses oslo.config's text syntax: booleans
//! `true/false/1/0/yes/no/on/off`, comma-separated lists, `key:value` dicts, port numbers,
//! IP addresses, URIs and port-range lists. Range and choice checks come from the option's
//! [`OptMeta`](crate::meta::OptMeta).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::meta::OptMeta;

/// A secret string option value (passwords, keys, URLs with credentials).
///
/// `Debug` and `Display` never show the value; read it with [`Secret::expose_secret`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// True when the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// An inclusive range of ports from a port list option such as `tcp_ports = 3306,4444-4445`.
///
/// A single port `p` is the range `p..=p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port of the range (1..65535).
    pub start: u16,
    /// Last port of the range, inclusive (>= `start`).
    pub end: u16,
}

impl PortRange {
    /// A range holding a single port.
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let port = |p: &str| -> Result<u16, String> {
            match p.trim().parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(format!("invalid port {:?}: must be 1..65535", p.trim())),
            }
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (start, end) = (port(a)?, port(b)?);
                if start > end {
                    return Err(format!("invalid port range {s:?}: start above end"));
                }
                Ok(PortRange { start, end })
            }
            None => Ok(PortRange::single(port(s)?)),
        }
    }
}

/// Conversion of a raw option string into a typed value.
///
/// Implemented for every type an option field may have; `Option<T>` marks options that may
/// be unset.
pub trait OptValue: Sized {
    /// Type name shown in the sample config (`# Type: integer`).
    const TYPE_NAME: &'static str;
    /// Whether values are secrets (never echoed in errors).
    const SECRET: bool = false;

    /// Parses `raw` (already interpolated). The error is the reason, for example
    /// `invalid integer value "ten"`.
    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String>;

    /// The value of an option with no value at all (unset and no default); `None` when the
    /// type cannot represent "unset", which makes such an option required.
    fn unset() -> Option<Self> {
        None
    }
}

fn check_choices(value: &str, meta: &OptMeta) -> Result<(), String> {
    if let Some(choices) = meta.choices {
        if !choices.contains(&value) {
            return Err(format!(
                "invalid value {value:?}, allowed values: {}",
                choices.join(", ")
            ));
        }
    }
    Ok(())
}

impl OptValue for String {
    const TYPE_NAME: &'static str = "string";

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        check_choices(raw, meta)?;
        Ok(raw.to_string())
    }
}

impl OptValue for Secret {
    const TYPE_NAME: &'static str = "string";
    const SECRET: bool = true;

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        if let Some(choices) = meta.choices {
            if !choices.contains(&raw) {
                return Err(format!(
                    "invalid value (hidden), allowed values: {}",
                    choices.join(", ")
                ));
            }
        }
        Ok(Secret::new(raw))
    }
}

impl OptValue for i64 {
    const TYPE_NAME: &'static str = "integer";

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        let n: i64 = raw
            .trim()
            .parse()
            .map_err(|_| format!("invalid integer value {raw:?}"))?;
        if let Some(min) = meta.min {
            if (n as f64) < min {
                return Err(format!("value {n} is less than the minimum {min}"));
            }
        }
        if let Some(max) = meta.max {
            if (n as f64) > max {
                return Err(format!("value {n} is greater than the maximum {max}"));
            }
        }
        Ok(n)
    }
}

impl OptValue for f64 {
    const TYPE_NAME: &'static str = "floating point";

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        let n: f64 = raw
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| format!("invalid floating point value {raw:?}"))?;
        if let Some(min) = meta.min {
            if n < min {
                return Err(format!("value {n} is less than the minimum {min}"));
            }
        }
        if let Some(max) = meta.max {
            if n > max {
                return Err(format!("value {n} is greater than the maximum {max}"));
            }
        }
        Ok(n)
    }
}

impl OptValue for bool {
    const TYPE_NAME: &'static str = "boolean";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("invalid boolean value {raw:?}")),
        }
    }
}

/// Port numbers: 1..65535.
impl OptValue for u16 {
    const TYPE_NAME: &'static str = "port number";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        match raw.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(_) => Err(format!("port {raw:?} out of range 1..65535")),
            Err(_) => Err(format!("invalid port value {raw:?}")),
        }
    }
}

impl OptValue for IpAddr {
    const TYPE_NAME: &'static str = "IP address";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        raw.trim()
            .parse()
            .map_err(|_| format!("invalid IP address value {raw:?}"))
    }
}

impl OptValue for url::Url {
    const TYPE_NAME: &'static str = "URI";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        url::Url::parse(raw.trim()).map_err(|e| format!("invalid URI value {raw:?}: {e}"))
    }
}

/// Splits a list value on commas, trimming items; an empty value is the empty list.
fn split_list(raw: &str) -> Vec<&str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(',').map(str::trim).collect()
}

impl OptValue for Vec<String> {
    const TYPE_NAME: &'static str = "list";

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        let items: Vec<String> = split_list(raw).into_iter().map(String::from).collect();
        for item in &items {
            check_choices(item, meta)?;
        }
        Ok(items)
    }
}

impl OptValue for Vec<PortRange> {
    const TYPE_NAME: &'static str = "port range list";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        split_list(raw)
            .into_iter()
            .map(|item| item.parse::<PortRange>())
            .collect()
    }
}

impl OptValue for BTreeMap<String, String> {
    const TYPE_NAME: &'static str = "dict";

    fn parse(raw: &str, _meta: &OptMeta) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for item in split_list(raw) {
            let (k, v) = item
                .split_once(':')
                .ok_or_else(|| format!("invalid dict value {raw:?}: {item:?} is not key:value"))?;
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(map)
    }
}

/// Optional options: unset, or set to an empty value, give `None`.
impl<T: OptValue> OptValue for Option<T> {
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    const SECRET: bool = T::SECRET;

    fn parse(raw: &str, meta: &OptMeta) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        T::parse(raw, meta).map(Some)
    }

    fn unset() -> Option<Self> {
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Dflt, OptMeta};

    fn meta() -> OptMeta {
        OptMeta::new("x", "integer", false, Dflt::Unset, "test")
    }

    #[test]
    fn port_ranges() {
        let m = meta();
        let v = <Vec<PortRange>>::parse("3306, 4444-4445", &m).unwrap();
        assert_eq!(
            v,
            vec![
                PortRange::single(3306),
                PortRange {
                    start: 4444,
                    end: 4445
                }
            ]
        );
        assert_eq!(v[1].to_string(), "4444-4445");
        assert!(<Vec<PortRange>>::parse("0", &m).is_err());
        assert!(<Vec<PortRange>>::parse("70000", &m).is_err());
        assert!(<Vec<PortRange>>::parse("10-5", &m).is_err());
        assert_eq!(<Vec<PortRange>>::parse("", &m).unwrap(), vec![]);
    }

    #[test]
    fn bools() {
        let m = meta();
        for t in ["true", "TRUE", "1", "yes", "On"] {
            assert!(bool::parse(t, &m).unwrap(), "{t}");
        }
        for f in ["false", "False", "0", "no", "OFF"] {
            assert!(!bool::parse(f, &m).unwrap(), "{f}");
        }
        assert_eq!(
            bool::parse("maybe", &m).unwrap_err(),
            "invalid boolean value \"maybe\""
        );
    }

    #[test]
    fn secret_hides_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(\"***\")");
        assert_eq!(s.to_string(), "***");
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
