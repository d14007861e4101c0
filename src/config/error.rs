//! Configuration errors that point at the file, line, column and field.

use std::fmt;
use std::ops::Range;

/// An error in the cluster file, in words an operator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; `None` when the file could not be read at all.
    pub position: Option<(usize, usize)>,
    /// Where in the file: for example ``[[group]] "web", field `vrid` ``.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The source text of one file, to turn byte offsets into positions and field paths.
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// An error at `span` about `field`.
    pub fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            position: Some(self.position(span.start)),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Describes where a byte offset lies, from the text alone: the table it is in and the
    /// key it belongs to. Used for errors from the TOML parser, which carry only a span.
    pub fn field_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let mut table = String::new();
        let mut key = String::new();
        let mut counts: Vec<(String, usize)> = Vec::new();
        // Up to the end of the offset's line: an error may point at the key itself.
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        for line in self.text[..end].lines() {
            let trimmed = line.trim();
            if let Some(name) = trimmed
                .strip_prefix("[[")
                .and_then(|t| t.split("]]").next())
            {
                let name = name.trim().to_string();
                let count = match counts.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => {
                        *c += 1;
                        *c
                    }
                    None => {
                        counts.push((name.clone(), 1));
                        1
                    }
                };
                table = format!("[[{name}]] #{count}");
                key.clear();
            } else if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.split(']').next()) {
                table = format!("[{}]", name.trim());
                key.clear();
            } else if let Some((k, _)) = trimmed.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && !k.starts_with('#') && !k.contains(['"', '[', '{']) {
                    key = k.to_string();
                }
            }
        }
        match (table.is_empty(), key.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("field `{key}`"),
            (false, true) => table,
            (false, false) => format!("{table}, field `{key}`"),
        }
    }
}
