//! The wall clock in UTC, for people: the log's time stamps, the client's `--timestamps`
//! and the end of a name hold. UTC, so that no time-zone database is needed. The one
//! place that turns a `SystemTime` into a date and a time of day. Imports nothing of the
//! crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A moment in UTC, broken down (a time before 1970 reads as 1970-01-01T00:00:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: u64,
    pub month: u64,
    pub day: u64,
    /// Seconds since midnight.
    pub of_day: u64,
    pub micros: u32,
}

impl Utc {
    pub fn at(at: SystemTime) -> Utc {
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
        Utc {
            year,
            month,
            day,
            of_day,
            micros: since.subsec_micros(),
        }
    }

    pub fn now() -> Utc {
        Utc::at(SystemTime::now())
    }

    /// RFC 3339 to the microsecond, always 27 characters: `2026-12-01T21:47:38.041200Z`.
    pub fn rfc3339(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{}.{:06}Z",
            self.year,
            self.month,
            self.day,
            self.time(),
            self.micros
        )
    }

    /// The time of day to the millisecond: `21:47:38.041`.
    pub fn time_millis(self) -> String {
        format!("{}.{:03}", self.time(), self.micros / 1000)
    }

    /// The time of day to the second: `21:47:38`.
    pub fn time(self) -> String {
        let s = self.of_day;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        Utc::at(UNIX_EPOCH + Duration::new(secs, micros * 1000)).rfc3339()
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

    #[test]
    fn times_of_day() {
        let t = Utc::at(UNIX_EPOCH + Duration::new(1_796_161_658, 41_200_000));
        assert_eq!(t.time_millis(), "21:47:38.041");
        assert_eq!(t.time(), "21:47:38");
        assert_eq!(Utc::now().time_millis().len(), 12);
    }
}
