//! DisentangledSelfAttention and DebertaV2Attention (modeling_deberta_v2.py): content-to-content
//! scores plus the content-to-position (c2p) and position-to-content (p2c) terms against the
//! relative embeddings, HF's masking (query and key), softmax and dropout on the probabilities,
//! computed op for op as HF does (no SDPA: the bias is part of the scores, and the dropout draws
//! must match PyTorch's under `--reproduce-pytorch`).
use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::DebertaSettings;
use super::relative::{build_relative_position, make_log_bucket_position};
use crate::model::attention::BertSelfOutput;
use crate::model::config::BertConfig;
use crate::model::dropout::Draws;
use crate::model::layers::Linear;
use crate::model::layout::Layout;
use crate::model::packing::Packing;
use crate::model::AttentionCore;

/// What every layer's attention reads besides its input: the batch's layout and the relative
/// embeddings (after the encoder's LayerNorm), made once per forward by the encoder.
pub struct AttentionContext<'a> {
    pub layout: &'a Layout,
    /// (2S, H), `None` without relative attention.
    pub rel_embeddings: Option<Tensor>,
}

#[derive(Debug)]
pub struct DisentangledSelfAttention {
    query_proj: Linear,
    key_proj: Linear,
    value_proj: Linear,
    /// Only when `share_att_key` is false (and c2p / p2c is asked for).
    pos_key_proj: Option<Linear>,
    pos_query_proj: Option<Linear>,
    num_attention_heads: i64,
    s: DebertaSettings,
    /// pos_dropout on the relative embeddings (hidden_dropout_prob), and on the probabilities.
    pos_dropout: f64,
    dropout: f64,
}

/// The projected relative embeddings, (nh, 2S, hs) each, that the c2p and p2c terms read.
struct PosLayers {
    key: Option<Tensor>,
    query: Option<Tensor>,
}

impl DisentangledSelfAttention {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        let h = cfg.hidden_size;
        let own = s.relative_attention && !s.share_att_key;
        DisentangledSelfAttention {
            query_proj: Linear::new(&p / "query_proj", h, h),
            key_proj: Linear::new(&p / "key_proj", h, h),
            value_proj: Linear::new(&p / "value_proj", h, h),
            pos_key_proj: (own && s.c2p).then(|| Linear::new(&p / "pos_key_proj", h, h)),
            pos_query_proj: (own && s.p2c).then(|| Linear::new(&p / "pos_query_proj", h, h)),
            num_attention_heads: cfg.num_attention_heads,
            s: s.clone(),
            pos_dropout: cfg.hidden_dropout_prob,
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// hidden_states (B, T, H) or packed (N, H) -> the same shape.
    pub fn forward_t(&self, hidden_states: &Tensor, ctx: &AttentionContext, train: bool) -> Tensor {
        let q = self.query_proj.forward(hidden_states);
        let k = self.key_proj.forward(hidden_states);
        let v = self.value_proj.forward(hidden_states);
        let draws = ctx.layout.draws();
        // HF draws pos_dropout after the content scores and before the bias: no draw comes between.
        let pos = ctx
            .rel_embeddings
            .as_ref()
            .map(|rel| self.pos_layers(&draws.dropout(rel, self.pos_dropout, train)));
        let core = Core {
            exact: matches!(ctx.layout, Layout::Padded { .. }),
            attn: self,
            pos: pos.as_ref(),
            dropout: if train { self.dropout } else { 0.0 },
            draws,
        };
        match ctx.layout {
            Layout::Padded { attention_mask } => {
                let mask = attention_mask.as_ref().map(query_and_key_mask);
                core.attend(&q, &k, &v, mask.as_ref())
            }
            Layout::Packed { packing, attention } => core.attend_packed(&q, &k, &v, packing, attention.core),
        }
    }

    /// The relative embeddings (2S, H) through the position projections -> (nh, 2S, hs) each:
    /// `query_proj`/`key_proj` themselves when `share_att_key`.
    fn pos_layers(&self, rel_embeddings: &Tensor) -> PosLayers {
        let heads = |x: Tensor| x.view([x.size()[0], self.num_attention_heads, -1]).transpose(0, 1);
        let (key, query) = if self.s.share_att_key {
            (&self.key_proj, &self.query_proj)
        } else {
            (
                self.pos_key_proj.as_ref().unwrap_or(&self.key_proj),
                self.pos_query_proj.as_ref().unwrap_or(&self.query_proj),
            )
        };
        PosLayers {
            key: self.s.c2p.then(|| heads(key.forward(rel_embeddings))),
            query: self.s.p2c.then(|| heads(query.forward(rel_embeddings))),
        }
    }
}

/// One attention computation over padded rows.
struct Core<'a> {
    /// HF's op sequence, shapes included (the padded layout: `--reproduce-pytorch`'s); the packed
    /// layouts compute the same values from fewer of the relative embeddings ([`Core::bias`]).
    exact: bool,
    attn: &'a DisentangledSelfAttention,
    pos: Option<&'a PosLayers>,
    dropout: f64,
    /// The layout's ([`Layout::draws`]).
    draws: Draws,
}

impl Core<'_> {
    /// q, k, v packed (N, H) -> (N, H), as the layout's attention core says (the packing's
    /// lengths known): one sequence at a time, or in groups of similar length each padded to its
    /// own longest (the CPU's default: a batch of mixed lengths no longer pays every (T, T) pass
    /// of the scores, the c2p / p2c terms, their gathers, softmax and dropout at the longest
    /// row's T); else over the padded rows the packing came from. Relative positions depend on
    /// query minus key position only, so a sequence's bias is the same in any of these.
    fn attend_packed(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        packing: &Packing,
        core: AttentionCore,
    ) -> Tensor {
        if let (AttentionCore::Grouped, Some(groups)) = (core, packing.length_groups()) {
            let h = q.size()[1];
            return groups.map(&Tensor::stack(&[q, k, v], 1), |padded, key_mask| {
                let (rows, len) = (padded.size()[0], padded.size()[1]);
                let mask = key_mask.map(query_and_key_mask);
                // unbind, not three selects: its backward stacks the three gradients, where each
                // select's backward is a zeroed copy of all three.
                let qkv = padded.unbind(2);
                self.attend(&qkv[0], &qkv[1], &qkv[2], mask.as_ref()).view([rows * len, h])
            });
        }
        if let (Some(lengths), AttentionCore::PerSequence) = (&packing.lengths, core) {
            // Relative positions are within a sequence: each sequence alone, unmasked.
            let mut outputs = Vec::with_capacity(lengths.len());
            let mut start = 0;
            for &len in lengths {
                let one = |x: &Tensor| x.narrow(0, start, len).unsqueeze(0);
                outputs.push(self.attend(&one(q), &one(k), &one(v), None).squeeze_dim(0));
                start += len;
            }
            return Tensor::cat(&outputs, 0);
        }
        // The padded rows the packing came from (any mask): positions are each token's place in
        // its row, as in the padded forward; real keys only, as HF's mask.
        let n = q.size()[0];
        let qkv = packing.unpack(&Tensor::stack(&[q, k, v], 1)); // (B, S, 3, H)
        let mask = packing.key_mask.as_ref().map(query_and_key_mask);
        let out = self.attend(&qkv.select(2, 0), &qkv.select(2, 1), &qkv.select(2, 2), mask.as_ref());
        out.flatten(0, 1).index_select(0, &packing.indices).view([n, -1])
    }

    /// q, k, v (B, T, H); mask (B, 1, T, T) bool, true = attend, `None`: all -> (B, T, H).
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, t, _) = q.size3().unwrap_or((0, 0, 0));
        let nh = self.attn.num_attention_heads;
        let heads = |x: &Tensor| x.view([b, t, nh, -1]).transpose(1, 2); // (B, nh, T, hs)
        let (q, k, v) = (heads(q), heads(k), heads(v));
        let hs = q.size()[3];
        // scaled_size_sqrt: sqrt(float32(hs) * scale_factor), a float32 tensor as in HF.
        let scale = (Tensor::from(hs as f32) * self.attn.s.scale_factor())
            .sqrt()
            .to_device(q.device())
            .to_kind(q.kind());
        let mut scores = q.matmul(&(k.transpose(-1, -2) / &scale));
        if let Some(pos) = self.pos {
            scores = &scores + self.bias(&q, &k, pos, &scale, t);
        }
        let fill = match scores.kind() {
            Kind::Half => -65504.0,
            Kind::BFloat16 => -3.3895313892515355e38,
            _ => f32::MIN as f64,
        };
        if let Some(mask) = mask {
            scores = scores.masked_fill(&mask.logical_not(), fill);
        }
        let probs = self.draws.dropout(&scores.softmax(-1, scores.kind()), self.dropout, self.dropout > 0.0);
        probs.matmul(&v).transpose(1, 2).reshape([b, t, -1])
    }

    /// disentangled_attention_bias: c2p / scale + p2c / scale, (B, nh, T, T).
    ///
    /// Rows of T tokens only reach the relative embeddings of distances -(T-1)..T-1: outside
    /// HF's layout (`exact` false) the products take that window of the 2S embeddings only
    /// (bucketing is monotonic, so it is one slice), the same dot products without the columns
    /// no gather reads: at T = 64 against DeBERTa-v3's 512 embeddings, a quarter of the c2p and
    /// p2c products and of the (B, nh, T, 2S) tensors their gathers read and their backward
    /// scatters into.
    fn bias(&self, q: &Tensor, k: &Tensor, pos: &PosLayers, scale: &Tensor, t: i64) -> Tensor {
        let s = &self.attn.s;
        let span = s.att_span();
        let relative_pos =
            build_relative_position(t, s.position_buckets, s.max_relative_positions, q.device());
        let (first, width) = if self.exact { (0, 2 * span) } else { embedding_window(s, t) };
        let size = q.size();
        let index = |r: Tensor| (r.clamp(0, span * 2 - 1) - first).expand([size[0], size[1], t, t], false);
        let mut score: Option<Tensor> = None;
        if let Some(pos_key) = &pos.key {
            let pos_key = pos_key.narrow(1, first, width);
            let c2p_att = q.matmul(&pos_key.transpose(-1, -2)); // (B, nh, T, width)
            let c2p_att = c2p_att.gather(-1, &index(&relative_pos + span), false);
            score = Some(c2p_att / scale);
        }
        if let Some(pos_query) = &pos.query {
            let pos_query = pos_query.narrow(1, first, width);
            let p2c_att = k.matmul(&pos_query.transpose(-1, -2)); // (B, nh, T, width)
            let p2c_att = p2c_att.gather(-1, &index(-&relative_pos + span), false).transpose(-1, -2);
            let p2c = p2c_att / scale;
            score = Some(match score {
                Some(c2p) => c2p + p2c,
                None => p2c,
            });
        }
        score.unwrap_or_else(|| q.zeros_like().narrow(3, 0, 1))
    }
}

/// HF's `get_attention_mask`: query mask x key mask, (B, 1, T, T) bool, from keys broadcastable
/// to it (a (B, 1, 1, T) key mask, or the padded layout's (B, 1, T, T) one).
fn query_and_key_mask(keys: &Tensor) -> Tensor {
    let size = keys.size();
    let t = size[3];
    let m = keys.expand([size[0], 1, t, t], false);
    m.logical_and(&m.transpose(-1, -2))
}

/// The relative embeddings that rows of `t` tokens read, (first, count) of the 2S: bucket(d) + S
/// for d in -(t-1)..t-1, clamped as the gathers clamp. Buckets are odd-symmetric and monotonic in
/// d (`build_relative_position`), so the ends are those of d = ±(t-1).
fn embedding_window(s: &DebertaSettings, t: i64) -> (i64, i64) {
    let span = s.att_span();
    let farthest = (t - 1).max(0);
    let reach = if s.position_buckets > 0 && s.max_relative_positions > 0 {
        make_log_bucket_position(&Tensor::from(farthest), s.position_buckets, s.max_relative_positions)
            .to_kind(Kind::Int64)
            .int64_value(&[])
    } else {
        farthest
    };
    let first = (span - reach).clamp(0, 2 * span - 1);
    let last = (span + reach).clamp(0, 2 * span - 1);
    (first, last - first + 1)
}

/// DebertaV2Attention: DisentangledSelfAttention + DebertaV2SelfOutput (BertSelfOutput's modules).
#[derive(Debug)]
pub struct DebertaV2Attention {
    self_attention: DisentangledSelfAttention,
    output: BertSelfOutput,
}

impl DebertaV2Attention {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        DebertaV2Attention {
            self_attention: DisentangledSelfAttention::new(&p / "self", cfg, s),
            output: BertSelfOutput::new(&p / "output", cfg),
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, ctx: &AttentionContext, train: bool) -> Tensor {
        let self_output = self.self_attention.forward_t(hidden_states, ctx, train);
        self.output.forward_t(&self_output, hidden_states, ctx.layout.draws(), train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window is exactly the span of the clamped indices the c2p and p2c gathers read, for
    /// log buckets, plain relative positions, and rows shorter and longer than the span.
    #[test]
    fn the_embedding_window_is_what_the_gathers_read() {
        let settings = |buckets: i64, max_rel: i64| DebertaSettings {
            relative_attention: true,
            max_relative_positions: max_rel,
            position_buckets: buckets,
            c2p: true,
            p2c: true,
            share_att_key: true,
            position_biased_input: false,
            norm_rel_ebd: true,
            pooler_dropout: 0.0,
            pooler_hidden_act: "gelu".into(),
            cls_dropout: 0.0,
        };
        for (buckets, max_rel) in [(256, 512), (16, 64), (0, 24), (-1, 8)] {
            let s = settings(buckets, max_rel);
            let span = s.att_span();
            for t in [1, 2, 7, 8, 9, 23, 24, 25, 64, 100, 511, 512] {
                let r = build_relative_position(
                    t,
                    s.position_buckets,
                    s.max_relative_positions,
                    tch::Device::Cpu,
                );
                let c2p = (&r + span).clamp(0, 2 * span - 1);
                let p2c = (-&r + span).clamp(0, 2 * span - 1);
                let lo = c2p.min().int64_value(&[]).min(p2c.min().int64_value(&[]));
                let hi = c2p.max().int64_value(&[]).max(p2c.max().int64_value(&[]));
                assert_eq!(
                    embedding_window(&s, t),
                    (lo, hi - lo + 1),
                    "buckets {buckets}, max {max_rel}, t {t}"
                );
            }
        }
    }
}
