//! Errors of the LHE reader. Every parse error names the file, the 1-based line of the
//! (decompressed) text and, inside an event, the 0-based index of that event in its file.

use std::fmt;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum LheError {
    /// The file could not be opened or read (includes a corrupt or truncated gzip stream,
    /// which is reported with the line reached so far).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The text is not valid LHE at the given place.
    #[error("{0}")]
    Parse(ParseError),
}

/// Where and why the text is not valid LHE.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParseError {
    pub path: String,
    /// 1-based line number in the decompressed text.
    pub line: u64,
    /// 0-based index of the event in its file, when the error is inside an event.
    pub event: Option<u64>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event {
            Some(event) => write!(
                f,
                "{}:{}: event {}: {}",
                self.path, self.line, event, self.message
            ),
            None => write!(f, "{}:{}: {}", self.path, self.line, self.message),
        }
    }
}

/// Where the text of a file ends, or stops being readable, before `</LesHouchesEvents>`:
/// the events after that point are missing. With [`crate::OnError::Fail`] this is an
/// error; with [`crate::OnError::Skip`] the reading keeps what came before and the file's
/// summary says so (`truncated`, and a warning), apart from the skipped events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Truncation {
    /// 1-based line of the (decompressed) text where it ends or cannot be read further.
    pub line: u64,
    /// One line for a person: file, line, where in the events the text ends.
    pub message: String,
}

impl LheError {
    pub(crate) fn parse(
        path: &str,
        line: u64,
        event: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        LheError::Parse(ParseError {
            path: path.to_owned(),
            line,
            event,
            message: message.into(),
        })
    }
}

pub(crate) type Result<T> = std::result::Result<T, LheError>;
