//! Reading access-log files as streams of bounded lines: plain or gzip (told apart by the magic
//! bytes, not the file name), any size, never holding more than one line in memory. A line
//! longer than the bound is skipped to its end and reported, so one hostile line cannot make the
//! reader grow without limit.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read buffer size: large enough that a gzip stream is inflated in big steps.
const BUFFER: usize = 256 * 1024;

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes (newline and a carriage return before it removed) are in the buffer.
    Complete,
    /// The line was longer than the bound; its bytes were dropped.
    TooLong,
}

/// Opens `path`, decompressing it when it starts with the gzip magic bytes.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::with_capacity(BUFFER, File::open(path)?);
    let gzip = file.fill_buf()?.starts_with(&GZIP_MAGIC);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(BUFFER, MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

/// Reads the next line into `line` (cleared first), keeping at most `max` bytes of it; `None` at
/// the end of the stream.
pub fn next_line(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<Line>> {
    line.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(read_any.then(|| finish(line, too_long)));
        }
        read_any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        if !too_long && line.len() + chunk.len() <= max {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        let used = chunk.len() + usize::from(done);
        reader.consume(used);
        if done {
            return Ok(Some(finish(line, too_long)));
        }
    }
}

fn finish(line: &mut Vec<u8>, too_long: bool) -> Line {
    if too_long {
        return Line::TooLong;
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Line::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, ()>> {
        let mut reader: &[u8] = input;
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader, &mut buffer, max).expect("read") {
            out.push(match line {
                Line::Complete => Ok(String::from_utf8_lossy(&buffer).into_owned()),
                Line::TooLong => Err(()),
            });
        }
        out
    }

    #[test]
    fn lines_are_split_bounded_and_the_last_may_lack_a_newline() {
        let got = lines(b"a\r\n0123456789\nbc\n\nlast", 5);
        assert_eq!(
            got,
            [
                Ok("a".to_owned()),
                Err(()),
                Ok("bc".to_owned()),
                Ok(String::new()),
                Ok("last".to_owned())
            ]
        );
        assert!(lines(b"", 5).is_empty());
    }
}
