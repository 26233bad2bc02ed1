//! The Talentgrid data set: partners, keys, historic audit events and labelled anomalies.
//!
//! Everything here is a pure function of the [`DemoOptions`](super::DemoOptions) (seed,
//! anchor time, history length, event count, anomalies on or off), except the secrets of
//! the keys: those come from the OS CSPRNG through [`crate::secret::generate`] and are
//! dropped at once, so only their prefix and fingerprint (and therefore nothing
//! reproducible) is kept.
//!
//! Events are kept compact ([`Ev`], 32 bytes) and rendered to JSON on the fly; strings
//! (key ids, owners, user agents, actions) live once in tables and are referred to by index.

mod anomaly;
mod catalogue;
mod keys;
mod traffic;

pub(crate) use catalogue::{ACTIONS, PING_ACTION};
pub(crate) use traffic::normal_event;

use crate::model::KeyStatus;
use crate::secret;
use rand::rngs::StdRng;
use rand::SeedableRng;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// `records` value that means "no personal-data records" (rendered as `null`).
pub(crate) const NO_RECORDS: u32 = u32::MAX;
/// Key index of an event whose secret matched no key (rendered as `"unknown"`).
pub(crate) const UNKNOWN_KEY: u16 = u16::MAX;

/// Number of keys in the default data set.
pub(crate) const KEY_COUNT: usize = 72;

/// The kinds of injected anomalies, as named in the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// The key is suddenly used from a /24 it has never used.
    NewNetwork,
    /// A burst at hours the key never works.
    OffHours,
    /// Request volume far above the key's baseline.
    VolumeSpike,
    /// Many denied requests on scopes the key lacks.
    DeniedBurst,
    /// A key unused for at least 14 days is suddenly active.
    DormantWakeup,
    /// Attempts with a revoked or disabled key.
    RevokedUse,
    /// Unusually many personal-data records read.
    BulkExport,
    /// The same key used from two distinct networks at the same time.
    ConcurrentNetworks,
}

impl AnomalyKind {
    /// Every kind, in label order.
    pub const ALL: &'static [AnomalyKind] = &[
        AnomalyKind::NewNetwork,
        AnomalyKind::OffHours,
        AnomalyKind::VolumeSpike,
        AnomalyKind::DeniedBurst,
        AnomalyKind::DormantWakeup,
        AnomalyKind::RevokedUse,
        AnomalyKind::BulkExport,
        AnomalyKind::ConcurrentNetworks,
    ];

    /// The label word.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::NewNetwork => "new_network",
            AnomalyKind::OffHours => "off_hours",
            AnomalyKind::VolumeSpike => "volume_spike",
            AnomalyKind::DeniedBurst => "denied_burst",
            AnomalyKind::DormantWakeup => "dormant_wakeup",
            AnomalyKind::RevokedUse => "revoked_use",
            AnomalyKind::BulkExport => "bulk_export",
            AnomalyKind::ConcurrentNetworks => "concurrent_networks",
        }
    }
}

/// One audit event, compact. Strings are indices into tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ev {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// IPv4 source address.
    pub ip: u32,
    /// Personal-data records returned, or [`NO_RECORDS`].
    pub records: u32,
    /// Index into the key table, or [`UNKNOWN_KEY`].
    pub key: u16,
    /// Index into the user-agent table.
    pub ua: u16,
    /// Index into [`ACTIONS`].
    pub action: u16,
    /// HTTP status the platform answered.
    pub status: u16,
    /// 1 + index of the label this event belongs to; 0 for normal traffic.
    pub label: u8,
}

impl Ev {
    /// The outcome word derived from the status code.
    pub fn outcome(&self) -> &'static str {
        match self.status {
            200..=299 => "success",
            401 | 403 => "denied",
            _ => "error",
        }
    }
}

/// How a key behaves when it is used normally.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// UTC offset of its working day, minutes.
    pub tz_min: i32,
    /// Local working window, minutes after midnight: `[start, end)`.
    pub start_min: i64,
    pub end_min: i64,
    /// Weekend volume relative to a weekday.
    pub weekend: f64,
    /// Relative daily volume.
    pub weight: f64,
    /// Its /24 networks (`a.b.c.0` as u32), 1 to 3, used one per day in turn.
    pub nets: Vec<u32>,
    /// Host part base: hosts `base..base+3` of each network.
    pub host: u8,
    /// Actions it uses (indices into [`ACTIONS`]).
    pub actions: Vec<u16>,
    /// Rows per page of its list reads.
    pub page: u32,
    /// Normal traffic runs in `[from, until)` (ms); `until` is the disable/revoke/expiry
    /// time or, for a `dormant_wakeup`, the start of its silence.
    pub from: i64,
    pub until: i64,
}

impl Profile {
    /// The network the key uses on local day `lday`: its networks take turns by day.
    pub fn day_net(&self, lday: i64) -> u32 {
        self.nets[lday.rem_euclid(self.nets.len() as i64) as usize]
    }

    /// True when local minute `min` of local day `lday` is inside the key's working time.
    pub fn works_at(&self, lday: i64, min: i64) -> bool {
        (!is_weekend(lday) || self.weekend > 0.0) && (self.start_min..self.end_min).contains(&min)
    }
}

/// A key as the demo platform holds it. Never holds the secret.
#[derive(Debug, Clone)]
pub(crate) struct KeyRec {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub environment: Option<String>,
    pub purpose: Option<String>,
    pub prefix: String,
    pub fingerprint: String,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
    pub rotated_to: Option<String>,
    pub grace_until: Option<i64>,
    /// Normal behaviour; `None` for keys that are never used (and for created keys).
    pub profile: Option<Profile>,
    /// The key's user agent (index into the user-agent table).
    pub ua: u16,
}

/// One labelled anomaly: the ground truth a detection engine is scored against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Index of the key in the key table.
    pub(crate) key: usize,
    /// What was injected.
    pub kind: AnomalyKind,
    /// First and last event time (ms).
    pub start: i64,
    pub end: i64,
    /// Positions of its events in the log (event id = `evt_` + position + 1).
    pub events: Vec<u32>,
}

/// The generated platform: keys, the historic event log and the labels.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    pub keys: Vec<KeyRec>,
    pub events: Vec<Ev>,
    pub labels: Vec<Label>,
    /// User agents, interned.
    pub uas: Vec<String>,
}

/// Parameters of a generation (the relevant part of `DemoOptions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenParams {
    pub seed: u64,
    pub now: i64,
    pub days: u32,
    pub events: usize,
    pub anomalies: bool,
}

/// The event id of the event at `pos` in the log.
pub(crate) fn event_id(pos: usize) -> String {
    format!("evt_{:012}", pos + 1)
}

/// SplitMix64: a cheap, good mix for derived ids.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn net(o: [u8; 3]) -> u32 {
    u32::from_be_bytes([o[0], o[1], o[2], 0])
}

/// Start of the UTC day containing `t`.
fn day_floor(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// True when local day number `day` (days since epoch) is a Saturday or Sunday.
fn is_weekend(day: i64) -> bool {
    // 1970-01-01 was a Thursday: weekday index 0 = Monday.
    let wd = (day + 3).rem_euclid(7);
    wd >= 5
}

/// Local day number and minute of day of `t` in a zone `tz_min` minutes from UTC.
pub(crate) fn local(t: i64, tz_min: i32) -> (i64, i64) {
    let l = t + tz_min as i64 * MINUTE;
    (l.div_euclid(DAY), l.rem_euclid(DAY) / MINUTE)
}

/// Fresh secret material for a generated key; only prefix and fingerprint survive.
pub(crate) fn new_secret_identity(env: Option<&str>) -> (secret::Secret, String, String) {
    let prefix = if env == Some("prod") {
        "tg_live"
    } else {
        "tg_test"
    };
    let s = secret::generate(prefix).expect("static prefix is valid");
    let (dp, fp) = (s.display_prefix(), s.fingerprint());
    (s, dp, fp)
}

/// Generates the whole data set for `g`.
pub(crate) fn generate(g: GenParams) -> Dataset {
    let mut rng = StdRng::seed_from_u64(g.seed);
    let window_start = g.now - g.days as i64 * DAY;
    let mut uas: Vec<String> = Vec::new();
    let partners = catalogue::partners();
    let mut keys = keys::gen_keys(&mut rng, &partners, g, window_start, &mut uas);
    let mut events: Vec<Ev> = Vec::with_capacity(g.events + g.events / 10);
    let mut plans = Vec::new();
    if g.anomalies {
        plans = anomaly::plan_anomalies(&mut rng, g, window_start, &mut keys);
    }
    traffic::gen_normal(&mut rng, g, window_start, &keys, &mut events);
    let mut labels: Vec<Label> = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        anomaly::inject(&mut rng, plan, (i + 1) as u8, &keys, &mut events);
        labels.push(Label {
            key: plan.key,
            kind: plan.kind,
            start: i64::MAX,
            end: i64::MIN,
            events: Vec::new(),
        });
    }
    // Normal events beyond `now` never exist; anomalies are planned before it.
    events.retain(|e| e.t < g.now && e.t >= window_start);
    events.sort_by_key(|e| e.t);
    for (pos, e) in events.iter().enumerate() {
        if e.label != 0 {
            let l = &mut labels[e.label as usize - 1];
            l.start = l.start.min(e.t);
            l.end = l.end.max(e.t);
            l.events.push(pos as u32);
        }
    }
    labels.retain(|l| !l.events.is_empty());
    for e in &events {
        if e.key != UNKNOWN_KEY {
            let k = &mut keys[e.key as usize];
            k.last_used = Some(k.last_used.map_or(e.t, |u| u.max(e.t)));
        }
    }
    events.shrink_to_fit();
    Dataset {
        keys,
        events,
        labels,
        uas,
    }
}

fn intern(uas: &mut Vec<String>, ua: String) -> u16 {
    if let Some(i) = uas.iter().position(|u| *u == ua) {
        return i as u16;
    }
    uas.push(ua);
    (uas.len() - 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn params(seed: u64) -> GenParams {
        GenParams {
            seed,
            // 2026-11-28T12:00:00Z
            now: 1_795_867_200_000,
            days: 30,
            events: 60_000,
            anomalies: true,
        }
    }

    /// Everything of a key except the secret-derived prefix and fingerprint.
    fn public(k: &KeyRec) -> String {
        format!(
            "{} {} {} {:?} {:?} {:?} {:?} {} {:?} {:?}",
            k.id,
            k.name,
            k.owner,
            k.environment,
            k.purpose,
            k.scopes,
            k.status,
            k.created,
            k.expires,
            k.last_used
        )
    }

    #[test]
    fn the_same_seed_gives_the_same_platform_and_another_seed_does_not() {
        let (a, b, c) = (
            generate(params(7)),
            generate(params(7)),
            generate(params(8)),
        );
        let pa: Vec<String> = a.keys.iter().map(public).collect();
        let pb: Vec<String> = b.keys.iter().map(public).collect();
        assert_eq!(pa, pb);
        assert_eq!(a.events, b.events);
        assert_eq!(a.labels, b.labels);
        let pc: Vec<String> = c.keys.iter().map(public).collect();
        assert_ne!(pa, pc);
        assert_ne!(a.events.len(), 0);
        assert_ne!(a.events[..100], c.events[..100]);
        assert_ne!(a.labels, c.labels);
    }

    #[test]
    fn default_platform_has_enough_partners_keys_and_history() {
        let d = generate(params(1));
        let owners: HashSet<&str> = d.keys.iter().map(|k| k.owner.as_str()).collect();
        assert!(owners.len() >= 8, "{owners:?}");
        assert!(d.keys.len() >= 60);
        assert!(d.events.len() >= 50_000, "{}", d.events.len());
        let span = d.events.last().unwrap().t - d.events[0].t;
        assert!(span >= 29 * DAY, "history spans {} days", span / DAY);
        assert!(d.events.windows(2).all(|w| w[0].t <= w[1].t));
        let statuses: HashSet<KeyStatus> = d.keys.iter().map(|k| k.status).collect();
        for s in [
            KeyStatus::Active,
            KeyStatus::Inactive,
            KeyStatus::Revoked,
            KeyStatus::Expired,
        ] {
            assert!(statuses.contains(&s), "no {s} key");
        }
        let now = params(1).now;
        assert!(d.keys.iter().any(|k| now - k.created > 90 * DAY));
        assert!(d.keys.iter().any(|k| now - k.created < 30 * DAY));
        assert!(d.keys.iter().any(|k| k.expires.is_none()));
        assert!(d
            .keys
            .iter()
            .any(|k| k.expires.is_some_and(|e| e > now && e - now < 15 * DAY)));
        // Keys in use up to now are not past their expiry.
        for k in &d.keys {
            if k.profile.as_ref().is_some_and(|p| p.until >= now) {
                assert!(
                    k.expires.is_none_or(|e| e > now),
                    "{} is used after it expired",
                    k.id
                );
                assert_eq!(k.status, KeyStatus::Active);
            }
        }
        let mut dup = HashMap::new();
        for k in d.keys.iter().filter(|k| k.status == KeyStatus::Active) {
            *dup.entry((&k.owner, &k.purpose)).or_insert(0) += 1;
        }
        assert!(dup.values().any(|&n| n > 1), "no owner+purpose duplicates");
        // Some keys hold scopes their traffic never needs.
        let over = d.keys.iter().filter(|k| {
            k.profile.as_ref().is_some_and(|p| {
                k.scopes.iter().any(|s| {
                    !p.actions
                        .iter()
                        .any(|&a| ACTIONS[a as usize].scope == Some(s))
                })
            })
        });
        assert!(over.count() >= 5);
        // Denied and error responses and records on reads exist in normal traffic.
        let normal = d.events.iter().filter(|e| e.label == 0);
        let (mut denied, mut errors, mut records) = (0, 0, 0);
        for e in normal {
            match e.outcome() {
                "denied" => denied += 1,
                "error" => errors += 1,
                _ => {}
            }
            records += usize::from(e.records != NO_RECORDS && e.records > 0);
        }
        assert!(
            errors > 50 && records > 10_000,
            "errors {errors} records {records}"
        );
        assert!(denied > 5, "normal traffic has a few denials");
        // ... but never a burst: at most 2 denials of one key in any hour.
        let mut per_hour: HashMap<(u16, i64), usize> = HashMap::new();
        for e in d
            .events
            .iter()
            .filter(|e| e.label == 0 && e.outcome() == "denied")
        {
            *per_hour.entry((e.key, e.t / HOUR)).or_default() += 1;
        }
        assert!(per_hour.values().all(|&n| n <= 2), "{per_hour:?}");
    }

    #[test]
    fn every_anomaly_kind_is_injected_and_labelled_on_distinct_keys() {
        let d = generate(params(3));
        let now = params(3).now;
        for kind in AnomalyKind::ALL {
            let n = d.labels.iter().filter(|l| l.kind == *kind).count();
            assert!((2..=3).contains(&n), "{} labels of {}", n, kind.as_str());
        }
        let keys: HashSet<usize> = d.labels.iter().map(|l| l.key).collect();
        assert_eq!(keys.len(), d.labels.len(), "one anomaly per key");
        for l in &d.labels {
            assert!(l.events.len() >= 10, "{:?}", l);
            assert!(l.start >= now - 11 * DAY && l.end < now, "{:?}", l);
            for &pos in &l.events {
                let e = d.events[pos as usize];
                assert_eq!(e.key as usize, l.key);
                assert!(e.t >= l.start && e.t <= l.end);
            }
            // The key has a normal baseline before its anomaly.
            let before = d
                .events
                .iter()
                .filter(|e| e.key as usize == l.key && e.label == 0 && e.t < l.start)
                .count();
            assert!(
                before >= 20,
                "{} has only {} normal events before",
                l.kind.as_str(),
                before
            );
        }
        let dormant = d
            .labels
            .iter()
            .filter(|l| l.kind == AnomalyKind::DormantWakeup);
        for l in dormant {
            let last_normal = d
                .events
                .iter()
                .filter(|e| e.key as usize == l.key && e.t < l.start)
                .map(|e| e.t)
                .max()
                .unwrap();
            assert!(l.start - last_normal >= 14 * DAY);
        }
        for l in d
            .labels
            .iter()
            .filter(|l| l.kind == AnomalyKind::RevokedUse)
        {
            assert_ne!(d.keys[l.key].status, KeyStatus::Active);
            assert!(l
                .events
                .iter()
                .all(|&p| d.events[p as usize].outcome() == "denied"));
        }
    }

    #[test]
    fn without_anomalies_there_are_no_labels_and_no_labelled_events() {
        let d = generate(GenParams {
            anomalies: false,
            ..params(3)
        });
        assert!(d.labels.is_empty());
        assert!(d.events.iter().all(|e| e.label == 0));
        assert!(d.events.len() >= 50_000);
    }

    #[test]
    fn only_fingerprints_of_secrets_are_kept() {
        let d = generate(params(5));
        for k in &d.keys {
            assert!(k.fingerprint.starts_with("sha256:") && k.fingerprint.len() == 39);
            assert!(k.prefix.starts_with("tg_") && k.prefix.len() <= "tg_live_".len() + 4);
        }
        let fps: HashSet<&str> = d.keys.iter().map(|k| k.fingerprint.as_str()).collect();
        assert_eq!(fps.len(), d.keys.len());
        // No field of a key is long enough to hold a secret.
        let text = format!("{:?}", d.keys);
        for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            assert!(!secret::is_well_formed(w), "a secret is stored: {w}");
        }
    }

    #[test]
    fn normal_traffic_follows_each_partners_working_hours() {
        let d = generate(GenParams {
            anomalies: false,
            ..params(9)
        });
        let partners = catalogue::partners();
        let mut inside = 0usize;
        for e in &d.events {
            let tz = partners
                .iter()
                .find(|p| p.name == d.keys[e.key as usize].owner)
                .unwrap()
                .tz_min;
            let (lday, min) = local(e.t, tz);
            if !is_weekend(lday) && (7 * 60..19 * 60).contains(&min) {
                inside += 1;
            }
        }
        let share = inside as f64 / d.events.len() as f64;
        assert!(
            share > 0.95,
            "only {:.1}% in weekday working hours",
            share * 100.0
        );
        // Each key keeps to at most three networks and one user agent.
        let mut nets: HashMap<u16, HashSet<u32>> = HashMap::new();
        let mut uas: HashMap<u16, HashSet<u16>> = HashMap::new();
        for e in &d.events {
            nets.entry(e.key).or_default().insert(e.ip >> 8);
            uas.entry(e.key).or_default().insert(e.ua);
        }
        assert!(nets.values().all(|s| s.len() <= 3));
        assert!(uas.values().all(|s| s.len() == 1));
    }

    #[test]
    fn a_million_events_stay_compact() {
        assert!(std::mem::size_of::<Ev>() <= 32);
    }
}
