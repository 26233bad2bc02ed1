//! A key's rhythm: whether it keeps working hours, runs around the clock, or runs on a
//! fixed schedule (cron-like), learned from its own history.
//!
//! - **Working hours.** The key's window is the shortest run of consecutive hours of the
//!   day (circular) that holds at least [`WINDOW_SHARE`] of its decayed hour-of-day
//!   profile. When a day ends, the day *fits* if at least [`DAY_SHARE`] of that day's
//!   events fell inside the window. The key keeps working hours when it has at least
//!   [`MIN_DAYS`] active days, its window is at most [`MAX_WINDOW`] hours, and at least
//!   [`FIT_SHARE`] of its last (up to 28) active days fit. Only such keys can raise
//!   `off_hours`.
//! - **Schedule.** Events more than [`RUN_GAP`] apart start a new *run*. A run that
//!   starts one period (within a tolerance) after the last on-schedule run is on
//!   schedule; one a whole number of periods later is on the grid but does not count. A period of at least 5 minutes is the key's schedule once
//!   [`MIN_RUNS`] runs matched it and at least 95 % of the recent runs did; runs off the
//!   schedule then raise `schedule_break`, and `off_hours` never applies.

use super::{Millis, DAY, HOUR, MINUTE};

/// Share of the hour-of-day profile the working window must hold.
pub const WINDOW_SHARE: f32 = 0.9;
/// Share of a day's events inside the window for the day to fit it.
pub const DAY_SHARE: f32 = 0.8;
/// Longest working window, in hours.
pub const MAX_WINDOW: usize = 14;
/// Active days needed before the rhythm is judged.
pub const MIN_DAYS: u32 = 7;
/// Share of recent active days that must fit the window.
pub const FIT_SHARE: f32 = 0.7;
/// Hours around the working window that are never off hours.
pub const MARGIN: usize = 2;
/// Events further apart than this start a new run.
pub const RUN_GAP: Millis = 2 * MINUTE;
/// Runs on one period before it counts as the key's schedule.
pub const MIN_RUNS: u32 = 40;
/// Shortest period that counts as a schedule.
pub const MIN_PERIOD: Millis = 5 * MINUTE;

/// What the rhythm says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not enough history yet.
    Learning,
    /// A daily working window `start..end` (hours, UTC, `end` exclusive and possibly
    /// past midnight), on weekdays only or every day.
    Hours { start: u8, end: u8, weekdays: bool },
    /// Runs every `period` milliseconds.
    Schedule { period: Millis },
    /// Active around the clock (no window fits).
    AroundTheClock,
    /// Active days, but no window holds most of them.
    Irregular,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Kind::Learning => f.write_str("rhythm not learned yet"),
            Kind::Hours {
                start,
                end,
                weekdays,
            } => write!(
                f,
                "{} {start:02}–{:02} UTC",
                if weekdays { "weekdays" } else { "daily" },
                end % 24
            ),
            Kind::Schedule { period } => {
                if period % HOUR == 0 {
                    let h = period / HOUR;
                    if h == 1 {
                        f.write_str("every hour")
                    } else {
                        write!(f, "every {h} h")
                    }
                } else {
                    write!(f, "every {} min", (period + MINUTE / 2) / MINUTE)
                }
            }
            Kind::AroundTheClock => f.write_str("around the clock"),
            Kind::Irregular => f.write_str("irregular hours"),
        }
    }
}

/// What the key's rhythm model remembers.
#[derive(Debug, Clone, PartialEq)]
pub struct Rhythm {
    /// The day being counted (day number), -1 before the first event.
    pub day: i64,
    /// Its events per hour of the day.
    pub day_hours: Vec<u32>,
    /// Active days closed so far.
    pub active_days: u32,
    /// One bit per recent active day, newest in bit 0: 1 when the day fit the window.
    pub fits: u32,
    /// Active days per weekday (Monday first).
    pub weekdays: Vec<u32>,
    /// Start of the current run, and whether it is off the schedule.
    pub run_start: Millis,
    pub run_off: bool,
    /// The last event time seen by the model.
    pub last: Millis,
    /// Candidate period, the last on-schedule run start, runs that matched it and runs
    /// that did not (both halved now and then, so recent runs weigh more).
    pub period: Millis,
    pub anchor: Millis,
    pub hits: u32,
    pub misses: u32,
    /// Consecutive off-schedule runs (a new schedule once there are many).
    pub off_streak: u32,
}

impl Default for Rhythm {
    fn default() -> Self {
        Rhythm {
            day: -1,
            day_hours: vec![0; 24],
            active_days: 0,
            fits: 0,
            weekdays: vec![0; 7],
            run_start: 0,
            run_off: false,
            last: 0,
            period: 0,
            anchor: 0,
            hits: 0,
            misses: 0,
            off_streak: 0,
        }
    }
}

/// The shortest circular window of hours holding `share` of `hours`: (start, length).
pub fn window(hours: &[f32], share: f32) -> Option<(usize, usize)> {
    let total: f32 = hours.iter().sum();
    if total <= 0.0 {
        return None;
    }
    for len in 1..=24 {
        let mut best: Option<(usize, f32)> = None;
        for start in 0..24 {
            let s: f32 = (0..len).map(|i| hours[(start + i) % 24]).sum();
            if best.is_none_or(|b| s > b.1) {
                best = Some((start, s));
            }
        }
        if let Some((start, s)) = best {
            if s >= share * total {
                return Some((start, len));
            }
        }
    }
    Some((0, 24))
}

fn inside(start: usize, len: usize, hod: usize) -> bool {
    (hod + 24 - start) % 24 < len
}

impl Rhythm {
    fn tolerance(&self) -> Millis {
        (self.period / 20).max(90_000).min(self.period / 10)
    }

    /// True once the key runs on a fixed schedule.
    pub fn scheduled(&self) -> bool {
        self.period >= MIN_PERIOD
            && self.hits >= MIN_RUNS
            && self.hits as f32 >= 0.95 * (self.hits + self.misses) as f32
    }

    /// Folds one event in (time order). `profile` is the key's hour-of-day profile.
    /// Returns true when the event starts a run off the key's schedule.
    pub fn observe(&mut self, t: Millis, profile: &[f32]) -> bool {
        let day = t.div_euclid(DAY);
        if day != self.day {
            self.close_day(profile);
            self.day = day;
        }
        self.day_hours[(t.div_euclid(HOUR).rem_euclid(24)) as usize] += 1;
        let first = self.last == 0;
        let new_run = first || t - self.last > RUN_GAP;
        self.last = t;
        if !new_run {
            return false;
        }
        if first {
            self.run_start = t;
            self.anchor = t;
            self.run_off = false;
            return false;
        }
        let was_scheduled = self.scheduled();
        let interval = t - self.run_start;
        self.run_start = t;
        let d = t - self.anchor;
        let k = if self.period > 0 {
            (d + self.period / 2) / self.period
        } else {
            0
        };
        let on_grid = k >= 1 && (d - k * self.period).abs() <= self.tolerance();
        // The next slot is a hit; a run after missed slots (lost log lines, a pause)
        // is on the grid but proves nothing.
        if on_grid && k > 1 {
            self.anchor = t;
            self.run_off = false;
            return false;
        }
        let on = on_grid;
        if on {
            // Refine the period (schedules are usually whole minutes).
            let est = d;
            self.period += (est - self.period) / 8;
            let whole = (self.period + MINUTE / 2) / MINUTE * MINUTE;
            if (self.period - whole).abs() <= 5_000 {
                self.period = whole;
            }
            self.hits += 1;
            self.anchor = t;
            self.off_streak = 0;
        } else {
            self.misses += 1;
            self.off_streak += 1;
            if (!was_scheduled && self.misses > self.hits) || self.off_streak >= 12 {
                // Not (or no longer) this period: start over from this interval.
                self.period = interval;
                self.anchor = t;
                self.hits = 0;
                self.misses = 0;
                self.off_streak = 0;
            }
        }
        if self.hits + self.misses > 400 {
            self.hits /= 2;
            self.misses /= 2;
        }
        self.run_off = was_scheduled && !on;
        self.run_off
    }

    /// Ends the day being counted: does it fit the key's window?
    fn close_day(&mut self, profile: &[f32]) {
        let n: u32 = self.day_hours.iter().sum();
        if self.day < 0 || n == 0 {
            self.day_hours.iter_mut().for_each(|h| *h = 0);
            return;
        }
        let fit = match window(profile, WINDOW_SHARE) {
            Some((start, len)) if len <= MAX_WINDOW => {
                let inn: u32 = (0..24)
                    .filter(|h| inside(start, len, *h))
                    .map(|h| self.day_hours[h])
                    .sum();
                inn as f32 >= DAY_SHARE * n as f32
            }
            _ => false,
        };
        self.fits = self.fits << 1 | u32::from(fit);
        self.active_days = self.active_days.saturating_add(1);
        // 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday 0).
        self.weekdays[((self.day + 3).rem_euclid(7)) as usize] += 1;
        self.day_hours.iter_mut().for_each(|h| *h = 0);
    }

    /// Share of the recent active days (up to 28) that fit the window.
    fn fit_share(&self) -> f32 {
        let n = self.active_days.min(28);
        if n == 0 {
            return 0.0;
        }
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        (self.fits & mask).count_ones() as f32 / n as f32
    }

    /// True when `t` is at least [`MARGIN`] hours outside the hours that hold 95 % of
    /// the key's activity.
    pub fn far_from_window(&self, profile: &[f32], t: Millis) -> bool {
        let Some((start, len)) = window(profile, 0.95) else {
            return false;
        };
        let hod = t.div_euclid(HOUR).rem_euclid(24) as usize;
        let wide = (start + 24 - MARGIN) % 24;
        len + 2 * MARGIN < 24 && !inside(wide, len + 2 * MARGIN, hod)
    }

    /// True when the key keeps working hours (the only keys that can be off hours).
    pub fn keeps_hours(&self, profile: &[f32]) -> bool {
        matches!(self.hours_kind(profile), Kind::Hours { .. })
    }

    /// What the key's rhythm is, as of its last closed day: its schedule if it has one,
    /// else what its hours say.
    pub fn kind(&self, profile: &[f32]) -> Kind {
        if self.scheduled() {
            return Kind::Schedule {
                period: self.period,
            };
        }
        self.hours_kind(profile)
    }

    /// The rhythm as text, e.g. `every 15 min, weekdays 09–17 UTC`.
    pub fn describe(&self, profile: &[f32]) -> String {
        match (self.kind(profile), self.hours_kind(profile)) {
            (k @ Kind::Schedule { .. }, h @ Kind::Hours { .. }) => format!("{k}, {h}"),
            (k, _) => k.to_string(),
        }
    }

    /// What the key's hours say: a working window, around the clock, irregular.
    pub fn hours_kind(&self, profile: &[f32]) -> Kind {
        if self.active_days < MIN_DAYS {
            return Kind::Learning;
        }
        let w = window(profile, WINDOW_SHARE);
        match w {
            Some((start, len)) if len <= MAX_WINDOW && self.fit_share() >= FIT_SHARE => {
                let all: u32 = self.weekdays.iter().sum();
                let weekend = self.weekdays[5] + self.weekdays[6];
                // Shown as the hours that hold nearly all its activity.
                let (start, len) = match window(profile, 0.95) {
                    Some(wide) if wide.1 <= 18 => wide,
                    _ => (start, len),
                };
                Kind::Hours {
                    start: start as u8,
                    end: (start + len) as u8,
                    weekdays: all >= 10 && (weekend as f32) <= 0.05 * all as f32,
                }
            }
            _ => {
                let total: f32 = profile.iter().sum();
                let busy = profile.iter().filter(|h| **h >= 0.01 * total).count();
                if busy >= 20 {
                    Kind::AroundTheClock
                } else {
                    Kind::Irregular
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Rhythm, profile: &mut [f32], times: impl IntoIterator<Item = Millis>) {
        for t in times {
            r.observe(t, profile);
            profile[(t.div_euclid(HOUR).rem_euclid(24)) as usize] += 1.0;
        }
    }

    // 2026-11-02 is a Monday.
    const MONDAY: Millis = 1_793_577_600_000;

    #[test]
    fn office_hours_on_weekdays() {
        let (mut r, mut p) = (Rhythm::default(), vec![0.0; 24]);
        let times = (0..28).filter(|d| d % 7 < 5).flat_map(|d| {
            (0..40).map(move |i| MONDAY + d * DAY + 8 * HOUR + i * 13 * MINUTE + 17_000)
        });
        feed(&mut r, &mut p, times);
        r.observe(MONDAY + 29 * DAY, &p);
        assert_eq!(r.kind(&p).to_string(), "weekdays 08–17 UTC");
        assert!(r.keeps_hours(&p));
    }

    #[test]
    fn services_run_around_the_clock() {
        let (mut r, mut p) = (Rhythm::default(), vec![0.0; 24]);
        // Random gaps (8 minutes on average), every hour of every day.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut t = MONDAY;
        let times: Vec<Millis> = (0..20 * 24 * 7)
            .map(|_| {
                t += (-(8.0 * MINUTE as f64) * (1.0 - rng.random::<f64>()).ln()) as Millis + 1;
                t
            })
            .collect();
        feed(&mut r, &mut p, times);
        assert_eq!(r.kind(&p), Kind::AroundTheClock);
        assert!(!r.keeps_hours(&p));
    }

    #[test]
    fn a_cron_job_has_a_schedule_and_a_break_is_off_it() {
        let (mut r, mut p) = (Rhythm::default(), vec![0.0; 24]);
        let times = (0..96 * 10).flat_map(|i| {
            let t = MONDAY + i * 15 * MINUTE + (i % 5) * 2000;
            [t, t + 3000, t + 9000]
        });
        feed(&mut r, &mut p, times);
        assert_eq!(r.kind(&p).to_string(), "every 15 min");
        let last = MONDAY + (96 * 10 - 1) * 15 * MINUTE;
        assert!(r.observe(last + 7 * MINUTE, &p), "a run between two slots");
        assert!(
            !r.observe(last + 15 * MINUTE, &p),
            "the next slot is on schedule"
        );
    }
}
