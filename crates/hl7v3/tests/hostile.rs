//! Hostile input: every one gets a clear error, in bounded memory, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The counting allocator below must implement `GlobalAlloc`, an unsafe trait; it only
// forwards to the system allocator and counts. Nothing else in the project is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use hl7v3::xml::{self, Limits, XmlError};
use hl7v3::{Message, MessageError};

/// Counts the live heap bytes and their peak *per thread*: tests run in parallel, and a
/// process-wide count would measure the neighbours too. The thread-locals are
/// const-initialised and have no destructor, so using them inside the allocator never
/// allocates.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let size = layout.size() as isize;
            let _ = LIVE.try_with(|live| {
                live.set(live.get() + size);
                let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
            });
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) };
        let _ = LIVE.try_with(|live| live.set(live.get() - layout.size() as isize));
    }
}

/// Starts measuring this thread's heap: returns the baseline.
fn start_measuring() -> isize {
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    live
}

/// How far this thread's heap rose above `baseline` since [`start_measuring`].
fn peak_since(baseline: isize) -> isize {
    PEAK.with(Cell::get) - baseline
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn both(
    input: &[u8],
) -> (
    Result<xml::Element, XmlError>,
    Result<Message, MessageError>,
) {
    (xml::parse(input), Message::parse(input))
}

#[test]
fn external_entities_are_refused_before_anything_is_read() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE RCMR_IN030000UK06 [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3"><id root="&secret;"/></RCMR_IN030000UK06>"#;
    let (tree, msg) = both(xxe);
    assert!(matches!(tree, Err(XmlError::Doctype { .. })));
    assert!(matches!(
        msg,
        Err(MessageError::Xml(XmlError::Doctype { .. }))
    ));
    let text = msg.unwrap_err().to_string();
    assert!(text.contains("DOCTYPE"), "{text}");
}

#[test]
fn a_billion_laughs_is_refused_in_bounded_memory() {
    let mut bomb =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        bomb.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    bomb.push_str("]>\n<MCCI_IN010000UK13>&lol9;</MCCI_IN010000UK13>");
    let before = start_measuring();
    let (tree, msg) = both(bomb.as_bytes());
    assert!(matches!(tree, Err(XmlError::Doctype { .. })));
    assert!(msg.is_err());
    let grew = peak_since(before);
    assert!(grew < 1 << 20, "reading the bomb took {grew} bytes");
}

#[test]
fn an_undeclared_entity_is_refused_too() {
    let (tree, msg) = both(b"<MCCI_IN010000UK13><id root=\"&ext;\"/></MCCI_IN010000UK13>");
    assert!(matches!(tree, Err(XmlError::Entity { ref name, .. }) if name == "ext"));
    assert!(matches!(
        msg,
        Err(MessageError::Xml(XmlError::Entity { .. }))
    ));
    let (tree, _) = both(b"<MCCI_IN010000UK13>&#0;</MCCI_IN010000UK13>");
    assert!(tree.is_err(), "a NUL character reference is not XML");
}

#[test]
fn deep_nesting_stops_at_the_limit_without_exhausting_the_stack() {
    // A million levels: far past the limit, and past what recursion could survive.
    let depth = 1_000_000;
    let mut doc = String::with_capacity(depth * 7);
    doc.push_str("<RCMR_IN030000UK06>");
    for _ in 0..depth {
        doc.push_str("<a>");
    }
    let (tree, msg) = both(doc.as_bytes());
    assert!(
        matches!(tree, Err(XmlError::TooDeep { limit: 256, .. })),
        "{tree:?}"
    );
    assert!(
        matches!(msg, Err(MessageError::Xml(XmlError::TooDeep { .. }))),
        "{msg:?}"
    );
}

#[test]
fn a_document_over_the_size_limit_is_refused_up_front() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let big = format!(
        "<MCCI_IN010000UK13>{}</MCCI_IN010000UK13>",
        "x".repeat(2000)
    );
    let before = start_measuring();
    let err = Message::parse_with(big.as_bytes(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            MessageError::Xml(XmlError::TooLarge { limit: 1024, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("over the limit"), "{err}");
    let grew = peak_since(before);
    assert!(
        grew < 4096,
        "nothing is read before the size check, yet the heap grew {grew} bytes"
    );
}

#[test]
fn invalid_utf8_is_an_error_with_its_position() {
    let mut doc = b"<MCCI_IN010000UK13><id root=\"".to_vec();
    let at = doc.len();
    doc.extend_from_slice(&[0xC3, 0x28]);
    doc.extend_from_slice(b"\"/></MCCI_IN010000UK13>");
    let (tree, msg) = both(&doc);
    assert_eq!(tree, Err(XmlError::Utf8 { offset: at as u64 }));
    assert!(matches!(msg, Err(MessageError::Xml(XmlError::Utf8 { .. }))));
}

#[test]
fn every_truncation_of_a_real_message_is_an_error_not_a_panic() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml"
    );
    let full = std::fs::read(path).unwrap();
    assert!(Message::parse(&full).is_ok());
    let end = full.iter().rposition(|&b| b == b'>').unwrap();
    for cut in 0..end {
        let part = &full[..cut];
        let (tree, msg) = both(part);
        assert!(tree.is_err(), "a document cut at byte {cut} was accepted");
        assert!(msg.is_err(), "a message cut at byte {cut} was accepted");
    }
    // A cut inside the body names the element left open.
    let reason = full.windows(8).position(|w| w == b"<reason ").unwrap();
    let cut = reason + full[reason..].iter().position(|&b| b == b'>').unwrap() + 1;
    match xml::parse(&full[..cut]) {
        Err(XmlError::Truncated { open, .. }) => assert_eq!(open, "reason"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn control_characters_are_refused_wherever_they_are() {
    for bad in [
        &b"<MCCI_IN010000UK13><id root=\"2.16\x00.840\"/></MCCI_IN010000UK13>"[..],
        b"<MCCI_IN010000UK13>text\x01</MCCI_IN010000UK13>",
        b"<MCCI_IN010000UK13\x1f/>",
    ] {
        let (tree, msg) = both(bad);
        assert!(
            matches!(tree, Err(XmlError::Syntax { ref message, .. }) if message.contains("control character")),
            "{tree:?}"
        );
        assert!(msg.is_err());
    }
    // Tab, line feed and carriage return are allowed.
    assert!(xml::parse(b"<MCCI_IN010000UK13>\t\r\n</MCCI_IN010000UK13>").is_ok());
}

#[test]
fn malformed_markup_is_reported_not_guessed() {
    for bad in [
        "<MCCI_IN010000UK13><id root=\"a\" root=\"b\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=a/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"a<b\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root=\"a\"extension=\"b\"/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13><id root/></MCCI_IN010000UK13>",
        "<MCCI_IN010000UK13></MCCI_IN010000UK14>",
        "<MCCI_IN010000UK13/><MCCI_IN010000UK13/>",
        "text<MCCI_IN010000UK13/>",
    ] {
        let (tree, msg) = both(bad.as_bytes());
        assert!(tree.is_err(), "tree accepted {bad}");
        assert!(msg.is_err(), "model accepted {bad}");
    }
}

#[test]
fn a_root_that_is_not_gp2gp_is_named_in_the_error() {
    let err = Message::parse(b"<html><body/></html>").unwrap_err();
    assert!(matches!(err, MessageError::UnknownInteraction(ref n) if n == "html"));
    assert!(err.to_string().contains("RCMR_IN030000UK06"), "{err}");
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic generator: no dependency, same bytes every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"<>/=\"' &;#x:abcdMCCI_IN010000UK13id root\n\t!-[]?";
    for _ in 0..20_000 {
        let len = (next() % 120) as usize;
        let doc: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 17 == 0 {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        let _ = both(&doc);
    }
}
