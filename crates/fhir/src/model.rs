//! The machinery behind every element and resource type: how a field is read,
//! written, cleaned and checked, and the macro that declares the types.
//!
//! Each type is a plain struct with public fields named after the FHIR
//! elements, plus an `extra` map for every JSON member the model does not
//! name. Its (de)serialisation is generated here rather than by
//! `#[derive(Deserialize)]` with `#[serde(flatten)]`: flattening makes serde
//! buffer every object into an intermediate tree before reading it, once per
//! nesting level, which is several times slower on GP Connect's deeply nested
//! bundles.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::check::Checker;
use crate::choice::Choice;
use crate::datetime::DateTime;
use crate::decimal::Decimal;

/// JSON members that the model does not name, in the order serde_json's map
/// keeps them (sorted by key).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// A value that can sit in an element: a primitive, a complex type, a
/// resource or raw JSON.
pub(crate) trait Node: Serialize + for<'de> Deserialize<'de> {
    /// Whether the value carries nothing (an empty string, or an element
    /// with no members). Cleaning removes such values.
    fn is_empty(&self) -> bool;

    /// Removes empty strings and the elements left empty by that, below this
    /// value; turns quoted decimals into numbers.
    fn clean(&mut self);

    /// Reports what would make this value invalid FHIR STU3.
    fn check(&self, ck: &mut Checker);
}

/// How a struct field (an `Option` or a `Vec`) is read from and written to a
/// JSON object.
pub(crate) trait Field: Default {
    fn is_absent(&self) -> bool;

    /// Whether the JSON member `key` belongs to the field named `name`.
    fn matches(name: &str, key: &str) -> bool {
        name == key
    }

    /// Reads the member's value into the field. Returns a JSON value to
    /// keep in `extra` under the member's name instead, when the value is
    /// one the typed field cannot hold: a `null`, or an array with `null`s
    /// (as FHIR JSON writes arrays of primitives that have extensions).
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        name: &'static str,
        key: &str,
        map: &mut A,
    ) -> Result<Option<serde_json::Value>, A::Error>;

    fn write<M: SerializeMap>(&self, name: &'static str, map: &mut M) -> Result<(), M::Error>;

    fn clean(&mut self);

    fn check(&self, name: &'static str, ck: &mut Checker);
}

impl<T: Node> Field for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        name: &'static str,
        _key: &str,
        map: &mut A,
    ) -> Result<Option<serde_json::Value>, A::Error> {
        if self.is_some() {
            return Err(de::Error::duplicate_field(name));
        }
        match map.next_value::<Option<T>>()? {
            Some(v) => {
                *self = Some(v);
                Ok(None)
            }
            None => Ok(Some(serde_json::Value::Null)),
        }
    }

    fn write<M: SerializeMap>(&self, name: &'static str, map: &mut M) -> Result<(), M::Error> {
        match self {
            Some(v) => map.serialize_entry(name, v),
            None => Ok(()),
        }
    }

    fn clean(&mut self) {
        if let Some(v) = self {
            v.clean();
            if v.is_empty() {
                *self = None;
            }
        }
    }

    fn check(&self, name: &'static str, ck: &mut Checker) {
        if let Some(v) = self {
            ck.at_field(name, |ck| v.check(ck));
        }
    }
}

impl<T: Node> Field for Vec<T> {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        name: &'static str,
        _key: &str,
        map: &mut A,
    ) -> Result<Option<serde_json::Value>, A::Error> {
        if !self.is_empty() {
            return Err(de::Error::duplicate_field(name));
        }
        match map.next_value_seed(ArraySeed(PhantomData))? {
            Array::Typed(items) => {
                *self = items;
                Ok(None)
            }
            Array::Raw(raw) => Ok(Some(raw)),
        }
    }

    fn write<M: SerializeMap>(&self, name: &'static str, map: &mut M) -> Result<(), M::Error> {
        if self.is_empty() {
            Ok(())
        } else {
            map.serialize_entry(name, self)
        }
    }

    fn clean(&mut self) {
        for v in self.iter_mut() {
            v.clean();
        }
        self.retain(|v| !v.is_empty());
    }

    fn check(&self, name: &'static str, ck: &mut Checker) {
        ck.at_field(name, |ck| {
            for (i, v) in self.iter().enumerate() {
                ck.at_index(i, |ck| v.check(ck));
            }
        });
    }
}

/// An array member: typed, or raw JSON when it is `null` or holds `null`s.
enum Array<T> {
    Typed(Vec<T>),
    Raw(serde_json::Value),
}

struct ArraySeed<T>(PhantomData<T>);

impl<'de, T: Node> DeserializeSeed<'de> for ArraySeed<T> {
    type Value = Array<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Array<T>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, T: Node> Visitor<'de> for ArraySeed<T> {
    type Value = Array<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_none<E: de::Error>(self) -> Result<Array<T>, E> {
        Ok(Array::Raw(serde_json::Value::Null))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Array<T>, E> {
        Ok(Array::Raw(serde_json::Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Array<T>, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Array<T>, S::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Option<T>>()? {
            match item {
                Some(v) => items.push(v),
                None => {
                    // A null: keep the whole array as raw JSON.
                    let mut raw = Vec::with_capacity(items.len() + 1);
                    for v in &items {
                        raw.push(serde_json::to_value(v).map_err(de::Error::custom)?);
                    }
                    raw.push(serde_json::Value::Null);
                    while let Some(v) = seq.next_element::<serde_json::Value>()? {
                        raw.push(v);
                    }
                    return Ok(Array::Raw(serde_json::Value::Array(raw)));
                }
            }
        }
        Ok(Array::Typed(items))
    }
}

/// A choice element (`value[x]`, `effective[x]`…): the JSON member is the
/// element's name followed by the type's name (`valueQuantity`).
impl Field for Option<Choice> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }

    fn matches(name: &str, key: &str) -> bool {
        key.strip_prefix(name).is_some_and(Choice::is_known_type)
    }

    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        name: &'static str,
        key: &str,
        map: &mut A,
    ) -> Result<Option<serde_json::Value>, A::Error> {
        if self.is_some() {
            return Err(de::Error::custom(format_args!(
                "more than one {name}[x] member (second is `{key}`); FHIR allows one type per choice element"
            )));
        }
        let suffix = key.get(name.len()..).unwrap_or_default();
        *self = Some(map.next_value_seed(ChoiceSeed(suffix))?);
        Ok(None)
    }

    fn write<M: SerializeMap>(&self, name: &'static str, map: &mut M) -> Result<(), M::Error> {
        match self {
            Some(v) => {
                let ty = v.type_name();
                let mut key = String::with_capacity(name.len() + ty.len());
                key.push_str(name);
                key.push_str(ty);
                map.serialize_entry(&key, &ChoiceValue(v))
            }
            None => Ok(()),
        }
    }

    fn clean(&mut self) {
        if let Some(v) = self {
            v.clean();
            if v.is_empty() {
                *self = None;
            }
        }
    }

    fn check(&self, name: &'static str, ck: &mut Checker) {
        if let Some(v) = self {
            ck.at_choice(name, v.type_name(), |ck| v.check(ck));
        }
    }
}

struct ChoiceSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for ChoiceSeed<'_> {
    type Value = Choice;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Choice, D::Error> {
        Choice::deserialize_type(self.0, d)
    }
}

struct ChoiceValue<'a>(&'a Choice);

impl Serialize for ChoiceValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_value(s)
    }
}

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Stores an unknown member, refusing a duplicate key.
pub(crate) fn read_extra<'de, A: MapAccess<'de>>(
    extra: &mut Extra,
    key: &str,
    map: &mut A,
) -> Result<(), A::Error> {
    let v: serde_json::Value = map.next_value()?;
    if extra.insert(key.to_owned(), v).is_some() {
        return Err(de::Error::custom(format_args!(
            "duplicate member `{key}`; JSON objects in FHIR must not repeat a member"
        )));
    }
    Ok(())
}

/// Cleans unknown members (the same rules as typed ones).
pub(crate) fn clean_extra(extra: &mut Extra) {
    for v in extra.values_mut() {
        v.clean();
    }
    extra.retain(|_, v| !Node::is_empty(v));
}

pub(crate) fn check_extra(extra: &Extra, ck: &mut Checker) {
    for (k, v) in extra {
        ck.at_key(k, |ck| v.check(ck));
    }
}

impl Node for String {
    fn is_empty(&self) -> bool {
        self.is_empty()
    }

    fn clean(&mut self) {}

    fn check(&self, ck: &mut Checker) {
        if self.is_empty() {
            ck.issue(crate::check::IssueKind::EmptyString);
        }
    }
}

macro_rules! leaf_node {
    ($($t:ty),*) => {$(
        impl Node for $t {
            fn is_empty(&self) -> bool {
                false
            }

            fn clean(&mut self) {}

            fn check(&self, _ck: &mut Checker) {}
        }
    )*};
}

leaf_node!(bool, i64, u64);

impl Node for Decimal {
    fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    fn clean(&mut self) {
        self.unquote();
    }

    fn check(&self, ck: &mut Checker) {
        use crate::check::IssueKind;
        if self.as_str().is_empty() {
            ck.issue(IssueKind::EmptyString);
        } else if !self.is_valid() {
            ck.issue(IssueKind::InvalidDecimal(self.as_str().to_owned()));
        } else if self.is_quoted() {
            ck.issue(IssueKind::QuotedDecimal(self.as_str().to_owned()));
        }
    }
}

impl Node for DateTime {
    fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    fn clean(&mut self) {}

    fn check(&self, ck: &mut Checker) {
        use crate::check::IssueKind;
        if self.as_str().is_empty() {
            ck.issue(IssueKind::EmptyString);
        } else if !self.is_valid() {
            ck.issue(IssueKind::InvalidDateTime(self.as_str().to_owned()));
        } else if !self.is_strict() {
            ck.issue(IssueKind::LenientDateTime(self.as_str().to_owned()));
        }
    }
}

impl Node for serde_json::Value {
    fn is_empty(&self) -> bool {
        use serde_json::Value;
        match self {
            Value::String(s) => s.is_empty(),
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Null => true,
            Value::Bool(_) | Value::Number(_) => false,
        }
    }

    fn clean(&mut self) {
        use serde_json::Value;
        match self {
            Value::Object(m) => clean_extra(m),
            Value::Array(a) => {
                for v in a.iter_mut() {
                    v.clean();
                }
                a.retain(|v| !Node::is_empty(v));
            }
            _ => {}
        }
    }

    fn check(&self, ck: &mut Checker) {
        use crate::check::IssueKind;
        use serde_json::Value;
        match self {
            Value::String(s) if s.is_empty() => ck.issue(IssueKind::EmptyString),
            Value::Null => ck.issue(IssueKind::Null),
            Value::Object(m) if m.is_empty() => ck.issue(IssueKind::EmptyElement),
            Value::Array(a) if a.is_empty() => ck.issue(IssueKind::EmptyElement),
            Value::Object(m) => check_extra(m, ck),
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    ck.at_index(i, |ck| v.check(ck));
                }
            }
            _ => {}
        }
    }
}

impl<T: Node> Node for Box<T> {
    fn is_empty(&self) -> bool {
        (**self).is_empty()
    }

    fn clean(&mut self) {
        (**self).clean()
    }

    fn check(&self, ck: &mut Checker) {
        (**self).check(ck)
    }
}

/// Declares an element or resource struct with its (de)serialisation,
/// cleaning and checking.
///
/// `kind` is `resource` (writes and accepts `resourceType`), or `element`.
/// Every field must be an `Option` or a `Vec` (or `Option<Choice>` for a
/// choice element).
macro_rules! fhir_struct {
    (
        $(#[$m:meta])*
        $name:ident [$kind:ident] $(check = $rule:path;)?
        {
            $( $(#[$fm:meta])* $f:ident : $t:ty = $json:literal ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )*
            /// JSON members this model does not name, kept as they came so
            /// that writing the value back loses nothing.
            pub extra: $crate::model::Extra,
        }

        impl $name {
            /// Reads the members of a JSON object. `first` is a key already
            /// taken from `map` whose value has not been read yet.
            #[allow(unused_mut)]
            pub(crate) fn read_members<'de, A: serde::de::MapAccess<'de>>(
                mut map: A,
                mut first: Option<$crate::model::Key<'de>>,
            ) -> Result<$name, A::Error> {
                use $crate::model::Field;
                let mut out = $name::default();
                loop {
                    let key = match first.take() {
                        Some(k) => k,
                        None => match map.next_key::<$crate::model::Key<'de>>()? {
                            Some(k) => k,
                            None => break,
                        },
                    };
                    let key: &str = &key.0;
                    $(
                        if <$t as Field>::matches($json, key) {
                            if let Some(raw) = Field::read(&mut out.$f, $json, key, &mut map)? {
                                out.extra.insert(key.to_owned(), raw);
                            }
                            continue;
                        }
                    )*
                    if fhir_struct!(@is_resource $kind) && key == "resourceType" {
                        let ty: $crate::model::Key<'de> = map.next_value()?;
                        if ty.0 != stringify!($name) {
                            return Err(serde::de::Error::custom(format_args!(
                                "resourceType is {:?} where a {} was expected",
                                ty.0,
                                stringify!($name),
                            )));
                        }
                        continue;
                    }
                    $crate::model::read_extra(&mut out.extra, key, &mut map)?;
                }
                Ok(out)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct V;

                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a FHIR ", stringify!($name), " (a JSON object)"))
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$name, A::Error> {
                        $name::read_members(map, None)
                    }
                }
                d.deserialize_map(V)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                use $crate::model::Field;
                let mut m = s.serialize_map(None)?;
                if fhir_struct!(@is_resource $kind) {
                    m.serialize_entry("resourceType", stringify!($name))?;
                }
                $( Field::write(&self.$f, $json, &mut m)?; )*
                for (k, v) in &self.extra {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }

        impl $crate::model::Node for $name {
            fn is_empty(&self) -> bool {
                use $crate::model::Field;
                !fhir_struct!(@is_resource $kind)
                    $( && self.$f.is_absent() )*
                    && self.extra.is_empty()
            }

            fn clean(&mut self) {
                use $crate::model::Field;
                $( Field::clean(&mut self.$f); )*
                $crate::model::clean_extra(&mut self.extra);
            }

            fn check(&self, ck: &mut $crate::check::Checker) {
                use $crate::model::Field;
                if $crate::model::Node::is_empty(self) {
                    ck.issue($crate::check::IssueKind::EmptyElement);
                    return;
                }
                $( $rule(self, ck); )?
                $( Field::check(&self.$f, $json, ck); )*
                $crate::model::check_extra(&self.extra, ck);
            }
        }
    };
    (@is_resource resource) => { true };
    (@is_resource element) => { false };
}

/// Declares a complex datatype (an `Element`: `id` and `extension` first).
macro_rules! element {
    (
        $(#[$m:meta])*
        $name:ident $(check = $rule:path;)? { $($body:tt)* }
    ) => {
        fhir_struct! {
            $(#[$m])*
            $name [element] $(check = $rule;)? {
                /// `id`: unique id for referencing this element.
                id: Option<String> = "id",
                /// `extension`: additional content defined by implementations.
                extension: Vec<$crate::datatypes::Extension> = "extension",
                $($body)*
            }
        }

        impl $name {
            /// The first extension with this `url`.
            pub fn find_extension(&self, url: &str) -> Option<&$crate::datatypes::Extension> {
                self.extension.iter().find(|e| e.url.as_deref() == Some(url))
            }
        }
    };
}

/// Declares a backbone element (a part of a resource: `id`, `extension` and
/// `modifierExtension` first).
macro_rules! backbone {
    (
        $(#[$m:meta])*
        $name:ident $(check = $rule:path;)? { $($body:tt)* }
    ) => {
        element! {
            $(#[$m])*
            $name $(check = $rule;)? {
                /// `modifierExtension`: extensions that change the meaning of
                /// the element.
                modifier_extension: Vec<$crate::datatypes::Extension> = "modifierExtension",
                $($body)*
            }
        }
    };
}

/// Declares a resource that is not a `DomainResource` (Bundle, Binary,
/// Parameters): `id`, `meta`, `implicitRules`, `language` first.
macro_rules! resource {
    (
        $(#[$m:meta])*
        $name:ident $(check = $rule:path;)? { $($body:tt)* }
    ) => {
        fhir_struct! {
            $(#[$m])*
            $name [resource] $(check = $rule;)? {
                /// `id`: the logical id of the resource.
                id: Option<String> = "id",
                /// `meta`: metadata (version, profiles, security labels).
                meta: Option<$crate::datatypes::Meta> = "meta",
                /// `implicitRules`: rules under which the content was created.
                implicit_rules: Option<String> = "implicitRules",
                /// `language`: the language of the content.
                language: Option<String> = "language",
                $($body)*
            }
        }
    };
}

/// Declares a `DomainResource`: a resource with narrative, contained
/// resources and extensions.
macro_rules! domain_resource {
    (
        $(#[$m:meta])*
        $name:ident $(check = $rule:path;)? { $($body:tt)* }
    ) => {
        resource! {
            $(#[$m])*
            $name $(check = $rule;)? {
                /// `text`: the human-readable narrative.
                text: Option<$crate::datatypes::Narrative> = "text",
                /// `contained`: resources that have no identity of their own.
                contained: Vec<$crate::resources::Resource> = "contained",
                /// `extension`: additional content defined by implementations.
                extension: Vec<$crate::datatypes::Extension> = "extension",
                /// `modifierExtension`: extensions that change the meaning of
                /// the resource.
                modifier_extension: Vec<$crate::datatypes::Extension> = "modifierExtension",
                $($body)*
            }
        }

        impl $name {
            /// The first extension with this `url`.
            pub fn find_extension(&self, url: &str) -> Option<&$crate::datatypes::Extension> {
                self.extension.iter().find(|e| e.url.as_deref() == Some(url))
            }
        }
    };
}
