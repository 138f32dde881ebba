//! Calendar arithmetic on plain integers: days since 1970-01-01, seconds since the epoch, fixed
//! time-zone offsets, ISO weeks, and FHIR date/dateTime/instant formatting.

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day number.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Seconds since the epoch of midnight UTC on a date.
pub(crate) fn ts(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * DAY
}

/// ISO 8601 week `(week-year, week)` of a day number.
pub(crate) fn iso_week(days: i64) -> (i64, u32) {
    // 1970-01-01 was a Thursday; weekday 0 = Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week as u32)
}

/// The day number of the Monday that starts an ISO week.
pub(crate) fn iso_week_monday(year: i64, week: u32) -> i64 {
    let jan4 = days_from_civil(year, 1, 4);
    let monday1 = jan4 - (jan4 + 3).rem_euclid(7);
    monday1 + 7 * (i64::from(week) - 1)
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The local day number of an instant at a fixed UTC offset in minutes.
pub(crate) fn local_day(t: i64, offset_min: i32) -> i64 {
    (t + i64::from(offset_min) * 60).div_euclid(DAY)
}

/// A FHIR dateTime with seconds and a fixed offset (`+00:00` is written as such, not `Z`).
pub(crate) fn date_time(t: i64, offset_min: i32) -> String {
    let local = t + i64::from(offset_min) * 60;
    let days = local.div_euclid(DAY);
    let secs = local.rem_euclid(DAY);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let off = offset_min.unsigned_abs();
    format!(
        "{}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        sign,
        off / 60,
        off % 60
    )
}

/// A FHIR instant in UTC with milliseconds (`2023-01-01T00:00:00.000Z`), as servers write
/// `meta.lastUpdated`.
pub(crate) fn instant(t: i64) -> String {
    let days = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}.000Z",
        date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses the date part of a FHIR date/dateTime/instant (`YYYY-MM-DD…`) into a day number.
pub(crate) fn parse_day(s: &str) -> Option<i64> {
    let y = s.get(0..4)?.parse().ok()?;
    let m = s.get(5..7)?.parse().ok()?;
    let d = s.get(8..10)?.parse().ok()?;
    Some(days_from_civil(y, m, d))
}

/// Whole years between two day numbers (age on `on` of someone born on `born`).
pub(crate) fn years_between(born: i64, on: i64) -> i64 {
    let (by, bm, bd) = civil_from_days(born);
    let (y, m, d) = civil_from_days(on);
    let mut age = y - by;
    if (m, d) < (bm, bd) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000, -1, 0, 1, 18_262, 19_358, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(days_from_civil(2020, 2, 29)), "2020-02-29");
    }

    #[test]
    fn iso_weeks_match_known_dates() {
        assert_eq!(iso_week(days_from_civil(2021, 1, 3)), (2020, 53));
        assert_eq!(iso_week(days_from_civil(2021, 1, 4)), (2021, 1));
        assert_eq!(iso_week(days_from_civil(2019, 12, 30)), (2020, 1));
        assert_eq!(iso_week(days_from_civil(2022, 1, 2)), (2021, 52));
        assert_eq!(iso_week_monday(2021, 1), days_from_civil(2021, 1, 4));
        assert_eq!(iso_week_monday(2020, 1), days_from_civil(2019, 12, 30));
    }

    #[test]
    fn formats_fhir_times() {
        let t = ts(2020, 3, 13) + 23 * 3600 + 24 * 60 + 19;
        assert_eq!(date_time(t, -300), "2020-03-13T18:24:19-05:00");
        assert_eq!(date_time(t, 60), "2020-03-14T00:24:19+01:00");
        assert_eq!(instant(t), "2020-03-13T23:24:19.000Z");
        assert_eq!(
            years_between(days_from_civil(2000, 5, 2), days_from_civil(2020, 5, 1)),
            19
        );
    }
}
