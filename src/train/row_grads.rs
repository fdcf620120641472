//! Gradients that come back as rows: a word-embedding table's on the CPU
//! (`model::layers::Embedding::vocabulary`), summed into a dense table the optimizer keeps, so the
//! gradient norm, DDP and the optimizer see the dense gradient PyTorch's backward gives, without
//! zeroing a vocabulary-sized table every step (8-10 ms of a 150-190 ms MiniLM step at length 128).
//!
//! Exactness: PyTorch's dense backward (`embedding_dense_backward_cpu`) adds each looked-up row into
//! a zeroed table in index order; `index_add_` of the same rows into a zeroed table makes the same
//! additions in the same order. Over an accumulation window PyTorch adds each micro-step's dense
//! gradient to the running sum; here the second and later micro-steps do exactly that (their rows
//! summed into a freshly zeroed table, then added), so only the first micro-step of a window saves.
use tch::Tensor;

use crate::error::{Error, Result};
use crate::torch_ext;

#[derive(Debug)]
pub struct RowGradient {
    /// Shaped like the parameter; zero outside the rows in `touched` (or everywhere, after
    /// `clear`, when `written_elsewhere`).
    table: Tensor,
    /// The row indices added since the last `clear`, one tensor per micro-step.
    touched: Vec<Tensor>,
    /// Someone else may have written rows we did not add (DDP's all-reduce brings other ranks'
    /// rows): `clear` then zeroes the whole table.
    written_elsewhere: bool,
    /// `touched`'s rows sorted and unique, found once at `attach` for the norm and the clipping
    /// (both read them in a clipped step); `None` while they are not known.
    written: Option<Tensor>,
}

impl RowGradient {
    pub fn new(param: &Tensor) -> Result<Self> {
        let table = tch::no_grad(|| param.f_zeros_like())?;
        Ok(Self { table, touched: Vec::new(), written_elsewhere: false, written: None })
    }

    /// Moves `param`'s sparse gradient (COO: one index row, a value row per looked-up token) into
    /// the table, leaving `param` without a gradient so the next micro-step's backward gives rows
    /// again instead of adding into a dense gradient in its own order.
    pub fn gather(&mut self, param: &Tensor, sparse: &Tensor) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let indices = sparse.f_internal_indices()?.f_select(0, 0)?;
            let values = sparse.f_internal_values()?;
            if self.touched.is_empty() {
                let _ = self.table.f_index_add_(0, &indices, &values)?;
            } else {
                let micro = self.table.f_zeros_like()?.f_index_add_(0, &indices, &values)?;
                let _ = self.table.f_add_(&micro)?;
            }
            self.touched.push(indices);
            Ok(())
        })?;
        torch_ext::set_grad_none(param)
    }

    /// Gives `param` the table as its gradient if a micro-step gathered rows since the last clear.
    /// `written_elsewhere`: see the field.
    pub fn attach(&mut self, param: &Tensor, written_elsewhere: bool) -> Result<()> {
        if self.touched.is_empty() {
            return Ok(());
        }
        self.written_elsewhere |= written_elsewhere;
        self.written = if self.written_elsewhere {
            None
        } else {
            let rows = Tensor::f_cat(&self.touched, 0)?;
            Some(rows.f_unique_dim(0, true, false, false)?.0)
        };
        torch_ext::set_grad(param, &self.table)
    }

    /// Whether the table is attached and the rows that may be non-zero are known (not after
    /// someone else wrote it): then [`norm`](Self::norm) and [`scale`](Self::scale) work on those
    /// rows only.
    pub fn rows_known(&self) -> bool {
        self.written.is_some()
    }

    /// The rows that may be non-zero, sorted and unique ([`rows_known`](Self::rows_known) must
    /// hold).
    fn written_rows(&self) -> Result<&Tensor> {
        self.written.as_ref().ok_or_else(|| {
            Error::Runtime("row gradient: its rows were read before attach or after another writer".into())
        })
    }

    /// The table's 2-norm read from its written rows only (a few thousand of a vocabulary's tens of
    /// thousands; [`rows_known`](Self::rows_known) must hold): the same sum of squares as the
    /// whole table's, added in another order, so it may differ from `linalg_vector_norm` of the
    /// table in the last bits.
    pub fn norm(&self) -> Result<Tensor> {
        tch::no_grad(|| {
            torch_ext::linalg_vector_norm(&self.table.f_index_select(0, self.written_rows()?)?, 2.0)
        })
    }

    /// Multiplies the table's written rows by `factor` (a 0-dim tensor) in place
    /// ([`rows_known`](Self::rows_known) must hold): the products a whole-table multiply makes
    /// there; its other rows are zeros, which stay zeros.
    pub fn scale(&mut self, factor: &Tensor) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let rows = self.written_rows()?.shallow_clone();
            let scaled = self.table.f_index_select(0, &rows)?.f_mul(factor)?;
            let _ = self.table.f_index_copy_(0, &rows, &scaled)?;
            Ok(())
        })
    }

    /// Zeroes what was added (after the optimizer step) and frees `param`'s handle on the table.
    pub fn clear(&mut self, param: &Tensor) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            if self.written_elsewhere {
                let _ = self.table.f_zero_()?;
            } else if !self.touched.is_empty() {
                let rows = Tensor::f_cat(&self.touched, 0)?;
                let _ = self.table.f_index_fill_(0, &rows, 0.0)?;
            }
            Ok(())
        })?;
        self.touched.clear();
        self.written_elsewhere = false;
        self.written = None;
        torch_ext::set_grad_none(param)
    }
}

/// Whether `grad` is a gradient given as rows (sparse COO) rather than dense.
pub fn is_rows(grad: &Tensor) -> bool {
    grad.defined() && grad.is_sparse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The dense backward's gradient and the gathered one are the same bits, for one micro-step
    /// and for an accumulation window of two, and the table is zero again after `clear`.
    #[test]
    fn gathered_rows_are_the_dense_backwards_bits() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        let weight = Tensor::randn([50, 8], opts).set_requires_grad(true);
        let dense_w = weight.detach().copy().set_requires_grad(true);
        let ids = |n| Tensor::randint(50, [n], (Kind::Int64, Device::Cpu));
        let batches: Vec<(Tensor, Tensor)> =
            (0..2).map(|_| (ids(300), Tensor::randn([300, 8], opts))).collect();
        let mut rows = RowGradient::new(&weight).unwrap();
        for window in [1, 2] {
            for (ids, g) in batches.iter().take(window) {
                let out = Tensor::embedding(&weight, ids, 0, false, true);
                (out * g).sum(Kind::Float).backward();
                let grad = weight.grad();
                assert!(is_rows(&grad));
                rows.gather(&weight, &grad).unwrap();
                assert!(!weight.grad().defined());
                let out = Tensor::embedding(&dense_w, ids, 0, false, false);
                (out * g).sum(Kind::Float).backward();
            }
            rows.attach(&weight, false).unwrap();
            let (got, want) = (weight.grad(), dense_w.grad());
            assert!(!got.is_sparse());
            assert!(got.equal(&want), "window of {window}");
            rows.clear(&weight).unwrap();
            torch_ext::set_grad_none(&dense_w).unwrap();
            assert!(!weight.grad().defined());
            assert_eq!(rows.table.abs().sum(Kind::Float).double_value(&[]), 0.0);
        }
    }

    /// The norm from the written rows is the whole table's up to rounding, and scaling them is
    /// the whole table's multiply, bit for bit.
    #[test]
    fn norm_and_scale_over_the_written_rows() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(5);
        let weight = Tensor::zeros([1000, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let ids = Tensor::randint(1000, [400], (Kind::Int64, Device::Cpu));
        let out = Tensor::embedding(&weight, &ids, -1, false, true);
        (out * Tensor::randn([400, 16], (Kind::Float, Device::Cpu))).sum(Kind::Float).backward();
        let mut rows = RowGradient::new(&weight).unwrap();
        assert!(!rows.rows_known());
        rows.gather(&weight, &weight.grad()).unwrap();
        rows.attach(&weight, false).unwrap();
        assert!(rows.rows_known());
        let dense = rows.table.copy();
        let (got, want) = (rows.norm().unwrap().double_value(&[]), dense.norm().double_value(&[]));
        assert!((got - want).abs() <= 1e-6 * want, "{got} against {want}");
        let factor = Tensor::from(0.37f32);
        rows.scale(&factor).unwrap();
        assert!(rows.table.equal(&(&dense * &factor)));
        rows.attach(&weight, true).unwrap();
        assert!(!rows.rows_known(), "after someone else wrote the table, only a whole pass knows");
    }

    /// Rows someone else wrote (DDP's average) are cleared too.
    #[test]
    fn rows_written_elsewhere_are_cleared() {
        let weight = Tensor::zeros([10, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut rows = RowGradient::new(&weight).unwrap();
        let out = Tensor::embedding(&weight, &Tensor::from_slice(&[1i64, 2]), -1, false, true);
        out.sum(Kind::Float).backward();
        rows.gather(&weight, &weight.grad()).unwrap();
        rows.attach(&weight, true).unwrap();
        let _ = weight.grad().narrow(0, 7, 1).fill_(5.0);
        rows.clear(&weight).unwrap();
        assert_eq!(rows.table.abs().sum(Kind::Float).double_value(&[]), 0.0);
    }
}
