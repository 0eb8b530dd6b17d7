//! The session's rules, line by line and timer by timer (xscp(7) §3–§6).

use super::*;
use crate::protocol::request::Hand;

fn settings() -> Arc<Settings> {
    Arc::new(Settings {
        max_retries: 3,
        negotiate_timeout: Duration::from_secs(30),
        ping_interval: Duration::from_secs(60),
        ping_timeout: Duration::from_secs(20),
        capa: reply::multiline("capability list follows", ["XSCP 1"]),
    })
}

/// Every connection keeps its session for its whole life, in its reader's allocation:
/// fourteen words on a 64-bit machine, its timers included (seven with the timers in a
/// box of their own, which cost 96 bytes more with the allocator's header; seventeen with
/// the outstanding ping's token kept as a string rather than made again).
#[test]
fn a_session_is_small() {
    assert!(std::mem::size_of::<Session>() <= 14 * std::mem::size_of::<usize>());
}

/// A session just accepted.
fn session_negotiating() -> Session {
    session_accepted_at(Instant::now())
}

/// A session accepted at `now`.
fn session_accepted_at(now: Instant) -> Session {
    Session::accept(0, "conn=0 peer=test".into(), settings(), now)
}

/// A session registered as `alice`.
fn session_established() -> Session {
    let mut s = session_negotiating();
    let Step::Hub(Request::Register { nick, .. }) = s.on_line("uname alice") else {
        panic!("uname must ask the hub")
    };
    s.on_answer(Answer::Registered {
        nick,
        welcome_back: false,
    });
    assert_eq!(s.state(), State::Established);
    s
}

fn closing(step: Step) -> Closing {
    match step {
        Step::Close(c) => c,
        other => panic!("expected a close, got {other:?}"),
    }
}

mod negotiating {
    use super::*;

    #[test]
    fn accept_enters_negotiating() {
        assert_eq!(session_negotiating().state(), State::Negotiating);
    }

    #[test]
    fn valid_uname_asks_the_hub() {
        let mut s = session_negotiating();
        assert_eq!(
            s.on_line("uname Bob_1"),
            Step::Hub(Request::Register {
                nick: Nick::parse("Bob_1").unwrap(),
                attempt: Attempt { n: 1, max: 3 }
            })
        );
    }

    #[test]
    fn invalid_name_is_a_counted_attempt() {
        let mut s = session_negotiating();
        let Step::Reply(r) = s.on_line("uname 9lives") else {
            panic!()
        };
        assert!(r.starts_with("-ERR [INVALID] "), "{r}");
        assert!(r.ends_with("(attempt 1 of 3)\r\n"), "{r}");
        assert_eq!(s.state(), State::Negotiating);
    }

    #[test]
    fn in_use_from_the_hub_is_a_counted_attempt() {
        let mut s = session_negotiating();
        // The hub replied to each itself (the lines of the last one included): the
        // session counts them; the first two are handed over Hand::Later.
        for n in 1..=2 {
            let Step::Hub(request) = s.on_line("uname bob") else {
                panic!("uname must ask the hub")
            };
            let Request::Register { attempt, .. } = request else {
                panic!("uname registers")
            };
            assert_eq!(attempt, Attempt { n, max: 3 });
            assert_eq!(request.hand(), Hand::Later);
            assert_eq!(s.on_answer(Answer::InUse), Step::Nothing);
            assert_eq!(s.state(), State::Negotiating);
        }
        // The last one is waited for, and closes with nothing more to send.
        let Step::Hub(request) = s.on_line("uname bob") else {
            panic!("uname must ask the hub")
        };
        assert_eq!(request.hand(), Hand::Wait);
        let c = closing(s.on_answer(Answer::InUse));
        assert_eq!(c.lines, "");
        assert_eq!(c.cause, Cause::TooManyAttempts);
        assert_eq!(s.state(), State::Aborted);
    }

    /// The hub words a name in use with the same function the session uses for the
    /// refusals it decides: the counted `-ERR`, and the `cquit` after the last.
    #[test]
    fn a_failed_attempt_is_worded_once() {
        let tag: Tag = "conn=0 peer=test".into();
        let text = reply::in_use_text("bob");
        assert_eq!(
            failed_attempt(&tag, Code::InUse, &text, Attempt { n: 1, max: 3 }),
            "-ERR [IN-USE] bob is already taken by another client (attempt 1 of 3)\r\n"
        );
        assert_eq!(
            failed_attempt(&tag, Code::InUse, &text, Attempt { n: 3, max: 3 }),
            "-ERR [IN-USE] bob is already taken by another client (attempt 3 of 3)\r\n\
             cquit too many failed attempts\r\n"
        );
    }

    /// While the answer to a `uname` is awaited, no timer fires: the reader is to be
    /// awake by the earlier of the negotiation deadline and the ping a registered name
    /// would be owed, and gives the answer first.
    #[test]
    fn timers_wait_for_the_answer_to_uname() {
        let t0 = Instant::now();
        // A ping interval shorter than the negotiation timeout: the ping decides.
        let mut quick = (*settings()).clone();
        quick.ping_interval = Duration::from_secs(10);
        let mut s = Session::accept(0, "conn=0 peer=test".into(), Arc::new(quick), t0);
        let (negotiate, ping) = (s.settings.negotiate_timeout, s.settings.ping_interval);
        assert!(ping < negotiate);
        let Step::Hub(Request::Register { nick, .. }) = s.on_line("uname alice") else {
            panic!("uname must ask the hub")
        };
        assert_eq!(s.poll_at(), Some(t0 + negotiate.min(ping)));
        assert_eq!(s.on_time(t0 + negotiate + ping), Step::Nothing);
        assert_eq!(s.state(), State::Negotiating);
        s.on_answer(Answer::Registered {
            nick,
            welcome_back: false,
        });
        assert_eq!(s.poll_at(), Some(t0 + ping));
    }

    #[test]
    fn unknown_keyword_and_missing_argument_are_counted() {
        let mut s = session_negotiating();
        let Step::Reply(a) = s.on_line("hello") else {
            panic!()
        };
        assert!(a.starts_with("-ERR [SYNTAX] ") && a.contains("attempt 1 of 3"));
        let Step::Reply(b) = s.on_line("uname") else {
            panic!()
        };
        assert!(b.starts_with("-ERR [SYNTAX] ") && b.contains("attempt 2 of 3"));
    }

    #[test]
    fn the_last_failed_attempt_aborts() {
        let mut s = session_negotiating();
        s.on_line("x");
        s.on_line("y");
        let c = closing(s.on_line("z"));
        assert_eq!(
            c.lines,
            "-ERR [SYNTAX] unknown command (attempt 3 of 3)\r\ncquit too many failed attempts\r\n"
        );
        assert_eq!(c.cause, Cause::TooManyAttempts);
        assert_eq!(s.state(), State::Aborted);
    }

    #[test]
    fn session_commands_are_violations() {
        for (line, name) in [
            ("cname bob", "cname"),
            ("chatm a b c", "chatm"),
            ("chatr a b", "chatr"),
            ("users", "users"),
            ("Notif on", "Notif"),
            // Named as in the legality table, the keyword as the client wrote it.
            ("+OK pong x", "+OK pong"),
            ("+ok PONG x", "+ok pong"),
            ("+OK", "+OK pong"),
        ] {
            let mut s = session_negotiating();
            let c = closing(s.on_line(line));
            assert_eq!(
                c.lines,
                format!(
                    "-ERR [STATE] {name} is not allowed in NEGOTIATING\r\ncquit protocol violation\r\n"
                )
            );
            assert_eq!(
                c.cause,
                Cause::StateViolation {
                    keyword: name.into(),
                    state: State::Negotiating
                }
            );
            assert_eq!(s.state(), State::Aborted);
        }
    }

    #[test]
    fn ping_capa_and_cquit_are_legal() {
        let mut s = session_negotiating();
        assert_eq!(s.on_line("ping"), Step::Reply("+OK pong\r\n".into()));
        assert_eq!(s.on_line("PING t"), Step::Reply("+OK pong t\r\n".into()));
        assert_eq!(s.on_line("capa"), Step::Reply(settings().capa.clone()));
        let c = closing(s.on_line("cquit"));
        assert_eq!(c.lines, "+OK terminating tasks and disconnecting\r\n");
        assert_eq!(s.state(), State::Update);
    }

    #[test]
    fn negotiation_timeout_aborts() {
        let mut s = session_negotiating();
        let c = s.expired(Cause::NegotiationTimeout);
        assert_eq!(c.lines, "cquit negotiation timeout\r\n");
        assert_eq!(s.state(), State::Aborted);
    }
}

mod established {
    use super::*;

    #[test]
    fn uname_again_is_a_violation() {
        let mut s = session_established();
        let c = closing(s.on_line("uname bob"));
        assert!(
            c.lines
                .starts_with("-ERR [STATE] uname is not allowed in ESTABLISHED\r\n")
        );
        assert_eq!(s.state(), State::Aborted);
    }

    #[test]
    fn syntax_errors_are_refusals_not_attempts() {
        let mut s = session_established();
        for _ in 0..5 {
            let Step::Reply(r) = s.on_line("bogus") else {
                panic!()
            };
            assert_eq!(r, "-ERR [SYNTAX] unknown command\r\n");
        }
        assert_eq!(s.state(), State::Established);
    }

    #[test]
    fn chatm_with_own_name_in_another_case_is_relayed_as_written() {
        let mut s = session_established();
        let Step::Chat { line, recipient } = s.on_line("chatm ALICE bob hi  there") else {
            panic!()
        };
        assert_eq!(line, "chatm ALICE bob hi  there\r\n");
        assert_eq!(&line[recipient], "bob");
    }

    #[test]
    fn chatm_with_another_sender_is_spoofing() {
        let mut s = session_established();
        let c = closing(s.on_line("chatm mallory bob hi"));
        assert!(c.lines.starts_with("-ERR [SPOOF] "));
        assert!(c.lines.ends_with("cquit protocol violation\r\n"));
        assert_eq!(c.cause, Cause::Spoofing);
    }

    #[test]
    fn chatm_without_text_is_syntax() {
        let mut s = session_established();
        let Step::Reply(r) = s.on_line("chatm alice bob") else {
            panic!()
        };
        assert!(r.starts_with("-ERR [SYNTAX] "));
    }

    #[test]
    fn chatr_must_name_self_or_star() {
        let mut s = session_established();
        let Step::Hub(Request::Receipt { line, sender }) = s.on_line("chatr bob alice") else {
            panic!()
        };
        assert_eq!(line, "chatr bob alice\r\n");
        assert_eq!(&line[sender], "bob");
        assert_eq!(s.on_line("chatr bob *"), Step::Nothing);
        let c = closing(s.on_line("chatr bob carol"));
        assert!(c.lines.starts_with("-ERR [SPOOF] "));
    }

    #[test]
    fn pong_must_answer_the_outstanding_ping() {
        let mut s = session_established();
        let sent = Instant::now();
        let t1 = s.ping_now(sent);
        assert_eq!(
            s.on_line(&format!("+OK pong {t1}")),
            Step::PongAccepted(sent)
        );
        assert_eq!(s.ping_outstanding(), None);
        // A second pong answers nothing.
        let c = closing(s.on_line(&format!("+OK pong {t1}")));
        assert_eq!(
            c.cause,
            Cause::StrayPong {
                token: t1,
                expected: None
            }
        );
    }

    #[test]
    fn pong_with_another_token_is_a_violation_naming_the_expected_one() {
        let mut s = session_established();
        let t1 = s.ping_now(Instant::now());
        let c = closing(s.on_line("+OK pong t2"));
        assert_eq!(
            c.lines,
            format!(
                "-ERR [STATE] pong t2 does not match the outstanding ping: expected +OK pong {t1}\r\n\
                 cquit protocol violation\r\n"
            )
        );
        assert_eq!(
            c.cause,
            Cause::StrayPong {
                token: "t2".into(),
                expected: Some(t1.clone())
            }
        );
        assert_eq!(
            c.cause.to_string(),
            format!(
                "state violation: pong t2 does not match the outstanding ping: expected +OK pong {t1}"
            )
        );
        assert_eq!(s.state(), State::Aborted);
    }

    #[test]
    fn pong_without_an_outstanding_ping_is_a_violation_saying_so() {
        let mut s = session_established();
        let c = closing(s.on_line("+OK pong 1.1"));
        assert_eq!(
            c.lines,
            "-ERR [STATE] pong 1.1 answers no ping: none is outstanding\r\n\
             cquit protocol violation\r\n"
        );
        assert_eq!(
            c.cause.to_string(),
            "state violation: pong 1.1 answers no ping: none is outstanding"
        );
        assert_eq!(s.state(), State::Aborted);
    }

    /// A pong without a token stays a SYNTAX refusal (the connection stays); the text
    /// says what was expected, and the outstanding ping still awaits its pong.
    #[test]
    fn pong_without_a_token_is_a_syntax_refusal_saying_what_was_expected() {
        let mut s = session_established();
        assert_eq!(
            s.on_line("+OK pong"),
            Step::Reply(
                "-ERR [SYNTAX] pong without a token, and no ping is outstanding\r\n".into()
            )
        );
        let sent = Instant::now();
        let t1 = s.ping_now(sent);
        assert_eq!(
            s.on_line("+ok PONG"),
            Step::Reply(format!(
                "-ERR [SYNTAX] pong without a token: expected +OK pong {t1}\r\n"
            ))
        );
        assert_eq!(s.state(), State::Established);
        assert_eq!(
            s.on_line(&format!("+OK pong {t1}")),
            Step::PongAccepted(sent)
        );
    }

    /// `+OK` other than a pong is SYNTAX, with the keyword as the client wrote it.
    #[test]
    fn ok_that_is_not_a_pong_is_a_syntax_refusal() {
        let mut s = session_established();
        for (line, keyword) in [("+OK foo", "+OK"), ("+ok", "+ok"), ("+Ok ping t", "+Ok")] {
            assert_eq!(
                s.on_line(line),
                Step::Reply(format!(
                    "-ERR [SYNTAX] {keyword}: a client sends +OK only as +OK pong <token>\r\n"
                ))
            );
        }
        assert_eq!(s.state(), State::Established);
    }

    /// SYNTAX refusals echo the keyword as written and name what is wrong.
    #[test]
    fn syntax_refusals_echo_the_keyword_and_name_the_missing_argument() {
        let mut s = session_established();
        for (line, text) in [
            ("CNAME", "CNAME: missing <new>"),
            ("ChatR alice", "ChatR: missing <recipient>"),
            ("chatm alice bob", "chatm: empty message"),
            ("Users now", "Users: too many arguments"),
            ("NOTIF maybe", "NOTIF: expected on or off"),
        ] {
            assert_eq!(
                s.on_line(line),
                Step::Reply(format!("-ERR [SYNTAX] {text}\r\n")),
                "{line}"
            );
        }
    }

    #[test]
    fn cname_users_notif_go_to_the_hub() {
        let mut s = session_established();
        assert_eq!(
            s.on_line("cname Alice2"),
            Step::Hub(Request::Rename(Nick::parse("Alice2").unwrap()))
        );
        assert_eq!(s.on_line("users"), Step::Hub(Request::Users));
        assert_eq!(s.on_line("notif OFF"), Step::Hub(Request::Notif(false)));
        let Step::Reply(r) = s.on_line("cname 2x") else {
            panic!()
        };
        assert!(r.starts_with("-ERR [INVALID] ") && !r.contains("attempt"));
    }

    #[test]
    fn ping_timeout_aborts_and_shutdown_updates() {
        let mut s = session_established();
        let c = s.expired(Cause::PingTimeout);
        assert_eq!(c.lines, "cquit ping timeout\r\n");
        assert_eq!(s.state(), State::Aborted);
        s.on_closed(Closed::LingerRanOut);
        assert_eq!(s.state(), State::Closed);

        let mut s = session_established();
        s.on_end(&Cause::ServerShutdown);
        assert_eq!(s.state(), State::Update);
        s.on_closed(Closed::PeerClosed);
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn framing_violation_aborts() {
        let mut s = session_established();
        let c = s.on_frame_error(FrameError::TooLong);
        assert_eq!(
            c.lines,
            "-ERR [PDU] line longer than 510 bytes\r\ncquit protocol violation\r\n"
        );
    }
}

/// The timers of §5 (uname, ping) and §7, with time passed in.
mod timers {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A session registered as `alice`, accepted at `t0`, its last input at `t0`.
    fn established_at(t0: Instant) -> Session {
        let mut s = session_accepted_at(t0);
        let Step::Hub(Request::Register { nick, .. }) = s.on_line("uname alice") else {
            panic!("uname must ask the hub")
        };
        s.on_answer(Answer::Registered {
            nick,
            welcome_back: false,
        });
        s
    }

    /// The ping a session sends at `now`, with its token.
    fn ping(s: &mut Session, now: Instant) -> String {
        let Step::Send(line) = s.on_time(now) else {
            panic!("a ping was due at {now:?}")
        };
        let token = line
            .strip_prefix("ping ")
            .and_then(|t| t.strip_suffix("\r\n"));
        token.expect("a ping line").to_string()
    }

    #[test]
    fn the_negotiation_deadline_runs_from_accept() {
        let t0 = Instant::now();
        let mut s = session_accepted_at(t0);
        let deadline = t0 + settings().negotiate_timeout;
        assert_eq!(s.poll_at(), Some(deadline));
        assert_eq!(s.on_time(deadline - MS), Step::Nothing);
        let c = closing(s.on_time(deadline));
        assert_eq!(c.cause, Cause::NegotiationTimeout);
        assert_eq!(c.lines, "cquit negotiation timeout\r\n");
        assert_eq!(s.state(), State::Aborted);
        assert_eq!(s.poll_at(), None);
    }

    #[test]
    fn traffic_does_not_extend_the_negotiation_deadline() {
        let t0 = Instant::now();
        let mut s = session_accepted_at(t0);
        let deadline = t0 + settings().negotiate_timeout;
        s.on_input(deadline - MS);
        let Step::Reply(_) = s.on_line("uname 9lives") else {
            panic!("a refusal")
        };
        assert_eq!(s.poll_at(), Some(deadline));
        assert_eq!(
            closing(s.on_time(deadline)).cause,
            Cause::NegotiationTimeout
        );
    }

    #[test]
    fn a_ping_follows_ping_interval_of_silence() {
        let t0 = Instant::now();
        let mut s = established_at(t0);
        let due = t0 + settings().ping_interval;
        assert_eq!(s.poll_at(), Some(due));
        assert_eq!(s.on_time(due - MS), Step::Nothing);
        assert_eq!(ping(&mut s, due), "0.1");
        assert_eq!(s.ping_outstanding(), Some(due));
        assert_eq!(s.state(), State::Established);
    }

    #[test]
    fn input_postpones_the_ping() {
        let t0 = Instant::now();
        let mut s = established_at(t0);
        let later = t0 + 10 * MS;
        s.on_input(later);
        let due = later + settings().ping_interval;
        assert_eq!(s.poll_at(), Some(due));
        assert_eq!(s.on_time(due - MS), Step::Nothing);
        assert_eq!(ping(&mut s, due), "0.1");
    }

    #[test]
    fn a_pong_within_ping_timeout_keeps_the_connection() {
        let t0 = Instant::now();
        let mut s = established_at(t0);
        let sent = t0 + settings().ping_interval;
        let token = ping(&mut s, sent);
        let deadline = sent + settings().ping_timeout;
        assert_eq!(s.poll_at(), Some(deadline));
        assert_eq!(s.on_time(deadline - MS), Step::Nothing);
        s.on_input(deadline - MS);
        let pong = format!("+OK pong {token}");
        assert_eq!(s.on_line(&pong), Step::PongAccepted(sent));
        assert_eq!(s.on_time(deadline), Step::Nothing);
        // The next ping: an interval after the pong, with the next token.
        let next = deadline - MS + settings().ping_interval;
        assert_eq!(s.poll_at(), Some(next));
        assert_eq!(ping(&mut s, next), "0.2");
    }

    #[test]
    fn no_pong_within_ping_timeout_closes() {
        let t0 = Instant::now();
        let mut s = established_at(t0);
        let sent = t0 + settings().ping_interval;
        ping(&mut s, sent);
        let c = closing(s.on_time(sent + settings().ping_timeout));
        assert_eq!(c.cause, Cause::PingTimeout);
        assert_eq!(c.lines, "cquit ping timeout\r\n");
        assert_eq!(s.state(), State::Aborted);
    }

    #[test]
    fn other_traffic_does_not_replace_the_pong() {
        let t0 = Instant::now();
        let mut s = established_at(t0);
        let sent = t0 + settings().ping_interval;
        ping(&mut s, sent);
        s.on_input(sent + MS);
        assert_eq!(
            s.on_line("ping mine"),
            Step::Reply("+OK pong mine\r\n".into())
        );
        let deadline = sent + settings().ping_timeout;
        assert_eq!(s.poll_at(), Some(deadline));
        assert_eq!(closing(s.on_time(deadline)).cause, Cause::PingTimeout);
    }
}

mod closed {
    use super::*;

    #[test]
    fn no_input_is_read_after_the_close_began() {
        let mut s = session_established();
        closing(s.on_line("cquit"));
        assert_eq!(s.on_line("users"), Step::Nothing);
        assert_eq!(s.state(), State::Update);
    }
}

/// Property tests: random command sequences against the tables of §3 and §4.
mod properties {
    use super::*;
    use crate::protocol::fsm::TRANSITIONS;
    use proptest::prelude::*;

    fn any_line() -> impl Strategy<Value = String> {
        // Every keyword of the command table (§5), and some that are none.
        let known: Vec<String> = crate::protocol::command::COMMANDS
            .iter()
            .map(|c| c.keyword.to_string())
            .collect();
        let keyword = prop_oneof![
            10 => proptest::sample::select(known),
            1 => "[a-zA-Z+*-]{1,7}",
        ];
        let arg = prop_oneof![
            Just("alice".to_string()),
            Just("ALICE".to_string()),
            Just("bob".to_string()),
            Just("*".to_string()),
            Just("on".to_string()),
            Just("pong".to_string()),
            Just("p1".to_string()),
            "[ -~]{0,40}",
        ];
        (keyword, proptest::collection::vec(arg, 0..4))
            .prop_map(|(k, args)| std::iter::once(k).chain(args).collect::<Vec<_>>().join(" "))
    }

    /// Every line sent back is `+OK ...`, `-ERR [CODE] ...` with a code of §2, or
    /// `cquit <reason>`; after `+OK ... follows` (`capa`), items up to `.`.
    fn check_lines(text: &str) {
        const CODES: [&str; 8] = [
            "SYNTAX", "INVALID", "IN-USE", "NO-SUCH", "STATE", "PDU", "SPOOF", "FULL",
        ];
        let mut items = false;
        for l in text.split_terminator("\r\n") {
            if items {
                items = l != ".";
                continue;
            }
            let ok = l.starts_with("+OK ")
                || l.starts_with("cquit ")
                || CODES.iter().any(|c| l.starts_with(&format!("-ERR [{c}] ")));
            assert!(ok, "unexpected line {l:?}");
            items = l.starts_with("+OK ") && l.ends_with(" follows");
        }
        assert!(!items, "a list without its end: {text:?}");
    }

    proptest! {
        #[test]
        fn sessions_follow_the_tables(
            lines in proptest::collection::vec(any_line(), 1..40),
            hub_says_yes in any::<bool>(),
        ) {
            let mut s = session_negotiating();
            let mut failed = 0;
            for line in &lines {
                let before = s.state();
                let classified = command::classify(line);
                let cell = classified.legality_in(before);
                let step = s.on_line(line);
                let after = s.state();
                // Every state change is a row of §3.
                if before != after {
                    prop_assert!(TRANSITIONS.iter().any(|t| t.from == before && t.to == after));
                }
                match (&step, cell) {
                    // Closed states read nothing.
                    (_, None) => prop_assert_eq!(&step, &Step::Nothing),
                    // §4: a violation is a STATE error, then cquit, then ABORTED.
                    (Step::Close(c), Some(Legality::Violation)) => {
                        prop_assert!(c.lines.starts_with("-ERR [STATE] "));
                        prop_assert!(c.lines.ends_with("cquit protocol violation\r\n"));
                        prop_assert_eq!(after, State::Aborted);
                    }
                    (other, Some(Legality::Violation)) => {
                        prop_assert!(false, "violation not enforced: {:?}", other);
                    }
                    (Step::Close(c), Some(_)) => {
                        // A legal command may close: quit, a spoof, a stray pong or the
                        // last failed attempt — never with a STATE error for the keyword.
                        check_lines(&c.lines);
                        prop_assert!(matches!(after, State::Update | State::Aborted));
                    }
                    (Step::Reply(r), Some(_)) => {
                        check_lines(r);
                        prop_assert!(!r.starts_with("-ERR [STATE]"));
                        if r.starts_with("-ERR") && before == State::Negotiating {
                            failed += 1;
                            let attempt = format!("(attempt {failed} of 3)");
                            prop_assert!(r.contains(&attempt));
                        }
                    }
                    (Step::Hub(Request::Register { nick, attempt }), Some(Legality::Legal)) => {
                        prop_assert_eq!(classified.spec.map(|c| c.keyword), Some("uname"));
                        prop_assert_eq!(*attempt, Attempt { n: failed + 1, max: 3 });
                        if hub_says_yes {
                            s.on_answer(Answer::Registered { nick: nick.clone(), welcome_back: false });
                            prop_assert_eq!(s.state(), State::Established);
                        } else {
                            match s.on_answer(Answer::InUse) {
                                // The hub replied the counted -ERR (and cquit) itself.
                                Step::Nothing => {
                                    prop_assert!(!attempt.is_last());
                                    failed += 1;
                                }
                                Step::Close(c) => {
                                    prop_assert!(attempt.is_last());
                                    check_lines(&c.lines);
                                    prop_assert_eq!(s.state(), State::Aborted);
                                }
                                other => prop_assert!(false, "{:?}", other),
                            }
                        }
                    }
                    (_, Some(_)) => {}
                }
                prop_assert!(failed < 3 || s.state() != State::Negotiating);
            }
        }

    }
}
