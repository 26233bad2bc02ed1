//! Fuzzy scoring: the Skim V2 algorithm of fuzzy-matcher 0.3.7 (smart case, default
//! scores) over text prepared once per key list.
//!
//! A word matches when its characters occur in the text in order (ASCII case ignored
//! unless the word has an ASCII capital); the score ranks the matches. The score is the
//! one `SkimMatcherV2::default().fuzzy_match` returns on a new matcher, to the point (the
//! tests compare the two); fuzzy-matcher's own matcher is not used because it decodes the
//! text, computes its character classes and walks every column for every key on every
//! keystroke, and because a reused matcher carries scratch state from one call into the
//! next, which changes scores slightly.

use std::cmp::max;

/// Skim's character classes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Empty,
    Upper,
    Lower,
    Number,
    HardSep,
    SoftSep,
}

const fn class(c: char) -> Class {
    match c {
        '\0' => Class::Empty,
        ' ' | '/' | '\\' | '|' | '(' | ')' | '[' | ']' | '{' | '}' => Class::HardSep,
        '!'..='\'' | '*'..='.' | ':'..='@' | '^'..='`' | '~' => Class::SoftSep,
        '0'..='9' => Class::Number,
        'A'..='Z' => Class::Upper,
        _ => Class::Lower,
    }
}

// Skim V2's default score settings.
const SCORE_MATCH: i32 = 16;
const GAP_START: i32 = -3;
const GAP_EXTENSION: i32 = -1;
const BONUS_HEAD: i32 = SCORE_MATCH / 2;
const BONUS_BREAK: i32 = SCORE_MATCH / 2 + GAP_EXTENSION;
const BONUS_CAMEL: i32 = SCORE_MATCH / 2 + 2 * GAP_EXTENSION;
const BONUS_CONSECUTIVE: i32 = -(GAP_START + GAP_EXTENSION);
const BONUS_FIRST_CHAR_MULTIPLIER: u8 = 2;
const PENALTY_CASE_MISMATCH: i32 = GAP_EXTENSION * 2;
const NEG_INFINITY: i32 = i16::MIN as i32;

/// The bonus of matching a character of class `cur` that follows one of class `prev`.
fn in_place_bonus(prev: Class, cur: Class) -> u8 {
    let b = match (prev, cur) {
        (Class::Empty | Class::HardSep, _) => BONUS_HEAD,
        (Class::SoftSep, _) => BONUS_BREAK,
        (Class::Lower | Class::Number, Class::Upper) => BONUS_CAMEL,
        _ => 0,
    };
    b as u8
}

/// Appends the in-place bonus of every character of `text` to `out`, one byte per
/// character (the first one doubled, as Skim does).
pub fn push_bonuses(text: &str, out: &mut Vec<u8>) {
    let start = out.len();
    let mut prev = Class::Empty;
    if text.is_ascii() {
        for &b in text.as_bytes() {
            let cur = ASCII_CLASS[b as usize];
            out.push(in_place_bonus(prev, cur));
            prev = cur;
        }
    } else {
        for c in text.chars() {
            let cur = class(c);
            out.push(in_place_bonus(prev, cur));
            prev = cur;
        }
    }
    if let Some(b) = out.get_mut(start) {
        *b *= BONUS_FIRST_CHAR_MULTIPLIER;
    }
}

/// [`class`] of every ASCII character.
const ASCII_CLASS: [Class; 128] = {
    let mut t = [Class::Lower; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = class(i as u8 as char);
        i += 1;
    }
    t
};

/// Characters whose one-character scores [`push_singles`] prepares: `a`..`z`, `0`..`9`.
pub const SINGLES: usize = 36;

/// The place of a lowercase ASCII letter or digit among [`SINGLES`].
pub fn single_slot(c: char) -> Option<usize> {
    match c {
        'a'..='z' => Some(c as usize - 'a' as usize),
        '0'..='9' => Some(26 + c as usize - '0' as usize),
        _ => None,
    }
}

/// Appends the score of every one-character word `a`..`z`, `0`..`9` in `text` (`bonus`:
/// one per character), 0 for no match: the first keystroke of a query scores every key,
/// and with this it is one lookup each. Equal to [`score`] of that character.
pub fn push_singles(text: &str, bonus: &[u8], out: &mut Vec<u8>) {
    let mut best = [0u8; SINGLES];
    for (c, &b) in text.chars().zip(bonus) {
        let lower = c.to_ascii_lowercase();
        if let Some(slot) = single_slot(lower) {
            // Between 13 and 31, so 0 is free for "no match".
            let score = GAP_EXTENSION + b as i32 + match_score_ci(c, lower);
            best[slot] = best[slot].max(score as u8);
        }
    }
    out.extend_from_slice(&best);
}

/// The score of a match of text character `c` with word character `p`, ignoring case.
fn match_score_ci<T: Sym>(c: T, p: T) -> i32 {
    if p != c {
        SCORE_MATCH + PENALTY_CASE_MISMATCH
    } else {
        SCORE_MATCH
    }
}

/// A character of a text or a word: a byte of ASCII text, or a `char`.
pub trait Sym: Copy + Eq {
    /// A word character made ready to compare with text characters ([`Sym::hits`]).
    type Probe: Copy;
    /// `p` ready to compare: matching is equality, or unless `case_sensitive` the same
    /// ASCII letter in either case.
    fn probe(p: Self, case_sensitive: bool) -> Self::Probe;
    /// Text character `c` matches the probe's word character.
    fn hits(c: Self, probe: Self::Probe) -> bool;
    /// The first position of `p` in `hay` (either ASCII case unless `case_sensitive`).
    fn find(hay: &[Self], p: Self, case_sensitive: bool) -> Option<usize>;
}

impl Sym for u8 {
    /// The word byte and the bits to set on a text byte before comparing: the case bit
    /// for a letter compared ignoring case, else none.
    type Probe = (u8, u8);

    #[inline(always)]
    fn probe(p: u8, case_sensitive: bool) -> (u8, u8) {
        let fold = if !case_sensitive && p.is_ascii_alphabetic() {
            0x20
        } else {
            0
        };
        (p | fold, fold)
    }

    #[inline(always)]
    fn hits(c: u8, (p, fold): (u8, u8)) -> bool {
        c | fold == p
    }

    #[inline]
    fn find(hay: &[u8], p: u8, case_sensitive: bool) -> Option<usize> {
        let (lower, upper) = (p.to_ascii_lowercase(), p.to_ascii_uppercase());
        if case_sensitive || lower == upper {
            memchr::memchr(p, hay)
        } else {
            memchr::memchr2(lower, upper, hay)
        }
    }
}

impl Sym for char {
    type Probe = (char, bool);

    fn probe(p: char, case_sensitive: bool) -> (char, bool) {
        (p, case_sensitive)
    }

    fn hits(c: char, (p, case_sensitive): (char, bool)) -> bool {
        if case_sensitive {
            c == p
        } else {
            c.eq_ignore_ascii_case(&p)
        }
    }

    fn find(hay: &[char], p: char, case_sensitive: bool) -> Option<usize> {
        let probe = Self::probe(p, case_sensitive);
        hay.iter().position(|&c| Self::hits(c, probe))
    }
}

/// One row of the score matrix, by field.
#[derive(Default)]
struct Row {
    /// Best score of an alignment whose last match is here.
    m: Vec<i32>,
    /// Best score of an alignment that skips here.
    p: Vec<i32>,
    /// Skim's consecutive-bonus slot.
    bonus: Vec<i32>,
}

impl Row {
    /// Columns `lo..cols` (the only ones read) take Skim's initial values.
    fn reset(&mut self, lo: usize, cols: usize, p: i32) {
        for (v, x) in [
            (&mut self.m, NEG_INFINITY),
            (&mut self.p, p),
            (&mut self.bonus, 0),
        ] {
            if v.len() < cols {
                v.resize(cols, x);
            }
            v[lo..cols].fill(x);
        }
    }
}

/// Scratch space of the scorer, reused from one call to the next (one per thread). It
/// never carries anything from one call into the next.
#[derive(Default)]
pub struct Scratch {
    rows: [Row; 2],
    first: Vec<usize>,
}

/// The score of `word` in `text` (`bonus`: its in-place bonuses, one per character), or
/// `None` when the word does not match. `case_sensitive` is Skim's smart case: the word
/// has an ASCII capital.
pub fn score<T: Sym>(
    text: &[T],
    bonus: &[u8],
    word: &[T],
    case_sensitive: bool,
    s: &mut Scratch,
) -> Option<i32> {
    if case_sensitive {
        score_in::<T, true>(text, bonus, word, s)
    } else {
        score_in::<T, false>(text, bonus, word, s)
    }
}

#[inline(always)]
fn score_in<T: Sym, const CS: bool>(
    choice: &[T],
    bonus: &[u8],
    pattern: &[T],
    s: &mut Scratch,
) -> Option<i32> {
    let match_score = |c: T, p: T| {
        if CS {
            SCORE_MATCH
        } else {
            match_score_ci(c, p)
        }
    };
    if pattern.is_empty() {
        return Some(0);
    }
    let bonus = &bonus[..choice.len()];
    // Where each pattern character first matches, in order; none: no match.
    s.first.clear();
    let mut from = 0;
    for &p in pattern {
        let at = from + T::find(&choice[from..], p, CS)?;
        s.first.push(at);
        from = at + 1;
    }
    let first = &s.first;
    if pattern.len() == 1 {
        // One row: the best single match.
        let p = pattern[0];
        let mut best = NEG_INFINITY;
        let mut at = first[0];
        loop {
            best = max(
                best,
                GAP_EXTENSION + bonus[at] as i32 + match_score(choice[at], p),
            );
            match T::find(&choice[at + 1..], p, CS) {
                Some(k) => at += 1 + k,
                None => return Some(best),
            }
        }
    }
    // No alignment ends after the last place the last character matches, and no column
    // after it is read: every row stops there.
    let last_char = pattern[pattern.len() - 1];
    let end = first[pattern.len() - 1]
        + 1
        + choice[first[pattern.len() - 1] + 1..]
            .iter()
            .rposition(|&c| T::hits(c, T::probe(last_char, CS)))
            .map_or(0, |k| k + 1);
    if pattern.len() == 2 {
        // The two rows walked together: the first row's values at column k feed the
        // second row's match at k. Both rows start from Skim's initial values (nothing is
        // left over from a row two characters back), so a match of the second character
        // gets a consecutive bonus of max(in place, 4).
        let (p0, p1) = (pattern[0], pattern[1]);
        let (probe0, probe1) = (T::probe(p0, CS), T::probe(p1, CS));
        let (mut m0, mut skip0) = (NEG_INFINITY, NEG_INFINITY);
        let mut best = NEG_INFINITY;
        for k in first[0]..end {
            let (c, b) = (choice[k], bonus[k] as i32);
            if k >= first[1] && T::hits(c, probe1) {
                let by_match = m0 + max(b, BONUS_CONSECUTIVE);
                best = max(best, max(by_match, skip0 + b) + match_score(c, p1));
            }
            skip0 = max(GAP_START + GAP_EXTENSION + m0, GAP_EXTENSION + skip0);
            m0 = if T::hits(c, probe0) {
                GAP_EXTENSION + b + match_score(c, p0)
            } else {
                NEG_INFINITY
            };
        }
        return Some(best);
    }
    // Skim's matrix with two rows that take turns: column j + 1 is computed from column j
    // of the same row and of the previous one.
    let cols = choice.len() + 1;
    let [r0, r1] = &mut s.rows;
    r0.reset(first[0], cols, GAP_EXTENSION);
    r1.reset(first[0], cols, NEG_INFINITY);
    for (i, &p) in pattern.iter().enumerate() {
        let probe = T::probe(p, CS);
        let (cur, prev) = if i & 1 == 0 {
            (&mut *r1, &*r0)
        } else {
            (&mut *r0, &*r1)
        };
        let skip = first[i];
        let n = end - skip;
        let (mut last_m, mut last_p) = (cur.m[skip], cur.p[skip]);
        let (ch, bo) = (&choice[skip..end], &bonus[skip..end]);
        let (pm, pp) = (&prev.m[skip..end], &prev.p[skip..end]);
        let cb = &mut cur.bonus[skip..end];
        let (cm, cp) = (&mut cur.m[skip + 1..=end], &mut cur.p[skip + 1..=end]);
        // Slices of one length, so the loop below checks no bounds.
        let (ch, bo, pm, pp, cb, cm, cp) = (
            &ch[..n],
            &bo[..n],
            &pm[..n],
            &pp[..n],
            &mut cb[..n],
            &mut cm[..n],
            &mut cp[..n],
        );
        // Skim keeps a match's consecutive bonus in the slot of the column before it, and
        // reads the previous column's slot before this row writes it: a match sees what
        // the row two characters back left there, or 0 right after a mismatch. Kept as is,
        // so the scores are Skim's.
        let mut after_miss = false;
        for j in 0..n {
            let c = ch[j];
            let seen = if after_miss { 0 } else { cb[j] };
            let m = if T::hits(c, probe) {
                let in_place = bo[j] as i32;
                let consecutive = max(seen, max(in_place, BONUS_CONSECUTIVE));
                cb[j] = consecutive;
                after_miss = false;
                max(pm[j] + consecutive, pp[j] + in_place) + match_score(c, p)
            } else {
                cb[j] = seen;
                after_miss = true;
                NEG_INFINITY
            };
            let p_score = max(GAP_START + GAP_EXTENSION + last_m, GAP_EXTENSION + last_p);
            cm[j] = m;
            cp[j] = p_score;
            last_m = m;
            last_p = p_score;
        }
    }
    let last = if pattern.len() & 1 == 1 {
        &s.rows[1]
    } else {
        &s.rows[0]
    };
    last.m[first[pattern.len() - 1]..=end].iter().copied().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuzzy_matcher::skim::SkimMatcherV2;
    use fuzzy_matcher::FuzzyMatcher;

    fn ours(text: &str, word: &str, s: &mut Scratch) -> Option<i64> {
        let cs = word.chars().any(|c| c.is_ascii_uppercase());
        let mut bonus = Vec::new();
        push_bonuses(text, &mut bonus);
        let got = if text.is_ascii() && word.is_ascii() {
            score(text.as_bytes(), &bonus, word.as_bytes(), cs, s)
        } else {
            let t: Vec<char> = text.chars().collect();
            let w: Vec<char> = word.chars().collect();
            score(&t, &bonus, &w, cs, s)
        };
        got.map(i64::from)
    }

    /// Random texts and words over small alphabets (so words match often and repeat
    /// characters): every match and every score is Skim's.
    #[test]
    fn scores_are_skims() {
        let alphabets: [&[char]; 3] = [
            &['a', 'b', 'c', 'A', 'B', ' ', '-', '_', '/', '.', '1'],
            &['a', 'A', 'ü', 'Ü', 'b', ' ', '.', 'ß'],
            &['x', 'X', 'y', '0', '9', ':', '|', '(', 'Y'],
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut s = Scratch::default();
        let mut matched = 0;
        for round in 0..60_000 {
            let alpha = alphabets[round % 3];
            let text: String = (0..rnd(40)).map(|_| alpha[rnd(alpha.len())]).collect();
            let letters = alpha.len().min(if round % 2 == 0 { 3 } else { 6 });
            let word: String = (0..rnd(7)).map(|_| alpha[rnd(letters)]).collect();
            let skim = SkimMatcherV2::default().fuzzy_match(&text, &word);
            matched += skim.is_some() as usize;
            assert_eq!(ours(&text, &word, &mut s), skim, "{text:?} / {word:?}");
        }
        assert!(matched > 20_000, "{matched}");
    }

    #[test]
    fn singles_are_one_character_scores() {
        let texts = [
            "acme-candidate-sync-prod-17 Acme Payroll key_00a0f00000000011 talentgrid",
            "A-b_C d9 Zz/x.Y1",
            "Ünïcode owner key_ü hr 7",
            "",
        ];
        let mut s = Scratch::default();
        for text in texts {
            let mut bonus = Vec::new();
            push_bonuses(text, &mut bonus);
            let mut singles = Vec::new();
            push_singles(text, &bonus, &mut singles);
            for c in ('a'..='z').chain('0'..='9') {
                let slot = single_slot(c).unwrap();
                let want = ours(text, &c.to_string(), &mut s);
                let got = Some(i64::from(singles[slot])).filter(|&v| v > 0);
                assert_eq!(got, want, "{text:?} / {c}");
            }
        }
    }

    #[test]
    fn key_texts_score_as_skim_does() {
        let texts = [
            "acme-candidate-sync-prod-17 Acme Payroll key_0000000000000011 talentgrid",
            "ledgerly-tax-filing Ledgerly Payroll key_0c19 talentgrid",
            "Brightpath ATS key_9e02 talentgrid",
            "Ünïcode owner key_ü hr",
        ];
        let words = [
            "a", "ac", "acme", "prod", "Acme", "APr", "LPay", "amx", "bats", "ün", "Üo", "key_9",
            "tg", "zz", "hub", "payroll", "11", "tt",
        ];
        let mut s = Scratch::default();
        for text in texts {
            for word in words {
                let skim = SkimMatcherV2::default().fuzzy_match(text, word);
                assert_eq!(ours(text, word, &mut s), skim, "{text:?} / {word:?}");
            }
        }
    }
}
