//! Large messaging end to end: `large::plan` → real ebXML bytes → `wire::read` → the
//! requester's state machine → `large::assemble` gives back the extract and every
//! document byte for byte; hostile deliveries fail with the right codes; the corpus's
//! real large-message conversations reassemble.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod wire_common;

use std::collections::HashMap;

use bytes::Bytes;
use gp2gp::MessageId;
use gp2gp::large::{self, Assembled, Document, LargeError, SendPlan, Sizes};
use gp2gp::requester::{self, Action, ExpectedDocument};
use gp2gp::wire::{self, Incoming, ReceivedPart};
use hl7v3::ReasonCode;
use proptest::prelude::*;
use wire_common::*;

const NOW: i64 = 1_714_557_600_000;

/// Bytes that do not compress, from a seed.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The files a synthetic extract refers to (`file://localhost/<id>_letter.pdf`).
fn referenced_files(xml: &str) -> Vec<String> {
    xml.split("file://localhost/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

fn document(filename: &str, content: Option<Bytes>) -> Document {
    Document {
        document_id: filename.split('_').next().unwrap().to_string(),
        filename: filename.to_string(),
        content_type: "application/pdf".into(),
        content,
    }
}

fn plan_with(extract: &str, documents: Vec<Document>, sizes: &Sizes) -> SendPlan {
    let mut ids = counter_ids();
    large::plan_with(
        &parties(),
        route(),
        "CONV-LARGE",
        "RCMR_IN030000UK06",
        extract.to_string(),
        documents,
        NOW,
        &mut ids,
        sizes,
    )
    .unwrap()
}

/// What the requester kept, as a driver would.
#[derive(Default)]
struct Kept {
    hl7: Bytes,
    inline: Vec<ReceivedPart>,
    documents: Vec<ExpectedDocument>,
    parts: HashMap<MessageId, Vec<ReceivedPart>>,
    indexes: HashMap<MessageId, Vec<MessageId>>,
    /// The largest message on the wire.
    largest: usize,
    assemble_actions: usize,
}

impl Kept {
    fn assemble(&self) -> Result<Assembled, LargeError> {
        large::assemble(
            &self.hl7,
            &self.inline,
            &self.documents,
            &|id| self.parts.get(id).cloned(),
            &|id| self.indexes.get(id).cloned(),
        )
    }
}

/// Sends the plan through the wire to a requester: the extract, then the COPC messages in
/// the order `order` gives (indexes into `plan.copcs`, repeats allowed).
fn deliver(plan: &SendPlan, order: &[usize]) -> Kept {
    let mut kept = Kept::default();
    let (message, size) = through_the_wire(&plan.extract);
    kept.largest = size;
    let Incoming::Extract {
        message_id,
        hl7,
        documents,
        inline,
        ..
    } = wire::read(&message).unwrap()
    else {
        panic!("the extract did not read as one")
    };
    assert_eq!(message_id, plan.extract_id);
    kept.hl7 = hl7;
    kept.inline = inline;
    kept.documents = documents.clone();
    let mut state = requester::State::new(MessageId::new("REQ"), NOW + 1_000_000);
    let step = |state: requester::State, event| {
        let (next, actions) = state.step(event).unwrap_or_else(|(_, r)| panic!("{r}"));
        (next, actions)
    };
    let (next, actions) = step(
        state,
        requester::Event::Extract {
            message_id,
            documents,
            deadline_ms: NOW + 1_000_000,
        },
    );
    state = next;
    let count = |actions: &[Action]| {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Assemble { .. }))
            .count()
    };
    kept.assemble_actions += count(&actions);
    if plan.copcs.is_empty() {
        assert_eq!(
            kept.assemble_actions, 1,
            "a record in one message is assembled at once"
        );
    } else {
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::SendContinue { .. }))
        );
    }
    for &i in order {
        let (message, size) = through_the_wire(&plan.copcs[i]);
        kept.largest = kept.largest.max(size);
        let event = match wire::read(&message).unwrap() {
            Incoming::Copc { message_id, parts } => {
                kept.parts.insert(message_id.clone(), parts);
                requester::Event::Copc { message_id }
            }
            Incoming::FragmentIndex {
                message_id,
                fragments,
                parts,
            } => {
                kept.parts.insert(message_id.clone(), parts);
                kept.indexes.insert(message_id.clone(), fragments.clone());
                requester::Event::FragmentIndex {
                    message_id,
                    fragments,
                }
            }
            other => panic!("a COPC read as {other:?}"),
        };
        let (next, actions) = step(state, event);
        state = next;
        kept.assemble_actions += count(&actions);
    }
    kept
}

fn in_order(plan: &SendPlan) -> Vec<usize> {
    (0..plan.copcs.len()).collect()
}

/// Every COPC, shuffled by `seed`, and some of them twice.
fn shuffled_twice(plan: &SendPlan, seed: u64) -> Vec<usize> {
    let n = plan.copcs.len();
    let mut order: Vec<usize> = (0..n).chain((0..n).step_by(2)).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

fn assert_same_documents(assembled: &Assembled, sent: &[Document]) {
    assert_eq!(assembled.documents.len(), sent.len());
    for d in sent {
        let got = assembled
            .documents
            .iter()
            .find(|a| a.filename == d.filename)
            .unwrap_or_else(|| panic!("{} did not arrive", d.filename));
        match &d.content {
            Some(bytes) => {
                assert_eq!(got.bytes.len(), bytes.len(), "{}", d.filename);
                assert!(got.bytes == *bytes, "{} differs", d.filename);
                assert_eq!(got.content_type, d.content_type);
            }
            None => {
                assert_eq!(got.content_type, "text/plain");
                let text = String::from_utf8(got.bytes.to_vec()).unwrap();
                assert!(text.starts_with("Absent attachment"), "{text}");
                assert!(text.contains(&d.filename), "{text}");
            }
        }
        assert_eq!(got.document_id.as_deref(), Some(d.document_id.as_str()));
    }
}

/// The extract's `referredToExternalDocument`s all resolve against what arrived.
fn assert_references_resolve(extract: &str, assembled: &Assembled) {
    let attachments: Vec<hl7v3::validate::Attachment> = assembled
        .documents
        .iter()
        .map(|d| hl7v3::validate::Attachment {
            id: d.document_id.clone(),
            filename: Some(d.filename.clone()),
            content_type: Some(d.content_type.clone()),
            length: Some(d.bytes.len() as u64),
        })
        .collect();
    let options = hl7v3::validate::Options {
        attachments: Some(attachments),
        ..Default::default()
    };
    let report = hl7v3::validate::validate(extract.as_bytes(), Some(schemas()), &options);
    let errors: Vec<String> = report.errors().map(|f| f.to_string()).collect();
    assert!(report.valid, "{errors:#?}");
}

#[test]
fn a_small_record_goes_in_one_message_with_its_documents() {
    let extract = translate::synthetic::synthetic_extract_xml(300_000, 7);
    let files = referenced_files(&extract);
    assert!(
        files.len() >= 2,
        "the synthetic record should refer to documents"
    );
    let mut documents: Vec<Document> = files
        .iter()
        .enumerate()
        .map(|(i, f)| document(f, Some(noise(10_000 + i * 7_919, i as u64))))
        .collect();
    documents[0].content = None;
    let plan = plan_with(&extract, documents.clone(), &Sizes::default());
    assert!(plan.copcs.is_empty(), "everything fits in one message");
    assert_eq!(plan.extract.attachments.len(), documents.len());
    assert_eq!(plan.extract.payload, extract.as_bytes());
    let kept = deliver(&plan, &[]);
    let assembled = kept.assemble().unwrap();
    assert_eq!(assembled.extract_xml, extract);
    assert_same_documents(&assembled, &documents);
    assert_references_resolve(&extract, &assembled);
}

#[test]
fn a_six_megabyte_extract_goes_as_a_skeleton_and_comes_back_whole() {
    let extract = translate::synthetic::synthetic_extract_xml(6_000_000, 3);
    assert!(extract.len() > large::MAX_PART_BYTES);
    let plan = plan_with(&extract, vec![], &Sizes::default());
    // The skeleton travels; the real extract follows, gzipped, as a COPC document.
    assert_eq!(plan.copcs.len(), 1);
    let skeleton = std::str::from_utf8(&plan.extract.payload).unwrap();
    assert!(skeleton.len() < 100_000, "{} bytes", skeleton.len());
    let report = assert_valid("skeleton", skeleton.as_bytes());
    assert_eq!(report.interaction, Some(hl7v3::Interaction::EhrExtract));
    assert_eq!(plan.extract.external_attachments.len(), 1);
    let reference = &plan.extract.external_attachments[0];
    assert!(reference.description.contains(wire::SKELETON_DOMAIN_DATA));
    assert!(reference.description.contains("Compressed=Yes"));
    let kept = deliver(&plan, &in_order(&plan));
    assert_eq!(kept.documents.len(), 1);
    assert!(kept.documents[0].skeleton && kept.documents[0].compressed);
    assert!(kept.largest <= large::MAX_MESSAGE_BYTES);
    assert_eq!(kept.assemble_actions, 1);
    let assembled = kept.assemble().unwrap();
    assert!(assembled.extract_xml == extract, "the extract differs");
    assert!(assembled.documents.is_empty());
}

#[test]
fn a_twelve_megabyte_document_is_split_and_comes_back_whatever_the_order() {
    let extract = translate::synthetic::synthetic_extract_xml(60_000, 11);
    let files = referenced_files(&extract);
    let mut documents: Vec<Document> = files
        .iter()
        .map(|f| document(f, Some(noise(2_000, 5))))
        .collect();
    documents[0].content = Some(noise(12_000_000, 42));
    let plan = plan_with(&extract, documents.clone(), &Sizes::default());
    // An index and four fragments of 3,288,444 bytes at most.
    assert_eq!(plan.copcs.len(), 5, "{:?}", plan.copc_ids());
    assert_eq!(plan.copcs[0].external_attachments.len(), 4);
    for (i, f) in plan.copcs[1..].iter().enumerate() {
        assert_eq!(f.attachments.len(), 1);
        let desc = &f.attachments[0].description;
        let index_id = plan.copcs[0].message_id.as_deref().unwrap();
        assert!(
            desc.contains(&format!("Filename=\"{index_id}_{i}.messageattachment\"")),
            "{desc}"
        );
    }
    // Each description's `Length` is the base64 text's, line breaks not counted (as NHS
    // senders write it: see `manifest_lengths_are_what_nhs_senders_write`), and the split
    // document's is its whole base64 text's.
    for a in plan
        .extract
        .attachments
        .iter()
        .chain(plan.copcs.iter().flat_map(|c| &c.attachments))
    {
        let characters = a
            .payload
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .count();
        assert_eq!(
            length_of(&a.description),
            Some(characters as u64),
            "{}",
            a.description
        );
    }
    let whole = plan
        .extract
        .external_attachments
        .iter()
        .find(|e| e.description.contains(&documents[0].filename))
        .unwrap();
    assert_eq!(
        length_of(&whole.description),
        Some(16_000_000),
        "{}",
        whole.description
    );
    // Every message a peer with Spine's limits takes, the fragments close to the limit.
    for (seed, order) in [
        (0, in_order(&plan)),
        (9, shuffled_twice(&plan, 9)),
        (77, shuffled_twice(&plan, 77)),
    ] {
        let kept = deliver(&plan, &order);
        assert!(kept.largest <= large::MAX_MESSAGE_BYTES, "{}", kept.largest);
        assert!(kept.largest > 4_400_000, "{}", kept.largest);
        assert_eq!(
            kept.assemble_actions, 1,
            "order {seed}: assembled once, when the last piece came"
        );
        let assembled = kept.assemble().unwrap();
        assert_eq!(assembled.extract_xml, extract);
        assert_same_documents(&assembled, &documents);
    }
}

#[test]
fn plans_are_the_same_for_the_same_ids() {
    let extract = translate::synthetic::synthetic_extract_xml(40_000, 1);
    let documents = vec![document("AB_x.pdf", Some(noise(100_000, 1)))];
    let sizes = small_sizes();
    let a = plan_with(&extract, documents.clone(), &sizes);
    let b = plan_with(&extract, documents, &sizes);
    assert_eq!(a.copc_ids(), b.copc_ids());
    assert_eq!(a.extract.payload, b.extract.payload);
    assert_eq!(
        a.copcs
            .iter()
            .map(|c| c.payload.clone())
            .collect::<Vec<_>>(),
        b.copcs
            .iter()
            .map(|c| c.payload.clone())
            .collect::<Vec<_>>()
    );
}

/// Small limits, so that splitting is cheap to exercise: parts of 120,000 characters,
/// fragments of 85,500 bytes (1,500 base64 lines).
fn small_sizes() -> Sizes {
    Sizes {
        max_message_bytes: 160_000,
        max_part_bytes: 120_000,
        fragment_bytes: 57 * 1_500,
    }
}

#[test]
fn inconsistent_sizes_are_refused() {
    for sizes in [
        Sizes {
            fragment_bytes: 1_000,
            ..small_sizes()
        },
        Sizes {
            fragment_bytes: 90_000,
            ..small_sizes()
        },
        Sizes {
            max_message_bytes: 120_000,
            ..small_sizes()
        },
    ] {
        let err = large::plan_with(
            &parties(),
            route(),
            "C",
            "RCMR_IN030000UK06",
            String::new(),
            vec![],
            NOW,
            &mut counter_ids(),
            &sizes,
        )
        .unwrap_err();
        assert!(matches!(err, LargeError::Sizes(_)), "{err}");
    }
    let err = large::plan(
        &parties(),
        route(),
        "C",
        "MCCI_IN010000UK13",
        "<x/>".into(),
        vec![],
        NOW,
        &mut counter_ids(),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::FailedToGenerateExtract);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_record_around_the_limits_comes_back_whole(
        extract_size in prop_oneof![Just(20_000usize), 100_000usize..140_000],
        sizes in proptest::collection::vec(
            prop_oneof![
                Just(0usize), Just(1), Just(56), Just(57), Just(58),
                Just(85_499), Just(85_500), Just(85_501),
                Just(87_700), Just(87_800), Just(171_000), Just(171_001),
                1usize..260_000,
            ],
            0..4,
        ),
        absent in proptest::collection::vec(any::<bool>(), 4),
        seed in any::<u64>(),
    ) {
        let extract = translate::synthetic::synthetic_extract_xml(extract_size, seed % 1000);
        let documents: Vec<Document> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let content = (!absent[i]).then(|| noise(n, seed ^ i as u64));
                document(&format!("D{i}_file{i}.bin"), content)
            })
            .collect();
        let sizes = small_sizes();
        let plan = plan_with(&extract, documents.clone(), &sizes);
        let kept = deliver(&plan, &shuffled_twice(&plan, seed));
        prop_assert!(kept.largest <= sizes.max_message_bytes, "{} bytes", kept.largest);
        prop_assert_eq!(kept.assemble_actions, 1);
        let assembled = kept.assemble().unwrap();
        prop_assert!(assembled.extract_xml == extract);
        assert_same_documents(&assembled, &documents);
    }
}

/// A piece as received: base64 text (`b64`) or content as it is.
fn piece(bytes: &[u8], b64: bool) -> ReceivedPart {
    ReceivedPart {
        content_id: "p@x".into(),
        document_id: None,
        position: 0,
        filename: None,
        content_type: "application/octet-stream".into(),
        compressed: false,
        large: false,
        original_base64: false,
        length: None,
        domain_data: None,
        base64: b64,
        bytes: Bytes::copy_from_slice(bytes),
    }
}

/// What the streaming decoder gives for `pieces`: as one text, or piece by piece when
/// that fails (what the driver does, writing each result to a file).
fn decode_streaming(pieces: &[ReceivedPart]) -> Result<Vec<u8>, LargeError> {
    let run = |how| {
        let mut d = large::Decoder::new("doc.bin", pieces.len(), how);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(d.piece(p)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    };
    run(large::Joining::AsOneText).or_else(|_: LargeError| run(large::Joining::PieceByPiece))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Base64 cut anywhere (line breaks and all), or each piece encoded on its own with
    /// its padding, or pieces mixing base64 and plain content: the decoder, fed one piece
    /// at a time, gives the document back.
    #[test]
    fn the_streaming_decoder_gives_the_document_back_however_it_was_cut(
        len in 0usize..5_000,
        cuts in proptest::collection::vec(0usize..7_000, 0..6),
        seed in any::<u64>(),
        kind in 0u8..3,
    ) {
        use base64::Engine as _;
        let content = noise(len, seed);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (len + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(len);
        let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &content[w[0]..w[1]]).collect();
        let engine = &base64::engine::general_purpose::STANDARD;
        let pieces: Vec<ReceivedPart> = match kind {
            // The whole document's base64 in MIME lines, cut at arbitrary characters.
            0 => {
                let text = engine.encode(&content);
                let lines: Vec<&str> = text.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect();
                let text = lines.join("\r\n");
                let n = text.len();
                let mut at: Vec<usize> = bounds.iter().map(|b| b * n / len.max(1)).collect();
                at.dedup();
                at.windows(2).map(|w| piece(&text.as_bytes()[w[0]..w[1]], true)).collect()
            }
            // Each piece encoded on its own, padding and all.
            1 => chunks.iter().map(|c| piece(engine.encode(c).as_bytes(), true)).collect(),
            // Alternately base64 and plain.
            _ => chunks
                .iter()
                .enumerate()
                .map(|(i, c)| if i % 2 == 0 { piece(engine.encode(c).as_bytes(), true) } else { piece(c, false) })
                .collect(),
        };
        let got = decode_streaming(&pieces).unwrap();
        prop_assert!(got.as_slice() == content.as_ref(), "{} bytes back for {}", got.len(), content.len());
    }
}

#[test]
fn the_streaming_decoder_refuses_what_cannot_be_a_document() {
    // Five characters of base64 cannot end a text; nor can base64 that stops part-way be
    // followed by plain content.
    let err = decode_streaming(&[piece(b"QUJDR", true)]).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ReassemblyFailure, "{err}");
    let err = decode_streaming(&[piece(b"QUJDR", true), piece(b"plain", false)]).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ReassemblyFailure, "{err}");
    assert!(err.to_string().contains("doc.bin"), "{err}");
    // Padding in the middle of a piece.
    let err = decode_streaming(&[piece(b"QQ==QUJD", true)]).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ReassemblyFailure, "{err}");
}

/// A split document and the record it belongs to, delivered in order.
fn split_record() -> (SendPlan, Kept) {
    let extract = translate::synthetic::synthetic_extract_xml(20_000, 2);
    let plan = plan_with(
        &extract,
        vec![document("AB_big.bin", Some(noise(300_000, 3)))],
        &small_sizes(),
    );
    let kept = deliver(&plan, &in_order(&plan));
    assert!(kept.assemble().is_ok());
    (plan, kept)
}

#[test]
fn a_missing_fragment_or_index_is_31() {
    let (_, mut kept) = split_record();
    let (index, fragments) = kept
        .indexes
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    kept.parts.remove(&fragments[1]);
    let err = kept.assemble().unwrap_err();
    assert!(
        matches!(&err, LargeError::MissingFragment { fragment, .. } if *fragment == fragments[1]),
        "{err}"
    );
    assert_eq!(err.reason_code(), ReasonCode::AttachmentsNotReceived);
    kept.indexes.remove(&index);
    assert_eq!(
        kept.assemble().unwrap_err().reason_code(),
        ReasonCode::AttachmentsNotReceived
    );
}

#[test]
fn an_index_naming_unknown_messages_is_31() {
    let (_, mut kept) = split_record();
    let index = kept.indexes.keys().next().cloned().unwrap();
    kept.indexes
        .get_mut(&index)
        .unwrap()
        .push(MessageId::new("NOT-OURS"));
    let err = kept.assemble().unwrap_err();
    assert!(
        matches!(&err, LargeError::MissingFragment { fragment, .. } if fragment.as_str() == "NOT-OURS"),
        "{err}"
    );
    assert_eq!(err.reason_code(), ReasonCode::AttachmentsNotReceived);
}

#[test]
fn a_corrupt_fragment_is_29() {
    let (_, mut kept) = split_record();
    let fragments = kept.indexes.values().next().cloned().unwrap();
    // A fragment cut short (three characters lost): the base64 no longer adds up.
    let part = &mut kept.parts.get_mut(&fragments[0]).unwrap()[0];
    part.bytes = part.bytes.slice(..part.bytes.len() - 3);
    assert_reassembly_fails(&kept);
}

fn assert_reassembly_fails(kept: &Kept) {
    let err = kept.assemble().unwrap_err();
    assert!(matches!(err, LargeError::Reassembly { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::ReassemblyFailure);
}

#[test]
fn corrupt_gzip_is_29() {
    let extract = translate::synthetic::synthetic_extract_xml(400_000, 4);
    let plan = plan_with(&extract, vec![], &small_sizes());
    let mut kept = deliver(&plan, &in_order(&plan));
    assert!(kept.assemble().unwrap().extract_xml == extract);
    // Damage the compressed stream past its header (the gzip magic stays).
    let skeleton = kept.documents[0].message_id.clone();
    let parts = kept.parts.get_mut(&skeleton).unwrap();
    let mut gz = parts[0].decoded().unwrap().to_vec();
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 64] {
        *b ^= 0x5A;
    }
    use base64::Engine as _;
    parts[0].bytes = Bytes::from(base64::engine::general_purpose::STANDARD.encode(&gz));
    assert_reassembly_fails(&kept);
}

#[test]
fn a_missing_document_is_31_and_pieces_that_cannot_join_are_29() {
    let extract = translate::synthetic::synthetic_extract_xml(20_000, 2);
    // The first document goes inline, the second in a COPC of its own.
    let documents = vec![
        document("AB_x.bin", Some(noise(50_000, 3))),
        document("CD_y.bin", Some(noise(50_000, 4))),
    ];
    let plan = plan_with(&extract, documents, &small_sizes());
    let mut kept = deliver(&plan, &in_order(&plan));
    assert_eq!((kept.inline.len(), kept.documents.len()), (1, 1));
    assert!(!kept.documents[0].large);
    let id = kept.documents[0].message_id.clone();
    let parts = kept.parts.remove(&id).unwrap();
    let err = kept.assemble().unwrap_err();
    assert!(matches!(err, LargeError::MissingDocument { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::AttachmentsNotReceived);
    // Base64 that cannot be whole (5 characters) beside a piece that travelled as text:
    // no way to join them.
    let mut odd = parts[0].clone();
    odd.bytes = Bytes::from_static(b"QUJDR");
    let mut text = parts[0].clone();
    text.base64 = false;
    text.bytes = Bytes::from_static(b"plain");
    kept.parts.insert(id, vec![odd, text]);
    assert_eq!(
        kept.assemble().unwrap_err().reason_code(),
        ReasonCode::ReassemblyFailure
    );
}

// ---------------------------------------------------------------------------------------
// The corpus's real conversations.

/// `Length=…` of a manifest description.
fn length_of(description: &str) -> Option<u64> {
    let at = description.find("Length=")? + "Length=".len();
    let digits: String = description[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn manifest_lengths_are_what_nhs_senders_write() {
    // In every large-message example of the corpus that gives a `Length`, it counts the
    // content's base64 characters: the payload's own when it travels as base64, what its
    // bytes would take as base64 when it travels as they are.
    let dir = corpus().join("gp2gp/large-message");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for a in json["attachments"].as_array().into_iter().flatten() {
            let Some(length) = a["description"].as_str().and_then(length_of) else {
                continue;
            };
            let payload = a["payload"].as_str().unwrap().as_bytes();
            // Some examples write the flag as a string.
            let base64 = a["is_base64"].as_bool().unwrap_or_else(|| {
                a["is_base64"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("true"))
            });
            let characters = if base64 {
                payload.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64
            } else {
                large::manifest_length(payload.len())
            };
            assert_eq!(length, characters, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} descriptions with a Length");
}

fn corpus_conversation(extract: &str, copcs: &[&str]) -> Kept {
    let mut kept = Kept::default();
    let Incoming::Extract {
        hl7,
        documents,
        inline,
        ..
    } = wire::read(&corpus_json(&format!("gp2gp/large-message/{extract}.json"))).unwrap()
    else {
        panic!()
    };
    kept.hl7 = hl7;
    kept.inline = inline;
    kept.documents = documents;
    for c in copcs {
        match wire::read(&corpus_json(&format!("gp2gp/large-message/{c}.json"))).unwrap() {
            Incoming::Copc { message_id, parts } => {
                kept.parts.insert(message_id, parts);
            }
            Incoming::FragmentIndex {
                message_id,
                fragments,
                parts,
            } => {
                kept.parts.insert(message_id.clone(), parts);
                kept.indexes.insert(message_id, fragments);
            }
            other => panic!("{c}: {other:?}"),
        }
    }
    kept
}

#[test]
fn corpus_documents_reassemble() {
    // Two mid: fragments of a text, joined as one base64 text.
    let a = corpus_conversation(
        "Scenario_4__uk06",
        &[
            "Scenario_4__copc_index",
            "Scenario_4__copc1",
            "Scenario_4__copc0",
        ],
    )
    .assemble()
    .unwrap();
    assert_eq!(a.documents.len(), 1);
    assert_eq!(
        a.documents[0].filename,
        "7CCB6A77-360E-434E-8CF4-97C7C2B47D70_book.txt"
    );
    assert_eq!(a.documents[0].bytes.len(), 1_271_430);
    assert!(a.documents[0].bytes.starts_with(b"\n\n\nWAR AND PEACE"));
    // An index carrying its first fragment, then two mid: ones: a TIFF.
    let a = corpus_conversation(
        "Scenario_6__uk06",
        &[
            "Scenario_6__copc0",
            "Scenario_6__copc_index",
            "Scenario_6__copc1",
        ],
    )
    .assemble()
    .unwrap();
    assert!(
        a.documents[0].bytes.starts_with(b"II*\0"),
        "{:?}",
        &a.documents[0].bytes[..8]
    );
    assert_eq!(a.documents[0].bytes.len(), 36_504 / 4 * 3 - 1);
    // A document in one COPC: an MPEG-4 file.
    let a = corpus_conversation("Scenario_3__uk06", &["Scenario_3__copc"])
        .assemble()
        .unwrap();
    assert_eq!(&a.documents[0].bytes[4..8], b"ftyp");
    // Fragments sent as decoded text: joined as they are.
    for (uk06, copcs) in [
        (
            "decoded-large-attachments__index-message__uk06",
            vec![
                "decoded-large-attachments__index-message__copc_index",
                "decoded-large-attachments__index-message__copc1",
                "decoded-large-attachments__index-message__copc0",
            ],
        ),
        (
            "decoded-large-attachments__index-message-with-cid__uk06",
            vec![
                "decoded-large-attachments__index-message-with-cid__copc0",
                "decoded-large-attachments__index-message-with-cid__copc_index",
            ],
        ),
    ] {
        let a = corpus_conversation(uk06, &copcs).assemble().unwrap();
        let text = std::str::from_utf8(&a.documents[0].bytes).unwrap();
        assert!(
            text.starts_with("<?xml") && text.trim_end().ends_with("</note>"),
            "{uk06}: {text}"
        );
        assert!(
            text.contains("<to>Tove</to>") && text.contains("<from>Jani</from>"),
            "{uk06}"
        );
        assert_eq!(
            a.documents[0].filename,
            "E0AE6DA2-AA21-444B-BEA5-3E48F368A9DF.xml"
        );
    }
    // An inline compressed document.
    let a = corpus_conversation("Scenario_2__uk06", &[])
        .assemble()
        .unwrap();
    assert!(
        a.documents[0]
            .bytes
            .starts_with(b"There must be some kind of way outta here")
    );
    // Without the fragments, nothing is assembled.
    let err = corpus_conversation(
        "Scenario_4__uk06",
        &["Scenario_4__copc_index", "Scenario_4__copc0"],
    )
    .assemble()
    .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::AttachmentsNotReceived);
}

#[test]
fn corpus_skeletons_are_filled_in() {
    // The skeleton's statement is replaced by the statement that was sent separately,
    // in one COPC (5) or as two fragments (7).
    for (uk06, copcs, expected) in [
        (
            "Scenario_5__uk06",
            vec!["Scenario_5__copc"],
            "2531F667-AA89-4540-A50B-56298B13FC4C",
        ),
        (
            "Scenario_7__uk06",
            vec![
                "Scenario_7__copc_index",
                "Scenario_7__copc0",
                "Scenario_7__copc1",
            ],
            "15FF7FA4-DBD9",
        ),
    ] {
        let kept = corpus_conversation(uk06, &copcs);
        let before = std::str::from_utf8(&kept.hl7).unwrap().to_string();
        assert!(before.contains("Skeleton statement"));
        let a = kept.assemble().unwrap();
        assert!(a.documents.is_empty(), "{uk06}");
        assert!(!a.extract_xml.contains("Skeleton statement"), "{uk06}");
        assert!(a.extract_xml.contains(expected), "{uk06}");
        let m = hl7v3::Message::parse(a.extract_xml.as_bytes()).unwrap();
        assert!(m.ehr_extract().is_some());
    }
}
