//! Parallel, order-preserving processing of NDJSON batches on a rayon pool.

use std::any::Any;
use std::collections::BTreeMap;
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use rayon::ThreadPool;
use rayon::prelude::*;

use super::NdjsonError;
use super::read::{Batch, LineRef, NdjsonReader};

/// Where and how widely [`process_ordered`] runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessOptions<'p> {
    /// The pool that runs the per-line function; `None` runs on the current rayon pool (the
    /// global one outside any pool).
    pub pool: Option<&'p ThreadPool>,
    /// The most batches read but not yet handed to the sink; `None` means twice the pool's
    /// threads. Peak memory is about this many batches of input plus their outputs.
    pub max_in_flight: Option<usize>,
}

/// What a [`process_ordered`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessSummary {
    /// Batches read and processed.
    pub batches: u64,
    /// Lines handed to the sink.
    pub lines: u64,
}

/// A processed batch coming back from the pool.
struct Done<T, E> {
    sequence: u64,
    batch: Batch,
    outcome: Result<Vec<Result<T, E>>, Box<dyn Any + Send>>,
}

/// Reads `reader` batch by batch, runs `map` on every line in parallel on the pool, and calls
/// `sink` with each line and its result on the calling thread, in input order.
///
/// At most [`ProcessOptions::max_in_flight`] batches are held at once (read, queued, running or
/// waiting for an earlier batch), so memory follows the batch budget, not the input size. The
/// first error in input order, from reading, `map` or `sink`, stops the run: every line before it
/// has been sunk, no batch is started after it, running batches are discarded, and the error is
/// returned. A panic in `map` is
/// resumed on the calling thread. Lines handed to the sink are counted in
/// [`Progress::lines_done`](super::Progress::lines_done).
///
/// The calling thread reads the input and runs `sink`; keep it off async executors (use
/// `spawn_blocking` or a thread). Calling from a worker of the same pool works: the caller helps
/// run queued jobs while it waits.
pub fn process_ordered<R, T, E, M, S>(
    reader: &mut NdjsonReader<R>,
    options: ProcessOptions<'_>,
    map: M,
    mut sink: S,
) -> Result<ProcessSummary, E>
where
    R: Read,
    T: Send,
    E: From<NdjsonError> + Send,
    M: Fn(LineRef<'_>) -> Result<T, E> + Sync,
    S: FnMut(LineRef<'_>, T) -> Result<(), E>,
{
    let (threads, on_worker) = match options.pool {
        Some(pool) => (
            pool.current_num_threads(),
            pool.current_thread_index().is_some(),
        ),
        None => (
            rayon::current_num_threads(),
            rayon::current_thread_index().is_some(),
        ),
    };
    let max_in_flight = options
        .max_in_flight
        .unwrap_or(threads.saturating_mul(2))
        .max(1);
    let cancelled = AtomicBool::new(false);
    let run = Run {
        map: &map,
        cancelled: &cancelled,
        max_in_flight,
        on_worker,
    };
    match options.pool {
        Some(pool) => pool.in_place_scope(|scope| run.run(scope, reader, &mut sink)),
        None => rayon::in_place_scope(|scope| run.run(scope, reader, &mut sink)),
    }
}

/// The shared, read-only state of one [`process_ordered`] call.
struct Run<'s, M> {
    map: &'s M,
    cancelled: &'s AtomicBool,
    max_in_flight: usize,
    on_worker: bool,
}

impl<'s, M> Run<'s, M> {
    /// Reads and spawns batches while there is room, and sinks finished ones in order.
    fn run<R, T, E, S>(
        &self,
        scope: &rayon::Scope<'s>,
        reader: &mut NdjsonReader<R>,
        sink: &mut S,
    ) -> Result<ProcessSummary, E>
    where
        R: Read,
        T: Send + 's,
        E: From<NdjsonError> + Send + 's,
        M: Fn(LineRef<'_>) -> Result<T, E> + Sync,
        S: FnMut(LineRef<'_>, T) -> Result<(), E>,
    {
        // However the run ends (done, error or panic), batches still queued skip their work;
        // the scope then only waits for the ones already running.
        let _cancel_on_exit = CancelOnDrop(self.cancelled);
        self.pump(scope, reader, sink)
    }

    fn pump<R, T, E, S>(
        &self,
        scope: &rayon::Scope<'s>,
        reader: &mut NdjsonReader<R>,
        sink: &mut S,
    ) -> Result<ProcessSummary, E>
    where
        R: Read,
        T: Send + 's,
        E: From<NdjsonError> + Send + 's,
        M: Fn(LineRef<'_>) -> Result<T, E> + Sync,
        S: FnMut(LineRef<'_>, T) -> Result<(), E>,
    {
        let (sender, receiver) = mpsc::channel::<Done<T, E>>();
        let progress = reader.progress();
        let mut spare: Vec<Batch> = Vec::new();
        let mut waiting: BTreeMap<u64, Done<T, E>> = BTreeMap::new();
        let mut summary = ProcessSummary::default();
        let mut next_to_read = 0_u64;
        let mut next_to_sink = 0_u64;
        let mut end_of_input = false;
        // A read error ends the input; it is returned once the lines before it are sunk, unless
        // one of those fails first.
        let mut read_error = None;
        loop {
            while !end_of_input && next_to_read - next_to_sink < self.max_in_flight as u64 {
                let mut batch = spare.pop().unwrap_or_default();
                match reader.fill_batch(&mut batch) {
                    Ok(true) => {}
                    Ok(false) => end_of_input = true,
                    Err(error) => {
                        read_error = Some(error);
                        end_of_input = true;
                    }
                }
                if end_of_input {
                    break;
                }
                self.spawn(scope, next_to_read, batch, sender.clone());
                next_to_read += 1;
            }
            if next_to_sink == next_to_read {
                return match read_error {
                    Some(error) => Err(error.into()),
                    None => Ok(summary),
                };
            }
            let done = wait(&receiver, self.on_worker);
            waiting.insert(done.sequence, done);
            while let Some(done) = waiting.remove(&next_to_sink) {
                next_to_sink += 1;
                let results = match done.outcome {
                    Ok(results) => results,
                    Err(payload) => panic::resume_unwind(payload),
                };
                for (line, result) in done.batch.iter().zip(results) {
                    sink(line, result?)?;
                    summary.lines += 1;
                }
                progress.add_lines_done(done.batch.len() as u64);
                summary.batches += 1;
                spare.push(done.batch);
            }
        }
    }

    /// Runs `map` over the lines of `batch` on the pool and sends the results back.
    fn spawn<T, E>(
        &self,
        scope: &rayon::Scope<'s>,
        sequence: u64,
        batch: Batch,
        sender: Sender<Done<T, E>>,
    ) where
        T: Send + 's,
        E: Send + 's,
        M: Fn(LineRef<'_>) -> Result<T, E> + Sync,
    {
        let map = self.map;
        let cancelled = self.cancelled;
        scope.spawn(move |_| {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                if cancelled.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                (0..batch.len())
                    .into_par_iter()
                    .map(|index| map(batch.get(index).expect("the index is within the batch")))
                    .collect()
            }));
            // The receiver is gone only if the caller has stopped; then nobody needs the result.
            let _ = sender.send(Done {
                sequence,
                batch,
                outcome,
            });
        });
    }
}

/// Sets its flag when dropped, including while unwinding.
struct CancelOnDrop<'a>(&'a AtomicBool);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits for the next processed batch. On a worker thread of the pool, runs queued jobs while
/// waiting, so a caller inside the pool cannot starve its own batches.
fn wait<D>(receiver: &Receiver<D>, on_worker: bool) -> D {
    const DISCONNECTED: &str = "the caller holds a sender for as long as it waits";
    if !on_worker {
        return receiver.recv().expect(DISCONNECTED);
    }
    loop {
        match receiver.try_recv() {
            Ok(done) => return done,
            Err(TryRecvError::Disconnected) => panic!("{DISCONNECTED}"),
            Err(TryRecvError::Empty) => {}
        }
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            match receiver.recv_timeout(Duration::from_millis(1)) {
                Ok(done) => return done,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("{DISCONNECTED}"),
            }
        }
    }
}
