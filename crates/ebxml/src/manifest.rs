//! `eb:Manifest`: the list of what a message carries, and GP2GP's attachment descriptions.

use std::fmt;

use crate::Error;

/// `eb:Manifest`: one [`Reference`] per payload, in order. The HL7 payload comes first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The references, in the order written.
    pub references: Vec<Reference>,
}

/// `eb:Reference`: one payload of the message, here or elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `xlink:href`: where the payload is.
    pub href: Href,
    /// `eb:id`, an identifier senders give some references (GP2GP puts the document id here).
    pub id: Option<String>,
    /// `eb:Schema`, for the HL7 payload.
    pub schema: Option<Schema>,
    /// `eb:Description`.
    pub description: Option<Description>,
    /// Whether the reference carries `hl7ebxml:Payload style="HL7" encoding="XML"
    /// version="3.0"`, marking it as the HL7 V3 payload.
    pub hl7_payload: bool,
}

impl Reference {
    /// The GP2GP attachment description, if the description is one.
    pub fn attachment(&self) -> Option<&AttachmentInfo> {
        match &self.description {
            Some(Description::Attachment(info)) => Some(info),
            _ => None,
        }
    }
}

/// `eb:Schema`: the schema the payload follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// `eb:location`.
    pub location: String,
    /// `eb:version`.
    pub version: Option<String>,
}

/// An `xlink:href`: a part of this message or another message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Href {
    /// `cid:…` — the MIME part of this message with that Content-Id.
    Cid(String),
    /// `mid:…` — a separate message with that MessageId (a GP2GP large-message fragment).
    Mid(String),
}

impl Href {
    /// Reads `cid:…` or `mid:…` (the scheme in any case).
    pub fn parse(href: &str) -> Result<Href, Error> {
        let h = href.trim();
        let invalid = || Error::InvalidHref {
            href: href.to_string(),
        };
        let (scheme, rest) = h.split_once(':').ok_or_else(invalid)?;
        if rest.is_empty() {
            return Err(invalid());
        }
        match scheme.to_ascii_lowercase().as_str() {
            "cid" => Ok(Href::Cid(rest.to_string())),
            "mid" => Ok(Href::Mid(rest.to_string())),
            _ => Err(invalid()),
        }
    }

    /// `"cid"` or `"mid"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Href::Cid(_) => "cid",
            Href::Mid(_) => "mid",
        }
    }

    /// The Content-Id or MessageId.
    pub fn id(&self) -> &str {
        match self {
            Href::Cid(id) | Href::Mid(id) => id,
        }
    }
}

impl fmt::Display for Href {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// `eb:Description`: free text, or GP2GP's attachment description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Description {
    /// Text such as `HL7 payload` or `Attachment`.
    Text(String),
    /// `Filename="…" ContentType=… Compressed=… …`.
    Attachment(AttachmentInfo),
}

impl Description {
    /// Reads description text: if it holds any of GP2GP's attachment keys it is an
    /// [`AttachmentInfo`], otherwise plain text.
    pub fn parse(text: &str) -> Description {
        match AttachmentInfo::parse(text) {
            Some(info) => Description::Attachment(info),
            None => Description::Text(text.trim().to_string()),
        }
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Description::Text(t) => f.write_str(t),
            Description::Attachment(info) => info.fmt(f),
        }
    }
}

/// What GP2GP says about an attachment, in a manifest description (and in the MHS
/// adaptor's JSON `description` field):
/// `Filename="…" ContentType=… Compressed=Yes|No LargeAttachment=Yes|No
/// OriginalBase64=Yes|No Length=… DomainData="…"`.
///
/// Every field is optional because real senders leave some out. Reading is lenient: keys
/// in any case, spaces around `=`, unknown keys and stray words skipped, an unterminated
/// quote runs to the end, a `Length` that is not a number is treated as absent. Writing
/// ([`fmt::Display`]) is canonical: the order above, `Filename` and `DomainData` quoted.
/// A `"` inside those two cannot be represented in this format and is written as `'`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// `Filename`: the document's file name.
    pub filename: Option<String>,
    /// `ContentType`: the document's MIME type.
    pub content_type: Option<String>,
    /// `Compressed`: whether the content is gzip-compressed.
    pub compressed: Option<bool>,
    /// `LargeAttachment`: whether the document is sent in fragments.
    pub large_attachment: Option<bool>,
    /// `OriginalBase64`: whether the document was base64 before it was attached.
    pub original_base64: Option<bool>,
    /// `Length`: the document's length.
    pub length: Option<u64>,
    /// `DomainData`: e.g. `X-GP2GP-Skeleton: Yes` for a skeleton extract.
    pub domain_data: Option<String>,
}

impl AttachmentInfo {
    /// Reads description text; `None` if it holds none of the known keys.
    pub fn parse(text: &str) -> Option<AttachmentInfo> {
        let mut info = AttachmentInfo::default();
        let mut known = false;
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim_end();
            let key = key.rsplit(char::is_whitespace).next().unwrap_or("");
            let after = rest[eq + 1..].trim_start();
            let (value, next) = match after.strip_prefix('"') {
                Some(quoted) => match quoted.find('"') {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => (quoted.trim_end(), ""),
                },
                None => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            let yes_no = |v: &str| match v.to_ascii_lowercase().as_str() {
                "yes" | "true" => Some(true),
                "no" | "false" => Some(false),
                _ => None,
            };
            let matched = match key.to_ascii_lowercase().as_str() {
                "filename" => {
                    info.filename = Some(value.to_string());
                    true
                }
                "contenttype" => {
                    info.content_type = Some(value.to_string());
                    true
                }
                "compressed" => {
                    info.compressed = yes_no(value);
                    true
                }
                "largeattachment" => {
                    info.large_attachment = yes_no(value);
                    true
                }
                "originalbase64" => {
                    info.original_base64 = yes_no(value);
                    true
                }
                "length" => {
                    info.length = value.parse().ok();
                    true
                }
                "domaindata" => {
                    info.domain_data = Some(value.to_string());
                    true
                }
                _ => false,
            };
            known |= matched;
            rest = next;
        }
        known.then_some(info)
    }
}

impl fmt::Display for AttachmentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "Yes" } else { "No" };
        let mut sep = "";
        let mut field = |f: &mut fmt::Formatter<'_>, text: fmt::Arguments<'_>| -> fmt::Result {
            f.write_str(sep)?;
            sep = " ";
            f.write_fmt(text)
        };
        if let Some(v) = &self.filename {
            field(f, format_args!("Filename=\"{}\"", v.replace('"', "'")))?;
        }
        if let Some(v) = &self.content_type {
            field(f, format_args!("ContentType={v}"))?;
        }
        if let Some(v) = self.compressed {
            field(f, format_args!("Compressed={}", yes_no(v)))?;
        }
        if let Some(v) = self.large_attachment {
            field(f, format_args!("LargeAttachment={}", yes_no(v)))?;
        }
        if let Some(v) = self.original_base64 {
            field(f, format_args!("OriginalBase64={}", yes_no(v)))?;
        }
        if let Some(v) = self.length {
            field(f, format_args!("Length={v}"))?;
        }
        if let Some(v) = &self.domain_data {
            field(f, format_args!("DomainData=\"{}\"", v.replace('"', "'")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_description_reads_back() {
        let text = r#"Filename="E0AE6DA2_0.messageattachment" ContentType=application/xml Compressed=No LargeAttachment=Yes OriginalBase64=Yes Length=220 DomainData="X-GP2GP-Skeleton: Yes""#;
        let info = AttachmentInfo::parse(text).unwrap();
        assert_eq!(
            info.filename.as_deref(),
            Some("E0AE6DA2_0.messageattachment")
        );
        assert_eq!(info.content_type.as_deref(), Some("application/xml"));
        assert_eq!(info.compressed, Some(false));
        assert_eq!(info.large_attachment, Some(true));
        assert_eq!(info.original_base64, Some(true));
        assert_eq!(info.length, Some(220));
        assert_eq!(info.domain_data.as_deref(), Some("X-GP2GP-Skeleton: Yes"));
        assert_eq!(info.to_string(), text);
    }

    #[test]
    fn lenient_descriptions_from_the_corpus() {
        // Junk before the keys, a Length that is not a number.
        let info = AttachmentInfo::parse(
            r#" Id = MID Filename="1C13_text.txt" ContentType=image/tiff Compressed=Yes LargeAttachment=No OriginalBase64=No Length=int "#,
        )
        .unwrap();
        assert_eq!(info.filename.as_deref(), Some("1C13_text.txt"));
        assert_eq!(info.compressed, Some(true));
        assert_eq!(info.length, None);
        // An unterminated quote runs to the end.
        let info = AttachmentInfo::parse(r#"Filename="a.gzip" DomainData="X-GP2GP-Skeleton: Yes "#)
            .unwrap();
        assert_eq!(info.domain_data.as_deref(), Some("X-GP2GP-Skeleton: Yes"));
        // Double spaces, lower-case keys, a filename with `=` in it.
        let info =
            AttachmentInfo::parse("filename=\"a=b.txt\" contenttype=video/mpeg  compressed=no")
                .unwrap();
        assert_eq!(info.filename.as_deref(), Some("a=b.txt"));
        assert_eq!(info.content_type.as_deref(), Some("video/mpeg"));
        assert_eq!(info.compressed, Some(false));
        // Plain text is not an attachment description.
        assert_eq!(AttachmentInfo::parse("HL7 payload"), None);
        assert_eq!(
            Description::parse(" Attachment "),
            Description::Text("Attachment".into())
        );
    }

    #[test]
    fn hrefs() {
        assert_eq!(Href::parse("cid:a@b").unwrap(), Href::Cid("a@b".into()));
        assert_eq!(Href::parse("MID:X").unwrap(), Href::Mid("X".into()));
        assert!(matches!(
            Href::parse("http://x"),
            Err(Error::InvalidHref { .. })
        ));
        assert!(matches!(
            Href::parse("cid:"),
            Err(Error::InvalidHref { .. })
        ));
        assert_eq!(Href::Mid("X".into()).to_string(), "mid:X");
    }
}
