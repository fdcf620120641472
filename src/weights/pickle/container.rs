//! The two `torch.save` containers: the zip archive (torch >= 1.6) and the legacy stream of pickles.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use tch::Tensor;
use zip::ZipArchive;

use super::machine::unpickle;
use super::tensors::{materialize, state_dict_entries, storage_tensor};
use super::value::{shown, Obj, Pickle, Res};
use crate::{Error, Result};

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as LONG1 stores it: little-endian bytes.
pub(super) const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// `torch.serialization.PROTOCOL_VERSION`, the legacy format's version.
const LEGACY_PROTOCOL: i64 = 1001;

pub(super) fn read_zip(path: &Path, file: File) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| Error::weights(path, msg);
    let Unzipped { mut zip, dir, pickle, swap } = unzip(path, file)?;
    let entries = state_dict_entries(&pickle).map_err(bad)?;
    materialize(path, &entries, |key, decl| {
        let name = format!("{dir}/data/{key}");
        let bytes = read_entry(&mut zip, &name, Some(decl.nbytes()?))?;
        storage_tensor(&bytes, decl, swap).map_err(|e| format!("{name}: {e}"))
    })
}

/// A zip checkpoint opened and its pickle run (no storage read yet).
pub(super) struct Unzipped {
    pub(super) zip: ZipArchive<BufReader<File>>,
    /// The archive's top folder.
    pub(super) dir: String,
    pub(super) pickle: Pickle,
    /// The storages' byte order is not this machine's.
    pub(super) swap: bool,
}

pub(super) fn unzip(path: &Path, file: File) -> Result<Unzipped> {
    let bad = |msg: String| Error::weights(path, msg);
    let mut zip = ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(format!("not a readable zip archive, truncated or corrupt? ({e})")))?;
    // torch names the top folder after the saved file's stem ("archive" in older versions).
    let pickles: Vec<String> = zip
        .file_names()
        .filter_map(|name| name.ok())
        .filter(|name| {
            name.strip_suffix("/data.pkl").is_some_and(|dir| !dir.is_empty() && !dir.contains('/'))
        })
        .map(|name| name.into_owned())
        .collect();
    let pkl_name = match pickles.as_slice() {
        [one] => one.clone(),
        [] => return Err(bad("zip archive without <folder>/data.pkl: not a torch.save checkpoint".into())),
        many => {
            return Err(bad(format!("zip archive with several data.pkl ({}): ambiguous", many.join(", "))))
        }
    };
    let dir = pkl_name.trim_end_matches("/data.pkl").to_string();

    let pkl = read_entry(&mut zip, &pkl_name, None).map_err(bad)?;
    let byteorder_name = format!("{dir}/byteorder");
    // Files written before torch recorded a byte order are little-endian.
    let file_big_endian = match zip.index_for_name(&byteorder_name) {
        None => false,
        Some(_) => match read_entry(&mut zip, &byteorder_name, None).map_err(bad)?.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(bad(format!(
                    "{byteorder_name}: unknown byte order '{}'",
                    String::from_utf8_lossy(other)
                )))
            }
        },
    };
    let swap = file_big_endian != cfg!(target_endian = "big");

    let (pickle, _) = unpickle(&pkl, 0, &pkl_name).map_err(bad)?;
    Ok(Unzipped { zip, dir, pickle, swap })
}

/// Reads one zip entry; `expected` (bytes) is checked before anything is allocated.
pub(super) fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    expected: Option<usize>,
) -> Res<Vec<u8>> {
    let entry = zip.by_name(name).map_err(|e| format!("zip entry {name}: {e}"))?;
    let mut buf = Vec::new();
    let limit = match expected {
        Some(n) => {
            if entry.size() != n as u64 {
                return Err(format!("zip entry {name} has {} bytes, the pickle declares {n}", entry.size()));
            }
            buf.try_reserve_exact(n).map_err(|_| format!("zip entry {name}: cannot allocate {n} bytes"))?;
            n as u64
        }
        None => entry.size(),
    };
    // `take` bounds what a lying header can make us read; the zip reader checks the CRC at the end.
    entry
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| format!("zip entry {name}: {e} (truncated or corrupt?)"))?;
    if buf.len() as u64 != limit {
        return Err(format!("zip entry {name}: {} of {limit} bytes (truncated?)", buf.len()));
    }
    Ok(buf)
}

pub(super) fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| Error::weights(path, msg);
    let not_torch = |msg: String| {
        bad(format!("not a PyTorch checkpoint: not a zip archive, and no legacy torch.save header ({msg})"))
    };

    let (magic, pos) = unpickle(bytes, 0, "the magic number pickle").map_err(not_torch)?;
    if !matches!(magic.root(), Obj::BigInt(b) if b.as_slice() == LEGACY_MAGIC) {
        return Err(not_torch(format!("first pickle is {}, not the magic number", magic.root().type_name())));
    }
    let (version, pos) = unpickle(bytes, pos, "the file, in the version pickle").map_err(bad)?;
    match version.root() {
        Obj::Int(LEGACY_PROTOCOL) => {}
        Obj::Int(v) => {
            return Err(bad(format!("legacy format version {v}, only {LEGACY_PROTOCOL} is known")))
        }
        other => return Err(bad(format!("legacy format version is {}, not an int", other.type_name()))),
    }
    // sys_info records the writer's type sizes and byte order; storages are little-endian regardless.
    let (_sys_info, pos) = unpickle(bytes, pos, "the file, in the sys_info pickle").map_err(bad)?;
    // Offsets in these errors count from the start of the file.
    let (pickle, pos) = unpickle(bytes, pos, "the file, in the object pickle").map_err(bad)?;
    let (keys, mut pos) = unpickle(bytes, pos, "the file, in the storage keys pickle").map_err(bad)?;
    let keys = match keys.root() {
        Obj::List(items) | Obj::Tuple(items) => {
            items.iter().map(|&id| keys.str(id).map(str::to_string)).collect::<Res<Vec<_>>>().map_err(bad)?
        }
        other => return Err(bad(format!("storage key list is {}, not a list", other.type_name()))),
    };

    // The storages follow in the listed order: find each one's bytes now, build tensors later.
    let mut ranges: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    for key in keys {
        let decl = *pickle.storages.get(&key).ok_or_else(|| {
            bad(format!("storage '{}' is listed but no tensor of the pickle uses it", shown(&key)))
        })?;
        let count = bytes
            .get(pos..pos.saturating_add(8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| {
                bad(format!(
                    "file ends at byte {} inside the header of storage '{}' (truncated?)",
                    bytes.len(),
                    shown(&key)
                ))
            })?;
        if count != decl.numel as u64 {
            return Err(bad(format!(
                "storage '{}' has {count} elements, the pickle declares {}",
                shown(&key),
                decl.numel
            )));
        }
        let start = pos + 8;
        let end = decl
            .nbytes()
            .and_then(|n| start.checked_add(n).ok_or_else(|| "size overflows".to_string()))
            .map_err(bad)?;
        if end > bytes.len() {
            return Err(bad(format!(
                "storage '{}' needs bytes {start}..{end}, the file has {} (truncated?)",
                shown(&key),
                bytes.len()
            )));
        }
        ranges.insert(key, start..end);
        pos = end;
    }

    let entries = state_dict_entries(&pickle).map_err(bad)?;
    // Legacy storages are written little-endian whatever the writing machine was.
    let swap = cfg!(target_endian = "big");
    materialize(path, &entries, |key, decl| {
        let range =
            ranges.get(key).ok_or_else(|| format!("storage '{}' has no data in the file", shown(key)))?;
        storage_tensor(&bytes[range.clone()], decl, swap)
            .map_err(|e| format!("storage '{}': {e}", shown(key)))
    })
}
