//! Per-project in-memory rate limits (api.md §1.8), Trove's leaky bucket.
//!
//! Each limit (`verb`, `uri`, `regex`, `value` requests per `unit`) is a bucket of
//! capacity `unit` seconds; a matching request adds `unit / value` seconds of water, the
//! bucket leaks one second per second, and a request that would overflow it is refused
//! with 413 (`retryAfter` = seconds until it fits). The counters feed `GET /limits`.
//!
//! State is per API process and per project, as in Trove; it is not shared between API
//! workers or hosts and is lost on restart. Not here: the ABSOLUTE (quota) limits.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use trove_config::Config;

/// Time unit of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

impl Unit {
    fn seconds(self) -> f64 {
        match self {
            Unit::Second => 1.0,
            Unit::Minute => 60.0,
            Unit::Hour => 3600.0,
            Unit::Day => 86400.0,
        }
    }

    /// `SECOND`, `MINUTE`, ...
    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "SECOND",
            Unit::Minute => "MINUTE",
            Unit::Hour => "HOUR",
            Unit::Day => "DAY",
        }
    }
}

/// One configured limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// HTTP method it counts.
    pub verb: &'static str,
    /// Display URI (`*`, `*/mgmt`).
    pub uri: &'static str,
    /// Display regex (`.*`, `^/mgmt`), matched against the path after the project.
    pub regex: &'static str,
    /// Requests allowed per unit.
    pub value: u64,
    /// The unit.
    pub unit: Unit,
}

impl Limit {
    fn matches(&self, verb: &str, path: &str) -> bool {
        self.verb == verb
            && match self.regex.strip_prefix('^') {
                Some(prefix) => path.starts_with(prefix),
                None => true,
            }
    }
}

/// Trove's default limits from `http_*_rate` options.
pub fn default_limits(cfg: &Config) -> Vec<Limit> {
    let d = &cfg.default;
    let v = |n: i64| n.max(0) as u64;
    vec![
        Limit {
            verb: "POST",
            uri: "*",
            regex: ".*",
            value: v(d.http_post_rate),
            unit: Unit::Minute,
        },
        Limit {
            verb: "PUT",
            uri: "*",
            regex: ".*",
            value: v(d.http_put_rate),
            unit: Unit::Minute,
        },
        Limit {
            verb: "DELETE",
            uri: "*",
            regex: ".*",
            value: v(d.http_delete_rate),
            unit: Unit::Minute,
        },
        Limit {
            verb: "GET",
            uri: "*",
            regex: ".*",
            value: v(d.http_get_rate),
            unit: Unit::Minute,
        },
        Limit {
            verb: "POST",
            uri: "*/mgmt",
            regex: "^/mgmt",
            value: v(d.http_mgmt_post_rate),
            unit: Unit::Minute,
        },
    ]
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    water_level: f64,
    last_request: Option<f64>,
    next_request: Option<f64>,
    remaining: Option<u64>,
}

/// The state of one limit for one project, as `GET /limits` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitState {
    /// The limit.
    pub limit: Limit,
    /// Requests left now.
    pub remaining: u64,
    /// When the next request is allowed.
    pub next_available: DateTime<Utc>,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    /// "Only 200 POST request(s) can be made to * every minute."
    pub details: String,
    /// Seconds to wait.
    pub retry_after: u64,
}

/// The limiter; one per API process.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Vec<Limit>,
    /// Buckets per project; one lock for all (each check is a few float operations).
    buckets: Mutex<HashMap<String, Vec<Bucket>>>,
}

fn now_secs() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6
}

fn to_datetime(secs: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs.floor() as i64, 0).unwrap_or_else(Utc::now)
}

impl RateLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Vec<Limit>) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `project` (`path` relative to `/v1.0/{project}`); refuses it
    /// when a matching limit is exhausted.
    pub fn check(&self, project: &str, verb: &str, path: &str) -> Result<(), RateLimited> {
        self.check_at(project, verb, path, now_secs())
    }

    fn check_at(&self, project: &str, verb: &str, path: &str, now: f64) -> Result<(), RateLimited> {
        let mut all = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = all
            .entry(project.to_string())
            .or_insert_with(|| vec![Bucket::default(); self.limits.len()]);
        let mut worst: Option<(f64, &Limit)> = None;
        for (limit, b) in self.limits.iter().zip(buckets.iter_mut()) {
            if !limit.matches(verb, path) || limit.value == 0 {
                continue;
            }
            let capacity = limit.unit.seconds();
            let request_value = capacity / limit.value as f64;
            let last = b.last_request.unwrap_or(now);
            b.water_level = (b.water_level - (now - last)).max(0.0) + request_value;
            b.last_request = Some(now);
            let difference = b.water_level - capacity;
            if difference > 0.0 {
                b.water_level -= request_value;
                b.next_request = Some(now + difference);
                if worst.is_none_or(|(d, _)| difference > d) {
                    worst = Some((difference, limit));
                }
                continue;
            }
            b.remaining =
                Some((((capacity - b.water_level) / capacity) * limit.value as f64).floor() as u64);
            b.next_request = Some(now);
        }
        match worst {
            None => Ok(()),
            Some((delay, limit)) => Err(RateLimited {
                details: format!(
                    "Only {} {} request(s) can be made to {} every {}.",
                    limit.value,
                    limit.verb,
                    limit.uri,
                    limit.unit.name().to_ascii_lowercase()
                ),
                retry_after: delay.ceil().max(1.0) as u64,
            }),
        }
    }

    /// The current state of every limit for `project`.
    pub fn states(&self, project: &str) -> Vec<LimitState> {
        let now = now_secs();
        let all = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = all.get(project);
        self.limits
            .iter()
            .enumerate()
            .map(|(i, limit)| {
                let b = buckets.and_then(|v| v.get(i)).cloned().unwrap_or_default();
                LimitState {
                    limit: limit.clone(),
                    remaining: b.remaining.unwrap_or(limit.value),
                    next_available: to_datetime(b.next_request.unwrap_or(now)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(value: u64) -> RateLimiter {
        RateLimiter::new(vec![
            Limit {
                verb: "POST",
                uri: "*",
                regex: ".*",
                value,
                unit: Unit::Minute,
            },
            Limit {
                verb: "POST",
                uri: "*/mgmt",
                regex: "^/mgmt",
                value: 100,
                unit: Unit::Minute,
            },
        ])
    }

    #[test]
    fn leaky_bucket_refuses_then_recovers() {
        let l = limiter(3);
        let t = 1_000_000.0;
        for _ in 0..3 {
            l.check_at("p", "POST", "/instances", t).unwrap();
        }
        let e = l.check_at("p", "POST", "/instances", t).unwrap_err();
        assert_eq!(
            e.details,
            "Only 3 POST request(s) can be made to * every minute."
        );
        assert_eq!(e.retry_after, 20);
        // Other projects and verbs are not affected.
        l.check_at("q", "POST", "/instances", t).unwrap();
        l.check_at("p", "GET", "/instances", t).unwrap();
        // After 20 s one more request fits.
        l.check_at("p", "POST", "/instances", t + 20.0).unwrap();
    }

    #[test]
    fn remaining_counts_down() {
        let l = limiter(200);
        let t = 2_000_000.0;
        l.check_at("p", "POST", "/mgmt/quotas/x", t).unwrap();
        let buckets = l.buckets.lock().unwrap();
        assert_eq!(buckets["p"][0].remaining, Some(199));
        assert_eq!(buckets["p"][1].remaining, Some(99));
    }
}
