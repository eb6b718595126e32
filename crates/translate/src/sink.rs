//! Output in large pieces: the streaming translations write many small pieces (one entry,
//! one statement), and whatever `io::Write` the caller hands over (a file, a pipe, a
//! socket) is best given them in large blocks.

use std::io::Write;

use crate::TranslateError;

/// How much is gathered before it is written on.
const BLOCK: usize = 256 * 1024;

pub(crate) struct Sink<W: Write> {
    out: W,
    pub buf: Vec<u8>,
    /// Bytes written on so far.
    written: u64,
}

impl<W: Write> Sink<W> {
    pub fn new(out: W) -> Sink<W> {
        Sink {
            out,
            buf: Vec::with_capacity(BLOCK + BLOCK / 4),
            written: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TranslateError> {
        self.buf.extend_from_slice(bytes);
        self.maybe_flush()
    }

    /// Writes the gathered bytes on when there are enough of them (call after adding to
    /// `buf` directly).
    pub fn maybe_flush(&mut self) -> Result<(), TranslateError> {
        if self.buf.len() >= BLOCK {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), TranslateError> {
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes everything on and flushes the writer; returns the number of bytes written.
    pub fn finish(mut self) -> Result<u64, TranslateError> {
        self.flush_block()?;
        self.out.flush()?;
        Ok(self.written)
    }
}
