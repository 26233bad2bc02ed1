//! Probing a file: its shape (JSON lines, a JSON array, one document, CSV) and its
//! format, from the start of the file.

use super::*;

/// What the start of a file says about it.
#[derive(Debug, Clone)]
pub(super) struct Probed {
    pub(super) shape: Shape,
    pub(super) format: LogFormat,
    pub(super) chosen: String,
    /// The default source (`--source` overrides it): the format's name, or
    /// `cloudtrail` for SIEM exports of CloudTrail records.
    pub(super) source: &'static str,
}

pub(super) enum Probe {
    Failed(String),
    Empty,
}

pub(super) fn io_reason(e: &io::Error, gzip: bool) -> String {
    let text = e.to_string();
    if gzip
        && (e.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("corrupt")
            || text.contains("invalid"))
    {
        format!("truncated or corrupt gzip data ({text}); the records before the damage were imported. Fetch the file again")
    } else if gzip {
        format!("cannot decompress: {text}; the file is not valid gzip")
    } else {
        format!("cannot read: {text}")
    }
}

pub(super) fn probe(path: &Path, opts: &ImportOptions) -> Result<Probed, Probe> {
    let input = reader::open(path, Arc::new(AtomicU64::new(0)), None).map_err(|e| {
        let gz = std::fs::File::open(path)
            .and_then(|mut f| {
                let mut m = [0u8; 2];
                f.read_exact(&mut m).map(|_| m == [0x1f, 0x8b])
            })
            .unwrap_or(false);
        Probe::Failed(io_reason(&e, gz))
    })?;
    let head = &input.head;
    let text_start = head.iter().position(|b| !b" \t\r\n".contains(b)).map(|i| {
        if head[i..].starts_with(&[0xEF, 0xBB, 0xBF]) {
            i + 3
        } else {
            i
        }
    });
    let Some(start) = text_start else {
        return Err(Probe::Empty);
    };
    if reader::looks_binary(head) {
        return Err(Probe::Failed(
            "binary file, not a text log (more than 5% control bytes at its start); nothing imported. Check the file, or decompress it first if it is not gzip".into(),
        ));
    }
    let forced = LogFormat::from_choice(opts.format);
    let first = head[start];
    let first_line_end = memchr::memchr(b'\n', &head[start..]).map(|i| start + i);
    let shape = if forced == Some(LogFormat::Csv) {
        Shape::Csv
    } else if first == b'[' {
        Shape::Array
    } else if first == b'{' {
        let line = &head[start..first_line_end.unwrap_or(head.len())];
        let complete = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
        if complete || (first_line_end.is_none() && head.len() == reader::HEAD_LEN) {
            // A complete first line, or one line longer than the probe: JSON lines
            // (a CloudTrail file is a single line).
            Shape::Lines
        } else if first_line_end.is_none() {
            Shape::Lines
        } else {
            Shape::Document
        }
    } else if forced.is_none() || forced == Some(LogFormat::Github) {
        let line = &head[start..first_line_end.unwrap_or(head.len())];
        if line.contains(&b',') {
            Shape::Csv
        } else {
            Shape::Lines
        }
    } else {
        Shape::Lines
    };
    if let Some(f) = forced {
        let source = match f {
            LogFormat::Ecs | LogFormat::Datadog | LogFormat::Splunk => {
                siem::default_source(f, first_record(&head[start..], shape).as_ref())
            }
            _ => f.as_str(),
        };
        return Ok(Probed {
            shape,
            format: f,
            chosen: format!("--format {f}"),
            source,
        });
    }
    // Auto: look at the first record.
    let mut source = None;
    let (format, why) = match shape {
        Shape::Csv => {
            let line = String::from_utf8_lossy(&head[start..first_line_end.unwrap_or(head.len())]);
            let cols: Vec<String> = line
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .collect();
            let has = |n: &str| cols.iter().any(|c| c == n);
            if siem::csv_is_ecs(&cols) {
                if cols.iter().any(|c| c.starts_with("aws.cloudtrail.")) {
                    source = Some("cloudtrail");
                }
                (
                    LogFormat::Ecs,
                    "CSV with Elastic Common Schema columns (@timestamp, event.action, source.ip)",
                )
            } else if has("action")
                && (has("@timestamp")
                    || has("actor_ip")
                    || has("hashed_token")
                    || has("_document_id"))
            {
                (LogFormat::Github, "CSV with GitHub audit-log columns")
            } else {
                (LogFormat::Csv, "CSV with a header row")
            }
        }
        _ => {
            let first_value = first_record(&head[start..], shape);
            if let Some((f, why, src)) = first_value.as_ref().and_then(siem::detect) {
                return Ok(Probed {
                    shape,
                    format: f,
                    chosen: format!("auto-detected: {why}"),
                    source: src,
                });
            }
            match first_value {
                Some(v) if cloudtrail::looks_like(&v) => (
                    LogFormat::Cloudtrail,
                    "CloudTrail records (eventSource, eventName, userIdentity)",
                ),
                Some(v) if vault::looks_like(&v) => {
                    (LogFormat::Vault, "Vault audit entries (type, request)")
                }
                Some(v) if github::looks_like(&v) => (
                    LogFormat::Github,
                    "GitHub audit-log entries (action, actor, @timestamp)",
                ),
                Some(v) if gitlab::looks_like(&v) => (
                    LogFormat::Gitlab,
                    "GitLab audit events (author_id, entity_type)",
                ),
                Some(_) => (
                    LogFormat::Jsonl,
                    "JSON records of no known format; generic mapping",
                ),
                None => (
                    LogFormat::Jsonl,
                    "first record unreadable; generic JSON lines",
                ),
            }
        }
    };
    Ok(Probed {
        shape,
        format,
        chosen: format!("auto-detected: {why}"),
        source: source.unwrap_or(format.as_str()),
    })
}

fn first_record(text: &[u8], shape: Shape) -> Option<Value> {
    match shape {
        Shape::Array => {
            let mut s = ArrayScanner::new(text, text.len());
            let mut buf = Vec::new();
            match s.next_element(&mut buf).ok()?? {
                Element::Json(_) => serde_json::from_slice(&buf).ok(),
                _ => None,
            }
        }
        Shape::Lines => {
            let end = memchr::memchr(b'\n', text).unwrap_or(text.len());
            let line = &text[..end];
            if line.starts_with(b"{\"Records\"") || line.starts_with(b"{ \"Records\"") {
                // Possibly cut at the probe length: detection by its start is enough.
                return Some(serde_json::json!({"Records": []}));
            }
            serde_json::from_slice(line).ok()
        }
        Shape::Document => serde_json::Deserializer::from_slice(text)
            .into_iter::<Value>()
            .next()?
            .ok(),
        Shape::Csv => None,
    }
}
