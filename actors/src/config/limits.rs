//! The `limit.renewal_period` grammar: what the Python `limits` library (5.8) accepts after
//! MLflow glues `"<calls>/<renewal_period>"` together.
//!
//! The library's single-limit expression is `\s*[0-9]+\s*(/|per)\s*[0-9]*\s*[a-z]+\s*`
//! (case-insensitive), where the word must be a granularity name with an optional trailing `s`.
//! Because MLflow writes `calls/` itself, what the user controls is the part after the slash: an
//! optional multiplier, whitespace, and the granularity. The library also accepts further limits
//! after a `,`, `;` or `|` separator and silently uses only the first, so we accept those too (and
//! the loader warns).

use super::model::{Granularity, RateWindow};

/// MLflow's message for every `limit` parse failure (sic: the missing spaces are in the original).
pub const LIMIT_PARSE_ERROR: &str = "Failed to parse the rate limit configuration.Please make sure limit.calls is a positive number andlimit.renewal_period is a right granularity";

/// A successfully parsed `renewal_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedPeriod {
    pub window: RateWindow,
    /// True when the text carried extra `,`/`;`/`|`-separated limits, which `limits` parses but
    /// MLflow ignores.
    pub ignored_extra_limits: bool,
}

/// Parses `renewal_period` the way `limits.parse(f"{calls}/{renewal_period}")` does. `None` means
/// MLflow would raise [`LIMIT_PARSE_ERROR`].
pub fn parse_renewal_period(text: &str) -> Option<ParsedPeriod> {
    let mut parts = text.split([',', ';', '|']);
    // `split` always yields at least one item.
    let first = parts.next().unwrap_or_default();
    let window = parse_first(first)?;
    let mut ignored_extra_limits = false;
    for extra in parts {
        // Each extra part is a whole `N/period` (or `N per period`) expression of its own.
        parse_full_expression(extra)?;
        ignored_extra_limits = true;
    }
    Some(ParsedPeriod {
        window,
        ignored_extra_limits,
    })
}

/// The first expression: MLflow already wrote `calls/`, so only `[multiplier] granularity` remains.
fn parse_first(text: &str) -> Option<RateWindow> {
    let rest = text.trim_start();
    let (multiples, rest) = take_digits(rest);
    let word = rest.trim_start().trim_end();
    let granularity = parse_granularity(word)?;
    Some(RateWindow {
        multiples: multiples_or_one(multiples)?,
        granularity,
    })
}

/// A later expression: `amount (/|per) [multiplier] granularity`.
fn parse_full_expression(text: &str) -> Option<RateWindow> {
    let rest = text.trim_start();
    let (amount, rest) = take_digits(rest);
    amount?;
    let rest = rest.trim_start();
    let rest = if let Some(r) = rest.strip_prefix('/') {
        r
    } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("per") {
        &rest[3..]
    } else {
        return None;
    };
    parse_first(rest)
}

/// Splits leading ASCII digits off `text`; `None` when there are none.
fn take_digits(text: &str) -> (Option<&str>, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 {
        (None, text)
    } else {
        (Some(&text[..end]), &text[end..])
    }
}

/// `limits` turns a missing multiplier, and also an explicit `0` (it tests `multiples and ...`),
/// into 1.
fn multiples_or_one(digits: Option<&str>) -> Option<u64> {
    match digits {
        None => Some(1),
        // A multiplier too large for u64 is not a meaningful window; reject it.
        Some(d) => match d.parse::<u64>().ok()? {
            0 => Some(1),
            n => Some(n),
        },
    }
}

/// `second`, `minutes`, `HOUR`…: the word must be ASCII letters only, a granularity name and at
/// most one trailing `s`.
fn parse_granularity(word: &str) -> Option<Granularity> {
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    // No granularity name ends in `s`, so stripping one `s` is exactly "optional plural".
    match lower.strip_suffix('s').unwrap_or(&lower) {
        "second" => Some(Granularity::Second),
        "minute" => Some(Granularity::Minute),
        "hour" => Some(Granularity::Hour),
        "day" => Some(Granularity::Day),
        "month" => Some(Granularity::Month),
        "year" => Some(Granularity::Year),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(multiples: u64, granularity: Granularity) -> Option<RateWindow> {
        Some(RateWindow {
            multiples,
            granularity,
        })
    }

    #[test]
    fn renewal_period_grammar_table() {
        use Granularity::*;
        let table: &[(&str, Option<RateWindow>)] = &[
            ("minute", window(1, Minute)),
            ("minutes", window(1, Minute)),
            ("MINUTE", window(1, Minute)),
            ("Hours", window(1, Hour)),
            ("second", window(1, Second)),
            ("day", window(1, Day)),
            ("month", window(1, Month)),
            ("year", window(1, Year)),
            ("10 minutes", window(10, Minute)),
            ("2 hours", window(2, Hour)),
            ("2hours", window(2, Hour)),
            ("  3   days  ", window(3, Day)),
            ("1 second", window(1, Second)),
            // `limits` treats a zero multiplier as "no multiplier".
            ("0 minutes", window(1, Minute)),
            ("week", None),
            ("weeks", None),
            ("sec", None),
            ("minutess", None),
            ("", None),
            ("   ", None),
            ("10", None),
            ("-1 minute", None),
            ("1.5 minutes", None),
            ("10 per minute", None),
            ("minute 10", None),
            ("ten minutes", None),
            ("mínute", None),
        ];
        for (text, expected) in table {
            let got = parse_renewal_period(text).map(|p| p.window);
            assert_eq!(got, *expected, "renewal_period {text:?}");
        }
    }

    #[test]
    fn extra_limits_after_a_separator_are_parsed_then_ignored() {
        let parsed = parse_renewal_period("minute; 5/second").expect("valid");
        assert_eq!(parsed.window.granularity, Granularity::Minute);
        assert!(parsed.ignored_extra_limits);
        assert!(parse_renewal_period("minute, 5 per hour").is_some());
        assert!(parse_renewal_period("minute|second").is_none());
        assert!(parse_renewal_period("minute;").is_none());
        assert!(
            !parse_renewal_period("minute")
                .expect("valid")
                .ignored_extra_limits
        );
    }

    #[test]
    fn granularity_lengths_match_the_limits_library() {
        assert_eq!(Granularity::Month.seconds(), 30 * 86_400);
        assert_eq!(Granularity::Year.seconds(), 12 * 30 * 86_400);
    }
}
