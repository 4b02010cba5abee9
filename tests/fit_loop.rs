//! The shared fitting loop (`magprior::fit`) on small objectives: a quadratic in a few
//! parameters fitted with AdamW, with scheduled offsets that put the lowest loss (or held-out
//! loss) at a known iteration. The selection rules, divergence, interruption, the reported
//! numbers, the hooks, and the hold-out masks.

mod common;
use common::*;
use magprior::fit::{Evaluation, Fit, Holdout, Iteration, Objective, Selection, StopReason};
use magprior::optim::{AdamW, ReduceLrOnPlateau};
use magprior::{Device, Rng, Tensor};

/// `loss = sum((p - c)^2) + offset(iter)`; the held-out loss is `validation(iter)` when given.
/// Records the parameters each evaluation saw (the state an iteration keeps).
struct Quadratic {
    p: Tensor,
    c: Tensor,
    offset: Box<dyn Fn(usize) -> f32>,
    validation: Option<Box<dyn Fn(usize) -> f32>>,
    seen: Vec<Vec<f32>>,
    after_step: Vec<usize>,
    clamp: Option<f32>,
}

impl Quadratic {
    fn new(offset: impl Fn(usize) -> f32 + 'static) -> Quadratic {
        Quadratic {
            p: Tensor::from_shape_vec(&[3], vec![2.0, -1.0, 0.5])
                .unwrap()
                .requires_grad(),
            c: Tensor::from_shape_vec(&[3], vec![0.3, 0.2, -0.4]).unwrap(),
            offset: Box::new(offset),
            validation: None,
            seen: Vec::new(),
            after_step: Vec::new(),
            clamp: None,
        }
    }
    fn optimiser(&self) -> AdamW {
        AdamW::new(vec![self.p.clone()], 0.05)
    }
    /// The parameters evaluation `iter` (1-based) saw.
    fn seen_at(&self, iter: usize) -> &[f32] {
        &self.seen[iter - 1]
    }
}

impl Objective for Quadratic {
    fn evaluate(&mut self, iter: usize) -> magprior::Result<Evaluation> {
        self.seen.push(self.p.to_vec()?);
        let q = self.p.sub(&self.c)?.square()?.sum_all()?;
        let loss = q.add_scalar((self.offset)(iter))?;
        let validation = self.validation.as_ref().map(|v| Tensor::scalar(v(iter)));
        Ok(Evaluation {
            loss,
            validation,
            report: vec![self.p.sum_all()?.detach(), q.detach()],
            state: vec![self.p.detach()],
        })
    }
    fn after_step(&mut self, iter: usize) -> magprior::Result<()> {
        self.after_step.push(iter);
        if let Some(m) = self.clamp {
            let v: Vec<f32> = self.p.to_vec()?.iter().map(|x| x.min(m)).collect();
            self.p.assign(&Tensor::from_shape_vec(&[3], v)?)?;
        }
        Ok(())
    }
}

/// Runs `iters` iterations, observing every one; returns the stop reason and the fit.
fn run(q: &mut Quadratic, selection: Selection, iters: usize) -> (StopReason, Fit) {
    let mut opt = q.optimiser();
    let mut fit = Fit::new(selection);
    let stop = fit
        .run(iters, q, &mut [&mut opt], None, &mut |_| true)
        .unwrap();
    (stop, fit)
}

/// The selected snapshot: its iteration, and its state equals what that evaluation saw.
fn selected_iter(q: &Quadratic, fit: &Fit) -> usize {
    let s = fit.selected().expect("a selected state");
    assert_eq!(s.stats.iter, s.iter);
    assert_eq!(s.state.len(), 1);
    assert_eq!(
        s.state[0].to_vec().unwrap(),
        q.seen_at(s.iter),
        "state of {}",
        s.iter
    );
    s.iter
}

/// 1-based index of the smallest of `v[after..]`.
fn argmin_after(v: &[f64], after: usize) -> usize {
    let (i, _) =
        v.iter()
            .enumerate()
            .skip(after)
            .fold((usize::MAX, f64::INFINITY), |b, (i, &x)| {
                if x < b.1 {
                    (i, x)
                } else {
                    b
                }
            });
    i + 1
}

#[test]
fn a_quadratic_converges_and_the_history_reports_each_iteration() {
    let mut q = Quadratic::new(|_| 0.0);
    let (stop, fit) = run(&mut q, Selection::LowestLoss { after: 0 }, 200);
    assert_eq!(stop, StopReason::Completed);
    assert_eq!(fit.iterations(), 200);
    let h = fit.history();
    assert_eq!(h.len(), 200);
    assert!(h.iter().enumerate().all(|(i, it)| it.iter == i + 1));
    assert!(
        h[199].loss < 1e-3 * h[0].loss,
        "{} -> {}",
        h[0].loss,
        h[199].loss
    );
    for it in h {
        let seen = q.seen_at(it.iter);
        let want_sum: f64 = seen.iter().map(|&v| v as f64).sum();
        assert_close_scalar("reported sum(p)", it.report[0], want_sum, ELEMENTWISE);
        assert_close_scalar(
            "reported quadratic = loss",
            it.report[1],
            it.loss,
            ELEMENTWISE,
        );
        assert!(it.validation.is_nan(), "no held-out loss: NaN");
        assert_eq!(it.lr, 0.05);
        assert!(it.seconds >= 0.0);
    }
    assert!(h.windows(2).all(|w| w[1].seconds >= w[0].seconds));
    // the hook ran after every step, with the iteration
    assert_eq!(q.after_step, (1..=200).collect::<Vec<_>>());
    let (hist, sel) = fit.finish();
    assert_eq!(hist.len(), 200);
    assert_eq!(
        sel.unwrap().iter,
        argmin_after(&hist.iter().map(|i| i.loss).collect::<Vec<_>>(), 0)
    );
}

#[test]
fn lowest_loss_picks_the_iteration_of_the_lowest_loss_after_the_warm_up() {
    // a dip at iteration 7 and a smaller one at 3 (inside the warm-up of the second run)
    let offset = |i: usize| match i {
        3 => -20.0,
        7 => -10.0,
        _ => 0.0,
    };
    let mut q = Quadratic::new(offset);
    let (_, fit) = run(&mut q, Selection::LowestLoss { after: 0 }, 12);
    assert_eq!(selected_iter(&q, &fit), 3);
    assert_eq!(fit.selected().unwrap().key, fit.history()[2].loss);
    let mut q = Quadratic::new(offset);
    let (_, fit) = run(&mut q, Selection::LowestLoss { after: 3 }, 12);
    assert_eq!(selected_iter(&q, &fit), 7);
    // without a dip: the last iterations of a converging fit are the lowest, the rule's choice
    // is the history's argmin past `after`
    let mut q = Quadratic::new(|_| 0.0);
    let (_, fit) = run(&mut q, Selection::LowestLoss { after: 5 }, 30);
    let losses: Vec<f64> = fit.history().iter().map(|i| i.loss).collect();
    assert_eq!(selected_iter(&q, &fit), argmin_after(&losses, 5));
    // fewer iterations than the warm-up: the last state
    let mut q = Quadratic::new(offset);
    let (_, fit) = run(&mut q, Selection::LowestLoss { after: 20 }, 4);
    assert_eq!(selected_iter(&q, &fit), 4);
}

#[test]
fn validation_picks_the_lowest_held_out_loss_and_last_the_last() {
    let with_validation = || {
        let mut q = Quadratic::new(|i| if i == 7 { -10.0 } else { 0.0 });
        q.validation = Some(Box::new(|i| match i {
            2 => 0.1,
            5 => 0.5,
            _ => 1.0 + i as f32,
        }));
        q
    };
    let mut q = with_validation();
    let (_, fit) = run(&mut q, Selection::Validation { after: 0 }, 10);
    assert_eq!(selected_iter(&q, &fit), 2);
    assert_eq!(fit.selected().unwrap().key, 0.1f32 as f64);
    assert_eq!(fit.history()[4].validation, 0.5f32 as f64);
    let mut q = with_validation();
    let (_, fit) = run(&mut q, Selection::Validation { after: 2 }, 10);
    assert_eq!(selected_iter(&q, &fit), 5);
    let mut q = with_validation();
    let (_, fit) = run(&mut q, Selection::LowestLoss { after: 0 }, 10);
    assert_eq!(selected_iter(&q, &fit), 7);
    let mut q = with_validation();
    let (_, fit) = run(&mut q, Selection::Last, 10);
    assert_eq!(selected_iter(&q, &fit), 10);
    assert_eq!(fit.last().unwrap().iter, 10);
    let (_, sel) = fit.finish();
    assert_eq!(sel.unwrap().iter, 10);
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_state_selected_before() {
    for bad in [f32::NAN, f32::INFINITY] {
        let k = 6;
        let mut q = Quadratic::new(move |i| match i {
            3 => -10.0,
            i if i == k => bad,
            _ => 0.0,
        });
        let mut opt = q.optimiser();
        let mut fit = Fit::new(Selection::LowestLoss { after: 0 });
        let mut observed = Vec::new();
        let stop = fit
            .run(20, &mut q, &mut [&mut opt], None, &mut |it: &Iteration| {
                observed.push(it.iter);
                true
            })
            .unwrap();
        assert_eq!(stop, StopReason::Diverged(k), "loss {bad}");
        assert_eq!(stop.to_string(), format!("diverged at iteration {k}"));
        assert_eq!(fit.iterations(), k - 1);
        assert_eq!(fit.history().len(), k - 1);
        assert_eq!(observed, (1..k).collect::<Vec<_>>());
        assert_eq!(selected_iter(&q, &fit), 3);
        assert_eq!(fit.last().unwrap().iter, k - 1);
        // nothing was updated at the diverged iteration: no step, no hook
        assert_eq!(q.p.to_vec().unwrap(), q.seen_at(k));
        assert_eq!(opt.t, (k - 1) as u64);
        assert_eq!(q.after_step.len(), k - 1);
    }
    // a NaN at the very first iteration: nothing to select
    let mut q = Quadratic::new(|_| f32::NAN);
    let (stop, fit) = run(&mut q, Selection::LowestLoss { after: 0 }, 5);
    assert_eq!(stop, StopReason::Diverged(1));
    assert!(fit.selected().is_none());
}

#[test]
fn an_observer_returning_false_interrupts_after_that_iteration() {
    let mut q = Quadratic::new(|_| 0.0);
    let mut opt = q.optimiser();
    let mut fit = Fit::new(Selection::Last);
    let mut seen = Vec::new();
    let stop = fit
        .run(50, &mut q, &mut [&mut opt], None, &mut |it: &Iteration| {
            seen.push(it.iter);
            it.iter < 3
        })
        .unwrap();
    assert_eq!(stop, StopReason::Interrupted);
    assert_eq!(stop.to_string(), "interrupted");
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(fit.iterations(), 3);
    // the interrupted iteration was completed (stepped) and is the last state
    assert_eq!(opt.t, 3);
    assert_eq!(selected_iter(&q, &fit), 3);
    // a run can continue where it stopped
    let stop = fit
        .run(2, &mut q, &mut [&mut opt], None, &mut |_| true)
        .unwrap();
    assert_eq!(stop, StopReason::Completed);
    assert_eq!(fit.iterations(), 5);
    assert_eq!(fit.history().last().unwrap().iter, 5);
}

#[test]
fn the_hook_runs_after_the_step_and_the_schedule_sets_the_first_lr() {
    // a projection in the hook: the next evaluation sees the clamped parameters
    let mut q = Quadratic::new(|_| 0.0);
    q.clamp = Some(1.0);
    let (_, fit) = run(&mut q, Selection::Last, 5);
    assert!(
        q.seen[1..].iter().all(|p| p.iter().all(|&v| v <= 1.0)),
        "{:?}",
        q.seen
    );
    assert!(q.seen[0][0] > 1.0);
    assert_eq!(fit.iterations(), 5);
    // a loss that never improves with patience 0: the plateau schedule halves the learning
    // rate from the second step on; `lr` is the one each iteration used
    let mut q = Quadratic::new(|i| 10.0 * i as f32);
    let mut opt = q.optimiser();
    let mut sched = ReduceLrOnPlateau::new(0.5, 0, 1e-4);
    let mut fit = Fit::new(Selection::Last);
    fit.run(4, &mut q, &mut [&mut opt], Some(&mut sched), &mut |_| true)
        .unwrap();
    let lrs: Vec<f64> = fit.history().iter().map(|i| i.lr).collect();
    assert_eq!(lrs, vec![0.05, 0.05, 0.025, 0.0125]);
    assert_eq!(opt.lr, 0.00625);
}

/// The training and held-out masks of `h`, probed with one-hot models: `(held, n_train, n_val)`
/// from the losses of each pixel alone.
fn probe(h: &Holdout, rows: usize, cols: usize) -> (Vec<bool>, f64, f64) {
    let zero = Tensor::zeros(&[1, 1, rows, cols]);
    let (mut held, mut n_train, mut n_val) = (Vec::new(), f64::NAN, f64::NAN);
    for i in 0..rows * cols {
        let mut v = vec![0f32; rows * cols];
        v[i] = 1.0;
        let m = Tensor::from_shape_vec(&[1, 1, rows, cols], v).unwrap();
        let (train, val) = h.losses(&m, &zero).unwrap();
        let (t, v) = (
            train.to_scalar().unwrap() as f64,
            val.to_scalar().unwrap() as f64,
        );
        assert!(
            (t > 0.0) != (v > 0.0),
            "pixel {i} in both or neither: {t} {v}"
        );
        held.push(v > 0.0);
        if v > 0.0 {
            n_val = 1.0 / v;
        } else {
            n_train = 1.0 / t;
        }
    }
    (held, n_train, n_val)
}

#[test]
fn holdout_masks_hold_out_the_fraction_and_their_loss_is_the_held_out_mse() {
    let (rows, cols) = (48, 40);
    let n = (rows * cols) as f64;
    for (fraction, seed) in [(0.1, 1), (0.3, 2), (0.05, 3)] {
        let h = Holdout::new(rows, cols, fraction, seed, Device::Cpu).unwrap();
        let (held, n_train, n_val) = probe(&h, rows, cols);
        let count = held.iter().filter(|&&b| b).count() as f64;
        // 5 binomial sigma
        let sigma = (n * fraction * (1.0 - fraction)).sqrt();
        assert!(
            (count - n * fraction).abs() < 5.0 * sigma,
            "fraction {fraction}: {count} of {n} held out"
        );
        assert_close_scalar("held-out count", n_val, count, ELEMENTWISE);
        assert_close_scalar("training count", n_train, n - count, ELEMENTWISE);
        // the losses by hand
        let mut r = Rng::new(seed + 10);
        let model = Tensor::rand(&[1, 1, rows, cols], -1.0, 1.0, &mut r).requires_grad();
        let target = Tensor::rand(&[1, 1, rows, cols], -1.0, 1.0, &mut r);
        let (train, val) = h.losses(&model, &target).unwrap();
        assert!(
            train.is_tracked() && !val.is_tracked(),
            "train tracked, held-out detached"
        );
        let (m, t) = (model.to_vec().unwrap(), target.to_vec().unwrap());
        let sq = |i: usize| (m[i] as f64 - t[i] as f64).powi(2);
        let on = |h: bool| (0..m.len()).filter(|&i| held[i] == h).map(sq).sum::<f64>();
        let (want_val, want_train) = (on(true) / count, on(false) / (n - count));
        assert_close_scalar(
            "held-out MSE",
            val.to_scalar().unwrap() as f64,
            want_val,
            ACCUMULATED,
        );
        assert_close_scalar(
            "training MSE",
            train.to_scalar().unwrap() as f64,
            want_train,
            ACCUMULATED,
        );
        // the training loss's gradient reaches the training pixels only
        let g = train
            .backward()
            .unwrap()
            .get(&model)
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(held.iter().zip(&g).all(|(&h, &g)| (g == 0.0) == h));
        // the same seed gives the same masks, another seed others
        let again = probe(
            &Holdout::new(rows, cols, fraction, seed, Device::Cpu).unwrap(),
            rows,
            cols,
        );
        assert_eq!(again.0, held);
        let other = probe(
            &Holdout::new(rows, cols, fraction, seed + 100, Device::Cpu).unwrap(),
            rows,
            cols,
        );
        assert_ne!(other.0, held);
    }
    for bad in [0.0, 0.9, -0.1, 1.5, f64::NAN] {
        assert!(
            Holdout::new(8, 8, bad, 1, Device::Cpu).is_err(),
            "fraction {bad}"
        );
    }
}

#[test]
fn output_averaging_is_the_moving_average_of_the_states() {
    let mut q = Quadratic::new(|_| 0.0);
    let mut opt = q.optimiser();
    let mut fit = Fit::new(Selection::Last).with_average(0.9);
    assert!(fit.average().is_none());
    fit.run(12, &mut q, &mut [&mut opt], None, &mut |_| true)
        .unwrap();
    // avg_1 = x_1, avg_k = 0.9 avg_{k-1} + 0.1 x_k, in f64 here
    let mut avg: Vec<f64> = q.seen_at(1).iter().map(|&v| v as f64).collect();
    for k in 2..=12 {
        for (a, &x) in avg.iter_mut().zip(q.seen_at(k)) {
            *a = 0.9 * *a + 0.1 * x as f64;
        }
    }
    let got = fit.average().unwrap().to_vec().unwrap();
    for (g, a) in got.iter().zip(&avg) {
        assert!((*g as f64 - a).abs() < 1e-5, "{g} vs {a}");
    }
    // it lags the last state (the parameters move towards c)
    let last = q.seen_at(12);
    assert!(got.iter().zip(last).any(|(g, l)| (g - l).abs() > 1e-3));
}
