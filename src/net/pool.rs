//! Reusable threads. A connection's reader and writer run on pooled threads: a thread that
//! finishes its connection waits a while for the next one instead of exiting, so that a
//! churn of short connections does not pay for a thread creation each (issue: churn).
//!
//! Each job renames its thread (`xscp-conn-<id>`, `xscp-write-<id>`) so that `top -H` shows
//! who is who. A panic inside a job is contained: it is logged and the thread goes back to
//! the pool. Every [`IDLE_KEEP`] the pool counts how many of its threads stayed idle
//! throughout, and that many exit, so the thread count returns to what the load needs by
//! itself, within two periods (the count, not each thread's own idle time, decides: jobs
//! go round the idle threads, and a light load after a spike reaches each of them now and
//! then). As the count falls after a spike, the allocator's free memory is given back to
//! the system (at most a few times per spike), so that the memory use comes back down too.
//!
//! The pools share one [`Budget`] of threads, as many as the system lets the process
//! start: the kernel's caps (`kernel.pid_max` among them), the user's `RLIMIT_NPROC` and
//! the cgroups' `pids.max` ([`Budget::from_system`]), whichever is tightest. A pool that needs a thread when the
//! budget is spent takes the place of another pool's idle thread, which exits: idle
//! readers never make a writer fail to start, nor idle writers a client be refused. The
//! readers leave an eighth of the budget to the writers ([`readers_share`]): a connection
//! may need a writer besides its reader (while its socket does not take its output at
//! once), so running out of threads refuses the next client instead of cutting one that is served
//! for want of a writer. Half for each, as first built, refused the 10,000 idle clients of
//! a benchmark on a machine that then allowed 15,870 threads; writers are needed by the clients
//! that are behind, not by all of them.
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
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How often a pool counts the threads that stayed idle throughout; that many exit.
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
    /// What bounds it the most, for the log (`RLIMIT_NPROC 24`).
    source: String,
    /// The most threads live since the heap was last trimmed.
    peak: AtomicUsize,
    /// The pools sharing the budget, whose idle threads give their places up to a pool
    /// that needs one ([`Budget::take`]).
    pools: Mutex<Vec<Weak<dyn GiveUp>>>,
}

/// A pool whose idle thread can give its place in the budget up.
trait GiveUp: Send + Sync {
    /// Asks an idle thread no job is promised to, if there is one, to exit without giving
    /// its place back: the caller has it.
    fn give_up_idle(&self) -> bool;
}

/// Below this many threads at the peak, their exits alone do not trim the heap.
const TRIM_PEAK: usize = 32;

impl Budget {
    /// A budget of `max` threads.
    pub fn new(max: usize) -> Arc<Budget> {
        Budget::from(max, format!("{max} given"))
    }

    /// A budget of `max` threads, bounded by `source` (for the log).
    fn from(max: usize, source: String) -> Arc<Budget> {
        Arc::new(Budget {
            live: AtomicUsize::new(0),
            max,
            source,
            peak: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// The budget this system allows. Each thread costs memory mappings
    /// (`MAPS_PER_THREAD`), and the kernel caps mappings per process
    /// (`vm.max_map_count`); past it no thread starts and the heap cannot grow either (an
    /// allocation that fails aborts the process), so some are kept. Also bounded by the
    /// system's caps on tasks, `kernel.threads-max` and `kernel.pid_max` (of the process's
    /// pid namespace; less the 300 ids the kernel does not hand out again once it has gone
    /// round), less the tasks of every other process at start: every process of the
    /// machine shares them, and the bound by the mappings (31,741 threads by the default
    /// 65,530) leaves no more than 1,027 of the default `pid_max`, 32,768, to them. Also by
    /// the user's limit on processes (`RLIMIT_NPROC`, `ulimit -u`, less the tasks of the
    /// user's other processes at start) and by the task limit of the process's cgroups
    /// (`pids.max`, systemd's `TasksMax=`, less the tasks of the other processes in them:
    /// [`super::cgroup`]); every task bound less the threads the server runs besides its
    /// pools. Some mappings are kept for the heap and libraries. The tightest counts;
    /// [`Budget::source`] says which.
    pub fn from_system() -> Arc<Budget> {
        let read = |path: &str| -> Option<usize> {
            std::fs::read_to_string(path).ok()?.trim().parse().ok()
        };
        let maps = read("/proc/sys/vm/max_map_count").unwrap_or(65530);
        let by_maps = maps.saturating_sub(RESERVED_MAPS) / MAPS_PER_THREAD;
        let mut bounds = vec![(by_maps, format!("vm.max_map_count {maps}"))];
        // The other processes' tasks count against the system-wide caps and the user's
        // limit alike (only at start: tasks started later can still leave a writer without
        // a thread).
        let others = crate::sys::tasks_elsewhere().unwrap_or_default();
        for (cap, reserved) in [("threads-max", 0), ("pid_max", RESERVED_PIDS)] {
            if let Some(n) = read(&format!("/proc/sys/kernel/{cap}")) {
                let source = format!("kernel.{cap} {n} ({} tasks of other processes)", others.all);
                bounds.push((system_share(n, reserved, others.all), source));
            }
        }
        if let Some(n) = crate::sys::nproc_limit() {
            let n_tasks = usize::try_from(n).unwrap_or(usize::MAX);
            bounds.push((
                system_share(n_tasks, 0, others.user),
                format!(
                    "RLIMIT_NPROC {n} ({} tasks of the user's other processes)",
                    others.user
                ),
            ));
        }
        if let Some(limit) = super::cgroup::task_limit(crate::sys::own_threads()) {
            let pooled = limit.tasks.saturating_sub(UNPOOLED_THREADS);
            bounds.push((pooled, limit.source));
        }
        // (The bound by the mappings is always there.)
        let (max, source) = bounds
            .into_iter()
            .min_by_key(|(n, _)| *n)
            .unwrap_or_default();
        Budget::from(max.max(2), source)
    }

    /// Takes a place for a new thread: a free one, else the place of an idle thread of a
    /// pool sharing the budget, which exits (the thread count is one over for that
    /// moment). The caller holds no pool's lock; its own pool had no idle thread when it
    /// looked (one that went idle since may be the one that gives its place up).
    fn take(&self) -> bool {
        let live = self.live.fetch_add(1, Ordering::SeqCst);
        if live < self.max {
            self.peak.fetch_max(live + 1, Ordering::SeqCst);
            return true;
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools
            .iter()
            .filter_map(Weak::upgrade)
            .any(|pool| pool.give_up_idle())
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

    /// What bounds the budget the most: `vm.max_map_count 65530`, `kernel.threads-max
    /// 63434 (120 tasks of other processes)`, `kernel.pid_max 32768 (1200 tasks of other
    /// processes)`, `RLIMIT_NPROC 24 (0 tasks of the user's other processes)`, `pids.max 24
    /// of /sys/fs/cgroup/x (0 tasks of others)`.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The threads of a budget of `max` that the readers may take: all but an eighth (at least
/// one), which is kept for the writers of the connections that are behind.
pub fn readers_share(max: usize) -> usize {
    max - (max / 8).max(1).min(max)
}

/// Memory mappings one pooled thread costs: its stack and its guard page, on Linux, where
/// the C library starts it ([`crate::sys::spawn_detached`]); elsewhere `std::thread` also
/// maps an alternate signal stack and its guard page.
const MAPS_PER_THREAD: usize = if cfg!(target_os = "linux") { 2 } else { 4 };

/// The pooled threads a cap of `cap` tasks leaves room for: less `reserved` ids the kernel
/// never hands out again once it has gone round, the tasks of the others counted against
/// it and the threads the server runs besides its pools.
fn system_share(cap: usize, reserved: usize, others: usize) -> usize {
    cap.saturating_sub(reserved)
        .saturating_sub(others)
        .saturating_sub(UNPOOLED_THREADS)
}

/// The process ids below which the kernel does not look for a free one once it has gone
/// round `kernel.pid_max`: in the long run only the ids above are free.
const RESERVED_PIDS: usize = 300;

/// Memory mappings kept for everything but thread stacks.
const RESERVED_MAPS: usize = 2048;

/// Threads the server runs outside the pools (main, signal handler, hub, acceptor, fanout
/// helper, state saver), with a margin: the budgets by `RLIMIT_NPROC` and by the cgroups'
/// `pids.max` leave them room.
const UNPOOLED_THREADS: usize = 8;

/// A pool of threads with one stack size, running jobs of one type.
///
/// Its lock and condition variable are `std::sync`'s, not `parking_lot`'s: a thread that
/// parks on a `parking_lot` primitive gets a place in that crate's global table, which
/// grows with every thread that ever parked and never shrinks (some 400 bytes a thread
/// after a spike of 10,000 connections whose threads then idled here).
pub struct Pool<W> {
    stack: usize,
    budget: Arc<Budget>,
    /// The most threads this pool may have ([`Pool::limited`]).
    most: usize,
    /// Threads this pool has, each with its place in the budget: running, idle, or
    /// starting.
    own: AtomicUsize,
    /// How often idle threads are counted and the ones not needed exit ([`IDLE_KEEP`]).
    keep: Duration,
    idle: Mutex<Idle<W>>,
    /// A job was handed to the idle threads, or some of them are asked to exit.
    handed: Condvar,
}

/// The pool's idle threads and the jobs handed to them.
struct Idle<W> {
    /// Idle threads nothing is promised to.
    free: usize,
    /// Jobs handed over, each promised to one idle thread (so never more than there are).
    jobs: VecDeque<Job<W>>,
    /// Idle threads whose place in the budget went to another pool, which are to exit
    /// without giving it back (each promised like a job).
    given_up: usize,
    /// Idle threads that were not needed for [`Pool::keep`], which are to exit (asked, not
    /// promised: whichever idle thread wakes first with nothing promised to it goes).
    surplus: usize,
    /// The fewest free threads since `since`: that many were not needed meanwhile.
    fewest_free: usize,
    /// When the current count began.
    since: Instant,
    /// The first job of each thread being started, under the number only that thread
    /// takes it by: no other thread can take it, and its caller gets it back if the
    /// thread cannot start.
    starting: Vec<(u64, Job<W>)>,
    /// The number of the next thread started.
    next_start: u64,
}

impl<W> Idle<W> {
    /// A free thread is taken (for a job, or to give its place up).
    fn take_free(&mut self) {
        self.free -= 1;
        self.fewest_free = self.fewest_free.min(self.free);
        self.surplus = self.surplus.min(self.free);
    }

    /// Asks the threads that stayed free since [`Idle::since`] to exit, once `keep` has
    /// passed since then, and starts counting again; how many are asked.
    fn review(&mut self, now: Instant, keep: Duration) -> usize {
        if now.duration_since(self.since) < keep {
            return 0;
        }
        self.surplus = self.surplus.max(self.fewest_free).min(self.free);
        self.fewest_free = self.free;
        self.since = now;
        self.surplus
    }
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
            .field("given_up", &idle.given_up)
            .field("surplus", &idle.surplus)
            .field("starting", &idle.starting)
            .finish()
    }
}

impl<W> std::fmt::Debug for Job<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.kind, self.id)
    }
}

impl<W: Work> GiveUp for Pool<W> {
    fn give_up_idle(&self) -> bool {
        let mut idle = self.lock_idle();
        if idle.free == 0 {
            return false;
        }
        idle.take_free();
        idle.given_up += 1;
        // Its place is the caller's from now on.
        self.own.fetch_sub(1, Ordering::SeqCst);
        drop(idle);
        self.handed.notify_one();
        true
    }
}

impl<W: Work> Pool<W> {
    /// An empty pool whose threads get `stack` bytes of stack, within `budget`.
    pub fn new(stack: usize, budget: Arc<Budget>) -> Arc<Pool<W>> {
        let most = budget.max();
        Pool::with_keep(stack, budget, most, IDLE_KEEP)
    }

    /// An empty pool that takes at most `most` threads of `budget`: the readers take
    /// [`readers_share`], so that the writers of their connections find a place.
    pub fn limited(stack: usize, budget: Arc<Budget>, most: usize) -> Arc<Pool<W>> {
        Pool::with_keep(stack, budget, most, IDLE_KEEP)
    }

    /// A pool of at most `most` threads that counts its idle threads every `keep`
    /// ([`IDLE_KEEP`]).
    fn with_keep(stack: usize, budget: Arc<Budget>, most: usize, keep: Duration) -> Arc<Pool<W>> {
        let pool = Arc::new(Pool {
            stack,
            budget: Arc::clone(&budget),
            most,
            own: AtomicUsize::new(0),
            keep,
            idle: Mutex::new(Idle {
                free: 0,
                jobs: VecDeque::new(),
                given_up: 0,
                surplus: 0,
                fewest_free: 0,
                since: Instant::now(),
                starting: Vec::new(),
                next_start: 0,
            }),
            handed: Condvar::new(),
        });
        let shared: Arc<dyn GiveUp> = pool.clone();
        let mut pools = budget.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(&shared));
        drop(pools);
        pool
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
            idle.take_free();
            idle.jobs.push_back(job);
            drop(idle);
            self.handed.notify_one();
            return Ok(());
        }
        // No thread is free: all were needed.
        idle.fewest_free = 0;
        drop(idle);
        // This pool's share first.
        if self.own.fetch_add(1, Ordering::SeqCst) >= self.most {
            self.own.fetch_sub(1, Ordering::SeqCst);
            // (Only the readers' pool has a share smaller than the budget.)
            let kept = if self.most < self.budget.max() {
                ": the rest is kept for writers"
            } else {
                ""
            };
            let e = io::Error::other(format!(
                "the {} threads' share of the thread budget is spent ({} of {} threads{kept})",
                job.kind,
                self.most,
                self.budget.max()
            ));
            return Err((e, job));
        }
        // Without this pool's lock: the budget may take another pool's.
        if !self.budget.take() {
            self.own.fetch_sub(1, Ordering::SeqCst);
            let e = io::Error::other(format!("thread budget of {} exhausted", self.budget.max()));
            return Err((e, job));
        }
        // Kept here for the thread about to start, so that it is not lost if the thread
        // cannot start; handing it over allocates nothing.
        let mut idle = self.lock_idle();
        let start = idle.next_start;
        idle.next_start += 1;
        idle.starting.push((start, job));
        drop(idle);
        let pool = Arc::clone(self);
        // Each job names the thread as it starts (`Pool::work`).
        let spawned = crate::sys::spawn_detached(self.stack, move || {
            if let Err(e) = crate::sys::batch_scheduling() {
                log::debug!("a pooled thread keeps the default scheduling: {e}");
            }
            let exit = match pool.first_job(start) {
                Some(job) => pool.work(job),
                None => Exit::Idle,
            };
            match exit {
                Exit::Idle => {
                    pool.own.fetch_sub(1, Ordering::SeqCst);
                    pool.budget.exit_idle();
                }
                // Its place is another pool's thread's now (and no longer this pool's
                // since it was given up).
                Exit::GivenUp => {}
            }
        });
        let Err(e) = spawned else {
            return Ok(());
        };
        self.own.fetch_sub(1, Ordering::SeqCst);
        self.budget.give_back();
        match self.first_job(start) {
            Some(job) => Err((e, job)),
            // Only the thread that did not start would have taken it.
            None => {
                debug_assert!(
                    false,
                    "the first job of a thread that did not start is gone"
                );
                Ok(())
            }
        }
    }

    /// Takes the first job of the thread started as number `start` (see [`Pool::run`]).
    fn first_job(&self, start: u64) -> Option<Job<W>> {
        let mut idle = self.lock_idle();
        let at = idle.starting.iter().position(|(n, _)| *n == start)?;
        Some(idle.starting.swap_remove(at).1)
    }

    /// Runs `job`, then the jobs handed to the thread while it idles between them, until
    /// it is to exit; says how.
    fn work(&self, mut job: Job<W>) -> Exit {
        loop {
            crate::sys::set_thread_name(format_args!("{}-{}", job.kind, job.id));
            let (kind, id) = (job.kind, job.id);
            if catch_unwind(AssertUnwindSafe(move || job.work.run())).is_err() {
                log::error!("BUG: thread {kind}-{id} panicked; it returns to the pool");
            }
            match self.next_job() {
                Ok(next) => job = next,
                Err(exit) => return exit,
            }
        }
    }

    /// Waits for a job as an idle thread; `Err` when the thread is to exit: when a review
    /// finds it was not needed ([`Idle::surplus`]), or when its place went to another
    /// pool. The thread is renamed `xscp-idle` once it has waited [`IDLE_NAME_AFTER`].
    fn next_job(&self) -> Result<Job<W>, Exit> {
        let mut rename_at = Some(Instant::now() + IDLE_NAME_AFTER);
        let mut idle = self.lock_idle();
        idle.free += 1;
        loop {
            // Each `keep`, whichever idle thread comes first asks the threads that stayed
            // free all along to exit; it looks itself, and wakes the others asked.
            for _ in 1..idle.review(Instant::now(), self.keep) {
                self.handed.notify_one();
            }
            // What was promised while this thread waited is promised to some idle thread;
            // whichever wakes first takes it.
            if let Some(job) = idle.jobs.pop_front() {
                return Ok(job);
            }
            if idle.given_up > 0 {
                idle.given_up -= 1;
                return Err(Exit::GivenUp);
            }
            if idle.surplus > 0 {
                idle.surplus -= 1;
                idle.take_free();
                return Err(Exit::Idle);
            }
            // Until the rename, then until the next count.
            let until = rename_at.unwrap_or(idle.since + self.keep);
            let wait = until.saturating_duration_since(Instant::now());
            let (guard, waited) = self
                .handed
                .wait_timeout(idle, wait)
                .unwrap_or_else(PoisonError::into_inner);
            idle = guard;
            if waited.timed_out() && rename_at.take().is_some() {
                drop(idle);
                crate::sys::set_thread_name(format_args!("xscp-idle"));
                idle = self.lock_idle();
            }
        }
    }
}

/// Why a pooled thread exits.
enum Exit {
    /// It was idle and is not needed: its place in the budget is given back.
    Idle,
    /// Its place in the budget went to another pool's new thread.
    GivenUp,
}

#[cfg(test)]
mod tests {
    use std::thread;

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

    /// A keep long enough that no test sees an idle thread exit.
    const LONG: Duration = Duration::from_secs(3600);

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
        let pool = Pool::with_keep(64 * 1024, Budget::new(8), 8, LONG);
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
        let pool = Pool::with_keep(64 * 1024, Budget::new(64), 64, LONG);
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
        // Every thread is idle, so every job has run: none ran twice.
        assert!(rx.try_recv().is_err(), "a job ran twice");
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
    fn a_thread_whose_job_panicked_returns_to_the_pool() {
        let pool = Pool::with_keep(64 * 1024, Budget::new(8), 8, LONG);
        assert!(pool.run(task("p", || panic!("test panic"))).is_ok());
        // The thread comes back free and keeps its place: a thread that died would leave
        // the place taken and never come back.
        assert!(
            wait_idle(&pool, 1),
            "the thread that panicked never came back"
        );
        assert_eq!(pool.budget.live.load(Ordering::SeqCst), 1);
        let (tx, rx) = bounded(1);
        assert!(
            pool.run(task("q", move || {
                let _ = tx.send(42);
            }))
            .is_ok()
        );
        assert_eq!(got(&rx), 42);
        assert_eq!(pool.budget.live.load(Ordering::SeqCst), 1);
    }

    /// Starts `n` threads in `pool` with jobs that all run at once, and waits until they
    /// are idle again.
    fn spike(pool: &Arc<Pool<Task>>, n: usize) {
        let (release_tx, release_rx) = bounded::<()>(0);
        let (started_tx, started_rx) = bounded(n);
        for _ in 0..n {
            let (release, started) = (release_rx.clone(), started_tx.clone());
            let job = task("spike", move || {
                started.send(()).unwrap();
                let _ = release.recv();
            });
            assert!(pool.run(job).is_ok());
        }
        for _ in 0..n {
            got(&started_rx);
        }
        drop(release_tx);
        assert!(wait_idle(pool, n), "the spike's threads never went idle");
    }

    #[test]
    fn after_a_spike_a_light_load_lets_the_threads_it_does_not_need_go() {
        // Jobs go round the idle threads, so one at a time would reach each of them more
        // often than `keep`, which alone would keep them all.
        let pool = Pool::with_keep(64 * 1024, Budget::new(64), 64, Duration::from_millis(200));
        spike(&pool, 16);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (tx, rx) = bounded(1);
        while pool.budget.live.load(Ordering::SeqCst) > 2 {
            assert!(Instant::now() < deadline, "the spike's threads all stay");
            let tx = tx.clone();
            assert!(
                pool.run(task("trickle", move || tx.send(()).unwrap()))
                    .is_ok()
            );
            got(&rx);
        }
    }

    /// The readers leave an eighth of the budget to the writers, at least one thread: with
    /// 15,870 threads (what std's threads allowed on a machine whose `vm.max_map_count` is
    /// 65,530), 10,000 idle clients fit.
    #[test]
    fn the_readers_leave_an_eighth_to_the_writers() {
        assert_eq!(readers_share(15_870), 13_887);
        assert_eq!(readers_share(16), 14);
        assert_eq!(readers_share(7), 6);
        assert_eq!(readers_share(2), 1);
    }

    #[test]
    fn a_limited_pool_takes_no_more_than_its_share_and_leaves_the_rest() {
        let budget = Budget::new(4);
        let readers = Pool::with_keep(64 * 1024, Arc::clone(&budget), 2, LONG);
        let writers = Pool::with_keep(64 * 1024, Arc::clone(&budget), 4, LONG);
        let (release_tx, release_rx) = bounded::<()>(0);
        let busy = |kind| {
            let release = release_rx.clone();
            task(kind, move || {
                let _ = release.recv();
            })
        };
        assert!(readers.run(busy("r")).is_ok());
        assert!(readers.run(busy("r")).is_ok());
        // The readers' share is spent, not the budget: the next reader is refused...
        let (e, _job) = readers.run(busy("r")).expect_err("over the share");
        assert!(e.to_string().contains("share of the thread budget"), "{e}");
        // ...and the writers have the rest.
        assert!(writers.run(busy("w")).is_ok());
        assert!(writers.run(busy("w")).is_ok());
        assert_eq!(budget.live.load(Ordering::SeqCst), 4);
        drop(release_tx);
    }

    #[test]
    fn idle_threads_of_one_pool_give_their_places_to_another() {
        let budget = Budget::new(2);
        let readers = Pool::with_keep(64 * 1024, Arc::clone(&budget), 2, LONG);
        let writers = Pool::with_keep(64 * 1024, Arc::clone(&budget), 2, LONG);
        spike(&readers, 2);
        // The budget is spent on idle readers: one gives its place to the writer.
        let (tx, rx) = bounded(1);
        assert!(writers.run(task("w", move || tx.send(7).unwrap())).is_ok());
        assert_eq!(got(&rx), 7);
        let deadline = Instant::now() + Duration::from_secs(20);
        while readers.lock_idle().given_up > 0 {
            assert!(
                Instant::now() < deadline,
                "the reader never gave its place up"
            );
            thread::yield_now();
        }
        // One thread left each pool's share: two in all, as the budget says.
        assert_eq!(readers.lock_idle().free, 1);
        assert!(wait_idle(&writers, 1));
        assert_eq!(budget.live.load(Ordering::SeqCst), 2);
        // Both busy: no idle thread anywhere, the next job is refused.
        let (release_tx, release_rx) = bounded::<()>(0);
        let (r1, r2) = (release_rx.clone(), release_rx);
        assert!(
            readers
                .run(task("r", move || {
                    let _ = r1.recv();
                }))
                .is_ok()
        );
        assert!(
            writers
                .run(task("w", move || {
                    let _ = r2.recv();
                }))
                .is_ok()
        );
        assert!(readers.run(task("extra", || {})).is_err());
        drop(release_tx);
    }
}
