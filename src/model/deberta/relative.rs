//! Relative positions of DeBERTa's disentangled attention (modeling_deberta_v2.py
//! `make_log_bucket_position`, `build_relative_position`): query position minus key position,
//! exact up to `position_buckets / 2` and log-bucketed beyond, in the same float32 steps as HF so
//! that every bucket boundary falls where HF's does.
use tch::{Device, Kind, Tensor};

/// relative_pos: int64 -> float32 bucket ids (as HF returns them before `.to(torch.long)`).
pub fn make_log_bucket_position(relative_pos: &Tensor, bucket_size: i64, max_position: i64) -> Tensor {
    let sign = relative_pos.sign();
    let mid = bucket_size / 2;
    let near = relative_pos.lt(mid).logical_and(&relative_pos.gt(-mid));
    let abs_pos = relative_pos.abs().where_self(&near.logical_not(), &Tensor::from(mid - 1));
    // torch: abs_pos / mid is true division of int64 by int -> float32; the denominator is
    // torch.log(torch.tensor((max_position - 1) / mid)), a float32 tensor.
    let ratio =
        Tensor::from(((max_position - 1) as f64 / mid as f64) as f32).to_device(relative_pos.device());
    let log_pos = ((abs_pos.to_kind(Kind::Float) / mid).log() / ratio.log() * (mid - 1)).ceil() + mid;
    let exact = abs_pos.le(mid);
    relative_pos.to_kind(Kind::Float).where_self(&exact, &(log_pos * sign))
}

/// (T, T) int64: position i minus position j for a row of `size` tokens, bucketed when
/// `bucket_size` and `max_position` are both positive. (HF's is (1, T, T); the batch dim is added
/// where it broadcasts.)
pub fn build_relative_position(size: i64, bucket_size: i64, max_position: i64, device: Device) -> Tensor {
    let ids = Tensor::arange(size, (Kind::Int64, device));
    let rel_pos_ids = ids.unsqueeze(1) - ids.unsqueeze(0);
    if bucket_size > 0 && max_position > 0 {
        make_log_bucket_position(&rel_pos_ids, bucket_size, max_position).to_kind(Kind::Int64)
    } else {
        rel_pos_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_near_and_logarithmic_far() {
        // bucket_size 8 (mid 4), max_position 16: |d| <= 4 exact; beyond,
        // ceil(log(|d| / 4) / log(15 / 4) * 3) + 4, by hand: 5 -> 5, 8 -> 6, 11 -> 7, 16 -> 8.
        let d = Tensor::from_slice(&[0i64, 1, -3, 4, -4, 5, 8, -11, 16]);
        let b = make_log_bucket_position(&d, 8, 16).to_kind(Kind::Int64);
        assert_eq!(Vec::<i64>::try_from(b).unwrap(), vec![0, 1, -3, 4, -4, 5, 6, -7, 8]);
        let r = build_relative_position(3, -1, -1, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(r.view(-1)).unwrap(), vec![0, -1, -2, 1, 0, -1, 2, 1, 0]);
    }
}
