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
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use tch::Tensor;

use crate::{Error, Result};

mod container;
mod machine;
mod object;
pub(crate) mod op;
mod tensors;
mod value;

use container::{read_legacy, read_zip};
pub use object::read_torch_object;

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
