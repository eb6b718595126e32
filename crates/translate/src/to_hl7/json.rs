//! A quick walk over JSON's structure, for the split of a Bundle into its entries and the
//! prescan's reading of each resource's members (see `to_hl7::stream` and
//! `to_hl7::facts`).
//!
//! The walk checks the punctuation between the members it is asked for (braces, brackets,
//! colons, commas, whitespace), and finds where each value begins and ends, but does not
//! check what is inside a value: a string's escapes, a number's digits, a literal's
//! letters. Every value it hands back is read by `serde_json` afterwards (a resource when
//! it is parsed into the model, a Bundle's or an entry's other members when they are read
//! as the model reads them), so JSON that `serde_json` would refuse is still refused; the
//! walk only saves reading each value through `serde_json` once more just to find its end
//! (`serde_json`'s `RawValue`), which took a quarter of the instructions of FHIR → HL7.
//!
//! Keys are returned as written between their quotes; a key with an escape in it (`\`)
//! is not taken (`None`), and the caller falls back to a path that reads it properly.

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// Whether a byte may be part of a number or a literal (`true`, `false`, `null`). Which
/// sequences of them are valid is left to `serde_json`.
fn scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(c) = b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips whitespace, and says whether an object begins here.
    pub fn at_object(&mut self) -> bool {
        self.ws();
        self.peek() == Some(b'{')
    }

    /// Where the cursor is.
    pub fn here(&self) -> usize {
        self.pos
    }

    /// The text from `start` to where the cursor is.
    pub fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.pos)
    }

    /// Skips whitespace and then `c`, which must be there.
    pub fn expect(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// After `{` or `[` (`first`) or after a member or element: whether another follows
    /// (a comma, unless it is the first), or the object or array ends with `close`.
    pub fn more(&mut self, first: bool, close: u8) -> Option<bool> {
        self.ws();
        let c = self.peek()?;
        if c == close {
            self.pos += 1;
            return Some(false);
        }
        if !first {
            (c == b',').then(|| self.pos += 1)?;
        }
        Some(true)
    }

    /// A member's key (as written, without its quotes) and the colon after it; `None` for
    /// a key with an escape in it.
    pub fn key(&mut self) -> Option<&'a str> {
        self.ws();
        (self.peek()? == b'"').then_some(())?;
        let start = self.pos + 1;
        let end = self.string_end(start)?;
        self.pos = end;
        let key = self.text.get(start..end - 1)?;
        if key.contains('\\') {
            return None;
        }
        self.expect(b':')?;
        Some(key)
    }

    /// Skips whitespace and then a value, returning its text.
    pub fn value(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.pos;
        // For each array or object the value is inside, innermost in the lowest bit:
        // whether it is an object. Deeper than 128 is not taken: `serde_json` refuses
        // that much nesting in the resource anyway.
        let mut open: u128 = 0;
        let mut depth = 0;
        loop {
            // A value begins here.
            self.ws();
            match self.peek()? {
                b'"' => self.pos = self.string_end(self.pos + 1)?,
                c @ (b'{' | b'[') => {
                    self.pos += 1;
                    let object = c == b'{';
                    if self.more(true, if object { b'}' } else { b']' })? {
                        if depth == 128 {
                            return None;
                        }
                        open = open << 1 | u128::from(object);
                        depth += 1;
                        if object {
                            self.key_skipped()?;
                        }
                        continue;
                    }
                }
                c if scalar_byte(c) => {
                    let b = self.bytes();
                    while b.get(self.pos).is_some_and(|&c| scalar_byte(c)) {
                        self.pos += 1;
                    }
                }
                _ => return None,
            }
            // A value ended here: close what it ends, until another begins.
            loop {
                if depth == 0 {
                    return self.text.get(start..self.pos);
                }
                let object = open & 1 == 1;
                if self.more(false, if object { b'}' } else { b']' })? {
                    if object {
                        self.key_skipped()?;
                    }
                    break;
                }
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key inside a value being skipped (escapes allowed) and its colon.
    fn key_skipped(&mut self) -> Option<()> {
        self.ws();
        (self.peek()? == b'"').then_some(())?;
        self.pos = self.string_end(self.pos + 1)?;
        self.expect(b':')
    }

    /// Where the string whose text begins at `from` ends: just after its closing quote.
    fn string_end(&self, from: usize) -> Option<usize> {
        let b = self.bytes();
        let mut i = from;
        loop {
            // Eight bytes at a time while neither a quote nor a backslash is among them.
            while let Some(chunk) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().ok()?);
                let quote = w ^ splat(b'"');
                let slash = w ^ splat(b'\\');
                // The high bit of each byte that is zero (the lowest such is exact).
                let zero = |x: u64| x.wrapping_sub(splat(1)) & !x & splat(0x80);
                let found = zero(quote) | zero(slash);
                if found != 0 {
                    i += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match *b.get(i)? {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
    }

    /// Skips whitespace, which must run to the end of the text.
    pub fn end(&mut self) -> Option<()> {
        self.ws();
        (self.pos == self.text.len()).then_some(())
    }
}

/// Reads an object at the cursor: for each member, `take` is given its key (as written)
/// and must read or skip its value. `None` when the object is not one as far as the walk
/// sees, a key appears twice or has an escape in it, or `take` says `None`.
pub(crate) fn object<'a>(
    c: &mut Cursor<'a>,
    mut take: impl FnMut(&'a str, &mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    c.expect(b'{')?;
    let mut keys: Vec<&str> = Vec::with_capacity(16);
    while c.more(keys.is_empty(), b'}')? {
        let key = c.key()?;
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        take(key, c)?;
    }
    Some(())
}

/// The members of the JSON object that is `text` (for the tests: the split notes the members
/// it wants as it walks) (whitespace aside): each key as written
/// and each value's text, in order; `None` as for [`object`].
#[cfg(test)]
pub(crate) fn members(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut c = Cursor::new(text);
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(16);
    object(&mut c, |key, c| {
        out.push((key, c.value()?));
        Some(())
    })?;
    c.end()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serde_json`'s `RawValue` reads as an object's members, for comparison.
    fn serde_members(text: &str) -> Option<Vec<(String, String)>> {
        type Raw = Box<serde_json::value::RawValue>;
        let map: std::collections::BTreeMap<String, Raw> = serde_json::from_str(text).ok()?;
        Some(
            map.into_iter()
                .map(|(k, r)| (k, r.get().to_owned()))
                .collect(),
        )
    }

    fn walked(text: &str) -> Option<Vec<(String, String)>> {
        let mut v: Vec<(String, String)> = members(text)?
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn values_end_where_serde_json_ends_them() {
        for text in [
            r#"{}"#,
            r#" { "a" : 1 } "#,
            r#"{"a":"x\"y\\","b":[1,2,{"c":[]}],"d":{"e":{"f":"g"}},"h":null,"i":-1.5e+3}"#,
            r#"{"resourceType":"Observation","id":"0123456789abcdefghij","t":true,"f":false}"#,
            "{\n\t\"a\":\r\n[ ]\n}",
            r#"{"long":"a string of more than eight bytes with a \" quote in it","n":[[[[]]]]}"#,
            r#"{"u":"\u00e9 é ü 漢字","v":{"k\u0065y":{"x\\":1}}}"#,
        ] {
            assert_eq!(walked(text), serde_members(text), "{text}");
        }
    }

    #[test]
    fn punctuation_between_members_is_checked() {
        for text in [
            "",
            "[]",
            "{",
            "{\"a\":1",
            "{\"a\":1,}",
            "{,\"a\":1}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\"}}",
            "{\"a\":{\"b\":1]}",
            "{\"a\":[1}}",
            "{\"a\":\"unterminated}",
            "{\"a\":1} x",
            "{\"a\":1,\"a\":2}",
            "{\"\\u0061\":1}",
            "{\"a\":}",
            "{\"a\":'x'}",
        ] {
            assert_eq!(members(text), None, "{text}");
        }
    }

    #[test]
    fn nesting_is_taken_to_a_depth_of_128() {
        let nested = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        // An empty array inside 128 others is taken; inside 129, not.
        assert!(members(&nested(129)).is_some());
        assert_eq!(members(&nested(130)), None);
    }

    #[test]
    fn a_quote_or_backslash_is_found_at_every_place_in_a_long_string() {
        for at in 0..24 {
            let mut s = "x".repeat(24);
            s.replace_range(at..=at, "\\\"");
            let text = format!("{{\"a\":\"{s}\",\"b\":2}}");
            assert_eq!(walked(&text), serde_members(&text), "{text}");
        }
    }
}
