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
/// A longer line is not LHE; refuse it rather than grow without bound.
const MAX_LINE_BYTES: usize = 64 << 20;

/// Opens `path` and returns a byte stream of its (decompressed) text, plus whether it was gzip.
pub fn open_text(path: &Path) -> io::Result<(Box<dyn Read + Send>, bool)> {
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

/// Yields the lines of a byte stream without their `\n` / `\r\n` terminators.
pub struct LineSource {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line_no: u64,
    bytes_consumed: u64,
    /// Range in `buf` of the line most recently returned.
    last: (usize, usize),
    /// Positions in `buf` of the newlines after `start`, and the next one to use.
    newlines: Vec<u32>,
    nl_cursor: usize,
    /// `buf[..indexed_to]` has been searched for newlines.
    indexed_to: usize,
}

impl LineSource {
    pub fn new(reader: Box<dyn Read + Send>) -> Self {
        LineSource {
            reader,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            eof: false,
            line_no: 0,
            bytes_consumed: 0,
            last: (0, 0),
            newlines: Vec::new(),
            nl_cursor: 0,
            indexed_to: 0,
        }
    }

    /// 1-based number of the line most recently returned (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The line most recently returned by [`LineSource::next_line`], again.
    pub fn current(&self) -> &[u8] {
        strip_cr(&self.buf[self.last.0..self.last.1])
    }

    /// Bytes of text consumed so far (for progress reports).
    pub fn bytes_consumed(&self) -> u64 {
        self.bytes_consumed
    }

    /// The next line with its 1-based number, or `None` at the end of the text.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if let Some(&nl) = self.newlines.get(self.nl_cursor) {
                self.nl_cursor += 1;
                let line_end = nl as usize;
                let line_start = self.start;
                self.start = line_end + 1;
                return Ok(Some(self.emit(line_start, line_end)));
            }
            // Index every newline of the data not yet indexed in one SIMD pass: cheaper than
            // one search per line for the short lines of LHE events.
            if self.indexed_to < self.end {
                let from = self.indexed_to;
                self.newlines.clear();
                self.nl_cursor = 0;
                // Positions fit in u32: the buffer never exceeds MAX_LINE_BYTES.
                self.newlines.extend(
                    memchr::memchr_iter(b'\n', &self.buf[from..self.end])
                        .map(|i| (from + i) as u32),
                );
                self.indexed_to = self.end;
                if !self.newlines.is_empty() {
                    continue;
                }
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

    #[inline]
    fn emit(&mut self, line_start: usize, line_end: usize) -> (u64, &[u8]) {
        self.line_no += 1;
        self.bytes_consumed += (line_end - line_start) as u64 + u64::from(line_end < self.end);
        self.last = (line_start, line_end);
        (self.line_no, strip_cr(&self.buf[line_start..line_end]))
    }

    /// Moves the unread tail to the front and reads more, growing only for very long lines.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.indexed_to -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE_BYTES} bytes: this is not LHE text"),
                ));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
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
            out.push(line.to_vec());
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
