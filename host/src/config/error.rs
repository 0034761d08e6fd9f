//! Config errors: each issue with its line and key path, all reported together.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The 1-based line the issue is on, when known.
    pub line: Option<usize>,
    /// The key's path, such as `backends[1].address`; empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A config file that cannot be used, with everything found wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong, in file order.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    pub(crate) fn new(file: &Path, issues: Vec<ConfigIssue>) -> Self {
        ConfigError {
            file: file.to_owned(),
            issues,
        }
    }

    pub(crate) fn unreadable(file: &Path, err: &std::io::Error) -> Self {
        let issue = ConfigIssue {
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {err}"),
        };
        ConfigError::new(file, vec![issue])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        write!(
            f,
            "{} has {count} error{}:",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {}", self.file.display())?;
            if let Some(line) = issue.line {
                write!(f, ":{line}")?;
            }
            if !issue.key.is_empty() {
                write!(f, ": {}", issue.key)?;
            }
            write!(f, ": {}", issue.message)?;
        }
        Ok(())
    }
}
