//! ReferralRequest → `RequestStatement`; ProcedureRequest (a plan, a diary entry) →
//! `PlanStatement`; DocumentReference → `NarrativeStatement` with a reference to the
//! document sent beside the extract.

use fhir::{DocumentReference, ProcedureRequest, ReferralRequest};
use hl7v3::datatypes::{CD, II, ST, TEL};
use hl7v3::ehr::{
    ExternalDocument, NarrativeStatement, PlanStatement, Reference, RequestStatement, Statement,
};

use super::Ctx;
use super::agents::{agent_for, agent_for_opt};
use super::build::*;
use super::codes::{Item, Snomed, concept, fixed};
use crate::DegradeCode;

fn priority(p: Option<&str>) -> Option<Box<CD>> {
    let (code, display) = match p? {
        "routine" => ("394848005", "Normal"),
        "urgent" => ("394849002", "High"),
        "asap" | "stat" => ("88694003", "Immediate"),
        _ => return None,
    };
    let mut cd = fixed(code, display);
    cd.original_text = Some(Box::new(ST::new(p.unwrap_or_default())));
    bx(cd)
}

pub(crate) fn map_referral(ctx: &mut Ctx<'_>, r: &ReferralRequest) -> Statement {
    let rid = r.id.as_deref().unwrap_or("");
    let label = format!("ReferralRequest/{rid}");
    let code = concept(
        ctx,
        r.reason_code
            .first()
            .or(r.service_requested.first())
            .or(r.r#type.as_ref()),
        Snomed::Description,
        Item {
            source: &label,
            kind: "ReferralRequest",
            degrade: DegradeCode::Referral,
        },
    );
    let mut parts = Vec::new();
    let recipients: Vec<String> = r
        .recipient
        .iter()
        .filter_map(|x| {
            let res = ctx.store.resolve(x);
            match res.as_deref() {
                Some(fhir::Resource::Organization(o)) => o.name.clone(),
                Some(fhir::Resource::Practitioner(p)) => p.name.first().map(|n| {
                    join(&[
                        n.prefix.join(" "),
                        n.given.join(" "),
                        n.family.clone().unwrap_or_default(),
                    ])
                }),
                _ => x.display.clone(),
            }
        })
        .collect();
    if !recipients.is_empty() {
        parts.push(format!("Recipient: {}", recipients.join(", ")));
    }
    for s in r
        .service_requested
        .iter()
        .filter_map(|s| s.text_or_display())
    {
        parts.push(format!("Service requested: {s}"));
    }
    if let Some(s) = r.specialty.as_ref().and_then(|s| s.text_or_display()) {
        parts.push(format!("Specialty: {s}"));
    }
    for s in r
        .reason_code
        .iter()
        .skip(1)
        .filter_map(|s| s.text_or_display())
    {
        parts.push(format!("Reason: {s}"));
    }
    if let Some(d) = r.description.as_deref() {
        parts.push(d.to_string());
    }
    if let Some(s) = r.status.as_deref() {
        parts.push(format!("Status: {s}"));
    }
    for n in r.note.iter().filter_map(|n| n.text.as_deref()) {
        parts.push(format!("Note: {n}"));
    }
    for id in r.identifier.iter().filter(|i| {
        i.system
            .as_deref()
            .is_some_and(|s| s.contains("ubrn") || s.contains("e-referral"))
    }) {
        if let Some(v) = id.value.as_deref() {
            parts.push(format!("UBRN: {v}"));
        }
    }
    let authored = r.authored_on.as_ref().and_then(hl7_ts);
    let (occurrence, occurrence_end) = choice_times(r.occurrence.as_ref());
    let author = agent_for(ctx, r.requester.as_ref().and_then(|q| q.agent.as_ref()));
    Statement::RequestStatement(Box::new(RequestStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("RQO".into()),
        id: vec![II::root(ctx.res_id("ReferralRequest", rid))],
        code: bx(code),
        text: (!parts.is_empty()).then(|| Box::new(ST::new(parts.join(" ")))),
        status_code: cs("COMPLETE"),
        effective_time: effective(
            occurrence.as_deref().or(authored.as_deref()),
            occurrence_end.as_deref(),
        ),
        availability_time: availability(authored.as_deref()),
        priority_code: priority(r.priority.as_deref()),
        confidentiality_code: ctx.confidentiality(r.meta.as_ref()),
        participant: vec![participant("AUT", &author)],
        ..RequestStatement::default()
    }))
}

pub(crate) fn map_procedure_request(ctx: &mut Ctx<'_>, p: &ProcedureRequest) -> Statement {
    let pid = p.id.as_deref().unwrap_or("");
    let label = format!("ProcedureRequest/{pid}");
    let code = concept(
        ctx,
        p.code.as_ref(),
        Snomed::Description,
        Item {
            source: &label,
            kind: "ProcedureRequest",
            degrade: DegradeCode::Plan,
        },
    );
    let mut parts = Vec::new();
    for n in p.note.iter().filter_map(|n| n.text.as_deref()) {
        parts.push(n.to_string());
    }
    for r in p.reason_code.iter().filter_map(|r| r.text_or_display()) {
        parts.push(format!("Reason: {r}"));
    }
    if let Some(s) = p.status.as_deref().filter(|s| *s != "active") {
        parts.push(format!("Status: {s}"));
    }
    let (occ_start, occ_end) = choice_times(p.occurrence.as_ref());
    if let Some(end) = occ_end.as_deref() {
        parts.push(format!("Latest date: {end}"));
    }
    if p.requester
        .as_ref()
        .and_then(|r| r.agent.as_ref())
        .is_some()
        && let Some(a) = p.requester.as_ref().and_then(|r| r.agent.as_ref())
        && agent_for_opt(ctx, Some(a)).is_none()
        && let Some(d) = a.display.as_deref()
    {
        parts.push(format!("Requester: {d}"));
    }
    let authored = p.authored_on.as_ref().and_then(hl7_ts);
    let author = agent_for(ctx, p.requester.as_ref().and_then(|r| r.agent.as_ref()));
    Statement::PlanStatement(Box::new(PlanStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("INT".into()),
        id: ii(ctx.res_id("ProcedureRequest", pid)),
        code: bx(code),
        text: (!parts.is_empty()).then(|| Box::new(ST::new(parts.join(" ")))),
        status_code: cs(if p.status.as_deref() == Some("active") {
            "ACTIVE"
        } else {
            "COMPLETE"
        }),
        effective_time: effective(occ_start.as_deref().or(authored.as_deref()), None),
        availability_time: availability(authored.as_deref().or(occ_start.as_deref())),
        confidentiality_code: ctx.confidentiality(p.meta.as_ref()),
        participant: vec![participant("AUT", &author)],
        ..PlanStatement::default()
    }))
}

/// File extensions for the content types GP systems attach.
fn extension_for(content_type: &str) -> &'static str {
    match content_type.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "image/bmp" => "bmp",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/tiff" => "tif",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/rtf" | "application/rtf" => "rtf",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "text/xml" | "application/xml" => "xml",
        _ => "bin",
    }
}

pub(crate) fn map_document(ctx: &mut Ctx<'_>, d: &DocumentReference) -> Statement {
    let did = d.id.as_deref().unwrap_or("");
    let label = format!("DocumentReference/{did}");
    let mut parts = Vec::new();
    if let Some(t) = d.r#type.as_ref().and_then(|t| t.text_or_display()) {
        parts.push(format!("Type: {t}"));
    }
    let org_name = |r: Option<&fhir::Reference>| {
        r.and_then(|r| ctx.store.resolve_as::<fhir::Organization>(r))
            .and_then(|o| o.name.clone())
    };
    if let Some(a) = org_name(
        d.author
            .iter()
            .find(|a| a.type_and_id().is_some_and(|(t, _)| t == "Organization")),
    ) {
        parts.push(format!("Author Org: {a}"));
    }
    if let Some(c) = org_name(d.custodian.as_ref()) {
        parts.push(format!("Custodian Org: {c}"));
    }
    if let Some(desc) = d.description.as_deref().filter(|s| !s.trim().is_empty()) {
        parts.push(format!("Description: {desc}"));
    }
    if parts.is_empty() {
        parts.push("Document".into());
    }
    let created = d.created.as_ref().and_then(hl7_ts);
    let indexed = d.indexed.as_ref().and_then(hl7_ts);
    let performer = agent_for_opt(ctx, d.author.first());
    let doc_id = ctx.id(&format!("{label}#document"));
    let code = match d
        .r#type
        .as_ref()
        .and_then(|t| t.snomed())
        .filter(|k| super::codes::snomed_id(k).is_some())
    {
        Some(k) => super::codes::snomed_cd(k, Snomed::Description),
        None => fixed("37251000000104", "Other digital signal"),
    };
    let mut references = Vec::new();
    for (i, c) in d.content.iter().enumerate() {
        let Some(a) = c.attachment.as_ref() else {
            continue;
        };
        let content_type = a
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let name = format!(
            "{doc_id}{}_{doc_id}.{}",
            if i == 0 {
                String::new()
            } else {
                format!("-{i}")
            },
            extension_for(content_type)
        );
        let t = ST {
            media_type: Some(content_type.to_string()),
            reference: bx(TEL {
                value: Some(format!("file://localhost/{name}")),
                ..TEL::default()
            }),
            ..ST::default()
        };
        ctx.report.documents.push(crate::DocumentFile {
            source: label.clone(),
            content_index: i,
            filename: name.clone(),
            content_type: content_type.to_string(),
            url: a.url.clone(),
            title: a.title.clone(),
            size: a.size,
        });
        if let Some(title) = a.title.as_deref() {
            // The title travels in the narrative text; the reference names the file.
            parts.push(format!("Title: {title}"));
        }
        references.push(Reference {
            type_code: Some("REFR".into()),
            referred_to_external_document: bx(ExternalDocument {
                class_code: Some("DOC".into()),
                mood_code: Some("EVN".into()),
                id: ii(if i == 0 {
                    doc_id.clone()
                } else {
                    ctx.id(&format!("{label}#document{i}"))
                }),
                code: bx(code.clone()),
                text: Some(Box::new(t)),
                ..ExternalDocument::default()
            }),
            ..Reference::default()
        });
    }
    if references.is_empty() {
        ctx.unmapped(
            label.clone(),
            "DocumentReference.content",
            "the document has no content attachment: only its description is sent",
        );
    }
    Statement::NarrativeStatement(Box::new(NarrativeStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.res_id("DocumentReference", did)),
        text: text(&parts.join(" ")),
        status_code: cs("COMPLETE"),
        availability_time: availability(created.as_deref().or(indexed.as_deref())),
        confidentiality_code: ctx.confidentiality(d.meta.as_ref()),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        reference: references,
        ..NarrativeStatement::default()
    }))
}
