//! Agent schedules (CONTRACT §6): the Temporal-style rule (calendars OR intervals, in an IANA
//! zone), its validation, and the next fire time.
//!
//! Calendars become croner patterns (seconds required, day-of-month AND day-of-week, as
//! Temporal requires every field to match). Two rules about clocks hold for every kind of rule:
//! a wall-clock time that a spring-forward skips fires at the moment the clock jumps (so a
//! daily job is never lost), and a wall-clock time that a fall-back repeats fires once, on its
//! first occurrence.
//!
//! Intervals: an `every` that is a whole number of days divides the zone's *wall clock* (so
//! `every: 86400s, offset: 32400s` is 09:00 local every day, summer and winter); any other
//! `every` divides real time from the Unix epoch, like Temporal (so `every: 5400s` is always
//! ninety real minutes apart, even across a DST change).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::reasons::Reason;
use crate::variations::parse_duration_secs;

const DAY_SECS: i64 = 86_400;

/// `{start, end, step}`: every `step`-th value from `start` to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: i32,
    pub end: i32,
    pub step: i32,
}

/// One calendar rule; an empty list means the field's default (see `Field`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calendar {
    pub second: Vec<Range>,
    pub minute: Vec<Range>,
    pub hour: Vec<Range>,
    pub day_of_month: Vec<Range>,
    pub month: Vec<Range>,
    pub day_of_week: Vec<Range>,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    pub every_secs: i64,
    pub offset_secs: i64,
}

/// When a schedule fires: any calendar or any interval, in `timezone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub calendars: Vec<Calendar>,
    pub intervals: Vec<Interval>,
    pub timezone: String,
}

/// The calendar fields, their wire names, bounds, and what an empty list means.
#[derive(Clone, Copy)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 6] =
        [Field::Second, Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "dayOfMonth",
            Field::Month => "month",
            Field::DayOfWeek => "dayOfWeek",
        }
    }

    fn bounds(self) -> (i32, i32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            // 0 = Sunday, Temporal-style.
            Field::DayOfWeek => (0, 6),
        }
    }

    /// An empty time field means "at 0"; an empty date field means "any".
    fn empty_pattern(self) -> &'static str {
        match self {
            Field::Second | Field::Minute | Field::Hour => "0",
            _ => "*",
        }
    }

    fn of(self, c: &Calendar) -> &[Range] {
        match self {
            Field::Second => &c.second,
            Field::Minute => &c.minute,
            Field::Hour => &c.hour,
            Field::DayOfMonth => &c.day_of_month,
            Field::Month => &c.month,
            Field::DayOfWeek => &c.day_of_week,
        }
    }

    fn of_mut(self, c: &mut Calendar) -> &mut Vec<Range> {
        match self {
            Field::Second => &mut c.second,
            Field::Minute => &mut c.minute,
            Field::Hour => &mut c.hour,
            Field::DayOfMonth => &mut c.day_of_month,
            Field::Month => &mut c.month,
            Field::DayOfWeek => &mut c.day_of_week,
        }
    }
}

/// The calendar fields as the wire names them, each with the values it takes (inclusive): what
/// `RuleIn::validate` holds every range's `start` and `end` to.
pub fn calendar_fields() -> impl Iterator<Item = (&'static str, i32, i32)> {
    Field::ALL.into_iter().map(|f| {
        let (lo, hi) = f.bounds();
        (f.name(), lo, hi)
    })
}

// ---- input, as clients send it ----

/// A range as sent: every member optional (`end` defaults to `start`, `step` to 1), each any
/// whole number (`9.0` is 9, as JSON Schema's `integer` reads it).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeIn {
    #[serde(default, deserialize_with = "crate::serde_ints::integral")]
    pub start: Option<i64>,
    #[serde(default, deserialize_with = "crate::serde_ints::integral")]
    pub end: Option<i64>,
    #[serde(default, deserialize_with = "crate::serde_ints::integral")]
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarIn {
    pub second: Option<Vec<RangeIn>>,
    pub minute: Option<Vec<RangeIn>>,
    pub hour: Option<Vec<RangeIn>>,
    pub day_of_month: Option<Vec<RangeIn>>,
    pub month: Option<Vec<RangeIn>>,
    pub day_of_week: Option<Vec<RangeIn>>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IntervalIn {
    pub every: Option<String>,
    pub offset: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleIn {
    pub calendars: Option<Vec<CalendarIn>>,
    pub intervals: Option<Vec<IntervalIn>>,
    pub timezone: Option<String>,
}

impl RuleIn {
    /// Checks every field and returns the rule, or a 400 naming the first problem.
    pub fn validate(self) -> Result<Rule> {
        let timezone = match self.timezone.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => "UTC".to_string(),
            Some(tz) => {
                TimeZone::get(tz).map_err(|_| {
                    rule_error(
                        "spec.schedule.timezone",
                        format!("spec.schedule.timezone {tz:?} is not an IANA time zone name"),
                    )
                })?;
                tz.to_string()
            }
        };
        let mut calendars = Vec::new();
        for (i, c) in self.calendars.unwrap_or_default().into_iter().enumerate() {
            calendars.push(calendar(i, c)?);
        }
        let mut intervals = Vec::new();
        for (i, iv) in self.intervals.unwrap_or_default().into_iter().enumerate() {
            intervals.push(interval(i, iv)?);
        }
        if calendars.is_empty() && intervals.is_empty() {
            return Err(rule_error("spec.schedule", "spec.schedule needs at least one calendar or interval"));
        }
        let rule = Rule { calendars, intervals, timezone };
        // Every calendar must also be accepted by the pattern engine.
        for (i, c) in rule.calendars.iter().enumerate() {
            cron(c).map_err(|e| {
                let at = format!("spec.schedule.calendars[{i}]");
                rule_error(&at, format!("{at} is not a valid calendar: {e}"))
            })?;
        }
        Ok(rule)
    }
}

/// `SCHEDULE_RULE_INVALID` naming the rule's field.
fn rule_error(field: &str, message: impl Into<String>) -> Error {
    Error::of(Reason::ScheduleRuleInvalid, message).with_meta("field", field)
}

/// A duration of the rule: a bad one is a rule error like any other.
fn rule_duration(field: &str, raw: &str) -> Result<i64> {
    parse_duration_secs(field, raw).map_err(|e| e.with_reason(Reason::ScheduleRuleInvalid))
}

fn calendar(i: usize, c: CalendarIn) -> Result<Calendar> {
    let mut out = Calendar { comment: c.comment.unwrap_or_default(), ..Calendar::default() };
    let raw = [c.second, c.minute, c.hour, c.day_of_month, c.month, c.day_of_week];
    for (field, ranges) in Field::ALL.into_iter().zip(raw) {
        let (lo, hi) = field.bounds();
        for (j, r) in ranges.unwrap_or_default().into_iter().enumerate() {
            let at = format!("spec.schedule.calendars[{i}].{}[{j}]", field.name());
            let start = r.start.unwrap_or(0);
            let end = r.end.filter(|e| *e != 0).unwrap_or(start);
            let step = r.step.filter(|s| *s != 0).unwrap_or(1);
            for (what, v) in [("start", start), ("end", end)] {
                if !(i64::from(lo)..=i64::from(hi)).contains(&v) {
                    return Err(rule_error(
                        &format!("{at}.{what}"),
                        format!("{at}.{what} must be between {lo} and {hi}, not {v}"),
                    ));
                }
            }
            if end < start {
                return Err(rule_error(&format!("{at}.end"), format!("{at}.end must not be before its start")));
            }
            if step < 1 {
                return Err(rule_error(&format!("{at}.step"), format!("{at}.step must be at least 1")));
            }
            // In range by the checks above, so the conversions cannot fail.
            let narrow = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
            field.of_mut(&mut out).push(Range { start: narrow(start), end: narrow(end), step: narrow(step) });
        }
    }
    Ok(out)
}

fn interval(i: usize, iv: IntervalIn) -> Result<Interval> {
    let at = format!("spec.schedule.intervals[{i}]");
    let every = match iv.every.as_deref().filter(|e| !e.is_empty()) {
        None => return Err(rule_error(&format!("{at}.every"), format!("{at}.every is required"))),
        Some(e) => rule_duration(&format!("{at}.every"), e)?,
    };
    if every < 1 {
        return Err(rule_error(&format!("{at}.every"), format!("{at}.every must be at least 1s")));
    }
    let offset = match iv.offset.as_deref().filter(|o| !o.is_empty()) {
        None => 0,
        Some(o) => rule_duration(&format!("{at}.offset"), o)?,
    };
    if offset < 0 || offset >= every {
        return Err(rule_error(
            &format!("{at}.offset"),
            format!("{at}.offset must be at least 0s and less than every"),
        ));
    }
    Ok(Interval { every_secs: every, offset_secs: offset })
}

// ---- next fire time ----

fn field_pattern(field: Field, ranges: &[Range]) -> String {
    if ranges.is_empty() {
        return field.empty_pattern().to_string();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| match (r.start == r.end, r.step) {
            (true, _) => r.start.to_string(),
            (false, 1) => format!("{}-{}", r.start, r.end),
            // A step past the range's end takes only its start (the pattern engine reads a step
            // as 16 bits, so a larger one would be refused, not read).
            (false, step) if step > r.end - r.start => r.start.to_string(),
            (false, step) => format!("{}-{}/{step}", r.start, r.end),
        })
        .collect();
    parts.join(",")
}

fn cron(c: &Calendar) -> std::result::Result<Cron, croner::errors::CronError> {
    let pattern: Vec<String> = Field::ALL.iter().map(|f| field_pattern(*f, f.of(c))).collect();
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .dom_and_dow(true)
        .build()
        .parse(&pattern.join(" "))
}

/// Is `z` the second occurrence of a wall-clock time a fall-back repeats?
fn is_repeat(z: &Zoned) -> bool {
    let amb = z.time_zone().to_ambiguous_zoned(z.datetime());
    amb.is_ambiguous() && amb.earlier().is_ok_and(|first| first.timestamp() != z.timestamp())
}

impl Rule {
    fn zone(&self) -> TimeZone {
        // Validated on write; a zone that later vanished from the database degrades to UTC
        // rather than stopping the schedule.
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// The first fire strictly after `after_ms`, or `None` if the rule never fires again.
    pub fn next_fire_after(&self, after_ms: i64) -> Option<i64> {
        let tz = self.zone();
        let after = Timestamp::from_millisecond(after_ms).ok()?.to_zoned(tz.clone());
        let calendars = self.calendars.iter().filter_map(|c| next_calendar(c, &after));
        let intervals = self.intervals.iter().filter_map(|iv| next_interval(iv, &tz, after_ms));
        calendars.chain(intervals).min()
    }

    /// The last fire time in `[due_ms, now_ms]`, where `due_ms` is a fire time not after
    /// `now_ms`: the time a late fire is for (the latest one missed). A binary search over
    /// [`Rule::next_fire_after`], which never decreases, so it agrees with it on every kind of
    /// rule and clock change, and costs a few dozen evaluations however long the gap.
    pub fn latest_fire_until(&self, due_ms: i64, now_ms: i64) -> i64 {
        let fires_by_now = |after: i64| self.next_fire_after(after).is_some_and(|t| t <= now_ms);
        // Invariant: a fire follows `lo` by `now_ms`; none follows `hi` by then.
        let (mut lo, mut hi) = (due_ms.saturating_sub(1), now_ms);
        if now_ms <= due_ms || !fires_by_now(lo) {
            return due_ms;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fires_by_now(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // The fire after `lo` is at `hi`: after `lo`, and none after `hi` comes by now.
        hi
    }
}

fn next_calendar(c: &Calendar, after: &Zoned) -> Option<i64> {
    let cron = cron(c).ok()?;
    let mut from = after.clone();
    // A few repeats at most (one per matching time in the repeated hour), so the bound is loose.
    for _ in 0..4_000 {
        let next = cron.find_next_occurrence(&from, false).ok()?;
        if !is_repeat(&next) {
            return Some(next.timestamp().as_millisecond());
        }
        from = next;
    }
    None
}

fn next_interval(iv: &Interval, tz: &TimeZone, after_ms: i64) -> Option<i64> {
    let (every, offset) = (iv.every_secs, iv.offset_secs);
    if every % DAY_SECS != 0 {
        // Real time from the epoch: the first `n * every + offset` seconds past `after_ms`.
        let after_s = after_ms.div_euclid(1000);
        let n = (after_s - offset).div_euclid(every) + 1;
        // Checked, and within the times a timestamp holds (to year 9999): an `every` of many
        // years may never fire again.
        let at = n.checked_mul(every)?.checked_add(offset)?.checked_mul(1000)?;
        return Timestamp::from_millisecond(at).is_ok().then_some(at);
    }
    // Wall clock: count civil seconds since 1970-01-01T00:00 local, then resolve each
    // candidate in the zone (a gap moves forward, a fold takes its first occurrence).
    let utc = TimeZone::UTC;
    let local = Timestamp::from_millisecond(after_ms).ok()?.to_zoned(tz.clone()).datetime();
    let civil_s = local.to_zoned(utc.clone()).ok()?.timestamp().as_second();
    let k = (civil_s - offset).div_euclid(every);
    (0..3).find_map(|j| {
        let secs = (k + j).checked_mul(every)?.checked_add(offset)?;
        let civ: DateTime = Timestamp::from_second(secs).ok()?.to_zoned(utc.clone()).datetime();
        let at = tz.to_ambiguous_zoned(civ).compatible().ok()?.timestamp().as_millisecond();
        (at > after_ms).then_some(at)
    })
}

// ---- the schedule resource ----

/// `OVERLAP_POLICY_*`: what a fire does while the previous objective still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapPolicy {
    Skip,
    Allow,
}

impl OverlapPolicy {
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "" | "OVERLAP_POLICY_UNSPECIFIED" | "OVERLAP_POLICY_SKIP" => Ok(Self::Skip),
            "OVERLAP_POLICY_ALLOW" => Ok(Self::Allow),
            other => Err(Error::invalid_field("spec.overlapPolicy", format!("unknown spec.overlapPolicy {other:?}"))),
        }
    }

    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Skip => "OVERLAP_POLICY_SKIP",
            Self::Allow => "OVERLAP_POLICY_ALLOW",
        }
    }
}

/// Lifecycle; the seed spells it `AGENT_SCHEDULE_STATUS_*` in the spec, later `STATE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    Active,
    Paused,
    Archived,
}

impl ScheduleState {
    /// Either spelling; `None` for the unspecified values.
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        Ok(Some(match raw {
            "" | "AGENT_SCHEDULE_STATUS_UNSPECIFIED" | "STATE_UNSPECIFIED" => return Ok(None),
            "AGENT_SCHEDULE_STATUS_ACTIVE" | "STATE_ACTIVE" => Self::Active,
            "AGENT_SCHEDULE_STATUS_PAUSED" | "STATE_PAUSED" => Self::Paused,
            "AGENT_SCHEDULE_STATUS_ARCHIVED" | "STATE_ARCHIVED" => Self::Archived,
            other => return Err(Error::invalid_field("spec.status", format!("unknown schedule status {other:?}"))),
        }))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Archived => "ARCHIVED",
        }
    }

    pub fn from_db(raw: &str) -> Self {
        match raw {
            "PAUSED" => Self::Paused,
            "ARCHIVED" => Self::Archived,
            _ => Self::Active,
        }
    }

    pub fn as_status(self) -> String {
        format!("AGENT_SCHEDULE_STATUS_{}", self.as_str())
    }

    pub fn as_state(self) -> String {
        format!("STATE_{}", self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub meta: Meta,
    pub workspace_id: String,
    pub agent_id: String,
    /// Seed `initialMessage`, later `firstUserMessage`.
    pub first_user_message: String,
    /// Seed `data`, later `systemPromptData`.
    pub system_prompt_data: Option<Value>,
    pub first_user_message_data: Option<Value>,
    pub rule: Rule,
    pub overlap: OverlapPolicy,
    pub state: ScheduleState,
    /// Empty: the agent's selection mode picks a variation per fire.
    pub variation_id: String,
    /// The due-time the firing engine claims; `None` when paused, archived or exhausted.
    pub next_fire_at: Option<i64>,
    pub last_fire_at: Option<i64>,
    pub last_objective_id: String,
    pub last_skipped_at: Option<i64>,
    pub last_skip_reason: String,
    pub total_fires: i64,
}

/// What firing a due schedule at some moment means: the due time it takes, the time it fires
/// for, and its next due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirePlan {
    /// The stored due time (`next_fire_at`) this fire consumes.
    pub due: i64,
    /// The time the fire is for: `due`, or after downtime the latest due time missed since
    /// (missed times collapse into this one fire, never a burst).
    pub fire_at: i64,
    /// The first due time after now (`None`: the rule never fires again).
    pub next: Option<i64>,
}

impl Schedule {
    /// A new active schedule of `agent_id` on `rule`, with an empty spec, policy SKIP, and no
    /// due time or history yet.
    pub fn new(meta: Meta, workspace_id: &str, agent_id: &str, rule: Rule) -> Self {
        Self {
            meta,
            workspace_id: workspace_id.to_string(),
            agent_id: agent_id.to_string(),
            first_user_message: String::new(),
            system_prompt_data: None,
            first_user_message_data: None,
            rule,
            overlap: OverlapPolicy::Skip,
            state: ScheduleState::Active,
            variation_id: String::new(),
            next_fire_at: None,
            last_fire_at: None,
            last_objective_id: String::new(),
            last_skipped_at: None,
            last_skip_reason: String::new(),
            total_fires: 0,
        }
    }

    /// Recomputes the due-time from `now_ms`: only active schedules have one. A due time that
    /// has come and not been fired yet is kept while the rule still fires then (a write that
    /// lands between the due time and its fire does not lose the fire).
    pub fn reschedule(&mut self, now_ms: i64) {
        self.next_fire_at = match (self.state, self.next_fire_at) {
            (ScheduleState::Active, Some(due))
                if due <= now_ms && self.rule.next_fire_after(due.saturating_sub(1)) == Some(due) =>
            {
                Some(due)
            }
            (ScheduleState::Active, _) => self.rule.next_fire_after(now_ms),
            (ScheduleState::Paused | ScheduleState::Archived, _) => None,
        };
    }

    /// The fire due at `now_ms`, if any: only an active schedule whose due time has come.
    pub fn due_fire(&self, now_ms: i64) -> Option<FirePlan> {
        if self.state != ScheduleState::Active {
            return None;
        }
        let due = self.next_fire_at.filter(|d| *d <= now_ms)?;
        Some(FirePlan {
            due,
            fire_at: self.rule.latest_fire_until(due, now_ms),
            next: self.rule.next_fire_after(now_ms),
        })
    }

    /// Records that the fire of `plan` created `objective_id`.
    pub fn record_fire(&mut self, plan: &FirePlan, objective_id: &str) {
        self.last_fire_at = Some(plan.fire_at);
        self.last_objective_id = objective_id.to_string();
        self.total_fires += 1;
        self.next_fire_at = plan.next;
    }

    /// Records that the fire of `plan` was skipped, and why (plain text for people).
    pub fn record_skip(&mut self, plan: &FirePlan, reason: impl Into<String>) {
        self.last_skipped_at = Some(plan.fire_at);
        self.last_skip_reason = reason.into();
        self.next_fire_at = plan.next;
    }

    /// Whether `other` would start the same objective as `self` (message, data, variation).
    pub fn same_objective_spec(&self, other: &Schedule) -> bool {
        self.agent_id == other.agent_id
            && self.first_user_message == other.first_user_message
            && self.system_prompt_data == other.system_prompt_data
            && self.first_user_message_data == other.first_user_message_data
            && self.variation_id == other.variation_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("timestamp").as_millisecond()
    }

    fn iso(ms: i64) -> String {
        Timestamp::from_millisecond(ms).expect("ms").to_string()
    }

    fn rule(v: Value) -> Result<Rule> {
        serde_json::from_value::<RuleIn>(v).map_err(|e| Error::invalid(e.to_string()))?.validate()
    }

    /// The next `n` fire times after `from`, as UTC strings.
    fn fires(r: &Rule, from: &str, n: usize) -> Vec<String> {
        let mut at = ms(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = r.next_fire_after(at).expect("fires");
            out.push(iso(at));
        }
        out
    }

    #[test]
    fn ranges_steps_and_defaults() {
        // Every 15 minutes from 09:00 to 10:45 UTC on weekdays.
        let r = rule(serde_json::json!({"calendars": [{"minute": [{"start": 0, "end": 59, "step": 15}],
            "hour": [{"start": 9, "end": 10}], "dayOfWeek": [{"start": 1, "end": 5}]}]}))
        .expect("valid");
        assert_eq!(r.timezone, "UTC");
        // 2027-01-01 is a Friday.
        assert_eq!(
            fires(&r, "2027-01-01T10:40:00Z", 3),
            ["2027-01-01T10:45:00Z", "2027-01-04T09:00:00Z", "2027-01-04T09:15:00Z"]
        );
    }

    #[test]
    fn day_of_month_31_skips_short_months() {
        let r = rule(serde_json::json!({"calendars": [{"hour": [{"start": 12}], "dayOfMonth": [{"start": 31}]}],
            "timezone": "Europe/Paris"}))
        .expect("valid");
        assert_eq!(
            fires(&r, "2027-01-15T00:00:00Z", 4),
            // Paris is UTC+1 in winter and UTC+2 in summer.
            ["2027-01-31T11:00:00Z", "2027-03-31T10:00:00Z", "2027-05-31T10:00:00Z", "2027-07-31T10:00:00Z"]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // The first Monday of each month (Temporal's AND rule, not cron's OR).
        let r = rule(serde_json::json!({"calendars": [{"hour": [{"start": 9}], "minute": [{"start": 30}],
            "dayOfMonth": [{"start": 1, "end": 7}], "dayOfWeek": [{"start": 1}]}], "timezone": "UTC"}))
        .expect("valid");
        assert_eq!(fires(&r, "2027-01-01T00:00:00Z", 2), ["2027-01-04T09:30:00Z", "2027-02-01T09:30:00Z"]);
    }

    #[test]
    fn spring_forward_fires_when_the_clock_jumps() {
        // 2027-03-14: New York clocks go from 02:00 EST straight to 03:00 EDT.
        let r = rule(serde_json::json!({"calendars": [{"hour": [{"start": 2}], "minute": [{"start": 30}]}],
            "timezone": "America/New_York"}))
        .expect("valid");
        assert_eq!(
            fires(&r, "2027-03-13T12:00:00Z", 3),
            // The 14th has no 02:30: it fires at 03:00 EDT; then 02:30 EDT on the following days.
            ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z"]
        );
    }

    #[test]
    fn fall_back_fires_a_repeated_time_once() {
        // 2027-11-07: New York clocks go from 02:00 EDT back to 01:00 EST; 01:30 happens twice.
        let r = rule(serde_json::json!({"calendars": [{"hour": [{"start": 1}], "minute": [{"start": 30}]}],
            "timezone": "America/New_York"}))
        .expect("valid");
        assert_eq!(
            fires(&r, "2027-11-06T12:00:00Z", 3),
            ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z", "2027-11-09T06:30:00Z"]
        );
        // Hourly at :00 across the same night: 01:00 EDT, then 02:00 EST (01:00 EST is a repeat).
        let hourly = rule(serde_json::json!({"calendars": [{"hour": [{"start": 0, "end": 23}]}],
            "timezone": "America/New_York"}))
        .expect("valid");
        assert_eq!(
            fires(&hourly, "2027-11-07T04:30:00Z", 3),
            ["2027-11-07T05:00:00Z", "2027-11-07T07:00:00Z", "2027-11-07T08:00:00Z"]
        );
    }

    #[test]
    fn intervals_real_time_and_wall_clock() {
        // Ninety minutes, offset ten: real time from the epoch (UTC midnight is a multiple of 90
        // minutes), untouched by the DST change at 07:00Z that morning.
        let r = rule(serde_json::json!({"intervals": [{"every": "5400s", "offset": "600s"}],
            "timezone": "America/New_York"}))
        .expect("valid");
        assert_eq!(
            fires(&r, "2027-03-14T05:00:00Z", 3),
            ["2027-03-14T06:10:00Z", "2027-03-14T07:40:00Z", "2027-03-14T09:10:00Z"]
        );
        // Daily at 09:00 local: 14:00Z in winter, 13:00Z once DST starts.
        let daily = rule(serde_json::json!({"intervals": [{"every": "86400s", "offset": "32400s"}],
            "timezone": "America/New_York"}))
        .expect("valid");
        assert_eq!(
            fires(&daily, "2027-03-13T00:00:00Z", 3),
            ["2027-03-13T14:00:00Z", "2027-03-14T13:00:00Z", "2027-03-15T13:00:00Z"]
        );
        // Calendars and intervals are OR'ed: the earliest wins.
        let both = rule(serde_json::json!({"intervals": [{"every": "86400s", "offset": "32400s"}],
            "calendars": [{"hour": [{"start": 6}]}], "timezone": "UTC"}))
        .expect("valid");
        assert_eq!(fires(&both, "2027-01-01T07:00:00Z", 2), ["2027-01-01T09:00:00Z", "2027-01-02T06:00:00Z"]);
    }

    #[test]
    fn refusals_name_the_problem() {
        for (v, needle) in [
            (serde_json::json!({}), "at least one"),
            (serde_json::json!({"calendars": [], "intervals": []}), "at least one"),
            (serde_json::json!({"calendars": [{}], "timezone": "Mars/Olympus"}), "timezone"),
            (serde_json::json!({"calendars": [{"hour": [{"start": 24}]}]}), "hour[0].start"),
            (serde_json::json!({"calendars": [{"minute": [{"start": 10, "end": 5}]}]}), "minute[0].end"),
            (serde_json::json!({"calendars": [{"dayOfMonth": [{"start": 0}]}]}), "dayOfMonth"),
            (serde_json::json!({"calendars": [{"month": [{"start": 13}]}]}), "month"),
            (serde_json::json!({"calendars": [{"dayOfWeek": [{"start": 7}]}]}), "dayOfWeek"),
            (serde_json::json!({"calendars": [{"second": [{"start": 0, "end": 59, "step": -1}]}]}), "step"),
            (serde_json::json!({"intervals": [{"offset": "5s"}]}), "every is required"),
            (serde_json::json!({"intervals": [{"every": "60s", "offset": "60s"}]}), "offset"),
            (serde_json::json!({"intervals": [{"every": "60s", "offset": "-1s"}]}), "offset"),
            (serde_json::json!({"intervals": [{"every": "0s"}]}), "every"),
            (serde_json::json!({"intervals": [{"every": "1h"}]}), "every"),
        ] {
            let err = rule(v.clone()).expect_err("refused");
            assert!(err.message.contains(needle), "{v}: {:?} should mention {needle}", err.message);
            assert_eq!(err.reason, Reason::ScheduleRuleInvalid, "{v}");
            assert!(err.metadata.get("field").is_some_and(|f| f.starts_with("spec.schedule")), "{v}: {err:?}");
        }
    }

    #[test]
    fn a_late_fire_is_for_the_latest_missed_time() {
        let every_minute = rule(serde_json::json!({"intervals": [{"every": "60s"}]})).expect("valid");
        let due = ms("2027-01-01T00:01:00Z");
        // On time, or late by less than a period: the due time itself.
        assert_eq!(every_minute.latest_fire_until(due, due), due);
        assert_eq!(every_minute.latest_fire_until(due, due + 59_999), due);
        // A week late: the last minute boundary before now, in a few dozen steps.
        let now = ms("2027-01-08T10:30:42.123Z");
        assert_eq!(iso(every_minute.latest_fire_until(due, now)), "2027-01-08T10:30:00Z");
        assert_eq!(every_minute.latest_fire_until(due, ms("2027-01-08T10:30:00Z")), ms("2027-01-08T10:30:00Z"));

        // Calendars and clock changes agree with next_fire_after: the daily 02:30 in New York
        // fires at 03:00 EDT on the spring-forward day.
        let daily = rule(serde_json::json!({"calendars": [{"hour": [{"start": 2}], "minute": [{"start": 30}]}],
            "timezone": "America/New_York"}))
        .expect("valid");
        let due = ms("2027-03-10T07:30:00Z");
        assert_eq!(iso(daily.latest_fire_until(due, ms("2027-03-14T08:00:00Z"))), "2027-03-14T07:00:00Z");
        assert_eq!(iso(daily.latest_fire_until(due, ms("2027-03-14T06:59:59Z"))), "2027-03-13T07:30:00Z");
    }

    #[test]
    fn a_due_fire_is_planned_once_and_survives_writes() {
        let meta =
            Meta::new(crate::IdKind::Schedule, 0, "acct", "prof", String::new(), String::new(), Default::default());
        let hourly = rule(serde_json::json!({"intervals": [{"every": "3600s"}]})).expect("valid");
        let mut s = Schedule::new(meta, "ws", "agent", hourly);
        let start = ms("2027-01-01T00:10:00Z");
        s.reschedule(start);
        let due = ms("2027-01-01T01:00:00Z");
        assert_eq!(s.next_fire_at, Some(due));
        assert_eq!(s.due_fire(due - 1), None, "not yet");
        // Written after the due time, before its fire: the fire stays due.
        s.reschedule(due + 5_000);
        assert_eq!(s.next_fire_at, Some(due));
        // Three hours late: one fire, for the latest hour, then the next hour after now.
        let plan = s.due_fire(due + 3 * 3_600_000 + 60_000).expect("due");
        assert_eq!((plan.due, plan.fire_at), (due, due + 3 * 3_600_000));
        assert_eq!(plan.next, Some(due + 4 * 3_600_000));
        s.record_fire(&plan, "obj_1");
        assert_eq!((s.total_fires, s.last_fire_at, s.next_fire_at), (1, Some(plan.fire_at), plan.next));
        // A rule change drops a due time the new rule does not fire at.
        s.next_fire_at = Some(due);
        s.rule = rule(serde_json::json!({"intervals": [{"every": "7200s", "offset": "1800s"}]})).expect("valid");
        s.reschedule(due + 5_000);
        assert_eq!(s.next_fire_at, Some(ms("2027-01-01T02:30:00Z")));
        s.state = ScheduleState::Paused;
        s.reschedule(due);
        assert_eq!(s.due_fire(i64::MAX), None, "paused schedules never fire");
    }

    #[test]
    fn whole_numbers_and_long_steps() {
        // `9.0` and `3e1` are the integers 9 and 30, as JSON Schema reads them; `9.5` is refused.
        let text = r#"{"calendars": [{"hour": [{"start": 9.0}], "minute": [{"start": 3e1}]}]}"#;
        let r = serde_json::from_str::<RuleIn>(text).ok().map(RuleIn::validate).and_then(Result::ok).expect("valid");
        assert_eq!(fires(&r, "2027-01-01T00:00:00Z", 1), ["2027-01-01T09:30:00Z"]);
        assert!(serde_json::from_str::<RuleIn>(r#"{"calendars": [{"hour": [{"start": 9.5}]}]}"#).is_err());
        // A step past the range's end takes its start alone, however long (the pattern engine
        // reads 16 bits of step: 70000 is not refused, it is read).
        for step in [60, 65_535, 70_000, i64::MAX] {
            let r = rule(serde_json::json!({"calendars": [{"minute": [{"start": 10, "end": 59, "step": step}],
                "hour": [{"start": 0, "end": 23}]}]}))
            .expect("valid");
            assert_eq!(
                fires(&r, "2027-01-01T00:00:00Z", 2),
                ["2027-01-01T00:10:00Z", "2027-01-01T01:10:00Z"],
                "{step}"
            );
        }
    }

    #[test]
    fn intervals_of_many_years_never_overflow() {
        // The longest durations (12 whole digits, about 31,700 years): valid, and the next fire
        // would be past the last representable time, so there is none.
        for (every, offset) in
            [("999999999999.9s", "5s"), ("999999999999s", "999999999998.4s"), ("500000000000s", "499999999999s")]
        {
            let r = rule(serde_json::json!({"intervals": [{"every": every, "offset": offset}],
                "timezone": "Europe/Paris"}))
            .expect("valid");
            assert_eq!(r.next_fire_after(ms("2027-01-01T00:00:00Z")), None, "{every}");
        }
    }

    #[test]
    fn impossible_calendars_never_fire() {
        // February 30th: valid fields, no date ever matches.
        let r = rule(serde_json::json!({"calendars": [{"month": [{"start": 2}], "dayOfMonth": [{"start": 30}]}]}))
            .expect("fields are in range");
        assert_eq!(r.next_fire_after(ms("2027-01-01T00:00:00Z")), None);
    }
}
