//! `xscpd`: the XSCP/1 server. Parses the command line, sets up the log, wires the server
//! to SIGINT/SIGTERM and runs it in the foreground.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};
use xscp::clock::Utc;
use xscp::config::{self, Cli, Config};
use xscp::console;
use xscp::protocol::diagram;
use xscp::server::Server;
use xscp::state::{self, Saved};

fn main() -> ExitCode {
    let mut config = match config::parse_args(std::env::args().skip(1)) {
        Ok(Cli::Run(c)) => c,
        Ok(Cli::PrintFsm(format)) => return print(&diagram::render(format)),
        Ok(Cli::Help) => return print(&format!("{}\n\n{}\n", config::USAGE, config::help())),
        Ok(Cli::Version) => return print(&format!("xscpd {}\n", env!("CARGO_PKG_VERSION"))),
        Err(e) => {
            complain(format_args!("{e}\n{}", config::USAGE));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_log(&config) {
        complain(format_args!("{e}"));
        return ExitCode::from(1);
    }
    // The handler first: once the log says LISTEN, a SIGTERM must find it installed and
    // end the server in order, not kill it.
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    }) {
        complain(format_args!("cannot install signal handler: {e}"));
        return ExitCode::from(1);
    }
    // Held while the server runs: no other server saves to the same state file.
    let (restored, lock) = match load_state(&mut config) {
        Ok(state) => state,
        Err(code) => return code,
    };
    let server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            complain(format_args!("cannot listen on {}: {e}", config.listen));
            return ExitCode::from(1);
        }
    };
    if server.restoring(restored, lock).run(rx) {
        ExitCode::SUCCESS
    } else {
        // Logged where it failed.
        ExitCode::from(1)
    }
}

/// `--state` (xscp(7) §5.9): the state saved by the last run, before the server listens,
/// and the lock that keeps other servers off the file while this one runs. A missing file
/// is an empty state (logged); one that cannot be read or parsed ends the program with
/// status 2, naming the file and the line, and is left as it is; a file another server
/// uses, or a directory where saves cannot be written, with status 1. A state file given
/// as a symbolic link is the file it points to ([`state::resolve`]): `config` is left
/// naming that file, where the server saves.
fn load_state(config: &mut Config) -> Result<(Saved, Option<state::Lock>), ExitCode> {
    let Some(given) = config.state.clone() else {
        return Ok((Saved::default(), None));
    };
    let path = match state::resolve(&given) {
        Ok(path) => path,
        Err(error) => {
            let e = state::LoadError::Read { path: given, error };
            fail(config, format_args!("{e}"));
            return Err(ExitCode::from(2));
        }
    };
    if path != given {
        log::info!(
            "state file {} is a link to {}: the state is read and saved there",
            given.display(),
            path.display()
        );
    }
    config.state = Some(path.clone());
    let path = &path;
    let lock = match state::lock(path) {
        Ok(lock) => lock,
        Err(e) => {
            fail(
                config,
                format_args!("cannot lock state file {}: {e}", path.display()),
            );
            return Err(ExitCode::from(1));
        }
    };
    let state = match state::load(path) {
        Ok(Some(state)) => state,
        Ok(None) => {
            log::info!(
                "state file {} does not exist: starting with no holds",
                path.display()
            );
            Saved::default()
        }
        Err(e) => {
            fail(
                config,
                format_args!(
                    "{e}; correct the file, or move it aside to start without the holds \
                     and mailboxes it keeps"
                ),
            );
            return Err(ExitCode::from(2));
        }
    };
    if let Err(e) = state::check_writable(path) {
        fail(
            config,
            format_args!(
                "cannot write state file {}: {e}",
                state::temp_path(path).display()
            ),
        );
        return Err(ExitCode::from(1));
    }
    Ok((state, Some(lock)))
}

/// Why the server does not start: on standard error, and in the log too when the log is
/// a file (else the log is standard error, which says it once).
fn fail(config: &Config, message: std::fmt::Arguments<'_>) {
    complain(message);
    if config.log_file.is_some() {
        log::error!("{message}");
    }
}

/// Writes `text` to standard output. A reader that has gone (`xscpd --help | head -1`)
/// ends the program quietly with status 0, as when everything was read (see
/// [`xscp::console`]).
fn print(text: &str) -> ExitCode {
    console::out(format_args!("{text}"));
    ExitCode::SUCCESS
}

/// One message on standard error, prefixed with the program's name; if standard error is
/// gone too there is nobody left to tell, and that is not a reason to panic.
fn complain(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "xscpd: {message}");
}

/// Where the log goes: standard error and, with `--log-file`, a file. Each line is
/// formatted once, stamped with the time, and written whole to both under the logger's one
/// lock, so the two carry the same lines, in the same order, with the same times, and each
/// line is one write to each.
///
/// A sink that fails (a full disk, a pipe whose reader has gone: `xscpd -v 2>&1 | head`)
/// is said once, on what is left: the other sink, else standard output. The server serves
/// on; the line says that its audit log is incomplete from then on.
struct LogSinks {
    /// The part of a line formatted so far.
    line: Vec<u8>,
    /// Standard error, until it fails.
    stderr: bool,
    /// `--log-file` and its path, until it fails.
    file: Option<(File, PathBuf)>,
}

impl LogSinks {
    /// Says on what is left that `sink` failed with `e`. Standard output is the last
    /// resort; if it fails too, nobody is left to tell.
    fn failed(&mut self, sink: &str, e: &io::Error) {
        let line = format!(
            "{} [ERROR] xscpd: the audit log is failing: cannot write to {sink}: {e}; \
             the log goes on {}\n",
            Utc::now().rfc3339(),
            match (self.stderr, &self.file) {
                (true, _) => "standard error only".to_string(),
                (false, Some((_, path))) => format!("in {} only", path.display()),
                (false, None) => "nowhere".to_string(),
            }
        );
        let mut told = false;
        if self.stderr {
            told = io::stderr().write_all(line.as_bytes()).is_ok();
        }
        if let Some((file, _)) = &mut self.file {
            told |= file.write_all(line.as_bytes()).is_ok();
        }
        if !told {
            let mut out = io::stdout().lock();
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        }
    }
}

impl Write for LogSinks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.line.is_empty() {
            self.line.extend_from_slice(Utc::now().rfc3339().as_bytes());
            self.line.push(b' ');
        }
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = self.line.drain(..=end).collect();
            // A sink that fails must not silence the other.
            if self.stderr
                && let Err(e) = io::stderr().write_all(&lines)
            {
                self.stderr = false;
                self.failed("standard error", &e);
            }
            if let Some((file, path)) = &mut self.file
                && let Err(e) = file.write_all(&lines)
            {
                let sink = format!("the log file {}", path.display());
                self.file = None;
                self.failed(&sink, &e);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The audit log on stderr (and `--log-file`), at the level `-q`/`-v`... choose. Every line
/// starts with the time in UTC to the microsecond, always 27 characters wide. The error
/// names the log file.
fn init_log(c: &Config) -> Result<(), String> {
    let level = match c.verbosity {
        i8::MIN..=-1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut log_config = ConfigBuilder::new();
    log_config
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_time_level(LevelFilter::Off);
    if c.verbosity < config::VERBOSITY_SOCKET_WRITES {
        log_config.add_filter_ignore_str(config::SOCKET_WRITES_TARGET);
    }
    let file = match &c.log_file {
        Some(path) => Some((
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
            path.clone(),
        )),
        None => None,
    };
    let sinks = LogSinks {
        line: Vec::new(),
        stderr: true,
        file,
    };
    // Only fails if a logger is already set, which cannot happen here.
    let _ = WriteLogger::init(level, log_config.build(), sinks);
    Ok(())
}
