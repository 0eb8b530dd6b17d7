//! Reusable threads. A connection's reader and writer run on pooled threads: a thread that
//! finishes its connection waits a while for the next one instead of exiting, so that a
//! churn of short connections does not pay for a thread creation each (issue: churn).
//!
//! Each job renames its thread (`xscp-conn-<id>`, `xscp-write-<id>`) so that `top -H` shows
//! who is who. A panic inside a job is contained: it is logged and the thread goes back to
//! the pool. Idle threads exit after [`IDLE_KEEP`], so the thread count returns to its
//! baseline by itself.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// How long an idle pooled thread waits for work before it exits.
pub const IDLE_KEEP: Duration = Duration::from_secs(5);

/// A unit of work and the name its thread takes while running it.
pub struct Job {
    name: String,
    work: Box<dyn FnOnce() + Send>,
}

impl Job {
    /// A job named `name`.
    pub fn new(name: String, work: impl FnOnce() + Send + 'static) -> Job {
        Job {
            name,
            work: Box::new(work),
        }
    }
}

/// A pool of threads with one stack size.
#[derive(Debug)]
pub struct Pool {
    stack: usize,
    /// Rendezvous channel: a send succeeds only if an idle thread is waiting.
    tx: Sender<Job>,
    rx: Receiver<Job>,
}

impl Pool {
    /// An empty pool whose threads get `stack` bytes of stack.
    pub fn new(stack: usize) -> Arc<Pool> {
        let (tx, rx) = bounded(0);
        Arc::new(Pool { stack, tx, rx })
    }

    /// Runs `job` on an idle thread, or on a new one. If no thread can be started, the job
    /// is handed back with the error, so the caller can still refuse the client properly.
    pub fn run(self: &Arc<Self>, job: Job) -> Result<(), (io::Error, Job)> {
        let job = match self.tx.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
        };
        // A one-slot channel carries the first job, so that it is not lost if spawn fails.
        let (first_tx, first_rx) = bounded(1);
        let keep = first_rx.clone();
        let name = job.name.clone();
        let _ = first_tx.send(job);
        let pool = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name(name)
            .stack_size(self.stack)
            .spawn(move || {
                if let Ok(job) = first_rx.recv() {
                    pool.work(job);
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => match keep.try_recv() {
                Ok(job) => Err((e, job)),
                Err(_) => Ok(()), // The thread did start and took it.
            },
        }
    }

    fn work(&self, mut job: Job) {
        loop {
            set_thread_name(&job.name);
            if catch_unwind(AssertUnwindSafe(job.work)).is_err() {
                log::error!("BUG: thread {} panicked; it returns to the pool", job.name);
            }
            set_thread_name("xscp-idle");
            match self.rx.recv_timeout(IDLE_KEEP) {
                Ok(next) => job = next,
                Err(_) => return,
            }
        }
    }
}

/// Renames the calling thread as the OS sees it (at most 15 bytes on Linux).
#[cfg(target_os = "linux")]
fn set_thread_name(name: &str) {
    use std::ffi::{CString, c_char, c_int};
    unsafe extern "C" {
        fn pthread_self() -> usize;
        fn pthread_setname_np(thread: usize, name: *const c_char) -> c_int;
    }
    let short: String = name.chars().take(15).collect();
    if let Ok(c) = CString::new(short) {
        // SAFETY: pthread_self() is always valid for the calling thread, and `c` is a
        // NUL-terminated string of at most 16 bytes, as pthread_setname_np requires; it
        // outlives the call.
        unsafe {
            pthread_setname_np(pthread_self(), c.as_ptr());
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_thread_name(_name: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_thread_takes_the_next_job() {
        let pool = Pool::new(64 * 1024);
        let (tx, rx) = bounded(2);
        let t1 = tx.clone();
        let job = Job::new("a".into(), move || {
            let _ = t1.send(thread::current().id());
        });
        assert!(pool.run(job).is_ok());
        let first = rx.recv().unwrap();
        // A send on the rendezvous channel completes only when an idle thread takes it.
        let job = Job::new("b".into(), move || {
            let _ = tx.send(thread::current().id());
        });
        assert!(pool.tx.send_timeout(job, Duration::from_secs(20)).is_ok());
        assert_eq!(rx.recv().unwrap(), first);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_pool() {
        let pool = Pool::new(64 * 1024);
        let (tx, rx) = bounded(1);
        assert!(
            pool.run(Job::new("p".into(), || panic!("test panic")))
                .is_ok()
        );
        assert!(
            pool.run(Job::new("q".into(), move || {
                let _ = tx.send(42);
            }))
            .is_ok()
        );
        assert_eq!(rx.recv().unwrap(), 42);
    }
}
