//! Opening input files (gzip transparently, with byte counts for progress) and splitting
//! them into records: lines, elements of a JSON array, whole JSON documents, CSV rows.

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How much of the start of a file is looked at to detect its shape and format.
pub const HEAD_LEN: usize = 64 * 1024;

/// Counts the (compressed) bytes read from a file, for progress and ETA.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input: the decompressed bytes, starting with `head`.
pub struct Input {
    /// The first bytes (up to [`HEAD_LEN`]) of the decompressed content.
    pub head: Vec<u8>,
    /// The whole decompressed content, `head` included.
    pub reader: Box<dyn BufRead + Send>,
    /// True when the file is gzip-compressed.
    pub gzip: bool,
}

/// Opens `path`, decompressing gzip (recognised by its magic bytes, not its name).
/// `skip_to`: for a plain file, start reading at this byte offset (a resumed import).
pub fn open(path: &Path, count: Arc<AtomicU64>, skip_to: Option<u64>) -> io::Result<Input> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic)?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let start = match (gzip, skip_to) {
        (false, Some(off)) => off,
        _ => 0,
    };
    file.seek(SeekFrom::Start(start))?;
    count.fetch_add(start, Ordering::Relaxed);
    let counted = Counting { inner: file, count };
    let mut raw: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            counted,
        )))
    } else {
        Box::new(counted)
    };
    let mut head = vec![0u8; HEAD_LEN];
    let (n, err) = read_head(&mut raw, &mut head);
    head.truncate(n);
    if let Some(e) = err {
        if n == 0 {
            return Err(e);
        }
        // Damage within the first bytes (a truncated gzip): what came before it is
        // still read; the error surfaces where it happened.
        raw = Box::new(FailOnce(Some(e)));
    }
    let reader = BufReader::with_capacity(256 * 1024, Cursor::new(head.clone()).chain(raw));
    Ok(Input {
        head,
        reader: Box::new(reader),
        gzip,
    })
}

/// A reader that fails once with a saved error.
struct FailOnce(Option<io::Error>);

impl Read for FailOnce {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// True when the start of a file is not text: more than 1 in 20 bytes are control
/// characters other than tab, newline, carriage return, form feed and escape.
pub fn looks_binary(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let bad = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    bad * 20 > head.len()
}

/// One line read by [`LineReader`].
pub enum Line {
    /// The line (without its end) is in the buffer.
    Text,
    /// The line was longer than the limit; its length in bytes. It was skipped.
    TooLong(u64),
}

/// Reads lines with a length limit, so a 10 GB line never sits in memory.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    /// Byte offset of the next line (decompressed).
    pub offset: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Lines of `inner`, each at most `max` bytes; `offset` is where `inner` starts.
    pub fn new(inner: R, max: usize, offset: u64) -> Self {
        LineReader { inner, max, offset }
    }

    /// Reads the next line into `buf` (cleared first). `None` at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let mut total = 0u64;
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (n, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            total += n as u64;
            if !too_long {
                if buf.len() + n > self.max + 2 {
                    too_long = true;
                    buf.clear();
                    buf.shrink_to(64 * 1024);
                } else {
                    buf.extend_from_slice(&avail[..n]);
                }
            }
            self.inner.consume(n);
            if done {
                break;
            }
        }
        self.offset += total;
        if too_long {
            return Ok(Some(Line::TooLong(total)));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Line::Text))
    }
}

/// Splits a JSON array into its elements without parsing them, streaming, so a huge
/// exported array never sits in memory.
pub struct ArrayScanner<R> {
    inner: R,
    max: usize,
    /// 1-based line of the next byte.
    pub line: u64,
    started: bool,
    ended: bool,
}

/// One element found by [`ArrayScanner`].
pub enum Element {
    /// The element's text is in the buffer; it starts on this line.
    Json(u64),
    /// The element was larger than the limit (bytes), starting on this line.
    TooLarge(u64, u64),
    /// The file ended inside the element (truncated export), starting on this line.
    Truncated(u64),
}

impl<R: BufRead> ArrayScanner<R> {
    /// Elements of the array `inner` holds, each at most `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        ArrayScanner {
            inner,
            max,
            line: 1,
            started: false,
            ended: false,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.inner.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn bump(&mut self) -> io::Result<Option<u8>> {
        let b = self.peek()?;
        if let Some(c) = b {
            self.inner.consume(1);
            if c == b'\n' {
                self.line += 1;
            }
        }
        Ok(b)
    }

    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump()?;
                }
                Some(0xEF) if !self.started => {
                    // UTF-8 byte order mark.
                    for _ in 0..3 {
                        self.bump()?;
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// The next element into `buf`. `Err` with `InvalidData` when the text is not an
    /// array.
    pub fn next_element(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Element>> {
        buf.clear();
        if self.ended {
            return Ok(None);
        }
        if !self.started {
            match self.skip_ws()? {
                Some(b'[') => {
                    self.bump()?;
                    self.started = true;
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "expected a JSON array",
                    ))
                }
            }
        }
        loop {
            match self.skip_ws()? {
                Some(b',') => {
                    self.bump()?;
                }
                Some(b']') => {
                    self.bump()?;
                    self.ended = true;
                    return Ok(None);
                }
                None => {
                    self.ended = true;
                    return Ok(Some(Element::Truncated(self.line)));
                }
                Some(_) => break,
            }
        }
        let start_line = self.line;
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        let mut size = 0u64;
        let mut too_large = false;
        loop {
            let Some(c) = self.peek()? else {
                self.ended = true;
                return Ok(Some(Element::Truncated(start_line)));
            };
            if !in_str
                && depth == 0
                && size > 0
                && matches!(c, b',' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                break;
            }
            self.bump()?;
            size += 1;
            if !too_large {
                if buf.len() >= self.max {
                    too_large = true;
                    buf.clear();
                } else {
                    buf.push(c);
                }
            }
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                    if depth == 0 {
                        break;
                    }
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth <= 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok(Some(if too_large {
            Element::TooLarge(start_line, size)
        } else {
            Element::Json(start_line)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_stream_with_their_lines() {
        let text = b"[\n {\"a\": \"x,]}\"},\n {\"b\": [1,2]}, 3, \"s\"\n]";
        let mut s = ArrayScanner::new(&text[..], 1000);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(e) = s.next_element(&mut buf).unwrap() {
            match e {
                Element::Json(line) => got.push((line, String::from_utf8(buf.clone()).unwrap())),
                _ => panic!("unexpected"),
            }
        }
        assert_eq!(
            got,
            vec![
                (2, "{\"a\": \"x,]}\"}".to_string()),
                (3, "{\"b\": [1,2]}".to_string()),
                (3, "3".to_string()),
                (3, "\"s\"".to_string())
            ]
        );
        let mut s = ArrayScanner::new(&b"[{\"a\":1},{\"b\":"[..], 1000);
        assert!(matches!(
            s.next_element(&mut buf).unwrap(),
            Some(Element::Json(1))
        ));
        assert!(matches!(
            s.next_element(&mut buf).unwrap(),
            Some(Element::Truncated(1))
        ));
    }

    #[test]
    fn long_lines_are_skipped_not_buffered() {
        let mut text = vec![b'x'; 5000];
        text.extend_from_slice(b"\nshort\n");
        let mut r = LineReader::new(&text[..], 100, 0);
        let mut buf = Vec::new();
        assert!(matches!(
            r.next_line(&mut buf).unwrap(),
            Some(Line::TooLong(5001))
        ));
        assert!(matches!(r.next_line(&mut buf).unwrap(), Some(Line::Text)));
        assert_eq!(buf, b"short");
        assert_eq!(r.offset, 5007);
        assert!(r.next_line(&mut buf).unwrap().is_none());
    }
}
