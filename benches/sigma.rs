//! Sigma speed: 60 rules over 1 million cached CloudTrail events (a full run), then an
//! incremental run after 10,000 new events.
//!
//! `cargo bench --bench sigma [-- EVENTS KEYS RULES]` (defaults 1000000, 500 and `cloud`).
//! The cache is a real SQLite file (WAL) in a temporary directory; raw records are stored
//! in LZ4 blocks as an import stores them. Most events are routine calls (reads, lists,
//! role assumptions); 0.3 % are rarer calls (trail, IAM, bucket and key changes, console
//! logins, root use) with varied agents, identities and addresses; 3 % are denied.
//!
//! RULES `cloud`: 60 rules shaped like the public Sigma collections' CloudTrail rules,
//! most of them an `eventSource` and a list of rare `eventName`s, the others using value
//! lists, `contains`, `contains|all`, `startswith`, `endswith`, `re`, `cidr`, `null`,
//! `exists`, keywords, nested fields and `1 of`/`all of`/`not` conditions; most rules
//! match rarely. RULES `dense`: 60 rules of six shapes built to match two of every event
//! (every finding window of every key gets findings), the worst case. `both` runs the two
//! sets one after the other on the same cache; `floor` measures what any run costs at
//! least (reading and decompressing every record, parsing them, the prefilter's pass).
//! Targets: full ≤ 3 s, incremental ≤ 100 ms.

use chrono::{Duration, TimeZone, Utc};
use keyaudit::model::{Event, Key, Outcome};
use keyaudit::sigma::{self, RuleSet, SigmaConfig};
use keyaudit::store::sigma::RawRef;
use keyaudit::store::{RawBlock, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

/// The routine calls, equally frequent: (eventSource, eventName).
const NAMES: &[(&str, &str)] = &[
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "PutObject"),
    ("s3.amazonaws.com", "ListObjectsV2"),
    ("iam.amazonaws.com", "ListUsers"),
    ("iam.amazonaws.com", "GetUser"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("kms.amazonaws.com", "Decrypt"),
];

/// The rare calls: (eventSource, eventName).
const RARE: &[(&str, &str)] = &[
    ("cloudtrail.amazonaws.com", "StopLogging"),
    ("cloudtrail.amazonaws.com", "DeleteTrail"),
    ("guardduty.amazonaws.com", "CreateIPSet"),
    ("config.amazonaws.com", "StopConfigurationRecorder"),
    ("ec2.amazonaws.com", "ModifySnapshotAttribute"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress"),
    ("ec2.amazonaws.com", "DeleteFlowLogs"),
    ("s3.amazonaws.com", "PutBucketPolicy"),
    ("s3.amazonaws.com", "PutBucketLogging"),
    ("s3.amazonaws.com", "PutBucketAcl"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion"),
    ("iam.amazonaws.com", "CreateUser"),
    ("iam.amazonaws.com", "CreateAccessKey"),
    ("iam.amazonaws.com", "PutUserPolicy"),
    ("iam.amazonaws.com", "AttachUserPolicy"),
    ("iam.amazonaws.com", "UpdateLoginProfile"),
    ("iam.amazonaws.com", "DeactivateMFADevice"),
    ("signin.amazonaws.com", "ConsoleLogin"),
    ("sts.amazonaws.com", "GetFederationToken"),
    ("secretsmanager.amazonaws.com", "DeleteSecret"),
    ("logs.amazonaws.com", "DeleteLogGroup"),
    ("lambda.amazonaws.com", "AddPermission"),
    ("rds.amazonaws.com", "ModifyDBSnapshotAttribute"),
    ("organizations.amazonaws.com", "ListAccounts"),
];

/// User agents of the rare calls.
const RARE_AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64",
    "console.amazonaws.com",
    "S3 Browser 11.5.7 https://s3browser.com",
    "Boto3/1.34.40 Python/3.12.1 Linux/6.1 Botocore/1.34.40 (Pacu)",
];

/// Rules that name a service and some of its rare calls: (title, level, eventSource,
/// eventNames).
const CLOUD_CALLS: &[(&str, &str, &str, &[&str])] = &[
    (
        "CloudTrail logging stopped or deleted",
        "high",
        "cloudtrail.amazonaws.com",
        &["StopLogging", "UpdateTrail", "DeleteTrail"],
    ),
    (
        "GuardDuty detector or IP set changed",
        "high",
        "guardduty.amazonaws.com",
        &["CreateIPSet", "DeleteDetector", "UpdateDetector"],
    ),
    (
        "Config recorder or channel disabled",
        "high",
        "config.amazonaws.com",
        &["DeleteDeliveryChannel", "StopConfigurationRecorder"],
    ),
    (
        "EBS default encryption disabled",
        "medium",
        "ec2.amazonaws.com",
        &["DisableEbsEncryptionByDefault"],
    ),
    (
        "EBS snapshot shared",
        "medium",
        "ec2.amazonaws.com",
        &["ModifySnapshotAttribute", "ModifyImageAttribute"],
    ),
    (
        "Security group opened",
        "medium",
        "ec2.amazonaws.com",
        &[
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
        ],
    ),
    (
        "VPC flow logs deleted",
        "high",
        "ec2.amazonaws.com",
        &["DeleteFlowLogs"],
    ),
    (
        "Instance attribute changed",
        "low",
        "ec2.amazonaws.com",
        &["ModifyInstanceAttribute"],
    ),
    (
        "S3 bucket configuration tampered",
        "medium",
        "s3.amazonaws.com",
        &[
            "PutBucketLogging",
            "PutBucketWebsite",
            "PutEncryptionConfiguration",
            "PutLifecycleConfiguration",
            "PutReplicationConfiguration",
            "ReplicateObject",
            "RestoreObject",
        ],
    ),
    (
        "S3 bucket policy changed",
        "medium",
        "s3.amazonaws.com",
        &["PutBucketPolicy", "DeleteBucketPolicy"],
    ),
    (
        "KMS key disabled or scheduled for deletion",
        "high",
        "kms.amazonaws.com",
        &["ScheduleKeyDeletion", "DisableKey"],
    ),
    (
        "IAM user created",
        "low",
        "iam.amazonaws.com",
        &["CreateUser"],
    ),
    (
        "IAM login profile changed",
        "medium",
        "iam.amazonaws.com",
        &["UpdateLoginProfile", "CreateLoginProfile"],
    ),
    (
        "IAM policy attached to a user",
        "medium",
        "iam.amazonaws.com",
        &["AttachUserPolicy", "PutUserPolicy"],
    ),
    (
        "IAM role trust changed",
        "medium",
        "iam.amazonaws.com",
        &["UpdateAssumeRolePolicy"],
    ),
    (
        "SAML provider changed",
        "high",
        "iam.amazonaws.com",
        &["UpdateSAMLProvider", "CreateSAMLProvider"],
    ),
    (
        "MFA device deactivated",
        "high",
        "iam.amazonaws.com",
        &["DeactivateMFADevice", "DeleteVirtualMFADevice"],
    ),
    (
        "Route 53 domain transfer lock disabled",
        "medium",
        "route53domains.amazonaws.com",
        &["DisableDomainTransferLock"],
    ),
    (
        "Route 53 domain transferred",
        "high",
        "route53domains.amazonaws.com",
        &["TransferDomainToAnotherAwsAccount"],
    ),
    (
        "Security Hub findings changed",
        "medium",
        "securityhub.amazonaws.com",
        &[
            "BatchUpdateFindings",
            "DeleteInsight",
            "UpdateFindings",
            "UpdateInsight",
        ],
    ),
    (
        "WAF web ACL deleted",
        "medium",
        "wafv2.amazonaws.com",
        &["DeleteWebACL", "DeleteRuleGroup"],
    ),
    (
        "ElastiCache security group opened",
        "low",
        "elasticache.amazonaws.com",
        &["AuthorizeCacheSecurityGroupIngress"],
    ),
    (
        "EFS file system deleted",
        "medium",
        "elasticfilesystem.amazonaws.com",
        &["DeleteFileSystem", "DeleteMountTarget"],
    ),
    (
        "RDS snapshot shared",
        "medium",
        "rds.amazonaws.com",
        &[
            "ModifyDBSnapshotAttribute",
            "ModifyDBClusterSnapshotAttribute",
        ],
    ),
    (
        "RDS instance restored",
        "low",
        "rds.amazonaws.com",
        &["RestoreDBInstanceFromDBSnapshot"],
    ),
    (
        "Lambda function made callable by others",
        "medium",
        "lambda.amazonaws.com",
        &["AddPermission", "CreateFunctionUrlConfig"],
    ),
    (
        "Lambda configuration changed",
        "low",
        "lambda.amazonaws.com",
        &["UpdateFunctionConfiguration"],
    ),
    (
        "Account left the organization",
        "high",
        "organizations.amazonaws.com",
        &["LeaveOrganization"],
    ),
    (
        "Secret deleted",
        "medium",
        "secretsmanager.amazonaws.com",
        &["DeleteSecret"],
    ),
    (
        "ECR repository policy set",
        "low",
        "ecr.amazonaws.com",
        &["SetRepositoryPolicy"],
    ),
    (
        "EKS cluster configuration changed",
        "low",
        "eks.amazonaws.com",
        &["UpdateClusterConfig"],
    ),
    (
        "CloudWatch alarms disabled",
        "medium",
        "monitoring.amazonaws.com",
        &["DeleteAlarms", "DisableAlarmActions"],
    ),
    (
        "CloudWatch log group deleted",
        "medium",
        "logs.amazonaws.com",
        &["DeleteLogGroup", "DeleteLogStream"],
    ),
    (
        "Access Analyzer deleted",
        "medium",
        "access-analyzer.amazonaws.com",
        &["DeleteAnalyzer"],
    ),
    (
        "Macie disabled",
        "medium",
        "macie2.amazonaws.com",
        &["DisableMacie"],
    ),
    (
        "Backup vault deleted",
        "high",
        "backup.amazonaws.com",
        &["DeleteBackupVault", "DeleteRecoveryPoint"],
    ),
    (
        "SES identity verified",
        "low",
        "ses.amazonaws.com",
        &["VerifyEmailIdentity", "VerifyDomainIdentity"],
    ),
    (
        "Identity Center permission set changed",
        "medium",
        "sso.amazonaws.com",
        &["CreatePermissionSet", "AttachManagedPolicyToPermissionSet"],
    ),
    (
        "Federation token issued",
        "low",
        "sts.amazonaws.com",
        &["GetFederationToken"],
    ),
];

/// The other rules: their detection section.
const CLOUD_OTHER: &[(&str, &str)] = &[
    ("Root account used", "  selection:\n    userIdentity.type: Root\n  filter:\n    eventType: AwsServiceEvent\n  condition: selection and not filter\n"),
    ("Console login without MFA", "  selection:\n    eventName: ConsoleLogin\n    additionalEventData.MFAUsed: 'No'\n  condition: selection\n"),
    ("Console login failed", "  selection:\n    eventName: ConsoleLogin\n    errorMessage|contains: Failed authentication\n  condition: selection\n"),
    ("Access key created for another user", "  selection:\n    eventSource: iam.amazonaws.com\n    eventName: CreateAccessKey\n  filter:\n    requestParameters.userName|startswith: svc-\n  condition: selection and not filter\n"),
    ("IAM policy written by S3 Browser", "  selection:\n    eventSource: iam.amazonaws.com\n    eventName: PutUserPolicy\n    userAgent|contains: S3 Browser\n  condition: selection\n"),
    ("Offensive tool in the user agent", "  selection:\n    userAgent|contains:\n      - Pacu\n      - ScoutSuite\n      - cloudfox\n      - aws-enumerator\n  condition: selection\n"),
    ("Penetration testing distribution in the user agent", "  selection:\n    userAgent|contains:\n      - kali\n      - parrot\n      - pentoo\n  condition: selection\n"),
    ("Secret read from outside the network", "  selection:\n    eventSource: secretsmanager.amazonaws.com\n    eventName: GetSecretValue\n  office:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: selection and not office\n"),
    ("Role assumed into an administrator role", "  selection:\n    eventSource: sts.amazonaws.com\n    eventName: AssumeRole\n    requestParameters.roleArn|re: ':role/(Admin|OrganizationAccountAccessRole)$'\n  condition: selection\n"),
    ("Policy set on a data bucket", "  selection:\n    eventName:\n      - PutBucketPolicy\n      - PutBucketAcl\n    requestParameters.bucketName|re: '^data-[0-9]+$'\n  condition: selection\n"),
    ("Audit trail deleted without error", "  sel_call:\n    eventName|startswith: Delete\n    eventSource:\n      - cloudtrail.amazonaws.com\n      - logs.amazonaws.com\n  sel_ok:\n    errorCode: null\n  condition: all of sel_*\n"),
    ("Organization enumeration denied", "  selection:\n    eventSource: organizations.amazonaws.com\n    errorCode: AccessDenied\n    eventName|startswith:\n      - List\n      - Describe\n  condition: selection\n"),
    ("Key material named in a request", "  keywords:\n    - prod-master-key\n    - AKIA_DO_NOT_USE\n  condition: keywords\n"),
    ("Logging stopped or log group deleted", "  trail:\n    eventName: StopLogging\n  logs:\n    eventName: DeleteLogGroup\n  condition: 1 of them\n"),
    ("Pacu run through Boto3 against IAM", "  agent:\n    userAgent|contains|all:\n      - Boto3\n      - Pacu\n  call:\n    eventSource: iam.amazonaws.com\n  condition: all of them\n"),
    ("User created without error", "  selection:\n    eventName: CreateUser\n    errorCode: null\n  condition: selection\n"),
    ("Secret deleted without recovery", "  selection:\n    eventName: DeleteSecret\n    requestParameters.forceDeleteWithoutRecovery|exists: true\n  condition: selection\n"),
    ("Console login from outside the network", "  selection:\n    eventName: ConsoleLogin\n  office:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: selection and not office\n"),
    ("Call made with root credentials", "  selection:\n    userIdentity.arn|endswith: ':root'\n  condition: selection\n"),
];

/// GitHub audit rules (they never read a CloudTrail record).
const GITHUB: &[(&str, &str)] = &[
    (
        "Repository made public",
        "  selection:\n    action: repo.access\n    visibility: public\n  condition: selection\n",
    ),
    (
        "Member removed from the organization",
        "  selection:\n    action|startswith: org.remove_\n  condition: selection\n",
    ),
];

/// 60 rules shaped like the public collections' cloud rules.
fn cloud_rules() -> RuleSet {
    let mut set = RuleSet::default();
    let aws = "logsource: {product: aws, service: cloudtrail}";
    let mut texts = Vec::new();
    for (title, level, source, names) in CLOUD_CALLS {
        let mut t = format!(
            "title: {title}\nlevel: {level}\n{aws}\ndetection:\n  selection:\n    eventSource: {source}\n    eventName:\n"
        );
        for n in *names {
            t.push_str(&format!("      - {n}\n"));
        }
        t.push_str("  condition: selection\n");
        texts.push(t);
    }
    for (title, det) in CLOUD_OTHER {
        texts.push(format!(
            "title: {title}\nlevel: high\n{aws}\ndetection:\n{det}"
        ));
    }
    for (title, det) in GITHUB {
        texts.push(format!(
            "title: {title}\nlevel: medium\nlogsource: {{product: github, service: audit}}\ndetection:\n{det}"
        ));
    }
    for (i, t) in texts.iter().enumerate() {
        set.add_text(Path::new(&format!("cloud-{i}.yml")), t);
    }
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(set.rules.len(), 60);
    set.fingerprint = "cloud".into();
    set
}

/// 60 rules: six shapes, ten variants each, matching two of every event.
fn dense_rules() -> RuleSet {
    let mut set = RuleSet::default();
    for (v, (src, name)) in NAMES.iter().enumerate() {
        let texts = [
            format!(
                "title: call {v}\nid: b-{v}-a\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    eventSource: {src}\n    eventName:\n      - {name}\n      - Nope{v}\n  condition: sel\n"
            ),
            format!(
                "title: agent {v}\nid: b-{v}-b\nlevel: medium\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    userAgent|contains: 'tool-{v}/'\n    userIdentity.arn|endswith: ':user/svc-{v}'\n  condition: sel\n"
            ),
            format!(
                "title: bucket {v}\nid: b-{v}-c\nlevel: high\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    requestParameters.bucketName|re: '^data-{v}[0-9]+$'\n  office:\n    sourceIPAddress|cidr: 10.{v}.0.0/16\n  condition: sel and not office\n"
            ),
            format!(
                "title: errors {v}\nid: b-{v}-d\nlevel: medium\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel_a:\n    errorCode|startswith: AccessDenied\n  sel_b:\n    eventName|startswith: {}\n  filter:\n    errorMessage: null\n  condition: all of sel_* and not filter\n",
                &name[..4]
            ),
            format!(
                "title: keyword {v}\nid: b-{v}-e\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  keywords:\n    - 'secret-name-{v}x'\n    - 'PROD-{v}-MASTER'\n  condition: keywords\n"
            ),
            format!(
                "title: recon {v}\nid: b-{v}-f\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  a:\n    eventName: List{v}Things\n  b:\n    eventName|endswith: Policy{v}\n  c:\n    userIdentity.type: Root\n    awsRegion: ap-south-{v}\n  condition: 1 of them\n"
            ),
        ];
        for (i, t) in texts.iter().enumerate() {
            set.add_text(Path::new(&format!("bench-{v}-{i}.yml")), t);
        }
    }
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(set.rules.len(), 60);
    set.fingerprint = "dense".into();
    set
}

fn event(rng: &mut StdRng, i: u64, nkeys: usize, t0: i64) -> Event {
    let key = format!("AKIABENCH{:08}", rng.random_range(0..nkeys));
    let rare = rng.random_bool(0.003);
    let (src, name) = if rare {
        RARE[rng.random_range(0..RARE.len())]
    } else {
        NAMES[rng.random_range(0..NAMES.len())]
    };
    let denied = rng.random_bool(0.03);
    let v = rng.random_range(0..10);
    let ip = if rare && rng.random_bool(0.3) {
        format!("203.0.113.{}", rng.random_range(1..255))
    } else {
        format!(
            "10.{}.{}.{}",
            v,
            rng.random_range(0..255),
            rng.random_range(1..255)
        )
    };
    let mut raw = serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDABENCH",
            "arn": format!("arn:aws:iam::111122223333:user/svc-{v}"),
            "accountId": "111122223333",
            "accessKeyId": key,
            "userName": format!("svc-{v}")
        },
        "eventTime": "2026-10-01T00:00:00Z",
        "eventSource": src,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": format!("tool-{v}/1.{} (linux)", rng.random_range(0..9)),
        "errorCode": if denied { Some("AccessDenied") } else { None },
        "requestParameters": {"bucketName": format!("data-{v}{}", rng.random_range(0..100))},
        "responseElements": null,
        "requestID": format!("{:032x}", i),
        "eventID": format!("ev-{i}"),
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    if rare {
        raw["userAgent"] = RARE_AGENTS[rng.random_range(0..RARE_AGENTS.len())].into();
        if rng.random_bool(0.1) {
            raw["userIdentity"]["type"] = "Root".into();
            raw["userIdentity"]["arn"] = "arn:aws:iam::111122223333:root".into();
        }
        let who = if rng.random_bool(0.5) {
            "svc-deploy"
        } else {
            "mallory"
        };
        raw["requestParameters"]["userName"] = who.into();
        if name == "ConsoleLogin" {
            let mfa = if rng.random_bool(0.5) { "Yes" } else { "No" };
            raw["additionalEventData"] = serde_json::json!({ "MFAUsed": mfa });
            if denied {
                raw["errorMessage"] = "Failed authentication".into();
            }
        }
        if name == "DeleteSecret" && rng.random_bool(0.5) {
            raw["requestParameters"]["forceDeleteWithoutRecovery"] = true.into();
        }
    }
    Event {
        provider: "trail".into(),
        id: format!("ev-{i}"),
        time: keyaudit::model::from_millis(t0 + i as i64 * 2_000),
        key_id: key,
        principal: None,
        action: name.into(),
        scope: None,
        source_ip: Some(ip),
        user_agent: None,
        outcome: if denied {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        status_code: None,
        request_id: None,
        records: None,
        raw: Some(raw.to_string()),
    }
}

fn fill(store: &mut Store, rng: &mut StdRng, from: u64, n: u64, nkeys: usize, t0: i64) {
    let mut at = from;
    while at < from + n {
        let m = 10_000.min(from + n - at);
        let batch: Vec<Event> = (at..at + m).map(|i| event(rng, i, nkeys, t0)).collect();
        store.insert_events("trail", &batch, None).unwrap();
        at += m;
    }
}

/// Runs `set` over everything, adds 10,000 events and runs it again.
fn measure(store: &mut Store, rng: &mut StdRng, set: &RuleSet, at: u64, nkeys: usize, t0: i64) {
    let cfg = SigmaConfig::default();
    let now = Utc::now() + Duration::days(1);
    let engine = sigma::Engine::new(set);
    println!(
        "rules {}: {} rules, {} of them without a literal value (run on every record)",
        set.fingerprint,
        set.rules.len(),
        engine.unfiltered()
    );
    let full = sigma::run(store, set, &cfg, now).unwrap();
    assert!(full.full);
    println!(
        "full: {} rules over {} events in {:.0} ms ({:.0} events/s); {} events ({:.2} %) match \
         a rule, {} matches, {} findings",
        full.rules,
        full.events,
        full.elapsed_ms,
        full.events as f64 / (full.elapsed_ms / 1000.0),
        full.matched_events,
        100.0 * full.matched_events as f64 / full.events as f64,
        full.matches,
        full.opened
    );
    fill(store, rng, at, 10_000, nkeys, t0);
    let inc = sigma::run(store, set, &cfg, now).unwrap();
    println!(
        "incremental: {} new events in {:.1} ms; {} events match a rule, {} matches, {} new \
         and {} updated findings",
        inc.events, inc.elapsed_ms, inc.matched_events, inc.matches, inc.opened, inc.updated
    );
    assert_eq!(inc.events, 10_000);
    assert!(!inc.full);
}

/// What any run must do at least, on one thread: read every event row and its block,
/// decompress the blocks; then what parsing every record with serde_json costs, and
/// what one Aho-Corasick pass of the cloud rules' needles costs.
fn floor(store: &Store) {
    let started = Instant::now();
    let mut records: Vec<(i64, u32)> = Vec::new();
    let mut block = None;
    let mut bytes = 0usize;
    let mut decoded = 0usize;
    store
        .sigma_events(0, &mut |e| {
            if let RawRef::Block { block: b, at } = e.raw {
                if block != Some(b) {
                    let data = store.raw_block(b)?;
                    let d = RawBlock::decode(&data).unwrap();
                    decoded += 1;
                    bytes += (0..)
                        .map_while(|i| d.text(i))
                        .map(|t| t.len())
                        .sum::<usize>();
                    block = Some(b);
                }
                records.push((b, at));
            }
            Ok(())
        })
        .unwrap();
    let read = started.elapsed().as_secs_f64();
    println!(
        "floor: read {} events and decompressed {decoded} blocks ({:.0} MB of records) in {read:.2} s",
        records.len(),
        bytes as f64 / 1e6
    );
    // Parse a sample of the records, decoded again, and scale.
    let mut texts = Vec::new();
    let mut last = None;
    for &(b, _) in records.iter().step_by(64).take(2000) {
        if last == Some(b) {
            continue;
        }
        last = Some(b);
        let d = RawBlock::decode(&store.raw_block(b).unwrap()).unwrap();
        texts.extend((0..).map_while(|i| d.text(i)).map(|t| t.into_owned()));
    }
    let sample: usize = texts.iter().map(String::len).sum();
    let started = Instant::now();
    let mut n = 0;
    for t in &texts {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        n += usize::from(v.is_object());
    }
    let parse = started.elapsed().as_secs_f64();
    println!(
        "floor: serde_json parsed {n} records ({:.0} MB) in {parse:.3} s: {:.0} MB/s, so {:.2} s for all",
        sample as f64 / 1e6,
        sample as f64 / 1e6 / parse,
        parse * bytes as f64 / sample as f64
    );
    let set = cloud_rules();
    let engine = sigma::Engine::new(&set);
    let started = Instant::now();
    let mut left = 0;
    for t in &texts {
        left += engine.candidates(t).len();
    }
    let scan = started.elapsed().as_secs_f64();
    println!(
        "floor: the cloud rules' prefilter ran over them in {scan:.3} s: {:.0} MB/s, so {:.2} s for \
         all ({left} rule evaluations left of {})",
        sample as f64 / 1e6 / scan,
        scan * bytes as f64 / sample as f64,
        texts.len() * set.rules.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let total = numbers.first().copied().unwrap_or(1_000_000);
    let nkeys = numbers.get(1).copied().unwrap_or(500) as usize;
    let which = args
        .iter()
        .find(|a| ["cloud", "dense", "both", "floor"].contains(&a.as_str()))
        .map_or("cloud", String::as_str);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("cache.db")).unwrap();
    store.ensure_provider("trail", "import", None).unwrap();
    let keys: Vec<Key> = (0..nkeys)
        .map(|i| Key::seen_in_logs("trail", &format!("AKIABENCH{i:08}")))
        .collect();
    store.upsert_keys("trail", &keys, Utc::now()).unwrap();
    let t0 = Utc
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let mut rng = StdRng::seed_from_u64(17);
    let filled = Instant::now();
    fill(&mut store, &mut rng, 0, total, nkeys, t0);
    println!(
        "filled {total} events of {nkeys} keys in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let mut at = total;
    if matches!(which, "cloud" | "both") {
        measure(&mut store, &mut rng, &cloud_rules(), at, nkeys, t0);
        at += 10_000;
    }
    if matches!(which, "dense" | "both") {
        measure(&mut store, &mut rng, &dense_rules(), at, nkeys, t0);
    }
    if which == "floor" {
        floor(&store);
    }
}
