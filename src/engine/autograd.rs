//! Reverse-mode autodiff. Each op result that depends on a tracked tensor carries a `Node`
//! (`tensor.rs`): its inputs and its VJP. The nodes form the tape, a DAG rooted at the loss;
//! [`Tensor::backward`] orders it topologically (iteratively, no recursion) and walks it in
//! reverse, summing the gradients of values used more than once.
//!
//! Complex gradients follow PyTorch: for a real loss L and z = a + ib the stored gradient is
//! dL/da + i dL/db, so a linear map y = A z has grad_z = A^H grad_y.

use crate::engine::tensor::{Saved, Tensor, TensorId};
use crate::error::{Error, Result};
use std::cell::Cell;
use std::collections::HashMap;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops currently record the tape (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording any op (inference, optimiser updates, gradient arithmetic).
///
/// ```
/// use magprior::{no_grad, Tensor};
/// let w = Tensor::ones(&[3]).requires_grad();
/// let y = no_grad(|| w.scale(2.0)).unwrap();
/// assert!(!y.is_tracked());
/// ```
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

/// Gradients from one backward pass, keyed by tensor.
#[derive(Default)]
pub struct GradStore(HashMap<TensorId, Tensor>);

impl GradStore {
    /// The gradient of `t`, if it received one.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.0.get(&t.id())
    }
    /// Removes and returns the gradient of `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.0.remove(&t.id())
    }
    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn accumulate(&mut self, t: &Tensor, g: Tensor) -> Result<()> {
        if g.shape() != t.shape() || g.dtype() != t.dtype() {
            return Err(Error::ShapeMismatch {
                op: "backward (a VJP's gradient vs its input)",
                lhs: g.shape().to_vec(),
                rhs: t.shape().to_vec(),
            });
        }
        let g = match self.0.remove(&t.id()) {
            Some(prev) => prev.add(&g)?,
            None => g,
        };
        self.0.insert(t.id(), g);
        Ok(())
    }
}

/// Tensors reachable from `root` through recorded nodes, inputs before the ops that use them.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // (tensor, children already pushed?)
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = &t.0.node {
            for inp in &node.inputs {
                if inp.0.requires_grad && !visited.contains(&inp.id()) {
                    stack.push((inp.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Gradients of this one-element real tensor with respect to every tracked tensor it depends
    /// on (parameters and intermediates).
    pub fn backward(&self) -> Result<GradStore> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "backward",
                self.shape(),
                "needs a one-element loss (use backward_with for others)",
            ));
        }
        let seed = Tensor::full(self.shape(), 1.0).to_device(self.device())?;
        self.backward_with(&seed)
    }

    /// Backward pass with an explicit upstream gradient `grad` of this tensor's shape: the result
    /// holds the vector-Jacobian products `grad^T d self / d x`.
    pub fn backward_with(&self, grad: &Tensor) -> Result<GradStore> {
        let mut store = GradStore::default();
        if !self.0.requires_grad {
            return Ok(store);
        }
        store.accumulate(self, grad.to_device(self.device())?.detach())?;
        crate::engine::autograd::no_grad(|| {
            for t in topo_order(self).iter().rev() {
                let Some(node) = &t.0.node else { continue };
                let Some(g) = store.0.get(&t.id()).cloned() else {
                    continue;
                };
                let saved = Saved {
                    inputs: &node.inputs,
                    output: t,
                    extra: &node.extra,
                };
                let grads = node.backward.backward(&saved, &g)?;
                debug_assert_eq!(grads.len(), node.inputs.len(), "{}: VJP arity", node.op);
                for (inp, gi) in node.inputs.iter().zip(grads) {
                    if let (true, Some(gi)) = (inp.0.requires_grad, gi) {
                        store.accumulate(inp, gi)?;
                    }
                }
                // Intermediate gradients are not kept: only leaves' survive the walk.
                if !t.is_leaf() && t.id() != self.id() {
                    store.0.remove(&t.id());
                }
            }
            Ok(())
        })?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::tensor::Tensor;

    #[test]
    fn deep_chain_does_not_overflow_the_stack() {
        let x = Tensor::ones(&[1]).requires_grad();
        let mut y = x.clone();
        for _ in 0..100_000 {
            y = y.add_scalar(1.0).unwrap();
        }
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec().unwrap(), vec![1.0]);
    }

    #[test]
    fn reuse_accumulates() {
        // y = x*x + x  =>  dy/dx = 2x + 1
        let x = Tensor::from_shape_vec(&[2], vec![3.0, -1.0])
            .unwrap()
            .requires_grad();
        let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec().unwrap(), vec![7.0, -1.0]);
    }

    #[test]
    fn constants_are_not_recorded() {
        let a = Tensor::ones(&[2]);
        let b = a.add(&a).unwrap();
        assert!(b.is_leaf() && !b.is_tracked());
        let w = Tensor::ones(&[2]).requires_grad();
        let c = crate::engine::autograd::no_grad(|| w.add(&a)).unwrap();
        assert!(c.is_leaf());
        assert!(w.add(&a).unwrap().is_tracked());
    }
}
