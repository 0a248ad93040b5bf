//! Calendar values as TiDB writes them (`DATE`, `DATETIME`, `TIMESTAMP`):
//! zone-less, with MySQL's zero dates allowed, and exactly as many
//! fractional digits as the column has, so a value prints back as the
//! server sent it.
//!
//! Not for: time zones or arithmetic; convert to a date library at the
//! edge if a handler needs those. Kept here so the driver needs no date
//! crate in the Worker.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `DATE`: year, month and day. MySQL's zero date (`0000-00-00`) and zero
/// parts are representable because the server can return them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A real calendar date (no zero parts, day within its month).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        valid.then_some(Date { year, month, day })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

/// A `DATETIME` or `TIMESTAMP` value, zone-less, to the microsecond.
/// Two values are equal when they name the same instant, whatever their
/// number of fractional digits.
#[derive(Clone, Copy)]
pub struct DateTime {
    date: Date,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
    /// Fractional digits to print (the column's `fsp`, 0 to 6).
    digits: u8,
}

impl DateTime {
    /// A valid date and time of day, without fraction.
    pub fn new(date: Date, hour: u8, minute: u8, second: u8) -> Option<Self> {
        (hour < 24 && minute < 60 && second < 60).then_some(DateTime {
            date,
            hour,
            minute,
            second,
            micros: 0,
            digits: 0,
        })
    }

    /// The same time with a fraction of a second (printed with six digits,
    /// or three when it is whole milliseconds).
    pub fn with_micros(mut self, micros: u32) -> Option<Self> {
        if micros >= 1_000_000 {
            return None;
        }
        self.micros = micros;
        self.digits = if micros == 0 {
            0
        } else if micros.is_multiple_of(1000) {
            3
        } else {
            6
        };
        Some(self)
    }

    pub fn date(self) -> Date {
        self.date
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }

    pub fn second(self) -> u8 {
        self.second
    }

    pub fn micros(self) -> u32 {
        self.micros
    }

    fn key(self) -> (Date, u8, u8, u8, u32) {
        (self.date, self.hour, self.minute, self.second, self.micros)
    }

    /// Writes `YYYY-MM-DD<sep>HH:MM:SS` plus `digits` fractional digits.
    ///
    /// The digits are laid out by hand: the formatter's zero padding
    /// (`{:02}` five times, and the fraction through a `String` of its
    /// own) was most of what reading a page write's locked time cost in
    /// its wasm CPU profile (BENCHMARKS.md, thirty-fifth pass).
    pub(crate) fn write(self, out: &mut impl fmt::Write, sep: char, digits: u8) -> fmt::Result {
        if !sep.is_ascii() || self.date.year > 9999 {
            return self.write_padded(out, sep, digits);
        }
        let mut text = *b"0000-00-00 00:00:00.000000";
        put_digits(&mut text[0..4], self.date.year.into());
        put_digits(&mut text[5..7], self.date.month.into());
        put_digits(&mut text[8..10], self.date.day.into());
        text[10] = sep as u8;
        put_digits(&mut text[11..13], self.hour.into());
        put_digits(&mut text[14..16], self.minute.into());
        put_digits(&mut text[17..19], self.second.into());
        put_digits(&mut text[20..26], self.micros.into());
        let len = match digits.min(6) {
            0 => 19,
            digits => 20 + usize::from(digits),
        };
        out.write_str(std::str::from_utf8(&text[..len]).expect("ASCII digits and separators"))
    }

    /// [`DateTime::write`] through the formatter, for what its layout does
    /// not hold (a year past 9999, a separator that is not ASCII).
    fn write_padded(self, out: &mut impl fmt::Write, sep: char, digits: u8) -> fmt::Result {
        write!(
            out,
            "{}{sep}{:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        )?;
        if digits > 0 {
            let all = format!("{:06}", self.micros);
            write!(out, ".{}", &all[..usize::from(digits.min(6))])?;
        }
        Ok(())
    }
}

/// Writes `n` in decimal into all of `out`, zero-padded on the left; only
/// the lowest digits are kept if it has more than `out` holds.
pub(crate) fn put_digits(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl PartialEq for DateTime {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for DateTime {}

impl PartialOrd for DateTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DateTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for DateTime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, ' ', self.digits)
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateTime({self})")
    }
}

/// Text that is not a MySQL date or datetime literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimeError(String);

impl fmt::Display for ParseTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a MySQL date/time: {:?}", self.0)
    }
}

impl std::error::Error for ParseTimeError {}

fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl FromStr for Date {
    type Err = ParseTimeError;

    /// `YYYY-MM-DD`, zero parts allowed (as the server may return them).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimeError(text.to_owned());
        let mut parts = text.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let (year, month, day) = (
            number(y, 4).ok_or_else(err)?,
            number(m, 2).ok_or_else(err)?,
            number(d, 2).ok_or_else(err)?,
        );
        if month > 12 || day > 31 {
            return Err(err());
        }
        Ok(Date {
            year: year as u16,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl FromStr for DateTime {
    type Err = ParseTimeError;

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (a `T` is accepted for the space).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimeError(text.to_owned());
        if text.len() < 19 || !text.is_char_boundary(10) || !text.is_char_boundary(11) {
            return Err(err());
        }
        let date: Date = text[..10].parse().map_err(|_| err())?;
        if !matches!(&text[10..11], " " | "T") {
            return Err(err());
        }
        let (clock, fraction) = match text[11..].split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (&text[11..], None),
        };
        let mut parts = clock.split(':');
        let (Some(h), Some(mi), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let (hour, minute, second) = (
            number(h, 2).ok_or_else(err)?,
            number(mi, 2).ok_or_else(err)?,
            number(s, 2).ok_or_else(err)?,
        );
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err());
        }
        let (micros, digits) = match fraction {
            None => (0, 0),
            Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                let padded = format!("{f:0<6}");
                (padded.parse().map_err(|_| err())?, f.len() as u8)
            }
            Some(_) => return Err(err()),
        };
        Ok(DateTime {
            date,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            micros,
            digits,
        })
    }
}

macro_rules! serde_as_text {
    ($ty:ty, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
    };
}

serde_as_text!(Date, "a date as YYYY-MM-DD");
serde_as_text!(DateTime, "a datetime as YYYY-MM-DD HH:MM:SS[.ffffff]");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_prints_back_unchanged() {
        for text in [
            "2024-02-29 23:59:59",
            "9999-12-31 23:59:59",
            "1973-12-30 15:30:00.5",
            "2024-01-01 00:00:00.123456",
            "0000-00-00 00:00:00",
        ] {
            let value: DateTime = text.parse().unwrap();
            assert_eq!(value.to_string(), text);
        }
        for text in ["1977-01-01", "0000-00-00"] {
            assert_eq!(text.parse::<Date>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn digits_laid_out_by_hand_match_the_formatters() {
        use proptest::prelude::*;
        let any_time = (
            (0u16..=10_000, 0u8..=12, 0u8..=31),
            (0u8..24, 0u8..60, 0u8..60),
            0u32..1_000_000,
            0u8..=8,
        );
        let any_separator = prop::sample::select(vec![' ', 'T', 'é']);
        proptest!(|(((year, month, day), (hour, minute, second), micros, digits) in any_time,
                     sep in any_separator)| {
            let value = DateTime {
                date: Date { year, month, day },
                hour,
                minute,
                second,
                micros,
                digits,
            };
            let (mut by_hand, mut padded) = (String::new(), String::new());
            value.write(&mut by_hand, sep, digits).unwrap();
            value.write_padded(&mut padded, sep, digits).unwrap();
            prop_assert_eq!(by_hand, padded);
        });
    }

    #[test]
    fn put_digits_pads_and_keeps_the_lowest_digits() {
        let mut out = [0u8; 4];
        put_digits(&mut out, 7);
        assert_eq!(&out, b"0007");
        put_digits(&mut out, 123_456);
        assert_eq!(&out, b"3456");
    }

    #[test]
    fn equality_ignores_the_number_of_fractional_digits() {
        let a: DateTime = "2024-01-01 10:00:00".parse().unwrap();
        let b: DateTime = "2024-01-01 10:00:00.000".parse().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, "2024-01-01 10:00:00.001".parse::<DateTime>().unwrap());
    }

    #[test]
    fn garbage_is_refused() {
        for text in [
            "",
            "2024-1-01",
            "2024-13-01",
            "2024-01-01X00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 00:00:00.",
            "2024-01-01 00:00:00.1234567",
            "２０２４-01-01 00:00:00",
        ] {
            assert!(text.parse::<DateTime>().is_err(), "{text}");
        }
        assert!(
            "2024-02-30".parse::<Date>().is_ok(),
            "the server's text is trusted"
        );
        assert!(Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2024, 2, 29).is_some());
    }

    #[test]
    fn constructed_values_print_milliseconds_or_microseconds() {
        let day = Date::new(2022, 2, 8).unwrap();
        let at = DateTime::new(day, 13, 15, 45).unwrap();
        assert_eq!(at.to_string(), "2022-02-08 13:15:45");
        assert_eq!(
            at.with_micros(120_000).unwrap().to_string(),
            "2022-02-08 13:15:45.120"
        );
        assert_eq!(
            at.with_micros(7).unwrap().to_string(),
            "2022-02-08 13:15:45.000007"
        );
    }

    #[test]
    fn serde_round_trips_through_text() {
        let value: DateTime = "2024-05-06 07:08:09.25".parse().unwrap();
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, "\"2024-05-06 07:08:09.25\"");
        assert_eq!(serde_json::from_str::<DateTime>(&json).unwrap(), value);
    }
}
