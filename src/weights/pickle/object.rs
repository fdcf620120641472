//! Any `torch.save`d object tree of plain values and tensors (an optimizer's or a scheduler's
//! state dict), read by the same guarded pickle machine: the globals allowed are still only the
//! tensor ones, so nothing in the file is ever called.
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use tch::Tensor;

use super::container::{read_entry, unzip, Unzipped};
use super::tensors::{storage_tensor, view_of, TensorRef};
use super::value::{Id, Obj, Pickle, Res};
use crate::weights::torch_save::PyObj;
use crate::{Error, Result};

/// Nesting deeper than any state dict; bounds the work a memo cycle in a corrupt file can cause.
const MAX_DEPTH: usize = 32;

/// Reads a zip-format `torch.save` file (torch >= 1.6) as a [`PyObj`]; tensors are on the CPU and
/// own their memory.
pub fn read_torch_object(path: &Path) -> Result<PyObj> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let Unzipped { mut zip, dir, pickle, swap } = unzip(path, file)?;
    // A storage that one tensor alone views becomes that tensor without a copy (an optimizer
    // state is as large as the model, twice over).
    let mut users: HashMap<String, usize> = HashMap::new();
    for obj in &pickle.objs {
        if let Obj::Tensor(t) = obj {
            *users.entry(t.storage.key.clone()).or_default() += 1;
        }
    }
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut load = |t: &TensorRef| -> Res<Tensor> {
        let key = &t.storage.key;
        if !storages.contains_key(key) {
            let name = format!("{dir}/data/{key}");
            let bytes = read_entry(&mut zip, &name, Some(t.storage.decl.nbytes()?))?;
            let storage = storage_tensor(&bytes, t.storage.decl, swap).map_err(|e| format!("{name}: {e}"))?;
            storages.insert(key.clone(), storage);
        }
        let sole_user = users.get(key) == Some(&1);
        let tensor = view_of(&storages[key], t, sole_user).map_err(|e| e.to_string())?;
        if sole_user {
            storages.remove(key);
        }
        Ok(tensor)
    };
    convert(&pickle, pickle.root, 0, &mut load).map_err(|e| Error::weights(path, e))
}

fn convert(p: &Pickle, id: Id, depth: usize, load: &mut dyn FnMut(&TensorRef) -> Res<Tensor>) -> Res<PyObj> {
    if depth > MAX_DEPTH {
        return Err(format!("objects nested more than {MAX_DEPTH} deep"));
    }
    let mut all =
        |ids: &[Id]| -> Res<Vec<PyObj>> { ids.iter().map(|&i| convert(p, i, depth + 1, load)).collect() };
    Ok(match &p.objs[id] {
        Obj::None => PyObj::None,
        Obj::Bool(b) => PyObj::Bool(*b),
        Obj::Int(v) => PyObj::Int(*v),
        Obj::Float(v) => PyObj::Float(*v),
        Obj::Str(s) => PyObj::Str(s.clone()),
        Obj::Tuple(items) => PyObj::Tuple(all(items)?),
        Obj::List(items) => PyObj::List(all(items)?),
        Obj::Dict(d) => {
            let mut items = Vec::with_capacity(d.items.len());
            for &(k, v) in &d.items {
                items.push((convert(p, k, depth + 1, load)?, convert(p, v, depth + 1, load)?));
            }
            PyObj::Dict(items)
        }
        Obj::Tensor(t) => PyObj::Tensor(load(t)?),
        other => return Err(format!("the file holds {}, which a state dict does not", other.type_name())),
    })
}
