//! A minimal JSON writer that appends compact JSON straight into a `String`, in the order it is
//! written: resources are generated far faster than by building `serde_json::Value` trees.
//!
//! [`jw!`] writes JSON-like literals: `jw!(j, {"a": 1, "b": [x, {"c": y}]})`, where
//! keys are string literals and values are nested `{…}`/`[…]` or expressions implementing
//! [`W`]. `jw!(@obj j, "k": v, …)` writes fields into an object already opened with
//! [`J::open_obj`], so optional fields can be added between statements.

use std::fmt::Write as _;

/// Appends a JSON string literal (quoted and escaped).
pub(crate) fn write_str(buf: &mut String, s: &str) {
    buf.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        buf.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(buf, "\\u{b:04x}");
        } else {
            buf.push_str(esc);
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
    buf.push('"');
}

/// The writer: a buffer and whether the next value needs a separating comma.
#[derive(Debug, Default)]
pub(crate) struct J {
    /// The JSON written so far.
    pub(crate) buf: String,
    comma: bool,
}

impl J {
    /// An empty writer with room for `n` bytes.
    pub(crate) fn with_capacity(n: usize) -> J {
        J {
            buf: String::with_capacity(n),
            comma: false,
        }
    }

    fn sep(&mut self) {
        if self.comma {
            self.buf.push(',');
        }
    }

    /// Writes `"key":`.
    pub(crate) fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
        self.comma = false;
    }

    /// Opens an object.
    pub(crate) fn open_obj(&mut self) {
        self.sep();
        self.buf.push('{');
        self.comma = false;
    }

    /// Closes an object.
    pub(crate) fn close_obj(&mut self) {
        self.buf.push('}');
        self.comma = true;
    }

    /// Opens an array.
    pub(crate) fn open_arr(&mut self) {
        self.sep();
        self.buf.push('[');
        self.comma = false;
    }

    /// Closes an array.
    pub(crate) fn close_arr(&mut self) {
        self.buf.push(']');
        self.comma = true;
    }

    /// Writes already-serialized JSON as one value.
    pub(crate) fn raw(&mut self, json: &str) {
        self.sep();
        self.buf.push_str(json);
        self.comma = true;
    }

    /// Takes the JSON written so far, leaving the writer empty.
    pub(crate) fn take(&mut self) -> String {
        self.comma = false;
        std::mem::take(&mut self.buf)
    }
}

/// A value that can be written as JSON.
pub(crate) trait W {
    /// Writes itself as one JSON value.
    fn w(&self, j: &mut J);
}

impl W for str {
    fn w(&self, j: &mut J) {
        j.sep();
        write_str(&mut j.buf, self);
        j.comma = true;
    }
}

impl W for String {
    fn w(&self, j: &mut J) {
        self.as_str().w(j);
    }
}

impl<T: W + ?Sized> W for &T {
    fn w(&self, j: &mut J) {
        (**self).w(j);
    }
}

impl W for bool {
    fn w(&self, j: &mut J) {
        j.raw(if *self { "true" } else { "false" });
    }
}

macro_rules! int_w {
    ($($t:ty),*) => {$(
        impl W for $t {
            fn w(&self, j: &mut J) {
                j.sep();
                let _ = write!(j.buf, "{self}");
                j.comma = true;
            }
        }
    )*};
}
int_w!(i32, i64, u32, u64, usize);

impl W for f64 {
    /// Shortest round-trip decimal (`177.4`, `120`), as FHIR decimals allow.
    fn w(&self, j: &mut J) {
        j.sep();
        let _ = write!(j.buf, "{self}");
        j.comma = true;
    }
}

/// Already-serialized JSON, written as is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw<'a>(pub(crate) &'a str);

impl W for Raw<'_> {
    fn w(&self, j: &mut J) {
        j.raw(self.0);
    }
}

/// Writes JSON-like literals into a [`J`]; see the module documentation.
macro_rules! jw {
    ($j:expr, { $($body:tt)* }) => {{
        $j.open_obj();
        $crate::json::jw!(@obj $j, $($body)*);
        $j.close_obj();
    }};
    ($j:expr, [ $($body:tt)* ]) => {{
        $j.open_arr();
        $crate::json::jw!(@arr $j, $($body)*);
        $j.close_arr();
    }};
    (@obj $j:expr, ) => {{}};
    (@obj $j:expr, $k:literal : { $($v:tt)* } $(, $($rest:tt)*)?) => {{
        $j.key($k);
        $crate::json::jw!($j, { $($v)* });
        $crate::json::jw!(@obj $j, $($($rest)*)?);
    }};
    (@obj $j:expr, $k:literal : [ $($v:tt)* ] $(, $($rest:tt)*)?) => {{
        $j.key($k);
        $crate::json::jw!($j, [ $($v)* ]);
        $crate::json::jw!(@obj $j, $($($rest)*)?);
    }};
    (@obj $j:expr, $k:literal : $v:expr $(, $($rest:tt)*)?) => {{
        $j.key($k);
        $crate::json::W::w(&$v, $j);
        $crate::json::jw!(@obj $j, $($($rest)*)?);
    }};
    (@arr $j:expr, ) => {{}};
    (@arr $j:expr, { $($v:tt)* } $(, $($rest:tt)*)?) => {{
        $crate::json::jw!($j, { $($v)* });
        $crate::json::jw!(@arr $j, $($($rest)*)?);
    }};
    (@arr $j:expr, [ $($v:tt)* ] $(, $($rest:tt)*)?) => {{
        $crate::json::jw!($j, [ $($v)* ]);
        $crate::json::jw!(@arr $j, $($($rest)*)?);
    }};
    (@arr $j:expr, $v:expr $(, $($rest:tt)*)?) => {{
        $crate::json::W::w(&$v, $j);
        $crate::json::jw!(@arr $j, $($($rest)*)?);
    }};
    ($j:expr, $e:expr) => {
        $crate::json::W::w(&$e, $j)
    };
}
pub(crate) use jw;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_literals_that_serde_reads_back() {
        let mut j = J::default();
        let name = "Zoë \"Z\"\n";
        jw!(&mut j, {"a": 1_i64, "b": [name, {"c": 2.5_f64, "d": true}], "e": {}, "f": []});
        let v: serde_json::Value = serde_json::from_str(&j.buf).unwrap();
        assert_eq!(v["b"][0], name);
        assert_eq!(v["b"][1]["c"].to_string(), "2.5");
        assert_eq!(
            j.buf,
            r#"{"a":1,"b":["Zoë \"Z\"\n",{"c":2.5,"d":true}],"e":{},"f":[]}"#
        );
    }

    #[test]
    fn optional_fields_and_raw_fragments() {
        let mut j = J::default();
        j.open_obj();
        jw!(@obj &mut j, "x": "1");
        if true {
            jw!(@obj &mut j, "y": Raw(r#"{"z":0}"#));
        }
        j.close_obj();
        assert_eq!(j.take(), r#"{"x":"1","y":{"z":0}}"#);
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        write_str(&mut s, "a\u{1}b\\");
        assert_eq!(s, r#""a\u0001b\\""#);
    }
}
