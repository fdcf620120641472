//! model.safetensors read for loading, every failure told in words: the safetensors crate reads
//! the file (the format's own checks), and when it refuses, [`diagnose`] reads the header again to
//! say what is wrong and which tensor it concerns ("shape [4, 8] of F16 needs 64 bytes but its
//! data offsets span 128", "the file is truncated"), keeping the crate's code (`TensorInvalidInfo`,
//! `MetadataIncompleteBuffer`, ...) as the cause. libtorch's errors while making the tensors are
//! wrapped the same way, with the tensor's name.
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensors};
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The largest header the safetensors crate reads (its `MAX_HEADER_SIZE`).
const MAX_HEADER: u64 = 100_000_000;

/// The dtypes safetensors 0.3 (the crate tch reads with) defines, with their size in bytes.
const DTYPES: &[(&str, usize)] = &[
    ("BOOL", 1),
    ("U8", 1),
    ("I8", 1),
    ("I16", 2),
    ("U16", 2),
    ("F16", 2),
    ("BF16", 2),
    ("I32", 4),
    ("U32", 4),
    ("F32", 4),
    ("F64", 8),
    ("I64", 8),
    ("U64", 8),
];

/// Every tensor of the safetensors file `path`, in the file's order of data.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| Error::damaged(path, diagnose(&bytes), e))?;
    let mut tensors: Vec<(String, ::safetensors::tensor::TensorView<'_>)> = file.tensors();
    // The crate hands them out in hash order; the data order is the file's own.
    tensors.sort_by_key(|(_, view)| view.data().as_ptr() as usize);
    let mut out = Vec::with_capacity(tensors.len());
    for (name, view) in tensors {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::weights(
                path,
                format!(
                    "tensor '{name}' is stored as {:?}, which libtorch cannot hold; a BERT checkpoint's \
                     weights are floating point (F32, F16, BF16, F64)",
                    view.dtype()
                ),
            )
        })?;
        let size: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &size, kind).map_err(|e| {
            Error::damaged(
                path,
                format!(
                    "tensor '{name}' (shape {:?}, {:?}) cannot be made into a tensor",
                    view.shape(),
                    view.dtype()
                ),
                e,
            )
        })?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// libtorch's kind for a safetensors dtype (tch's own mapping), `None` for the unsigned integers
/// wider than a byte, which libtorch does not have.
fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

/// What is wrong with a safetensors file the crate refused, in words, naming the tensor where one
/// is to blame. Follows the format: 8 bytes of little-endian header length, the JSON header
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
/// data, each tensor's bytes at its offsets, back to back, ending exactly at the end of the file.
pub fn diagnose(bytes: &[u8]) -> String {
    let len = bytes.len() as u64;
    if len < 8 {
        return format!(
            "is {len} bytes long, shorter than the 8-byte header length a safetensors file starts \
             with: the file is truncated or not a safetensors file"
        );
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if n > MAX_HEADER {
        return format!(
            "its first 8 bytes give a header of {n} bytes, more than safetensors allows ({MAX_HEADER}): \
             the file is not a safetensors file, or its start is damaged"
        );
    }
    if 8 + n > len {
        return format!(
            "its header should be {n} bytes but only {} bytes follow the header length: the file is \
             truncated",
            len - 8
        );
    }
    let data_len = len - 8 - n;
    let Ok(text) = std::str::from_utf8(&bytes[8..8 + n as usize]) else {
        return "its header is not UTF-8 text: the header is damaged".into();
    };
    let header: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return format!("its header is not valid JSON ({e}): the header is damaged"),
    };
    let Value::Object(entries) = header else {
        return "its header is not a JSON object of tensors: the header is damaged".into();
    };
    // (begin, end, name) of every tensor, checked one by one.
    let mut spans: Vec<(u64, u64, String)> = Vec::new();
    for (name, entry) in &entries {
        if name == "__metadata__" {
            if !entry.is_object() || entry.as_object().is_some_and(|m| m.values().any(|v| !v.is_string())) {
                return "its header's __metadata__ is not a map of strings: the header is damaged".into();
            }
            continue;
        }
        match check_entry(name, entry, data_len) {
            Ok(span) => spans.push(span),
            Err(msg) => return msg,
        }
    }
    spans.sort();
    let mut end = 0u64;
    let mut previous: Option<&str> = None;
    for (begin, stop, name) in &spans {
        let after = previous.map_or("the start of the data".to_string(), |p| format!("tensor '{p}'"));
        if *begin > end {
            return format!(
                "data bytes {end}..{begin}, between {after} and tensor '{name}', belong to no tensor: a \
                 tensor's entry is missing from the header (dropped), or an offset is damaged"
            );
        }
        if *begin < end {
            return format!(
                "tensor '{name}' begins at data byte {begin}, inside {after} (which ends at {end}): the \
                 offsets overlap, the header is damaged"
            );
        }
        end = *stop;
        previous = Some(name);
    }
    if end < data_len {
        let last = previous.map_or("no tensor".to_string(), |p| format!("tensor '{p}'"));
        return format!(
            "{} bytes follow the last tensor's data ({last} ends at data byte {end} of {data_len}): \
             trailing garbage was appended, or a tensor's entry is missing from the header",
            data_len - end
        );
    }
    "the file is damaged (the safetensors reader refused it; see the cause)".into()
}

/// One header entry: its dtype known, its shape and offsets agreeing, its data inside the file.
fn check_entry(name: &str, entry: &Value, data_len: u64) -> std::result::Result<(u64, u64, String), String> {
    let damaged = |what: &str| format!("tensor '{name}': {what} in the header: the header is damaged");
    let Some(dtype) = entry.get("dtype").and_then(Value::as_str) else {
        return Err(damaged("no dtype string"));
    };
    let Some(&(_, width)) = DTYPES.iter().find(|(d, _)| *d == dtype) else {
        let known = DTYPES.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "tensor '{name}' has dtype '{dtype}', which bertfit cannot read (it reads {known}): the \
             header is damaged, or the checkpoint was saved in a type bertfit does not load (save it \
             in F32, F16 or BF16)"
        ));
    };
    let shape: Option<Vec<u64>> = entry
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|dims| dims.iter().map(Value::as_u64).collect());
    let Some(shape) = shape else { return Err(damaged("no shape of non-negative whole numbers")) };
    let offsets: Option<Vec<u64>> = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().map(Value::as_u64).collect());
    let Some([begin, end]) = offsets.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
        return Err(damaged("no data_offsets [begin, end]"));
    };
    if end < begin {
        return Err(format!("tensor '{name}': its data offsets [{begin}, {end}] end before they begin"));
    }
    let needed = shape.iter().try_fold(width as u64, |acc, &d| acc.checked_mul(d));
    let Some(needed) = needed else {
        return Err(format!(
            "tensor '{name}': its shape {shape:?} is too large to exist (the header is damaged)"
        ));
    };
    if needed != end - begin {
        let elements: u64 = needed / width as u64;
        return Err(format!(
            "tensor '{name}': shape {shape:?} of {dtype} needs {needed} bytes ({elements} elements x \
             {width}) but its data offsets [{begin}, {end}] span {} bytes; the header's dtype or shape \
             does not match the data (e.g. F16 written over F32 bytes)",
            end - begin
        ));
    }
    if end > data_len {
        return Err(format!(
            "tensor '{name}' ends at data byte {end} but the file holds only {data_len} bytes of data: \
             the file is truncated, or the offset is damaged"
        ));
    }
    Ok((begin, end, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of `header` (JSON) and `data` bytes.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn each_damage_is_told_in_words() {
        let two = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
        let good = file(two, &[0; 12]);
        assert!(SafeTensors::deserialize(&good).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..4].to_vec(), "shorter than the 8-byte header length"),
            (good[..20].to_vec(), "the file is truncated"),
            (good[..good.len() - 2].to_vec(), "tensor 'b' ends at data byte 12 but the file holds only 10"),
            ([good.clone(), vec![1, 2, 3]].concat(), "3 bytes follow the last tensor's data"),
            (
                file(&two.replace("\"a\":{\"dtype\":\"F32\"", "\"a\":{\"dtype\":\"F16\""), &[0; 12]),
                "tensor 'a': shape [2] of F16 needs 4 bytes",
            ),
            (file(&two.replace("F32", "F8"), &[0; 12]), "tensor 'a' has dtype 'F8'"),
            (
                file(r#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, &[0; 12]),
                "data bytes 0..8, between the start of the data and tensor 'b', belong to no tensor",
            ),
            (file("{not json", &[]), "not valid JSON"),
        ];
        for (bytes, want) in cases {
            let err = SafeTensors::deserialize(&bytes).err();
            assert!(err.is_some(), "{want}: the crate accepted it");
            let msg = diagnose(&bytes);
            assert!(msg.contains(want), "{want:?} not in {msg:?}");
        }
    }
}
