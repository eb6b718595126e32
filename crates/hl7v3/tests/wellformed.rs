//! The reader against libxml2 on what is well-formed XML: thousands of damaged and odd
//! documents, each of which both must accept or both must refuse.
//!
//! libxml2 is the reference here (it is the parser `xmllint` and the schema validator use).
//! Three differences are by design and left out of the comparison: a DOCTYPE (this crate
//! refuses every one; libxml2 reads them), namespace errors (an undeclared prefix is a
//! question for the schema, not for the XML reader), and an encoding declared as anything
//! but UTF-8 (this crate reads UTF-8 whatever the declaration says; libxml2, told to do the
//! same, still refuses an encoding name it does not know).
//!
//! A longer search: `HL7V3_WELLFORMED_ROUNDS=100000 HL7V3_WELLFORMED_SEED=7 cargo test -p
//! hl7v3 --test wellformed` (each seed gives other damage).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hl7v3::xml::{self, XmlError};
use libxml::error::XmlErrorLevel;
use libxml::parser::{Parser, ParserOptions};

/// libxml2's error domain for namespace errors (`XML_FROM_NAMESPACE`).
const NAMESPACE_DOMAIN: i32 = 3;

fn libxml2_accepts(doc: &[u8]) -> bool {
    // As the schema validator reads documents: no recovery, no network, UTF-8.
    let options = ParserOptions {
        recover: false,
        no_def_dtd: true,
        no_net: true,
        huge: true,
        encoding: Some("UTF-8"),
        ..ParserOptions::default()
    };
    match Parser::default().parse_string_with_diagnostics(doc, options) {
        Ok((_, diagnostics)) => !diagnostics.iter().any(|d| {
            matches!(d.level, XmlErrorLevel::Error | XmlErrorLevel::Fatal)
                && d.domain != NAMESPACE_DOMAIN
        }),
        Err(_) => false,
    }
}

/// Both readers' verdicts on `doc`, or `None` when the difference is by design.
fn verdicts(doc: &[u8]) -> Option<(Result<(), XmlError>, bool)> {
    let ours = xml::parse(doc).map(|_| ());
    if matches!(ours, Err(XmlError::Doctype { .. })) {
        return None;
    }
    // The reader reads UTF-8 whatever encoding the declaration names (and checks that it
    // is UTF-8); libxml2, told the same, still refuses names it does not know.
    let declared = doc
        .windows(10)
        .position(|w| w == b"encoding=\"")
        .map(|at| &doc[at + 10..]);
    if declared.is_some_and(|d| !d.starts_with(b"UTF-8\"")) {
        return None;
    }
    Some((ours, libxml2_accepts(doc)))
}

fn assert_agree(doc: &[u8]) {
    if let Some((ours, theirs)) = verdicts(doc) {
        assert_eq!(
            ours.is_ok(),
            theirs,
            "hl7v3 says {ours:?}, libxml2 says {}, on:\n{}",
            if theirs {
                "well-formed"
            } else {
                "not well-formed"
            },
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn odd_but_well_formed_and_subtly_broken_documents() {
    let cases = [
        // Declarations and processing instructions.
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><a/>",
        "<?xml version='1.0'?>\n<a/>",
        "<?xml version=\"1.0\"?><?pi data?><a><?pi?></a><?pi after?>",
        "\u{feff}<?xml version=\"1.0\"?><a/>",
        " <?xml version=\"1.0\"?><a/>",
        "<?xml version=\"1.0\"?><?xml version=\"1.0\"?><a/>",
        "<?xml?><a/>",
        "<?xml version=1.0?><a/>",
        "<?xml version=\"1.\"?><a/>",
        "<?xml version=\"1.1\"?><a/>",
        "<?xml version=\"2.0\"?><a/>",
        "<?xml version=\"1\"?><a/>",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>",
        "<?xml encoding=\"UTF-8\"?><a/>",
        "<?XML version=\"1.0\"?><a/>",
        "<a><?xml version=\"1.0\"?></a>",
        "<? pi?><a/>",
        "<?pi<a/>",
        "<a><?pi x",
        // Comments.
        "<!-- c --><a><!----></a><!-- d -->",
        "<a><!-- a -- b --></a>",
        "<a><!-- a ---></a>",
        "<a><!--></a>",
        "<!-->a--><a/>",
        // CDATA and text.
        "<a><![CDATA[<&>]]]]><![CDATA[>]]></a>",
        "<![CDATA[ ]]><a/>",
        "<a/><![CDATA[ ]]>",
        "<a>]]></a>",
        "<a>]]&gt;</a>",
        "<a>x > y</a>",
        "<a>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x10FFFF;</a>",
        "<a>&#X41;</a>",
        "<a>&#x+41;</a>",
        "<a>&#+65;</a>",
        "<a>&#1;</a>",
        "<a>&#xFFFE;</a>",
        "<a>&#xD800;</a>",
        "<a>&nbsp;</a>",
        "<a>& b</a>",
        "<a>&amp</a>",
        "&#32;<a/>",
        "<a/>&#32;",
        "<a>\u{fffe}</a>",
        "<a>\u{fffd}</a>",
        // Names.
        "<café élan=\"1\"/>",
        "<a\u{B7}b/>",
        "<\u{B7}a/>",
        "<a\u{D7}b/>",
        "<1a/>",
        "<-a/>",
        "<_a.b-c:d/>",
        "<a 1b=\"x\"/>",
        "< a/>",
        "<a></ a>",
        "<a></a >",
        "<a></a\n>",
        "<a/ >",
        // Attributes.
        "<a b='\"' c=\"'\" d=\"&#10;&#9;\" e = \"x\" />",
        "<a b=\"x\"c=\"y\"/>",
        "<a b=\"<\"/>",
        "<a b=\">\"/>",
        "<a b=\"&foo;\"/>",
        "<a b=\"& c\"/>",
        "<a b=\"&amp\"/>",
        "<a b=\"x\" b=\"y\"/>",
        "<a b=\"x/>",
        "<a b/>",
        "<a b=/>",
        "<a =\"x\"/>",
        "<a\tb=\"1\"\nc=\"2\"\r\nd=\"3\"/>",
        // Structure.
        "",
        "   ",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a/>text",
        "text<a/>",
        "</a>",
        "<a></a></a>",
        "<a>\r\n<b>\r</b></a>",
    ];
    for case in cases {
        assert_agree(case.as_bytes());
    }
}

#[test]
fn damaged_real_messages_are_judged_as_libxml2_judges_them() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml"
    );
    let real = std::fs::read(path).unwrap();
    let seeds: [&[u8]; 2] = [
        &real,
        "<?xml version=\"1.0\"?>\n<!-- c --><r a=\"1 &amp; 2\" b='x'>\n  <x:y xmlns:x=\"u\">t&#233;&lt;</x:y>\n  <![CDATA[<raw>]]><?pi d?><e/>\r\n</r>\n"
            .as_bytes(),
    ];
    // Pieces that are markup, or break it.
    let pieces: [&[u8]; 35] = [
        b"<",
        b">",
        b"/",
        b"&",
        b";",
        b"\"",
        b"'",
        b"=",
        b" ",
        b"\r",
        b"\n",
        b"&amp;",
        b"&#x41;",
        b"&#1;",
        b"&bogus;",
        b"]]>",
        b"<![CDATA[",
        b"<!--",
        b"-->",
        b"--",
        b"<?",
        b"?>",
        b"<?xml version=\"1.0\"?>",
        b"<b/>",
        b"</b>",
        b"<b>",
        b"x:",
        b":",
        "\u{e9}".as_bytes(),
        "\u{b7}".as_bytes(),
        "\u{d7}".as_bytes(),
        "\u{fffe}".as_bytes(),
        b"a=\"1\"",
        b"\t",
        b"version=\"1.",
    ];
    // A small deterministic generator: the same documents every run.
    let mut state: u64 = std::env::var("HL7V3_WELLFORMED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x2545_F491_4F6C_DD1D);
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut compared = 0;
    let mut accepted = 0;
    for round in 0..rounds() {
        let mut doc = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + next(3) {
            let at = next(doc.len() + 1);
            match next(4) {
                0 => {
                    let end = (at + 1 + next(8)).min(doc.len());
                    doc.drain(at.min(end)..end);
                }
                1 | 2 => {
                    let piece = pieces[next(pieces.len())];
                    doc.splice(at..at, piece.iter().copied());
                }
                _ => {
                    let end = (at + next(24)).min(doc.len());
                    let copy = doc[at.min(end)..end].to_vec();
                    let to = next(doc.len() + 1);
                    doc.splice(to..to, copy);
                }
            }
        }
        if let Some((ours, theirs)) = verdicts(&doc) {
            assert_eq!(
                ours.is_ok(),
                theirs,
                "round {round}: hl7v3 says {ours:?}, libxml2 says {}, on:\n{}",
                if theirs {
                    "well-formed"
                } else {
                    "not well-formed"
                },
                String::from_utf8_lossy(&doc)
            );
            compared += 1;
            accepted += usize::from(theirs);
        }
    }
    // The comparison means something only if both kinds of verdict were common.
    assert!(compared > rounds() * 5 / 6, "{compared} compared");
    assert!(
        accepted > compared / 10 && accepted < compared * 9 / 10,
        "{accepted} of {compared} accepted"
    );
}

/// How many damaged documents to try: `HL7V3_WELLFORMED_ROUNDS` for a longer search.
fn rounds() -> usize {
    std::env::var("HL7V3_WELLFORMED_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6_000)
}
