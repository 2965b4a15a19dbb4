//! A request's unknown top-level keys, kept as the client's JSON text and forwarded as such.
//!
//! MLflow forwards keys it does not know to the provider. Building them into a `serde_json::Value`
//! only to write them out again costs ~80 bytes per value (a 16 MiB array of zeros became 1.2 GiB),
//! so they stay text: the OpenAI wire writes them byte for byte, and providers that rework the
//! payload as a tree may build them only within what is left of the body's node limit.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::body::too_many_nodes;
use crate::error::GatewayError;

/// One unknown key: its name, its JSON text and how many values that text holds.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    raw: Box<RawValue>,
    nodes: usize,
}

/// Unknown top-level keys in the client's order, nulls dropped, values as raw JSON text.
#[derive(Debug, Clone)]
pub struct RawExtras {
    entries: Vec<Entry>,
    /// How many values may still be built into a tree for this body (its node limit minus
    /// what validation built); `usize::MAX` when the body had no limit.
    room: usize,
    /// The body's node limit, named in the error when building the extras would pass it.
    limit: usize,
}

impl Default for RawExtras {
    fn default() -> Self {
        Self::unlimited()
    }
}

impl RawExtras {
    /// No keys, and no limit on building them (requests made in code, tests).
    pub fn unlimited() -> Self {
        Self {
            entries: Vec::new(),
            room: usize::MAX,
            limit: usize::MAX,
        }
    }

    /// No keys yet, for a body whose node limit is `limit` and of which `room` values are left.
    pub(crate) fn with_room(limit: usize, room: usize) -> Self {
        Self {
            entries: Vec::new(),
            room,
            limit,
        }
    }

    /// Appends a key (the caller keeps keys unique and drops nulls).
    pub(crate) fn push(&mut self, key: String, raw: Box<RawValue>, nodes: usize) {
        self.entries.push(Entry { key, raw, nodes });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and their JSON text, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.entries.iter().map(|e| (e.key.as_str(), &*e.raw))
    }

    /// A key's JSON text.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries.iter().find(|e| e.key == key).map(|e| &*e.raw)
    }

    /// A key's value when it is a JSON string (anything else, however large, is not parsed).
    pub fn get_str(&self, key: &str) -> Option<String> {
        let raw = self.get(key)?.get();
        if !raw.starts_with('"') {
            return None;
        }
        serde_json::from_str(raw).ok()
    }

    /// Removes a key, keeping the others' order.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let at = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(at).raw)
    }

    /// Values inside all the keys' text.
    pub(crate) fn tree_nodes(&self) -> usize {
        self.entries
            .iter()
            .fold(0usize, |sum, e| sum.saturating_add(e.nodes))
    }

    /// Ok when building every key into a tree stays within the body's node limit; otherwise the
    /// same 413 a body over the limit gets. For providers that rework the payload as a tree.
    pub fn check_tree_room(&self) -> Result<(), GatewayError> {
        if self.tree_nodes() > self.room {
            return Err(too_many_nodes(self.limit));
        }
        Ok(())
    }

    /// Serialises the keys but `skip`, as map entries (for a `flatten`ed view).
    pub(crate) fn without<'a>(&'a self, skip: &'a str) -> impl Serialize + 'a {
        Without { extras: self, skip }
    }
}

/// Equal when the same keys carry the same JSON text, in the same order.
impl PartialEq for RawExtras {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl Serialize for RawExtras {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

struct Without<'a> {
    extras: &'a RawExtras,
    skip: &'a str,
}

impl Serialize for Without<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.extras.iter().filter(|(k, _)| *k != self.skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn serialises_the_text_as_sent() {
        let mut extras = RawExtras::unlimited();
        extras.push("x".into(), raw("[0, 0,0]"), 4);
        extras.push("y".into(), raw("1.50"), 1);
        assert_eq!(
            serde_json::to_string(&extras).unwrap(),
            r#"{"x":[0, 0,0],"y":1.50}"#
        );
        assert_eq!(
            serde_json::to_string(&extras.without("x")).unwrap(),
            r#"{"y":1.50}"#
        );
    }

    #[test]
    fn strings_are_read_and_other_values_are_not() {
        let mut extras = RawExtras::unlimited();
        extras.push("s".into(), raw(r#""a\nb""#), 1);
        extras.push("n".into(), raw("[1]"), 2);
        assert_eq!(extras.get_str("s").as_deref(), Some("a\nb"));
        assert_eq!(extras.get_str("n"), None);
        assert_eq!(extras.remove("s").map(|r| r.get().to_owned()), Some(r#""a\nb""#.to_owned()));
        assert_eq!(extras.len(), 1);
    }

    #[test]
    fn building_them_is_refused_past_the_room_left() {
        let mut extras = RawExtras::with_room(10, 3);
        extras.push("a".into(), raw("[1,2]"), 3);
        assert!(extras.check_tree_room().is_ok());
        extras.push("b".into(), raw("1"), 1);
        let error = extras.check_tree_room().unwrap_err();
        assert_eq!(error.status, 413);
    }
}
