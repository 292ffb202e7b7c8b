//! Durations as people write them in pipeline files: `500ms`, `90s`, `30m`, `1h30m`, `7d`.

use std::time::Duration;

/// The forms accepted, for error messages and hints.
pub const DURATION_FORMS: &str =
    "a number with a unit (ms, s, m, h, d), such as 500ms, 90s, 30m, 1h30m or 7d";

/// Parses `500ms`, `90s`, `30m`, `1h30m`, `7d`: one or more `<whole number><unit>` with no spaces.
///
/// A bare number is refused: `timeout: 30` could mean seconds or minutes, and guessing
/// wrong by a factor of 60 is worse than asking.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let bad = |why: &str| format!("`{s}` is not a duration ({why}); expected {DURATION_FORMS}");
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad("expected a whole number"));
        }
        let number: u64 = text[start..i]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let per_unit: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if i < bytes.len() => {
                let c = text[i..].chars().next().unwrap_or(' ');
                return Err(bad(&format!("unexpected `{c}`")));
            }
            "" => return Err(bad("a unit is missing")),
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        total_ms = number
            .checked_mul(per_unit)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| bad("it is too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// The shortest text `parse_duration` reads back as `d` (for dumps and messages).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("30m"), Duration::from_secs(1800));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s250ms"), Duration::from_millis(90_250));
        assert_eq!(ok(" 2h "), Duration::from_secs(7200));
    }

    #[test]
    fn refuses_everything_else_with_the_accepted_forms() {
        for bad in [
            "",
            "30",
            "1.5h",
            "10 m",
            "5y",
            "h",
            "-1s",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("such as 500ms, 90s, 30m, 1h30m or 7d"),
                "{bad}: {e}"
            );
        }
        assert!(
            parse_duration("30")
                .unwrap_err()
                .contains("unit is missing")
        );
        assert!(
            parse_duration("5y")
                .unwrap_err()
                .contains("unknown unit `y`")
        );
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "7d", "500ms", "90s", "1d2h3m4s5ms"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
