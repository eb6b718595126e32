//! HL7 V3 data types as GP2GP uses them.
//!
//! The names are HL7's own, so that the model reads like the standard: `II` (an instance
//! identifier: a root OID or UUID plus an optional extension), `CD` (a concept descriptor:
//! a code in a code system, with original text, qualifiers and translations), `TS` (a point
//! in time), `IVL_TS` (an interval of time), `PQ` (a physical quantity), `ST`/`ED` (text),
//! `TEL` (a telecom address or URL). The coded flavours `CE`, `CV` and `CS` restrict `CD`
//! and are the same Rust type here: the schema says which parts each may carry, and the
//! validator checks that.
//!
//! Names, addresses and polymorphic values (`value xsi:type="PQ"`) stay generic
//! [`Element`]s: their content is mixed text and parts, and the translation layer reads
//! them with the small helpers at the end of this module.
#![allow(non_camel_case_types)]

use crate::typed::FromXml;
use crate::xml::{Element, Node};

/// The HL7 OID of the code system GP2GP acknowledgement reason codes belong to.
pub const ACK_REASON_CODE_SYSTEM: &str = "2.16.840.1.113883.2.1.3.2.4.17.101";
/// SNOMED CT as HL7 V3 names it in England.
pub const SNOMED_CT: &str = "2.16.840.1.113883.2.1.3.2.4.15";
/// Interaction ids (`interactionId/@root`).
pub const INTERACTION_ID_ROOT: &str = "2.16.840.1.113883.2.1.3.2.4.12";
/// The XML Schema instance namespace (for `xsi:type`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The HL7 V3 namespace.
pub const HL7_NS: &str = "urn:hl7-org:v3";

hl7_class! {
    /// Instance identifier: `root` (an OID or UUID) and an optional `extension`.
    pub struct II {
        attrs {
            root: "root",
            extension: "extension",
            assigning_authority_name: "assigningAuthorityName",
            displayable: "displayable",
            null_flavor: "nullFlavor",
        }
        children {}
    }
}

impl II {
    /// An identifier with only a root (a UUID, for most GP2GP ids).
    pub fn root(root: impl Into<String>) -> Self {
        II {
            root: Some(root.into()),
            ..II::default()
        }
    }

    /// An identifier with a root OID and an extension (an NHS number, an ODS code, an ASID).
    pub fn with_extension(root: impl Into<String>, extension: impl Into<String>) -> Self {
        II {
            root: Some(root.into()),
            extension: Some(extension.into()),
            ..II::default()
        }
    }

    /// The identifier as one string: the extension when there is one, else the root.
    pub fn value(&self) -> Option<&str> {
        self.extension.as_deref().or(self.root.as_deref())
    }
}

hl7_class! {
    /// Text (`ST`) or encapsulated data (`ED`): the text itself sits in `extra`; read it
    /// with [`ST::text`]. ED may carry a `reference` (a URL to the content) too.
    pub struct ST {
        attrs {
            media_type: "mediaType",
            language: "language",
            compression: "compression",
            representation: "representation",
            null_flavor: "nullFlavor",
        }
        children {
            reference: opt TEL = "reference",
            thumbnail: opt Element = "thumbnail",
        }
    }
}

/// ED and ST share one shape here.
pub type ED = ST;

impl ST {
    /// Text content (concatenated when split by unknown elements).
    pub fn text(&self) -> String {
        self.extra.text()
    }

    /// A text value.
    pub fn new(text: impl Into<String>) -> Self {
        let mut st = ST::default();
        st.extra.set_text(text);
        st
    }
}

hl7_class! {
    /// Concept descriptor: a code with its code system and display name, original text,
    /// qualifiers and translations into other code systems. Also used for CE, CV and CS.
    pub struct CD {
        attrs {
            code: "code",
            code_system: "codeSystem",
            code_system_name: "codeSystemName",
            code_system_version: "codeSystemVersion",
            display_name: "displayName",
            null_flavor: "nullFlavor",
        }
        children {
            original_text: opt ST = "originalText",
            qualifier: many CR = "qualifier",
            translation: many CD = "translation",
        }
    }
}

/// Coded with equivalents: a CD without qualifiers.
pub type CE = CD;
/// Coded value: a CD without qualifiers or translations.
pub type CV = CD;
/// Coded simple value: code only, code system fixed by context.
pub type CS = CD;

impl CD {
    /// A code in a code system with a display name.
    pub fn new(code: &str, code_system: &str, display_name: Option<&str>) -> Self {
        CD {
            code: Some(code.into()),
            code_system: Some(code_system.into()),
            display_name: display_name.map(Into::into),
            ..CD::default()
        }
    }

    /// A simple code (`CS`), e.g. `statusCode code="COMPLETE"`.
    pub fn simple(code: &str) -> Self {
        CD {
            code: Some(code.into()),
            ..CD::default()
        }
    }

    /// The original text, if any.
    pub fn original_text(&self) -> Option<String> {
        self.original_text.as_ref().map(|t| t.text())
    }

    /// Whether this code, or one of its translations, is SNOMED CT.
    pub fn is_snomed(&self) -> bool {
        self.code_system.as_deref() == Some(SNOMED_CT)
    }
}

hl7_class! {
    /// Concept role: a qualifier of a code (`name` = `value`).
    pub struct CR {
        attrs { inverted: "inverted" }
        children {
            name: opt CD = "name",
            value: opt CD = "value",
        }
    }
}

hl7_class! {
    /// A point in time, `value` as `YYYYMMDD[HHMM[SS[.S…]]][±ZZZZ]`. Also the interval
    /// bounds (`IVXB_TS`, which add `inclusive`).
    pub struct TS {
        attrs {
            value: "value",
            inclusive: "inclusive",
            null_flavor: "nullFlavor",
        }
        children {}
    }
}

impl TS {
    pub fn new(value: impl Into<String>) -> Self {
        TS {
            value: Some(value.into()),
            ..TS::default()
        }
    }
}

hl7_class! {
    /// An interval of time: `low`/`high` bounds, or a `center` point, with a `width`. A
    /// plain `value` is allowed too (IVL_TS specialises TS).
    pub struct IVL_TS {
        attrs {
            value: "value",
            operator: "operator",
            null_flavor: "nullFlavor",
        }
        children {
            low: opt TS = "low",
            center: opt TS = "center",
            width: opt PQ = "width",
            high: opt TS = "high",
        }
    }
}

impl IVL_TS {
    /// An interval with only a centre point.
    pub fn center(value: impl Into<String>) -> Self {
        IVL_TS {
            center: Some(Box::new(TS::new(value))),
            ..IVL_TS::default()
        }
    }

    /// The earliest time this interval names: `low`, else `center`, else `value`.
    pub fn start(&self) -> Option<&str> {
        self.low
            .as_ref()
            .and_then(|t| t.value.as_deref())
            .or_else(|| self.center.as_ref().and_then(|t| t.value.as_deref()))
            .or(self.value.as_deref())
    }
}

hl7_class! {
    /// A physical quantity: `value` in `unit` (UCUM), with translations to other units.
    pub struct PQ {
        attrs {
            value: "value",
            unit: "unit",
            inclusive: "inclusive",
            null_flavor: "nullFlavor",
        }
        children {
            translation: many Element = "translation",
        }
    }
}

hl7_class! {
    /// An interval of physical quantities (a reference range).
    pub struct IVL_PQ {
        attrs {
            operator: "operator",
            null_flavor: "nullFlavor",
        }
        children {
            low: opt PQ = "low",
            center: opt PQ = "center",
            width: opt PQ = "width",
            high: opt PQ = "high",
        }
    }
}

hl7_class! {
    /// An integer (`INT`) or a boolean (`BL`): both are a single `value`.
    pub struct INT {
        attrs {
            value: "value",
            null_flavor: "nullFlavor",
        }
        children {}
    }
}

/// Boolean: one `value`, like INT.
pub type BL = INT;

impl INT {
    pub fn new(value: impl ToString) -> Self {
        INT {
            value: Some(value.to_string()),
            ..INT::default()
        }
    }
}

hl7_class! {
    /// A telecom address or URL (`tel:…`, `mailto:…`, `file://…`).
    pub struct TEL {
        attrs {
            value: "value",
            use_: "use",
            null_flavor: "nullFlavor",
        }
        children {
            useable_period: many Element = "useablePeriod",
            id: opt II = "id",
        }
    }
}

/// A name (person `PN`, organisation `ON`, entity `EN`): parts in mixed content.
pub type EN = Element;
/// A postal address: parts in mixed content.
pub type AD = Element;
/// A value of any type, its type given by `xsi:type` (`PQ`, `CD`, `ST`, `IVL_PQ`…).
pub type ANY = Element;

/// The `xsi:type` of a polymorphic element, without a prefix (`"PQ"`), where given.
pub fn xsi_type(e: &Element) -> Option<&str> {
    e.attrs
        .iter()
        .find(|a| crate::xml::local_name(&a.name) == "type" && a.name.contains(':'))
        .map(|a| crate::xml::local_name(&a.value))
}

/// The text of every part of a name or address, by part name: `[("given", "David"), …]`.
pub fn parts(e: &Element) -> Vec<(&str, String)> {
    e.children
        .iter()
        .filter_map(|n| match n {
            Node::Element(p) => Some((p.local_name(), p.text().into_owned())),
            _ => None,
        })
        .collect()
}

/// A polymorphic value read as a typed `PQ`, when it is one.
pub fn as_pq(e: &Element) -> Option<PQ> {
    (xsi_type(e) == Some("PQ")).then(|| PQ::from_xml(e.clone()))
}

/// A polymorphic value read as a typed `CD` (CD, CE, CV, CS), when it is one.
pub fn as_cd(e: &Element) -> Option<CD> {
    matches!(xsi_type(e), Some("CD" | "CE" | "CV" | "CS")).then(|| CD::from_xml(e.clone()))
}

/// A polymorphic value read as a typed `IVL_PQ`, when it is one.
pub fn as_ivl_pq(e: &Element) -> Option<IVL_PQ> {
    (xsi_type(e) == Some("IVL_PQ")).then(|| IVL_PQ::from_xml(e.clone()))
}

/// Checks that an HL7 timestamp is well formed: `YYYY[MM[DD[HH[MM[SS[.S{1,4}]]]]]][±HHMM]`,
/// with every field in range. Returns what is wrong, in words, when it is not.
pub fn check_timestamp(ts: &str) -> Result<(), String> {
    let (body, zone) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i + 1..])),
        None => (ts, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (body, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{ts}' has characters other than digits"));
    }
    if ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return Err(format!(
            "'{ts}' has {} digits; expected YYYY, YYYYMM, YYYYMMDD, YYYYMMDDHH, YYYYMMDDHHMM or YYYYMMDDHHMMSS",
            digits.len()
        ));
    }
    let field = |from: usize, to: usize| -> u32 {
        digits
            .get(from..to)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let n = digits.len();
    if n >= 6 && !(1..=12).contains(&field(4, 6)) {
        return Err(format!("'{ts}' has month {:02}", field(4, 6)));
    }
    if n >= 8 {
        let (year, month, day) = (field(0, 4), field(4, 6), field(6, 8));
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(format!("'{ts}' has day {day:02}, not a day of that month"));
        }
    }
    if n >= 10 && field(8, 10) > 23 {
        return Err(format!("'{ts}' has hour {:02}", field(8, 10)));
    }
    if n >= 12 && field(10, 12) > 59 {
        return Err(format!("'{ts}' has minute {:02}", field(10, 12)));
    }
    if n >= 14 && field(12, 14) > 59 {
        return Err(format!("'{ts}' has second {:02}", field(12, 14)));
    }
    if let Some(f) = fraction
        && (n != 14 || f.is_empty() || f.len() > 4 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "'{ts}' has a fraction of a second that is not 1 to 4 digits after full seconds"
        ));
    }
    if let Some(z) = zone {
        let ok = z.len() == 4
            && z.bytes().all(|b| b.is_ascii_digit())
            && z[..2].parse::<u32>().is_ok_and(|h| h <= 14)
            && z[2..].parse::<u32>().is_ok_and(|m| m <= 59);
        if !ok || n < 10 {
            return Err(format!(
                "'{ts}' has a time zone that is not ±HHMM after a time of day"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::ToXml;
    use crate::xml::{Layout, Writer, parse};

    fn roundtrip<T: FromXml + ToXml + PartialEq + std::fmt::Debug>(xml: &str) -> T {
        let e = parse(xml.as_bytes()).unwrap();
        let name = e.name.to_string();
        let typed = T::from_xml(e);
        let mut w = Writer::fragment(Layout::Compact);
        typed.write_xml(&name, &mut w);
        let again = T::from_xml(parse(w.finish().as_bytes()).unwrap());
        assert_eq!(typed, again);
        typed
    }

    #[test]
    fn cd_keeps_translations_original_text_and_unknown_parts_in_place() {
        let cd: CD = roundtrip(
            r#"<code code="22298006" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="MI" x:y="1" xmlns:x="u">
                 <originalText>Heart attack</originalText>
                 <x:note>kept</x:note>
                 <translation code="G30.." codeSystem="2.16.840.1.113883.2.1.6.2"/>
               </code>"#,
        );
        assert!(cd.is_snomed());
        assert_eq!(cd.original_text().as_deref(), Some("Heart attack"));
        assert_eq!(cd.translation.len(), 1);
        assert_eq!(cd.translation[0].code.as_deref(), Some("G30.."));
        assert_eq!(cd.extra.attrs.len(), 2, "x:y and the xmlns:x declaration");
        assert_eq!(cd.extra.children.len(), 1);
        assert_eq!(
            cd.extra.children[0].0, 1,
            "x:note stays between originalText and translation"
        );
        let written = cd.to_element("code");
        let names: Vec<_> = written.elements().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["originalText", "x:note", "translation"]);
    }

    #[test]
    fn a_surplus_child_is_kept_not_dropped() {
        let ii: IVL_TS =
            roundtrip(r#"<effectiveTime><low value="2001"/><low value="2002"/></effectiveTime>"#);
        assert_eq!(
            ii.low.as_ref().and_then(|t| t.value.as_deref()),
            Some("2001")
        );
        assert_eq!(ii.extra.children.len(), 1);
    }

    #[test]
    fn a_child_out_of_schema_order_is_kept_where_it_was() {
        // The schema puts low before high: typed, this low would be written first.
        let ii: IVL_TS = roundtrip(
            r#"<effectiveTime><high value="2002"/><low value="2001"/><high value="2003"/></effectiveTime>"#,
        );
        assert_eq!(
            ii.high.as_ref().and_then(|t| t.value.as_deref()),
            Some("2002")
        );
        assert!(ii.low.is_none());
        assert_eq!(ii.extra.children.len(), 2);
        let written = ii.to_element("effectiveTime");
        let values: Vec<_> = written.elements().filter_map(|e| e.attr("value")).collect();
        assert_eq!(values, ["2002", "2001", "2003"]);
    }

    #[test]
    fn text_types_keep_their_text() {
        let st: ST = roundtrip(r#"<text mediaType="text/plain">a &amp; b</text>"#);
        assert_eq!(st.text(), "a & b");
        assert_eq!(st.media_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn polymorphic_values_are_read_by_xsi_type() {
        let e = parse(br#"<value xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="PQ" value="5.4" unit="mmol/L"/>"#).unwrap();
        assert_eq!(xsi_type(&e), Some("PQ"));
        let pq = as_pq(&e).unwrap();
        assert_eq!(pq.value.as_deref(), Some("5.4"));
        assert!(as_cd(&e).is_none());
    }

    #[test]
    fn timestamps_are_checked_field_by_field() {
        for ok in [
            "2020",
            "202002",
            "20200229",
            "2020022913",
            "202002291359",
            "20200229135959",
            "20200229135959.1234",
            "20200229135959+0100",
            "201001011200-0500",
        ] {
            assert_eq!(check_timestamp(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "20",
            "20190229",
            "20201301",
            "20200100",
            "2020010124",
            "202001012360",
            "20200101235960",
            "2020-01-01",
            "20200101.5",
            "20200101120000.12345",
            "20200101+0100",
            "20200101120000+2500",
            "2O20",
        ] {
            assert!(check_timestamp(bad).is_err(), "{bad} should be rejected");
        }
    }
}
