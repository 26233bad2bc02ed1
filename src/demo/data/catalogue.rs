//! The world the demo's data set is drawn from: the platform's operations and the
//! scopes they need, its integration partners (assets/demo/partners.toml) and the
//! networks no partner uses.

use serde::Deserialize;

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
pub(super) const SENSITIVE: &[&str] = &[
    "ssn:read",
    "payroll:write",
    "bank:read",
    "employees:write",
    "payroll:read",
    "dependents:read",
];

/// One kind of integration a partner runs, with the scopes it really uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Purpose {
    pub name: String,
    pub scopes: Vec<String>,
}

/// An integration partner of Talentgrid.
#[derive(Debug, Clone)]
pub(super) struct Partner {
    pub name: String,
    pub slug: String,
    /// Fixed UTC offset of the partner's working day, in minutes.
    pub tz_min: i32,
    /// Weekend volume relative to a weekday (0 = no weekend work).
    pub weekend: f64,
    /// Relative traffic volume.
    pub weight: f64,
    /// Scopes sometimes granted on top of what a purpose uses.
    pub extra: Vec<String>,
    pub purposes: Vec<Purpose>,
    /// The partner's /24 networks (first three octets).
    pub nets: Vec<[u8; 3]>,
}

/// The partner catalogue as the program ships it.
const PARTNERS_TOML: &str = include_str!("../../../assets/demo/partners.toml");

/// A partner as written in the catalogue.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    name: String,
    slug: String,
    utc_offset: String,
    weekend: f64,
    weight: f64,
    extra: Vec<String>,
    networks: Vec<String>,
    #[serde(rename = "purpose")]
    purposes: Vec<Purpose>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalogue {
    partner: Vec<PartnerEntry>,
}

/// The integration partners (assets/demo/partners.toml), in catalogue order.
pub(super) fn partners() -> Vec<Partner> {
    parse_partners(PARTNERS_TOML).unwrap_or_else(|e| panic!("assets/demo/partners.toml: {e}"))
}

/// Reads a partner catalogue; the error names the partner and field at fault.
fn parse_partners(text: &str) -> Result<Vec<Partner>, String> {
    let c: Catalogue = toml::from_str(text).map_err(|e| e.to_string())?;
    if c.partner.is_empty() {
        return Err("no [[partner]]".into());
    }
    let known = |scope: &str| ACTIONS.iter().any(|a| a.scope == Some(scope));
    c.partner
        .into_iter()
        .map(|p| {
            let at = |what: String| format!("partner `{}`: {what}", p.name);
            let tz_min = utc_offset_minutes(&p.utc_offset).ok_or_else(|| {
                at(format!(
                    "utc_offset `{}`: expected +HH:MM or -HH:MM",
                    p.utc_offset
                ))
            })?;
            let nets = p
                .networks
                .iter()
                .map(|n| net24(n).ok_or_else(|| at(format!("network `{n}`: expected a.b.c.0/24"))))
                .collect::<Result<Vec<_>, _>>()?;
            if nets.is_empty() || p.extra.is_empty() || p.purposes.is_empty() {
                return Err(at(
                    "needs networks, extra scopes and at least one purpose".into()
                ));
            }
            if !(p.weight > 0.0 && p.weekend >= 0.0) {
                return Err(at("weight must be positive and weekend not negative".into()));
            }
            let scopes = p
                .extra
                .iter()
                .chain(p.purposes.iter().flat_map(|u| &u.scopes));
            if let Some(s) = scopes.clone().find(|s| !known(s)) {
                return Err(at(format!("scope `{s}` is no operation's scope")));
            }
            if let Some(u) = p.purposes.iter().find(|u| u.scopes.is_empty()) {
                return Err(at(format!("purpose `{}` has no scopes", u.name)));
            }
            Ok(Partner {
                name: p.name,
                slug: p.slug,
                tz_min,
                weekend: p.weekend,
                weight: p.weight,
                extra: p.extra,
                purposes: p.purposes,
                nets,
            })
        })
        .collect()
}

/// `+05:30` -> 330, `-06:00` -> -360.
fn utc_offset_minutes(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// `198.51.100.0/24` -> `[198, 51, 100]`.
fn net24(s: &str) -> Option<[u8; 3]> {
    let addr: std::net::Ipv4Addr = s.strip_suffix("/24")?.parse().ok()?;
    let [a, b, c, d] = addr.octets();
    (d == 0).then_some([a, b, c])
}

/// /24 networks no partner ever uses: the source of `new_network` anomalies.
pub(super) const FOREIGN_NETS: &[[u8; 3]] = &[
    [45, 133, 1],
    [91, 219, 236],
    [185, 220, 101],
    [194, 26, 29],
    [5, 188, 206],
    [46, 161, 27],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_reads() {
        let p = partners();
        assert_eq!(p.len(), 10);
        assert_eq!(p[0].name, "Brightpath ATS");
        assert_eq!(p[0].tz_min, -300);
        assert_eq!(p[0].nets[0], [198, 51, 100]);
        let timetrack = p.iter().find(|p| p.slug == "timetrack").unwrap();
        assert_eq!(timetrack.tz_min, 330);
        assert_eq!(timetrack.weekend, 0.2);
        assert_eq!(p.iter().map(|p| p.purposes.len()).sum::<usize>(), 22);
    }

    #[test]
    fn catalogue_mistakes_are_named() {
        let one = |extra: &str| {
            format!(
                "[[partner]]\nname = \"X\"\nslug = \"x\"\nutc_offset = \"+01:00\"\nweekend = 0.0\nweight = 1.0\nextra = [\"ssn:read\"]\nnetworks = [\"192.0.2.0/24\"]\n{extra}\n[[partner.purpose]]\nname = \"p\"\nscopes = [\"jobs:read\"]\n"
            )
        };
        assert!(parse_partners(&one("")).is_ok());
        let bad = one("").replace("+01:00", "1h");
        assert!(parse_partners(&bad)
            .unwrap_err()
            .contains("utc_offset `1h`"));
        let bad = one("").replace("192.0.2.0/24", "192.0.2.7/24");
        assert!(parse_partners(&bad)
            .unwrap_err()
            .contains("network `192.0.2.7/24`"));
        let bad = one("").replace("jobs:read", "jobs:fly");
        assert!(parse_partners(&bad)
            .unwrap_err()
            .contains("scope `jobs:fly`"));
        assert!(parse_partners(&one("colour = \"red\"")).is_err());
    }
}
