//! `xscpd`: the XSCP/1 server. Parses the command line, sets up the log, wires the server
//! to SIGINT/SIGTERM and runs it in the foreground.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::process::ExitCode;

use std::time::{SystemTime, UNIX_EPOCH};

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};
use xscp::config::{self, Cli, Config};
use xscp::protocol::diagram;
use xscp::server::Server;
use xscp::state::{self, Saved};

fn main() -> ExitCode {
    let config = match config::parse_args(std::env::args().skip(1)) {
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
    let restored = match load_state(&config) {
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
    server.restoring(restored).run(rx);
    ExitCode::SUCCESS
}

/// `--state` (xscp(7) §5.9): the state saved by the last run, before the server listens.
/// A missing file is an empty state (logged); one that cannot be read or parsed ends the
/// program with status 2, naming the file and the line, and is left as it is; a directory
/// where saves cannot be written, with status 1.
fn load_state(config: &Config) -> Result<Saved, ExitCode> {
    let Some(path) = &config.state else {
        return Ok(Saved::default());
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
            log::error!("{e}");
            complain(format_args!("{e}"));
            return Err(ExitCode::from(2));
        }
    };
    if let Err(e) = state::check_writable(path) {
        complain(format_args!(
            "cannot write state file {}: {e}",
            state::temp_path(path).display()
        ));
        return Err(ExitCode::from(1));
    }
    Ok(state)
}

/// Writes `text` to standard output. A reader that has gone (`xscpd --help | head -1`)
/// ends the program quietly with status 0, as when everything was read; any other write
/// error is reported and gives status 1.
fn print(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            complain(format_args!("cannot write to standard output: {e}"));
            ExitCode::from(1)
        }
    }
}

/// One message on standard error, prefixed with the program's name; if standard error is
/// gone too there is nobody left to tell, and that is not a reason to panic.
fn complain(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "xscpd: {message}");
}

/// `at` in UTC as RFC 3339 to the microsecond: always 27 characters,
/// `2026-12-01T21:47:38.041200Z`. (The log's own clock: simplelog's RFC 3339 drops trailing
/// zeros of the fraction, so its width varies.)
fn utc_timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_micros()
    )
}

/// Where the log goes: standard error and, with `--log-file`, a file. Each line is
/// formatted once, stamped with the time, and written whole to both under the logger's one
/// lock, so the two carry the same lines, in the same order, with the same times, and each
/// line is one write to each.
struct LogSinks {
    /// The part of a line formatted so far.
    line: Vec<u8>,
    file: Option<File>,
}

impl Write for LogSinks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.line.is_empty() {
            self.line
                .extend_from_slice(utc_timestamp(SystemTime::now()).as_bytes());
            self.line.push(b' ');
        }
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            let lines = &self.line[..=end];
            // A sink that fails must not silence the other; the log has nobody to tell.
            let _ = io::stderr().write_all(lines);
            if let Some(file) = &mut self.file {
                let _ = file.write_all(lines);
            }
            self.line.drain(..=end);
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
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let sinks = LogSinks {
        line: Vec::new(),
        file,
    };
    // Only fails if a logger is already set, which cannot happen here.
    let _ = WriteLogger::init(level, log_config.build(), sinks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::new(secs, micros * 1000))
    }

    #[test]
    fn timestamps_are_utc_rfc3339_of_fixed_width() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(at(1_796_161_658, 41_200), "2026-12-01T21:47:38.041200Z");
        assert_eq!(at(4_102_444_799, 500_000), "2099-12-31T23:59:59.500000Z");
        for secs in (0..4_102_444_800u64).step_by(86_399 * 97) {
            assert_eq!(at(secs, 0).len(), 27, "{}", at(secs, 0));
        }
    }
}
