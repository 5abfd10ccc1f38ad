//! The reference the hand-written JSON reader is held to, shared by the differential test and the
//! `json_differential` fuzz target: serde_json, refusing a repeated member name as its derived
//! structs do, and the comparison of the two readings.

use lifeline_core::json::{self, Number, Value};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;

/// serde_json's reading of a text, refusing an object that repeats a member name (what
/// `#[derive(Deserialize)]` does for a struct's fields), at any depth.
pub struct Strict(pub serde_json::Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(serde_json::Value::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Strict, E> {
        Ok(Strict(b.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Strict, E> {
        Ok(Strict(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Strict, E> {
        Ok(Strict(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Strict, E> {
        Ok(Strict(n.into()))
    }
    fn visit_str<E>(self, s: &str) -> Result<Strict, E> {
        Ok(Strict(s.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(serde_json::Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
            let Strict(v) = map.next_value()?;
            members.insert(key, v);
        }
        Ok(Strict(serde_json::Value::Object(members)))
    }
}

pub fn strict_serde(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

pub fn from_serde(v: &serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(if let Some(u) = n.as_u64() {
            Number::Unsigned(u)
        } else if let Some(i) = n.as_i64() {
            Number::Negative(i)
        } else {
            Number::Other
        }),
        serde_json::Value::String(s) => Value::String(Cow::Owned(s.clone())),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            let mut members: Vec<(Cow<'static, str>, Value<'static>)> = o
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), from_serde(v)))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
    }
}

pub fn sorted(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        Value::Object(o) => {
            let mut members: Vec<(Cow<'_, str>, Value<'_>)> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
        other => other,
    }
}

/// Reads `text` with both readers: `Err` describes any disagreement (one accepts and the other
/// refuses, or they read different values).
pub fn agree(text: &str) -> Result<(), String> {
    let reference = strict_serde(text);
    if reference
        .as_ref()
        .is_err_and(|e| e.to_string().starts_with("number out of range"))
    {
        // The one documented difference (see `json`): a number beyond a double's range.
        return Ok(());
    }
    let ours = json::parse(text);
    if ours.as_ref().is_err_and(|e| e.reason == "too many members") {
        // The other documented difference: our reader bounds an object's members.
        return Ok(());
    }
    match (ours, reference) {
        (Ok(ours), Ok(reference)) => {
            let (ours, reference) = (sorted(ours), from_serde(&reference));
            if ours == reference {
                Ok(())
            } else {
                Err(format!("{text:?}: ours {ours:?}, serde_json {reference:?}"))
            }
        }
        (Err(_), Err(_)) => Ok(()),
        (ours, reference) => Err(format!("{text:?}: ours {ours:?}, serde_json {reference:?}")),
    }
}
