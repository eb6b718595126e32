//! Reading and writing a small (about 5 KB) and a large (about 4 MB) ebXML message.
//!
//! `cargo bench -p ebxml --bench codec`. The messages are built here: the small one is an
//! envelope and a 4 KB HL7 payload; the large one adds a 1 MB payload and a 2.2 MB binary
//! attachment, base64-encoded (3 MB on the wire). "read" parses the message and decodes
//! every part into a sink; "write" builds the message and writes it into a buffer.

// A bench builds fixed, valid inputs: a failure there is a bug in the bench itself.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebxml::{
    AttachmentInfo, Boundary, Limits, Message, MessageData, MessageHeader, OutboundMessage,
    OutboundPart, Party,
};

fn header() -> MessageHeader {
    MessageHeader {
        from: Party::spine("RHM-803229"),
        to: Party::spine("RHM-801710"),
        cpa_id: "S2030731A2137927".into(),
        conversation_id: "A023EF7E-BE27-4A70-949A-38F7865E83BC".into(),
        service: ebxml::SERVICE_GP2GP.into(),
        action: "RCMR_IN030000UK06".into(),
        message_data: MessageData {
            message_id: "FA039330-7E63-446A-8CA4-E9E0D00DA6E8".into(),
            timestamp: "2024-05-01T10:00:00Z".into(),
            ref_to_message_id: None,
            time_to_live: None,
        },
        duplicate_elimination: true,
    }
}

fn payload(size: usize) -> String {
    let item = "<component><NarrativeStatement classCode=\"OBS\" moodCode=\"EVN\"><text>Seen in clinic</text></NarrativeStatement></component>\n";
    let mut s = String::from("<RCMR_IN030000UK06 xmlns=\"urn:hl7-org:v3\">\n");
    while s.len() < size {
        s.push_str(item);
    }
    s.push_str("</RCMR_IN030000UK06>");
    s
}

fn build(payload_size: usize, attachment: Option<usize>) -> OutboundMessage {
    let mut b = OutboundMessage::builder(header())
        .reliable()
        .payload("payload@lloyd", payload(payload_size));
    if let Some(n) = attachment {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
        b = b.attachment(
            OutboundPart::base64("att@lloyd", "image/tiff", bytes),
            Some("DOC-1".into()),
            AttachmentInfo {
                filename: Some("scan.tif".into()),
                content_type: Some("image/tiff".into()),
                compressed: Some(false),
                large_attachment: Some(false),
                original_base64: Some(false),
                length: Some(n as u64),
                domain_data: None,
            },
        );
    }
    b.build(&Limits::default())
        .expect("the bench message is within Spine's limits")
}

fn wire(msg: OutboundMessage) -> (Vec<u8>, String) {
    let body = msg
        .into_body(Boundary::new("--=_bench").expect("valid boundary"))
        .expect("valid parts");
    let ct = body.content_type();
    let mut out = Vec::new();
    body.write_to(&mut out).expect("writing to memory");
    (out, ct)
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("5KB", 4 * 1024, None),
        ("4MB", 1024 * 1024, Some(2200 * 1024)),
    ];
    for (name, payload_size, attachment) in cases {
        let (bytes, ct) = wire(build(payload_size, attachment));
        let bytes = bytes::Bytes::from(bytes);
        let mut g = c.benchmark_group(format!("ebxml_{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("read", |b| {
            b.iter(|| {
                let m = Message::parse(bytes.clone(), &ct, &Limits::default()).expect("parses");
                for p in m.parts() {
                    p.decode_into(&mut std::io::sink()).expect("decodes");
                }
                black_box(m)
            })
        });
        g.bench_function("write", |b| {
            b.iter(|| {
                let (out, _) = wire(build(payload_size, attachment));
                black_box(out)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
