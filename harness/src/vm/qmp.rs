//! A minimal QMP client (QEMU Machine Protocol, JSON lines over a unix socket): enough to
//! power the guest off, quit, and save or load snapshots through the human monitor.
//!
//! Invariant: every exchange has a deadline; asynchronous events are skipped, not mistaken
//! for replies.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("failed to connect to QMP at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to talk to QMP ({command})")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP sent something that is not JSON: {line}")]
    Garbled { line: String },
}

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path, deadline: Duration) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let io = |source| QmpError::Io {
            command: "connect".into(),
            source,
        };
        stream.set_read_timeout(Some(deadline)).map_err(io)?;
        stream.set_write_timeout(Some(deadline)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        qmp.read_value("greeting")?;
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_value(&mut self, command: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|source| QmpError::Io {
            command: command.to_owned(),
            source,
        })?;
        if n == 0 {
            return Err(QmpError::Io {
                command: command.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "QMP closed the connection"),
            });
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Garbled {
            line: line.trim().to_owned(),
        })
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}").map_err(|source| QmpError::Io {
            command: command.to_owned(),
            source,
        })?;
        loop {
            let reply = self.read_value(command)?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: error["class"].as_str().unwrap_or("?").to_owned(),
                    desc: error["desc"].as_str().unwrap_or("?").to_owned(),
                });
            }
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }

    /// An HMP command (e.g. `savevm warm`); HMP reports errors as text, so non-empty output
    /// from commands that print nothing on success is an error.
    pub fn human(&mut self, command_line: &str) -> Result<String, QmpError> {
        let out = self.execute("human-monitor-command", json!({ "command-line": command_line }))?;
        Ok(out.as_str().unwrap_or("").to_owned())
    }

    pub fn powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", json!({})).map(drop)
    }

    pub fn quit(&mut self) -> Result<(), QmpError> {
        self.execute("quit", json!({})).map(drop)
    }
}
