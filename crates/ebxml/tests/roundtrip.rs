//! Property tests: whatever the crate writes, it reads back identically — arbitrary
//! headers, manifests and attachment bytes (text, binary, base64, pre-encoded base64),
//! and the same message again with its line ends turned into bare LFs and its header
//! names lower-cased.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use bytes::Bytes;
use ebxml::{
    AttachmentInfo, Boundary, Limits, Message, MessageData, MessageHeader, OutboundMessage,
    OutboundPart, Party,
};
use proptest::prelude::*;

/// Text a header value can hold: no surrounding whitespace (values are trimmed on read),
/// any characters XML can carry, including ones that need escaping.
fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9<>&'\" .:_/{}-]{0,30}"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn header() -> impl Strategy<Value = MessageHeader> {
    (
        (value(), opt(value()), value(), value(), value(), value()),
        (
            value(),
            value(),
            value(),
            opt(value()),
            opt(value()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((from, from_type, to, cpa, conv, service), (action, id, ts, rf, ttl, de))| {
                MessageHeader {
                    from: Party {
                        id: from,
                        party_type: from_type,
                    },
                    to: Party::spine(to),
                    cpa_id: cpa,
                    conversation_id: conv,
                    service,
                    action,
                    message_data: MessageData {
                        message_id: id,
                        timestamp: ts,
                        ref_to_message_id: rf,
                        time_to_live: ttl,
                    },
                    duplicate_elimination: de,
                }
            },
        )
}

fn info() -> impl Strategy<Value = AttachmentInfo> {
    (
        opt("[A-Za-z0-9 _.=-]{1,20}"
            .prop_map(|s| s.trim().to_string())
            .prop_filter("ne", |s| !s.is_empty())),
        "[a-z]{1,8}/[a-z0-9.+-]{1,12}",
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<u64>()),
        opt("[A-Za-z0-9:_ -]{1,20}"
            .prop_map(|s| s.trim().to_string())
            .prop_filter("ne", |s| !s.is_empty())),
    )
        .prop_map(
            |(filename, ct, compressed, large, orig, length, domain)| AttachmentInfo {
                filename,
                content_type: Some(ct),
                compressed,
                large_attachment: large,
                original_base64: orig,
                length,
                domain_data: domain,
            },
        )
}

#[derive(Debug, Clone)]
enum Body {
    /// Text without CR (so turning CRLF into LF changes only what the writer wrote).
    Text(String),
    Binary(Vec<u8>),
    PreEncoded(Vec<u8>),
    /// Binary from a reader, larger than one chunk sometimes.
    Streamed(Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        "[^\r]{0,200}".prop_map(Body::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Body::Binary),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Body::PreEncoded),
        (0usize..3, any::<u8>()).prop_map(|(k, seed)| {
            let len = [10, ebxml::CHUNK_SIZE, ebxml::CHUNK_SIZE * 2 + 5][k];
            Body::Streamed(
                (0..len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect(),
            )
        }),
    ]
}

impl Body {
    fn part(&self, cid: String) -> OutboundPart {
        match self {
            Body::Text(t) => OutboundPart::text(cid, "text/plain; charset=UTF-8", t.clone()),
            Body::Binary(b) => OutboundPart::base64(cid, "application/octet-stream", b.clone()),
            Body::PreEncoded(b) => OutboundPart::pre_encoded_base64(
                cid,
                "application/octet-stream",
                base64::engine::general_purpose::STANDARD.encode(b),
            ),
            Body::Streamed(b) => OutboundPart::base64(
                cid,
                "image/tiff",
                ebxml::Source::Reader(Box::new(std::io::Cursor::new(b.clone()))),
            ),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) | Body::PreEncoded(b) | Body::Streamed(b) => b,
        }
    }
}

fn generous() -> Limits {
    Limits {
        max_message_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn written_messages_read_back(
        header in header(),
        reliable in any::<bool>(),
        payload in "[^\r]{0,300}",
        attachments in proptest::collection::vec((body(), info()), 0..4),
        external in proptest::collection::vec((value(), info()), 0..3),
    ) {
        let mut b = OutboundMessage::builder(header).payload("payload@lloyd", payload.clone());
        if reliable {
            b = b.reliable();
        }
        for (i, (body, info)) in attachments.iter().enumerate() {
            b = b.attachment(body.part(format!("att{i}@lloyd")), Some(format!("DOC-{i}")), info.clone());
        }
        for (mid, info) in &external {
            b = b.external_attachment(mid.replace(' ', "_"), None, info.clone());
        }
        let msg = b.build(&generous()).unwrap();
        let envelope = msg.envelope().clone();
        let out = msg.into_body(Boundary::random()).unwrap();
        let ct = out.content_type();
        let mut wire = Vec::new();
        out.write_to(&mut wire).unwrap();

        // The same bytes with bare LF line ends.
        let lf: Vec<u8> = {
            let mut v = Vec::with_capacity(wire.len());
            for (i, &b) in wire.iter().enumerate() {
                if b == b'\r' && wire.get(i + 1) == Some(&b'\n') { continue; }
                v.push(b);
            }
            v
        };
        let lower_headers = String::from_utf8(lf.clone()).map(|s| s
            .replace("Content-Id:", "content-id:")
            .replace("Content-Type:", "CONTENT-TYPE:")
            .replace("Content-Transfer-Encoding:", "content-transfer-ENCODING:"));
        let mut inputs = vec![wire, lf];
        if let Ok(s) = lower_headers { inputs.push(s.into_bytes()); }
        for input in inputs {
            let m = Message::parse(Bytes::from(input), &ct, &generous()).unwrap();
            prop_assert_eq!(m.envelope(), &envelope);
            prop_assert_eq!(&m.payload().unwrap().decoded().unwrap()[..], payload.as_bytes());
            prop_assert_eq!(m.attachments().len(), attachments.len());
            for (part, (body, _)) in m.attachments().iter().zip(&attachments) {
                prop_assert_eq!(&part.decoded().unwrap()[..], body.bytes());
                prop_assert_eq!(part.decoded_len(), body.bytes().len() as u64);
                let mut streamed = Vec::new();
                part.decode_into(&mut streamed).unwrap();
                prop_assert_eq!(&streamed[..], body.bytes());
            }
            m.check_references().unwrap();
        }
    }

    #[test]
    fn content_type_reads_back(boundary in "[A-Za-z0-9'()+_,./:=?-]{1,60}", start in value()) {
        let ct = ebxml::ContentType::new("multipart/related")
            .with_param("boundary", boundary.clone())
            .with_param("type", "text/xml")
            .with_param("start", start.clone());
        let read = ebxml::ContentType::parse(&ct.to_string()).unwrap();
        prop_assert_eq!(read.boundary(), Some(boundary.as_str()));
        prop_assert_eq!(read.param("start"), Some(start.as_str()));
    }
}
