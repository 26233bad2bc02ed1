//! Every detector, three ways: a valid token (generated here, checksums computed here:
//! no real secret is in this repository) is found with its kind; a token whose
//! checksum or structure is wrong is not; a near-miss (a look-alike from documentation
//! or code) is not.

#[path = "support/leak_corpus.rs"]
mod leak_corpus;

use keyaudit::scan::{rules, Options, Scanner};
use leak_corpus::{cases, pem, rnd, B62, HEX};

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

fn kinds_and_lines(text: &str) -> Vec<(&'static str, usize)> {
    Scanner::new(&Options::default())
        .scan_text("t", text.as_bytes(), 1)
        .iter()
        .map(|h| (h.kind, h.line))
        .collect()
}

#[test]
fn a_hash_beside_a_twilio_sid_is_not_its_auth_token() {
    let sid = format!("AC{}", rnd(HEX, 32));
    let md5 = rnd(HEX, 31) + "a";
    let token = rnd(HEX, 31) + "b";
    // A checksum listing next to Twilio configuration: no finding at all.
    let listing = format!("twilio:\n  account_sid: {sid}\nmd5 {md5}  twilio-7.0.tar.gz\n");
    assert_eq!(kinds_and_lines(&listing), []);
    // With a named token further down, the token is the finding, not the hash above it.
    let config = format!(
        "md5 {md5}  twilio-7.0.tar.gz\ntwilio:\n  account_sid: {sid}\n  auth_token: {token}\n"
    );
    let hits = Scanner::new(&Options::default()).scan_text("t", config.as_bytes(), 1);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].kind, hits[0].line), ("twilio-auth-token", 4));
    assert_eq!(hits[0].key_id.as_deref(), Some(sid.as_str()));
    // A SID glued to a longer word is no SID, and without one there is no finding.
    let glued = format!("twilio X{sid}\nauth_token: {token}\n");
    assert_eq!(kinds_and_lines(&glued), []);
    // An API key secret needs its SK SID and a name saying it is a secret.
    let sk = format!("SK{}", rnd(HEX, 32));
    let secret = rnd(B62, 30) + "a1";
    let unnamed = format!("twilio {sk}\nmd5 {secret}\n");
    assert_eq!(kinds_and_lines(&unnamed), []);
    let named = format!("twilio {sk}\nTWILIO_API_SECRET={secret}\n");
    assert_eq!(kinds_and_lines(&named), [("twilio-api-key", 2)]);
}

#[test]
fn a_truncated_pem_header_does_not_run_on_to_a_later_keys_end() {
    let key = pem("RSA PRIVATE KEY");
    let text = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n    let x = parse(input)?;\n\n{key}",
        rnd(B62, 64)
    );
    // One finding, the whole key on line 5, not a block from line 1 swallowing it.
    assert_eq!(kinds_and_lines(&text), [("private-key-rsa", 5)]);
    // The same key alone fingerprints the same: the finding is that key.
    let s = Scanner::new(&Options::default());
    assert_eq!(
        s.scan_text("t", text.as_bytes(), 1)[0].fingerprint,
        s.scan_text("k", key.as_bytes(), 1)[0].fingerprint
    );
    // BEGIN of one label and END of another: no key.
    let body = key.lines().skip(1).take(7).collect::<Vec<_>>().join("\n");
    let mixed = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n");
    assert_eq!(kinds_and_lines(&mixed), []);
    // Another block's BEGIN inside: only the inner complete block is a key.
    let nested = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{body}\n{}",
        pem("EC PRIVATE KEY")
    );
    assert_eq!(kinds_and_lines(&nested), [("private-key-ec", 9)]);
    // A body beyond the size limit (32 KiB) is no PEM key.
    let huge: Vec<String> = (0..600).map(|_| rnd(B62, 64)).collect();
    let huge = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        huge.join("\n")
    );
    assert_eq!(kinds_and_lines(&huge), []);
}

#[test]
fn a_pem_key_is_found_as_source_code_writes_it() {
    let key = pem("EC PRIVATE KEY");
    let lines: Vec<&str> = key.lines().collect();
    let s = Scanner::new(&Options::default());
    let plain = s.scan_text("k.pem", key.as_bytes(), 1);
    assert_eq!(plain.len(), 1, "{plain:?}");
    // A Rust string with `\n\` continuations; a Go concatenation; one line of a .env.
    let rust = format!("const KEY: &str = \"{}\\n\\\n\";\n", lines.join("\\n\\\n"));
    let go = format!("var key = \"{}\\n\"\n", lines.join("\\n\" +\n\t\""));
    let env = format!("KEY=\"{}\"\n", lines.join(" "));
    // A key in a documentation comment's example.
    let doc = format!("//! const KEY: &str = \"{}\";\n", lines.join("\n//! "));
    for (name, text) in [("rust", rust), ("go", go), ("env", env), ("doc", doc)] {
        let hits = s.scan_text(name, text.as_bytes(), 1);
        assert_eq!(hits.len(), 1, "{name}: {hits:?}\n{text}");
        assert_eq!(hits[0].kind, "private-key-ec", "{name}");
        assert_eq!(hits[0].fingerprint, plain[0].fingerprint, "{name}");
    }
    // An encrypted key's RFC 1421 headers stand before its body.
    let encrypted = format!(
        "{}\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,975C518B7D2CCD11\n\n{}\n",
        lines[0],
        lines[1..].join("\n")
    );
    assert_eq!(kinds_and_lines(&encrypted), [("private-key-ec", 1)]);
}

#[test]
fn aws_documentation_example_keys_are_not_leaks() {
    let docs = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nid2 = AKIAIOSFODNN7EXAMPLF\n";
    assert_eq!(kinds_and_lines(docs), []);
    let id = format!("AKIA{}", rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    assert_eq!(
        kinds_and_lines(&format!("aws_access_key_id = {id}\n")),
        [("aws-access-key-id", 1)]
    );
}

#[test]
fn a_service_account_file_is_read_from_its_own_object_not_a_neighbours() {
    let example = "{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"x@y\"}";
    let key = pem("PRIVATE KEY").replace('\n', "\\n");
    let real = format!(
        "{{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"{key}\",\n  \"client_email\": \"ci@p.iam.gserviceaccount.com\"\n}}\n",
        rnd(HEX, 40)
    );
    let text = format!("{example}\nlet x = 1;\n{real}");
    assert_eq!(
        kinds_and_lines(&text),
        [("google-service-account", 6)],
        "the example above does not hide the file below"
    );
}

#[test]
fn a_twilio_sid_pairs_with_its_own_token_not_a_neighbouring_blocks() {
    let (other, token) = (rnd(HEX, 31) + "c", rnd(HEX, 31) + "d");
    let sid = format!("AC{}", rnd(HEX, 32));
    let text = format!(
        "twilio:\n  auth_token: {other}\nx = 1\n\ntwilio:\n  account_sid: {sid}\n  auth_token: {token}\n"
    );
    // The block without a SID above gives nothing; the SID's own token is found.
    assert_eq!(kinds_and_lines(&text), [("twilio-auth-token", 7)]);
}
