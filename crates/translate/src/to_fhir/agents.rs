//! The agent directory → `Practitioner`, `PractitionerRole`, `Organization`.
//!
//! A person becomes a Practitioner with the agent's id; the organisation they represent an
//! Organization (one per distinct name and address), and the two are joined by a
//! PractitionerRole carrying the agent's role (`code`). An agent that is an organisation
//! becomes an Organization with the agent's id. Statements' `agentRef`s then resolve to
//! `Practitioner/…` (or `Organization/…`).

use fhir::{
    Address, CodeableConcept, ContactPoint, HumanName, Meta, Organization, Practitioner,
    PractitionerRole,
};
use hl7v3::datatypes::{AD, EN, TEL, parts};
use hl7v3::ehr::Agent;

use super::codes::plain_concept;
use super::{Ctx, hash_hex, ii_key, reference};
use crate::Unmapped;

fn profile(name: &str) -> Option<Meta> {
    Some(Meta {
        profile: vec![format!(
            "https://fhir.nhs.uk/STU3/StructureDefinition/{name}"
        )],
        ..Meta::default()
    })
}

/// A person's name from an HL7 `PN`.
pub fn human_name(en: &EN) -> Option<HumanName> {
    let mut name = HumanName::default();
    for (part, text) in parts(en) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match part {
            "given" => name.given.push(text.to_owned()),
            "family" => name.family = Some(text.to_owned()),
            "prefix" => name.prefix.push(text.to_owned()),
            "suffix" => name.suffix.push(text.to_owned()),
            _ => {}
        }
    }
    let whole = en.text();
    let whole = whole.trim();
    if name.family.is_none() && name.given.is_empty() && !whole.is_empty() {
        name.text = Some(whole.to_owned());
    }
    let empty = name.family.is_none()
        && name.given.is_empty()
        && name.prefix.is_empty()
        && name.suffix.is_empty()
        && name.text.is_none();
    if empty {
        return None;
    }
    name.r#use = Some("official".to_owned());
    Some(name)
}

/// A postal address from an HL7 `AD`.
pub fn address(ad: &AD) -> Option<Address> {
    let mut a = Address::default();
    for (part, text) in parts(ad) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match part {
            "streetAddressLine" | "houseNumber" | "streetName" | "additionalLocator" => {
                a.line.push(text.to_owned())
            }
            "city" => a.city = Some(text.to_owned()),
            "county" | "state" => a.district = Some(text.to_owned()),
            "postalCode" => a.postal_code = Some(text.to_owned()),
            "country" => a.country = Some(text.to_owned()),
            _ => a.line.push(text.to_owned()),
        }
    }
    let whole = ad.text();
    if a.line.is_empty() && a.postal_code.is_none() && !whole.trim().is_empty() {
        a.text = Some(whole.trim().to_owned());
    }
    if a.line.is_empty() && a.city.is_none() && a.postal_code.is_none() && a.text.is_none() {
        return None;
    }
    a.r#use = match ad.attr("use") {
        Some("H" | "HP" | "HV") => Some("home".to_owned()),
        Some("WP") => Some("work".to_owned()),
        Some("TMP") => Some("temp".to_owned()),
        _ => None,
    };
    Some(a)
}

/// A telecom from an HL7 `TEL` (`tel:`, `mailto:`, `fax:`).
pub fn contact_point(tel: &TEL) -> Option<ContactPoint> {
    let v = tel.value.as_deref()?.trim();
    let (system, value) = if let Some(x) = v.strip_prefix("tel:") {
        ("phone", x)
    } else if let Some(x) = v.strip_prefix("mailto:") {
        ("email", x)
    } else if let Some(x) = v.strip_prefix("fax:") {
        ("fax", x)
    } else {
        ("other", v)
    };
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some(ContactPoint {
        system: Some(system.to_owned()),
        value: Some(value.to_owned()),
        r#use: match tel.use_.as_deref() {
            Some("H" | "HP") => Some("home".to_owned()),
            Some("WP") => Some("work".to_owned()),
            Some("MC") => Some("mobile".to_owned()),
            _ => None,
        },
        ..ContactPoint::default()
    })
}

fn organization(o: &hl7v3::ehr::Organization, id: String) -> Organization {
    let mut org = Organization {
        id: Some(id),
        meta: profile("CareConnect-GPC-Organization-1"),
        name: o
            .name
            .as_deref()
            .map(|n| n.text().trim().to_owned())
            .filter(|n| !n.is_empty()),
        telecom: o.telecom.iter().filter_map(contact_point).collect(),
        address: o.addr.iter().filter_map(address).collect(),
        ..Organization::default()
    };
    if let Some(ods) =
        o.id.as_ref()
            .and_then(|i| i.extension.as_deref())
            .map(str::trim)
            .filter(|e| !e.is_empty())
    {
        org.identifier.push(fhir::Identifier::new(
            fhir::systems::ODS_ORGANIZATION_CODE,
            ods,
        ));
    }
    org
}

fn org_key(o: &hl7v3::ehr::Organization) -> String {
    let mut key = String::new();
    if let Some(n) = &o.name {
        key.push_str(&n.text());
    }
    for a in &o.addr {
        for (_, t) in parts(a) {
            key.push('|');
            key.push_str(&t);
        }
    }
    if let Some(id) = &o.id {
        key.push('#');
        key.push_str(id.value().unwrap_or(""));
    }
    key
}

impl Ctx<'_> {
    pub(super) fn agents<'x>(&mut self, agents: impl Iterator<Item = &'x Agent>) {
        let mut orgs: crate::hash::HashMap<String, String> = Default::default();
        for agent in agents {
            self.report.read("Agent");
            self.agent_entry(agent, &mut orgs);
        }
    }

    fn agent_entry(&mut self, agent: &Agent, orgs: &mut crate::hash::HashMap<String, String>) {
        let hl7_id = agent.id.first();
        let Some(key) = hl7_id.and_then(ii_key) else {
            self.report.unmapped.push(Unmapped {
                source: "agentDirectory".to_owned(),
                kind: "Agent".to_owned(),
                reason: "an agent without an id cannot be referenced; left out".to_owned(),
            });
            return;
        };
        let role_code = agent.code.as_deref().and_then(plain_concept);
        if let Some(person) = agent.agent_person.as_deref() {
            let id = self.id_for("Practitioner", hl7_id, &key);
            let practitioner = Practitioner {
                id: Some(id.clone()),
                meta: profile("CareConnect-GPC-Practitioner-1"),
                identifier: self.identifiers(hl7_id),
                name: person.name.iter().filter_map(human_name).collect(),
                gender: person
                    .administrative_gender_code
                    .as_ref()
                    .and_then(|g| g.code.as_deref())
                    .and_then(|g| match g {
                        "M" => Some("male".to_owned()),
                        "F" => Some("female".to_owned()),
                        "UN" => Some("other".to_owned()),
                        "U" | "UNK" => Some("unknown".to_owned()),
                        _ => None,
                    }),
                ..Practitioner::default()
            };
            let practitioner_ref = format!("Practitioner/{id}");
            self.agents.insert(key.clone(), practitioner_ref.clone());
            self.push(practitioner.into());

            let org_ref = agent.represented_organization.as_deref().map(|o| {
                let k = org_key(o);
                if let Some(r) = orgs.get(&k) {
                    return r.clone();
                }
                let oid = self.claim("Organization", format!("org-{}", hash_hex(&k)));
                self.push(organization(o, oid.clone()).into());
                let r = format!("Organization/{oid}");
                orgs.insert(k, r.clone());
                r
            });
            if org_ref.is_some() || role_code.is_some() {
                let rid = self.claim("PractitionerRole", format!("{id}-PR"));
                let role = PractitionerRole {
                    id: Some(rid),
                    meta: profile("CareConnect-GPC-PractitionerRole-1"),
                    practitioner: Some(reference(&practitioner_ref)),
                    organization: org_ref.as_deref().map(reference),
                    code: role_code.into_iter().collect::<Vec<CodeableConcept>>(),
                    ..PractitionerRole::default()
                };
                self.push(role.into());
            }
        } else if let Some(o) = agent
            .agent_organization
            .as_deref()
            .or(agent.represented_organization.as_deref())
        {
            let id = self.id_for("Organization", hl7_id, &key);
            let mut org = organization(o, id.clone());
            org.r#type = role_code.into_iter().collect();
            self.agents.insert(key, format!("Organization/{id}"));
            self.push(org.into());
        } else {
            self.report.unmapped.push(Unmapped {
                source: key.clone(),
                kind: "Agent".to_owned(),
                reason: "the agent is neither a person nor an organisation (a device or an SDS-only agent); references to it are left out".to_owned(),
            });
            self.agents.insert(key, String::new());
        }
    }
}
