//! The XML layer: a hardened reader that builds a lossless element tree, and a writer.
//!
//! Everything above this module (the typed model, validation, `inspect`) works on the tree
//! built here, or reads the steps of the same [`EventReader`] directly (the typed model's
//! fast path). That reader is this crate's own tokenizer, so this is the one place where
//! untrusted bytes meet a parser. It is strict about what it accepts — what libxml2 calls
//! well-formed, less what HL7 V3 never needs (`tests/wellformed.rs` compares the two on
//! thousands of damaged documents):
//!
//! - **No DOCTYPE.** A document type declaration is the door to external entities (XXE) and
//!   entity expansion bombs ("billion laughs"). HL7 V3 messages never carry one, so any
//!   DOCTYPE is refused outright, and so is any entity reference other than the five that
//!   XML predefines and numeric character references.
//! - **Bounded.** The whole document, the nesting depth, the number of attributes on one
//!   element, and the length of names are all limited ([`Limits`]); going past a limit is an
//!   error that names the limit, never a slow death by memory.
//! - **UTF-8 only**, checked; invalid bytes are an error with their position.
//! - **Truncation is an error**: a document that ends with elements still open says which.
//!
//! The tree keeps everything a message means: element and attribute names exactly as written
//! (prefix included), attribute order, namespace declarations (as attributes), text, comments
//! and CDATA (as text). It drops only what carries no meaning in HL7 V3: the XML declaration
//! and whitespace-only text between elements. So reading, writing and reading again gives the
//! same tree, which is the property the typed model builds on.
//!
//! Each element remembers the byte offset of its start tag ([`Pos`]), so that validation can
//! point at a line and column. Positions are not part of equality: two trees that say the
//! same thing are equal wherever they came from.

use std::borrow::Cow;
use std::fmt;

pub use crate::name::Name;
pub use crate::scan::{Ev, EventReader, StartTag};

/// Limits applied while reading. The defaults are generous for real GP2GP traffic (the
/// largest real extracts are tens of megabytes) and small enough to stop hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted. Real extracts nest about 20 deep.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 512 * 1024 * 1024,
            max_depth: 256,
            max_attributes: 64,
            max_name_len: 256,
        }
    }
}

/// Byte offset of an element's start tag in the document it was read from.
///
/// Equality ignores positions: `Pos(3) == Pos(99)`. A tree built in memory has `Pos::NONE`.
#[derive(Clone, Copy, Default)]
pub struct Pos(pub u64);

impl Pos {
    /// The position of an element that was not read from a document.
    pub const NONE: Pos = Pos(u64::MAX);

    /// Whether this position points into a document.
    pub fn is_known(self) -> bool {
        self.0 != u64::MAX
    }
}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl fmt::Debug for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_known() {
            write!(f, "@{}", self.0)
        } else {
            f.write_str("@-")
        }
    }
}

/// An attribute as written: qualified name and unescaped value.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: Name,
    pub value: String,
}

impl Attribute {
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    /// Character data, unescaped (CDATA sections are read as text too).
    Text(String),
    Comment(String),
}

/// An element: its qualified name as written, attributes in order, and children.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: Name,
    pub attrs: Vec<Attribute>,
    pub children: Vec<Node>,
    pub pos: Pos,
}

impl Element {
    /// A new empty element, not read from any document.
    pub fn new(name: &str) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
            pos: Pos::NONE,
        }
    }

    /// Builder-style: adds an attribute.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attrs.push(Attribute::new(name, value));
        self
    }

    /// Builder-style: adds a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder-style: adds text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// The name without its prefix: `hl7:id` → `id`.
    pub fn local_name(&self) -> &str {
        local_name(&self.name)
    }

    /// The prefix of the name, if any: `hl7:id` → `Some("hl7")`.
    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once(':').map(|(p, _)| p)
    }

    /// The value of the attribute with this (qualified) name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| &*a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.local_name() == local)
    }

    /// All child elements with this local name.
    pub fn children_named<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.local_name() == local)
    }

    /// Follows a path of local names from this element: `e.path(&["a", "b"])`.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for n in names {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    /// The concatenated text directly inside this element (not in its descendants).
    pub fn text(&self) -> Cow<'_, str> {
        let mut texts = self.children.iter().filter_map(|n| match n {
            Node::Text(t) => Some(t.as_str()),
            _ => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(a), Some(b)) => {
                let mut s = String::from(a);
                s.push_str(b);
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }

    /// Visits this element and every descendant element, depth first, in document order.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Element, usize)) {
        // An explicit stack, so that even a tree deeper than the thread's stack is safe.
        let mut stack: Vec<(&Element, usize)> = vec![(self, 0)];
        while let Some((e, depth)) = stack.pop() {
            f(e, depth);
            for child in e.children.iter().rev() {
                if let Node::Element(c) = child {
                    stack.push((c, depth + 1));
                }
            }
        }
    }
}

/// `prefix:local` → `local`.
pub fn local_name(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, l)| l)
}

/// What went wrong reading a document. Every variant carries the byte offset where the
/// problem was found; [`LineIndex`] turns it into a line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error(
        "the document is {size} bytes, over the limit of {limit} bytes; split it or raise the limit"
    )]
    TooLarge { size: u64, limit: usize },
    #[error("the document is empty: there is no root element")]
    Empty,
    #[error(
        "DOCTYPE declarations are refused (they can define entities: XXE, entity expansion); HL7 V3 messages never need one"
    )]
    Doctype { offset: u64 },
    #[error(
        "entity reference '&{name};' is refused: only &lt; &gt; &amp; &quot; &apos; and numeric character references are allowed"
    )]
    Entity { name: String, offset: u64 },
    #[error("elements nest deeper than the limit of {limit}")]
    TooDeep { limit: usize, offset: u64 },
    #[error("an element has more than {limit} attributes")]
    TooManyAttributes { limit: usize, offset: u64 },
    #[error("a name is longer than the limit of {limit} bytes")]
    NameTooLong { limit: usize, offset: u64 },
    #[error("the document is not valid UTF-8 at byte {offset}; HL7 V3 messages must be UTF-8")]
    Utf8 { offset: u64 },
    #[error("the document ends before <{open}> is closed: it looks truncated")]
    Truncated { open: String, offset: u64 },
    #[error("text or markup after the root element has ended")]
    TrailingContent { offset: u64 },
    #[error("more than one root element")]
    SecondRoot { offset: u64 },
    #[error("not well-formed XML: {message}")]
    Syntax { message: String, offset: u64 },
}

impl XmlError {
    /// Byte offset of the problem in the document, where one is known.
    pub fn offset(&self) -> Option<u64> {
        match self {
            XmlError::TooLarge { .. } | XmlError::Empty => None,
            XmlError::Doctype { offset }
            | XmlError::Entity { offset, .. }
            | XmlError::TooDeep { offset, .. }
            | XmlError::TooManyAttributes { offset, .. }
            | XmlError::NameTooLong { offset, .. }
            | XmlError::Utf8 { offset }
            | XmlError::Truncated { offset, .. }
            | XmlError::TrailingContent { offset }
            | XmlError::SecondRoot { offset }
            | XmlError::Syntax { offset, .. } => Some(*offset),
        }
    }
}

/// Turns byte offsets into 1-based line and column numbers (columns count characters).
pub struct LineIndex<'a> {
    text: &'a [u8],
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text).map(|i| i + 1));
        LineIndex { text, line_starts }
    }

    /// `(line, column)`, both from 1.
    pub fn line_col(&self, offset: u64) -> (usize, usize) {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text[start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        (line, col + 1)
    }
}

/// Reads a whole document into a tree, with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    parse_with(input, &Limits::default())
}

/// Reads a whole document into a tree.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    let mut r = EventReader::new(input, limits)?;
    let (start, empty, offset) = r.root_start()?;
    let root = r.element(&start, empty, offset)?;
    r.expect_end()?;
    Ok(root)
}

impl<'a> EventReader<'a> {
    /// Reads up to the root element's start tag.
    pub fn root_start(&mut self) -> Result<(StartTag<'a>, bool, u64), XmlError> {
        loop {
            match self.next_event()? {
                Ev::Start(s, empty, offset) => return Ok((s, empty, offset)),
                Ev::Text(t) if t.bytes().all(|b| b.is_ascii_whitespace()) => {}
                Ev::Text(_) => {
                    return Err(XmlError::Syntax {
                        message: "text before the root element".into(),
                        offset: self.position(),
                    });
                }
                Ev::Comment(_) => {}
                Ev::End => {
                    return Err(XmlError::Syntax {
                        message: "an end tag with no start tag".into(),
                        offset: self.position(),
                    });
                }
                Ev::Eof => return Err(XmlError::Empty),
            }
        }
    }

    /// Reads what follows the root element: only whitespace and comments may.
    pub fn expect_end(&mut self) -> Result<(), XmlError> {
        loop {
            let offset = self.position();
            match self.next_event()? {
                Ev::Eof => return Ok(()),
                Ev::Comment(_) => {}
                Ev::Text(t) if t.bytes().all(|b| b.is_ascii_whitespace()) => {}
                Ev::Start(..) => return Err(XmlError::SecondRoot { offset }),
                Ev::Text(_) | Ev::End => return Err(XmlError::TrailingContent { offset }),
            }
        }
    }

    /// The attributes of a start tag, unescaped and checked against the limits.
    pub fn attributes(
        &mut self,
        start: &StartTag<'_>,
        offset: u64,
    ) -> Result<Vec<Attribute>, XmlError> {
        let mut attrs = Vec::with_capacity(self.attribute_count(start)?);
        self.for_each_attribute(start, offset, |name, value| {
            attrs.push(Attribute {
                name: Name::new(name),
                value,
            })
        })?;
        Ok(attrs)
    }

    /// Reads a whole element (its start tag already read) into a tree.
    pub fn element(
        &mut self,
        start: &StartTag<'_>,
        empty: bool,
        offset: u64,
    ) -> Result<Element, XmlError> {
        let mut e = Element {
            name: Name::new(start.name()),
            attrs: self.attributes(start, offset)?,
            children: Vec::new(),
            pos: Pos(offset),
        };
        if empty {
            return Ok(e);
        }
        // Children gather on the reader's stack of nodes (shared by every element being
        // read) and move into the element at its end, in one vector of the right size.
        let mark = self.nodes.len();
        let read = self.element_content(&e);
        let children: Vec<Node> = self.nodes.drain(mark..).collect();
        read?;
        e.children = children;
        tidy_whitespace(&mut e);
        Ok(e)
    }

    /// Reads the content of `e` onto the stack of nodes, up to its end tag.
    fn element_content(&mut self, e: &Element) -> Result<(), XmlError> {
        // Text pieces (split by references and CDATA) are merged into one node before
        // anything is decided about it.
        let mut pending: Option<Cow<'_, str>> = None;
        let mut has_element = false;
        let flush =
            |nodes: &mut Vec<Node>, pending: &mut Option<Cow<'_, str>>, has_element: bool| {
                if let Some(t) = pending.take() {
                    // Indentation in element content is dropped (see `tidy_whitespace`); when
                    // an element child is already here, it is dropped before it costs anything.
                    if !(has_element && t.bytes().all(|b| b.is_ascii_whitespace())) {
                        nodes.push(Node::Text(t.into_owned()));
                    }
                }
            };
        loop {
            match self.next_event()? {
                Ev::Start(s, empty, off) => {
                    flush(&mut self.nodes, &mut pending, has_element);
                    let child = self.element(&s, empty, off)?;
                    self.nodes.push(Node::Element(child));
                    has_element = true;
                }
                Ev::Text(t) => match &mut pending {
                    Some(p) => p.to_mut().push_str(&t),
                    None => pending = Some(t),
                },
                Ev::Comment(c) => {
                    flush(&mut self.nodes, &mut pending, has_element);
                    self.nodes.push(Node::Comment(c));
                }
                Ev::End => {
                    flush(&mut self.nodes, &mut pending, has_element);
                    return Ok(());
                }
                Ev::Eof => {
                    return Err(XmlError::Truncated {
                        open: innermost_open(e),
                        offset: self.position(),
                    });
                }
            }
        }
    }
}

/// The name of the element a truncated document stopped in: the deepest one still open.
/// (Elements are built bottom-up, so when the end comes early the innermost open element
/// is the one whose reader saw it first; callers report from there.)
fn innermost_open(e: &Element) -> String {
    e.name.to_string()
}

/// Drops whitespace-only text from element content (an element that has child elements),
/// where it is only indentation. Text inside text-only elements is kept as it is.
pub(crate) fn tidy_whitespace(e: &mut Element) {
    let has_elements = e.children.iter().any(|n| matches!(n, Node::Element(_)));
    if has_elements {
        e.children
            .retain(|n| !matches!(n, Node::Text(t) if t.bytes().all(|b| b.is_ascii_whitespace())));
    }
}

/// How the writer lays out the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// No whitespace between elements: smallest and fastest.
    #[default]
    Compact,
    /// Elements with element content are indented by two spaces per level.
    Indented,
}

/// Writes XML into a `String`. Start tags are kept open until the first child or the end,
/// so that empty elements are written as `<x/>`.
pub struct Writer {
    out: String,
    layout: Layout,
    depth: usize,
    /// A start tag has been written without its closing `>`.
    open_tag: bool,
    /// The element at each open depth has had element children (for indentation).
    had_children: Vec<bool>,
    /// Inside mixed content (text beside elements) nothing is indented: whitespace there
    /// would change the text.
    mixed: usize,
    /// The prefix typed elements are written with (`hl7` when the document binds the HL7
    /// namespace to a prefix rather than making it the default).
    typed_prefix: Option<String>,
}

impl Writer {
    pub fn new(layout: Layout) -> Self {
        Writer::with_capacity(layout, 4096)
    }

    pub fn with_capacity(layout: Layout, capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if layout == Layout::Indented {
            out.push('\n');
        }
        Writer {
            out,
            layout,
            depth: 0,
            open_tag: false,
            had_children: Vec::new(),
            mixed: 0,
            typed_prefix: None,
        }
    }

    /// A writer for a fragment: no XML declaration.
    pub fn fragment(layout: Layout) -> Self {
        Writer {
            out: String::new(),
            layout,
            depth: 0,
            open_tag: false,
            had_children: Vec::new(),
            mixed: 0,
            typed_prefix: None,
        }
    }

    fn close_open_tag(&mut self) {
        if self.open_tag {
            self.out.push('>');
            self.open_tag = false;
        }
    }

    fn newline_indent(&mut self, depth: usize) {
        if self.layout == Layout::Indented && self.mixed == 0 {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str("  ");
            }
        }
    }

    /// Starts an element. Follow with [`attr`](Self::attr) calls, children, then
    /// [`end`](Self::end) with the same name.
    pub fn start(&mut self, name: &str) {
        self.close_open_tag();
        if let Some(parent) = self.had_children.last_mut() {
            *parent = true;
            let d = self.depth;
            self.newline_indent(d);
        }
        self.out.push('<');
        self.out.push_str(name);
        self.open_tag = true;
        self.depth += 1;
        self.had_children.push(false);
    }

    /// Sets the prefix that typed elements are written with (see [`start_typed`]).
    ///
    /// [`start_typed`]: Self::start_typed
    pub fn set_typed_prefix(&mut self, prefix: Option<&str>) {
        self.typed_prefix = prefix.map(str::to_owned);
    }

    /// Starts an element of the typed model: `name` is a local name, written with the
    /// document's HL7 prefix when it has one.
    pub fn start_typed(&mut self, name: &str) {
        match self.typed_prefix.take() {
            Some(p) => {
                self.start(&format!("{p}:{name}"));
                self.typed_prefix = Some(p);
            }
            None => self.start(name),
        }
    }

    /// Ends an element started with [`start_typed`](Self::start_typed).
    pub fn end_typed(&mut self, name: &str) {
        match self.typed_prefix.take() {
            Some(p) => {
                self.end(&format!("{p}:{name}"));
                self.typed_prefix = Some(p);
            }
            None => self.end(name),
        }
    }

    /// Adds an attribute to the element just started.
    pub fn attr(&mut self, name: &str, value: &str) {
        debug_assert!(self.open_tag, "attribute written outside a start tag");
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value, true);
        self.out.push('"');
    }

    /// Writes text inside the current element.
    pub fn text(&mut self, text: &str) {
        self.close_open_tag();
        escape_into(&mut self.out, text, false);
    }

    /// Writes a comment inside the current element.
    pub fn comment(&mut self, text: &str) {
        self.close_open_tag();
        // "--" may not appear inside a comment; keep the text's meaning readable.
        self.out.push_str("<!--");
        self.out.push_str(&text.replace("--", "- -"));
        self.out.push_str("-->");
    }

    /// Ends the current element.
    pub fn end(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        let had_children = self.had_children.pop().unwrap_or(false);
        if self.open_tag {
            self.out.push_str("/>");
            self.open_tag = false;
            return;
        }
        if had_children {
            let d = self.depth;
            self.newline_indent(d);
        }
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Writes a whole element from the tree.
    pub fn element(&mut self, e: &Element) {
        self.start(&e.name);
        for a in &e.attrs {
            self.attr(&a.name, &a.value);
        }
        let mixed = e.children.iter().any(|n| matches!(n, Node::Text(_)));
        self.begin_mixed(mixed);
        self.nodes(&e.children);
        self.end_mixed(mixed);
        self.end(&e.name);
    }

    /// Marks the start of an element's content that holds text beside elements (when
    /// `mixed`); pair with [`end_mixed`](Self::end_mixed) before ending the element.
    pub fn begin_mixed(&mut self, mixed: bool) {
        if mixed {
            self.mixed += 1;
        }
    }

    /// See [`begin_mixed`](Self::begin_mixed).
    pub fn end_mixed(&mut self, mixed: bool) {
        if mixed {
            self.mixed = self.mixed.saturating_sub(1);
            if let Some(h) = self.had_children.last_mut() {
                // The end tag must not be indented either.
                *h = false;
            }
        }
    }

    /// Writes a sequence of nodes.
    pub fn nodes(&mut self, nodes: &[Node]) {
        for n in nodes {
            self.node(n);
        }
    }

    /// Writes one node.
    pub fn node(&mut self, n: &Node) {
        match n {
            Node::Element(c) => self.element(c),
            Node::Text(t) => self.text(t),
            Node::Comment(c) => self.comment(c),
        }
    }

    /// The document written so far (complete once every element has ended).
    pub fn finish(mut self) -> String {
        if self.layout == Layout::Indented {
            self.out.push('\n');
        }
        self.out
    }
}

/// Escapes `&`, `<`, `>` (and `"` plus whitespace controls in attributes).
fn escape_into(out: &mut String, s: &str, attr: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if attr => "&quot;",
            b'\t' if attr => "&#9;",
            b'\n' if attr => "&#10;",
            b'\r' => "&#13;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Writes a tree as a complete document.
pub fn to_string(root: &Element, layout: Layout) -> String {
    let mut w = Writer::new(layout);
    w.element(root);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element, XmlError> {
        parse(s.as_bytes())
    }

    #[test]
    fn reads_names_attributes_text_and_positions() {
        let doc = "<?xml version=\"1.0\"?>\n<a xmlns=\"urn:hl7-org:v3\" x=\"1 &amp; 2\">\n  <hl7:b y='&lt;'>t&#233;xt</hl7:b>\n  <c/>\n</a>";
        let root = p(doc).unwrap();
        assert_eq!(&*root.name, "a");
        assert_eq!(root.attr("x"), Some("1 & 2"));
        assert_eq!(root.children.len(), 2, "indentation whitespace is dropped");
        let b = root.child("b").unwrap();
        assert_eq!(b.prefix(), Some("hl7"));
        assert_eq!(b.attr("y"), Some("<"));
        assert_eq!(b.text(), "téxt");
        let (line, col) = LineIndex::new(doc.as_bytes()).line_col(b.pos.0);
        assert_eq!((line, col), (3, 3));
    }

    #[test]
    fn write_then_read_gives_the_same_tree() {
        let doc = r#"<r a="q&quot;uote" b="tab&#9;nl&#10;"><x>1 &lt; 2 &amp; 3 &gt; 0</x><!-- note --><y><![CDATA[<raw>]]></y><z/>mixed <i>in</i> text</r>"#;
        let first = p(doc).unwrap();
        for layout in [Layout::Compact, Layout::Indented] {
            let written = to_string(&first, layout);
            let again = p(&written).unwrap();
            assert_eq!(first, again, "layout {layout:?}: {written}");
        }
        assert_eq!(first.attr("b"), Some("tab\tnl\n"));
        assert_eq!(first.child("y").unwrap().text(), "<raw>");
    }

    #[test]
    fn doctype_and_custom_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert!(matches!(p(xxe), Err(XmlError::Doctype { .. })));
        let lol = r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(p(lol), Err(XmlError::Doctype { .. })));
        assert!(matches!(p("<a>&nbsp;</a>"), Err(XmlError::Entity { .. })));
        assert!(matches!(
            p("<a b=\"&foo;\"/>"),
            Err(XmlError::Entity { .. })
        ));
    }

    #[test]
    fn depth_size_and_attribute_limits_hold() {
        let deep = "<a>".repeat(300) + &"</a>".repeat(300);
        assert!(matches!(
            p(&deep),
            Err(XmlError::TooDeep { limit: 256, .. })
        ));
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with(b"<a>0123456789</a>", &limits),
            Err(XmlError::TooLarge { .. })
        ));
        let many: String = (0..100).map(|i| format!(" a{i}=\"1\"")).collect();
        assert!(matches!(
            p(&format!("<a{many}/>")),
            Err(XmlError::TooManyAttributes { .. })
        ));
    }

    #[test]
    fn truncated_invalid_utf8_and_trailing_content_are_errors() {
        match p("<a><b><c>text") {
            Err(XmlError::Truncated { open, .. }) => assert_eq!(open, "c"),
            other => panic!("{other:?}"),
        }
        let mut bad = b"<a>ok".to_vec();
        bad.push(0xFF);
        bad.extend_from_slice(b"</a>");
        assert_eq!(parse(&bad), Err(XmlError::Utf8 { offset: 5 }));
        assert!(matches!(p("<a/><b/>"), Err(XmlError::SecondRoot { .. })));
        assert!(matches!(
            p("<a/>junk"),
            Err(XmlError::TrailingContent { .. })
        ));
        assert!(matches!(p(""), Err(XmlError::Empty)));
        assert!(matches!(p("<a></b>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(
            p("<a x=\"1\" x=\"2\"/>"),
            Err(XmlError::Syntax { .. })
        ));
    }

    #[test]
    fn positions_do_not_affect_equality() {
        let a = p("<a><b/></a>").unwrap();
        let b = p("<a>\n\n   <b/></a>").unwrap();
        assert_eq!(a, b);
        assert_ne!(a.child("b").unwrap().pos.0, b.child("b").unwrap().pos.0);
    }
}
