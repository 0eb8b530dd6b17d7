//! Wall-clock times in the state file (xscp(7) §5.9: a hold's expiry as UTC time), written
//! and read as RFC 3339 to the second: `2026-12-07T00:45:12Z`. Written with the crate's
//! clock ([`crate::clock`]); read back here (Howard Hinnant's `days_from_civil`), for years
//! 1970 to 9999.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Utc;

/// 9999-12-31T23:59:59Z, the latest time written: later ones are written as it.
const LATEST: Duration = Duration::from_secs(253_402_300_799);

/// `at` as `YYYY-MM-DDTHH:MM:SSZ`, the fraction of a second rounded up (a hold written
/// down never ends earlier than it would have).
pub fn format(at: SystemTime) -> String {
    // Past the year 9999 (a `--hold` of millennia) the file would not read back.
    let since = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .min(LATEST);
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    let t = Utc::at(UNIX_EPOCH + Duration::from_secs(secs));
    format!("{:04}-{:02}-{:02}T{}Z", t.year, t.month, t.day, t.time())
}

/// Parses what [`format`] writes (exactly that shape: no fraction, no other offset than
/// `Z`). `None` if it is not a valid time of years 1970 to 9999.
pub fn parse(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[19] != b'Z' || b[10] != b'T' {
        return None;
    }
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        let digits = s.get(from..to)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let month_days = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year < 1970 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days from 1970-01-01 to a valid date of a year from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * mp + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(format(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format(at(1_796_161_658)), "2026-12-01T21:47:38Z");
        assert_eq!(format(at(253_402_300_799)), "9999-12-31T23:59:59Z");
        assert_eq!(format(at(u64::MAX / 4)), "9999-12-31T23:59:59Z");
        // A fraction rounds up.
        let later = at(59) + Duration::from_millis(1);
        assert_eq!(format(later), "1970-01-01T00:01:00Z");
    }

    #[test]
    fn what_is_written_is_read_back() {
        for secs in (0..253_402_300_800u64).step_by(86_399 * 997 + 13) {
            assert_eq!(parse(&format(at(secs))), Some(at(secs)), "{secs}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "2026-12-01T21:47:38",
            "2026-12-01 21:47:38Z",
            "2026-12-01T21:47:38.5Z",
            "2026-12-01T21:47:38+00:00",
            "2026-13-01T21:47:38Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-12-32T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T23:60:00Z",
            "1969-12-31T23:59:59Z",
            "+026-12-01T21:47:38Z",
            "2026-1a-01T21:47:38Z",
            "２０２６-12-01T21:47:38Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse("2024-02-29T00:00:00Z").is_some());
        assert!(parse("2000-02-29T00:00:00Z").is_some());
    }
}
