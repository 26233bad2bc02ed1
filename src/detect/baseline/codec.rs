//! The binary encoding of a [`KeyState`], as the cache keeps it for each key.
//!
//! A format byte ([`FORMAT`]) and then the fields in declaration order: integers as
//! LEB128 varints (signed ones zigzag-encoded), strings and lists with a varint length,
//! histograms and the hour-of-day profile sparse (length, count of non-zero weights, then
//! index and little-endian `f32` of each). A state is 350–700 bytes, about a quarter of
//! its JSON, and encodes or decodes in a few microseconds.
//!
//! [`KeyState::decode`] returns `None` for anything it cannot read completely (another
//! format, a truncated value, trailing bytes); detection then rebuilds that key's state
//! from its history.

use super::{Bucket, Incident, KeyState, LogHist, Rhythm, Seen};

/// Version of the encoding, the first byte of every saved state.
pub const FORMAT: u8 = 3;

struct Out(Vec<u8>);

impl Out {
    fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.u(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn rows(&mut self, v: &[i64]) {
        self.u(v.len() as u64);
        for x in v {
            self.i(*x);
        }
    }

    fn floats(&mut self, v: &[f32]) {
        self.u(v.len() as u64);
        let nonzero = v.iter().filter(|x| x.to_bits() != 0).count();
        self.u(nonzero as u64);
        for (i, x) in v.iter().enumerate() {
            if x.to_bits() != 0 {
                self.u(i as u64);
                self.0.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    fn incident(&mut self, inc: &Incident) {
        self.str(&inc.rule);
        self.str(&inc.subject);
        self.i(inc.start);
        self.i(inc.last);
        self.u(inc.events);
        self.rows(&inc.rows);
        self.str(&inc.title);
        self.str(&inc.explanation);
        self.0.push(inc.severity);
        self.u(inc.peak);
        self.u(inc.sum);
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn u(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u()?).ok()
    }

    fn i(&mut self) -> Option<i64> {
        let v = self.u()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A list length: every element takes at least one byte, so a length beyond the
    /// remaining input is corrupt (and never allocates).
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }

    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(s.to_vec()).ok()
    }

    fn rows(&mut self) -> Option<Vec<i64>> {
        let n = self.len()?;
        (0..n).map(|_| self.i()).collect()
    }

    fn floats(&mut self) -> Option<Vec<f32>> {
        // Histograms have 64 weights, the hour profile 24; anything far larger is corrupt.
        let n = usize::try_from(self.u()?).ok().filter(|n| *n <= 4096)?;
        let mut v = vec![0.0f32; n];
        for _ in 0..self.len()? {
            let i = usize::try_from(self.u()?).ok().filter(|i| *i < n)?;
            let (b, rest) = self.0.split_first_chunk::<4>()?;
            self.0 = rest;
            v[i] = f32::from_le_bytes(*b);
        }
        Some(v)
    }

    fn incident(&mut self) -> Option<Incident> {
        Some(Incident {
            rule: self.str()?,
            subject: self.str()?,
            start: self.i()?,
            last: self.i()?,
            events: self.u()?,
            rows: self.rows()?,
            title: self.str()?,
            explanation: self.str()?,
            severity: self.byte()?,
            peak: self.u()?,
            sum: self.u()?,
        })
    }
}

impl KeyState {
    /// The state in the binary form saved between runs (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out(Vec::with_capacity(512));
        o.0.push(FORMAT);
        o.u(self.events);
        o.i(self.first_time);
        o.i(self.last_time);
        o.i(self.last_row);
        o.i(self.decay_time);
        o.floats(&self.hours);
        for h in [&self.volume, &self.denied, &self.records, &self.reads] {
            o.floats(&h.bins);
        }
        o.u(self.nets.len() as u64);
        for s in &self.nets {
            o.u(s.value);
            o.i(s.first);
            o.i(s.last);
            o.i(s.alert_until);
        }
        o.u(self.agents.len() as u64);
        for s in &self.agents {
            o.str(&s.value);
            o.i(s.first);
            o.i(s.last);
            o.i(s.alert_until);
        }
        for list in [&self.scopes, &self.services] {
            o.u(list.len() as u64);
            for (s, t) in list {
                o.str(s);
                o.i(*t);
            }
        }
        let r = &self.rhythm;
        o.i(r.day);
        for list in [&r.day_hours, &r.weekdays] {
            o.u(list.len() as u64);
            for n in list {
                o.u(u64::from(*n));
            }
        }
        for n in [r.active_days, r.fits, r.hits, r.misses, r.off_streak] {
            o.u(u64::from(n));
        }
        for t in [r.run_start, r.last, r.period, r.anchor] {
            o.i(t);
        }
        o.0.push(u8::from(r.run_off));
        o.u(u64::from(self.long_gaps));
        o.u(u64::from(self.concurrent_days));
        o.i(self.concurrent_last_day);
        match self.last_net {
            None => o.0.push(0),
            Some((n, t)) => {
                o.0.push(1);
                o.u(n);
                o.i(t);
            }
        }
        let b = &self.bucket;
        o.i(b.hour);
        for n in [
            b.requests,
            b.denied,
            b.denied_novel,
            b.sched,
            b.off,
            b.switches,
            b.all,
            b.reads,
        ] {
            o.u(u64::from(n));
        }
        for rows in [
            &b.rows_requests,
            &b.rows_denied,
            &b.rows_off,
            &b.rows_switch,
            &b.rows_sched,
            &b.rows_reads,
        ] {
            o.rows(rows);
        }
        o.u(b.switch_nets.len() as u64);
        for n in &b.switch_nets {
            o.u(*n);
        }
        o.u(b.denied_scopes.len() as u64);
        for s in &b.denied_scopes {
            o.str(s);
        }
        o.u(self.open.len() as u64);
        for inc in &self.open {
            o.incident(inc);
        }
        o.u(self.pending_hours.len() as u64);
        for (h, n) in &self.pending_hours {
            o.0.push(*h);
            o.u(u64::from(*n));
        }
        o.u(self.tail_count);
        o.i(self.tail_first);
        o.i(self.tail_last);
        o.rows(&self.tail_rows);
        o.u(self.late_count);
        o.i(self.late_first);
        o.i(self.late_last);
        o.rows(&self.late_rows);
        o.0
    }

    /// Reads a state written by [`KeyState::encode`]; `None` if `bytes` is not one
    /// (another format version, JSON of older caches, truncated or corrupt data).
    pub fn decode(bytes: &[u8]) -> Option<KeyState> {
        let mut r = In(bytes);
        if r.byte()? != FORMAT {
            return None;
        }
        let events = r.u()?;
        let first_time = r.i()?;
        let last_time = r.i()?;
        let last_row = r.i()?;
        let decay_time = r.i()?;
        let hours = r.floats()?;
        let volume = LogHist { bins: r.floats()? };
        let denied = LogHist { bins: r.floats()? };
        let records = LogHist { bins: r.floats()? };
        let reads = LogHist { bins: r.floats()? };
        let nets = (0..r.len()?)
            .map(|_| {
                Some(Seen {
                    value: r.u()?,
                    first: r.i()?,
                    last: r.i()?,
                    alert_until: r.i()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let agents = (0..r.len()?)
            .map(|_| {
                Some(Seen {
                    value: r.str()?,
                    first: r.i()?,
                    last: r.i()?,
                    alert_until: r.i()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let scopes = (0..r.len()?)
            .map(|_| Some((r.str()?, r.i()?)))
            .collect::<Option<Vec<_>>>()?;
        let services = (0..r.len()?)
            .map(|_| Some((r.str()?, r.i()?)))
            .collect::<Option<Vec<_>>>()?;
        let day = r.i()?;
        let day_hours = (0..r.len()?).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
        let weekdays = (0..r.len()?).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
        if day_hours.len() != 24 || weekdays.len() != 7 {
            return None;
        }
        let rhythm = Rhythm {
            day,
            day_hours,
            weekdays,
            active_days: r.u32()?,
            fits: r.u32()?,
            hits: r.u32()?,
            misses: r.u32()?,
            off_streak: r.u32()?,
            run_start: r.i()?,
            last: r.i()?,
            period: r.i()?,
            anchor: r.i()?,
            run_off: match r.byte()? {
                0 => false,
                1 => true,
                _ => return None,
            },
        };
        let long_gaps = r.u32()?;
        let concurrent_days = r.u32()?;
        let concurrent_last_day = r.i()?;
        let last_net = match r.byte()? {
            0 => None,
            1 => Some((r.u()?, r.i()?)),
            _ => return None,
        };
        let bucket = Bucket {
            hour: r.i()?,
            requests: r.u32()?,
            denied: r.u32()?,
            denied_novel: r.u32()?,
            sched: r.u32()?,
            off: r.u32()?,
            switches: r.u32()?,
            all: r.u32()?,
            reads: r.u32()?,
            rows_requests: r.rows()?,
            rows_denied: r.rows()?,
            rows_off: r.rows()?,
            rows_switch: r.rows()?,
            rows_sched: r.rows()?,
            rows_reads: r.rows()?,
            switch_nets: (0..r.len()?).map(|_| r.u()).collect::<Option<_>>()?,
            denied_scopes: (0..r.len()?).map(|_| r.str()).collect::<Option<_>>()?,
        };
        let open = (0..r.len()?)
            .map(|_| r.incident())
            .collect::<Option<Vec<_>>>()?;
        let pending_hours = (0..r.len()?)
            .map(|_| Some((r.byte()?, r.u32()?)))
            .collect::<Option<Vec<_>>>()?;
        let st = KeyState {
            events,
            first_time,
            last_time,
            last_row,
            decay_time,
            hours,
            volume,
            denied,
            records,
            reads,
            nets,
            agents,
            scopes,
            services,
            rhythm,
            long_gaps,
            concurrent_days,
            concurrent_last_day,
            last_net,
            bucket,
            open,
            pending_hours,
            tail_count: r.u()?,
            tail_first: r.i()?,
            tail_last: r.i()?,
            tail_rows: r.rows()?,
            late_count: r.u()?,
            late_first: r.i()?,
            late_last: r.i()?,
            late_rows: r.rows()?,
        };
        r.0.is_empty().then_some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(rule: &str) -> Incident {
        Incident {
            rule: rule.into(),
            subject: "203.0.113.0/24".into(),
            start: 1_790_000_000_000,
            last: 1_790_000_360_000,
            events: 7,
            rows: vec![1, 2, 900_000_000_000],
            title: "First use from 203.0.113.0/24".into(),
            explanation: "a network this key had never used — ünïcode too".into(),
            severity: 2,
            peak: 40,
            sum: u64::MAX,
        }
    }

    fn busy_state() -> KeyState {
        let mut st = KeyState {
            events: 123_456,
            first_time: 1_780_000_000_000,
            last_time: 1_790_000_000_000,
            last_row: 999_990,
            decay_time: 1_789_990_000_000,
            long_gaps: 2,
            concurrent_days: 1,
            concurrent_last_day: 20_700,
            last_net: Some((4 << 56 | 0x0b_2233, 1_790_000_000_000)),
            pending_hours: vec![(3, 17), (23, 1)],
            tail_count: 3,
            tail_first: 1,
            tail_last: -5,
            tail_rows: vec![10, 11, 12],
            late_count: 0,
            late_first: i64::MIN,
            late_last: i64::MAX,
            late_rows: Vec::new(),
            ..KeyState::default()
        };
        for v in [0, 3, 9, 9, 17, 250, 5000, u64::MAX] {
            st.volume.add(v);
            st.records.add(v / 2);
        }
        st.volume.scale(0.83);
        st.denied.bins[5] = -0.0;
        st.hours[9] = 12.5;
        st.hours[17] = f32::MIN_POSITIVE;
        st.nets.push(Seen {
            value: 6 << 56 | 0x2001_0db8_1234,
            first: 1,
            last: 2,
            alert_until: 0,
        });
        st.agents.push(Seen {
            value: "greenhouse-sync".into(),
            first: 3,
            last: 4,
            alert_until: 5,
        });
        st.scopes = vec![("candidates:read".into(), 6), (String::new(), -7)];
        st.services = vec![("iam.amazonaws.com".into(), 9)];
        st.rhythm.day = 20_000;
        st.rhythm.day_hours[9] = 14;
        st.rhythm.weekdays[2] = 3;
        st.rhythm.fits = 0b1011;
        st.rhythm.period = 900_000;
        st.rhythm.run_off = true;
        st.bucket = Bucket {
            hour: 497_222,
            requests: 40,
            denied: 2,
            denied_novel: 1,
            sched: 3,
            off: 0,
            switches: u32::MAX,
            all: 42,
            reads: 7,
            rows_requests: vec![1, 2, 3],
            rows_denied: vec![4],
            rows_off: Vec::new(),
            rows_switch: vec![-1],
            rows_sched: vec![7, 8],
            rows_reads: vec![9],
            switch_nets: vec![1, u64::MAX],
            denied_scopes: vec!["admin:write".into()],
        };
        st.open = vec![incident("new_network"), incident("volume_spike")];
        st
    }

    #[test]
    fn states_round_trip() {
        for st in [KeyState::default(), busy_state()] {
            let bytes = st.encode();
            assert_eq!(bytes[0], FORMAT);
            let back = KeyState::decode(&bytes).expect("decodes");
            // Bit-exact, including -0.0 weights.
            assert_eq!(back.encode(), bytes);
            assert_eq!(back, st);
        }
    }

    #[test]
    fn a_busy_state_is_compact() {
        // Two open incidents with their wording, three histograms, a full bucket.
        let n = busy_state().encode().len();
        assert!(n < 700, "{n} bytes");
        assert!(KeyState::default().encode().len() < 96);
    }

    #[test]
    fn anything_else_is_refused() {
        let bytes = busy_state().encode();
        for cut in 0..bytes.len() {
            assert!(KeyState::decode(&bytes[..cut]).is_none(), "prefix of {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(KeyState::decode(&longer).is_none());
        let mut other = bytes;
        other[0] = FORMAT + 1;
        assert!(KeyState::decode(&other).is_none());
        // The JSON that older caches hold.
        assert!(KeyState::decode(br#"{"events":0,"first_time":0}"#).is_none());
        // A huge length does not allocate.
        assert!(KeyState::decode(&[FORMAT, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_none());
    }
}
