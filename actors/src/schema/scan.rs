//! Reading a JSON body without building it: a pass that checks every byte exactly as
//! `serde_json::Value` would (same errors, same positions) while only counting values, and the
//! split of a top-level object into its members as raw JSON text.
//!
//! A `Value` node costs about 80 bytes (more for an object entry) against 2 bytes of JSON for
//! `0,`, so a tree built before anything is counted can take 70 times the body. Counting first
//! lets the caller refuse a body over the node limit before that memory is spent, and keeping the
//! members as text lets unknown ones travel upstream without ever becoming a tree.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// What a counting pass found in one JSON value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Values of any kind (objects, arrays and scalars); object keys are not counted apart.
    pub nodes: usize,
    /// `null`s anywhere in the value, itself included.
    pub nulls: usize,
}

/// Counts one value. It drives the deserializer with `deserialize_any` all the way down, so
/// numbers, escapes and nesting depth are checked exactly as a `Value` parse checks them.
struct CountSeed<'a>(&'a mut Counts);

impl<'de> DeserializeSeed<'de> for CountSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.nodes += 1;
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.nodes += 1;
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.nodes += 1;
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.nodes += 1;
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.0.nodes += 1;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.nodes += 1;
        self.0.nulls += 1;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.nodes += 1;
        while seq.next_element_seed(CountSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.nodes += 1;
        while map.next_key_seed(KeySeed)?.is_some() {
            map.next_value_seed(CountSeed(&mut *self.0))?;
        }
        Ok(())
    }
}

/// An object key, read as a string (so its escapes are checked) without keeping it.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// Counts a whole JSON text; the error is the one `serde_json::from_str::<Value>` would give.
pub(crate) fn count(text: &str) -> Result<Counts, serde_json::Error> {
    let mut counts = Counts::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    CountSeed(&mut counts).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(counts)
}

/// Counts each member of a top-level object, in the order sent (duplicates included). The
/// whole text is one deserializer, so every error and its position is what a `Value` parse of the
/// body reports.
pub(crate) fn count_members(text: &str) -> Result<Vec<Counts>, serde_json::Error> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<Counts>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Counts>, A::Error> {
            let mut members = Vec::new();
            while map.next_key_seed(KeySeed)?.is_some() {
                let mut counts = Counts::default();
                map.next_value_seed(CountSeed(&mut counts))?;
                members.push(counts);
            }
            Ok(members)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer.deserialize_map(Members)?;
    deserializer.end()?;
    Ok(members)
}

/// The members of a top-level object as (key, raw text) pairs, in the order sent (duplicates
/// included). Only ever called on text [`count_members`] accepted.
pub(crate) fn split_members(text: &str) -> Result<Vec<(String, &RawValue)>, serde_json::Error> {
    struct Split;
    impl<'de> Visitor<'de> for Split {
        type Value = Vec<(String, &'de RawValue)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                members.push((key, map.next_value::<&'de RawValue>()?));
            }
            Ok(members)
        }
    }
    serde_json::Deserializer::from_str(text).deserialize_map(Split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_value_and_every_null() {
        assert_eq!(count("0").unwrap(), Counts { nodes: 1, nulls: 0 });
        assert_eq!(
            count(r#"{"a":[1,null,{"b":null}],"c":"x"}"#).unwrap(),
            Counts { nodes: 7, nulls: 2 }
        );
    }

    #[test]
    fn errors_are_the_ones_a_value_parse_gives() {
        for text in [
            "{\"a\":1,}",
            "{\"a\": 1e400}",
            "{\"a\": \"\\ud800\"}",
            "[1] x",
            "",
            &format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200)),
            &format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127)),
        ] {
            let ours = count(text).err().map(|e| e.to_string());
            let values = serde_json::from_str::<serde_json::Value>(text)
                .err()
                .map(|e| e.to_string());
            assert_eq!(ours, values, "{text}");
        }
    }

    #[test]
    fn members_are_counted_and_split_in_the_order_sent() {
        let text = r#" {"a": [1, 2], "b": null, "a": "x"} "#;
        assert_eq!(
            count_members(text).unwrap(),
            vec![
                Counts { nodes: 3, nulls: 0 },
                Counts { nodes: 1, nulls: 1 },
                Counts { nodes: 1, nulls: 0 }
            ]
        );
        let split = split_members(text).unwrap();
        let pairs: Vec<(&str, &str)> = split.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(pairs, vec![("a", "[1, 2]"), ("b", "null"), ("a", "\"x\"")]);
    }
}
