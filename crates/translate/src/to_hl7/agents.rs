//! The agent directory: every practitioner and organisation once, referenced by id.

use fhir::{
    Address, ContactPoint, HumanName, Organization, Practitioner, PractitionerRole, Reference,
};
use hl7v3::datatypes::II;
use hl7v3::ehr::{Agent, Organization as HlOrganization, Part, Person};
use hl7v3::xml::Element;

use super::build::bx;
use super::codes::unknown_with_text;
use super::{Ctx, ODS_ROOT};

/// Fills `ctx.directory` and `ctx.agent_ids` from the Bundle's Practitioners (with their
/// roles and organisations) and Organizations, and picks the default agent.
pub(crate) fn build_directory(ctx: &mut Ctx<'_>) {
    let store = &ctx.store;
    let roles: Vec<_> = store
        .positions_of::<PractitionerRole>()
        .into_iter()
        .filter_map(|p| store.get_as::<PractitionerRole>(p))
        .collect();
    let practitioners: Vec<_> = store
        .positions_of::<Practitioner>()
        .into_iter()
        .filter_map(|p| store.get_as::<Practitioner>(p))
        .collect();
    let organizations: Vec<_> = store
        .positions_of::<Organization>()
        .into_iter()
        .filter_map(|p| store.get_as::<Organization>(p))
        .collect();
    let managing_org = ctx
        .patient
        .managing_organization
        .as_ref()
        .and_then(|r| store.resolve_as::<Organization>(r));
    let managing_org = managing_org.as_deref();

    for p in &practitioners {
        let Some(pid) = p.id.as_deref() else { continue };
        let label = format!("Practitioner/{pid}");
        let role = roles.iter().find(|r| {
            r.practitioner
                .as_ref()
                .and_then(|x| x.type_and_id())
                .is_some_and(|(t, i)| t == "Practitioner" && i == pid)
        });
        let role_text = role
            .and_then(|r| r.code.first())
            .and_then(|c| c.text_or_display())
            .unwrap_or("Unknown");
        let role_org = role
            .and_then(|r| r.organization.as_ref())
            .and_then(|o| ctx.store.resolve_as::<Organization>(o));
        let org = role_org.as_deref().or(managing_org);
        let id = ctx.id(&label);
        let agent = Agent {
            class_code: Some("AGNT".into()),
            id: vec![II::root(&id)],
            code: bx(unknown_with_text(role_text)),
            agent_person: bx(Person {
                class_code: Some("PSN".into()),
                determiner_code: Some("INSTANCE".into()),
                name: p.name.first().map(person_name).into_iter().collect(),
                ..Person::default()
            }),
            represented_organization: org.map(|o| Box::new(organization(o))),
            ..Agent::default()
        };
        push(ctx, agent);
        if let Some(r) = role.and_then(|r| r.id.as_deref()) {
            ctx.agent_ids
                .insert(format!("PractitionerRole/{r}"), id.clone());
        }
        ctx.agent_ids.insert(label, id);
    }
    for o in &organizations {
        let Some(oid) = o.id.as_deref() else { continue };
        let label = format!("Organization/{oid}");
        let id = ctx.id(&label);
        let agent = Agent {
            class_code: Some("AGNT".into()),
            id: vec![II::root(&id)],
            code: bx(unknown_with_text(
                o.r#type
                    .first()
                    .and_then(|t| t.text_or_display())
                    .unwrap_or("Organisation"),
            )),
            agent_organization: bx(organization(o)),
            ..Agent::default()
        };
        push(ctx, agent);
        ctx.agent_ids.insert(label, id);
    }
    // Roles whose practitioner is not in the Bundle still name someone.
    for r in &roles {
        let Some(rid) = r.id.as_deref() else { continue };
        let label = format!("PractitionerRole/{rid}");
        if ctx.agent_ids.contains_key(&label) {
            continue;
        }
        if let Some(id) = r
            .organization
            .as_ref()
            .and_then(|o| o.reference.as_deref())
            .and_then(|o| ctx.agent_ids.get(o))
            .cloned()
        {
            ctx.agent_ids.insert(label, id);
        }
    }

    let default = managing_org
        .and_then(|o| o.id.as_deref())
        .and_then(|i| ctx.agent_ids.get(&format!("Organization/{i}")))
        .or_else(|| {
            organizations.iter().find_map(|o| {
                ctx.agent_ids
                    .get(&format!("Organization/{}", o.id.as_deref()?))
            })
        })
        .cloned();
    ctx.default_agent = match default {
        Some(d) => d,
        None => {
            // No organisation at all: an agent that says so, so that every author and
            // participant still points at something.
            let id = ctx.id("agent/unknown");
            let agent = Agent {
                class_code: Some("AGNT".into()),
                id: vec![II::root(&id)],
                code: bx(unknown_with_text("Unknown")),
                agent_organization: bx(HlOrganization {
                    class_code: Some("ORG".into()),
                    determiner_code: Some("INSTANCE".into()),
                    name: Some(Box::new(
                        Element::new("name").with_text("Unknown organisation"),
                    )),
                    ..HlOrganization::default()
                }),
                ..Agent::default()
            };
            push(ctx, agent);
            id
        }
    };
}

fn push(ctx: &mut Ctx<'_>, agent: Agent) {
    ctx.directory.class_code = Some("AGNT".into());
    ctx.directory.part.push(Part {
        type_code: Some("PART".into()),
        agent: bx(agent),
        ..Part::default()
    });
}

/// The agent id for a reference to a Practitioner, PractitionerRole or Organization; the
/// default agent (the practice) when it names none of them.
pub(crate) fn agent_for(ctx: &Ctx<'_>, r: Option<&Reference>) -> String {
    agent_for_opt(ctx, r).unwrap_or_else(|| ctx.default_agent.clone())
}

/// The agent id for a reference, if it names an agent of the directory.
pub(crate) fn agent_for_opt(ctx: &Ctx<'_>, r: Option<&Reference>) -> Option<String> {
    let label = ctx.store.resolve_label(r?)?;
    ctx.agent_ids.get(&label).cloned()
}

fn organization(o: &Organization) -> HlOrganization {
    HlOrganization {
        class_code: Some("ORG".into()),
        determiner_code: Some("INSTANCE".into()),
        id: o
            .ods_code()
            .map(|c| Box::new(II::with_extension(ODS_ROOT, c.trim()))),
        name: o
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| Box::new(Element::new("name").with_text(n.trim()))),
        telecom: o.telecom.iter().filter_map(telecom).take(5).collect(),
        addr: o.address.iter().map(address).take(2).collect(),
        ..HlOrganization::default()
    }
}

/// A person's name: `prefix`, `given`, `family` parts.
fn person_name(n: &HumanName) -> Element {
    let mut e = Element::new("name");
    let mut any = false;
    for p in &n.prefix {
        e = e.with_child(Element::new("prefix").with_text(p));
        any = true;
    }
    for g in &n.given {
        e = e.with_child(Element::new("given").with_text(g));
        any = true;
    }
    if let Some(f) = n.family.as_deref() {
        e = e.with_child(Element::new("family").with_text(f));
        any = true;
    }
    if !any && let Some(t) = n.text.as_deref() {
        e = e.with_text(t);
    }
    e
}

fn telecom(c: &ContactPoint) -> Option<hl7v3::datatypes::TEL> {
    let value = c.value.as_deref()?.trim();
    if value.is_empty() {
        return None;
    }
    let scheme = match c.system.as_deref() {
        Some("email") => "mailto:",
        Some("fax") => "fax:",
        _ => "tel:",
    };
    Some(hl7v3::datatypes::TEL {
        value: Some(format!("{scheme}{}", value.replace(' ', ""))),
        use_: Some("WP".into()),
        ..hl7v3::datatypes::TEL::default()
    })
}

fn address(a: &Address) -> Element {
    let mut e = Element::new("addr").with_attr("use", "WP");
    for l in a
        .line
        .iter()
        .chain(a.city.iter())
        .chain(a.district.iter())
        .filter(|l| !l.trim().is_empty())
    {
        e = e.with_child(Element::new("streetAddressLine").with_text(l.trim()));
    }
    if let Some(pc) = a.postal_code.as_deref().filter(|p| !p.trim().is_empty()) {
        e = e.with_child(Element::new("postalCode").with_text(pc.trim()));
    }
    e
}
