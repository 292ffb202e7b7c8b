//! Five-field cron expressions for schedule triggers, checked here so a typo fails at
//! `slipway validate` and not silently at 3 a.m.

/// The help shown with every cron error.
pub const CRON_HELP: &str = "five fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT, 0 and 7 are Sunday); each `*`, `*/n`, `a`, `a-b`, `a-b/n` or a comma list; e.g. `0 3 * * *` is 03:00 UTC every day";

/// A parsed cron expression: one bit per allowed value of each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Vixie cron's rule: when both day fields are restricted, either may match.
    days_restricted: bool,
    weekdays_restricted: bool,
}

struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        lo: 0,
        hi: 59,
        names: &[],
    },
    Field {
        name: "hour",
        lo: 0,
        hi: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        lo: 1,
        hi: 31,
        names: &[],
    },
    Field {
        name: "month",
        lo: 1,
        hi: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day-of-week",
        lo: 0,
        hi: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

/// `@daily` and friends, expanded so every consumer only ever sees five fields.
pub fn expand_macro(expr: &str) -> Option<&'static str> {
    Some(match expr.trim().to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

impl Cron {
    /// Parses five fields (or a macro such as `@daily`); the error says which field and why.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let text = expand_macro(expr).unwrap_or(expr);
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            bits[i] = parse_field(part, field)?;
        }
        // 7 is Sunday as well as 0.
        if bits[4] & (1 << 7) != 0 {
            bits[4] = (bits[4] | 1) & !(1 << 7);
        }
        Ok(Cron {
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
            days_restricted: !parts[2].starts_with('*'),
            weekdays_restricted: !parts[4].starts_with('*'),
        })
    }

    /// Whether the schedule fires at this minute (UTC); `weekday` 0 is Sunday, `month` and `day` start at 1.
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let has = |bits: u64, v: u32| v < 64 && bits & (1 << v) != 0;
        let day_ok = has(self.days, day);
        let weekday_ok = has(self.weekdays, weekday % 7);
        let date_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day_ok || weekday_ok,
            _ => day_ok && weekday_ok,
        };
        has(self.minutes, minute) && has(self.hours, hour) && has(self.months, month) && date_ok
    }
}

fn parse_value(s: &str, f: &Field) -> Result<u32, String> {
    let v = if let Ok(n) = s.parse::<u32>() {
        n
    } else if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        // Month names start at 1, weekday names at 0.
        i as u32 + if f.lo == 1 { 1 } else { 0 }
    } else {
        return Err(format!("{} field: `{s}` is not a number", f.name));
    };
    if v < f.lo || v > f.hi {
        return Err(format!(
            "{} field: {v} is out of range {}-{}",
            f.name, f.lo, f.hi
        ));
    }
    Ok(v)
}

fn parse_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{} field: empty item in `{text}`", f.name));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    format!(
                        "{} field: step `{s}` must be a whole number of 1 or more",
                        f.name
                    )
                })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (f.lo, f.hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(a, f)?, parse_value(b, f)?);
            if a > b {
                return Err(format!("{} field: range `{range}` runs backwards", f.name));
            }
            (a, b)
        } else {
            let a = parse_value(range, f)?;
            // `5/15` means from 5 to the end in steps of 15, as most crons read it.
            (a, if step.is_some() { f.hi } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_forms() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 9-17/2 * * MON-FRI",
            "0,30 8 1,15 jan,jul 0",
            "5/10 * * * 7",
            "@daily",
            "  0   3 * * *  ",
        ] {
            Cron::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = |s: &str| Cron::parse(s).unwrap_err();
        assert_eq!(err("60 * * * *"), "minute field: 60 is out of range 0-59");
        assert_eq!(err("0 24 * * *"), "hour field: 24 is out of range 0-23");
        assert_eq!(
            err("0 0 0 * *"),
            "day-of-month field: 0 is out of range 1-31"
        );
        assert_eq!(err("0 0 * 13 *"), "month field: 13 is out of range 1-12");
        assert_eq!(err("0 0 * * 8"), "day-of-week field: 8 is out of range 0-7");
        assert_eq!(
            err("*/0 * * * *"),
            "minute field: step `0` must be a whole number of 1 or more"
        );
        assert_eq!(err("0 5-1 * * *"), "hour field: range `5-1` runs backwards");
        assert_eq!(
            err("0 0 * * FUN"),
            "day-of-week field: `FUN` is not a number"
        );
        assert_eq!(err("0 0,, * * *"), "hour field: empty item in `0,,`");
        assert!(err("0 0 * *").contains("found 4"));
        assert!(err("0 0 0 * * *").contains("found 6"));
    }

    #[test]
    fn matches_minutes() {
        let c = Cron::parse("0 3 * * *").unwrap();
        assert!(c.matches(0, 3, 10, 6, 2));
        assert!(!c.matches(1, 3, 10, 6, 2));
        let c = Cron::parse("*/20 9-17 * * MON-FRI").unwrap();
        assert!(c.matches(40, 9, 1, 1, 1));
        assert!(!c.matches(40, 9, 1, 1, 0));
        let sunday = Cron::parse("0 0 * * 7").unwrap();
        assert!(sunday.matches(0, 0, 5, 5, 0));
        // Both day fields restricted: either one fires it.
        let c = Cron::parse("0 0 1 * MON").unwrap();
        assert!(c.matches(0, 0, 1, 3, 4));
        assert!(c.matches(0, 0, 9, 3, 1));
        assert!(!c.matches(0, 0, 9, 3, 2));
    }
}
