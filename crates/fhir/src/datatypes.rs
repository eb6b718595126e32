//! The STU3 complex datatypes that GP Connect resources use.
//!
//! Field names are the FHIR element names in snake_case (`r#type` and
//! `r#use` where the FHIR name is a Rust keyword); each field's doc starts
//! with the element's JSON name.

use crate::check::{Checker, IssueKind};
use crate::choice::Choice;
use crate::datetime::DateTime;
use crate::decimal::Decimal;
use crate::systems;

element! {
    /// `Extension`: a value (or nested extensions) defined by a profile,
    /// identified by `url`.
    Extension check = check_extension; {
        /// `url`: identifies the meaning of the extension (required).
        url: Option<String> = "url",
        /// `value[x]`: the value, when the extension is simple.
        value: Option<Choice> = "value",
    }
}

fn check_extension(e: &Extension, ck: &mut Checker) {
    ck.require(e.url.is_some(), "url");
    if e.value.is_some() != e.extension.is_empty() {
        ck.issue(IssueKind::Invariant(
            "an extension must have either a value[x] or nested extensions, not both (ext-1)",
        ));
    }
}

impl Extension {
    /// The first extension in `extensions` with this `url`.
    pub fn find<'a>(extensions: &'a [Extension], url: &str) -> Option<&'a Extension> {
        extensions.iter().find(|e| e.url.as_deref() == Some(url))
    }

    /// A simple extension with a value.
    pub fn with_value(url: impl Into<String>, value: Choice) -> Extension {
        Extension {
            url: Some(url.into()),
            value: Some(value),
            ..Extension::default()
        }
    }
}

element! {
    /// `Meta`: metadata about a resource.
    Meta {
        /// `versionId`
        version_id: Option<String> = "versionId",
        /// `lastUpdated` (an instant)
        last_updated: Option<DateTime> = "lastUpdated",
        /// `profile`: the profiles (StructureDefinition URLs) the resource
        /// claims to conform to.
        profile: Vec<String> = "profile",
        /// `security`
        security: Vec<Coding> = "security",
        /// `tag`
        tag: Vec<Coding> = "tag",
    }
}

element! {
    /// `Narrative`: human-readable XHTML.
    Narrative check = check_narrative; {
        /// `status`: generated | extensions | additional | empty (required).
        status: Option<String> = "status",
        /// `div`: limited XHTML content (required).
        div: Option<String> = "div",
    }
}

fn check_narrative(n: &Narrative, ck: &mut Checker) {
    ck.require(n.status.is_some(), "status");
    ck.require(n.div.is_some(), "div");
}

element! {
    /// `Identifier`: a business identifier, such as an NHS number.
    Identifier {
        /// `use`: usual | official | temp | secondary.
        r#use: Option<String> = "use",
        /// `type`
        r#type: Option<CodeableConcept> = "type",
        /// `system`: the namespace of the value (a URI).
        system: Option<String> = "system",
        /// `value`
        value: Option<String> = "value",
        /// `period`
        period: Option<Period> = "period",
        /// `assigner` (boxed: a Reference can hold an Identifier)
        assigner: Option<Box<Reference>> = "assigner",
    }
}

impl Identifier {
    /// The first identifier in `identifiers` with this `system`.
    pub fn find<'a>(identifiers: &'a [Identifier], system: &str) -> Option<&'a Identifier> {
        identifiers
            .iter()
            .find(|i| i.system.as_deref() == Some(system))
    }

    /// The value of the first identifier in `identifiers` with this `system`.
    pub fn value_for<'a>(identifiers: &'a [Identifier], system: &str) -> Option<&'a str> {
        Identifier::find(identifiers, system)?.value.as_deref()
    }

    /// An identifier with a system and a value.
    pub fn new(system: impl Into<String>, value: impl Into<String>) -> Identifier {
        Identifier {
            system: Some(system.into()),
            value: Some(value.into()),
            ..Identifier::default()
        }
    }
}

element! {
    /// `Coding`: a code from a code system.
    Coding check = check_coding; {
        /// `system`: the code system (e.g. [`systems::SNOMED_CT`]).
        system: Option<String> = "system",
        /// `version`
        version: Option<String> = "version",
        /// `code`
        code: Option<String> = "code",
        /// `display`
        display: Option<String> = "display",
        /// `userSelected`
        user_selected: Option<bool> = "userSelected",
    }
}

fn check_coding(c: &Coding, ck: &mut Checker) {
    if c.code.is_none() && c.display.is_none() {
        ck.issue(IssueKind::Invariant(
            "a Coding must have a code or a display",
        ));
    }
}

impl Coding {
    /// A coding with a system, code and display.
    pub fn new(
        system: impl Into<String>,
        code: impl Into<String>,
        display: impl Into<String>,
    ) -> Coding {
        Coding {
            system: Some(system.into()),
            code: Some(code.into()),
            display: Some(display.into()),
            ..Coding::default()
        }
    }

    /// Whether this coding's system is `system`.
    pub fn is_system(&self, system: &str) -> bool {
        self.system.as_deref() == Some(system)
    }

    /// The SNOMED CT description id from the `Extension-coding-sctdescid`
    /// extension (its `descriptionId` part), if present.
    pub fn snomed_description_id(&self) -> Option<&str> {
        self.sctdescid_part(systems::SCTDESCID_DESCRIPTION_ID)
    }

    /// The SNOMED CT description text from the `Extension-coding-sctdescid`
    /// extension (its `descriptionDisplay` part), if present.
    pub fn snomed_description_display(&self) -> Option<&str> {
        self.sctdescid_part(systems::SCTDESCID_DESCRIPTION_DISPLAY)
    }

    fn sctdescid_part(&self, part: &str) -> Option<&str> {
        let ext = self.find_extension(systems::EXTENSION_CODING_SCTDESCID)?;
        Extension::find(&ext.extension, part)?
            .value
            .as_ref()?
            .as_str()
    }
}

element! {
    /// `CodeableConcept`: a concept given by codings and/or text.
    CodeableConcept {
        /// `coding`
        coding: Vec<Coding> = "coding",
        /// `text`: the concept as the user saw or entered it.
        text: Option<String> = "text",
    }
}

impl CodeableConcept {
    /// The first coding with this `system`.
    pub fn coding_with_system(&self, system: &str) -> Option<&Coding> {
        self.coding.iter().find(|c| c.is_system(system))
    }

    /// The first SNOMED CT coding.
    pub fn snomed(&self) -> Option<&Coding> {
        self.coding_with_system(systems::SNOMED_CT)
    }

    /// A concept with one coding.
    pub fn from_coding(coding: Coding) -> CodeableConcept {
        CodeableConcept {
            coding: vec![coding],
            ..CodeableConcept::default()
        }
    }

    /// A concept with text only.
    pub fn from_text(text: impl Into<String>) -> CodeableConcept {
        CodeableConcept {
            text: Some(text.into()),
            ..CodeableConcept::default()
        }
    }

    /// The text, or else the display of the first coding that has one.
    pub fn text_or_display(&self) -> Option<&str> {
        self.text
            .as_deref()
            .or_else(|| self.coding.iter().find_map(|c| c.display.as_deref()))
    }
}

element! {
    /// `Reference`: a pointer to another resource.
    Reference check = check_reference; {
        /// `reference`: `Type/id`, an absolute URL, `urn:uuid:…` or `#id`.
        reference: Option<String> = "reference",
        /// `identifier`: a logical reference when the literal one is unknown
        /// (boxed: rare, and large).
        identifier: Option<Box<Identifier>> = "identifier",
        /// `display`
        display: Option<String> = "display",
    }
}

fn check_reference(r: &Reference, ck: &mut Checker) {
    if r.reference.is_none() && r.identifier.is_none() && r.display.is_none() {
        ck.issue(IssueKind::Invariant(
            "a Reference must have a reference, an identifier or a display (ref-1)",
        ));
    }
    if let Some(target) = r.reference.as_deref().filter(|t| !t.is_empty()) {
        ck.reference(target);
    }
}

impl Reference {
    /// A reference to `Type/id`.
    pub fn to(resource_type: &str, id: &str) -> Reference {
        Reference {
            reference: Some(format!("{resource_type}/{id}")),
            ..Reference::default()
        }
    }

    /// The resource type and id this reference names, for the relative
    /// (`Patient/123`), versioned (`Patient/123/_history/2`) and absolute
    /// (`https://…/Patient/123`) forms. `None` for `urn:`, `#` and other
    /// forms.
    pub fn type_and_id(&self) -> Option<(&str, &str)> {
        split_reference(self.reference.as_deref()?)
    }
}

/// Splits a reference string `…Type/id[/_history/v]` into its type and id: relative
/// (`Patient/123`), versioned and absolute forms; `None` for `urn:`, `#` and other forms.
/// What [`Reference::type_and_id`] does, for a reference held as a string.
pub fn split_reference(r: &str) -> Option<(&str, &str)> {
    if r.starts_with('#') || r.starts_with("urn:") {
        return None;
    }
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let (head, id) = r.rsplit_once('/')?;
    let ty = head.rsplit_once('/').map_or(head, |(_, t)| t);
    let starts_upper = ty.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
    if !starts_upper || !ty.bytes().all(|b| b.is_ascii_alphabetic()) || id.is_empty() {
        return None;
    }
    Some((ty, id))
}

element! {
    /// `Period`: a time range; either end may be missing.
    Period {
        /// `start`
        start: Option<DateTime> = "start",
        /// `end`
        end: Option<DateTime> = "end",
    }
}

element! {
    /// `Quantity` (also `SimpleQuantity`, `Age`, `Duration`, `Count`,
    /// `Distance`, `Money`): a measured amount.
    Quantity {
        /// `value`
        value: Option<Decimal> = "value",
        /// `comparator`: < | <= | >= | >.
        comparator: Option<String> = "comparator",
        /// `unit`: the unit as written.
        unit: Option<String> = "unit",
        /// `system`: the system of `code` (usually [`systems::UCUM`]).
        system: Option<String> = "system",
        /// `code`: the coded unit.
        code: Option<String> = "code",
    }
}

element! {
    /// `Range`: a low and high quantity.
    Range {
        /// `low`
        low: Option<Quantity> = "low",
        /// `high`
        high: Option<Quantity> = "high",
    }
}

element! {
    /// `Ratio`: a numerator over a denominator.
    Ratio {
        /// `numerator`
        numerator: Option<Quantity> = "numerator",
        /// `denominator`
        denominator: Option<Quantity> = "denominator",
    }
}

element! {
    /// `Annotation`: a note with an author and time.
    Annotation check = check_annotation; {
        /// `author[x]`: `authorReference` or `authorString`.
        author: Option<Choice> = "author",
        /// `time`
        time: Option<DateTime> = "time",
        /// `text` (required)
        text: Option<String> = "text",
    }
}

fn check_annotation(a: &Annotation, ck: &mut Checker) {
    ck.require(a.text.is_some(), "text");
}

element! {
    /// `Attachment`: content inline (`data`) or by `url`.
    Attachment {
        /// `contentType`: the MIME type.
        content_type: Option<String> = "contentType",
        /// `language`
        language: Option<String> = "language",
        /// `data`: base64-encoded content.
        data: Option<String> = "data",
        /// `url`: where the content can be fetched.
        url: Option<String> = "url",
        /// `size`: bytes of content (before base64).
        size: Option<u64> = "size",
        /// `hash`: base64 SHA-1 of the content.
        hash: Option<String> = "hash",
        /// `title`
        title: Option<String> = "title",
        /// `creation`
        creation: Option<DateTime> = "creation",
    }
}

element! {
    /// `HumanName`
    HumanName {
        /// `use`: usual | official | temp | nickname | anonymous | old | maiden.
        r#use: Option<String> = "use",
        /// `text`
        text: Option<String> = "text",
        /// `family`
        family: Option<String> = "family",
        /// `given`
        given: Vec<String> = "given",
        /// `prefix`
        prefix: Vec<String> = "prefix",
        /// `suffix`
        suffix: Vec<String> = "suffix",
        /// `period`
        period: Option<Period> = "period",
    }
}

element! {
    /// `Address`
    Address {
        /// `use`: home | work | temp | old.
        r#use: Option<String> = "use",
        /// `type`: postal | physical | both.
        r#type: Option<String> = "type",
        /// `text`
        text: Option<String> = "text",
        /// `line`
        line: Vec<String> = "line",
        /// `city`
        city: Option<String> = "city",
        /// `district`
        district: Option<String> = "district",
        /// `state`
        state: Option<String> = "state",
        /// `postalCode`
        postal_code: Option<String> = "postalCode",
        /// `country`
        country: Option<String> = "country",
        /// `period`
        period: Option<Period> = "period",
    }
}

element! {
    /// `ContactPoint`: a phone number, email address and the like.
    ContactPoint check = check_contact_point; {
        /// `system`: phone | fax | email | pager | url | sms | other.
        system: Option<String> = "system",
        /// `value`
        value: Option<String> = "value",
        /// `use`: home | work | temp | old | mobile.
        r#use: Option<String> = "use",
        /// `rank`: 1 is the most preferred.
        rank: Option<u64> = "rank",
        /// `period`
        period: Option<Period> = "period",
    }
}

fn check_contact_point(c: &ContactPoint, ck: &mut Checker) {
    if c.value.is_some() && c.system.is_none() {
        ck.issue(IssueKind::Invariant(
            "a ContactPoint with a value must have a system (cpt-2)",
        ));
    }
}

element! {
    /// `Dosage`: how a medication is (to be) taken.
    Dosage {
        /// `sequence`
        sequence: Option<i64> = "sequence",
        /// `text`: the dosage instruction as free text.
        text: Option<String> = "text",
        /// `additionalInstruction`
        additional_instruction: Vec<CodeableConcept> = "additionalInstruction",
        /// `patientInstruction`
        patient_instruction: Option<String> = "patientInstruction",
        /// `timing`
        timing: Option<Timing> = "timing",
        /// `asNeeded[x]`: `asNeededBoolean` or `asNeededCodeableConcept`.
        as_needed: Option<Choice> = "asNeeded",
        /// `site`
        site: Option<CodeableConcept> = "site",
        /// `route`
        route: Option<CodeableConcept> = "route",
        /// `method`
        method: Option<CodeableConcept> = "method",
        /// `dose[x]`: `doseRange` or `doseQuantity`.
        dose: Option<Choice> = "dose",
        /// `maxDosePerPeriod`
        max_dose_per_period: Option<Ratio> = "maxDosePerPeriod",
        /// `maxDosePerAdministration`
        max_dose_per_administration: Option<Quantity> = "maxDosePerAdministration",
        /// `maxDosePerLifetime`
        max_dose_per_lifetime: Option<Quantity> = "maxDosePerLifetime",
        /// `rate[x]`: `rateRatio`, `rateRange` or `rateQuantity`.
        rate: Option<Choice> = "rate",
    }
}

element! {
    /// `Timing`: when something happens, possibly repeatedly.
    Timing {
        /// `event`
        event: Vec<DateTime> = "event",
        /// `repeat`
        repeat: Option<TimingRepeat> = "repeat",
        /// `code`: BID | TID | QID | AM | PM …
        code: Option<CodeableConcept> = "code",
    }
}

element! {
    /// `Timing.repeat`
    TimingRepeat {
        /// `bounds[x]`: `boundsDuration`, `boundsRange` or `boundsPeriod`.
        bounds: Option<Choice> = "bounds",
        /// `count`
        count: Option<u64> = "count",
        /// `countMax`
        count_max: Option<u64> = "countMax",
        /// `duration`
        duration: Option<Decimal> = "duration",
        /// `durationMax`
        duration_max: Option<Decimal> = "durationMax",
        /// `durationUnit`
        duration_unit: Option<String> = "durationUnit",
        /// `frequency`
        frequency: Option<u64> = "frequency",
        /// `frequencyMax`
        frequency_max: Option<u64> = "frequencyMax",
        /// `period`
        period: Option<Decimal> = "period",
        /// `periodMax`
        period_max: Option<Decimal> = "periodMax",
        /// `periodUnit`
        period_unit: Option<String> = "periodUnit",
        /// `dayOfWeek`
        day_of_week: Vec<String> = "dayOfWeek",
        /// `timeOfDay`
        time_of_day: Vec<String> = "timeOfDay",
        /// `when`
        when: Vec<String> = "when",
        /// `offset`
        offset: Option<u64> = "offset",
    }
}
