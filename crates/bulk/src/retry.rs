//! Waiting between requests: `Retry-After` in all the forms peers send, exponential backoff with
//! jitter, and which failures are worth another try.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How long to wait and how often to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request before giving up on network errors, 5xx and transient outcomes
    /// (429 answers on status polls are the server pacing us and do not count).
    pub attempts: u32,
    /// The first backoff delay; it doubles on each further try.
    pub initial_delay: Duration,
    /// The largest backoff delay.
    pub max_delay: Duration,
    /// The shortest wait a `Retry-After` header can ask for.
    pub min_retry_after: Duration,
    /// The longest wait a `Retry-After` header can ask for (peers send epoch values or hours).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(120),
            min_retry_after: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The backoff before try `attempt + 1` (0-based): `initial_delay · 2^attempt`, capped at
    /// `max_delay`, with "equal jitter" (a random point in its upper half) so that parallel
    /// downloads do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_delay
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = base / 2;
        half + half.mul_f64(random_fraction())
    }

    /// Clamps a server-requested wait into `[min_retry_after, max_retry_after]`.
    pub fn clamp(&self, wait: Duration) -> Duration {
        wait.clamp(self.min_retry_after, self.max_retry_after)
    }

    /// The wait before the next try: the server's `Retry-After` (clamped) when it sent one,
    /// otherwise the exponential backoff for `attempt`.
    pub fn wait(&self, retry_after: Option<&str>, attempt: u32) -> Duration {
        match retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) {
            Some(wait) => self.clamp(wait),
            None => self.backoff(attempt),
        }
    }
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` value into a wait from `now`.
///
/// Accepts delta-seconds (`120`, also with a fraction), an HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), and the absolute epoch timestamps some servers send
/// (the SMART reference server sends epoch milliseconds, then epoch seconds, on 429): a number
/// larger than 10⁹ is read as epoch seconds, larger than 10¹² as epoch milliseconds. A time in
/// the past is a zero wait. `None` if the value is none of these.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return None;
        }
        let at = if number >= 1e12 {
            UNIX_EPOCH + Duration::from_millis(number as u64)
        } else if number >= 1e9 {
            UNIX_EPOCH + Duration::from_secs_f64(number)
        } else {
            return Some(Duration::from_secs_f64(number));
        };
        return Some(at.duration_since(now).unwrap_or_default());
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP-date form servers send.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let rest = value.split_once(", ").map_or(value, |(_, rest)| rest);
    let mut parts = rest.split_ascii_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hour * 3_600 + minute * 60 + second))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// True if an OperationOutcome body says the failure is temporary (`issue.code = transient`,
/// or one of its specialisations `lock-error`, `no-store`, `exception`, `timeout`, `throttled`).
pub fn is_transient_outcome(body: &Value) -> bool {
    body.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome")
        && body
            .get("issue")
            .and_then(Value::as_array)
            .is_some_and(|issues| {
                issues.iter().any(|issue| {
                    matches!(
                        issue.get("code").and_then(Value::as_str),
                        Some(
                            "transient"
                                | "lock-error"
                                | "no-store"
                                | "exception"
                                | "timeout"
                                | "throttled"
                        )
                    )
                })
            })
}

/// A short, value-free summary of an OperationOutcome (`severity code: diagnostics` per
/// issue, diagnostics cut at 200 characters), or `None` if `body` is not one.
pub fn outcome_summary(body: &Value) -> Option<String> {
    if body.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let issues = body.get("issue").and_then(Value::as_array)?;
    let parts: Vec<String> = issues
        .iter()
        .map(|issue| {
            let field = |name| issue.get(name).and_then(Value::as_str).unwrap_or("?");
            let mut text = format!("{} {}", field("severity"), field("code"));
            let detail = issue
                .get("diagnostics")
                .and_then(Value::as_str)
                .or_else(|| issue.pointer("/details/text").and_then(Value::as_str));
            if let Some(detail) = detail {
                text.push_str(": ");
                text.extend(detail.chars().take(200));
            }
            text
        })
        .collect();
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn delta_seconds_are_a_wait() {
        assert_eq!(
            parse_retry_after("120", at(1_800_000_000)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(" 0.5 ", at(0)),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn http_dates_are_a_point_in_time() {
        // 1994-11-06T08:49:37Z is 784111777.
        let now = at(784_111_777 - 30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_800)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_points_in_time() {
        // The SMART reference server's 429: `retry-after: 1795863844` at epoch 1795863544.
        assert_eq!(
            parse_retry_after("1795863844", at(1_795_863_544)),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("1795863844000", at(1_795_863_544)),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn garbage_is_not_a_wait() {
        for value in [
            "",
            "soon",
            "-5",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 CET",
        ] {
            assert_eq!(parse_retry_after(value, at(0)), None, "{value}");
        }
    }

    #[test]
    fn waits_are_clamped_and_backoff_grows_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait(Some("0"), 0), Duration::from_secs(1));
        assert_eq!(policy.wait(Some("999999"), 0), Duration::from_secs(600));
        for attempt in 0..12 {
            let wait = policy.backoff(attempt);
            let base = Duration::from_secs(1 << attempt.min(7)).min(Duration::from_secs(120));
            assert!(
                wait >= base / 2 && wait <= base,
                "attempt {attempt}: {wait:?}"
            );
        }
        assert!(policy.wait(None, 3) >= Duration::from_secs(4));
    }

    #[test]
    fn transient_outcomes_are_recognised() {
        let transient = serde_json::json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"try later"}]});
        let fatal = serde_json::json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]});
        assert!(is_transient_outcome(&transient));
        assert!(!is_transient_outcome(&fatal));
        assert!(!is_transient_outcome(
            &serde_json::json!({"issue":[{"code":"transient"}]})
        ));
        assert_eq!(
            outcome_summary(&transient).as_deref(),
            Some("error transient: try later")
        );
    }
}
