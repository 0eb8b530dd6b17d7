//! The client's command line: its options, `--help`, and the address with its default
//! port (the same forms as `xscpd -l`, through [`xscp::config::with_port`]).

use std::fmt;

use xscp::config::{DEFAULT_PORT, with_port};

/// The usage synopsis, printed by `--help` and after a bad option.
pub const USAGE: &str = "\
usage: xscp [--name NAME] [--notif] [--manual] [--timestamps] [--echo] [ADDR]
            [-h|--help] [-V|--version]
       xscp check [OPTIONS] (ADDR | --server COMMAND)   (see xscp check --help)
       xscp diagram [--conn [RUN:]N]... [--html FILE] [LOG]    (see xscp diagram --help)";

/// `--help`: what the client does and every option.
pub const HELP: &str = "\
xscp - the XSCP/1 teaching client

Connects to ADDR (default 127.0.0.1:1030; a host without a port, [::1] too, gets port
1030), sends every line of standard input as one PDU and prints every line from the server
verbatim, but for control characters, shown as \\xNN in every line printed. Lines it sends
on its own are printed behind 'auto> ', /msg expansions behind '/msg> '. 'xscp check'
grades a server instead (xscp check --help); 'xscp diagram' draws the sessions of a
server's audit log (xscp diagram --help).

Options:
      --name NAME            send 'uname NAME' as soon as the server has greeted
      --notif                send 'notif on' once registered
      --manual               do not answer pings or send receipts automatically
      --timestamps           start every printed line with the UTC time (HH:MM:SS.mmm)
      --echo                 also print every typed line sent, behind '> '
  -h, --help                 print this help and exit
  -V, --version              print the version and exit

Input: '/msg NAME TEXT' sends 'chatm <me> NAME TEXT'; empty lines and lines starting
with '#' are not sent. End of input sends cquit and waits for the server to close.
Exit status: 0 after the server's +OK to cquit (or once standard output's reader has
gone), 1 if the connection ended otherwise or failed, 2 for a bad command line, 130 on a
second Ctrl-C.";

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The server's address.
    pub addr: String,
    /// `--name`: register at once.
    pub name: Option<String>,
    /// `--notif`: subscribe once registered.
    pub notif: bool,
    /// `--manual`: no auto-pong, no auto-receipt.
    pub manual: bool,
    /// `--timestamps`
    pub timestamps: bool,
    /// `--echo`: print typed lines as they are sent.
    pub echo: bool,
}

/// The command line's verdict.
#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    Run(Options),
    Help,
    Version,
}

/// A bad command line: one line naming the problem.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, CliError> {
    let mut o = Options::default();
    let mut addr = None;
    let mut args = args.into_iter();
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            if addr.replace(arg.clone()).is_some() {
                return Err(CliError(format!("unexpected argument '{arg}'")));
            }
            continue;
        }
        // `--opt=value` is the same as `--opt value`.
        let (opt, mut inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match opt.as_str() {
            "--" => only_positional = true,
            "--name" => {
                let v = inline
                    .take()
                    .or_else(|| args.next())
                    .ok_or_else(|| CliError("option --name needs a value".into()))?;
                // The server judges the name; this only keeps one argument one PDU.
                if v.is_empty() || v.chars().any(|c| c == ' ' || c.is_control()) {
                    return Err(CliError(format!("invalid value '{v}' for --name")));
                }
                o.name = Some(v);
            }
            "--notif" => o.notif = true,
            "--manual" => o.manual = true,
            "--timestamps" => o.timestamps = true,
            "--echo" => o.echo = true,
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            _ => return Err(CliError(format!("unknown option '{arg}'"))),
        }
        if let Some(v) = inline {
            return Err(CliError(format!("option {opt} takes no value (got '{v}')")));
        }
    }
    // The same forms as `xscpd -l`: a host without a port gets 1030.
    let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
    o.addr = with_port(&addr).map_err(CliError)?;
    Ok(Cli::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Cli, CliError> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let Ok(Cli::Run(o)) = args(&[]) else { panic!() };
        assert_eq!(o.addr, "127.0.0.1:1030");
        assert!(o.name.is_none() && !o.notif && !o.manual && !o.timestamps && !o.echo);
    }

    #[test]
    fn options_and_address() {
        let Ok(Cli::Run(o)) = args(&["--name=alice", "--manual", "h:1", "--notif"]) else {
            panic!()
        };
        assert_eq!((o.addr.as_str(), o.name.as_deref()), ("h:1", Some("alice")));
        assert!(o.manual && o.notif);
        assert_eq!(args(&["-V"]), Ok(Cli::Version));
        assert_eq!(args(&["--help"]), Ok(Cli::Help));
    }

    #[test]
    fn bad_command_lines_name_the_problem() {
        assert_eq!(
            args(&["--bogus"]),
            Err(CliError("unknown option '--bogus'".into()))
        );
        assert_eq!(
            args(&["a:1", "b:2"]),
            Err(CliError("unexpected argument 'b:2'".into()))
        );
        assert_eq!(
            args(&["--name"]),
            Err(CliError("option --name needs a value".into()))
        );
        assert!(args(&["--name", "a b"]).is_err());
        assert!(args(&["--manual=yes"]).is_err());
        // A port that is not a number is a bad command line (issue 11).
        assert_eq!(
            args(&["127.0.0.1:17999x"]),
            Err(CliError(
                "invalid port '17999x' in '127.0.0.1:17999x'".into()
            ))
        );
        assert!(args(&["[::1]:x"]).is_err());
        assert!(args(&["[::1"]).is_err());
    }

    #[test]
    fn addresses_without_a_port_get_the_default_one() {
        let Ok(Cli::Run(o)) = args(&["[::1]"]) else {
            panic!()
        };
        assert_eq!(o.addr, "[::1]:1030");
        let Ok(Cli::Run(o)) = args(&["localhost"]) else {
            panic!()
        };
        assert_eq!(o.addr, "localhost:1030");
    }
}
