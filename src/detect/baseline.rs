//! Per-key baselines: compact, decaying statistics of a key's own history, and the
//! state the incremental driver saves between runs.
//!
//! A key's state is about 1–2 KB (three 64-bin histograms, a 24-bin hour-of-day profile,
//! its networks, user-agent families and scopes, plus any incident still open) in memory;
//! the cache keeps it ([`crate::store::Store::detect_states`]), one row per key, in the
//! compact binary form of [`codec`] (350–700 bytes).

mod codec;
pub mod rhythm;

use crate::model::{from_millis, Millis};
pub use rhythm::Rhythm;
use serde::Serialize;

pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const HOUR: i64 = 60 * MINUTE;
pub(crate) const DAY: i64 = 24 * HOUR;

/// Number of bins of a [`LogHist`].
const BINS: usize = 64;
/// Values below this have a bin each; above, bins are quarter octaves.
const EXACT: usize = 16;

/// A histogram of non-negative counts: exact bins for 0..16, quarter-octave bins above
/// (so quantiles are within 19 % for large values). Weights decay with time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHist {
    bins: Vec<f32>,
}

impl Default for LogHist {
    fn default() -> Self {
        LogHist {
            bins: vec![0.0; BINS],
        }
    }
}

fn bin_of(v: u64) -> usize {
    if (v as usize) < EXACT {
        return v as usize;
    }
    let q = ((v as f64 / EXACT as f64).log2() * 4.0).floor() as usize;
    (EXACT + q).min(BINS - 1)
}

fn value_of(bin: usize) -> f64 {
    if bin < EXACT {
        bin as f64
    } else {
        // Geometric middle of the quarter octave.
        EXACT as f64 * 2f64.powf((bin - EXACT) as f64 / 4.0 + 0.125)
    }
}

impl LogHist {
    /// Adds one observation.
    pub fn add(&mut self, v: u64) {
        self.bins[bin_of(v)] += 1.0;
    }

    /// Multiplies every weight by `f` (decay).
    pub fn scale(&mut self, f: f32) {
        for b in &mut self.bins {
            *b *= f;
        }
    }

    /// Total weight.
    pub fn total(&self) -> f64 {
        self.bins.iter().map(|b| *b as f64).sum()
    }

    /// The `q`-quantile (0..=1), or 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.total();
        if total <= 0.0 {
            return 0.0;
        }
        let want = q * total;
        let mut acc = 0.0;
        for (i, b) in self.bins.iter().enumerate() {
            acc += *b as f64;
            if acc >= want && *b > 0.0 {
                return value_of(i);
            }
        }
        value_of(BINS - 1)
    }

    /// The weighted mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        let total = self.total();
        if total <= 0.0 {
            return 0.0;
        }
        self.bins
            .iter()
            .enumerate()
            .map(|(i, b)| value_of(i) * *b as f64)
            .sum::<f64>()
            / total
    }

    /// Median and robust standard deviation (1.4826 × median absolute deviation).
    pub fn median_sigma(&self) -> (f64, f64) {
        let m = self.quantile(0.5);
        let mut dev: Vec<(f64, f64)> = self
            .bins
            .iter()
            .enumerate()
            .filter(|(_, b)| **b > 0.0)
            .map(|(i, b)| ((value_of(i) - m).abs(), *b as f64))
            .collect();
        dev.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = dev.iter().map(|d| d.1).sum();
        let mut acc = 0.0;
        let mut mad = 0.0;
        for (d, w) in dev {
            acc += w;
            if acc >= total / 2.0 {
                mad = d;
                break;
            }
        }
        (m, 1.4826 * mad)
    }
}

/// Something a key was seen with (a network, a user-agent family) and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen<T> {
    pub value: T,
    pub first: Millis,
    pub last: Millis,
    /// Until when events with this value belong to the novelty finding it raised.
    pub alert_until: Millis,
}

/// An incident in progress: consecutive anomalous hours (or events) of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Rule id.
    pub rule: String,
    /// What distinguishes it from other incidents of the rule on the key (a network, a
    /// start hour); part of the finding id.
    pub subject: String,
    pub start: Millis,
    pub last: Millis,
    /// Events that belong to it.
    pub events: u64,
    /// Row ids of the first evidence events (capped).
    pub rows: Vec<i64>,
    pub title: String,
    pub explanation: String,
    /// Severity index (0 low .. 3 critical).
    pub severity: u8,
    /// Extra numbers a rule accumulates (largest hour, records, ...).
    pub peak: u64,
    pub sum: u64,
}

/// The events of the hour being counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Hour number (ms / HOUR) or -1 before the first event.
    pub hour: i64,
    /// Served requests not explained by another rule.
    pub requests: u32,
    /// Denied requests (scope refusals).
    pub denied: u32,
    /// ... of them, on a service the key never used successfully.
    pub denied_novel: u32,
    /// Served content reads (see [`reads_content`]) not explained by another rule.
    pub reads: u32,
    pub rows_reads: Vec<i64>,
    /// Requests of runs off the key's schedule.
    pub sched: u32,
    pub rows_sched: Vec<i64>,
    /// Requests at hours the key never works.
    pub off: u32,
    /// Alternations between known networks within the concurrency window.
    pub switches: u32,
    /// Every event of the hour (for the hour-of-day profile).
    pub all: u32,
    pub rows_requests: Vec<i64>,
    pub rows_denied: Vec<i64>,
    pub rows_off: Vec<i64>,
    pub rows_switch: Vec<i64>,
    /// Networks seen alternating (display form).
    pub switch_nets: Vec<u64>,
    /// What the denied requests asked for (scopes, or services without scopes).
    pub denied_scopes: Vec<String>,
}

/// Everything detection remembers about one key between runs.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    /// Events folded into the baseline.
    pub events: u64,
    pub first_time: Millis,
    pub last_time: Millis,
    pub last_row: i64,
    /// Time the histograms were last decayed.
    pub decay_time: Millis,
    /// Events per hour of the day (UTC), decayed.
    pub hours: Vec<f32>,
    /// Served requests per active hour.
    pub volume: LogHist,
    /// Denied requests per active hour.
    pub denied: LogHist,
    /// Records returned per request.
    pub records: LogHist,
    /// Content reads (see [`reads_content`]) per active hour.
    pub reads: LogHist,
    pub nets: Vec<Seen<u64>>,
    pub agents: Vec<Seen<String>>,
    /// Scope → last successful use.
    pub scopes: Vec<(String, Millis)>,
    /// Service (see `service_of`) → last successful use.
    pub services: Vec<(String, Millis)>,
    /// Working hours, around the clock, or a schedule.
    pub rhythm: Rhythm,
    /// Silences of at least `dormant_days` the key has had (a rhythm, if several).
    pub long_gaps: u32,
    /// Days with concurrent use from known networks (normal for it, if several).
    pub concurrent_days: u32,
    /// Day number of the last of them.
    pub concurrent_last_day: i64,
    /// Last network and when, for alternation.
    pub last_net: Option<(u64, Millis)>,
    pub bucket: Bucket,
    /// Incidents still open (they may grow with the next events).
    pub open: Vec<Incident>,
    /// Off-hours counts waiting to be folded into `hours` when their incident closes.
    pub pending_hours: Vec<(u8, u32)>,
    /// Denied authentications (401) since the key last authenticated.
    pub tail_count: u64,
    pub tail_first: Millis,
    pub tail_last: Millis,
    pub tail_rows: Vec<i64>,
    /// Requests after the key's expiry or its rotation grace.
    pub late_count: u64,
    pub late_first: Millis,
    pub late_last: Millis,
    pub late_rows: Vec<i64>,
}

impl Default for KeyState {
    fn default() -> Self {
        KeyState {
            events: 0,
            first_time: 0,
            last_time: 0,
            last_row: 0,
            decay_time: 0,
            hours: vec![0.0; 24],
            volume: LogHist::default(),
            denied: LogHist::default(),
            records: LogHist::default(),
            reads: LogHist::default(),
            nets: Vec::new(),
            agents: Vec::new(),
            scopes: Vec::new(),
            services: Vec::new(),
            rhythm: Rhythm::default(),
            long_gaps: 0,
            concurrent_days: 0,
            concurrent_last_day: -1,
            last_net: None,
            bucket: Bucket {
                hour: -1,
                ..Default::default()
            },
            open: Vec::new(),
            pending_hours: Vec::new(),
            tail_count: 0,
            tail_first: 0,
            tail_last: 0,
            tail_rows: Vec::new(),
            late_count: 0,
            late_first: 0,
            late_last: 0,
            late_rows: Vec::new(),
        }
    }
}

/// Whether a key's baseline is good enough for novelty rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "baseline", rename_all = "snake_case")]
pub enum BaselineStatus {
    /// No events yet.
    NoHistory,
    /// Still learning: novelty rules (new network, off hours, volume, bulk, concurrent)
    /// stay quiet until the baseline has `need_days` and `need_events`.
    Learning {
        days: f64,
        events: u64,
        need_days: u32,
        need_events: u32,
    },
    /// Ready: the key's normal behaviour, as the rules see it.
    Ready {
        days: f64,
        events: u64,
        /// Median served requests per active hour, and its robust deviation.
        per_hour_median: f64,
        per_hour_sigma: f64,
        networks: usize,
        agents: usize,
        /// The learned rhythm: `weekdays 08–18 UTC`, `around the clock`, `every 15 min`.
        rhythm: String,
    },
}

impl std::fmt::Display for BaselineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaselineStatus::NoHistory => f.write_str("no history"),
            BaselineStatus::Learning {
                days,
                events,
                need_days,
                need_events,
            } => write!(
                f,
                "learning ({days:.0}/{need_days} days, {events}/{need_events} events)"
            ),
            BaselineStatus::Ready {
                per_hour_median,
                per_hour_sigma,
                networks,
                rhythm,
                ..
            } => write!(
                f,
                "ready ({per_hour_median:.0}±{per_hour_sigma:.0} requests/hour from {networks} network{}, {rhythm})",
                if *networks == 1 { "" } else { "s" }
            ),
        }
    }
}

impl KeyState {
    /// True once the baseline may judge novelty at time `t`.
    pub fn ready(&self, t: Millis, cfg: &super::DetectConfig) -> bool {
        self.events >= cfg.learning_min_events as u64
            && t - self.first_time >= cfg.learning_days as i64 * DAY
    }

    /// The baseline status as of the last event.
    pub fn status(&self, cfg: &super::DetectConfig) -> BaselineStatus {
        if self.events == 0 {
            return BaselineStatus::NoHistory;
        }
        let days = (self.last_time - self.first_time) as f64 / DAY as f64;
        if !self.ready(self.last_time, cfg) {
            return BaselineStatus::Learning {
                days,
                events: self.events,
                need_days: cfg.learning_days,
                need_events: cfg.learning_min_events,
            };
        }
        let (m, s) = self.volume.median_sigma();
        BaselineStatus::Ready {
            days,
            events: self.events,
            per_hour_median: m,
            per_hour_sigma: s,
            networks: self.nets.len(),
            agents: self.agents.len(),
            rhythm: self.rhythm.describe(&self.hours),
        }
    }

    /// Networks the key used in its baseline, as text.
    pub fn known_nets(&self) -> usize {
        self.nets.len()
    }

    /// Applies the half-life decay up to `t` (at most once a day).
    pub fn decay(&mut self, t: Millis, half_life_days: u32) {
        if self.decay_time == 0 {
            self.decay_time = t;
            return;
        }
        let dt = t - self.decay_time;
        if dt < DAY {
            return;
        }
        let f = 0.5f64.powf(dt as f64 / (half_life_days.max(1) as f64 * DAY as f64)) as f32;
        self.volume.scale(f);
        self.denied.scale(f);
        self.records.scale(f);
        self.reads.scale(f);
        for h in &mut self.hours {
            *h *= f;
        }
        self.decay_time = t;
    }
}

/// Formats a network key (see [`net_of`]) as CIDR text.
pub fn net_text(n: u64) -> String {
    match n >> 56 {
        4 => {
            let p = (n & 0xff_ffff) as u32;
            let o = (p << 8).to_be_bytes();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        6 => {
            let p = n & 0xffff_ffff_ffff;
            format!(
                "{:x}:{:x}:{:x}::/48",
                (p >> 32) & 0xffff,
                (p >> 16) & 0xffff,
                p & 0xffff
            )
        }
        _ => "unknown network".into(),
    }
}

/// The network of an address: its /24 (IPv4) or /48 (IPv6), packed in a u64.
pub fn net_of(ip: &str) -> Option<u64> {
    if let Some(n) = net_of_dotted(ip) {
        return Some(n);
    }
    match ip.trim().parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some((4u64 << 56) | (u32::from(v4) >> 8) as u64),
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Some((4u64 << 56) | (u32::from(v4) >> 8) as u64);
            }
            Some((6u64 << 56) | (u128::from(v6) >> 80) as u64)
        }
    }
}

/// [`net_of`] for the common case, a plain dotted-quad IPv4 address (four decimal
/// octets, no leading zeros, nothing around them), without the general parser; `None`
/// for anything else.
pub(crate) fn net_of_dotted(ip: &str) -> Option<u64> {
    let mut addr = 0u32;
    let (mut dots, mut digits, mut octet) = (0, 0, 0u32);
    for &c in ip.as_bytes() {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && octet == 0 {
                    return None;
                }
                octet = octet * 10 + u32::from(c - b'0');
                digits += 1;
                if octet > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && dots < 3 => {
                addr = addr << 8 | octet;
                (dots, digits, octet) = (dots + 1, 0, 0);
            }
            _ => return None,
        }
    }
    if dots != 3 || digits == 0 {
        return None;
    }
    addr = addr << 8 | octet;
    Some((4u64 << 56) | u64::from(addr >> 8))
}

/// The family of a user agent: its product token, lower-cased, without the version
/// (`greenhouse-sync/4.2 (...)` → `greenhouse-sync`; browsers by engine name).
pub fn agent_family(ua: &str) -> String {
    let ua = ua.trim();
    let lower = ua.to_ascii_lowercase();
    if lower.starts_with("mozilla/") {
        for b in ["edg/", "firefox/", "chrome/", "safari/"] {
            if lower.contains(b) {
                return format!("browser:{}", b.trim_end_matches('/'));
            }
        }
        return "browser".into();
    }
    let token = lower
        .split(|c: char| c == '/' || c.is_whitespace() || c == ';' || c == '(')
        .next()
        .unwrap_or("");
    // Drop a trailing version-like part ("python-requests-2" stays).
    token.chars().take(64).collect()
}

/// The service an action belongs to: CloudTrail's event source
/// (`iam.amazonaws.com:CreateUser` → `iam.amazonaws.com`), the first two path segments
/// of an HTTP or Vault action (`GET /v1/candidates/42` → `/v1/candidates`,
/// `read secret/data/hr` → `secret/data`), the namespace of a GitHub or GitLab audit
/// action (`repo.create` → `repo`).
pub fn service_of(action: &str) -> &str {
    let a = action.trim();
    if let Some((verb, path)) = a.split_once(' ') {
        let path = path.trim();
        if !verb.contains(':') {
            let lead = usize::from(path.starts_with('/'));
            let mut end = path.len();
            let mut seen = 0;
            for (i, c) in path.char_indices().skip(lead) {
                if c == '/' || c == '?' || c == ' ' {
                    seen += 1;
                    if seen == 2 || c != '/' {
                        end = i;
                        break;
                    }
                }
            }
            return &path[..end];
        }
    }
    if let Some((src, _)) = a.split_once(':') {
        return src;
    }
    match a.split_once('.') {
        Some((ns, _)) => ns,
        None => a,
    }
}

/// True for an action that reads stored content itself, one object, secret or item set
/// per call, in logs that carry no record counts: CloudTrail's S3 `GetObject`, Secrets
/// Manager `GetSecretValue` / `BatchGetSecretValue`, SSM `GetParameter(s)` /
/// `GetParametersByPath`, DynamoDB `Scan` / `BatchGetItem` /
/// `ExportTableToPointInTime`. Listings and descriptions (`List*`, `Describe*`) read
/// metadata and are not content.
pub fn reads_content(action: &str) -> bool {
    let Some((source, name)) = action.trim().split_once(':') else {
        return false;
    };
    match source {
        "s3.amazonaws.com" => name == "GetObject",
        "secretsmanager.amazonaws.com" => {
            matches!(name, "GetSecretValue" | "BatchGetSecretValue")
        }
        "ssm.amazonaws.com" => {
            matches!(
                name,
                "GetParameter" | "GetParameters" | "GetParametersByPath"
            )
        }
        "dynamodb.amazonaws.com" => {
            matches!(name, "Scan" | "BatchGetItem" | "ExportTableToPointInTime")
        }
        _ => false,
    }
}

/// A time as RFC 3339 for explanations.
pub fn when(t: Millis) -> String {
    from_millis(t).format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_median_and_sigma() {
        let mut h = LogHist::default();
        for v in [8, 9, 9, 10, 12, 7, 9, 11, 5, 13] {
            h.add(v);
        }
        let (m, s) = h.median_sigma();
        assert_eq!(m, 9.0);
        assert!(s > 1.0 && s < 4.0, "{s}");
        let mut big = LogHist::default();
        big.add(5000);
        assert!((big.quantile(0.5) - 5000.0).abs() / 5000.0 < 0.2);
    }

    #[test]
    fn networks_and_agents() {
        assert_eq!(net_text(net_of("203.0.113.77").unwrap()), "203.0.113.0/24");
        assert_eq!(
            net_text(net_of("2001:db8:1234:5::1").unwrap()),
            "2001:db8:1234::/48"
        );
        assert_eq!(net_of("::ffff:10.1.2.3"), net_of("10.1.2.9"));
        assert!(net_of("not an ip").is_none());
        // The dotted-quad shortcut agrees with the general parser, and leaves everything
        // else to it.
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.1.2.3",
            "256.1.2.3",
            "1.2.3.256",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            " 1.2.3.4",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.4/24",
            "0000.1.2.3",
            "",
            "::1",
        ] {
            let general = ip.trim().parse::<std::net::Ipv4Addr>().ok();
            let short = net_of_dotted(ip);
            assert!(short.is_none() || general.is_some(), "{ip:?}");
            if let Some(n) = short {
                assert_eq!(
                    Some(n),
                    general.map(|a| (4u64 << 56) | u64::from(u32::from(a) >> 8))
                );
            } else if ip.trim() == ip && general.is_some() {
                panic!("{ip:?} should take the shortcut");
            }
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            let len = rng.random_range(0..16);
            let ip: String = (0..len)
                .map(|_| b"0123456789.."[rng.random_range(0..12)] as char)
                .collect();
            let general = ip.parse::<std::net::Ipv4Addr>().ok();
            let expect = general.map(|a| (4u64 << 56) | u64::from(u32::from(a) >> 8));
            assert_eq!(net_of_dotted(&ip), expect, "{ip:?}");
        }
        assert_eq!(
            agent_family("greenhouse-sync/4.2 (+https://example.com)"),
            "greenhouse-sync"
        );
        assert_eq!(agent_family("curl/8.1"), "curl");
        assert_eq!(
            service_of("iam.amazonaws.com:CreateUser"),
            "iam.amazonaws.com"
        );
        assert_eq!(service_of("GET /v1/candidates/42?page=2"), "/v1/candidates");
        assert_eq!(service_of("GET /v1"), "/v1");
        assert_eq!(service_of("read secret/data/hr"), "secret/data");
        assert_eq!(service_of("repo.create"), "repo");
        assert_eq!(
            agent_family("Mozilla/5.0 (X11) AppleWebKit Chrome/120 Safari/537"),
            "browser:chrome"
        );
    }
}
