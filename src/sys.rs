//! The few C library calls std does not offer, declared here once for the whole project
//! (the server, the client's checker and the bench) with their safety arguments: the
//! listen backlog, waking a blocked `accept` or read, waiting for a client, one
//! non-blocking write on a blocking socket, giving freed heap memory back to the system,
//! connecting from a chosen address, a reset instead of a close, SIGTERM, the descriptor
//! limit, and starting a thread without what std keeps for each of its own. std links the C library anyway; the runtime dependencies are fixed,
//! so there is no `libc` crate.
//!
//! Declarations differ between systems (signal numbers, `nfds_t`, socket option numbers,
//! struct layouts): each group is declared only for the systems whose values are written
//! here, and has a fallback elsewhere that builds and reports that it cannot (or does
//! nothing where nothing is the safe answer).

use std::io;
use std::net::TcpListener;

/// The backlog used when the system's maximum cannot be read.
const DEFAULT_BACKLOG: i32 = 4096;

/// The largest listen backlog the system allows (`net.core.somaxconn`), or 4096.
pub fn max_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &i32| n > 0)
        .unwrap_or(DEFAULT_BACKLOG)
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod imp {
    use std::ffi::{c_int, c_short};
    use std::io;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::Duration;

    #[repr(C)]
    struct PollFd {
        fd: c_int,
        events: c_short,
        revents: c_short,
    }

    unsafe extern "C" {
        fn listen(fd: c_int, backlog: c_int) -> c_int;
        fn shutdown(fd: c_int, how: c_int) -> c_int;
        fn poll(fds: *mut PollFd, nfds: Nfds, timeout: c_int) -> c_int;
    }

    /// `nfds_t`: `unsigned long` on Linux, `unsigned int` on macOS and the BSDs.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    type Nfds = std::ffi::c_ulong;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    type Nfds = std::ffi::c_uint;

    /// `SHUT_RD`, `POLLIN` and `POLLOUT`: the same on Linux and the BSDs.
    const SHUT_RD: c_int = 0;
    const POLLIN: c_short = 1;
    const POLLOUT: c_short = 4;

    fn check(ret: c_int) -> io::Result<()> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn set_backlog(listener: &TcpListener, backlog: i32) -> io::Result<()> {
        // SAFETY: the descriptor belongs to `listener`, which is borrowed for the call, so
        // it is open and is the listening socket; listen() takes no pointers.
        check(unsafe { listen(listener.as_raw_fd(), backlog) })
    }

    pub fn shutdown_read(listener: &TcpListener) -> io::Result<()> {
        // SAFETY: as above, a descriptor `listener` owns and keeps open across the call;
        // shutdown() takes no pointers.
        check(unsafe { shutdown(listener.as_raw_fd(), SHUT_RD) })
    }

    /// Waits for `events` on `fd`, which the caller keeps open across the call, for at
    /// most `timeout` milliseconds (-1: no limit).
    fn poll_one(fd: RawFd, events: c_short, timeout: c_int) {
        let mut pfd = PollFd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, initialised pollfd that lives across the call,
        // matching nfds = 1; the caller keeps the descriptor open across the call.
        unsafe {
            poll(&mut pfd, 1, timeout);
        }
    }

    pub fn wait_readable(listener: &TcpListener) {
        poll_one(listener.as_raw_fd(), POLLIN, -1);
    }

    pub fn wait_writable(stream: &TcpStream, timeout: Duration) {
        let ms = c_int::try_from(timeout.as_millis())
            .unwrap_or(c_int::MAX)
            .max(1);
        poll_one(stream.as_raw_fd(), POLLOUT, ms);
    }

    // Waking a thread blocked in a read: a signal with a handler that does nothing.
    unsafe extern "C" {
        fn signal(sig: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn siginterrupt(sig: c_int, flag: c_int) -> c_int;
        fn pthread_self() -> usize;
        fn pthread_kill(thread: usize, sig: c_int) -> c_int;
    }

    /// `SIGUSR1`: 10 on Linux, but 16 on its MIPS ports and 30 on SPARC, macOS and the
    /// BSDs (where 10 is SIGBUS).
    #[cfg(all(
        any(target_os = "linux", target_os = "android"),
        not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))
    ))]
    const SIGUSR1: c_int = 10;
    #[cfg(all(
        any(target_os = "linux", target_os = "android"),
        any(target_arch = "mips", target_arch = "mips64")
    ))]
    const SIGUSR1: c_int = 16;
    #[cfg(any(
        target_arch = "sparc64",
        not(any(target_os = "linux", target_os = "android"))
    ))]
    const SIGUSR1: c_int = 30;

    extern "C" fn nothing(_sig: c_int) {}

    pub fn install() {
        // SAFETY: `nothing` is an async-signal-safe handler that does nothing and lives
        // for the whole program; siginterrupt only clears SA_RESTART for the signal, so
        // that a blocking read it interrupts returns EINTR.
        unsafe {
            signal(SIGUSR1, nothing);
            siginterrupt(SIGUSR1, 1);
        }
    }

    pub fn this_thread() -> u64 {
        // SAFETY: pthread_self takes nothing and always succeeds.
        unsafe { pthread_self() as u64 }
    }

    pub fn wake(thread: u64) {
        // SAFETY: callers pass an id from `this_thread` of a thread that is still running
        // (they hold the lock under which that thread clears its id before it moves on),
        // and the signal has the do-nothing handler installed by `install` first.
        unsafe {
            pthread_kill(thread as usize, SIGUSR1);
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
mod imp {
    use std::io;
    use std::net::TcpListener;

    pub fn set_backlog(_listener: &TcpListener, _backlog: i32) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn shutdown_read(_listener: &TcpListener) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn wait_readable(_listener: &TcpListener) {}

    pub fn wait_writable(_stream: &std::net::TcpStream, _timeout: std::time::Duration) {}

    pub fn install() {}
    pub fn this_thread() -> u64 {
        0
    }
    pub fn wake(_thread: u64) {}
}

/// Sets the backlog of an already listening socket (calling `listen` again does that on
/// Linux): std always listens with 128.
pub fn set_backlog(listener: &TcpListener, backlog: i32) -> io::Result<()> {
    imp::set_backlog(listener, backlog)
}

/// Shuts the receiving side of a listening socket: on Linux this stops it listening and
/// wakes a thread blocked in `accept` or `poll` on it, without needing a descriptor.
pub fn shutdown_read(listener: &TcpListener) -> io::Result<()> {
    imp::shutdown_read(listener)
}

/// Blocks until a connection is waiting on `listener`, or the listener is shut down.
pub fn wait_readable(listener: &TcpListener) {
    imp::wait_readable(listener)
}

#[cfg(target_os = "linux")]
mod nb {
    use std::ffi::{c_int, c_void};
    use std::io;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    unsafe extern "C" {
        fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
        fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
    }

    /// Linux's `IPPROTO_TCP` and `TCP_NODELAY`.
    const IPPROTO_TCP: c_int = 6;
    const TCP_NODELAY: c_int = 1;

    /// Sets socket option `name` of `level` on `fd`, which the caller keeps open across
    /// the call, to `value`: a C type of the layout the option takes (`int`, `struct linger`).
    pub(super) fn set_option<T>(fd: c_int, level: c_int, name: c_int, value: &T) -> io::Result<()> {
        // SAFETY: the caller keeps `fd` open; `value` points to an initialised `T` that
        // lives across the call, and `len` is its exact size (`socklen_t` is 32 bits on
        // Linux). The function only reads from `value`.
        let ret = unsafe {
            setsockopt(
                fd,
                level,
                name,
                std::ptr::from_ref(value).cast(),
                std::mem::size_of::<T>() as u32,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn nodelay_inherited(listener: &TcpListener) -> io::Result<()> {
        set_option(
            listener.as_raw_fd(),
            IPPROTO_TCP,
            TCP_NODELAY,
            &(1 as c_int),
        )
    }

    /// Linux's `MSG_DONTWAIT`, `MSG_NOSIGNAL` and `MSG_MORE`.
    const MSG_DONTWAIT: c_int = 0x40;
    const MSG_NOSIGNAL: c_int = 0x4000;
    const MSG_MORE: c_int = 0x8000;

    pub fn send_now(stream: &TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
        // SAFETY: the descriptor belongs to `stream`, borrowed for the call, so it stays
        // open; `buf` is a valid, initialised slice of `buf.len()` bytes that outlives the
        // call, and send() only reads from it. The flags make this one call non-blocking
        // without changing the socket's mode, which its reader shares.
        let more = if more { MSG_MORE } else { 0 };
        let n = unsafe {
            send(
                stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                MSG_DONTWAIT | MSG_NOSIGNAL | more,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
mod nb {
    use std::io;
    use std::net::{TcpListener, TcpStream};

    pub fn nodelay_inherited(_listener: &TcpListener) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn send_now(_stream: &TcpStream, _buf: &[u8], _more: bool) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Blocks until `stream` takes more bytes, or `timeout` passes (at once where `poll` is not
/// declared here).
pub fn wait_writable(stream: &std::net::TcpStream, timeout: std::time::Duration) {
    imp::wait_writable(stream, timeout)
}

/// Sets `TCP_NODELAY` on a listening socket, where the sockets it accepts inherit it
/// (Linux): then no accepted socket needs a system call of its own for it. `Unsupported`
/// elsewhere.
pub fn nodelay_inherited(listener: &TcpListener) -> io::Result<()> {
    nb::nodelay_inherited(listener)
}

/// Writes what `stream`'s send buffer takes of `buf` now, without blocking and without
/// changing the socket's blocking mode (its reader blocks on it): `WouldBlock` when it takes
/// nothing. `more`: the FIN follows at once (`MSG_MORE`: the bytes wait for it, and leave
/// with it in one segment). `Unsupported` where the call is not available.
pub fn send_now(stream: &std::net::TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
    nb::send_now(stream, buf, more)
}

#[cfg(target_os = "linux")]
mod name {
    use std::ffi::{c_char, c_int};
    use std::fmt::{self, Write};

    unsafe extern "C" {
        fn pthread_setname_np(thread: usize, name: *const c_char) -> c_int;
    }

    /// A thread name as Linux keeps it: at most 15 bytes (whole characters) and a NUL,
    /// built on the stack.
    struct Short {
        bytes: [u8; 16],
        len: usize,
    }

    impl Write for Short {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                let mut utf8 = [0; 4];
                let c = c.encode_utf8(&mut utf8).as_bytes();
                let end = self.len + c.len();
                if end > 15 {
                    break;
                }
                self.bytes[self.len..end].copy_from_slice(c);
                self.len = end;
            }
            Ok(())
        }
    }

    /// `name`, cut to whole characters within 15 bytes, NUL-terminated.
    pub(super) fn short(name: fmt::Arguments<'_>) -> [u8; 16] {
        let mut short = Short {
            bytes: [0; 16],
            len: 0,
        };
        let _ = short.write_fmt(name);
        short.bytes
    }

    pub fn set(name: fmt::Arguments<'_>) {
        let bytes = short(name);
        // SAFETY: the thread is the calling one, and `bytes` is a NUL-terminated string of
        // at most 16 bytes (its last byte is never written), as pthread_setname_np
        // requires; it outlives the call.
        unsafe {
            pthread_setname_np(super::imp::this_thread() as usize, bytes.as_ptr().cast());
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_name_is_cut_to_whole_characters_within_15_bytes() {
            let got = super::short(format_args!("xscp-conn-{}", 1234567890));
            assert_eq!(&got, b"xscp-conn-12345\0");
            // 'é' is two bytes: at bytes 14-15 it would not fit and is left out.
            let got = super::short(format_args!("xscp-conn-1234é"));
            assert_eq!(&got[..15], b"xscp-conn-1234\0");
            assert_eq!(&super::short(format_args!("a"))[..2], b"a\0");
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod name {
    pub fn set(_name: std::fmt::Arguments<'_>) {}
}

/// Renames the calling thread as the OS sees it (Linux: its first 15 bytes; elsewhere
/// nothing), without allocating.
pub fn set_thread_name(name: std::fmt::Arguments<'_>) {
    name::set(name)
}

/// Installs the do-nothing handler of the signal that [`wake_thread`] sends, so that it
/// interrupts a blocking read instead of ending the process. Call before any wake.
pub fn install_wake() {
    imp::install()
}

/// The calling thread, for [`wake_thread`].
pub fn this_thread() -> u64 {
    imp::this_thread()
}

/// Interrupts a blocking read of `thread` (it returns `Interrupted`), which must still be
/// running and must not exit meanwhile; [`install_wake`] must have run.
pub fn wake_thread(thread: u64) {
    imp::wake(thread)
}

#[cfg(target_os = "linux")]
mod sched {
    use std::ffi::c_int;
    use std::io;

    unsafe extern "C" {
        fn sched_setscheduler(pid: c_int, policy: c_int, param: *const SchedParam) -> c_int;
        #[cfg(test)]
        fn sched_getscheduler(pid: c_int) -> c_int;
    }

    /// `struct sched_param`.
    #[repr(C)]
    struct SchedParam {
        sched_priority: c_int,
    }

    /// Linux's `SCHED_BATCH`.
    const BATCH: c_int = 3;

    pub fn batch() -> io::Result<()> {
        let param = SchedParam { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives
        // the call. Any thread may move itself from SCHED_OTHER to SCHED_BATCH.
        if unsafe { sched_setscheduler(0, BATCH, &param) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(test)]
    pub fn is_batch() -> Option<bool> {
        // SAFETY: pid 0 is the calling thread; the call only reads its policy.
        let p = unsafe { sched_getscheduler(0) };
        (p >= 0).then_some(p == BATCH)
    }
}

#[cfg(not(target_os = "linux"))]
mod sched {
    pub fn batch() -> std::io::Result<()> {
        Ok(())
    }

    #[cfg(test)]
    pub fn is_batch() -> Option<bool> {
        None
    }
}

/// Schedules the calling thread as batch work (Linux `SCHED_BATCH`; elsewhere nothing):
/// when it wakes it waits for the running thread's turn to end instead of taking the
/// processor from it at once. Same priority, same share of the processor.
pub fn batch_scheduling() -> io::Result<()> {
    sched::batch()
}

/// Whether the calling thread is scheduled as batch work (`None` where unknown); for the
/// tests.
#[cfg(test)]
pub fn is_batch_scheduled() -> Option<bool> {
    sched::is_batch()
}

#[cfg(target_os = "linux")]
mod spawn {
    use std::ffi::{c_int, c_ulong, c_void};
    use std::io;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// `pthread_attr_t`: 56 bytes on x86_64, 64 on aarch64 (glibc and musl); this is room
    /// for either, aligned like the C type. Only the C library reads or writes it.
    #[repr(C, align(8))]
    struct Attr([u8; 128]);

    /// `PTHREAD_CREATE_DETACHED` on Linux (glibc, musl, bionic).
    const PTHREAD_CREATE_DETACHED: c_int = 1;

    /// `_SC_THREAD_STACK_MIN` on Linux (glibc, musl).
    const SC_THREAD_STACK_MIN: c_int = 75;

    /// `RTLD_DEFAULT` on Linux (glibc, musl): every object loaded, in load order.
    const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

    /// glibc's `__pthread_get_minstack`: the least stack a thread made with an attribute
    /// object can have (a page, the static TLS, `PTHREAD_STACK_MIN`).
    type MinStack = unsafe extern "C" fn(attr: *const Attr) -> usize;

    unsafe extern "C" {
        fn sysconf(name: c_int) -> std::ffi::c_long;
        fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
        fn pthread_attr_init(attr: *mut Attr) -> c_int;
        fn pthread_attr_destroy(attr: *mut Attr) -> c_int;
        fn pthread_attr_setstacksize(attr: *mut Attr, size: usize) -> c_int;
        fn pthread_attr_setdetachstate(attr: *mut Attr, state: c_int) -> c_int;
        fn pthread_create(
            thread: *mut c_ulong,
            attr: *const Attr,
            start: extern "C" fn(*mut c_void) -> *mut c_void,
            arg: *mut c_void,
        ) -> c_int;
    }

    /// The new thread's start: takes back the closure [`detached`] boxed and runs it. A
    /// panic must not unwind into the C library: it ends here, logged.
    extern "C" fn start<F: FnOnce() + Send + 'static>(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `arg` is the `Box<F>` that `detached` leaked for this thread alone,
        // with this very `F`; it is taken back once.
        let f = unsafe { Box::from_raw(arg.cast::<F>()) };
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            log::error!("BUG: a thread panicked outside its job");
        }
        std::ptr::null_mut()
    }

    /// An OS error from a pthread function's return value (they do not set `errno`).
    fn check(ret: c_int) -> io::Result<()> {
        match ret {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// The least stack the C library takes for a thread made with `attr`, as `std::thread`
    /// asks it: glibc's `__pthread_get_minstack` (a page, the static TLS that it places on
    /// the stack, `PTHREAD_STACK_MIN`), else `PTHREAD_STACK_MIN` (musl adds the TLS itself).
    /// `PTHREAD_STACK_MIN` is 16 KiB on x86_64 but 128 KiB on aarch64 (glibc): less is
    /// refused (EINVAL), and so is a stack that the static TLS leaves no room in.
    fn min_stack(attr: &Attr) -> usize {
        // Looked up once: a thread starts for each connection that finds no idle one.
        static GET: std::sync::OnceLock<Option<MinStack>> = std::sync::OnceLock::new();
        // SAFETY: dlsym takes a NUL-terminated name and returns null or the symbol's
        // address; glibc's `__pthread_get_minstack` is a function of this exact type (it
        // only reads the initialised attribute object it is given). A private symbol:
        // looked up, as std does, so that a C library without it builds and links.
        let get = *GET.get_or_init(|| unsafe {
            let sym = dlsym(RTLD_DEFAULT, c"__pthread_get_minstack".as_ptr());
            (!sym.is_null()).then(|| std::mem::transmute::<*mut c_void, MinStack>(sym))
        });
        if let Some(get) = get {
            // SAFETY: see above; `attr` is initialised and outlives the call.
            return unsafe { get(attr) };
        }
        // SAFETY: sysconf takes an integer and only reads the system's settings.
        let min = unsafe { sysconf(SC_THREAD_STACK_MIN) };
        usize::try_from(min).unwrap_or(0)
    }

    pub fn detached<F: FnOnce() + Send + 'static>(stack: usize, f: F) -> io::Result<()> {
        let mut attr = Attr([0; 128]);
        // SAFETY: `attr` is writable, aligned room larger than any Linux pthread_attr_t;
        // it is initialised before use and destroyed after, whatever happens between.
        check(unsafe { pthread_attr_init(&mut attr) })?;
        let started = (|| {
            let stack = stack.max(min_stack(&attr));
            // SAFETY: an initialised attribute object; the size is a plain integer.
            check(unsafe { pthread_attr_setstacksize(&mut attr, stack) })?;
            // SAFETY: the same initialised attribute object; the state is a plain integer.
            check(unsafe { pthread_attr_setdetachstate(&mut attr, PTHREAD_CREATE_DETACHED) })?;
            let arg = Box::into_raw(Box::new(f));
            let mut thread: c_ulong = 0;
            // SAFETY: `thread` and `attr` are valid for the call; `start::<F>` takes `arg`
            // back as the `Box<F>` it is. The thread is detached: nothing joins it.
            let ret = unsafe { pthread_create(&mut thread, &attr, start::<F>, arg.cast()) };
            if ret != 0 {
                // SAFETY: no thread started, so the box is still this function's alone.
                drop(unsafe { Box::from_raw(arg) });
            }
            check(ret)
        })();
        // SAFETY: initialised above and no longer used by pthread_create.
        unsafe { pthread_attr_destroy(&mut attr) };
        started
    }
}

#[cfg(not(target_os = "linux"))]
mod spawn {
    pub fn detached<F: FnOnce() + Send + 'static>(stack: usize, f: F) -> std::io::Result<()> {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(f)
            .map(drop)
    }
}

/// Starts a thread that runs `f` with `stack` bytes of stack (the C library's thread
/// block and static TLS included), or the least the C library takes if that is more (as
/// `std::thread` does: `PTHREAD_STACK_MIN`, which is 128 KiB on aarch64, and room for the
/// static TLS of every library loaded, preloaded ones included), and ends with it; nothing
/// joins it.
///
/// On Linux it is started by the C library directly, not by `std::thread`: std keeps for
/// each of its threads a handle, a result packet, a record of its guard page and an
/// alternate signal stack, some 400 bytes of heap and two memory mappings that a pooled
/// connection thread never uses (it is never joined, named by [`set_thread_name`], and
/// its stack overflowing ends the process either way: std's handler aborts with a
/// message, without it the guard page's fault kills the process). A thread cannot
/// start when the system lacks memory, mappings or tasks: the error says which, and the
/// process goes on (std's spawn aborts the process when the signal stack cannot be mapped).
pub fn spawn_detached<F: FnOnce() + Send + 'static>(stack: usize, f: F) -> io::Result<()> {
    spawn::detached(stack, f)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod heap {
    use std::ffi::c_int;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    /// glibc's `M_ARENA_MAX`.
    const M_ARENA_MAX: c_int = -8;

    pub fn cap_arenas(n: i32) -> bool {
        // SAFETY: mallopt takes two integers and only changes allocator settings; glibc
        // serialises it with the allocator's own locks.
        unsafe { mallopt(M_ARENA_MAX, n) == 1 }
    }

    pub fn trim() -> bool {
        // SAFETY: malloc_trim takes an integer and returns free heap pages to the system
        // under the allocator's locks; it frees no memory that is in use.
        unsafe { malloc_trim(0) == 1 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod heap {
    pub fn cap_arenas(_n: i32) -> bool {
        false
    }

    pub fn trim() -> bool {
        false
    }
}

/// Caps the allocator's per-thread arenas at `n` (glibc; elsewhere nothing). Thousands of
/// threads that allocate otherwise spread over up to 8 arenas per core, each of which
/// keeps its own free memory. Returns whether the cap was set.
pub fn cap_arenas(n: i32) -> bool {
    heap::cap_arenas(n)
}

/// Gives the allocator's free memory back to the system (glibc `malloc_trim(0)`; elsewhere
/// nothing). Returns whether any was released.
pub fn trim_heap() -> bool {
    heap::trim()
}

#[cfg(target_os = "linux")]
mod from {
    use std::ffi::c_int;
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
    use std::os::fd::FromRawFd;

    /// `struct sockaddr_in` on Linux (the BSDs start it with a length byte).
    #[repr(C)]
    struct SockaddrIn {
        family: u16,
        /// Network byte order.
        port: u16,
        /// Network byte order.
        addr: u32,
        zero: [u8; 8],
    }

    const AF_INET: c_int = 2;
    const SOCK_STREAM: c_int = 1;
    const SOCK_CLOEXEC: c_int = 0o2_000_000;

    unsafe extern "C" {
        fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
        fn bind(fd: c_int, addr: *const SockaddrIn, len: u32) -> c_int;
        fn connect(fd: c_int, addr: *const SockaddrIn, len: u32) -> c_int;
        fn close(fd: c_int) -> c_int;
    }

    fn sockaddr(a: SocketAddrV4) -> SockaddrIn {
        SockaddrIn {
            family: AF_INET as u16,
            port: a.port().to_be(),
            addr: u32::from(*a.ip()).to_be(),
            zero: [0; 8],
        }
    }

    pub fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<TcpStream> {
        let len = size_of::<SockaddrIn>() as u32;
        // SAFETY: plain system calls on a descriptor this function owns; the addresses are
        // valid `sockaddr_in` values that outlive the calls. The descriptor is either closed
        // here on error or handed to exactly one `TcpStream`, which closes it.
        unsafe {
            let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let local = sockaddr(SocketAddrV4::new(from, 0));
            let remote = sockaddr(to);
            if bind(fd, &local, len) != 0 || connect(fd, &remote, len) != 0 {
                let e = io::Error::last_os_error();
                close(fd);
                return Err(e);
            }
            Ok(TcpStream::from_raw_fd(fd))
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod from {
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};

    pub fn connect_from(_from: Ipv4Addr, _to: SocketAddrV4) -> io::Result<TcpStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "connecting from a chosen address is only implemented on Linux",
        ))
    }
}

/// Connects to `to` from the address `from` (any port): 127.0.0.2 is "another IP" on
/// one machine. Linux only; elsewhere `Unsupported`.
pub fn connect_from(
    from: std::net::Ipv4Addr,
    to: std::net::SocketAddrV4,
) -> io::Result<std::net::TcpStream> {
    from::connect_from(from, to)
}

#[cfg(unix)]
mod term {
    use std::ffi::c_int;
    use std::io;

    unsafe extern "C" {
        fn kill(pid: c_int, sig: c_int) -> c_int;
    }

    /// `SIGTERM`: 15 on every Unix.
    const SIGTERM: c_int = 15;

    pub fn terminate(pid: u32) -> io::Result<()> {
        let pid = c_int::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
        // SAFETY: kill(2) takes two integers and no pointers; the caller passes the pid of
        // a child it started and has not reaped, so the pid names that child.
        if unsafe { kill(pid, SIGTERM) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(unix))]
mod term {
    pub fn terminate(_pid: u32) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "SIGTERM is only implemented on Unix",
        ))
    }
}

/// Sends SIGTERM to the process `pid`, a child of the caller that it has not waited for.
pub fn terminate(pid: u32) -> io::Result<()> {
    term::terminate(pid)
}

/// The descriptor and process limits: `getrlimit`/`setrlimit`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod rlimit {
    use std::ffi::c_int;

    /// `struct rlimit` of 64-bit Linux: two `rlim_t`, which is `unsigned long`, 64 bits.
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    /// `RLIMIT_NOFILE` and `RLIMIT_NPROC` on Linux (generic and x86 numbering).
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const RLIMIT_NOFILE: c_int = 7;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const RLIMIT_NPROC: c_int = 6;
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const RLIMIT_NOFILE: c_int = 5;
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const RLIMIT_NPROC: c_int = 8;
    #[cfg(target_arch = "sparc64")]
    const RLIMIT_NOFILE: c_int = 6;
    #[cfg(target_arch = "sparc64")]
    const RLIMIT_NPROC: c_int = 7;

    /// `RLIM_INFINITY` on 64-bit Linux.
    const INFINITY: u64 = u64::MAX;

    unsafe extern "C" {
        fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
        fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    }

    fn get(resource: c_int, name: &str) -> Result<(u64, u64), String> {
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: `r` is a valid, writable `struct rlimit` (repr(C), two `unsigned long`)
        // that lives for the whole call, and the function writes only into it.
        let rc = unsafe { getrlimit(resource, &mut r) };
        if rc != 0 {
            return Err(format!(
                "getrlimit({name}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok((r.cur, r.max))
    }

    pub fn nproc() -> Option<u64> {
        get(RLIMIT_NPROC, "NPROC")
            .ok()
            .map(|(cur, _)| cur)
            .filter(|&cur| cur != INFINITY)
    }

    pub fn ensure_nofile(need: u64) -> Result<u64, String> {
        let (cur, max) = get(RLIMIT_NOFILE, "NOFILE")?;
        if cur >= need {
            return Ok(cur);
        }
        if max < need {
            return Err(format!(
                "need {need} file descriptors but the hard limit is {max}: \
                 raise it (as root: ulimit -Hn {need}) or use fewer connections"
            ));
        }
        let r = RLimit { cur: max, max };
        // SAFETY: `r` is a valid `struct rlimit` that lives for the whole call and is
        // only read.
        let rc = unsafe { setrlimit(RLIMIT_NOFILE, &r) };
        if rc != 0 {
            return Err(format!(
                "setrlimit(NOFILE, {max}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(max)
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod rlimit {
    /// Not 64-bit Linux: leave the limit alone and hope it suffices.
    pub fn ensure_nofile(_need: u64) -> Result<u64, String> {
        Ok(u64::MAX)
    }

    /// Not 64-bit Linux: no limit known.
    pub fn nproc() -> Option<u64> {
        None
    }
}

/// Makes sure at least `need` descriptors can be open: raises the soft limit (up to the
/// hard one) if it is lower. Returns the soft limit now in force (64-bit Linux; elsewhere
/// the limit is left alone and `u64::MAX` returned).
pub fn ensure_nofile(need: u64) -> Result<u64, String> {
    rlimit::ensure_nofile(need)
}

/// The soft limit on the processes and threads of the process's user (`RLIMIT_NPROC`, as
/// `ulimit -u` or systemd's `LimitNPROC=` set it), if there is one (64-bit Linux; `None`
/// elsewhere). The kernel counts every thread of every process of the user against it,
/// and does not enforce it for a process with `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`.
pub fn nproc_limit() -> Option<u64> {
    rlimit::nproc()
}

/// The first value of field `key` (`Threads`, `VmRSS`, `Uid`: the real one) in a
/// `/proc/<pid>/status` text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
}

/// The real user id and the thread count a `/proc/<pid>/status` text gives.
fn uid_and_threads(status: &str) -> Option<(u32, usize)> {
    Some((
        status_field(status, "Uid")?.parse().ok()?,
        status_field(status, "Threads")?.parse().ok()?,
    ))
}

/// This process's real user and thread count (`/proc/self/status`).
fn own_status() -> Option<(u32, usize)> {
    uid_and_threads(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// This process's thread count; 1 if `/proc` cannot tell.
pub fn own_threads() -> usize {
    own_status().map_or(1, |(_, threads)| threads)
}

/// The tasks (threads) of the other processes /proc shows, at one look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TasksElsewhere {
    /// Those of processes of this process's real user, which count against its
    /// `RLIMIT_NPROC` as its own do.
    pub user: usize,
    /// Those of every process: each holds a process id of the pid namespace
    /// (`kernel.pid_max`) and counts against `kernel.threads-max`.
    pub all: usize,
}

/// The tasks (threads) of the other processes, of this process's real user and in all;
/// `None` if `/proc` cannot tell. Read once, at start: a scan of `/proc`.
pub fn tasks_elsewhere() -> Option<TasksElsewhere> {
    let (uid, _) = own_status()?;
    let me = std::process::id().to_string();
    let mut tasks = TasksElsewhere::default();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str() else { continue };
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // (A process that ended meanwhile has no status: it counts for nothing.)
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some((owner, threads)) = uid_and_threads(&status) {
            tasks.all += threads;
            if owner == uid {
                tasks.user += threads;
            }
        }
    }
    Some(tasks)
}

/// Closing a socket with a reset (RST): `SO_LINGER` on with a zero timeout.
#[cfg(target_os = "linux")]
mod abort {
    use std::ffi::c_int;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    /// `struct linger` of Linux: two `int`.
    #[repr(C)]
    struct Linger {
        onoff: c_int,
        linger: c_int,
    }

    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const SOL_SOCKET: c_int = 1;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const SO_LINGER: c_int = 13;
    #[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
    const SOL_SOCKET: c_int = 0xffff;
    #[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
    const SO_LINGER: c_int = 0x0080;

    pub fn reset(stream: TcpStream) -> Result<(), String> {
        let l = Linger {
            onoff: 1,
            linger: 0,
        };
        // `stream` stays open for the whole call; `struct linger` is repr(C), two `int`.
        super::nb::set_option(stream.as_raw_fd(), SOL_SOCKET, SO_LINGER, &l)
            .map_err(|e| format!("setsockopt(SO_LINGER): {e}"))?;
        // Closing now sends the RST.
        drop(stream);
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod abort {
    pub fn reset(_stream: std::net::TcpStream) -> Result<(), String> {
        Err("resets are only implemented for Linux".into())
    }
}

/// Closes `stream` abortively: the peer gets a RST and whatever is queued is dropped
/// (Linux; elsewhere an error and the stream is closed in order).
pub fn reset(stream: std::net::TcpStream) -> Result<(), String> {
    abort::reset(stream)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    /// `stack_t` and `SS_DISABLE` on Linux.
    #[repr(C)]
    struct SignalStack {
        sp: *mut std::ffi::c_void,
        flags: std::ffi::c_int,
        size: usize,
    }
    const SS_DISABLE: std::ffi::c_int = 2;

    unsafe extern "C" {
        fn sigaltstack(new: *const SignalStack, old: *mut SignalStack) -> std::ffi::c_int;
    }

    /// Whether the calling thread has an alternate signal stack.
    fn has_signal_stack() -> bool {
        let mut old = SignalStack {
            sp: std::ptr::null_mut(),
            flags: 0,
            size: 0,
        };
        // SAFETY: a null new stack only reads the current one into `old`, valid and
        // writable for the call.
        let ret = unsafe { sigaltstack(std::ptr::null(), &mut old) };
        assert_eq!(ret, 0, "sigaltstack: {}", std::io::Error::last_os_error());
        old.flags & SS_DISABLE == 0
    }

    #[test]
    fn a_detached_thread_runs_without_the_extras_of_std_threads() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let caller = std::thread::current().id();
        super::spawn_detached(64 * 1024, move || {
            let _ = tx.send((std::thread::current().id(), has_signal_stack()));
        })
        .expect("a thread starts");
        let (id, signal_stack) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the thread ran");
        assert_ne!(id, caller);
        // std maps one for each of its threads (two mappings with its guard page).
        assert!(!signal_stack, "the thread has a signal stack of its own");
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || tx.send(has_signal_stack()))
            .join()
            .expect("joined")
            .expect("sent");
        assert!(
            rx.recv().expect("sent"),
            "std's threads have one: the test sees it"
        );
    }

    /// A stack below the C library's least (`PTHREAD_STACK_MIN`: 16 KiB here, 128 KiB on
    /// aarch64) is raised to it, as std does, instead of failing with EINVAL.
    #[test]
    fn a_stack_below_the_c_librarys_least_is_raised_to_it() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        super::spawn_detached(4096, move || {
            let _ = tx.send(());
        })
        .expect("a thread starts");
        assert!(rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok());
    }

    #[test]
    fn a_thread_that_cannot_start_is_an_error_and_one_that_panics_ends_alone() {
        let e = super::spawn_detached(usize::MAX / 2, || {}).expect_err("no such stack");
        assert!(e.raw_os_error().is_some(), "{e}");
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        super::spawn_detached(64 * 1024, move || {
            let _keep = tx;
            panic!("a test's panic");
        })
        .expect("a thread starts");
        // The sender is dropped as the panic unwinds; the process goes on.
        assert!(rx.recv_timeout(std::time::Duration::from_secs(20)).is_err());
    }

    #[test]
    fn an_accepted_socket_inherits_nodelay_from_its_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        super::nodelay_inherited(&listener).expect("set on the listener");
        let _client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(accepted.nodelay().expect("read the option"));
    }
}

#[cfg(test)]
mod proc_tests {
    use super::*;

    #[test]
    fn a_status_gives_its_real_user_and_its_threads() {
        let status = "Name:\tsleep\nUmask:\t0022\nUid:\t40001\t40001\t40001\t40001\n\
                      Gid:\t40001\t40001\t40001\t40001\nThreads:\t3\n";
        assert_eq!(uid_and_threads(status), Some((40001, 3)));
        assert_eq!(uid_and_threads("Uid:\t0\t0\t0\t0\n"), None);
        assert_eq!(uid_and_threads("Uid:\tx\nThreads:\t1\n"), None);
        // /proc tells, whoever runs the test; the user's tasks are some of all.
        let tasks = tasks_elsewhere().expect("/proc tells");
        assert!(tasks.user <= tasks.all, "{tasks:?}");
    }
}
