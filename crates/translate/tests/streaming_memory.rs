//! The streaming translations hold far less than the whole-record ones: measured by a
//! counting allocator over the whole process (this file has one test, so nothing else
//! runs beside it), with the input counted.

// The counting allocator below must implement `GlobalAlloc`, an unsafe trait; it only
// forwards to the system allocator and keeps two counters.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use translate::synthetic::synthetic_extract_xml;
use translate::to_fhir::{ToFhirOptions, extract_to_bundle, extract_to_writer};
use translate::to_hl7::{ToHl7Options, bundle_to_extract, bundle_to_writer};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and gives the most it held at once above what was held before.
fn peak_of(f: impl FnOnce()) -> usize {
    let before = NOW.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - before
}

/// Where output goes when only its size matters.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn streaming_holds_a_fraction_of_what_the_whole_record_path_holds() {
    let xml = synthetic_extract_xml(20_000_000, 7).into_bytes();
    let input = xml.len();

    let mut streamed_bytes = 0;
    let streamed = peak_of(|| {
        let mut out = Count(0);
        extract_to_writer(&xml, &mut out, &ToFhirOptions::default()).unwrap();
        streamed_bytes = out.0;
    });
    let whole = peak_of(|| {
        let msg = hl7v3::Message::parse(&xml).unwrap();
        let (bundle, _) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
        drop(msg);
        let json = fhir::to_vec(&bundle).unwrap();
        assert_eq!(json.len(), streamed_bytes);
    });
    // The input is held by the caller in both cases; the goal counts it.
    let ratio = |peak: usize| (peak + input) as f64 / input as f64;
    eprintln!(
        "HL7 → FHIR, {input} bytes: streaming {:.2}× the input, whole record {:.2}×",
        ratio(streamed),
        ratio(whole)
    );
    // The goal is 3× the input; the whole-record path holds several times that.
    assert!(ratio(streamed) < 2.0, "streaming: {:.2}×", ratio(streamed));
    assert!(ratio(whole) > 6.0, "whole record: {:.2}×", ratio(whole));

    // And back: the Bundle just made, to an EhrExtract.
    let json = {
        let msg = hl7v3::Message::parse(&xml).unwrap();
        let (bundle, _) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
        fhir::to_vec(&bundle).unwrap()
    };
    drop(xml);
    let input = json.len();
    let options = ToHl7Options {
        creation_time: Some("20240131093000".into()),
        ..ToHl7Options::default()
    };
    let mut streamed_bytes = 0;
    let streamed = peak_of(|| {
        let mut out = Count(0);
        bundle_to_writer(&json, &mut out, &options).unwrap();
        streamed_bytes = out.0;
    });
    let whole = peak_of(|| {
        let bundle: fhir::Bundle = fhir::from_slice(&json).unwrap();
        let (msg, _) = bundle_to_extract(&bundle, &options).unwrap();
        drop(bundle);
        let xml = msg.to_xml(hl7v3::xml::Layout::Compact);
        assert_eq!(xml.len(), streamed_bytes);
    });
    let ratio = |peak: usize| (peak + input) as f64 / input as f64;
    eprintln!(
        "FHIR → HL7, {input} bytes: streaming {:.2}× the input, whole Bundle {:.2}×",
        ratio(streamed),
        ratio(whole)
    );
    // The output is held until the end (see `to_hl7::stream`): a little over twice the
    // input in all.
    assert!(ratio(streamed) < 3.0, "streaming: {:.2}×", ratio(streamed));
    assert!(ratio(whole) > 6.0, "whole Bundle: {:.2}×", ratio(whole));
}
