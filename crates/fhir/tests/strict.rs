//! Strict checking, cleaning, reference resolution and error reporting on
//! small hand-written inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fhir::{Bundle, Choice, Error, IssueKind, Resource};
use serde_json::{Value, json};

fn bundle(v: Value) -> Bundle {
    fhir::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap()
}

fn issues(b: &Bundle) -> Vec<(String, IssueKind)> {
    b.check_strict()
        .into_iter()
        .map(|i| (i.path, i.kind))
        .collect()
}

fn patient() -> Value {
    json!({"resource": {"resourceType": "Patient", "id": "p1"}})
}

#[test]
fn a_clean_bundle_has_no_issues() {
    let b = bundle(json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            patient(),
            {"fullUrl": "urn:uuid:5e0c1b5a-1111-4f4f-8b8b-222222222222",
             "resource": {"resourceType": "Practitioner", "id": "gp"}},
            {"resource": {"resourceType": "Condition", "id": "c1",
                "subject": {"reference": "Patient/p1"},
                "asserter": {"reference": "urn:uuid:5e0c1b5a-1111-4f4f-8b8b-222222222222"},
                "context": {"reference": "https://example.org/fhir/Patient/p1/_history/3"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
                "onsetDateTime": "2010"}}
        ]
    }));
    assert_eq!(issues(&b), vec![]);
}

#[test]
fn unresolved_and_duplicate_references_are_reported() {
    let b = bundle(json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            patient(),
            patient(),
            {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "Patient/p2"},
                "performer": [{"reference": "Practitioner/p1"}, {"reference": "urn:uuid:nope"}],
                "related": [{"target": {"reference": "#contained"}}]}}
        ]
    }));
    assert_eq!(
        issues(&b),
        vec![
            (
                "Bundle.entry[1]".to_owned(),
                IssueKind::DuplicateResource("Patient/p1".to_owned())
            ),
            (
                "Bundle.entry[2].resource.subject".to_owned(),
                IssueKind::UnresolvedReference("Patient/p2".to_owned())
            ),
            (
                "Bundle.entry[2].resource.performer[0]".to_owned(),
                IssueKind::UnresolvedReference("Practitioner/p1".to_owned())
            ),
            (
                "Bundle.entry[2].resource.performer[1]".to_owned(),
                IssueKind::UnresolvedReference("urn:uuid:nope".to_owned())
            ),
        ]
    );
    let issue = &b.check_strict()[1];
    assert_eq!(issue.resource.as_deref(), Some("Observation/o1"));
    let text = issue.to_string();
    assert!(
        text.contains("Bundle.entry[2].resource.subject (in Observation/o1)"),
        "{text}"
    );
    assert!(text.contains("fix the reference"), "{text}");
}

#[test]
fn required_elements_and_invariants_are_reported() {
    let b = bundle(json!({
        "resourceType": "Bundle",
        "entry": [
            patient(),
            {"resource": {"resourceType": "Observation", "id": "bad id!",
                "category": [{"coding": [{"system": "http://snomed.info/sct"}]}],
                "subject": {"display": "someone"},
                "performer": [{"extension": [{"url": "u", "valueString": "x"}]}],
                "extension": [{"url": "u"}, {"valueBoolean": true}]}},
            {"resource": {"resourceType": "List", "status": "current",
                "entry": [{"flag": {"text": "f"}}]}}
        ]
    }));
    let got = issues(&b);
    let want = vec![
        ("Bundle".to_owned(), IssueKind::Missing("type")),
        (
            "Bundle.entry[1].resource.id".to_owned(),
            IssueKind::InvalidId("bad id!".to_owned()),
        ),
        (
            "Bundle.entry[1].resource".to_owned(),
            IssueKind::Missing("status"),
        ),
        (
            "Bundle.entry[1].resource".to_owned(),
            IssueKind::Missing("code"),
        ),
        (
            "Bundle.entry[1].resource.extension[0]".to_owned(),
            IssueKind::Invariant(
                "an extension must have either a value[x] or nested extensions, not both (ext-1)",
            ),
        ),
        (
            "Bundle.entry[1].resource.extension[1]".to_owned(),
            IssueKind::Missing("url"),
        ),
        (
            "Bundle.entry[1].resource.category[0].coding[0]".to_owned(),
            IssueKind::Invariant("a Coding must have a code or a display"),
        ),
        (
            "Bundle.entry[1].resource.performer[0]".to_owned(),
            IssueKind::Invariant(
                "a Reference must have a reference, an identifier or a display (ref-1)",
            ),
        ),
        (
            "Bundle.entry[2].resource".to_owned(),
            IssueKind::Missing("mode"),
        ),
        (
            "Bundle.entry[2].resource.entry[0]".to_owned(),
            IssueKind::Missing("item"),
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn lenient_values_are_read_reported_and_cleaned() {
    let input = json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "",
                "name": [{"family": "", "given": ["", "Ann"]}],
                "birthDate": "2010-05",
                "telecom": [{"system": "", "value": ""}],
                "_birthDate": {"extension": [{"url": "", "valueString": ""}]}}},
            {"resource": {"resourceType": "Observation", "id": "o", "status": "final",
                "code": {"text": "weight"}, "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2010-05-01T10:30:00",
                "valueQuantity": {"value": "70.50", "unit": "kg"},
                "issued": ""}}
        ]
    });
    let mut b = bundle(input.clone());
    // Read as written, and written back as read.
    let obs = b.resources_of::<fhir::Observation>().next().unwrap();
    let q = obs.value.as_ref().and_then(Choice::as_quantity).unwrap();
    let v = q.value.as_ref().unwrap();
    assert!(v.is_quoted());
    assert_eq!(v.as_str(), "70.50");
    assert_eq!(serde_json::to_value(&b).unwrap(), input);

    let mut got = issues(&b);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let e = |p: &str, k: IssueKind| (format!("Bundle.entry[{p}"), k);
    let mut want = vec![
        e("0].resource.gender", IssueKind::EmptyString),
        e("0].resource.name[0].family", IssueKind::EmptyString),
        e("0].resource.name[0].given[0]", IssueKind::EmptyString),
        e("0].resource.telecom[0].system", IssueKind::EmptyString),
        e("0].resource.telecom[0].value", IssueKind::EmptyString),
        e(
            "0].resource._birthDate.extension[0].url",
            IssueKind::EmptyString,
        ),
        e(
            "0].resource._birthDate.extension[0].valueString",
            IssueKind::EmptyString,
        ),
        e(
            "1].resource.effectiveDateTime",
            IssueKind::LenientDateTime("2010-05-01T10:30:00".to_owned()),
        ),
        e(
            "1].resource.valueQuantity.value",
            IssueKind::QuotedDecimal("70.50".to_owned()),
        ),
        e("1].resource.issued", IssueKind::EmptyString),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);

    b.clean();
    // Only the zone-less time remains: cleaning does not invent a zone.
    assert_eq!(
        issues(&b),
        vec![e(
            "1].resource.effectiveDateTime",
            IssueKind::LenientDateTime("2010-05-01T10:30:00".to_owned())
        )]
    );
    let out = serde_json::to_value(&b).unwrap();
    assert_eq!(
        out["entry"][0]["resource"],
        json!({"resourceType": "Patient", "id": "p1", "name": [{"given": ["Ann"]}],
               "birthDate": "2010-05"})
    );
    assert_eq!(
        out["entry"][1]["resource"]["valueQuantity"],
        json!({"value": 70.50, "unit": "kg"})
    );
    assert_eq!(
        serde_json::to_string(&out["entry"][1]["resource"]["valueQuantity"]["value"]).unwrap(),
        "70.5",
        "serde_json::Value rounds; the crate's own output keeps the digits"
    );
    assert!(fhir::to_string(&b).unwrap().contains(r#""value":70.50"#));
}

#[test]
fn unknown_members_and_resource_types_are_kept() {
    let input = json!({
        "resourceType": "Bundle", "type": "searchset", "signature": {"who": {"display": "x"}},
        "entry": [
            {"resource": {"resourceType": "Appointment", "id": "a1", "status": "booked",
                "participant": [{"actor": {"reference": "Patient/p1"}}]}},
            {"resource": {"id": "p1", "resourceType": "Patient", "animal": {"species": {"text": "dog"}},
                "deceasedBoolean": false, "multipleBirthInteger": 2,
                "identifier": [{"system": "s", "value": "v", "futureElement": [1, 2.50]}]}},
            {"resource": {"resourceType": "Observation", "id": "o", "status": "final",
                "code": {"text": "t"}, "valueSampledData": {"origin": {"value": 0}, "period": 1,
                "dimensions": 1, "data": "1 2"}}}
        ]
    });
    let b = bundle(input.clone());
    assert!(b.extra.contains_key("signature"));
    let Resource::Other(appt) = &b.entry[0].resource.as_ref().unwrap() else {
        panic!("Appointment is not modelled");
    };
    assert_eq!(appt["status"], "booked");
    let p = b.resources_of::<fhir::Patient>().next().unwrap();
    assert_eq!(p.deceased, Some(Choice::Boolean(false)));
    assert_eq!(p.multiple_birth, Some(Choice::Integer(2)));
    assert!(p.extra.contains_key("animal"));
    assert_eq!(p.identifier[0].extra["futureElement"], json!([1, 2.50]));
    let o = b.resources_of::<fhir::Observation>().next().unwrap();
    assert!(o.value.is_none() && o.extra.contains_key("valueSampledData"));
    assert_eq!(serde_json::to_value(&b).unwrap(), input);
    // References from unmodelled resources are not followed, so the
    // Appointment's (resolvable) reference raises nothing.
    assert_eq!(issues(&b), vec![]);
}

#[test]
fn index_finds_resources_by_every_reference_form() {
    let b = bundle(json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "https://x.nhs.uk/STU3/1/gpconnect/Patient/p1", "resource":
                {"resourceType": "Patient", "id": "p1"}},
            {"fullUrl": "urn:uuid:0b5b1b0e-0000-4000-8000-000000000001", "resource":
                {"resourceType": "Organization", "id": "o1",
                 "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                 "value": "A82038"}]}}
        ]
    }));
    let index = b.index();
    for r in [
        "Patient/p1",
        "Patient/p1/_history/2",
        "https://x.nhs.uk/STU3/1/gpconnect/Patient/p1",
        "https://elsewhere.example/Patient/p1",
    ] {
        assert_eq!(
            index.get(r).map(Resource::label).as_deref(),
            Some("Patient/p1"),
            "{r}"
        );
    }
    let org = index
        .resolve_as::<fhir::Organization>(&fhir::Reference {
            reference: Some("urn:uuid:0b5b1b0e-0000-4000-8000-000000000001".to_owned()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(org.ods_code(), Some("A82038"));
    assert!(index.get("Patient/p2").is_none());
    assert!(index.get("Organization/p1").is_none());
    assert!(index.get("#p1").is_none());
    assert!(
        index
            .resolve_as::<fhir::Patient>(&fhir::Reference::to("Organization", "o1"))
            .is_none()
    );
    assert_eq!(
        index.get_by_id("Organization", "o1").map(Resource::id),
        Some(Some("o1"))
    );
}

#[test]
fn errors_say_where_and_what_to_do() {
    // A type error deep in a bundle.
    let text = "{\"resourceType\": \"Bundle\", \"type\": \"collection\", \"entry\": [\n  \
                {\"resource\": {\"resourceType\": \"Observation\",\n    \
                \"code\": {\"coding\": [{\"code\": 42}]}}}]}";
    let err = fhir::from_str::<Bundle>(text).unwrap_err();
    let Error::Json {
        path,
        line,
        problem,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, "entry[0].resource.code.coding[0].code");
    assert_eq!(*line, 3);
    assert_eq!(*problem, "data error");
    let msg = err.to_string();
    assert!(
        msg.contains("entry[0].resource.code.coding[0].code"),
        "{msg}"
    );
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("STU3 definition"), "{msg}");

    // Malformed JSON.
    let err = fhir::from_str::<Bundle>("{\"resourceType\": \"Bundle\", \"entry\": [}").unwrap_err();
    let Error::Json {
        problem, column, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*problem, "syntax error");
    assert_eq!(*column, 38);

    // Wrong resource type where a Patient is expected.
    let err = fhir::from_str::<fhir::Patient>(r#"{"resourceType": "Practitioner"}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"Practitioner\" where a Patient was expected"),
        "{err}"
    );

    // Two value[x] members.
    let err = fhir::from_str::<fhir::Extension>(
        r#"{"url": "u", "valueString": "a", "valueBoolean": true}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than one value[x]"), "{err}");

    // A resource without a resourceType.
    let err = fhir::from_str::<Resource>(r#"{"id": "x"}"#).unwrap_err();
    assert!(err.to_string().contains("resourceType"), "{err}");
}

#[test]
fn resource_type_need_not_come_first() {
    let input = json!({"id": "o", "status": "final", "resourceType": "Observation",
                       "code": {"text": "t"}, "valueQuantity": {"value": 4.5}});
    let r: Resource = fhir::from_slice(&serde_json::to_vec(&input).unwrap()).unwrap();
    let o = r.downcast_ref::<fhir::Observation>().unwrap();
    assert_eq!(o.status.as_deref(), Some("final"));
    assert_eq!(serde_json::to_value(&r).unwrap(), input);
}

#[test]
fn nulls_are_tolerated_kept_reported_and_cleaned() {
    // FHIR JSON writes `null` in arrays of primitives whose extensions sit
    // in a parallel `_name` array; some systems also write `null` members.
    let input = json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "gender": null,
            "name": [{"family": "Nel", "given": ["Ann", null],
                      "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}]}}]
    });
    let mut b = bundle(input.clone());
    let p = b.patient().unwrap();
    assert_eq!(p.gender, None);
    assert_eq!(p.extra["gender"], Value::Null);
    // The array with a null is kept whole, untyped.
    assert!(p.name[0].given.is_empty());
    assert_eq!(p.name[0].extra["given"], json!(["Ann", null]));
    assert_eq!(serde_json::to_value(&b).unwrap(), input);
    let nulls = b
        .check_strict()
        .into_iter()
        .filter(|i| i.kind == IssueKind::Null)
        .count();
    assert_eq!(nulls, 3);
    b.clean();
    assert_eq!(b.check_strict(), vec![]);
    let again: Bundle = fhir::from_slice(&fhir::to_vec(&b).unwrap()).unwrap();
    assert_eq!(
        again.patient().unwrap().name[0].given,
        vec!["Ann".to_owned()]
    );
}
