//! The optimiser step as an in-place engine op: AdamW on a parameter, its gradient and its two
//! moment estimates, wherever they live (`backend/cpu/optim.rs`, `kernels/adamw.wgsl`).

use crate::backend::cpu::optim as cpu;
use crate::backend::gpu::{adamw as gpu, GpuBuffer, GpuContext};
pub(crate) use crate::backend::AdamWStep;
use crate::engine::dispatch::{expect_real, Args, Meta, Update};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};

/// Targets `(p, m, v)`, input `(g)`.
struct AdamW(AdamWStep);

impl Update for AdamW {
    fn name(&self) -> &'static str {
        "AdamW"
    }
    fn check(&self, targets: &[Meta], inputs: &[Meta]) -> Result<()> {
        expect_real(self.name(), targets)?;
        expect_real(self.name(), inputs)?;
        for m in targets.iter().chain(inputs) {
            if m.shape != targets[0].shape {
                return Err(Error::ShapeMismatch {
                    op: "AdamW",
                    lhs: targets[0].shape.to_vec(),
                    rhs: m.shape.to_vec(),
                });
            }
        }
        Ok(())
    }
    fn cpu(&self, t: &mut [&mut CpuStorage], x: &Args<&CpuStorage>) -> Result<()> {
        let g = x.real(0)?;
        let [p, m, v] = t else {
            return Err(Error::arg("AdamW", "needs (param, m, v)"));
        };
        cpu::adamw(
            &self.0,
            p.f32_mut("AdamW")?,
            g,
            m.f32_mut("AdamW")?,
            v.f32_mut("AdamW")?,
        );
        Ok(())
    }
    fn gpu(&self, ctx: &GpuContext, t: &[&GpuBuffer], x: &Args<&GpuBuffer>) -> Result<()> {
        let [p, m, v] = t else {
            return Err(Error::arg("AdamW", "needs (param, m, v)"));
        };
        gpu::adamw_step(ctx, &self.0, p, x.buf(0), m, v)
    }
}

/// One AdamW step on `p` in place from its gradient `g`, updating the moments `m`, `v` (all on
/// one device).
pub(crate) fn adamw_update(
    step: &AdamWStep,
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    Tensor::update(&AdamW(*step), &[p, m, v], &[g])
}
