//! Streaming NDJSON: batching limits, line numbers, gzip, errors without content, ordered
//! parallel processing, and the atomic file writer.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use fhir::ndjson::{
    Batch, Compression, NdjsonError, NdjsonFileWriter, NdjsonReader, NdjsonWriter, ProcessOptions,
    ReadOptions, parse_resource, process_ordered,
};
use flate2::write::GzEncoder;

/// A string that must never appear in an error message.
const SECRET: &str = "SECRET-Zebulon-4471";

fn options(batch_lines: usize, batch_bytes: usize, max_line_bytes: usize) -> ReadOptions {
    ReadOptions {
        batch_lines,
        batch_bytes,
        max_line_bytes,
    }
}

fn resource_line(number: usize) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"o{number}","valueQuantity":{{"value":{number}.50}}}}"#
    )
}

fn ndjson(lines: usize) -> String {
    (1..=lines)
        .map(|number| resource_line(number) + "\n")
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Every line of every batch as (line number, text), checking each batch against `options`.
fn read_all(reader: &mut NdjsonReader<impl Read>) -> Vec<(u64, String)> {
    let limits = reader.options();
    let mut lines = Vec::new();
    let mut batch = Batch::new();
    while reader.fill_batch(&mut batch).unwrap() {
        assert!(!batch.is_empty());
        assert!(batch.len() <= limits.batch_lines, "{batch:?}");
        assert!(
            batch.bytes() <= limits.batch_bytes || batch.len() == 1,
            "{batch:?}"
        );
        assert_eq!(
            batch.bytes(),
            batch.iter().map(|line| line.bytes().len()).sum::<usize>()
        );
        for line in batch.iter() {
            lines.push((
                line.number(),
                String::from_utf8(line.bytes().to_vec()).unwrap(),
            ));
        }
    }
    lines
}

#[test]
fn batches_hold_at_most_the_line_limit() {
    let input = ndjson(25);
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", options(10, 1 << 20, 1 << 20)).unwrap();
    let sizes: Vec<usize> = std::iter::from_fn(|| reader.next_batch().unwrap())
        .map(|b| b.len())
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
}

#[test]
fn batches_hold_at_most_the_byte_limit() {
    let line = "x".repeat(99);
    let input = format!("{line}\n").repeat(10);
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", options(1000, 350, 1000)).unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = reader.next_batch().unwrap() {
        assert!(batch.bytes() <= 350);
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [3, 3, 3, 1]);
}

#[test]
fn a_line_longer_than_the_batch_budget_forms_a_batch_of_its_own() {
    let input = format!("short\n{}\nshort\n", "y".repeat(500));
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", options(1000, 100, 1000)).unwrap();
    let batches: Vec<Vec<u64>> = std::iter::from_fn(|| reader.next_batch().unwrap())
        .map(|batch| batch.iter().map(|line| line.number()).collect())
        .collect();
    assert_eq!(batches, [vec![1], vec![2], vec![3]]);
}

#[test]
fn both_limits_hold_on_uneven_lines_and_every_line_comes_through_in_order() {
    let lines: Vec<String> = (0..2000)
        .map(|i| "z".repeat(1 + (i * 7919) % 300))
        .collect();
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", options(17, 1024, 4096)).unwrap();
    let read = read_all(&mut reader);
    let expected: Vec<(u64, String)> = lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .collect();
    assert_eq!(read, expected);
}

#[test]
fn line_numbers_count_blank_lines_and_crlf_is_stripped() {
    let input = "{\"a\":1}\r\n\r\n  \n{\"b\":2}\n\n\t\r\n{\"c\":3}\r\n{\"d\":4}";
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", ReadOptions::default()).unwrap();
    let read = read_all(&mut reader);
    let expected = [
        (1, "{\"a\":1}"),
        (4, "{\"b\":2}"),
        (7, "{\"c\":3}"),
        (8, "{\"d\":4}"),
    ];
    assert_eq!(read, expected.map(|(n, s)| (n, s.to_owned())));
}

#[test]
fn empty_and_blank_inputs_yield_no_batches() {
    for input in ["", "\n", "\r\n \n\t\n"] {
        let mut reader =
            NdjsonReader::new(input.as_bytes(), "a.ndjson", ReadOptions::default()).unwrap();
        assert!(reader.next_batch().unwrap().is_none());
        assert!(!reader.is_gzip());
    }
}

#[test]
fn gzip_and_plain_give_the_same_lines() {
    let input = format!("\n{}\r\n\n{}", ndjson(3000), resource_line(0));
    let small = options(100, 16 << 10, 1 << 20);
    let mut plain = NdjsonReader::new(input.as_bytes(), "a.ndjson", small).unwrap();
    let compressed = gzip(input.as_bytes());
    let mut gz = NdjsonReader::new(&compressed[..], "a.ndjson.gz", small).unwrap();
    assert!(!plain.is_gzip());
    assert!(gz.is_gzip());
    let plain_lines = read_all(&mut plain);
    assert_eq!(plain_lines.len(), 3001);
    assert_eq!(plain_lines, read_all(&mut gz));
}

#[test]
fn concatenated_gzip_members_are_read_as_one_stream() {
    let (first, second) = (ndjson(10), ndjson(5));
    let mut compressed = gzip(first.as_bytes());
    compressed.extend(gzip(second.as_bytes()));
    let mut reader =
        NdjsonReader::new(&compressed[..], "a.ndjson.gz", ReadOptions::default()).unwrap();
    assert_eq!(read_all(&mut reader).len(), 15);
}

#[test]
fn gzip_is_detected_by_magic_bytes_not_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = ndjson(50);
    let misnamed = dir.path().join("Observation.ndjson");
    fs::write(&misnamed, gzip(input.as_bytes())).unwrap();
    let plain_gz = dir.path().join("Observation.plain.ndjson.gz");
    fs::write(&plain_gz, &input).unwrap();
    let mut from_gzip = NdjsonReader::open(&misnamed, ReadOptions::default()).unwrap();
    let mut from_plain = NdjsonReader::open(&plain_gz, ReadOptions::default()).unwrap();
    assert!(from_gzip.is_gzip());
    assert!(!from_plain.is_gzip());
    assert_eq!(read_all(&mut from_gzip), read_all(&mut from_plain));
}

#[test]
fn a_corrupt_gzip_stream_is_a_read_error_naming_the_file() {
    let mut compressed = gzip(ndjson(2000).as_bytes());
    let middle = compressed.len() / 2;
    compressed.truncate(middle);
    let mut reader =
        NdjsonReader::new(&compressed[..], "broken.ndjson.gz", ReadOptions::default()).unwrap();
    let error = std::iter::from_fn(|| reader.next_batch().transpose())
        .find_map(Result::err)
        .unwrap();
    assert!(matches!(error, NdjsonError::Read { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("broken.ndjson.gz after line "),
        "{error}"
    );
    assert!(
        reader.next_batch().unwrap().is_none(),
        "the reader stops after an error"
    );
}

#[test]
fn opening_a_missing_file_names_it() {
    let error =
        NdjsonReader::open("/nonexistent/Patient.ndjson", ReadOptions::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/Patient.ndjson: cannot open: "),
        "{error}"
    );
}

#[test]
fn a_line_over_the_maximum_length_is_an_error_naming_file_and_line_after_the_lines_before_it() {
    let input = format!("{{}}\n\n{}{SECRET}\n{{}}\n", "x".repeat(200));
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "big.ndjson", options(1000, 1 << 20, 100)).unwrap();
    let before = reader.next_batch().unwrap().unwrap();
    assert_eq!(
        before.iter().map(|line| line.number()).collect::<Vec<_>>(),
        [1]
    );
    let error = reader.next_batch().unwrap_err();
    assert!(
        matches!(
            error,
            NdjsonError::LineTooLong {
                line: 3,
                max: 100,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "big.ndjson line 3: line longer than the maximum of 100 bytes"
    );
    assert!(
        reader.next_batch().unwrap().is_none(),
        "the reader stops after an error"
    );
}

#[test]
fn a_line_of_exactly_the_maximum_length_is_accepted_with_or_without_crlf() {
    let line = "x".repeat(100);
    for input in [format!("{line}\r\n{line}\n"), format!("{line}\n{line}\r")] {
        let mut reader =
            NdjsonReader::new(input.as_bytes(), "a.ndjson", options(1000, 1 << 20, 100)).unwrap();
        let read = read_all(&mut reader);
        assert_eq!(read, [(1, line.clone()), (2, line.clone())]);
    }
}

#[test]
fn an_endless_line_is_rejected_without_reading_the_whole_input() {
    let endless = io::repeat(b'x');
    let max = 4 << 20;
    let mut reader =
        NdjsonReader::new(endless, "endless.ndjson", options(1000, 1 << 20, max)).unwrap();
    let progress = reader.progress();
    let error = reader.next_batch().unwrap_err();
    assert!(
        matches!(error, NdjsonError::LineTooLong { line: 1, .. }),
        "{error:?}"
    );
    assert!(
        progress.source_bytes() <= 2 * max as u64,
        "read {} bytes",
        progress.source_bytes()
    );
}

#[test]
fn malformed_json_is_an_error_naming_file_line_and_column_without_content() {
    let bad = format!(r#"{{"resourceType":"Patient","name":"{SECRET}" "gender":"male"}}"#);
    let error = parse_resource(bad.as_bytes(), "Patient.ndjson", 12).unwrap_err();
    let column = bad.find(" \"gender").unwrap() + 2;
    let expected =
        format!("Patient.ndjson line 12: invalid JSON at column {column} (expected `,` or `}}`)");
    assert_eq!(error.to_string(), expected);
    assert!(!format!("{error} {error:?}").contains("Zebulon"));
}

#[test]
fn no_parse_error_quotes_the_line() {
    let cases = [
        format!(r#"{{"resourceType":"Patient","name":"{SECRET}"#),
        format!(r#"{{"resourceType":"Patient","name":"{SECRET}\q"}}"#),
        format!(r#"{{"resourceType":"Patient","{SECRET}"}}"#),
        format!(r#"{{"resourceType":"Patient","n":{SECRET}}}"#),
        format!(r#"{{"resourceType":"Patient","n":"{SECRET}"}} trailing {SECRET}"#),
        format!(r#"["{SECRET}"]"#),
        format!(r#""{SECRET}""#),
        format!(r#"{{"name":"{SECRET}"}}"#),
        format!(r#"{{"resourceType":"","name":"{SECRET}"}}"#),
        format!(r#"{{"resourceType":["{SECRET}"]}}"#),
        format!("{{\"resourceType\":\"Patient\",\"name\":\"{SECRET}\u{1}\"}}"),
    ];
    for (index, case) in cases.iter().enumerate() {
        let line = index as u64 + 1;
        let error = parse_resource(case.as_bytes(), "Patient.ndjson", line).unwrap_err();
        let shown = format!("{error} / {error:?}");
        assert!(!shown.contains("Zebulon"), "{shown}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("Patient.ndjson line {line}: ")),
            "{error}"
        );
    }
}

#[test]
fn a_line_must_be_an_object_with_a_string_resource_type() {
    let not_object = parse_resource(b"[1,2]", "a.ndjson", 3).unwrap_err();
    assert_eq!(
        not_object.to_string(),
        "a.ndjson line 3: expected a JSON object, found an array"
    );
    let missing = parse_resource(br#"{"id":"x"}"#, "a.ndjson", 4).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "a.ndjson line 4: resourceType missing or not a non-empty string"
    );
    let resource =
        parse_resource(br#"{"resourceType":"Patient","id":"x"}"#, "a.ndjson", 5).unwrap();
    assert_eq!(resource["id"], "x");
}

#[test]
fn debug_output_of_lines_and_batches_shows_no_content() {
    let input = format!("{{\"secret\":\"{SECRET}\"}}\n");
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "a.ndjson", ReadOptions::default()).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    let shown = format!("{batch:?} {:?} {reader:?}", batch.get(0).unwrap());
    assert!(!shown.contains("Zebulon"), "{shown}");
    assert!(shown.contains("a.ndjson"), "{shown}");
}

/// Burns CPU for a time that depends on the line, so batches and lines finish out of order.
fn uneven_work(number: u64) {
    let spin = match number % 10 {
        0 => Duration::from_micros(800),
        3 | 7 => Duration::from_micros(100),
        _ => Duration::ZERO,
    };
    let start = Instant::now();
    while start.elapsed() < spin {
        std::hint::spin_loop();
    }
}

#[test]
fn parallel_processing_preserves_input_order_under_uneven_costs() {
    let input = ndjson(3000).replace(
        "\n{\"resourceType\":\"Observation\",\"id\":\"o50\"",
        "\n\n{\"resourceType\":\"Observation\",\"id\":\"o50\"",
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(16, 1 << 20, 1 << 20)).unwrap();
    let progress = reader.progress();
    let mut seen = Vec::new();
    let summary = process_ordered(
        &mut reader,
        ProcessOptions {
            pool: Some(&pool),
            max_in_flight: None,
        },
        |line| {
            uneven_work(line.number());
            let resource = line.parse_resource()?;
            Ok::<_, NdjsonError>(resource["id"].as_str().unwrap().to_owned())
        },
        |line, id| {
            seen.push((line.number(), id));
            Ok(())
        },
    )
    .unwrap();
    let expected: Vec<(u64, String)> = (1..=3000)
        .map(|n| (if n < 50 { n } else { n + 1 }, format!("o{n}")))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(summary.lines, 3000);
    assert_eq!(summary.batches, 3000_u64.div_ceil(16));
    assert_eq!(progress.lines_read(), 3000);
    assert_eq!(progress.lines_done(), 3000);
    assert_eq!(progress.source_bytes(), input.len() as u64);
}

#[test]
fn the_first_error_in_input_order_stops_processing() {
    let mut input = ndjson(2000);
    input = input
        .replace("\"id\":\"o1500\"", "\"id\":o1500")
        .replace("\"id\":\"o30\"", "\"id\":o30");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(10, 1 << 20, 1 << 20)).unwrap();
    let mut sunk = Vec::new();
    let error = process_ordered(
        &mut reader,
        ProcessOptions {
            pool: Some(&pool),
            max_in_flight: Some(64),
        },
        |line| {
            // Make the later error likely to be found first.
            uneven_work(if line.number() < 100 { 0 } else { 1 });
            line.parse_resource().map(|_| ())
        },
        |line, ()| {
            sunk.push(line.number());
            Ok(())
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, NdjsonError::InvalidJson { line: 30, .. }),
        "{error:?}"
    );
    assert_eq!(sunk, (1..30).collect::<Vec<u64>>());
}

/// A caller's own error type, as the CLI or the pipeline would have.
#[derive(Debug, PartialEq)]
enum CallerError {
    Ndjson(String),
    SinkRefused(u64),
}

impl From<NdjsonError> for CallerError {
    fn from(error: NdjsonError) -> Self {
        Self::Ndjson(error.to_string())
    }
}

#[test]
fn a_sink_error_stops_processing() {
    let input = ndjson(500);
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(7, 1 << 20, 1 << 20)).unwrap();
    let mut count = 0;
    let error = process_ordered(
        &mut reader,
        ProcessOptions::default(),
        |line| Ok::<_, CallerError>(line.number()),
        |_, number| {
            count += 1;
            if number == 100 {
                Err(CallerError::SinkRefused(number))
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert_eq!(error, CallerError::SinkRefused(100));
    assert_eq!(count, 100);
}

#[test]
fn a_read_error_ends_processing_after_the_lines_before_it() {
    let input = format!("{}{}\n", ndjson(100), "x".repeat(5000));
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(7, 1 << 20, 1000)).unwrap();
    let mut sunk = 0;
    let error = process_ordered(
        &mut reader,
        ProcessOptions::default(),
        |line| line.parse_resource().map(|_| ()),
        |_, ()| {
            sunk += 1;
            Ok(())
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, NdjsonError::LineTooLong { line: 101, .. }),
        "{error:?}"
    );
    assert_eq!(sunk, 100);
}

#[test]
fn a_line_error_before_a_read_error_is_the_one_returned() {
    let input = format!("{}{}\n", ndjson(100), "x".repeat(5000)).replace("\"o50\"", "o50");
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(7, 1 << 20, 1000)).unwrap();
    let error = process_ordered(
        &mut reader,
        ProcessOptions::default(),
        |line| line.parse_resource().map(|_| ()),
        |_, ()| Ok(()),
    )
    .unwrap_err();
    assert!(
        matches!(error, NdjsonError::InvalidJson { line: 50, .. }),
        "{error:?}"
    );
}

#[test]
fn a_panic_in_the_map_function_reaches_the_caller() {
    let input = ndjson(200);
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", options(10, 1 << 20, 1 << 20)).unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process_ordered(
            &mut reader,
            ProcessOptions::default(),
            |line| {
                assert!(line.number() != 150, "boom at line {}", line.number());
                Ok::<_, NdjsonError>(())
            },
            |_, ()| Ok(()),
        )
    }));
    let payload = outcome.unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert_eq!(message, "boom at line 150");
}

#[test]
fn processing_from_inside_a_single_thread_pool_does_not_deadlock() {
    let input = ndjson(1000);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let summary = pool.install(|| {
        let mut reader =
            NdjsonReader::new(input.as_bytes(), "o.ndjson", options(10, 1 << 20, 1 << 20)).unwrap();
        let mut next = 1;
        process_ordered(
            &mut reader,
            ProcessOptions {
                pool: Some(&pool),
                max_in_flight: None,
            },
            |line| Ok::<_, NdjsonError>(line.number()),
            |_, number| {
                assert_eq!(number, next);
                next += 1;
                Ok(())
            },
        )
        .unwrap()
    });
    assert_eq!(summary.lines, 1000);
}

#[test]
fn deidentify_style_round_trip_keeps_untouched_text_exactly() {
    let input = "{\"resourceType\":\"Observation\",\"id\":\"a\",\"valueQuantity\":{\"value\":0.010,\"unit\":\"mg\"},\"note\":[{\"text\":\"caf\u{e9} \\\"quoted\\\"\"}]}\n";
    let mut reader =
        NdjsonReader::new(input.as_bytes(), "o.ndjson", ReadOptions::default()).unwrap();
    let mut writer = NdjsonWriter::new(Vec::new(), "out.ndjson", Compression::Plain);
    process_ordered(
        &mut reader,
        ProcessOptions::default(),
        |line| {
            let resource = line.parse_resource()?;
            Ok::<_, NdjsonError>(serde_json::to_vec(&resource).unwrap())
        },
        |_, bytes| writer.write_line(&bytes),
    )
    .unwrap();
    assert_eq!(writer.finish().unwrap(), input.as_bytes());
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_file_writer_leaves_nothing_when_not_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Patient.ndjson");
    let mut writer = NdjsonFileWriter::create(&path, Compression::Plain).unwrap();
    writer.write_line(br#"{"resourceType":"Patient"}"#).unwrap();
    assert_eq!(
        listing(dir.path()).len(),
        1,
        "only the temporary file exists while writing"
    );
    assert!(!path.exists());
    drop(writer);
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[test]
fn the_file_writer_renames_into_place_on_finish_and_replaces_the_old_file_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Patient.ndjson");
    fs::write(&path, "old\n").unwrap();
    let mut writer = NdjsonFileWriter::create(&path, Compression::for_path(&path)).unwrap();
    writer
        .write_line(br#"{"resourceType":"Patient","id":"1"}"#)
        .unwrap();
    writer
        .write_value(&serde_json::json!({"resourceType": "Patient", "id": "2"}))
        .unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "old\n");
    assert_eq!(writer.finish().unwrap(), 2);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n{\"resourceType\":\"Patient\",\"id\":\"2\"}\n"
    );
    assert_eq!(listing(dir.path()), ["Patient.ndjson"]);
}

#[test]
fn gzip_output_reads_back_to_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Observation.ndjson.gz");
    assert_eq!(Compression::for_path(&path), Compression::GZIP);
    let input = ndjson(1000);
    let mut writer = NdjsonFileWriter::create(&path, Compression::for_path(&path)).unwrap();
    for line in input.lines() {
        writer.write_line(line.as_bytes()).unwrap();
    }
    writer.finish().unwrap();
    let mut reader = NdjsonReader::open(&path, ReadOptions::default()).unwrap();
    assert!(reader.is_gzip());
    let mut plain = NdjsonReader::new(input.as_bytes(), "plain", ReadOptions::default()).unwrap();
    assert_eq!(read_all(&mut reader), read_all(&mut plain));
}

#[test]
fn a_writer_refuses_a_line_containing_a_newline_without_quoting_it() {
    let mut writer = NdjsonWriter::new(Vec::new(), "out.ndjson", Compression::Plain);
    writer.write_line(b"{}").unwrap();
    let error = writer
        .write_line(format!("{{\"a\":\"{SECRET}\"}}\n{{}}").as_bytes())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "out.ndjson line 2: output line contains a newline"
    );
    assert_eq!(writer.finish().unwrap(), b"{}\n");
}

#[test]
fn a_file_writer_whose_folder_is_missing_fails_at_create() {
    let error = NdjsonFileWriter::create("/nonexistent/dir/Patient.ndjson", Compression::Plain)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/dir/Patient.ndjson: cannot create"),
        "{error}"
    );
}
