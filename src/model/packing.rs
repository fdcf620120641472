//! Where a padded batch's real tokens are, worked out once per batch, so that the unpadded forward
//! can run every per-token layer on the real tokens only (a packed (N, H) tensor, N = real tokens).
//!
//! The kept tokens are those with a non-zero attention mask, plus position 0 of every row whatever
//! its mask: the pooler reads position 0 in the padded forward, masked or not (left padding), so
//! keeping it makes the two forwards compute the same logits for any mask, not only right padding.
use tch::{Device, Kind, Tensor};

use super::length_groups::LengthGroups;
use crate::device::to_device_async;

#[derive(Debug)]
pub struct Packing {
    /// (N,) int64: flat index b * seq_len + t of each kept token, row by row, in position order.
    pub indices: Tensor,
    /// (N,) int64: t of each kept token, its position id as in the padded forward.
    pub position_ids: Tensor,
    /// (B,) int64: the packed row of each sequence's position 0 ([CLS]).
    pub first_tokens: Tensor,
    pub batch_size: i64,
    /// Length of the padded layout the attention core uses: the last kept position + 1, which is
    /// the batch's T when it is padded to its longest row, and less when it is padded further.
    pub seq_len: i64,
    /// (B, 1, 1, seq_len) bool, true = attend; `None` when no key up to seq_len is masked.
    pub key_mask: Option<Tensor>,
    /// The kept tokens' count per row when every row is right-padded (ones then zeros, at least
    /// one one): then sequence b is the packed rows offsets[b] .. offsets[b] + lengths[b].
    pub lengths: Option<Vec<i64>>,
    /// The grouped attention core's plan, made on first use and shared by every layer.
    length_groups: std::cell::OnceCell<Option<LengthGroups>>,
    /// The varlen core's cumulative lengths, made on first use and shared by every layer.
    cu_seqlens: std::cell::OnceCell<Option<CuSeqlens>>,
}

/// Sequence boundaries in the packed rows as the varlen kernels take them.
#[derive(Debug)]
pub struct CuSeqlens {
    /// (B + 1,) int32 on the packing's device: 0, l0, l0 + l1, ..., N.
    pub offsets: Tensor,
    /// The longest sequence (the kernels size their tiles by it).
    pub max_seqlen: i64,
}

impl Packing {
    /// attention_mask: (B, T) integer, 1 = real token, on the device the model runs on.
    pub fn from_mask(attention_mask: &Tensor) -> Packing {
        Packing::new(attention_mask, attention_mask.device())
    }

    /// The packing of `attention_mask` for a model on `device`. It is worked out on the host (the
    /// layout's length and the per-row lengths are host values anyway) and its index tensors are
    /// sent to `device` without waiting ([`to_device_async`]). A mask already on the host (the
    /// loader's copy of a batch) costs the GPU no wait; a mask on a GPU is read back first, which
    /// waits for everything queued before it.
    pub fn new(attention_mask: &Tensor, device: Device) -> Packing {
        let packing = match attention_mask.device() {
            Device::Cpu => Packing::on_host(attention_mask),
            _ => Packing::on_host(&attention_mask.to_device(Device::Cpu)),
        };
        if device == Device::Cpu {
            return packing;
        }
        Packing {
            indices: to_device_async(&packing.indices, device),
            position_ids: to_device_async(&packing.position_ids, device),
            first_tokens: to_device_async(&packing.first_tokens, device),
            key_mask: packing.key_mask.as_ref().map(|m| to_device_async(m, device)),
            ..packing
        }
    }

    fn on_host(attention_mask: &Tensor) -> Packing {
        let (batch_size, t) = attention_mask.size2().unwrap_or((0, 0));
        let device = attention_mask.device();
        let real = attention_mask.ne(0); // (B, T) bool
        let kept = real.copy();
        if t > 0 {
            let _ = kept.select(1, 0).fill_(1);
        }
        let coords = kept.nonzero(); // (N, 2): (b, t), row-major, so row by row in position order
        let rows = coords.select(1, 0);
        let position_ids = coords.select(1, 1).contiguous();
        let seq_len = if coords.size()[0] == 0 { 0 } else { position_ids.max().int64_value(&[]) + 1 };
        let indices = rows * seq_len + &position_ids;
        let counts = kept.sum_dim_intlist(1, false, Kind::Int64); // (B,)
        let first_tokens = counts.cumsum(0, Kind::Int64) - &counts;

        let real = real.narrow(1, 0, seq_len);
        let all_attend = seq_len == 0 || real.all().int64_value(&[]) != 0;
        let key_mask = (!all_attend).then(|| real.view([batch_size, 1, 1, seq_len]));

        let real_counts = real.sum_dim_intlist(1, false, Kind::Int64);
        let positions = Tensor::arange(seq_len, (Kind::Int64, device)).unsqueeze(0);
        let prefix = real.eq_tensor(&positions.lt_tensor(&real_counts.unsqueeze(1)));
        let right_padded =
            seq_len > 0 && prefix.all().int64_value(&[]) != 0 && real_counts.min().int64_value(&[]) > 0;
        let lengths = if right_padded { Vec::<i64>::try_from(&real_counts).ok() } else { None };

        Packing {
            indices,
            position_ids,
            first_tokens,
            batch_size,
            seq_len,
            key_mask,
            lengths,
            length_groups: std::cell::OnceCell::new(),
            cu_seqlens: std::cell::OnceCell::new(),
        }
    }

    /// The sequences grouped by length for the attention core (right padding only).
    pub fn length_groups(&self) -> Option<&LengthGroups> {
        self.length_groups
            .get_or_init(|| self.lengths.as_ref().map(|l| LengthGroups::new(l, self.indices.device())))
            .as_ref()
    }

    /// The sequences' boundaries for the varlen core (right padding only). Made from the lengths
    /// already on the host: one small copy to the device per batch, no sync.
    pub fn cu_seqlens(&self) -> Option<&CuSeqlens> {
        self.cu_seqlens
            .get_or_init(|| {
                let lengths = self.lengths.as_ref()?;
                let mut offsets = Vec::with_capacity(lengths.len() + 1);
                let mut total = 0i64;
                offsets.push(0i32);
                for &len in lengths {
                    total += len;
                    // N fits in i32 by far (the kernels' own index type): batch x max length.
                    offsets.push(i32::try_from(total).ok()?);
                }
                let max_seqlen = lengths.iter().copied().max()?;
                let offsets = to_device_async(&Tensor::from_slice(&offsets), self.indices.device());
                Some(CuSeqlens { offsets, max_seqlen })
            })
            .as_ref()
    }

    /// Number of kept tokens.
    pub fn num_tokens(&self) -> i64 {
        self.indices.size()[0]
    }

    /// (B, T, ...) with T >= seq_len -> (N, ...): the kept tokens.
    pub fn pack(&self, xs: &Tensor) -> Tensor {
        let size = xs.size();
        let mut flat = vec![self.batch_size * self.seq_len];
        flat.extend_from_slice(&size[2..]);
        xs.narrow(1, 0, self.seq_len).reshape(flat.as_slice()).index_select(0, &self.indices)
    }

    /// (N, ...) -> (B, seq_len, ...), zeros where no token was kept.
    pub fn unpack(&self, xs: &Tensor) -> Tensor {
        let size = xs.size();
        let mut flat = vec![self.batch_size * self.seq_len];
        flat.extend_from_slice(&size[1..]);
        let mut padded = vec![self.batch_size, self.seq_len];
        padded.extend_from_slice(&size[1..]);
        xs.new_zeros(flat.as_slice(), (xs.kind(), xs.device()))
            .index_copy(0, &self.indices, xs)
            .view(padded.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&[i64]]) -> Tensor {
        let t = rows[0].len() as i64;
        let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, t])
    }

    #[test]
    fn cu_seqlens_are_the_running_sum_of_right_padded_lengths() {
        let packing = Packing::from_mask(&mask(&[&[1, 1, 1, 0], &[1, 0, 0, 0], &[1, 1, 1, 1]]));
        let cu = packing.cu_seqlens().expect("right padded");
        assert_eq!(cu.offsets.kind(), Kind::Int);
        assert_eq!(Vec::<i32>::try_from(&cu.offsets).unwrap(), vec![0, 3, 4, 8]);
        assert_eq!(cu.max_seqlen, 4);
        assert_eq!(packing.num_tokens(), 8);
    }

    #[test]
    fn no_cu_seqlens_for_left_padding() {
        let packing = Packing::from_mask(&mask(&[&[0, 1, 1], &[1, 1, 1]]));
        assert!(packing.cu_seqlens().is_none());
    }
}
