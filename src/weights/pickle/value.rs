//! The objects a pickle builds, in one flat arena, and the few globals it may name.
use std::collections::HashMap;

use tch::Kind;

use super::tensors::{StorageDecl, StorageRef, TensorRef};

pub(super) type Res<T> = std::result::Result<T, String>;

/// Index of an object in `Pickle::objs`. Objects live in one flat arena so that memo entries share
/// (mutable) dicts and lists as Python's do, and so that dropping a deeply nested corrupt file cannot
/// recurse.
pub(super) type Id = usize;

pub(super) enum Obj {
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
    pub(super) fn type_name(&self) -> &'static str {
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
pub(super) struct Dict {
    pub(super) items: Vec<(Id, Id)>,
    pub(super) by_str: HashMap<String, usize>,
}

/// The only callables and classes a pickle may name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Global {
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

pub(super) fn resolve_global(module: &str, name: &str) -> Res<Global> {
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
pub(super) fn shown(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

/// One unpickled object graph.
pub(super) struct Pickle {
    pub(super) objs: Vec<Obj>,
    pub(super) root: Id,
    /// Every storage the persistent ids declared, by key.
    pub(super) storages: HashMap<String, StorageDecl>,
}

impl Pickle {
    pub(super) fn root(&self) -> &Obj {
        &self.objs[self.root]
    }

    pub(super) fn str(&self, id: Id) -> Res<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Ok(s),
            other => Err(format!("expected a str, found {}", other.type_name())),
        }
    }
}
