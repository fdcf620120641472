//! Reads a PyTorch `torch.save` state dict (HF's `pytorch_model.bin`) without running Python's unpickler.
//!
//! A pickle is a program for a small stack machine, and `torch.load` lets that program call any
//! importable function: a checkpoint downloaded from the hub can run `os.system`. This module is a pickle
//! machine that knows only the opcodes and the few globals a tensor state dict uses (`OrderedDict`,
//! `_rebuild_tensor_v2`, the typed storage classes) and refuses anything else before calling anything.
//!
//! Two container formats, as in torch/serialization.py:
//! - zip (torch >= 1.6, `_load`): `<dir>/data.pkl`, one `<dir>/data/<key>` entry of raw bytes per storage,
//!   and `<dir>/byteorder`. The folder name is the saved file's stem, so it is found, not assumed.
//! - legacy (torch < 1.6, `_legacy_load`; old hub files such as bert-base-uncased's): five pickles back to
//!   back (magic number, protocol version, sys_info, the object, the list of storage keys), then for each
//!   listed key an 8-byte little-endian element count and the storage's raw little-endian bytes.
//!
//! In both, a tensor is `_rebuild_tensor_v2(storage, offset, size, stride, ...)` where `storage` comes from a
//! persistent id `('storage', <torch.XStorage>, key, location, numel[, view_metadata])`.
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use tch::{Device, Kind, Tensor};
use zip::ZipArchive;

use crate::{Error, Result};

mod object;
pub use object::read_torch_object;

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as LONG1 stores it: little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// `torch.serialization.PROTOCOL_VERSION`, the legacy format's version.
const LEGACY_PROTOCOL: i64 = 1001;
/// More dimensions than any real tensor has; bounds the work a corrupt size tuple can cause.
const MAX_DIMS: usize = 64;

/// Reads the tensors of a `torch.save`d state dict, in the pickle's key order, on the CPU.
///
/// Tensors are contiguous and own their memory (views and storages shared between entries, as tied
/// weights are, are copied apart). A dict holding the state dict under `state_dict` or `model` (a training
/// checkpoint) gives that inner dict. Any other non-tensor value, any global outside the whitelist, and any
/// truncated or inconsistent data is an error naming the file.
pub fn read_pytorch_checkpoint(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        file.rewind().map_err(|e| Error::io(path, e))?;
        read_zip(path, file)
    } else if head.first() == Some(&op::PROTO) {
        drop(file);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        read_legacy(path, &bytes)
    } else {
        Err(Error::weights(
            path,
            "not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a legacy torch.save file",
        ))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Container formats.

fn read_zip(path: &Path, file: File) -> Result<Vec<(String, Tensor)>> {
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
struct Unzipped {
    zip: ZipArchive<BufReader<File>>,
    /// The archive's top folder.
    dir: String,
    pickle: Pickle,
    /// The storages' byte order is not this machine's.
    swap: bool,
}

fn unzip(path: &Path, file: File) -> Result<Unzipped> {
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
fn read_entry<R: Read + Seek>(zip: &mut ZipArchive<R>, name: &str, expected: Option<usize>) -> Res<Vec<u8>> {
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

fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
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

// ---------------------------------------------------------------------------------------------------------
// From unpickled objects to tensors.

/// A storage as the persistent ids declare it: element type and count.
#[derive(Clone, Copy, Debug, PartialEq)]
struct StorageDecl {
    kind: Kind,
    numel: usize,
}

impl StorageDecl {
    fn nbytes(self) -> Res<usize> {
        self.numel
            .checked_mul(self.kind.elt_size_in_bytes())
            .ok_or_else(|| format!("a storage of {} elements is too large", self.numel))
    }
}

/// What a persistent id resolves to: a storage, or (legacy files only) a slice of one.
#[derive(Clone, Debug)]
struct StorageRef {
    key: String,
    decl: StorageDecl,
    /// Elements from the start of the storage `key` to the start of this view.
    offset: usize,
    /// Elements visible through this view.
    numel: usize,
}

/// `_rebuild_tensor_v2`'s arguments, checked to stay inside the storage.
#[derive(Clone, Debug)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// Picks the state dict out of the unpickled root: the root itself, or the dict under `state_dict`/`model`.
fn state_dict_entries(p: &Pickle) -> Res<Vec<(String, TensorRef)>> {
    let Obj::Dict(root) = p.root() else {
        return Err(format!(
            "the checkpoint holds {}, not a state dict (a dict of tensors)",
            p.root().type_name()
        ));
    };
    let non_tensors = match tensor_entries(p, root) {
        Ok(entries) => return Ok(entries),
        Err(non_tensors) => non_tensors,
    };
    for wrapper in ["state_dict", "model"] {
        if let Some(&(_, value)) =
            root.items.iter().find(|&&(k, _)| matches!(&p.objs[k], Obj::Str(s) if s == wrapper))
        {
            if let Obj::Dict(inner) = &p.objs[value] {
                if let Ok(entries) = tensor_entries(p, inner) {
                    return Ok(entries);
                }
            }
        }
    }
    const SHOWN: usize = 5;
    let mut listed = non_tensors.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if non_tensors.len() > SHOWN {
        listed.push_str(&format!(" and {} more", non_tensors.len() - SHOWN));
    }
    Err(format!("not a state dict: the values of {listed} are not tensors"))
}

/// The (name, tensor) pairs of a dict, or a description of each entry that is not a named tensor.
fn tensor_entries(p: &Pickle, dict: &Dict) -> std::result::Result<Vec<(String, TensorRef)>, Vec<String>> {
    let mut entries = Vec::with_capacity(dict.items.len());
    let mut bad = Vec::new();
    for &(k, v) in &dict.items {
        match (&p.objs[k], &p.objs[v]) {
            (Obj::Str(name), Obj::Tensor(t)) => entries.push((name.clone(), t.clone())),
            (Obj::Str(name), other) => bad.push(format!("'{}' ({})", shown(name), other.type_name())),
            (other, _) => bad.push(format!("a key of type {}", other.type_name())),
        }
    }
    if bad.is_empty() {
        Ok(entries)
    } else {
        Err(bad)
    }
}

/// Builds the output tensors, loading each storage once through `load` and freeing it after its last use.
fn materialize(
    path: &Path,
    entries: &[(String, TensorRef)],
    mut load: impl FnMut(&str, StorageDecl) -> Res<Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    let mut remaining: HashMap<&str, usize> = HashMap::new();
    for (_, t) in entries {
        *remaining.entry(t.storage.key.as_str()).or_default() += 1;
    }
    let sole_user: HashMap<&str, bool> = remaining.iter().map(|(&k, &n)| (k, n == 1)).collect();
    let mut loaded: HashMap<&str, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let key = t.storage.key.as_str();
        if !loaded.contains_key(key) {
            let storage = load(key, t.storage.decl).map_err(|e| Error::weights(path, e))?;
            loaded.insert(key, storage);
        }
        let storage = &loaded[key];
        let tensor = view_of(storage, t, sole_user[key])
            .map_err(|e| Error::weights(path, format!("tensor '{}': {e}", shown(name))))?;
        out.push((name.clone(), tensor));
        let left = remaining.entry(key).or_default();
        *left = left.saturating_sub(1);
        if *left == 0 {
            loaded.remove(key);
        }
    }
    Ok(out)
}

/// `storage.as_strided(size, stride, offset)`, as a tensor of its own unless it is the whole storage.
fn view_of(storage: &Tensor, t: &TensorRef, sole_user: bool) -> std::result::Result<Tensor, tch::TchError> {
    let options = (t.storage.decl.kind, Device::Cpu);
    if t.size.contains(&0) {
        return Tensor::f_empty(t.size.as_slice(), options);
    }
    // Bounds were checked when the pickle was read (`check_view`), so these fit in i64.
    let offset = (t.storage.offset + t.offset) as i64;
    let view = storage.f_as_strided(t.size.as_slice(), t.stride.as_slice(), offset)?;
    let numel: i64 = t.size.iter().product();
    if sole_user && view.is_contiguous() && numel as usize == t.storage.decl.numel {
        return Ok(view);
    }
    // Copy so that a slice does not keep its whole storage alive, and tied names stay independent.
    let mut own = Tensor::f_empty(t.size.as_slice(), options)?;
    own.f_copy_(&view)?;
    Ok(own)
}

/// A 1-d tensor of a storage's raw bytes, swapping each element's bytes when the file's order is not ours.
fn storage_tensor(bytes: &[u8], decl: StorageDecl, swap: bool) -> Res<Tensor> {
    let nbytes = decl.nbytes()?;
    if bytes.len() != nbytes {
        return Err(format!("{} bytes for {} elements of {:?}", bytes.len(), decl.numel, decl.kind));
    }
    let elt = decl.kind.elt_size_in_bytes();
    let bytes: Cow<[u8]> = if swap && elt > 1 {
        let mut own = bytes.to_vec();
        own.chunks_exact_mut(elt).for_each(<[u8]>::reverse);
        Cow::Owned(own)
    } else {
        Cow::Borrowed(bytes)
    };
    // `from_data_size` copies numel * element size bytes without checking: the length was checked above.
    Tensor::f_from_data_size(&bytes, &[decl.numel as i64], decl.kind).map_err(|e| e.to_string())
}

/// `as_strided` reads storage[offset + sum((size_i - 1) * stride_i)] at most: check it is inside the view.
fn check_view(size: &[i64], stride: &[i64], offset: usize, view_numel: usize) -> Res<()> {
    if size.len() != stride.len() || size.len() > MAX_DIMS {
        return Err(format!("tensor with {} sizes and {} strides", size.len(), stride.len()));
    }
    if size.iter().chain(stride).any(|&v| v < 0) {
        return Err(format!("tensor with a negative size or stride ({size:?}, {stride:?})"));
    }
    if size.contains(&0) {
        return Ok(());
    }
    // u128 holds any (i64 - 1) * i64 product; saturation only matters past i64::MAX, which is refused.
    let numel = size.iter().fold(1u128, |acc, &n| acc.saturating_mul(n as u128));
    if numel > i64::MAX as u128 {
        return Err(format!("tensor of size {size:?} has too many elements"));
    }
    let mut last = offset as u128;
    for (&n, &s) in size.iter().zip(stride) {
        last = last.saturating_add((n as u128 - 1).saturating_mul(s as u128));
    }
    if last >= view_numel as u128 || last > i64::MAX as u128 {
        return Err(format!(
            "tensor (offset {offset}, size {size:?}, stride {stride:?}) reads element {last} of a storage of {view_numel}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The pickle machine.

type Res<T> = std::result::Result<T, String>;

/// Index of an object in `Pickle::objs`. Objects live in one flat arena so that memo entries share
/// (mutable) dicts and lists as Python's do, and so that dropping a deeply nested corrupt file cannot
/// recurse.
type Id = usize;

enum Obj {
    None,
    /// In a state dict, only in values it ignores (`requires_grad`); optimizer state has them.
    Bool(bool),
    Int(i64),
    /// An int that does not fit i64, as little-endian two's complement bytes (the legacy magic number).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Dict),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Obj {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt(_) => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "a global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
        }
    }
}

/// An insertion-ordered dict. String keys replace as in Python; other keys (absent from state dicts)
/// are kept in order without deduplication.
#[derive(Default)]
struct Dict {
    items: Vec<(Id, Id)>,
    by_str: HashMap<String, usize>,
}

/// The only callables and classes a pickle may name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Global {
    OrderedDict,
    /// torch < 0.4's `_rebuild_tensor`.
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    /// `torch.FloatStorage` and friends: only ever a persistent id's type tag, never called.
    Storage(Kind),
    /// `_codecs.encode(str, 'latin1')`: how protocol 2 spells a bytes object.
    CodecsEncode,
}

fn resolve_global(module: &str, name: &str) -> Res<Global> {
    let allowed = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("_codecs", "encode") => Some(Global::CodecsEncode),
        ("torch", class) => storage_kind(class).map(Global::Storage),
        _ => None,
    };
    allowed.ok_or_else(|| {
        // TorchScript archives share the zip layout but pickle their own classes.
        let hint = if module.starts_with("__torch__") {
            "; this is a TorchScript (torch.jit.save) archive"
        } else {
            ""
        };
        format!(
            "pickle global '{}.{}' is not allowed (only tensor state dicts are read{hint})",
            shown(module),
            shown(name)
        )
    })
}

/// torch/storage.py's `_dtype_to_storage_type_map`, for the dtypes tch has.
fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// Text from the file, escaped and cut short so that a corrupt name cannot flood an error message.
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

/// One unpickled object graph.
struct Pickle {
    objs: Vec<Obj>,
    root: Id,
    /// Every storage the persistent ids declared, by key.
    storages: HashMap<String, StorageDecl>,
}

impl Pickle {
    fn root(&self) -> &Obj {
        &self.objs[self.root]
    }

    fn str(&self, id: Id) -> Res<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Ok(s),
            other => Err(format!("expected a str, found {}", other.type_name())),
        }
    }
}

/// Pickle opcodes (CPython's Lib/pickle.py names), for this reader and torch_save's writer.
pub(crate) mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const EMPTY_LIST: u8 = b']';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;

    /// The name of any pickle opcode, for errors about the ones this reader refuses.
    pub fn name(op: u8) -> &'static str {
        match op {
            b'(' => "MARK",
            b'.' => "STOP",
            b'0' => "POP",
            b'1' => "POP_MARK",
            b'2' => "DUP",
            b'F' => "FLOAT",
            b'I' => "INT",
            b'J' => "BININT",
            b'K' => "BININT1",
            b'L' => "LONG",
            b'M' => "BININT2",
            b'N' => "NONE",
            b'P' => "PERSID",
            b'Q' => "BINPERSID",
            b'R' => "REDUCE",
            b'S' => "STRING",
            b'T' => "BINSTRING",
            b'U' => "SHORT_BINSTRING",
            b'V' => "UNICODE",
            b'X' => "BINUNICODE",
            b'a' => "APPEND",
            b'b' => "BUILD",
            b'c' => "GLOBAL",
            b'd' => "DICT",
            b'}' => "EMPTY_DICT",
            b'e' => "APPENDS",
            b'g' => "GET",
            b'h' => "BINGET",
            b'i' => "INST",
            b'j' => "LONG_BINGET",
            b'l' => "LIST",
            b']' => "EMPTY_LIST",
            b'o' => "OBJ",
            b'p' => "PUT",
            b'q' => "BINPUT",
            b'r' => "LONG_BINPUT",
            b's' => "SETITEM",
            b't' => "TUPLE",
            b')' => "EMPTY_TUPLE",
            b'u' => "SETITEMS",
            b'G' => "BINFLOAT",
            0x80 => "PROTO",
            0x81 => "NEWOBJ",
            0x82 => "EXT1",
            0x83 => "EXT2",
            0x84 => "EXT4",
            0x85 => "TUPLE1",
            0x86 => "TUPLE2",
            0x87 => "TUPLE3",
            0x88 => "NEWTRUE",
            0x89 => "NEWFALSE",
            0x8a => "LONG1",
            0x8b => "LONG4",
            b'B' => "BINBYTES",
            b'C' => "SHORT_BINBYTES",
            0x8c => "SHORT_BINUNICODE",
            0x8d => "BINUNICODE8",
            0x8e => "BINBYTES8",
            0x8f => "EMPTY_SET",
            0x90 => "ADDITEMS",
            0x91 => "FROZENSET",
            0x92 => "NEWOBJ_EX",
            0x93 => "STACK_GLOBAL",
            0x94 => "MEMOIZE",
            0x95 => "FRAME",
            0x96 => "BYTEARRAY8",
            0x97 => "NEXT_BUFFER",
            0x98 => "READONLY_BUFFER",
            _ => "unknown",
        }
    }
}

/// Runs the pickle that starts at `data[start]` up to its STOP; returns it and the offset after STOP.
/// `what` names the pickle in errors, which also give the opcode's byte offset in `data`.
fn unpickle(data: &[u8], start: usize, what: &str) -> Res<(Pickle, usize)> {
    let mut m = Machine { data, pos: start, ..Machine::default() };
    loop {
        let at = m.pos;
        let step = match m.byte() {
            Ok(opcode) => m.step(opcode),
            Err(e) => Err(e),
        };
        match step {
            Ok(None) => {}
            Ok(Some(root)) => {
                let pickle = Pickle { objs: m.objs, root, storages: m.storages };
                return Ok((pickle, m.pos));
            }
            Err(msg) => return Err(format!("{msg} (at byte {at} of {what})")),
        }
    }
}

#[derive(Default)]
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    /// Stack heights at each open MARK (CPython's metastack).
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    storages: HashMap<String, StorageDecl>,
}

impl<'a> Machine<'a> {
    /// Executes one opcode; returns the root object at STOP.
    fn step(&mut self, opcode: u8) -> Res<Option<Id>> {
        if opcode == op::STOP {
            return self.pop().map(Some);
        }
        let known = self.stack_op(opcode)?
            || self.number_op(opcode)?
            || self.bytes_op(opcode)?
            || self.container_op(opcode)?
            || self.memo_op(opcode)?
            || self.object_op(opcode)?;
        if !known {
            return Err(format!(
                "unsupported pickle opcode {} (0x{opcode:02x}); only tensor state dicts are read",
                op::name(opcode)
            ));
        }
        Ok(None)
    }

    /// Framing and the stack: protocol, frames, marks, pops, duplicates.
    /// Returns whether `opcode` is one of them.
    fn stack_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::PROTO => {
                let version = self.byte()?;
                if version > 5 {
                    return Err(format!("pickle protocol {version} is newer than 5"));
                }
            }
            // A hint for buffered readers: the frame's opcodes follow inline.
            op::FRAME => {
                self.take(8)?;
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.stack.push(top);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers and floats.
    /// Returns whether `opcode` is one of them.
    fn number_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::NONE => self.push(Obj::None),
            op::NEWTRUE | op::NEWFALSE => self.push(Obj::Bool(opcode == op::NEWTRUE)),
            op::BININT => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Obj::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.byte()?;
                self.push(Obj::Int(v.into()));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Obj::Int(v.into()));
            }
            op::LONG1 => {
                let n = self.byte()? as usize;
                let obj = long(self.take(n)?);
                self.push(obj);
            }
            op::LONG4 => {
                let n = self.len32()?;
                let obj = long(self.take(n)?);
                self.push(obj);
            }
            op::BINFLOAT => {
                // Big-endian, as pickle writes it.
                let v = f64::from_be_bytes(self.array()?);
                self.push(Obj::Float(v));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Strings and bytes.
    /// Returns whether `opcode` is one of them.
    fn bytes_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::SHORT_BINUNICODE => {
                let n = self.byte()? as usize;
                self.push_str(n)?;
            }
            op::BINUNICODE => {
                let n = self.len32()?;
                self.push_str(n)?;
            }
            op::BINUNICODE8 => {
                let n = self.len64()?;
                self.push_str(n)?;
            }
            // Python 2 str: torch.load decodes them with encoding='utf-8'.
            op::SHORT_BINSTRING => {
                let n = self.byte()? as usize;
                self.push_str(n)?;
            }
            op::BINSTRING => {
                let n = self.len32()?;
                self.push_str(n)?;
            }
            op::SHORT_BINBYTES => {
                let n = self.byte()? as usize;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            op::BINBYTES => {
                let n = self.len32()?;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            op::BINBYTES8 => {
                let n = self.len64()?;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts.
    /// Returns whether `opcode` is one of them.
    fn container_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new())),
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(opcode - op::TUPLE1) + 1;
                let at = self.stack.len().checked_sub(n).filter(|&at| at >= self.floor());
                let at = at.ok_or("pickle stack underflow")?;
                let items = self.stack.split_off(at);
                self.push(Obj::Tuple(items));
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items));
            }
            op::EMPTY_LIST => self.push(Obj::List(Vec::new())),
            op::APPEND => {
                let item = self.pop()?;
                let list = self.top()?;
                self.list_mut(list)?.push(item);
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let list = self.top()?;
                self.list_mut(list)?.extend(items);
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Dict::default())),
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                let dict = self.top()?;
                self.set_item(dict, key, value)?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let dict = self.top()?;
                for pair in items.chunks_exact(2) {
                    self.set_item(dict, pair[0], pair[1])?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo: put and get.
    /// Returns whether `opcode` is one of them.
    fn memo_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::BINPUT => {
                let i = self.byte()?.into();
                self.put(i)?;
            }
            op::LONG_BINPUT => {
                let i = u32::from_le_bytes(self.array()?);
                self.put(i)?;
            }
            op::MEMOIZE => {
                let i = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.put(i)?;
            }
            op::BINGET => {
                let i = self.byte()?.into();
                self.get(i)?;
            }
            op::LONG_BINGET => {
                let i = u32::from_le_bytes(self.array()?);
                self.get(i)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals (refused names fail here, before anything could call them), calls, BUILD and
    /// persistent ids (tensor storages).
    /// Returns whether `opcode` is one of them.
    fn object_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                let global = resolve_global(module, name)?;
                self.push(Obj::Global(global));
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let global = match (&self.objs[module], &self.objs[name]) {
                    (Obj::Str(module), Obj::Str(name)) => resolve_global(module, name)?,
                    _ => return Err("STACK_GLOBAL needs a module and a name".into()),
                };
                self.push(Obj::Global(global));
            }
            op::REDUCE | op::NEWOBJ => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let Obj::Global(global) = self.objs[callable] else {
                    return Err(format!(
                        "{} calls {}, not a global",
                        op::name(opcode),
                        self.objs[callable].type_name()
                    ));
                };
                let obj = self.call(global, args)?;
                self.push(obj);
            }
            op::BUILD => {
                let _state = self.pop()?;
                let target = self.top()?;
                // An OrderedDict's state is its attributes (a state dict's `_metadata` of module versions),
                // which a state dict loader does not need.
                if !matches!(self.objs[target], Obj::Dict(_)) {
                    return Err(format!("BUILD on {} is not supported", self.objs[target].type_name()));
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = self.persistent_load(pid)?;
                self.push(Obj::Storage(storage));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    // --- Reading the byte stream; every length is checked against what is left.

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| format!("unexpected end of data: {n} bytes needed (truncated?)"))?;
        let data: &'a [u8] = self.data;
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn len32(&mut self) -> Res<usize> {
        // BINSTRING and LONG4 store a signed length: a negative one reads as > 2 GiB and fails `take`.
        let n = u32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("length {n} does not fit"))
    }

    fn len64(&mut self) -> Res<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("length {n} does not fit"))
    }

    /// A newline-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> Res<&'a str> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("unterminated GLOBAL name (truncated?)")?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += n + 1;
        Ok(line)
    }

    fn push_str(&mut self, n: usize) -> Res<()> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")?.to_string();
        self.push(Obj::Str(s));
        Ok(())
    }

    // --- The stack, marks and memo.

    fn push(&mut self, obj: Obj) {
        self.objs.push(obj);
        self.stack.push(self.objs.len() - 1);
    }

    /// The lowest stack slot above the innermost MARK: CPython cannot pop below it either.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err("pickle stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "pickle stack underflow".into())
    }

    fn top(&self) -> Res<Id> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err("pickle stack underflow".into()),
        }
    }

    fn pop_mark(&mut self) -> Res<Vec<Id>> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn put(&mut self, i: u32) -> Res<()> {
        let top = self.top()?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn get(&mut self, i: u32) -> Res<()> {
        let id = *self.memo.get(&i).ok_or_else(|| format!("memo entry {i} is not defined"))?;
        self.stack.push(id);
        Ok(())
    }

    // --- Objects.

    fn list_mut(&mut self, id: Id) -> Res<&mut Vec<Id>> {
        match &mut self.objs[id] {
            Obj::List(items) => Ok(items),
            other => Err(format!("APPEND to {}, not a list", other.type_name())),
        }
    }

    fn set_item(&mut self, dict: Id, key: Id, value: Id) -> Res<()> {
        let key_str = match &self.objs[key] {
            Obj::Str(s) => Some(s.clone()),
            _ => None,
        };
        let Obj::Dict(d) = &mut self.objs[dict] else {
            return Err(format!("SETITEM on {}, not a dict", self.objs[dict].type_name()));
        };
        match key_str {
            Some(s) => match d.by_str.get(&s) {
                Some(&slot) => d.items[slot] = (key, value),
                None => {
                    d.by_str.insert(s, d.items.len());
                    d.items.push((key, value));
                }
            },
            None => d.items.push((key, value)),
        }
        Ok(())
    }

    fn int(&self, id: Id) -> Res<i64> {
        match self.objs[id] {
            Obj::Int(v) => Ok(v),
            ref other => Err(format!("expected an int, found {}", other.type_name())),
        }
    }

    fn index(&self, id: Id, what: &str) -> Res<usize> {
        let v = self.int(id)?;
        usize::try_from(v).map_err(|_| format!("{what} {v} is negative"))
    }

    fn ints(&self, id: Id) -> Res<Vec<i64>> {
        match &self.objs[id] {
            Obj::Tuple(items) | Obj::List(items) => items.iter().map(|&i| self.int(i)).collect(),
            other => Err(format!("expected a tuple of ints, found {}", other.type_name())),
        }
    }

    /// A str, or ASCII bytes (`torch.serialization._maybe_decode_ascii`).
    fn text(&self, id: Id) -> Res<String> {
        match &self.objs[id] {
            Obj::Str(s) => Ok(s.clone()),
            Obj::Bytes(b) if b.is_ascii() => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(format!("expected a str, found {}", other.type_name())),
        }
    }

    fn tuple(&self, id: Id) -> Res<Vec<Id>> {
        match &self.objs[id] {
            Obj::Tuple(items) => Ok(items.clone()),
            other => Err(format!("expected a tuple, found {}", other.type_name())),
        }
    }

    /// REDUCE/NEWOBJ of a whitelisted global.
    fn call(&mut self, global: Global, args: Id) -> Res<Obj> {
        let args = self.tuple(args)?;
        match global {
            Global::OrderedDict if args.is_empty() => Ok(Obj::Dict(Dict::default())),
            Global::OrderedDict => Err("OrderedDict(...) with arguments is not supported".into()),
            // torch/_utils.py: _rebuild_tensor(storage, storage_offset, size, stride).
            Global::RebuildTensor => match args.as_slice() {
                &[storage, offset, size, stride] => self.rebuild_tensor(storage, offset, size, stride),
                _ => Err(format!("_rebuild_tensor with {} arguments", args.len())),
            },
            // torch/_utils.py: _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
            // backward_hooks, metadata=None). Gradients and hooks do not matter to a state dict.
            Global::RebuildTensorV2 => {
                let &[storage, offset, size, stride, _requires_grad, _hooks, ref metadata @ ..] =
                    args.as_slice()
                else {
                    return Err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
                };
                match metadata {
                    [] => {}
                    [m] if matches!(&self.objs[*m], Obj::None) => {}
                    [m] if matches!(&self.objs[*m], Obj::Dict(d) if d.items.is_empty()) => {}
                    _ => return Err("_rebuild_tensor_v2 with tensor metadata is not supported".into()),
                }
                self.rebuild_tensor(storage, offset, size, stride)
            }
            // torch/_utils.py: _rebuild_parameter(data, requires_grad, backward_hooks): the data is the tensor.
            Global::RebuildParameter => match args.as_slice() {
                [data, _, _] => match &self.objs[*data] {
                    Obj::Tensor(t) => Ok(Obj::Tensor(t.clone())),
                    other => Err(format!("_rebuild_parameter of {}, not a tensor", other.type_name())),
                },
                _ => Err(format!("_rebuild_parameter with {} arguments", args.len())),
            },
            Global::CodecsEncode => {
                let [text, encoding] = args.as_slice() else {
                    return Err(format!("_codecs.encode with {} arguments", args.len()));
                };
                let (text, encoding) = (self.text(*text)?, self.text(*encoding)?);
                let bytes = match encoding.as_str() {
                    "latin1" | "latin-1" => text
                        .chars()
                        .map(|c| u8::try_from(c).map_err(|_| format!("character {c:?} is not latin-1")))
                        .collect::<Res<Vec<u8>>>()?,
                    "utf-8" | "utf8" => text.into_bytes(),
                    other => return Err(format!("_codecs.encode to '{}' is not supported", shown(other))),
                };
                Ok(Obj::Bytes(bytes))
            }
            Global::Storage(kind) => Err(format!("calling the {kind:?} storage class is not supported")),
        }
    }

    /// A tensor viewing `storage`, checked to stay inside it.
    fn rebuild_tensor(&self, storage: Id, offset: Id, size: Id, stride: Id) -> Res<Obj> {
        let Obj::Storage(storage) = &self.objs[storage] else {
            return Err(format!("a tensor of {}, not a storage", self.objs[storage].type_name()));
        };
        let offset = self.index(offset, "storage offset")?;
        let (size, stride) = (self.ints(size)?, self.ints(stride)?);
        check_view(&size, &stride, offset, storage.numel)?;
        Ok(Obj::Tensor(TensorRef { storage: storage.clone(), offset, size, stride }))
    }

    /// torch/serialization.py `persistent_load`: `('storage', storage_type, key, location, numel[, view])`.
    fn persistent_load(&mut self, pid: Id) -> Res<StorageRef> {
        let items = self.tuple(pid)?;
        let Some((&tag, fields)) = items.split_first() else {
            return Err("empty persistent id".into());
        };
        match self.text(tag)?.as_str() {
            "storage" => {}
            "module" => {
                return Err(
                    "the checkpoint pickles a whole nn.Module, not a state dict: save model.state_dict()"
                        .into(),
                )
            }
            other => return Err(format!("unknown persistent id type '{}'", shown(other))),
        }
        let (storage_type, key, numel, view) = match fields {
            [t, key, _location, numel] => (*t, *key, *numel, None),
            [t, key, _location, numel, view] => (*t, *key, *numel, Some(*view)),
            _ => return Err(format!("storage persistent id with {} fields", items.len())),
        };
        let Obj::Global(Global::Storage(kind)) = self.objs[storage_type] else {
            return Err(format!(
                "storage persistent id with {} as its type",
                self.objs[storage_type].type_name()
            ));
        };
        let key = self.text(key)?;
        let decl = StorageDecl { kind, numel: self.index(numel, "storage size")? };
        decl.nbytes()?;
        match self.storages.get(&key) {
            Some(seen) if *seen != decl => {
                return Err(format!("storage '{}' is declared as both {seen:?} and {decl:?}", shown(&key)))
            }
            Some(_) => {}
            None => {
                self.storages.insert(key.clone(), decl);
            }
        }
        // Legacy files could name a slice of a storage: (view_key, offset, size) in elements.
        let (offset, numel) = match view.map(|v| &self.objs[v]) {
            None | Some(Obj::None) => (0, decl.numel),
            Some(Obj::Tuple(v)) if v.len() == 3 => {
                let (offset, size) =
                    (self.index(v[1], "storage view offset")?, self.index(v[2], "storage view size")?);
                if offset.checked_add(size).is_none_or(|end| end > decl.numel) {
                    return Err(format!("storage view {offset}+{size} outside a storage of {}", decl.numel));
                }
                (offset, size)
            }
            Some(other) => return Err(format!("storage view metadata is {}", other.type_name())),
        };
        Ok(StorageRef { key, decl, offset, numel })
    }
}

/// LONG1/LONG4's little-endian two's complement integer.
fn long(bytes: &[u8]) -> Obj {
    if bytes.len() > 8 {
        return Obj::BigInt(bytes.to_vec());
    }
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0 };
    let mut full = [fill; 8];
    full[..bytes.len()].copy_from_slice(bytes);
    Obj::Int(i64::from_le_bytes(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Res<Pickle> {
        unpickle(bytes, 0, "test").map(|(p, _)| p)
    }

    #[test]
    fn refuses_unlisted_globals_by_name() {
        let err = run(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echo\x85R.").err().unwrap_or_default();
        assert!(err.contains("pickle global 'os.system' is not allowed"), "{err}");
        let err = run(b"\x80\x04\x8c\x05torch\x8c\x07storage\x93.").err().unwrap_or_default();
        assert!(err.contains("'torch.storage' is not allowed"), "{err}");
    }

    #[test]
    fn names_unsupported_opcodes_and_their_offset() {
        let err = run(b"\x80\x02N0i__main__\nX\n.").err().unwrap_or_default();
        assert!(err.contains("INST (0x69)") && err.contains("byte 4"), "{err}");
    }

    #[test]
    fn truncation_and_bad_references_are_errors() {
        for bytes in [
            &b"\x80\x02X\xff\x00\x00\x00ab"[..],
            b"\x80\x02h\x07.",
            b"\x80\x02(t0.",
            b"\x80\x02s.",
            b"\x80\x02K",
        ] {
            assert!(run(bytes).is_err(), "{bytes:?}");
        }
        // A MARK fences the stack: TUPLE1 cannot reach below it.
        assert!(run(b"\x80\x02N(\x85.").is_err());
    }

    #[test]
    fn memo_shares_mutable_objects() {
        // d = {}; memo[0] = d; d['a'] = 1 through the memo; STOP returns the same dict.
        let p = run(b"\x80\x02}q\x000h\x00X\x01\x00\x00\x00aK\x01s.").unwrap_or_else(|e| panic!("{e}"));
        let Obj::Dict(d) = p.root() else { panic!("not a dict") };
        assert_eq!(d.items.len(), 1);
    }

    #[test]
    fn longs_and_views() {
        assert!(matches!(long(&[0xff]), Obj::Int(-1)));
        assert!(matches!(long(&[0x00, 0x80, 0x00]), Obj::Int(0x8000)));
        assert!(matches!(long(&LEGACY_MAGIC), Obj::BigInt(_)));
        assert!(check_view(&[2, 3], &[3, 1], 0, 6).is_ok());
        assert!(check_view(&[2, 3], &[3, 1], 1, 6).is_err());
        assert!(check_view(&[3, 2], &[1, 3], 0, 6).is_ok());
        assert!(check_view(&[0, 5], &[5, 1], 100, 6).is_ok());
        assert!(check_view(&[i64::MAX, 2], &[i64::MAX, 1], 0, 6).is_err());
        assert!(check_view(&[2], &[-1], 1, 6).is_err());
    }
}
