//! The status update manager's checkpoint: an append-only log of the updates it accepted and
//! the acknowledgements that retired them (`meta/status_updates`), so that a restarted agent
//! resends exactly the updates the master had not acknowledged.
//!
//! Each record is a little-endian `u32` length and a `StatusUpdateRecord`. A record cut short
//! by the agent dying mid-write is dropped on replay (and cut off the file), the records before
//! it are kept. Once the log has grown past [`COMPACT_AFTER_BYTES`] it is rewritten (temporary
//! file, rename) holding only the updates still waiting, so its size follows what is pending,
//! not the agent's age.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use protos::internal::StatusUpdateRecord;

use crate::checkpoint::{io, write_atomic, CheckpointError};

/// The log is rewritten with only the pending updates once it holds this many bytes.
pub const COMPACT_AFTER_BYTES: u64 = 4 * 1024 * 1024;
/// A record longer than this is taken for corruption (an update is a few hundred bytes).
pub const MAX_RECORD_BYTES: u32 = 4 * 1024 * 1024;

/// The open log.
#[derive(Debug)]
pub struct StatusUpdateLog {
    path: PathBuf,
    file: File,
    /// Where the last whole record ends.
    bytes: u64,
    /// A failed append left part of a record that could not be cut off yet.
    torn: bool,
}

impl StatusUpdateLog {
    /// Opens (creating if needed) the log at `path` and returns it with the records it holds.
    pub fn open(
        path: &Path,
    ) -> Result<(StatusUpdateLog, Vec<StatusUpdateRecord>), CheckpointError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", path)(e)),
        };
        let (records, good) = decode_records(&bytes);
        if good < bytes.len() {
            tracing::warn!(log = %path.display(), dropped = bytes.len() - good, "status update log ends in a torn record; dropping it");
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io("open", path))?;
        file.set_len(good as u64).map_err(io("truncate", path))?;
        let mut log = StatusUpdateLog {
            path: path.to_owned(),
            file,
            bytes: good as u64,
            torn: false,
        };
        log.seek_end()?;
        Ok((log, records))
    }

    fn seek_end(&mut self) -> Result<(), CheckpointError> {
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::End(0))
            .map(|_| ())
            .map_err(io("seek", &self.path))
    }

    /// Appends `record`. One `write(2)`: the record is in the page cache, and survives the
    /// agent process, once this returns. A write cut short (the disk filled up) is cut off
    /// the file again, so that the records appended once there is room are not lost behind
    /// it on replay.
    pub fn append(&mut self, record: &StatusUpdateRecord) -> Result<(), CheckpointError> {
        if self.torn {
            self.cut_back()?;
        }
        let frame = frame(record);
        if let Err(e) = self.file.write_all(&frame) {
            self.torn = true;
            if let Err(cut) = self.cut_back() {
                tracing::error!(error = %cut, "a record cut short stays in the status update log until it can be cut off");
            }
            return Err(io("append to", &self.path)(e));
        }
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// Cuts the file back to its last whole record.
    fn cut_back(&mut self) -> Result<(), CheckpointError> {
        use std::io::Seek;
        self.file
            .set_len(self.bytes)
            .map_err(io("truncate", &self.path))?;
        self.file
            .seek(std::io::SeekFrom::Start(self.bytes))
            .map_err(io("seek", &self.path))?;
        self.torn = false;
        Ok(())
    }

    /// Whether the log has grown enough to be worth rewriting.
    pub fn wants_compaction(&self) -> bool {
        self.bytes >= COMPACT_AFTER_BYTES
    }

    /// Replaces the log by one holding only `records`.
    pub fn rewrite(
        &mut self,
        records: impl IntoIterator<Item = StatusUpdateRecord>,
    ) -> Result<(), CheckpointError> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend_from_slice(&frame(&record));
        }
        write_atomic(&self.path, &bytes)?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io("open", &self.path))?;
        self.bytes = bytes.len() as u64;
        self.torn = false;
        Ok(())
    }
}

fn frame(record: &StatusUpdateRecord) -> Vec<u8> {
    let body = record.encode_to_vec();
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The whole records at the start of `bytes`, and how many bytes they take.
fn decode_records(bytes: &[u8]) -> (Vec<StatusUpdateRecord>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if len > MAX_RECORD_BYTES {
            break;
        }
        let Some(body) = bytes.get(at + 4..at + 4 + len as usize) else {
            break;
        };
        let Ok(record) = StatusUpdateRecord::decode(body) else {
            break;
        };
        records.push(record);
        at += 4 + len as usize;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::internal::status_update_record::{Acknowledgement, Record};
    use protos::internal::StatusUpdate;

    fn update(uuid: u8) -> StatusUpdateRecord {
        StatusUpdateRecord {
            record: Some(Record::Update(StatusUpdate {
                uuid: vec![uuid].into(),
                ..Default::default()
            })),
        }
    }

    fn ack(uuid: u8) -> StatusUpdateRecord {
        StatusUpdateRecord {
            record: Some(Record::Ack(Acknowledgement {
                uuid: vec![uuid].into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta/status_updates");
        let (mut log, records) = StatusUpdateLog::open(&path).unwrap();
        assert!(records.is_empty());
        log.append(&update(1)).unwrap();
        log.append(&ack(1)).unwrap();
        log.append(&update(2)).unwrap();
        drop(log);
        // The agent died in the middle of a fourth record.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        let (mut log, records) = StatusUpdateLog::open(&path).unwrap();
        assert_eq!(records, vec![update(1), ack(1), update(2)]);
        log.append(&update(3)).unwrap();
        drop(log);
        let (_, records) = StatusUpdateLog::open(&path).unwrap();
        assert_eq!(records, vec![update(1), ack(1), update(2), update(3)]);
    }

    #[test]
    fn a_record_cut_short_by_a_full_disk_is_cut_off_so_that_later_records_survive() {
        let disk = keel_testkit::small_disk::SmallDisk::mount(64 * 1024).expect("a tmpfs (root)");
        let path = disk.path().join("status_updates");
        let (mut log, _) = StatusUpdateLog::open(&path).unwrap();
        log.append(&update(1)).unwrap();
        // Fill the disk: the log's first page keeps its free tail, nothing else is free.
        disk.fill().unwrap();
        // A record larger than that tail: the write fills the tail, then fails.
        let large = StatusUpdateRecord {
            record: Some(Record::Update(StatusUpdate {
                uuid: vec![2].into(),
                status: Some(protos::v1::TaskStatus {
                    message: "x".repeat(6000),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        };
        assert!(log.append(&large).is_err(), "no room for it");
        disk.free().unwrap();
        log.append(&update(3)).unwrap();
        drop(log);
        let (_, records) = StatusUpdateLog::open(&path).unwrap();
        assert_eq!(
            records,
            vec![update(1), update(3)],
            "the record after the full disk is replayed"
        );
    }

    #[test]
    fn a_rewrite_keeps_only_what_it_is_given_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status_updates");
        let (mut log, _) = StatusUpdateLog::open(&path).unwrap();
        for i in 0..10 {
            log.append(&update(i)).unwrap();
        }
        log.rewrite([update(9)]).unwrap();
        log.append(&update(10)).unwrap();
        drop(log);
        let (_, records) = StatusUpdateLog::open(&path).unwrap();
        assert_eq!(records, vec![update(9), update(10)]);
    }
}
