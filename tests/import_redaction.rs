//! Key material in imported records never reaches the cache file.

#[path = "import_support/mod.rs"]
mod support;

use support::*;

#[test]
fn secrets_in_records_never_reach_the_cache_file() {
    let sb = Sandbox::new();
    let bearer = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.Zm9vYmFyYmF6cXV4";
    let live = "tg_live_7Hq2LmN4pR8sT1vW3xY5zA9bC";
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let api_key = "k3y-9f8e7d6c5b4a39281706";
    let line1 = format!(
        r#"{{"timestamp":"2024-03-05T07:00:00Z","key_id":"gw_key_09","action":"GET /v1/employees?api_key={api_key}","headers":{{"Authorization":"Bearer {bearer}","X-Api-Key":"{api_key}","Accept":"application/json"}},"note":"rotated from {live}","aws_secret_access_key":"{aws_secret}","password":"hunter2-payroll"}}"#
    );
    // A log that names keys by the secret itself: the key id becomes its fingerprint.
    let line2 =
        format!(r#"{{"timestamp":"2024-03-05T07:00:01Z","key_id":"{live}","action":"GET /v1/x"}}"#);
    let f = sb.write("gateway.jsonl", format!("{line1}\n{line2}\n").as_bytes());
    let (code, _, err) = sb.import(&[&f], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 imported"), "{err}");
    // Also through CloudTrail, where requestParameters may carry secrets.
    let ct = format!(
        r#"{{"eventTime":"2024-03-01T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"GetSessionToken","userIdentity":{{"accessKeyId":"AKIAREDACT0000000001"}},"requestParameters":{{"token":"{bearer}"}},"responseElements":{{"credentials":{{"secretAccessKey":"{aws_secret}","sessionToken":"FQoGZXIvYXdzEXAMPLE"}}}},"eventID":"redact-1"}}"#
    );
    let f2 = sb.write("ct.jsonl", format!("{ct}\n").as_bytes());
    assert_eq!(sb.import(&[&f2], &[]).0, 0);

    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", sb.db().display());
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let store = keyaudit::store::Store::open_read_only(&sb.db()).unwrap();
    // Every event refers to a cached key and provider (the import writes them without
    // per-row foreign key checks).
    let dangling: i64 = rusqlite::Connection::open(sb.db())
        .unwrap()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    let evs = store.events(&Default::default()).unwrap();
    // Raw records are stored compressed, so they are searched as read back too.
    let mut hay = String::from_utf8_lossy(&bytes).into_owned();
    let mut raws = 0;
    for r in &evs {
        hay.push_str(r.event.raw.as_deref().unwrap_or(""));
        raws += usize::from(r.event.raw.is_some());
    }
    assert_eq!(raws, 3, "every record is kept raw");
    for secret in [
        bearer,
        live,
        aws_secret,
        api_key,
        "hunter2-payroll",
        "FQoGZXIvYXdzEXAMPLE",
    ] {
        assert!(!hay.contains(secret), "`{secret}` reached the cache file");
    }
    let e = evs.iter().find(|r| r.event.key_id == "gw_key_09").unwrap();
    let raw = e.event.raw.as_deref().unwrap();
    assert!(raw.contains(r#""Authorization":"[REDACTED]""#), "{raw}");
    assert!(raw.contains(r#""Accept":"application/json""#), "{raw}");
    assert!(
        e.event
            .action
            .starts_with("GET /v1/employees?api_key=[REDACTED sha256:"),
        "{}",
        e.event.action
    );
    let by_secret = evs.iter().find(|r| r.event.action == "GET /v1/x").unwrap();
    assert_eq!(by_secret.event.key_id, keyaudit::secret::fingerprint(live));
    assert!(
        evs.iter().any(|r| r.event.key_id == "AKIAREDACT0000000001"),
        "access key ids are kept"
    );
}

/// Secrets recognised by their shape, whatever field carries them: Vault tokens (also
/// the legacy formats, and in `client_token` where an audit device logs raw values), an
/// AWS secret access key beside its access key id, and the token formats of the leak
/// scanner. None reaches the decoded raw records, the cache file, its WAL, the log or the
/// terminal.
#[test]
fn token_formats_are_redacted_by_their_shape() {
    let sb = Sandbox::new();
    let own = keyaudit::secret::generate("ka").unwrap();
    let secrets: Vec<(&str, String)> = vec![
        ("vault service", "hvs.CAESIJlWx0Qk3vB8nR2tY6uP9sD1fG4hJ7kL0zX5cV8bN3mQGh4KHGh2cy5UQnR5ZkR3c0x6bTJ4eVdJZ0pOc3Z1".into()),
        ("vault batch", "hvb.AAAAAQJkZ5rT8wLp0sXyNq3vBm6cHf1gDk4jRt7uWe9iYoPa2s".into()),
        ("vault recovery", "hvr.Yx7Qp2Lm9Nb4Vc6Zt1Rs8Kd3Fg5Hj0Wa".into()),
        ("vault legacy service", "s.Ab3dEf6hIj9kLm2nOp5qRs8t".into()),
        ("vault legacy batch", "b.AAAAAQLt7x9Rk2mP5vB8nC1d".into()),
        ("vault legacy recovery", "r.Qw3Er5Ty7Ui9Op1As3Df5Gh7".into()),
        ("aws secret access key", "Je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY".into()),
        ("github classic", "ghp_R2d2C3poBb8Lk4Mn6Pq8Rs0Tu2Vw4Xy6Za8".into()),
        ("github oauth", "gho_16C7e42F292c6912E7710c838347Ae178B4a".into()),
        ("github user-to-server", "ghu_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8".into()),
        ("github server-to-server", "ghs_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2".into()),
        ("github refresh", "ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498".into()),
        ("github fine-grained", "github_pat_11ABCDEFG0aBcDeFgHiJkL_MnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01".into()),
        ("gitlab personal", "glpat-Xy7zAb3dEf6hIj9kLm2n".into()),
        ("gitlab pipeline trigger", "glptt-0123456789abcdefABCDEF0123456789abcd".into()),
        ("gitlab deploy", "gldt-Qw3Er5Ty7Ui9Op1As3Df".into()),
        ("slack bot", "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1".into()),
        ("slack user", "xoxp-483920583021-492018374621-518203948572-a8d7e6f5c4b3a2918273645546372819".into()),
        ("stripe secret", "sk_live_51HqLyjWDarjtT1zdp7dcXV4nQ8rYzP2".into()),
        ("stripe restricted", "rk_live_51HqLyjWDarjtT1zdQm3vB8nR2tY6uP9".into()),
        ("openai legacy", "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3kLm6n".into()),
        ("openai project", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3kLm6nOp9q".into()),
        ("google api", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY".into()),
        ("keyaudit", own.expose().to_string()),
    ];
    let s = |name: &str| {
        secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let mut lines = Vec::new();
    for (i, (name, value)) in secrets.iter().enumerate() {
        // Field names that say nothing about secrets: only the value's shape tells.
        let line = match *name {
            "aws secret access key" => serde_json::json!({
                "timestamp": format!("2024-03-05T07:00:{i:02}Z"), "key_id": "gw_key_aws",
                "action": "sts:GetSessionToken",
                "identity": {"access": "AKIAI44QH8DHBEXAMPLE", "value": value},
            }),
            n if n.starts_with("vault") => serde_json::json!({
                "timestamp": format!("2024-03-05T07:00:{i:02}Z"), "key_id": "gw_key_vault",
                "action": "read secret/data/payroll",
                "auth": {"client_token": value, "policies": ["payroll"]},
            }),
            _ => serde_json::json!({
                "timestamp": format!("2024-03-05T07:00:{i:02}Z"), "key_id": format!("gw_key_{i}"),
                "action": format!("GET /v1/export?page=2&q={value}"),
                "user_agent": format!("curl/8.5 ({value})"),
                "detail": {"comment": format!("pasted {value} by mistake"), "list": [value]},
            }),
        };
        lines.push(line.to_string());
    }
    // A record that fails to map, carrying a secret in the failing field.
    lines.push(format!(
        r#"{{"timestamp":"{}","key_id":"gw_key_bad","action":"x"}}"#,
        s("github classic")
    ));
    let f = sb.write("gateway.jsonl", (lines.join("\n") + "\n").as_bytes());
    let out = sb
        .command()
        .env("KEYAUDIT_LOG", "debug")
        .args(["import", f.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{} imported", secrets.len())),
        "{err}"
    );

    let mut hay = err.clone();
    hay.push_str(&String::from_utf8_lossy(&out.stdout));
    for suffix in ["", "-wal"] {
        let p = format!("{}{suffix}", sb.db().display());
        hay.push_str(&String::from_utf8_lossy(
            &std::fs::read(p).unwrap_or_default(),
        ));
    }
    let log = sb.path("state").join("keyaudit").join("keyaudit.log");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.is_empty(), "the log was written");
    hay.push_str(&log_text);
    let store = keyaudit::store::Store::open_read_only(&sb.db()).unwrap();
    let evs = store.events(&Default::default()).unwrap();
    assert_eq!(evs.len(), secrets.len());
    for r in &evs {
        let raw = r.event.raw.as_deref().expect("raw kept");
        assert!(raw.contains("[REDACTED sha256:"), "{raw}");
        hay.push_str(raw);
        hay.push_str(&serde_json::to_string(&r.event).unwrap());
    }
    // What is kept: the access key id, the other fields.
    assert!(hay.contains("AKIAI44QH8DHBEXAMPLE") && hay.contains("\"policies\":[\"payroll\"]"));
    for (name, value) in &secrets {
        assert!(
            !hay.contains(value.as_str()),
            "the {name} token `{value}` was stored or shown"
        );
    }
}
