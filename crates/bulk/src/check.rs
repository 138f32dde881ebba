//! Checking NDJSON as it streams in: one line at a time, never the whole file in memory.

use std::io::Write;

use flate2::write::GzDecoder;

use crate::Error;

/// Splits a byte stream into lines, checks each line's `resourceType`, and hands the lines on.
///
/// Blank lines are dropped, a trailing `\r` is removed and every line written out ends in `\n`.
/// A body that starts with the gzip magic bytes although no `Content-Encoding` said so is
/// decompressed on the fly. Memory holds one chunk and at most one line.
pub struct LineChecker {
    file: String,
    expected_type: Option<String>,
    max_line_bytes: usize,
    head: Vec<u8>,
    gunzip: Option<GzDecoder<Vec<u8>>>,
    sniffed: bool,
    partial: Vec<u8>,
    line: u64,
    resources: u64,
    organized: bool,
}

#[derive(serde::Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<std::borrow::Cow<'a, str>>,
}

/// The part of a `Parameters` line that marks an `organizeOutputBy` block header.
#[derive(serde::Deserialize)]
struct HeaderOnly<'a> {
    #[serde(borrow, default)]
    parameter: Vec<NameOnly<'a>>,
}

#[derive(serde::Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
}

impl LineChecker {
    /// A checker for the output file `file` whose lines must all be `expected_type` (any
    /// resource if `None`) and at most `max_line_bytes` long.
    pub fn new(file: &str, expected_type: Option<&str>, max_line_bytes: usize) -> Self {
        LineChecker {
            file: file.to_owned(),
            expected_type: expected_type.map(str::to_owned),
            max_line_bytes,
            head: Vec::new(),
            gunzip: None,
            sniffed: false,
            partial: Vec::new(),
            line: 0,
            resources: 0,
            organized: false,
        }
    }

    /// For `organizeOutputBy` files (Bulk Data STU3): `Parameters` lines whose first parameter
    /// is `header` start a resource block and are not counted as resources, as peers leave
    /// them out of the manifest `count`.
    pub fn organized(mut self) -> Self {
        self.organized = true;
        self
    }

    /// Feeds the next chunk of the body; complete, checked lines are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if !self.sniffed {
            self.head.extend_from_slice(chunk);
            if self.head.len() < 2 {
                return Ok(());
            }
            self.sniffed = true;
            if self.head.starts_with(&[0x1f, 0x8b]) {
                self.gunzip = Some(GzDecoder::new(Vec::new()));
            }
            let head = std::mem::take(&mut self.head);
            return self.feed_raw(&head, out);
        }
        self.feed_raw(chunk, out)
    }

    fn feed_raw(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match &mut self.gunzip {
            Some(decoder) => {
                decoder.write_all(chunk).map_err(|e| Error::Invalid {
                    file: self.file.clone(),
                    message: format!("undeclared gzip body: {e}"),
                })?;
                let plain = std::mem::take(decoder.get_mut());
                self.lines(&plain, out)
            }
            None => self.lines(chunk, out),
        }
    }

    fn lines(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            if self.partial.is_empty() {
                self.check_line(line, out)?;
            } else {
                self.grow_partial(line)?;
                let whole = std::mem::take(&mut self.partial);
                self.check_line(&whole, out)?;
            }
        }
        self.grow_partial(bytes)
    }

    fn grow_partial(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.partial.len() + bytes.len() > self.max_line_bytes {
            return Err(self.invalid(format!(
                "line {} is longer than {} bytes",
                self.line + 1,
                self.max_line_bytes
            )));
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn check_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if line.len() > self.max_line_bytes {
            return Err(self.invalid(format!(
                "line {} is longer than {} bytes",
                self.line, self.max_line_bytes
            )));
        }
        let found = serde_json::from_slice::<TypeOnly>(line)
            .ok()
            .and_then(|t| t.resource_type)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.invalid(format!(
                    "line {} is not a JSON resource with a resourceType",
                    self.line
                ))
            })?;
        if let Some(expected) = &self.expected_type
            && found != expected.as_str()
        {
            let message = format!(
                "line {}: resourceType {found} where the manifest says {expected}",
                self.line
            );
            return Err(self.invalid(message));
        }
        let header = self.organized
            && found == "Parameters"
            && serde_json::from_slice::<HeaderOnly>(line)
                .ok()
                .and_then(|h| h.parameter.into_iter().next())
                .and_then(|p| p.name)
                .is_some_and(|name| name == "header");
        if !header {
            self.resources += 1;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        Ok(())
    }

    /// Ends the body: checks the last line (one without a final newline) and returns the number
    /// of resources seen.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<u64, Error> {
        if !self.sniffed {
            self.sniffed = true;
            let head = std::mem::take(&mut self.head);
            self.lines(&head, out)?;
        }
        if let Some(decoder) = &mut self.gunzip {
            decoder.try_finish().map_err(|e| Error::Invalid {
                file: self.file.clone(),
                message: format!("undeclared gzip body: {e}"),
            })?;
            let plain = std::mem::take(decoder.get_mut());
            self.lines(&plain, out)?;
        }
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.check_line(&last, out)?;
        }
        Ok(self.resources)
    }

    fn invalid(&self, message: String) -> Error {
        Error::Invalid {
            file: self.file.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], expected: Option<&str>) -> Result<(u64, Vec<u8>), Error> {
        let mut checker = LineChecker::new("Patient.000.ndjson", expected, 64);
        let mut out = Vec::new();
        for chunk in chunks {
            checker.feed(chunk, &mut out)?;
        }
        let n = checker.finish(&mut out)?;
        Ok((n, out))
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let (n, out) = run(
            &[
                b"{\"resourceType\":\"Pat",
                b"ient\",\"id\":\"a\"}\r\n\n{\"resourceType\":",
                b"\"Patient\"}",
            ],
            Some("Patient"),
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\"}\n"
        );
    }

    #[test]
    fn a_wrong_resource_type_names_the_line_not_the_content() {
        let err = run(&[b"{\"resourceType\":\"Patient\",\"id\":\"secret\"}\n{\"resourceType\":\"Observation\",\"id\":\"secret\"}\n"], Some("Patient"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Patient.000.ndjson: line 2: resourceType Observation where the manifest says Patient"
        );
        assert!(!err.contains("secret"));
    }

    #[test]
    fn non_resources_and_long_lines_are_refused() {
        let err = run(&[b"[1,2]\n"], None).unwrap_err().to_string();
        assert!(err.contains("line 1 is not a JSON resource"), "{err}");
        let long = [b'x'; 100];
        let err = run(&[&long[..40], &long[40..]], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1 is longer than 64 bytes"), "{err}");
    }

    #[test]
    fn block_headers_of_organized_output_are_not_counted() {
        let header = br#"{"resourceType":"Parameters","parameter":[{"name":"header","valueReference":{"reference":"Patient/a"}}]}"#;
        let body = [&header[..], b"\n{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"x\"}]}\n"].concat();
        let mut checker = LineChecker::new("output.000.ndjson", None, 1 << 10).organized();
        let mut out = Vec::new();
        checker.feed(&body, &mut out).unwrap();
        assert_eq!(checker.finish(&mut out).unwrap(), 2);
        let mut plain = LineChecker::new("output.000.ndjson", None, 1 << 10);
        plain.feed(&body, &mut Vec::new()).unwrap();
        assert_eq!(plain.finish(&mut Vec::new()).unwrap(), 3);
    }

    #[test]
    fn undeclared_gzip_is_decompressed() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(b"{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Patient\"}\n")
            .unwrap();
        let gz = encoder.finish().unwrap();
        let chunks: Vec<&[u8]> = gz.chunks(1).collect();
        let (n, out) = run(&chunks, Some("Patient")).unwrap();
        assert_eq!(n, 2);
        assert_eq!(out.len(), 54);
    }
}
