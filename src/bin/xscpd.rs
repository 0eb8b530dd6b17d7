//! `xscpd`: the XSCP/1 server. Parses the command line, sets up the log, wires the server
//! to SIGINT/SIGTERM and runs it in the foreground.

use std::fs::OpenOptions;
use std::io::LineWriter;
use std::process::ExitCode;

use simplelog::{CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, WriteLogger};
use xscp::config::{self, Cli, Config};
use xscp::protocol::diagram;
use xscp::server::Server;

fn main() -> ExitCode {
    let config = match config::parse_args(std::env::args().skip(1)) {
        Ok(Cli::Run(c)) => c,
        Ok(Cli::PrintFsm(format)) => {
            print!("{}", diagram::render(format));
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Help) => {
            println!("{}\n\n{}", config::USAGE, config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!("xscpd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xscpd: {e}\n{}", config::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_log(&config) {
        eprintln!("xscpd: cannot open log file: {e}");
        return ExitCode::from(1);
    }
    let server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xscpd: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    }) {
        eprintln!("xscpd: cannot install signal handler: {e}");
        return ExitCode::from(1);
    }
    server.run(rx);
    ExitCode::SUCCESS
}

/// The audit log on stderr (and `--log-file`), at the level `-q`/`-v`/`-vv` choose. Each
/// line is written with one system call (stderr itself is unbuffered).
fn init_log(c: &Config) -> std::io::Result<()> {
    let level = match c.verbosity {
        i8::MIN..=-1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let log_config = ConfigBuilder::new()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_time_format_rfc3339()
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![WriteLogger::new(
        level,
        log_config.clone(),
        std::io::stderr(),
    )];
    if let Some(path) = &c.log_file {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        loggers.push(WriteLogger::new(level, log_config, LineWriter::new(file)));
    }
    // Only fails if a logger is already set, which cannot happen here.
    let _ = CombinedLogger::init(loggers);
    Ok(())
}
