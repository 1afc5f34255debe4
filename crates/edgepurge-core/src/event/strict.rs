//! A JSON tree that refuses duplicate keys. `serde_json::Value` keeps the last of two equal
//! keys, so `{"Records":[…],"Records":[]}` would be read as no records (answered 200, nothing
//! purged) while another reader of the same bytes could see the first: a body whose meaning
//! depends on the reader is refused instead.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `body` like `serde_json::from_slice::<Value>`, except that an object with the same
/// key twice is an error naming the key.
pub fn from_slice(body: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} in one object"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// Checks `body` as [`from_slice`] would read it (valid JSON, valid strings and numbers, no
/// key twice in one object, nesting within serde_json's limit) without building anything:
/// the fast path calls it first, so it refuses exactly what the tree parser refuses.
pub fn check(body: &[u8]) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(body);
    Check.deserialize(&mut de)?;
    de.end()
}

struct Check;

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Check)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if keys.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} in one object"
                )));
            }
            map.next_value_seed(Check)?;
            keys.push(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_the_rest_reads_as_serde_json_does() {
        for body in [
            r#"{"Records":[{"a":1}],"Records":[]}"#,
            r#"{"Records":[{"s3":{"object":{"key":"a","key":"b"}}}]}"#,
        ] {
            let e = from_slice(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("duplicate key"), "{e}");
        }
        let body = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e9"}"#;
        let want: Value = serde_json::from_str(body).unwrap();
        assert_eq!(from_slice(body.as_bytes()).unwrap(), want);
        assert!(from_slice(b"{} x").is_err(), "trailing text is refused too");
    }

    #[test]
    fn check_refuses_what_the_tree_refuses() {
        for body in [
            r#"{"x":1,"x":2,"Records":[]}"#,
            r#"{"Records":[{"awsRegion":"a","awsRegion":"b"}]}"#,
            r#"{"Records":[],"deep":{"k":{"a":1,"a":2}}}"#,
            r#"{"Records":[],"s":"\ud800"}"#,
            r#"{"Records":[],"n":1e999}"#,
        ] {
            assert!(check(body.as_bytes()).is_err(), "{body}");
            assert!(from_slice(body.as_bytes()).is_err(), "{body}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(check(deep.as_bytes()).is_err());
        assert!(from_slice(deep.as_bytes()).is_err());
        let bad_utf8 = b"{\"Records\":[],\"x\":\"\xff\"}";
        assert!(check(bad_utf8).is_err());
        assert!(from_slice(bad_utf8).is_err());
        assert!(check(br#"{"Records":[{"a":"\u00e9","b":[1,2.5,null,true]}]}"#).is_ok());
    }
}
