//! Collating tokenized examples into padded tensors.
use tch::{Device, Kind, Tensor};

use super::labels::Target;
use super::tokenize::Encoding;
pub use crate::device::to_device_async;

/// How a batch is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Padding {
    /// To the longest sequence in the batch (HF's DataCollatorWithPadding): no compute on padding
    /// beyond what the batch needs. Results per example are the same as with `max-length`.
    Longest,
    /// To `max_length`, like `padding='max_length'` in the seed script.
    MaxLength,
}

/// One model input. All tensors are int64 on `device`.
#[derive(Debug)]
pub struct Batch {
    /// (B, T)
    pub input_ids: Tensor,
    /// (B, T): 1 for tokens, 0 for padding
    pub attention_mask: Tensor,
    /// (B, T)
    pub token_type_ids: Tensor,
    /// Targets: (B,) int64 class ids, (B, C) float multi-hot rows, or (B,) float regression
    /// values; `None` for rows to predict.
    pub labels: Option<Tensor>,
}

impl Batch {
    /// The same batch on `device` (a no-op on the CPU). The copies are asynchronous: from pinned
    /// memory ([`Batch::pinned`]) they do not wait for the GPU, so the host goes on queueing work;
    /// from ordinary memory libtorch makes them synchronous, which is always safe.
    pub fn to_device(&self, device: Device) -> Batch {
        let to = |t: &Tensor| to_device_async(t, device);
        Batch {
            input_ids: to(&self.input_ids),
            attention_mask: to(&self.attention_mask),
            token_type_ids: to(&self.token_type_ids),
            labels: self.labels.as_ref().map(to),
        }
    }

    /// The same batch in page-locked host memory, for asynchronous copies to the CUDA `device`
    /// (the loader thread pins the next batches while the GPU computes this one).
    pub fn pinned(&self, device: Device) -> crate::Result<Batch> {
        let pin = |t: &Tensor| {
            t.f_pin_memory(device)
                .map_err(|e| crate::Error::Runtime(format!("pinning a batch for {device:?}: {e}")))
        };
        Ok(Batch {
            input_ids: pin(&self.input_ids)?,
            attention_mask: pin(&self.attention_mask)?,
            token_type_ids: pin(&self.token_type_ids)?,
            labels: self.labels.as_ref().map(pin).transpose()?,
        })
    }

    pub fn size(&self) -> usize {
        self.input_ids.size()[0] as usize
    }
}

/// Pads `encodings` (right side, `pad_id`, mask 0, token type 0) and stacks them.
pub fn collate(
    encodings: &[&Encoding],
    labels: Option<&[Target]>,
    padding: Padding,
    max_length: usize,
    pad_id: i64,
    device: Device,
) -> Batch {
    let width = match padding {
        Padding::Longest => encodings.iter().map(|e| e.input_ids.len()).max().unwrap_or(0),
        Padding::MaxLength => max_length,
    };
    let b = encodings.len();
    let mut ids = vec![pad_id; b * width];
    let mut mask = vec![0i64; b * width];
    let mut types = vec![0i64; b * width];
    for (i, e) in encodings.iter().enumerate() {
        let n = e.input_ids.len().min(width);
        let row = i * width;
        ids[row..row + n].copy_from_slice(&e.input_ids[..n]);
        types[row..row + n].copy_from_slice(&e.token_type_ids[..n]);
        mask[row..row + n].fill(1);
    }
    let shape = [b as i64, width as i64];
    let to = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
    Batch {
        input_ids: to(&ids),
        attention_mask: to(&mask),
        token_type_ids: to(&types),
        labels: labels.map(|l| stack_targets(l).to_device(device)),
    }
}

/// Stacks targets as the loss takes them: (B,) class ids, (B, C) multi-hot rows or (B,) values
/// (one problem type per run, so all are of one kind).
pub fn stack_targets(labels: &[Target]) -> Tensor {
    match labels.first() {
        Some(Target::MultiHot(first)) => {
            let width = first.len() as i64;
            let flat: Vec<f32> = labels
                .iter()
                .flat_map(|t| match t {
                    Target::MultiHot(v) => v.clone(),
                    _ => vec![0.0; width as usize],
                })
                .collect();
            Tensor::from_slice(&flat).view([labels.len() as i64, width])
        }
        Some(Target::Value(_)) => {
            let v: Vec<f32> =
                labels.iter().map(|t| if let Target::Value(x) = t { *x } else { 0.0 }).collect();
            Tensor::from_slice(&v)
        }
        _ => {
            let v: Vec<i64> =
                labels.iter().map(|t| if let Target::Class(c) = t { *c } else { -100 }).collect();
            Tensor::from_slice(&v).to_kind(Kind::Int64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[i64]) -> Encoding {
        Encoding { input_ids: ids.to_vec(), token_type_ids: vec![0; ids.len()] }
    }

    #[test]
    fn pads_to_the_longest_or_to_max_length() {
        let (a, b) = (enc(&[101, 7, 102]), enc(&[101, 102]));
        let batch = collate(
            &[&a, &b],
            Some(&[Target::Class(1), Target::Class(0)]),
            Padding::Longest,
            8,
            0,
            Device::Cpu,
        );
        assert_eq!(batch.input_ids.size(), [2, 3]);
        assert_eq!(Vec::<i64>::try_from(batch.attention_mask.flatten(0, -1)).unwrap(), [1, 1, 1, 1, 1, 0]);
        assert_eq!(Vec::<i64>::try_from(batch.input_ids.flatten(0, -1)).unwrap(), [101, 7, 102, 101, 102, 0]);
        let batch = collate(&[&a, &b], None, Padding::MaxLength, 8, 0, Device::Cpu);
        assert_eq!(batch.input_ids.size(), [2, 8]);
        assert_eq!(batch.size(), 2);
        assert!(batch.labels.is_none());
    }
}
