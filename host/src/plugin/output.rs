//! A plugin's stdout and stderr: each complete line goes to tracing with the plugin's name,
//! within the plugin's log budget, so a chatty plugin cannot flood the log. Never blocks, and
//! holds at most one line per stream, however much the plugin writes.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::limits::MAX_LOG_LINE;
use crate::log_budget::LogBudget;

/// How much a single write may carry, as the guest is told before each write.
const WRITE_PERMIT: usize = 64 << 10;

/// Which of the plugin's streams this is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One of a plugin instance's output streams, as WASI hands it to the guest.
#[derive(Clone)]
pub(crate) struct PluginOutput {
    plugin: Arc<str>,
    stream: Stream,
    budget: Arc<LogBudget>,
    /// The line being written, up to [`MAX_LOG_LINE`] bytes; shared by every handle the guest
    /// opens on this stream.
    line: Arc<Mutex<Line>>,
}

#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    /// Whether bytes past [`MAX_LOG_LINE`] were dropped from this line.
    cut: bool,
}

impl PluginOutput {
    /// The `stream` of one instance of `plugin`, logging within `budget`.
    pub(crate) fn new(plugin: Arc<str>, stream: Stream, budget: Arc<LogBudget>) -> Self {
        PluginOutput {
            plugin,
            stream,
            budget,
            line: Arc::default(),
        }
    }

    /// Takes bytes the guest wrote: logs each line they complete, keeps the unfinished rest.
    fn accept(&self, bytes: &[u8]) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let (text, complete) = match chunk.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (chunk, false),
            };
            let room = MAX_LOG_LINE - line.bytes.len();
            line.cut |= text.len() > room;
            line.bytes.extend_from_slice(&text[..text.len().min(room)]);
            if complete {
                self.emit(&line.bytes, line.cut);
                line.bytes.clear();
                line.cut = false;
            }
        }
    }

    fn emit(&self, bytes: &[u8], cut: bool) {
        // Blank lines (a panic message starts with one) say nothing and spend no budget.
        if bytes.iter().all(u8::is_ascii_whitespace) || !self.budget.allow() {
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches('\r');
        let plugin = &*self.plugin;
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "vane::plugin", plugin, stream = "stdout", cut, "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "vane::plugin", plugin, stream = "stderr", cut, "{text}")
            }
        }
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests write through this; vane links WASIp2, so nothing arrives here.
        Box::new(tokio::io::sink())
    }
}

impl OutputStream for PluginOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn output(lines: u32) -> (PluginOutput, Arc<LogBudget>) {
        let budget = Arc::new(LogBudget::new(
            lines,
            Duration::from_secs(60),
            crate::clock::Clock::new(),
        ));
        let output = PluginOutput::new("p".into(), Stream::Stdout, budget.clone());
        (output, budget)
    }

    #[test]
    fn lines_are_logged_when_complete_and_within_budget() {
        let (output, budget) = output(2);
        output.accept(b"one\ntw");
        assert_eq!(budget.totals(), (1, 0), "the unfinished line waits");
        output.accept(b"o\nthree\nfour\n");
        assert_eq!(
            budget.totals(),
            (2, 2),
            "two lines past the budget are dropped"
        );
    }

    #[test]
    fn a_long_line_is_cut_and_memory_stays_bounded() {
        let (output, budget) = output(10);
        let megabyte = vec![b'x'; 1 << 20];
        output.accept(&megabyte);
        output.accept(&megabyte);
        assert_eq!(output.line.lock().unwrap().bytes.len(), MAX_LOG_LINE);
        assert!(output.line.lock().unwrap().cut);
        output.accept(b"\n");
        assert_eq!(budget.totals(), (1, 0));
        assert!(output.line.lock().unwrap().bytes.is_empty());
    }
}
