//! Reusable threads. A connection's reader and writer run on pooled threads: a thread that
//! finishes its connection waits a while for the next one instead of exiting, so that a
//! churn of short connections does not pay for a thread creation each (issue: churn).
//!
//! Each job renames its thread (`xscp-conn-<id>`, `xscp-write-<id>`) so that `top -H` shows
//! who is who. A panic inside a job is contained: it is logged and the thread goes back to
//! the pool. Idle threads exit after [`IDLE_KEEP`], so the thread count returns to its
//! baseline by itself; as it falls after a spike, the allocator's free memory is given back
//! to the system (at most a few times per spike), so that the memory use comes back down
//! too.
//!
//! Pooled threads are scheduled as batch work (Linux `SCHED_BATCH`, same priority): a
//! connection thread that wakes (a line arrived, the hub queued a reply) waits for the
//! running thread's turn to end instead of taking the processor from it. The thread it
//! would have interrupted is most often the hub, which every connection waits for; with
//! two cores, a churn of short connections costs a sixth less server CPU per connection
//! this way (75.7 -> 62.6 µs), and a direct message 7 % less (issue: performance).

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long an idle pooled thread waits for work before it exits.
pub const IDLE_KEEP: Duration = Duration::from_secs(5);

/// How long a pooled thread keeps its last job's name before it is renamed `xscp-idle`:
/// one that gets its next job sooner (a churn of short connections) is renamed once per
/// job, not twice.
const IDLE_NAME_AFTER: Duration = Duration::from_millis(20);

/// A unit of work, and what its thread is called while running it: `<kind>-<id>`.
///
/// The work is a value of the pool's own type, moved through the pool's state: handing a
/// job over allocates nothing, so the thread that runs it has no box of the caller's to
/// free (such a chunk would stay in that thread's allocator cache, unused, for as long as
/// the thread lives: for a reader, as long as its client stays connected).
pub struct Job<W> {
    kind: &'static str,
    id: u64,
    work: W,
}

impl<W> Job<W> {
    /// A job named `<kind>-<id>` (`xscp-conn-7`).
    pub fn new(kind: &'static str, id: u64, work: W) -> Job<W> {
        Job { kind, id, work }
    }

    /// The work, for a caller that got the job back.
    pub fn into_work(self) -> W {
        self.work
    }
}

/// What a pool's threads run.
pub trait Work: Send + 'static {
    /// Runs the work on the calling thread.
    fn run(self);
}

/// How many threads the process may have: shared by the pools, so that the server refuses
/// a client instead of crashing when the system cannot map another thread.
#[derive(Debug)]
pub struct Budget {
    live: AtomicUsize,
    max: usize,
    /// The most threads live since the heap was last trimmed.
    peak: AtomicUsize,
}

/// Below this many threads at the peak, their exits alone do not trim the heap.
const TRIM_PEAK: usize = 32;

impl Budget {
    /// A budget of `max` threads.
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            live: AtomicUsize::new(0),
            max,
            peak: AtomicUsize::new(0),
        })
    }

    /// The budget this system allows. Each thread costs four memory mappings (its stack
    /// and guard page, its signal stack and guard page), and the kernel caps mappings per
    /// process (`vm.max_map_count`); past it a new thread aborts the process instead of
    /// failing to start. Also bounded by `kernel.threads-max`. Some mappings are kept for
    /// the heap and libraries.
    pub fn from_system() -> Arc<Budget> {
        let read = |path: &str| -> Option<usize> {
            std::fs::read_to_string(path).ok()?.trim().parse().ok()
        };
        let maps = read("/proc/sys/vm/max_map_count").unwrap_or(65530);
        let by_maps = maps.saturating_sub(RESERVED_MAPS) / MAPS_PER_THREAD;
        let by_threads = read("/proc/sys/kernel/threads-max").unwrap_or(usize::MAX);
        Budget::new(by_maps.min(by_threads).max(16))
    }

    /// Takes a place for a new thread.
    fn take(&self) -> bool {
        let live = self.live.fetch_add(1, Ordering::SeqCst);
        if live >= self.max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.peak.fetch_max(live + 1, Ordering::SeqCst);
        true
    }

    fn give_back(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }

    /// Gives a place back as its idle thread exits. Each time the thread count has halved
    /// since the last trim (from a peak of at least [`TRIM_PEAK`]), and when it reaches
    /// zero, the heap's free memory goes back to the system: the memory of the connections
    /// that left sits in the allocator's arenas otherwise. That is a handful of trims per
    /// spike, each while the server is quiet enough for its threads to idle out.
    fn exit_idle(&self) {
        let live = self.live.fetch_sub(1, Ordering::SeqCst) - 1;
        let peak = self.peak.load(Ordering::SeqCst);
        let due = peak > live && (live == 0 || (peak >= TRIM_PEAK && live <= peak / 2));
        if due
            && self
                .peak
                .compare_exchange(peak, live, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let released = crate::sys::trim_heap();
            log::debug!("{live} pooled threads left (peak {peak}): heap trimmed: {released}");
        }
    }

    /// The most threads allowed.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Memory mappings one thread costs.
const MAPS_PER_THREAD: usize = 4;

/// Memory mappings kept for everything but thread stacks.
const RESERVED_MAPS: usize = 2048;

/// A pool of threads with one stack size, running jobs of one type.
///
/// Its lock and condition variable are `std::sync`'s, not `parking_lot`'s: a thread that
/// parks on a `parking_lot` primitive gets a place in that crate's global table, which
/// grows with every thread that ever parked and never shrinks (some 400 bytes a thread
/// after a spike of 10,000 connections whose threads then idled here).
pub struct Pool<W> {
    stack: usize,
    budget: Arc<Budget>,
    idle: Mutex<Idle<W>>,
    /// A job was handed to the idle threads.
    handed: Condvar,
}

/// The pool's idle threads and the jobs handed to them.
struct Idle<W> {
    /// Idle threads no job is promised to.
    free: usize,
    /// Jobs handed over, each promised to one idle thread (so never more than there are).
    jobs: VecDeque<Job<W>>,
    /// The first job of each thread being started, under the number only that thread
    /// takes it by: no other thread can take it, and its caller gets it back if the
    /// thread cannot start.
    starting: Vec<(u64, Job<W>)>,
    /// The number of the next thread started.
    next_start: u64,
}

impl<W> Pool<W> {
    /// The idle threads' state. Nothing panics while holding it, so a poisoned lock
    /// still holds consistent counts.
    fn lock_idle(&self) -> MutexGuard<'_, Idle<W>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.lock_idle();
        f.debug_struct("Pool")
            .field("stack", &self.stack)
            .field("budget", &self.budget)
            .field("free", &idle.free)
            .field("jobs", &idle.jobs)
            .field("starting", &idle.starting)
            .finish()
    }
}

impl<W> std::fmt::Debug for Job<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.kind, self.id)
    }
}

impl<W: Work> Pool<W> {
    /// An empty pool whose threads get `stack` bytes of stack, within `budget`.
    pub fn new(stack: usize, budget: Arc<Budget>) -> Arc<Pool<W>> {
        Arc::new(Pool {
            stack,
            budget,
            idle: Mutex::new(Idle {
                free: 0,
                jobs: VecDeque::new(),
                starting: Vec::new(),
                next_start: 0,
            }),
            handed: Condvar::new(),
        })
    }

    /// Runs `job` on an idle thread, or on a new one. If no thread can be started, the job
    /// is handed back with the error, so the caller can still refuse the client properly.
    ///
    /// An idle thread sleeps on a condition variable and is woken once, without spinning
    /// or yielding on either side (a rendezvous channel's back-off cost a churn of short
    /// connections several `sched_yield`s each).
    pub fn run(self: &Arc<Self>, job: Job<W>) -> Result<(), (io::Error, Job<W>)> {
        let mut idle = self.lock_idle();
        if idle.free > 0 {
            idle.free -= 1;
            idle.jobs.push_back(job);
            drop(idle);
            self.handed.notify_one();
            return Ok(());
        }
        if !self.budget.take() {
            let e = io::Error::other(format!("thread budget of {} exhausted", self.budget.max()));
            return Err((e, job));
        }
        // Kept here for the thread about to start, so that it is not lost if the thread
        // cannot start; handing it over allocates nothing.
        let start = idle.next_start;
        idle.next_start += 1;
        idle.starting.push((start, job));
        drop(idle);
        let pool = Arc::clone(self);
        // Unnamed here: the job names its thread, and a name given to the builder would
        // be kept for the thread's whole life.
        let spawned = thread::Builder::new()
            .stack_size(self.stack)
            .spawn(move || {
                if let Err(e) = crate::sys::batch_scheduling() {
                    log::debug!("a pooled thread keeps the default scheduling: {e}");
                }
                if let Some(job) = pool.first_job(start) {
                    pool.work(job);
                }
                pool.budget.exit_idle();
            });
        let Err(e) = spawned else {
            return Ok(());
        };
        self.budget.give_back();
        match self.first_job(start) {
            Some(job) => Err((e, job)),
            // Unreachable: only the thread that did not start would have taken it.
            None => Ok(()),
        }
    }

    /// Takes the first job of the thread started as number `start` (see [`Pool::run`]).
    fn first_job(&self, start: u64) -> Option<Job<W>> {
        let mut idle = self.lock_idle();
        let at = idle.starting.iter().position(|(n, _)| *n == start)?;
        Some(idle.starting.swap_remove(at).1)
    }

    fn work(&self, mut job: Job<W>) {
        loop {
            crate::sys::set_thread_name(format_args!("{}-{}", job.kind, job.id));
            let (kind, id) = (job.kind, job.id);
            if catch_unwind(AssertUnwindSafe(move || job.work.run())).is_err() {
                log::error!("BUG: thread {kind}-{id} panicked; it returns to the pool");
            }
            match self.next_job() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits for a job as an idle thread; `None` after [`IDLE_KEEP`] without one. The
    /// thread is renamed `xscp-idle` once it has waited [`IDLE_NAME_AFTER`].
    fn next_job(&self) -> Option<Job<W>> {
        let now = Instant::now();
        let deadline = now + IDLE_KEEP;
        // Until the rename, then until the thread exits.
        let (mut until, mut named) = (now + IDLE_NAME_AFTER, false);
        let mut idle = self.lock_idle();
        idle.free += 1;
        loop {
            // A job handed over while this thread waited is promised to some idle thread;
            // whichever wakes first takes it.
            if let Some(job) = idle.jobs.pop_front() {
                return Some(job);
            }
            let wait = until.saturating_duration_since(Instant::now());
            let (guard, waited) = self
                .handed
                .wait_timeout(idle, wait)
                .unwrap_or_else(PoisonError::into_inner);
            idle = guard;
            let timed_out = waited.timed_out();
            if timed_out && !named {
                (until, named) = (deadline, true);
                drop(idle);
                crate::sys::set_thread_name(format_args!("xscp-idle"));
                idle = self.lock_idle();
                continue;
            }
            if timed_out && idle.jobs.is_empty() {
                // No job is promised to this thread: it leaves the idle count.
                idle.free -= 1;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crossbeam_channel::bounded;

    use super::*;

    /// A closure as a job, for the tests.
    struct Task(Box<dyn FnOnce() + Send>);

    impl Work for Task {
        fn run(self) {
            (self.0)()
        }
    }

    /// What a job sent, or a failure if none came within 20 s (no test hangs on a pool
    /// that lost a job).
    fn got<T>(rx: &crossbeam_channel::Receiver<T>) -> T {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a job never ran")
    }

    fn task(kind: &'static str, f: impl FnOnce() + Send + 'static) -> Job<Task> {
        Job::new(kind, 0, Task(Box::new(f)))
    }

    /// Waits (at most 20 s) until `n` of the pool's threads are idle with no job promised.
    fn wait_idle(pool: &Pool<Task>, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while pool.lock_idle().free < n {
            if Instant::now() > deadline {
                return false;
            }
            thread::yield_now();
        }
        true
    }

    #[test]
    fn a_finished_thread_takes_the_next_job() {
        let pool = Pool::new(64 * 1024, Budget::new(8));
        let (tx, rx) = bounded(2);
        let t1 = tx.clone();
        let job = task("a", move || {
            let _ = t1.send(thread::current().id());
        });
        assert!(pool.run(job).is_ok());
        let first = got(&rx);
        // Once the thread is idle, the next job goes to it rather than to a new thread.
        assert!(wait_idle(&pool, 1), "the thread never went idle");
        let job = task("b", move || {
            let _ = tx.send(thread::current().id());
        });
        assert!(pool.run(job).is_ok());
        assert_eq!(got(&rx), first);
        assert_eq!(pool.budget.live.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn jobs_handed_at_once_each_run_once_and_every_thread_comes_back_free() {
        let pool = Pool::new(64 * 1024, Budget::new(64));
        let (tx, rx) = bounded(64);
        // Some jobs start threads, some go to threads that just finished theirs; each
        // job runs exactly once.
        for round in 0..4 {
            for i in 0..16 {
                let tx = tx.clone();
                assert!(
                    pool.run(task("j", move || tx.send(round * 16 + i).unwrap()))
                        .is_ok()
                );
            }
        }
        let mut seen: Vec<u32> = (0..64).map(|_| got(&rx)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..64).collect::<Vec<u32>>());
        // Every thread started is idle and free again: none is left promised a job that
        // another took.
        let live = pool.budget.live.load(Ordering::SeqCst);
        assert!(wait_idle(&pool, live), "threads not all free again");
        let idle = pool.lock_idle();
        assert_eq!(
            (idle.free, idle.jobs.len(), idle.starting.len()),
            (live, 0, 0)
        );
    }

    #[test]
    fn pooled_threads_are_scheduled_as_batch_work() {
        let before = crate::sys::is_batch_scheduled();
        let pool = Pool::new(64 * 1024, Budget::new(1));
        let (tx, rx) = bounded(1);
        assert!(
            pool.run(task("s", move || tx
                .send(crate::sys::is_batch_scheduled())
                .unwrap()))
                .is_ok()
        );
        let expected = if cfg!(target_os = "linux") {
            Some(true)
        } else {
            None
        };
        assert_eq!(got(&rx), expected);
        // The calling thread is left as it was.
        assert_eq!(crate::sys::is_batch_scheduled(), before);
    }

    #[test]
    fn a_job_whose_thread_cannot_start_is_handed_back() {
        // A stack larger than the address space: the thread cannot be created.
        let pool = Pool::new(1 << 47, Budget::new(8));
        let (e, job) = pool
            .run(Job::new("big", 7, Task(Box::new(|| {}))))
            .expect_err("no thread can have that stack");
        assert_eq!((job.kind, job.id), ("big", 7), "{e}");
        // Nothing is left promised, and the thread's place is given back.
        let idle = pool.lock_idle();
        assert_eq!((idle.free, idle.jobs.len(), idle.starting.len()), (0, 0, 0));
        assert_eq!(pool.budget.live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn past_the_budget_the_job_is_handed_back() {
        let pool = Pool::new(64 * 1024, Budget::new(1));
        let (release_tx, release_rx) = bounded::<()>(0);
        let busy = task("busy", move || {
            let _ = release_rx.recv();
        });
        assert!(pool.run(busy).is_ok());
        // The one thread is busy: the next job cannot get a thread and comes back.
        let (e, _job) = pool.run(task("extra", || {})).expect_err("over budget");
        assert!(e.to_string().contains("budget"));
        drop(release_tx);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_pool() {
        let pool = Pool::new(64 * 1024, Budget::new(8));
        let (tx, rx) = bounded(1);
        assert!(pool.run(task("p", || panic!("test panic"))).is_ok());
        assert!(
            pool.run(task("q", move || {
                let _ = tx.send(42);
            }))
            .is_ok()
        );
        assert_eq!(got(&rx), 42);
    }
}
