//! Choice elements: `value[x]`, `effective[x]`, `onset[x]` and the like.

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

use crate::check::Checker;
use crate::datatypes::{
    Address, Annotation, Attachment, CodeableConcept, Coding, ContactPoint, HumanName, Identifier,
    Period, Quantity, Range, Ratio, Reference, Timing,
};
use crate::datetime::DateTime;
use crate::decimal::Decimal;
use crate::model::Node;

macro_rules! choice {
    ($( $(#[$m:meta])* $variant:ident($t:ty) = $name:literal, )*) => {
        /// The value of a choice element such as `Extension.value[x]` or
        /// `Observation.effective[x]`.
        ///
        /// In JSON the member's name is the element name followed by the
        /// type's name (`valueQuantity`, `effectiveDateTime`); the variant is
        /// that type. Members with a type not listed here (`SampledData`,
        /// `Signature`…) are not parsed: they stay in the containing
        /// element's `extra` map and are written back unchanged.
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Choice {
            $( $(#[$m])* $variant($t), )*
        }

        impl Choice {
            /// Whether `name` (`Quantity`, `DateTime`…) is a type this
            /// enum models.
            pub(crate) fn is_known_type(name: &str) -> bool {
                matches!(name, $($name)|*)
            }

            /// The FHIR type name, as it appears after the element name in
            /// JSON (`CodeableConcept` in `valueCodeableConcept`).
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Choice::$variant(_) => $name, )*
                }
            }

            pub(crate) fn deserialize_type<'de, D: Deserializer<'de>>(
                name: &str,
                d: D,
            ) -> Result<Choice, D::Error> {
                match name {
                    $( $name => <$t>::deserialize(d).map(Choice::$variant), )*
                    _ => Err(de::Error::custom(format_args!("unknown choice type {name}"))),
                }
            }

            pub(crate) fn serialize_value<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Choice::$variant(v) => v.serialize(s), )*
                }
            }

            pub(crate) fn is_empty(&self) -> bool {
                match self {
                    $( Choice::$variant(v) => Node::is_empty(v), )*
                }
            }

            pub(crate) fn clean(&mut self) {
                match self {
                    $( Choice::$variant(v) => Node::clean(v), )*
                }
            }

            pub(crate) fn check(&self, ck: &mut Checker) {
                match self {
                    $( Choice::$variant(v) => Node::check(v, ck), )*
                }
            }
        }
    };
}

choice! {
    /// `boolean`
    Boolean(bool) = "Boolean",
    /// `integer`
    Integer(i64) = "Integer",
    /// `unsignedInt`
    UnsignedInt(u64) = "UnsignedInt",
    /// `positiveInt`
    PositiveInt(u64) = "PositiveInt",
    /// `decimal`
    Decimal(Decimal) = "Decimal",
    /// `string`
    String(String) = "String",
    /// `uri`
    Uri(String) = "Uri",
    /// `code`
    Code(String) = "Code",
    /// `id`
    Id(String) = "Id",
    /// `oid`
    Oid(String) = "Oid",
    /// `markdown`
    Markdown(String) = "Markdown",
    /// `base64Binary`
    Base64Binary(String) = "Base64Binary",
    /// `time` (`hh:mm:ss`)
    Time(String) = "Time",
    /// `date`
    Date(DateTime) = "Date",
    /// `dateTime`
    DateTime(DateTime) = "DateTime",
    /// `instant`
    Instant(DateTime) = "Instant",
    /// `Annotation`
    Annotation(Box<Annotation>) = "Annotation",
    /// `Attachment`
    Attachment(Box<Attachment>) = "Attachment",
    /// `Identifier`
    Identifier(Box<Identifier>) = "Identifier",
    /// `CodeableConcept`
    CodeableConcept(Box<CodeableConcept>) = "CodeableConcept",
    /// `Coding`
    Coding(Box<Coding>) = "Coding",
    /// `Quantity`
    Quantity(Box<Quantity>) = "Quantity",
    /// `Age` (a Quantity)
    Age(Box<Quantity>) = "Age",
    /// `Duration` (a Quantity)
    Duration(Box<Quantity>) = "Duration",
    /// `Count` (a Quantity)
    Count(Box<Quantity>) = "Count",
    /// `Distance` (a Quantity)
    Distance(Box<Quantity>) = "Distance",
    /// `Money` (a Quantity)
    Money(Box<Quantity>) = "Money",
    /// `Range`
    Range(Box<Range>) = "Range",
    /// `Period`
    Period(Box<Period>) = "Period",
    /// `Ratio`
    Ratio(Box<Ratio>) = "Ratio",
    /// `HumanName`
    HumanName(Box<HumanName>) = "HumanName",
    /// `Address`
    Address(Box<Address>) = "Address",
    /// `ContactPoint`
    ContactPoint(Box<ContactPoint>) = "ContactPoint",
    /// `Timing`
    Timing(Box<Timing>) = "Timing",
    /// `Reference`
    Reference(Box<Reference>) = "Reference",
}

impl Choice {
    /// The value of any string-like type (`string`, `uri`, `code`, `id`,
    /// `oid`, `markdown`, `base64Binary`, `time`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Choice::String(s)
            | Choice::Uri(s)
            | Choice::Code(s)
            | Choice::Id(s)
            | Choice::Oid(s)
            | Choice::Markdown(s)
            | Choice::Base64Binary(s)
            | Choice::Time(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a `date`, `dateTime` or `instant`.
    pub fn as_date_time(&self) -> Option<&DateTime> {
        match self {
            Choice::Date(d) | Choice::DateTime(d) | Choice::Instant(d) => Some(d),
            _ => None,
        }
    }

    /// The value of a `boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Choice::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an `integer`, `unsignedInt` or `positiveInt`.
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            Choice::Integer(i) => Some(i),
            Choice::UnsignedInt(u) | Choice::PositiveInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value of a `decimal`.
    pub fn as_decimal(&self) -> Option<&Decimal> {
        match self {
            Choice::Decimal(d) => Some(d),
            _ => None,
        }
    }

    /// The value of a `CodeableConcept`.
    pub fn as_codeable_concept(&self) -> Option<&CodeableConcept> {
        match self {
            Choice::CodeableConcept(c) => Some(c),
            _ => None,
        }
    }

    /// The value of a `Coding`.
    pub fn as_coding(&self) -> Option<&Coding> {
        match self {
            Choice::Coding(c) => Some(c),
            _ => None,
        }
    }

    /// The value of a `Reference`.
    pub fn as_reference(&self) -> Option<&Reference> {
        match self {
            Choice::Reference(r) => Some(r),
            _ => None,
        }
    }

    /// The value of a `Quantity` or one of its kinds (`Age`, `Duration`,
    /// `Count`, `Distance`, `Money`).
    pub fn as_quantity(&self) -> Option<&Quantity> {
        match self {
            Choice::Quantity(q)
            | Choice::Age(q)
            | Choice::Duration(q)
            | Choice::Count(q)
            | Choice::Distance(q)
            | Choice::Money(q) => Some(q),
            _ => None,
        }
    }

    /// The value of a `Period`.
    pub fn as_period(&self) -> Option<&Period> {
        match self {
            Choice::Period(p) => Some(p),
            _ => None,
        }
    }

    /// The value of a `Range`.
    pub fn as_range(&self) -> Option<&Range> {
        match self {
            Choice::Range(r) => Some(r),
            _ => None,
        }
    }

    /// The value of an `Identifier`.
    pub fn as_identifier(&self) -> Option<&Identifier> {
        match self {
            Choice::Identifier(i) => Some(i),
            _ => None,
        }
    }

    /// The value of an `Attachment`.
    pub fn as_attachment(&self) -> Option<&Attachment> {
        match self {
            Choice::Attachment(a) => Some(a),
            _ => None,
        }
    }
}
