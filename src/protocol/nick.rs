//! Nicknames (xscp(7) §5, `uname`): 1–16 ASCII characters, first a letter, then letters,
//! digits, `-` or `_`. Uniqueness is case-insensitive; the spelling given is kept.
//!
//! Parse, don't validate: once a [`Nick`] exists it is valid.

use std::fmt;

/// The longest nickname.
pub const MAX_NICK: usize = 16;

/// A valid nickname, spelled as the client gave it, kept inline (no allocation: every
/// registered connection's session and its entry in the hub keep one each).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nick {
    len: u8,
    /// ASCII (see [`Nick::parse`]); the bytes past `len` are zero.
    bytes: [u8; MAX_NICK],
}

/// Why a string is not a nickname. Its text, which the `-ERR [INVALID]` carries, is
/// written in `reply.rs` with every other reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidNick;

impl Nick {
    /// Parses `s` as a nickname.
    pub fn parse(s: &str) -> Result<Nick, InvalidNick> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(u8::is_ascii_alphabetic);
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !(first_ok && rest_ok && b.len() <= MAX_NICK) {
            return Err(InvalidNick);
        }
        let mut nick = Nick {
            len: b.len() as u8,
            bytes: [0; MAX_NICK],
        };
        nick.bytes[..b.len()].copy_from_slice(b);
        Ok(nick)
    }

    /// The nickname as spelled.
    pub fn as_str(&self) -> &str {
        // ASCII, so always UTF-8: the fallback is never taken.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The key under which the nickname is unique: its ASCII lower case.
    pub fn key(&self) -> NickKey {
        NickKey::of(self.as_str()).unwrap_or_default()
    }

    /// Does `other` name this nickname, ignoring case? (Bytes compared as they are: this
    /// runs for every `chatm` a client sends, its sender field.)
    pub fn matches(&self, other: &str) -> bool {
        self.bytes[..usize::from(self.len)].eq_ignore_ascii_case(other.as_bytes())
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Nick").field(&self.as_str()).finish()
    }
}

/// A nickname folded to lower case, kept inline (no allocation): the key of the name maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NickKey {
    len: u8,
    bytes: [u8; MAX_NICK],
}

impl NickKey {
    /// The key for `name`, or `None` if `name` is too long to be any nickname.
    pub fn of(name: &str) -> Option<NickKey> {
        let b = name.as_bytes();
        if b.len() > MAX_NICK {
            return None;
        }
        let mut key = NickKey {
            len: b.len() as u8,
            bytes: [0; MAX_NICK],
        };
        for (k, c) in key.bytes.iter_mut().zip(b) {
            *k = c.to_ascii_lowercase();
        }
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_nicknames() {
        for n in ["a", "alice", "Bob_2", "x-y", "abcdefghijklmnop"] {
            assert_eq!(Nick::parse(n).map(|n| n.to_string()), Ok(n.to_string()));
        }
    }

    #[test]
    fn invalid_nicknames() {
        for n in [
            "",
            "1abc",
            "_a",
            "-a",
            "a b",
            "a.b",
            "abcdefghijklmnopq",
            "é",
            "a*",
        ] {
            assert_eq!(Nick::parse(n), Err(InvalidNick), "{n:?}");
        }
    }

    #[test]
    fn a_nickname_keeps_its_spelling_and_compares_by_it() {
        let nick = Nick::parse("Bob_2").unwrap();
        assert_eq!(nick.as_str(), "Bob_2");
        assert_eq!(format!("{nick:?}"), "Nick(\"Bob_2\")");
        assert_eq!(nick, Nick::parse("Bob_2").unwrap());
        assert_ne!(nick, Nick::parse("bob_2").unwrap());
        assert_ne!(Nick::parse("ab").unwrap(), Nick::parse("abc").unwrap());
        assert!(nick.matches("BOB_2"));
        assert_eq!(
            Nick::parse("abcdefghijklmnop").unwrap().as_str().len(),
            MAX_NICK
        );
    }

    #[test]
    fn keys_ignore_case() {
        assert_eq!(NickKey::of("Alice"), NickKey::of("aLICE"));
        assert_ne!(NickKey::of("alice"), NickKey::of("alicf"));
        assert_eq!(NickKey::of(&"a".repeat(17)), None);
        assert_eq!(
            Nick::parse("Bob").unwrap().key(),
            NickKey::of("bob").unwrap()
        );
    }
}
