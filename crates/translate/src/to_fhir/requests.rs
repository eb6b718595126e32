//! `RequestStatement` → `ReferralRequest`, `PlanStatement` → `ProcedureRequest` (a diary
//! entry or recall), `NarrativeStatement` with a `referredToExternalDocument` →
//! `DocumentReference` (the attachment by its `file://` reference).

use fhir::{
    Annotation, Attachment, CodeableConcept, Coding, DocumentReference, DocumentReferenceContent,
    DocumentReferenceContext, Meta, ProcedureRequest, ReferralRequest, Requester, systems,
};
use hl7v3::ehr::{NarrativeStatement, PlanStatement, RequestStatement};

use super::time::{ivl_to_effective, ts_to_fhir, ts_to_instant, ts_value};
use super::{Ctx, Scope, reference, text_of};
use crate::DegradeCode;

fn profile(name: &str, meta: Option<Meta>) -> Option<Meta> {
    Some(Meta {
        profile: vec![format!(
            "https://fhir.nhs.uk/STU3/StructureDefinition/{name}"
        )],
        ..meta.unwrap_or_default()
    })
}

fn priority(cd: Option<&hl7v3::datatypes::CD>) -> Option<String> {
    let code = cd?.code.as_deref()?;
    Some(
        match code {
            "394848005" => "routine",
            "394849002" => "urgent",
            "88694003" => "stat",
            "394850002" => "asap",
            _ => return None,
        }
        .to_owned(),
    )
}

impl Ctx<'_> {
    pub fn referral(&mut self, r: &RequestStatement, scope: &Scope) -> Option<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let ii = r.id.first();
        let id = self.id_for("ReferralRequest", ii, &fallback);
        let source = ii.and_then(|i| i.value()).unwrap_or(&fallback).to_owned();
        let text = text_of(r.text.as_deref());
        let code = self.concept(
            r.code.as_deref(),
            DegradeCode::Referral,
            &source,
            "RequestStatement",
            None,
        );
        let zone = self.zone();
        let requester = self.author_of(&r.participant, scope, &source);
        let status = match r.status_code.as_ref().and_then(|s| s.code.as_deref()) {
            Some("COMPLETE") => "completed",
            Some("ACTIVE") => "active",
            Some("SUSPENDED") => "suspended",
            Some("ABORTED" | "CANCELLED") => "cancelled",
            _ => "unknown",
        };
        let mut note = Vec::new();
        if let Some(p) = r.priority_code.as_deref()
            && priority(Some(p)).is_none()
            && let Some(t) = super::codes::concept_text(p)
        {
            note.push(Annotation {
                text: Some(format!("Priority: {t}")),
                ..Annotation::default()
            });
        }
        let rr = ReferralRequest {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-ReferralRequest-1",
                self.meta(r.confidentiality_code.as_deref(), scope.confidential),
            ),
            identifier: self.identifiers(ii),
            status: Some(status.to_owned()),
            intent: Some("order".to_owned()),
            priority: priority(r.priority_code.as_deref()),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            occurrence: ivl_to_effective(r.effective_time.as_deref(), zone),
            authored_on: ts_value(r.availability_time.as_deref())
                .or(scope.availability.as_deref())
                .and_then(|t| ts_to_fhir(t, zone)),
            requester: requester.map(|a| Requester {
                agent: Some(reference(&a)),
                ..Requester::default()
            }),
            reason_code: vec![code],
            description: text,
            note,
            ..ReferralRequest::default()
        };
        let out = format!("ReferralRequest/{id}");
        self.produced(ii, &out);
        self.push(rr.into());
        Some(out)
    }

    pub fn plan(&mut self, p: &PlanStatement, scope: &Scope) -> Option<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let ii = p.id.as_deref();
        let id = self.id_for("ProcedureRequest", ii, &fallback);
        let source = ii.and_then(|i| i.value()).unwrap_or(&fallback).to_owned();
        let text = text_of(p.text.as_deref());
        let code = self.concept(
            p.code.as_deref(),
            DegradeCode::Plan,
            &source,
            "PlanStatement",
            text.as_deref(),
        );
        let zone = self.zone();
        let requester = self.author_of(&p.participant, scope, &source);
        let status = match p.status_code.as_ref().and_then(|s| s.code.as_deref()) {
            Some("COMPLETE") => "completed",
            Some("ABORTED" | "CANCELLED") => "cancelled",
            Some("SUSPENDED") => "suspended",
            _ => "active",
        };
        let pr = ProcedureRequest {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-ProcedureRequest-1",
                self.meta(p.confidentiality_code.as_deref(), scope.confidential),
            ),
            identifier: self.identifiers(ii),
            status: Some(status.to_owned()),
            intent: Some("plan".to_owned()),
            priority: priority(p.priority_code.as_deref()),
            code: Some(code),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            occurrence: ivl_to_effective(p.effective_time.as_deref(), zone),
            authored_on: ts_value(p.availability_time.as_deref())
                .or(scope.availability.as_deref())
                .and_then(|t| ts_to_fhir(t, zone)),
            requester: requester.map(|a| Requester {
                agent: Some(reference(&a)),
                ..Requester::default()
            }),
            note: text
                .map(|t| Annotation {
                    text: Some(t),
                    ..Annotation::default()
                })
                .into_iter()
                .collect(),
            ..ProcedureRequest::default()
        };
        let out = format!("ProcedureRequest/{id}");
        self.produced(ii, &out);
        self.push(pr.into());
        Some(out)
    }

    pub fn document(&mut self, n: &NarrativeStatement, scope: &Scope) -> Option<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let doc = n
            .reference
            .iter()
            .find_map(|r| r.referred_to_external_document.as_deref());
        let ii = n.id.as_deref().or(doc.and_then(|d| d.id.as_deref()));
        let id = self.id_for("DocumentReference", ii, &fallback);
        let source = ii.and_then(|i| i.value()).unwrap_or(&fallback).to_owned();
        let zone = self.zone();
        let kind = match doc.and_then(|d| d.code.as_deref()) {
            Some(cd) => self.concept(
                Some(cd),
                DegradeCode::Other,
                &source,
                "NarrativeStatement",
                None,
            ),
            None => CodeableConcept::from_coding(Coding::new(
                systems::SNOMED_CT,
                "37251000000104",
                "Other digital signal",
            )),
        };
        let text = doc.and_then(|d| d.text.as_deref());
        let url = text
            .and_then(|t| t.reference.as_deref())
            .and_then(|r| r.value.as_deref())
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let title = url.and_then(|u| u.rsplit('/').next()).map(str::to_owned);
        let attachment = Attachment {
            content_type: text
                .and_then(|t| t.media_type.as_deref())
                .map(str::to_owned)
                .or_else(|| Some("application/octet-stream".to_owned())),
            url: url.map(str::to_owned),
            title,
            ..Attachment::default()
        };
        let when = ts_value(n.availability_time.as_deref())
            .or(scope.availability.as_deref())
            .or(scope.author_time.as_deref());
        // `indexed` is an instant and required: the time the record was made, else the
        // extract's, at the start of the day when only a date is known.
        let indexed = when
            .and_then(|t| ts_to_instant(t, zone))
            .or_else(|| {
                self.extract_time
                    .as_deref()
                    .and_then(|t| ts_to_instant(t, zone))
            })
            .or_else(|| {
                when.and_then(|t| t.get(..8))
                    .and_then(|d| ts_to_instant(&format!("{d}000000"), zone))
            });
        let author = self.author_of(&n.participant, scope, &source);
        let dr = DocumentReference {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-DocumentReference-1",
                self.meta(
                    n.confidentiality_code
                        .as_deref()
                        .or(doc.and_then(|d| d.confidentiality_code.as_deref())),
                    scope.confidential,
                ),
            ),
            identifier: self.identifiers(ii),
            status: Some("current".to_owned()),
            r#type: Some(kind),
            subject: Some(self.subject()),
            created: when.and_then(|t| ts_to_fhir(t, zone)),
            indexed,
            author: author.as_deref().map(reference).into_iter().collect(),
            custodian: self.source_org.as_deref().map(reference),
            description: text_of(n.text.as_deref()),
            content: vec![DocumentReferenceContent {
                attachment: Some(attachment),
                ..DocumentReferenceContent::default()
            }],
            context: scope
                .encounter
                .as_deref()
                .map(|e| DocumentReferenceContext {
                    encounter: Some(reference(e)),
                    ..DocumentReferenceContext::default()
                }),
            ..DocumentReference::default()
        };
        if dr.indexed.is_none() {
            self.unmapped(
                ii,
                "NarrativeStatement",
                "the document has no date at all, and FHIR requires DocumentReference.indexed",
            );
            return None;
        }
        let out = format!("DocumentReference/{id}");
        self.produced(ii, &out);
        self.push(dr.into());
        Some(out)
    }
}
