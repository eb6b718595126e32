//! A small, hardened XML reader for SOAP envelopes, and the escaping the writer needs.
//!
//! An ebXML envelope is a few kilobytes of XML, so it is read into a little tree and the
//! model is picked out of that. Elements are matched by **local name** (the part after the
//! colon): real senders spell prefixes every way (`SOAP`, `soap`, `SOAP-ENV`), and some
//! messages in the wild use prefixes they never declare (`eb:` with no `xmlns:eb`). A
//! namespace-checking reader would refuse those; Spine does not.
//!
//! Hardening: the input size is checked by the caller; a DOCTYPE is refused (so no entity
//! can be declared, let alone expanded); only XML's five predefined entities and character
//! references are understood; nesting depth is limited.

use quick_xml::events::{BytesStart, Event};

use crate::Error;

/// One element: its local name, attributes by local name, child elements, and its text
/// (all text directly inside it, concatenated).
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub qname: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == local)
    }

    /// Every child with this local name.
    pub fn children<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == local)
    }

    /// An attribute by local name.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == local)
            .map(|(_, v)| v.as_str())
    }

    /// The text, trimmed; `None` when empty.
    pub fn text(&self) -> Option<&str> {
        let t = self.text.trim();
        (!t.is_empty()).then_some(t)
    }

    /// The trimmed text of the first child with this local name, if not empty.
    pub fn child_text(&self, local: &str) -> Option<&str> {
        self.child(local).and_then(Element::text)
    }

    /// Every descendant (depth first) with this local name.
    pub fn descendants<'a>(&'a self, local: &'a str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == local {
                out.push(c);
            }
            c.descendants(local, out);
        }
    }
}

fn local(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, l)| l)
}

/// Parses a document into its root element.
pub(crate) fn parse(input: &[u8], max_depth: usize) -> Result<Element, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error::EnvelopeNotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.trim_text_start = false;
    config.trim_text_end = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let malformed = |reader: &quick_xml::Reader<&[u8]>, reason: String| Error::MalformedXml {
            reason,
            offset: reader.error_position(),
        };
        let event = reader
            .read_event()
            .map_err(|e| malformed(&reader, e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(malformed(&reader, "there is a second root element".into()));
            }
            Event::Start(s) => {
                if stack.len() >= max_depth {
                    return Err(Error::XmlTooDeep { limit: max_depth });
                }
                let e = start_element(&s).map_err(|r| malformed(&reader, r))?;
                stack.push(e);
            }
            Event::Empty(s) => {
                if stack.len() >= max_depth {
                    return Err(Error::XmlTooDeep { limit: max_depth });
                }
                let e = start_element(&s).map_err(|r| malformed(&reader, r))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(malformed(&reader, "an end tag with no start tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let t = t.xml10_content();
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(malformed(&reader, "text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let c = c.xml10_content();
                if let Some(e) = stack.last_mut() {
                    e.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.xml10_content();
                let ch = resolve_reference(&name).ok_or_else(|| {
                    malformed(
                        &reader,
                        format!("the entity `&{name};` is not one XML predefines"),
                    )
                })?;
                if let Some(e) = stack.last_mut() {
                    e.text.push(ch);
                }
            }
            Event::DocType(_) => return Err(Error::DoctypeForbidden),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Error::MalformedXml {
            reason: "the document ends inside an element".into(),
            offset: text.len() as u64,
        });
    }
    root.ok_or(Error::MalformedXml {
        reason: "there is no root element".into(),
        offset: 0,
    })
}

fn start_element(s: &BytesStart<'_>) -> Result<Element, String> {
    let qname = s.name().0.to_string();
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = a.key.0;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.push((local(key).to_string(), value.into_owned()));
    }
    Ok(Element {
        name: local(&qname).to_string(),
        qname,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code).filter(|&c| c != '\0')
        }
    }
}

/// Builds XML text. Element and attribute names are trusted (they are this crate's
/// constants); text and attribute values are escaped.
pub(crate) struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"),
        }
    }

    fn start_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&quick_xml::escape::escape(*v));
            self.out.push('"');
        }
    }

    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push('>');
    }

    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push_str("/>");
    }

    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name attrs>text</name>`.
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.out.push_str(&quick_xml::escape::escape(text));
        self.close(name);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_names_and_text() {
        let e = parse(
            br#"<?xml version="1.0"?><a:Root xmlns:a="x" b:k="v&amp;w"><c:Kid> t&lt;1 </c:Kid><Kid/></a:Root>"#,
            10,
        )
        .unwrap();
        assert_eq!(e.name, "Root");
        assert_eq!(e.attr("k"), Some("v&w"));
        assert_eq!(e.child_text("Kid"), Some("t<1"));
        assert_eq!(e.children("Kid").count(), 2);
    }

    #[test]
    fn hostile_documents_are_refused() {
        let doctype = br#"<!DOCTYPE r [<!ENTITY x "boom">]><r>&x;</r>"#;
        assert!(matches!(parse(doctype, 10), Err(Error::DoctypeForbidden)));
        assert!(matches!(
            parse(b"<r>&x;</r>", 10),
            Err(Error::MalformedXml { .. })
        ));
        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert!(matches!(
            parse(deep.as_bytes(), 10),
            Err(Error::XmlTooDeep { limit: 10 })
        ));
        assert!(matches!(
            parse(b"<a><b></a>", 10),
            Err(Error::MalformedXml { .. })
        ));
        assert!(matches!(
            parse(b"<a/><b/>", 10),
            Err(Error::MalformedXml { .. })
        ));
        assert!(matches!(parse(b"<a>", 10), Err(Error::MalformedXml { .. })));
        assert!(matches!(
            parse(b"\xff<a/>", 10),
            Err(Error::EnvelopeNotUtf8 { offset: 0 })
        ));
    }

    #[test]
    fn writer_escapes() {
        let mut w = XmlWriter::new();
        w.leaf("x", &[("a", "\"<&>")], "<&>");
        let s = w.finish();
        let e = parse(s.as_bytes(), 10).unwrap();
        assert_eq!(e.attr("a"), Some("\"<&>"));
        assert_eq!(e.text(), Some("<&>"));
    }
}
