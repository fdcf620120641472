//! From an unpickled object graph to tensors: the state dict's entries, their storages, and views
//! checked to stay inside them.
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::value::{shown, Dict, Obj, Pickle, Res};
use crate::{Error, Result};

/// More dimensions than any real tensor has; bounds the work a corrupt size tuple can cause.
const MAX_DIMS: usize = 64;

/// A storage as the persistent ids declare it: element type and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct StorageDecl {
    pub(super) kind: Kind,
    pub(super) numel: usize,
}

impl StorageDecl {
    pub(super) fn nbytes(self) -> Res<usize> {
        self.numel
            .checked_mul(self.kind.elt_size_in_bytes())
            .ok_or_else(|| format!("a storage of {} elements is too large", self.numel))
    }
}

/// What a persistent id resolves to: a storage, or (legacy files only) a slice of one.
#[derive(Clone, Debug)]
pub(super) struct StorageRef {
    pub(super) key: String,
    pub(super) decl: StorageDecl,
    /// Elements from the start of the storage `key` to the start of this view.
    pub(super) offset: usize,
    /// Elements visible through this view.
    pub(super) numel: usize,
}

/// `_rebuild_tensor_v2`'s arguments, checked to stay inside the storage.
#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub(super) storage: StorageRef,
    pub(super) offset: usize,
    pub(super) size: Vec<i64>,
    pub(super) stride: Vec<i64>,
}

/// Picks the state dict out of the unpickled root: the root itself, or the dict under `state_dict`/`model`.
pub(super) fn state_dict_entries(p: &Pickle) -> Res<Vec<(String, TensorRef)>> {
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
pub(super) fn materialize(
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
pub(super) fn view_of(
    storage: &Tensor,
    t: &TensorRef,
    sole_user: bool,
) -> std::result::Result<Tensor, tch::TchError> {
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
pub(super) fn storage_tensor(bytes: &[u8], decl: StorageDecl, swap: bool) -> Res<Tensor> {
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
pub(super) fn check_view(size: &[i64], stride: &[i64], offset: usize, view_numel: usize) -> Res<()> {
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
