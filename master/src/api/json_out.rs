//! A JSON document written straight into bytes, for the state endpoints' hot shapes (a task,
//! its statuses and resources: hundreds of thousands of them in one `/master/state`).
//!
//! `serde_json` escapes every key and string one byte at a time through a table; here keys
//! are literals known to need no escaping, and a string is checked whole (a loop the compiler
//! vectorizes) and copied at once when it needs none — which ids, names and states never do.
//! Numbers and anything unusual still go through `serde_json`, so the text is the same.
//!
//! ```
//! use master::api::json_out::JsonOut;
//!
//! let mut out = JsonOut::new();
//! out.begin_object();
//! out.key("id");
//! out.string("task-1");
//! out.key("cpus");
//! out.number(0.5);
//! out.key("ports");
//! out.begin_array();
//! out.number(31000.0);
//! out.end_array();
//! out.end_object();
//! assert_eq!(out.into_bytes(), br#"{"id":"task-1","cpus":0.5,"ports":[31000.0]}"#);
//! ```

use serde::Serialize;

/// The bytes of a JSON document being written: objects and arrays opened and closed in order,
/// a key before each member's value.
#[derive(Debug, Default)]
pub struct JsonOut {
    buf: Vec<u8>,
    /// The next value or key follows another in the same object or array.
    comma: bool,
    /// Objects and arrays open (checked in debug builds).
    depth: usize,
}

impl JsonOut {
    /// An empty document.
    pub fn new() -> JsonOut {
        JsonOut::default()
    }

    /// An empty document with room for `bytes` (a large document grown by doubling copies
    /// itself over and over).
    pub fn with_capacity(bytes: usize) -> JsonOut {
        JsonOut {
            buf: Vec::with_capacity(bytes),
            ..JsonOut::default()
        }
    }

    /// The document written; every object and array must be closed.
    pub fn into_bytes(self) -> Vec<u8> {
        debug_assert_eq!(self.depth, 0, "an object or array left open");
        self.buf
    }

    fn separate(&mut self) {
        if self.comma {
            self.buf.push(b',');
        }
    }

    /// Opens an object (a value).
    pub fn begin_object(&mut self) {
        self.separate();
        self.buf.push(b'{');
        self.comma = false;
        self.depth += 1;
    }

    /// Closes the innermost object.
    pub fn end_object(&mut self) {
        debug_assert!(self.depth > 0);
        self.buf.push(b'}');
        self.comma = true;
        self.depth -= 1;
    }

    /// Opens an array (a value).
    pub fn begin_array(&mut self) {
        self.separate();
        self.buf.push(b'[');
        self.comma = false;
        self.depth += 1;
    }

    /// Closes the innermost array.
    pub fn end_array(&mut self) {
        debug_assert!(self.depth > 0);
        self.buf.push(b']');
        self.comma = true;
        self.depth -= 1;
    }

    /// A member's key, a literal that needs no escaping; its value comes next.
    pub fn key(&mut self, key: &'static str) {
        debug_assert!(needs_no_escape(key), "key {key:?} needs escaping");
        self.separate();
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.comma = false;
    }

    /// A member's key that may need escaping (a resource or attribute name).
    pub fn key_text(&mut self, key: &str) {
        self.string(key);
        self.buf.push(b':');
        self.comma = false;
    }

    /// A string value.
    pub fn string(&mut self, s: &str) {
        if needs_no_escape(s) {
            self.separate();
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
            self.comma = true;
        } else {
            self.value(&s);
        }
    }

    /// A number, as `serde_json` writes an `f64` (`null` if not finite).
    pub fn number(&mut self, n: f64) {
        self.value(&n);
    }

    /// A whole number.
    pub fn integer(&mut self, n: u64) {
        self.value(&n);
    }

    /// `true` or `false`.
    pub fn bool(&mut self, b: bool) {
        self.separate();
        self.buf
            .extend_from_slice(if b { b"true" } else { b"false" });
        self.comma = true;
    }

    /// `null`.
    pub fn null(&mut self) {
        self.separate();
        self.buf.extend_from_slice(b"null");
        self.comma = true;
    }

    /// Any value `serde_json` can write (the cold parts of a document).
    pub fn value<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.separate();
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            // Only a value whose own Serialize fails gets here (maps with non-string keys).
            self.buf.extend_from_slice(b"null");
        }
        self.comma = true;
    }
}

/// Whether `s` can be written between quotes as it is. No short-circuit, so the loop
/// vectorizes.
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "tab\t",
            "ünï\u{1}",
        ] {
            let mut out = JsonOut::new();
            out.string(s);
            assert_eq!(
                out.into_bytes(),
                serde_json::to_vec(s).unwrap(),
                "{s:?} written as serde_json writes it"
            );
        }
    }

    #[test]
    fn members_and_elements_are_separated_by_commas() {
        let mut out = JsonOut::new();
        out.begin_object();
        out.key("a");
        out.begin_array();
        out.integer(1);
        out.null();
        out.begin_object();
        out.end_object();
        out.end_array();
        out.key_text("b\"");
        out.bool(true);
        out.key("c");
        out.value(&serde_json::json!({"x": [1, 2]}));
        out.end_object();
        let text = String::from_utf8(out.into_bytes()).unwrap();
        assert_eq!(text, r#"{"a":[1,null,{}],"b\"":true,"c":{"x":[1,2]}}"#);
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [0.1, 1.8e9 + 0.25, 32.0, f64::NAN] {
            let mut out = JsonOut::new();
            out.number(n);
            assert_eq!(out.into_bytes(), serde_json::to_vec(&n).unwrap());
        }
    }
}
