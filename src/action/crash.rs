//! The crash-safety tests' hooks at each step of a rotation. `KEYAUDIT_CRASH_AT=<step>`
//! aborts the process right after that step is saved (`after:rotating` and
//! `after:delivering` abort after the action, before its result is saved);
//! `KEYAUDIT_TEST_PAUSE_AT=<step>` stops it there instead, says so on stderr
//! (`keyaudit: paused at <step>`) and waits to be killed, so a test can SIGKILL the
//! real process at that point. Neither variable is set outside the tests.

/// Every step these hooks can name, in the order a rotation passes them.
pub const CRASH_POINTS: &[&str] = &[
    "planned",
    "rotating",
    "after:rotating",
    "rotated",
    "delivering",
    "after:delivering",
    "delivered",
    "verifying",
    "verified",
    "finishing",
    "rolling_back",
];

/// Aborts the process when `KEYAUDIT_CRASH_AT` names `point`; stops it until it is
/// killed when `KEYAUDIT_TEST_PAUSE_AT` does (the variable of the cache conversion's
/// crash tests, whose steps have other names).
pub fn crash_point(point: &str) {
    if std::env::var("KEYAUDIT_CRASH_AT").is_ok_and(|v| v == point) {
        eprintln!("keyaudit: KEYAUDIT_CRASH_AT={point}: aborting");
        std::process::abort();
    }
    if std::env::var(crate::store::crypt::PAUSE_ENV).is_ok_and(|v| v == point) {
        eprintln!("keyaudit: paused at {point}");
        // Blocks this thread only (the async runtime's other worker keeps running, so
        // nothing else happens: the rotation's task is the one waiting here).
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
