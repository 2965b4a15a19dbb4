//! A request's unknown top-level keys, kept as the client's JSON text and forwarded as such.
//!
//! MLflow forwards keys it does not know to the provider. Building them into a `serde_json::Value`
//! only to write them out again costs ~80 bytes per value (a 16 MiB array of zeros became 1.2 GiB),
//! so they stay text: the OpenAI wire writes them byte for byte, and providers that rework the
//! payload as a tree may build them only within what is left of the body's node limit.

use bytestring::ByteString;
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::body::too_many_nodes;
use crate::error::GatewayError;

/// A JSON value's text (already checked): a share of the body's buffer, or a copy of its own.
#[derive(Debug, Clone)]
pub(crate) enum RawText {
    /// Part of the request body, no copy (for values that are most of it).
    Shared(ByteString),
    Owned(Box<RawValue>),
}

impl RawText {
    pub(crate) fn get(&self) -> &str {
        match self {
            Self::Shared(text) => text,
            Self::Owned(raw) => raw.get(),
        }
    }
}

impl Serialize for RawText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Owned(raw) => raw.serialize(serializer),
            Self::Shared(text) => {
                // Reading it back as a borrowed RawValue only re-scans it (no copy, no tree), and
                // lets serde_json write it byte for byte.
                let raw: &RawValue = serde_json::from_str(text).map_err(S::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

/// One unknown key: its name, its JSON text and how many values that text holds.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    raw: RawText,
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
    /// Bytes of the body the request was read from (0 when made in code): what its upstream
    /// body will about weigh, so that buffer can be sized once instead of doubling (each
    /// doubling of a 16 MiB body leaves the old copy resident for a while).
    body_len: usize,
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
            body_len: 0,
        }
    }

    /// No keys yet, for a body of `body_len` bytes whose node limit is `limit` and of which
    /// `room` values are left.
    pub(crate) fn with_room(limit: usize, room: usize, body_len: usize) -> Self {
        Self {
            entries: Vec::new(),
            room,
            limit,
            body_len,
        }
    }

    /// Bytes of the body the request was read from (0 when it was made in code).
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Appends a key (the caller keeps keys unique and drops nulls).
    pub(crate) fn push(&mut self, key: String, raw: RawText, nodes: usize) {
        self.entries.push(Entry { key, raw, nodes });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and their JSON text, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (e.key.as_str(), e.raw.get()))
    }

    /// A key's JSON text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.raw.get())
    }

    /// A key's value when it is a JSON string (anything else, however large, is not parsed).
    pub fn get_str(&self, key: &str) -> Option<String> {
        let raw = self.get(key)?;
        if !raw.starts_with('"') {
            return None;
        }
        serde_json::from_str(raw).ok()
    }

    /// Removes a key, keeping the others' order.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(at).raw.get().to_owned())
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
            && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Serialize for RawExtras {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|e| (&e.key, &e.raw)))
    }
}

struct Without<'a> {
    extras: &'a RawExtras,
    skip: &'a str,
}

impl Serialize for Without<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.extras
                .entries
                .iter()
                .filter(|e| e.key != self.skip)
                .map(|e| (&e.key, &e.raw)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawText {
        RawText::Owned(RawValue::from_string(text.to_owned()).unwrap())
    }

    #[test]
    fn serialises_the_text_as_sent() {
        let mut extras = RawExtras::unlimited();
        extras.push("x".into(), raw("[0, 0,0]"), 4);
        extras.push("y".into(), raw("1.50"), 1);
        let body = ByteString::from_static(r#"{"z": [ 1 ]}"#);
        extras.push("z".into(), RawText::Shared(body.slice_ref(&body[6..11])), 2);
        assert_eq!(
            serde_json::to_string(&extras).unwrap(),
            r#"{"x":[0, 0,0],"y":1.50,"z":[ 1 ]}"#
        );
        assert_eq!(
            serde_json::to_string(&extras.without("x")).unwrap(),
            r#"{"y":1.50,"z":[ 1 ]}"#
        );
    }

    #[test]
    fn strings_are_read_and_other_values_are_not() {
        let mut extras = RawExtras::unlimited();
        extras.push("s".into(), raw(r#""a\nb""#), 1);
        extras.push("n".into(), raw("[1]"), 2);
        assert_eq!(extras.get_str("s").as_deref(), Some("a\nb"));
        assert_eq!(extras.get_str("n"), None);
        assert_eq!(extras.remove("s"), Some(r#""a\nb""#.to_owned()));
        assert_eq!(extras.len(), 1);
    }

    #[test]
    fn building_them_is_refused_past_the_room_left() {
        let mut extras = RawExtras::with_room(10, 3, 0);
        extras.push("a".into(), raw("[1,2]"), 3);
        assert!(extras.check_tree_room().is_ok());
        extras.push("b".into(), raw("1"), 1);
        let error = extras.check_tree_room().unwrap_err();
        assert_eq!(error.status, 413);
    }
}
