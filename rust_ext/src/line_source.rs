//! Line-by-line access to an LHE file, plain or gzip, in bounded memory.
//!
//! Gzip is recognised by its magic bytes, never by the file name. A gzip stream is inflated
//! on a second thread into a few recycled chunks, so that parsing overlaps decompression
//! and memory stays bounded whatever the file size.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_SIZE: usize = 1 << 20;
const CHUNK_SIZE: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;
/// Readable bytes kept after the data in the buffer, so that parsers can read a line in
/// fixed-size pieces past its end (see [`LineSource::current_padded`]).
pub(crate) const LINE_PADDING: usize = 64;
/// A longer line is not LHE; refuse it rather than grow without bound.
const MAX_LINE_BYTES: usize = 64 << 20;

/// Opens `path` and returns a byte stream of its (decompressed) text, plus whether it was gzip.
pub(crate) fn open_text(path: &Path) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        let n = file.read(&mut magic[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    file.seek(SeekFrom::Start(0))?;
    if got == 2 && magic == GZIP_MAGIC {
        Ok((Box::new(ThreadedGzReader::spawn(file)), true))
    } else {
        Ok((Box::new(file), false))
    }
}

/// Reads a gzip file (all members, as `cat a.gz b.gz` produces) on a background thread.
struct ThreadedGzReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    offset: usize,
    finished: bool,
}

impl ThreadedGzReader {
    fn spawn(file: File) -> Self {
        let (chunk_tx, chunk_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let (recycle_tx, recycle_rx) = mpsc::channel();
        thread::spawn(move || inflate_into(file, &chunk_tx, &recycle_rx));
        ThreadedGzReader {
            chunks: chunk_rx,
            recycle: recycle_tx,
            current: Vec::new(),
            offset: 0,
            finished: false,
        }
    }
}

fn inflate_into(file: File, chunks: &SyncSender<io::Result<Vec<u8>>>, recycle: &Receiver<Vec<u8>>) {
    let mut decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_SIZE, file));
    loop {
        let mut chunk = recycle.try_recv().unwrap_or_default();
        chunk.resize(CHUNK_SIZE, 0);
        let mut filled = 0;
        let result = loop {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == chunk.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(filled);
        let at_end = filled < CHUNK_SIZE;
        if filled > 0 && chunks.send(Ok(chunk)).is_err() {
            return; // the reader was dropped
        }
        match result {
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
            Ok(()) if at_end => return,
            Ok(()) => {}
        }
    }
}

impl Read for ThreadedGzReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            if self.finished {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    let _ = self.recycle.send(used);
                    self.offset = 0;
                }
                Ok(Err(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                Err(_) => self.finished = true,
            }
        }
        let n = out.len().min(self.current.len() - self.offset);
        out[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// A line with its 1-based number and its padded window (see
/// [`LineSource::current_padded`]).
pub(crate) type PaddedLine<'a> = (u64, &'a [u8], &'a [u8]);

/// Yields the lines of a byte stream without their `\n` / `\r\n` terminators.
pub(crate) struct LineSource {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line_no: u64,
    /// Bytes of text before `buf[0]` that have been consumed.
    consumed_before_buf: u64,
    /// Range in `buf` of the line most recently returned.
    last: (usize, usize),
    /// Newlines of the 64-byte block at `block_start` not handed out yet, one bit each.
    block_mask: u64,
    block_start: usize,
    /// `buf[..scanned_to]` has been searched for newlines.
    scanned_to: usize,
}

impl LineSource {
    pub(crate) fn new(reader: Box<dyn Read + Send>) -> Self {
        LineSource {
            reader,
            buf: vec![0; READ_SIZE + LINE_PADDING],
            start: 0,
            end: 0,
            eof: false,
            line_no: 0,
            consumed_before_buf: 0,
            last: (0, 0),
            block_mask: 0,
            block_start: 0,
            scanned_to: 0,
        }
    }

    /// The same source for text that starts after `lines_before` lines and `bytes_before`
    /// bytes of a file (a byte range of it): line numbers and bytes consumed count from the
    /// file's start.
    pub(crate) fn starting_at(mut self, lines_before: u64, bytes_before: u64) -> Self {
        self.line_no = lines_before;
        self.consumed_before_buf = bytes_before;
        self
    }

    /// 1-based number of the line most recently returned (0 before the first).
    pub(crate) fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The line most recently returned by [`LineSource::next_line`], again.
    pub(crate) fn current(&self) -> &[u8] {
        strip_cr(&self.buf[self.last.0..self.last.1])
    }

    /// The current line, and the same line followed by at least [`LINE_PADDING`] more
    /// readable bytes, the first of which is a terminator (`\r`, `\n`): a parser may read
    /// past the line in fixed-size pieces and still stop at its end.
    #[inline(always)]
    pub(crate) fn current_padded(&self) -> (&[u8], &[u8]) {
        let (start, end) = self.last;
        let line = strip_cr(&self.buf[start..end]);
        (line, &self.buf[start..end + LINE_PADDING])
    }

    /// Bytes of text consumed so far (for progress reports).
    pub(crate) fn bytes_consumed(&self) -> u64 {
        self.consumed_before_buf + self.start as u64
    }

    /// The next line with its 1-based number, or `None` at the end of the text.
    #[inline(always)]
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        Ok(self.next_line_padded()?.map(|(n, line, _)| (n, line)))
    }

    /// [`LineSource::next_line`] with the line's window, as [`LineSource::current_padded`]
    /// gives it: the hot loops get both without a second look at the buffer.
    #[inline(always)]
    pub(crate) fn next_line_padded(&mut self) -> io::Result<Option<PaddedLine<'_>>> {
        loop {
            if self.block_mask != 0 {
                let (line_start, line_end) = self.take_newline();
                return Ok(Some(self.emit(line_start, line_end)));
            }
            // Newlines are found 64 bytes at a time as bit masks, walked with one
            // trailing-zero count per line: cheaper than a search per line for the short
            // lines of LHE events.
            let from = self.scanned_to;
            match self.buf[..self.end].get(from..from + 64) {
                Some(block) => {
                    self.block_mask = newline_mask64(block.try_into().expect("64 bytes"));
                    self.block_start = from;
                    self.scanned_to = from + 64;
                }
                None => return self.next_line_refill(),
            }
        }
    }

    /// The line that ends at the next newline of the current block (which has one).
    #[inline(always)]
    fn take_newline(&mut self) -> (usize, usize) {
        let line_end = self.block_start + self.block_mask.trailing_zeros() as usize;
        self.block_mask &= self.block_mask - 1;
        let line_start = self.start;
        self.start = line_end + 1;
        (line_start, line_end)
    }

    #[inline(never)]
    fn next_line_refill(&mut self) -> io::Result<Option<PaddedLine<'_>>> {
        loop {
            if self.block_mask != 0 {
                let (line_start, line_end) = self.take_newline();
                return Ok(Some(self.emit(line_start, line_end)));
            }
            if self.scanned_to < self.end {
                let from = self.scanned_to;
                let to = self.end.min(from + 64);
                self.block_mask = byte_mask(&self.buf[from..to], b'\n');
                self.block_start = from;
                self.scanned_to = to;
                continue;
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                // Last line without a newline at the end of the file.
                let line_start = self.start;
                self.start = self.end;
                return Ok(Some(self.emit(line_start, self.end)));
            }
            self.fill()?;
        }
    }

    #[inline(always)]
    fn emit(&mut self, line_start: usize, line_end: usize) -> PaddedLine<'_> {
        self.line_no += 1;
        self.last = (line_start, line_end);
        let window = &self.buf[line_start..line_end + LINE_PADDING];
        let line = strip_cr(&window[..line_end - line_start]);
        (self.line_no, line, window)
    }

    /// Moves the unread tail to the front and reads more, growing only for very long lines.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            // No newline is left in buf[start..end]: all of it has been scanned.
            self.buf.copy_within(self.start..self.end, 0);
            self.consumed_before_buf += self.start as u64;
            self.end -= self.start;
            self.scanned_to -= self.start;
            self.start = 0;
        }
        if self.end + LINE_PADDING == self.buf.len() {
            if self.buf.len() >= MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE_BYTES} bytes: this is not LHE text"),
                ));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let room = self.buf.len() - LINE_PADDING;
        loop {
            match self.reader.read(&mut self.buf[self.end..room]) {
                Ok(0) => {
                    self.eof = true;
                    // The last line may lack its newline: terminate it in the padding.
                    self.buf[self.end] = b'\n';
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One bit per occurrence of `byte` in `block` (at most 64 bytes), bit `i` for `block[i]`.
#[inline]
fn byte_mask(block: &[u8], byte: u8) -> u64 {
    match <&[u8; 64]>::try_from(block) {
        Ok(full) => byte_mask64(full, byte),
        Err(_) => {
            // A short block: pad with bytes that do not match.
            let mut padded = [!byte; 64];
            padded[..block.len()].copy_from_slice(block);
            byte_mask64(&padded, byte)
        }
    }
}

#[inline(always)]
fn newline_mask64(block: &[u8; 64]) -> u64 {
    byte_mask64(block, b'\n')
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn byte_mask64(block: &[u8; 64], byte: u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut mask = 0u64;
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is baseline on x86_64; the load reads the 16 bytes of `part`.
        let bits = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8)))
        };
        mask |= u64::from(bits as u16) << (16 * k);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn byte_mask64(block: &[u8; 64], byte: u8) -> u64 {
    byte_mask64_portable(block, byte)
}

/// [`byte_mask64`] without vector instructions (other CPUs, and tested against it).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn byte_mask64_portable(block: &[u8; 64], byte: u8) -> u64 {
    let mut mask = 0u64;
    for (k, part) in block.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(part.try_into().expect("8 bytes"))
            ^ (0x0101_0101_0101_0101 * u64::from(byte));
        // High bit of each byte that is not zero (carry-free), then of each zero byte.
        let nonzero = ((v & 0x7f7f_7f7f_7f7f_7f7f) + 0x7f7f_7f7f_7f7f_7f7f) | v;
        let zero = !nonzero & 0x8080_8080_8080_8080;
        // Gather the eight high bits into one byte.
        let bits = (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * k);
    }
    mask
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(data: &[u8]) -> Vec<Vec<u8>> {
        let mut src = LineSource::new(Box::new(io::Cursor::new(data.to_vec())));
        let mut out = Vec::new();
        while let Some((n, line)) = src.next_line().unwrap() {
            assert_eq!(n as usize, out.len() + 1);
            let line = line.to_vec();
            let (same, padded) = src.current_padded();
            assert_eq!(same, line);
            assert!(padded.len() >= line.len() + LINE_PADDING);
            assert!(matches!(padded[line.len()], b'\r' | b'\n'));
            out.push(line);
        }
        out
    }

    #[test]
    fn splits_lf_crlf_and_last_line_without_newline() {
        let got = lines_of(b"a\r\nbb\n\nccc");
        assert_eq!(
            got,
            vec![b"a".to_vec(), b"bb".to_vec(), b"".to_vec(), b"ccc".to_vec()]
        );
        assert!(lines_of(b"").is_empty());
    }

    #[test]
    fn newline_masks_of_vector_and_portable_paths_agree() {
        let mut block = [b'x'; 64];
        for i in 0..64 {
            for j in [0, 7, 8, 31, 63] {
                block.fill(if i % 2 == 0 { b'x' } else { 0x8a });
                block[i] = b'\n';
                block[j] = b'\n';
                let expected = (1u64 << i) | (1u64 << j);
                assert_eq!(newline_mask64(&block), expected);
                assert_eq!(byte_mask64_portable(&block, b'\n'), expected);
                block[i] = b'<';
                block[j] = b'<';
                assert_eq!(byte_mask64(&block, b'<'), expected);
                assert_eq!(byte_mask64_portable(&block, b'<'), expected);
            }
        }
        assert_eq!(byte_mask(b"a\nb\n", b'\n'), 0b1010);
        assert_eq!(byte_mask(b"", b'\n'), 0);
        assert_eq!(byte_mask(&[0xf5; 3], 0xf5), 0b111);
    }

    #[test]
    fn every_split_of_lines_across_blocks_and_reads() {
        // Lines of all lengths around the 64-byte blocks, read in pieces of odd sizes.
        struct Trickle(io::Cursor<Vec<u8>>, usize);
        impl Read for Trickle {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.1);
                self.0.read(&mut out[..n])
            }
        }
        let mut data = Vec::new();
        let mut expected = Vec::new();
        for len in 0..150 {
            let line: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            data.extend_from_slice(&line);
            data.push(b'\n');
            expected.push(line);
        }
        for piece in [1, 7, 64, 65, 1000] {
            let mut src = LineSource::new(Box::new(Trickle(io::Cursor::new(data.clone()), piece)));
            let mut got = Vec::new();
            while let Some((_, line)) = src.next_line().unwrap() {
                got.push(line.to_vec());
            }
            assert_eq!(got, expected, "pieces of {piece}");
            assert_eq!(src.bytes_consumed(), data.len() as u64);
        }
    }

    #[test]
    fn lines_longer_than_the_buffer() {
        let long = vec![b'x'; 3 * READ_SIZE + 17];
        let mut data = long.clone();
        data.extend_from_slice(b"\nend\n");
        let got = lines_of(&data);
        assert_eq!(got, vec![long, b"end".to_vec()]);
    }

    #[test]
    fn gzip_detected_by_magic_and_multi_member() {
        let dir = std::env::temp_dir().join(format!("vbsad-ls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain-name.lhe");
        let mut bytes = Vec::new();
        for part in [&b"first\n"[..], b"second\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            bytes.extend(enc.finish().unwrap());
        }
        std::fs::write(&path, &bytes).unwrap();
        let (reader, gz) = open_text(&path).unwrap();
        assert!(gz);
        let mut src = LineSource::new(reader);
        assert_eq!(src.next_line().unwrap(), Some((1, &b"first"[..])));
        assert_eq!(src.next_line().unwrap(), Some((2, &b"second"[..])));
        assert_eq!(src.next_line().unwrap(), None);

        // Truncated gzip is an error, not a silent end.
        std::fs::write(&path, &bytes[..bytes.len() / 2 - 3]).unwrap();
        let (reader, _) = open_text(&path).unwrap();
        let mut src = LineSource::new(reader);
        let mut result = Ok(());
        loop {
            match src.next_line() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        assert!(result.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
