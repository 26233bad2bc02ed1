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

use crate::model::KeyStatus;
use crate::secret;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// `records` value that means "no personal-data records" (rendered as `null`).
pub(crate) const NO_RECORDS: u32 = u32::MAX;
/// Key index of an event whose secret matched no key (rendered as `"unknown"`).
pub(crate) const UNKNOWN_KEY: u16 = u16::MAX;

/// What an operation returns, for the `records` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// A list of personal-data rows (a page).
    List,
    /// One person's data.
    One,
    /// No personal data (writes, reference data).
    No,
}

/// One operation of the platform and the scope it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Action {
    pub text: &'static str,
    pub scope: Option<&'static str>,
    pub reads: Reads,
}

const fn act(text: &'static str, scope: &'static str, reads: Reads) -> Action {
    Action {
        text,
        scope: Some(scope),
        reads,
    }
}

/// Every operation the demo records. Index 0 is the partner ping.
pub(crate) const ACTIONS: &[Action] = &[
    Action {
        text: "GET /v1/partner/ping",
        scope: None,
        reads: Reads::No,
    },
    act("GET /v1/candidates", "candidates:read", Reads::List),
    act("GET /v1/candidates/{id}", "candidates:read", Reads::One),
    act("POST /v1/candidates", "candidates:write", Reads::No),
    act("PATCH /v1/candidates/{id}", "candidates:write", Reads::No),
    act("GET /v1/jobs", "jobs:read", Reads::No),
    act("POST /v1/jobs", "jobs:write", Reads::No),
    act("GET /v1/employees", "employees:read", Reads::List),
    act("GET /v1/employees/{id}", "employees:read", Reads::One),
    act("PATCH /v1/employees/{id}", "employees:write", Reads::No),
    act("POST /v1/employees", "employees:write", Reads::No),
    act("GET /v1/payroll/runs", "payroll:read", Reads::List),
    act("POST /v1/payroll/runs", "payroll:write", Reads::No),
    act("GET /v1/employees/{id}/ssn", "ssn:read", Reads::One),
    act(
        "GET /v1/employees/{id}/bank-account",
        "bank:read",
        Reads::One,
    ),
    act("GET /v1/background-checks", "background:read", Reads::List),
    act("POST /v1/background-checks", "background:write", Reads::No),
    act("GET /v1/documents", "documents:read", Reads::List),
    act("POST /v1/documents", "documents:write", Reads::No),
    act("GET /v1/benefits/enrollments", "benefits:read", Reads::List),
    act("POST /v1/benefits/enrollments", "benefits:write", Reads::No),
    act(
        "GET /v1/employees/{id}/dependents",
        "dependents:read",
        Reads::One,
    ),
    act("GET /v1/timesheets", "timesheets:read", Reads::List),
    act("POST /v1/timesheets", "timesheets:write", Reads::No),
    act("POST /v1/training/completions", "training:write", Reads::No),
    act("POST /v1/surveys/responses", "surveys:write", Reads::No),
    act(
        "GET /v1/employees/{id}/address",
        "addresses:read",
        Reads::One,
    ),
];

/// Index of the partner ping in [`ACTIONS`].
pub(crate) const PING_ACTION: u16 = 0;

/// Sensitive scopes that keys are sometimes granted without using, and that a
/// `denied_burst` probes.
const SENSITIVE: &[&str] = &[
    "ssn:read",
    "payroll:write",
    "bank:read",
    "employees:write",
    "payroll:read",
    "dependents:read",
];

/// One kind of integration a partner runs, with the scopes it really uses.
struct Purpose {
    name: &'static str,
    scopes: &'static [&'static str],
}

/// An integration partner of Talentgrid.
struct Partner {
    name: &'static str,
    slug: &'static str,
    /// Fixed UTC offset of the partner's working day, in minutes.
    tz_min: i32,
    /// Weekend volume relative to a weekday (0 = no weekend work).
    weekend: f64,
    /// Relative traffic volume.
    weight: f64,
    /// Scopes sometimes granted on top of what a purpose uses.
    extra: &'static [&'static str],
    purposes: &'static [Purpose],
    /// The partner's /24 networks (first three octets).
    nets: &'static [[u8; 3]],
}

const fn p(name: &'static str, scopes: &'static [&'static str]) -> Purpose {
    Purpose { name, scopes }
}

const PARTNERS: &[Partner] = &[
    Partner {
        name: "Brightpath ATS",
        slug: "brightpath",
        tz_min: -5 * 60,
        weekend: 0.0,
        weight: 1.6,
        extra: &["candidates:write", "documents:read", "ssn:read"],
        purposes: &[
            p("candidate-sync", &["candidates:read", "candidates:write"]),
            p("job-board-feed", &["jobs:read", "jobs:write"]),
            p("resume-parsing", &["candidates:read", "documents:read"]),
        ],
        nets: &[[198, 51, 100], [203, 0, 113], [52, 14, 201]],
    },
    Partner {
        name: "Ledgerly Payroll",
        slug: "ledgerly",
        tz_min: -6 * 60,
        weekend: 0.0,
        weight: 1.3,
        extra: &["bank:read", "employees:write"],
        purposes: &[
            p(
                "payroll-run",
                &["employees:read", "payroll:read", "payroll:write"],
            ),
            p(
                "tax-filing",
                &["employees:read", "ssn:read", "payroll:read"],
            ),
            p("direct-deposit", &["employees:read", "bank:read"]),
        ],
        nets: &[[192, 0, 2], [34, 120, 88], [34, 120, 89]],
    },
    Partner {
        name: "VeriCheck Screening",
        slug: "vericheck",
        tz_min: -8 * 60,
        weekend: 0.15,
        weight: 1.0,
        extra: &["employees:read", "documents:read"],
        purposes: &[
            p(
                "background-checks",
                &["candidates:read", "background:read", "background:write"],
            ),
            p("identity-verification", &["candidates:read", "ssn:read"]),
        ],
        nets: &[[198, 18, 40], [198, 18, 41], [44, 231, 17]],
    },
    Partner {
        name: "Onboardly",
        slug: "onboardly",
        tz_min: 0,
        weekend: 0.0,
        weight: 1.0,
        extra: &["ssn:read", "payroll:read"],
        purposes: &[
            p(
                "new-hire-onboarding",
                &["employees:read", "employees:write", "documents:write"],
            ),
            p(
                "document-collection",
                &["documents:read", "documents:write"],
            ),
        ],
        nets: &[[81, 2, 69], [81, 2, 70], [185, 40, 12]],
    },
    Partner {
        name: "Benefity",
        slug: "benefity",
        tz_min: 60,
        weekend: 0.0,
        weight: 0.9,
        extra: &["ssn:read", "bank:read"],
        purposes: &[
            p(
                "benefits-enrollment",
                &["employees:read", "benefits:read", "benefits:write"],
            ),
            p(
                "dependent-verification",
                &["employees:read", "dependents:read"],
            ),
        ],
        nets: &[[91, 64, 3], [91, 64, 4], [18, 196, 77]],
    },
    Partner {
        name: "TimeTrack Pro",
        slug: "timetrack",
        tz_min: 330,
        weekend: 0.2,
        weight: 1.2,
        extra: &["employees:write", "payroll:read"],
        purposes: &[
            p("timesheet-import", &["employees:read", "timesheets:write"]),
            p("attendance-report", &["employees:read", "timesheets:read"]),
        ],
        nets: &[[103, 21, 58], [103, 21, 59], [13, 232, 9]],
    },
    Partner {
        name: "LearnLoop",
        slug: "learnloop",
        tz_min: 10 * 60,
        weekend: 0.0,
        weight: 0.6,
        extra: &["employees:write"],
        purposes: &[
            p("training-sync", &["employees:read", "training:write"]),
            p("compliance-courses", &["employees:read", "training:write"]),
        ],
        nets: &[[203, 2, 64], [54, 79, 150], [54, 79, 151]],
    },
    Partner {
        name: "DocuVault",
        slug: "docuvault",
        tz_min: 60,
        weekend: 0.0,
        weight: 0.8,
        extra: &["ssn:read", "employees:write"],
        purposes: &[
            p(
                "contract-signing",
                &["employees:read", "documents:read", "documents:write"],
            ),
            p("records-archive", &["documents:read"]),
        ],
        nets: &[[62, 210, 33], [62, 210, 34], [3, 120, 45]],
    },
    Partner {
        name: "Relocate Global",
        slug: "relocate",
        tz_min: 8 * 60,
        weekend: 0.0,
        weight: 0.5,
        extra: &["dependents:read", "bank:read"],
        purposes: &[
            p("relocation-cases", &["employees:read", "addresses:read"]),
            p("visa-tracking", &["employees:read", "documents:read"]),
        ],
        nets: &[[119, 81, 20], [119, 81, 21], [52, 77, 130]],
    },
    Partner {
        name: "PulseSurvey",
        slug: "pulsesurvey",
        tz_min: -3 * 60,
        weekend: 0.0,
        weight: 0.7,
        extra: &["employees:write", "documents:read"],
        purposes: &[
            p("engagement-surveys", &["employees:read", "surveys:write"]),
            p("exit-interviews", &["employees:read", "surveys:write"]),
        ],
        nets: &[[177, 71, 8], [177, 71, 9], [15, 228, 102]],
    },
];

/// /24 networks no partner ever uses: the source of `new_network` anomalies.
const FOREIGN_NETS: &[[u8; 3]] = &[
    [45, 133, 1],
    [91, 219, 236],
    [185, 220, 101],
    [194, 26, 29],
    [5, 188, 206],
    [46, 161, 27],
];

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
    let mut keys = gen_keys(&mut rng, g, window_start, &mut uas);
    let mut events: Vec<Ev> = Vec::with_capacity(g.events + g.events / 10);
    let mut plans = Vec::new();
    if g.anomalies {
        plans = plan_anomalies(&mut rng, g, window_start, &mut keys);
    }
    gen_normal(&mut rng, g, window_start, &keys, &mut events);
    let mut labels: Vec<Label> = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        inject(&mut rng, plan, (i + 1) as u8, &keys, &mut events);
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

fn gen_keys(
    rng: &mut StdRng,
    g: GenParams,
    window_start: i64,
    uas: &mut Vec<String>,
) -> Vec<KeyRec> {
    let mut keys = Vec::with_capacity(KEY_COUNT);
    let mut used_names = std::collections::HashSet::new();
    for i in 0..KEY_COUNT {
        let partner = &PARTNERS[i % PARTNERS.len()];
        let pi = i % PARTNERS.len();
        let round = i / PARTNERS.len();
        let purpose = &partner.purposes[(round + pi) % partner.purposes.len()];
        let env = if rng.random_bool(0.72) {
            "prod"
        } else {
            "sandbox"
        };
        let mut name = format!("{}-{}-{}", partner.slug, purpose.name, env);
        let mut n = 2;
        while !used_names.insert(name.clone()) {
            name = format!("{}-{}-{}-{}", partner.slug, purpose.name, env, n);
            n += 1;
        }
        let mut scopes: Vec<String> = purpose.scopes.iter().map(|s| s.to_string()).collect();
        if rng.random_bool(0.35) {
            let extra = partner.extra.choose(rng).expect("partners have extras");
            if !scopes.iter().any(|s| s == extra) {
                scopes.push(extra.to_string());
            }
        }
        scopes.sort();
        // Age: a third are old (> 90 days), some recent (inside the history window).
        let age_days: i64 = match rng.random_range(0..10) {
            0..=3 => rng.random_range(91..720),
            4..=7 => rng.random_range(g.days as i64 + 1..91.max(g.days as i64 + 2)),
            _ => rng.random_range(3..g.days.max(4) as i64),
        };
        let created = g.now - age_days * DAY - rng.random_range(0..DAY);
        let expires = match rng.random_range(0..10) {
            0..=2 => None,
            3..=8 => {
                // One- or two-year keys, renewed on schedule: not expired now.
                let term = if rng.random_bool(0.5) { 365 } else { 730 } * DAY;
                let mut e = created + term;
                while e <= g.now + 15 * DAY {
                    e += term;
                }
                Some(e)
            }
            _ => Some(g.now + rng.random_range(2..14) * DAY),
        };
        let id = format!("key_{:016x}", mix(g.seed ^ 0x6b65_795f ^ (i as u64) << 20));
        let version = format!("{}.{}", rng.random_range(1..6), rng.random_range(0..10));
        let ua = intern(
            uas,
            format!(
                "{}-{}/{} (+https://{}.example.com)",
                partner.slug, purpose.name, version, partner.slug
            ),
        );
        let (secret, prefix, fingerprint) = new_secret_identity(Some(env));
        drop(secret);
        let mut nets: Vec<u32> = partner.nets.iter().map(|o| net(*o)).collect();
        nets.shuffle(rng);
        nets.truncate(rng.random_range(1..=3));
        let start_min = rng.random_range(7 * 60..9 * 60 + 30);
        let end_min = rng.random_range(16 * 60 + 30..19 * 60);
        let mut actions: Vec<u16> = Vec::new();
        for s in purpose.scopes {
            for (ai, a) in ACTIONS.iter().enumerate() {
                if a.scope == Some(s) {
                    actions.push(ai as u16);
                }
            }
        }
        let weight =
            partner.weight * rng.random_range(0.4..2.5) * if env == "prod" { 1.0 } else { 0.25 };
        let profile = Profile {
            tz_min: partner.tz_min,
            start_min,
            end_min,
            weekend: partner.weekend,
            weight,
            nets,
            host: rng.random_range(10..200),
            actions,
            page: *[25u32, 50, 100].choose(rng).expect("nonempty"),
            from: created.max(window_start),
            until: g.now,
        };
        keys.push(KeyRec {
            id,
            name,
            owner: partner.name.to_string(),
            environment: Some(env.to_string()),
            purpose: Some(purpose.name.to_string()),
            prefix,
            fingerprint,
            scopes,
            status: KeyStatus::Active,
            created,
            expires,
            last_used: None,
            rotated_to: None,
            grace_until: None,
            profile: Some(profile),
            ua,
        });
    }
    // Statuses. Keys are picked by position in a shuffled order so partners mix.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.shuffle(rng);
    let mut it = order.into_iter();
    // Expired inside the window: traffic stops at expiry.
    for k in it.by_ref().take(3) {
        let key = &mut keys[k];
        let at = g.now - rng.random_range(3..g.days.max(4) as i64) * DAY;
        key.expires = Some(at);
        key.status = KeyStatus::Expired;
        key.created = key.created.min(at - 200 * DAY);
        stop(key, at, window_start);
    }
    // Revoked and disabled: half of them early enough to be probed later (revoked_use).
    for (n, k) in it.by_ref().take(12).enumerate() {
        let key = &mut keys[k];
        key.status = if n % 2 == 0 {
            KeyStatus::Revoked
        } else {
            KeyStatus::Inactive
        };
        key.created = key.created.min(g.now - 120 * DAY);
        let days_back = if n < 6 {
            rng.random_range(13..20)
        } else {
            rng.random_range(1..g.days.max(2) as i64)
        };
        let at = g.now - days_back.min(g.days as i64 - 1).max(1) * DAY - rng.random_range(0..DAY);
        if let Some(e) = key.expires {
            key.expires = Some(e.max(g.now + 30 * DAY));
        }
        stop(key, at, window_start);
    }
    // Never used: stale keys without any traffic.
    for k in it.by_ref().take(4) {
        keys[k].profile = None;
    }
    // A few duplicates: a second active key with the same owner and purpose.
    let dup_sources: Vec<usize> = it.by_ref().take(3).collect();
    for src in dup_sources {
        let mut dup = keys[src].clone();
        let idx = keys.len();
        dup.id = format!(
            "key_{:016x}",
            mix(g.seed ^ 0x6475_705f ^ (idx as u64) << 20)
        );
        dup.name = format!("{}-2", dup.name);
        dup.created = keys[src].created + rng.random_range(30..200) * DAY;
        dup.created = dup.created.min(g.now - 2 * DAY);
        let (secret, prefix, fingerprint) = new_secret_identity(dup.environment.as_deref());
        drop(secret);
        dup.prefix = prefix;
        dup.fingerprint = fingerprint;
        dup.status = KeyStatus::Active;
        dup.profile = None;
        keys.push(dup);
    }
    keys
}

fn stop(key: &mut KeyRec, at: i64, window_start: i64) {
    if let Some(p) = key.profile.as_mut() {
        p.until = at.max(window_start);
        p.from = p.from.min(p.until);
    }
}

/// Expected number of normal events per unit of weight, to scale volumes to the target.
fn day_units(p: &Profile, g: GenParams, window_start: i64) -> f64 {
    let mut units = 0.0;
    let mut day = day_floor(window_start);
    while day < g.now {
        let (lday, _) = local(day + 12 * HOUR, p.tz_min);
        let f = if is_weekend(lday) { p.weekend } else { 1.0 };
        let (lo, hi) = (day.max(p.from), (day + DAY).min(p.until));
        if hi > lo {
            units += f * (hi - lo) as f64 / DAY as f64;
        }
        day += DAY;
    }
    units
}

fn gen_normal(
    rng: &mut StdRng,
    g: GenParams,
    window_start: i64,
    keys: &[KeyRec],
    events: &mut Vec<Ev>,
) {
    let total: f64 = keys
        .iter()
        .filter_map(|k| k.profile.as_ref())
        .map(|p| p.weight * day_units(p, g, window_start))
        .sum();
    if total <= 0.0 {
        return;
    }
    let scale = g.events as f64 * 0.97 / total;
    for (ki, k) in keys.iter().enumerate() {
        let Some(p) = k.profile.as_ref() else {
            continue;
        };
        // Walk local days of the key's zone.
        let tz = p.tz_min as i64 * MINUTE;
        let first = (window_start + tz).div_euclid(DAY) - 1;
        let last = (g.now + tz).div_euclid(DAY);
        for lday in first..=last {
            let f = if is_weekend(lday) { p.weekend } else { 1.0 };
            if f == 0.0 {
                continue;
            }
            let day_start = lday * DAY - tz;
            let lo = day_start + p.start_min * MINUTE;
            let hi = day_start + p.end_min * MINUTE;
            if hi <= p.from || lo >= p.until {
                continue;
            }
            let mean = p.weight * scale * f * rng.random_range(0.88..1.12);
            let n = mean.floor() as usize + usize::from(rng.random::<f64>() < mean.fract());
            let netw = p.day_net(lday);
            for _ in 0..n {
                let t = rng.random_range(lo..hi);
                if t < p.from || t >= p.until {
                    continue;
                }
                events.push(normal_event(rng, ki as u16, k, p, t, netw, 0));
            }
        }
    }
}

/// One ordinary request of key `k` at `t` from network `netw`.
pub(crate) fn normal_event(
    rng: &mut impl Rng,
    ki: u16,
    k: &KeyRec,
    p: &Profile,
    t: i64,
    netw: u32,
    label: u8,
) -> Ev {
    let action = *p.actions.choose(rng).expect("profiles have actions");
    let a = ACTIONS[action as usize];
    let roll: f64 = rng.random();
    if roll < 0.0015 {
        // Now and then a call the key has no scope for.
        if let Some(lacking) = lacking_action(rng, k) {
            return Ev {
                t,
                ip: netw | (p.host as u32 + rng.random_range(0..3)),
                records: NO_RECORDS,
                key: ki,
                ua: k.ua,
                action: lacking,
                status: 403,
                label,
            };
        }
    }
    let (status, records) = if (0.0015..0.0045).contains(&roll) {
        (
            *[500u16, 502, 503].choose(rng).expect("nonempty"),
            NO_RECORDS,
        )
    } else if roll < 0.0075 && a.reads != Reads::No {
        // A lookup of something that is not there.
        (404, NO_RECORDS)
    } else {
        let r = match a.reads {
            Reads::List => {
                if rng.random_bool(0.8) {
                    p.page
                } else {
                    rng.random_range(0..p.page)
                }
            }
            Reads::One => 1,
            Reads::No => NO_RECORDS,
        };
        let st = if a.text.starts_with("POST") { 201 } else { 200 };
        (st, r)
    };
    Ev {
        t,
        ip: netw | (p.host as u32 + rng.random_range(0..3)),
        records,
        key: ki,
        ua: k.ua,
        action,
        status,
        label,
    }
}

/// An operation on a sensitive scope that key `k` was not granted, if any.
fn lacking_action(rng: &mut impl Rng, k: &KeyRec) -> Option<u16> {
    let lacking: Vec<u16> = ACTIONS
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.scope
                .is_some_and(|s| SENSITIVE.contains(&s) && !k.scopes.iter().any(|g| g == s))
        })
        .map(|(i, _)| i as u16)
        .collect();
    lacking.choose(rng).copied()
}

/// An anomaly to inject: what, on which key, when.
#[derive(Debug, Clone)]
struct Plan {
    kind: AnomalyKind,
    key: usize,
    /// Start time (ms).
    at: i64,
}

/// A weekday working-hours moment of key `p` on local day `lday` (or the next weekday).
fn working_moment(rng: &mut StdRng, p: &Profile, mut lday: i64) -> i64 {
    while is_weekend(lday) {
        lday += 1;
    }
    let tz = p.tz_min as i64 * MINUTE;
    let lo = lday * DAY - tz + p.start_min * MINUTE + HOUR;
    let hi = lday * DAY - tz + p.end_min * MINUTE - 3 * HOUR;
    rng.random_range(lo..hi.max(lo + 1))
}

fn plan_anomalies(
    rng: &mut StdRng,
    g: GenParams,
    window_start: i64,
    keys: &mut [KeyRec],
) -> Vec<Plan> {
    let recent_lo = g.now - 10 * DAY;
    let recent_hi = g.now - DAY;
    // Active keys with a full baseline before the anomaly window.
    let mut healthy: Vec<usize> = (0..keys.len())
        .filter(|&i| {
            let k = &keys[i];
            k.status == KeyStatus::Active
                && k.expires.is_none_or(|e| e > g.now)
                && k.profile.as_ref().is_some_and(|p| {
                    p.from <= window_start.max(recent_lo - 14 * DAY) && p.until >= g.now
                })
        })
        .collect();
    // The busiest first: anomalies need a clear baseline. Ties keep id order.
    healthy.sort_by(|&a, &b| {
        let wa = keys[a].profile.as_ref().map_or(0.0, |p| p.weight);
        let wb = keys[b].profile.as_ref().map_or(0.0, |p| p.weight);
        wb.total_cmp(&wa)
    });
    let mut taken = vec![false; keys.len()];
    let mut plans = Vec::new();
    let lday_of = |p: &Profile, t: i64| local(t, p.tz_min).0;
    for &kind in AnomalyKind::ALL {
        let want = rng.random_range(2..=3);
        let mut got = 0;
        if kind == AnomalyKind::RevokedUse {
            // Keys revoked or disabled well before the anomaly window, with history.
            for i in 0..keys.len() {
                if got == want || taken[i] {
                    continue;
                }
                let k = &keys[i];
                let ok = matches!(k.status, KeyStatus::Revoked | KeyStatus::Inactive)
                    && k.profile.as_ref().is_some_and(|p| {
                        p.until <= recent_lo - 2 * DAY && p.until - p.from >= 5 * DAY
                    });
                if ok {
                    let p = k.profile.as_ref().expect("checked");
                    let day_t = rng.random_range(recent_lo..recent_hi);
                    let t = working_moment(rng, p, lday_of(p, day_t));
                    taken[i] = true;
                    plans.push(Plan {
                        kind,
                        key: i,
                        at: t,
                    });
                    got += 1;
                }
            }
            continue;
        }
        if kind == AnomalyKind::DormantWakeup && g.days < 24 {
            continue;
        }
        for &i in &healthy {
            if got == want {
                break;
            }
            if taken[i] {
                continue;
            }
            let p = keys[i]
                .profile
                .as_ref()
                .expect("healthy keys have profiles");
            let fits = match kind {
                AnomalyKind::ConcurrentNetworks => p.nets.len() >= 2,
                AnomalyKind::BulkExport => p
                    .actions
                    .iter()
                    .any(|&a| ACTIONS[a as usize].reads == Reads::List),
                AnomalyKind::DeniedBurst => SENSITIVE
                    .iter()
                    .any(|s| !keys[i].scopes.iter().any(|g| g == s)),
                AnomalyKind::OffHours => p.start_min >= 6 * 60,
                AnomalyKind::DormantWakeup => p.from <= g.now - 22 * DAY,
                _ => true,
            };
            if !fits {
                continue;
            }
            let day_t = if kind == AnomalyKind::DormantWakeup {
                rng.random_range(g.now - 3 * DAY..recent_hi)
            } else {
                rng.random_range(recent_lo..recent_hi)
            };
            let lday = lday_of(p, day_t);
            let at = match kind {
                AnomalyKind::OffHours => {
                    let mut d = lday;
                    while is_weekend(d) {
                        d += 1;
                    }
                    d * DAY - p.tz_min as i64 * MINUTE + rng.random_range(60..180) * MINUTE
                }
                _ => working_moment(rng, p, lday),
            };
            if at >= g.now - 4 * HOUR {
                continue;
            }
            if kind == AnomalyKind::DormantWakeup {
                let silence = rng.random_range(15..18) * DAY;
                let k = &mut keys[i];
                if let Some(p) = k.profile.as_mut() {
                    p.until = at - silence;
                }
            }
            taken[i] = true;
            plans.push(Plan { kind, key: i, at });
            got += 1;
        }
    }
    plans
}

fn inject(rng: &mut StdRng, plan: &Plan, label: u8, keys: &[KeyRec], events: &mut Vec<Ev>) {
    let k = &keys[plan.key];
    let Some(p) = k.profile.as_ref() else { return };
    let ki = plan.key as u16;
    // The network the key uses on that day in normal traffic (any of its own).
    let own = p.day_net(local(plan.at, p.tz_min).0);
    let at = plan.at;
    match plan.kind {
        AnomalyKind::NewNetwork => {
            let foreign = net(*FOREIGN_NETS.choose(rng).expect("nonempty"));
            let n = rng.random_range(25..50);
            let span = rng.random_range(60..150) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, foreign, label);
                e.ip = foreign | rng.random_range(2..250);
                events.push(e);
            }
        }
        AnomalyKind::OffHours => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(40..100) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::VolumeSpike => {
            let hours = rng.random_range(2..4);
            let per_hour = events.iter().filter(|e| e.key == ki).count() as f64
                / ((p.until - p.from).max(DAY) as f64 / DAY as f64)
                / ((p.end_min - p.start_min) as f64 / 60.0);
            let n = ((per_hour * 12.0 * hours as f64) as usize).max(80 * hours as usize);
            for _ in 0..n {
                let t = at + rng.random_range(0..hours * HOUR);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::DeniedBurst => {
            let n = rng.random_range(40..90);
            let span = rng.random_range(15..40) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.action = lacking_action(rng, k).expect("checked when planned");
                e.status = 403;
                e.records = NO_RECORDS;
                events.push(e);
            }
        }
        AnomalyKind::DormantWakeup => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(60..180) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::RevokedUse => {
            let n = rng.random_range(15..40);
            let span = rng.random_range(30..120) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.status = 401;
                e.records = NO_RECORDS;
                events.push(e);
            }
        }
        AnomalyKind::BulkExport => {
            let lists: Vec<u16> = p
                .actions
                .iter()
                .copied()
                .filter(|&a| ACTIONS[a as usize].reads == Reads::List)
                .collect();
            let n = rng.random_range(12..30);
            let span = rng.random_range(30..90) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.action = *lists.choose(rng).expect("checked when planned");
                e.status = 200;
                e.records = rng.random_range(2_000..10_000);
                events.push(e);
            }
        }
        AnomalyKind::ConcurrentNetworks => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(45..90) * MINUTE;
            for j in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, p.nets[j % 2], label));
            }
        }
    }
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
        let mut inside = 0usize;
        for e in &d.events {
            let tz = PARTNERS
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
