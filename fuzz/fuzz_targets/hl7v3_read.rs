//! Fuzzes the HL7 V3 readers: any bytes in, a result out, never a panic. Where the input
//! reads, the two readers (tree and direct) must agree, and what is written must read back
//! to the same model.
//!
//! Run: `cargo install cargo-fuzz` once, then from the repository root
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run hl7v3_read -- -max_total_time=60`
//! (seed it with corpus messages: `mkdir -p fuzz/corpus/hl7v3_read && cp
//! ../shared/conformance/gp2gp/messages/*payload* fuzz/corpus/hl7v3_read/`).
#![no_main]

use hl7v3::xml::{self, Layout, Limits};
use hl7v3::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        ..Limits::default()
    };
    let tree = xml::parse_with(data, &limits);
    let direct = Message::parse_with(data, &limits);
    if let Ok(msg) = direct {
        let via_tree = tree.ok().and_then(|t| Message::from_root(t).ok());
        assert_eq!(Some(&msg), via_tree.as_ref(), "the two readers disagree");
        let written = msg.to_xml(Layout::Compact);
        let again = Message::parse_with(written.as_bytes(), &Limits::default());
        assert_eq!(Ok(&msg), again.as_ref(), "write then read changed the model");
    }
});
