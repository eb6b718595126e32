//! How the typed model is built on the tree, losslessly.
//!
//! Every typed HL7 class (an `ObservationStatement`, an `II`, a transmission wrapper) is a
//! struct whose fields are the attributes and child elements the standard defines, declared
//! in the schema's order with the [`hl7_class!`](crate::hl7_class) macro. Reading moves each child of the
//! tree element into its field; anything the struct does not type — an attribute or element
//! a newer schema added, a supplier's extension, a comment, text — goes into [`Extra`] with
//! the index it had among its siblings. Writing emits the typed fields in schema order and
//! slips each extra back in at its index. So:
//!
//! - read → write → read gives an identical model, whatever the input held;
//! - schema-valid input stays schema-valid, because typed children are written in the
//!   schema's order and untyped ones return to where they were;
//! - reading into the model never fails: the tree is already well-formed XML, and whether
//!   it is a *valid* message is the validator's question, not the reader's.
//!
//! A field appearing more often than the schema allows (a second `code`, say) is not lost
//! either: the surplus goes into `Extra`. So does a child that comes after one the schema
//! puts later (`creationTime` after `versionCode`): typed, it would be written back in
//! schema order, and the document would not read back the same.

use std::borrow::Cow;

pub use crate::xml::StartTag;

use crate::xml::{Attribute, Element, EventReader, Node, Writer, XmlError};

/// A typed class read from a tree element, or straight from the reader.
pub trait FromXml: Sized {
    /// Types an element of a tree. Never fails: what is not typed is kept in `extra`.
    fn from_xml(e: Element) -> Self;

    /// Reads the element whose start tag was just read, without building a tree first
    /// (the fast path). Gives exactly what `from_xml` gives on the same element's tree.
    fn from_events(
        r: &mut EventReader<'_>,
        start: &StartTag<'_>,
        empty: bool,
        offset: u64,
    ) -> Result<Self, XmlError> {
        Ok(Self::from_xml(r.element(start, empty, offset)?))
    }

    /// [`from_events`](Self::from_events) into a box. Classes of the model read straight
    /// into the box, so that a large class is not moved once read.
    fn boxed_from_events(
        r: &mut EventReader<'_>,
        start: &StartTag<'_>,
        empty: bool,
        offset: u64,
    ) -> Result<Box<Self>, XmlError> {
        Self::from_events(r, start, empty, offset).map(Box::new)
    }

    /// [`from_events`](Self::from_events) onto the end of `list` (read in place too).
    fn push_from_events(
        list: &mut Vec<Self>,
        r: &mut EventReader<'_>,
        start: &StartTag<'_>,
        empty: bool,
        offset: u64,
    ) -> Result<(), XmlError> {
        list.push(Self::from_events(r, start, empty, offset)?);
        Ok(())
    }
}

/// Tracks an element's content while a typed class is read from events, so that text and
/// whitespace end up exactly where the tree reader would put them (see
/// `xml::tidy_whitespace`): adjacent text merged, indentation dropped, extras numbered by
/// their index among the element's children.
#[derive(Default)]
pub struct Content<'a> {
    idx: usize,
    /// Text read but not yet placed; borrowed from the input until it must be owned, so
    /// that indentation, which is nearly always dropped, never costs an allocation.
    pending: Option<Cow<'a, str>>,
    seen_element: bool,
    /// Indices of whitespace-only texts kept while no element had been seen; an element
    /// arriving later means they were indentation after all.
    tentative: Vec<usize>,
}

impl<'a> Content<'a> {
    /// A piece of text.
    pub fn text(&mut self, piece: Cow<'a, str>) {
        // Pieces (text split by references) are merged first: whether a text node is only
        // indentation is a question about the whole node, never about one piece of it.
        match &mut self.pending {
            Some(p) => p.to_mut().push_str(&piece),
            None => self.pending = Some(piece),
        }
    }

    #[inline]
    fn flush(&mut self, extra: &mut Extra, element_next: bool) {
        if self.pending.is_some() {
            self.flush_pending(extra, element_next);
        }
    }

    #[inline(never)]
    fn flush_pending(&mut self, extra: &mut Extra, element_next: bool) {
        if let Some(t) = self.pending.take() {
            let blank = is_blank(&t);
            if blank && (self.seen_element || element_next) {
                return;
            }
            if blank {
                self.tentative.push(self.idx);
            }
            extra.children.push((self.idx, Node::Text(t.into_owned())));
            self.idx += 1;
        }
    }

    /// A child element starts: call before reading it.
    pub fn element(&mut self, extra: &mut Extra) {
        self.flush(extra, true);
        if !self.seen_element {
            self.seen_element = true;
            if !self.tentative.is_empty() {
                let removed = std::mem::take(&mut self.tentative);
                extra
                    .children
                    .retain(|(i, n)| !(matches!(n, Node::Text(_)) && removed.contains(i)));
                for (i, _) in &mut extra.children {
                    *i -= removed.iter().filter(|&&r| r < *i).count();
                }
                self.idx -= removed.len();
            }
        }
    }

    /// The child element just read was typed.
    pub fn typed(&mut self) {
        self.idx += 1;
    }

    /// The child element just read was not typed: keep it.
    pub fn untyped(&mut self, extra: &mut Extra, e: Element) {
        extra.children.push((self.idx, Node::Element(e)));
        self.idx += 1;
    }

    /// A comment.
    pub fn comment(&mut self, extra: &mut Extra, c: String) {
        self.flush(extra, false);
        extra.children.push((self.idx, Node::Comment(c)));
        self.idx += 1;
    }

    /// The element ends.
    pub fn end(&mut self, extra: &mut Extra) {
        self.flush(extra, false);
    }
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_whitespace())
}

/// A typed class written as an element named `name`.
pub trait ToXml {
    fn write_xml(&self, name: &str, w: &mut Writer);

    /// This value as a tree element (handy in tests and for generic tools).
    fn to_element(&self, name: &str) -> Element {
        let mut w = Writer::fragment(crate::xml::Layout::Compact);
        self.write_xml(name, &mut w);
        let text = w.finish();
        // A fragment we just wrote is well-formed by construction.
        crate::xml::parse(text.as_bytes()).unwrap_or_else(|_| Element::new(name))
    }
}

/// The parts of an element that its typed struct does not name: unknown attributes, and
/// unknown children with their index among the element's children.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra {
    pub attrs: Vec<Attribute>,
    pub children: Vec<(usize, Node)>,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.children.is_empty()
    }

    /// Text held directly in the element (for text-bearing data types such as `ST`).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|(_, n)| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the element holds text beside its elements.
    pub fn has_text(&self) -> bool {
        self.children
            .iter()
            .any(|(_, n)| matches!(n, Node::Text(_)))
    }

    /// Replaces the element's text with `text` (keeping unknown elements).
    pub fn set_text(&mut self, text: impl Into<String>) {
        self.children.retain(|(_, n)| !matches!(n, Node::Text(_)));
        self.children.insert(0, (0, Node::Text(text.into())));
        // Indices of later extras stay as they were: they were counted with any text node.
    }

    /// The unknown child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|(_, n)| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }
}

/// Interleaves [`Extra`] children back among typed ones while writing.
pub struct ExtraCursor<'a> {
    extras: &'a [(usize, Node)],
    next: usize,
    written: usize,
}

impl<'a> ExtraCursor<'a> {
    pub fn new(extra: &'a Extra) -> Self {
        ExtraCursor {
            extras: &extra.children,
            next: 0,
            written: 0,
        }
    }

    /// Writes every extra whose index has come, then counts one typed child.
    pub fn before_typed(&mut self, w: &mut Writer) {
        self.flush_due(w);
        self.written += 1;
    }

    fn flush_due(&mut self, w: &mut Writer) {
        while let Some((idx, node)) = self.extras.get(self.next) {
            if *idx > self.written {
                break;
            }
            w.node(node);
            self.next += 1;
            self.written += 1;
        }
    }

    /// Writes the extras that are left.
    pub fn finish(mut self, w: &mut Writer) {
        for (_, node) in &self.extras[self.next..] {
            w.node(node);
        }
        self.next = self.extras.len();
    }
}

/// A child element's name belongs to the HL7 namespace as this model reads it: unprefixed
/// (the default namespace of an HL7 message) or with the conventional `hl7:` prefix.
pub fn is_hl7_child(e: &Element, local: &str) -> bool {
    is_hl7_name(&e.name, local)
}

/// [`is_hl7_child`] on a name.
pub fn is_hl7_name(name: &str, local: &str) -> bool {
    hl7_local(name) == local
}

/// The local part of a name in the HL7 namespace as this model reads it (unprefixed or
/// `hl7:`), or `""` for a name with any other prefix.
pub fn hl7_local(name: &str) -> &str {
    match name.as_bytes().iter().position(|&b| b == b':') {
        None => name,
        Some(3) if name.starts_with("hl7") => &name[4..],
        Some(_) => "",
    }
}

/// The name to compare with the model's local names: without an `hl7:` prefix. A name
/// with any other prefix keeps it, and so matches none of them (they hold no colon, which
/// [`hl7_class!`](crate::hl7_class) and [`hl7_choice!`](crate::hl7_choice) check as they
/// compile). Cheaper than [`hl7_local`]:
/// no search for a colon.
#[inline]
pub fn hl7_match_name(name: &str) -> &str {
    name.strip_prefix("hl7:").unwrap_or(name)
}

/// Whether a local name holds no colon (for the compile-time check in
/// [`hl7_class!`](crate::hl7_class)).
#[doc(hidden)]
pub const fn has_no_colon(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            return false;
        }
        i += 1;
    }
    true
}

impl<T: ToXml + ?Sized> ToXml for Box<T> {
    fn write_xml(&self, name: &str, w: &mut Writer) {
        (**self).write_xml(name, w)
    }
}

impl FromXml for Element {
    fn from_xml(e: Element) -> Self {
        e
    }
}

impl ToXml for Element {
    /// A generic element keeps its own name (prefix and all); `name` is what the parent
    /// expected and is used only for an element built without one.
    fn write_xml(&self, name: &str, w: &mut Writer) {
        if self.name.is_empty() {
            let mut e = self.clone();
            e.name = name.into();
            w.element(&e);
        } else {
            w.element(self);
        }
    }
}

/// Declares a typed HL7 class: a struct with attribute fields and child-element fields in
/// schema order, plus `extra`, and its lossless [`FromXml`] / [`ToXml`].
///
/// ```text
/// hl7_class! {
///     /// A statement reference.
///     pub struct StatementRef {
///         attrs { class_code: "classCode", mood_code: "moodCode" }
///         children { id: opt II = "id" }
///     }
/// }
/// ```
/// Child kinds: `opt T` (at most one, `Option<Box<T>>`: boxed, so that a statement with
/// twenty optional parts stays small to move), `many T` (`Vec<T>`), and `choice T`
/// (at most one element out of the choices of an [`hl7_choice!`](crate::hl7_choice) enum `T`; its name
/// literal is not used, write `"*"`).
#[macro_export]
macro_rules! hl7_class {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            attrs { $( $(#[$ameta:meta])* $afield:ident : $aname:literal ),* $(,)? }
            children { $( $(#[$cmeta:meta])* $cfield:ident : $kind:ident $cty:ty = $cname:literal ),* $(,)? }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $(#[$ameta])* #[doc = concat!("`@", $aname, "`")] pub $afield: Option<String>, )*
            $( $(#[$cmeta])* #[doc = concat!("`", $cname, "`")] pub $cfield: $crate::hl7_class!(@ty $kind $cty), )*
            /// What this struct does not type, kept so that nothing is lost.
            pub extra: $crate::typed::Extra,
        }

        // Child names are local names: `hl7_match_name` relies on it.
        const _: () = {
            $( assert!($crate::typed::has_no_colon($cname), "a child name holds a colon"); )*
        };

        impl $crate::typed::FromXml for $name {
            #[allow(unused_mut, unused_variables, unused_assignments)]
            fn from_xml(e: $crate::xml::Element) -> Self {
                let mut out = Self::default();
                for a in e.attrs {
                    match &*a.name {
                        $( $aname => out.$afield = Some(a.value), )*
                        _ => out.extra.attrs.push(a),
                    }
                }
                // The schema position of the last field filled: a child for an earlier
                // field is out of order, and kept as it is.
                let mut last_field = 0usize;
                for (idx, child) in e.children.into_iter().enumerate() {
                    match child {
                        $crate::xml::Node::Element(c) => {
                            let mut field = 0usize;
                            $(
                                field += 1;
                                if field >= last_field
                                    && $crate::hl7_class!(@matches c, $kind, $cty, $cname)
                                    && $crate::hl7_class!(@room out.$cfield, $kind)
                                {
                                    last_field = field;
                                    $crate::hl7_class!(@put out.$cfield, $kind, $cty, c);
                                    continue;
                                }
                            )*
                            out.extra.children.push((idx, $crate::xml::Node::Element(c)));
                        }
                        other => out.extra.children.push((idx, other)),
                    }
                }
                out
            }

            fn from_events(
                r: &mut $crate::xml::EventReader<'_>,
                start: &$crate::typed::StartTag<'_>,
                empty: bool,
                offset: u64,
            ) -> Result<Self, $crate::xml::XmlError> {
                let mut out = Self::default();
                out.read_events_into(r, start, empty, offset)?;
                Ok(out)
            }

            fn boxed_from_events(
                r: &mut $crate::xml::EventReader<'_>,
                start: &$crate::typed::StartTag<'_>,
                empty: bool,
                offset: u64,
            ) -> Result<Box<Self>, $crate::xml::XmlError> {
                let mut out = Box::<Self>::default();
                out.read_events_into(r, start, empty, offset)?;
                Ok(out)
            }

            fn push_from_events(
                list: &mut Vec<Self>,
                r: &mut $crate::xml::EventReader<'_>,
                start: &$crate::typed::StartTag<'_>,
                empty: bool,
                offset: u64,
            ) -> Result<(), $crate::xml::XmlError> {
                list.push(Self::default());
                match list.last_mut() {
                    Some(out) => out.read_events_into(r, start, empty, offset),
                    None => Ok(()),
                }
            }
        }

        impl $name {
            /// Reads the element whose start tag was just read into `self` (a default
            /// value, in the place where it will stay): see [`FromXml::from_events`].
            ///
            /// [`FromXml::from_events`]: $crate::typed::FromXml::from_events
            #[doc(hidden)]
            #[allow(unused_mut, unused_variables, unused_assignments)]
            pub fn read_events_into(
                &mut self,
                r: &mut $crate::xml::EventReader<'_>,
                start: &$crate::typed::StartTag<'_>,
                empty: bool,
                offset: u64,
            ) -> Result<(), $crate::xml::XmlError> {
                let out = self;
                r.for_each_attribute(start, offset, |name, value| match name {
                    $( $aname => out.$afield = Some(value), )*
                    _ => out.extra.attrs.push($crate::xml::Attribute { name: name.into(), value }),
                })?;
                if empty {
                    return Ok(());
                }
                let mut content = $crate::typed::Content::default();
                // As in `from_xml`: a child for a field before the last one filled is kept
                // as it is.
                let mut last_field = 0usize;
                loop {
                    match r.next_event()? {
                        $crate::xml::Ev::Start(s, empty, off) => {
                            content.element(&mut out.extra);
                            let qn: &str = s.name();
                            // The name without an `hl7:` prefix (a foreign prefix stays,
                            // and matches no field).
                            let local = $crate::typed::hl7_match_name(qn);
                            let mut field = 0usize;
                            $(
                                field += 1;
                                if field >= last_field
                                    && $crate::hl7_class!(@matches_name qn, local, $kind, $cty, $cname)
                                    && $crate::hl7_class!(@room out.$cfield, $kind)
                                {
                                    last_field = field;
                                    $crate::hl7_class!(@read out.$cfield, $kind, $cty, r, s, empty, off);
                                    content.typed();
                                    continue;
                                }
                            )*
                            let e = r.element(&s, empty, off)?;
                            content.untyped(&mut out.extra, e);
                        }
                        $crate::xml::Ev::Text(t) => content.text(t),
                        $crate::xml::Ev::Comment(c) => content.comment(&mut out.extra, c),
                        $crate::xml::Ev::End => {
                            content.end(&mut out.extra);
                            break;
                        }
                        $crate::xml::Ev::Eof => {
                            return Err($crate::xml::XmlError::Truncated {
                                open: start.name().to_string(),
                                offset: r.position(),
                            });
                        }
                    }
                }
                Ok(())
            }
        }

        impl $crate::typed::ToXml for $name {
            #[allow(unused_mut, unused_variables, unused_assignments)]
            fn write_xml(&self, name: &str, w: &mut $crate::xml::Writer) {
                w.start_typed(name);
                $( if let Some(v) = &self.$afield { w.attr($aname, v); } )*
                for a in &self.extra.attrs {
                    w.attr(&a.name, &a.value);
                }
                let mixed = self.extra.has_text();
                w.begin_mixed(mixed);
                let mut cursor = $crate::typed::ExtraCursor::new(&self.extra);
                $( $crate::hl7_class!(@write self.$cfield, $kind, $cname, cursor, w); )*
                cursor.finish(w);
                w.end_mixed(mixed);
                w.end_typed(name);
            }
        }
    };

    (@ty opt $t:ty) => { Option<Box<$t>> };
    (@ty many $t:ty) => { Vec<$t> };
    (@ty choice $t:ty) => { Option<$t> };

    (@matches $c:ident, choice, $t:ty, $n:literal) => { <$t>::is_choice(&$c) };
    (@matches_name $q:ident, $l:ident, choice, $t:ty, $n:literal) => { <$t>::is_choice_local($l) };
    (@matches_name $q:ident, $l:ident, $kind:ident, $t:ty, $n:literal) => { $l == $n };
    (@read $f:expr, many, $t:ty, $r:ident, $s:ident, $e:ident, $o:ident) => {
        <$t as $crate::typed::FromXml>::push_from_events(&mut $f, $r, &$s, $e, $o)?
    };
    (@read $f:expr, choice, $t:ty, $r:ident, $s:ident, $e:ident, $o:ident) => {
        $f = Some(<$t as $crate::typed::FromXml>::from_events($r, &$s, $e, $o)?)
    };
    (@read $f:expr, opt, $t:ty, $r:ident, $s:ident, $e:ident, $o:ident) => {
        $f = Some(<$t as $crate::typed::FromXml>::boxed_from_events($r, &$s, $e, $o)?)
    };
    (@matches $c:ident, $kind:ident, $t:ty, $n:literal) => { $crate::typed::is_hl7_child(&$c, $n) };

    (@room $f:expr, opt) => { $f.is_none() };
    (@room $f:expr, choice) => { $f.is_none() };
    (@room $f:expr, many) => { true };

    (@put $f:expr, choice, $t:ty, $c:ident) => {
        $f = Some(<$t as $crate::typed::FromXml>::from_xml($c))
    };
    (@put $f:expr, opt, $t:ty, $c:ident) => {
        $f = Some(Box::new(<$t as $crate::typed::FromXml>::from_xml($c)))
    };
    (@put $f:expr, many, $t:ty, $c:ident) => {
        $f.push(<$t as $crate::typed::FromXml>::from_xml($c))
    };

    (@write $f:expr, choice, $n:literal, $cursor:ident, $w:ident) => {
        $crate::hl7_class!(@write $f, opt, $n, $cursor, $w)
    };
    (@write $f:expr, opt, $n:literal, $cursor:ident, $w:ident) => {
        if let Some(v) = &$f {
            $cursor.before_typed($w);
            $crate::typed::ToXml::write_xml(v, $n, $w);
        }
    };
    (@write $f:expr, many, $n:literal, $cursor:ident, $w:ident) => {
        for v in &$f {
            $cursor.before_typed($w);
            $crate::typed::ToXml::write_xml(v, $n, $w);
        }
    };
}

/// Declares an HL7 "choice" — one element out of several, each named after its class (the
/// statements inside a `component`): an enum with one variant per choice, plus `Other` for
/// an element none of them names.
#[macro_export]
macro_rules! hl7_choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident ( $vty:ty ) = $vname:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant(Box<$vty>), )*
            /// An element that is none of the choices, kept as it was.
            Other($crate::xml::Element),
        }

        impl $name {
            /// The element name this choice is written with.
            pub fn element_name(&self) -> &str {
                match self {
                    $( $name::$variant(_) => $vname, )*
                    $name::Other(e) => &e.name,
                }
            }

            /// Whether `e` is one of the choices.
            pub fn is_choice(e: &$crate::xml::Element) -> bool {
                Self::is_choice_name(&e.name)
            }

            /// Whether an element of this name is one of the choices.
            pub fn is_choice_name(name: &str) -> bool {
                Self::is_choice_local($crate::typed::hl7_local(name))
            }

            /// Whether an element of this local name in the HL7 namespace (see
            /// [`hl7_local`](crate::typed::hl7_local)) is one of the choices.
            pub fn is_choice_local(local: &str) -> bool {
                matches!(local, $( $vname )|*)
            }
        }

        // Choice names are local names: `hl7_match_name` relies on it.
        const _: () = {
            $( assert!($crate::typed::has_no_colon($vname), "a choice name holds a colon"); )*
        };

        impl $crate::typed::FromXml for $name {
            fn from_xml(e: $crate::xml::Element) -> Self {
                $(
                    if $crate::typed::is_hl7_child(&e, $vname) {
                        return $name::$variant(Box::new(<$vty as $crate::typed::FromXml>::from_xml(e)));
                    }
                )*
                $name::Other(e)
            }

            fn from_events(
                r: &mut $crate::xml::EventReader<'_>,
                start: &$crate::typed::StartTag<'_>,
                empty: bool,
                offset: u64,
            ) -> Result<Self, $crate::xml::XmlError> {
                match $crate::typed::hl7_match_name(start.name()) {
                    $(
                        $vname => Ok($name::$variant(
                            <$vty as $crate::typed::FromXml>::boxed_from_events(r, start, empty, offset)?,
                        )),
                    )*
                    _ => Ok($name::Other(r.element(start, empty, offset)?)),
                }
            }
        }

        impl $crate::typed::ToXml for $name {
            fn write_xml(&self, _name: &str, w: &mut $crate::xml::Writer) {
                match self {
                    $( $name::$variant(v) => $crate::typed::ToXml::write_xml(&**v, $vname, w), )*
                    $name::Other(e) => w.element(e),
                }
            }
        }
    };
}
