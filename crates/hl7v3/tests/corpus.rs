//! Every HL7 message in the conformance corpus reads into the model, and writing it back
//! loses nothing: read → write → read gives the same model and the same tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hl7v3::xml::{self, Layout};
use hl7v3::{Interaction, Message};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

/// Every HL7 document in the corpus, as (name, bytes): the bare files, and the `payload`
/// fields of the MHS-adaptor JSON files.
fn hl7_documents() -> Vec<(String, Vec<u8>)> {
    let root = corpus();
    let mut docs = Vec::new();
    let mut add_dir = |dir: &str, keep: &dyn Fn(&str) -> bool| {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("the conformance corpus must be at {}: {e}", root.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !keep(&name) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if name.ends_with(".json") {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                if let Some(p) = v.get("payload").and_then(|p| p.as_str())
                    && p.trim_start().starts_with('<')
                {
                    docs.push((format!("{dir}/{name}#payload"), p.as_bytes().to_vec()));
                }
            } else {
                docs.push((format!("{dir}/{name}"), bytes));
            }
        }
    };
    add_dir("translation/ehr-extract", &|n| n.ends_with(".xml"));
    add_dir("gp2gp/messages", &|n| {
        n.contains("payload") || n.contains("_body_") || n.ends_with(".json")
    });
    add_dir("gp2gp/large-message", &|n| n.ends_with(".json"));
    docs
}

#[test]
fn the_corpus_is_where_the_tests_expect_it() {
    let docs = hl7_documents();
    assert!(docs.len() >= 60, "found only {} HL7 documents", docs.len());
    let extracts = docs
        .iter()
        .filter(|(n, _)| n.starts_with("translation/"))
        .count();
    assert_eq!(extracts, 13);
}

#[test]
fn every_message_reads_and_round_trips_without_loss() {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for (name, bytes) in hl7_documents() {
        let tree = xml::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The direct reader and the tree reader must agree exactly.
        let via_tree = Message::from_root(tree.clone()).unwrap();
        assert_eq!(
            msg, via_tree,
            "{name}: the fast reader and the tree reader disagree"
        );
        *seen.entry(msg.interaction().unwrap().id()).or_default() += 1;
        for layout in [Layout::Compact, Layout::Indented] {
            let written = msg.to_xml(layout);
            let again =
                Message::parse(written.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                msg, again,
                "{name}: model changed after a {layout:?} round trip"
            );
            let tree_again = xml::parse(written.as_bytes()).unwrap();
            if let Some(diff) = first_difference(&tree, &tree_again, String::new()) {
                panic!("{name}: the written tree differs from the input's at {diff}");
            }
        }
    }
    // All five interactions are exercised.
    for i in Interaction::ALL {
        assert!(
            seen.contains_key(i.id()) || i == Interaction::EhrExtractConfidential,
            "no {} in the corpus: {seen:?}",
            i.id()
        );
    }
}

#[test]
fn the_typed_model_covers_the_clinical_content_of_real_extracts() {
    // Whatever the corpus extracts hold, the statement kinds and the agent directory are
    // typed, not left in the catch-all: count what ended up untyped under statements.
    for (name, bytes) in hl7_documents()
        .into_iter()
        .filter(|(n, _)| n.starts_with("translation/"))
    {
        let msg = Message::parse(&bytes).unwrap();
        let extract = msg
            .ehr_extract()
            .unwrap_or_else(|| panic!("{name}: no EhrExtract"));
        assert!(extract.nhs_number().is_some(), "{name}");
        let statements = extract.statements();
        assert!(!statements.is_empty(), "{name}");
        let untyped = statements
            .iter()
            .filter(|s| matches!(s, hl7v3::ehr::Statement::Other(_)))
            .count();
        assert_eq!(untyped, 0, "{name}: statements the model did not recognise");
        // Count statements in the raw text and compare: the model must see every one.
        let text = String::from_utf8_lossy(&bytes);
        let raw: usize = [
            "<ObservationStatement",
            "<NarrativeStatement",
            "<PlanStatement",
            "<RequestStatement",
            "<MedicationStatement",
            "<LinkSet",
            "<RegistrationStatement",
            "<CompoundStatement",
            "<EhrEmpty",
        ]
        .iter()
        .map(|tag| text.matches(tag).count())
        .sum();
        assert_eq!(statements.len(), raw, "{name}");
        assert!(
            extract.agents().count() > 0,
            "{name}: empty agent directory"
        );
    }
}

/// Where two trees differ, as a path, ignoring the order of attributes (which carries no
/// meaning in XML: the typed model writes its typed attributes first) and an `hl7:` prefix
/// on element names (typed elements are written with the root's prefix; both name the HL7
/// namespace in these documents).
fn first_difference(a: &xml::Element, b: &xml::Element, path: String) -> Option<String> {
    let path = format!("{path}/{}", a.name);
    let unprefixed = |n: &str| n.strip_prefix("hl7:").unwrap_or(n).to_string();
    if unprefixed(&a.name) != unprefixed(&b.name) {
        return Some(format!("{path}: name {} vs {}", a.name, b.name));
    }
    let mut aa: Vec<_> = a.attrs.iter().map(|x| (&x.name, &x.value)).collect();
    let mut ba: Vec<_> = b.attrs.iter().map(|x| (&x.name, &x.value)).collect();
    aa.sort();
    ba.sort();
    if aa != ba {
        return Some(format!("{path}: attributes {aa:?} vs {ba:?}"));
    }
    if a.children.len() != b.children.len() {
        return Some(format!(
            "{path}: {} children vs {}",
            a.children.len(),
            b.children.len()
        ));
    }
    for (i, (x, y)) in a.children.iter().zip(&b.children).enumerate() {
        match (x, y) {
            (xml::Node::Element(x), xml::Node::Element(y)) => {
                if let Some(d) = first_difference(x, y, format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x, y) if x == y => {}
            (x, y) => return Some(format!("{path}[{i}]: {x:?} vs {y:?}")),
        }
    }
    None
}

#[test]
fn the_fast_reader_agrees_with_the_tree_reader_on_awkward_content() {
    // Whitespace, comments, references and CDATA in typed and untyped places: both readers
    // must put every text node, comment and unknown element at the same index.
    let cases = [
        "<MCCI_IN010000UK13 xmlns=\"urn:hl7-org:v3\"> <!--a--> <id root=\"X\"/> </MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"X\"> </id><x>  </x> t&amp;u <![CDATA[<c>]]><acknowledgement typeCode=\"AA\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13>  &amp; <!--c-->  <id root=\"X\"/>tail</MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13> <!--c--> </MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"X\"/><id root=\"Y\"/><creationTime value=\"2020\"> x </creationTime></MCCI_IN010000UK13>",
        // Found by the fuzzer: indentation before escaped text belongs to that text.
        "<MCCI_IN010000UK13><id root=\"X\"/>\n    &gt;acceptAckCode\n  <id root=\"Y\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"X\"/>\n    >acceptAckCode\n  <id root=\"Y\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"X\"/>  <![CDATA[ ]]>  <!--c-->  &#32;</MCCI_IN010000UK13>",
        "<hl7:COPC_IN000001UK01 xmlns:hl7=\"urn:hl7-org:v3\"><hl7:id root=\"X\"/><other:id xmlns:other=\"o\"/></hl7:COPC_IN000001UK01>",
        // Found by the fuzzer: children out of schema order (creationTime comes before
        // versionCode) stay where they were.
        "<MCCI_IN010000UK13><id root=\"X\"/><versionCode code=\"V\"/>t<creationTime value=\"2020\"/><versionCode code=\"W\"/><id root=\"Y\"/></MCCI_IN010000UK13>",
    ];
    for case in cases {
        let fast = Message::parse(case.as_bytes()).unwrap();
        let slow = Message::from_root(xml::parse(case.as_bytes()).unwrap()).unwrap();
        assert_eq!(fast, slow, "{case}");
        let again = Message::parse(fast.to_xml(Layout::Compact).as_bytes()).unwrap();
        assert_eq!(fast, again, "{case}");
    }
}

#[test]
fn compositions_stream_one_by_one_and_match_the_whole_model() {
    let limits = xml::Limits::default();
    for (name, bytes) in hl7_documents()
        .into_iter()
        .filter(|(n, _)| n.starts_with("translation/"))
    {
        let whole = Message::parse(&bytes).unwrap();
        let extract = whole.ehr_extract().unwrap();
        let folder = extract.folder().unwrap();
        let expected: Vec<_> = folder
            .component
            .iter()
            .filter_map(|c| c.ehr_composition.as_deref())
            .collect();
        let mut stream = hl7v3::Compositions::new(&bytes, &limits).unwrap();
        let streamed: Vec<_> = stream.by_ref().map(|c| c.unwrap()).collect();
        assert_eq!(streamed.len(), expected.len(), "{name}");
        for (a, b) in streamed.iter().zip(expected) {
            assert_eq!(a, b, "{name}");
        }
        assert_eq!(
            stream.header().nhs_number.as_deref(),
            extract.nhs_number(),
            "{name}"
        );
        let directory = folder
            .responsible_party
            .as_ref()
            .and_then(|r| r.agent_directory.as_deref());
        assert_eq!(
            stream.header().agent_directory.as_ref(),
            directory,
            "{name}"
        );
    }
}

#[test]
fn a_truncated_extract_stops_the_stream_with_an_error() {
    let (_, bytes) = hl7_documents()
        .into_iter()
        .find(|(n, _)| n.starts_with("translation/"))
        .unwrap();
    let cut = &bytes[..bytes.len() / 2];
    let results: Vec<_> = hl7v3::Compositions::new(cut, &xml::Limits::default())
        .unwrap()
        .collect();
    assert!(results.iter().take(results.len() - 1).all(|r| r.is_ok()));
    assert!(results.last().unwrap().is_err(), "the cut must be reported");
}

#[test]
fn read_all_returns_every_result_in_order() {
    let docs: Vec<Vec<u8>> = hl7_documents().into_iter().map(|(_, b)| b).collect();
    let mut with_bad = docs.clone();
    with_bad.insert(3, b"<not-xml".to_vec());
    let results = hl7v3::read_all(&with_bad, &xml::Limits::default());
    assert_eq!(results.len(), with_bad.len());
    assert!(results[3].is_err());
    for (i, doc) in with_bad.iter().enumerate().filter(|(i, _)| *i != 3) {
        assert_eq!(results[i].as_ref().unwrap(), &Message::parse(doc).unwrap());
    }
}
