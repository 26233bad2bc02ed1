//! `[detect]` in config.toml: every threshold of every rule, with defaults.
//!
//! Each setting is documented in docs/detections.md with why it exists and how to tune
//! it. An unknown setting or a value of the wrong type is an error naming the setting.

use crate::config::ConfigError;
use serde::Serialize;
use std::path::Path;

/// Typed detection settings. `DetectConfig::default()` is what an empty `[detect]` gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectConfig {
    // --- hygiene ---
    /// A key older than this many days should have been rotated.
    pub rotation_days: u32,
    /// An active key unused for this many days should be disabled.
    pub unused_days: u32,
    /// A key expiring within this many days needs a successor.
    pub expiring_days: u32,
    /// Report active keys without an expiry date.
    pub require_expiry: bool,
    /// Window (days) over which granted scopes must be used to count as needed.
    pub scope_window_days: u32,
    // --- baseline ---
    /// A key's baseline needs this many days of history before novelty rules fire.
    pub learning_days: u32,
    /// ... and this many events.
    pub learning_min_events: u32,
    /// Half-life (days) of the per-key statistics: older behaviour counts less.
    pub baseline_half_life_days: u32,
    /// A network or user agent unseen for this many days is new again.
    pub network_memory_days: u32,
    // --- anomaly ---
    /// Hours after a novelty (new network, wake-up) during which its events belong to it.
    pub novelty_window_hours: u32,
    /// Minimum requests in one hour before a volume spike can be reported.
    pub volume_min_requests: u32,
    /// A spike is an hour above median + this many robust standard deviations.
    pub volume_sigmas: f64,
    /// ... and above this multiple of the median hour.
    pub volume_ratio: f64,
    /// Minimum denied requests (scope refusals) in one hour for a denied burst.
    pub denied_min_per_hour: u32,
    /// A burst is above the key's denied-per-hour median + this many robust deviations.
    pub denied_sigmas: f64,
    /// Fraction of the key's past activity an hour of the day (with its neighbours) may
    /// have and still count as "never works".
    pub off_hours_max_share: f64,
    /// Minimum requests in one off hour to report it.
    pub off_hours_min_events: u32,
    /// Days of silence after which activity is a dormant key waking up.
    pub dormant_days: u32,
    /// Events a key must have had before its silence for a wake-up to count.
    pub dormant_min_history: u32,
    /// A request returning more records than this is never normal for bulk purposes
    /// unless the key's own history says so.
    pub bulk_min_records: u32,
    /// ... and it must exceed this multiple of the key's usual largest response (p99).
    pub bulk_ratio: f64,
    /// Object and secret reads in one hour (logs without record counts, e.g. S3
    /// `GetObject`) below this are never a bulk export.
    pub bulk_min_reads: u32,
    /// A bursty key's spike must exceed this multiple of its busiest usual hours (p99).
    pub volume_burst_ratio: f64,
    /// Clock skew (seconds) between the provider's log and the time a key was
    /// deactivated: refusals up to this long after it are not use after revocation.
    pub revocation_skew_seconds: u32,
    /// Two networks alternating within this many minutes are used at the same time.
    pub concurrent_window_minutes: u32,
    /// Alternations in one hour needed to report concurrent use.
    pub concurrent_min_switches: u32,
    /// Hours of grace after a rotation during which the old key may still be used.
    pub rotation_grace_hours: u32,
    /// Evidence events kept per finding.
    pub evidence_cap: u32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            rotation_days: 90,
            unused_days: 30,
            expiring_days: 14,
            require_expiry: true,
            scope_window_days: 30,
            learning_days: 7,
            learning_min_events: 50,
            baseline_half_life_days: 30,
            network_memory_days: 90,
            novelty_window_hours: 24,
            volume_min_requests: 50,
            volume_sigmas: 8.0,
            volume_ratio: 4.0,
            denied_min_per_hour: 10,
            denied_sigmas: 6.0,
            off_hours_max_share: 0.01,
            off_hours_min_events: 3,
            dormant_days: 14,
            dormant_min_history: 10,
            bulk_min_records: 1000,
            bulk_ratio: 10.0,
            bulk_min_reads: 100,
            volume_burst_ratio: 2.0,
            revocation_skew_seconds: 300,
            concurrent_window_minutes: 10,
            concurrent_min_switches: 3,
            rotation_grace_hours: 24,
            evidence_cap: 50,
        }
    }
}

/// Names of every setting, for error messages.
const KNOWN: &[&str] = &[
    "rotation_days",
    "unused_days",
    "expiring_days",
    "require_expiry",
    "scope_window_days",
    "learning_days",
    "learning_min_events",
    "baseline_half_life_days",
    "network_memory_days",
    "novelty_window_hours",
    "volume_min_requests",
    "volume_sigmas",
    "volume_ratio",
    "denied_min_per_hour",
    "denied_sigmas",
    "off_hours_max_share",
    "off_hours_min_events",
    "dormant_days",
    "dormant_min_history",
    "bulk_min_records",
    "bulk_ratio",
    "bulk_min_reads",
    "volume_burst_ratio",
    "revocation_skew_seconds",
    "concurrent_window_minutes",
    "concurrent_min_switches",
    "rotation_grace_hours",
    "evidence_cap",
    "sigma",
    "sigma_window_hours",
];

impl DetectConfig {
    /// Parses the raw `[detect]` table; `path` names the file in messages.
    pub fn from_table(t: &toml::Table, path: &Path) -> Result<DetectConfig, ConfigError> {
        let mut c = DetectConfig::default();
        let fail = |key: &str, what: &str| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("[detect] {key}: {what}"),
        };
        for (key, v) in t {
            let pos_int = || -> Result<u32, ConfigError> {
                match v.as_integer() {
                    Some(n) if n > 0 && n <= u32::MAX as i64 => Ok(n as u32),
                    _ => Err(fail(key, "expected a positive integer")),
                }
            };
            let pos_num = || -> Result<f64, ConfigError> {
                let n = v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .ok_or_else(|| fail(key, "expected a positive number"))?;
                if n.is_finite() && n > 0.0 {
                    Ok(n)
                } else {
                    Err(fail(key, "expected a positive number"))
                }
            };
            match key.as_str() {
                "rotation_days" => c.rotation_days = pos_int()?,
                "unused_days" => c.unused_days = pos_int()?,
                "expiring_days" => c.expiring_days = pos_int()?,
                "require_expiry" => {
                    c.require_expiry = v
                        .as_bool()
                        .ok_or_else(|| fail(key, "expected true or false"))?
                }
                "scope_window_days" => c.scope_window_days = pos_int()?,
                "learning_days" => c.learning_days = pos_int()?,
                "learning_min_events" => c.learning_min_events = pos_int()?,
                "baseline_half_life_days" => c.baseline_half_life_days = pos_int()?,
                "network_memory_days" => c.network_memory_days = pos_int()?,
                "novelty_window_hours" => c.novelty_window_hours = pos_int()?,
                "volume_min_requests" => c.volume_min_requests = pos_int()?,
                "volume_sigmas" => c.volume_sigmas = pos_num()?,
                "volume_ratio" => c.volume_ratio = pos_num()?,
                "denied_min_per_hour" => c.denied_min_per_hour = pos_int()?,
                "denied_sigmas" => c.denied_sigmas = pos_num()?,
                "off_hours_max_share" => {
                    let n = pos_num()?;
                    if n >= 1.0 {
                        return Err(fail(key, "expected a fraction between 0 and 1"));
                    }
                    c.off_hours_max_share = n
                }
                "off_hours_min_events" => c.off_hours_min_events = pos_int()?,
                "dormant_days" => c.dormant_days = pos_int()?,
                "dormant_min_history" => c.dormant_min_history = pos_int()?,
                "bulk_min_records" => c.bulk_min_records = pos_int()?,
                "bulk_ratio" => c.bulk_ratio = pos_num()?,
                "bulk_min_reads" => c.bulk_min_reads = pos_int()?,
                "volume_burst_ratio" => c.volume_burst_ratio = pos_num()?,
                "revocation_skew_seconds" => c.revocation_skew_seconds = pos_int()?,
                "concurrent_window_minutes" => c.concurrent_window_minutes = pos_int()?,
                "concurrent_min_switches" => c.concurrent_min_switches = pos_int()?,
                "rotation_grace_hours" => c.rotation_grace_hours = pos_int()?,
                "evidence_cap" => c.evidence_cap = pos_int()?,
                // Read by `sigma::SigmaConfig`; not part of the built-in rules' settings.
                "sigma" | "sigma_window_hours" => {}
                _ => {
                    return Err(fail(
                        key,
                        &format!("unknown setting; known: {}", KNOWN.join(", ")),
                    ))
                }
            }
        }
        Ok(c)
    }

    /// A fingerprint of the settings that shape per-key state: when it changes, saved
    /// baselines are rebuilt by the next detection.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(self).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DetectConfig, ConfigError> {
        let t: toml::Table = toml::from_str(s).unwrap();
        DetectConfig::from_table(&t, Path::new("config.toml"))
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse("").unwrap(), DetectConfig::default());
        let c = parse("rotation_days = 30\nvolume_sigmas = 5\nrequire_expiry = false").unwrap();
        assert_eq!(c.rotation_days, 30);
        assert_eq!(c.volume_sigmas, 5.0);
        assert!(!c.require_expiry);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = parse("rotation_days = -3").unwrap_err().to_string();
        assert_eq!(
            e,
            "config.toml: [detect] rotation_days: expected a positive integer"
        );
        let e = parse("rotaton_days = 3").unwrap_err().to_string();
        assert!(e.contains("[detect] rotaton_days: unknown setting"), "{e}");
        let e = parse("off_hours_max_share = 2.0").unwrap_err().to_string();
        assert!(e.contains("fraction"), "{e}");
    }
}
