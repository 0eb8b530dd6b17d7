//! Garbage: random bytes, overlong lines, control bytes, invalid UTF-8, commands for the
//! wrong state, spoofing, stray pongs. Each must get its `-ERR`, `cquit` and an orderly close.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use xscp::protocol::framing::{MAX_PDU, is_control};

use super::conn::SConn;
use super::context::Soak;
use crate::rng::Rng;
use crate::stats::{Errors, Merge};
use crate::wire::{base36, show};
use xscp::protocol::reply;

pub const GARBAGE_CASES: [&str; 16] = [
    "random bytes/NEGOTIATING",
    "random bytes/ESTABLISHED",
    "overlong line/NEGOTIATING",
    "overlong line/ESTABLISHED",
    "510-byte lines, then 511/ESTABLISHED",
    "control byte/NEGOTIATING",
    "control byte/ESTABLISHED",
    "invalid UTF-8/NEGOTIATING",
    "invalid UTF-8/ESTABLISHED",
    "command for the wrong state/NEGOTIATING",
    "command for the wrong state/ESTABLISHED",
    "spoofed chatm/ESTABLISHED",
    "spoofed chatr/ESTABLISHED",
    "unsolicited pong/ESTABLISHED",
    "failed attempts/NEGOTIATING",
    "pipelined commands, then garbage/ESTABLISHED",
];

#[derive(Default)]
pub struct GarbageOutcome {
    pub by_case: [u64; 16],
    pub errors: Errors,
}

impl Merge for GarbageOutcome {
    fn merge(&mut self, o: GarbageOutcome) {
        for (a, b) in self.by_case.iter_mut().zip(o.by_case) {
            *a += b;
        }
        self.errors.merge(o.errors);
    }
}

pub fn soak_garbage(ctx: &Soak, w: usize) -> GarbageOutcome {
    let mut rng = Rng::new(ctx.seed ^ (0x6761_7262 + w as u64));
    ctx.until_stop(
        |o: &mut GarbageOutcome| &mut o.errors,
        |o, n| {
            let case = ((n as usize) * ctx.opts.garbage + w) % GARBAGE_CASES.len();
            let name = format!("g{}{w}n{}", ctx.rid, base36(n));
            garbage_case(ctx, &mut rng, case, &name)
                .map_err(|e| format!("garbage [{}]: {e}", GARBAGE_CASES[case]))?;
            o.by_case[case] += 1;
            ctx.live.garbage.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    )
}

/// The answer to a line longer than a PDU.
fn too_long() -> String {
    format!("-ERR [PDU] line longer than {MAX_PDU} bytes")
}

/// A control byte other than CR and LF.
fn control_byte(rng: &mut Rng) -> u8 {
    loop {
        let b = match rng.below(33) {
            32 => 0x7F,
            i => i as u8,
        };
        if b != b'\r' && b != b'\n' {
            return b;
        }
    }
}

/// Sends `payload` in one to three pieces, so that the server's framing sees it split.
fn send_split(c: &mut SConn, rng: &mut Rng, payload: &[u8]) -> Result<(), String> {
    let mut rest = payload;
    for _ in 0..rng.below(3) {
        if rest.len() < 2 {
            break;
        }
        let (a, b) = rest.split_at(1 + rng.below(rest.len() - 1));
        c.send(a)?;
        thread::sleep(Duration::from_millis(1));
        rest = b;
    }
    c.send(rest)
}

/// Sends a violation (followed by a command that must stay unanswered) and expects
/// `err`, `cquit protocol violation` and the orderly close.
pub fn violation(
    ctx: &Soak,
    mut c: SConn,
    rng: &mut Rng,
    payload: &[u8],
    err: &str,
) -> Result<(), String> {
    let mut p = payload.to_vec();
    p.extend_from_slice(b"\r\nping after\r\n");
    send_split(&mut c, rng, &p)?;
    c.expect(ctx, err)?;
    c.expect(ctx, reply::cquit(reply::PROTOCOL_VIOLATION).trim_end())?;
    c.expect_close(ctx)
}

fn garbage_case(ctx: &Soak, rng: &mut Rng, case: usize, name: &str) -> Result<(), String> {
    let established = GARBAGE_CASES[case].ends_with("/ESTABLISHED");
    let c = if established {
        SConn::registered(ctx, "garbage", name)?
    } else {
        SConn::open(ctx, "garbage")?
    };
    let state = if established {
        "ESTABLISHED"
    } else {
        "NEGOTIATING"
    };
    const INVALID_UTF8: [&[u8]; 7] = [
        b"\xff",
        b"\xc3",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xe2\x82",
        b"\x80",
    ];
    match case {
        0 | 1 => {
            // Random bytes without a terminator, with at least one control byte among the
            // first MAX_PDU: the first control byte decides.
            let len = 1 + rng.below(2048);
            let mut p: Vec<u8> = (0..len)
                .map(|_| match rng.byte() {
                    b'\r' | b'\n' => b'x',
                    b => b,
                })
                .collect();
            let at = rng.below(len.min(MAX_PDU));
            p[at] = control_byte(rng);
            let first = p.iter().copied().find(|&b| is_control(b)).unwrap_or(p[at]);
            let err = format!("-ERR [PDU] control byte 0x{first:02X} in line");
            violation(ctx, c, rng, &p, &err)
        }
        2 | 3 => {
            let len = MAX_PDU + 1 + rng.below(4000);
            let p: Vec<u8> = (0..len).map(|_| 0x21 + rng.below(0x5E) as u8).collect();
            violation(ctx, c, rng, &p, &too_long())
        }
        4 => {
            let mut c = c;
            // MAX_PDU bytes: the longest PDU. An unknown keyword is refused, the
            // connection stays; a chatm of MAX_PDU bytes is relayed whole.
            let junk = rng.letters(MAX_PDU);
            c.send(format!("{junk}\r\n").as_bytes())?;
            c.expect(ctx, "-ERR [SYNTAX] unknown command")?;
            let head = format!("chatm {name} {name} ");
            let text = rng.letters(MAX_PDU - head.len());
            let line = format!("{head}{text}");
            c.send(format!("{line}\r\n").as_bytes())?;
            c.expect(ctx, reply::RELAYED.trim_end())?;
            c.expect(ctx, &line)?;
            let p = format!("{line}x");
            violation(ctx, c, rng, p.as_bytes(), &too_long())
        }
        5 | 6 => {
            let b = control_byte(rng);
            let p = if established {
                let mut p = format!("chatm {name} * hello").into_bytes();
                p.push(b);
                p.extend_from_slice(b"there");
                p
            } else {
                vec![b'p', b'i', b'n', b'g', b' ', b'a', b, b'b']
            };
            violation(
                ctx,
                c,
                rng,
                &p,
                &format!("-ERR [PDU] control byte 0x{b:02X} in line"),
            )
        }
        7 | 8 => {
            let bad = INVALID_UTF8[rng.below(INVALID_UTF8.len())];
            let mut p = if established {
                format!("chatm {name} * caf").into_bytes()
            } else {
                b"uname caf".to_vec()
            };
            p.extend_from_slice(bad);
            p.extend_from_slice(b" ok");
            violation(ctx, c, rng, &p, "-ERR [PDU] line is not valid UTF-8")
        }
        9 | 10 => {
            const NEG: [&str; 6] = [
                "cname newname",
                "chatm a b hello",
                "chatr a b",
                "users",
                "notif on",
                "+ok pong tok",
            ];
            let cmd = if established {
                format!("uname {}", rng.letters(6))
            } else {
                NEG[rng.below(NEG.len())].to_string()
            };
            let (kw, args) = cmd.split_once(' ').unwrap_or((&cmd, ""));
            let kw = rng.mixed_case(kw);
            let p = if args.is_empty() {
                kw.clone()
            } else {
                format!("{kw} {args}")
            };
            let err = format!("-ERR [STATE] {kw} is not allowed in {state}");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        11 => {
            let who = &ctx.anchor;
            let p = format!("chatm {who} {name} spoofed");
            let err = format!("-ERR [SPOOF] {who} is not your nickname");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        12 => {
            let who = &ctx.anchor;
            let p = format!("chatr {name} {who}");
            let err = format!("-ERR [SPOOF] {who} is not your nickname");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        13 => {
            let p = format!("+OK pong {}", rng.letters(8));
            violation(
                ctx,
                c,
                rng,
                p.as_bytes(),
                "-ERR [STATE] pong does not answer an outstanding ping",
            )
        }
        14 => {
            // --max-retries failed attempts, pipelined: unknown keyword, invalid name,
            // name in use (the anchor's, in another case).
            let mut c = c;
            let r = ctx.retries.max(1);
            let mut p = String::new();
            let mut want: Vec<(String, String)> = Vec::new();
            for k in 1..=r {
                let tail = format!(" (attempt {k} of {r})");
                match k % 3 {
                    1 => {
                        let len = 6 + rng.below(7);
                        p += &format!("{}\r\n", rng.letters(len));
                        want.push((
                            format!("-ERR [SYNTAX] unknown command{tail}"),
                            String::new(),
                        ));
                    }
                    2 => {
                        p += "uname 9bad\r\n";
                        want.push(("-ERR [INVALID] ".into(), tail));
                    }
                    _ => {
                        let spelled = rng.mixed_case(&ctx.anchor);
                        p += &format!("uname {spelled}\r\n");
                        want.push((
                            format!(
                                "-ERR [IN-USE] {spelled} is already taken by another client{tail}"
                            ),
                            String::new(),
                        ));
                    }
                }
            }
            p += "ping after\r\n";
            c.send(p.as_bytes())?;
            for (head, tail) in want {
                let l = c.line(ctx)?;
                let ok = if tail.is_empty() {
                    l == head
                } else {
                    l.starts_with(&head) && l.ends_with(&tail)
                };
                if !ok {
                    return Err(format!(
                        "expected '{head}...{tail}', got '{}'",
                        show(l.as_bytes())
                    ));
                }
            }
            c.expect(ctx, "cquit too many failed attempts")?;
            c.expect_close(ctx)
        }
        _ => {
            // Valid commands pipelined with a violation: all answered in order, then the
            // violation, and nothing after it.
            let mut c = c;
            let b = control_byte(rng);
            let mut p = b"ping p1\r\ncapa\r\nusers\r\nchatm ".to_vec();
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(b" * hi");
            p.push(b);
            p.extend_from_slice(b"there\r\nping after\r\n");
            c.send(&p)?;
            c.expect(ctx, "+OK pong p1")?;
            c.expect(ctx, "+OK capability list follows")?;
            let capa = c.items(ctx)?;
            if !capa.iter().any(|l| l == "XSCP 1") {
                return Err("capa without 'XSCP 1'".into());
            }
            let head = c.line(ctx)?;
            let users = c.items(ctx)?;
            if head != format!("+OK {} users", users.len()) || !users.iter().any(|u| u == name) {
                return Err(format!(
                    "users: '{}' with {} names, itself {}",
                    show(head.as_bytes()),
                    users.len(),
                    if users.iter().any(|u| u == name) {
                        "listed"
                    } else {
                        "missing"
                    }
                ));
            }
            c.expect(ctx, &format!("-ERR [PDU] control byte 0x{b:02X} in line"))?;
            c.expect(ctx, reply::cquit(reply::PROTOCOL_VIOLATION).trim_end())?;
            c.expect_close(ctx)
        }
    }
}
