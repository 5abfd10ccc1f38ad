//! A small JSON reader and writer, just enough for the protocol's frames and the drivers'
//! boundaries: objects, arrays, strings with every escape, integers, booleans and null.
//!
//! It exists for size: the browser bundle carries it instead of serde and serde_json, which cost
//! several times more code. It never panics on any input, bounds nesting depth, and keeps
//! non-integer numbers only as "some number" (nothing in the protocol is fractional; unlike
//! serde_json it does not refuse a number beyond a double's range, which no field can hold). It knows
//! nothing about frames: `protocol` maps values to frames.
//!
//! Like serde_json reading into a struct, it refuses an object that repeats a member name (and,
//! unlike serde_json, one of more than [`MAX_MEMBERS`] members, which bounds that check). Strings
//! and member names borrow from the text unless they hold an escape, so reading a frame allocates
//! only its objects and the escaped strings.

use std::borrow::Cow;
use std::fmt;

/// The deepest nesting accepted. Frames nest two levels; this leaves room for unknown members.
pub const MAX_DEPTH: usize = 32;

/// The most members one object may have. A frame has at most eight; the bound keeps the check for
/// a repeated name (each name against the ones before it) cheap on any input: at most 2,016
/// comparisons per object. serde_json has no such bound; it is the reader's one other refusal.
pub const MAX_MEMBERS: usize = 64;

/// A parsed JSON value, borrowing its strings from the text where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in document order; no name appears twice.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// A JSON number: an integer when it is one that fits, otherwise only known to be a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    Unsigned(u64),
    Negative(i64),
    /// A fraction, an exponent, or an integer out of range.
    Other,
}

/// Why a text is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem.
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)?;
        f.write_str(" at byte ")?;
        fmt::Display::fmt(&self.at, f)
    }
}

impl std::error::Error for JsonError {}

impl<'a> Value<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(Number::Unsigned(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Takes the value out of a string (a copy only when it borrows from the text).
    pub fn into_string(self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    /// Takes the member `key`'s value out of an object, leaving `null` in its place (the members
    /// stay where they are: nothing moves).
    pub fn take(&mut self, key: &str) -> Option<Value<'a>> {
        match self {
            Value::Object(members) => {
                let (_, value) = members.iter_mut().find(|(k, _)| k == key)?;
                Some(std::mem::replace(value, Value::Null))
            }
            _ => None,
        }
    }

    /// Takes the items out of an array.
    pub fn into_array(self) -> Option<Vec<Value<'a>>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Parses one JSON value that fills the whole text (whitespace around it allowed).
pub fn parse(text: &str) -> Result<Value<'_>, JsonError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

/// One member value as a [`Reader`] hands it out: the scalars a frame's fields hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    String(Cow<'a, str>),
}

/// A pull reader over one flat JSON object, member by member, with no value tree: each name and
/// each value is read straight from the text (strings borrowed unless escaped). It takes only what
/// a frame's fields are: a value that is an object, an array or a number other than an unsigned
/// integer is [`Pull::Other`], and the caller decides what to do with it (the protocol falls back
/// to [`parse`]). What it accepts is JSON; repeated names are the caller's to detect, since it
/// knows the names it keeps.
pub struct Reader<'a> {
    p: Parser<'a>,
    first: bool,
}

/// Why a [`Reader`] stopped: the text is not JSON, or a value is not one it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    NotJson(JsonError),
    Other,
}

impl From<JsonError> for Pull {
    fn from(e: JsonError) -> Self {
        Pull::NotJson(e)
    }
}

impl<'a> Reader<'a> {
    /// Starts reading `text`, which must hold one object (whitespace around it allowed).
    pub fn object(text: &'a str) -> Result<Self, Pull> {
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        };
        p.skip_ws();
        if p.peek() != Some(b'{') {
            return Err(Pull::Other);
        }
        p.pos += 1;
        Ok(Reader { p, first: true })
    }

    /// The next member's name, positioned before its value; `None` after the closing brace,
    /// once the rest of the text is checked to be whitespace only.
    pub fn next_name(&mut self) -> Result<Option<Cow<'a, str>>, Pull> {
        let p = &mut self.p;
        p.skip_ws();
        match p.peek() {
            Some(b'}') => {
                p.pos += 1;
                p.skip_ws();
                if p.pos != p.bytes.len() {
                    return Err(p.err("trailing characters").into());
                }
                return Ok(None);
            }
            Some(b',') if !self.first => {
                p.pos += 1;
                p.skip_ws();
            }
            _ if self.first => {}
            _ => return Err(p.err("expected ',' or '}'").into()),
        }
        self.first = false;
        if p.peek() != Some(b'"') {
            return Err(p.err("expected a member name").into());
        }
        let name = p.string()?;
        p.skip_ws();
        if p.peek() != Some(b':') {
            return Err(p.err("expected ':'").into());
        }
        p.pos += 1;
        p.skip_ws();
        Ok(Some(name))
    }

    /// The current member's value.
    pub fn value(&mut self) -> Result<Scalar<'a>, Pull> {
        let p = &mut self.p;
        Ok(match p.peek() {
            Some(b'"') => Scalar::String(p.string()?),
            Some(b'0'..=b'9') => match p.number()? {
                Value::Number(Number::Unsigned(n)) => Scalar::Unsigned(n),
                _ => return Err(Pull::Other),
            },
            Some(b't') => {
                p.expect_word(b"true", Value::Null)?;
                Scalar::Bool(true)
            }
            Some(b'f') => {
                p.expect_word(b"false", Value::Null)?;
                Scalar::Bool(false)
            }
            Some(b'n') => {
                p.expect_word(b"null", Value::Null)?;
                Scalar::Null
            }
            _ => return Err(Pull::Other),
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, reason: &'static str) -> JsonError {
        JsonError {
            at: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_word(&mut self, word: &[u8], v: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect_word(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_word(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_word(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        self.pos += 1;
        // A frame has up to eight members: room for them at once rather than regrowing twice.
        let mut members: Vec<(Cow<'a, str>, Value<'a>)> = Vec::with_capacity(8);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            if members.len() == MAX_MEMBERS {
                return Err(self.err("too many members"));
            }
            let key_at = self.pos;
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                self.pos = key_at;
                return Err(self.err("duplicate member"));
            }

            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("bad \\u escape")),
            };
            n = n * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1;
        // Stays `None` (the string borrows from the text) until an escape needs a copy.
        let mut out: Option<String> = None;
        loop {
            let start = self.pos;
            self.pos += plain_run(self.bytes.get(start..).unwrap_or_default());
            // The run starts and stops at ASCII bytes, so both ends are character boundaries.
            let run = self.text.get(start..self.pos).unwrap_or_default();
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(match out {
                        None => Cow::Borrowed(run),
                        Some(mut owned) => {
                            owned.push_str(run);
                            Cow::Owned(owned)
                        }
                    });
                }
                Some(b'\\') => {
                    let owned = out.get_or_insert_with(String::new);
                    owned.push_str(run);
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unexpected end"));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.err("lone surrogate"))?
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    owned.push(c);
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 {
            return Err(self.err("bad number"));
        }
        if n > 1 && self.bytes[int_start] == b'0' {
            return Err(self.err("leading zero"));
        }
        let int_end = self.pos;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("bad number"));
            }
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("bad number"));
            }
            integral = false;
        }
        if !integral {
            return Ok(Value::Number(Number::Other));
        }
        let mut value: u64 = 0;
        for &d in &self.bytes[int_start..int_end] {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
            {
                Some(v) => value = v,
                None => return Ok(Value::Number(Number::Other)),
            }
        }
        Ok(Value::Number(if !negative {
            Number::Unsigned(value)
        } else if value == 0 {
            // `-0` is a float to serde_json and to JavaScript; it is no protocol integer.
            Number::Other
        } else if value <= i64::MAX as u64 + 1 {
            Number::Negative((value as i64).wrapping_neg())
        } else {
            Number::Other
        }))
    }
}

/// How many bytes at the start of `bytes` a string holds as they are: up to the first `"`, `\` or
/// control character (or the end). Natively, eight bytes at a time: in each 8-byte word, a byte
/// is flagged when it equals `"` or `\` (zero after an XOR) or is below 0x20, by the borrow of a
/// byte-wise subtraction. A borrow only runs upwards from a flagged byte, so the lowest flag is
/// exact.
fn plain_run(bytes: &[u8]) -> usize {
    let mut i = 0;
    // Natively only: the browser build takes the byte loop below, which is smaller.
    #[cfg(not(target_arch = "wasm32"))]
    while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let v = u64::from_le_bytes(*word);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        let flags = flags & HIGHS;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Appends `s` as a JSON string, quoted and escaped the way serde_json does it.
pub fn write_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Natively, nothing to escape (the usual case) is one reservation and three copies; the
    // browser build takes the general loop below, which is smaller.
    #[cfg(not(target_arch = "wasm32"))]
    if plain_run(bytes) == bytes.len() {
        out.reserve(bytes.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    let mut start = 0;
    loop {
        let i = start + plain_run(bytes.get(start..).unwrap_or_default());
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        // `get` rather than indexing: both ends sit next to ASCII bytes, so it never fails, and the
        // bundle is spared the panic path of string slicing (and the `Debug` formatting it pulls in).
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &buf[i..] {
        out.push(char::from(digit));
    }
}

/// Writes one JSON object member by member: `{"a":1,"b":"x"}`.
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Starts an object at the end of `out`.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        write_str(out, value);
        self
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        write_u64(out, value);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        let out = self.key(key);
        out.push_str(if value { "true" } else { "false" });
        self
    }

    /// A member whose value is already JSON text.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        let out = self.key(key);
        out.push_str(json);
        self
    }

    /// A member whose value the closure writes.
    pub fn with(&mut self, key: &str, write: impl FnOnce(&mut String)) -> &mut Self {
        let out = self.key(key);
        write(out);
        self
    }

    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    pub fn opt_u64(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        if let Some(v) = value {
            self.u64(key, v);
        }
        self
    }

    /// Closes the object.
    pub fn finish(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_value() {
        let v = parse(r#" {"a":[1,-2,3.5e1,true,false,null],"b":{"c":"d\n\u00e9\ud83d\ude00"}} "#)
            .unwrap();
        assert_eq!(
            v.get("a").unwrap().as_array().unwrap()[..3],
            [
                Value::Number(Number::Unsigned(1)),
                Value::Number(Number::Negative(-2)),
                Value::Number(Number::Other)
            ]
        );
        assert_eq!(
            v.get("b").unwrap().get("c").unwrap().as_str(),
            Some("d\né😀")
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":}",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"\u{1}\"",
            "tru",
            "nulll",
            "[1] 2",
            "\"\\ud800\"",
            "{\"a\":1,}",
            "1e",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn a_repeated_member_name_is_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"{"type":"ack","id":"x","type":"msg"}"#,
            r#"{"a":1,"b":2,"\u0061":3}"#,
            r#"[{"x":{"y":null,"y":null}}]"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.reason, "duplicate member", "{bad}");
        }
        // The same name in sibling objects is no repetition.
        assert!(parse(r#"{"a":{"x":1},"b":{"x":1}}"#).is_ok());
    }

    #[test]
    fn an_object_is_bounded_in_members_so_the_repetition_check_stays_cheap() {
        let object = |n: usize| {
            let members: Vec<String> = (0..n)
                .map(|i| ["\"m", &i.to_string(), "\":0"].concat())
                .collect();
            ["{", &members.join(","), "}"].concat()
        };
        assert!(parse(&object(MAX_MEMBERS)).is_ok());
        assert_eq!(
            parse(&object(MAX_MEMBERS + 1)).unwrap_err().reason,
            "too many members"
        );
        // Arrays are not bounded here (the protocol's size limits bound them).
        let items = vec!["{}"; 10 * MAX_MEMBERS].join(",");
        assert!(parse(&["[", &items, "]"].concat()).is_ok());
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_text() {
        let v = parse(r#"{"a":"plain","b":"esc\n"}"#).unwrap();
        let Value::Object(members) = v else { panic!() };
        assert!(matches!(members[0].0, Cow::Borrowed("a")));
        assert!(matches!(
            members[0].1,
            Value::String(Cow::Borrowed("plain"))
        ));
        assert_eq!(members[1].1, Value::String(Cow::Owned("esc\n".into())));
    }

    #[test]
    fn a_plain_run_stops_at_the_first_byte_a_string_cannot_hold_as_it_is() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        for stop in 0..=255u8 {
            for at in 0..20 {
                for len in at..24 {
                    // Neighbours that are near misses of every test: 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x80, 0xff.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x80, 0xff][i % 7])
                        .collect();
                    bytes.insert(at, stop);
                    bytes.extend_from_slice(b"\"\\\x01");
                    assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn big_integers_become_other_numbers() {
        assert_eq!(
            parse("18446744073709551615").unwrap(),
            Value::Number(Number::Unsigned(u64::MAX))
        );
        assert_eq!(
            parse("18446744073709551616").unwrap(),
            Value::Number(Number::Other)
        );
        assert_eq!(
            parse("-9223372036854775808").unwrap(),
            Value::Number(Number::Negative(i64::MIN))
        );
    }

    #[test]
    fn writes_escaped_strings_and_objects() {
        let mut out = String::new();
        ObjectWriter::new(&mut out)
            .str("s", "a\"b\\c\n\u{1}é")
            .u64("n", 1234567890123)
            .bool("t", true)
            .opt_str("none", None)
            .finish();
        assert_eq!(
            out,
            r#"{"s":"a\"b\\c\n\u0001é","n":1234567890123,"t":true}"#
        );
        assert_eq!(
            parse(&out).unwrap().get("s").unwrap().as_str(),
            Some("a\"b\\c\n\u{1}é")
        );
    }
}
