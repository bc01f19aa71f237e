//! UTC timestamps as FTP writes them: `YYYYMMDDHHMMSS` (MDTM, MFMT, MLSD `modify`; RFC 3659 §2.3)
//! and the month/day of `ls -l` listings.
//!
//! The conversions between Unix seconds and civil dates are Howard Hinnant's `days_from_civil` /
//! `civil_from_days`, exact for the proleptic Gregorian calendar; no clock is read here.

use std::fmt::Write as _;

/// A UTC date and time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcDateTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

pub const MONTH_ABBREVIATIONS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl UtcDateTime {
    /// The date and time of a Unix timestamp.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since the Unix epoch.
    pub fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Parses `YYYYMMDDHHMMSS`, optionally followed by `.` and up to three digits of fraction
    /// (RFC 3659 `time-val`), which are ignored. Returns `None` for anything else, including
    /// impossible dates such as February 30th.
    pub fn parse_mdtm(text: &[u8]) -> Option<Self> {
        let (digits, fraction) = match text.iter().position(|&b| b == b'.') {
            Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
            None => (text, None),
        };
        if digits.len() != 14 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if let Some(fraction) = fraction
            && (fraction.is_empty()
                || fraction.len() > 3
                || !fraction.iter().all(u8::is_ascii_digit))
        {
            return None;
        }
        let number = |range: std::ops::Range<usize>| {
            digits[range]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let value = Self {
            year: number(0..4) as i32,
            month: number(4..6) as u8,
            day: number(6..8) as u8,
            hour: number(8..10) as u8,
            minute: number(10..12) as u8,
            second: number(12..14) as u8,
        };
        let valid = (1..=12).contains(&value.month)
            && value.day >= 1
            && value.day <= days_in_month(value.year, value.month)
            && value.hour < 24
            && value.minute < 60
            && value.second < 60;
        valid.then_some(value)
    }

    /// Appends `YYYYMMDDHHMMSS`.
    pub fn write_mdtm(self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
    }

    pub fn to_mdtm(self) -> String {
        let mut out = String::with_capacity(14);
        self.write_mdtm(&mut out);
        out
    }
}

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(UtcDateTime::from_unix(0).to_mdtm(), "19700101000000");
        assert_eq!(
            UtcDateTime::from_unix(951_782_400).to_mdtm(),
            "20000229000000"
        );
        assert_eq!(
            UtcDateTime::from_unix(1_795_392_000).to_mdtm(),
            "20261123000000"
        );
        assert_eq!(UtcDateTime::from_unix(-1).to_mdtm(), "19691231235959");
    }

    #[test]
    fn parses_mdtm_with_and_without_fraction() {
        let t = UtcDateTime::parse_mdtm(b"20261123085513").unwrap();
        assert_eq!(t.to_unix(), 1_795_392_000 + 8 * 3600 + 55 * 60 + 13);
        assert_eq!(UtcDateTime::parse_mdtm(b"20261123085513.123"), Some(t));
    }

    #[test]
    fn refuses_impossible_dates_and_bad_syntax() {
        for bad in [
            &b"20260230000000"[..],
            b"20261301000000",
            b"20261123246000",
            b"2026112308551",
            b"20261123085513.",
            b"20261123085513.1234",
            b"2026112308551x",
        ] {
            assert_eq!(UtcDateTime::parse_mdtm(bad), None, "{bad:?}");
        }
        assert!(UtcDateTime::parse_mdtm(b"20240229000000").is_some());
    }

    proptest! {
        #[test]
        fn unix_round_trip(secs in -10_000_000_000i64..100_000_000_000) {
            let t = UtcDateTime::from_unix(secs);
            prop_assert_eq!(t.to_unix(), secs);
            if (0..=9999).contains(&t.year) {
                prop_assert_eq!(UtcDateTime::parse_mdtm(t.to_mdtm().as_bytes()), Some(t));
            }
        }
    }
}
