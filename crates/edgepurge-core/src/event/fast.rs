//! A fast path for the commonest body: `{"Records": [S3-shaped records]}` from Amazon S3,
//! MinIO, Ceph and other S3-compatible stores. It decodes straight into borrowed fields,
//! without building a JSON tree (after a pass that checks the whole body as the tree parser
//! would, building nothing), and gives up (returns `None`) on anything it is not sure of:
//! COS records, numbers where text is usual, quoted sizes, duplicate or unexpected shapes, any
//! error. The tree-based parser then decides, with its precise errors, so the fast path can
//! only ever agree with it (a property test checks exactly that).

use super::{names, Event, Format, Parsed};
use crate::key::{decode_key, KeyEncoding};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A struct read only from a JSON object. Derived `Deserialize` would also take a JSON array
/// of the fields in order, which the tree parser refuses.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(OnlyMaps(PhantomData)).map(Obj)
    }
}

/// Whether a key is there at all, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// The body: an object whose `Records` list is read record by record, each handed to the
/// seed's callback as an [`Event`] as soon as it is read, so the events are never all held
/// at once (a 10 MiB body has about 50,000). Other fields are skipped (the strict pass has
/// checked them); `Records` must be there.
struct Body<'f>(&'f mut dyn FnMut(Event) -> bool);

impl<'de> de::DeserializeSeed<'de> for Body<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut events = None;
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            if field == "Records" && events.is_none() {
                events = Some(map.next_value_seed(Records(&mut *self.0))?);
            } else if field == "Records" {
                return Err(de::Error::duplicate_field("Records"));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        events.ok_or_else(|| de::Error::missing_field("Records"))
    }
}

/// The `Records` list: each record to the callback as an event; the number of events.
struct Records<'f>(&'f mut dyn FnMut(Event) -> bool);

impl<'de> de::DeserializeSeed<'de> for Records<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(Obj(rec)) = seq.next_element::<Obj<Record<'de>>>()? {
            // Anything the fast path is unsure of: give up, the tree parser decides.
            let event = event(rec).ok_or_else(|| de::Error::custom("not for the fast path"))?;
            if !(self.0)(event) {
                return Err(de::Error::custom("stopped by the caller"));
            }
            n += 1;
        }
        Ok(n)
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", borrow)]
    event_name: Cow<'a, str>,
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Cow<'a, str>>,
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "responseElements", borrow, default)]
    response_elements: Option<Obj<ResponseElements<'a>>>,
    #[serde(borrow)]
    s3: Obj<S3<'a>>,
    /// A `cos` key, whatever its value: a COS record, not for the fast path.
    #[serde(default, deserialize_with = "present")]
    cos: bool,
}

#[derive(Deserialize)]
struct ResponseElements<'a> {
    #[serde(rename = "x-amz-request-id", borrow, default)]
    request_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct S3<'a> {
    #[serde(borrow)]
    bucket: Obj<Bucket<'a>>,
    #[serde(borrow)]
    object: Obj<Object<'a>>,
}

#[derive(Deserialize)]
struct Bucket<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Object<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "eTag", borrow, default)]
    etag: Option<Cow<'a, str>>,
    #[serde(rename = "versionId", borrow, default)]
    version_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sequencer: Option<Cow<'a, str>>,
}

/// Text as the tree parser reads it: a non-empty string (numbers make the fast path give up
/// before this point, so none reach here).
fn text(v: Option<Cow<'_, str>>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(Cow::into_owned)
}

/// The events of `body` if it is plainly a list of S3-shaped records; `None` to let the tree
/// parser decide (including every error).
pub(super) fn parse(body: &[u8]) -> Option<Parsed> {
    let mut events = Vec::new();
    each(body, &mut |e| {
        events.push(e);
        true
    })?;
    events.shrink_to_fit();
    Some(Parsed {
        events,
        notices: Vec::new(),
    })
}

/// Hands each event of `body` to `f` in order, as it is read, if the body is plainly a list
/// of S3-shaped records: the number of events. `None` to let the tree parser decide
/// (including every error), or when `f` returned false; `f` may have been called for the
/// events before the point where the fast path gave up.
pub(super) fn each(body: &[u8], f: &mut dyn FnMut(Event) -> bool) -> Option<usize> {
    // What the typed pass skips (unknown fields) is checked here as the tree parser would:
    // a key twice in one object, a bad escape or number anywhere makes the tree decide.
    super::strict::check(body).ok()?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let n = de::DeserializeSeed::deserialize(Body(f), &mut de).ok()?;
    de.end().ok()?;
    Some(n)
}

/// One record as an event; `None` when the fast path is not sure of it.
fn event(rec: Record<'_>) -> Option<Event> {
    let (Obj(bucket), Obj(object)) = (rec.s3.0.bucket, rec.s3.0.object);
    if rec.cos || rec.event_name.is_empty() || bucket.name.is_empty() {
        return None;
    }
    let source = rec.event_source.as_deref().unwrap_or_default();
    let (format, encoding) = match source {
        "aws:s3" => (Format::AwsS3, KeyEncoding::Form),
        "minio:s3" => (Format::Minio, KeyEncoding::Form),
        "ceph:s3" => (Format::Ceph, KeyEncoding::Raw),
        _ => (Format::S3Compatible, KeyEncoding::Form),
    };
    let key = decode_key(&object.key, encoding).ok()?;
    let id =
        text(rec.event_id).or_else(|| rec.response_elements.and_then(|Obj(r)| text(r.request_id)));
    Some(Event {
        format,
        bucket: bucket.name.into_owned(),
        key,
        raw_key: object.key.into_owned(),
        name: names::normalize(&rec.event_name),
        native_name: rec.event_name.into_owned(),
        size: object.size,
        etag: text(object.etag),
        version_id: text(object.version_id),
        sequencer: text(object.sequencer),
        time: text(rec.event_time),
        id,
    })
}
