//! Memory stays flat: processing a file many times larger than the batch budget keeps the peak
//! live heap within a bound derived from the budget and the thread count, not the file size.
//!
//! This test binary counts every heap allocation with its own global allocator, so it holds
//! this one test only (other tests running in parallel would be counted too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use fhir::ndjson::{
    Compression, NdjsonError, NdjsonFileWriter, NdjsonReader, NdjsonWriter, ProcessOptions,
    ReadOptions, process_ordered,
};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

/// A realistic Observation line of roughly 1–3 KB whose size varies with `number`.
fn observation(number: usize) -> String {
    let note = "lorem ipsum dolor sit amet ".repeat(20 + number % 80);
    format!(
        concat!(
            r#"{{"resourceType":"Observation","id":"obs-{n}","meta":{{"versionId":"1","lastUpdated":"2021-07-10T10:11:12.345+00:00"}},"#,
            r#""status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}}]}}],"#,
            r#""code":{{"coding":[{{"system":"http://loinc.org","code":"94531-1","display":"SARS-CoV-2 RNA panel"}}],"text":"SARS-CoV-2 RNA panel"}},"#,
            r#""subject":{{"reference":"Patient/p-{p}"}},"effectiveDateTime":"2020-03-{d:02}T08:30:00-05:00","#,
            r#""valueQuantity":{{"value":{n}.{c:02},"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}},"#,
            r#""note":[{{"text":"{note}"}}]}}"#
        ),
        n = number,
        p = number % 997,
        d = 1 + number % 28,
        c = number % 100,
        note = note,
    )
}

#[test]
fn peak_heap_follows_the_batch_budget_not_the_file_size() {
    const THREADS: usize = 4;
    const MAX_IN_FLIGHT: usize = 2 * THREADS;
    const BATCH_BYTES: usize = MIB;
    const FILE_BYTES: u64 = 110 * MIB as u64;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Observation.ndjson");
    let mut writer = NdjsonFileWriter::create(&path, Compression::Plain).unwrap();
    let mut lines = 0_usize;
    let mut file_bytes = 0_u64;
    while file_bytes < FILE_BYTES {
        lines += 1;
        let line = observation(lines);
        file_bytes += line.len() as u64 + 1;
        writer.write_line(line.as_bytes()).unwrap();
    }
    writer.finish().unwrap();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap();
    let options = ReadOptions {
        batch_lines: 1_000,
        batch_bytes: BATCH_BYTES,
        ..ReadOptions::default()
    };
    let mut reader = NdjsonReader::open(&path, options).unwrap();
    let mut output = NdjsonWriter::new(io::sink(), "out.ndjson", Compression::Plain);
    let mut next_line = 1;

    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let summary = process_ordered(
        &mut reader,
        ProcessOptions {
            pool: Some(&pool),
            max_in_flight: Some(MAX_IN_FLIGHT),
        },
        |line| {
            let mut resource = line.parse_resource()?;
            resource["subject"]["reference"] = "Patient/redacted".into();
            Ok::<_, NdjsonError>(serde_json::to_vec(&resource).expect("a Value serializes"))
        },
        |line, bytes| {
            assert_eq!(line.number(), next_line);
            next_line += 1;
            output.write_line(&bytes)
        },
    )
    .unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    output.finish().unwrap().flush().unwrap();

    // Each batch in flight holds its input (at most BATCH_BYTES, with capacity rounding) and one
    // output per line (about the same size); the reader adds its 256 KiB buffer, and each thread
    // one parsed resource at a time. Four batch budgets per batch in flight is a generous bound.
    let bound = 4 * MAX_IN_FLIGHT * BATCH_BYTES + 8 * MIB;
    println!(
        "memory: {} lines, {:.0} MiB file, peak live heap {:.1} MiB (bound {:.0} MiB)",
        summary.lines,
        file_bytes as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    assert_eq!(summary.lines, lines as u64);
    assert!(file_bytes >= 10 * (MAX_IN_FLIGHT * BATCH_BYTES) as u64);
    assert!(peak <= bound, "peak live heap {peak} bytes exceeds {bound}");
}
