//! Printing for the command-line programs (`xscpd`, `xscp`, `xscp-bench`) that never
//! panics. `println!` panics when standard output is closed (`xscp check --list | head -1`)
//! or full, and `eprintln!` when standard error is (`xscp --bogus 2>/dev/full`). Here a
//! reader that has gone ends the program quietly with success, as it would after reading
//! everything (ripgrep does the same); a standard error that cannot be written is left
//! alone, as there is nobody left to tell. Imports nothing of the crate.

use std::fmt;
use std::io::{self, ErrorKind, Write};
use std::process;

/// Writes to standard output and flushes. A closed output ends the program with status
/// 0, silently; any other failure (`>/dev/full`) is said on standard error and ends it
/// with status 1.
pub fn out(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        output_failed(&e);
    }
}

/// Writes to standard error; a failure is ignored.
pub fn err(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Is `e` the error of an output whose reader has gone?
pub fn is_closed(e: &io::Error) -> bool {
    e.kind() == ErrorKind::BrokenPipe
}

/// Ends the program after standard output failed with `e`: quietly with status 0 if its
/// reader has gone, else with a line on standard error and status 1.
pub fn output_failed(e: &io::Error) -> ! {
    if is_closed(e) {
        process::exit(0);
    }
    err(format_args!(
        "{}: cannot write to standard output: {e}\n",
        program()
    ));
    process::exit(1);
}

/// The program's name as it was started, for messages (`xscp-bench`).
fn program() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "xscp".into())
}

/// `println!` through [`out`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::console::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`err`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
