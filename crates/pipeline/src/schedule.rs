//! Repeated runs: `haven pipeline run --every 1h`.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::report::RunReport;
use crate::run::{Observer, Pipeline};

/// Runs `pipeline` now and then every `interval` (measured from one start to the next; a run
/// that overruns is followed at once by the next), calling `done` with each outcome. Stops
/// when `done` returns `false`. A failed run does not stop the schedule: its successor
/// resumes it.
pub fn run_every(
    pipeline: &Pipeline,
    interval: Duration,
    observer: &dyn Observer,
    mut done: impl FnMut(Result<RunReport>) -> bool,
) {
    loop {
        let started = Instant::now();
        if !done(pipeline.run(observer)) {
            return;
        }
        let next = started + interval;
        let now = Instant::now();
        if next > now {
            observer.note(&format!(
                "next run in {}",
                humantime::format_duration(Duration::from_secs((next - now).as_secs()))
            ));
            std::thread::sleep(next - now);
        }
    }
}
