//! The one fitting loop, shared by every reconstruction (NV-DIP, SIPRAD and its pretraining,
//! the amplitude re-fits). A pipeline is an [`Objective`] — one forward pass that returns the
//! loss, the scalars to report and the state worth keeping — plus its optimisers; the loop owns
//! the rest:
//!
//! - **one readback per iteration**: the loss, the held-out loss and the reported scalars are
//!   concatenated on the device and downloaded together;
//! - **divergence**: a non-finite loss stops the run before any update ([`StopReason::Diverged`])
//!   and the selected state is the last good one;
//! - **selection**: the state of the iteration chosen by a [`Selection`] rule is kept as detached
//!   tensors on the run's device (nothing is downloaded until the pipeline asks);
//! - **the observer** (progress, Ctrl-C) sees every iteration and stops the run by returning
//!   `false` ([`StopReason::Interrupted`]);
//! - **hold-out validation** ([`Holdout`]): a fixed random subset of pixels left out of the loss
//!   and used to pick the iteration that generalises best.

mod holdout;
pub use holdout::Holdout;

use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::optim::{AdamW, ReduceLrOnPlateau};
use std::time::Instant;

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// All iterations done.
    Completed,
    /// The observer asked to stop (Ctrl-C, a notebook interrupt).
    Interrupted,
    /// The loss became NaN or infinite at this iteration; the result is the selected state
    /// before it.
    Diverged(usize),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Completed => f.write_str("completed"),
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::Diverged(i) => write!(f, "diverged at iteration {i}"),
        }
    }
}

/// Which iteration's state a fit returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selection {
    /// The lowest training loss after iteration `after`.
    LowestLoss {
        /// Iterations before tracking starts.
        after: usize,
    },
    /// The lowest held-out loss after iteration `after` (the objective must report one).
    Validation {
        /// Iterations before tracking starts.
        after: usize,
    },
    /// The last iteration's.
    Last,
}

/// What one forward pass of an [`Objective`] gives the loop.
pub struct Evaluation {
    /// The loss to minimise: a tracked one-element tensor.
    pub loss: Tensor,
    /// The held-out loss (a one-element tensor), for [`Selection::Validation`].
    pub validation: Option<Tensor>,
    /// Further one-element tensors to report (detached), read back with the loss.
    pub report: Vec<Tensor>,
    /// The state to keep should this iteration be selected (detached tensors).
    pub state: Vec<Tensor>,
}

/// A reconstruction's forward pass and its hooks.
pub trait Objective {
    /// The loss and the rest for iteration `iter` (1-based).
    fn evaluate(&mut self, iter: usize) -> Result<Evaluation>;
    /// Runs after the optimisers' step (projections, constraints); `iter` is 1-based.
    fn after_step(&mut self, iter: usize) -> Result<()> {
        let _ = iter;
        Ok(())
    }
}

/// One iteration's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Iteration {
    /// 1-based iteration.
    pub iter: usize,
    /// The loss.
    pub loss: f64,
    /// The held-out loss (NaN without one).
    pub validation: f64,
    /// The reported scalars, in the objective's order.
    pub report: Vec<f64>,
    /// The first optimiser's learning rate during this iteration.
    pub lr: f64,
    /// Seconds since the fit's first iteration began.
    pub seconds: f64,
}

/// A kept state: its iteration, the value the selection compared, and the tensors.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// 1-based iteration.
    pub iter: usize,
    /// The loss or held-out loss the selection compared.
    pub key: f64,
    /// The numbers of that iteration.
    pub stats: Iteration,
    /// The objective's state (detached, on the run's device).
    pub state: Vec<Tensor>,
}

/// A fit in progress: drive it with [`Fit::step`] or [`Fit::run`].
pub struct Fit {
    selection: Selection,
    iter: usize,
    best: Option<Snapshot>,
    last: Option<Snapshot>,
    history: Vec<Iteration>,
    start: Option<Instant>,
    /// The decay of an exponential moving average of the state's first tensor, and the average.
    average: Option<(f32, Option<Tensor>)>,
}

impl Fit {
    /// A fit that keeps the state chosen by `selection`.
    pub fn new(selection: Selection) -> Fit {
        Fit {
            selection,
            iter: 0,
            best: None,
            last: None,
            history: Vec::new(),
            start: None,
            average: None,
        }
    }

    /// Also keeps an exponential moving average of the first state tensor over the iterations,
    /// `avg = decay avg + (1 - decay) x` (the deep-image-prior paper's output averaging; on the
    /// run's device, no readback).
    pub fn with_average(mut self, decay: f64) -> Fit {
        self.average = Some((decay as f32, None));
        self
    }

    /// The moving average of the first state tensor ([`Fit::with_average`]), once an iteration
    /// has run.
    pub fn average(&self) -> Option<&Tensor> {
        self.average.as_ref().and_then(|(_, a)| a.as_ref())
    }

    /// Iterations done.
    pub fn iterations(&self) -> usize {
        self.iter
    }

    /// Every iteration's numbers so far.
    pub fn history(&self) -> &[Iteration] {
        &self.history
    }

    /// The state the selection rule chose so far (the last one where it has chosen none).
    pub fn selected(&self) -> Option<&Snapshot> {
        match self.selection {
            Selection::Last => self.last.as_ref(),
            _ => self.best.as_ref().or(self.last.as_ref()),
        }
    }

    /// The last iteration's state.
    pub fn last(&self) -> Option<&Snapshot> {
        self.last.as_ref()
    }

    /// The history and the selected state, ending the fit.
    pub fn finish(self) -> (Vec<Iteration>, Option<Snapshot>) {
        let selected = match self.selection {
            Selection::Last => self.last,
            _ => self.best.or(self.last),
        };
        (self.history, selected)
    }

    /// One iteration: evaluate, read back, keep the state, backward, step every optimiser, run
    /// the objective's hook, step the schedule (on the first optimiser's learning rate).
    /// `Ok(None)` when the loss is not finite: nothing was updated.
    pub fn step(
        &mut self,
        objective: &mut dyn Objective,
        optimisers: &mut [&mut AdamW],
        schedule: Option<&mut ReduceLrOnPlateau>,
    ) -> Result<Option<Iteration>> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let iter = self.iter + 1;
        let ev = objective.evaluate(iter)?;
        // the loss, the held-out loss and the reports: one readback
        let mut scalars = vec![ev.loss.detach().reshape(&[1])?];
        if let Some(v) = &ev.validation {
            scalars.push(v.reshape(&[1])?);
        }
        for r in &ev.report {
            scalars.push(r.reshape(&[1])?);
        }
        let vals: Vec<f64> = Tensor::cat(&scalars, 0)?
            .to_vec()?
            .into_iter()
            .map(f64::from)
            .collect();
        let loss = vals[0];
        if !loss.is_finite() {
            return Ok(None);
        }
        self.iter = iter;
        let off = 1 + ev.validation.is_some() as usize;
        let stats = Iteration {
            iter,
            loss,
            validation: if ev.validation.is_some() {
                vals[1]
            } else {
                f64::NAN
            },
            report: vals[off..].to_vec(),
            lr: optimisers.first().map_or(f64::NAN, |o| o.lr),
            seconds: 0.0,
        };
        let snap = Snapshot {
            iter,
            key: loss,
            stats: stats.clone(),
            state: ev.state,
        };
        let (key, after) = match self.selection {
            Selection::LowestLoss { after } => (loss, after),
            Selection::Validation { after } => (stats.validation, after),
            Selection::Last => (f64::NAN, usize::MAX),
        };
        if iter > after && !key.is_nan() && self.best.as_ref().is_none_or(|b| key < b.key) {
            self.best = Some(Snapshot {
                key,
                ..snap.clone()
            });
        }
        if let (Some((decay, avg)), Some(x)) = (self.average.as_mut(), snap.state.first()) {
            *avg = Some(match avg.take() {
                None => x.clone(),
                Some(a) => a.scale(*decay)?.add(&x.scale(1.0 - *decay)?)?,
            });
        }
        self.last = Some(snap);
        let grads = ev.loss.backward()?;
        drop(ev.loss);
        for o in optimisers.iter_mut() {
            o.step(&grads)?;
        }
        drop(grads);
        objective.after_step(iter)?;
        if let (Some(s), Some(o)) = (schedule, optimisers.first_mut()) {
            o.lr = s.step(loss, o.lr);
        }
        let stats = Iteration {
            seconds: start.elapsed().as_secs_f64(),
            ..stats
        };
        self.history.push(stats.clone());
        Ok(Some(stats))
    }

    /// Up to `iters` iterations; `observer` sees each and returns `false` to stop.
    pub fn run(
        &mut self,
        iters: usize,
        objective: &mut dyn Objective,
        optimisers: &mut [&mut AdamW],
        mut schedule: Option<&mut ReduceLrOnPlateau>,
        observer: &mut dyn FnMut(&Iteration) -> bool,
    ) -> Result<StopReason> {
        for _ in 0..iters {
            match self.step(objective, optimisers, schedule.as_deref_mut())? {
                None => return Ok(StopReason::Diverged(self.iter + 1)),
                Some(it) => {
                    if !observer(&it) {
                        return Ok(StopReason::Interrupted);
                    }
                }
            }
        }
        Ok(StopReason::Completed)
    }
}
