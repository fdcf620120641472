//! Writes Python objects as `torch.save` does, for files HF Trainer reads with
//! `torch.load(weights_only=True)` (optimizer.pt, scheduler.pt): a zip archive, stored without
//! compression, holding `<stem>/data.pkl` (a protocol-2 pickle), one `<stem>/data/<key>` entry of
//! raw little-endian bytes per tensor storage, and the `version` / `byteorder` records
//! torch/serialization.py `_save` writes.
//!
//! Only what optimizer and scheduler state dicts hold is written: None, bools, ints, floats,
//! strings, tuples, lists, dicts and CPU tensors (`torch._utils._rebuild_tensor_v2` over a
//! persistent-id storage, one storage per tensor). The same [`PyObj`] is what
//! [`crate::weights::pickle::read_torch_object`] gives back.
use std::io::{Cursor, Write};

use tch::{Device, Kind, Tensor};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::pickle::op;
use crate::error::{Error, Result};

/// A Python object of a torch state dict.
#[derive(Debug)]
pub enum PyObj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<PyObj>),
    List(Vec<PyObj>),
    /// Insertion-ordered, as Python's dict.
    Dict(Vec<(PyObj, PyObj)>),
    Tensor(Tensor),
}

impl PyObj {
    pub fn str(s: &str) -> PyObj {
        PyObj::Str(s.to_string())
    }

    /// The value under the string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&PyObj> {
        match self {
            PyObj::Dict(items) => {
                items.iter().find(|(k, _)| matches!(k, PyObj::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// A number as f64 (ints too: Python compares 0 == 0.0).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyObj::Float(v) => Some(*v),
            PyObj::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyObj::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn items(&self) -> Option<&[PyObj]> {
        match self {
            PyObj::List(v) | PyObj::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// Python's name of the type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyObj::None => "None",
            PyObj::Bool(_) => "bool",
            PyObj::Int(_) => "int",
            PyObj::Float(_) => "float",
            PyObj::Str(_) => "str",
            PyObj::Tuple(_) => "tuple",
            PyObj::List(_) => "list",
            PyObj::Dict(_) => "dict",
            PyObj::Tensor(_) => "tensor",
        }
    }
}

/// `torch.save(obj, "<stem>.pt")` as bytes.
pub fn to_bytes(obj: &PyObj, stem: &str) -> Result<Vec<u8>> {
    let mut pickler = Pickler::default();
    pickler.out.extend([op::PROTO, 2]);
    pickler.write(obj)?;
    pickler.out.push(op::STOP);
    let bad = |e: zip::result::ZipError| Error::Runtime(format!("torch.save archive {stem}: {e}"));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    // torch aligns storages to 64 bytes so that they can be memory-mapped (`.storage_alignment`).
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(true);
    let aligned = stored.with_alignment(64);
    let mut entry = |name: String, bytes: &[u8], options: SimpleFileOptions| -> Result<()> {
        zip.start_file(name, options).map_err(bad)?;
        zip.write_all(bytes).map_err(|e| Error::Runtime(format!("torch.save archive {stem}: {e}")))
    };
    entry(format!("{stem}/data.pkl"), &pickler.out, stored)?;
    entry(format!("{stem}/.format_version"), b"1", stored)?;
    entry(format!("{stem}/.storage_alignment"), b"64", stored)?;
    entry(format!("{stem}/byteorder"), b"little", stored)?;
    for (key, t) in pickler.storages.iter().enumerate() {
        entry(format!("{stem}/data/{key}"), &storage_bytes(t)?, aligned)?;
    }
    entry(format!("{stem}/version"), b"3\n", stored)?;
    Ok(zip.finish().map_err(bad)?.into_inner())
}

#[derive(Default)]
struct Pickler {
    out: Vec<u8>,
    /// Each tensor (contiguous, on the CPU); the index is its storage key. Turned into bytes one
    /// at a time as the archive is written, so a large state is not held twice over.
    storages: Vec<Tensor>,
}

impl Pickler {
    fn write(&mut self, obj: &PyObj) -> Result<()> {
        match obj {
            PyObj::None => self.out.push(op::NONE),
            PyObj::Bool(b) => self.out.push(if *b { op::NEWTRUE } else { op::NEWFALSE }),
            PyObj::Int(v) => self.int(*v),
            PyObj::Float(v) => {
                // BINFLOAT is big-endian.
                self.out.push(op::BINFLOAT);
                self.out.extend(v.to_be_bytes());
            }
            PyObj::Str(s) => self.string(s),
            PyObj::Tuple(items) => self.tuple(items)?,
            PyObj::List(items) => {
                self.out.push(op::EMPTY_LIST);
                if !items.is_empty() {
                    self.out.push(op::MARK);
                    for item in items {
                        self.write(item)?;
                    }
                    self.out.push(op::APPENDS);
                }
            }
            PyObj::Dict(items) => {
                self.out.push(op::EMPTY_DICT);
                if !items.is_empty() {
                    self.out.push(op::MARK);
                    for (k, v) in items {
                        self.write(k)?;
                        self.write(v)?;
                    }
                    self.out.push(op::SETITEMS);
                }
            }
            PyObj::Tensor(t) => self.tensor(t)?,
        }
        Ok(())
    }

    /// The shortest of pickle's int encodings, as CPython's `save_long` picks them.
    fn int(&mut self, v: i64) {
        if (0..=0xff).contains(&v) {
            self.out.extend([op::BININT1, v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.out.push(op::BININT2);
            self.out.extend((v as u16).to_le_bytes());
        } else if let Ok(small) = i32::try_from(v) {
            self.out.push(op::BININT);
            self.out.extend(small.to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, 8 bytes is always enough for an i64.
            self.out.extend([op::LONG1, 8]);
            self.out.extend(v.to_le_bytes());
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn tuple(&mut self, items: &[PyObj]) -> Result<()> {
        let short = [op::EMPTY_TUPLE, op::TUPLE1, op::TUPLE2, op::TUPLE3];
        if items.len() > 3 {
            self.out.push(op::MARK);
        }
        for item in items {
            self.write(item)?;
        }
        self.out.push(short.get(items.len()).copied().unwrap_or(op::TUPLE));
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(op::GLOBAL);
        self.out.extend(format!("{module}\n{name}\n").as_bytes());
    }

    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` over a storage of its
    /// own, as torch's `Tensor.__reduce_ex__` pickles a CPU tensor.
    fn tensor(&mut self, t: &Tensor) -> Result<()> {
        let t = t.detach().f_to_device(Device::Cpu)?.f_contiguous()?;
        let class = storage_class(t.kind())?;
        let numel = t.numel();
        let key = self.storages.len();
        self.storages.push(t.shallow_clone());
        let dims: Vec<PyObj> = t.size().into_iter().map(PyObj::Int).collect();
        let strides: Vec<PyObj> = t.stride().into_iter().map(PyObj::Int).collect();
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(op::MARK);
        // The persistent id ('storage', torch.XStorage, key, location, numel).
        self.out.push(op::MARK);
        self.string("storage");
        self.global("torch", class);
        self.string(&key.to_string());
        self.string("cpu");
        self.int(numel as i64);
        self.out.push(op::TUPLE);
        self.out.push(op::BINPERSID);
        self.int(0);
        self.tuple(&dims)?;
        self.tuple(&strides)?;
        self.out.push(op::NEWFALSE);
        self.global("collections", "OrderedDict");
        self.out.extend([op::EMPTY_TUPLE, op::REDUCE]);
        self.out.push(op::TUPLE);
        self.out.push(op::REDUCE);
        Ok(())
    }
}

/// torch's storage class for a dtype.
fn storage_class(kind: Kind) -> Result<&'static str> {
    Ok(match kind {
        Kind::Float => "FloatStorage",
        Kind::Double => "DoubleStorage",
        Kind::Half => "HalfStorage",
        Kind::BFloat16 => "BFloat16Storage",
        Kind::Int64 => "LongStorage",
        Kind::Int => "IntStorage",
        Kind::Uint8 => "ByteStorage",
        Kind::Bool => "BoolStorage",
        other => return Err(Error::Runtime(format!("torch.save: cannot store a {other:?} tensor"))),
    })
}

/// A contiguous CPU tensor's elements as little-endian bytes.
fn storage_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let size = t.kind().elt_size_in_bytes();
    let mut bytes = vec![0u8; t.numel() * size];
    t.f_copy_data_u8(&mut bytes, t.numel())?;
    if cfg!(target_endian = "big") && size > 1 {
        bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer writes, bertfit's reader gives back (torch.load's side is in
    /// tests/checkpoint_hf.rs).
    #[test]
    fn round_trip_through_the_reader() {
        let dir = crate::test_support::fresh_dir("torch_save");
        let t = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]).tr();
        let ints = [0, 255, 256, 65536, -1, i32::MIN as i64, 1 << 40, i64::MIN];
        let obj = PyObj::Dict(vec![
            (PyObj::Int(3), PyObj::List(ints.map(PyObj::Int).into())),
            (PyObj::str("f"), PyObj::Tuple(vec![PyObj::Float(0.1), PyObj::Bool(true), PyObj::None])),
            (PyObj::str("t"), PyObj::Tensor(t.shallow_clone())),
        ]);
        let path = dir.join("x.pt");
        std::fs::write(&path, to_bytes(&obj, "x").unwrap()).unwrap();
        let back = crate::weights::pickle::read_torch_object(&path).unwrap();
        let PyObj::Dict(items) = &back else { panic!("{back:?}") };
        let got: Vec<i64> = items[0].1.items().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(items[0].0.as_i64(), Some(3));
        assert_eq!(got, ints);
        let f = back.get("f").and_then(PyObj::items).unwrap();
        assert!(matches!(f, [PyObj::Float(x), PyObj::Bool(true), PyObj::None] if *x == 0.1));
        let Some(PyObj::Tensor(r)) = back.get("t") else { panic!("no tensor") };
        assert!(r.equal(&t), "{r:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
