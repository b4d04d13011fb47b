//! Time as integer epoch milliseconds, read from an injectable clock, and its wire form.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where "now" comes from. Production uses [`SystemClock`]; tests move a [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 in UTC with millisecond precision and `Z` (CONTRACT §1.4).
pub fn format_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Parses an RFC 3339 `date-time` (any offset) into epoch milliseconds: exactly the grammar of
/// RFC 3339 §5.6 as JSON Schema's `format: date-time` reads it, so the document can say what the
/// server takes. `YYYY-MM-DDTHH:MM:SS`, any number of fraction digits (read to the millisecond),
/// `Z` or `±HH:MM`; `T` and `Z` in either case; a real calendar day; second 60 only where it can
/// be a leap second (23:59 in UTC), read as the last millisecond of that minute (Unix time has no
/// leap seconds). What a general parser also takes (a space for `T`, `+0100`, a bare date, an
/// annotation like `[Europe/Paris]`, six-digit years) is refused.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i).is_some_and(|x| x.eq_ignore_ascii_case(&c));
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let mut i = 19;
    let mut millis = 0;
    if at(i, b'.') {
        let fraction = &b[i + 1..];
        let count = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        let head = &fraction[..count.min(3)];
        millis = head.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')) * 10_i64.pow(3 - head.len() as u32);
        i += 1 + count;
    }
    let offset_minutes = if at(i, b'Z') && b.len() == i + 1 {
        0
    } else if matches!(b.get(i), Some(b'+' | b'-')) && at(i + 3, b':') && b.len() == i + 6 {
        let (oh, om) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        if b[i] == b'-' { -(oh * 60 + om) } else { oh * 60 + om }
    } else {
        return None;
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let local_minutes = hour * 60 + minute;
    if second == 60 && (local_minutes - offset_minutes).rem_euclid(1440) != 23 * 60 + 59 {
        return None;
    }
    let (second, millis) = if second == 60 { (59, 999) } else { (second, millis) };
    let days = days_from_civil(year, month, day);
    Some(((days * 1440 + local_minutes - offset_minutes) * 60 + second) * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_rfc3339("2025-11-24T17:00:00.123+01:00"), Some(1_764_000_000_123));
    }

    #[test]
    fn reads_rfc_3339_date_times_and_nothing_else() {
        // Agrees with jiff's parser wherever RFC 3339 allows the form (jiff reads at most nine
        // fraction digits, so the cases cut theirs to three, as the server reads them).
        for (s, same_as) in [
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
            ("2025-11-24T17:00:00.123+01:00", "2025-11-24T17:00:00.123+01:00"),
            ("2000-02-29T23:59:59.9999999999-08:30", "2000-02-29T23:59:59.999-08:30"),
            ("2000-02-29T23:59:59.5-08:30", "2000-02-29T23:59:59.500-08:30"),
            ("2000-02-29T23:59:59.05+00:00", "2000-02-29T23:59:59.050Z"),
            ("0000-03-01T00:00:00Z", "0000-03-01T00:00:00Z"),
            ("9999-12-30T23:59:59.999+23:59", "9999-12-30T23:59:59.999+23:59"),
            ("2026-06-30t12:00:00z", "2026-06-30T12:00:00Z"),
            ("1969-12-31T23:59:59.5-00:00", "1969-12-31T23:59:59.500Z"),
            ("1600-02-29T00:00:00Z", "1600-02-29T00:00:00Z"),
        ] {
            let expected = same_as.parse::<jiff::Timestamp>().expect(same_as).as_millisecond();
            assert_eq!(parse_rfc3339(s), Some(expected), "{s}");
        }
        // Leap seconds as JSON Schema's test suite reads them: only at 23:59 UTC.
        assert_eq!(parse_rfc3339("1998-12-31T23:59:60Z"), parse_rfc3339("1998-12-31T23:59:59.999Z"));
        assert_eq!(parse_rfc3339("1998-12-31T15:59:60.123-08:00"), parse_rfc3339("1998-12-31T23:59:59.999Z"));
        for s in [
            "1998-12-31T23:58:60Z",
            "1998-12-31T22:59:60Z",
            "1998-12-31T23:59:60+01:00",
            "",
            "2025-11-24",
            "2025-11-24 17:00:00Z",
            "2025-11-24T17:00Z",
            "2025-11-24T17:00:00",
            "2025-11-24T17:00:00+0100",
            "2025-11-24T17:00:00+01",
            "2025-11-24T17:00:00.Z",
            "2025-11-24T17:00:00Z[Europe/Paris]",
            "2025-11-24T17:00:00ZZ",
            "+002025-11-24T17:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-01-00T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T23:60:00Z",
            "2025-01-01T23:59:61Z",
            "2025-01-01T00:00:00+24:00",
            "2025-01-01T00:00:00+01:60",
            "2025-01-01T00:00:00\u{661}Z",
            "2\u{660}25-01-01T00:00:00Z",
            "2025-01-01T00:00:00.\u{661}Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?} is not an RFC 3339 date-time");
        }
    }

    #[test]
    fn agrees_with_json_schema_date_time() {
        let format = jsonschema::options()
            .should_validate_formats(true)
            .build(&serde_json::json!({"type": "string", "format": "date-time"}))
            .expect("schema");
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.9999999999-08:30",
            "2026-06-30t12:00:00z",
            "1998-12-31T23:59:60Z",
            "1998-12-31T15:59:60.123-08:00",
            "1998-12-31T23:58:60Z",
            "2025-11-24 17:00:00Z",
            "2025-11-24T17:00:00+0100",
            "2025-11-24T17:00:00",
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00+24:00",
            "2025-11-24T17:00:00.Z",
        ] {
            assert_eq!(
                parse_rfc3339(s).is_some(),
                format.is_valid(&serde_json::json!(s)),
                "{s:?}: the server and JSON Schema's date-time disagree"
            );
        }
    }
}
