//! Python `json` compatibility for request bodies: how CPython decodes body bytes to text, and where
//! and why its decoder rejects malformed JSON.
//!
//! MLflow's 422 for a malformed body carries Python's own message (`Expecting ',' delimiter`) and the
//! character offset where Python stopped. serde_json reports different words at byte columns, so
//! when serde_json refuses a body we re-scan it here, following the grammar of CPython 3.11's
//! `json` scanner, only to name the error the way MLflow would. The happy path never comes here.

/// Why the body bytes could not be turned into text (MLflow answers 400 for this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UndecodableBody;

/// Decodes body bytes as Python's `json.loads(bytes)` does: UTF-8 (a leading BOM is dropped), or
/// UTF-16 / UTF-32 when a BOM or the NUL-byte pattern of the first bytes says so.
pub(crate) fn decode_body(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, UndecodableBody> {
    use std::borrow::Cow;
    match detect_encoding(bytes) {
        Encoding::Utf8 => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| UndecodableBody),
        Encoding::Utf8Sig => std::str::from_utf8(&bytes[3..])
            .map(Cow::Borrowed)
            .map_err(|_| UndecodableBody),
        Encoding::Utf16 { big_endian, skip } => {
            decode_utf16(&bytes[skip..], big_endian).map(Cow::Owned)
        }
        Encoding::Utf32 { big_endian, skip } => {
            decode_utf32(&bytes[skip..], big_endian).map(Cow::Owned)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf8Sig,
    Utf16 { big_endian: bool, skip: usize },
    Utf32 { big_endian: bool, skip: usize },
}

/// The same decision table as Python's `json.detect_encoding`.
fn detect_encoding(b: &[u8]) -> Encoding {
    if b.starts_with(&[0x00, 0x00, 0xFE, 0xFF]) {
        return Encoding::Utf32 {
            big_endian: true,
            skip: 4,
        };
    }
    if b.starts_with(&[0xFF, 0xFE, 0x00, 0x00]) {
        return Encoding::Utf32 {
            big_endian: false,
            skip: 4,
        };
    }
    if b.starts_with(&[0xFE, 0xFF]) {
        return Encoding::Utf16 {
            big_endian: true,
            skip: 2,
        };
    }
    if b.starts_with(&[0xFF, 0xFE]) {
        return Encoding::Utf16 {
            big_endian: false,
            skip: 2,
        };
    }
    if b.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Encoding::Utf8Sig;
    }
    if b.len() >= 4 {
        if b[0] == 0 {
            return if b[1] != 0 {
                Encoding::Utf16 {
                    big_endian: true,
                    skip: 0,
                }
            } else {
                Encoding::Utf32 {
                    big_endian: true,
                    skip: 0,
                }
            };
        }
        if b[1] == 0 {
            return if b[2] != 0 || b[3] != 0 {
                Encoding::Utf16 {
                    big_endian: false,
                    skip: 0,
                }
            } else {
                Encoding::Utf32 {
                    big_endian: false,
                    skip: 0,
                }
            };
        }
    } else if b.len() == 2 {
        if b[0] == 0 {
            return Encoding::Utf16 {
                big_endian: true,
                skip: 0,
            };
        }
        if b[1] == 0 {
            return Encoding::Utf16 {
                big_endian: false,
                skip: 0,
            };
        }
    }
    Encoding::Utf8
}

fn decode_utf16(bytes: &[u8], big_endian: bool) -> Result<String, UndecodableBody> {
    if !bytes.len().is_multiple_of(2) {
        return Err(UndecodableBody);
    }
    let units = bytes.chunks_exact(2).map(|c| {
        if big_endian {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_le_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| UndecodableBody)
}

fn decode_utf32(bytes: &[u8], big_endian: bool) -> Result<String, UndecodableBody> {
    if !bytes.len().is_multiple_of(4) {
        return Err(UndecodableBody);
    }
    bytes
        .chunks_exact(4)
        .map(|c| {
            let raw = [c[0], c[1], c[2], c[3]];
            let code = if big_endian {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            char::from_u32(code).ok_or(UndecodableBody)
        })
        .collect()
}

/// A decode error as Python's `json.JSONDecodeError` has it: the message and the character offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PyJsonError {
    pub msg: &'static str,
    pub pos: usize,
}

const EXPECTING_VALUE: &str = "Expecting value";
const EXPECTING_DELIMITER: &str = "Expecting ',' delimiter";
const EXPECTING_COLON: &str = "Expecting ':' delimiter";
const EXPECTING_PROPERTY: &str = "Expecting property name enclosed in double quotes";
const EXTRA_DATA: &str = "Extra data";
const UNTERMINATED_STRING: &str = "Unterminated string starting at";
const CONTROL_CHARACTER: &str = "Invalid control character at";
const INVALID_ESCAPE: &str = "Invalid \\escape";
const INVALID_UNICODE_ESCAPE: &str = "Invalid \\uXXXX escape";

/// Where Python's decoder would reject `text`, or `None` when Python accepts it (Python also
/// takes `NaN`, `Infinity`, huge numbers, lone surrogates and deep nesting, which serde_json
/// refuses; the caller reports those with serde_json's own words).
///
/// Iterative, with an explicit stack, so a hostile nesting depth cannot overflow our stack.
pub(crate) fn locate_error(text: &str) -> Option<PyJsonError> {
    let s: Vec<char> = text.chars().collect();
    Scanner { s: &s }.run().err()
}

#[derive(Clone, Copy)]
enum Frame {
    Array,
    Object,
}

enum Term {
    /// A complete value ending before this index.
    Done(usize),
    /// An opening bracket; the index is just after it.
    OpenArray(usize),
    OpenObject(usize),
}

struct Scanner<'a> {
    s: &'a [char],
}

impl Scanner<'_> {
    fn err(msg: &'static str, pos: usize) -> PyJsonError {
        PyJsonError { msg, pos }
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn run(&self) -> Result<(), PyJsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut idx = self.ws(0);
        'value: loop {
            // Read one term at `idx`, descending into containers.
            match self.term(idx)? {
                Term::Done(end) => idx = end,
                Term::OpenArray(after) => {
                    let i = self.ws(after);
                    if self.at(i) == Some(']') {
                        idx = i + 1;
                    } else {
                        stack.push(Frame::Array);
                        idx = i;
                        continue 'value;
                    }
                }
                Term::OpenObject(after) => {
                    let i = self.ws(after);
                    if self.at(i) == Some('}') {
                        idx = i + 1;
                    } else {
                        idx = self.object_key(i)?;
                        stack.push(Frame::Object);
                        continue 'value;
                    }
                }
            }
            // A term is complete: close containers until one wants another element.
            loop {
                let i = self.ws(idx);
                match stack.last() {
                    None => {
                        return if i == self.s.len() {
                            Ok(())
                        } else {
                            Err(Self::err(EXTRA_DATA, i))
                        };
                    }
                    Some(Frame::Array) => {
                        if self.at(i) == Some(']') {
                            stack.pop();
                            idx = i + 1;
                            continue;
                        }
                        if self.at(i) != Some(',') {
                            return Err(Self::err(EXPECTING_DELIMITER, i));
                        }
                        idx = self.ws(i + 1);
                        continue 'value;
                    }
                    Some(Frame::Object) => {
                        if self.at(i) == Some('}') {
                            stack.pop();
                            idx = i + 1;
                            continue;
                        }
                        if self.at(i) != Some(',') {
                            return Err(Self::err(EXPECTING_DELIMITER, i));
                        }
                        idx = self.object_key(self.ws(i + 1))?;
                        continue 'value;
                    }
                }
            }
        }
    }

    /// A key, its colon and the whitespace after; returns where the value starts.
    fn object_key(&self, i: usize) -> Result<usize, PyJsonError> {
        if self.at(i) != Some('"') {
            return Err(Self::err(EXPECTING_PROPERTY, i));
        }
        let end = self.string(i + 1)?;
        let k = self.ws(end);
        if self.at(k) != Some(':') {
            return Err(Self::err(EXPECTING_COLON, k));
        }
        Ok(self.ws(k + 1))
    }

    fn literal(&self, idx: usize, word: &str) -> bool {
        let n = word.chars().count();
        idx + n <= self.s.len() && self.s[idx..idx + n].iter().copied().eq(word.chars())
    }

    fn term(&self, idx: usize) -> Result<Term, PyJsonError> {
        let Some(c) = self.at(idx) else {
            return Err(Self::err(EXPECTING_VALUE, idx));
        };
        let constant = match c {
            '"' => return self.string(idx + 1).map(Term::Done),
            '[' => return Ok(Term::OpenArray(idx + 1)),
            '{' => return Ok(Term::OpenObject(idx + 1)),
            'n' => "null",
            't' => "true",
            'f' => "false",
            'N' => "NaN",
            'I' => "Infinity",
            '-' => "-Infinity",
            _ => "",
        };
        if !constant.is_empty() && self.literal(idx, constant) {
            return Ok(Term::Done(idx + constant.len()));
        }
        self.number(idx)
            .map(Term::Done)
            .ok_or(Self::err(EXPECTING_VALUE, idx))
    }

    fn is_digit(&self, i: usize) -> bool {
        matches!(self.at(i), Some('0'..='9'))
    }

    /// The JSON number grammar as Python matches it (exponent backtracking included).
    fn number(&self, start: usize) -> Option<usize> {
        let len = self.s.len();
        let mut i = start;
        if self.at(i) == Some('-') {
            i += 1;
        }
        match self.at(i)? {
            '1'..='9' => {
                i += 1;
                while self.is_digit(i) {
                    i += 1;
                }
            }
            '0' => i += 1,
            _ => return None,
        }
        if i + 1 < len && self.at(i) == Some('.') && self.is_digit(i + 1) {
            i += 2;
            while self.is_digit(i) {
                i += 1;
            }
        }
        if i + 1 < len && matches!(self.at(i), Some('e' | 'E')) {
            let e_start = i;
            i += 1;
            if i + 1 < len && matches!(self.at(i), Some('-' | '+')) {
                i += 1;
            }
            while self.is_digit(i) {
                i += 1;
            }
            if !self.is_digit(i - 1) {
                i = e_start;
            }
        }
        Some(i)
    }

    /// A string body starting just after its opening quote; returns the index after the closing
    /// quote.
    fn string(&self, start: usize) -> Result<usize, PyJsonError> {
        let begin = start - 1;
        let len = self.s.len();
        let mut i = start;
        loop {
            let c = match self.at(i) {
                None => return Err(Self::err(UNTERMINATED_STRING, begin)),
                Some(c) => c,
            };
            match c {
                '"' => return Ok(i + 1),
                '\\' => {
                    i += 1;
                    let Some(esc) = self.at(i) else {
                        return Err(Self::err(UNTERMINATED_STRING, begin));
                    };
                    if esc != 'u' {
                        if !matches!(esc, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') {
                            return Err(Self::err(INVALID_ESCAPE, i - 1));
                        }
                        i += 1;
                        continue;
                    }
                    // Python requires the four hex digits and at least one character after them.
                    let first = i + 1;
                    if first + 4 >= len {
                        return Err(Self::err(INVALID_UNICODE_ESCAPE, i));
                    }
                    if !self.s[first..first + 4].iter().all(char::is_ascii_hexdigit) {
                        return Err(Self::err(INVALID_UNICODE_ESCAPE, i));
                    }
                    // The low half of a surrogate pair is checked the same way on the next round,
                    // at the same position Python reports.
                    i = first + 4;
                }
                c if (c as u32) <= 0x1f => return Err(Self::err(CONTROL_CHARACTER, i)),
                _ => i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str) -> Option<(&'static str, usize)> {
        locate_error(text).map(|e| (e.msg, e.pos))
    }

    // Every expectation below was produced by CPython 3.11.7 `json.loads` (the interpreter MLflow
    // 3.17.2 runs on), as `(e.msg, e.pos)`.
    #[test]
    fn matches_python_messages_and_positions() {
        let cases: &[(&str, (&str, usize))] = &[
            ("", ("Expecting value", 0)),
            ("  ", ("Expecting value", 2)),
            ("abc", ("Expecting value", 0)),
            ("{\"a\":1} x", ("Extra data", 8)),
            (
                "{\"a\":1,}",
                ("Expecting property name enclosed in double quotes", 7),
            ),
            ("{\"a\" 1}", ("Expecting ':' delimiter", 5)),
            ("{\"a\":\"x", ("Unterminated string starting at", 5)),
            (
                "{",
                ("Expecting property name enclosed in double quotes", 1),
            ),
            ("{\"a\"", ("Expecting ':' delimiter", 4)),
            ("{\"a\":", ("Expecting value", 5)),
            ("{\"a\":1", ("Expecting ',' delimiter", 6)),
            ("[", ("Expecting value", 1)),
            ("[1", ("Expecting ',' delimiter", 2)),
            ("[1,]", ("Expecting value", 3)),
            ("[1 2]", ("Expecting ',' delimiter", 3)),
            ("[-]", ("Expecting value", 1)),
            ("-", ("Expecting value", 0)),
            ("01", ("Extra data", 1)),
            ("1.", ("Extra data", 1)),
            ("1.e5", ("Extra data", 1)),
            ("[1e]", ("Expecting ',' delimiter", 2)),
            ("1e+", ("Extra data", 1)),
            ("[.5]", ("Expecting value", 1)),
            ("[nul]", ("Expecting value", 1)),
            ("[True]", ("Expecting value", 1)),
            ("\"a\\qb\"", ("Invalid \\escape", 2)),
            ("\"\\u12\"", ("Invalid \\uXXXX escape", 2)),
            ("\"\\u12G4\"", ("Invalid \\uXXXX escape", 2)),
            ("\"\\u1234", ("Invalid \\uXXXX escape", 2)),
            ("\"a\nb\"", ("Invalid control character at", 2)),
            ("\"ab\\", ("Unterminated string starting at", 0)),
            ("{\"é\":1,\"ü\" 2}", ("Expecting ':' delimiter", 11)),
            (
                "{'a':1}",
                ("Expecting property name enclosed in double quotes", 1),
            ),
            ("[1,2,3]]", ("Extra data", 7)),
            ("{\"a\":[1,{\"b\":}]}", ("Expecting value", 13)),
            ("\"\\ud800\\u12G4\"", ("Invalid \\uXXXX escape", 8)),
            ("\"\\ud800\\ud", ("Invalid \\uXXXX escape", 8)),
        ];
        for (text, expected) in cases {
            assert_eq!(loc(text), Some(*expected), "input {text:?}");
        }
    }

    #[test]
    fn accepts_what_python_accepts() {
        for text in [
            "{}",
            " [1, -0.5e+3, \"\\u00e9\\n\", true, false, null] ",
            "NaN",
            "[-Infinity, Infinity]",
            "1e400",
            "\"\\ud800\"",
            "{\"a\":{\"b\":[[]]}}",
        ] {
            assert_eq!(loc(text), None, "input {text:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "[".repeat(200_000);
        assert_eq!(loc(&deep), Some(("Expecting value", 200_000)));
    }

    #[test]
    fn decodes_like_python() {
        assert_eq!(decode_body(b"\xef\xbb\xbf{}").as_deref(), Ok("{}"));
        assert_eq!(decode_body(b"{\x00}\x00").as_deref(), Ok("{}"));
        assert_eq!(decode_body(b"\x00{\x00}").as_deref(), Ok("{}"));
        assert_eq!(decode_body(b"\xff\xfe{\x00}\x00").as_deref(), Ok("{}"));
        assert_eq!(decode_body(b"{\x00\x00\x00").as_deref(), Ok("{"));
        assert_eq!(decode_body(b"{\"a\":\"\xff\"}"), Err(UndecodableBody));
    }
}
