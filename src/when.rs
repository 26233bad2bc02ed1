//! Human time inputs: durations like `90d`, `12h`, `30m`, `45s`, and instants given as a
//! duration ago (`7d`) or RFC 3339 (`2026-11-01T00:00:00Z`, `2026-11-01`).

use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;

/// Parses `N[smhdw]` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration `{s}`: expected a number and a unit, e.g. 90d, 12h, 30m, 45s")
    })?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in `{s}`: use s, m, h, d or w (e.g. 90d)"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Parses an instant relative to `now`: a duration ago (`7d`), an RFC 3339 time, or a date.
pub fn parse_instant(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    match parse_duration(t) {
        Ok(d) => Ok(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)),
        Err(_) => Err(format!(
            "invalid time `{s}`: expected a duration ago (7d, 12h) or RFC 3339 (2026-11-01T00:00:00Z)"
        )),
    }
}

/// Formats an age compactly for tables: `45s`, `12m`, `5h`, `3d`, `14mo`, `2y`.
pub fn short_age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        86_400..=5_183_999 => format!("{}d", s / 86_400),
        5_184_000..=31_535_999 => format!("{}mo", s / 2_592_000),
        _ => format!("{}y", s / 31_536_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_instants() {
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("3 fortnights").unwrap_err().contains("unit"));
        let now = DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_instant("1d", now).unwrap().to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-01", now).unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert!(parse_instant("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
        assert_eq!(short_age(chrono::Duration::days(3)), "3d");
        assert_eq!(short_age(chrono::Duration::days(400)), "1y");
    }
}
