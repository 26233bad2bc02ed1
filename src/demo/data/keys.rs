//! The keys of the data set: one per partner purpose in turn, with their ages,
//! expiries, statuses, networks and working habits.

use super::catalogue::{Partner, ACTIONS};
use super::intern;
use super::{mix, net, new_secret_identity, GenParams, KeyRec, Profile, DAY, KEY_COUNT};
use crate::model::KeyStatus;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

pub(super) fn gen_keys(
    rng: &mut StdRng,
    partners: &[Partner],
    g: GenParams,
    window_start: i64,
    uas: &mut Vec<String>,
) -> Vec<KeyRec> {
    let mut keys = Vec::with_capacity(KEY_COUNT);
    let mut used_names = std::collections::HashSet::new();
    for i in 0..KEY_COUNT {
        let partner = &partners[i % partners.len()];
        let pi = i % partners.len();
        let round = i / partners.len();
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
        for s in &purpose.scopes {
            for (ai, a) in ACTIONS.iter().enumerate() {
                if a.scope == Some(s.as_str()) {
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
