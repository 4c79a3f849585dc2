//! Working-day (工作日) calendar for deadlines.
//!
//! Chinese administrative deadlines are counted in working days: Monday to
//! Friday, minus statutory holidays, plus the make-up working days (调休) that
//! the State Council moves onto weekends around long holidays. The weekly
//! pattern is computed; only the exceptions are data ([`CalendarEntry`] rows),
//! shipped for the current years in `src/seed/calendar.csv` and editable by
//! administrators.
//!
//! Deadlines are local dates in China Standard Time while timestamps are kept
//! in UTC, so [`local_date`] is the one place where "today" is decided.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// The built-in holiday / make-up workday rows (`date,kind,name`), embedded so
/// that a fresh installation computes correct deadlines without any set-up.
const BUILTIN_CSV: &str = include_str!("seed/calendar.csv");

/// Offset of China Standard Time from UTC in seconds (UTC+8; China has no DST).
pub const CHINA_OFFSET_SECONDS: i32 = 8 * 3600;

/// [`CHINA_OFFSET_SECONDS`] as a chrono offset. Evaluated at compile time, so
/// an out-of-range constant would be a build error rather than a runtime panic.
const CHINA_OFFSET: FixedOffset = match FixedOffset::east_opt(CHINA_OFFSET_SECONDS) {
    Some(offset) => offset,
    None => panic!("CHINA_OFFSET_SECONDS is out of range"),
};

/// The instant `now` on the clock in China Standard Time (for display).
///
/// A submission at 2025-09-30T16:30Z is already 1 October in Beijing, and its
/// deadline must be counted from the Beijing date.
pub fn local_time(now: DateTime<Utc>) -> DateTime<FixedOffset> {
    now.with_timezone(&CHINA_OFFSET)
}

/// The calendar date in China Standard Time at the instant `now`.
pub fn local_date(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&CHINA_OFFSET).date_naive()
}

/// Errors from reading calendar data.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The CSV could not be read or a row did not have a valid date / kind.
    #[error("calendar CSV is malformed: {0}")]
    Csv(#[from] csv::Error),
    /// A `kind` other than `holiday` or `workday`.
    #[error("unknown calendar day kind {0:?} (expected \"holiday\" or \"workday\")")]
    UnknownKind(String),
    /// The same date appears twice; refused because which row should win is a
    /// data-entry question, not something to guess.
    #[error("calendar date {0} appears more than once")]
    DuplicateDate(NaiveDate),
}

/// What an override row says about its date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayKind {
    /// A day off even if it falls Monday–Friday (法定节假日).
    Holiday,
    /// A working day even if it falls on a weekend (调休上班).
    Workday,
}

impl DayKind {
    /// The form used in CSV files and the database: `"holiday"` or `"workday"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Holiday => "holiday",
            Self::Workday => "workday",
        }
    }

    /// Parses `"holiday"` or `"workday"` (exactly, as written by [`DayKind::as_str`]).
    ///
    /// # Errors
    ///
    /// [`CalendarError::UnknownKind`] for any other string.
    pub fn parse(s: &str) -> Result<Self, CalendarError> {
        match s {
            "holiday" => Ok(Self::Holiday),
            "workday" => Ok(Self::Workday),
            other => Err(CalendarError::UnknownKind(other.to_owned())),
        }
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DayKind {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One exception to the Monday–Friday rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEntry {
    /// The local (China) date the row applies to.
    pub date: NaiveDate,
    /// Whether the date is a day off or a working day.
    pub kind: DayKind,
    /// Human-readable reason, e.g. `国庆节` or `国庆节调休`, shown next to deadlines.
    pub name: String,
}

/// Parses calendar rows from CSV text with the header `date,kind,name`
/// (dates as `YYYY-MM-DD`).
///
/// # Errors
///
/// [`CalendarError::Csv`] for unreadable rows, bad dates or unknown kinds, and
/// [`CalendarError::DuplicateDate`] when a date occurs twice.
pub fn parse_entries_csv(text: &str) -> Result<Vec<CalendarEntry>, CalendarError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for row in reader.deserialize::<CalendarEntry>() {
        let entry = row?;
        if !seen.insert(entry.date) {
            return Err(CalendarError::DuplicateDate(entry.date));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The holiday and make-up workday rows embedded in the binary
/// (`src/seed/calendar.csv`).
///
/// # Errors
///
/// Only if the embedded file is broken, which the tests rule out.
pub fn builtin_entries() -> Result<Vec<CalendarEntry>, CalendarError> {
    parse_entries_csv(BUILTIN_CSV)
}

/// Monday to Friday, ignoring any overrides.
fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// A working-day calendar: the Monday–Friday pattern plus override rows.
///
/// `Calendar::default()` has no overrides, i.e. every Monday–Friday is a
/// working day.
#[derive(Clone, Debug, Default)]
pub struct Calendar {
    /// Override rows by date. A `BTreeMap` so that the range queries in
    /// [`Calendar::working_days_between`] are cheap.
    overrides: BTreeMap<NaiveDate, CalendarEntry>,
}

impl Calendar {
    /// Builds a calendar from override rows (the whole [`CalendarEntry`] is
    /// kept so that [`Calendar::entry`] can say *why* a date is special).
    ///
    /// If a date occurs more than once the last row wins, so callers can
    /// layer administrator edits after the built-in rows.
    pub fn new(entries: impl IntoIterator<Item = CalendarEntry>) -> Self {
        let overrides = entries
            .into_iter()
            .map(|entry| (entry.date, entry))
            .collect();
        Self { overrides }
    }

    /// A calendar from [`builtin_entries`].
    ///
    /// # Errors
    ///
    /// Only if the embedded file is broken, which the tests rule out.
    pub fn builtin() -> Result<Self, CalendarError> {
        Ok(Self::new(builtin_entries()?))
    }

    /// The override row for `date`, if there is one.
    pub fn entry(&self, date: NaiveDate) -> Option<&CalendarEntry> {
        self.overrides.get(&date)
    }

    /// Whether `date` is a working day: an override row decides if present,
    /// otherwise Monday–Friday are working days.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.overrides.get(&date) {
            Some(entry) => entry.kind == DayKind::Workday,
            None => is_weekday(date),
        }
    }

    /// The `n`-th working day strictly after `start`; `n == 0` returns `start`
    /// itself (even if it is not a working day).
    ///
    /// Saturates at [`NaiveDate::MAX`] instead of panicking if the result
    /// would be beyond chrono's date range.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let last_override = self.overrides.keys().next_back().copied();
        let mut date = start;
        let mut remaining = n;
        while remaining > 0 {
            // After the last override only the weekly pattern applies, and any
            // 7 consecutive days hold exactly 5 weekdays, so whole weeks can be
            // skipped arithmetically. This keeps a huge `n` from looping for
            // billions of iterations; it leaves 1..=5 days to step through.
            if remaining > 5 && last_override.is_none_or(|last| last <= date) {
                let weeks = (remaining - 1) / 5;
                match date.checked_add_days(Days::new(u64::from(weeks) * 7)) {
                    Some(later) => {
                        date = later;
                        remaining -= weeks * 5;
                        continue;
                    }
                    None => return NaiveDate::MAX,
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => return NaiveDate::MAX,
            }
            if self.is_working_day(date) {
                remaining -= 1;
            }
        }
        date
    }

    /// The number of working days `d` with `from < d <= to`; 0 when `to <= from`.
    ///
    /// This is the inverse of [`Calendar::add_working_days`]:
    /// `working_days_between(d, add_working_days(d, n)) == n`. Saturates at
    /// `u32::MAX` (unreachable within chrono's date range, kept for safety).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        if to <= from {
            return 0;
        }
        // Count weekdays arithmetically, then correct for the overrides in the
        // range, so the cost does not grow with the distance between dates.
        let days = (to - from).num_days();
        let full_weeks = days / 7;
        let rest = days % 7;
        // Weekday index (Mon = 0) of `from + 1`, the first day counted.
        let first = i64::from(from.weekday().num_days_from_monday() + 1) % 7;
        let rest_weekdays = (0..rest).filter(|i| (first + i) % 7 < 5).count();
        let mut count = full_weeks * 5 + i64::try_from(rest_weekdays).unwrap_or(0);

        // `from < to`, so `from + 1 day` exists.
        let after_from = from.succ_opt().unwrap_or(to);
        for entry in self.overrides.range(after_from..=to).map(|(_, e)| e) {
            match (entry.kind, is_weekday(entry.date)) {
                (DayKind::Holiday, true) => count -= 1,
                (DayKind::Workday, false) => count += 1,
                // Holiday on a weekend / workday on a weekday change nothing.
                _ => {}
            }
        }
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// `date` if it is a working day, otherwise the first working day after it.
    ///
    /// Used when a deadline or start date lands on a day off. Saturates at
    /// [`NaiveDate::MAX`] like [`Calendar::add_working_days`].
    pub fn next_working_day_on_or_after(&self, date: NaiveDate) -> NaiveDate {
        let mut date = date;
        // Terminates: overrides are finite, so a plain weekday comes within a
        // week after the last of them.
        while !self.is_working_day(date) {
            match date.succ_opt() {
                Some(next) => date = next,
                None => return NaiveDate::MAX,
            }
        }
        date
    }
}

/// A period measured in working days, e.g. the time allowed for a review step.
///
/// Limited to 1..=365: a zero-day period would make a deadline due the moment
/// it is created, and anything longer than a year is a configuration mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct WorkingDays(u32);

/// A working-day period outside 1..=365.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a period in working days must be between 1 and {max}, got {found}",
    max = WorkingDays::MAX
)]
pub struct WorkingDaysOutOfRange {
    /// The refused value.
    pub found: u32,
}

impl WorkingDays {
    /// The largest accepted period.
    pub const MAX: u32 = 365;

    /// A period of `n` working days.
    ///
    /// # Errors
    ///
    /// [`WorkingDaysOutOfRange`] for 0 and for values above [`WorkingDays::MAX`].
    pub fn new(n: u32) -> Result<Self, WorkingDaysOutOfRange> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(WorkingDaysOutOfRange { found: n })
        }
    }

    /// The number of working days.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for WorkingDays {
    type Error = WorkingDaysOutOfRange;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<WorkingDays> for u32 {
    fn from(value: WorkingDays) -> Self {
        value.0
    }
}

impl fmt::Display for WorkingDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid test date")
    }

    fn builtin() -> Calendar {
        Calendar::builtin().expect("embedded CSV parses")
    }

    /// Day-by-day reference implementation for the arithmetic version.
    fn naive_between(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days()
            .skip(1)
            .take_while(|day| *day <= to)
            .filter(|day| cal.is_working_day(*day))
            .count()
            .try_into()
            .expect("small count")
    }

    /// Day-by-day reference implementation for `add_working_days`.
    fn naive_add(cal: &Calendar, start: NaiveDate, n: u32) -> NaiveDate {
        let mut date = start;
        let mut remaining = n;
        while remaining > 0 {
            date = date.succ_opt().expect("test dates are far from MAX");
            if cal.is_working_day(date) {
                remaining -= 1;
            }
        }
        date
    }

    /// Any date in 2025–2026 (the years covered by the seed data).
    fn date_2025_2026() -> impl Strategy<Value = NaiveDate> {
        (0u64..730).prop_map(|offset| {
            d(2025, 1, 1)
                .checked_add_days(Days::new(offset))
                .expect("within range")
        })
    }

    #[test]
    fn builtin_entries_have_the_72_csv_rows_for_both_years() {
        let entries = builtin_entries().expect("embedded CSV parses");
        assert_eq!(entries.len(), 72);
        assert_eq!(entries.iter().filter(|e| e.date.year() == 2025).count(), 33);
        assert_eq!(entries.iter().filter(|e| e.date.year() == 2026).count(), 39);
        assert_eq!(entries.first().map(|e| e.date), Some(d(2025, 1, 1)));
        assert_eq!(entries.last().map(|e| e.date), Some(d(2026, 10, 10)));
        let national_day = entries
            .iter()
            .find(|e| e.date == d(2025, 10, 1))
            .expect("row for 2025-10-01");
        assert_eq!(national_day.kind, DayKind::Holiday);
        assert_eq!(national_day.name, "国庆节、中秋节");
    }

    /// Data sanity: a make-up workday on a Monday–Friday would be a no-op,
    /// which would mean a mistyped date.
    #[test]
    fn every_builtin_makeup_workday_falls_on_a_weekend() {
        let entries = builtin_entries().expect("embedded CSV parses");
        let workdays: Vec<_> = entries
            .iter()
            .filter(|e| e.kind == DayKind::Workday)
            .collect();
        assert_eq!(workdays.len(), 11);
        for entry in workdays {
            assert!(!is_weekday(entry.date), "{entry:?} is not on a weekend");
        }
    }

    #[test]
    fn national_day_2025_oct_1_to_8_are_not_working_days_per_csv() {
        let cal = builtin();
        for day in 1..=8 {
            assert!(!cal.is_working_day(d(2025, 10, day)), "2025-10-{day:02}");
        }
        // Thursday 9 October is the first working day after the break.
        assert!(cal.is_working_day(d(2025, 10, 9)));
    }

    #[test]
    fn sunday_2025_09_28_and_saturday_2025_10_11_are_makeup_workdays_per_csv() {
        let cal = builtin();
        assert_eq!(d(2025, 9, 28).weekday(), Weekday::Sun);
        assert!(cal.is_working_day(d(2025, 9, 28)));
        assert_eq!(d(2025, 10, 11).weekday(), Weekday::Sat);
        assert!(cal.is_working_day(d(2025, 10, 11)));
        assert_eq!(
            cal.entry(d(2025, 9, 28)).map(|e| e.name.as_str()),
            Some("国庆节调休")
        );
    }

    #[test]
    fn weekend_without_override_is_not_a_working_day() {
        let cal = builtin();
        // 2025-03-15/16 is an ordinary weekend with no row in the CSV.
        assert!(!cal.is_working_day(d(2025, 3, 15)));
        assert!(!cal.is_working_day(d(2025, 3, 16)));
        assert!(cal.is_working_day(d(2025, 3, 17)));
        assert!(!Calendar::default().is_working_day(d(2025, 9, 28)));
    }

    /// By hand from the CSV: Fri 09-26 is working day 1, Sat 09-27 is off,
    /// Sun 09-28 is 国庆节调休 and thus working day 2.
    #[test]
    fn two_working_days_after_thu_2025_09_25_is_sun_2025_09_28_per_csv() {
        let cal = builtin();
        assert_eq!(d(2025, 9, 25).weekday(), Weekday::Thu);
        assert_eq!(cal.add_working_days(d(2025, 9, 25), 2), d(2025, 9, 28));
        // ... then Mon 09-29 (3), Tue 09-30 (4), and after the 10-01..08 break
        // Thu 10-09 (5).
        assert_eq!(cal.add_working_days(d(2025, 9, 25), 3), d(2025, 9, 29));
        assert_eq!(cal.add_working_days(d(2025, 9, 25), 5), d(2025, 10, 9));
    }

    #[test]
    fn one_working_day_after_an_ordinary_friday_is_the_next_monday() {
        let cal = builtin();
        assert_eq!(d(2025, 3, 14).weekday(), Weekday::Fri);
        assert_eq!(cal.add_working_days(d(2025, 3, 14), 1), d(2025, 3, 17));
    }

    #[test]
    fn adding_zero_working_days_returns_the_start_even_on_a_holiday() {
        let cal = builtin();
        assert_eq!(cal.add_working_days(d(2025, 10, 3), 0), d(2025, 10, 3));
    }

    /// By hand from the CSV: in (09-25, 10-11] the working days are 09-26,
    /// 09-28 (调休), 09-29, 09-30, 10-09, 10-10, 10-11 (调休) = 7.
    #[test]
    fn working_days_between_2025_09_25_and_2025_10_11_is_7_per_csv() {
        let cal = builtin();
        assert_eq!(cal.working_days_between(d(2025, 9, 25), d(2025, 10, 11)), 7);
        assert_eq!(cal.working_days_between(d(2025, 10, 11), d(2025, 9, 25)), 0);
        assert_eq!(cal.working_days_between(d(2025, 9, 25), d(2025, 9, 25)), 0);
    }

    /// By hand from the CSV: 2026 春节 is 02-15..23 with Sat 02-14 and
    /// Sat 02-28 as make-up days, so after Fri 02-13 come Sat 02-14 (1),
    /// Tue 02-24 (2), Wed 02-25 (3).
    #[test]
    fn spring_festival_2026_per_csv() {
        let cal = builtin();
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 1), d(2026, 2, 14));
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 2), d(2026, 2, 24));
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 3), d(2026, 2, 25));
    }

    #[test]
    fn next_working_day_on_or_after() {
        let cal = builtin();
        assert_eq!(
            cal.next_working_day_on_or_after(d(2025, 10, 1)),
            d(2025, 10, 9)
        );
        assert_eq!(
            cal.next_working_day_on_or_after(d(2025, 9, 27)),
            d(2025, 9, 28)
        );
        assert_eq!(
            cal.next_working_day_on_or_after(d(2025, 9, 26)),
            d(2025, 9, 26)
        );
        assert_eq!(
            cal.next_working_day_on_or_after(d(2025, 3, 15)),
            d(2025, 3, 17)
        );
    }

    #[test]
    fn huge_n_saturates_instead_of_hanging_or_panicking() {
        let cal = builtin();
        assert_eq!(
            cal.add_working_days(d(2025, 1, 1), u32::MAX),
            NaiveDate::MAX
        );
        assert_eq!(cal.add_working_days(NaiveDate::MAX, 1), NaiveDate::MAX);
        assert_eq!(
            cal.next_working_day_on_or_after(NaiveDate::MAX),
            NaiveDate::MAX
        );
    }

    #[test]
    fn local_date_is_china_standard_time() {
        let before = Utc
            .with_ymd_and_hms(2025, 9, 30, 15, 59, 59)
            .single()
            .expect("valid instant");
        let after = Utc
            .with_ymd_and_hms(2025, 9, 30, 16, 0, 0)
            .single()
            .expect("valid instant");
        assert_eq!(local_date(before), d(2025, 9, 30));
        assert_eq!(local_date(after), d(2025, 10, 1));
    }

    #[test]
    fn day_kind_round_trips_and_refuses_unknown() {
        for kind in [DayKind::Holiday, DayKind::Workday] {
            assert_eq!(DayKind::parse(kind.as_str()).ok(), Some(kind));
            assert_eq!(kind.to_string().parse::<DayKind>().ok(), Some(kind));
        }
        assert!(matches!(
            "Holiday".parse::<DayKind>(),
            Err(CalendarError::UnknownKind(s)) if s == "Holiday"
        ));
    }

    #[test]
    fn bad_csv_is_refused() {
        let bad_kind = "date,kind,name\n2025-01-01,vacation,元旦\n";
        assert!(matches!(
            parse_entries_csv(bad_kind),
            Err(CalendarError::Csv(_))
        ));
        let bad_date = "date,kind,name\n2025-02-30,holiday,x\n";
        assert!(matches!(
            parse_entries_csv(bad_date),
            Err(CalendarError::Csv(_))
        ));
        let duplicate = "date,kind,name\n2025-01-01,holiday,a\n2025-01-01,workday,b\n";
        assert!(matches!(
            parse_entries_csv(duplicate),
            Err(CalendarError::DuplicateDate(date)) if date == d(2025, 1, 1)
        ));
    }

    #[test]
    fn later_entries_win_in_calendar_new() {
        let entry = |kind| CalendarEntry {
            date: d(2025, 3, 17),
            kind,
            name: String::new(),
        };
        let cal = Calendar::new([entry(DayKind::Workday), entry(DayKind::Holiday)]);
        assert!(!cal.is_working_day(d(2025, 3, 17)));
    }

    #[test]
    fn working_days_limits() {
        assert!(WorkingDays::new(0).is_err());
        assert_eq!(WorkingDays::new(1).map(WorkingDays::get), Ok(1));
        assert_eq!(WorkingDays::new(365).map(WorkingDays::get), Ok(365));
        assert_eq!(
            WorkingDays::new(366),
            Err(WorkingDaysOutOfRange { found: 366 })
        );
    }

    #[test]
    fn working_days_serde_is_a_validated_number() {
        let five = WorkingDays::new(5).expect("in range");
        assert_eq!(serde_json::to_string(&five).expect("serialises"), "5");
        assert_eq!(serde_json::from_str::<WorkingDays>("5").ok(), Some(five));
        assert!(serde_json::from_str::<WorkingDays>("0").is_err());
        assert!(serde_json::from_str::<WorkingDays>("366").is_err());
        assert!(serde_json::from_str::<WorkingDays>("\"5\"").is_err());
    }

    proptest! {
        #[test]
        fn between_inverts_add(start in date_2025_2026(), n in 0u32..60) {
            let cal = builtin();
            let end = cal.add_working_days(start, n);
            prop_assert_eq!(cal.working_days_between(start, end), n);
            if n > 0 {
                prop_assert!(cal.is_working_day(end));
            }
        }

        #[test]
        fn fast_paths_match_day_by_day(start in date_2025_2026(), n in 0u32..800) {
            let cal = builtin();
            let end = cal.add_working_days(start, n);
            prop_assert_eq!(end, naive_add(&cal, start, n));
            prop_assert_eq!(cal.working_days_between(start, end), n);
            prop_assert_eq!(
                cal.working_days_between(start, end),
                naive_between(&cal, start, end)
            );
        }

        #[test]
        fn between_matches_day_by_day(from in date_2025_2026(), to in date_2025_2026()) {
            let cal = builtin();
            prop_assert_eq!(cal.working_days_between(from, to), naive_between(&cal, from, to));
        }
    }
}
