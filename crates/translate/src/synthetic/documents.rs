//! The bytes of a synthetic record's attachments: a scanned letter as a PDF or a PNG of
//! exactly the planned size, the same bytes every time for the same document.
//!
//! Both formats are written by hand, uncompressed, so that a 40 MB attachment costs one
//! pass over memory: a PDF with one text page (the caption) followed by scanned pages (8-bit
//! grey images, A4 at 150 dpi), and a greyscale PNG whose image data travels in *stored*
//! (uncompressed) deflate blocks. Whatever the size calls for beyond whole image rows is
//! made up with a comment (PDF) or a `tEXt` chunk (PNG), so the size is exact and the file
//! stays valid.

use std::fmt::Write as _;

use super::Rng;

/// The smallest document written: a page of text with nothing scanned on it.
pub const MIN_DOCUMENT_BYTES: u64 = 1024;

/// A4 at 150 dpi.
const PAGE_WIDTH: usize = 1240;
const PAGE_HEIGHT: usize = 1754;

/// A scanned page's pixels: white paper, grey lines of "text" in a left-aligned block,
/// a little noise. `rows` rows of `width` bytes.
fn scan_rows(rng: &mut Rng, width: usize, rows: usize, out: &mut Vec<u8>, row_prefix: Option<u8>) {
    let margin = width / 12;
    let mut line_left = 0usize; // rows left in the current line of text
    let mut line_len = 0usize;
    for _ in 0..rows {
        if let Some(p) = row_prefix {
            out.push(p);
        }
        let start = out.len();
        out.resize(start + width, 0xF6);
        if line_left == 0 {
            // Between lines: paper, then perhaps a new line of text.
            if rng.chance(12) {
                line_left = 9 + rng.below(4) as usize;
                line_len = (width - 2 * margin) * (40 + rng.below(61) as usize) / 100;
            }
            continue;
        }
        line_left -= 1;
        let row = &mut out[start + margin..start + margin + line_len];
        // Words: dark runs with gaps; the random draws are per 64 pixels, not per pixel.
        for word in row.chunks_mut(64) {
            let bits = rng.next_u64();
            for (i, px) in word.iter_mut().enumerate() {
                if bits >> i & 1 == 1 {
                    *px = 0x30;
                }
            }
        }
    }
}

/// A PDF of exactly `bytes` bytes (at least [`MIN_DOCUMENT_BYTES`]): a text page with
/// `caption`, then as many scanned pages as the size allows.
pub fn pdf(seed: u64, caption: &str, bytes: u64) -> Vec<u8> {
    let target = bytes.max(MIN_DOCUMENT_BYTES) as usize;
    let mut text = String::from("BT /F1 12 Tf 72 770 Td 16 TL\n");
    for line in caption.lines().take(40) {
        let _ = writeln!(text, "({}) '", pdf_string(line));
    }
    text.push_str("ET\n");

    // Lay the scans out without their pixels first, shrinking the last one until what is
    // fixed fits; the rest becomes a comment before the cross-reference table.
    let mut scans: Vec<usize> = Vec::new();
    let mut left = target.saturating_sub(1000 + text.len());
    while left > 600 + PAGE_WIDTH {
        let rows = ((left - 600) / PAGE_WIDTH).min(PAGE_HEIGHT);
        scans.push(rows);
        left -= 600 + rows * PAGE_WIDTH;
    }
    loop {
        let dry = PdfBody::write(&text, &scans, None);
        let over = dry.end() + dry.xref_len(dry.end());
        if over <= target {
            break;
        }
        let Some(last) = scans.last_mut() else { break };
        let cut = (over - target).div_ceil(PAGE_WIDTH);
        if cut >= *last {
            scans.pop();
        } else {
            *last -= cut;
        }
    }
    let mut rng = Rng(seed ^ 0x9D0C_0000_0000_0001);
    let body = PdfBody::write(&text, &scans, Some(&mut rng));
    let here = body.end();
    let mut pad = target.saturating_sub(here + body.xref_len(here));
    // The startxref number grows with the padding; settle it.
    for _ in 0..3 {
        let need = target.saturating_sub(here + body.xref_len(here + pad));
        if need == pad {
            break;
        }
        pad = need;
    }
    let PdfBody {
        mut out, offsets, ..
    } = body;
    match pad {
        0 => {}
        1 => out.push(b'\n'),
        n => {
            out.push(b'%');
            let filler = b"lloyd synthetic document ";
            out.extend((0..n - 2).map(|i| filler[i % filler.len()]));
            out.push(b'\n');
        }
    }
    let start = out.len();
    let entries = offsets.len() + 1;
    let _ = writeln!(Sink(&mut out), "xref\n0 {entries}\n0000000000 65535 f ");
    for o in &offsets {
        let _ = writeln!(Sink(&mut out), "{o:010} 00000 n ");
    }
    let _ = write!(
        Sink(&mut out),
        "trailer\n<< /Size {entries} /Root 1 0 R >>\nstartxref\n{start}\n%%EOF\n"
    );
    out
}

/// A PDF's objects, written with their pixels or (a dry run, to measure) without.
struct PdfBody {
    out: Vec<u8>,
    offsets: Vec<usize>,
    /// Pixel bytes a dry run left out.
    skipped: usize,
}

impl PdfBody {
    /// Objects: 1 catalog, 2 pages, 3 font, 4 the text page, 5 its content, then for each
    /// scan its page, content and image.
    fn write(text: &str, scans: &[usize], rng: Option<&mut Rng>) -> PdfBody {
        let pixels: usize = scans.iter().map(|r| r * PAGE_WIDTH).sum();
        let mut b = PdfBody {
            out: Vec::with_capacity(if rng.is_some() {
                pixels + 64 * 1024
            } else {
                4096
            }),
            offsets: Vec::new(),
            skipped: 0,
        };
        b.out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
        let pages = 1 + scans.len();
        b.obj(b"<< /Type /Catalog /Pages 2 0 R >>");
        let kids: Vec<String> = (0..pages)
            .map(|i| format!("{} 0 R", if i == 0 { 4 } else { 6 + 3 * (i - 1) }))
            .collect();
        b.obj(
            format!(
                "<< /Type /Pages /Kids [{}] /Count {pages} >>",
                kids.join(" ")
            )
            .as_bytes(),
        );
        b.obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
        b.obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>");
        b.obj(format!("<< /Length {} >>\nstream\n{text}endstream", text.len()).as_bytes());
        let mut rng = rng;
        for (i, &rows) in scans.iter().enumerate() {
            let page = 6 + 3 * i;
            let (content, image) = (page + 1, page + 2);
            b.obj(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 {image} 0 R >> >> /Contents {content} 0 R >>"
            ).as_bytes());
            let height = 842.0 * rows as f64 / PAGE_HEIGHT as f64;
            let draw = format!(
                "q 595 0 0 {height:.2} 0 {:.2} cm /Im1 Do Q\n",
                842.0 - height
            );
            b.obj(format!("<< /Length {} >>\nstream\n{draw}endstream", draw.len()).as_bytes());
            b.offsets.push(b.end());
            let _ = write!(
                Sink(&mut b.out),
                "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {PAGE_WIDTH} /Height {rows} /ColorSpace /DeviceGray /BitsPerComponent 8 /Length {} >>\nstream\n",
                rows * PAGE_WIDTH
            );
            match rng.as_deref_mut() {
                Some(r) => scan_rows(r, PAGE_WIDTH, rows, &mut b.out, None),
                None => b.skipped += rows * PAGE_WIDTH,
            }
            b.out.extend_from_slice(b"\nendstream\nendobj\n");
        }
        b
    }

    fn obj(&mut self, body: &[u8]) {
        self.offsets.push(self.end());
        let n = self.offsets.len();
        let _ = writeln!(Sink(&mut self.out), "{n} 0 obj");
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }

    /// Where the next byte goes in the finished file.
    fn end(&self) -> usize {
        self.out.len() + self.skipped
    }

    /// The length of the cross-reference table and trailer when the table starts at `start`.
    fn xref_len(&self, start: usize) -> usize {
        let entries = self.offsets.len() + 1;
        let head = format!("xref\n0 {entries}\n").len();
        let trailer =
            format!("trailer\n<< /Size {entries} /Root 1 0 R >>\nstartxref\n{start}\n%%EOF\n");
        head + 20 * entries + trailer.len()
    }
}

/// Text as a PDF literal string's content.
fn pdf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// `fmt::Write` onto a byte vector.
struct Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A greyscale PNG of exactly `bytes` bytes (at least [`MIN_DOCUMENT_BYTES`]): a scanned
/// page as wide as A4 at 150 dpi (narrower when small), `caption` in a `tEXt` chunk.
pub fn png(seed: u64, caption: &str, bytes: u64) -> Vec<u8> {
    let target = bytes.max(MIN_DOCUMENT_BYTES) as usize;
    let mut rng = Rng(seed ^ 0x9D0C_0000_0000_0002);
    let caption: String = caption
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    // Signature, IHDR, the caption chunk, IDAT's framing, IEND, and the smallest padding
    // chunk ("tEXt" + "Comment\0").
    let title_chunk = 12 + "Title\0".len() + caption.len();
    let fixed = 8 + 25 + title_chunk + 12 + 2 + 4 + 12 + 20;
    let room = target - fixed.min(target);
    let width = PAGE_WIDTH.min((room / 8).max(1));
    // Largest height whose stored-deflate stream fits.
    let size_of = |h: usize| {
        let raw = h * (width + 1);
        raw + 5 * raw.div_ceil(65_535).max(1)
    };
    let mut height = (room / (width + 1)).max(1);
    while height > 1 && size_of(height) > room {
        height -= 1;
    }
    let mut raw = Vec::with_capacity(height * (width + 1));
    scan_rows(&mut rng, width, height, &mut raw, Some(0));

    let mut out = Vec::with_capacity(target);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let mut title = b"Title\0".to_vec();
    title.extend_from_slice(caption.as_bytes());
    chunk(&mut out, b"tEXt", &title);

    // zlib: header, stored blocks, Adler-32.
    let mut z = Vec::with_capacity(size_of(height) + 6);
    z.extend_from_slice(&[0x78, 0x01]);
    let blocks: Vec<&[u8]> = if raw.is_empty() {
        vec![&[][..]]
    } else {
        raw.chunks(65_535).collect()
    };
    let last = blocks.len() - 1;
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i == last));
        let len = b.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    chunk(&mut out, b"IDAT", &z);

    // Make up the size with a comment (at least its 20 bytes of framing).
    let pad = target.saturating_sub(out.len() + 12 + 20);
    let mut comment = b"Comment\0".to_vec();
    let filler = b"lloyd synthetic document ";
    comment.extend((0..pad).map(|i| filler[i % filler.len()]));
    chunk(&mut out, b"tEXt", &comment);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (ISO-HDLC, as PNG uses), eight bytes at a time with slicing tables.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLES: std::sync::OnceLock<[[u32; 256]; 8]> = std::sync::OnceLock::new();
    let t = TABLES.get_or_init(|| {
        let mut t = [[0u32; 256]; 8];
        for (i, slot) in t[0].iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            }
        }
        t
    });
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xFF) as usize]
            ^ t[6][(lo >> 8 & 0xFF) as usize]
            ^ t[5][(lo >> 16 & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][(hi >> 8 & 0xFF) as usize]
            ^ t[1][(hi >> 16 & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes keep the sums below 2^32 between reductions.
    for block in data.chunks(5552) {
        for &x in block {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}
