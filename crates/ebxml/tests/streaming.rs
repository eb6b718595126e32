//! A 100 MB attachment streams through the writer and the reader without the process ever
//! holding more than one copy of it.
//!
//! A counting global allocator (this test binary's only) records the peak of live heap
//! bytes; each phase resets the peak and asserts on how far above its starting point the
//! phase went. One test function, so no other test's allocations run alongside.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// A global allocator is an `unsafe impl`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ebxml::{
    AttachmentInfo, Boundary, Limits, Message, MessageData, MessageHeader, OutboundMessage,
    OutboundPart, Party,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts measuring: returns the live bytes now, and makes that the peak.
fn start() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// How far the peak rose above `base`.
fn rise(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

const SIZE: u64 = 100 * 1024 * 1024;
const MB: usize = 1024 * 1024;

/// 100 MB of varied bytes, generated as they are read: never in memory.
struct Generated {
    at: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (SIZE - self.at).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let x = self.at + i as u64;
            *b = (x ^ (x >> 8) ^ (x >> 16)) as u8;
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// Checks bytes against `Generated` as they are written, and counts them.
struct Verify {
    at: u64,
    ok: bool,
}

impl Write for Verify {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for (i, &b) in buf.iter().enumerate() {
            let x = self.at + i as u64;
            self.ok &= b == (x ^ (x >> 8) ^ (x >> 16)) as u8;
        }
        self.at += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts what is written and keeps nothing.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header() -> MessageHeader {
    MessageHeader {
        from: Party::spine("A"),
        to: Party::spine("B"),
        cpa_id: "CPA".into(),
        conversation_id: "C".into(),
        service: ebxml::SERVICE_GP2GP.into(),
        action: "COPC_IN000001UK01".into(),
        message_data: MessageData {
            message_id: "M".into(),
            timestamp: "T".into(),
            ref_to_message_id: None,
            time_to_live: None,
        },
        duplicate_elimination: true,
    }
}

fn big_limits() -> Limits {
    Limits {
        max_message_bytes: u64::MAX,
        max_attachment_chars: u64::MAX,
        ..Limits::default()
    }
}

fn message() -> OutboundMessage {
    OutboundMessage::builder(header())
        .reliable()
        .payload(
            "payload@lloyd",
            "<COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>",
        )
        .attachment(
            OutboundPart::base64(
                "big@lloyd",
                "image/tiff",
                ebxml::Source::Reader(Box::new(Generated { at: 0 })),
            ),
            None,
            AttachmentInfo {
                length: Some(SIZE),
                ..AttachmentInfo::default()
            },
        )
        .build(&big_limits())
        .unwrap()
}

#[test]
fn a_100_mb_attachment_streams_through_writer_and_reader() {
    // 1. Writing to a sink: the 100 MB (133 MB as base64) goes through chunk buffers only.
    let base = start();
    let body = message().into_body(Boundary::random()).unwrap();
    let mut sink = CountingSink(0);
    let written = body.write_to(&mut sink).unwrap();
    assert!(written > SIZE * 4 / 3, "wrote only {written} bytes");
    let peak = rise(base);
    assert!(
        peak < 2 * MB,
        "writing a 100 MB attachment to a sink peaked at {peak} bytes above the start"
    );

    // 2. Writing into memory, as a test stands in for the network: the wire image is the
    //    one copy, and nothing else big is held beside it.
    let base = start();
    let body = message().into_body(Boundary::random()).unwrap();
    let ct = body.content_type();
    let mut wire = Vec::with_capacity(written as usize);
    body.write_to(&mut wire).unwrap();
    assert_eq!(wire.len() as u64, written);
    let peak = rise(base);
    assert!(
        peak < written as usize + 2 * MB,
        "peak {peak} for a {written}-byte image"
    );

    // 3. Reading: parts are slices of the input buffer, so parsing allocates next to nothing.
    let input = Bytes::from(wire);
    let base = start();
    let m = Message::parse(input, &ct, &big_limits()).unwrap();
    let peak = rise(base);
    assert!(
        peak < MB,
        "parsing a {written}-byte message allocated {peak} bytes at its peak"
    );
    let att = &m.attachments()[0];
    assert_eq!(att.decoded_len(), SIZE);

    // 4. Decoding into a writer goes a chunk at a time.
    let base = start();
    let mut check = Verify { at: 0, ok: true };
    let n = att.decode_into(&mut check).unwrap();
    let peak = rise(base);
    assert_eq!(n, SIZE);
    assert!(
        check.ok,
        "the decoded attachment differs from what was sent"
    );
    assert!(peak < MB, "decoding into a writer peaked at {peak} bytes");

    // 5. Decoding into memory makes exactly one more copy: the decoded bytes.
    let base = start();
    let decoded = att.decoded().unwrap();
    let peak = rise(base);
    assert_eq!(decoded.len() as u64, SIZE);
    assert!(
        peak < SIZE as usize + MB,
        "decoding into memory peaked at {peak} bytes"
    );
}
