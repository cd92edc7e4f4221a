//! Sane ranges for numeric settings: a value outside its range is refused at start-up (and on
//! reload) with one sentence naming the key, the range and the unit, never clamped in silence.

use std::ops::RangeInclusive;

/// The sentence for `key` when `value` lies outside `range`, in `unit`s.
pub fn out_of_range(key: &str, value: u64, range: RangeInclusive<u64>, unit: &str) -> Option<String> {
    (!range.contains(&value))
        .then(|| format!("{key} = {value} is out of range: use {} to {} {unit}", range.start(), range.end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_key_the_range_and_the_unit() {
        assert_eq!(out_of_range("a.b", 5, 1..=10, "seconds"), None);
        assert_eq!(
            out_of_range("auth.providers[0].leeway_secs", 86_400, 0..=300, "seconds").as_deref(),
            Some("auth.providers[0].leeway_secs = 86400 is out of range: use 0 to 300 seconds")
        );
    }
}
