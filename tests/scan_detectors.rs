//! Every detector, three ways: a valid token (generated here, checksums computed here:
//! no real secret is in this repository) is found with its kind; a token whose
//! checksum or structure is wrong is not; a near-miss (a look-alike from documentation
//! or code) is not.

#[path = "support/leak_corpus.rs"]
mod leak_corpus;

use keyaudit::scan::{rules, Options, Scanner};
use leak_corpus::{cases, pem, rnd, B62};

#[test]
fn every_detector_finds_its_valid_token_and_rejects_wrong_checksums_and_near_misses() {
    let scanner = Scanner::new(&Options::default());
    let cases = cases();
    for (id, valid, bad) in &cases {
        let hits = scanner.scan_text("t", valid.as_bytes(), 1);
        assert!(
            hits.iter().any(|h| h.kind == *id),
            "{id}: not found in {valid:?}: {hits:?}"
        );
        for b in bad {
            let hits = scanner.scan_text("t", b.as_bytes(), 1);
            assert!(
                hits.iter().all(|h| h.kind != *id),
                "{id}: false hit in {b:?}: {hits:?}"
            );
        }
    }
    // Every detector except the generic one has its case here.
    let tested: std::collections::HashSet<&str> = cases.iter().map(|c| c.0).collect();
    let untested: Vec<&str> = rules::all()
        .map(|d| d.id)
        .filter(|id| *id != "generic-high-entropy" && !tested.contains(id))
        .collect();
    assert!(
        untested.is_empty(),
        "detectors without a test: {untested:?}"
    );
    assert!(
        rules::all().count() >= 40,
        "{} detectors",
        rules::all().count()
    );
}

#[test]
fn an_aws_secret_is_linked_to_its_access_key_id_and_masked() {
    let id = format!("AKIA{}", rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let sk = rnd(B62, 40);
    let text = format!("User name,Password,Access key ID,Secret access key\nci,,{id},{sk}\n");
    let hits = Scanner::new(&Options::default()).scan_text("creds.csv", text.as_bytes(), 1);
    let secret = hits
        .iter()
        .find(|h| h.kind == "aws-secret-access-key")
        .expect("secret found");
    assert_eq!(secret.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(secret.line, 2);
    assert_eq!(secret.shown, keyaudit::secret::mask(&sk));
    assert!(secret.shown.len() <= 4, "{}", secret.shown);
}

#[test]
fn the_same_private_key_fingerprints_the_same_in_a_pem_file_and_in_json() {
    let key = pem("PRIVATE KEY");
    let json = format!(
        "{{\"type\": \"service_account\", \"private_key\": \"{}\", \"client_email\": \"a@b\"}}",
        key.replace('\n', "\\n")
    );
    let s = Scanner::new(&Options::default());
    let a = s.scan_text("k.pem", key.as_bytes(), 1);
    let b = s.scan_text("sa.json", json.as_bytes(), 1);
    assert_eq!(b.len(), 1, "one finding for the file, not two: {b:?}");
    assert_eq!(a[0].fingerprint, b[0].fingerprint);
}

#[test]
fn generic_detection_is_off_by_default_and_scored_low() {
    let text = format!(
        "api_key = \"{}\"\nname = \"{}\"\n",
        rnd(B62, 30) + "aB3",
        rnd(B62, 33)
    );
    assert!(Scanner::new(&Options::default())
        .scan_text("c", text.as_bytes(), 1)
        .is_empty());
    let hits = Scanner::new(&Options { generic: true }).scan_text("c", text.as_bytes(), 1);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].kind, hits[0].line), ("generic-high-entropy", 1));
    assert!(hits[0].score < 50);
    let placeholder = "api_key = \"${API_KEY_FROM_THE_ENVIRONMENT}\"\n";
    assert!(Scanner::new(&Options { generic: true })
        .scan_text("c", placeholder.as_bytes(), 1)
        .is_empty());
}
